//! [`Client`]: the core [`Resolver`] driven on embassy.
//!
//! The Resolver (the caller's storage) sits in a blocking mutex around a
//! `RefCell`, taken for one short step at a time and never across an
//! `.await`. [`Client::run`] is the one driver: it sleeps until the
//! Resolver's next timeout or until an input signals it, drains
//! `poll_output`, hands each transmit to one of its senders (each sends one
//! HTTP call at a time over the network stack) and each answer to the
//! resolve waiting for it.

use core::cell::RefCell;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use embassy_futures::select::{Either, select, select_array};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::{NoopRawMutex, RawMutex};
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Instant, Timer};
use embedded_nal_async::{Dns, TcpConnect};
use proxy_delegate_core::contract::{self, WireFormat};
use proxy_delegate_core::embedded::EmbeddedRoutes;
use proxy_delegate_core::feedback;
use proxy_delegate_core::keep::{Profile, Whole};
use proxy_delegate_core::model::{ConnectionType, ExchangeId, ProxyFeedback, ProxyRequest};
use proxy_delegate_core::resolver::{
    self, EVENT_QUEUE_LEN, FallbackReason, MIN_TRANSMIT_BUFFER, Output, Reply, Resolution,
    ResolveError, Resolver, Route, Source, Ticket, Transmit,
};
use proxy_delegate_core::storage::{Inline, Storage};

use crate::http::{self, Auth, Failure};

/// Bytes of each transmit buffer: the request or feedback batch the core
/// encodes (a feedback batch that does not fit goes out in smaller ones).
pub const TRANSMIT_BUFFER: usize = MIN_TRANSMIT_BUFFER;
/// Bytes of each answer buffer: the status line, the headers and the body
/// of one answer of the service. A larger answer is refused
/// ([`Failure::Oversized`]); a proxy answer is a few hundred bytes.
pub const ANSWER_BUFFER: usize = 2048;

/// The clock starts at one second, so that no instant the core sees is
/// the zero value.
const EPOCH: Duration = Duration::from_secs(1);

/// The core's clock: embassy-time's, one second on.
pub fn now() -> Instant {
    Instant::now().saturating_add(EPOCH)
}

/// The embassy instant of a core instant.
fn to_embassy(t: Instant) -> Instant {
    t.checked_sub(EPOCH).unwrap_or(Instant::from_ticks(0))
}

/// The buffers [`Client::run`] works in, `SENDERS` calls at once: one
/// transmit buffer for the driver and, per sender, a transmit buffer and an
/// answer buffer ([`Buffers::BYTES`] in all). Put it in a `static` (for
/// example with `static_cell`); nothing is allocated.
pub struct Buffers<const SENDERS: usize> {
    driver: [u8; TRANSMIT_BUFFER],
    transmits: [[u8; TRANSMIT_BUFFER]; SENDERS],
    answers: [[u8; ANSWER_BUFFER]; SENDERS],
}

impl<const SENDERS: usize> Buffers<SENDERS> {
    /// Their size in bytes.
    pub const BYTES: usize = (SENDERS + 1) * TRANSMIT_BUFFER + SENDERS * ANSWER_BUFFER;

    /// Zeroed buffers.
    pub const fn new() -> Self {
        Self {
            driver: [0; TRANSMIT_BUFFER],
            transmits: [[0; TRANSMIT_BUFFER]; SENDERS],
            answers: [[0; ANSWER_BUFFER]; SENDERS],
        }
    }
}

impl<const SENDERS: usize> Default for Buffers<SENDERS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const SENDERS: usize> core::fmt::Debug for Buffers<SENDERS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Buffers")
            .field("senders", &SENDERS)
            .field("bytes", &Self::BYTES)
            .finish()
    }
}

/// The adapter's own counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdapterStats {
    /// Calls to the service that got an HTTP answer (any status).
    pub answered: u64,
    /// Calls that got none, by [`Failure`] (in the order of [`Failure::ALL`]).
    pub failures: [u64; Failure::ALL.len()],
    /// Resolves that found every answer slot taken (more resolves waiting
    /// than the Resolver's `WAITERS`, counting answers their tasks have not
    /// yet taken): they got a [`ResolveError`] with
    /// [`FallbackReason::Overloaded`].
    pub overloaded: u64,
    /// Events of the Resolver taken from `poll_output` (this adapter does
    /// not log them; the counters hold what they say).
    pub events: u64,
}

impl AdapterStats {
    /// Calls that failed with `failure`.
    pub fn failed(&self, failure: Failure) -> u64 {
        self.failures[failure.index()]
    }
}

/// Every counter: the Resolver's, its feedback queue's and the adapter's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Routes by source, fallbacks by reason, hedges, retries.
    pub resolver: resolver::Stats,
    /// `sent + queued + dropped + drained == reported`.
    pub feedback: feedback::Stats,
    /// Calls answered and failed, overloaded resolves.
    pub adapter: AdapterStats,
}

/// A resolve waiting for its answer.
struct Waiting {
    ticket: Ticket,
    answer: Option<Result<Route, ResolveError>>,
    waker: Option<Waker>,
}

struct State<
    'r,
    E,
    const CACHE: usize,
    const ENDPOINTS: usize,
    const FEEDBACK: usize,
    const FLIGHTS: usize,
    const WAITERS: usize,
    St: Storage = Inline,
    P: Profile = Whole,
    const EVENTS: usize = EVENT_QUEUE_LEN,
> {
    resolver: &'r mut Resolver<E, CACHE, ENDPOINTS, FEEDBACK, FLIGHTS, WAITERS, St, P, EVENTS>,
    waiting: heapless::Vec<Waiting, WAITERS>,
    stats: AdapterStats,
}

/// Asks the proxy service which proxy each exchange connection uses, caches
/// the answers, falls back when the service cannot answer in time, and
/// reports feedback: the core's [`Resolver`] (borrowed for `'r`, so its
/// storage is the caller's) driven on embassy.
///
/// Share it by reference (a `&'static Client` from a `StaticCell`): one
/// task runs [`run`](Self::run), any task calls
/// [`resolve`](Self::resolve), [`report_feedback`](Self::report_feedback)
/// and [`stats`](Self::stats). `M` is the mutex kind of embassy-sync:
/// `NoopRawMutex` when every user is on one executor,
/// `CriticalSectionRawMutex` across executors or interrupt priorities.
pub struct Client<
    'r,
    M: RawMutex,
    E,
    const CACHE: usize,
    const ENDPOINTS: usize,
    const FEEDBACK: usize,
    const FLIGHTS: usize,
    const WAITERS: usize,
    St: Storage = Inline,
    P: Profile = Whole,
    const EVENTS: usize = EVENT_QUEUE_LEN,
> {
    state: Mutex<
        M,
        RefCell<State<'r, E, CACHE, ENDPOINTS, FEEDBACK, FLIGHTS, WAITERS, St, P, EVENTS>>,
    >,
    wake: Signal<M, ()>,
    auth: Auth,
    wire: WireFormat,
}

impl<
    M: RawMutex,
    E,
    const CACHE: usize,
    const ENDPOINTS: usize,
    const FEEDBACK: usize,
    const FLIGHTS: usize,
    const WAITERS: usize,
    St: Storage,
    P: Profile,
    const EVENTS: usize,
> core::fmt::Debug
    for Client<'_, M, E, CACHE, ENDPOINTS, FEEDBACK, FLIGHTS, WAITERS, St, P, EVENTS>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("auth", &self.auth)
            .field("wire", &self.wire)
            .finish_non_exhaustive()
    }
}

/// A job for a sender: a transmit and the buffer holding its body.
struct Job<'b> {
    transmit: Transmit,
    body: &'b mut [u8; TRANSMIT_BUFFER],
}

/// What one locked step of the drain found.
enum Step {
    Transmit(Transmit),
    Timeout(Option<Instant>),
}

impl<
    'r,
    M: RawMutex,
    E: EmbeddedRoutes,
    const CACHE: usize,
    const ENDPOINTS: usize,
    const FEEDBACK: usize,
    const FLIGHTS: usize,
    const WAITERS: usize,
    St: Storage,
    P: Profile,
    const EVENTS: usize,
> Client<'r, M, E, CACHE, ENDPOINTS, FEEDBACK, FLIGHTS, WAITERS, St, P, EVENTS>
{
    /// A client over `resolver` (built by the caller, with [`now`] as its
    /// clock), sending `auth` with every call. The wire format is the
    /// Resolver's (`ResolverConfig::wire`).
    pub fn new(
        resolver: &'r mut Resolver<E, CACHE, ENDPOINTS, FEEDBACK, FLIGHTS, WAITERS, St, P, EVENTS>,
        auth: Auth,
    ) -> Self {
        let wire = resolver.config().wire;
        Self {
            state: Mutex::new(RefCell::new(State {
                resolver,
                waiting: heapless::Vec::new(),
                stats: AdapterStats::default(),
            })),
            wake: Signal::new(),
            auth,
            wire,
        }
    }

    /// Runs `f` on the state, under the lock (never held across an await).
    fn with<T>(
        &self,
        f: impl FnOnce(
            &mut State<'r, E, CACHE, ENDPOINTS, FEEDBACK, FLIGHTS, WAITERS, St, P, EVENTS>,
        ) -> T,
    ) -> T {
        self.state.lock(|cell| f(&mut cell.borrow_mut()))
    }

    /// The route for this connection: from a fresh cache entry at once,
    /// otherwise from the service within the resolve deadline, or the
    /// fallback the core decides (stale cache, embedded configuration,
    /// direct). An error only when the service's `fallback_policy` for this
    /// connection is `fail` (or, see [`AdapterStats::overloaded`], when
    /// every answer slot is taken). Dropping the future withdraws the
    /// resolve at once.
    pub async fn resolve(&self, request: &ProxyRequest) -> Result<Route, ResolveError> {
        let (first, wake) = self.with(|st| {
            let refresh_before = st.resolver.refresh_pending();
            match st.resolver.resolve(now(), request) {
                Resolution::Ready(route) => {
                    let route = route.to_owned();
                    // A fallback left events; a hit may have made a refresh due.
                    let wake = route.source != Source::Cache
                        || (!refresh_before && st.resolver.refresh_pending());
                    (Err(Ok(route)), wake)
                }
                Resolution::Failed(e) => (Err(Err(e)), true),
                Resolution::Pending(ticket) => {
                    let slot = Waiting {
                        ticket,
                        answer: None,
                        waker: None,
                    };
                    if st.waiting.push(slot).is_ok() {
                        (Ok(ticket), true)
                    } else {
                        st.resolver.cancel(ticket);
                        st.stats.overloaded += 1;
                        let reason = FallbackReason::Overloaded;
                        (Err(Err(ResolveError::ServiceUnavailable { reason })), false)
                    }
                }
            }
        });
        if wake {
            self.wake.signal(());
        }
        let ticket = match first {
            Ok(ticket) => ticket,
            Err(done) => return done,
        };
        let mut guard = CancelOnDrop {
            client: self,
            ticket: Some(ticket),
        };
        let answer = poll_fn(|cx| {
            self.with(|st| {
                let Some(i) = st.waiting.iter().position(|w| w.ticket == ticket) else {
                    // Cannot happen: only this future and its guard remove it.
                    let reason = FallbackReason::NoEndpoint;
                    return Poll::Ready(Err(ResolveError::ServiceUnavailable { reason }));
                };
                if st.waiting[i].answer.is_some() {
                    let w = st.waiting.swap_remove(i);
                    return Poll::Ready(w.answer.unwrap_or(Err(
                        ResolveError::ServiceUnavailable {
                            reason: FallbackReason::NoEndpoint,
                        },
                    )));
                }
                let slot = &mut st.waiting[i];
                match &slot.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => slot.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            })
        })
        .await;
        guard.ticket = None;
        answer
    }

    /// Reports how a connection went. Synchronous, never awaits: the event
    /// joins the Resolver's feedback queue, which sends it in batches; when
    /// the queue is full its oldest event is dropped and counted
    /// (`feedback.dropped` in [`stats`](Self::stats)). A failure that is the
    /// proxy's fault ([`proxy_at_fault`](resolver::proxy_at_fault)) removes
    /// the cached answers naming that proxy at once and is sent without the
    /// batching delay.
    pub fn report_feedback(&self, feedback: ProxyFeedback) {
        let urgent = resolver::proxy_at_fault(&feedback);
        self.with(|st| {
            st.resolver.report(now(), feedback);
            if urgent {
                st.resolver.flush_feedback();
            }
        });
        // The batch timer may now be due sooner than the driver's.
        self.wake.signal(());
    }

    /// Sends every queued feedback event now, whatever the batching delay
    /// (before a planned restart, say).
    pub fn flush_feedback(&self) {
        self.with(|st| st.resolver.flush_feedback());
        self.wake.signal(());
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
            self.with(|st| {
                st.resolver
                    .release_embedded(exchange_id, connection_type, url)
            });
        }
    }

    /// Every counter, read under the lock.
    pub fn stats(&self) -> Stats {
        self.with(|st| Stats {
            resolver: st.resolver.stats(),
            feedback: st.resolver.feedback_stats(),
            adapter: st.stats,
        })
    }

    /// Drives the Resolver over the network stack, `SENDERS` calls to the
    /// service at once, in `buffers`. Never returns: run it in a task of
    /// its own (or `select` it with the work that uses the client; dropping
    /// it stops the client, and resolves then wait until dropped).
    ///
    /// Host names of endpoints resolve through `dns`; IP literals need no
    /// lookup ([`NoDns`](crate::NoDns) for a stack without DNS). With every
    /// sender busy, the next transmit waits for one to finish (each call is
    /// bounded by its deadline), and so do the answers the Resolver gives
    /// after it: give as many senders as calls you expect at once (requests
    /// in flight, one feedback batch, a health check per endpoint).
    pub async fn run<T: TcpConnect, D: Dns, const SENDERS: usize>(
        &self,
        tcp: &T,
        dns: &D,
        buffers: &mut Buffers<SENDERS>,
    ) -> ! {
        let Buffers {
            driver,
            transmits,
            answers,
        } = buffers;
        let jobs = Channel::<NoopRawMutex, Job<'_>, SENDERS>::new();
        let free = Channel::<NoopRawMutex, &mut [u8; TRANSMIT_BUFFER], SENDERS>::new();
        for buf in transmits.iter_mut() {
            // Room for every one of them.
            let _ = free.try_send(buf);
        }
        let senders = answers
            .each_mut()
            .map(|answer| self.sender(tcp, dns, &jobs, &free, answer));
        match select(self.drive(&jobs, &free, driver), select_array(senders)).await {
            Either::First(never) => never,
            Either::Second((never, _)) => never,
        }
    }

    /// The driver: drains the Resolver, then sleeps until its timeout or a
    /// signal.
    async fn drive<'b, const SENDERS: usize>(
        &self,
        jobs: &Channel<NoopRawMutex, Job<'b>, SENDERS>,
        free: &Channel<NoopRawMutex, &'b mut [u8; TRANSMIT_BUFFER], SENDERS>,
        mut buf: &'b mut [u8; TRANSMIT_BUFFER],
    ) -> ! {
        loop {
            self.with(|st| st.resolver.handle_timeout(now()));
            let timeout = loop {
                match self.step(buf) {
                    Step::Transmit(transmit) => {
                        jobs.send(Job {
                            transmit,
                            body: buf,
                        })
                        .await;
                        buf = free.receive().await;
                    }
                    Step::Timeout(t) => break t,
                }
            };
            match timeout {
                Some(t) => {
                    select(self.wake.wait(), Timer::at(to_embassy(t))).await;
                }
                None => self.wake.wait().await,
            }
        }
    }

    /// One locked step of the drain: answers go to their resolves and
    /// events are counted until a transmit or the timeout comes out.
    fn step(&self, buf: &mut [u8; TRANSMIT_BUFFER]) -> Step {
        self.with(|st| {
            loop {
                match st.resolver.poll_output(now(), buf) {
                    Output::Transmit(t) => return Step::Transmit(t),
                    Output::Answer(a) => {
                        // No slot: the resolve was dropped; its answer goes.
                        if let Some(w) = st.waiting.iter_mut().find(|w| w.ticket == a.ticket) {
                            w.answer = Some(a.result);
                            if let Some(waker) = w.waker.take() {
                                waker.wake();
                            }
                        }
                    }
                    Output::Event(_) => st.stats.events += 1,
                    Output::Timeout(t) => return Step::Timeout(t),
                }
            }
        })
    }

    /// A sender: sends one job at a time and feeds the reply back.
    async fn sender<'b, T: TcpConnect, D: Dns, const SENDERS: usize>(
        &self,
        tcp: &T,
        dns: &D,
        jobs: &Channel<NoopRawMutex, Job<'b>, SENDERS>,
        free: &Channel<NoopRawMutex, &'b mut [u8; TRANSMIT_BUFFER], SENDERS>,
        answer: &mut [u8; ANSWER_BUFFER],
    ) -> ! {
        loop {
            let Job { transmit: t, body } = jobs.receive().await;
            let endpoint = self.with(|st| st.resolver.endpoint(t.endpoint).map(|e| e.url.clone()));
            let result = match &endpoint {
                Some(url) => {
                    let call = http::Call {
                        endpoint: url,
                        kind: t.kind,
                        id: t.id,
                        body: &body[..t.len],
                        wire: self.wire,
                        auth: &self.auth,
                    };
                    let exchange = http::exchange(tcp, dns, &call, answer);
                    embassy_time::with_deadline(to_embassy(t.deadline), exchange)
                        .await
                        .unwrap_or(Err(Failure::Timeout))
                }
                // The endpoints were replaced since: it cannot be sent.
                None => Err(Failure::Connect),
            };
            free.send(body).await;
            self.with(|st| {
                let reply = match &result {
                    Ok(a) if contract::is_success(a.status) => Reply::Ok(&answer[a.body.clone()]),
                    Ok(a) => Reply::Status {
                        code: a.status,
                        retry_after: a.retry_after,
                    },
                    Err(_) => Reply::Failed,
                };
                match &result {
                    Ok(_) => st.stats.answered += 1,
                    Err(f) => st.stats.failures[f.index()] += 1,
                }
                // An id the Resolver no longer knows (timed out): nothing to do.
                let _ = st.resolver.handle_reply(now(), t.id, reply);
            });
            self.wake.signal(());
        }
    }
}

/// Withdraws a pending resolve whose future was dropped.
struct CancelOnDrop<
    'c,
    'r,
    M: RawMutex,
    E: EmbeddedRoutes,
    const CACHE: usize,
    const ENDPOINTS: usize,
    const FEEDBACK: usize,
    const FLIGHTS: usize,
    const WAITERS: usize,
    St: Storage = Inline,
    P: Profile = Whole,
    const EVENTS: usize = EVENT_QUEUE_LEN,
> {
    client: &'c Client<'r, M, E, CACHE, ENDPOINTS, FEEDBACK, FLIGHTS, WAITERS, St, P, EVENTS>,
    ticket: Option<Ticket>,
}

impl<
    M: RawMutex,
    E: EmbeddedRoutes,
    const CACHE: usize,
    const ENDPOINTS: usize,
    const FEEDBACK: usize,
    const FLIGHTS: usize,
    const WAITERS: usize,
    St: Storage,
    P: Profile,
    const EVENTS: usize,
> Drop for CancelOnDrop<'_, '_, M, E, CACHE, ENDPOINTS, FEEDBACK, FLIGHTS, WAITERS, St, P, EVENTS>
{
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.client.with(|st| {
                st.resolver.cancel(ticket);
                st.waiting.retain(|w| w.ticket != ticket);
            });
        }
    }
}
