//! [`ProxyServiceClient`]: the core [`Resolver`] driven on tokio.
//!
//! The Resolver sits behind a short `std::sync::Mutex` that is never held
//! across an `.await`. One driver task sleeps until the Resolver's next
//! timeout or until an input wakes it, sends transmits through the
//! [`Transport`] (each on its own task) and feeds the replies back. A cached
//! answer costs a lock and a lookup and wakes nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration as StdDuration;

use embassy_time::{Duration, Instant};
use proxy_delegate_core::delegation::Delegation;
use proxy_delegate_core::endpoints::EndpointConfig;
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ExchangeId, ProxyFeedback, ProxyRequest, Region,
};
use proxy_delegate_core::resolver::{
    Answer, Event, Output, Reply, Resolution, ResolveError, Resolver, Route, Source, Ticket,
    Transmit, TransmitKind,
};
use tokio::sync::{Notify, oneshot};

use crate::error::ServiceError;
use crate::metrics as m;
use crate::transport::{ServiceCall, Transport};

/// The embedded configuration the client falls back to.
pub type Embedded = Box<proxy_delegate_config::Settings>;

/// Cached routes (a power of two).
pub const CACHE_CAPACITY: usize = 256;
/// Most service endpoints.
pub const ENDPOINT_CAPACITY: usize = proxy_delegate_core::settings::MAX_ENDPOINTS;
/// Feedback events in the Resolver's queue (a batch in flight included).
pub const FEEDBACK_CAPACITY: usize = 128;
/// Feedback events waiting for room in that queue: `report_feedback` puts
/// them here (on the heap), and the driver moves them on as batches go out,
/// so that a burst is held rather than dropped.
pub const INBOX_CAPACITY: usize = 4096;
/// Service requests in flight (one per key).
pub const FLIGHT_CAPACITY: usize = 16;
/// Resolves waiting for the service at once (more fall back at once, as
/// `overloaded`).
pub const WAITER_CAPACITY: usize = 128;

/// The Resolver as the client runs it: its cache's slots on the heap
/// ([`Boxed`](proxy_delegate_core::storage::Boxed)) and the rest (about
/// 300 KiB, mostly the feedback queue) built there by `new_boxed`, so that a
/// client can be built on any tokio worker or test thread (2 MiB stacks).
pub type ClientResolver = Resolver<
    Embedded,
    CACHE_CAPACITY,
    ENDPOINT_CAPACITY,
    FEEDBACK_CAPACITY,
    FLIGHT_CAPACITY,
    WAITER_CAPACITY,
    proxy_delegate_core::storage::Boxed,
>;

/// A client that cannot be built: the message names the setting and what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The `external_service` block cannot work.
    Config(String),
    /// The transport could not be built (TLS files, credentials).
    Transport(String),
    /// The endpoints could not be discovered (DNS SRV).
    Discovery(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Config(m) => write!(f, "invalid proxy-service configuration: {m}"),
            ClientError::Transport(m) => write!(f, "cannot set up the proxy-service client: {m}"),
            ClientError::Discovery(m) => write!(f, "cannot discover the proxy service: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// What [`ProxyServiceClient::shutdown`] could not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Feedback events sent during shutdown.
    pub delivered: u64,
    /// Feedback events still queued when the bound ran out (not delivered).
    pub undelivered: u64,
    /// Feedback events dropped over the client's life (the queue was full,
    /// or the service refused them).
    pub dropped: u64,
}

/// The clock: tokio's monotonic time as the core's instants (microsecond
/// ticks, starting at one second so that no instant is the zero value).
#[derive(Debug, Clone, Copy)]
struct Clock {
    base: tokio::time::Instant,
}

impl Clock {
    fn now(&self) -> Instant {
        self.at(tokio::time::Instant::now())
    }

    fn at(&self, t: tokio::time::Instant) -> Instant {
        let us = t.saturating_duration_since(self.base).as_micros();
        Instant::from_micros(1_000_000 + u64::try_from(us).unwrap_or(u64::MAX / 2))
    }

    fn to_tokio(self, t: Instant) -> tokio::time::Instant {
        let us = t.as_micros().saturating_sub(1_000_000);
        self.base + StdDuration::from_micros(us)
    }
}

type AnswerTx = oneshot::Sender<Result<Route, ResolveError>>;

struct State {
    resolver: Box<ClientResolver>,
    waiting: HashMap<Ticket, AnswerTx>,
    buf: Vec<u8>,
    published: m::Published,
    /// The inbox's other buffer (see `Inner::move_inbox`).
    spare: VecDeque<ProxyFeedback>,
}

pub(crate) struct Inner {
    state: Mutex<State>,
    /// Feedback not yet handed to the Resolver: `report_feedback` pushes
    /// here, under its own short lock, so it never waits for the driver
    /// (which encodes batches under the Resolver's lock). The driver moves
    /// into the Resolver on every pass, as much as the Resolver's queue has
    /// room for. It holds at most `INBOX_CAPACITY` events: when full, the
    /// oldest is dropped and counted in `inbox_dropped`, as the feedback
    /// queue itself does.
    inbox: Mutex<VecDeque<ProxyFeedback>>,
    /// Events dropped from the full inbox (counted with the queue's drops).
    inbox_dropped: AtomicU64,
    /// Whether the driver will look at the inbox soon without being woken:
    /// it is cleared by the driver only when the feedback queue is empty (no
    /// batch timer, no batch in flight), and set by the push that then wakes
    /// it. Pushes otherwise wake it only when they fill a batch.
    inbox_flagged: AtomicBool,
    /// The feedback queue's batch size.
    batch_size: usize,
    wake: Notify,
    stop: AtomicBool,
    stopped: Notify,
    clock: Clock,
    transport: Arc<dyn Transport>,
    wire: proxy_delegate_core::contract::WireFormat,
    client_id: ClientId,
    region: Option<Region>,
    auth_method: Option<proxy_delegate_core::settings::AuthMethod>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: go on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands the inbox to the Resolver, in the order reported, as much as
    /// its feedback queue has room for (`all`: everything, the queue
    /// dropping its oldest when full, as at shutdown). The events move
    /// through the driver's spare buffer, so the inbox's own lock is held
    /// only for the move and nothing is allocated.
    fn move_inbox(&self, st: &mut State, all: bool) {
        let room = if all {
            usize::MAX
        } else {
            FEEDBACK_CAPACITY.saturating_sub(st.resolver.feedback_stats().queued)
        };
        if room == 0 {
            return;
        }
        {
            let mut inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
            if inbox.is_empty() {
                return;
            }
            if inbox.len() <= room {
                std::mem::swap(&mut *inbox, &mut st.spare);
            } else {
                st.spare.extend(inbox.drain(..room));
            }
        }
        let now = self.clock.now();
        for feedback in st.spare.drain(..) {
            st.resolver.report(now, feedback);
        }
    }

    /// The feedback queue's counters, with the inbox's events counted as
    /// reported and queued, and its drops as reported and dropped (so
    /// `sent + queued + dropped + drained == reported` still holds).
    fn feedback_stats(&self, resolver: &ClientResolver) -> proxy_delegate_core::feedback::Stats {
        let mut fb = resolver.feedback_stats();
        let waiting = self.inbox.lock().unwrap_or_else(|p| p.into_inner()).len();
        let dropped = self.inbox_dropped.load(Ordering::Relaxed);
        fb.queued = fb.queued.saturating_add(waiting);
        fb.dropped = fb.dropped.saturating_add(dropped);
        fb.reported = fb
            .reported
            .saturating_add(dropped)
            .saturating_add(waiting as u64);
        fb
    }
}

/// Asks the proxy service which proxy each exchange connection uses, caches
/// the answers, falls back when the service cannot answer in time, and
/// reports feedback. Cheap to clone (one shared driver); when the last clone
/// is dropped the driver stops (call [`shutdown`](Self::shutdown) first to
/// deliver queued feedback).
#[derive(Clone)]
pub struct ProxyServiceClient {
    inner: Arc<Handle>,
}

/// What the client's clones share; the driver holds the `Inner` only, so
/// that dropping the last clone stops it.
pub(crate) struct Handle {
    inner: Arc<Inner>,
}

impl std::ops::Deref for Handle {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        // A stored permit: the driver sees it even if it is not waiting yet.
        self.inner.wake.notify_one();
    }
}

impl std::fmt::Debug for ProxyServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyServiceClient")
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

impl ProxyServiceClient {
    /// Builds the client from the loaded settings: the `external_service`
    /// block through [`ExternalService::delegation`](proxy_delegate_core::settings::ExternalService::delegation),
    /// the HTTP transport, and endpoints from the list or from DNS SRV. The
    /// whole settings are the embedded fallback (copied; see
    /// [`from_boxed_settings`](Self::from_boxed_settings) to hand them
    /// over). Must run inside a tokio runtime (it spawns the driver).
    #[cfg(feature = "reqwest")]
    pub async fn from_settings(
        settings: &proxy_delegate_config::Settings,
        default_client_id: &str,
    ) -> Result<Self, ClientError> {
        Self::from_boxed_settings(boxed_clone(settings), default_client_id).await
    }

    /// Like [`from_settings`](Self::from_settings), taking the settings as
    /// [`Loader::load`](proxy_delegate_config::Loader::load) gives them
    /// (`Loaded::settings`), so nothing large is copied on the stack.
    #[cfg(feature = "reqwest")]
    pub async fn from_boxed_settings(
        settings: Embedded,
        default_client_id: &str,
    ) -> Result<Self, ClientError> {
        #[cfg(feature = "dns-srv")]
        {
            Self::from_settings_with_dns(
                settings,
                default_client_id,
                &crate::srv::DnsConfig::System,
            )
            .await
        }
        #[cfg(not(feature = "dns-srv"))]
        {
            Self::build(settings, default_client_id).await
        }
    }

    /// Like [`from_boxed_settings`](Self::from_boxed_settings), asking `dns`
    /// (not the system's resolver configuration) for the SRV records of
    /// `external_service.srv_name` and for the host names they name.
    #[cfg(feature = "dns-srv")]
    pub async fn from_settings_with_dns(
        settings: Embedded,
        default_client_id: &str,
        dns: &crate::srv::DnsConfig,
    ) -> Result<Self, ClientError> {
        Self::build(settings, default_client_id, dns).await
    }

    #[cfg(feature = "reqwest")]
    async fn build(
        embedded: Embedded,
        default_client_id: &str,
        #[cfg(feature = "dns-srv")] dns: &crate::srv::DnsConfig,
    ) -> Result<Self, ClientError> {
        let client_id = ClientId::new(default_client_id)
            .map_err(|e| ClientError::Config(format!("client id: {}", e.reason)))?;
        let delegation = embedded
            .external_service
            .delegation(client_id)
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let mut transport_config =
            crate::http::TransportConfig::from_settings(&embedded.external_service);
        transport_config.request_timeout = to_std(delegation.config.request_timeout);
        match delegation.srv_name.as_deref() {
            None => {
                let transport = crate::http::HttpTransport::new(transport_config)
                    .map_err(|e| ClientError::Transport(e.to_string()))?;
                Self::with_transport(delegation, embedded, Arc::new(transport))
            }
            #[cfg(feature = "dns-srv")]
            Some(name) => {
                let name = name.to_owned();
                crate::discovery::start(&name, dns, delegation, embedded, transport_config).await
            }
            #[cfg(not(feature = "dns-srv"))]
            Some(_) => Err(ClientError::Config(
                "external_service.srv_name is set, but this build has no DNS SRV support \
                 (enable the `dns-srv` feature of proxy-delegate-tokio, or list the \
                 endpoints under external_service.endpoints)"
                    .into(),
            )),
        }
    }

    /// Builds the client over any [`Transport`], from a [`Delegation`]
    /// (whose `endpoints` must not be empty) and the embedded fallback.
    /// Must run inside a tokio runtime (it spawns the driver).
    pub fn with_transport(
        delegation: Delegation,
        embedded: Embedded,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, ClientError> {
        let clock = Clock {
            base: tokio::time::Instant::now(),
        };
        let client_id = delegation.config.client_id.clone();
        let wire = delegation.config.wire;
        let batch_size = delegation.config.feedback.batch_size.max(1);
        let resolver = ClientResolver::new_boxed(
            clock.now(),
            delegation.config,
            &delegation.endpoints,
            embedded,
        )
        .map_err(|e| ClientError::Config(e.to_string()))?;
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                resolver,
                waiting: HashMap::new(),
                // Room for a whole feedback batch (64 events are about
                // 18 KiB of JSON): a smaller buffer cuts batches short.
                buf: vec![0; proxy_delegate_core::contract::MAX_BODY],
                published: m::Published::default(),
                spare: VecDeque::with_capacity(FEEDBACK_CAPACITY),
            }),
            // It grows past this only in a burst (up to INBOX_CAPACITY).
            inbox: Mutex::new(VecDeque::with_capacity(FEEDBACK_CAPACITY)),
            inbox_dropped: AtomicU64::new(0),
            inbox_flagged: AtomicBool::new(false),
            batch_size,
            wake: Notify::new(),
            stop: AtomicBool::new(false),
            stopped: Notify::new(),
            clock,
            transport,
            wire,
            client_id,
            region: delegation.region,
            auth_method: delegation.auth_method,
        });
        tokio::spawn(drive(inner.clone()));
        Ok(Self {
            inner: Arc::new(Handle { inner }),
        })
    }

    /// A handle that does not keep the client alive (for background tasks).
    #[cfg_attr(not(feature = "dns-srv"), allow(dead_code))]
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Handle> {
        Arc::downgrade(&self.inner)
    }

    /// The client again, if it still lives.
    #[cfg_attr(not(feature = "dns-srv"), allow(dead_code))]
    pub(crate) fn upgrade(weak: &std::sync::Weak<Handle>) -> Option<Self> {
        weak.upgrade().map(|inner| Self { inner })
    }

    /// The id this client reports as (`client_id` in requests and feedback).
    pub fn client_id(&self) -> &ClientId {
        &self.inner.client_id
    }

    /// The request this client sends for an exchange connection: its
    /// client id and configured region.
    pub fn request(
        &self,
        exchange_id: ExchangeId,
        connection_type: ConnectionType,
    ) -> ProxyRequest {
        let mut r = ProxyRequest::new(exchange_id, connection_type, self.inner.client_id.clone());
        r.region = self.inner.region.clone();
        r
    }

    /// The route for this connection: from a fresh cache entry at once
    /// (nothing is woken), otherwise from the service within the resolve
    /// deadline, or the fallback the core decides (stale cache, embedded
    /// configuration, direct). An error only when the service's
    /// `fallback_policy` for this connection is `fail`. Dropping the future
    /// frees its slot at once.
    pub async fn get_proxy(&self, request: &ProxyRequest) -> Result<Route, ResolveError> {
        let rx = {
            let mut st = self.inner.lock();
            let now = self.inner.clock.now();
            let refresh_before = st.resolver.refresh_pending();
            let ticket = match st.resolver.resolve(now, request) {
                Resolution::Ready(route) => {
                    let route = route.to_owned();
                    let wake = route.source != Source::Cache
                        || (!refresh_before && st.resolver.refresh_pending());
                    drop(st);
                    if wake {
                        // A fallback left events; a hit scheduled a refresh.
                        self.inner.wake.notify_one();
                    }
                    if route.source != Source::Cache {
                        trace_route(request, Ok(&route), "at once");
                    }
                    return Ok(route);
                }
                Resolution::Failed(e) => {
                    drop(st);
                    self.inner.wake.notify_one();
                    trace_route(request, Err(&e), "at once");
                    return Err(e);
                }
                Resolution::Pending(ticket) => ticket,
            };
            let (tx, rx) = oneshot::channel();
            st.waiting.insert(ticket, tx);
            (ticket, rx)
        };
        metrics::counter!(m::CACHE, "result" => "miss").increment(1);
        self.inner.wake.notify_one();
        let (ticket, rx) = rx;
        let mut guard = CancelOnDrop {
            inner: &self.inner,
            ticket: Some(ticket),
        };
        let answer = rx.await;
        guard.ticket = None;
        match answer {
            Ok(result) => {
                trace_route(request, result.as_ref(), "after waiting");
                result
            }
            // The driver stopped (shutdown): nothing will answer.
            Err(_) => Err(ResolveError::ServiceUnavailable {
                reason: proxy_delegate_core::resolver::FallbackReason::NoEndpoint,
            }),
        }
    }

    /// Reports how a connection went. Synchronous: it never awaits, and
    /// takes only a short lock of its own (never the one the driver holds
    /// while it encodes). The event joins the feedback queue, which sends it
    /// in batches. A failure that is the proxy's fault (see
    /// [`proxy_at_fault`](proxy_delegate_core::resolver::proxy_at_fault))
    /// goes to the Resolver at once, so that cached answers naming that
    /// proxy are gone before the next `get_proxy`.
    pub fn report_feedback(&self, feedback: ProxyFeedback) {
        if proxy_delegate_core::resolver::proxy_at_fault(&feedback) {
            let mut st = self.inner.lock();
            self.inner.move_inbox(&mut st, false);
            let now = self.inner.clock.now();
            st.resolver.report(now, feedback);
            // The service should hear of it now, not at the batching delay:
            // until it does, it may hand the same proxy out again.
            st.resolver.flush_feedback();
            drop(st);
            self.inner.wake.notify_one();
            return;
        }
        let len = {
            let mut inbox = self.inner.inbox.lock().unwrap_or_else(|p| p.into_inner());
            if inbox.len() >= INBOX_CAPACITY {
                // The driver is behind: the oldest goes, counted, as the
                // feedback queue itself does when full.
                inbox.pop_front();
                self.inner.inbox_dropped.fetch_add(1, Ordering::Relaxed);
            }
            inbox.push_back(feedback);
            inbox.len()
        };
        // Wake the driver when this fills a batch, or when it has no timer
        // that would bring it here within the batching delay.
        let idle = !self.inner.inbox_flagged.load(Ordering::SeqCst)
            && !self.inner.inbox_flagged.swap(true, Ordering::SeqCst);
        if idle || len.is_multiple_of(self.inner.batch_size) {
            self.inner.wake.notify_one();
        }
    }

    /// A connection made through `route` has ended: an embedded
    /// `least_connections` pick gets its lease back.
    pub fn connection_closed(
        &self,
        exchange_id: &ExchangeId,
        connection_type: ConnectionType,
        route: &Route,
    ) {
        if route.source == Source::Embedded
            && let Some(url) = &route.proxy_url
        {
            self.inner
                .lock()
                .resolver
                .release_embedded(exchange_id, connection_type, url);
        }
    }

    /// The Resolver's counters and its feedback queue's, read under the lock.
    pub fn stats(
        &self,
    ) -> (
        proxy_delegate_core::resolver::Stats,
        proxy_delegate_core::feedback::Stats,
    ) {
        let mut st = self.inner.lock();
        self.inner.move_inbox(&mut st, false);
        let fb = self.inner.feedback_stats(&st.resolver);
        (st.resolver.stats(), fb)
    }

    /// Replaces the service endpoints (DNS SRV discovery calls this).
    pub fn replace_endpoints(&self, endpoints: &[EndpointConfig]) -> Result<(), ClientError> {
        let mut st = self.inner.lock();
        let now = self.inner.clock.now();
        st.resolver
            .replace_endpoints(now, endpoints)
            .map_err(|e| ClientError::Config(e.to_string()))?;
        drop(st);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Stops the client: sends the feedback still queued, waiting at most
    /// `bound`, and says how many events, if any, were not delivered.
    /// Resolves still waiting get their fallback first.
    pub async fn shutdown(&self, bound: StdDuration) -> ShutdownReport {
        let sent_before = self.stats().1.sent;
        let until = tokio::time::Instant::now() + bound;
        // Let the driver flush: it keeps running until the queue is empty or
        // the bound runs out.
        loop {
            let fb = self.stats().1;
            if fb.queued == 0 || tokio::time::Instant::now() >= until {
                break;
            }
            {
                // Ask for the queue now rather than at its batching delay.
                self.inner.lock().resolver.flush_feedback();
            }
            self.inner.wake.notify_one();
            tokio::time::sleep(
                StdDuration::from_millis(5).min(until - tokio::time::Instant::now()),
            )
            .await;
        }
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        let mut st = self.inner.lock();
        self.inner.move_inbox(&mut st, true);
        let undelivered = st.resolver.drain_feedback().count() as u64;
        // Waiting resolves: the driver is stopping; they learn it from their
        // dropped sender.
        st.waiting.clear();
        let fb = self.inner.feedback_stats(&st.resolver);
        drop(st);
        self.inner.stopped.notify_waiters();
        ShutdownReport {
            delivered: fb.sent.saturating_sub(sent_before),
            undelivered,
            dropped: fb.dropped,
        }
    }
}

/// One debug line per resolve that was not a plain cache hit: the exchange,
/// the connection type and where the route came from (never the proxy's
/// credentials: a `ProxyUrl` prints its password as `***`).
fn trace_route(request: &ProxyRequest, result: Result<&Route, &ResolveError>, when: &str) {
    match result {
        Ok(route) => tracing::debug!(
            exchange = request.exchange_id.as_str(),
            connection_type = request.connection_type.as_str(),
            source = route.source.as_str(),
            proxy = route.proxy_url.as_ref().map(tracing::field::display),
            "route {when}"
        ),
        Err(e) => tracing::debug!(
            exchange = request.exchange_id.as_str(),
            connection_type = request.connection_type.as_str(),
            "no route {when}: {e}"
        ),
    }
}

/// Withdraws a pending resolve whose future was dropped.
struct CancelOnDrop<'a> {
    inner: &'a Inner,
    ticket: Option<Ticket>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let mut st = self.inner.lock();
            st.resolver.cancel(ticket);
            st.waiting.remove(&ticket);
        }
    }
}

/// The settings, copied to the heap. Out of line, so that the copy's
/// temporary lives in this short frame, not in the caller's async state.
#[inline(never)]
#[cfg(feature = "reqwest")]
fn boxed_clone(settings: &proxy_delegate_config::Settings) -> Embedded {
    Box::new(settings.clone())
}

fn to_std(d: Duration) -> StdDuration {
    StdDuration::from_micros(d.as_micros())
}

/// What one pass of the drain loop found to do outside the lock.
struct Pass {
    transmits: Vec<(
        Transmit,
        proxy_delegate_core::endpoints::ServiceUrl,
        Vec<u8>,
    )>,
    events: Vec<Event>,
    timeout: Option<Instant>,
}

/// Drains the Resolver (under the lock) until it gives its timeout.
fn pass(inner: &Inner) -> Pass {
    {
        let mut st = inner.lock();
        inner.move_inbox(&mut st, false);
        let now = inner.clock.now();
        st.resolver.handle_timeout(now);
    }
    let mut out = Pass {
        transmits: Vec::new(),
        events: Vec::new(),
        timeout: None,
    };
    // The lock is taken per output, so that resolves and reports never wait
    // for a whole drain (encoding a feedback batch takes tens of µs). `now`
    // is read under the lock each time: it never goes back for the Resolver.
    loop {
        let mut st = inner.lock();
        let now = inner.clock.now();
        let State {
            resolver,
            waiting,
            buf,
            published,
            ..
        } = &mut *st;
        match resolver.poll_output(now, buf) {
            Output::Transmit(t) => {
                let Some(endpoint) = resolver.endpoint(t.endpoint).map(|e| e.url.clone()) else {
                    // The endpoints were replaced since: it cannot be sent.
                    let _ = resolver.handle_reply(now, t.id, Reply::Failed);
                    continue;
                };
                out.transmits.push((t, endpoint, buf[..t.len].to_vec()));
            }
            Output::Answer(Answer { ticket, result, .. }) => {
                if let Some(tx) = waiting.remove(&ticket) {
                    // The caller may have gone: nothing to do then.
                    let _ = tx.send(result);
                }
            }
            Output::Event(e) => out.events.push(e),
            Output::Timeout(t) => {
                out.timeout = t;
                m::record_state(resolver, inner.feedback_stats(resolver), published);
                if resolver.feedback_stats().queued == 0 {
                    // No batch timer and no batch in flight: the next push
                    // must wake the driver. Then look again, in case one
                    // came in before the flag was cleared.
                    inner.inbox_flagged.store(false, Ordering::SeqCst);
                    let waiting = !inner
                        .inbox
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .is_empty();
                    if waiting && !inner.inbox_flagged.swap(true, Ordering::SeqCst) {
                        inner.wake.notify_one();
                    }
                }
                return out;
            }
        }
    }
}

/// The driver: one task per client.
async fn drive(inner: Arc<Inner>) {
    loop {
        if inner.stop.load(Ordering::SeqCst) {
            return;
        }
        let Pass {
            transmits,
            events,
            timeout,
        } = pass(&inner);
        for e in &events {
            m::record_event(e);
        }
        for (t, endpoint, body) in transmits {
            tokio::spawn(send(inner.clone(), t, endpoint, body));
        }
        let sleep = async {
            match timeout {
                Some(t) => tokio::time::sleep_until(inner.clock.to_tokio(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = inner.wake.notified() => {}
            () = sleep => {}
            () = inner.stopped.notified() => return,
        }
    }
}

/// Why an answer to a resolve does not decode, said without quoting it (it
/// may hold a proxy's password); `None` when it decodes, or is not an
/// answer to a resolve (feedback and health answers carry nothing the
/// client reads).
fn undecodable(
    kind: TransmitKind,
    wire: proxy_delegate_core::contract::WireFormat,
    body: &[u8],
) -> Option<String> {
    use proxy_delegate_core::codec::{self, DecodeError};
    use proxy_delegate_core::contract::WireFormat;
    use proxy_delegate_core::model::ProxyResponse;
    if kind != TransmitKind::Resolve {
        return None;
    }
    let decoded = match wire {
        WireFormat::Json => codec::json::decode::<ProxyResponse>(body).map(drop),
        WireFormat::Postcard => codec::postcard::decode::<ProxyResponse>(body).map(drop),
    };
    decoded.err().map(|e| match e {
        DecodeError::TooLarge { len, max, .. } => format!("{len} bytes, over the {max}-byte limit"),
        DecodeError::Json(_) => "not a JSON proxy response".to_owned(),
        DecodeError::Postcard(_) => "not a postcard proxy response".to_owned(),
        DecodeError::Invalid(v) => format!("its field {} is invalid", v.field),
        DecodeError::TooDeep { max } => format!("nested deeper than {max} levels"),
        _ => "not a proxy response".to_owned(),
    })
}

/// Sends one transmit and feeds the outcome back.
async fn send(
    inner: Arc<Inner>,
    t: Transmit,
    endpoint: proxy_delegate_core::endpoints::ServiceUrl,
    body: Vec<u8>,
) {
    let now = inner.clock.now();
    let timeout = to_std(
        t.deadline
            .checked_duration_since(now)
            .unwrap_or(Duration::from_ticks(0)),
    )
    .max(StdDuration::from_millis(1));
    let span = tracing::debug_span!(
        "service_call",
        correlation_id = %t.id,
        endpoint = %endpoint,
        kind = t.kind.as_str(),
    );
    let call = ServiceCall {
        endpoint: &endpoint,
        kind: t.kind,
        id: t.id,
        body: &body,
        wire: inner.wire,
        timeout,
    };
    let started = tokio::time::Instant::now();
    let result = tracing::Instrument::instrument(inner.transport.send(call), span.clone()).await;
    let _enter = span.enter();
    let outcome: &'static str = match &result {
        Ok(a) if proxy_delegate_core::contract::is_success(a.status) => {
            match undecodable(t.kind, inner.wire, &a.body) {
                // The Resolver falls back on it too; the operator hears
                // of it here, once per answer.
                Some(detail) => {
                    let e = ServiceError::malformed(&endpoint, &detail);
                    log_failure(&e, t.kind);
                    e.kind().as_str()
                }
                None => "ok",
            }
        }
        Ok(a) => match ServiceError::from_status_with_auth(
            &endpoint,
            a.status,
            a.retry_after,
            inner.auth_method,
        ) {
            Some(e) => {
                log_failure(&e, t.kind);
                e.kind().as_str()
            }
            None => "ok",
        },
        Err(e) => {
            log_failure(e, t.kind);
            e.kind().as_str()
        }
    };
    metrics::counter!(m::SERVICE_REQUESTS,
        "endpoint" => endpoint.to_string(), "kind" => t.kind.as_str(), "outcome" => outcome)
    .increment(1);
    metrics::histogram!(m::SERVICE_LATENCY, "kind" => t.kind.as_str())
        .record(started.elapsed().as_secs_f64());
    {
        let mut st = inner.lock();
        let now = inner.clock.now();
        let reply = match &result {
            Ok(a) if proxy_delegate_core::contract::is_success(a.status) => Reply::Ok(&a.body),
            Ok(a) => Reply::Status {
                code: a.status,
                retry_after: a
                    .retry_after
                    .map(|d| Duration::from_micros(d.as_micros() as u64)),
            },
            Err(_) => Reply::Failed,
        };
        // An id the Resolver no longer knows (timed out): nothing to do.
        let _ = st.resolver.handle_reply(now, t.id, reply);
    }
    inner.wake.notify_one();
}

/// One line per failed service call; auth failures and the like at WARN,
/// since the operator must act.
fn log_failure(e: &ServiceError, kind: TransmitKind) {
    use crate::error::FailureKind as K;
    match e.kind() {
        K::Unauthorized | K::Tls | K::Oversized | K::Malformed => {
            tracing::warn!(kind = kind.as_str(), failure = e.kind().as_str(), "{e}");
        }
        _ => tracing::debug!(kind = kind.as_str(), failure = e.kind().as_str(), "{e}"),
    }
}
