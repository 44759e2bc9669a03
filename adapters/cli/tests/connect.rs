//! `proxy-delegate connect`, the real binary, against real things on
//! loopback: microsocks and tinyproxy as child processes, a WebSocket echo
//! server and an HTTP server (plain or TLS with a test CA) in this process,
//! and the real `proxy-delegate serve` for delegation and feedback.
//!
//! The fixtures are the injector's own (adapters/tokio/tests/common/),
//! included as they are. The targets run on the test's tokio runtime; the
//! binary runs on a blocking thread, with a deadline, so a hang fails the
//! test instead of stalling it.

mod common;
#[path = "../../tokio/tests/common/proxies.rs"]
mod proxies;
#[path = "../../tokio/tests/common/targets.rs"]
mod targets;

use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::BIN;
use proxies::{Microsocks, Tinyproxy};
use proxy_delegate_test_support::ServeProcess;
use targets::{TestPki, http_target, ws_echo};

/// Credentials of the proxies (tinyproxy takes only `[-A-Za-z0-9._]`).
const USER: &str = "desk";
const PASS: &str = "Pw-connect.7781";
const WRONG_PASS: &str = "Wrong-pw.4410";
/// The client's token at the service.
const TOKEN: &str = "tok-connect-e2e-0c5d9a1f";
/// Every secret of these tests: none may be printed.
const SECRETS: [&str; 3] = [PASS, WRONG_PASS, TOKEN];

/// How long one run of the binary may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------ the binary

/// One finished run of the binary.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stdout and stderr, for assertion messages.
    fn both(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    fn assert_secret_free(&self) {
        for secret in SECRETS {
            assert!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "the output holds the secret {secret:?}:\n{}",
                self.both()
            );
        }
    }

    fn json(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "one JSON line:\n{}", self.both());
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}:\n{}", self.both()))
    }
}

/// Runs the binary with `args` on a clean environment (no
/// `CRYPTOFEED_PROXY_*`, no `RUST_LOG`), on a blocking thread, killing it
/// after [`RUN_TIMEOUT`].
async fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BIN)
            .env_clear()
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start proxy-delegate");
        let mut out = child.stdout.take().expect("stdout is piped");
        let mut err = child.stderr.take().expect("stderr is piped");
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("poll the child") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let run = Run {
            code: status.and_then(|s| s.code()),
            stdout: out.join().expect("the stdout reader"),
            stderr: err.join().expect("the stderr reader"),
        };
        assert!(
            status.is_some(),
            "proxy-delegate {args:?} did not exit within {RUN_TIMEOUT:?}:\n{}",
            run.both()
        );
        run
    })
    .await
    .expect("the thread running the binary")
}

/// `connect <url> --exchange binance --config <config> <extra...>`.
async fn connect(url: &str, config: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<OsString> = vec![
        "connect".into(),
        url.into(),
        "--exchange".into(),
        "binance".into(),
        "--config".into(),
        config.into(),
        "--timeout".into(),
        "10".into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    run(args).await
}

// ------------------------------------------------------------ files

fn dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("proxy-delegate-connect-")
        .tempdir()
        .expect("a temporary directory")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// A config.yaml giving binance's `connection_type` this proxy.
fn proxy_config(dir: &Path, connection_type: &str, proxy_url: &str) -> PathBuf {
    write(
        dir,
        "config.yaml",
        &format!(
            "proxy:\n  enabled: true\n  exchanges:\n    binance:\n      {connection_type}: \
             \"{proxy_url}\"\n"
        ),
    )
}

/// A proxy URL with [`USER`] and a password, as printed:
/// `scheme://desk:***@127.0.0.1:PORT`.
fn redacted(scheme: &str, port: u16) -> String {
    format!("{scheme}://{USER}:***@127.0.0.1:{port}")
}

/// The error line on stderr, asserting it is the first line and that at
/// most one `hint: ...` line follows it.
fn the_error_line(run: &Run) -> &str {
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        (1..=2).contains(&lines.len()),
        "one error line on stderr, and at most a hint:\n{}",
        run.both()
    );
    assert!(lines[0].starts_with("error: "), "{}", run.both());
    if let Some(hint) = lines.get(1) {
        assert!(hint.starts_with("hint: "), "{}", run.both());
    }
    lines[0]
}

// ------------------------------------------------------------ tests

/// A WebSocket through microsocks (`socks5h://`, username and password),
/// TLS to the target with the test CA: connected, the route printed with
/// the password as `***`, the socket closed cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_through_socks5h_with_credentials() {
    let pki = TestPki::new();
    let target = ws_echo(Some(&pki)).await;
    let proxy = Microsocks::start(Some((USER, PASS)));
    let dir = dir();
    let config = proxy_config(dir.path(), "websocket", &proxy.url("socks5h"));
    let ca = pki.ca_path();

    let url = target.url("/");
    let r = connect(&url, &config, &["--ca-file", ca.to_str().unwrap()]).await;
    assert_eq!(r.code, Some(0), "{}", r.both());
    r.assert_secret_free();
    let line = r.stdout.trim_end();
    let expected = format!(
        "binance websocket: connected to {url} through {} (source embedded) in ",
        redacted("socks5h", proxy.port())
    );
    assert!(line.starts_with(&expected), "{expected:?}\n{}", r.both());
    assert!(line.ends_with(" ms"), "{}", r.both());
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.both());
    assert_eq!(r.stderr, "", "{}", r.both());
    // The handshake reached the echo server, and the socket was closed.
    assert_eq!(target.upgraded(), 1);
    target.wait_closed(1).await;
    assert_eq!(target.open_now(), 0);

    // The same with --json.
    let r = connect(
        &url,
        &config,
        &["--ca-file", ca.to_str().unwrap(), "--json"],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.both());
    r.assert_secret_free();
    let v = r.json();
    assert_eq!(v["exchange"], "binance");
    assert_eq!(v["connection_type"], "websocket");
    assert_eq!(v["url"], url.as_str());
    assert_eq!(v["ok"], true);
    assert_eq!(v["source"], "embedded");
    assert_eq!(v["proxy_url"], redacted("socks5h", proxy.port()).as_str());
    assert!(v["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{v}");
    assert!(v.get("status").is_none(), "{v}");
    assert!(v.get("error").is_none(), "{v}");
    target.wait_closed(2).await;
}

/// An HTTPS GET through tinyproxy with BasicAuth (a CONNECT tunnel), the
/// target's certificate from the test CA given with --ca-file: status 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_get_through_tinyproxy_with_basic_auth() {
    let pki = TestPki::new();
    let target = http_target(Some(&pki)).await;
    let proxy = Tinyproxy::start(Some((USER, PASS)));
    let dir = dir();
    let config = proxy_config(dir.path(), "http", &proxy.url());
    let ca = pki.ca_path();

    let url = target.url("/");
    let r = connect(&url, &config, &["--ca-file", ca.to_str().unwrap()]).await;
    assert_eq!(r.code, Some(0), "{}", r.both());
    r.assert_secret_free();
    let line = r.stdout.trim_end();
    let expected = format!(
        "binance http: connected to {url} through {} (source embedded) in ",
        redacted("http", proxy.port())
    );
    assert!(line.starts_with(&expected), "{expected:?}\n{}", r.both());
    assert!(line.ends_with(" ms, status 200"), "{}", r.both());
    assert_eq!(target.paths(), ["/"]);
    // Through the proxy: it saw the CONNECT.
    let log = proxy.log_text();
    assert!(
        log.contains("CONNECT") && log.contains(&target.port().to_string()),
        "tinyproxy's log:\n{log}"
    );
}

/// `connect` for binance through `proxy_url` (as its `connection_type`
/// proxy) to `url`, which must fail: exit 1, nothing on stdout, one error
/// line, no secret; the line.
async fn connect_fails(
    dir: &Path,
    connection_type: &str,
    proxy_url: &str,
    url: &str,
    extra: &[&str],
) -> String {
    let config = proxy_config(dir, connection_type, proxy_url);
    let r = connect(url, &config, extra).await;
    assert_eq!(r.code, Some(1), "{connection_type} to {url}: {}", r.both());
    r.assert_secret_free();
    assert_eq!(r.stdout, "", "{connection_type} to {url}: {}", r.both());
    the_error_line(&r).to_owned()
}

/// A wrong password at tinyproxy for a WebSocket (the injector's own
/// CONNECT): exit 1, one error line naming `proxy_auth` (tinyproxy answers
/// a wrong `Proxy-Authorization` with 401, a missing one with 407), and no
/// password, right or wrong; the target is never reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tinyproxy_password_is_proxy_auth() {
    let ws = ws_echo(None).await;
    let proxy = Tinyproxy::start(Some((USER, PASS)));
    let dir = dir();
    let wrong = proxy.url_with(USER, WRONG_PASS);
    let line = connect_fails(dir.path(), "websocket", &wrong, &ws.url("/"), &[]).await;
    assert!(line.ends_with("(proxy_auth)"), "{line}");
    assert!(
        line.contains(&format!("through http://127.0.0.1:{}", proxy.port())),
        "{line}"
    );
    assert_eq!(ws.opened(), 0, "the target was reached");
}

/// The same for an HTTPS GET (reqwest's CONNECT).
///
/// Ignored: reqwest 0.12.28 tunnels through hyper-util's `Tunnel`, which
/// turns every CONNECT answer but 200 and 407 into "tunnel error:
/// unsuccessful" (the status is lost), so the injector says "the proxy
/// refused the tunnel (tunnel_refused)" for tinyproxy's 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tinyproxy_password_over_https_is_proxy_auth() {
    let pki = TestPki::new();
    let https = http_target(Some(&pki)).await;
    let proxy = Tinyproxy::start(Some((USER, PASS)));
    let dir = dir();
    let wrong = proxy.url_with(USER, WRONG_PASS);
    let ca = pki.ca_path();
    let ca = ["--ca-file", ca.to_str().unwrap()];
    let line = connect_fails(dir.path(), "http", &wrong, &https.url("/"), &ca).await;
    assert_eq!(https.opened(), 0, "the target was reached");
    assert!(line.ends_with("(proxy_auth)"), "{line}");
}

/// No credentials for a tinyproxy that wants them: its 407 is `proxy_auth`,
/// for a WebSocket (the injector's CONNECT) and a plain HTTP GET (forwarded,
/// answered 407 by the proxy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tinyproxy_credentials_are_proxy_auth() {
    let http = http_target(None).await;
    let ws = ws_echo(None).await;
    let proxy = Tinyproxy::start(Some((USER, PASS)));
    let dir = dir();
    for (connection_type, url) in [("websocket", ws.url("/")), ("http", http.url("/"))] {
        let line = connect_fails(
            dir.path(),
            connection_type,
            &proxy.url_without_auth(),
            &url,
            &[],
        )
        .await;
        assert!(line.ends_with("(proxy_auth)"), "{connection_type}: {line}");
    }
    assert_eq!(ws.opened() + http.opened(), 0, "a target was reached");
}

/// The same for an HTTPS GET (reqwest's CONNECT).
///
/// Ignored: hyper-util's `Tunnel` says "tunnel error: proxy authorization
/// required" for a 407, and the injector looks for "proxy authentication
/// required", so it falls through to "the proxy refused the tunnel
/// (tunnel_refused)".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tinyproxy_credentials_over_https_are_proxy_auth() {
    let pki = TestPki::new();
    let https = http_target(Some(&pki)).await;
    let proxy = Tinyproxy::start(Some((USER, PASS)));
    let dir = dir();
    let ca = pki.ca_path();
    let ca = ["--ca-file", ca.to_str().unwrap()];
    let line = connect_fails(
        dir.path(),
        "http",
        &proxy.url_without_auth(),
        &https.url("/"),
        &ca,
    )
    .await;
    assert_eq!(https.opened(), 0, "the target was reached");
    assert!(line.ends_with("(proxy_auth)"), "{line}");
}

/// A wrong password at microsocks for a WebSocket (the injector's SOCKS
/// tunnel): `proxy_auth`, the proxy named without credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_socks_password_is_proxy_auth() {
    let ws = ws_echo(None).await;
    let proxy = Microsocks::start(Some((USER, PASS)));
    let dir = dir();
    let wrong = proxy.url_with("socks5h", USER, WRONG_PASS);
    let line = connect_fails(dir.path(), "websocket", &wrong, &ws.url("/"), &[]).await;
    assert!(line.ends_with("(proxy_auth)"), "{line}");
    assert!(
        line.contains(&format!("through socks5h://127.0.0.1:{}", proxy.port())),
        "{line}"
    );
    assert_eq!(ws.opened(), 0, "the target was reached");
}

/// The same for an HTTPS GET (reqwest's SOCKS).
///
/// Ignored: reqwest 0.12.28 speaks SOCKS through hyper-util's `SocksV5`,
/// not tokio-socks, so the injector's `tokio_socks::Error` downcast never
/// matches; "socks error: credentials not accepted" ends as "cannot connect
/// through the proxy: ... (proxy_connect)".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_socks_password_over_https_is_proxy_auth() {
    let pki = TestPki::new();
    let https = http_target(Some(&pki)).await;
    let proxy = Microsocks::start(Some((USER, PASS)));
    let dir = dir();
    let wrong = proxy.url_with("socks5h", USER, WRONG_PASS);
    let ca = pki.ca_path();
    let ca = ["--ca-file", ca.to_str().unwrap()];
    let line = connect_fails(dir.path(), "http", &wrong, &https.url("/"), &ca).await;
    assert_eq!(https.opened(), 0, "the target was reached");
    assert!(line.ends_with("(proxy_auth)"), "{line}");
}

/// A target certificate from another CA (no --ca-file): `target_tls`, the
/// proxy not blamed — through microsocks for a WebSocket (the injector's
/// TLS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_target_certificate_is_target_tls() {
    let pki = TestPki::new();
    let wss = ws_echo(Some(&pki)).await;
    let proxy = Microsocks::start(Some((USER, PASS)));
    let dir = dir();
    let line = connect_fails(
        dir.path(),
        "websocket",
        &proxy.url("socks5h"),
        &wss.url("/"),
        &[],
    )
    .await;
    assert!(line.ends_with("(target_tls)"), "{line}");
}

/// The same for an HTTPS GET through tinyproxy (reqwest's TLS).
///
/// Ignored: `classify_reqwest` tests for an `io::Error` in a connect error
/// before it tests for a `rustls::Error`, and reqwest's certificate error
/// is an `io::Error` wrapping one: "cannot reach the proxy: invalid peer
/// certificate: UnknownIssuer (proxy_connect)" — the proxy is blamed (and
/// retried past, and reported) for the target's certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_target_certificate_over_https_is_target_tls() {
    let pki = TestPki::new();
    let https = http_target(Some(&pki)).await;
    let proxy = Tinyproxy::start(Some((USER, PASS)));
    let dir = dir();
    let line = connect_fails(dir.path(), "http", &proxy.url(), &https.url("/"), &[]).await;
    assert!(line.ends_with("(target_tls)"), "{line}");
}

/// `--json` for a target answering 451: exit 1, `ok: false`, the category
/// `geo_blocked`, the route that was tried; the error line on stderr too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_for_a_geo_blocked_target() {
    let target = http_target(None).await;
    let proxy = Tinyproxy::start(None);
    let dir = dir();
    let config = proxy_config(dir.path(), "http", &proxy.url());

    let url = target.url("/status/451");
    let r = connect(&url, &config, &["--json"]).await;
    assert_eq!(r.code, Some(1), "{}", r.both());
    let v = r.json();
    assert_eq!(v["exchange"], "binance");
    assert_eq!(v["connection_type"], "http");
    assert_eq!(v["url"], url.as_str());
    assert_eq!(v["ok"], false);
    assert_eq!(v["source"], "embedded");
    assert_eq!(v["proxy_url"], proxy.url().as_str());
    assert_eq!(v["latency_ms"], Value::Null);
    assert_eq!(v["error"]["category"], "geo_blocked", "{v}");
    let message = v["error"]["message"].as_str().expect("a message");
    assert!(message.contains("451"), "{v}");
    let line = the_error_line(&r);
    assert_eq!(line, format!("error: {message}"));
    assert!(target.paths().iter().all(|p| p == "/status/451"));
}

/// `proxy.enabled: false`: a direct connection, source `direct`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_proxy_connects_directly() {
    let ws = ws_echo(None).await;
    let http = http_target(None).await;
    let dir = dir();
    let config = write(
        dir.path(),
        "config.yaml",
        "proxy:\n  enabled: false\n  default:\n    http: http://127.0.0.1:9\n    websocket: \
         socks5://127.0.0.1:9\n",
    );

    let url = ws.url("/");
    let r = connect(&url, &config, &[]).await;
    assert_eq!(r.code, Some(0), "{}", r.both());
    let line = r.stdout.trim_end();
    let expected = format!("binance websocket: connected to {url} direct (source direct) in ");
    assert!(line.starts_with(&expected), "{expected:?}\n{}", r.both());
    assert_eq!(ws.upgraded(), 1);
    ws.wait_closed(1).await;

    let url = http.url("/");
    let r = connect(&url, &config, &["--json"]).await;
    assert_eq!(r.code, Some(0), "{}", r.both());
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["connection_type"], "http");
    assert_eq!(v["source"], "direct");
    assert_eq!(v["proxy_url"], Value::Null);
    assert_eq!(v["status"], 200);
    assert!(v["latency_ms"].as_f64().is_some(), "{v}");
    assert_eq!(http.paths(), ["/"]);
}

/// `--type` must agree with the URL's scheme: exit 2 and a message saying
/// so, before anything is loaded or connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_that_contradicts_the_url_is_invalid() {
    let target = http_target(None).await;
    let url = target.url("/");
    let r = run([
        "connect",
        &url,
        "--exchange",
        "binance",
        "--type",
        "websocket",
    ])
    .await;
    assert_eq!(r.code, Some(2), "{}", r.both());
    let line = the_error_line(&r);
    assert!(
        line.contains("--type websocket") && line.contains("ws://"),
        "{}",
        r.both()
    );
    let r = run(["connect", "ftp://127.0.0.1/", "--exchange", "binance"]).await;
    assert_eq!(r.code, Some(2), "{}", r.both());
    assert_eq!(target.opened(), 0);
}

// ------------------------------------------------------------ the service

/// A service with one client (`feed`, [`TOKEN`]) and one proxy, `ms-1` at
/// `proxy_url`.
fn service_config(dir: &Path, proxy_url: &str) -> PathBuf {
    write(
        dir,
        "service.toml",
        &format!(
            "[[clients]]\nname = \"feed\"\nbearer_tokens = [\"{TOKEN}\"]\n\n\
             [[proxies]]\nid = \"ms-1\"\nurl = \"{proxy_url}\"\n"
        ),
    )
}

/// The service's row for `id` in `GET /api/v1/proxies`.
async fn proxy_row(service: &ServeProcess, id: &str) -> Value {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let r = http
        .get(service.url_for("/api/v1/proxies"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET /api/v1/proxies");
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let v: Value = r.json().await.expect("JSON");
    v["proxies"]
        .as_array()
        .expect("a list of proxies")
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no proxy {id} in {v}"))
}

/// With `external_service.enabled`, the route comes from the real service
/// (its inventory holds only microsocks), and the feedback reaches it
/// before the command exits: the proxy's latency is set, its connection
/// counted and closed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_routes_and_gets_the_feedback() {
    let target = ws_echo(None).await;
    let proxy = Microsocks::start(Some((USER, PASS)));
    let dir = dir();
    let service_file = service_config(dir.path(), &proxy.url("socks5h"));
    let service = {
        let file = service_file.to_str().expect("a UTF-8 path").to_owned();
        tokio::task::spawn_blocking(move || {
            ServeProcess::start(
                BIN,
                &["serve", "--config", &file, "--listen", "127.0.0.1:0"],
                &[],
            )
        })
        .await
        .expect("the starting thread")
    };
    let before = proxy_row(&service, "ms-1").await;
    assert_eq!(before["latency_ms"], Value::Null, "{before}");

    // The embedded fallback is a proxy that does not exist: only the
    // service's answer can connect.
    let config = write(
        dir.path(),
        "config.yaml",
        &format!(
            "proxy:\n\
             \x20 enabled: true\n\
             \x20 default:\n\
             \x20   websocket: \"socks5://127.0.0.1:9\"\n\
             \x20 external_service:\n\
             \x20   enabled: true\n\
             \x20   endpoints: [\"{}\"]\n\
             \x20   auth_method: bearer_token\n\
             \x20   auth_credentials:\n\
             \x20     token: \"{TOKEN}\"\n\
             \x20   timeout_seconds: 5\n\
             \x20   resolve_deadline_ms: 5000\n\
             \x20   client_id: connect-e2e\n",
            service.url()
        ),
    );

    let url = target.url("/");
    let r = connect(&url, &config, &["--json"]).await;
    assert_eq!(r.code, Some(0), "{}", r.both());
    r.assert_secret_free();
    let v = r.json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["source"], "service", "{v}");
    assert_eq!(
        v["proxy_url"],
        redacted("socks5h", proxy.port()).as_str(),
        "{v}"
    );
    // Nothing left undelivered.
    assert!(!r.stderr.contains("not delivered"), "{}", r.both());
    assert_eq!(target.upgraded(), 1);

    // The feedback arrived: connect_start and disconnect leave no open
    // connection; success set the latency.
    let deadline = Instant::now() + Duration::from_secs(10);
    let row = loop {
        let row = proxy_row(&service, "ms-1").await;
        if !row["latency_ms"].is_null() && row["open_connections"] == 0 {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "no feedback at the service within 10 s: {row}\nthe CLI:\n{}\nthe service:\n{}",
            r.both(),
            service.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        row["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{row}"
    );
    assert_eq!(row["state"], "active", "{row}");
    assert_eq!(row["recent_failures"], serde_json::json!([]), "{row}");
    let log = service.stderr_text();
    for secret in SECRETS {
        assert!(!log.contains(secret), "the service's log holds {secret:?}");
    }
}
