//! What comes out of [`Resolver::poll_output`]: an [`Output`] (a transmit,
//! an answer, an [`Event`] or the next timeout), and the counters,
//! [`Stats`].

use embassy_time::{Duration, Instant};

use super::{Answer, CorrelationId, FallbackReason, Source, Transmit};
#[cfg(doc)]
use super::{ResolveError, Resolver};
use crate::cache::{self, CacheKey};
use crate::endpoints::EndpointEvent;
use crate::feedback;

/// Something an operator would log or count; pulled with
/// [`Resolver::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A resolve got its route from the service or a fallback. Fresh cache
    /// hits, the hot path, are only counted ([`Stats::resolved`]).
    Resolved {
        /// Where the route came from.
        source: Source,
        /// From the resolve call to the route.
        latency: Duration,
    },
    /// A resolve fell back.
    Fallback {
        /// The key.
        key: CacheKey,
        /// Why the service's answer was missing.
        reason: FallbackReason,
        /// What it fell back to (`None`: the `fail` policy, no route).
        source: Option<Source>,
    },
    /// A request also went to another endpoint.
    Hedged {
        /// The request's first correlation id.
        first: CorrelationId,
        /// The new attempt's correlation id.
        id: CorrelationId,
        /// The endpoint it went to.
        endpoint: usize,
    },
    /// A reply could not be used: malformed or invalid body, or an error status.
    BadReply {
        /// The transmit.
        id: CorrelationId,
        /// The endpoint that sent it.
        endpoint: usize,
        /// The HTTP status (200 for a body that did not decode).
        status: u16,
    },
    /// A background refresh (refresh-ahead or warming) started or ended.
    Refresh {
        /// The key.
        key: CacheKey,
        /// `None` when it started; then whether it succeeded.
        succeeded: Option<bool>,
    },
    /// Feedback about a failed proxy removed the cached answers naming it.
    ProxyInvalidated {
        /// How many entries went.
        count: usize,
    },
    /// The service's route was used but not cached: its postcard encoding
    /// does not fit the profile's slot ([`Compact`](crate::keep::Compact)).
    NotCached {
        /// The key.
        key: CacheKey,
    },
    /// An endpoint's health or breaker changed.
    Endpoint(EndpointEvent),
    /// The cache evicted, scheduled a refresh or invalidated.
    Cache(cache::Event),
    /// The feedback queue sent, failed or dropped events.
    Feedback(feedback::Event),
}

/// What [`Resolver::poll_output`] gives; drain until [`Output::Timeout`].
// Each value is moved once, straight to its handler; boxing the large
// variants would need an allocator, which the core never uses.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this to its endpoint, then give the outcome to
    /// [`Resolver::handle_reply`].
    Transmit(Transmit),
    /// Hand this route to the resolve that is waiting for it.
    Answer(Answer),
    /// Log or count this.
    Event(Event),
    /// Nothing else to do: call [`Resolver::handle_timeout`] at this instant
    /// (`None`: no timer), or sooner on new input.
    Timeout(Option<Instant>),
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Routes by source: service, cache, stale, embedded, direct.
    pub resolved: [u64; 5],
    /// Resolves that ended in [`ResolveError`].
    pub failed: u64,
    /// Fallbacks by reason: no_endpoint, deadline, service_failed, overloaded.
    pub fallbacks: [u64; 4],
    /// Hedged attempts sent.
    pub hedges: u64,
    /// Retried attempts sent after a failure.
    pub retries: u64,
    /// Events lost because [`Resolver::poll_output`] was not drained.
    pub dropped_events: u64,
}
