//! The harness of the fault suite: the constants of a scenario, the log
//! and metrics capture (one subscriber and one recorder for the whole test
//! binary), the rig (proxies, exchange, configuration directory), the
//! client side under load, and the checks every scenario makes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use proxy_delegate_core::resolver::{Route, Source};
use proxy_delegate_tokio::{InjectedWebSocket, ProxyInjector, ProxyServiceClient};
use tokio::time::Instant;

use crate::load::{Figures, Load, ResolveSample};
use crate::rig::{self, BREAKER_OPEN, Endpoints, Proxies, REQUEST_TIMEOUT, RESOLVE_DEADLINE};
use crate::targets::{self, Target};
use proxy_delegate_test_support::ServeProcess;

/// How long a fault lasts.
pub(crate) const FAULT: Duration = Duration::from_secs(3);
/// Steady load before the fault.
pub(crate) const WARM_UP: Duration = Duration::from_millis(1500);
/// Steady load after recovery, before the figures are taken.
pub(crate) const TAIL: Duration = Duration::from_secs(1);
/// What a resolve may take beyond its deadline on a small, busy machine.
pub(crate) const WAIT_SLACK: Duration = Duration::from_millis(250);
/// What recovery may take beyond one breaker open duration and one probe.
pub(crate) const RECOVERY_SLACK: Duration = Duration::from_secs(1);
/// The bound of `shutdown`.
pub(crate) const SHUTDOWN_BOUND: Duration = Duration::from_secs(5);

/// One breaker open duration, one probe (a call, at most the request
/// timeout), and the slack.
pub(crate) fn recovery_bound() -> Duration {
    BREAKER_OPEN + REQUEST_TIMEOUT + RECOVERY_SLACK
}

// ------------------------------------------------------------ logs

/// What the client logged at WARN and above, for the whole test binary
/// (scenarios run in parallel: each looks for its own endpoint).
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs (once per test binary) the WARN subscriber writing to [`LOG`]
/// and a metrics recorder; returns the recorder's snapshotter.
pub(crate) fn observe() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .try_init()
            .expect("install the tracing subscriber");
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("install the metrics recorder");
        snapshotter
    })
}

/// Every counter of the client so far, by name and labels: a snapshot of
/// the debugging recorder takes (and zeroes) the counts, and scenarios run
/// in parallel, so each snapshot is added here.
static COUNTERS: Mutex<BTreeMap<SeriesKey, u64>> = Mutex::new(BTreeMap::new());

/// A counter's name and its labels (name, value).
type SeriesKey = (String, Vec<(String, String)>);

/// The client's counter `name`, summed over the series whose labels
/// satisfy `select` (label name, value).
pub(crate) fn client_counter(name: &str, select: impl Fn(&str, &str) -> bool) -> u64 {
    let mut counters = COUNTERS.lock().unwrap_or_else(|p| p.into_inner());
    for (key, .., value) in observe().snapshot().into_vec() {
        if let DebugValue::Counter(n) = value {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            *counters.entry((key.name().to_owned(), labels)).or_default() += n;
        }
    }
    counters
        .iter()
        .filter(|((n, labels), _)| n == name && labels.iter().all(|(k, v)| select(k, v)))
        .map(|(_, n)| *n)
        .sum()
}

pub(crate) fn log_lines_with(needles: &[&str]) -> Vec<String> {
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|p| p.into_inner()))
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_owned)
        .collect()
}

// ------------------------------------------------------------ the harness

/// The things of one scenario that are not the service: the proxies, the
/// exchange, a directory for configuration files.
pub(crate) struct Rig {
    pub(crate) proxies: Proxies,
    pub(crate) target: Target,
    dir: tempfile::TempDir,
}

impl Rig {
    pub(crate) async fn start() -> Self {
        observe();
        Self {
            proxies: Proxies::start().await,
            target: targets::ws_echo(None).await,
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// A service configuration file `<name>.toml` with the usual clients
    /// and the inventory, ids prefixed with `prefix`.
    pub(crate) fn service_config(&self, name: &str, prefix: &str) -> PathBuf {
        rig::service_config(self.dir.path(), name, &self.proxies, prefix)
    }

    /// The client (with the scenario's timings), its injector, and the load,
    /// against `endpoints`.
    pub(crate) fn client(&self, endpoints: Endpoints) -> Harness {
        let embedded = self.proxies.embedded_url();
        let client = rig::build_client(rig::client_settings(&endpoints, &embedded));
        self.harness(client, &endpoints)
    }

    /// The injector and the load over a client built elsewhere (the SRV
    /// scenario builds its own, as an application does).
    pub(crate) fn harness(&self, client: ProxyServiceClient, endpoints: &Endpoints) -> Harness {
        let embedded = self.proxies.embedded_url();
        let injector = rig::injector(rig::client_settings(endpoints, &embedded), client.clone());
        let load = Load::start(&client, &injector, &self.target.url("/ws"));
        Harness {
            client,
            injector,
            load,
        }
    }
}

/// The client side of a scenario, under load.
pub(crate) struct Harness {
    pub(crate) client: ProxyServiceClient,
    pub(crate) injector: ProxyInjector,
    pub(crate) load: Load,
}

pub(crate) fn is_service(r: &ResolveSample) -> bool {
    matches!(r.source, Ok(Source::Service))
}

impl Harness {
    /// Waits for the service's first answer (at most 20 s), then runs the
    /// load for [`WARM_UP`].
    pub(crate) async fn warm_up(&self) {
        let t0 = Instant::now();
        self.load
            .wait_for_resolve(
                t0 - Duration::from_secs(60),
                Duration::from_secs(20),
                is_service,
            )
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no answer of the service within 20 s of starting: {:?}",
                    self.client.stats()
                )
            });
        tokio::time::sleep(WARM_UP).await;
    }

    /// Waits until the service answers a resolve that ends after `since`
    /// (at most `within`), then runs the load for [`TAIL`].
    pub(crate) async fn recover(&self, since: Instant, within: Duration) {
        let _ = self.load.wait_for_resolve(since, within, is_service).await;
        tokio::time::sleep(TAIL).await;
    }

    /// Stops the load, shuts the client down (delivering its feedback),
    /// and sums everything up.
    pub(crate) async fn finish(
        self,
        name: &'static str,
        fault: Option<(Instant, Instant)>,
        recover_from: Option<Instant>,
        dead_proxy: Option<&str>,
    ) -> Figures {
        let record = self.load.stop().await;
        let shutdown = self.client.shutdown(SHUTDOWN_BOUND).await;
        let feedback = self.client.stats().1;
        Figures::new(
            name,
            &record,
            fault,
            recover_from,
            dead_proxy,
            feedback,
            shutdown,
        )
    }
}

/// What a scenario expects besides the checks every scenario makes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    /// The fault cut the client off the service: fallbacks during it, and a
    /// recovery within `recovery` after it ends.
    pub(crate) recovery: Option<Duration>,
}

/// The checks of every scenario; the figures line is every message.
pub(crate) fn check(f: &Figures, expect: Expect) {
    eprintln!("{f}");
    assert_eq!(
        f.failed_service, 0,
        "connections failed because of the service's fault: {f}"
    );
    assert!(f.connections > 0 && f.ok > 0, "the load ran: {f}");
    let limit = RESOLVE_DEADLINE + WAIT_SLACK;
    assert!(
        f.worst_wait <= limit,
        "a resolve waited {:?}, over its deadline {RESOLVE_DEADLINE:?} + {WAIT_SLACK:?}: {f}",
        f.worst_wait
    );
    assert_eq!(
        f.by_source[5], 0,
        "resolves ended in an error (the fallback policy is embedded_fallback): {f}"
    );
    if let Some(bound) = expect.recovery {
        assert!(
            f.fallbacks_in_fault() > 0,
            "the fault cut the client off the service (fallbacks during it): {f}"
        );
        let recovery = f
            .recovery
            .unwrap_or_else(|| panic!("no answer of the service after the fault: {f}"));
        assert!(
            recovery <= bound,
            "the service answered again {recovery:?} after the fault ended, over {bound:?}: {f}"
        );
    }
    assert!(
        f.feedback.is_conserved(),
        "feedback not conserved: {:?}: {f}",
        f.feedback
    );
    assert_eq!(
        f.drops_with_room, 0,
        "feedback dropped while the queue had room: {f}"
    );
    assert_eq!(
        f.shutdown.undelivered, 0,
        "feedback not delivered by shutdown although the service is up: {f}"
    );
}

/// The service got at least what the client counts as sent (more when an
/// answer was lost and the batch sent again).
pub(crate) async fn check_received(f: &Figures, service: &ServeProcess) -> f64 {
    let received = rig::service_feedback_received(&service.url()).await;
    assert!(
        received >= f.feedback.sent as f64,
        "the service received {received} feedback events, the client counts {} sent: {f}",
        f.feedback.sent
    );
    received
}

// ------------------------------------------------------------ sessions

/// One long-lived WebSocket session: connect, then echo on demand.
pub(crate) struct Session {
    pub(crate) exchange: String,
    pub(crate) ws: InjectedWebSocket,
}

/// `host:port` of a route's proxy.
pub(crate) fn proxy_addr(route: &Route) -> Option<String> {
    route
        .proxy_url
        .as_ref()
        .map(|u| format!("{}:{}", u.host(), u.port()))
}

/// Sends one message on `ws` and waits (at most 3 s) for its echo.
pub(crate) async fn echo(ws: &mut InjectedWebSocket, text: &str) -> Result<(), String> {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let round = async {
        ws.send(Message::text(text.to_owned()))
            .await
            .map_err(|e| format!("send: {e}"))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == text => return Ok(()),
                Some(Ok(Message::Text(t))) => return Err(format!("echoed {:?}", t.as_str())),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("read: {e}")),
                None => return Err("closed".to_owned()),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(3), round)
        .await
        .unwrap_or_else(|_| Err("no echo within 3 s".to_owned()))
}
