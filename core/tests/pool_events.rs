//! `core::pool` never loses an event: the event queue holds 64, and timers
//! that end at once (hundreds of ejections, leases, a reload's restores for
//! the share limit) wait for room instead of pushing events out. A caller
//! that drains after every call and calls `handle_timeout` again while
//! `poll_timeout` is not after `now` gets every one of them.

use std::collections::HashMap;

use embassy_time::{Duration, Instant};
use proxy_delegate_core::model::{
    ConnectionType, ErrorCategory, ExchangeId, FeedbackEvent, ProxyFeedback, ProxyId, ProxyRequest,
};
use proxy_delegate_core::pool::{
    Event, Pool, PoolConfig, ProxySpec, ProxyState, RestoreCause, StrategyKind,
};
use proxy_delegate_core::storage::Boxed;

const T0: Instant = Instant::from_secs(10_000);

fn name(i: usize) -> String {
    format!("p{i}")
}

fn id(i: usize) -> ProxyId {
    name(i).parse().unwrap()
}

fn spec(i: usize) -> ProxySpec {
    let url = format!(
        "socks5://u:pw@10.{}.{}.{}:1080",
        i / 65_536,
        (i / 256) % 256,
        i % 256
    )
    .parse()
    .unwrap();
    ProxySpec::new(id(i), url)
}

fn specs(range: std::ops::Range<usize>) -> Vec<ProxySpec> {
    range.map(spec).collect()
}

fn feedback(i: usize, event: FeedbackEvent, category: Option<ErrorCategory>) -> ProxyFeedback {
    ProxyFeedback {
        proxy_id: Some(id(i)),
        proxy_url: None,
        exchange_id: "binance".parse::<ExchangeId>().unwrap(),
        connection_type: ConnectionType::Websocket,
        event,
        success: !matches!(event, FeedbackEvent::Failure | FeedbackEvent::Timeout),
        latency_ms: None,
        error_category: category,
        error_details: None,
        timestamp: "2026-01-01T00:00:00Z".parse().unwrap(),
        client_id: "c".parse().unwrap(),
    }
}

fn config() -> PoolConfig {
    PoolConfig {
        strategy: StrategyKind::RoundRobin,
        eject_consecutive_failures: 1,
        max_ejected_percent: 100,
        eject_base: Duration::from_secs(30),
        lease_ttl: Duration::from_secs(600),
        ..PoolConfig::default()
    }
}

/// The pools under test keep their slots on the heap: any test thread's
/// stack holds the rest.
type Big<const N: usize> = Pool<N, 256, Boxed>;

fn drain<const N: usize>(p: &mut Big<N>, into: &mut Vec<Event>) {
    while let Some(e) = p.poll_event() {
        into.push(e);
    }
}

/// The driver loop the pool documents: handle the timers, drain, again
/// until nothing is due at `now`. Returns the events and the turns taken.
fn drive<const N: usize>(p: &mut Big<N>, now: Instant) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut turns = 0;
    loop {
        p.handle_timeout(now);
        drain(p, &mut events);
        turns += 1;
        assert!(turns <= 1_000, "the timers make no progress");
        if p.poll_timeout().is_none_or(|t| t > now) {
            return (events, turns);
        }
    }
}

/// Ejects proxies `range` at `now`, draining after each (as the service
/// does), and checks each ejection was reported.
fn eject_all<const N: usize>(p: &mut Big<N>, now: Instant, range: std::ops::Range<usize>) {
    for i in range {
        p.handle_feedback(
            now,
            &feedback(i, FeedbackEvent::Failure, Some(ErrorCategory::ProxyConnect)),
        )
        .unwrap();
        let mut events = Vec::new();
        drain(p, &mut events);
        assert!(
            matches!(events.as_slice(), [Event::Ejected { .. }]),
            "p{i}: {events:?}"
        );
    }
}

fn restored(events: &[Event]) -> HashMap<String, RestoreCause> {
    let mut out = HashMap::new();
    for e in events {
        if let Event::Restored { proxy, cause } = e {
            let again = out.insert(proxy.to_string(), *cause);
            assert!(again.is_none(), "{proxy} restored twice");
        }
    }
    out
}

#[test]
fn two_hundred_ejections_ending_at_once_are_all_reported() {
    let mut p = Big::<256>::new_boxed(config()).unwrap();
    p.replace_inventory(T0, &specs(0..200)).unwrap();
    eject_all(&mut p, T0, 0..200);
    assert_eq!(p.stats().ejected, 200);
    let end = p.poll_timeout().unwrap();
    assert_eq!(end, T0 + Duration::from_secs(30));

    // One call handles what fits in the queue; the rest stays due.
    p.handle_timeout(end);
    let mut first = Vec::new();
    drain(&mut p, &mut first);
    assert!(!first.is_empty() && first.len() < 200, "{}", first.len());
    assert_eq!(p.poll_timeout(), Some(end), "the rest stays due");

    let (rest, turns) = drive(&mut p, end);
    assert!(turns >= 3, "{turns} turns");
    let mut all = first;
    all.extend(rest);
    let back = restored(&all);
    assert_eq!(back.len(), 200, "every restoration arrives");
    assert!(back.values().all(|c| *c == RestoreCause::Expired));
    assert_eq!(all.len(), 200);
    assert_eq!(p.events_dropped(), 0);
    assert_eq!(p.stats().ejected, 0);
    assert!(p.proxies(end).all(|s| s.state == ProxyState::Active));
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn leases_and_ejections_ending_together_lose_nothing() {
    let mut p = Big::<256>::new_boxed(PoolConfig {
        lease_ttl: Duration::from_secs(30),
        ..config()
    })
    .unwrap();
    p.replace_inventory(T0, &specs(0..150)).unwrap();
    // Two leases per proxy, then an ejection: both end at T0 + 30 s.
    for i in 0..150 {
        for _ in 0..3 {
            p.handle_feedback(T0, &feedback(i, FeedbackEvent::ConnectStart, None))
                .unwrap();
        }
    }
    eject_all(&mut p, T0, 0..150);
    let end = T0 + Duration::from_secs(30);
    let (events, _) = drive(&mut p, end);
    assert_eq!(restored(&events).len(), 150);
    let expired: u32 = events
        .iter()
        .map(|e| match e {
            Event::LeasesExpired { count, .. } => *count,
            _ => 0,
        })
        .sum();
    assert_eq!(expired, 2 * 150, "every lease left open expires, reported");
    assert_eq!(events.len(), 300);
    assert_eq!(p.events_dropped(), 0);
    assert!(p.proxies(end).all(|s| s.open_connections == 0));
}

#[test]
fn a_late_driver_gets_every_event_too() {
    // The driver wakes long after the ejections ended: the same events, all.
    let mut p = Big::<256>::new_boxed(config()).unwrap();
    p.replace_inventory(T0, &specs(0..200)).unwrap();
    eject_all(&mut p, T0, 0..200);
    let late = T0 + Duration::from_secs(3_600);
    let (events, _) = drive(&mut p, late);
    assert_eq!(restored(&events).len(), 200);
    assert_eq!(p.events_dropped(), 0);
}

#[test]
fn feedback_and_selection_make_progress_and_drop_nothing() {
    // The service drains after each feedback; selections drain nothing.
    // Neither loses an event while the timers are held back.
    let mut p = Big::<256>::new_boxed(config()).unwrap();
    p.replace_inventory(T0, &specs(0..200)).unwrap();
    eject_all(&mut p, T0, 0..200);
    let end = T0 + Duration::from_secs(30);
    let request = ProxyRequest::new(
        "binance".parse().unwrap(),
        ConnectionType::Websocket,
        "c".parse().unwrap(),
    );
    for _ in 0..10 {
        // A selection with a full queue still answers (a proxy whose
        // ejection was handled), and pushes nothing out.
        assert!(p.select(end, &request).proxy_url.is_some());
    }
    let mut events = Vec::new();
    let mut rounds = 0;
    while p.poll_timeout().is_some_and(|t| t <= end) {
        rounds += 1;
        assert!(rounds < 1_000);
        p.handle_feedback(end, &feedback(0, FeedbackEvent::Success, None))
            .unwrap();
        drain(&mut p, &mut events);
    }
    assert_eq!(restored(&events).len(), 200);
    assert_eq!(p.events_dropped(), 0);
}

#[test]
fn a_reload_that_restores_many_for_the_share_limit_loses_none() {
    let mut p = Big::<512>::new_boxed(PoolConfig {
        max_ejected_percent: 50,
        ..config()
    })
    .unwrap();
    p.replace_inventory(T0, &specs(0..400)).unwrap();
    eject_all(&mut p, T0, 0..200);
    assert_eq!(p.stats().ejected, 200);
    // Only the ejected 200 stay: at most 100 may be ejected now.
    let t = T0 + Duration::from_secs(1);
    p.replace_inventory(t, &specs(0..200)).unwrap();
    let mut events = Vec::new();
    drain(&mut p, &mut events);
    let (rest, _) = drive(&mut p, t);
    events.extend(rest);
    let back = restored(&events);
    assert_eq!(back.len(), 100, "{events:?}");
    assert!(back.values().all(|c| *c == RestoreCause::ShareLimit));
    assert_eq!(p.events_dropped(), 0);
    let stats = p.stats();
    assert_eq!((stats.ejected, stats.max_ejected), (100, 100));
    // Those whose ejections end first came back: all ended at once,
    // so any 100; the other 100 still end at T0 + 30 s.
    let ejected: Vec<_> = p
        .proxies(t)
        .filter(|s| s.state == ProxyState::Ejected)
        .map(|s| s.ejected_until)
        .collect();
    assert_eq!(ejected.len(), 100);
    assert!(
        ejected
            .iter()
            .all(|u| *u == Some(T0 + Duration::from_secs(30)))
    );
}

#[test]
fn a_reload_keeps_room_for_the_cool_downs_it_ends() {
    // 63 exchanges cooling down fill the exchange table; 200 ejections end
    // when a reload arrives whose allow-lists name 63 new exchanges: the
    // reload ends the 63 cool-downs (63 events) and the timers wait.
    let mut p = Big::<256>::new_boxed(config()).unwrap();
    p.replace_inventory(T0, &specs(0..200)).unwrap();
    for e in 0..63 {
        // A proxy holds four cool-downs: 16 proxies hold the 63.
        let mut f = feedback(
            199 - e / 4,
            FeedbackEvent::Failure,
            Some(ErrorCategory::RateLimited),
        );
        f.exchange_id = format!("cool-{e}").parse().unwrap();
        p.handle_feedback(T0, &f).unwrap();
        let mut evs = Vec::new();
        drain(&mut p, &mut evs);
        assert!(
            matches!(evs.as_slice(), [Event::CooledDown { .. }]),
            "{evs:?}"
        );
    }
    eject_all(&mut p, T0, 0..180);
    let t = T0 + Duration::from_secs(30);
    let mut next = specs(0..200);
    for (i, s) in next.iter_mut().enumerate().take(63) {
        *s = s.clone().with_exchange(format!("new-{i}").parse().unwrap());
    }
    p.replace_inventory(t, &next).unwrap();
    let mut events = Vec::new();
    drain(&mut p, &mut events);
    let (rest, _) = drive(&mut p, t);
    events.extend(rest);
    let ended = events
        .iter()
        .filter(|e| matches!(e, Event::CoolDownsEnded { .. }))
        .count();
    assert_eq!(ended, 63);
    assert_eq!(restored(&events).len(), 180);
    assert_eq!(p.events_dropped(), 0);
}
