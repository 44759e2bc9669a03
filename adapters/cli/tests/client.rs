//! The client (`proxy-delegate-tokio`'s `ProxyServiceClient`, built with
//! `from_settings` as an application does) against the REAL service binary,
//! `proxy-delegate serve`, on loopback: delegation and caching, feedback,
//! the service killed and restarted on the same port, frozen with SIGSTOP,
//! a wrong token, 5xx and malformed answers (from a tiny fake service), no
//! secret in logs, metrics or errors, and shutdown.
//!
//! Every server process is owned by a guard that kills it on drop; every
//! wait is a bounded poll. Timing bounds are generous ("the resolve deadline
//! plus 1.5 s"): the machine running them may be small and busy.
//!
//! One tracing subscriber (at TRACE, for every crate) and one metrics
//! recorder are installed for the whole test binary; tests run in parallel,
//! so what a test looks for in the shared log names its own endpoint (a
//! port of its own).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics_util::debugging::{DebuggingRecorder, Snapshotter};
use proxy_delegate_config::{Loader, Settings};
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ExchangeId, FeedbackEvent, ProxyFeedback, Timestamp,
};
use proxy_delegate_core::resolver::{Route, Source};
use proxy_delegate_tokio::{ClientError, ProxyServiceClient};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use common::{any_port, http_client, start_service};
use proxy_delegate_test_support::metric_sum;

/// The client's token, known to the service.
const TOKEN: &str = "tok-good-e2e-5b1f0c77";
/// A token the service does not know.
const WRONG_TOKEN: &str = "tok-wrong-e2e-93ad27e1";
/// The embedded (fallback) proxy, with a password.
const EMBEDDED_PROXY: &str = "http://user:pw-secret-123@127.0.0.1:3128";
const EMBEDDED_PASSWORD: &str = "pw-secret-123";
/// A password of a proxy in the service's inventory (the service hands it to
/// the client for its connector; it must never be logged).
const INVENTORY_PASSWORD: &str = "svc-pw-secret-456";
/// Every secret of these tests.
const SECRETS: [&str; 4] = [TOKEN, WRONG_TOKEN, EMBEDDED_PASSWORD, INVENTORY_PASSWORD];

/// The service's inventory: (id, URL without credentials).
const INVENTORY: [(&str, &str); 2] = [
    ("px-1", "http://192.0.2.10:3128"),
    ("px-2", "socks5://192.0.2.11:1080"),
];

/// The resolve deadline of the fallback tests (`resolve_deadline_ms`).
const DEADLINE_MS: u32 = 300;
/// What a resolve may take beyond its deadline on a busy machine.
const MARGIN: Duration = Duration::from_millis(1500);
/// How long a recovery (a restart) may take to show as `service` again.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a recovery may take when the endpoint's breaker opened: its
/// open duration (30 s by default) plus room for the half-open probe.
const BREAKER_RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);

const REQUEST_PATH: &str = "/api/v1/proxy/request";
const FEEDBACK_PATH: &str = "/api/v1/proxy/feedback";

// ------------------------------------------------------------ observation

/// Everything the tracing subscriber wrote, for the whole test binary.
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

/// Installs (once per test binary) the TRACE subscriber writing to [`LOG`]
/// and the debugging metrics recorder; returns the recorder's snapshotter.
/// The client's driver runs on spawned tasks, so both are global.
fn observe() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
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

fn log_text() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// The first captured log line that contains every one of `needles`,
/// waiting at most 10 s for it.
async fn log_line_with(needles: &[&str]) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = log_text()
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned);
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Panics if `text` holds any secret of these tests; `what` says where it
/// came from.
fn assert_secret_free(what: &str, text: &str) {
    for secret in SECRETS {
        if let Some(line) = text.lines().find(|l| l.contains(secret)) {
            panic!("{what} holds the secret {secret:?}: {line}");
        }
    }
}

// ------------------------------------------------------------ the service

/// A service configuration: one client (`feed`) with `token`, the
/// [`INVENTORY`] (the first proxy with a password).
fn write_service_config(dir: &Path, token: &str) -> PathBuf {
    let path = dir.join("service.toml");
    let text = format!(
        "[[clients]]\nname = \"feed\"\nbearer_tokens = [\"{token}\"]\n\n\
         [[proxies]]\nid = \"{}\"\nurl = \"http://svc-user:{INVENTORY_PASSWORD}@192.0.2.10:3128\"\n\n\
         [[proxies]]\nid = \"{}\"\nurl = \"{}\"\n",
        INVENTORY[0].0, INVENTORY[1].0, INVENTORY[1].1
    );
    std::fs::write(&path, text).expect("write the service configuration");
    path
}

/// The service's `/metrics` (open without credentials by default).
async fn service_metrics(base: &str) -> String {
    let r = http_client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    r.text().await.expect("the metrics text")
}

// ------------------------------------------------------------ the client

/// The client's settings: the embedded default proxy (with a password) for
/// both connection types, and the service at `endpoint` with `token`.
fn client_settings(endpoint: &str, token: &str, deadline_ms: u32) -> Box<Settings> {
    let yaml = format!(
        "proxy:\n\
         \x20 enabled: true\n\
         \x20 default:\n\
         \x20   http: \"{EMBEDDED_PROXY}\"\n\
         \x20   websocket: \"{EMBEDDED_PROXY}\"\n\
         \x20 external_service:\n\
         \x20   enabled: true\n\
         \x20   endpoints: [\"{endpoint}\"]\n\
         \x20   auth_method: bearer_token\n\
         \x20   auth_credentials:\n\
         \x20     token: \"{token}\"\n\
         \x20   timeout_seconds: 2\n\
         \x20   resolve_deadline_ms: {deadline_ms}\n"
    );
    Loader::new()
        .yaml_str("client.yaml", yaml)
        .load()
        .expect("the client settings load")
        .settings
}

async fn client_for(endpoint: &str, token: &str, deadline_ms: u32) -> ProxyServiceClient {
    let settings = client_settings(endpoint, token, deadline_ms);
    from_settings(settings)
        .await
        .unwrap_or_else(|e| panic!("the client builds: {e}"))
}

/// Stack of the thread that runs `from_settings` (see below).
/// `ProxyServiceClient::from_boxed_settings(settings, "e2e-client")`, on
/// the test's own thread: the client builds on a 2 MiB stack
/// (`from_settings_fits_the_2_mib_stack_of_a_test_thread` checks that in a
/// child process, so a regression fails that test with a clear message).
async fn from_settings(settings: Box<Settings>) -> Result<ProxyServiceClient, ClientError> {
    ProxyServiceClient::from_boxed_settings(settings, "e2e-client").await
}

/// `get_proxy` for `exchange` (websocket): the route (never an error in
/// these tests) and how long it took.
async fn get(client: &ProxyServiceClient, exchange: &str) -> (Route, Duration) {
    let request = client.request(
        ExchangeId::new(exchange).expect("an exchange id"),
        ConnectionType::Websocket,
    );
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), client.get_proxy(&request))
        .await
        .unwrap_or_else(|_| panic!("get_proxy({exchange}) gave no answer within 30 s"));
    let route = result.unwrap_or_else(|e| panic!("get_proxy({exchange}) is an error: {e}"));
    (route, started.elapsed())
}

/// A route from the service: one of the inventory's proxies, with its id.
fn assert_from_inventory(route: &Route) {
    let url = route
        .proxy_url
        .as_ref()
        .expect("the service gave a proxy")
        .without_credentials()
        .to_string();
    let id = route.proxy_id.as_ref().expect("the service's proxy id");
    assert!(
        INVENTORY
            .iter()
            .any(|(i, u)| *i == id.as_str() && *u == url),
        "{route:?} is not in the inventory {INVENTORY:?}"
    );
}

/// The embedded fallback: its proxy, its password for the connector.
fn assert_embedded(route: &Route, what: &str) {
    assert_eq!(route.source, Source::Embedded, "{what}: {route:?}");
    let url = route.proxy_url.as_ref().expect("the embedded proxy");
    assert_eq!(
        url.expose_credentials().to_string(),
        EMBEDDED_PROXY,
        "{what}"
    );
    assert_eq!(route.proxy_id, None, "{what}");
}

/// Asks for new keys (`<prefix>-0`, `<prefix>-1`, ...) until the service
/// answers one (source `service`), within `within`: the route and the key.
async fn until_service(
    client: &ProxyServiceClient,
    prefix: &str,
    within: Duration,
) -> (Route, String) {
    let deadline = Instant::now() + within;
    for i in 0.. {
        let key = format!("{prefix}-{i}");
        let (route, _) = get(client, &key).await;
        if route.source == Source::Service {
            return (route, key);
        }
        assert!(
            Instant::now() < deadline,
            "no answer of the service within {within:?} (last: {route:?}, stats {:?})",
            client.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!()
}

fn feedback_for(route: &Route, exchange: &str) -> ProxyFeedback {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis();
    ProxyFeedback {
        proxy_id: route.proxy_id.clone(),
        proxy_url: route.proxy_url.as_ref().map(|u| u.without_credentials()),
        exchange_id: ExchangeId::new(exchange).expect("an exchange id"),
        connection_type: ConnectionType::Websocket,
        event: FeedbackEvent::Success,
        success: true,
        latency_ms: Some(42),
        error_category: None,
        error_details: None,
        timestamp: Timestamp::from_unix_millis(i64::try_from(now_ms).expect("ms fit"))
            .expect("a timestamp"),
        client_id: ClientId::new("e2e-client").expect("a client id"),
    }
}

/// Waits (at most 15 s) until the client's feedback queue has sent `n`
/// events.
async fn until_sent(client: &ProxyServiceClient, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while client.stats().1.sent < n {
        assert!(
            Instant::now() < deadline,
            "feedback not sent within 15 s: {:?}",
            client.stats().1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every new key answers with the embedded fallback, each by the deadline
/// (plus the margin), never an error.
async fn assert_falls_back(client: &ProxyServiceClient, prefix: &str, keys: usize, why: &str) {
    let bound = Duration::from_millis(DEADLINE_MS.into()) + MARGIN;
    for i in 0..keys {
        let key = format!("{prefix}-{i}");
        let (route, took) = get(client, &key).await;
        assert!(
            took <= bound,
            "{why}: get_proxy({key}) took {took:?}, over the deadline + margin {bound:?}"
        );
        assert_embedded(&route, &format!("{why}: {key}"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ------------------------------------------------------------ scenarios

/// Case 1: the service answers, the cache answers next, feedback arrives and
/// the service counts it.
async fn delegation_scenario() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_service_config(dir.path(), TOKEN);
    let service = start_service(&config, any_port()).await;
    // A long deadline: this case is about delegation, and the first answer
    // of a fresh process on a busy machine may well take over 300 ms.
    let client = client_for(&service.url(), TOKEN, 5000).await;

    let (first, _) = get(&client, "binance").await;
    assert_eq!(first.source, Source::Service, "{first:?}");
    assert_from_inventory(&first);
    // The connector gets the proxy's credentials; only logs must not.
    if first.proxy_id.as_ref().map(|p| p.as_str()) == Some("px-1") {
        let url = first.proxy_url.as_ref().expect("a proxy");
        assert_eq!(
            url.password().map(|p| p.expose()),
            Some(INVENTORY_PASSWORD),
            "the inventory's credentials reach the connector"
        );
    }
    assert_secret_free("a route's Debug", &format!("{first:?}"));

    let (second, _) = get(&client, "binance").await;
    assert_eq!(second.source, Source::Cache, "{second:?}");
    assert_eq!(second.proxy_url, first.proxy_url);
    assert_eq!(second.proxy_id, first.proxy_id);
    let (stats, _) = client.stats();
    assert_eq!(stats.resolved[0], 1, "one answer of the service: {stats:?}");
    assert_eq!(stats.resolved[1], 1, "one cache hit: {stats:?}");

    client.report_feedback(feedback_for(&first, "binance"));
    until_sent(&client, 1).await;
    let fb = client.stats().1;
    assert_eq!((fb.sent, fb.dropped, fb.rejected), (1, 0, 0), "{fb:?}");

    let metrics = service_metrics(&service.url()).await;
    let asked = metric_sum(
        &metrics,
        "proxy_delegate_http_requests_total",
        &[
            ("route", REQUEST_PATH),
            ("status", "200"),
            ("client", "feed"),
        ],
    );
    assert_eq!(
        asked, 1.0,
        "one proxy request (the cache hit asked nothing)"
    );
    let posted = metric_sum(
        &metrics,
        "proxy_delegate_http_requests_total",
        &[
            ("route", FEEDBACK_PATH),
            ("status", "200"),
            ("client", "feed"),
        ],
    );
    assert!(posted >= 1.0, "the feedback POST arrived:\n{metrics}");
    let applied = metric_sum(
        &metrics,
        "proxy_delegate_feedback_total",
        &[("event", "success"), ("client", "feed")],
    );
    assert_eq!(applied, 1.0, "the service applied the event:\n{metrics}");
    assert_secret_free("the service's log", &service.stderr_text());
}

/// Case 4: a wrong token: fallbacks, few requests, one clear log line.
async fn wrong_token_scenario() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_service_config(dir.path(), TOKEN);
    let service = start_service(&config, any_port()).await;
    let url = service.url();
    let client = client_for(&url, WRONG_TOKEN, DEADLINE_MS).await;

    // 20 resolves of one key over about 2 s.
    let bound = Duration::from_millis(DEADLINE_MS.into()) + MARGIN;
    for i in 0..20 {
        let (route, took) = get(&client, "kraken").await;
        assert!(took <= bound, "call {i} took {took:?}");
        assert_embedded(&route, &format!("wrong token, call {i}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let metrics = service_metrics(&url).await;
    let refused = metric_sum(
        &metrics,
        "proxy_delegate_http_requests_total",
        &[("route", REQUEST_PATH), ("status", "401")],
    );
    let all = metric_sum(
        &metrics,
        "proxy_delegate_http_requests_total",
        &[("route", REQUEST_PATH)],
    );
    assert!(refused >= 1.0, "the service was asked:\n{metrics}");
    assert_eq!(all, refused, "every request refused:\n{metrics}");
    // No retry storm: 20 resolves, a handful of requests at most.
    assert!(
        refused <= 6.0,
        "{refused} proxy requests for 20 resolves of one key with a refused token \
         (stats {:?})",
        client.stats()
    );

    // The operator is told what to check, and the token is not shown.
    let line = log_line_with(&["HTTP 401", &url])
        .await
        .unwrap_or_else(|| panic!("no log line about the 401 from {url}"));
    assert!(
        line.contains(&format!(
            "check the bearer token configured for endpoint {url}"
        )) && line.contains("external_service.auth_credentials.token"),
        "{line}"
    );
    assert!(line.contains("WARN"), "an operator must act: {line}");
    assert_secret_free("the 401 log line", &line);
    assert_secret_free("the service's log", &service.stderr_text());
}

// ------------------------------------------------------------ the cases

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegation_answers_from_the_service_then_the_cache_and_delivers_feedback() {
    observe();
    delegation_scenario().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_service_gives_fallbacks_in_time_and_is_used_again_after_restart() {
    observe();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_service_config(dir.path(), TOKEN);
    let mut service = start_service(&config, any_port()).await;
    let client = client_for(&service.url(), TOKEN, DEADLINE_MS).await;
    until_service(&client, "warm", RECOVERY_TIMEOUT).await;

    let addr = service.addr();
    service.kill();
    assert_falls_back(&client, "down", 12, "service killed").await;

    // The same port again: the client's endpoint is unchanged.
    let restarted = start_service(&config, addr).await;
    assert_eq!(restarted.addr(), addr);
    let (route, _) = until_service(&client, "up", RECOVERY_TIMEOUT).await;
    assert_from_inventory(&route);
    drop(service);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_service_gives_fallbacks_by_the_deadline_and_is_used_again_after_sigcont() {
    observe();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_service_config(dir.path(), TOKEN);
    let service = start_service(&config, any_port()).await;
    let client = client_for(&service.url(), TOKEN, DEADLINE_MS).await;
    until_service(&client, "warm", RECOVERY_TIMEOUT).await;

    // Stopped: the kernel still accepts connections; nothing answers. (On
    // a failure the guard kills the stopped process.)
    service.freeze();
    assert_falls_back(&client, "frozen", 12, "service stopped").await;
    service.signal("CONT");
    // The requests that hung during the freeze count as failures: the
    // endpoint's breaker opened (failure_threshold 5, open_duration 30 s, not
    // settable from the settings), so the service is used again only once
    // its half-open probe succeeds, about 30 s after the freeze began, even
    // though health checks find it up within seconds of SIGCONT.
    let (route, _) = until_service(&client, "thawed", BREAKER_RECOVERY_TIMEOUT).await;
    assert_from_inventory(&route);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_falls_back_without_a_retry_storm_and_says_what_to_check() {
    observe();
    wrong_token_scenario().await;
}

/// What the fake service answers to `POST /api/v1/proxy/request`.
#[derive(Clone, Copy, Debug)]
enum Canned {
    /// `503 Service Unavailable`.
    Unavailable,
    /// `200` with `{"proxy_url": 12}`.
    Malformed,
}

/// What the fake service has been asked.
#[derive(Debug, Default)]
struct Hits {
    /// `POST /api/v1/proxy/request`.
    requests: AtomicUsize,
    /// `GET /health`.
    health: AtomicUsize,
    /// Every request, whatever its route.
    all: AtomicUsize,
}

/// A tiny HTTP/1.1 service on loopback: `GET /health` 200 (503 unless
/// `healthy`), feedback 200, proxy requests answered as `canned`; every
/// request counted.
async fn fake_service(canned: Canned, healthy: bool) -> (String, Arc<Hits>) {
    let listener = TcpListener::bind(any_port()).await.expect("bind loopback");
    let addr = listener.local_addr().expect("its address");
    let hits = Arc::new(Hits::default());
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let _ = fake_connection(stream, canned, healthy, &counter).await;
            });
        }
    });
    (format!("http://{addr}"), hits)
}

async fn fake_connection(
    mut stream: TcpStream,
    canned: Canned,
    healthy: bool,
    hits: &Hits,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..head_end + length);
        let request_line = head.lines().next().unwrap_or_default();
        hits.all.fetch_add(1, Ordering::SeqCst);
        let (status, body) = if request_line.starts_with(&format!("POST {REQUEST_PATH} ")) {
            hits.requests.fetch_add(1, Ordering::SeqCst);
            match canned {
                Canned::Unavailable => (
                    "503 Service Unavailable",
                    r#"{"error":{"code":"unavailable","message":"down"}}"#,
                ),
                Canned::Malformed => ("200 OK", r#"{"proxy_url": 12}"#),
            }
        } else if request_line.starts_with("GET /health ") {
            hits.health.fetch_add(1, Ordering::SeqCst);
            if healthy {
                ("200 OK", r#"{"status":"ok"}"#)
            } else {
                ("503 Service Unavailable", r#"{"status":"draining"}"#)
            }
        } else if request_line.starts_with(&format!("POST {FEEDBACK_PATH} ")) {
            (
                "200 OK",
                r#"{"received":0,"applied":0,"unknown_proxy":0,"no_proxy":0,"cool_down_dropped":0}"#,
            )
        } else {
            (
                "404 Not Found",
                r#"{"error":{"code":"not_found","message":"no"}}"#,
            )
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).await?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_malformed_answers_fall_back_by_the_deadline() {
    observe();
    for canned in [Canned::Unavailable, Canned::Malformed] {
        let (url, hits) = fake_service(canned, true).await;
        let health = http_client()
            .get(format!("{url}/health"))
            .send()
            .await
            .expect("GET /health");
        assert_eq!(health.status(), reqwest::StatusCode::OK);

        let client = client_for(&url, TOKEN, DEADLINE_MS).await;
        assert_falls_back(
            &client,
            &format!("{canned:?}").to_lowercase(),
            5,
            &format!("{canned:?}"),
        )
        .await;
        assert!(
            hits.requests.load(Ordering::SeqCst) >= 1,
            "{canned:?}: the fake service was asked"
        );
        let (stats, _) = client.stats();
        assert_eq!(
            stats.resolved[0], 0,
            "{canned:?}: nothing from the service: {stats:?}"
        );
        assert_eq!(stats.resolved[3], 5, "{canned:?}: five embedded: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_metrics_or_errors() {
    let snapshotter = observe();
    delegation_scenario().await;
    wrong_token_scenario().await;

    // A token that cannot be sent (a control character; the settings take
    // any text as a secret): the client refuses it, naming the key, never
    // showing the token.
    let yaml = format!(
        "proxy:\n  enabled: true\n  external_service:\n    enabled: true\n    \
         endpoints: [\"http://127.0.0.1:9\"]\n    auth_method: bearer_token\n    \
         auth_credentials:\n      token: \"{TOKEN}\\x01\"\n"
    );
    let loaded = Loader::new()
        .yaml_str("bad.yaml", yaml)
        .load()
        .expect("a secret may hold any text");
    let e = from_settings(loaded.settings)
        .await
        .expect_err("a token with a control character cannot be sent");
    let text = e.to_string();
    assert!(
        text.contains("external_service.auth_credentials.token"),
        "names the key: {text}"
    );
    assert_secret_free("the client's build error", &text);
    assert_secret_free("the client's build error (Debug)", &format!("{e:?}"));

    // The settings and the client, as Debug, show no secret either.
    let settings = client_settings("http://127.0.0.1:9", TOKEN, DEADLINE_MS);
    assert_secret_free("the settings' Debug", &format!("{settings:?}"));
    let client = from_settings(settings).await.expect("the client builds");
    assert_secret_free("the client's Debug", &format!("{client:?}"));

    // Every log line so far (of every test in this binary, at TRACE).
    let log = log_text();
    assert!(
        log.contains("HTTP 401"),
        "the subscriber captured the client's logs"
    );
    assert_secret_free("the captured log", &log);

    // Every metric key and label.
    let snapshot = snapshotter.snapshot().into_vec();
    assert!(
        snapshot
            .iter()
            .any(|(k, ..)| k.key().name() == "proxy_delegate_service_requests_total"),
        "the recorder saw the client's metrics"
    );
    for (key, ..) in snapshot {
        let key = key.key();
        assert_secret_free("a metric name", key.name());
        for label in key.labels() {
            assert_secret_free(
                &format!("metric {} label {}", key.name(), label.key()),
                label.value(),
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_what_it_could_not_deliver() {
    observe();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_service_config(dir.path(), TOKEN);

    // The service killed: the queued events are not delivered.
    let mut service = start_service(&config, any_port()).await;
    let client = client_for(&service.url(), TOKEN, DEADLINE_MS).await;
    let (route, key) = until_service(&client, "warm", RECOVERY_TIMEOUT).await;
    service.kill();
    for _ in 0..3 {
        client.report_feedback(feedback_for(&route, &key));
    }
    let bound = Duration::from_millis(500);
    let started = Instant::now();
    let report = client.shutdown(bound).await;
    let took = started.elapsed();
    assert!(took <= bound + MARGIN, "shutdown took {took:?}");
    assert!(report.undelivered > 0, "{report:?}");
    assert_eq!(report.delivered, 0, "{report:?}");
    assert_eq!(report.undelivered, 3, "{report:?}");

    // The service up: everything is delivered.
    let service = start_service(&config, any_port()).await;
    let client = client_for(&service.url(), TOKEN, DEADLINE_MS).await;
    let (route, key) = until_service(&client, "warm", RECOVERY_TIMEOUT).await;
    for _ in 0..3 {
        client.report_feedback(feedback_for(&route, &key));
    }
    let bound = Duration::from_secs(5);
    let started = Instant::now();
    let report = client.shutdown(bound).await;
    let took = started.elapsed();
    assert!(took <= bound + MARGIN, "shutdown took {took:?}");
    assert_eq!(report.undelivered, 0, "{report:?}");
    assert_eq!(client.stats().1.sent, 3, "{:?}", client.stats().1);
    let metrics = service_metrics(&service.url()).await;
    let applied = metric_sum(
        &metrics,
        "proxy_delegate_feedback_total",
        &[("client", "feed")],
    );
    assert_eq!(
        applied, 3.0,
        "the service applied the three events:\n{metrics}"
    );
}

/// `from_settings` fits the 2 MiB stack that a `#[tokio::test]` body, a
/// tokio worker and a blocking-pool thread get by default (it did not: the
/// copy of the settings in `ProxyServiceClient::build` overflowed it in
/// debug builds; it still does when proxy-delegate-tokio and -core are built
/// without the workspace's `[profile.dev.package.*] opt-level = 2`, as a
/// downstream application's debug build does). Built where an application's
/// test would build it, in a child process, so that an overflow fails this
/// test only.
#[test]
fn from_settings_fits_the_2_mib_stack_of_a_test_thread() {
    const PROBE: &str = "PD_CLIENT_STACK_PROBE";
    const NAME: &str = "from_settings_fits_the_2_mib_stack_of_a_test_thread";
    if std::env::var_os(PROBE).is_some() {
        // The child: what `#[tokio::test]` does, on libtest's own thread.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let settings = client_settings("http://127.0.0.1:9", TOKEN, DEADLINE_MS);
            let client = ProxyServiceClient::from_settings(&settings, "e2e-client")
                .await
                .expect("the client builds");
            let (route, _) = get(&client, "binance").await;
            assert_ne!(route.source, Source::Service);
        });
        return;
    }
    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
        .env(PROBE, "1")
        .env_remove("RUST_MIN_STACK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run this test binary again");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the probe did not end within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().expect("the probe's output");
    assert!(
        status.success(),
        "ProxyServiceClient::from_settings on a 2 MiB stack: {status}\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Dropping every handle of a client stops its driver: no more health
/// checks or requests reach the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_client_stops_its_driver() {
    observe();
    // A service that is down (503 everywhere): a down endpoint is checked
    // every 2 s, so a driver that lives on shows quickly.
    let (url, hits) = fake_service(Canned::Unavailable, false).await;
    let client = client_for(&url, TOKEN, DEADLINE_MS).await;
    assert_falls_back(&client, "dropped", 2, "503 everywhere").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while hits.health.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the client never checked the endpoint's health"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    drop(client);
    // Whatever was in flight ends.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = hits.all.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = hits.all.load(Ordering::SeqCst);
    assert_eq!(
        after - before,
        0,
        "{} requests reached the service in the 6 s after the last handle of the client \
         was dropped (its driver still runs)",
        after - before
    );
}
