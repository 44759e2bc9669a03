//! The proxy-service endpoints a client may ask: their URLs, health, breakers,
//! selection by priority and rotation, and jittered health checks.
//!
//! [`Endpoints`] is a sans-IO state machine; see its documentation for the
//! call order. [`ServiceUrl`] is the validated base URL of one endpoint; it
//! belongs to the data model ([`crate::model`]) and is re-exported here.
//!
//! # Where each concept lives
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | [`Endpoints`]: selection, recording outcomes, health checks, timers |
//! | `config.rs` | [`EndpointConfig`] and [`EndpointsConfig`] |
//! | `health.rs` | [`Health`], [`HealthReason`], the [`EndpointEvent`]s and the [`HealthCheck`]s to send |
//! | `model/service_url.rs` | [`ServiceUrl`] and its parsing (in the data model) |

mod config;
mod health;

pub use crate::model::{
    MAX_SERVICE_HOST_LEN, MAX_SERVICE_PATH_LEN, MAX_SERVICE_URL_LEN, ServiceScheme, ServiceUrl,
};
pub use config::{EndpointConfig, EndpointsConfig};
pub use health::{EndpointEvent, Health, HealthCheck, HealthReason};

use core::fmt;

use embassy_time::{Duration, Instant};

use crate::ValidationError;
use crate::breaker::{Breaker, BreakerConfig, BreakerState, Outcome, Permit, RecordError};

/// Capacity of the endpoint event queue (breaker events are queued in each
/// breaker); when it is full the oldest event is dropped and counted in
/// [`Endpoints::dropped_events`].
pub const EVENT_QUEUE_LEN: usize = 32;

/// The endpoint chosen for a call, with its breaker permit. Give it back with
/// [`Endpoints::record`].
#[must_use = "give the selection back with Endpoints::record"]
#[derive(Debug, PartialEq, Eq)]
pub struct Selected {
    index: usize,
    permit: Permit,
}

impl Selected {
    /// The endpoint's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The breaker permit (its id and start time).
    pub fn permit(&self) -> &Permit {
        &self.permit
    }
}

/// An input [`Endpoints`] could not use. The state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointsError {
    /// [`Endpoints::new`] was given no endpoint.
    NoEndpoints,
    /// [`Endpoints::new`] was given more endpoints than the capacity `N`.
    TooManyEndpoints {
        /// Endpoints given.
        given: usize,
        /// The capacity.
        capacity: usize,
    },
    /// The configuration is invalid.
    Config(ValidationError),
    /// A check result whose id is unknown or whose check already timed out.
    UnknownCheck {
        /// The id given.
        id: u64,
    },
    /// An endpoint index out of range.
    NoSuchEndpoint {
        /// The index given.
        index: usize,
    },
    /// The breaker did not count the outcome.
    Breaker(RecordError),
}

impl fmt::Display for EndpointsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointsError::NoEndpoints => {
                f.write_str("endpoints: no service endpoint configured; configure at least one")
            }
            EndpointsError::TooManyEndpoints { given, capacity } => write!(
                f,
                "endpoints: {given} service endpoints configured but at most {capacity} fit; remove some or raise the capacity"
            ),
            EndpointsError::Config(e) => write!(f, "endpoints configuration: {e}"),
            EndpointsError::UnknownCheck { id } => write!(
                f,
                "health check {id} is unknown or already timed out; its result was ignored"
            ),
            EndpointsError::NoSuchEndpoint { index } => {
                write!(f, "endpoint index {index} is out of range")
            }
            EndpointsError::Breaker(e) => write!(f, "endpoint breaker: {e}"),
        }
    }
}

impl core::error::Error for EndpointsError {}

impl From<ValidationError> for EndpointsError {
    fn from(e: ValidationError) -> Self {
        EndpointsError::Config(e)
    }
}

#[derive(Debug)]
struct Endpoint {
    config: EndpointConfig,
    health: Health,
    breaker: Breaker,
    /// When the next check is due (ignored while one is in flight).
    next_check: Instant,
    /// The check in flight: id and deadline.
    inflight: Option<(u64, Instant)>,
    /// Not selected before this (the service asked to be left alone).
    held_until: Instant,
}

/// Up to `N` proxy-service endpoints, each with its own health and
/// [`Breaker`].
///
/// Selection: among endpoints whose breaker admits a call, the healthy ones of
/// the best (lowest) priority, in rotation; if no endpoint is healthy, the
/// suspect ones by the same rule; a down endpoint is never selected.
///
/// Health: the first failure (a failed call, a failed or timed-out check)
/// makes a healthy endpoint suspect and schedules an immediate check with
/// `suspect_check_timeout` (default 1 s). If that check fails or times out
/// the endpoint is down — within 2 s of the first failure, provided the
/// adapter sends the check when asked. A down endpoint is checked every
/// `down_check_interval` and taken back (healthy) after one successful check.
/// A successful call makes a suspect endpoint healthy again.
///
/// # Call order
///
/// 1. Create with [`Endpoints::new(now, config, endpoints)`](Self::new).
/// 2. For each request to the service: [`select(now)`](Self::select) (or
///    [`next_after(now, index)`](Self::next_after) to hedge on another
///    endpoint); send to [`Selected::index`]; when the call ends,
///    [`record(now, selected, outcome)`](Self::record).
/// 3. Drain [`poll_transmit(now)`](Self::poll_transmit) until `None` and send
///    each [`HealthCheck`]; answer with
///    [`handle_check_result(now, id, ok)`](Self::handle_check_result).
/// 4. Drain [`poll_event`](Self::poll_event) until `None` (health changes and
///    breaker transitions).
/// 5. Arm a timer at [`poll_timeout`](Self::poll_timeout); when it fires call
///    [`handle_timeout(now)`](Self::handle_timeout), then go to 3.
///
/// ```
/// use embassy_time::{Duration, Instant};
/// use proxy_delegate_core::breaker::Outcome;
/// use proxy_delegate_core::endpoints::{
///     EndpointConfig, EndpointEvent, Endpoints, EndpointsConfig, Health,
/// };
///
/// let mut now = Instant::from_secs(0);
/// let list = [
///     EndpointConfig::new("https://a.service.internal".parse()?, 0),
///     EndpointConfig::new("https://b.service.internal".parse()?, 0),
///     EndpointConfig::new("https://backup.service.internal".parse()?, 1),
/// ];
/// let mut endpoints = Endpoints::<4>::new(now, EndpointsConfig::default(), &list)?;
///
/// // Priority 0 endpoints take turns; the backup is not used while they are healthy.
/// let first = endpoints.select(now).expect("an endpoint");
/// let second = endpoints.select(now).expect("an endpoint");
/// assert_ne!(first.index(), second.index());
/// assert!(first.index() < 2 && second.index() < 2);
///
/// // A failed call makes endpoint `first` suspect and asks for an immediate check.
/// let failed = first.index();
/// endpoints.record(now, first, Outcome::Failure)?;
/// endpoints.record(now, second, Outcome::Success)?;
/// assert_eq!(endpoints.health(failed), Some(Health::Suspect));
/// assert_eq!(endpoints.poll_timeout(), Some(now));
/// let check = endpoints.poll_transmit(now).expect("a check");
/// assert_eq!(check.index, failed);
///
/// // No answer: one second later it is down.
/// now += Duration::from_secs(1);
/// endpoints.handle_timeout(now);
/// assert_eq!(endpoints.health(failed), Some(Health::Down));
/// // Every change is an event: healthy -> suspect -> down.
/// let mut changes = Vec::new();
/// while let Some(event) = endpoints.poll_event() {
///     if let EndpointEvent::Health { index, to, .. } = event {
///         changes.push((index, to));
///     }
/// }
/// assert_eq!(changes, [(failed, Health::Suspect), (failed, Health::Down)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Endpoints<const N: usize> {
    config: EndpointsConfig,
    endpoints: heapless::Vec<Endpoint, N>,
    rng: fastrand::Rng,
    /// Index of the last endpoint chosen by `select` (rotation cursor).
    cursor: usize,
    next_check_id: u64,
    events: heapless::Deque<EndpointEvent, EVENT_QUEUE_LEN>,
    dropped_events: u64,
}

impl<const N: usize> Endpoints<N> {
    /// Builds the set; every endpoint starts healthy with a closed breaker,
    /// and its first check is spread over the jitter share of
    /// `check_interval`.
    pub fn new(
        now: Instant,
        config: EndpointsConfig,
        endpoints: &[EndpointConfig],
    ) -> Result<Self, EndpointsError> {
        config.validate()?;
        if endpoints.is_empty() {
            return Err(EndpointsError::NoEndpoints);
        }
        if endpoints.len() > N {
            return Err(EndpointsError::TooManyEndpoints {
                given: endpoints.len(),
                capacity: N,
            });
        }
        let mut this = Self {
            config,
            endpoints: heapless::Vec::new(),
            rng: fastrand::Rng::with_seed(config.seed),
            cursor: endpoints.len() - 1,
            next_check_id: 1,
            events: heapless::Deque::new(),
            dropped_events: 0,
        };
        for (i, ep) in endpoints.iter().enumerate() {
            let breaker_config = BreakerConfig {
                seed: config
                    .breaker
                    .seed
                    .wrapping_add(config.seed)
                    .wrapping_add((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                ..config.breaker
            };
            let first_check = now.saturating_add(this.jitter(config.check_interval));
            let endpoint = Endpoint {
                config: ep.clone(),
                health: Health::Healthy,
                breaker: Breaker::new(breaker_config)?,
                next_check: first_check,
                inflight: None,
                held_until: Instant::MIN,
            };
            // Cannot fail: `endpoints.len() <= N` was checked above.
            let _ = this.endpoints.push(endpoint);
        }
        Ok(this)
    }

    /// Number of endpoints.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Always `false`: [`Endpoints::new`] refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The configuration of endpoint `index`.
    pub fn endpoint(&self, index: usize) -> Option<&EndpointConfig> {
        self.endpoints.get(index).map(|e| &e.config)
    }

    /// The health of endpoint `index`.
    pub fn health(&self, index: usize) -> Option<Health> {
        self.endpoints.get(index).map(|e| e.health)
    }

    /// The state of endpoint `index`'s breaker.
    pub fn breaker_state(&self, index: usize) -> Option<BreakerState> {
        self.endpoints.get(index).map(|e| e.breaker.state())
    }

    /// Endpoint `index`'s breaker, to read its state and probes.
    pub fn breaker(&self, index: usize) -> Option<&Breaker> {
        self.endpoints.get(index).map(|e| &e.breaker)
    }

    /// Endpoint `index`'s breaker, for operator switches
    /// ([`Breaker::force_open`], [`Breaker::disable`], …). Its transitions are
    /// still reported by [`poll_event`](Self::poll_event).
    pub fn breaker_mut(&mut self, index: usize) -> Option<&mut Breaker> {
        self.endpoints.get_mut(index).map(|e| &mut e.breaker)
    }

    /// Events dropped because the queue ([`EVENT_QUEUE_LEN`]) was full,
    /// including those dropped by the breakers.
    pub fn dropped_events(&self) -> u64 {
        self.endpoints.iter().fold(self.dropped_events, |n, e| {
            n.saturating_add(e.breaker.dropped_events())
        })
    }

    /// Chooses an endpoint for a call and takes a permit from its breaker;
    /// advances the rotation. `None` when every endpoint is down or its
    /// breaker rejects the call: use a fallback.
    pub fn select(&mut self, now: Instant) -> Option<Selected> {
        let selected = self.pick(now, None)?;
        self.cursor = selected.index;
        Some(selected)
    }

    /// For hedging: chooses an endpoint other than `index` by the same rules,
    /// without advancing the rotation. `None` when there is no other usable
    /// endpoint.
    pub fn next_after(&mut self, now: Instant, index: usize) -> Option<Selected> {
        self.pick(now, Some(index))
    }

    fn pick(&mut self, now: Instant, exclude: Option<usize>) -> Option<Selected> {
        let n = self.endpoints.len();
        for wanted in [Health::Healthy, Health::Suspect] {
            // Priority tiers from best to worst; within a tier, in rotation
            // from the endpoint after the cursor.
            let mut min_priority: u16 = 0;
            while let Some(tier) = self
                .endpoints
                .iter()
                .enumerate()
                .filter(|(i, e)| {
                    e.health == wanted
                        && Some(*i) != exclude
                        && u16::from(e.config.priority) >= min_priority
                })
                .map(|(_, e)| e.config.priority)
                .min()
            {
                for k in 1..=n {
                    let i = (self.cursor + k) % n;
                    let e = &mut self.endpoints[i];
                    if Some(i) == exclude
                        || e.health != wanted
                        || e.config.priority != tier
                        || now < e.held_until
                    {
                        continue;
                    }
                    if let Ok(permit) = e.breaker.try_acquire(now) {
                        return Some(Selected { index: i, permit });
                    }
                }
                min_priority = u16::from(tier) + 1;
            }
        }
        None
    }

    /// Leaves endpoint `index` out of selection until `until` (a `429 Too
    /// Many Requests` with `Retry-After`); its health and breaker are not
    /// touched, and health checks go on. A later hold replaces an earlier
    /// one.
    pub fn hold_off(&mut self, index: usize, until: Instant) {
        if let Some(e) = self.endpoints.get_mut(index) {
            e.held_until = until;
        }
    }

    /// Gives a selection back with the call's outcome: feeds the endpoint's
    /// breaker and its health (a failure makes a healthy endpoint suspect; a
    /// success makes a suspect one healthy). The health is updated even when
    /// the breaker reports the permit stale; that error is returned.
    pub fn record(
        &mut self,
        now: Instant,
        selected: Selected,
        outcome: Outcome,
    ) -> Result<(), EndpointsError> {
        let index = selected.index;
        let Some(e) = self.endpoints.get_mut(index) else {
            return Err(EndpointsError::NoSuchEndpoint { index });
        };
        let result = e.breaker.record(now, selected.permit, outcome);
        if let Err(RecordError::ForeignPermit { .. }) = result {
            return result.map_err(EndpointsError::Breaker);
        }
        match (outcome, e.health) {
            (Outcome::Failure, Health::Healthy) => {
                self.set_health(index, Health::Suspect, HealthReason::CallFailed);
                let e = &mut self.endpoints[index];
                e.next_check = now;
                // A routine check already in flight decides instead of the
                // immediate one, but no later than a suspect check would.
                let latest = now.saturating_add(self.config.suspect_check_timeout);
                if let Some((_, deadline)) = &mut e.inflight {
                    *deadline = (*deadline).min(latest);
                }
            }
            (Outcome::Success, Health::Suspect) => {
                self.set_health(index, Health::Healthy, HealthReason::CallSucceeded);
            }
            _ => {}
        }
        result.map_err(EndpointsError::Breaker)
    }

    /// The next health check to send, if one is due at `now`. Drain until
    /// `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<HealthCheck> {
        let index = self
            .endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| e.inflight.is_none() && e.next_check <= now)
            .min_by_key(|(_, e)| e.next_check)
            .map(|(i, _)| i)?;
        let timeout = match self.endpoints[index].health {
            Health::Healthy => self.config.check_timeout,
            Health::Suspect | Health::Down => self.config.suspect_check_timeout,
        };
        let id = self.next_check_id;
        self.next_check_id = self.next_check_id.wrapping_add(1);
        let deadline = now.saturating_add(timeout);
        self.endpoints[index].inflight = Some((id, deadline));
        Some(HealthCheck {
            index,
            id,
            deadline,
        })
    }

    /// The answer to a health check. `ok` is whether the endpoint answered
    /// healthy. An id that is unknown or already timed out is an
    /// [`EndpointsError::UnknownCheck`] and changes nothing.
    pub fn handle_check_result(
        &mut self,
        now: Instant,
        id: u64,
        ok: bool,
    ) -> Result<(), EndpointsError> {
        self.handle_timeout(now);
        let index = self
            .endpoints
            .iter()
            .position(|e| e.inflight.is_some_and(|(i, _)| i == id))
            .ok_or(EndpointsError::UnknownCheck { id })?;
        self.endpoints[index].inflight = None;
        if ok {
            self.set_health(index, Health::Healthy, HealthReason::CheckSucceeded);
            let delay = self.with_jitter(self.config.check_interval);
            self.endpoints[index].next_check = now.saturating_add(delay);
        } else {
            self.check_failed(now, index, HealthReason::CheckFailed);
        }
        Ok(())
    }

    fn check_failed(&mut self, now: Instant, index: usize, reason: HealthReason) {
        match self.endpoints[index].health {
            Health::Healthy => {
                self.set_health(index, Health::Suspect, reason);
                self.endpoints[index].next_check = now;
            }
            Health::Suspect | Health::Down => {
                self.set_health(index, Health::Down, reason);
                let delay = self.with_jitter(self.config.down_check_interval);
                self.endpoints[index].next_check = now.saturating_add(delay);
            }
        }
    }

    /// The next event: health changes first, then breaker transitions by
    /// endpoint index. Drain until `None` after every input.
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        self.endpoints
            .iter_mut()
            .enumerate()
            .find_map(|(index, e)| {
                e.breaker
                    .poll_event()
                    .map(|event| EndpointEvent::Breaker { index, event })
            })
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) (and then
    /// [`poll_transmit`](Self::poll_transmit)) next: the earliest due check,
    /// check deadline or breaker timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.endpoints
            .iter()
            .flat_map(|e| {
                let check = match e.inflight {
                    Some((_, deadline)) => deadline,
                    None => e.next_check,
                };
                [Some(check), e.breaker.poll_timeout()]
            })
            .flatten()
            .min()
    }

    /// Applies the timers that have passed by `now`: checks past their
    /// deadline fail, breakers advance. Checks that are due are emitted by
    /// [`poll_transmit`](Self::poll_transmit). Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        for index in 0..self.endpoints.len() {
            if let Some((_, deadline)) = self.endpoints[index].inflight
                && now >= deadline
            {
                self.endpoints[index].inflight = None;
                self.check_failed(now, index, HealthReason::CheckTimedOut);
            }
            self.endpoints[index].breaker.handle_timeout(now);
        }
    }

    fn set_health(&mut self, index: usize, to: Health, reason: HealthReason) {
        let from = self.endpoints[index].health;
        if from == to {
            return;
        }
        self.endpoints[index].health = to;
        if self.events.is_full() {
            self.events.pop_front();
            self.dropped_events = self.dropped_events.saturating_add(1);
        }
        let _ = self.events.push_back(EndpointEvent::Health {
            index,
            from,
            to,
            reason,
        });
    }

    /// `interval` plus its jitter.
    fn with_jitter(&mut self, interval: Duration) -> Duration {
        let jitter = self.jitter(interval);
        Duration::from_ticks(interval.as_ticks().saturating_add(jitter.as_ticks()))
    }

    /// A random delay of up to `check_jitter_percent` of `interval`.
    fn jitter(&mut self, interval: Duration) -> Duration {
        let max = interval.as_ticks() / 100 * u64::from(self.config.check_jitter_percent)
            + interval.as_ticks() % 100 * u64::from(self.config.check_jitter_percent) / 100;
        Duration::from_ticks(self.rng.u64(0..=max))
    }
}
