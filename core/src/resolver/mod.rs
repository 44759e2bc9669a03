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

use core::fmt;

use embassy_time::{Duration, Instant};

use crate::backoff::{self, RetryBudget, RetryBudgetConfig};
use crate::breaker::Outcome;
use crate::cache::{self, Cache, CacheConfig, CacheKey, CacheKeyRef, Freshness};
use crate::codec;
use crate::contract::{self, Method};
use crate::embedded::{EmbeddedRoute, EmbeddedRoutes};
use crate::endpoints::{
    EndpointConfig, EndpointEvent, Endpoints, EndpointsConfig, EndpointsError, Health, Selected,
};
use crate::feedback::{self, BatchId, FeedbackConfig, FeedbackQueue};
use crate::model::{
    ClientId, ErrorCategory, FallbackPolicy, FeedbackEvent, ProxyFeedback, ProxyId, ProxyRequest,
    ProxyResponse, ProxyUrl,
};

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
/// Room for events not yet taken with [`Resolver::poll_output`]; when full the
/// oldest goes and is counted in [`Stats::dropped_events`].
pub const EVENT_QUEUE_LEN: usize = 64;
/// Longest `Retry-After` honoured for service requests: a hint above it
/// holds the endpoint off this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Smallest buffer [`Resolver::poll_output`] accepts: a request encodes to
/// at most about 3 KiB, a feedback event to about 1.5 KiB.
pub const MIN_TRANSMIT_BUFFER: usize = 4096;

// ---------------------------------------------------------------- config

/// How a [`Resolver`] behaves. [`ResolverConfig::new`] gives the documented
/// defaults for everything but the client id: those of the settings'
/// `external_service` block, through the one bridge,
/// [`ExternalService::delegation`](crate::settings::ExternalService::delegation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Sent in service requests built for background refreshes.
    pub client_id: ClientId,
    /// How long a resolve waits for the service before it falls back. Default 500 ms.
    pub resolve_deadline: Duration,
    /// How long a service request may take before its attempt counts as
    /// failed. A reply after the resolve deadline but within this still
    /// fills the cache. Default 10 s (`timeout_seconds`).
    pub request_timeout: Duration,
    /// If an endpoint has not answered within this, the same request also goes
    /// to the next healthy endpoint (within the retry budget); zero turns
    /// hedging off. Default 100 ms (as `hedge_delay_ms` in the settings).
    pub hedge_delay: Duration,
    /// Whether the `embedded_fallback` policy may use the embedded
    /// configuration (otherwise it connects directly). Default true.
    pub fallback_to_embedded: bool,
    /// The policy for keys the service has not answered yet. Default
    /// `embedded_fallback`.
    pub default_fallback_policy: FallbackPolicy,
    /// Whether each endpoint has a circuit breaker; when false the breakers
    /// are disabled (they admit every call). Default true.
    pub circuit_breaker_enabled: bool,
    /// The response cache. Default [`CacheConfig::default`] with `max_ttl`
    /// 300 s (`cache_ttl_seconds`).
    pub cache: CacheConfig,
    /// The service endpoints' health checks and breakers. Default
    /// [`EndpointsConfig::default`].
    pub endpoints: EndpointsConfig,
    /// The budget for hedges and retries. Default [`RetryBudgetConfig::default`].
    pub retry_budget: RetryBudgetConfig,
    /// The feedback queue. Default [`FeedbackConfig::default`].
    pub feedback: FeedbackConfig,
    /// Seed of the correlation ids (the machines have their own seeds in their
    /// configs). Default 0.
    pub seed: u64,
    /// The wire format of requests, answers and feedback batches (the
    /// feedback queue's own `wire` is set from it). Default JSON.
    pub wire: contract::WireFormat,
}

impl ResolverConfig {
    /// The defaults, for a client called `client_id`.
    pub fn new(client_id: ClientId) -> Self {
        let mut config = Self::base(client_id);
        crate::settings::ExternalService::default().apply(&mut config);
        config
    }

    /// The machine's own defaults, before the settings' defaults apply.
    pub(crate) fn base(client_id: ClientId) -> Self {
        Self {
            client_id,
            resolve_deadline: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
            hedge_delay: Duration::from_millis(100),
            fallback_to_embedded: true,
            circuit_breaker_enabled: true,
            default_fallback_policy: FallbackPolicy::EmbeddedFallback,
            cache: CacheConfig::default(),
            endpoints: EndpointsConfig::default(),
            retry_budget: RetryBudgetConfig::default(),
            feedback: FeedbackConfig::default(),
            seed: 0,
            wire: contract::WireFormat::Json,
        }
    }
}

/// A [`ResolverConfig`] that cannot work, naming the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A resolver duration is zero or out of order.
    Resolver {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// The cache configuration.
    Cache(cache::ConfigError),
    /// The endpoint list or its configuration.
    Endpoints(EndpointsError),
    /// The retry budget.
    RetryBudget(backoff::ConfigError),
    /// The feedback queue.
    Feedback(feedback::ConfigError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Resolver { field, expected } => {
                write!(f, "resolver config: {field} must be {expected}")
            }
            ConfigError::Cache(e) => fmt::Display::fmt(e, f),
            ConfigError::Endpoints(e) => fmt::Display::fmt(e, f),
            ConfigError::RetryBudget(e) => write!(f, "retry budget: {e}"),
            ConfigError::Feedback(e) => write!(f, "feedback queue: {e}"),
        }
    }
}

impl core::error::Error for ConfigError {}

// ---------------------------------------------------------------- outputs

/// Where a route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The service answered this resolve.
    Service,
    /// A fresh cached answer of the service.
    Cache,
    /// An expired cached answer, within its grace, because the service could
    /// not answer in time.
    Stale,
    /// The embedded configuration.
    Embedded,
    /// No proxy: connect directly.
    Direct,
}

impl Source {
    /// Lower-case name for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Service => "service",
            Source::Cache => "cache",
            Source::Stale => "stale",
            Source::Embedded => "embedded",
            Source::Direct => "direct",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a resolve did not get the service's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FallbackReason {
    /// No endpoint could take the request: all down, or their breakers open.
    /// The fallback cost no waiting.
    NoEndpoint,
    /// The resolve's deadline passed before the service answered.
    Deadline,
    /// Every attempt failed (errors, timeouts, malformed or refused answers).
    ServiceFailed,
    /// Too many requests or waiting resolves at once (the resolver's
    /// `FLIGHTS` and `WAITERS` capacities).
    Overloaded,
}

impl FallbackReason {
    /// Lower-case name for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            FallbackReason::NoEndpoint => "no_endpoint",
            FallbackReason::Deadline => "deadline",
            FallbackReason::ServiceFailed => "service_failed",
            FallbackReason::Overloaded => "overloaded",
        }
    }
}

impl fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resolve that yields no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveError {
    /// The service could not answer and the last `fallback_policy` for this key
    /// is `fail`: do not connect.
    ServiceUnavailable {
        /// Why the service's answer was missing.
        reason: FallbackReason,
    },
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::ServiceUnavailable { reason } => write!(
                f,
                "the proxy service gave no answer ({reason}) and its fallback_policy for this \
                 connection is \"fail\": not connecting"
            ),
        }
    }
}

impl core::error::Error for ResolveError {}

/// A route, borrowed from the resolver (what [`Resolver::resolve`] returns at
/// once). [`RouteRef::to_owned`] copies it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteRef<'a> {
    /// The proxy to connect through, with credentials for the connector;
    /// `None`: connect directly.
    pub proxy_url: Option<&'a ProxyUrl>,
    /// The service's id of the proxy, when the service chose it.
    pub proxy_id: Option<&'a ProxyId>,
    /// Where the route came from.
    pub source: Source,
}

impl RouteRef<'_> {
    /// An owned copy.
    pub fn to_owned(&self) -> Route {
        Route {
            proxy_url: self.proxy_url.cloned(),
            proxy_id: self.proxy_id.cloned(),
            source: self.source,
        }
    }
}

/// A route, owned (what [`Output::Answer`] hands out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The proxy to connect through; `None`: connect directly.
    pub proxy_url: Option<ProxyUrl>,
    /// The service's id of the proxy, when the service chose it.
    pub proxy_id: Option<ProxyId>,
    /// Where the route came from.
    pub source: Source,
}

/// A pending resolve's handle; its answer comes out of [`Resolver::poll_output`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

impl Ticket {
    /// The number (unique within one resolver).
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The ticket with this number, for a caller that kept it as a number.
    pub const fn from_raw(n: u64) -> Self {
        Self(n)
    }
}

/// What [`Resolver::resolve`] gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution<'a> {
    /// The route, at once: a fresh cached answer, or a fallback that costs no
    /// waiting (the service cannot be asked).
    Ready(RouteRef<'a>),
    /// Asked the service (or joined a request already in flight): the answer
    /// comes out of [`Resolver::poll_output`] with this ticket by the deadline.
    Pending(Ticket),
    /// No route: the service cannot be asked and the policy is `fail`.
    Failed(ResolveError),
}

/// The answer to a [`Resolution::Pending`] resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The resolve's ticket.
    pub ticket: Ticket,
    /// The route, or why there is none.
    pub result: Result<Route, ResolveError>,
    /// When the resolve was made (its latency is the answer's time minus this).
    pub started: Instant,
}

/// Identifies one transmit end to end: the adapter sends it in an HTTP header
/// (`X-Correlation-Id`) and writes it in its logs, and gives it back with the
/// reply. Displayed as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CorrelationId(u64);

impl CorrelationId {
    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The id with this number, for an adapter that carried it as a number.
    pub const fn from_raw(n: u64) -> Self {
        Self(n)
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What a transmit asks the adapter to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransmitKind {
    /// `POST {endpoint}/api/v1/proxy/request` with the JSON body in the buffer.
    Resolve,
    /// `POST {endpoint}/api/v1/proxy/feedback` with the JSON array in the buffer.
    Feedback(BatchId),
    /// `GET {endpoint}/health`; the buffer is not used (`len` is 0).
    HealthCheck,
}

impl TransmitKind {
    /// The path to send to, below the endpoint's base URL.
    pub const fn path(self) -> &'static str {
        match self {
            TransmitKind::Resolve => contract::REQUEST_PATH,
            TransmitKind::Feedback(_) => contract::FEEDBACK_PATH,
            TransmitKind::HealthCheck => contract::HEALTH_PATH,
        }
    }

    /// The HTTP method.
    pub const fn method(self) -> Method {
        match self {
            TransmitKind::Resolve | TransmitKind::Feedback(_) => Method::Post,
            TransmitKind::HealthCheck => Method::Get,
        }
    }

    /// Lower-case name for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransmitKind::Resolve => "resolve",
            TransmitKind::Feedback(_) => "feedback",
            TransmitKind::HealthCheck => "health",
        }
    }
}

/// A request for the adapter to send; the body is `out[..len]` of the buffer
/// given to [`Resolver::poll_output`]. It carries its route: the endpoint,
/// and [`TransmitKind::path`] and [`TransmitKind::method`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Give it back with the reply.
    pub id: CorrelationId,
    /// Index of the endpoint to send to (see [`Resolver::endpoint`]).
    pub endpoint: usize,
    /// What to send.
    pub kind: TransmitKind,
    /// Bytes of body written at the start of the buffer.
    pub len: usize,
    /// Give up (and report [`Reply::Failed`]) if no reply by then; replying
    /// later is harmless.
    pub deadline: Instant,
}

/// How a transmit ended, as the adapter saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// A 2xx status with this body.
    Ok(&'a [u8]),
    /// Any other status; `retry_after` from the `Retry-After` header.
    Status {
        /// The HTTP status.
        code: u16,
        /// The server's hint, if any.
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused or reset, TLS failure, timeout.
    Failed,
}

/// An input the resolver could not use. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputError {
    /// [`Resolver::handle_reply`] got an id that is unknown, already answered
    /// or timed out.
    UnknownCorrelation {
        /// The id given.
        id: CorrelationId,
    },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::UnknownCorrelation { id } => write!(
                f,
                "reply for correlation id {id} ignored: unknown, already answered or timed out"
            ),
        }
    }
}

impl core::error::Error for InputError {}

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

// ---------------------------------------------------------------- internals

#[derive(Debug)]
struct Attempt {
    id: CorrelationId,
    endpoint: usize,
    /// The endpoint's breaker permit, given back when the attempt ends.
    selected: Option<Selected>,
    sent: bool,
}

#[derive(Debug)]
struct Flight {
    serial: u64,
    key: CacheKey,
    request: ProxyRequest,
    attempts: heapless::Vec<Attempt, MAX_ATTEMPTS>,
    hedge_at: Option<Instant>,
    expires_at: Instant,
    refresh: bool,
}

impl Flight {
    fn outstanding(&self) -> usize {
        self.attempts
            .iter()
            .filter(|a| a.selected.is_some())
            .count()
    }
}

#[derive(Debug)]
struct Waiter {
    ticket: Ticket,
    flight: u64,
    key: CacheKey,
    started: Instant,
    deadline: Instant,
}

/// FNV-1a of a cache key: the policy memory keys on it.
fn key_hash(key: &CacheKey) -> u64 {
    use core::hash::{Hash, Hasher};
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    key.hash(&mut h);
    h.finish()
}

/// Whether a failure reported in feedback is the proxy's fault, so that
/// [`Resolver::report`] removes the cached answers naming it at once (an
/// adapter that queues other feedback before reporting it must report these
/// without delay).
pub fn proxy_at_fault(feedback: &ProxyFeedback) -> bool {
    let failed = matches!(
        feedback.event,
        FeedbackEvent::Failure | FeedbackEvent::Timeout
    ) || !feedback.success;
    let target_fault = matches!(
        feedback.error_category,
        Some(ErrorCategory::TargetHttp5xx | ErrorCategory::TargetTls)
    );
    failed
        && !target_fault
        && !matches!(
            feedback.event,
            FeedbackEvent::ConnectStart | FeedbackEvent::Disconnect
        )
}

/// The small, validated parts of a resolver under construction.
struct Parts<const ENDPOINTS: usize> {
    endpoints: Endpoints<ENDPOINTS>,
    budget: RetryBudget,
    feedback_backoff: crate::backoff::Backoff,
}

// ---------------------------------------------------------------- resolver

/// Decides which proxy every exchange connection uses.
///
/// Type parameters: `E` the embedded configuration; `CACHE` the cache's
/// capacity (a power of two); `ENDPOINTS` the most service endpoints;
/// `FEEDBACK` the feedback queue's capacity; `FLIGHTS` the most service
/// requests in flight (default [`MAX_FLIGHTS`]); `WAITERS` the most resolves
/// waiting for an answer (default [`MAX_WAITERS`]). The struct holds
/// everything inline: build a large one with
/// [`new_boxed`](Self::new_boxed) (feature `alloc`), or in a `static`.
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
> {
    config: ResolverConfig,
    cache: Cache<ProxyResponse, CACHE>,
    /// The last fallback policy the service gave, per key (by hash).
    policies: heapless::index_map::FnvIndexMap<u64, FallbackPolicy, CACHE>,
    endpoints: Endpoints<ENDPOINTS>,
    budget: RetryBudget,
    feedback: FeedbackQueue<FEEDBACK>,
    feedback_in_flight: Option<(CorrelationId, BatchId)>,
    /// Health checks in flight: correlation id, check id, deadline, endpoint.
    checks: heapless::Vec<(CorrelationId, u64, Instant, usize), ENDPOINTS>,
    embedded: E,
    /// The last embedded route handed out, so it can be lent.
    embedded_route: Option<EmbeddedRoute>,
    flights: heapless::Vec<Flight, FLIGHTS>,
    waiters: heapless::Vec<Waiter, WAITERS>,
    answers: heapless::Deque<Answer, WAITERS>,
    events: heapless::Deque<Event, EVENT_QUEUE_LEN>,
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
> Resolver<E, CACHE, ENDPOINTS, FEEDBACK, FLIGHTS, WAITERS>
{
    /// Builds a resolver for the given service endpoints (at least one, at
    /// most `ENDPOINTS`) and embedded configuration.
    pub fn new(
        now: Instant,
        config: ResolverConfig,
        endpoints: &[EndpointConfig],
        embedded: E,
    ) -> Result<Self, ConfigError> {
        let parts = Self::validate(now, &config, endpoints)?;
        Ok(Self::assemble(config, parts, embedded))
    }

    /// Like [`new`](Self::new), boxed: a resolver with a large cache or
    /// feedback queue is hundreds of KiB to several MiB. The value is built
    /// with no `Result` around it and written into a fresh allocation, so
    /// optimised builds hold at most one copy on the stack (`Box::new(new()?)`
    /// holds two or three); a debug build of the calling crate holds more.
    /// Keep a resolver built on a small stack (a tokio worker's 2 MiB) well
    /// under a megabyte, or build it in a `static`.
    #[cfg(feature = "alloc")]
    pub fn new_boxed(
        now: Instant,
        config: ResolverConfig,
        endpoints: &[EndpointConfig],
        embedded: E,
    ) -> Result<alloc::boxed::Box<Self>, ConfigError> {
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
    ) -> Result<Parts<ENDPOINTS>, ConfigError> {
        let positive = |d: Duration, field: &'static str| {
            if d.as_ticks() == 0 {
                Err(ConfigError::Resolver {
                    field,
                    expected: "above zero",
                })
            } else {
                Ok(())
            }
        };
        positive(config.resolve_deadline, "resolve_deadline")?;
        positive(config.request_timeout, "request_timeout")?;
        config.cache.validate().map_err(ConfigError::Cache)?;
        let mut endpoints =
            Endpoints::new(now, config.endpoints, endpoints).map_err(ConfigError::Endpoints)?;
        if !config.circuit_breaker_enabled {
            for i in 0..endpoints.len() {
                if let Some(b) = endpoints.breaker_mut(i) {
                    b.disable();
                }
            }
        }
        let budget = RetryBudget::new(config.retry_budget).map_err(ConfigError::RetryBudget)?;
        let feedback_backoff =
            FeedbackQueue::<FEEDBACK>::validate(&config.feedback).map_err(ConfigError::Feedback)?;
        Ok(Parts {
            endpoints,
            budget,
            feedback_backoff,
        })
    }

    /// Builds the resolver from validated parts. Infallible and inlined, so
    /// that [`new_boxed`](Self::new_boxed) writes it in place.
    #[inline(always)]
    fn assemble(config: ResolverConfig, parts: Parts<ENDPOINTS>, embedded: E) -> Self {
        // Correlation ids start at a seeded random point so that two clients'
        // ids do not collide in the service's logs.
        let next_id = fastrand::Rng::with_seed(config.seed ^ 0x9e37_79b9_7f4a_7c15).u64(..);
        Self {
            cache: Cache::assemble(config.cache.clone()),
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
            answers: heapless::Deque::new(),
            events: heapless::Deque::new(),
            stats: Stats::default(),
            next_id,
            next_serial: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ResolverConfig {
        &self.config
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
    ) -> Result<(), ConfigError> {
        let mut fresh = Endpoints::new(now, self.config.endpoints, endpoints)
            .map_err(ConfigError::Endpoints)?;
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

    // ------------------------------------------------------------ inputs

    /// Resolves a route for `request`, waiting at most the configured
    /// `resolve_deadline` for the service.
    pub fn resolve(&mut self, now: Instant, request: &ProxyRequest) -> Resolution<'_> {
        let deadline = now.saturating_add(self.config.resolve_deadline);
        self.resolve_by(now, request, deadline)
    }

    /// Like [`resolve`](Self::resolve), with the caller's own deadline.
    pub fn resolve_by(
        &mut self,
        now: Instant,
        request: &ProxyRequest,
        deadline: Instant,
    ) -> Resolution<'_> {
        // The lookup needs `&mut` (recency, refresh-ahead) and borrows the
        // request's key; the value is then lent through `last_hit`, as a
        // conditional return of the lookup's own borrow does not pass today's
        // borrow checker.
        if self
            .cache
            .get(now, CacheKeyRef::from_request(request))
            .is_some()
        {
            // The hot path: counted, not evented (see `Event::Resolved`).
            self.stats.resolved[Source::Cache as usize] += 1;
            return self.cached();
        }
        let key = CacheKey::from_request(request);
        if self.waiters.len() + self.answers.len() >= WAITERS {
            return self.fallback_ready(now, key, FallbackReason::Overloaded);
        }
        let serial = match self.flights.iter().find(|f| f.key == key) {
            Some(f) => f.serial,
            None => match self.start_flight(now, key.clone(), request.clone(), false) {
                Ok(serial) => serial,
                Err(reason) => return self.fallback_ready(now, key, reason),
            },
        };
        let ticket = Ticket(self.next_serial);
        self.next_serial += 1;
        let waiter = Waiter {
            ticket,
            flight: serial,
            key,
            started: now,
            deadline: deadline.max(now),
        };
        // Room was checked above.
        let _ = self.waiters.push(waiter);
        Resolution::Pending(ticket)
    }

    /// The route of the cache entry a lookup has just found.
    fn cached(&self) -> Resolution<'_> {
        let value = self.cache.last_hit();
        Resolution::Ready(RouteRef {
            proxy_url: value.and_then(|v| v.proxy_url.as_ref()),
            proxy_id: value.and_then(|v| v.metadata.proxy_id.as_ref()),
            // `peek` right after a hit always finds the entry.
            source: if value.is_some() {
                Source::Cache
            } else {
                Source::Direct
            },
        })
    }

    /// Reports how a connection went. Never blocks and never fails: the event
    /// is queued for the service (the oldest queued event is dropped and
    /// counted when the queue is full). A failure that is the proxy's fault
    /// also removes every cached answer naming that proxy, so the next resolve
    /// asks the service again.
    pub fn report(&mut self, now: Instant, feedback: ProxyFeedback) {
        if proxy_at_fault(&feedback) {
            let count = self
                .cache
                .invalidate_proxy(feedback.proxy_id.as_ref(), feedback.proxy_url.as_ref());
            if count > 0 {
                self.emit(Event::ProxyInvalidated { count });
            }
        }
        self.feedback.report(now, feedback);
    }

    /// The outcome of transmit `id`.
    pub fn handle_reply(
        &mut self,
        now: Instant,
        id: CorrelationId,
        reply: Reply<'_>,
    ) -> Result<(), InputError> {
        if let Some(pos) = self.checks.iter().position(|(c, ..)| *c == id) {
            let (_, check, ..) = self.checks.swap_remove(pos);
            let ok = matches!(reply, Reply::Ok(_))
                || matches!(reply, Reply::Status { code, .. } if contract::is_healthy(code));
            // An unknown check id means the endpoints already timed it out.
            let _ = self.endpoints.handle_check_result(now, check, ok);
            return Ok(());
        }
        if let Some((fid, batch)) = self.feedback_in_flight
            && fid == id
        {
            self.feedback_in_flight = None;
            let result = match reply {
                Reply::Ok(_) => self.feedback.handle_sent(now, batch),
                Reply::Status { code, .. } if contract::is_success(code) => {
                    self.feedback.handle_sent(now, batch)
                }
                // The service refused the batch itself: retrying cannot help.
                Reply::Status { code, .. } if contract::is_body_refused(code) => {
                    self.feedback.handle_rejected(now, batch)
                }
                Reply::Status { retry_after, .. } => {
                    self.feedback.handle_send_failed(now, batch, retry_after)
                }
                Reply::Failed => self.feedback.handle_send_failed(now, batch, None),
            };
            // An unknown batch means the queue already timed it out and will resend.
            let _ = result;
            return Ok(());
        }
        let (fi, ai) = self
            .find_attempt(id)
            .ok_or(InputError::UnknownCorrelation { id })?;
        match reply {
            Reply::Ok(body) => match match self.config.wire {
                contract::WireFormat::Json => codec::json::decode::<ProxyResponse>(body),
                contract::WireFormat::Postcard => codec::postcard::decode::<ProxyResponse>(body),
            } {
                Ok(response) => {
                    self.end_attempt(now, fi, ai, Outcome::Success);
                    self.budget.record_success(now);
                    self.complete_flight(now, fi, response);
                }
                Err(_) => {
                    let endpoint = self.flights[fi].attempts[ai].endpoint;
                    self.emit(Event::BadReply {
                        id,
                        endpoint,
                        status: 200,
                    });
                    self.attempt_failed(now, fi, ai, Outcome::Failure);
                }
            },
            Reply::Status { code, retry_after } => {
                let endpoint = self.flights[fi].attempts[ai].endpoint;
                if let (429 | 503, Some(wait)) = (code, retry_after) {
                    // The service asked to be left alone: no request goes
                    // to it before then (resolves fall back meanwhile).
                    let wait = wait.min(MAX_RETRY_AFTER);
                    self.endpoints.hold_off(endpoint, now.saturating_add(wait));
                }
                self.emit(Event::BadReply {
                    id,
                    endpoint,
                    status: code,
                });
                // A refusal of the request itself is not the endpoint's health.
                let outcome = if contract::is_request_refused(code) {
                    Outcome::Ignored
                } else {
                    Outcome::Failure
                };
                self.attempt_failed(now, fi, ai, outcome);
            }
            Reply::Failed => self.attempt_failed(now, fi, ai, Outcome::Failure),
        }
        Ok(())
    }

    /// Applies every timer that has passed by `now`: resolves past their
    /// deadline fall back, requests past their timeout fail, hedges go out,
    /// and the machines inside advance. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Resolves past their deadline fall back; their request goes on and
        // its reply still fills the cache.
        while let Some(w) = self.take_waiter(|w| w.deadline <= now) {
            self.answer_fallback(now, w, FallbackReason::Deadline);
        }
        // Requests past their timeout: every outstanding attempt failed.
        let mut fi = 0;
        while fi < self.flights.len() {
            if self.flights[fi].expires_at <= now {
                for ai in 0..self.flights[fi].attempts.len() {
                    self.end_attempt(now, fi, ai, Outcome::Failure);
                }
                self.fail_flight(now, fi);
                continue;
            }
            let hedge_due = self.flights[fi].hedge_at.is_some_and(|t| t <= now);
            if hedge_due {
                self.flights[fi].hedge_at = None;
                self.try_another_attempt(now, fi, true);
            }
            fi += 1;
        }
        self.endpoints.handle_timeout(now);
        // Health checks the endpoints timed out are gone: forget their ids.
        // The endpoints failed the checks past their deadline: forget their ids.
        self.checks.retain(|(_, _, deadline, _)| *deadline > now);
        self.cache.handle_timeout(now);
        self.feedback.handle_timeout(now);
        if let Some((_, batch)) = self.feedback_in_flight
            && self.feedback.in_flight() != Some(batch)
        {
            // The queue timed the batch out itself; a late reply is ignored.
            self.feedback_in_flight = None;
        }
    }

    // ------------------------------------------------------------ outputs

    /// The next thing to do, after any input: drain until it gives
    /// [`Output::Timeout`].
    ///
    /// It gives, in this order: every [`Output::Transmit`] (with its body
    /// written to `out`, at least [`MIN_TRANSMIT_BUFFER`] bytes); then every
    /// [`Output::Answer`] for a pending resolve; then every [`Output::Event`];
    /// then [`Output::Timeout`] with when [`handle_timeout`](Self::handle_timeout)
    /// is next due. The order matters: making a transmit can answer resolves
    /// (a request that cannot be encoded falls back), emit events and move
    /// the next timeout, so the timeout is only final once nothing else is
    /// left.
    pub fn poll_output(&mut self, now: Instant, out: &mut [u8]) -> Output {
        if let Some(t) = self.poll_transmit(now, out) {
            return Output::Transmit(t);
        }
        if let Some(a) = self.answers.pop_front() {
            return Output::Answer(a);
        }
        if let Some(e) = self.poll_event() {
            return Output::Event(e);
        }
        Output::Timeout(self.poll_timeout())
    }

    /// Withdraws a pending resolve (its caller went away): its slot is free at
    /// once, and an answer not yet taken is discarded. The service request it
    /// joined goes on, and its reply still fills the cache. Returns whether
    /// the ticket was pending or answered and not yet taken.
    pub fn cancel(&mut self, ticket: Ticket) -> bool {
        if self.take_waiter(|w| w.ticket == ticket).is_some() {
            return true;
        }
        match self.answers.iter().position(|a| a.ticket == ticket) {
            Some(i) => {
                // Keep the other answers in order.
                let mut kept = heapless::Deque::<Answer, WAITERS>::new();
                let mut j = 0;
                while let Some(a) = self.answers.pop_front() {
                    if j != i {
                        let _ = kept.push_back(a);
                    }
                    j += 1;
                }
                self.answers = kept;
                true
            }
            None => false,
        }
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        // Background refreshes the cache asked for become requests.
        while let Some(key) = self.cache.poll_refresh(now) {
            if self.flights.iter().any(|f| f.key == key) {
                continue;
            }
            let mut request = ProxyRequest::new(
                key.exchange_id.clone(),
                key.connection_type,
                self.config.client_id.clone(),
            );
            request.region = key.region.clone();
            match self.start_flight(now, key.clone(), request, true) {
                Ok(_) => self.emit(Event::Refresh {
                    key,
                    succeeded: None,
                }),
                Err(_) => {
                    self.cache.refresh_failed(now, &key);
                    self.emit(Event::Refresh {
                        key,
                        succeeded: Some(false),
                    });
                }
            }
        }
        // Service requests not sent yet.
        for fi in 0..self.flights.len() {
            let Some(ai) = self.flights[fi]
                .attempts
                .iter()
                .position(|a| !a.sent && a.selected.is_some())
            else {
                continue;
            };
            let flight = &mut self.flights[fi];
            let encoded = match self.config.wire {
                contract::WireFormat::Json => codec::json::encode(&flight.request, out),
                contract::WireFormat::Postcard => codec::postcard::encode(&flight.request, out),
            };
            match encoded {
                Ok(len) => {
                    let attempt = &mut flight.attempts[ai];
                    attempt.sent = true;
                    return Some(Transmit {
                        id: attempt.id,
                        endpoint: attempt.endpoint,
                        kind: TransmitKind::Resolve,
                        len,
                        deadline: flight.expires_at,
                    });
                }
                Err(_) => {
                    // The caller's buffer is too small: not the endpoint's fault.
                    self.attempt_failed(now, fi, ai, Outcome::Ignored);
                    return self.poll_transmit(now, out);
                }
            }
        }
        // Health checks.
        if let Some(check) = self.endpoints.poll_transmit(now) {
            let id = self.next_correlation();
            // An endpoint has one check in flight: a new one supersedes the old.
            self.checks.retain(|(.., index)| *index != check.index);
            let _ = self
                .checks
                .push((id, check.id, check.deadline, check.index));
            return Some(Transmit {
                id,
                endpoint: check.index,
                kind: TransmitKind::HealthCheck,
                len: 0,
                deadline: check.deadline,
            });
        }
        // Feedback, to the best endpoint that is not down.
        if self.feedback_in_flight.is_none()
            && let Some(endpoint) = self.feedback_endpoint()
            && let Some(t) = self.feedback.poll_transmit(now, out)
        {
            let id = self.next_correlation();
            self.feedback_in_flight = Some((id, t.id));
            return Some(Transmit {
                id,
                endpoint,
                kind: TransmitKind::Feedback(t.id),
                len: t.len,
                deadline: now.saturating_add(self.config.request_timeout),
            });
        }
        None
    }

    /// The next event, oldest first; then those of the machines inside.
    fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        if let Some(e) = self.endpoints.poll_event() {
            return Some(Event::Endpoint(e));
        }
        if let Some(e) = self.cache.poll_event() {
            return Some(Event::Cache(e));
        }
        self.feedback.poll_event().map(Event::Feedback)
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due, as things
    /// stand (what [`poll_output`](Self::poll_output) ends with once nothing
    /// else is left). A read-only query.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let waiters = self.waiters.iter().map(|w| w.deadline);
        let flights = self
            .flights
            .iter()
            .flat_map(|f| [Some(f.expires_at), f.hedge_at])
            .flatten();
        // Feedback that is due but has no endpoint to go to waits for an
        // endpoint's health check, which has its own timer.
        let feedback = if self.feedback_in_flight.is_some() || self.feedback_endpoint().is_some() {
            self.feedback.poll_timeout()
        } else {
            None
        };
        waiters
            .chain(flights)
            .chain(self.endpoints.poll_timeout())
            .chain(self.cache.poll_timeout())
            .chain(feedback)
            .min()
    }

    /// At shutdown, first: send every queued feedback event now, whatever
    /// the batching delay or the backoff (then drain
    /// [`poll_output`](Self::poll_output) as usual).
    pub fn flush_feedback(&mut self) {
        self.feedback.flush();
    }

    /// At shutdown: every feedback event still queued, oldest first, for the
    /// adapter to send or persist. They count as drained.
    pub fn drain_feedback(&mut self) -> feedback::Drain<'_, FEEDBACK> {
        self.feedback_in_flight = None;
        self.feedback.drain()
    }

    // ------------------------------------------------------------ helpers

    fn next_correlation(&mut self) -> CorrelationId {
        let id = CorrelationId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    fn emit(&mut self, event: Event) {
        if self.events.is_full() {
            let _ = self.events.pop_front();
            self.stats.dropped_events += 1;
        }
        let _ = self.events.push_back(event);
    }

    fn count_resolved(&mut self, source: Source, latency: Duration) {
        self.stats.resolved[source as usize] += 1;
        self.emit(Event::Resolved { source, latency });
    }

    /// The endpoint feedback goes to: the best priority among healthy ones,
    /// else among suspect ones; never a down one (the queue keeps the events).
    fn feedback_endpoint(&self) -> Option<usize> {
        [Health::Healthy, Health::Suspect]
            .into_iter()
            .find_map(|wanted| {
                (0..self.endpoints.len())
                    .filter(|i| self.endpoints.health(*i) == Some(wanted))
                    .min_by_key(|i| self.endpoints.endpoint(*i).map_or(u8::MAX, |e| e.priority))
            })
    }

    fn find_attempt(&self, id: CorrelationId) -> Option<(usize, usize)> {
        self.flights.iter().enumerate().find_map(|(fi, f)| {
            f.attempts
                .iter()
                .position(|a| a.id == id && a.selected.is_some())
                .map(|ai| (fi, ai))
        })
    }

    fn start_flight(
        &mut self,
        now: Instant,
        key: CacheKey,
        request: ProxyRequest,
        refresh: bool,
    ) -> Result<u64, FallbackReason> {
        if self.flights.is_full() {
            return Err(FallbackReason::Overloaded);
        }
        let selected = self
            .endpoints
            .select(now)
            .ok_or(FallbackReason::NoEndpoint)?;
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut attempts = heapless::Vec::new();
        let _ = attempts.push(Attempt {
            id: self.next_correlation(),
            endpoint: selected.index(),
            selected: Some(selected),
            sent: false,
        });
        let hedging = self.endpoints.len() > 1 && self.config.hedge_delay.as_ticks() > 0;
        let hedge_at = hedging.then(|| now.saturating_add(self.config.hedge_delay));
        let _ = self.flights.push(Flight {
            serial,
            key,
            request,
            attempts,
            hedge_at,
            expires_at: now.saturating_add(self.config.request_timeout),
            refresh,
        });
        Ok(serial)
    }

    /// Gives attempt `ai`'s permit back with `outcome` (once).
    fn end_attempt(&mut self, now: Instant, fi: usize, ai: usize, outcome: Outcome) {
        if let Some(selected) = self.flights[fi].attempts[ai].selected.take() {
            // A stale permit (the breaker moved on) is not an error for us.
            let _ = self.endpoints.record(now, selected, outcome);
        }
    }

    fn attempt_failed(&mut self, now: Instant, fi: usize, ai: usize, outcome: Outcome) {
        self.end_attempt(now, fi, ai, outcome);
        if self.flights[fi].outstanding() > 0 {
            return; // another attempt may still answer
        }
        if !self.try_another_attempt(now, fi, false) {
            self.fail_flight(now, fi);
        }
    }

    /// Sends the request to another endpoint, within the attempt limit and the
    /// retry budget. Returns whether it did.
    fn try_another_attempt(&mut self, now: Instant, fi: usize, hedge: bool) -> bool {
        let flight = &self.flights[fi];
        if flight.attempts.is_full() {
            return false;
        }
        let last = flight.attempts.last().map_or(0, |a| a.endpoint);
        let first = flight.attempts[0].id;
        // Spend a token only for an attempt that is really sent: a hedge with
        // no other endpoint to go to must not starve a later retry.
        if self.budget.available(now) == 0 {
            return false;
        }
        let selected = if hedge {
            // A hedge must go elsewhere; a retry may go anywhere usable.
            self.endpoints.next_after(now, last)
        } else {
            self.endpoints
                .next_after(now, last)
                .or_else(|| self.endpoints.select(now))
        };
        let Some(selected) = selected else {
            return false;
        };
        // `available` said there is a token at `now`.
        let _ = self.budget.try_retry(now);
        let id = self.next_correlation();
        let endpoint = selected.index();
        let _ = self.flights[fi].attempts.push(Attempt {
            id,
            endpoint,
            selected: Some(selected),
            sent: false,
        });
        if hedge {
            self.stats.hedges += 1;
            self.emit(Event::Hedged {
                first,
                id,
                endpoint,
            });
        } else {
            self.stats.retries += 1;
        }
        true
    }

    fn complete_flight(&mut self, now: Instant, fi: usize, response: ProxyResponse) {
        let flight = self.flights.swap_remove(fi);
        // The other attempts are abandoned: neither success nor failure.
        for attempt in flight.attempts {
            if let Some(selected) = attempt.selected {
                let _ = self.endpoints.record(now, selected, Outcome::Ignored);
            }
        }
        self.remember_policy(&flight.key, response.fallback_policy);
        let route = Route {
            proxy_url: response.proxy_url.clone(),
            proxy_id: response.metadata.proxy_id.clone(),
            source: Source::Service,
        };
        self.cache.insert(now, flight.key.clone(), response);
        if flight.refresh {
            self.emit(Event::Refresh {
                key: flight.key.clone(),
                succeeded: Some(true),
            });
        }
        while let Some(w) = self.take_waiter(|w| w.flight == flight.serial) {
            self.count_resolved(Source::Service, now - w.started);
            self.push_answer(Answer {
                ticket: w.ticket,
                result: Ok(route.clone()),
                started: w.started,
            });
        }
    }

    fn fail_flight(&mut self, now: Instant, fi: usize) {
        let flight = self.flights.swap_remove(fi);
        for attempt in flight.attempts {
            if let Some(selected) = attempt.selected {
                let _ = self.endpoints.record(now, selected, Outcome::Failure);
            }
        }
        if flight.refresh {
            self.cache.refresh_failed(now, &flight.key);
            self.emit(Event::Refresh {
                key: flight.key.clone(),
                succeeded: Some(false),
            });
        }
        while let Some(w) = self.take_waiter(|w| w.flight == flight.serial) {
            self.answer_fallback(now, w, FallbackReason::ServiceFailed);
        }
    }

    /// Removes and returns a waiting resolve that matches `pred`.
    fn take_waiter(&mut self, pred: impl Fn(&Waiter) -> bool) -> Option<Waiter> {
        let i = self.waiters.iter().position(pred)?;
        Some(self.waiters.swap_remove(i))
    }

    fn push_answer(&mut self, answer: Answer) {
        // Room is reserved: waiters + answers never exceed WAITERS.
        let _ = self.answers.push_back(answer);
    }

    fn answer_fallback(&mut self, now: Instant, w: Waiter, reason: FallbackReason) {
        let result = self
            .fallback(now, w.key, reason, w.started)
            .map(|r| r.to_owned());
        self.push_answer(Answer {
            ticket: w.ticket,
            result,
            started: w.started,
        });
    }

    fn fallback_ready(
        &mut self,
        now: Instant,
        key: CacheKey,
        reason: FallbackReason,
    ) -> Resolution<'_> {
        match self.fallback(now, key, reason, now) {
            Ok(route) => Resolution::Ready(route),
            Err(e) => Resolution::Failed(e),
        }
    }

    fn remember_policy(&mut self, key: &CacheKey, policy: FallbackPolicy) {
        let h = key_hash(key);
        if self.policies.insert(h, policy).is_err() {
            // Full: forget an arbitrary old key (it falls back to the default).
            if let Some(old) = self.policies.keys().next().copied() {
                self.policies.swap_remove(&old);
            }
            let _ = self.policies.insert(h, policy);
        }
    }

    /// The fallback route for `key` (a resolve made at `started`): stale
    /// cache within grace, then embedded, then direct, as the last policy for
    /// the key allows. Counts and reports it.
    fn fallback(
        &mut self,
        now: Instant,
        key: CacheKey,
        reason: FallbackReason,
        started: Instant,
    ) -> Result<RouteRef<'_>, ResolveError> {
        self.stats.fallbacks[reason as usize] += 1;
        // An entry found here is usually past its TTL (a fresh one would have
        // answered the resolve), but label it by what it is.
        let cached = self.cache.get_stale(now, &key).map(|hit| hit.freshness);
        let policy = self
            .policies
            .get(&key_hash(&key))
            .copied()
            .unwrap_or(self.config.default_fallback_policy);
        let source = if let Some(freshness) = cached {
            match freshness {
                Freshness::Fresh => Source::Cache,
                Freshness::Stale => Source::Stale,
            }
        } else {
            match policy {
                FallbackPolicy::Fail => {
                    self.stats.failed += 1;
                    self.emit(Event::Fallback {
                        key,
                        reason,
                        source: None,
                    });
                    return Err(ResolveError::ServiceUnavailable { reason });
                }
                FallbackPolicy::EmbeddedFallback if self.config.fallback_to_embedded => {
                    self.embedded_route = self
                        .embedded
                        .embedded_route(&key.exchange_id, key.connection_type);
                    if self.embedded_route.is_some() {
                        Source::Embedded
                    } else {
                        Source::Direct
                    }
                }
                _ => Source::Direct,
            }
        };
        self.count_resolved(source, now - started);
        self.emit(Event::Fallback {
            key: key.clone(),
            reason,
            source: Some(source),
        });
        Ok(match source {
            // The entry `get_stale` found just above; nothing changed since.
            Source::Stale | Source::Cache => match self.cache.last_hit() {
                Some(v) => RouteRef {
                    proxy_url: v.proxy_url.as_ref(),
                    proxy_id: v.metadata.proxy_id.as_ref(),
                    source,
                },
                None => RouteRef {
                    proxy_url: None,
                    proxy_id: None,
                    source: Source::Direct,
                },
            },
            Source::Embedded => RouteRef {
                proxy_url: self.embedded_route.as_ref().map(|r| &r.proxy_url),
                proxy_id: None,
                source,
            },
            _ => RouteRef {
                proxy_url: None,
                proxy_id: None,
                source: Source::Direct,
            },
        })
    }
}
