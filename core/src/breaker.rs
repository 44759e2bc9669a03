//! A circuit breaker for calls to the proxy service: closed, open, half-open,
//! forced-open and disabled.
//!
//! The breaker is a sans-IO state machine. It never reads a clock: every input
//! takes `now`, and [`Breaker::poll_timeout`] says when [`Breaker::handle_timeout`]
//! must be called next. See [`Breaker`] for the call order.
//!
//! # States
//!
//! | state        | admits                                   | leaves for                                   |
//! |--------------|------------------------------------------|----------------------------------------------|
//! | `Closed`     | every call                               | `Open` when a trip rule fires                |
//! | `Open`       | nothing                                  | `HalfOpen` once the open duration has passed |
//! | `HalfOpen`   | up to `half_open_probes` probes at once  | `Closed` after that many successful probes; `Open` on a failed, slow or timed-out probe |
//! | `ForcedOpen` | nothing                                  | `Closed` on [`Breaker::enable`] or [`Breaker::reset`] |
//! | `Disabled`   | every call, outcomes are not counted     | `Closed` on [`Breaker::enable`] or [`Breaker::reset`]; `ForcedOpen` on [`Breaker::force_open`] |
//!
//! Trip rules (evaluated in `Closed` after each counted outcome):
//!
//! * `failure_threshold` consecutive failures;
//! * over the last `window_size` calls (once at least `minimum_calls` are in the
//!   window), a failure rate of at least `failure_rate_threshold` percent;
//! * over the same window, a rate of slow calls (latency at least
//!   `slow_call_duration`, success or failure) of at least
//!   `slow_call_rate_threshold` percent.
//!
//! Each trip from `HalfOpen` back to `Open` doubles the open duration (by
//! `open_duration_multiplier`), up to `max_open_duration`; a close from
//! `HalfOpen` (a healthy close) or a reset brings it back to `open_duration`.

use core::fmt;

use embassy_time::{Duration, Instant};

use crate::{Reason, ValidationError};

/// Most half-open probes a breaker can be configured to admit at once.
pub const MAX_HALF_OPEN_PROBES: u8 = 8;
/// Largest count-based sliding window, in calls.
pub const MAX_WINDOW_SIZE: u8 = 64;
/// Capacity of a breaker's event queue; when it is full the oldest event is
/// dropped and counted in [`Breaker::dropped_events`].
pub const EVENT_QUEUE_LEN: usize = 8;

/// Configuration of a [`Breaker`]. Every field has a documented default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that trip the breaker; `0` turns this rule off.
    /// Default 5.
    pub failure_threshold: u32,
    /// Size of the count-based sliding window, 1 to [`MAX_WINDOW_SIZE`] calls.
    /// Default 20.
    pub window_size: u8,
    /// Calls the window must hold before a rate rule may fire, 1 to
    /// `window_size`. Default 10.
    pub minimum_calls: u8,
    /// Failure rate, in percent (1 to 100), that trips the breaker; `0` turns
    /// this rule off. Default 50.
    pub failure_rate_threshold: u8,
    /// A call whose latency (from [`Permit::started`] to the `now` given to
    /// [`Breaker::record`]) is at least this long is slow. Must not be zero.
    /// Default 2 s.
    pub slow_call_duration: Duration,
    /// Slow-call rate, in percent (1 to 100), that trips the breaker; `0` turns
    /// this rule off (and then a slow half-open probe still counts as a
    /// success). Default 80.
    pub slow_call_rate_threshold: u8,
    /// How long the breaker stays open after its first trip. Must not be zero.
    /// Default 30 s.
    pub open_duration: Duration,
    /// Cap on the open duration after repeated trips; at least `open_duration`.
    /// Default 5 min.
    pub max_open_duration: Duration,
    /// Factor applied to the open duration on each further trip without a
    /// healthy close in between, 1 to 16. Default 2.
    pub open_duration_multiplier: u32,
    /// Probes admitted at once in half-open, and successful probes needed to
    /// close, 1 to [`MAX_HALF_OPEN_PROBES`]. Default 1.
    pub half_open_probes: u8,
    /// A half-open probe not returned within this time counts as a failure.
    /// Must not be zero. Default 5 s.
    pub probe_timeout: Duration,
    /// Seed from which the breaker derives the tag that marks its permits, so
    /// that a permit given to another breaker is recognised. Breakers that
    /// may see each other's permits need different seeds. Default 0.
    pub seed: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            window_size: 20,
            minimum_calls: 10,
            failure_rate_threshold: 50,
            slow_call_duration: Duration::from_secs(2),
            slow_call_rate_threshold: 80,
            open_duration: Duration::from_secs(30),
            max_open_duration: Duration::from_secs(300),
            open_duration_multiplier: 2,
            half_open_probes: 1,
            probe_timeout: Duration::from_secs(5),
            seed: 0,
        }
    }
}

impl BreakerConfig {
    /// Checks every field; the error names the field (`breaker.<field>`) and
    /// the accepted range.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let range = |ok: bool, field: &'static str, expected: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(ValidationError::new(field, Reason::OutOfRange { expected }))
            }
        };
        range(
            (1..=MAX_WINDOW_SIZE).contains(&self.window_size),
            "breaker.window_size",
            "1 to 64 calls",
        )?;
        range(
            (1..=self.window_size).contains(&self.minimum_calls),
            "breaker.minimum_calls",
            "1 to breaker.window_size calls",
        )?;
        range(
            self.failure_rate_threshold <= 100,
            "breaker.failure_rate_threshold",
            "0 (off) or 1 to 100 percent",
        )?;
        range(
            self.slow_call_rate_threshold <= 100,
            "breaker.slow_call_rate_threshold",
            "0 (off) or 1 to 100 percent",
        )?;
        range(
            self.slow_call_duration.as_ticks() > 0,
            "breaker.slow_call_duration",
            "a duration above zero",
        )?;
        range(
            self.open_duration.as_ticks() > 0,
            "breaker.open_duration",
            "a duration above zero",
        )?;
        range(
            self.max_open_duration >= self.open_duration,
            "breaker.max_open_duration",
            "at least breaker.open_duration",
        )?;
        range(
            (1..=16).contains(&self.open_duration_multiplier),
            "breaker.open_duration_multiplier",
            "1 to 16",
        )?;
        range(
            (1..=MAX_HALF_OPEN_PROBES).contains(&self.half_open_probes),
            "breaker.half_open_probes",
            "1 to 8 probes",
        )?;
        range(
            self.probe_timeout.as_ticks() > 0,
            "breaker.probe_timeout",
            "a duration above zero",
        )?;
        Ok(())
    }
}

/// The state of a [`Breaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls flow; outcomes are counted against the trip rules.
    Closed,
    /// Calls are rejected until the open duration has passed.
    Open,
    /// A bounded number of probes decide between closing and opening again.
    HalfOpen,
    /// Rejects every call until enabled or reset (operator switch).
    ForcedOpen,
    /// Admits every call and counts nothing (quick-disable switch).
    Disabled,
}

crate::labels! {
    /// Lower-case name for logs and metrics labels, e.g. `half_open`.
    BreakerState {
        Closed => "closed",
        Open => "open",
        HalfOpen => "half_open",
        ForcedOpen => "forced_open",
        Disabled => "disabled",
    }
}

/// Why a transition happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransitionReason {
    /// `failure_threshold` consecutive failures.
    ConsecutiveFailures,
    /// The failure rate over the window reached its threshold.
    FailureRate,
    /// The slow-call rate over the window reached its threshold.
    SlowCallRate,
    /// The open duration passed.
    OpenElapsed,
    /// Enough half-open probes succeeded.
    ProbesSucceeded,
    /// A half-open probe failed.
    ProbeFailed,
    /// A half-open probe succeeded but was slow.
    ProbeSlow,
    /// A half-open probe was not returned before its deadline.
    ProbeTimedOut,
    /// [`Breaker::force_open`].
    Forced,
    /// [`Breaker::disable`].
    Disabled,
    /// [`Breaker::enable`].
    Enabled,
    /// [`Breaker::reset`].
    Reset,
}

crate::labels! {
    /// Lower-case name for logs and metrics labels, e.g. `probe_timed_out`.
    TransitionReason {
        ConsecutiveFailures => "consecutive_failures",
        FailureRate => "failure_rate",
        SlowCallRate => "slow_call_rate",
        OpenElapsed => "open_elapsed",
        ProbesSucceeded => "probes_succeeded",
        ProbeFailed => "probe_failed",
        ProbeSlow => "probe_slow",
        ProbeTimedOut => "probe_timed_out",
        Forced => "forced",
        Disabled => "disabled",
        Enabled => "enabled",
        Reset => "reset",
    }
}

/// A state change, for the adapter to log and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BreakerEvent {
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
    /// Why.
    pub reason: TransitionReason,
}

impl fmt::Display for BreakerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "breaker {} -> {} ({})", self.from, self.to, self.reason)
    }
}

/// How a call admitted by a [`Permit`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded (it may still be slow).
    Success,
    /// The call failed.
    Failure,
    /// The caller gave up (deadline, cancellation): the call says nothing about
    /// the service. It neither closes nor trips the breaker; a half-open probe
    /// slot is freed.
    Ignored,
}

/// Admission to make one call. Give it back with [`Breaker::record`].
///
/// Not `Clone` or `Copy`, so a permit is recorded at most once. A half-open
/// probe permit that is never given back counts as a failure once its
/// deadline passes; a closed-state permit that is never given back is simply
/// not counted.
#[must_use = "give the permit back with Breaker::record, or the call is lost (a probe counts as failed)"]
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    tag: u32,
    id: u64,
    epoch: u32,
    started: Instant,
    probe: bool,
}

impl Permit {
    /// The permit's id, unique within its breaker; useful as a log field.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// When the permit was issued: the start of the call.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Whether this permit is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// A call the breaker refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// The state that refused the call: `Open`, `HalfOpen` (all probes in
    /// flight) or `ForcedOpen`.
    pub state: BreakerState,
    /// When asking again may succeed: the end of the open duration, or the
    /// earliest probe deadline in half-open; `None` when forced open.
    pub until: Option<Instant>,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.until {
            Some(until) => write!(
                f,
                "circuit breaker is {}: call rejected; retry at {} ms or use a fallback",
                self.state,
                until.as_millis()
            ),
            None => write!(
                f,
                "circuit breaker is {}: call rejected until an operator enables or resets it",
                self.state
            ),
        }
    }
}

impl core::error::Error for Rejected {}

/// A permit [`Breaker::record`] could not count. The breaker's state is
/// unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// The permit was issued by another breaker.
    ForeignPermit {
        /// The permit's id.
        id: u64,
    },
    /// The permit was issued before the breaker's last transition (a closed
    /// call returned after a trip, or a probe already counted as timed out).
    StalePermit {
        /// The permit's id.
        id: u64,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::ForeignPermit { id } => write!(
                f,
                "permit {id} was issued by another breaker; record it on the breaker that issued it"
            ),
            RecordError::StalePermit { id } => write!(
                f,
                "permit {id} predates the breaker's last state change (or its probe deadline passed); its outcome was not counted"
            ),
        }
    }
}

impl core::error::Error for RecordError {}

#[derive(Debug, Clone, Copy)]
struct Probe {
    id: u64,
    deadline: Instant,
}

/// Count-based sliding window of outcomes, as bit masks.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    failed: u64,
    slow: u64,
    len: u8,
    pos: u8,
}

impl Window {
    #[inline]
    fn push(&mut self, size: u8, failed: bool, slow: bool) {
        let bit = 1u64 << self.pos;
        self.failed = (self.failed & !bit) | if failed { bit } else { 0 };
        self.slow = (self.slow & !bit) | if slow { bit } else { 0 };
        self.pos = if self.pos + 1 >= size {
            0
        } else {
            self.pos + 1
        };
        if self.len < size {
            self.len += 1;
        }
    }
}

/// A circuit breaker (see the [module documentation](self) for the state
/// table and trip rules).
///
/// # Call order
///
/// 1. Before each call: [`try_acquire(now)`](Self::try_acquire). `Ok(permit)`
///    admits the call; `Err(Rejected)` means use a fallback (it says until when).
/// 2. When the call ends: [`record(now, permit, outcome)`](Self::record). The
///    latency `now - permit.started()` decides whether the call was slow.
///    `Outcome::Ignored` when the caller gave up.
/// 3. After any input: drain [`poll_event`](Self::poll_event) until `None`
///    and log or count each transition.
/// 4. Arm a timer at [`poll_timeout`](Self::poll_timeout); when it fires (or
///    any time later) call [`handle_timeout(now)`](Self::handle_timeout), then
///    go to 3. Every input also applies the timers that have passed, so a late
///    `handle_timeout` never leaves the breaker in a wrong state.
///
/// Operator switches, at any time: [`force_open`](Self::force_open),
/// [`disable`](Self::disable), [`enable`](Self::enable), [`reset`](Self::reset).
///
/// `now` must not go backwards; if it does, the breaker treats the earlier
/// instant as "no time has passed".
///
/// ```
/// use embassy_time::{Duration, Instant};
/// use proxy_delegate_core::breaker::{Breaker, BreakerConfig, BreakerState, Outcome};
///
/// let config = BreakerConfig { failure_threshold: 2, ..BreakerConfig::default() };
/// let mut breaker = Breaker::new(config)?;
/// let mut now = Instant::from_secs(100);
///
/// // Two failed calls trip it.
/// for _ in 0..2 {
///     let permit = breaker.try_acquire(now).expect("closed");
///     now += Duration::from_millis(10);
///     breaker.record(now, permit, Outcome::Failure)?;
/// }
/// assert_eq!(breaker.state(), BreakerState::Open);
/// let event = breaker.poll_event().expect("a transition");
/// assert_eq!((event.from, event.to), (BreakerState::Closed, BreakerState::Open));
///
/// // Open: calls are rejected until the open duration (30 s) has passed.
/// let rejected = breaker.try_acquire(now).unwrap_err();
/// assert_eq!(rejected.until, breaker.poll_timeout());
///
/// // At the timeout it goes half-open and admits one probe; its success closes it.
/// now = breaker.poll_timeout().expect("open until");
/// breaker.handle_timeout(now);
/// assert_eq!(breaker.state(), BreakerState::HalfOpen);
/// let probe = breaker.try_acquire(now).expect("one probe");
/// assert!(breaker.try_acquire(now).is_err(), "only one probe at a time");
/// breaker.record(now + Duration::from_millis(5), probe, Outcome::Success)?;
/// assert_eq!(breaker.state(), BreakerState::Closed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    tag: u32,
    state: BreakerState,
    epoch: u32,
    next_id: u64,
    consecutive_failures: u32,
    window: Window,
    open_until: Instant,
    /// Trips without a healthy close in between (drives the open duration).
    trips: u32,
    probes: heapless::Vec<Probe, { MAX_HALF_OPEN_PROBES as usize }>,
    probe_successes: u8,
    events: heapless::Deque<BreakerEvent, EVENT_QUEUE_LEN>,
    dropped_events: u64,
}

impl Breaker {
    /// A closed breaker. Fails when a config field is out of range; the error
    /// names the field.
    pub fn new(config: BreakerConfig) -> Result<Self, ValidationError> {
        config.validate()?;
        let tag = fastrand::Rng::with_seed(config.seed).u32(..);
        Ok(Self {
            config,
            tag,
            state: BreakerState::Closed,
            epoch: 0,
            next_id: 1,
            consecutive_failures: 0,
            window: Window::default(),
            open_until: Instant::MIN,
            trips: 0,
            probes: heapless::Vec::new(),
            probe_successes: 0,
            events: heapless::Deque::new(),
            dropped_events: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state (as of the last input; call
    /// [`handle_timeout`](Self::handle_timeout) first to apply elapsed timers).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Half-open probes currently out.
    pub fn probes_in_flight(&self) -> usize {
        self.probes.len()
    }

    /// The open duration the next trip will use.
    pub fn next_open_duration(&self) -> Duration {
        let mut d = self.config.open_duration;
        for _ in 0..self.trips {
            d = d
                .checked_mul(self.config.open_duration_multiplier)
                .unwrap_or(Duration::MAX);
            if d >= self.config.max_open_duration {
                return self.config.max_open_duration;
            }
        }
        d
    }

    /// Events dropped because the queue ([`EVENT_QUEUE_LEN`]) was full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Asks to make one call. See the call order on [`Breaker`].
    #[inline]
    pub fn try_acquire(&mut self, now: Instant) -> Result<Permit, Rejected> {
        self.handle_timeout(now);
        match self.state {
            BreakerState::Closed | BreakerState::Disabled => Ok(self.permit(now, false)),
            BreakerState::Open => Err(Rejected {
                state: BreakerState::Open,
                until: Some(self.open_until),
            }),
            BreakerState::ForcedOpen => Err(Rejected {
                state: BreakerState::ForcedOpen,
                until: None,
            }),
            BreakerState::HalfOpen => {
                let used = self.probes.len() + usize::from(self.probe_successes);
                if used < usize::from(self.config.half_open_probes) {
                    let permit = self.permit(now, true);
                    let deadline = now.saturating_add(self.config.probe_timeout);
                    // Cannot fail: `used < half_open_probes <= capacity`.
                    let _ = self.probes.push(Probe {
                        id: permit.id,
                        deadline,
                    });
                    Ok(permit)
                } else {
                    Err(Rejected {
                        state: BreakerState::HalfOpen,
                        until: self.earliest_probe_deadline(),
                    })
                }
            }
        }
    }

    /// Gives a permit back with the call's outcome. See the call order on
    /// [`Breaker`].
    ///
    /// A permit from another breaker, or one issued before the last
    /// transition (including a probe whose deadline has passed, which was
    /// already counted as a failure), is not counted: the result is a
    /// [`RecordError`] and the state is unchanged. In `Disabled` every outcome
    /// is accepted and not counted.
    #[inline]
    pub fn record(
        &mut self,
        now: Instant,
        permit: Permit,
        outcome: Outcome,
    ) -> Result<(), RecordError> {
        if permit.tag != self.tag {
            return Err(RecordError::ForeignPermit { id: permit.id });
        }
        self.handle_timeout(now);
        if permit.epoch != self.epoch {
            return Err(RecordError::StalePermit { id: permit.id });
        }
        let slow = now.saturating_duration_since(permit.started) >= self.config.slow_call_duration;
        match self.state {
            BreakerState::Closed => {
                self.record_closed(now, outcome, slow);
                Ok(())
            }
            BreakerState::HalfOpen => {
                let Some(pos) = self.probes.iter().position(|p| p.id == permit.id) else {
                    return Err(RecordError::StalePermit { id: permit.id });
                };
                self.probes.swap_remove(pos);
                match outcome {
                    Outcome::Ignored => {}
                    Outcome::Failure => self.trip(now, TransitionReason::ProbeFailed),
                    Outcome::Success if slow && self.config.slow_call_rate_threshold > 0 => {
                        self.trip(now, TransitionReason::ProbeSlow)
                    }
                    Outcome::Success => {
                        self.probe_successes += 1;
                        if self.probe_successes >= self.config.half_open_probes {
                            self.trips = 0;
                            self.transition(
                                BreakerState::Closed,
                                TransitionReason::ProbesSucceeded,
                            );
                        }
                    }
                }
                Ok(())
            }
            // Permits of the current epoch can only be Closed, HalfOpen or
            // Disabled ones; Disabled counts nothing.
            BreakerState::Disabled | BreakerState::Open | BreakerState::ForcedOpen => Ok(()),
        }
    }

    #[inline]
    fn record_closed(&mut self, now: Instant, outcome: Outcome, slow: bool) {
        let failed = match outcome {
            Outcome::Ignored => return,
            Outcome::Success => false,
            Outcome::Failure => true,
        };
        if failed {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        } else {
            self.consecutive_failures = 0;
        }
        let size = self.config.window_size;
        self.window.push(size, failed, slow);
        let c = &self.config;
        if c.failure_threshold > 0 && self.consecutive_failures >= c.failure_threshold {
            self.trip(now, TransitionReason::ConsecutiveFailures);
            return;
        }
        if self.window.len < c.minimum_calls {
            return;
        }
        let len = u32::from(self.window.len);
        let rate_reached =
            |count: u32, threshold: u8| threshold > 0 && count * 100 >= u32::from(threshold) * len;
        if rate_reached(self.window.failed.count_ones(), c.failure_rate_threshold) {
            self.trip(now, TransitionReason::FailureRate);
        } else if rate_reached(self.window.slow.count_ones(), c.slow_call_rate_threshold) {
            self.trip(now, TransitionReason::SlowCallRate);
        }
    }

    /// Rejects every call until [`enable`](Self::enable) or
    /// [`reset`](Self::reset). Outstanding permits become stale.
    pub fn force_open(&mut self, now: Instant) {
        let _ = now;
        if self.state != BreakerState::ForcedOpen {
            self.transition(BreakerState::ForcedOpen, TransitionReason::Forced);
        }
    }

    /// Admits every call and counts nothing until [`enable`](Self::enable) or
    /// [`reset`](Self::reset). Outstanding permits become stale.
    pub fn disable(&mut self) {
        if self.state != BreakerState::Disabled {
            self.transition(BreakerState::Disabled, TransitionReason::Disabled);
        }
    }

    /// Leaves `ForcedOpen` or `Disabled` for a fresh `Closed` state (counts
    /// cleared, open duration back to its base). Does nothing in the other
    /// states.
    pub fn enable(&mut self, now: Instant) {
        let _ = now;
        if matches!(
            self.state,
            BreakerState::ForcedOpen | BreakerState::Disabled
        ) {
            self.trips = 0;
            self.transition(BreakerState::Closed, TransitionReason::Enabled);
        }
    }

    /// Back to a fresh `Closed` state from any state: counts cleared, open
    /// duration back to its base, outstanding permits stale. Emits an event
    /// even when already closed.
    pub fn reset(&mut self, now: Instant) {
        let _ = now;
        self.trips = 0;
        self.transition(BreakerState::Closed, TransitionReason::Reset);
    }

    /// The next transition or event, oldest first. Drain until `None` after
    /// every input.
    pub fn poll_event(&mut self) -> Option<BreakerEvent> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next: the end of
    /// the open duration, or the earliest half-open probe deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            BreakerState::Open => Some(self.open_until),
            BreakerState::HalfOpen => self.earliest_probe_deadline(),
            _ => None,
        }
    }

    /// Applies the timers that have passed by `now`: open to half-open once
    /// the open duration is over; a probe past its deadline counts as a
    /// failure (back to open). Calling it early or twice is harmless.
    #[inline]
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == BreakerState::Open && now >= self.open_until {
            self.transition(BreakerState::HalfOpen, TransitionReason::OpenElapsed);
        }
        if self.state == BreakerState::HalfOpen
            && self.earliest_probe_deadline().is_some_and(|d| now >= d)
        {
            self.trip(now, TransitionReason::ProbeTimedOut);
        }
    }

    fn earliest_probe_deadline(&self) -> Option<Instant> {
        self.probes.iter().map(|p| p.deadline).min()
    }

    #[inline]
    fn permit(&mut self, now: Instant, probe: bool) -> Permit {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        Permit {
            tag: self.tag,
            id,
            epoch: self.epoch,
            started: now,
            probe,
        }
    }

    fn trip(&mut self, now: Instant, reason: TransitionReason) {
        let duration = self.next_open_duration();
        self.trips = self.trips.saturating_add(1);
        self.open_until = now.saturating_add(duration);
        self.transition(BreakerState::Open, reason);
    }

    fn transition(&mut self, to: BreakerState, reason: TransitionReason) {
        let from = self.state;
        self.state = to;
        self.epoch = self.epoch.wrapping_add(1);
        self.consecutive_failures = 0;
        self.window = Window::default();
        self.probes.clear();
        self.probe_successes = 0;
        let event = BreakerEvent { from, to, reason };
        if self.events.is_full() {
            self.events.pop_front();
            self.dropped_events = self.dropped_events.saturating_add(1);
        }
        let _ = self.events.push_back(event);
    }
}
