//! Drives the service side's `core::pool` with an arbitrary sequence of
//! operations: selections (every strategy, exchange, connection type and
//! region), feedback of every event and category (by id, by URL, by both,
//! by neither; categories also named only by `error_details`), time jumps
//! and timers, inventory replacements (kept, added, removed, changed and
//! refused inventories), and active probes (fresh and stale tokens). The
//! first bytes choose the configuration and the initial inventory.
//!
//! The driver follows the pool's call order: after every call it drains
//! `poll_event` and calls `handle_timeout` again while `poll_timeout` is due.
//! It keeps a model from the events alone (open leases, ejected proxies,
//! cool-downs) and checks, after every operation:
//!
//! * nothing panics, and no event is ever dropped (`events_dropped() == 0`);
//! * the events tell the whole story: an `Ejected` names a proxy not ejected
//!   and a `Restored` one that is; the proxies the events say are ejected are
//!   exactly those the snapshot shows `Ejected`, and `stats().ejected` counts
//!   them, within `stats().max_ejected`;
//! * leases are conserved: each proxy's `open_connections` equals the
//!   `connect_start`s it took, minus the closes that found an open lease,
//!   minus the `LeasesExpired` counts;
//! * `stats().proxies` is the inventory's size and `stats().available`
//!   counts the proxies enabled, not ejected and under their limit;
//! * a selected proxy is in the inventory, enabled, not ejected, under its
//!   `max_connections`, allowed the exchange and the connection type, and is
//!   answered with its URL; the answer carries the configured strategy and
//!   fallback policy;
//! * selection answers no proxy only when none is eligible: a proxy that is
//!   enabled, not ejected, under its limit, allowed for the request and with
//!   no cool-down the events announced (for it and the exchange, or for its
//!   regions) is never passed over for "no proxy";
//! * feedback is refused exactly when it names no proxy or an unknown one;
//! * a refused inventory changes nothing;
//! * a probe taken from `poll_transmit` and reported reachable at once
//!   restores its proxy (a `Restored` event with cause `Probe`), and a probe
//!   result that returns `true` always comes with that event.
#![no_main]

use std::collections::{HashMap, HashSet};

use embassy_time::{Duration, Instant};
use libfuzzer_sys::fuzz_target;
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ErrorCategory, ErrorDetails, ExchangeId, FallbackPolicy,
    FeedbackEvent, ProxyFeedback, ProxyId, ProxyRequest, ProxyUrl, Region, Timestamp,
};
use proxy_delegate_core::pool::{
    ConnectionTypes, Event, ExchangePolicy, FeedbackError, Pool, PoolConfig, ProbeToken, ProxySpec,
    ProxyState, RestoreCause, StrategyKind,
};

/// Capacity: fewer than `IDS`, so that some inventories are refused.
const N: usize = 8;
type P = Pool<N, 16>;

const IDS: usize = 10;
const EXCHANGES: [&str; 5] = ["binance", "kraken", "coinbase", "bybit", "okx"];
const REGIONS: [&str; 4] = ["us-east-1", "eu-west-1", "ap-northeast-1", "sa-east-1"];
const CLIENTS: [&str; 3] = ["c1", "c2", "c3"];
const STRATEGIES: [StrategyKind; 5] = [
    StrategyKind::RoundRobin,
    StrategyKind::Random,
    StrategyKind::LeastConnections,
    StrategyKind::Weighted,
    StrategyKind::Sticky,
];
const EVENTS: [FeedbackEvent; 5] = [
    FeedbackEvent::ConnectStart,
    FeedbackEvent::Success,
    FeedbackEvent::Failure,
    FeedbackEvent::Timeout,
    FeedbackEvent::Disconnect,
];
/// Free text as plain clients send it: some name a category, some do not.
const DETAILS: [&str; 8] = [
    "connection timed out",
    "connection refused",
    "HTTP 407 Proxy Authentication Required",
    "HTTP 451 Unavailable For Legal Reasons",
    "HTTP 429 Too Many Requests",
    "certificate verify failed",
    "502 Bad Gateway",
    "something else went wrong",
];

fn exchange(i: usize) -> ExchangeId {
    ExchangeId::new(EXCHANGES[i % EXCHANGES.len()]).expect("valid")
}

fn region(i: usize) -> Region {
    Region::new(REGIONS[i % REGIONS.len()]).expect("valid")
}

fn id(i: usize) -> ProxyId {
    ProxyId::new(&format!("p{i}")).expect("valid")
}

fn url(i: usize, credentials: bool) -> ProxyUrl {
    let scheme = ["http", "socks5", "https", "socks5h"][i % 4];
    let user = if credentials {
        format!("u{i}:pw-{i}@")
    } else {
        String::new()
    };
    format!("{scheme}://{user}10.0.0.{i}:{}", 3128 + i)
        .parse()
        .expect("valid")
}

/// Proxy `i` as the two bytes `(f, m)` describe it.
fn spec(i: usize, (f, m): (u8, u8)) -> ProxySpec {
    let mut s = ProxySpec::new(id(i), url(i, true));
    match f % 4 {
        1 => s = s.with_region(region(i)),
        2 => s = s.with_region(region(i)).with_region(region(i + 1)),
        3 => s = s.with_region(region(i + 2)),
        _ => {}
    }
    match (f >> 2) % 4 {
        1 => s = s.with_exchange(exchange(i)),
        2 => s = s.with_exchange(exchange(i)).with_exchange(exchange(i + 1)),
        _ => {}
    }
    s = s.with_connection_types(match (f >> 4) % 4 {
        1 => ConnectionTypes::only(ConnectionType::Http),
        2 => ConnectionTypes::only(ConnectionType::Websocket),
        _ => ConnectionTypes::ALL,
    });
    s = s.with_enabled(f & 0xC0 != 0xC0);
    if m % 4 != 0 {
        s = s.with_max_connections(u32::from(m % 4));
    }
    s.with_weight(1 + u16::from((m >> 2) % 4))
}

struct Driver<'a> {
    data: &'a [u8],
    pool: Box<P>,
    now: Instant,
    /// Each proxy's spec bytes.
    specs: [(u8, u8); IDS],
    /// The inventory in force: index → spec.
    inventory: HashMap<usize, ProxySpec>,
    /// Open leases per proxy, from the calls and the events.
    leases: HashMap<usize, u32>,
    /// Proxies the events say are ejected.
    ejected: HashSet<usize>,
    /// Cool-downs the events announced: (proxy, exchange) → end.
    bars: HashMap<(usize, ExchangeId), Instant>,
    /// Region bars the events announced: (exchange, region) → end.
    region_bars: HashMap<(ExchangeId, Region), Instant>,
    /// Restored-by-probe events seen since the last look.
    probe_restores: Vec<usize>,
    /// Probe tokens handed out, for stale replays.
    tokens: Vec<ProbeToken>,
    config: PoolConfig,
}

fn index_of(p: &ProxyId) -> usize {
    p.as_str()[1..].parse().expect("the driver's ids")
}

impl Driver<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self
            .data
            .split_first()
            .map_or((0, &[][..]), |(b, r)| (*b, r));
        self.data = rest;
        b
    }

    /// Drains the events into the model and runs the due timers, as the call
    /// order says, then checks the invariants.
    fn settle(&mut self) {
        for _ in 0..64 {
            while let Some(e) = self.pool.poll_event() {
                self.apply(e);
            }
            if self.pool.poll_timeout().is_some_and(|t| t <= self.now) {
                self.pool.handle_timeout(self.now);
            } else {
                break;
            }
        }
        while let Some(e) = self.pool.poll_event() {
            self.apply(e);
        }
        self.check();
    }

    fn apply(&mut self, e: Event) {
        match e {
            Event::Ejected { proxy, .. } => {
                let i = index_of(&proxy);
                assert!(
                    self.inventory.contains_key(&i),
                    "{proxy} ejected, not in the inventory"
                );
                assert!(self.ejected.insert(i), "{proxy} ejected twice");
            }
            Event::Restored { proxy, cause } => {
                let i = index_of(&proxy);
                assert!(self.ejected.remove(&i), "{proxy} restored, not ejected");
                if cause == RestoreCause::Probe {
                    self.probe_restores.push(i);
                }
            }
            Event::LeasesExpired { proxy, count } => {
                let i = index_of(&proxy);
                let open = self.leases.entry(i).or_default();
                assert!(*open >= count, "{proxy}: {count} leases expired of {open}");
                *open -= count;
            }
            Event::CooledDown {
                proxy,
                exchange,
                until,
                region,
                ..
            } => {
                let i = index_of(&proxy);
                let end = self.bars.entry((i, exchange.clone())).or_insert(until);
                *end = (*end).max(until);
                if let Some(r) = region {
                    let end = self.region_bars.entry((exchange, r)).or_insert(until);
                    *end = (*end).max(until);
                }
            }
            _ => {}
        }
    }

    fn check(&self) {
        assert_eq!(self.pool.events_dropped(), 0, "an event was dropped");
        let stats = self.pool.stats();
        assert_eq!(stats.proxies as usize, self.inventory.len());
        let mut available = 0;
        let mut ejected = HashSet::new();
        for s in self.pool.proxies(self.now) {
            let i = index_of(s.id);
            let spec = self.inventory.get(&i).expect("a proxy of the inventory");
            assert_eq!(s.max_connections, spec.max_connections);
            assert_eq!(
                s.open_connections,
                self.leases.get(&i).copied().unwrap_or(0),
                "{}: open connections not conserved",
                s.id
            );
            assert!((0.0..=1.0).contains(&s.health_score));
            // A disabled proxy shows `Disabled` even while ejected: its
            // ejection is seen by `ejected_until`.
            if s.ejected_until.is_some() {
                assert!(
                    matches!(s.state, ProxyState::Ejected | ProxyState::Disabled),
                    "{}: ejected until {:?} but {:?}",
                    s.id,
                    s.ejected_until,
                    s.state
                );
                ejected.insert(i);
            } else {
                assert_ne!(s.state, ProxyState::Ejected, "{}: ejected, no end", s.id);
            }
            let under = s.max_connections.is_none_or(|m| s.open_connections < m);
            if matches!(s.state, ProxyState::Active | ProxyState::CoolingDown) && under {
                available += 1;
            }
        }
        assert_eq!(
            ejected, self.ejected,
            "the events and the snapshot disagree on ejections"
        );
        assert_eq!(stats.ejected as usize, ejected.len());
        assert!(stats.ejected <= stats.max_ejected, "{stats:?}");
        assert_eq!(stats.available, available, "{stats:?}");
    }

    fn open(&self, i: usize) -> u32 {
        self.leases.get(&i).copied().unwrap_or(0)
    }

    /// Whether proxy `i` must be eligible for the request by every rule the
    /// model can see (cool-downs the events announced count as live).
    fn surely_eligible(&self, i: usize, req: &ProxyRequest) -> bool {
        let Some(spec) = self.inventory.get(&i) else {
            return false;
        };
        let ex = &req.exchange_id;
        let live = |end: Option<&Instant>| end.is_some_and(|e| *e > self.now);
        spec.enabled
            && !self.ejected.contains(&i)
            && spec.max_connections.is_none_or(|m| self.open(i) < m)
            && spec.connection_types.allows(req.connection_type)
            && spec.exchanges.as_ref().is_none_or(|l| l.contains(ex))
            && !live(self.bars.get(&(i, ex.clone())))
            && (spec.regions.is_empty()
                || spec
                    .regions
                    .iter()
                    .any(|r| !live(self.region_bars.get(&(ex.clone(), r.clone())))))
    }

    fn select(&mut self) {
        let b = self.byte();
        let ex = exchange(usize::from(b));
        let ct = if b & 0x80 == 0 {
            ConnectionType::Websocket
        } else {
            ConnectionType::Http
        };
        let r = self.byte();
        let mut req = ProxyRequest::new(
            ex.clone(),
            ct,
            ClientId::new(CLIENTS[usize::from(r) % CLIENTS.len()]).expect("valid"),
        );
        if r & 0x10 != 0 {
            req.region = Some(region(usize::from(r >> 5)));
        }
        let answer = self.pool.select(self.now, &req);
        let policy = self.config.policy_for(&ex);
        let kind = policy
            .and_then(|p| p.strategy)
            .unwrap_or(self.config.strategy);
        assert_eq!(answer.strategy.as_str(), kind.as_str());
        assert_eq!(
            answer.fallback_policy,
            policy.map_or(self.config.fallback_policy, |p| p.fallback_policy)
        );
        self.settle();
        match &answer.proxy_url {
            Some(u) => {
                let pid = answer
                    .metadata
                    .proxy_id
                    .as_ref()
                    .expect("an answer names its proxy");
                let i = index_of(pid);
                let spec = self
                    .inventory
                    .get(&i)
                    .expect("selected a proxy of the inventory");
                assert_eq!(u, &spec.url, "the answer's URL is the proxy's");
                assert!(spec.enabled, "selected a disabled proxy");
                assert!(!self.ejected.contains(&i), "selected an ejected proxy");
                assert!(
                    spec.max_connections.is_none_or(|m| self.open(i) < m),
                    "selected a proxy at its connection limit"
                );
                assert!(
                    spec.connection_types.allows(ct),
                    "connection type not allowed"
                );
                assert!(
                    spec.exchanges.as_ref().is_none_or(|l| l.contains(&ex)),
                    "exchange not allowed"
                );
                let status = self.pool.proxy(self.now, pid).expect("in the snapshot");
                assert!(matches!(
                    status.state,
                    ProxyState::Active | ProxyState::CoolingDown
                ));
            }
            None => {
                assert!(answer.metadata.proxy_id.is_none());
                if let Some(i) = (0..IDS).find(|&i| self.surely_eligible(i, &req)) {
                    panic!("no proxy answered while p{i} is eligible for {req:?}");
                }
            }
        }
    }

    fn feedback(&mut self) {
        let who = usize::from(self.byte());
        let i = who % IDS;
        let how = self.byte();
        let event = EVENTS[usize::from(how) % EVENTS.len()];
        let category = match (how >> 3) % 12 {
            c @ 0..=8 => Some(ErrorCategory::ALL[usize::from(c)]),
            _ => None,
        };
        let d = self.byte();
        let details = (d & 0x08 != 0).then(|| ErrorDetails::new(DETAILS[usize::from(d) % 8]));
        let latency_ms = (d & 0x10 != 0).then(|| u32::from(d) * 7);
        // Bits 5-6 of `who`: by id, by URL, by both (a wrong id: the URL
        // decides), by neither.
        let (proxy_id, proxy_url, target) = match (who >> 5) % 4 {
            0 => (Some(id(i)), None, Some(i)),
            1 => (None, Some(url(i, false)), Some(i)),
            2 => (Some(id(i + IDS)), Some(url(i, false)), Some(i)),
            _ => (None, None, None),
        };
        let fb = ProxyFeedback {
            proxy_id,
            proxy_url,
            exchange_id: exchange(usize::from(d >> 5)),
            connection_type: ConnectionType::Websocket,
            event,
            success: event == FeedbackEvent::Success,
            latency_ms,
            error_category: category,
            error_details: details,
            timestamp: Timestamp::from_unix_millis(0).expect("valid"),
            client_id: ClientId::new("fuzz").expect("valid"),
        };
        let result = self.pool.handle_feedback(self.now, &fb);
        match target {
            None => assert_eq!(result, Err(FeedbackError::NoProxy)),
            Some(t) if !self.inventory.contains_key(&t) => {
                assert_eq!(result, Err(FeedbackError::UnknownProxy));
            }
            Some(t) => {
                assert_eq!(result, Ok(()));
                let open = self.leases.entry(t).or_default();
                match event {
                    FeedbackEvent::ConnectStart => *open += 1,
                    FeedbackEvent::Success => {}
                    _ => *open = open.saturating_sub(1),
                }
            }
        }
        self.settle();
    }

    fn snapshot(&self) -> String {
        format!(
            "{:?} {:?}",
            self.pool.stats(),
            self.pool.proxies(self.now).collect::<Vec<_>>()
        )
    }

    fn replace(&mut self) {
        let mask = u16::from_le_bytes([self.byte(), self.byte()]);
        let specs: Vec<(usize, ProxySpec)> = (0..IDS)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| (i, spec(i, self.specs[i])))
            .collect();
        let list: Vec<ProxySpec> = specs.iter().map(|(_, s)| s.clone()).collect();
        let before = self.snapshot();
        match self.pool.replace_inventory(self.now, &list) {
            Ok(change) => {
                let kept = specs
                    .iter()
                    .filter(|(i, _)| self.inventory.contains_key(i))
                    .count();
                assert_eq!(change.kept, kept);
                assert_eq!(change.added, specs.len() - kept);
                assert_eq!(change.removed, self.inventory.len() - kept);
                let new: HashMap<usize, ProxySpec> = specs.into_iter().collect();
                // Removed proxies take their state with them.
                self.leases.retain(|i, _| new.contains_key(i));
                self.ejected.retain(|i| new.contains_key(i));
                self.bars.retain(|(i, _), _| new.contains_key(i));
                self.inventory = new;
            }
            Err(_) => {
                assert!(list.len() > N, "an inventory of {} refused", list.len());
                assert_eq!(
                    before,
                    self.snapshot(),
                    "a refused inventory changed the pool"
                );
            }
        }
        self.settle();
    }

    fn probe(&mut self) {
        let reachable = self.byte() % 4 != 0;
        let Some(probe) = self.pool.poll_transmit(self.now) else {
            return;
        };
        assert!(
            !probe.target.has_credentials(),
            "a probe carries credentials"
        );
        let i = (0..IDS)
            .find(|&i| probe.target == url(i, false))
            .expect("a probe names a proxy of the driver");
        assert!(self.ejected.contains(&i), "a probe for a proxy not ejected");
        self.tokens.push(probe.token);
        let changed = self
            .pool
            .handle_probe_result(self.now, probe.token, reachable);
        assert_eq!(changed, reachable, "a fresh probe's result");
        self.settle();
        let restored: Vec<usize> = self.probe_restores.drain(..).collect();
        if changed {
            assert_eq!(restored, vec![i], "a probe restored without its event");
        } else {
            assert!(restored.is_empty());
        }
    }

    fn stale_probe(&mut self) {
        if self.tokens.is_empty() {
            return;
        }
        let pick = usize::from(self.byte()) % self.tokens.len();
        let token = self.tokens[pick];
        let ejected_before = self.ejected.len();
        let changed = self.pool.handle_probe_result(self.now, token, true);
        self.settle();
        let restored: Vec<usize> = self.probe_restores.drain(..).collect();
        if changed {
            assert_eq!(restored.len(), 1, "a probe result without its event");
            assert_eq!(self.ejected.len() + 1, ejected_before);
        } else {
            assert!(restored.is_empty());
        }
    }

    fn step(&mut self) {
        match self.byte() % 11 {
            0 => {
                let amount = u64::from(self.byte());
                let kind = self.byte() % 4;
                self.now += match kind {
                    0 => Duration::from_millis(amount * 10),
                    1 => Duration::from_secs(amount),
                    2 => Duration::from_secs(amount * 60),
                    _ => match self.pool.poll_timeout() {
                        Some(t) if t > self.now => t - self.now,
                        _ => Duration::from_secs(1),
                    },
                };
                self.settle();
            }
            1..=3 => self.select(),
            4..=6 => self.feedback(),
            7 => self.replace(),
            8 => {
                // A proxy's spec changes (applied at the next replacement).
                let i = usize::from(self.byte()) % IDS;
                self.specs[i] = (self.byte(), self.byte());
            }
            9 => self.probe(),
            _ => self.stale_probe(),
        }
    }
}

fn config(data: &mut &[u8]) -> PoolConfig {
    let mut next = || {
        let (b, rest) = data.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        *data = rest;
        b
    };
    let (a, b, c) = (next(), next(), next());
    let mut config = PoolConfig {
        seed: u64::from(a),
        strategy: STRATEGIES[usize::from(a) % STRATEGIES.len()],
        fallback_policy: FallbackPolicy::ALL[usize::from(b) % FallbackPolicy::ALL.len()],
        eject_consecutive_failures: 1 + u16::from(b >> 2) % 4,
        eject_min_samples: 1 + u32::from(c % 8),
        max_ejected_percent: [0, 25, 50, 100][usize::from(c >> 3) % 4],
        probe_interval: (c & 0x20 != 0).then(|| Duration::from_secs(5)),
        lease_ttl: [
            Duration::from_secs(3),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        ][usize::from(b >> 4) % 3],
        ..PoolConfig::default()
    };
    if c & 0x40 != 0 {
        let mut p = ExchangePolicy::new(exchange(1), FallbackPolicy::Fail);
        p.strategy = Some(STRATEGIES[usize::from(c >> 7) * 4]);
        let _ = config.exchange_policies.push(p);
    }
    config
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let config = config(&mut data);
    let pool = Box::new(P::new(config.clone()).expect("a valid configuration"));
    let mut d = Driver {
        data,
        pool,
        now: Instant::from_secs(1_000),
        specs: [(0, 0); IDS],
        inventory: HashMap::new(),
        leases: HashMap::new(),
        ejected: HashSet::new(),
        bars: HashMap::new(),
        region_bars: HashMap::new(),
        probe_restores: Vec::new(),
        tokens: Vec::new(),
        config,
    };
    for i in 0..IDS {
        d.specs[i] = (d.byte(), d.byte());
    }
    // The initial inventory: the first 1 to 8 proxies.
    let first = 1 + usize::from(d.byte()) % N;
    let list: Vec<ProxySpec> = (0..first).map(|i| spec(i, d.specs[i])).collect();
    d.pool
        .replace_inventory(d.now, &list)
        .expect("an inventory within capacity");
    d.inventory = list.into_iter().enumerate().collect();
    d.settle();
    for _ in 0..1_000 {
        if d.data.is_empty() {
            break;
        }
        d.step();
    }
});
