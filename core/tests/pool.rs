//! Behaviour of `core::pool`: strategies, region affinity, allow-lists,
//! health, cool-downs, ejection, probes, leases, inventory reload and the
//! status snapshot.

use std::collections::{HashMap, HashSet};

use embassy_time::{Duration, Instant};
use proxy_delegate_core::Reason;
use proxy_delegate_core::model::{
    ConnectionType, ErrorCategory, ExchangeId, FallbackPolicy, FeedbackEvent, ProxyFeedback,
    ProxyId, ProxyRequest, ProxyResponse, ProxyUrl, Region,
};
use proxy_delegate_core::pool::{
    ConnectionTypes, EjectReason, Event, ExchangePolicy, FeedbackError, InventoryError, Pool,
    PoolConfig, ProxySpec, ProxyState, RestoreCause, StrategyKind,
};

type P = Pool<64>;

const T0: Instant = Instant::from_secs(10_000);

fn id(s: &str) -> ProxyId {
    s.parse().unwrap()
}

fn spec(name: &str) -> ProxySpec {
    let n: u32 = name.bytes().map(u32::from).sum();
    let url: ProxyUrl = format!(
        "socks5://user-{name}:secret-{name}@10.0.{}.{}:1080",
        n % 250,
        name.len()
    )
    .parse()
    .unwrap();
    ProxySpec::new(id(name), url)
}

fn region(s: &str) -> Region {
    s.parse().unwrap()
}

fn exchange(s: &str) -> ExchangeId {
    s.parse().unwrap()
}

fn config(strategy: StrategyKind) -> PoolConfig {
    PoolConfig {
        strategy,
        ..PoolConfig::default()
    }
}

fn pool(strategy: StrategyKind, specs: &[ProxySpec]) -> P {
    pool_with(config(strategy), specs)
}

fn pool_with(config: PoolConfig, specs: &[ProxySpec]) -> P {
    let mut p = P::new(config).unwrap();
    p.replace_inventory(T0, specs).unwrap();
    p
}

fn request(exch: &str, client: &str) -> ProxyRequest {
    ProxyRequest::new(
        exchange(exch),
        ConnectionType::Websocket,
        client.parse().unwrap(),
    )
}

fn picked(r: &ProxyResponse) -> Option<String> {
    r.metadata.proxy_id.as_ref().map(|p| p.as_str().to_owned())
}

fn pick(p: &mut P, now: Instant, req: &ProxyRequest) -> Option<String> {
    picked(&p.select(now, req))
}

fn feedback(
    proxy: &str,
    exch: &str,
    event: FeedbackEvent,
    category: Option<ErrorCategory>,
) -> ProxyFeedback {
    ProxyFeedback {
        proxy_id: Some(id(proxy)),
        proxy_url: None,
        exchange_id: exchange(exch),
        connection_type: ConnectionType::Websocket,
        event,
        success: matches!(
            event,
            FeedbackEvent::Success | FeedbackEvent::ConnectStart | FeedbackEvent::Disconnect
        ),
        latency_ms: None,
        error_category: category,
        error_details: None,
        timestamp: "2026-01-01T00:00:00Z".parse().unwrap(),
        client_id: "c".parse().unwrap(),
    }
}

fn fail(p: &mut P, now: Instant, proxy: &str, exch: &str, c: ErrorCategory) {
    p.handle_feedback(now, &feedback(proxy, exch, FeedbackEvent::Failure, Some(c)))
        .unwrap();
}

fn event(p: &mut P, now: Instant, proxy: &str, e: FeedbackEvent) {
    p.handle_feedback(now, &feedback(proxy, "binance", e, None))
        .unwrap();
}

fn events(p: &mut P) -> Vec<Event> {
    std::iter::from_fn(|| p.poll_event()).collect()
}

fn state(p: &P, now: Instant, proxy: &str) -> ProxyState {
    p.proxy(now, &id(proxy)).unwrap().state
}

fn open(p: &P, proxy: &str) -> u32 {
    p.proxy(T0, &id(proxy)).unwrap().open_connections
}

// ------------------------------------------------------------------ strategies

#[test]
fn round_robin_visits_every_proxy_once_per_cycle() {
    let mut p = pool(StrategyKind::RoundRobin, &[spec("a"), spec("b"), spec("c")]);
    let req = request("binance", "c1");
    let picks: Vec<_> = (0..9).map(|_| pick(&mut p, T0, &req).unwrap()).collect();
    for cycle in picks.chunks(3) {
        let set: HashSet<_> = cycle.iter().collect();
        assert_eq!(set.len(), 3, "cycle {cycle:?} repeats a proxy");
    }
    assert_eq!(picks[0..3], picks[3..6]);
    let r = p.select(T0, &req);
    assert_eq!(r.strategy.as_str(), "round_robin");
    // The answer carries the URL with credentials (the client needs them).
    let url = r.proxy_url.unwrap();
    assert!(url.expose_credentials().to_string().contains(":secret-"));
}

#[test]
fn random_is_reproducible_from_the_seed_and_covers_the_pool() {
    let specs = [spec("a"), spec("b"), spec("c"), spec("d")];
    let run = |seed| {
        let mut p = pool_with(
            PoolConfig {
                seed,
                ..config(StrategyKind::Random)
            },
            &specs,
        );
        let req = request("binance", "c1");
        (0..200)
            .map(|_| pick(&mut p, T0, &req).unwrap())
            .collect::<Vec<_>>()
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
    let counts = a.iter().fold(HashMap::new(), |mut m, x| {
        *m.entry(x.clone()).or_insert(0) += 1;
        m
    });
    assert_eq!(counts.len(), 4);
    assert!(counts.values().all(|&c| c > 25), "{counts:?}");
}

#[test]
fn weighted_follows_weight_times_health() {
    let cfg = PoolConfig {
        eject_consecutive_failures: u16::MAX,
        eject_success_rate_gap: 1.0,
        ..config(StrategyKind::Weighted)
    };
    let mut p = pool_with(cfg, &[spec("light"), spec("heavy").with_weight(9)]);
    let req = request("binance", "c1");
    let share = |p: &mut P| {
        (0..2000)
            .filter(|_| pick(p, T0, &req).as_deref() == Some("heavy"))
            .count()
    };
    let heavy = share(&mut p);
    assert!((1650..1950).contains(&heavy), "heavy picked {heavy}/2000");
    // Failures that are the proxy's fault lower its health, and its share.
    for _ in 0..30 {
        fail(&mut p, T0, "heavy", "binance", ErrorCategory::ProxyConnect);
    }
    let health = p.proxy(T0, &id("heavy")).unwrap().health_score;
    assert!(health < 0.1, "health {health}");
    let heavy = share(&mut p);
    assert!(heavy < 1000, "heavy still picked {heavy}/2000");
}

#[test]
fn least_connections_counts_leases_from_feedback() {
    let mut p = pool(
        StrategyKind::LeastConnections,
        &[spec("a"), spec("b"), spec("c")],
    );
    let req = request("binance", "c1");
    event(&mut p, T0, "a", FeedbackEvent::ConnectStart);
    event(&mut p, T0, "a", FeedbackEvent::ConnectStart);
    event(&mut p, T0, "b", FeedbackEvent::ConnectStart);
    for _ in 0..3 {
        assert_eq!(pick(&mut p, T0, &req).as_deref(), Some("c"));
    }
    for _ in 0..3 {
        event(&mut p, T0, "c", FeedbackEvent::ConnectStart);
    }
    assert_eq!(pick(&mut p, T0, &req).as_deref(), Some("b"));
    event(&mut p, T0, "a", FeedbackEvent::Disconnect);
    event(&mut p, T0, "a", FeedbackEvent::Disconnect);
    assert_eq!(open(&p, "a"), 0);
    assert_eq!(pick(&mut p, T0, &req).as_deref(), Some("a"));
    // Equal counts: ties rotate instead of always naming the same proxy.
    let mut q = pool(
        StrategyKind::LeastConnections,
        &[spec("a"), spec("b"), spec("c")],
    );
    let seen: HashSet<_> = (0..3).map(|_| pick(&mut q, T0, &req).unwrap()).collect();
    assert_eq!(seen.len(), 3);
    assert_eq!(q.select(T0, &req).strategy.as_str(), "least_connections");
}

#[test]
fn connection_counts_never_go_negative_and_leases_expire() {
    let cfg = PoolConfig {
        lease_ttl: Duration::from_secs(60),
        ..config(StrategyKind::LeastConnections)
    };
    let mut p = pool_with(cfg, &[spec("a")]);
    for _ in 0..3 {
        event(&mut p, T0, "a", FeedbackEvent::Disconnect);
    }
    assert_eq!(open(&p, "a"), 0);
    event(&mut p, T0, "a", FeedbackEvent::ConnectStart);
    event(&mut p, T0, "a", FeedbackEvent::ConnectStart);
    assert_eq!(open(&p, "a"), 2);
    // A failed connection is not open.
    fail(&mut p, T0, "a", "binance", ErrorCategory::TargetTls);
    assert_eq!(open(&p, "a"), 1);
    // The client never reports the end: the lease runs out.
    let when = p.poll_timeout().unwrap();
    assert_eq!(when, T0 + Duration::from_secs(60));
    p.handle_timeout(when - Duration::from_secs(1));
    assert_eq!(open(&p, "a"), 1);
    p.handle_timeout(when);
    assert_eq!(open(&p, "a"), 0);
    assert!(events(&mut p).contains(&Event::LeasesExpired {
        proxy: id("a"),
        count: 1
    }));
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn connection_limit_makes_a_proxy_unavailable() {
    let mut p = pool(
        StrategyKind::RoundRobin,
        &[spec("a").with_max_connections(1), spec("b")],
    );
    let req = request("binance", "c1");
    event(&mut p, T0, "a", FeedbackEvent::ConnectStart);
    for _ in 0..4 {
        assert_eq!(pick(&mut p, T0, &req).as_deref(), Some("b"));
    }
    event(&mut p, T0, "a", FeedbackEvent::Disconnect);
    let seen: HashSet<_> = (0..2).map(|_| pick(&mut p, T0, &req).unwrap()).collect();
    assert!(seen.contains("a"));
}

#[test]
fn sticky_keeps_a_client_on_its_proxy_across_inventory_changes() {
    let names: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
    let specs: Vec<_> = names.iter().map(|n| spec(n)).collect();
    let cfg = PoolConfig {
        sticky_ttl: Duration::from_secs(60),
        ..config(StrategyKind::Sticky)
    };
    let mut p = pool_with(cfg, &specs);
    let clients: Vec<String> = (0..200).map(|i| format!("client-{i}")).collect();
    let before: Vec<String> = clients
        .iter()
        .map(|c| pick(&mut p, T0, &request("binance", c)).unwrap())
        .collect();
    // Stable within the TTL, and spread over the pool.
    for (c, b) in clients.iter().zip(&before) {
        assert_eq!(&pick(&mut p, T0, &request("binance", c)).unwrap(), b);
    }
    assert!(before.iter().collect::<HashSet<_>>().len() >= 8);
    // A different exchange is a different key.
    let other: Vec<String> = clients
        .iter()
        .map(|c| pick(&mut p, T0, &request("kraken", c)).unwrap())
        .collect();
    assert_ne!(before, other);

    // Drop p0, add five proxies, and let every sticky entry expire: a client
    // moves only if its proxy is gone or to one of the new proxies.
    let later = T0 + Duration::from_secs(120);
    let mut new_specs: Vec<_> = specs[1..].to_vec();
    new_specs.extend((10..15).map(|i| spec(&format!("p{i}"))));
    p.replace_inventory(later, &new_specs).unwrap();
    let mut moved_to_new = 0;
    for (c, b) in clients.iter().zip(&before) {
        let now = pick(&mut p, later, &request("binance", c)).unwrap();
        let is_new = (10..15).any(|i| now == format!("p{i}"));
        if b == "p0" {
            assert_ne!(now, "p0");
        } else if &now != b {
            assert!(is_new, "{c} moved from {b} to old proxy {now}");
        }
        moved_to_new += usize::from(is_new);
    }
    assert!(moved_to_new > 20 && moved_to_new < 120, "{moved_to_new}");
    assert_eq!(
        p.select(later, &request("binance", "x")).strategy.as_str(),
        "sticky"
    );
}

#[test]
fn sticky_choice_moves_when_its_proxy_is_ejected() {
    let cfg = PoolConfig {
        eject_consecutive_failures: 1,
        ..config(StrategyKind::Sticky)
    };
    let mut p = pool_with(cfg, &[spec("a"), spec("b"), spec("c"), spec("d")]);
    let req = request("binance", "client-1");
    let first = pick(&mut p, T0, &req).unwrap();
    fail(&mut p, T0, &first, "binance", ErrorCategory::ProxyAuth);
    assert_eq!(state(&p, T0, &first), ProxyState::Ejected);
    let second = pick(&mut p, T0, &req).unwrap();
    assert_ne!(first, second);
    assert_eq!(pick(&mut p, T0, &req).unwrap(), second);
}

// ------------------------------------------------------------------ eligibility

#[test]
fn region_affinity_prefers_the_requested_region_then_any() {
    let mut p = pool(
        StrategyKind::RoundRobin,
        &[
            spec("us1").with_region(region("us-east-1")),
            spec("eu1").with_region(region("eu-west-1")),
            spec("eu2").with_region(region("eu-west-1")),
            spec("us2").with_region(region("us-east-1")),
        ],
    );
    let mut req = request("binance", "c1");
    req.region = Some(region("eu-west-1"));
    for _ in 0..6 {
        let r = p.select(T0, &req);
        assert!(picked(&r).unwrap().starts_with("eu"));
        assert_eq!(r.metadata.region, Some(region("eu-west-1")));
    }
    let specs = vec![
        spec("us1").with_region(region("us-east-1")),
        spec("eu1")
            .with_region(region("eu-west-1"))
            .with_enabled(false),
        spec("eu2")
            .with_region(region("eu-west-1"))
            .with_enabled(false),
    ];
    p.replace_inventory(T0, &specs).unwrap();
    let r = p.select(T0, &req);
    assert_eq!(picked(&r).as_deref(), Some("us1"));
    assert_eq!(r.metadata.region, Some(region("us-east-1")));
    // A region nobody has: any proxy.
    req.region = Some(region("ap-south-1"));
    assert_eq!(pick(&mut p, T0, &req).as_deref(), Some("us1"));
}

#[test]
fn allow_lists_and_connection_types_are_respected() {
    let mut p = pool(
        StrategyKind::RoundRobin,
        &[
            spec("binance-only").with_exchange(exchange("binance")),
            spec("http-only").with_connection_types(ConnectionTypes::only(ConnectionType::Http)),
        ],
    );
    let ws_kraken = request("kraken", "c1");
    for _ in 0..4 {
        // kraken: not on binance-only's list; websocket: not for http-only.
        let r = p.select(T0, &ws_kraken);
        assert_eq!(r.proxy_url, None);
    }
    let mut http_kraken = ws_kraken.clone();
    http_kraken.connection_type = ConnectionType::Http;
    for _ in 0..4 {
        assert_eq!(pick(&mut p, T0, &http_kraken).as_deref(), Some("http-only"));
    }
    let ws_binance = request("binance", "c1");
    for _ in 0..4 {
        assert_eq!(
            pick(&mut p, T0, &ws_binance).as_deref(),
            Some("binance-only")
        );
    }
}

#[test]
fn disabled_proxies_are_never_chosen() {
    let mut p = pool(
        StrategyKind::Random,
        &[spec("on"), spec("off").with_enabled(false)],
    );
    let req = request("binance", "c1");
    for _ in 0..50 {
        assert_eq!(pick(&mut p, T0, &req).as_deref(), Some("on"));
    }
    assert_eq!(state(&p, T0, "off"), ProxyState::Disabled);
}

#[test]
fn nothing_eligible_answers_without_proxy_and_with_the_exchange_fallback_policy() {
    let mut cfg = config(StrategyKind::RoundRobin);
    cfg.fallback_policy = FallbackPolicy::DirectConnection;
    let mut binance = ExchangePolicy::new(exchange("binance"), FallbackPolicy::Fail);
    binance.ttl = Some(proxy_delegate_core::model::TtlSeconds::new(42).unwrap());
    cfg.exchange_policies.push(binance).unwrap();
    let mut p = pool_with(cfg, &[spec("a").with_exchange(exchange("okx"))]);
    let r = p.select(T0, &request("binance", "c1"));
    assert_eq!(r.proxy_url, None);
    assert_eq!(r.fallback_policy, FallbackPolicy::Fail);
    assert_eq!(r.ttl_seconds.get(), 42);
    assert_eq!(r.metadata.proxy_id, None);
    let r = p.select(T0, &request("kraken", "c1"));
    assert_eq!(r.proxy_url, None);
    assert_eq!(r.fallback_policy, FallbackPolicy::DirectConnection);
    assert_eq!(r.ttl_seconds.get(), 300);
    // With a proxy, the answer still carries the exchange's policy.
    let r = p.select(T0, &request("okx", "c1"));
    assert_eq!(picked(&r).as_deref(), Some("a"));
    assert_eq!(r.fallback_policy, FallbackPolicy::DirectConnection);
}

#[test]
fn exchange_policy_can_choose_its_own_strategy() {
    let mut cfg = config(StrategyKind::RoundRobin);
    let mut pol = ExchangePolicy::new(exchange("binance"), FallbackPolicy::EmbeddedFallback);
    pol.strategy = Some(StrategyKind::Sticky);
    cfg.exchange_policies.push(pol).unwrap();
    let mut p = pool_with(cfg, &[spec("a"), spec("b")]);
    assert_eq!(
        p.select(T0, &request("binance", "c")).strategy.as_str(),
        "sticky"
    );
    assert_eq!(
        p.select(T0, &request("kraken", "c")).strategy.as_str(),
        "round_robin"
    );
}

// ------------------------------------------------------------------ health and cool-downs

#[test]
fn geo_block_bars_the_proxy_and_its_region_for_that_exchange_only() {
    let mut p = pool(
        StrategyKind::RoundRobin,
        &[
            spec("us1").with_region(region("us-east-1")),
            spec("us2").with_region(region("us-east-1")),
            spec("eu1").with_region(region("eu-west-1")),
        ],
    );
    fail(&mut p, T0, "us1", "binance", ErrorCategory::GeoBlocked);
    let evs = events(&mut p);
    assert!(evs.iter().any(|e| matches!(e,
        Event::CooledDown { proxy, category: ErrorCategory::GeoBlocked, region: Some(r), .. }
            if proxy == &id("us1") && r == &region("us-east-1"))));
    assert_eq!(state(&p, T0, "us1"), ProxyState::CoolingDown);
    // Health is not touched by a geo-block.
    assert_eq!(p.proxy(T0, &id("us1")).unwrap().health_score, 1.0);
    let mut binance_us = request("binance", "c1");
    binance_us.region = Some(region("us-east-1"));
    for _ in 0..6 {
        // us-east-1 is blocked for binance: us2 is skipped too.
        assert_eq!(pick(&mut p, T0, &binance_us).as_deref(), Some("eu1"));
    }
    let kraken: HashSet<_> = (0..6)
        .map(|_| pick(&mut p, T0, &request("kraken", "c1")).unwrap())
        .collect();
    assert!(kraken.contains("us1") && kraken.contains("us2"));
    // The bar ends after the cool-down.
    let end = T0 + p.config().geo_block_cooldown;
    assert_eq!(p.poll_timeout(), Some(end));
    p.handle_timeout(end);
    assert_eq!(state(&p, end, "us1"), ProxyState::Active);
    assert!(
        (0..6)
            .map(|_| pick(&mut p, end, &binance_us).unwrap())
            .any(|x| x == "us1")
    );
}

#[test]
fn rate_limit_cools_the_proxy_down_for_that_exchange() {
    let mut p = pool(StrategyKind::RoundRobin, &[spec("a"), spec("b")]);
    fail(&mut p, T0, "a", "binance", ErrorCategory::RateLimited);
    let req = request("binance", "c1");
    for _ in 0..4 {
        assert_eq!(pick(&mut p, T0, &req).as_deref(), Some("b"));
    }
    let kraken: HashSet<_> = (0..4)
        .map(|_| pick(&mut p, T0, &request("kraken", "c1")).unwrap())
        .collect();
    assert_eq!(kraken.len(), 2);
    let end = T0 + Duration::from_secs(60);
    assert_eq!(p.poll_timeout(), Some(end));
    let seen: HashSet<_> = (0..4).map(|_| pick(&mut p, end, &req).unwrap()).collect();
    assert_eq!(seen.len(), 2);
}

#[test]
fn target_failures_do_not_count_against_the_proxy() {
    let cfg = PoolConfig {
        eject_consecutive_failures: 3,
        ..config(StrategyKind::RoundRobin)
    };
    let mut p = pool_with(cfg, &[spec("a"), spec("b")]);
    for _ in 0..10 {
        fail(&mut p, T0, "a", "binance", ErrorCategory::TargetHttp5xx);
        fail(&mut p, T0, "a", "binance", ErrorCategory::TargetTls);
        fail(&mut p, T0, "a", "binance", ErrorCategory::Other);
    }
    let s = p.proxy(T0, &id("a")).unwrap();
    assert_eq!(s.state, ProxyState::Active);
    assert_eq!(s.health_score, 1.0);
    assert_eq!(s.recent_failures.get(ErrorCategory::TargetHttp5xx), 10);
    assert_eq!(s.recent_failures.get(ErrorCategory::TargetTls), 10);
    assert_eq!(s.recent_failures.total(), 30);
    drop(s);
    assert!(events(&mut p).is_empty());
    // Recent failures age out after two windows.
    let later = T0 + p.config().failure_window * 2;
    assert_eq!(p.proxy(later, &id("a")).unwrap().recent_failures.total(), 0);
}

#[test]
fn latency_above_the_target_lowers_health() {
    let mut p = pool(StrategyKind::RoundRobin, &[spec("a")]);
    let mut ok = feedback("a", "binance", FeedbackEvent::Success, None);
    ok.latency_ms = Some(500);
    p.handle_feedback(T0, &ok).unwrap();
    let s = p.proxy(T0, &id("a")).unwrap();
    assert_eq!(s.latency_ms, Some(500.0));
    assert!((s.health_score - 0.5).abs() < 1e-4, "{}", s.health_score);
    drop(s);
    let r = p.select(T0, &request("binance", "c"));
    assert!((r.metadata.health_score.unwrap().get() - 0.5).abs() < 1e-4);
}

#[test]
fn consecutive_failures_eject_for_base_times_count_capped() {
    let cfg = PoolConfig {
        eject_consecutive_failures: 3,
        eject_base: Duration::from_secs(30),
        eject_max: Duration::from_secs(75),
        ..config(StrategyKind::RoundRobin)
    };
    let mut p = pool_with(cfg, &[spec("a"), spec("b")]);
    let req = request("binance", "c1");
    let mut now = T0;
    for (n, expected) in [(1u32, 30u64), (2, 60), (3, 75), (4, 75)] {
        for _ in 0..2 {
            fail(&mut p, now, "a", "binance", ErrorCategory::Timeout);
        }
        assert_eq!(state(&p, now, "a"), ProxyState::Active);
        fail(&mut p, now, "a", "binance", ErrorCategory::ProxyConnect);
        assert_eq!(state(&p, now, "a"), ProxyState::Ejected);
        let until = now + Duration::from_secs(expected);
        assert_eq!(
            events(&mut p),
            vec![Event::Ejected {
                proxy: id("a"),
                reason: EjectReason::ConsecutiveFailures,
                ejections: n,
                until
            }]
        );
        for _ in 0..4 {
            assert_eq!(pick(&mut p, now, &req).as_deref(), Some("b"));
        }
        assert_eq!(p.poll_timeout(), Some(until));
        p.handle_timeout(until);
        assert_eq!(
            events(&mut p),
            vec![Event::Restored {
                proxy: id("a"),
                cause: RestoreCause::Expired
            }]
        );
        assert_eq!(state(&p, until, "a"), ProxyState::Active);
        now = until;
    }
}

#[test]
fn a_timeout_event_without_category_counts_as_a_proxy_fault() {
    let cfg = PoolConfig {
        eject_consecutive_failures: 2,
        ..config(StrategyKind::RoundRobin)
    };
    let mut p = pool_with(cfg, &[spec("a"), spec("b")]);
    event(&mut p, T0, "a", FeedbackEvent::Timeout);
    event(&mut p, T0, "a", FeedbackEvent::Timeout);
    assert_eq!(state(&p, T0, "a"), ProxyState::Ejected);
    let _ = events(&mut p);
    // An uncategorised failure (no details) counts too: "b" would be
    // ejected, but the pool's share (one of two) is used up.
    event(&mut p, T0, "b", FeedbackEvent::Failure);
    event(&mut p, T0, "b", FeedbackEvent::Failure);
    assert_eq!(state(&p, T0, "b"), ProxyState::Active);
    assert!(matches!(
        events(&mut p).as_slice(),
        [Event::EjectionSuppressed {
            reason: EjectReason::ConsecutiveFailures,
            ..
        }]
    ));
    let b = p.proxy(T0, &id("b")).unwrap();
    assert_eq!(b.recent_failures.get(ErrorCategory::Other), 2);
    assert!(b.success_rate < 1.0);
}

#[test]
fn ejection_never_exceeds_its_share_of_the_pool() {
    let cfg = PoolConfig {
        eject_consecutive_failures: 1,
        max_ejected_percent: 50,
        ..config(StrategyKind::RoundRobin)
    };
    let names = ["a", "b", "c", "d", "e"];
    let mut p = pool_with(cfg, &names.map(spec));
    for n in names {
        fail(&mut p, T0, n, "binance", ErrorCategory::ProxyConnect);
    }
    let stats = p.stats();
    assert_eq!(stats.max_ejected, 2);
    assert_eq!(stats.ejected, 2);
    let ejected = p
        .proxies(T0)
        .filter(|s| s.state == ProxyState::Ejected)
        .count();
    assert_eq!(ejected, 2);
    let suppressed = events(&mut p)
        .into_iter()
        .filter(|e| matches!(e, Event::EjectionSuppressed { .. }))
        .count();
    assert_eq!(suppressed, 3);
    // Shrinking the inventory restores ejected proxies beyond the share.
    p.replace_inventory(T0, &[spec("a"), spec("b")]).unwrap();
    assert!(p.stats().ejected <= 1);
}

#[test]
fn a_success_rate_far_below_the_pool_ejects() {
    let cfg = PoolConfig {
        eject_consecutive_failures: 100,
        eject_min_samples: 10,
        eject_success_rate_gap: 0.3,
        ..config(StrategyKind::RoundRobin)
    };
    let names = ["bad", "g1", "g2", "g3"];
    let mut p = pool_with(cfg, &names.map(spec));
    for _ in 0..12 {
        for g in ["g1", "g2", "g3"] {
            event(&mut p, T0, g, FeedbackEvent::Success);
        }
    }
    // Failing two in three: never a long streak, but a low rate.
    let mut ejected = false;
    for i in 0..60 {
        if i % 3 == 0 {
            event(&mut p, T0, "bad", FeedbackEvent::Success);
        } else {
            fail(&mut p, T0, "bad", "binance", ErrorCategory::TunnelRefused);
        }
        if state(&p, T0, "bad") == ProxyState::Ejected {
            ejected = true;
            break;
        }
    }
    assert!(ejected);
    assert!(events(&mut p).iter().any(|e| matches!(
        e,
        Event::Ejected {
            reason: EjectReason::LowSuccessRate,
            ..
        }
    )));
}

#[test]
fn probes_bring_an_ejected_proxy_back_early() {
    let cfg = PoolConfig {
        eject_consecutive_failures: 1,
        eject_base: Duration::from_secs(300),
        eject_max: Duration::from_secs(300),
        probe_interval: Some(Duration::from_secs(5)),
        ..config(StrategyKind::RoundRobin)
    };
    let mut p = pool_with(cfg, &[spec("a"), spec("b")]);
    assert_eq!(p.poll_transmit(T0), None);
    fail(&mut p, T0, "a", "binance", ErrorCategory::ProxyConnect);
    let first = T0 + Duration::from_secs(5);
    assert_eq!(p.poll_timeout(), Some(first));
    assert_eq!(p.poll_transmit(first - Duration::from_secs(1)), None);
    let probe = p.poll_transmit(first).unwrap();
    // The probe targets the proxy itself, without credentials.
    assert_eq!(probe.target.to_string(), "socks5://10.0.97.1:1080");
    assert!(!probe.target.has_credentials());
    assert_eq!(p.poll_transmit(first), None);
    // Unreachable: still ejected, probed again later.
    assert!(!p.handle_probe_result(first, probe.token, false));
    assert_eq!(state(&p, first, "a"), ProxyState::Ejected);
    let second = first + Duration::from_secs(5);
    assert_eq!(p.poll_timeout(), Some(second));
    let probe = p.poll_transmit(second).unwrap();
    assert!(p.handle_probe_result(second, probe.token, true));
    assert_eq!(state(&p, second, "a"), ProxyState::Active);
    assert!(events(&mut p).contains(&Event::Restored {
        proxy: id("a"),
        cause: RestoreCause::Probe
    }));
    // A stale token changes nothing.
    assert!(!p.handle_probe_result(second, probe.token, true));
    assert_eq!(p.poll_timeout(), None);
}

// ------------------------------------------------------------------ feedback and inventory

#[test]
fn feedback_finds_the_proxy_by_url_and_reports_unknown_ones() {
    let mut p = pool(StrategyKind::LeastConnections, &[spec("a"), spec("b")]);
    let mut fb = feedback("a", "binance", FeedbackEvent::ConnectStart, None);
    fb.proxy_id = None;
    // Credentials in the URL are irrelevant: host, port and scheme identify it.
    fb.proxy_url = Some("socks5://someone:else@10.0.97.1:1080".parse().unwrap());
    p.handle_feedback(T0, &fb).unwrap();
    assert_eq!(open(&p, "a"), 1);
    fb.proxy_url = Some("socks5://10.0.97.1:1081".parse().unwrap());
    assert_eq!(p.handle_feedback(T0, &fb), Err(FeedbackError::UnknownProxy));
    fb.proxy_url = None;
    assert_eq!(p.handle_feedback(T0, &fb), Err(FeedbackError::NoProxy));
    let mut fb = feedback("zzz", "binance", FeedbackEvent::Success, None);
    assert_eq!(p.handle_feedback(T0, &fb), Err(FeedbackError::UnknownProxy));
    assert!(FeedbackError::UnknownProxy.to_string().contains("proxy_id"));
    fb.proxy_id = None;
    assert_eq!(p.handle_feedback(T0, &fb), Err(FeedbackError::NoProxy));
}

#[test]
fn reload_keeps_the_state_of_proxies_that_remain() {
    let cfg = PoolConfig {
        eject_consecutive_failures: 1,
        ..config(StrategyKind::RoundRobin)
    };
    let mut p = pool_with(cfg, &[spec("a"), spec("b"), spec("c")]);
    event(&mut p, T0, "a", FeedbackEvent::ConnectStart);
    event(&mut p, T0, "a", FeedbackEvent::ConnectStart);
    fail(&mut p, T0, "b", "binance", ErrorCategory::ProxyConnect);
    fail(&mut p, T0, "c", "binance", ErrorCategory::RateLimited);
    assert_eq!(state(&p, T0, "b"), ProxyState::Ejected);
    let change = p
        .replace_inventory(
            T0,
            &[
                spec("a").with_weight(5),
                spec("b"),
                spec("d").with_region(region("eu-west-1")),
                spec("e"),
            ],
        )
        .unwrap();
    assert_eq!((change.added, change.kept, change.removed), (2, 2, 1));
    let a = p.proxy(T0, &id("a")).unwrap();
    assert_eq!(a.open_connections, 2);
    assert_eq!(a.weight, 5);
    drop(a);
    assert_eq!(state(&p, T0, "b"), ProxyState::Ejected);
    assert!(p.proxy(T0, &id("c")).is_none());
    assert_eq!(
        p.proxy(T0, &id("d")).unwrap().regions.as_slice(),
        &[&region("eu-west-1")]
    );
    let ids: Vec<_> = p.proxies(T0).map(|s| s.id.as_str().to_owned()).collect();
    assert_eq!(ids.len(), 4);
    // Feedback for the removed proxy is reported, the new ones are chosen.
    assert_eq!(
        p.handle_feedback(T0, &feedback("c", "binance", FeedbackEvent::Success, None)),
        Err(FeedbackError::UnknownProxy)
    );
    let req = request("binance", "c1");
    let seen: HashSet<_> = (0..6).map(|_| pick(&mut p, T0, &req).unwrap()).collect();
    assert_eq!(
        seen,
        ["a", "d", "e"].map(String::from).into_iter().collect()
    );
    // The ejection of b still ends on time.
    let end = T0 + Duration::from_secs(30);
    p.handle_timeout(end);
    assert_eq!(state(&p, end, "b"), ProxyState::Active);
}

#[test]
fn a_refused_inventory_changes_nothing() {
    let mut p = P::new(PoolConfig::default()).unwrap();
    p.replace_inventory(T0, &[spec("a")]).unwrap();
    let err = p
        .replace_inventory(T0, &[spec("b"), spec("x"), spec("b")])
        .unwrap_err();
    assert_eq!(err, InventoryError::DuplicateId { id: id("b") });
    assert!(err.to_string().contains("\"b\" appears more than once"));
    let err = p
        .replace_inventory(T0, &[spec("b").with_weight(0)])
        .unwrap_err();
    assert!(matches!(
        err,
        InventoryError::InvalidProxy {
            field: "weight",
            ..
        }
    ));
    let many: Vec<_> = (0..65).map(|i| spec(&format!("p{i}"))).collect();
    let err = p.replace_inventory(T0, &many).unwrap_err();
    assert_eq!(err, InventoryError::TooManyProxies { len: 65, max: 64 });
    // More distinct regions than a pool tracks: refused before anything changes.
    let regions: Vec<_> = (0..33)
        .map(|i| spec(&format!("r{i}")).with_region(region(&format!("region-{i}"))))
        .collect();
    let err = p.replace_inventory(T0, &regions).unwrap_err();
    assert_eq!(err, InventoryError::TooManyRegions { max: 32 });
    p.replace_inventory(T0, &regions[..32]).unwrap();
    let err = p.replace_inventory(T0, &regions[1..]).unwrap_err();
    assert_eq!(err, InventoryError::TooManyRegions { max: 32 });
    p.replace_inventory(T0, &[spec("a")]).unwrap();
    let ids: Vec<_> = p.proxies(T0).map(|s| s.id.as_str().to_owned()).collect();
    assert_eq!(ids, ["a"]);
    // The error names the proxy but never its URL or password.
    let err = p
        .replace_inventory(T0, &[spec("b").with_weight(0)])
        .unwrap_err();
    assert!(!err.to_string().contains("secret"));
}

#[test]
fn bad_configuration_is_refused_with_the_field_named() {
    let cases: [(PoolConfig, &str); 4] = [
        (
            PoolConfig {
                ewma_alpha: 0.0,
                ..PoolConfig::default()
            },
            "ewma_alpha",
        ),
        (
            PoolConfig {
                max_ejected_percent: 101,
                ..PoolConfig::default()
            },
            "max_ejected_percent",
        ),
        (
            PoolConfig {
                ttl_seconds: 0,
                ..PoolConfig::default()
            },
            "ttl_seconds",
        ),
        (
            PoolConfig {
                probe_interval: Some(Duration::from_ticks(0)),
                ..PoolConfig::default()
            },
            "probe_interval",
        ),
    ];
    for (cfg, field) in cases {
        let err = P::new(cfg).unwrap_err();
        assert_eq!(err.field, field);
        assert!(matches!(err.reason, Reason::OutOfRange { .. }), "{err}");
        assert!(err.to_string().contains(field));
    }
    assert_eq!(StrategyKind::parse("weighted"), Ok(StrategyKind::Weighted));
    let err = StrategyKind::parse("fastest").unwrap_err();
    assert_eq!(err.field, "strategy");
    assert!(matches!(err.reason, Reason::UnknownValue { .. }), "{err}");
}

#[test]
fn no_secret_reaches_debug_events_or_the_snapshot() {
    let cfg = PoolConfig {
        eject_consecutive_failures: 1,
        ..config(StrategyKind::RoundRobin)
    };
    let mut p = pool_with(cfg, &[spec("a"), spec("b")]);
    fail(&mut p, T0, "a", "binance", ErrorCategory::ProxyAuth);
    fail(&mut p, T0, "b", "binance", ErrorCategory::GeoBlocked);
    let mut text = format!("{p:?}");
    for e in events(&mut p) {
        text += &format!("{e:?}");
    }
    for s in p.proxies(T0) {
        text += &format!("{s:?} {}", s.url);
        assert!(!s.url.has_credentials());
    }
    text += &format!("{:?}", p.select(T0, &request("kraken", "c")));
    assert!(text.contains("ProxyUrl"));
    assert!(!text.contains("secret-"), "{text}");
}

#[test]
fn per_proxy_size_stays_compact() {
    let per_proxy = std::mem::size_of::<Pool<1024>>() / 1024;
    // The URL with its bounded credentials is most of it; see the module docs.
    assert!(per_proxy < 1300, "{per_proxy} bytes per proxy");
}

#[test]
fn snapshot_follows_the_inventory_order_across_reloads() {
    let ids = |p: &P| -> Vec<String> { p.proxies(T0).map(|s| s.id.to_string()).collect() };
    let mut p = pool(StrategyKind::RoundRobin, &[spec("a"), spec("b"), spec("c")]);
    assert_eq!(ids(&p), ["a", "b", "c"]);
    // "a" leaves; "d", listed first, takes its freed slot.
    p.replace_inventory(T0, &[spec("d"), spec("c"), spec("b")])
        .unwrap();
    assert_eq!(ids(&p), ["d", "c", "b"]);
    p.replace_inventory(T0, &[]).unwrap();
    assert!(ids(&p).is_empty());
}
