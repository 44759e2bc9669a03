//! One test per rule of `core::cache`: TTL clamping, expiry, refresh-ahead,
//! stale-if-error, LRU eviction, each invalidation, warming, configuration
//! checks and events.

use embassy_time::{Duration, Instant};
use proxy_delegate_core::cache::{
    Cache, CacheConfig, CacheKey, EVENT_QUEUE_LEN, Event, Freshness, InvalidationScope,
};
use proxy_delegate_core::model::{
    ConnectionType, ExchangeId, FallbackPolicy, ProxyId, ProxyRequest, ProxyResponse, ProxyUrl,
    Region, ResponseMetadata, Strategy, TtlSeconds,
};
use proxy_delegate_core::storage::Boxed;
use proxy_delegate_core::{Reason, ValidationError};

fn key(exchange: &str, ct: ConnectionType, region: Option<&str>) -> CacheKey {
    CacheKey::new(
        ExchangeId::new(exchange).unwrap(),
        ct,
        region.map(|r| Region::new(r).unwrap()),
    )
}

fn ws(exchange: &str) -> CacheKey {
    key(exchange, ConnectionType::Websocket, None)
}

fn response(ttl_secs: u64, proxy_id: &str, url: &str) -> ProxyResponse {
    ProxyResponse {
        proxy_url: Some(ProxyUrl::parse(url).unwrap()),
        strategy: Strategy::new("round_robin").unwrap(),
        ttl_seconds: TtlSeconds::new(ttl_secs).unwrap(),
        fallback_policy: FallbackPolicy::DirectConnection,
        metadata: ResponseMetadata {
            proxy_id: Some(ProxyId::new(proxy_id).unwrap()),
            ..ResponseMetadata::default()
        },
    }
}

fn resp(ttl_secs: u64) -> ProxyResponse {
    response(ttl_secs, "proxy-1", "socks5://proxy-1.example:1080")
}

fn t(secs: u64) -> Instant {
    Instant::from_secs(1_000) + Duration::from_secs(secs)
}

fn ms(millis: u64) -> Instant {
    Instant::from_secs(1_000) + Duration::from_millis(millis)
}

fn events<V: proxy_delegate_core::cache::CacheValue, const N: usize>(
    cache: &mut Cache<V, N>,
) -> Vec<Event> {
    std::iter::from_fn(|| cache.poll_event()).collect()
}

fn cache<const N: usize>(config: CacheConfig) -> Cache<ProxyResponse, N> {
    Cache::new(config).unwrap()
}

fn default_cache() -> Cache<ProxyResponse, 16> {
    cache(CacheConfig::default())
}

// ---------------------------------------------------------------- basics

#[test]
fn miss_then_insert_then_fresh_hit() {
    let mut c = default_cache();
    let k = ws("binance");
    assert!(c.get(t(0), &k).is_none());
    assert!(c.is_empty());
    c.insert(t(0), k.clone(), resp(300));
    let hit = c.get(t(1), &k).unwrap();
    assert_eq!(hit.freshness, Freshness::Fresh);
    assert_eq!(hit.value, &resp(300));
    assert_eq!(hit.expires_at, t(300));
    assert_eq!(c.len(), 1);
    assert!(c.contains(&k));
    assert_eq!(c.capacity(), 16);
}

#[test]
fn peek_reads_without_touching_or_scheduling() {
    let mut c = cache::<2>(CacheConfig::default());
    let (a, b) = (ws("a"), ws("b"));
    c.insert(t(0), a.clone(), response(100, "pa", "http://a:1"));
    c.insert(t(0), b.clone(), resp(300));
    // Even when a's refresh would be due, peek schedules nothing...
    let peeked = c.peek(&a).unwrap();
    assert_eq!(peeked.metadata.proxy_id.as_ref().unwrap().as_str(), "pa");
    assert_eq!(c.poll_refresh(t(90)), None);
    assert!(c.poll_event().is_none());
    // ...and does not make a recently used: it is still the one evicted.
    c.insert(t(1), ws("c"), resp(300));
    assert!(c.peek(&a).is_none());
    assert!(c.peek(&b).is_some());
}

#[test]
fn keys_differ_by_connection_type_and_region() {
    let mut c = default_cache();
    let http = key("binance", ConnectionType::Http, None);
    let wss = key("binance", ConnectionType::Websocket, None);
    let eu = key("binance", ConnectionType::Websocket, Some("eu-west-1"));
    c.insert(t(0), http.clone(), response(300, "a", "http://a:1"));
    c.insert(t(0), wss.clone(), response(300, "b", "http://b:1"));
    c.insert(t(0), eu.clone(), response(300, "c", "http://c:1"));
    let id = |c: &mut Cache<ProxyResponse, 16>, k: &CacheKey| {
        c.get(t(1), k)
            .and_then(|h| h.value.metadata.proxy_id.clone())
            .map(|p| p.as_str().to_owned())
    };
    assert_eq!(id(&mut c, &http).as_deref(), Some("a"));
    assert_eq!(id(&mut c, &wss).as_deref(), Some("b"));
    assert_eq!(id(&mut c, &eu).as_deref(), Some("c"));
    assert!(
        c.get(
            t(1),
            &key("binance", ConnectionType::Http, Some("eu-west-1"))
        )
        .is_none()
    );
}

#[test]
fn key_from_request_and_display() {
    let mut req = ProxyRequest::new(
        ExchangeId::new("Binance").unwrap(),
        ConnectionType::Websocket,
        "client-1".parse().unwrap(),
    );
    assert_eq!(CacheKey::from_request(&req), ws("binance"));
    assert_eq!(
        CacheKey::from_request(&req).to_string(),
        "binance/websocket"
    );
    req.region = Some(Region::new("us-east-1").unwrap());
    assert_eq!(
        CacheKey::from_request(&req).to_string(),
        "binance/websocket/us-east-1"
    );
}

#[test]
fn insert_replaces_existing_value() {
    let mut c = default_cache();
    let k = ws("binance");
    c.insert(t(0), k.clone(), response(300, "old", "http://old:1"));
    c.insert(t(10), k.clone(), response(50, "new", "http://new:1"));
    assert_eq!(c.len(), 1);
    let hit = c.get(t(11), &k).unwrap();
    assert_eq!(
        hit.value.metadata.proxy_id.as_ref().unwrap().as_str(),
        "new"
    );
    assert_eq!(hit.expires_at, t(60));
}

// ---------------------------------------------------------------- TTL

#[test]
fn ttl_is_clamped_to_min() {
    let mut c = cache::<16>(CacheConfig {
        min_ttl: Duration::from_secs(10),
        ..CacheConfig::default()
    });
    let k = ws("binance");
    c.insert(t(0), k.clone(), resp(1));
    assert!(c.get(ms(9_999), &k).is_some());
    assert!(c.get(t(10), &k).is_none());
}

#[test]
fn ttl_is_clamped_to_max() {
    let mut c = cache::<16>(CacheConfig {
        max_ttl: Duration::from_secs(60),
        ..CacheConfig::default()
    });
    let k = ws("binance");
    c.insert(t(0), k.clone(), resp(86_400));
    assert_eq!(c.get(t(59), &k).unwrap().expires_at, t(60));
    assert!(c.get(t(60), &k).is_none());
}

#[test]
fn expired_entry_is_never_returned_as_fresh() {
    let mut c = default_cache();
    let k = ws("binance");
    c.insert(t(0), k.clone(), resp(30));
    assert!(c.get(ms(29_999), &k).is_some());
    // Exactly at expiry and after: a miss from `get`.
    assert!(c.get(t(30), &k).is_none());
    assert!(c.get(t(31), &k).is_none());
    // get_stale gives it, but as stale.
    assert_eq!(c.get_stale(t(30), &k).unwrap().freshness, Freshness::Stale);
    // ...and that does not make it fresh again.
    assert!(c.get(t(31), &k).is_none());
}

#[test]
fn time_going_backwards_or_to_the_end_does_not_panic() {
    let mut c = default_cache();
    let k = ws("binance");
    c.insert(t(100), k.clone(), resp(30));
    // Before the insert: still within the TTL window.
    assert!(c.get(t(50), &k).is_some());
    // Inserting near the end of time saturates instead of overflowing.
    let end = Instant::MAX - Duration::from_secs(1);
    c.insert(end, k.clone(), resp(86_400));
    assert_eq!(c.get(end, &k).unwrap().expires_at, Instant::MAX);
    assert!(c.get(Instant::MAX, &k).is_none());
}

// ---------------------------------------------------------------- refresh-ahead

#[test]
fn refresh_ahead_schedules_exactly_one_refresh() {
    let mut c = default_cache();
    let k = ws("binance");
    c.insert(t(0), k.clone(), resp(100));
    // Before 80% of the TTL: nothing scheduled.
    assert!(c.get(ms(79_999), &k).is_some());
    assert_eq!(c.poll_refresh(ms(79_999)), None);
    assert!(events(&mut c).is_empty());
    // At 80%: still a fresh hit, and one refresh.
    let hit = c.get(t(80), &k).unwrap();
    assert_eq!(hit.freshness, Freshness::Fresh);
    for s in 81..90 {
        assert!(c.get(t(s), &k).is_some());
    }
    assert_eq!(
        events(&mut c),
        vec![Event::RefreshScheduled {
            key: k.clone(),
            warm: false
        }]
    );
    assert_eq!(c.poll_refresh(t(90)), Some(k.clone()));
    assert_eq!(c.poll_refresh(t(90)), None);
    // In flight: further lookups schedule nothing.
    assert!(c.get(t(95), &k).is_some());
    assert_eq!(c.poll_refresh(t(95)), None);
    assert!(events(&mut c).is_empty());
}

#[test]
fn refresh_success_is_an_insert_that_resets_the_schedule() {
    let mut c = default_cache();
    let k = ws("binance");
    c.insert(t(0), k.clone(), resp(100));
    c.get(t(80), &k);
    assert_eq!(c.poll_refresh(t(80)), Some(k.clone()));
    c.insert(t(81), k.clone(), resp(100));
    // New entry: due again at 81 + 80.
    assert!(c.get(t(160), &k).is_some());
    assert_eq!(c.poll_refresh(t(160)), None);
    assert!(c.get(t(161), &k).is_some());
    assert_eq!(c.poll_refresh(t(161)), Some(k));
}

#[test]
fn insert_drops_a_refresh_not_yet_polled() {
    let mut c = default_cache();
    let k = ws("binance");
    c.insert(t(0), k.clone(), resp(100));
    c.get(t(85), &k);
    c.insert(t(86), k.clone(), resp(100));
    assert_eq!(c.poll_refresh(t(86)), None);
}

#[test]
fn failed_refresh_is_scheduled_again_after_the_retry_delay() {
    let mut c = cache::<16>(CacheConfig {
        refresh_retry: Duration::from_secs(5),
        ..CacheConfig::default()
    });
    let k = ws("binance");
    c.insert(t(0), k.clone(), resp(100));
    c.get(t(80), &k);
    assert_eq!(c.poll_refresh(t(80)), Some(k.clone()));
    c.refresh_failed(t(81), &k);
    c.get(ms(85_999), &k);
    assert_eq!(c.poll_refresh(ms(85_999)), None);
    c.get(t(86), &k);
    assert_eq!(c.poll_refresh(t(86)), Some(k));
}

#[test]
fn refresh_never_reported_is_scheduled_again_after_the_refresh_timeout() {
    let mut c = cache::<16>(CacheConfig {
        refresh_timeout: Duration::from_secs(10),
        ..CacheConfig::default()
    });
    let k = ws("binance");
    c.insert(t(0), k.clone(), resp(100));
    c.get(t(80), &k);
    assert_eq!(c.poll_refresh(t(80)), Some(k.clone()));
    c.get(ms(89_999), &k);
    assert_eq!(c.poll_refresh(ms(89_999)), None);
    c.get(t(90), &k);
    assert_eq!(c.poll_refresh(t(90)), Some(k));
}

#[test]
fn refresh_ahead_at_100_percent_is_off() {
    let mut c = cache::<16>(CacheConfig {
        refresh_ahead_percent: 100,
        ..CacheConfig::default()
    });
    let k = ws("binance");
    c.insert(t(0), k.clone(), resp(100));
    for s in [80, 99] {
        assert!(c.get(t(s), &k).is_some());
    }
    assert!(c.get(ms(99_999), &k).is_some());
    assert_eq!(c.poll_refresh(ms(99_999)), None);
}

#[test]
fn pending_refreshes_come_out_oldest_first() {
    let mut c = default_cache();
    let (a, b) = (ws("a"), ws("b"));
    c.insert(t(0), a.clone(), resp(100));
    c.insert(t(0), b.clone(), resp(100));
    c.get(t(81), &b);
    c.get(t(82), &a);
    assert_eq!(c.poll_refresh(t(82)), Some(b));
    assert_eq!(c.poll_refresh(t(82)), Some(a));
    assert_eq!(c.poll_refresh(t(82)), None);
}

// ---------------------------------------------------------------- stale-if-error

#[test]
fn stale_entry_is_served_only_when_asked_and_only_within_grace() {
    let mut c = cache::<16>(CacheConfig {
        stale_grace: Duration::from_secs(60),
        ..CacheConfig::default()
    });
    let k = ws("binance");
    c.insert(t(0), k.clone(), resp(100));
    // Fresh entries come out of get_stale as fresh.
    assert_eq!(c.get_stale(t(50), &k).unwrap().freshness, Freshness::Fresh);
    // Expired: only get_stale, marked stale.
    assert!(c.get(t(100), &k).is_none());
    let hit = c.get_stale(t(100), &k).unwrap();
    assert_eq!(hit.freshness, Freshness::Stale);
    assert_eq!(hit.expires_at, t(100));
    assert_eq!(
        c.get_stale(ms(159_999), &k).unwrap().freshness,
        Freshness::Stale
    );
    // Past the grace: gone, and the slot is reclaimed.
    assert!(c.get_stale(t(160), &k).is_none());
    assert!(!c.contains(&k));
    assert!(c.is_empty());
}

#[test]
fn zero_grace_turns_stale_if_error_off() {
    let mut c = cache::<16>(CacheConfig {
        stale_grace: Duration::from_ticks(0),
        ..CacheConfig::default()
    });
    let k = ws("binance");
    c.insert(t(0), k.clone(), resp(100));
    assert!(c.get_stale(t(100), &k).is_none());
    assert!(c.is_empty());
}

#[test]
fn stale_hit_schedules_no_refresh() {
    let mut c = default_cache();
    let k = ws("binance");
    c.insert(t(0), k.clone(), resp(100));
    assert!(c.get_stale(t(120), &k).is_some());
    assert_eq!(c.poll_refresh(t(120)), None);
    assert!(events(&mut c).is_empty());
}

// ---------------------------------------------------------------- LRU

#[test]
fn least_recently_used_entry_is_evicted() {
    let mut c = cache::<4>(CacheConfig::default());
    let keys: Vec<_> = ["a", "b", "c", "d"].into_iter().map(ws).collect();
    for k in &keys {
        c.insert(t(0), k.clone(), resp(300));
    }
    // Use a, then c (stale lookups count as use too), so b is the oldest.
    assert!(c.get(t(1), &keys[0]).is_some());
    assert!(c.get_stale(t(1), &keys[2]).is_some());
    c.insert(t(2), ws("e"), resp(300));
    assert_eq!(c.len(), 4);
    assert!(!c.contains(&keys[1]));
    assert_eq!(
        events(&mut c),
        vec![Event::Evicted {
            key: keys[1].clone()
        }]
    );
    // Then d, then a.
    c.insert(t(3), ws("f"), resp(300));
    c.insert(t(3), ws("g"), resp(300));
    assert!(!c.contains(&keys[3]));
    assert!(!c.contains(&keys[0]));
    assert!(c.contains(&keys[2]));
    assert_eq!(
        events(&mut c),
        vec![
            Event::Evicted {
                key: keys[3].clone()
            },
            Event::Evicted {
                key: keys[0].clone()
            }
        ]
    );
}

#[test]
fn a_miss_does_not_count_as_use() {
    let mut c = cache::<2>(CacheConfig::default());
    let (a, b) = (ws("a"), ws("b"));
    c.insert(t(0), a.clone(), resp(10));
    c.insert(t(0), b.clone(), resp(300));
    // a is expired (within grace): a plain get misses and does not touch it.
    assert!(c.get(t(20), &a).is_none());
    c.insert(t(20), ws("c"), resp(300));
    assert!(!c.contains(&a));
    assert!(c.contains(&b));
}

#[test]
fn replacing_a_key_does_not_evict() {
    let mut c = cache::<2>(CacheConfig::default());
    c.insert(t(0), ws("a"), resp(300));
    c.insert(t(0), ws("b"), resp(300));
    c.insert(t(1), ws("a"), resp(300));
    assert_eq!(c.len(), 2);
    assert!(events(&mut c).is_empty());
    // a was refreshed, so b goes first.
    c.insert(t(2), ws("c"), resp(300));
    assert!(c.contains(&ws("a")));
    assert!(!c.contains(&ws("b")));
}

#[test]
fn evicting_an_entry_with_a_pending_refresh_drops_the_refresh() {
    let mut c = cache::<2>(CacheConfig::default());
    c.insert(t(0), ws("a"), resp(100));
    c.insert(t(0), ws("b"), resp(300));
    c.get(t(85), &ws("a")); // schedules a; a is now most recent
    c.get(t(86), &ws("b"));
    c.insert(t(87), ws("c"), resp(300)); // evicts a
    assert!(!c.contains(&ws("a")));
    assert_eq!(c.poll_refresh(t(87)), None);
}

#[test]
fn full_4096_entry_cache_keeps_every_key_and_evicts_in_order() {
    // A few megabytes of slots: on the heap (`Boxed`), built on this test
    // thread's small stack.
    let mut c = Cache::<ProxyResponse, 4096, Boxed>::new(CacheConfig::default()).unwrap();
    let keys: Vec<_> = (0..4096).map(|i| ws(&format!("ex{i}"))).collect();
    for (i, k) in keys.iter().enumerate() {
        c.insert(
            t(0),
            k.clone(),
            response(300, &format!("p{i}"), "http://p:1"),
        );
    }
    assert_eq!(c.len(), 4096);
    for (i, k) in keys.iter().enumerate().rev() {
        let hit = c.get(t(1), k).unwrap();
        assert_eq!(
            hit.value.metadata.proxy_id.as_ref().unwrap().as_str(),
            format!("p{i}")
        );
    }
    // Lookups went last to first, so key 4095 is the oldest.
    c.insert(t(2), ws("new"), resp(300));
    assert_eq!(c.len(), 4096);
    assert!(!c.contains(&keys[4095]));
    assert_eq!(
        c.invalidate_proxy(Some(&ProxyId::new("p7").unwrap()), None),
        1
    );
    assert_eq!(c.len(), 4095);
    for (i, k) in keys.iter().enumerate().take(4095) {
        assert_eq!(c.get(t(3), k).is_some(), i != 7, "key {i}");
    }
}

// ---------------------------------------------------------------- invalidation

fn three_exchanges() -> Cache<ProxyResponse, 16> {
    let mut c = default_cache();
    c.insert(
        t(0),
        key("binance", ConnectionType::Http, None),
        response(300, "p1", "socks5://u:secret@Proxy-1.example:1080"),
    );
    c.insert(
        t(0),
        key("binance", ConnectionType::Websocket, Some("eu")),
        response(300, "p2", "socks5://proxy-2.example:1080"),
    );
    c.insert(
        t(0),
        key("kraken", ConnectionType::Websocket, None),
        response(300, "p2", "socks5://proxy-2.example:1080"),
    );
    c.insert(
        t(0),
        key("coinbase", ConnectionType::Http, None),
        response(300, "p3", "http://proxy-1.example:1080"),
    );
    c
}

#[test]
fn invalidate_by_key() {
    let mut c = three_exchanges();
    let k = key("kraken", ConnectionType::Websocket, None);
    assert!(c.invalidate(&k));
    assert!(!c.invalidate(&k));
    assert!(c.get_stale(t(1), &k).is_none());
    assert_eq!(c.len(), 3);
    assert_eq!(
        events(&mut c),
        vec![Event::Invalidated {
            scope: InvalidationScope::Key,
            count: 1
        }]
    );
}

#[test]
fn invalidate_by_exchange() {
    let mut c = three_exchanges();
    assert_eq!(
        c.invalidate_exchange(&ExchangeId::new("BINANCE").unwrap()),
        2
    );
    assert_eq!(c.len(), 2);
    assert!(
        c.get(t(1), &key("kraken", ConnectionType::Websocket, None))
            .is_some()
    );
    assert!(
        c.get(t(1), &key("binance", ConnectionType::Http, None))
            .is_none()
    );
    assert_eq!(c.invalidate_exchange(&ExchangeId::new("okx").unwrap()), 0);
    assert_eq!(
        events(&mut c),
        vec![Event::Invalidated {
            scope: InvalidationScope::Exchange,
            count: 2
        }]
    );
}

#[test]
fn invalidate_by_proxy_id() {
    let mut c = three_exchanges();
    assert_eq!(
        c.invalidate_proxy(Some(&ProxyId::new("p2").unwrap()), None),
        2
    );
    assert_eq!(c.len(), 2);
    assert!(!c.contains(&key("kraken", ConnectionType::Websocket, None)));
    assert_eq!(c.invalidate_proxy(None, None), 0);
    assert_eq!(
        events(&mut c),
        vec![Event::Invalidated {
            scope: InvalidationScope::Proxy,
            count: 2
        }]
    );
}

#[test]
fn invalidate_by_proxy_url_ignores_credentials_and_host_case() {
    let mut c = three_exchanges();
    // Feedback carries the URL without credentials; the entry has them.
    let url = ProxyUrl::parse("socks5://proxy-1.EXAMPLE:1080").unwrap();
    assert_eq!(c.invalidate_proxy(None, Some(&url)), 1);
    assert!(!c.contains(&key("binance", ConnectionType::Http, None)));
    // Same host and port but another scheme is another proxy.
    assert!(c.contains(&key("coinbase", ConnectionType::Http, None)));
    // By id or by URL: both kinds of match go.
    let url = ProxyUrl::parse("http://proxy-1.example:1080").unwrap();
    assert_eq!(
        c.invalidate_proxy(Some(&ProxyId::new("p2").unwrap()), Some(&url)),
        3
    );
    assert!(c.is_empty());
}

#[test]
fn invalidate_all() {
    let mut c = three_exchanges();
    c.get(t(250), &key("kraken", ConnectionType::Websocket, None)); // a pending refresh
    events(&mut c);
    assert_eq!(c.invalidate_all(), 4);
    assert!(c.is_empty());
    assert_eq!(c.poll_refresh(t(250)), None);
    assert_eq!(c.invalidate_all(), 0);
    assert_eq!(
        events(&mut c),
        vec![Event::Invalidated {
            scope: InvalidationScope::All,
            count: 4
        }]
    );
    // The cache works normally afterwards.
    c.insert(t(251), ws("a"), resp(300));
    assert!(c.get(t(252), &ws("a")).is_some());
}

// ---------------------------------------------------------------- warming

#[test]
fn warm_keys_are_fetched_when_missing_and_refreshed_when_due() {
    let mut config = CacheConfig {
        refresh_timeout: Duration::from_secs(10),
        refresh_retry: Duration::from_secs(3),
        ..CacheConfig::default()
    };
    let k = ws("binance");
    config.warm_keys.push(k.clone()).unwrap();
    let mut c = cache::<16>(config);

    // Missing from the start: due at once.
    assert_eq!(c.poll_timeout(), Some(Instant::MIN));
    assert_eq!(c.poll_refresh(t(0)), None); // not before handle_timeout
    c.handle_timeout(t(0));
    assert_eq!(
        events(&mut c),
        vec![Event::RefreshScheduled {
            key: k.clone(),
            warm: true
        }]
    );
    assert_eq!(c.poll_timeout(), None); // scheduled, waiting to be polled
    assert_eq!(c.poll_refresh(t(0)), Some(k.clone()));
    assert_eq!(c.poll_refresh(t(0)), None);
    // In flight: not due again before the refresh timeout.
    assert_eq!(c.poll_timeout(), Some(t(10)));
    c.handle_timeout(t(5));
    assert_eq!(c.poll_refresh(t(5)), None);

    // The refresh fails: retried after refresh_retry.
    c.refresh_failed(t(6), &k);
    assert_eq!(c.poll_timeout(), Some(t(9)));
    c.handle_timeout(t(9));
    assert_eq!(c.poll_refresh(t(9)), Some(k.clone()));

    // It succeeds: due again at 80% of the TTL, without any lookup.
    c.insert(t(10), k.clone(), resp(100));
    assert_eq!(c.poll_timeout(), Some(t(90)));
    c.handle_timeout(t(89));
    assert_eq!(c.poll_refresh(t(89)), None);
    c.handle_timeout(t(90));
    assert_eq!(c.poll_refresh(t(90)), Some(k.clone()));
    assert!(c.get(t(91), &k).is_some());
    assert_eq!(c.poll_refresh(t(91)), None);

    // Invalidated: missing again, but the refresh in flight is not duplicated.
    assert!(c.invalidate(&k));
    assert_eq!(c.poll_timeout(), Some(t(100)));
    c.handle_timeout(t(100));
    assert_eq!(c.poll_refresh(t(100)), Some(k));
}

#[test]
fn a_warm_key_inserted_before_its_poll_is_not_fetched_twice() {
    let mut config = CacheConfig::default();
    let k = ws("binance");
    config.warm_keys.push(k.clone()).unwrap();
    let mut c = cache::<16>(config);
    c.handle_timeout(t(0));
    c.insert(t(0), k.clone(), resp(100));
    assert_eq!(c.poll_refresh(t(0)), None);
    assert_eq!(c.poll_timeout(), Some(t(80)));
}

#[test]
fn poll_timeout_is_the_earliest_warm_key() {
    let mut config = CacheConfig::default();
    config.warm_keys.push(ws("a")).unwrap();
    config.warm_keys.push(ws("b")).unwrap();
    let mut c = cache::<16>(config);
    c.insert(t(0), ws("a"), resp(100));
    c.insert(t(0), ws("b"), resp(50));
    assert_eq!(c.poll_timeout(), Some(t(40)));
    c.handle_timeout(t(40));
    assert_eq!(c.poll_timeout(), Some(t(80)));
    assert_eq!(c.poll_refresh(t(40)), Some(ws("b")));
    assert_eq!(c.poll_timeout(), Some(t(50)));
}

#[test]
fn no_warm_keys_no_timeout() {
    let mut c = default_cache();
    c.insert(t(0), ws("a"), resp(100));
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t(1_000));
    assert_eq!(c.poll_refresh(t(1_000)), None);
}

// ---------------------------------------------------------------- config

#[test]
fn config_defaults_are_documented_values() {
    let c = CacheConfig::default();
    assert_eq!(c.min_ttl, Duration::from_secs(1));
    assert_eq!(c.max_ttl, Duration::from_secs(3600));
    assert_eq!(c.refresh_ahead_percent, 80);
    assert_eq!(c.stale_grace, Duration::from_secs(600));
    assert_eq!(c.refresh_timeout, Duration::from_secs(10));
    assert_eq!(c.refresh_retry, Duration::from_secs(5));
    assert!(c.warm_keys.is_empty());
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn bad_config_is_a_typed_error_naming_the_field() {
    let out_of_range = |field: &'static str, expected: &'static str| ValidationError {
        field,
        reason: Reason::OutOfRange { expected },
    };
    let check = |config: CacheConfig, expected: ValidationError, words: &[&str]| {
        let err = Cache::<ProxyResponse, 16>::new(config).unwrap_err();
        assert_eq!(err, expected);
        let msg = err.to_string();
        for w in words {
            assert!(msg.contains(w), "{msg:?} lacks {w:?}");
        }
    };
    check(
        CacheConfig {
            min_ttl: Duration::from_secs(61),
            max_ttl: Duration::from_secs(60),
            ..CacheConfig::default()
        },
        out_of_range("min_ttl", "at most max_ttl"),
        &["min_ttl", "max_ttl"],
    );
    check(
        CacheConfig {
            min_ttl: Duration::from_ticks(0),
            max_ttl: Duration::from_ticks(0),
            ..CacheConfig::default()
        },
        out_of_range("max_ttl", "a duration above zero"),
        &["max_ttl", "above zero"],
    );
    for bad in [0, 101, 255] {
        check(
            CacheConfig {
                refresh_ahead_percent: bad,
                ..CacheConfig::default()
            },
            out_of_range(
                "refresh_ahead_percent",
                "1 to 100 percent (100 turns refresh-ahead off)",
            ),
            &["refresh_ahead_percent", "1 to 100"],
        );
    }
    check(
        CacheConfig {
            refresh_timeout: Duration::from_ticks(0),
            ..CacheConfig::default()
        },
        out_of_range("refresh_timeout", "a duration above zero"),
        &["refresh_timeout"],
    );
    check(
        CacheConfig {
            refresh_retry: Duration::from_ticks(0),
            ..CacheConfig::default()
        },
        out_of_range("refresh_retry", "a duration above zero"),
        &["refresh_retry"],
    );
    let mut config = CacheConfig::default();
    config.warm_keys.push(ws("a")).unwrap();
    config.warm_keys.push(ws("b")).unwrap();
    config.warm_keys.push(ws("a")).unwrap();
    check(
        config,
        ValidationError {
            field: "warm_keys",
            reason: Reason::Duplicate { index: 2 },
        },
        &["warm_keys", "item 2"],
    );
    // It is a std error too.
    let err: Box<dyn std::error::Error> = Box::new(
        Cache::<ProxyResponse, 16>::new(CacheConfig {
            refresh_ahead_percent: 0,
            ..CacheConfig::default()
        })
        .unwrap_err(),
    );
    assert!(err.to_string().contains("refresh_ahead_percent"));
}

// ---------------------------------------------------------------- events & secrets

#[test]
fn undrained_events_drop_the_oldest_and_count() {
    let mut c = cache::<2>(CacheConfig::default());
    let extra = 5;
    for i in 0..(EVENT_QUEUE_LEN + 2 + extra) {
        c.insert(t(0), ws(&format!("k{i}")), resp(300));
    }
    // Every insert after the first two evicted one entry.
    assert_eq!(c.dropped_events(), extra as u64);
    let evs = events(&mut c);
    assert_eq!(evs.len(), EVENT_QUEUE_LEN);
    assert_eq!(
        evs[0],
        Event::Evicted {
            key: ws(&format!("k{extra}"))
        }
    );
}

#[test]
fn debug_output_never_shows_a_password() {
    let mut c = default_cache();
    let k = ws("binance");
    c.insert(
        t(0),
        k.clone(),
        response(100, "p1", "socks5://user:hunter2@proxy:1080"),
    );
    let hit = format!("{:?}", c.get(t(85), &k).unwrap());
    let cache = format!("{c:?}");
    let evs = format!("{:?}", events(&mut c));
    for text in [hit, cache, evs] {
        assert!(!text.contains("hunter2"), "{text}");
    }
    // The connector still gets the credentials.
    let hit = c.get(t(86), &k).unwrap();
    let url = hit.value.proxy_url.as_ref().unwrap();
    assert_eq!(
        url.expose_credentials().to_string(),
        "socks5://user:hunter2@proxy:1080"
    );
}
