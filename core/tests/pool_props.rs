//! Properties of `core::pool` under random inventories, requests, feedback,
//! time and reloads, checked against a small reference model:
//!
//! * selection never returns a disabled, ejected or disallowed proxy (wrong
//!   exchange or connection type, at its connection limit, cooling down for
//!   the exchange, or in a region geo-blocked for it) while an eligible one
//!   exists, and always returns one when one exists; it prefers the
//!   requested region when an eligible proxy there exists;
//! * open-connection counts follow `connect_start` / `disconnect` /
//!   `failure` / `timeout` exactly and never go below zero;
//! * the ejected share never exceeds `max_ejected_percent`.

use std::collections::HashMap;

use embassy_time::{Duration, Instant};
use proptest::prelude::*;
use proxy_delegate_core::model::{
    ConnectionType, ErrorCategory, ExchangeId, FeedbackEvent, ProxyFeedback, ProxyId, ProxyRequest,
    Region,
};
use proxy_delegate_core::pool::{
    ConnectionTypes, Pool, PoolConfig, ProxySpec, ProxyState, StrategyKind,
};

const PROXIES: usize = 8;
const EXCHANGES: usize = 4; // ex3 is in no allow-list
const REGIONS: usize = 4; // r3 belongs to no proxy

#[derive(Debug, Clone)]
struct Attr {
    enabled: bool,
    regions: Vec<usize>,
    allow: Option<Vec<usize>>,
    ctypes: (bool, bool),
    max_conns: Option<u32>,
    weight: u16,
}

#[derive(Debug, Clone)]
enum Op {
    Select {
        client: u8,
        exchange: usize,
        websocket: bool,
        region: Option<usize>,
    },
    Feedback {
        proxy: usize,
        exchange: usize,
        kind: u8,
        category: usize,
    },
    Advance(u64),
    Reload(u8),
    Probes(bool),
}

fn attr() -> impl Strategy<Value = Attr> {
    (
        prop::bool::weighted(0.8),
        prop::collection::btree_set(0..REGIONS - 1, 0..=2),
        prop::option::weighted(0.4, prop::collection::btree_set(0..EXCHANGES - 1, 1..=2)),
        prop_oneof![Just((true, true)), Just((true, false)), Just((false, true))],
        prop::option::weighted(0.3, 1u32..3),
        1u16..5,
    )
        .prop_map(
            |(enabled, regions, allow, ctypes, max_conns, weight)| Attr {
                enabled,
                regions: regions.into_iter().collect(),
                allow: allow.map(|a| a.into_iter().collect()),
                ctypes,
                max_conns,
                weight,
            },
        )
}

/// An index into `ErrorCategory::ALL`, biased towards the categories that
/// bar a proxy (so that cool-downs and region bars are common).
fn category() -> impl Strategy<Value = usize> {
    let at = |c: ErrorCategory| ErrorCategory::ALL.iter().position(|x| *x == c).unwrap();
    prop_oneof![
        2 => Just(at(ErrorCategory::GeoBlocked)),
        1 => Just(at(ErrorCategory::RateLimited)),
        4 => 0..ErrorCategory::ALL.len(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, 0..EXCHANGES, any::<bool>(), prop::option::of(0..REGIONS)).prop_map(
            |(client, exchange, websocket, region)| Op::Select { client, exchange, websocket, region }
        ),
        5 => (0..PROXIES, 0..EXCHANGES, 0u8..5, category()).prop_map(
            |(proxy, exchange, kind, category)| Op::Feedback { proxy, exchange, kind, category }
        ),
        1 => (0u64..90).prop_map(Op::Advance),
        1 => any::<u8>().prop_map(Op::Reload),
        1 => any::<bool>().prop_map(Op::Probes),
    ]
}

fn name(i: usize) -> ProxyId {
    format!("p{i}").parse().unwrap()
}

fn exchange(i: usize) -> ExchangeId {
    format!("ex{i}").parse().unwrap()
}

fn region(i: usize) -> Region {
    format!("r{i}").parse().unwrap()
}

fn spec(i: usize, a: &Attr) -> ProxySpec {
    let mut s = ProxySpec::new(
        name(i),
        format!("http://u:pw{i}@10.1.0.{i}:8080").parse().unwrap(),
    )
    .with_enabled(a.enabled)
    .with_weight(a.weight)
    .with_connection_types(ConnectionTypes {
        http: a.ctypes.0,
        websocket: a.ctypes.1,
    });
    for r in &a.regions {
        s = s.with_region(region(*r));
    }
    for e in a.allow.iter().flatten() {
        s = s.with_exchange(exchange(*e));
    }
    if let Some(m) = a.max_conns {
        s = s.with_max_connections(m);
    }
    s
}

fn inventory(mask: u8, attrs: &[Attr]) -> Vec<ProxySpec> {
    (0..PROXIES)
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| spec(i, &attrs[i]))
        .collect()
}

/// What the test knows independently of the pool.
#[derive(Default)]
struct Model {
    present: [bool; PROXIES],
    open: [u32; PROXIES],
    bars: HashMap<(usize, usize), Instant>,
    region_bars: HashMap<(usize, usize), Instant>,
}

impl Model {
    fn reload(&mut self, mask: u8) {
        for i in 0..PROXIES {
            let now_present = mask & (1 << i) != 0;
            if self.present[i] && !now_present {
                self.open[i] = 0;
                self.bars.retain(|(p, _), _| *p != i);
            }
            self.present[i] = now_present;
        }
    }
}

fn feedback(
    proxy: usize,
    exch: usize,
    event: FeedbackEvent,
    cat: Option<ErrorCategory>,
) -> ProxyFeedback {
    ProxyFeedback {
        proxy_id: Some(name(proxy)),
        proxy_url: None,
        exchange_id: exchange(exch),
        connection_type: ConnectionType::Websocket,
        event,
        success: event == FeedbackEvent::Success,
        latency_ms: Some(40),
        error_category: cat,
        error_details: None,
        timestamp: "2026-01-01T00:00:00Z".parse().unwrap(),
        client_id: "c".parse().unwrap(),
    }
}

fn check_invariants(
    pool: &Pool<8, 4>,
    model: &Model,
    now: Instant,
    pct: u8,
) -> Result<(), TestCaseError> {
    let stats = pool.stats();
    let ejected = pool
        .proxies(now)
        .filter(|s| s.state == ProxyState::Ejected)
        .count() as u32;
    prop_assert_eq!(ejected, stats.ejected);
    prop_assert!(
        u64::from(ejected) * 100 <= u64::from(stats.proxies) * u64::from(pct),
        "{} of {} ejected, share {}%",
        ejected,
        stats.proxies,
        pct
    );
    for s in pool.proxies(now) {
        let i: usize = s.id.as_str()[1..].parse().unwrap();
        prop_assert!(model.present[i]);
        prop_assert_eq!(
            s.open_connections,
            model.open[i],
            "open connections of p{}",
            i
        );
    }
    prop_assert_eq!(
        pool.proxies(now).count(),
        model.present.iter().filter(|p| **p).count()
    );
    Ok(())
}

#[derive(Debug)]
struct Case {
    strategy: StrategyKind,
    threshold: u16,
    pct: u8,
    probes: bool,
    seed: u64,
}

fn run(attrs: Vec<Attr>, initial: u8, ops: Vec<Op>, case: Case) -> Result<(), TestCaseError> {
    let Case {
        strategy,
        threshold,
        pct,
        probes,
        seed,
    } = case;
    let config = PoolConfig {
        seed,
        strategy,
        eject_consecutive_failures: threshold,
        eject_min_samples: 4,
        max_ejected_percent: pct,
        eject_base: Duration::from_secs(20),
        geo_block_cooldown: Duration::from_secs(100),
        rate_limit_cooldown: Duration::from_secs(30),
        lease_ttl: Duration::from_secs(86_400),
        sticky_ttl: Duration::from_secs(45),
        probe_interval: probes.then(|| Duration::from_secs(7)),
        ..PoolConfig::default()
    };
    let geo = config.geo_block_cooldown;
    let rate = config.rate_limit_cooldown;
    let mut pool = Pool::<8, 4>::new(config).unwrap();
    let mut now = Instant::from_secs(1_000);
    let mut model = Model::default();
    pool.replace_inventory(now, &inventory(initial, &attrs))
        .unwrap();
    model.reload(initial);
    check_invariants(&pool, &model, now, pct)?;

    for op in ops {
        match op {
            Op::Advance(s) => {
                now += Duration::from_secs(s);
                pool.handle_timeout(now);
            }
            Op::Reload(mask) => {
                pool.replace_inventory(now, &inventory(mask, &attrs))
                    .unwrap();
                model.reload(mask);
            }
            Op::Probes(reachable) => {
                while let Some(p) = pool.poll_transmit(now) {
                    prop_assert!(!p.target.has_credentials());
                    pool.handle_probe_result(now, p.token, reachable);
                }
            }
            Op::Feedback {
                proxy,
                exchange: ex,
                kind,
                category,
            } => {
                let cat = ErrorCategory::ALL[category];
                let (event, cat) = match kind {
                    0 => (FeedbackEvent::ConnectStart, None),
                    1 => (FeedbackEvent::Disconnect, None),
                    2 => (FeedbackEvent::Success, None),
                    3 => (FeedbackEvent::Failure, Some(cat)),
                    _ => (FeedbackEvent::Timeout, None),
                };
                let applied = pool
                    .handle_feedback(now, &feedback(proxy, ex, event, cat))
                    .is_ok();
                prop_assert_eq!(applied, model.present[proxy]);
                if applied {
                    let open = &mut model.open[proxy];
                    match event {
                        FeedbackEvent::ConnectStart => *open += 1,
                        FeedbackEvent::Disconnect
                        | FeedbackEvent::Failure
                        | FeedbackEvent::Timeout => *open = open.saturating_sub(1),
                        _ => {}
                    }
                    let bar = match cat {
                        Some(ErrorCategory::GeoBlocked) => Some(now + geo),
                        Some(ErrorCategory::RateLimited) => Some(now + rate),
                        _ => None,
                    };
                    if let Some(until) = bar {
                        let e = model.bars.entry((proxy, ex)).or_insert(until);
                        *e = (*e).max(until);
                        let regions = &attrs[proxy].regions;
                        if cat == Some(ErrorCategory::GeoBlocked) && regions.len() == 1 {
                            let e = model.region_bars.entry((ex, regions[0])).or_insert(until);
                            *e = (*e).max(until);
                        }
                    }
                }
            }
            Op::Select {
                client,
                exchange: ex,
                websocket,
                region: want_region,
            } => {
                pool.handle_timeout(now);
                let ejected: Vec<bool> = (0..PROXIES)
                    .map(|i| {
                        pool.proxy(now, &name(i))
                            .is_some_and(|s| s.state == ProxyState::Ejected)
                    })
                    .collect();
                let region_barred =
                    |r: usize| model.region_bars.get(&(ex, r)).is_some_and(|u| *u > now);
                let eligible = |i: usize| {
                    let a = &attrs[i];
                    model.present[i]
                        && a.enabled
                        && !ejected[i]
                        && a.max_conns.is_none_or(|m| model.open[i] < m)
                        && a.allow.as_ref().is_none_or(|l| l.contains(&ex))
                        && if websocket { a.ctypes.1 } else { a.ctypes.0 }
                        && model.bars.get(&(i, ex)).is_none_or(|u| *u <= now)
                        && (a.regions.is_empty() || !a.regions.iter().all(|r| region_barred(*r)))
                };
                let any_eligible = (0..PROXIES).any(eligible);
                let in_region = want_region.filter(|r| !region_barred(*r)).is_some_and(|r| {
                    (0..PROXIES).any(|i| eligible(i) && attrs[i].regions.contains(&r))
                });

                let mut req = ProxyRequest::new(
                    exchange(ex),
                    if websocket {
                        ConnectionType::Websocket
                    } else {
                        ConnectionType::Http
                    },
                    format!("client-{client}").parse().unwrap(),
                );
                req.region = want_region.map(region);
                let answer = pool.select(now, &req);
                match answer.metadata.proxy_id.as_ref() {
                    None => {
                        prop_assert!(!any_eligible, "no proxy although one is eligible");
                        prop_assert!(answer.proxy_url.is_none());
                    }
                    Some(id) => {
                        let i: usize = id.as_str()[1..].parse().unwrap();
                        prop_assert!(eligible(i), "p{} is not eligible", i);
                        if in_region {
                            let r = want_region.unwrap();
                            prop_assert!(attrs[i].regions.contains(&r), "p{} is not in r{}", i, r);
                        }
                        prop_assert!(answer.proxy_url.is_some());
                    }
                }
            }
        }
        check_invariants(&pool, &model, now, pct)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn selection_health_and_ejection_invariants(
        attrs in prop::collection::vec(attr(), PROXIES),
        initial in any::<u8>(),
        ops in prop::collection::vec(op(), 1..80),
        strategy in prop::sample::select(StrategyKind::ALL.to_vec()),
        threshold in 1u16..4,
        pct in prop_oneof![Just(0u8), Just(25), Just(50), Just(100), 0u8..=100],
        probes in any::<bool>(),
        seed in any::<u64>(),
    ) {
        run(attrs, initial, ops, Case { strategy, threshold, pct, probes, seed })?;
    }
}
