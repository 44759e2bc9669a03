//! The cache against a reference model: a std `HashMap` of entries with
//! timestamps, a `Vec` for recency order and a `VecDeque` of scheduled
//! refreshes. Random operation sequences must give the same answers, the same
//! events and the same length, never an expired entry as fresh, and never more
//! than `N` entries.

use std::collections::{HashMap, VecDeque};

use embassy_time::{Duration, Instant};
use proptest::prelude::*;
use proxy_delegate_core::cache::{
    Cache, CacheConfig, CacheKey, CacheValue, Event, Freshness, Hit, InvalidationScope,
};
use proxy_delegate_core::model::{ConnectionType, ExchangeId, ProxyId, ProxyUrl, Region};

// ---------------------------------------------------------------- values

#[derive(Debug, Clone, PartialEq)]
struct Value {
    serial: u32,
    ttl_ms: u64,
    proxy_id: Option<ProxyId>,
    proxy_url: Option<ProxyUrl>,
}

impl CacheValue for Value {
    fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms)
    }
    fn names_proxy(&self, proxy_id: Option<&ProxyId>, proxy_url: Option<&ProxyUrl>) -> bool {
        let by_id = proxy_id.is_some_and(|id| self.proxy_id.as_ref() == Some(id));
        let by_url = proxy_url.is_some_and(|url| {
            self.proxy_url
                .as_ref()
                .is_some_and(|mine| mine.same_proxy(url))
        });
        by_id || by_url
    }
}

const EXCHANGES: [&str; 3] = ["binance", "coinbase", "kraken"];
const PROXIES: usize = 4;

fn key_of(i: usize) -> CacheKey {
    let exchange = EXCHANGES[i % 3];
    let ct = [ConnectionType::Http, ConnectionType::Websocket][(i / 3) % 2];
    let region = (i / 6 % 2 == 1).then(|| Region::new("us-east-1").unwrap());
    CacheKey::new(ExchangeId::new(exchange).unwrap(), ct, region)
}
const KEYS: usize = 12;

fn proxy_id(p: usize) -> ProxyId {
    ProxyId::new(&format!("proxy-{p}")).unwrap()
}

/// The proxy URL as a response carries it (credentials, mixed case) or as
/// feedback carries it (no credentials, lower case).
fn proxy_url(p: usize, as_in_response: bool) -> ProxyUrl {
    let text = if as_in_response {
        format!("socks5://user:pw{p}@Proxy-{p}.Example:10{p}0")
    } else {
        format!("socks5://proxy-{p}.example:10{p}0")
    };
    ProxyUrl::parse(&text).unwrap()
}

/// Model's own notion of "same proxy": the credential-free URL, lower-cased.
fn url_identity(u: &ProxyUrl) -> String {
    u.without_credentials().to_string().to_ascii_lowercase()
}

// ---------------------------------------------------------------- operations

#[derive(Debug, Clone)]
enum Op {
    Insert {
        key: usize,
        ttl_ms: u64,
        proxy: Option<usize>,
        with_url: bool,
    },
    Get(usize),
    GetStale(usize),
    Advance(u64),
    Invalidate(usize),
    InvalidateExchange(usize),
    InvalidateProxy {
        id: Option<usize>,
        url: Option<usize>,
    },
    InvalidateAll,
    PollRefresh,
    RefreshFailed(usize),
    HandleTimeout,
    /// Jump to `poll_timeout` (if any), then handle it.
    RunTimer,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS;
    prop_oneof![
        6 => (key.clone(), 1u64..200_000, proptest::option::of(0..PROXIES), any::<bool>())
            .prop_map(|(key, ttl_ms, proxy, with_url)| Op::Insert { key, ttl_ms, proxy, with_url }),
        6 => key.clone().prop_map(Op::Get),
        3 => key.clone().prop_map(Op::GetStale),
        5 => prop_oneof![0u64..2_000, 0u64..120_000].prop_map(Op::Advance),
        1 => key.clone().prop_map(Op::Invalidate),
        1 => (0..3usize).prop_map(Op::InvalidateExchange),
        1 => (proptest::option::of(0..PROXIES), proptest::option::of(0..PROXIES))
            .prop_map(|(id, url)| Op::InvalidateProxy { id, url }),
        1 => Just(Op::InvalidateAll),
        3 => Just(Op::PollRefresh),
        2 => key.clone().prop_map(Op::RefreshFailed),
        1 => Just(Op::HandleTimeout),
        2 => Just(Op::RunTimer),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    config: CacheConfig,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        0u64..5_000,
        1u64..150_000,
        1u8..=100,
        prop_oneof![Just(0u64), 1u64..60_000],
        1u64..20_000,
        1u64..10_000,
        proptest::collection::btree_set(0..KEYS, 0..3),
    )
        .prop_map(|(min, max, pct, grace, timeout, retry, warm)| {
            let mut config = CacheConfig {
                min_ttl: Duration::from_millis(min.min(max)),
                max_ttl: Duration::from_millis(max),
                refresh_ahead_percent: pct,
                stale_grace: Duration::from_millis(grace),
                refresh_timeout: Duration::from_millis(timeout),
                refresh_retry: Duration::from_millis(retry),
                ..CacheConfig::default()
            };
            for k in warm {
                config.warm_keys.push(key_of(k)).unwrap();
            }
            Setup { config }
        })
}

// ---------------------------------------------------------------- the model

/// Times are plain tick counts here, computed with u128 arithmetic.
#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    fresh_until: u64,
    stale_until: u64,
    refresh_not_before: u64,
    queued: bool,
}

#[derive(Debug, Clone)]
struct Warm {
    key: CacheKey,
    queued: bool,
    not_before: u64,
}

#[derive(Debug)]
struct Model {
    cap: usize,
    min_ttl: u64,
    max_ttl: u64,
    percent: u64,
    grace: u64,
    timeout: u64,
    retry: u64,
    entries: HashMap<CacheKey, Entry>,
    /// Most recently used first.
    recency: Vec<CacheKey>,
    pending: VecDeque<CacheKey>,
    warm: Vec<Warm>,
    events: Vec<Event>,
}

#[derive(Debug, PartialEq)]
struct Answer {
    serial: u32,
    freshness: Freshness,
    expires_at: u64,
}

fn add(a: u64, b: u64) -> u64 {
    a.saturating_add(b)
}

impl Model {
    fn new(cap: usize, c: &CacheConfig) -> Self {
        Model {
            cap,
            min_ttl: c.min_ttl.as_ticks(),
            max_ttl: c.max_ttl.as_ticks(),
            percent: u64::from(c.refresh_ahead_percent),
            grace: c.stale_grace.as_ticks(),
            timeout: c.refresh_timeout.as_ticks(),
            retry: c.refresh_retry.as_ticks(),
            entries: HashMap::new(),
            recency: Vec::new(),
            pending: VecDeque::new(),
            warm: c
                .warm_keys
                .iter()
                .map(|k| Warm {
                    key: k.clone(),
                    queued: false,
                    not_before: 0,
                })
                .collect(),
            events: Vec::new(),
        }
    }

    fn warm_mut(&mut self, key: &CacheKey) -> Option<&mut Warm> {
        self.warm.iter_mut().find(|w| w.key == *key)
    }

    fn remove(&mut self, key: &CacheKey) -> bool {
        if self.entries.remove(key).is_none() {
            return false;
        }
        self.recency.retain(|k| k != key);
        self.pending.retain(|k| k != key);
        true
    }

    fn touch(&mut self, key: &CacheKey) {
        self.recency.retain(|k| k != key);
        self.recency.insert(0, key.clone());
    }

    fn lookup(&mut self, now: u64, key: &CacheKey, allow_stale: bool) -> Option<Answer> {
        let e = self.entries.get(key)?;
        if now >= e.stale_until {
            self.remove(key);
            return None;
        }
        let fresh = now < e.fresh_until;
        if !fresh && !allow_stale {
            return None;
        }
        let due = fresh && !e.queued && now >= e.refresh_not_before;
        self.touch(key);
        let e = self.entries.get_mut(key)?;
        if due {
            e.queued = true;
            self.pending.push_back(key.clone());
            self.events.push(Event::RefreshScheduled {
                key: key.clone(),
                warm: false,
            });
        }
        Some(Answer {
            serial: e.value.serial,
            freshness: if fresh {
                Freshness::Fresh
            } else {
                Freshness::Stale
            },
            expires_at: e.fresh_until,
        })
    }

    fn insert(&mut self, now: u64, key: CacheKey, value: Value) {
        let ttl = value.ttl().as_ticks().clamp(self.min_ttl, self.max_ttl);
        let ahead = (u128::from(ttl) * u128::from(self.percent) / 100) as u64;
        let entry = Entry {
            value,
            fresh_until: add(now, ttl),
            stale_until: add(add(now, ttl), self.grace),
            refresh_not_before: add(now, ahead),
            queued: false,
        };
        if let Some(w) = self.warm_mut(&key) {
            w.queued = false;
        }
        if self.entries.contains_key(&key) {
            self.pending.retain(|k| *k != key);
        } else if self.entries.len() >= self.cap {
            let victim = self.recency.last().cloned().unwrap();
            self.remove(&victim);
            self.events.push(Event::Evicted { key: victim });
        }
        self.entries.insert(key.clone(), entry);
        self.touch(&key);
    }

    fn invalidate_if(
        &mut self,
        scope: InvalidationScope,
        pred: impl Fn(&CacheKey, &Value) -> bool,
    ) -> usize {
        let doomed: Vec<CacheKey> = self
            .entries
            .iter()
            .filter(|(k, e)| pred(k, &e.value))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &doomed {
            self.remove(k);
        }
        if !doomed.is_empty() {
            self.events.push(Event::Invalidated {
                scope,
                count: doomed.len(),
            });
        }
        doomed.len()
    }

    fn poll_refresh(&mut self, now: u64) -> Option<CacheKey> {
        let until = add(now, self.timeout);
        if let Some(key) = self.pending.pop_front() {
            let e = self.entries.get_mut(&key).unwrap();
            e.queued = false;
            e.refresh_not_before = until;
            if let Some(w) = self.warm_mut(&key) {
                w.not_before = until;
            }
            return Some(key);
        }
        let w = self.warm.iter_mut().find(|w| w.queued)?;
        w.queued = false;
        w.not_before = until;
        Some(w.key.clone())
    }

    fn refresh_failed(&mut self, now: u64, key: &CacheKey) {
        let at = add(now, self.retry);
        if let Some(e) = self.entries.get_mut(key) {
            e.refresh_not_before = at;
        }
        if let Some(w) = self.warm_mut(key) {
            w.not_before = at;
        }
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.warm
            .iter()
            .filter_map(|w| match self.entries.get(&w.key) {
                Some(e) => (!e.queued).then_some(e.refresh_not_before),
                None => (!w.queued).then_some(w.not_before),
            })
            .min()
    }

    fn handle_timeout(&mut self, now: u64) {
        for i in 0..self.warm.len() {
            let key = self.warm[i].key.clone();
            match self.entries.get_mut(&key) {
                Some(e) => {
                    if !e.queued && now >= e.refresh_not_before {
                        e.queued = true;
                        self.pending.push_back(key.clone());
                        self.events
                            .push(Event::RefreshScheduled { key, warm: true });
                    }
                }
                None => {
                    let w = &mut self.warm[i];
                    if !w.queued && now >= w.not_before {
                        w.queued = true;
                        self.events
                            .push(Event::RefreshScheduled { key, warm: true });
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- the run

fn answer(hit: Option<Hit<'_, Value>>) -> Option<Answer> {
    hit.map(|h| Answer {
        serial: h.value.serial,
        freshness: h.freshness,
        expires_at: h.expires_at.as_ticks(),
    })
}

fn run<const N: usize>(setup: &Setup, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut cache = Cache::<Value, N>::new(setup.config.clone()).unwrap();
    let mut model = Model::new(N, &setup.config);
    let start = Instant::from_secs(100).as_ticks();
    let mut now = start;
    let mut serial = 0u32;

    for (step, op) in ops.iter().enumerate() {
        let at = Instant::from_ticks(now);
        match op.clone() {
            Op::Insert {
                key,
                ttl_ms,
                proxy,
                with_url,
            } => {
                serial += 1;
                let value = Value {
                    serial,
                    ttl_ms,
                    proxy_id: proxy.map(proxy_id),
                    proxy_url: proxy.filter(|_| with_url).map(|p| proxy_url(p, true)),
                };
                cache.insert(at, key_of(key), value.clone());
                model.insert(now, key_of(key), value);
            }
            Op::Get(k) => {
                let got = answer(cache.get(at, &key_of(k)));
                if let Some(a) = &got {
                    prop_assert_eq!(a.freshness, Freshness::Fresh, "get returned stale");
                    prop_assert!(now < a.expires_at, "expired entry served as fresh");
                }
                prop_assert_eq!(
                    got,
                    model.lookup(now, &key_of(k), false),
                    "get, step {}",
                    step
                );
            }
            Op::GetStale(k) => {
                let got = answer(cache.get_stale(at, &key_of(k)));
                if let Some(a) = &got {
                    prop_assert_eq!(a.freshness == Freshness::Fresh, now < a.expires_at);
                }
                prop_assert_eq!(
                    got,
                    model.lookup(now, &key_of(k), true),
                    "get_stale, step {}",
                    step
                );
            }
            Op::Advance(ms) => now += Duration::from_millis(ms).as_ticks(),
            Op::Invalidate(k) => {
                let key = key_of(k);
                let had = model.remove(&key);
                if had {
                    model.events.push(Event::Invalidated {
                        scope: InvalidationScope::Key,
                        count: 1,
                    });
                }
                prop_assert_eq!(cache.invalidate(&key), had);
            }
            Op::InvalidateExchange(x) => {
                let ex = ExchangeId::new(EXCHANGES[x]).unwrap();
                let want =
                    model.invalidate_if(InvalidationScope::Exchange, |k, _| k.exchange_id == ex);
                prop_assert_eq!(cache.invalidate_exchange(&ex), want);
            }
            Op::InvalidateProxy { id, url } => {
                let id = id.map(proxy_id);
                let url = url.map(|p| proxy_url(p, false));
                let want = if id.is_none() && url.is_none() {
                    0
                } else {
                    model.invalidate_if(InvalidationScope::Proxy, |_, v| {
                        (id.is_some() && v.proxy_id == id)
                            || url.as_ref().is_some_and(|u| {
                                v.proxy_url
                                    .as_ref()
                                    .is_some_and(|mine| url_identity(mine) == url_identity(u))
                            })
                    })
                };
                prop_assert_eq!(cache.invalidate_proxy(id.as_ref(), url.as_ref()), want);
            }
            Op::InvalidateAll => {
                let want = model.invalidate_if(InvalidationScope::All, |_, _| true);
                prop_assert_eq!(cache.invalidate_all(), want);
            }
            Op::PollRefresh => {
                prop_assert_eq!(
                    cache.poll_refresh(at),
                    model.poll_refresh(now),
                    "poll_refresh, step {}",
                    step
                );
            }
            Op::RefreshFailed(k) => {
                cache.refresh_failed(at, &key_of(k));
                model.refresh_failed(now, &key_of(k));
            }
            Op::HandleTimeout => {
                cache.handle_timeout(at);
                model.handle_timeout(now);
            }
            Op::RunTimer => {
                if let Some(due) = model.poll_timeout() {
                    now = now.max(due);
                    let at = Instant::from_ticks(now);
                    cache.handle_timeout(at);
                    model.handle_timeout(now);
                }
            }
        }
        let events: Vec<Event> = std::iter::from_fn(|| cache.poll_event()).collect();
        prop_assert_eq!(&events, &model.events, "events, step {} ({:?})", step, op);
        model.events.clear();
        prop_assert_eq!(cache.len(), model.entries.len(), "len, step {}", step);
        prop_assert!(cache.len() <= N);
        for k in (0..KEYS).map(key_of) {
            prop_assert_eq!(
                cache.peek(&k).map(|v| v.serial),
                model.entries.get(&k).map(|e| e.value.serial),
                "peek {}, step {}",
                k,
                step
            );
        }
        prop_assert_eq!(
            cache.poll_timeout().map(|t| t.as_ticks()),
            model.poll_timeout(),
            "poll_timeout, step {}",
            step
        );
        prop_assert_eq!(cache.dropped_events(), 0);
    }
    // Drain: the same refreshes come out in the same order.
    let at = Instant::from_ticks(now);
    loop {
        let got = cache.poll_refresh(at);
        prop_assert_eq!(&got, &model.poll_refresh(now));
        if got.is_none() {
            break;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A small cache: evictions are frequent.
    #[test]
    fn small_cache_matches_model(setup in setup(), ops in proptest::collection::vec(op(), 1..300)) {
        run::<4>(&setup, &ops)?;
    }

    /// A cache larger than the key space: no evictions, expiry and refresh dominate.
    #[test]
    fn roomy_cache_matches_model(setup in setup(), ops in proptest::collection::vec(op(), 1..300)) {
        run::<16>(&setup, &ops)?;
    }
}

/// Many distinct keys through a mid-sized cache, checked against the model's
/// recency order (exercises slot moves inside the table).
#[test]
fn many_keys_evict_in_model_order() {
    let config = CacheConfig::default();
    let mut cache = Cache::<Value, 64>::new(config.clone()).unwrap();
    let mut model = Model::new(64, &config);
    let mut rng = fastrand::Rng::with_seed(7);
    let now = Instant::from_secs(10).as_ticks();
    for serial in 0..20_000u32 {
        let k = CacheKey::new(
            ExchangeId::new(&format!("ex{}", rng.u64(..150))).unwrap(),
            ConnectionType::Http,
            None,
        );
        let value = Value {
            serial,
            ttl_ms: 300_000,
            proxy_id: None,
            proxy_url: None,
        };
        if rng.u8(..3) == 0 {
            let got = answer(cache.get(Instant::from_ticks(now), &k));
            assert_eq!(got, model.lookup(now, &k, false));
        } else if rng.u8(..50) == 0 {
            assert_eq!(cache.invalidate(&k), model.remove(&k));
        } else {
            cache.insert(Instant::from_ticks(now), k.clone(), value.clone());
            model.insert(now, k, value);
        }
        assert_eq!(cache.len(), model.entries.len());
        while cache.poll_event().is_some() {}
    }
    for k in model.recency.clone() {
        assert!(cache.contains(&k));
    }
}
