//! The Resolver: the one place that decides, for every exchange connection,
//! which proxy to use — from the cache, the proxy service, or the fallbacks —
//! and when to stop trusting the service.
//!
//! It orchestrates the other machines of this crate: the response
//! [`Cache`], the service [`Endpoints`] (each with its
//! [`Breaker`](crate::breaker::Breaker)), the [`RetryBudget`] for hedges and
//! retries, the [`FeedbackQueue`], and the embedded configuration through
//! [`EmbeddedRoutes`]. Like them it is sans-IO: time is an argument, output is
//! pulled, and nothing allocates.
//!
//! Degradation order when the service cannot answer in time: stale cache
//! (within its grace) → embedded configuration → direct connection, as the
//! last `fallback_policy` the service gave for that key allows; `fail` gives a
//! [`ResolveError`] instead of a route.
//!
//! # Where each concept lives
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the [`Resolver`] itself: its state, construction and accessors; the capacity constants |
//! | `config.rs` | [`ResolverConfig`] |
//! | `route.rs` | what a resolve gives: [`Resolution`], [`Route`], [`RouteRef`], [`Source`], [`Ticket`], [`Answer`], [`ResolveError`], [`FallbackReason`] |
//! | `transmit.rs` | the HTTP exchange with the adapter: [`Transmit`], [`TransmitKind`], [`CorrelationId`], [`Reply`], [`InputError`] |
//! | `output.rs` | what [`Resolver::poll_output`] gives: [`Output`], [`Event`]; the counters, [`Stats`] |
//! | `inputs.rs` | the driving loop's inputs: `resolve`, `report` (and [`proxy_at_fault`]), `handle_reply`, `handle_timeout` |
//! | `poll.rs` | the driving loop's outputs: `poll_output`, `poll_timeout`, `cancel`, and at shutdown `flush_feedback` and `drain_feedback`; the event queue |
//! | `flight.rs` | service requests in flight: attempts, hedges, retries, and the resolves waiting for them |
//! | `fallback.rs` | stale cache → embedded → direct, and the per-key `fallback_policy` memory |

mod answers;
mod config;
mod fallback;
mod flight;
mod inputs;
mod output;
mod poll;
mod route;
mod transmit;

pub use config::ResolverConfig;
pub use inputs::proxy_at_fault;
pub use output::{Event, Output, Stats};
pub use route::{
    Answer, FallbackReason, Resolution, ResolveError, Route, RouteRef, Source, Ticket,
};
pub use transmit::{CorrelationId, InputError, Reply, Transmit, TransmitKind};

use embassy_time::{Duration, Instant};

use crate::backoff::RetryBudget;
use crate::cache::Cache;
#[cfg(doc)]
use crate::contract;
use crate::embedded::{EmbeddedRoute, EmbeddedRoutes};
use crate::endpoints::{EndpointConfig, Endpoints, EndpointsError, Health};
use crate::error::nest;
use crate::feedback::{self, BatchId, FeedbackConfig, FeedbackQueue};
use crate::keep::{Profile, Whole};
use crate::model::{FallbackPolicy, ProxyResponse, ProxyUrl};
use crate::storage::{Inline, Storage};
use crate::{Reason, ValidationError};
use flight::{Flight, Waiter};

/// Default of the `FLIGHTS` capacity: most service requests in flight at once
/// (one per key: concurrent resolves of a key join the same request). A
/// resolve that would need one more gets its fallback at once
/// ([`FallbackReason::Overloaded`]).
pub const MAX_FLIGHTS: usize = 16;
/// Default of the `WAITERS` capacity: most resolves waiting for an answer,
/// counting answers not yet taken. One more gets its fallback at once.
pub const MAX_WAITERS: usize = 64;
/// Most attempts (first try, hedge, retries) of one service request.
pub const MAX_ATTEMPTS: usize = 3;
/// Default of the `EVENTS` capacity: room for events not yet taken with
/// [`Resolver::poll_output`]; when full the oldest goes and is counted in
/// [`Stats::dropped_events`].
pub const EVENT_QUEUE_LEN: usize = 64;
/// Longest `Retry-After` honoured for service requests: a hint above it
/// holds the endpoint off this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Smallest buffer [`Resolver::poll_output`] accepts: a request encodes to
/// at most about 3 KiB, a feedback event to about 1.5 KiB.
pub const MIN_TRANSMIT_BUFFER: usize = 4096;

/// An error of [`Endpoints::new`] as a configuration error: the endpoint
/// list (`endpoints`) or its settings (`endpoints.<field>`).
fn endpoints_error(e: EndpointsError) -> ValidationError {
    match e {
        EndpointsError::NoEndpoints => ValidationError::new(
            "endpoints",
            Reason::Requires {
                what: "at least one service endpoint",
            },
        ),
        EndpointsError::TooManyEndpoints { given, capacity } => ValidationError::new(
            "endpoints",
            Reason::TooMany {
                len: given,
                max: capacity,
            },
        ),
        EndpointsError::Config(e) => e,
        // `Endpoints::new` returns none of these; should it one day, the
        // error still names the part that is wrong.
        EndpointsError::UnknownCheck { .. }
        | EndpointsError::NoSuchEndpoint { .. }
        | EndpointsError::Breaker(_) => ValidationError::new(
            "endpoints",
            Reason::Malformed {
                expected: "a valid endpoint list",
            },
        ),
    }
}

/// The small, validated parts of a resolver under construction.
struct Parts<const ENDPOINTS: usize> {
    endpoints: Endpoints<ENDPOINTS>,
    budget: RetryBudget,
    feedback_backoff: crate::backoff::Backoff,
}

/// Decides which proxy every exchange connection uses.
///
/// Type parameters: `E` the embedded configuration; `CACHE` the cache's
/// capacity (a power of two); `ENDPOINTS` the most service endpoints;
/// `FEEDBACK` the feedback queue's capacity; `FLIGHTS` the most service
/// requests in flight (default [`MAX_FLIGHTS`]); `WAITERS` the most resolves
/// waiting for an answer (default [`MAX_WAITERS`]); `St` where the cache's
/// slots live ([`storage`](crate::storage): inline by default,
/// [`Boxed`](crate::storage::Boxed) on the heap); `P` in what form it keeps
/// its cached routes, queued feedback and requests in flight
/// ([`keep`](crate::keep): [`Whole`] by default,
/// [`Compact`](crate::keep::Compact) for a microcontroller); `EVENTS` the
/// room for events not yet taken with [`poll_output`](Self::poll_output)
/// (default [`EVENT_QUEUE_LEN`]). Everything else is
/// inline: build a large resolver with [`new_boxed`](Self::new_boxed)
/// (feature `alloc`), or in a `static`.
///
/// # Call order
///
/// One loop drives it, as str0m's `Rtc` is driven:
///
/// 1. [`Resolver::new(now, config, endpoints, embedded)`](Self::new).
/// 2. Inputs, any time: [`resolve(now, &request)`](Self::resolve) for each
///    connection (a [`Resolution::Ready`] route is used at once; a
///    [`Resolution::Pending`] one comes out as an [`Output::Answer`] by its
///    deadline, or is withdrawn with [`cancel(ticket)`](Self::cancel));
///    [`report(now, feedback)`](Self::report) when a connection attempt
///    ends; [`handle_reply(now, id, reply)`](Self::handle_reply) for each
///    transmit's outcome; [`handle_timeout(now)`](Self::handle_timeout) when
///    the timer fires.
/// 3. After every input, drain [`poll_output(now, &mut buf)`](Self::poll_output)
///    until it gives [`Output::Timeout`]: send each [`Output::Transmit`] to
///    its endpoint (its [`TransmitKind`] names the method and path) with its
///    [`CorrelationId`] in the [`CORRELATION_HEADER`](contract::CORRELATION_HEADER),
///    hand each [`Output::Answer`] to its resolve, log each [`Output::Event`],
///    and arm one timer at the timeout.
/// 4. At shutdown, [`drain_feedback()`](Self::drain_feedback) hands over every
///    feedback event still queued.
///
/// ```
/// use embassy_time::{Duration, Instant};
/// use proxy_delegate_core::endpoints::EndpointConfig;
/// use proxy_delegate_core::model::{ClientId, ConnectionType, ExchangeId, ProxyRequest};
/// use proxy_delegate_core::resolver::{
///     Output, Reply, Resolution, Resolver, ResolverConfig, Source, TransmitKind,
///     MIN_TRANSMIT_BUFFER,
/// };
///
/// let mut now = Instant::from_secs(1);
/// let config = ResolverConfig::new(ClientId::new("doc-client")?);
/// let endpoints = [EndpointConfig::new("http://127.0.0.1:8080".parse()?, 0)];
/// let mut resolver = Resolver::<(), 16, 2, 64>::new_boxed(now, config, &endpoints, ())?;
/// let request = ProxyRequest::new(
///     ExchangeId::new("binance")?, ConnectionType::Websocket, ClientId::new("doc-client")?);
///
/// // Nothing cached: the resolver asks the service.
/// let Resolution::Pending(ticket) = resolver.resolve(now, &request) else { panic!() };
/// let mut buf = [0u8; MIN_TRANSMIT_BUFFER];
/// let mut request_sent = None;
/// loop {
///     match resolver.poll_output(now, &mut buf) {
///         Output::Transmit(t) if t.kind == TransmitKind::Resolve => request_sent = Some(t),
///         // The first health checks: the endpoint is healthy.
///         Output::Transmit(t) => resolver.handle_reply(now, t.id, Reply::Ok(b"{}"))?,
///         Output::Answer(_) | Output::Event(_) => {}
///         Output::Timeout(_) => break,
///     }
/// }
/// let transmit = request_sent.expect("a request");
/// assert_eq!(transmit.kind.path(), "/api/v1/proxy/request");
/// // ... the adapter POSTs buf[..transmit.len] and gets the service's answer:
/// now += Duration::from_millis(20);
/// let body = br#"{"proxy_url":"socks5://proxy-a:1080","strategy":"round_robin","ttl_seconds":300}"#;
/// resolver.handle_reply(now, transmit.id, Reply::Ok(body))?;
/// let answer = loop {
///     match resolver.poll_output(now, &mut buf) {
///         Output::Answer(a) => break a,
///         Output::Timeout(_) => panic!("no answer"),
///         _ => {}
///     }
/// };
/// assert_eq!(answer.ticket, ticket);
/// assert_eq!(answer.result?.source, Source::Service);
///
/// // The next resolve is a cache hit, answered at once.
/// match resolver.resolve(now, &request) {
///     Resolution::Ready(route) => assert_eq!(route.source, Source::Cache),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Resolver<
    E,
    const CACHE: usize,
    const ENDPOINTS: usize,
    const FEEDBACK: usize,
    const FLIGHTS: usize = MAX_FLIGHTS,
    const WAITERS: usize = MAX_WAITERS,
    St: Storage = Inline,
    P: Profile = Whole,
    const EVENTS: usize = EVENT_QUEUE_LEN,
> {
    config: ResolverConfig,
    cache: Cache<P::Response, CACHE, St, EVENTS>,
    /// A packed cache entry's route, decoded to be lent (unused when the
    /// profile keeps routes whole).
    lent: Option<ProxyResponse>,
    /// The last fallback policy the service gave, per key (by hash).
    policies: heapless::index_map::FnvIndexMap<u64, FallbackPolicy, CACHE>,
    endpoints: Endpoints<ENDPOINTS>,
    budget: RetryBudget,
    feedback: FeedbackQueue<FEEDBACK, P::Feedback>,
    feedback_in_flight: Option<(CorrelationId, BatchId)>,
    /// Health checks in flight: correlation id, check id, deadline, endpoint.
    checks: heapless::Vec<(CorrelationId, u64, Instant, usize), ENDPOINTS>,
    embedded: E,
    /// The last embedded route handed out, so it can be lent.
    embedded_route: Option<EmbeddedRoute>,
    flights: heapless::Vec<Flight<P::Request>, FLIGHTS>,
    waiters: heapless::Vec<Waiter, WAITERS>,
    answers: answers::Answers<P::Route, WAITERS>,
    events: heapless::Deque<Event, EVENTS>,
    stats: Stats,
    next_id: u64,
    next_serial: u64,
}

impl<
    E: EmbeddedRoutes,
    const CACHE: usize,
    const ENDPOINTS: usize,
    const FEEDBACK: usize,
    const FLIGHTS: usize,
    const WAITERS: usize,
    St: Storage,
    P: Profile,
    const EVENTS: usize,
> Resolver<E, CACHE, ENDPOINTS, FEEDBACK, FLIGHTS, WAITERS, St, P, EVENTS>
{
    /// Builds a resolver for the given service endpoints (at least one, at
    /// most `ENDPOINTS`) and embedded configuration. A `config.wire` this
    /// build cannot speak (JSON without the `json` feature) is a
    /// `ValidationError` on `wire`.
    pub fn new(
        now: Instant,
        config: ResolverConfig,
        endpoints: &[EndpointConfig],
        embedded: E,
    ) -> Result<Self, ValidationError> {
        let parts = Self::validate(now, &config, endpoints)?;
        Ok(Self::assemble(config, parts, embedded))
    }

    /// Like [`new`](Self::new), boxed: a resolver with a large cache or
    /// feedback queue is hundreds of KiB to several MiB. The value is built
    /// with no `Result` around it and written into a fresh allocation, so
    /// optimised builds hold at most one copy on the stack (`Box::new(new()?)`
    /// holds two or three). With [`Boxed`](crate::storage::Boxed) storage the
    /// cache's slots are on the heap already and that copy is small (the
    /// feedback queue, mostly), so a resolver with any cache can be built on
    /// a small stack (a tokio worker's 2 MiB).
    #[cfg(feature = "alloc")]
    pub fn new_boxed(
        now: Instant,
        config: ResolverConfig,
        endpoints: &[EndpointConfig],
        embedded: E,
    ) -> Result<alloc::boxed::Box<Self>, ValidationError> {
        let parts = Self::validate(now, &config, endpoints)?;
        Ok(alloc::boxed::Box::write(
            alloc::boxed::Box::new_uninit(),
            Self::assemble(config, parts, embedded),
        ))
    }

    /// Checks everything that can be wrong, and builds the small parts.
    fn validate(
        now: Instant,
        config: &ResolverConfig,
        endpoints: &[EndpointConfig],
    ) -> Result<Parts<ENDPOINTS>, ValidationError> {
        let positive = |d: Duration, field: &'static str| {
            if d.as_ticks() == 0 {
                Err(ValidationError::new(
                    field,
                    Reason::OutOfRange {
                        expected: "a duration above zero",
                    },
                ))
            } else {
                Ok(())
            }
        };
        // JSON without the `json` feature: a typed error, not a transmit
        // that can never be encoded.
        config.wire.check_supported()?;
        positive(config.resolve_deadline, "resolve_deadline")?;
        positive(config.request_timeout, "request_timeout")?;
        config.cache.validate().map_err(nest!(
            "cache": "min_ttl"
                | "max_ttl"
                | "refresh_ahead_percent"
                | "refresh_timeout"
                | "refresh_retry"
                | "warm_keys"
        ))?;
        let mut endpoints =
            Endpoints::new(now, config.endpoints, endpoints).map_err(endpoints_error)?;
        if !config.circuit_breaker_enabled {
            for i in 0..endpoints.len() {
                if let Some(b) = endpoints.breaker_mut(i) {
                    b.disable();
                }
            }
        }
        let budget = RetryBudget::new(config.retry_budget).map_err(nest!(
            "retry_budget": "deposit_per_success_milli" | "min_retries_per_sec" | "max_tokens"
        ))?;
        let feedback_backoff = FeedbackQueue::<FEEDBACK, P::Feedback>::validate(&config.feedback)
            .map_err(nest!(
            "feedback": "batch_size"
                | "ack_timeout"
                | "retry.base"
                | "retry.max_delay"
                | "retry.max_attempts"
                | "retry.max_retry_after"
        ))?;
        Ok(Parts {
            endpoints,
            budget,
            feedback_backoff,
        })
    }

    /// Builds the resolver from validated parts. Infallible and inlined, so
    /// that [`new_boxed`](Self::new_boxed) writes it in place.
    #[inline(always)]
    fn assemble(mut config: ResolverConfig, parts: Parts<ENDPOINTS>, embedded: E) -> Self {
        // Correlation ids start at a seeded random point so that two clients'
        // ids do not collide in the service's logs.
        let next_id = fastrand::Rng::with_seed(config.seed ^ 0x9e37_79b9_7f4a_7c15).u64(..);
        // The cache's settings (with room for 16 warm keys, 2.6 KB) are kept
        // once, by the cache.
        let cache_config = core::mem::take(&mut config.cache);
        Self {
            cache: Cache::assemble(cache_config),
            lent: None,
            feedback: FeedbackQueue::assemble(
                FeedbackConfig {
                    wire: config.wire,
                    ..config.feedback
                },
                parts.feedback_backoff,
            ),
            config,
            policies: heapless::index_map::FnvIndexMap::new(),
            endpoints: parts.endpoints,
            budget: parts.budget,
            feedback_in_flight: None,
            checks: heapless::Vec::new(),
            embedded,
            embedded_route: None,
            flights: heapless::Vec::new(),
            waiters: heapless::Vec::new(),
            answers: answers::Answers::new(),
            events: heapless::Deque::new(),
            stats: Stats::default(),
            next_id,
            next_serial: 0,
        }
    }

    /// The configuration, as given (a copy: the cache holds its own part).
    pub fn config(&self) -> ResolverConfig {
        ResolverConfig {
            cache: self.cache.config().clone(),
            ..self.config.clone()
        }
    }

    /// Endpoint `index`'s configuration (its URL), for sending a transmit.
    pub fn endpoint(&self, index: usize) -> Option<&EndpointConfig> {
        self.endpoints.endpoint(index)
    }

    /// Endpoint `index`'s health.
    pub fn endpoint_health(&self, index: usize) -> Option<Health> {
        self.endpoints.health(index)
    }

    /// The service endpoints, read-only (health, breakers), for metrics.
    pub fn endpoints(&self) -> &Endpoints<ENDPOINTS> {
        &self.endpoints
    }

    /// Endpoint `index`'s breaker, for operator switches (force open,
    /// disable); its transitions still come out of [`poll_output`](Self::poll_output).
    pub fn breaker_mut(&mut self, index: usize) -> Option<&mut crate::breaker::Breaker> {
        self.endpoints.breaker_mut(index)
    }

    /// Replaces the service endpoints (for example after a DNS SRV lookup
    /// found new ones). The new set starts healthy with closed breakers;
    /// requests already sent still take their replies, and health checks in
    /// flight are forgotten. Nothing changes on error.
    pub fn replace_endpoints(
        &mut self,
        now: Instant,
        endpoints: &[EndpointConfig],
    ) -> Result<(), ValidationError> {
        let mut fresh =
            Endpoints::new(now, self.config.endpoints, endpoints).map_err(endpoints_error)?;
        if !self.config.circuit_breaker_enabled {
            for i in 0..fresh.len() {
                if let Some(b) = fresh.breaker_mut(i) {
                    b.disable();
                }
            }
        }
        self.endpoints = fresh;
        self.checks.clear();
        Ok(())
    }

    /// Whether a background refresh is waiting to be sent: a cache hit that
    /// made one due is the only resolve answered at once that leaves work
    /// for [`poll_output`](Self::poll_output), so a driver can skip waking
    /// itself on every other hit.
    pub fn refresh_pending(&self) -> bool {
        self.cache.refresh_pending()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.dropped_events = s
            .dropped_events
            .saturating_add(self.cache.dropped_events())
            .saturating_add(self.endpoints.dropped_events());
        s
    }

    /// The feedback queue's counters (`sent + queued + dropped + drained ==
    /// reported`).
    pub fn feedback_stats(&self) -> feedback::Stats {
        self.feedback.stats()
    }

    /// Service requests in flight (for tests and metrics).
    pub fn flights(&self) -> usize {
        self.flights.len()
    }

    /// The embedded configuration.
    pub fn embedded_mut(&mut self) -> &mut E {
        &mut self.embedded
    }

    /// A connection made through a [`Source::Embedded`] route has ended:
    /// the embedded configuration gets its pick back (a `least_connections`
    /// lease), see [`EmbeddedRoutes::release_route`].
    pub fn release_embedded(
        &mut self,
        exchange_id: &crate::model::ExchangeId,
        connection_type: crate::model::ConnectionType,
        proxy_url: &ProxyUrl,
    ) {
        self.embedded
            .release_route(exchange_id, connection_type, proxy_url);
    }
}
