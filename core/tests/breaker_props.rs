//! The circuit breaker against a reference model written from its state
//! table, plus example tests for each rule.

use std::collections::VecDeque;

use embassy_time::{Duration, Instant};
use proptest::prelude::*;
use proxy_delegate_core::breaker::{
    Breaker, BreakerConfig, BreakerEvent, BreakerState, Outcome, Permit, RecordError, Rejected,
    TransitionReason,
};

const T0: u64 = 1_000_000;

fn at(ms: u64) -> Instant {
    Instant::from_millis(T0 + ms)
}

// ---------------------------------------------------------------------------
// Reference model: plain vectors and millisecond integers, one rule per line
// of the state table in the breaker's module documentation.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MState {
    Closed,
    Open,
    HalfOpen,
    Forced,
    Disabled,
}

fn mstate(s: BreakerState) -> MState {
    match s {
        BreakerState::Closed => MState::Closed,
        BreakerState::Open => MState::Open,
        BreakerState::HalfOpen => MState::HalfOpen,
        BreakerState::ForcedOpen => MState::Forced,
        BreakerState::Disabled => MState::Disabled,
    }
}

#[derive(Debug, Clone, Copy)]
struct MPermit {
    id: u64,
    epoch: u64,
    started: u64,
}

#[derive(Debug)]
struct Model {
    cfg: BreakerConfig,
    state: MState,
    epoch: u64,
    next_id: u64,
    open_until: u64,
    trips: u32,
    consecutive: u32,
    window: VecDeque<(bool, bool)>,
    probes: Vec<(u64, u64)>,
    successes: u32,
    transitions: Vec<(MState, MState)>,
}

impl Model {
    fn new(cfg: BreakerConfig) -> Self {
        Self {
            cfg,
            state: MState::Closed,
            epoch: 0,
            next_id: 1,
            open_until: 0,
            trips: 0,
            consecutive: 0,
            window: VecDeque::new(),
            probes: Vec::new(),
            successes: 0,
            transitions: Vec::new(),
        }
    }

    fn ms(d: Duration) -> u64 {
        d.as_millis()
    }

    fn go(&mut self, to: MState) {
        self.transitions.push((self.state, to));
        self.state = to;
        self.epoch += 1;
        self.consecutive = 0;
        self.window.clear();
        self.probes.clear();
        self.successes = 0;
    }

    fn open_duration(&self) -> u64 {
        let base = Self::ms(self.cfg.open_duration);
        let cap = Self::ms(self.cfg.max_open_duration);
        let mut d = base;
        for _ in 0..self.trips {
            d = d.saturating_mul(u64::from(self.cfg.open_duration_multiplier));
            if d >= cap {
                return cap;
            }
        }
        d
    }

    fn trip(&mut self, now: u64) {
        self.open_until = now + self.open_duration();
        self.trips += 1;
        self.go(MState::Open);
    }

    fn timers(&mut self, now: u64) {
        if self.state == MState::Open && now >= self.open_until {
            self.go(MState::HalfOpen);
        }
        if self.state == MState::HalfOpen && self.probes.iter().any(|&(_, d)| now >= d) {
            self.trip(now);
        }
    }

    fn acquire(&mut self, now: u64) -> Option<MPermit> {
        self.timers(now);
        let admitted = match self.state {
            MState::Closed | MState::Disabled => true,
            MState::Open | MState::Forced => false,
            MState::HalfOpen => {
                self.probes.len() as u32 + self.successes < u32::from(self.cfg.half_open_probes)
            }
        };
        if !admitted {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        if self.state == MState::HalfOpen {
            self.probes
                .push((id, now + Self::ms(self.cfg.probe_timeout)));
        }
        Some(MPermit {
            id,
            epoch: self.epoch,
            started: now,
        })
    }

    /// `true` when counted (Ok), `false` when stale.
    fn record(&mut self, now: u64, p: MPermit, outcome: Outcome) -> bool {
        self.timers(now);
        if p.epoch != self.epoch {
            return false;
        }
        let slow = now.saturating_sub(p.started) >= Self::ms(self.cfg.slow_call_duration);
        match self.state {
            MState::Closed => {
                if outcome == Outcome::Ignored {
                    return true;
                }
                let failed = outcome == Outcome::Failure;
                self.consecutive = if failed { self.consecutive + 1 } else { 0 };
                self.window.push_back((failed, slow));
                if self.window.len() > usize::from(self.cfg.window_size) {
                    self.window.pop_front();
                }
                let n = self.window.len() as u32;
                let fails = self.window.iter().filter(|w| w.0).count() as u32;
                let slows = self.window.iter().filter(|w| w.1).count() as u32;
                let fr = u32::from(self.cfg.failure_rate_threshold);
                let sr = u32::from(self.cfg.slow_call_rate_threshold);
                let enough = n >= u32::from(self.cfg.minimum_calls);
                if (self.cfg.failure_threshold > 0
                    && self.consecutive >= self.cfg.failure_threshold)
                    || (enough && fr > 0 && fails * 100 >= fr * n)
                    || (enough && sr > 0 && slows * 100 >= sr * n)
                {
                    self.trip(now);
                }
                true
            }
            MState::HalfOpen => {
                let Some(i) = self.probes.iter().position(|&(id, _)| id == p.id) else {
                    return false;
                };
                self.probes.remove(i);
                let slow_fails = slow && self.cfg.slow_call_rate_threshold > 0;
                match outcome {
                    Outcome::Ignored => {}
                    Outcome::Failure => self.trip(now),
                    Outcome::Success if slow_fails => self.trip(now),
                    Outcome::Success => {
                        self.successes += 1;
                        if self.successes >= u32::from(self.cfg.half_open_probes) {
                            self.trips = 0;
                            self.go(MState::Closed);
                        }
                    }
                }
                true
            }
            _ => true,
        }
    }

    fn force_open(&mut self) {
        if self.state != MState::Forced {
            self.go(MState::Forced);
        }
    }

    fn disable(&mut self) {
        if self.state != MState::Disabled {
            self.go(MState::Disabled);
        }
    }

    fn enable(&mut self) {
        if matches!(self.state, MState::Forced | MState::Disabled) {
            self.trips = 0;
            self.go(MState::Closed);
        }
    }

    fn reset(&mut self) {
        self.trips = 0;
        self.go(MState::Closed);
    }
}

// ---------------------------------------------------------------------------
// Property: the breaker and the model agree on every step.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Record { pick: usize, outcome: Outcome },
    Advance { ms: u64, timeout: bool },
    ForceOpen,
    Disable,
    Enable,
    Reset,
    Foreign,
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop_oneof![
        4 => Just(Outcome::Failure),
        4 => Just(Outcome::Success),
        1 => Just(Outcome::Ignored),
    ];
    prop_oneof![
        10 => Just(Op::Acquire),
        10 => (any::<usize>(), outcome).prop_map(|(pick, outcome)| Op::Record { pick, outcome }),
        6 => (0u64..1500, any::<bool>()).prop_map(|(ms, timeout)| Op::Advance { ms, timeout }),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Disable),
        1 => Just(Op::Enable),
        1 => Just(Op::Reset),
        1 => Just(Op::Foreign),
    ]
}

fn config() -> impl Strategy<Value = BreakerConfig> {
    (
        (
            0u32..6,
            1u8..12,
            any::<u8>(),
            prop_oneof![Just(0u8), 1u8..=100],
        ),
        (
            prop_oneof![Just(0u8), 1u8..=100],
            50u64..600,
            100u64..2000,
            1u32..4,
        ),
        (0u64..5000, 1u8..=4, 50u64..1000, any::<u64>()),
    )
        .prop_map(
            |((ft, ws, mc, fr), (sr, slow, open, mult), (extra, probes, pto, seed))| {
                BreakerConfig {
                    failure_threshold: ft,
                    window_size: ws,
                    minimum_calls: 1 + mc % ws,
                    failure_rate_threshold: fr,
                    slow_call_duration: Duration::from_millis(slow),
                    slow_call_rate_threshold: sr,
                    open_duration: Duration::from_millis(open),
                    max_open_duration: Duration::from_millis(open + extra),
                    open_duration_multiplier: mult,
                    half_open_probes: probes,
                    probe_timeout: Duration::from_millis(pto),
                    seed,
                }
            },
        )
}

fn drain(b: &mut Breaker) -> Vec<BreakerEvent> {
    std::iter::from_fn(|| b.poll_event()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn breaker_matches_reference_model(cfg in config(), ops in prop::collection::vec(op(), 1..200)) {
        let mut real = Breaker::new(cfg).expect("valid config");
        let mut other = Breaker::new(BreakerConfig { seed: cfg.seed ^ 0xdead_beef, ..cfg }).expect("valid");
        let mut model = Model::new(cfg);
        let mut now = 0u64;
        let mut outstanding: Vec<(Permit, MPermit)> = Vec::new();
        let mut seen_transitions = 0usize;

        for op in ops {
            match op {
                Op::Acquire => {
                    let r = real.try_acquire(at(now));
                    let m = model.acquire(now);
                    match (r, m) {
                        (Ok(p), Some(mp)) => {
                            prop_assert_eq!(p.id(), mp.id);
                            prop_assert_eq!(p.started(), at(now));
                            prop_assert_eq!(p.is_probe(), model.state == MState::HalfOpen);
                            outstanding.push((p, mp));
                        }
                        (Err(Rejected { state, until }), None) => {
                            prop_assert_eq!(mstate(state), model.state);
                            match model.state {
                                MState::Open => prop_assert_eq!(until, Some(at(model.open_until))),
                                MState::Forced => prop_assert_eq!(until, None),
                                MState::HalfOpen => {
                                    let earliest = model.probes.iter().map(|p| p.1).min().map(at);
                                    prop_assert_eq!(until, earliest);
                                }
                                s => prop_assert!(false, "rejected in {:?}", s),
                            }
                        }
                        (r, m) => prop_assert!(false, "admission differs: real {:?}, model {:?}", r, m),
                    }
                }
                Op::Record { pick, outcome } => {
                    if outstanding.is_empty() {
                        continue;
                    }
                    let (p, mp) = outstanding.swap_remove(pick % outstanding.len());
                    let r = real.record(at(now), p, outcome);
                    let counted = model.record(now, mp, outcome);
                    match r {
                        Ok(()) => prop_assert!(counted, "real counted a permit the model calls stale"),
                        Err(RecordError::StalePermit { id }) => {
                            prop_assert_eq!(id, mp.id);
                            prop_assert!(!counted, "real called stale a permit the model counted");
                        }
                        Err(e) => prop_assert!(false, "unexpected {:?}", e),
                    }
                }
                Op::Advance { ms, timeout } => {
                    now += ms;
                    if timeout {
                        real.handle_timeout(at(now));
                        model.timers(now);
                    }
                }
                Op::ForceOpen => { real.force_open(at(now)); model.force_open(); }
                Op::Disable => { real.disable(); model.disable(); }
                Op::Enable => { real.enable(at(now)); model.enable(); }
                Op::Reset => { real.reset(at(now)); model.reset(); }
                Op::Foreign => {
                    // A permit from another breaker is refused and changes nothing.
                    if let Ok(p) = other.try_acquire(at(now)) {
                        let before = real.state();
                        let r = real.record(at(now), p, Outcome::Failure);
                        prop_assert!(matches!(r, Err(RecordError::ForeignPermit { .. })), "{:?}", r);
                        prop_assert_eq!(real.state(), before);
                    }
                }
            }

            prop_assert_eq!(mstate(real.state()), model.state);
            // Every transition is an event, in order.
            let events = drain(&mut real);
            let expected = &model.transitions[seen_transitions..];
            prop_assert_eq!(events.len(), expected.len());
            for (e, (from, to)) in events.iter().zip(expected) {
                prop_assert_eq!((mstate(e.from), mstate(e.to)), (*from, *to));
            }
            seen_transitions = model.transitions.len();

            // Never more half-open probes than permitted.
            prop_assert!(real.probes_in_flight() <= usize::from(cfg.half_open_probes));
            // Never stuck half-open: either a probe can be admitted, or a
            // probe deadline within probe_timeout is armed.
            if real.state() == BreakerState::HalfOpen && real.probes_in_flight() > 0 {
                let t = real.poll_timeout();
                prop_assert!(t.is_some());
                prop_assert!(t.unwrap() <= at(now) + cfg.probe_timeout);
            }
            if real.state() == BreakerState::Open {
                prop_assert_eq!(real.poll_timeout(), Some(at(model.open_until)));
            }
        }

        // Finally: with no permit ever returned, time alone gets it out of half-open.
        now += cfg.probe_timeout.as_millis() + cfg.max_open_duration.as_millis() + 1;
        real.handle_timeout(at(now));
        prop_assert!(
            !(real.state() == BreakerState::HalfOpen && real.probes_in_flight() > 0),
            "stuck half-open with {} probes", real.probes_in_flight()
        );
    }
}

// ---------------------------------------------------------------------------
// Example tests, one per rule.
// ---------------------------------------------------------------------------

fn call(b: &mut Breaker, now: Instant, latency_ms: u64, outcome: Outcome) {
    let p = b.try_acquire(now).expect("admitted");
    b.record(now + Duration::from_millis(latency_ms), p, outcome)
        .expect("counted");
}

fn only_rates() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: 0,
        ..BreakerConfig::default()
    }
}

#[test]
fn trips_on_five_consecutive_failures_by_default() {
    let mut b = Breaker::new(BreakerConfig {
        failure_rate_threshold: 0,
        ..BreakerConfig::default()
    })
    .unwrap();
    for _ in 0..4 {
        call(&mut b, at(0), 0, Outcome::Failure);
    }
    // A success in between resets the run.
    call(&mut b, at(0), 0, Outcome::Success);
    for _ in 0..4 {
        call(&mut b, at(0), 0, Outcome::Failure);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    call(&mut b, at(0), 0, Outcome::Failure);
    assert_eq!(b.state(), BreakerState::Open);
    let events = drain(&mut b);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, TransitionReason::ConsecutiveFailures);
}

#[test]
fn trips_on_failure_rate_only_after_minimum_calls() {
    let mut b = Breaker::new(only_rates()).unwrap();
    // 9 calls, all failed, but the minimum is 10.
    for _ in 0..9 {
        call(&mut b, at(0), 0, Outcome::Failure);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    call(&mut b, at(0), 0, Outcome::Success);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(drain(&mut b)[0].reason, TransitionReason::FailureRate);

    // Alternating outcomes: 50 % reaches the default 50 % threshold at the 10th call.
    let mut b = Breaker::new(only_rates()).unwrap();
    for i in 0..9 {
        let o = if i % 2 == 0 {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        call(&mut b, at(0), 1, o);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    call(&mut b, at(0), 0, Outcome::Failure);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn failure_rate_window_slides() {
    let mut b = Breaker::new(BreakerConfig {
        window_size: 4,
        minimum_calls: 4,
        failure_rate_threshold: 75,
        ..only_rates()
    })
    .unwrap();
    // F S S S: 25 %; then S pushes the F out; then F F: window S S F F = 50 %.
    for o in [
        Outcome::Failure,
        Outcome::Success,
        Outcome::Success,
        Outcome::Success,
    ] {
        call(&mut b, at(0), 1, o);
    }
    for o in [Outcome::Success, Outcome::Failure, Outcome::Failure] {
        call(&mut b, at(0), 1, o);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    // S F F F = 75 %.
    call(&mut b, at(0), 0, Outcome::Failure);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn slow_successes_trip_on_slow_call_rate() {
    let mut b = Breaker::new(only_rates()).unwrap();
    // 8 slow (2 s) and 2 fast successes: 80 % slow.
    for _ in 0..2 {
        call(&mut b, at(0), 10, Outcome::Success);
    }
    for _ in 0..7 {
        call(&mut b, at(0), 2_000, Outcome::Success);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    call(&mut b, at(0), 2_500, Outcome::Success);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(drain(&mut b)[0].reason, TransitionReason::SlowCallRate);
}

fn trip_now(b: &mut Breaker, now: Instant) {
    b.force_open(now);
    b.reset(now);
    for _ in 0..5 {
        call(b, now, 0, Outcome::Failure);
    }
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn open_duration_grows_to_cap_and_healthy_close_resets_it() {
    let cfg = BreakerConfig {
        max_open_duration: Duration::from_secs(100),
        ..BreakerConfig::default()
    };
    let mut b = Breaker::new(cfg).unwrap();
    let mut now = at(0);
    for _ in 0..5 {
        call(&mut b, now, 0, Outcome::Failure);
    }
    let mut expected = [30u64, 60, 100, 100].into_iter();
    let mut opened_at = now;
    loop {
        let until = b.poll_timeout().expect("open");
        assert_eq!(
            until - opened_at,
            Duration::from_secs(expected.next().unwrap())
        );
        if expected.len() == 0 {
            break;
        }
        // Still rejected just before the end.
        assert!(b.try_acquire(until - Duration::from_millis(1)).is_err());
        now = until;
        let probe = b.try_acquire(now).expect("half-open probe");
        assert!(probe.is_probe());
        b.record(now, probe, Outcome::Failure).unwrap();
        opened_at = now;
    }
    // A healthy close brings it back to 30 s.
    now = b.poll_timeout().unwrap();
    let probe = b.try_acquire(now).unwrap();
    b.record(now, probe, Outcome::Success).unwrap();
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.next_open_duration(), Duration::from_secs(30));
    for _ in 0..5 {
        call(&mut b, now, 0, Outcome::Failure);
    }
    assert_eq!(b.poll_timeout(), Some(now + Duration::from_secs(30)));
}

#[test]
fn half_open_admits_the_configured_number_of_probes() {
    let mut b = Breaker::new(BreakerConfig {
        half_open_probes: 3,
        ..BreakerConfig::default()
    })
    .unwrap();
    trip_now(&mut b, at(0));
    let now = at(30_000);
    let probes: Vec<Permit> = (0..3).map(|_| b.try_acquire(now).unwrap()).collect();
    let r = b.try_acquire(now).unwrap_err();
    assert_eq!(r.state, BreakerState::HalfOpen);
    assert_eq!(r.until, Some(now + Duration::from_secs(5)));
    let mut probes = probes.into_iter();
    b.record(now, probes.next().unwrap(), Outcome::Success)
        .unwrap();
    // A success frees no slot: three successes are needed, at most three out.
    assert!(b.try_acquire(now).is_err());
    b.record(now, probes.next().unwrap(), Outcome::Success)
        .unwrap();
    assert_eq!(b.state(), BreakerState::HalfOpen);
    b.record(now, probes.next().unwrap(), Outcome::Success)
        .unwrap();
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn unreturned_probe_times_out_as_failure() {
    let mut b = Breaker::new(BreakerConfig::default()).unwrap();
    trip_now(&mut b, at(0));
    let now = at(30_000);
    b.handle_timeout(now);
    let probe = b.try_acquire(now).unwrap();
    assert_eq!(b.poll_timeout(), Some(now + Duration::from_secs(5)));
    b.handle_timeout(now + Duration::from_millis(4_999));
    assert_eq!(b.state(), BreakerState::HalfOpen);
    b.handle_timeout(now + Duration::from_secs(5));
    assert_eq!(b.state(), BreakerState::Open);
    let last = drain(&mut b).pop().unwrap();
    assert_eq!(last.reason, TransitionReason::ProbeTimedOut);
    // Returned late: not counted, state unchanged, and the longer open duration applies.
    let late = b.record(now + Duration::from_secs(6), probe, Outcome::Success);
    assert!(matches!(late, Err(RecordError::StalePermit { .. })));
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(
        b.poll_timeout(),
        Some(now + Duration::from_secs(5) + Duration::from_secs(60))
    );
}

#[test]
fn ignored_probe_neither_closes_nor_trips() {
    let mut b = Breaker::new(BreakerConfig::default()).unwrap();
    trip_now(&mut b, at(0));
    let now = at(30_000);
    let probe = b.try_acquire(now).unwrap();
    b.record(now, probe, Outcome::Ignored).unwrap();
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.probes_in_flight(), 0);
    // The slot is free again.
    let probe = b.try_acquire(now).unwrap();
    b.record(now, probe, Outcome::Success).unwrap();
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn ignored_outcomes_do_not_count_in_closed() {
    let mut b = Breaker::new(BreakerConfig::default()).unwrap();
    for _ in 0..4 {
        call(&mut b, at(0), 0, Outcome::Failure);
    }
    for _ in 0..50 {
        call(&mut b, at(0), 10_000, Outcome::Ignored);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    call(&mut b, at(0), 0, Outcome::Failure);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn slow_probe_reopens() {
    let mut b = Breaker::new(BreakerConfig::default()).unwrap();
    trip_now(&mut b, at(0));
    let now = at(30_000);
    let probe = b.try_acquire(now).unwrap();
    b.record(now + Duration::from_millis(2_500), probe, Outcome::Success)
        .unwrap();
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(
        drain(&mut b).pop().unwrap().reason,
        TransitionReason::ProbeSlow
    );
}

#[test]
fn forced_open_and_disabled_switches() {
    let mut b = Breaker::new(BreakerConfig::default()).unwrap();
    let p = b.try_acquire(at(0)).unwrap();
    b.force_open(at(0));
    let r = b.try_acquire(at(1_000_000)).unwrap_err();
    assert_eq!(
        r,
        Rejected {
            state: BreakerState::ForcedOpen,
            until: None
        }
    );
    assert_eq!(b.poll_timeout(), None);
    // A permit from before the switch is stale.
    assert!(matches!(
        b.record(at(0), p, Outcome::Failure),
        Err(RecordError::StalePermit { .. })
    ));
    b.disable();
    for _ in 0..100 {
        call(&mut b, at(0), 0, Outcome::Failure);
    }
    assert_eq!(b.state(), BreakerState::Disabled);
    b.enable(at(0));
    assert_eq!(b.state(), BreakerState::Closed);
    let reasons: Vec<_> = drain(&mut b).iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        [
            TransitionReason::Forced,
            TransitionReason::Disabled,
            TransitionReason::Enabled
        ]
    );
    // enable is a no-op when not forced or disabled.
    b.enable(at(0));
    assert!(drain(&mut b).is_empty());
}

#[test]
fn permit_from_another_breaker_is_refused() {
    let mut a = Breaker::new(BreakerConfig {
        seed: 1,
        ..BreakerConfig::default()
    })
    .unwrap();
    let mut b = Breaker::new(BreakerConfig {
        seed: 2,
        ..BreakerConfig::default()
    })
    .unwrap();
    for _ in 0..10 {
        let p = b.try_acquire(at(0)).unwrap();
        assert!(matches!(
            a.record(at(0), p, Outcome::Failure),
            Err(RecordError::ForeignPermit { .. })
        ));
    }
    assert_eq!(a.state(), BreakerState::Closed);
}

#[test]
fn closed_permit_returned_after_trip_is_stale() {
    let mut b = Breaker::new(BreakerConfig::default()).unwrap();
    let early = b.try_acquire(at(0)).unwrap();
    for _ in 0..5 {
        call(&mut b, at(0), 0, Outcome::Failure);
    }
    let now = at(30_000);
    let probe = b.try_acquire(now).unwrap();
    // The old closed permit must not be taken for the probe.
    assert!(b.record(now, early, Outcome::Success).is_err());
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.probes_in_flight(), 1);
    b.record(now, probe, Outcome::Success).unwrap();
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn invalid_config_names_the_field() {
    let cases = [
        (
            BreakerConfig {
                window_size: 0,
                ..Default::default()
            },
            "breaker.window_size",
        ),
        (
            BreakerConfig {
                window_size: 65,
                ..Default::default()
            },
            "breaker.window_size",
        ),
        (
            BreakerConfig {
                minimum_calls: 21,
                ..Default::default()
            },
            "breaker.minimum_calls",
        ),
        (
            BreakerConfig {
                failure_rate_threshold: 101,
                ..Default::default()
            },
            "breaker.failure_rate_threshold",
        ),
        (
            BreakerConfig {
                slow_call_rate_threshold: 101,
                ..Default::default()
            },
            "breaker.slow_call_rate_threshold",
        ),
        (
            BreakerConfig {
                slow_call_duration: Duration::from_ticks(0),
                ..Default::default()
            },
            "breaker.slow_call_duration",
        ),
        (
            BreakerConfig {
                open_duration: Duration::from_ticks(0),
                ..Default::default()
            },
            "breaker.open_duration",
        ),
        (
            BreakerConfig {
                max_open_duration: Duration::from_secs(1),
                ..Default::default()
            },
            "breaker.max_open_duration",
        ),
        (
            BreakerConfig {
                open_duration_multiplier: 0,
                ..Default::default()
            },
            "breaker.open_duration_multiplier",
        ),
        (
            BreakerConfig {
                half_open_probes: 0,
                ..Default::default()
            },
            "breaker.half_open_probes",
        ),
        (
            BreakerConfig {
                half_open_probes: 9,
                ..Default::default()
            },
            "breaker.half_open_probes",
        ),
        (
            BreakerConfig {
                probe_timeout: Duration::from_ticks(0),
                ..Default::default()
            },
            "breaker.probe_timeout",
        ),
    ];
    for (cfg, field) in cases {
        let err = Breaker::new(cfg).unwrap_err();
        assert_eq!(err.field, field);
        assert!(err.to_string().starts_with(field), "{err}");
    }
}

#[test]
fn event_queue_overflow_is_counted() {
    let mut b = Breaker::new(BreakerConfig::default()).unwrap();
    for i in 0..20 {
        if i % 2 == 0 {
            b.force_open(at(0));
        } else {
            b.reset(at(0));
        }
    }
    assert_eq!(b.dropped_events(), 12);
    assert_eq!(drain(&mut b).len(), 8);
}
