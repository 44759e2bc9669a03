//! Service endpoints on a virtual clock: detection bound, recovery, priority
//! and rotation, seeded jitter, a breaker per endpoint, and URL validation.

use embassy_time::{Duration, Instant};
use proxy_delegate_core::Reason;
use proxy_delegate_core::breaker::{BreakerState, Outcome, TransitionReason};
use proxy_delegate_core::endpoints::{
    EndpointConfig, EndpointEvent, Endpoints, EndpointsConfig, EndpointsError, Health,
    HealthReason, ServiceScheme, ServiceUrl,
};

const CAP: usize = 4;

/// How a simulated endpoint answers health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answers "ok" at once.
    Up,
    /// Answers "not ok" at once.
    Refuse,
    /// Never answers.
    BlackHole,
}

/// A virtual clock that jumps to the earliest `poll_timeout`, as the
/// Resolver's adapter would.
struct Sim {
    eps: Endpoints<CAP>,
    now: Instant,
    modes: Vec<Mode>,
    /// (time, event) in the order they were polled.
    events: Vec<(Instant, EndpointEvent)>,
    /// (time, index) of every check sent.
    checks: Vec<(Instant, usize)>,
}

fn url(s: &str) -> ServiceUrl {
    s.parse().expect("valid service url")
}

fn list(priorities: &[u8]) -> Vec<EndpointConfig> {
    priorities
        .iter()
        .enumerate()
        .map(|(i, p)| EndpointConfig::new(url(&format!("https://svc-{i}.internal:8443")), *p))
        .collect()
}

impl Sim {
    fn new(config: EndpointsConfig, priorities: &[u8]) -> Self {
        let now = Instant::from_secs(1_000);
        Self {
            eps: Endpoints::new(now, config, &list(priorities)).expect("valid"),
            now,
            modes: vec![Mode::Up; priorities.len()],
            events: Vec::new(),
            checks: Vec::new(),
        }
    }

    /// Sends due checks, answers them per mode, collects events.
    fn step(&mut self) {
        while let Some(check) = self.eps.poll_transmit(self.now) {
            assert!(check.deadline > self.now);
            self.checks.push((self.now, check.index));
            match self.modes[check.index] {
                Mode::Up => self
                    .eps
                    .handle_check_result(self.now, check.id, true)
                    .unwrap(),
                Mode::Refuse => self
                    .eps
                    .handle_check_result(self.now, check.id, false)
                    .unwrap(),
                Mode::BlackHole => {}
            }
        }
        while let Some(e) = self.eps.poll_event() {
            self.events.push((self.now, e));
        }
    }

    /// Runs the clock to `until`, jumping from timeout to timeout.
    fn run_until(&mut self, until: Instant) {
        for _ in 0..100_000 {
            self.step();
            match self.eps.poll_timeout() {
                Some(t) if t <= until => {
                    assert!(t >= self.now, "timeout in the past: {t:?} < {:?}", self.now);
                    self.now = t;
                    self.eps.handle_timeout(self.now);
                }
                _ => {
                    self.now = until;
                    self.eps.handle_timeout(self.now);
                    self.step();
                    return;
                }
            }
        }
        panic!("the clock did not reach {until:?}: timeouts do not advance");
    }

    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn first_health_change(&self, index: usize, to: Health) -> Option<Instant> {
        self.events.iter().find_map(|(t, e)| match e {
            EndpointEvent::Health {
                index: i, to: h, ..
            } if *i == index && *h == to => Some(*t),
            _ => None,
        })
    }

    fn call(&mut self, outcome: Outcome) -> Option<usize> {
        let sel = self.eps.select(self.now)?;
        let index = sel.index();
        self.eps.record(self.now, sel, outcome).unwrap();
        Some(index)
    }
}

#[test]
fn dead_endpoint_detected_within_two_seconds_of_failed_call() {
    for mode in [Mode::BlackHole, Mode::Refuse] {
        for seed in 0..50 {
            let mut sim = Sim::new(
                EndpointsConfig {
                    seed,
                    ..Default::default()
                },
                &[0, 0],
            );
            sim.advance(Duration::from_millis(seed * 137 % 20_000));
            // Endpoint 0 dies; the next call to it fails.
            sim.modes[0] = mode;
            let failed_at = loop {
                let sel = sim.eps.select(sim.now).expect("an endpoint");
                let index = sel.index();
                let outcome = if index == 0 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                sim.eps.record(sim.now, sel, outcome).unwrap();
                if index == 0 {
                    break sim.now;
                }
            };
            sim.advance(Duration::from_secs(3));
            let down_at = sim
                .first_health_change(0, Health::Down)
                .unwrap_or_else(|| panic!("seed {seed} {mode:?}: endpoint 0 never marked down"));
            assert!(
                down_at - failed_at <= Duration::from_secs(2),
                "seed {seed} {mode:?}: detected after {} ms",
                (down_at - failed_at).as_millis()
            );
            // It is no longer selected; endpoint 1 takes all calls.
            for _ in 0..10 {
                assert_eq!(sim.call(Outcome::Success), Some(1));
            }
            assert_eq!(sim.eps.health(1), Some(Health::Healthy));
        }
    }
}

#[test]
fn dead_endpoint_detected_within_two_seconds_of_failed_check() {
    for mode in [Mode::BlackHole, Mode::Refuse] {
        for seed in 0..50 {
            let mut sim = Sim::new(
                EndpointsConfig {
                    seed,
                    ..Default::default()
                },
                &[0, 1],
            );
            sim.advance(Duration::from_secs(5));
            sim.modes[0] = mode;
            sim.advance(Duration::from_secs(60));
            // The first failed check: an explicit "not ok", or the end of the
            // first unanswered check's timeout.
            let first_failure = sim
                .events
                .iter()
                .find_map(|(t, e)| match e {
                    EndpointEvent::Health {
                        index: 0,
                        reason: HealthReason::CheckFailed | HealthReason::CheckTimedOut,
                        ..
                    } => Some(*t),
                    _ => None,
                })
                .expect("a failed check");
            let down_at = sim.first_health_change(0, Health::Down).expect("down");
            assert!(
                down_at - first_failure <= Duration::from_secs(2),
                "seed {seed} {mode:?}: {} ms",
                (down_at - first_failure).as_millis()
            );
            // While down it is still checked, every 2 s to 2.4 s (jitter 20 %).
            let later: Vec<Instant> = sim
                .checks
                .iter()
                .filter(|(t, i)| *i == 0 && *t > down_at)
                .map(|(t, _)| *t)
                .collect();
            assert!(later.len() >= 8, "seed {seed}: only {} checks", later.len());
            for pair in later.windows(2) {
                let gap = pair[1] - pair[0];
                let min = if mode == Mode::BlackHole {
                    3_000
                } else {
                    2_000
                };
                assert!(
                    (min..=min + 400).contains(&gap.as_millis()),
                    "seed {seed} {mode:?}: gap {} ms",
                    gap.as_millis()
                );
            }
        }
    }
}

#[test]
fn recovered_endpoint_is_taken_back_after_a_successful_check() {
    let mut sim = Sim::new(EndpointsConfig::default(), &[0, 1]);
    sim.modes[0] = Mode::Refuse;
    assert_eq!(sim.call(Outcome::Failure), Some(0));
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.eps.health(0), Some(Health::Down));
    assert_eq!(
        sim.call(Outcome::Success),
        Some(1),
        "backup while the primary is down"
    );

    sim.modes[0] = Mode::Up;
    let back_from = sim.now;
    sim.advance(Duration::from_secs(3));
    let healthy_at = sim
        .first_health_change(0, Health::Healthy)
        .expect("recovered");
    assert!(healthy_at - back_from <= Duration::from_millis(2_400));
    let reason = sim.events.iter().rev().find_map(|(_, e)| match e {
        EndpointEvent::Health {
            index: 0,
            to: Health::Healthy,
            reason,
            ..
        } => Some(*reason),
        _ => None,
    });
    assert_eq!(reason, Some(HealthReason::CheckSucceeded));
    // Priority 0 takes the traffic again.
    assert_eq!(sim.call(Outcome::Success), Some(0));
    // Routine checks go back to the healthy interval (10 s to 12 s).
    let before = sim.checks.iter().filter(|(_, i)| *i == 0).count();
    sim.advance(Duration::from_secs(12));
    let after = sim.checks.iter().filter(|(_, i)| *i == 0).count();
    assert_eq!(after - before, 1);
}

#[test]
fn priority_first_then_rotation_among_healthy() {
    let mut sim = Sim::new(EndpointsConfig::default(), &[1, 0, 0, 2]);
    let picks: Vec<usize> = (0..6)
        .map(|_| sim.call(Outcome::Success).unwrap())
        .collect();
    assert_eq!(picks, [1, 2, 1, 2, 1, 2]);

    // Endpoint 2 down: endpoint 1 takes every call of priority 0.
    sim.modes[2] = Mode::Refuse;
    let sel = sim.eps.select(sim.now).unwrap();
    assert_eq!(sel.index(), 1);
    sim.eps.record(sim.now, sel, Outcome::Success).unwrap();
    let sel = sim.eps.select(sim.now).unwrap();
    assert_eq!(sel.index(), 2);
    sim.eps.record(sim.now, sel, Outcome::Failure).unwrap();
    sim.step();
    assert_eq!(sim.eps.health(2), Some(Health::Down));
    let picks: Vec<usize> = (0..4)
        .map(|_| sim.call(Outcome::Success).unwrap())
        .collect();
    assert_eq!(picks, [1, 1, 1, 1]);

    // Both priority 0 down: priority 1, then 2.
    sim.modes[1] = Mode::Refuse;
    assert_eq!(sim.call(Outcome::Failure), Some(1));
    sim.step();
    assert_eq!(sim.eps.health(1), Some(Health::Down));
    assert_eq!(sim.call(Outcome::Success), Some(0));
    sim.modes[0] = Mode::BlackHole;
    assert_eq!(sim.call(Outcome::Failure), Some(0));
    // Suspect (check in flight): a healthy endpoint of worse priority is preferred.
    assert_eq!(sim.eps.health(0), Some(Health::Suspect));
    sim.step();
    assert_eq!(sim.call(Outcome::Success), Some(3));
    sim.modes[3] = Mode::BlackHole;
    assert_eq!(sim.call(Outcome::Failure), Some(3));
    sim.step();
    // No endpoint healthy: suspects, best priority first.
    assert_eq!(sim.eps.health(3), Some(Health::Suspect));
    let sel = sim.eps.select(sim.now).unwrap();
    assert_eq!(sel.index(), 0);
    sim.eps.record(sim.now, sel, Outcome::Ignored).unwrap();
    // After the confirming checks time out, nothing is left.
    sim.advance(Duration::from_secs(1));
    assert!(sim.eps.select(sim.now).is_none(), "every endpoint is down");
}

#[test]
fn successful_call_clears_suspicion() {
    let mut sim = Sim::new(EndpointsConfig::default(), &[0]);
    sim.modes[0] = Mode::BlackHole;
    assert_eq!(sim.call(Outcome::Failure), Some(0));
    sim.step();
    assert_eq!(sim.eps.health(0), Some(Health::Suspect));
    assert_eq!(sim.call(Outcome::Success), Some(0));
    assert_eq!(sim.eps.health(0), Some(Health::Healthy));
}

#[test]
fn next_after_hedges_on_another_endpoint_without_moving_rotation() {
    let mut sim = Sim::new(EndpointsConfig::default(), &[0, 0, 1]);
    let first = sim.eps.select(sim.now).unwrap();
    assert_eq!(first.index(), 0);
    let hedge = sim.eps.next_after(sim.now, first.index()).unwrap();
    assert_eq!(hedge.index(), 1);
    let hedge2 = sim.eps.next_after(sim.now, hedge.index()).unwrap();
    assert_eq!(hedge2.index(), 0, "excludes only the endpoint named");
    for s in [first, hedge, hedge2] {
        sim.eps.record(sim.now, s, Outcome::Success).unwrap();
    }
    // The rotation continues after the last `select`, not after the hedges.
    assert_eq!(sim.call(Outcome::Success), Some(1));
    // With one endpoint of priority 0 down, the hedge falls to priority 1.
    sim.modes[1] = Mode::Refuse;
    assert_eq!(sim.call(Outcome::Success), Some(0));
    assert_eq!(sim.call(Outcome::Failure), Some(1));
    sim.step();
    assert_eq!(sim.eps.health(1), Some(Health::Down));
    let hedge = sim.eps.next_after(sim.now, 0).unwrap();
    assert_eq!(hedge.index(), 2);
    sim.eps.record(sim.now, hedge, Outcome::Success).unwrap();
}

#[test]
fn jitter_is_reproducible_by_seed_and_bounded() {
    let schedule = |seed: u64| {
        let mut sim = Sim::new(
            EndpointsConfig {
                seed,
                ..Default::default()
            },
            &[0, 0, 1, 1],
        );
        sim.advance(Duration::from_secs(120));
        sim.checks
    };
    let a = schedule(7);
    assert_eq!(a, schedule(7), "same seed, same schedule");
    assert_ne!(a, schedule(8), "another seed, another schedule");
    // Each endpoint: first check within 20 % of 10 s, then every 10 s to 12 s.
    let start = Instant::from_secs(1_000);
    for index in 0..4 {
        let times: Vec<Instant> = a.iter().filter(|c| c.1 == index).map(|c| c.0).collect();
        assert!(times[0] - start <= Duration::from_secs(2));
        for pair in times.windows(2) {
            let gap = (pair[1] - pair[0]).as_millis();
            assert!((10_000..=12_000).contains(&gap), "gap {gap} ms");
        }
        assert!(times.len() >= 10);
    }
    // The jitter spreads the checks: not all endpoints share one schedule.
    let firsts: Vec<Instant> = (0..4)
        .map(|i| a.iter().find(|c| c.1 == i).unwrap().0)
        .collect();
    assert!(firsts.windows(2).any(|w| w[0] != w[1]));
}

#[test]
fn each_endpoint_has_its_own_breaker() {
    let mut sim = Sim::new(EndpointsConfig::default(), &[0, 1]);
    // Endpoint 0's calls fail but its health checks pass, so it stays
    // selectable until its breaker opens after 5 consecutive failures.
    for _ in 0..5 {
        assert_eq!(sim.call(Outcome::Failure), Some(0));
        sim.step();
        assert_eq!(sim.eps.health(0), Some(Health::Healthy));
    }
    assert_eq!(sim.eps.breaker_state(0), Some(BreakerState::Open));
    assert_eq!(sim.eps.breaker_state(1), Some(BreakerState::Closed));
    let opened = sim.events.iter().find_map(|(_, e)| match e {
        EndpointEvent::Breaker { index, event } if event.to == BreakerState::Open => {
            Some((*index, event.reason))
        }
        _ => None,
    });
    assert_eq!(opened, Some((0, TransitionReason::ConsecutiveFailures)));
    // Healthy but open: endpoint 1 takes the calls.
    for _ in 0..5 {
        assert_eq!(sim.call(Outcome::Success), Some(1));
    }
    // After the open duration, endpoint 0 gets one probe; its success closes it.
    sim.advance(Duration::from_secs(30));
    assert_eq!(sim.eps.breaker_state(0), Some(BreakerState::HalfOpen));
    let probe = sim.eps.select(sim.now).unwrap();
    assert_eq!(probe.index(), 0);
    assert!(probe.permit().is_probe());
    // While the probe is out, endpoint 1 takes the other calls.
    assert_eq!(sim.call(Outcome::Success), Some(1));
    sim.eps.record(sim.now, probe, Outcome::Success).unwrap();
    assert_eq!(sim.eps.breaker_state(0), Some(BreakerState::Closed));
    // Operator switch on one endpoint only.
    sim.eps.breaker_mut(1).unwrap().force_open(sim.now);
    for _ in 0..3 {
        assert_eq!(sim.call(Outcome::Success), Some(0));
    }
    sim.step();
    assert!(sim.events.iter().any(|(_, e)| matches!(
        e,
        EndpointEvent::Breaker { index: 1, event } if event.to == BreakerState::ForcedOpen
    )));
}

#[test]
fn unknown_and_late_check_results_are_typed_errors() {
    let mut sim = Sim::new(EndpointsConfig::default(), &[0]);
    sim.modes[0] = Mode::BlackHole;
    sim.advance(Duration::from_secs(2));
    let (_, index) = *sim.checks.last().expect("a check was sent");
    assert_eq!(index, 0);
    // Check ids start at 1: id 1 is that check, and it timed out.
    assert_eq!(
        sim.eps
            .handle_check_result(sim.now + Duration::from_secs(5), 1, true),
        Err(EndpointsError::UnknownCheck { id: 1 })
    );
    assert_eq!(
        sim.eps.handle_check_result(sim.now, 999, true),
        Err(EndpointsError::UnknownCheck { id: 999 })
    );
}

#[test]
fn construction_errors() {
    let cfg = EndpointsConfig::default();
    let now = Instant::from_secs(0);
    assert_eq!(
        Endpoints::<2>::new(now, cfg, &[]).unwrap_err(),
        EndpointsError::NoEndpoints
    );
    assert_eq!(
        Endpoints::<2>::new(now, cfg, &list(&[0, 0, 0])).unwrap_err(),
        EndpointsError::TooManyEndpoints {
            given: 3,
            capacity: 2
        }
    );
    let bad = EndpointsConfig {
        suspect_check_timeout: Duration::from_secs(3),
        ..cfg
    };
    match Endpoints::<2>::new(now, bad, &list(&[0])).unwrap_err() {
        EndpointsError::Config(e) => assert_eq!(e.field, "endpoints.suspect_check_timeout"),
        e => panic!("unexpected {e:?}"),
    }
    let bad = EndpointsConfig {
        check_jitter_percent: 101,
        ..cfg
    };
    let err = Endpoints::<2>::new(now, bad, &list(&[0])).unwrap_err();
    assert!(
        err.to_string().contains("endpoints.check_jitter_percent"),
        "{err}"
    );
}

#[test]
fn service_url_accepts_http_and_https_base_urls() {
    let u = url("http://10.0.0.5");
    assert_eq!(
        (u.scheme(), u.host(), u.port(), u.path()),
        (ServiceScheme::Http, "10.0.0.5", 80, "")
    );
    assert_eq!(u.to_string(), "http://10.0.0.5");
    let u = url("https://[::1]:9000/api/");
    assert_eq!((u.host(), u.port(), u.path()), ("[::1]", 9000, "/api"));
    assert_eq!(u.to_string(), "https://[::1]:9000/api");
    let u = url("HTTPS://Proxy-Service.Example:443/");
    assert_eq!(u.to_string(), "https://proxy-service.example");
    assert_eq!(
        format!("{u:?}"),
        "ServiceUrl(https://proxy-service.example)"
    );
}

#[test]
fn service_url_rejects_bad_input_with_typed_errors() {
    let reason = |s: &str| {
        let e = s.parse::<ServiceUrl>().unwrap_err();
        assert_eq!(e.field, "service_url", "{s}");
        e.reason
    };
    assert_eq!(reason(""), Reason::Empty);
    assert!(matches!(
        reason("socks5://proxy:1080"),
        Reason::UnknownValue { .. }
    ));
    assert!(matches!(
        reason("proxy.example:80"),
        Reason::Malformed { .. }
    ));
    assert!(matches!(
        reason("https://"),
        Reason::MissingPart { part: "host" }
    ));
    assert!(matches!(reason("https://svc:0"), Reason::OutOfRange { .. }));
    assert!(matches!(
        reason("https://svc:70000"),
        Reason::OutOfRange { .. }
    ));
    assert!(matches!(reason("https://svc:"), Reason::Malformed { .. }));
    assert!(matches!(
        reason("https://svc/a?b=c"),
        Reason::Malformed { .. }
    ));
    assert!(matches!(
        reason("https://svc/a#frag"),
        Reason::Malformed { .. }
    ));
    assert!(matches!(
        reason("https://bad host"),
        Reason::InvalidCharacter { .. }
    ));
    assert!(matches!(
        reason("https://svc/a b"),
        Reason::InvalidCharacter { .. }
    ));
    assert!(matches!(reason("https://[::zz]"), Reason::Malformed { .. }));
    let long = format!("https://svc/{}", "a".repeat(300));
    assert!(matches!(reason(&long), Reason::TooLong { max: 256, .. }));
    // Credentials are refused and never echoed.
    let e = "https://admin:hunter2@svc"
        .parse::<ServiceUrl>()
        .unwrap_err();
    assert!(matches!(e.reason, Reason::Malformed { .. }));
    assert!(!e.to_string().contains("hunter2") && !format!("{e:?}").contains("hunter2"));
    let e = "hunter2:secret://svc".parse::<ServiceUrl>().unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn routine_check_in_flight_does_not_delay_detection() {
    // Routine checks wait up to 5 s for an answer; a failed call must still
    // lead to "down" within 2 s.
    let cfg = EndpointsConfig {
        check_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let mut sim = Sim::new(cfg, &[0, 1]);
    sim.modes[0] = Mode::BlackHole;
    while !sim.checks.iter().any(|c| c.1 == 0) {
        sim.advance(Duration::from_millis(100));
    }
    assert_eq!(sim.eps.health(0), Some(Health::Healthy));
    let failed_at = sim.now;
    assert_eq!(sim.call(Outcome::Failure), Some(0));
    sim.advance(Duration::from_secs(3));
    let down_at = sim.first_health_change(0, Health::Down).expect("down");
    assert!(down_at - failed_at <= Duration::from_secs(2));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Call(Outcome),
        Hedge(Outcome),
        Advance(u64),
        SetMode(usize, Mode),
    }

    fn op() -> impl Strategy<Value = Op> {
        let outcome = prop_oneof![
            Just(Outcome::Success),
            Just(Outcome::Failure),
            Just(Outcome::Ignored)
        ];
        let mode = prop_oneof![Just(Mode::Up), Just(Mode::Refuse), Just(Mode::BlackHole)];
        prop_oneof![
            6 => outcome.clone().prop_map(Op::Call),
            2 => outcome.prop_map(Op::Hedge),
            4 => (0u64..4_000).prop_map(Op::Advance),
            1 => (0usize..CAP, mode).prop_map(|(i, m)| Op::SetMode(i, m)),
        ]
    }

    /// Whether `j` could have been chosen instead of an endpoint of health
    /// `health` and priority `priority`: its breaker is closed (so it admits
    /// any call) and it ranks strictly better.
    fn better(sim: &Sim, j: usize, health: Health, priority: u8) -> bool {
        let h = sim.eps.health(j).unwrap();
        let p = sim.eps.endpoint(j).unwrap().priority;
        let closed = sim.eps.breaker_state(j) == Some(BreakerState::Closed);
        let rank = |h: Health| match h {
            Health::Healthy => 0,
            Health::Suspect => 1,
            Health::Down => 2,
        };
        closed && h != Health::Down && (rank(h), p) < (rank(health), priority)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn selection_and_health_invariants(
            seed in any::<u64>(),
            priorities in prop::collection::vec(0u8..3, 1..=CAP),
            ops in prop::collection::vec(op(), 1..120),
        ) {
            let mut sim = Sim::new(EndpointsConfig { seed, ..Default::default() }, &priorities);
            let n = priorities.len();
            for op in ops {
                match op {
                    Op::Call(outcome) | Op::Hedge(outcome) => {
                        let selected = match op {
                            Op::Call(_) => sim.eps.select(sim.now),
                            _ => sim.eps.next_after(sim.now, 0),
                        };
                        match selected {
                            Some(sel) => {
                                let i = sel.index();
                                let h = sim.eps.health(i).unwrap();
                                let p = sim.eps.endpoint(i).unwrap().priority;
                                prop_assert_ne!(h, Health::Down, "selected a down endpoint");
                                if matches!(op, Op::Hedge(_)) {
                                    prop_assert_ne!(i, 0, "hedge on the excluded endpoint");
                                }
                                for j in (0..n).filter(|j| *j != i && !(matches!(op, Op::Hedge(_)) && *j == 0)) {
                                    prop_assert!(!better(&sim, j, h, p), "endpoint {} ranks better than {}", j, i);
                                }
                                // A dead endpoint fails its calls.
                                let outcome = if sim.modes[i] == Mode::Up { outcome } else { Outcome::Failure };
                                sim.eps.record(sim.now, sel, outcome).unwrap();
                            }
                            None => {
                                for j in 0..n {
                                    let excluded = matches!(op, Op::Hedge(_)) && j == 0;
                                    prop_assert!(excluded || !better(&sim, j, Health::Down, u8::MAX),
                                        "nothing selected but endpoint {} was usable", j);
                                }
                            }
                        }
                        sim.step();
                    }
                    Op::Advance(ms) => sim.advance(Duration::from_millis(ms)),
                    Op::SetMode(i, mode) => {
                        if i < n {
                            sim.modes[i] = mode;
                        }
                    }
                }
                // No endpoint stays suspect longer than the suspect check timeout.
                for j in 0..n {
                    if sim.eps.health(j) == Some(Health::Suspect) {
                        let since = sim.events.iter().rev().find_map(|(t, e)| match e {
                            EndpointEvent::Health { index, to: Health::Suspect, .. } if *index == j => Some(*t),
                            _ => None,
                        }).expect("a suspect event");
                        prop_assert!(sim.now - since <= Duration::from_secs(1),
                            "endpoint {} suspect for {} ms", j, (sim.now - since).as_millis());
                    }
                }
            }
        }
    }
}
