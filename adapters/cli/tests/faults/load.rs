//! Steady load through the library, and the figures a scenario prints.
//!
//! [`Load`] runs [`TASKS`] tasks, each looping: time `injector.route()`
//! (one resolve), then `connect_websocket` to the local echo exchange
//! through the route the injector resolves, echo one message, close, and
//! pause [`PACE`]. Nine keys in ten are a few shared exchanges (cached,
//! refreshed, stale in an outage); one in ten is a new exchange (asked of
//! the service, or the embedded fallback). A monitor samples the feedback
//! queue every 50 ms. Everything is recorded with the instant it ended.
//!
//! [`Figures`] sums a record up: connections and failures by cause, the
//! worst resolve wait, the recovery time after a fault, the feedback
//! counts, printed as one line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use proxy_delegate_core::feedback;
use proxy_delegate_core::model::{ConnectionType, ErrorCategory};
use proxy_delegate_core::resolver::{Route, Source};
use proxy_delegate_tokio::{
    FEEDBACK_CAPACITY, INBOX_CAPACITY, ProxyInjector, ProxyServiceClient, ShutdownReport,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Tasks connecting at once.
pub(crate) const TASKS: usize = 8;
/// The pause of each task between connections.
pub(crate) const PACE: Duration = Duration::from_millis(100);
/// Feedback events the client holds before it drops: the Resolver's queue
/// and the client's inbox (whose events count as queued).
pub(crate) const QUEUE_CAPACITY: usize = FEEDBACK_CAPACITY + INBOX_CAPACITY;
/// A resolve with no answer this long is recorded as hung.
const RESOLVE_HANG: Duration = Duration::from_secs(10);
/// A connection (resolve, tunnel, handshake, echo, close) not done this
/// long is recorded as hung.
const CONNECT_HANG: Duration = Duration::from_secs(15);

/// One timed `injector.route()`.
#[derive(Debug, Clone)]
pub(crate) struct ResolveSample {
    /// When the answer came.
    pub(crate) done: Instant,
    /// How long it took.
    pub(crate) wait: Duration,
    /// Where the route came from, or the error.
    pub(crate) source: Result<Source, String>,
    /// `host:port` of its proxy (`None`: direct or an error).
    pub(crate) proxy: Option<String>,
    /// The service's proxy id, if any.
    pub(crate) proxy_id: Option<String>,
}

/// How one connection went.
#[derive(Debug, Clone)]
pub(crate) enum ConnResult {
    /// Connected, echoed, closed.
    Ok,
    /// `connect_websocket` failed: the category (none: no connection was
    /// tried) and the error.
    ConnectFailed(Option<ErrorCategory>, String),
    /// Connected, but the echo did not come back.
    EchoFailed(String),
    /// No outcome within [`CONNECT_HANG`].
    Hung,
}

/// One connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnSample {
    pub(crate) result: ConnResult,
    /// `host:port` of the proxy of its (last) route.
    pub(crate) proxy: Option<String>,
    pub(crate) source: Option<Source>,
    /// The time `connect_websocket` spent resolving (every attempt's
    /// resolve, summed), when it resolved.
    pub(crate) resolve_wait: Option<Duration>,
}

/// The feedback queue at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeedbackSample {
    pub(crate) queued: usize,
    pub(crate) dropped: u64,
}

/// Everything a load recorded.
#[derive(Debug, Default)]
pub(crate) struct Record {
    pub(crate) resolves: Vec<ResolveSample>,
    pub(crate) conns: Vec<ConnSample>,
    pub(crate) feedback: Vec<FeedbackSample>,
}

/// The running load.
#[derive(Debug)]
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    monitor: JoinHandle<()>,
    record: Arc<Mutex<Record>>,
}

fn proxy_of(route: &Route) -> Option<String> {
    route
        .proxy_url
        .as_ref()
        .map(|u| format!("{}:{}", u.host(), u.port()))
}

impl Load {
    /// Starts [`TASKS`] tasks against the WebSocket echo at `url`, and the
    /// feedback monitor.
    pub(crate) fn start(client: &ProxyServiceClient, injector: &ProxyInjector, url: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(Record::default()));
        let tasks = (0..TASKS)
            .map(|n| {
                tokio::spawn(task(
                    n,
                    injector.clone(),
                    url.to_owned(),
                    stop.clone(),
                    record.clone(),
                ))
            })
            .collect();
        let monitor = {
            let (client, stop, record) = (client.clone(), stop.clone(), record.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let fb = client.stats().1;
                    lock(&record).feedback.push(FeedbackSample {
                        queued: fb.queued,
                        dropped: fb.dropped,
                    });
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        Self {
            stop,
            tasks,
            monitor,
            record,
        }
    }

    /// The resolves so far that ended at or after `since` and satisfy `f`:
    /// the first one's end.
    pub(crate) fn first_resolve_after(
        &self,
        since: Instant,
        f: impl Fn(&ResolveSample) -> bool,
    ) -> Option<Instant> {
        lock(&self.record)
            .resolves
            .iter()
            .filter(|r| r.done >= since && f(r))
            .map(|r| r.done)
            .min()
    }

    /// How many resolves that ended at or after `since` satisfy `f`.
    pub(crate) fn count_resolves_after(
        &self,
        since: Instant,
        f: impl Fn(&ResolveSample) -> bool,
    ) -> usize {
        lock(&self.record)
            .resolves
            .iter()
            .filter(|r| r.done >= since && f(r))
            .count()
    }

    /// Waits (at most `within`) for a resolve that ended at or after
    /// `since` and satisfies `f`.
    pub(crate) async fn wait_for_resolve(
        &self,
        since: Instant,
        within: Duration,
        f: impl Fn(&ResolveSample) -> bool,
    ) -> Option<Instant> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(at) = self.first_resolve_after(since, &f) {
                return Some(at);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every task (each ends its connection first) and returns the
    /// record.
    pub(crate) async fn stop(self) -> Record {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("a load task panicked");
        }
        self.monitor.await.expect("the monitor panicked");
        std::mem::take(&mut *lock(&self.record))
    }
}

fn lock(record: &Mutex<Record>) -> std::sync::MutexGuard<'_, Record> {
    record.lock().unwrap_or_else(|p| p.into_inner())
}

/// One load task.
async fn task(
    n: usize,
    injector: ProxyInjector,
    url: String,
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
) {
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let exchange = if i % 10 == 9 {
            format!("new-{n}-{i}")
        } else {
            format!("ex-{}", (n + i) % 4)
        };
        i += 1;

        let started = Instant::now();
        let routed = tokio::time::timeout(
            RESOLVE_HANG,
            injector.route(&exchange, ConnectionType::Websocket),
        )
        .await;
        let wait = started.elapsed();
        let sample = match routed {
            Ok(Ok(route)) => ResolveSample {
                done: Instant::now(),
                wait,
                source: Ok(route.source),
                proxy: proxy_of(&route),
                proxy_id: route.proxy_id.as_ref().map(|p| p.as_str().to_owned()),
            },
            Ok(Err(e)) => ResolveSample {
                done: Instant::now(),
                wait,
                source: Err(e.to_string()),
                proxy: None,
                proxy_id: None,
            },
            Err(_) => ResolveSample {
                done: Instant::now(),
                wait,
                source: Err(format!("no answer within {RESOLVE_HANG:?}")),
                proxy: None,
                proxy_id: None,
            },
        };
        lock(&record).resolves.push(sample);

        let sample = match tokio::time::timeout(
            CONNECT_HANG,
            connect_and_echo(&injector, &url, &exchange, i),
        )
        .await
        {
            Ok(sample) => sample,
            Err(_) => ConnSample {
                result: ConnResult::Hung,
                proxy: None,
                source: None,
                resolve_wait: None,
            },
        };
        lock(&record).conns.push(sample);
        tokio::time::sleep(PACE).await;
    }
}

/// One connection: connect, echo one message, close.
async fn connect_and_echo(
    injector: &ProxyInjector,
    url: &str,
    exchange: &str,
    i: usize,
) -> ConnSample {
    let mut ws = match injector.connect_websocket(url, exchange).await {
        Ok(ws) => ws,
        Err(e) => {
            return ConnSample {
                result: ConnResult::ConnectFailed(e.category(), e.to_string()),
                proxy: e.route().and_then(proxy_of),
                source: e.route().map(|r| r.source),
                resolve_wait: e.resolve_wait(),
            };
        }
    };
    let route = ws.route().clone();
    let resolve_wait = ws.resolve_wait();
    let text = format!("ping {exchange} {i}");
    let echo = async {
        ws.send(Message::text(text.clone()))
            .await
            .map_err(|e| format!("send: {e}"))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == text => return Ok(()),
                Some(Ok(Message::Text(t))) => return Err(format!("echoed {:?}", t.as_str())),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("read: {e}")),
                None => return Err("closed before the echo".to_owned()),
            }
        }
    };
    let echoed = match tokio::time::timeout(Duration::from_secs(5), echo).await {
        Ok(r) => r,
        Err(_) => Err("no echo within 5 s".to_owned()),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close()).await;
    ConnSample {
        result: match echoed {
            Ok(()) => ConnResult::Ok,
            Err(e) => ConnResult::EchoFailed(e),
        },
        proxy: proxy_of(&route),
        source: Some(route.source),
        resolve_wait: Some(resolve_wait),
    }
}

// ------------------------------------------------------------ figures

/// Why a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The exchange itself (its TLS, its 5xx, a block, a rate limit, a lost
    /// echo on an open connection).
    Target,
    /// The forward proxy the scenario killed.
    DeadProxy,
    /// Anything else: the service's fault reached the connection.
    Service,
}

fn cause(sample: &ConnSample, dead_proxy: Option<&str>) -> Option<Cause> {
    let through_dead = dead_proxy.is_some() && sample.proxy.as_deref() == dead_proxy;
    match &sample.result {
        ConnResult::Ok => None,
        ConnResult::EchoFailed(_) if through_dead => Some(Cause::DeadProxy),
        ConnResult::EchoFailed(_) => Some(Cause::Target),
        ConnResult::ConnectFailed(
            Some(
                ErrorCategory::TargetTls
                | ErrorCategory::TargetHttp5xx
                | ErrorCategory::GeoBlocked
                | ErrorCategory::RateLimited,
            ),
            _,
        ) => Some(Cause::Target),
        ConnResult::ConnectFailed(..) if through_dead => Some(Cause::DeadProxy),
        ConnResult::ConnectFailed(..) | ConnResult::Hung => Some(Cause::Service),
    }
}

/// What a scenario measured.
#[derive(Debug, Clone)]
pub(crate) struct Figures {
    pub(crate) name: &'static str,
    pub(crate) connections: usize,
    pub(crate) ok: usize,
    pub(crate) failed_service: usize,
    pub(crate) failed_target: usize,
    pub(crate) failed_dead_proxy: usize,
    /// The first few failures, for assertion messages.
    pub(crate) failures: Vec<String>,
    pub(crate) resolves: usize,
    /// Resolves by source: service, cache, stale, embedded, direct, error.
    pub(crate) by_source: [usize; 6],
    /// Of those, during the fault (from its start to its end).
    pub(crate) in_fault: [usize; 6],
    pub(crate) worst_wait: Duration,
    /// The longest `connect_websocket` spent resolving (two resolves when
    /// it retried through a fresh route).
    pub(crate) worst_in_connect_wait: Duration,
    /// Whether the scenario measures a recovery (its fault cut the client
    /// off the service, then ended).
    pub(crate) recovery_measured: bool,
    /// From the end of the fault to the first resolve the service answered.
    pub(crate) recovery: Option<Duration>,
    /// From the end of the fault to the first delegated route (the service
    /// or its fresh cache).
    pub(crate) recovery_delegated: Option<Duration>,
    pub(crate) feedback: feedback::Stats,
    /// Events dropped while the queue (the Resolver's and the client's
    /// inbox) was at most half full.
    pub(crate) drops_with_room: u64,
    /// The most events queued at one sample.
    pub(crate) max_queued: usize,
    pub(crate) shutdown: ShutdownReport,
    /// What the scenario adds (service requests, proxy state, ...).
    pub(crate) extra: String,
}

fn source_index(source: &Result<Source, String>) -> usize {
    match source {
        Ok(Source::Service) => 0,
        Ok(Source::Cache) => 1,
        Ok(Source::Stale) => 2,
        Ok(Source::Embedded) => 3,
        Ok(Source::Direct) => 4,
        Err(_) => 5,
    }
}

impl Figures {
    /// Sums `record` up. `fault` is (start, end) of the fault the scenario
    /// injected, `recover_from` when the service could answer again (the
    /// fault's end, for a fault that ends); `dead_proxy` the `host:port` of
    /// a proxy it killed.
    pub(crate) fn new(
        name: &'static str,
        record: &Record,
        fault: Option<(Instant, Instant)>,
        recover_from: Option<Instant>,
        dead_proxy: Option<&str>,
        feedback: feedback::Stats,
        shutdown: ShutdownReport,
    ) -> Self {
        let mut figures = Figures {
            name,
            connections: record.conns.len(),
            ok: 0,
            failed_service: 0,
            failed_target: 0,
            failed_dead_proxy: 0,
            failures: Vec::new(),
            resolves: record.resolves.len(),
            by_source: [0; 6],
            in_fault: [0; 6],
            worst_wait: Duration::ZERO,
            worst_in_connect_wait: Duration::ZERO,
            recovery_measured: recover_from.is_some(),
            recovery: None,
            recovery_delegated: None,
            feedback,
            drops_with_room: 0,
            max_queued: record.feedback.iter().map(|s| s.queued).max().unwrap_or(0),
            shutdown,
            extra: String::new(),
        };
        for c in &record.conns {
            match cause(c, dead_proxy) {
                None => figures.ok += 1,
                Some(cause) => {
                    match cause {
                        Cause::Target => figures.failed_target += 1,
                        Cause::DeadProxy => figures.failed_dead_proxy += 1,
                        Cause::Service => figures.failed_service += 1,
                    }
                    if figures.failures.len() < 5 {
                        let what = match &c.result {
                            ConnResult::Ok => "ok".to_owned(),
                            ConnResult::ConnectFailed(category, e) => {
                                format!("connect failed ({category:?}): {e}")
                            }
                            ConnResult::EchoFailed(e) => format!("echo failed: {e}"),
                            ConnResult::Hung => format!("no outcome within {CONNECT_HANG:?}"),
                        };
                        figures.failures.push(format!(
                            "{cause:?}: {what} [via {:?}, {:?}]",
                            c.proxy, c.source
                        ));
                    }
                }
            }
            if let Some(w) = c.resolve_wait {
                figures.worst_in_connect_wait = figures.worst_in_connect_wait.max(w);
            }
        }
        for r in &record.resolves {
            let i = source_index(&r.source);
            figures.by_source[i] += 1;
            if let Some((start, end)) = fault
                && r.done >= start
                && r.done <= end
            {
                figures.in_fault[i] += 1;
            }
            figures.worst_wait = figures.worst_wait.max(r.wait);
        }
        if let Some(end) = recover_from {
            let first = |f: &dyn Fn(&ResolveSample) -> bool| {
                record
                    .resolves
                    .iter()
                    .filter(|r| r.done >= end && f(r))
                    .map(|r| r.done - end)
                    .min()
            };
            figures.recovery = first(&|r| matches!(r.source, Ok(Source::Service)));
            figures.recovery_delegated =
                first(&|r| matches!(r.source, Ok(Source::Service | Source::Cache)));
        }
        for w in record.feedback.windows(2) {
            let (a, b) = (w[0], w[1]);
            if b.dropped > a.dropped && a.queued.max(b.queued) <= QUEUE_CAPACITY / 2 {
                figures.drops_with_room += b.dropped - a.dropped;
            }
        }
        figures
    }

    fn recovery_text(&self, d: Option<Duration>) -> String {
        match (self.recovery_measured, d) {
            (false, _) => "n/a".to_owned(),
            (true, None) => "none".to_owned(),
            (true, Some(d)) => ms(d),
        }
    }

    /// Fallbacks during the fault.
    pub(crate) fn fallbacks_in_fault(&self) -> usize {
        self.in_fault[2] + self.in_fault[3] + self.in_fault[4]
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.by_source;
        let q = &self.in_fault;
        let fb = &self.feedback;
        write!(
            f,
            "[{}] connections {} (ok {}; failed: service {}, target {}, dead proxy {}) | \
             resolves {} (service {}, cache {}, stale {}, embedded {}, direct {}, error {}; \
             during the fault: service {}, cache {}, stale {}, embedded {}, direct {}, error {}) \
             worst wait {}, worst in-connect wait {} | recovery: service {}, delegated {} | \
             feedback reported {} sent {} queued {} dropped {} (with room {}) rejected {} \
             drained {} conserved {}, most queued {}; shutdown delivered {} undelivered {}",
            self.name,
            self.connections,
            self.ok,
            self.failed_service,
            self.failed_target,
            self.failed_dead_proxy,
            self.resolves,
            s[0],
            s[1],
            s[2],
            s[3],
            s[4],
            s[5],
            q[0],
            q[1],
            q[2],
            q[3],
            q[4],
            q[5],
            ms(self.worst_wait),
            ms(self.worst_in_connect_wait),
            self.recovery_text(self.recovery),
            self.recovery_text(self.recovery_delegated),
            fb.reported,
            fb.sent,
            fb.queued,
            fb.dropped,
            self.drops_with_room,
            fb.rejected,
            fb.drained,
            fb.is_conserved(),
            self.max_queued,
            self.shutdown.delivered,
            self.shutdown.undelivered,
        )?;
        if !self.extra.is_empty() {
            write!(f, " | {}", self.extra)?;
        }
        if !self.failures.is_empty() {
            write!(f, " | first failures: {}", self.failures.join("; "))?;
        }
        Ok(())
    }
}
