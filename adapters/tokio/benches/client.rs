//! `ProxyServiceClient` under load, each figure in the same run as its peer:
//!
//! 1. **Cache-hit `get_proxy`** from 1,000 tokio tasks on a 2-worker
//!    multi-thread runtime, every call timed with `std::time::Instant`
//!    (p50 / p99 / p99.9 / max, throughput), against a
//!    `moka::future::Cache<CacheKey, Route>` wrapper (the same keys, the route
//!    cloned out as ours is) and an empty timed call (the timer's floor).
//! 2. **`report_feedback`**: per call on one thread (criterion), and from
//!    1,000 tasks (p50 / p99), against a `Mutex<VecDeque<ProxyFeedback>>`
//!    push that drops the oldest at the same capacity and a tokio `mpsc`
//!    `try_send` with a task draining the receiver.
//! 3. **Failover** with the real `HttpTransport` against a closed loopback
//!    port: (a) from `get_proxy` to its fallback when every connection is
//!    refused, (b) once the endpoint is out of use (no wait at all), against
//!    a bare `tokio::net::TcpStream::connect` to the same port (the floor).
//!
//! ```text
//! cargo bench -p proxy-delegate-tokio --bench client
//! ```
//!
//! The service of parts 1 and 2 is an in-process [`Transport`] that answers
//! like the reference service at once (it decodes each request and encodes a
//! real `ProxyResponse`; feedback and health checks get 200): the client
//! runs its whole path (driver, transmits, replies), only the network is
//! left out. Everything is loopback and every loop is bounded. The bench
//! measures and checks that every call did what it should (a hit is a hit,
//! a fallback has the expected reason); it asserts nothing about time.

// The bench's output is its table.
#![allow(clippy::print_stdout)]

use std::collections::VecDeque;
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Criterion;
use proxy_delegate_core::cache::CacheKey;
use proxy_delegate_core::codec;
use proxy_delegate_core::delegation::Delegation;
use proxy_delegate_core::feedback::{FeedbackConfig, FeedbackQueue};
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ExchangeId, FallbackPolicy, ProxyFeedback, ProxyId, ProxyRequest,
    ProxyResponse, ProxyUrl, ResponseMetadata, Strategy, TtlSeconds,
};
use proxy_delegate_core::resolver::{MIN_TRANSMIT_BUFFER, Route, Source, Stats, TransmitKind};
use proxy_delegate_core::settings::ExternalService;
use proxy_delegate_tokio::{
    BoxFuture, Embedded, FEEDBACK_CAPACITY, HttpTransport, ProxyServiceClient, ServiceAnswer,
    ServiceCall, ServiceError, Transport, TransportConfig,
};

/// Concurrent tasks in the many-task jobs.
const TASKS: usize = 1_000;
/// Runtime workers.
const WORKERS: usize = 2;
/// Cached keys (a power of two: the index is masked, not divided).
const KEYS: usize = 64;
/// `get_proxy` calls per task per round.
const HIT_CALLS: usize = 1_000;
/// Rounds of the cache-hit job (contenders alternate within a round).
const HIT_ROUNDS: usize = 2;
/// A task yields to the scheduler after this many calls, so that the 1,000
/// tasks interleave instead of each running to its end in one poll.
const YIELD_EVERY: usize = 8;
/// `report_feedback` calls per task.
const REPORT_CALLS: usize = 200;
/// Failover samples of each kind.
const FAILOVER_SAMPLES: usize = 200;
/// Events moved in per timed chunk in the single-thread feedback bench.
const CHUNK: usize = 32;

/// The published feedback body (credentials are stripped on decode).
const FEEDBACK_JSON: &str = r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","exchange_id":"binance","connection_type":"websocket","success":true,"latency_ms":45,"error_details":null,"timestamp":"2024-09-23T10:30:00Z","client_id":"cryptofeed-instance-123"}"#;

// ---------------------------------------------------------------- the service

/// The service, in process: answers every call at once, as the reference
/// service would.
#[derive(Debug, Default)]
struct InstantService {
    resolves: AtomicU64,
    feedback_batches: AtomicU64,
    checks: AtomicU64,
}

fn ok(body: Bytes) -> ServiceAnswer {
    ServiceAnswer {
        status: 200,
        body,
        retry_after: None,
    }
}

/// The service's answer to `request`: a proxy named after its exchange.
fn response_body(request: &ProxyRequest) -> Bytes {
    let ex = request.exchange_id.as_str();
    let response = ProxyResponse {
        proxy_url: Some(
            ProxyUrl::parse(&format!("socks5://user:pass@proxy-{ex}.example:1080"))
                .expect("valid url"),
        ),
        strategy: Strategy::new("least_connections").expect("valid strategy"),
        ttl_seconds: TtlSeconds::new(300).expect("valid ttl"),
        fallback_policy: FallbackPolicy::DirectConnection,
        metadata: ResponseMetadata {
            proxy_id: Some(ProxyId::new(&format!("px-{ex}")).expect("valid id")),
            ..ResponseMetadata::default()
        },
    };
    let mut buf = vec![0u8; 4096];
    let n = codec::json::encode(&response, &mut buf).expect("the response encodes");
    buf.truncate(n);
    Bytes::from(buf)
}

impl InstantService {
    fn answer(&self, call: &ServiceCall<'_>) -> ServiceAnswer {
        match call.kind {
            TransmitKind::Resolve => {
                self.resolves.fetch_add(1, Ordering::Relaxed);
                match codec::json::decode::<ProxyRequest>(call.body) {
                    Ok(request) => ok(response_body(&request)),
                    Err(_) => ServiceAnswer {
                        status: 400,
                        body: Bytes::from_static(br#"{"code":"invalid_request"}"#),
                        retry_after: None,
                    },
                }
            }
            TransmitKind::Feedback(_) => {
                self.feedback_batches.fetch_add(1, Ordering::Relaxed);
                ok(Bytes::from_static(br#"{"status":"accepted"}"#))
            }
            TransmitKind::HealthCheck => {
                self.checks.fetch_add(1, Ordering::Relaxed);
                ok(Bytes::from_static(br#"{"status":"healthy"}"#))
            }
        }
    }
}

impl Transport for InstantService {
    fn send<'a>(
        &'a self,
        call: ServiceCall<'a>,
    ) -> BoxFuture<'a, Result<ServiceAnswer, ServiceError>> {
        let answer = self.answer(&call);
        Box::pin(std::future::ready(Ok(answer)))
    }
}

fn delegation(endpoint: &str) -> Delegation {
    let mut block = ExternalService {
        enabled: true,
        ..ExternalService::default()
    };
    block
        .endpoints
        .push(endpoint.parse().expect("valid endpoint"))
        .expect("room for one endpoint");
    block
        .delegation(ClientId::new("bench-client").expect("valid client id"))
        .expect("a working external_service block")
}

fn embedded() -> Embedded {
    Box::default()
}

fn client(endpoint: &str, transport: Arc<dyn Transport>) -> ProxyServiceClient {
    ProxyServiceClient::with_transport(delegation(endpoint), embedded(), transport)
        .expect("the client builds")
}

fn exchange(prefix: &str, i: usize) -> ExchangeId {
    ExchangeId::new(&format!("{prefix}-{i:04}")).expect("valid exchange id")
}

fn feedback_template() -> ProxyFeedback {
    codec::json::decode(FEEDBACK_JSON.as_bytes()).expect("the published feedback body decodes")
}

// ---------------------------------------------------------------- distributions

/// Latencies of one job, in nanoseconds, and its wall time.
#[derive(Debug, Default)]
struct Dist {
    ns: Vec<u32>,
    wall: Duration,
}

impl Dist {
    fn merge(&mut self, other: Dist) {
        self.ns.extend(other.ns);
        self.wall += other.wall;
    }

    fn sort(&mut self) {
        self.ns.sort_unstable();
    }

    /// The `q` quantile (0..=1) of the sorted latencies, in ns.
    fn q(&self, q: f64) -> f64 {
        let i = ((self.ns.len() as f64) * q) as usize;
        f64::from(self.ns[i.min(self.ns.len() - 1)])
    }

    fn max(&self) -> f64 {
        f64::from(*self.ns.last().expect("samples"))
    }

    /// Calls per second over the job's wall time (spawning and joining the
    /// tasks included).
    fn throughput(&self) -> f64 {
        self.ns.len() as f64 / self.wall.as_secs_f64()
    }
}

fn nanos(d: Duration) -> u32 {
    u32::try_from(d.as_nanos()).unwrap_or(u32::MAX)
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 10_000.0 {
        format!("{:.0} µs", ns / 1e3)
    } else if ns >= 1_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

// ---------------------------------------------------------------- many-task jobs

/// One contender of a many-task job whose call is awaited.
trait AsyncJob: Send + Sync + 'static {
    /// The timed call for step `i`; true when it did what it should.
    fn call(&self, i: usize) -> impl Future<Output = bool> + Send + '_;

    /// Work done after step `i`, outside the timed section.
    fn untimed(&self, _i: usize) {}
}

/// One contender of a many-task job whose call is synchronous and consumes
/// an event built (untimed) before it.
trait SyncJob: Send + Sync + 'static {
    fn call(&self, event: ProxyFeedback);
}

/// `TASKS` tasks, each making `calls` timed calls of `job`.
async fn run_async<J: AsyncJob>(job: Arc<J>, calls: usize) -> Dist {
    let start = Instant::now();
    let mut handles = Vec::with_capacity(TASKS);
    for t in 0..TASKS {
        let job = job.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(calls);
            let mut wrong = 0usize;
            for j in 0..calls {
                let t0 = Instant::now();
                let right = job.call(t + j).await;
                lat.push(nanos(t0.elapsed()));
                wrong += usize::from(!right);
                job.untimed(t + j);
                if j % YIELD_EVERY == YIELD_EVERY - 1 {
                    tokio::task::yield_now().await;
                }
            }
            (lat, wrong)
        }));
    }
    let mut dist = Dist::default();
    for h in handles {
        let (lat, wrong) = h.await.expect("task finished");
        assert_eq!(wrong, 0, "every call must do what it should");
        dist.ns.extend(lat);
    }
    dist.wall = start.elapsed();
    dist
}

/// `TASKS` tasks, each making `calls` timed calls of `job`, each with an
/// event cloned (untimed) before the call.
async fn run_sync<J: SyncJob>(job: Arc<J>, calls: usize, template: &ProxyFeedback) -> Dist {
    let start = Instant::now();
    let mut handles = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let job = job.clone();
        let template = template.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(calls);
            for j in 0..calls {
                let event = template.clone();
                let t0 = Instant::now();
                job.call(event);
                lat.push(nanos(t0.elapsed()));
                if j % YIELD_EVERY == YIELD_EVERY - 1 {
                    tokio::task::yield_now().await;
                }
            }
            lat
        }));
    }
    let mut dist = Dist::default();
    for h in handles {
        dist.ns.extend(h.await.expect("task finished"));
    }
    dist.wall = start.elapsed();
    dist
}

struct OursHit {
    client: ProxyServiceClient,
    requests: Vec<ProxyRequest>,
}

impl AsyncJob for OursHit {
    async fn call(&self, i: usize) -> bool {
        let route = self.client.get_proxy(&self.requests[i & (KEYS - 1)]).await;
        matches!(route, Ok(r) if r.source == Source::Cache)
    }
}

/// Cache hits on the same client while feedback flows: one event reported
/// (untimed) every `FEEDBACK_EVERY` hits, so the driver sends batches.
struct OursHitWithFeedback {
    hit: Arc<OursHit>,
    template: ProxyFeedback,
}

/// One feedback event per this many hits in [`OursHitWithFeedback`].
const FEEDBACK_EVERY: usize = 1_024;

impl AsyncJob for OursHitWithFeedback {
    async fn call(&self, i: usize) -> bool {
        self.hit.call(i).await
    }

    fn untimed(&self, i: usize) {
        if i.is_multiple_of(FEEDBACK_EVERY) {
            self.hit.client.report_feedback(self.template.clone());
        }
    }
}

struct MokaHit {
    cache: moka::future::Cache<CacheKey, Route>,
    keys: Vec<CacheKey>,
}

impl AsyncJob for MokaHit {
    async fn call(&self, i: usize) -> bool {
        let route = self.cache.get(&self.keys[i & (KEYS - 1)]).await;
        matches!(route, Some(r) if r.source == Source::Cache)
    }
}

/// Nothing between the two clock reads: what the timing itself costs.
struct Floor;

impl AsyncJob for Floor {
    async fn call(&self, i: usize) -> bool {
        black_box(i);
        true
    }
}

struct OursReport(ProxyServiceClient);

impl SyncJob for OursReport {
    fn call(&self, event: ProxyFeedback) {
        self.0.report_feedback(event);
    }
}

/// A bounded queue that drops its oldest event when full, as ours does.
struct MutexQueue(Mutex<VecDeque<ProxyFeedback>>);

impl MutexQueue {
    fn new() -> Self {
        Self(Mutex::new(VecDeque::with_capacity(FEEDBACK_CAPACITY)))
    }
}

impl SyncJob for MutexQueue {
    fn call(&self, event: ProxyFeedback) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == FEEDBACK_CAPACITY {
            q.pop_front();
        }
        q.push_back(event);
    }
}

/// A tokio channel of the same capacity; a task drains the receiver.
struct Channel(tokio::sync::mpsc::Sender<ProxyFeedback>);

impl Channel {
    fn new() -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<ProxyFeedback>(FEEDBACK_CAPACITY);
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                black_box(e);
            }
        });
        Self(tx)
    }
}

impl SyncJob for Channel {
    fn call(&self, event: ProxyFeedback) {
        // Full: the event is dropped (the caller never waits).
        let _ = self.0.try_send(event);
    }
}

// ---------------------------------------------------------------- single thread

/// Times `iters` calls of `push` in chunks of fresh clones (cloning is not
/// timed); records the per-call mean of this sample in `samples`.
fn chunked(
    iters: u64,
    template: &ProxyFeedback,
    samples: &mut Vec<f64>,
    mut push: impl FnMut(ProxyFeedback),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = (iters - done).min(CHUNK as u64) as usize;
        let mut events: Vec<ProxyFeedback> = vec![template.clone(); n];
        let start = Instant::now();
        for e in events.drain(..) {
            push(e);
        }
        total += start.elapsed();
        done += n as u64;
    }
    samples.push(total.as_nanos() as f64 / iters as f64);
    total
}

/// The median of the last `n` samples (criterion's measurement phase; the
/// ones before are its warm-up).
fn median_of_last(samples: &[f64], n: usize) -> f64 {
    let mut v = samples[samples.len().saturating_sub(n)..].to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// ---------------------------------------------------------------- batch encode

/// The driver encodes a feedback batch inside `poll_output`, under the
/// client's lock: one batch of `batch_size` (64) queued events through
/// `FeedbackQueue::poll_transmit` into a buffer of `buf_len` bytes (the
/// client's is `contract::MAX_BODY`, 64 KiB). Returns the time of each
/// batch and the events sent in all.
fn batch_encode(buf_len: usize, template: &ProxyFeedback) -> (Dist, usize) {
    let config = FeedbackConfig::default();
    let batch_size = config.batch_size;
    let mut q =
        Box::new(FeedbackQueue::<FEEDBACK_CAPACITY>::new(config).expect("valid feedback config"));
    let mut buf = vec![0u8; buf_len];
    let now = embassy_time::Instant::from_secs(1);
    let mut dist = Dist::default();
    let mut events = 0;
    for _ in 0..FAILOVER_SAMPLES {
        while q.stats().queued < batch_size {
            q.report(now, template.clone());
        }
        let t0 = Instant::now();
        let t = q.poll_transmit(now, &mut buf).expect("a full batch is due");
        dist.ns.push(nanos(t0.elapsed()));
        events += t.count;
        q.handle_sent(now, t.id).expect("the batch in flight");
    }
    dist.sort();
    (dist, events)
}

// ---------------------------------------------------------------- failover

/// A loopback port nobody listens on (bound, then closed).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    port
}

/// Which fallback reason grew between two stats (no_endpoint, deadline,
/// service_failed, overloaded), if exactly one did.
fn reason(before: &Stats, after: &Stats) -> Option<usize> {
    let grown: Vec<usize> = (0..4)
        .filter(|&r| after.fallbacks[r] > before.fallbacks[r])
        .collect();
    (grown.len() == 1).then(|| grown[0])
}

const REASONS: [&str; 4] = ["no_endpoint", "deadline", "service_failed", "overloaded"];

struct Failover {
    refused: Dist,
    refused_attempts: u64,
    refused_source: Option<Source>,
    opened_after: usize,
    open: Dist,
    open_source: Option<Source>,
    connect: Dist,
}

async fn failover() -> Failover {
    let port = closed_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let http: Arc<dyn Transport> =
        Arc::new(HttpTransport::new(TransportConfig::default()).expect("the HTTP transport"));

    // (a) A fresh client per sample: its endpoint is healthy, so the resolve
    // really goes to the refused port (a client's endpoint is out of use
    // after its first failed call and health check; that is case (b)).
    let mut refused = Dist::default();
    let mut refused_attempts = 0;
    let mut refused_source = None;
    for i in 0..FAILOVER_SAMPLES + 5 {
        let c = client(&endpoint, http.clone());
        let request = c.request(exchange("refused", i), ConnectionType::Websocket);
        let before = c.stats().0;
        let t0 = Instant::now();
        let route = c.get_proxy(&request).await;
        let dt = t0.elapsed();
        let after = c.stats().0;
        let route = route.expect("the default policy falls back, never fails");
        assert_eq!(
            reason(&before, &after),
            Some(2),
            "a refused endpoint ends in service_failed (stats {after:?})"
        );
        // The first few warm the transport up.
        if i >= 5 {
            refused.ns.push(nanos(dt));
            refused_attempts += 1 + after.retries - before.retries;
            refused_source = Some(route.source);
        }
        c.shutdown(Duration::ZERO).await;
    }

    // (b) One client, distinct keys, until resolves fall back as
    // no_endpoint; then every resolve should cost no wait.
    let c = client(&endpoint, http.clone());
    let mut opened_after = 0;
    for i in 0..1_000 {
        let request = c.request(exchange("opening", i), ConnectionType::Websocket);
        let _ = c.get_proxy(&request).await;
        if c.stats().0.fallbacks[0] > 0 {
            opened_after = i + 1;
            break;
        }
    }
    assert!(opened_after > 0, "the endpoint never went out of use");
    let mut open = Dist::default();
    let mut open_source = None;
    let mut reasons = [0usize; 4];
    for i in 0..FAILOVER_SAMPLES * 5 {
        let request = c.request(exchange("open", i), ConnectionType::Websocket);
        let before = c.stats().0;
        let t0 = Instant::now();
        let route = c.get_proxy(&request).await;
        let dt = t0.elapsed();
        let after = c.stats().0;
        let r = reason(&before, &after).expect("one fallback per resolve");
        reasons[r] += 1;
        open.ns.push(nanos(dt));
        open_source = route.ok().map(|r| r.source);
    }
    assert_eq!(
        reasons[0],
        FAILOVER_SAMPLES * 5,
        "every resolve falls back as no_endpoint: {:?}",
        REASONS.iter().zip(reasons).collect::<Vec<_>>()
    );
    c.shutdown(Duration::ZERO).await;

    // The floor: a bare connect to the same closed port.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut connect = Dist::default();
    for i in 0..FAILOVER_SAMPLES + 5 {
        let t0 = Instant::now();
        let r = tokio::net::TcpStream::connect(addr).await;
        let dt = t0.elapsed();
        assert!(r.is_err(), "the port is closed");
        if i >= 5 {
            connect.ns.push(nanos(dt));
        }
    }

    Failover {
        refused,
        refused_attempts,
        refused_source,
        opened_after,
        open,
        open_source,
        connect,
    }
}

// ---------------------------------------------------------------- main

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    let load_before = loadavg();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("the runtime");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args();

    // ---- 1. cache-hit get_proxy
    let service = Arc::new(InstantService::default());
    let (ours_hit, moka_hit) = rt.block_on(async {
        let client = client("http://127.0.0.1:9", service.clone());
        let requests: Vec<ProxyRequest> = (0..KEYS)
            .map(|i| client.request(exchange("exchange", i), ConnectionType::Websocket))
            .collect();
        // Warm: one resolve per key through the service, then each is a hit.
        for r in &requests {
            let route = client.get_proxy(r).await.expect("a route");
            assert_eq!(route.source, Source::Service, "the first resolve asks");
        }
        let moka = moka::future::Cache::<CacheKey, Route>::new(256);
        let mut keys = Vec::with_capacity(KEYS);
        for r in &requests {
            let route = client.get_proxy(r).await.expect("a route");
            assert_eq!(route.source, Source::Cache, "the second resolve hits");
            let key = CacheKey::from_request(r);
            moka.insert(key.clone(), route).await;
            keys.push(key);
        }
        moka.run_pending_tasks().await;
        (
            Arc::new(OursHit { client, requests }),
            Arc::new(MokaHit { cache: moka, keys }),
        )
    });
    let template = feedback_template();
    let mixed_hit = Arc::new(OursHitWithFeedback {
        hit: ours_hit.clone(),
        template: template.clone(),
    });
    let (mut ours, mut moka, mut floor) = (Dist::default(), Dist::default(), Dist::default());
    rt.block_on(async {
        for _ in 0..HIT_ROUNDS {
            ours.merge(run_async(ours_hit.clone(), HIT_CALLS).await);
            moka.merge(run_async(moka_hit.clone(), HIT_CALLS).await);
            floor.merge(run_async(Arc::new(Floor), HIT_CALLS).await);
        }
    });
    let hit_resolves = service.resolves.load(Ordering::Relaxed);
    let hit_stats = ours_hit.client.stats().0;
    // Diagnostic: the same job on one worker, where nothing contends for
    // the client's lock (or moka's internals); what is left of the tail is
    // the machine's.
    let (mut ours1, mut moka1) = {
        let rt1 = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("the one-worker runtime");
        rt1.block_on(async {
            (
                run_async(ours_hit.clone(), HIT_CALLS).await,
                run_async(moka_hit.clone(), HIT_CALLS).await,
            )
        })
    };
    // Last, as it leaves feedback behind: hits while feedback flows.
    let mut mixed = rt.block_on(run_async(mixed_hit, HIT_CALLS));
    let mixed_batches = service.feedback_batches.load(Ordering::Relaxed);
    for d in [
        &mut ours, &mut moka, &mut floor, &mut mixed, &mut ours1, &mut moka1,
    ] {
        d.sort();
    }

    // ---- 2. report_feedback
    let fb_service = Arc::new(InstantService::default());
    let fb_client = {
        let _guard = rt.enter();
        client("http://127.0.0.1:9", fb_service.clone())
    };
    // The same call on a client whose driver has stopped: nothing to wake,
    // nobody else takes the lock.
    let idle_client = rt.block_on(async {
        let c = client("http://127.0.0.1:9", fb_service.clone());
        c.shutdown(Duration::ZERO).await;
        c
    });
    let queue = MutexQueue::new();
    let channel = {
        let _guard = rt.enter();
        Channel::new()
    };
    let (mut s_ours, mut s_idle, mut s_queue, mut s_chan) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    {
        let mut group = c.benchmark_group("report_feedback, one thread");
        group.bench_function("ProxyServiceClient::report_feedback", |b| {
            b.iter_custom(|iters| {
                chunked(iters, &template, &mut s_ours, |e| {
                    fb_client.report_feedback(e)
                })
            })
        });
        group.bench_function("report_feedback, driver stopped", |b| {
            b.iter_custom(|iters| {
                chunked(iters, &template, &mut s_idle, |e| {
                    idle_client.report_feedback(e)
                })
            })
        });
        group.bench_function("peer: Mutex<VecDeque> push, drop oldest", |b| {
            b.iter_custom(|iters| chunked(iters, &template, &mut s_queue, |e| queue.call(e)))
        });
        group.bench_function("peer: tokio mpsc try_send", |b| {
            b.iter_custom(|iters| chunked(iters, &template, &mut s_chan, |e| channel.call(e)))
        });
        group.finish();
    }
    let n = 30;
    let single = [
        median_of_last(&s_ours, n),
        median_of_last(&s_idle, n),
        median_of_last(&s_queue, n),
        median_of_last(&s_chan, n),
    ];
    let fb_job = Arc::new(OursReport(fb_client.clone()));
    let queue_job = Arc::new(MutexQueue::new());
    let (mut r_ours, mut r_queue, mut r_chan) = rt.block_on(async {
        let chan_job = Arc::new(Channel::new());
        (
            run_sync(fb_job, REPORT_CALLS, &template).await,
            run_sync(queue_job, REPORT_CALLS, &template).await,
            run_sync(chan_job, REPORT_CALLS, &template).await,
        )
    });
    for d in [&mut r_ours, &mut r_queue, &mut r_chan] {
        d.sort();
    }
    let fb_stats = fb_client.stats().1;
    let fb_batches = fb_service.feedback_batches.load(Ordering::Relaxed);
    let encode_small = batch_encode(MIN_TRANSMIT_BUFFER, &template);
    let encode_large = batch_encode(64 << 10, &template);

    // ---- 3. failover
    let mut fo = rt.block_on(failover());
    for d in [&mut fo.refused, &mut fo.open, &mut fo.connect] {
        d.sort();
    }
    c.final_summary();
    let load_after = loadavg();

    // ---- the table
    println!();
    println!(
        "client bench: {} cores, {WORKERS} runtime workers, load average {load_before} before, {load_after} after",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "1. cache-hit get_proxy, {TASKS} tasks x {HIT_CALLS} calls x {HIT_ROUNDS} rounds, {KEYS} keys"
    );
    println!(
        "| | p50 | p99 | p99.9 | max | throughput |\n| --- | ---: | ---: | ---: | ---: | ---: |"
    );
    for (name, d) in [
        ("ProxyServiceClient::get_proxy", &ours),
        ("peer: moka::future::Cache::get", &moka),
        ("empty timed call (timer floor)", &floor),
        ("get_proxy, 1 worker, 1 round (no contention)", &ours1),
        ("moka, 1 worker, 1 round (no contention)", &moka1),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {:.2} M/s |",
            fmt_ns(d.q(0.5)),
            fmt_ns(d.q(0.99)),
            fmt_ns(d.q(0.999)),
            fmt_ns(d.max()),
            d.throughput() / 1e6
        );
    }
    println!(
        "| get_proxy, feedback reported every {FEEDBACK_EVERY} hits (untimed), 1 round | {} | {} | {} | {} | {:.2} M/s |",
        fmt_ns(mixed.q(0.5)),
        fmt_ns(mixed.q(0.99)),
        fmt_ns(mixed.q(0.999)),
        fmt_ns(mixed.max()),
        mixed.throughput() / 1e6
    );
    println!(
        "| ours / moka | {:.2} | {:.2} | {:.2} | | {:.2} |",
        ours.q(0.5) / moka.q(0.5),
        ours.q(0.99) / moka.q(0.99),
        ours.q(0.999) / moka.q(0.999),
        ours.throughput() / moka.throughput()
    );
    println!(
        "   (service resolves during warm-up and run: {hit_resolves}; cache hits counted: {})",
        hit_stats.resolved[Source::Cache as usize]
    );
    println!("   (feedback batches sent during the mixed round: {mixed_batches})");
    println!();
    println!("2. report_feedback");
    println!(
        "| | one thread (criterion, median of sample means) | {TASKS} tasks p50 | p99 | p99.9 | max |\n| --- | ---: | ---: | ---: | ---: | ---: |"
    );
    for (name, s, d) in [
        ("ProxyServiceClient::report_feedback", single[0], &r_ours),
        (
            "peer: Mutex<VecDeque> push, drop oldest",
            single[2],
            &r_queue,
        ),
        ("peer: tokio mpsc try_send", single[3], &r_chan),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            fmt_ns(s),
            fmt_ns(d.q(0.5)),
            fmt_ns(d.q(0.99)),
            fmt_ns(d.q(0.999)),
            fmt_ns(d.max())
        );
    }
    println!(
        "| ours / Mutex<VecDeque> | {:.2} | {:.2} | {:.2} | | |",
        single[0] / single[2],
        r_ours.q(0.5) / r_queue.q(0.5),
        r_ours.q(0.99) / r_queue.q(0.99)
    );
    println!(
        "| report_feedback, driver stopped (no wake, no contention) | {} | | | | |",
        fmt_ns(single[1])
    );
    println!(
        "   (feedback: {} sent in {fb_batches} batches, {} dropped as the queue was full, {} queued at the end)",
        fb_stats.sent, fb_stats.dropped, fb_stats.queued
    );
    println!();
    println!(
        "   one feedback batch, as the driver encodes it under the client's lock ({FAILOVER_SAMPLES} batches of 64 queued events):"
    );
    println!(
        "| transmit buffer | events per batch | p50 | p99 | per event |\n| --- | ---: | ---: | ---: | ---: |"
    );
    for (name, (d, events)) in [
        (
            "4 KiB (MIN_TRANSMIT_BUFFER, what the client used before)",
            &encode_small,
        ),
        ("64 KiB (the client's, holds a whole batch)", &encode_large),
    ] {
        let per_batch = *events as f64 / d.ns.len() as f64;
        println!(
            "| {name} | {per_batch:.1} | {} | {} | {} |",
            fmt_ns(d.q(0.5)),
            fmt_ns(d.q(0.99)),
            fmt_ns(d.q(0.5) / per_batch)
        );
    }
    println!();
    println!(
        "3. failover, HttpTransport, endpoint a closed loopback port, {FAILOVER_SAMPLES} samples"
    );
    println!("| | p50 | p90 | p99 | max |\n| --- | ---: | ---: | ---: | ---: |");
    for (name, d) in [
        ("(a) connection refused -> fallback", &fo.refused),
        ("(b) endpoint out of use -> fallback", &fo.open),
        ("peer: TcpStream::connect refused (floor)", &fo.connect),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} |",
            fmt_ns(d.q(0.5)),
            fmt_ns(d.q(0.9)),
            fmt_ns(d.q(0.99)),
            fmt_ns(d.max())
        );
    }
    println!(
        "| (a) / floor | {:.1} | {:.1} | {:.1} | |",
        fo.refused.q(0.5) / fo.connect.q(0.5),
        fo.refused.q(0.9) / fo.connect.q(0.9),
        fo.refused.q(0.99) / fo.connect.q(0.99)
    );
    println!(
        "   (a): {:.2} connection attempts per resolve, answered from {:?}; (b): out of use after {} resolve(s), {} samples, answered from {:?}",
        fo.refused_attempts as f64 / fo.refused.ns.len() as f64,
        fo.refused_source,
        fo.opened_after,
        fo.open.ns.len(),
        fo.open_source
    );
}
