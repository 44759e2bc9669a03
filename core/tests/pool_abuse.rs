//! `core::pool` against feedback that names many exchanges (junk ids from a
//! misbehaving or hostile client): the pool's exchange table (63 entries)
//! is shared by allow-lists and cool-downs, and
//!
//! * an entry whose cool-downs are over (and that no allow-list names) is
//!   reused, so junk cannot disable later cool-downs for good;
//! * a cool-down that cannot be recorded (every entry held by a live
//!   cool-down) is reported as `CoolDownDropped`, never silently;
//! * an inventory replacement always fits its allow-lists: cool-downs of
//!   exchanges no allow-list names give way (those that end first first);
//! * a reused entry carries nothing over (no stale bar, no stale allow-list
//!   bit): a property test checks every proxy's eligibility against a model
//!   after random cool-downs, time steps and reloads.

use std::collections::{BTreeSet, HashMap};

use embassy_time::{Duration, Instant};
use proptest::prelude::*;
use proxy_delegate_core::model::{
    ConnectionType, ErrorCategory, ExchangeId, FeedbackEvent, ProxyFeedback, ProxyId, ProxyRequest,
    Region,
};
use proxy_delegate_core::pool::{
    Event, InventoryError, MAX_EXCHANGES, Pool, PoolConfig, ProxySpec, StrategyKind,
};

type P = Pool<32>;

const T0: Instant = Instant::from_secs(10_000);
/// The default `rate_limit_cooldown`.
const RATE_LIMIT: Duration = Duration::from_secs(60);
/// The default `geo_block_cooldown`.
const GEO_BLOCK: Duration = Duration::from_secs(3600);

fn exchange(s: &str) -> ExchangeId {
    s.parse().unwrap()
}

fn name(i: usize) -> String {
    format!("p{i}")
}

/// Proxy `p{i}`, alone in region `r{i}`, allowed for `allow` (`None`: all).
fn spec(i: usize, allow: Option<&[String]>) -> ProxySpec {
    let url = format!("socks5://u:pw@10.0.0.{}:1080", i + 1)
        .parse()
        .unwrap();
    let mut s = ProxySpec::new(name(i).parse().unwrap(), url)
        .with_region(format!("r{i}").parse::<Region>().unwrap());
    for e in allow.into_iter().flatten() {
        s = s.with_exchange(exchange(e));
    }
    s
}

fn plain(n: usize) -> Vec<ProxySpec> {
    (0..n).map(|i| spec(i, None)).collect()
}

fn pool(specs: &[ProxySpec]) -> P {
    let mut p = P::new(PoolConfig {
        strategy: StrategyKind::RoundRobin,
        ..PoolConfig::default()
    })
    .unwrap();
    p.replace_inventory(T0, specs).unwrap();
    p
}

fn failure(proxy: usize, exch: &str, category: ErrorCategory) -> ProxyFeedback {
    ProxyFeedback {
        proxy_id: Some(name(proxy).parse::<ProxyId>().unwrap()),
        proxy_url: None,
        exchange_id: exchange(exch),
        connection_type: ConnectionType::Websocket,
        event: FeedbackEvent::Failure,
        success: false,
        latency_ms: None,
        error_category: Some(category),
        error_details: None,
        timestamp: "2026-01-01T00:00:00Z".parse().unwrap(),
        client_id: "c".parse().unwrap(),
    }
}

fn cool(p: &mut P, now: Instant, proxy: usize, exch: &str, category: ErrorCategory) {
    p.handle_feedback(now, &failure(proxy, exch, category))
        .expect("the proxy is in the inventory");
}

fn events(p: &mut P) -> Vec<Event> {
    std::iter::from_fn(|| p.poll_event()).collect()
}

/// Whether `p{i}` may serve `exch` now: a request from its region gets it
/// exactly when it is eligible (it is the only proxy of that region).
fn eligible(p: &mut P, now: Instant, i: usize, exch: &str) -> bool {
    let mut req = ProxyRequest::new(
        exchange(exch),
        ConnectionType::Websocket,
        "c".parse().unwrap(),
    );
    req.region = Some(format!("r{i}").parse().unwrap());
    p.select(now, &req)
        .metadata
        .proxy_id
        .is_some_and(|id| id.as_str() == name(i))
}

fn junk(i: usize) -> String {
    format!("junk{i}")
}

/// 63 live rate-limit cool-downs for `junk0..junk62`, four per proxy over
/// `p0..p15` (a proxy holds four), 100 ms apart (`junk0` ends first).
/// Returns the time of the last.
fn fill_with_live_junk(p: &mut P) -> Instant {
    let mut now = T0;
    for j in 0..MAX_EXCHANGES {
        now = T0 + Duration::from_millis(100 * j as u64);
        cool(p, now, j / 4, &junk(j), ErrorCategory::RateLimited);
    }
    let cooled = events(p)
        .iter()
        .filter(|e| matches!(e, Event::CooledDown { .. }))
        .count();
    assert_eq!(cooled, MAX_EXCHANGES, "every junk cool-down is recorded");
    now
}

fn dropped(evs: &[Event]) -> Vec<(String, String)> {
    evs.iter()
        .filter_map(|e| match e {
            Event::CoolDownDropped { proxy, exchange } => {
                Some((proxy.as_str().to_owned(), exchange.as_str().to_owned()))
            }
            _ => None,
        })
        .collect()
}

fn cooled(evs: &[Event]) -> Vec<(String, String)> {
    evs.iter()
        .filter_map(|e| match e {
            Event::CooledDown {
                proxy, exchange, ..
            } => Some((proxy.as_str().to_owned(), exchange.as_str().to_owned())),
            _ => None,
        })
        .collect()
}

fn ended(evs: &[Event]) -> Vec<String> {
    evs.iter()
        .filter_map(|e| match e {
            Event::CoolDownsEnded { exchange } => Some(exchange.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

fn pair(proxy: usize, exch: &str) -> (String, String) {
    (name(proxy), exch.to_owned())
}

// ------------------------------------------------------------------ the audit's scenario

#[test]
fn junk_on_one_proxy_leaves_room_for_a_real_cool_down_and_a_reload() {
    // 63 junk cool-downs on p1, then binance: a proxy holds four cool-downs,
    // so the other 59 junk entries are free again and binance is recorded.
    let mut p = pool(&plain(2));
    for j in 0..MAX_EXCHANGES {
        cool(&mut p, T0, 1, &junk(j), ErrorCategory::RateLimited);
    }
    let _ = events(&mut p);
    cool(&mut p, T0, 1, "binance", ErrorCategory::RateLimited);
    let evs = events(&mut p);
    assert_eq!(cooled(&evs), [pair(1, "binance")], "{evs:?}");
    assert!(dropped(&evs).is_empty(), "{evs:?}");
    assert!(
        !eligible(&mut p, T0, 1, "binance"),
        "p1 cools down for binance"
    );

    // A reload adding a proxy allowed only for binance succeeds, now and
    // after every cool-down is over.
    let allow = ["binance".to_owned()];
    let mut next = plain(2);
    next.push(spec(2, Some(&allow)));
    p.replace_inventory(T0, &next).unwrap();
    assert!(eligible(&mut p, T0, 2, "binance"));
    assert!(!eligible(&mut p, T0, 2, "okx"), "p2 serves binance only");
    let later = T0 + Duration::from_secs(90);
    p.replace_inventory(later, &next).unwrap();
    assert!(
        eligible(&mut p, later, 1, "binance"),
        "the cool-down is over"
    );
}

// ------------------------------------------------------------------ a full table

#[test]
fn a_full_table_drops_and_reports_then_reuses_entries_after_expiry() {
    let mut p = pool(&plain(17));
    let last = fill_with_live_junk(&mut p);

    // Every entry is held by a live cool-down: binance cannot be recorded,
    // and the pool says so.
    cool(&mut p, last, 16, "binance", ErrorCategory::RateLimited);
    let evs = events(&mut p);
    assert_eq!(dropped(&evs), [pair(16, "binance")], "{evs:?}");
    assert!(eligible(&mut p, last, 16, "binance"), "nothing was barred");
    assert!(!eligible(&mut p, last, 0, &junk(0)), "junk0 still cools p0");

    // Once junk0's cool-down is over, its entry is reused for binance.
    let after = T0 + RATE_LIMIT;
    assert!(eligible(&mut p, after, 0, &junk(0)), "junk0 is over");
    cool(&mut p, after, 16, "binance", ErrorCategory::RateLimited);
    let evs = events(&mut p);
    assert_eq!(cooled(&evs), [pair(16, "binance")], "{evs:?}");
    assert!(
        !eligible(&mut p, after, 16, "binance"),
        "binance is barred now"
    );
    // The reused entry carries nothing of junk0: p0, which junk0 barred,
    // is eligible for binance; the other junk cool-downs still hold.
    assert!(eligible(&mut p, after, 0, "binance"));
    assert!(!eligible(&mut p, after, 15, &junk(62)));

    // The table is full again; the next entry frees 100 ms later.
    cool(&mut p, after, 16, "okx", ErrorCategory::RateLimited);
    assert_eq!(dropped(&events(&mut p)), [pair(16, "okx")]);
    let later = after + Duration::from_millis(100);
    cool(&mut p, later, 16, "okx", ErrorCategory::RateLimited);
    assert_eq!(cooled(&events(&mut p)), [pair(16, "okx")]);
}

#[test]
fn geo_block_region_bars_are_freed_with_their_entry() {
    // Geo-blocks on single-region proxies bar the region too.
    let mut p = pool(&plain(17));
    for j in 0..MAX_EXCHANGES {
        cool(&mut p, T0, j / 4, &junk(j), ErrorCategory::GeoBlocked);
    }
    let _ = events(&mut p);
    cool(&mut p, T0, 16, "binance", ErrorCategory::GeoBlocked);
    assert_eq!(dropped(&events(&mut p)), [pair(16, "binance")]);

    let after = T0 + GEO_BLOCK;
    cool(&mut p, after, 16, "binance", ErrorCategory::RateLimited);
    assert_eq!(cooled(&events(&mut p)), [pair(16, "binance")]);
    // Whatever entry binance took, no region bar of the junk it replaced
    // bars a region for binance.
    for i in 0..16 {
        assert!(eligible(&mut p, after, i, "binance"), "p{i}");
    }
}

// ------------------------------------------------------------------ reloads

#[test]
fn a_reload_always_fits_its_allow_lists_and_ends_the_first_ending_junk_first() {
    let mut p = pool(&plain(17));
    let last = fill_with_live_junk(&mut p);

    // Five new allow-listed exchanges: the five junk cool-downs that end
    // first give way, the others hold.
    let allow: Vec<String> = (0..5).map(|k| format!("real{k}")).collect();
    let mut next = plain(17);
    next.push(spec(17, Some(&allow)));
    let change = p.replace_inventory(last, &next).unwrap();
    assert_eq!(change.added, 1);
    let evs = events(&mut p);
    assert_eq!(ended(&evs), ["junk0", "junk1", "junk2", "junk3", "junk4"]);
    for (j, owner) in [(0, 0), (4, 1)] {
        assert!(eligible(&mut p, last, owner, &junk(j)), "junk{j} ended");
    }
    assert!(!eligible(&mut p, last, 1, &junk(5)), "junk5 still holds");
    for e in &allow {
        assert!(eligible(&mut p, last, 17, e), "p17 serves {e}");
    }
    assert!(!eligible(&mut p, last, 17, "okx"), "and nothing else");

    // Allow-lists naming all 63 entries: every junk cool-down gives way.
    let all: Vec<String> = (0..MAX_EXCHANGES).map(|k| format!("real{k}")).collect();
    let mut next = plain(17);
    for (k, chunk) in all.chunks(16).enumerate() {
        next.push(spec(17 + k, Some(chunk)));
    }
    p.replace_inventory(last, &next).unwrap();
    assert_eq!(ended(&events(&mut p)).len(), MAX_EXCHANGES - 5);
    for (k, e) in all.iter().enumerate() {
        assert!(eligible(&mut p, last, 17 + k / 16, e), "{e}");
    }
    // With every entry allow-listed, a cool-down for another exchange is
    // dropped, and reported.
    cool(&mut p, last, 0, "binance", ErrorCategory::RateLimited);
    assert_eq!(dropped(&events(&mut p)), [pair(0, "binance")]);
    // 64 distinct allow-listed exchanges are still refused, naming the bound.
    let mut too_many = next.clone();
    too_many.push(spec(21, Some(&["one-more".to_owned()])));
    let err = p.replace_inventory(last, &too_many).unwrap_err();
    assert_eq!(err, InventoryError::TooManyExchanges { max: MAX_EXCHANGES });
    assert!(
        err.to_string().contains("allow-lists name more than 63"),
        "{err}"
    );
}

#[test]
fn allow_lists_replaced_over_reloads_never_exhaust_the_table() {
    let mut p = pool(&plain(1));
    for round in 0..4 {
        let names: Vec<String> = (0..MAX_EXCHANGES)
            .map(|k| format!("set{round}-{k}"))
            .collect();
        let mut next = plain(1);
        for (k, chunk) in names.chunks(16).enumerate() {
            next.push(spec(1 + k, Some(chunk)));
        }
        p.replace_inventory(T0, &next)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        for (k, e) in names.iter().enumerate() {
            assert!(eligible(&mut p, T0, 1 + k / 16, e), "round {round}: {e}");
        }
        // No allow-listed proxy serves a name of an earlier round.
        if round > 0 {
            assert!(!eligible(&mut p, T0, 1, &format!("set{}-0", round - 1)));
        }
    }
}

#[test]
fn an_allow_list_dropped_by_a_reload_leaves_no_trace_on_the_reused_entry() {
    let x = ["x".to_owned()];
    let y = ["y".to_owned()];
    let mut p = pool(&[spec(0, Some(&x)), spec(1, None)]);
    p.replace_inventory(T0, &[spec(0, Some(&y)), spec(1, None)])
        .unwrap();
    // Fill every free entry (one of them x's old one) with cool-downs on
    // p1: none of those exchanges is ever served by p0, whose allow-list
    // names only y.
    for j in 0..MAX_EXCHANGES - 1 {
        cool(&mut p, T0, 1, &junk(j), ErrorCategory::RateLimited);
        assert!(
            !eligible(&mut p, T0, 0, &junk(j)),
            "p0 never serves junk{j}"
        );
    }
    assert!(!eligible(&mut p, T0, 0, "x"));
    assert!(eligible(&mut p, T0, 0, "y"));
}

// ------------------------------------------------------------------ properties

const PROXIES: usize = 20;
/// Exchange names `e0..e119`; any of them may be allow-listed or cooled.
const NAMES: usize = 120;

#[derive(Debug, Clone)]
enum Op {
    /// A rate-limit cool-down of proxy `.0` for exchange `.1`.
    Cool(usize, usize),
    /// Time passes.
    Advance(u64),
    /// New allow-lists: `window` picks 63 consecutive names (mod `NAMES`);
    /// proxy `i` gets `lists[i]` (indexes into the window) or none.
    Reload {
        window: usize,
        lists: Vec<Option<Vec<usize>>>,
    },
    /// Check every proxy's eligibility for exchange `.0`.
    Check(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..PROXIES, 0..NAMES).prop_map(|(p, e)| Op::Cool(p, e)),
        2 => (0u64..90).prop_map(Op::Advance),
        1 => (
            0..NAMES,
            proptest::collection::vec(
                proptest::option::weighted(0.6, proptest::collection::vec(0..MAX_EXCHANGES, 1..=16)),
                PROXIES,
            ),
        )
            .prop_map(|(window, lists)| Op::Reload { window, lists }),
        2 => (0..NAMES).prop_map(Op::Check),
    ]
}

fn ename(e: usize) -> String {
    format!("e{}", e % NAMES)
}

struct Model {
    allow: Vec<Option<BTreeSet<usize>>>,
    /// (proxy, exchange) → end of the latest cool-down reported.
    cooling: HashMap<(usize, usize), Instant>,
}

impl Model {
    fn allowed(&self, i: usize, e: usize) -> bool {
        self.allow[i].as_ref().is_none_or(|l| l.contains(&e))
    }

    fn cooling(&self, i: usize, e: usize, now: Instant) -> bool {
        self.cooling.get(&(i, e)).is_some_and(|u| *u > now)
    }

    fn specs(&self) -> Vec<ProxySpec> {
        (0..PROXIES)
            .map(|i| {
                let list: Option<Vec<String>> = self.allow[i]
                    .as_ref()
                    .map(|l| l.iter().map(|e| ename(*e)).collect());
                spec(i, list.as_deref())
            })
            .collect()
    }

    fn allow_listed(&self) -> BTreeSet<usize> {
        self.allow.iter().flatten().flatten().copied().collect()
    }
}

/// Eligibility of every proxy for `e`: an allowed proxy with no cool-down
/// is eligible; a proxy outside its allow-list never is. (An allowed
/// proxy cooling down may be eligible when its cool-down was dropped or
/// ended early: the pool says which.)
fn check(p: &mut P, m: &Model, now: Instant, e: usize) -> Result<(), TestCaseError> {
    for i in 0..PROXIES {
        let got = eligible(p, now, i, &ename(e));
        if !m.allowed(i, e) {
            prop_assert!(!got, "p{i} served e{e} outside its allow-list");
        } else if !m.cooling(i, e, now) {
            prop_assert!(got, "p{i} refused e{e} with no cool-down for it");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn junk_never_blocks_reloads_or_leaves_stale_state(
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut m = Model { allow: vec![None; PROXIES], cooling: HashMap::new() };
        let mut p = pool(&m.specs());
        let mut now = T0;
        for op in ops {
            match op {
                Op::Cool(i, e) => {
                    cool(&mut p, now, i, &ename(e), ErrorCategory::RateLimited);
                    let evs = events(&mut p);
                    let recorded = !cooled(&evs).is_empty();
                    prop_assert_eq!(
                        recorded,
                        dropped(&evs).is_empty(),
                        "a cool-down is recorded or reported dropped: {:?}", evs
                    );
                    if recorded {
                        m.cooling.insert((i, e), now + RATE_LIMIT);
                    }
                }
                Op::Advance(s) => now += Duration::from_secs(s),
                Op::Reload { window, lists } => {
                    m.allow = lists
                        .into_iter()
                        .map(|l| l.map(|l| l.into_iter().map(|k| (window + k) % NAMES).collect()))
                        .collect();
                    let r = p.replace_inventory(now, &m.specs());
                    prop_assert!(r.is_ok(), "reload refused: {:?}", r);
                    // Cool-downs ended early stop counting in the model.
                    for x in ended(&events(&mut p)) {
                        m.cooling.retain(|(_, e), _| ename(*e) != x);
                    }
                }
                Op::Check(e) => check(&mut p, &m, now, e)?,
            }
        }
        // Once every cool-down is over, every allowed proxy serves every
        // exchange, and a new cool-down finds room unless the allow-lists
        // hold every entry.
        now += RATE_LIMIT;
        for e in 0..NAMES {
            check(&mut p, &m, now, e)?;
        }
        let fresh = "fresh-exchange";
        cool(&mut p, now, 0, fresh, ErrorCategory::RateLimited);
        let evs = events(&mut p);
        if m.allow_listed().len() < MAX_EXCHANGES {
            prop_assert_eq!(cooled(&evs), vec![pair(0, fresh)]);
        } else {
            prop_assert_eq!(dropped(&evs), vec![pair(0, fresh)]);
        }
    }
}
