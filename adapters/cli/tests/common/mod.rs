//! What the test binaries of this package share beyond
//! `proxy-delegate-test-support` (whose `ServeProcess` runs the real
//! `proxy-delegate serve`): the binary's path, runs to completion, an HTTP
//! client. Each test binary compiles this module on its own, so not every
//! item is used by every one of them.

#![allow(dead_code)]

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use proxy_delegate_test_support::ServeProcess;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_proxy-delegate");

/// How long the binary may take to exit once it should.
pub(crate) const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one HTTP exchange with the service may take.
pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// [`ServeProcess::with_config_on`] on a blocking thread: `serve --config
/// <config> --listen <listen>` (port 0: any free port), retried should the
/// port be taken for a moment (a restart on the same port).
pub(crate) async fn start_service(config: &Path, listen: SocketAddr) -> ServeProcess {
    let config = config.to_owned();
    tokio::task::spawn_blocking(move || ServeProcess::with_config_on(BIN, &config, listen))
        .await
        .expect("the starting thread")
}

/// `127.0.0.1:0`: any free port on the loopback.
pub(crate) fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The log of `server` once it contains `needle` (it is read on another
/// thread), waiting at most 10 s without blocking the runtime.
pub(crate) async fn stderr_with(server: &ServeProcess, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = server.stderr_text();
        if text.contains(needle) || Instant::now() >= deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the binary with `args` on a clean environment to completion, killed
/// (and the test failed) after [`EXIT_TIMEOUT`]: its status, stdout and
/// stderr. Both pipes are read while it runs, so a chatty run cannot fill
/// one and hang.
pub(crate) fn run_to_end(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(BIN)
        .env_clear()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start proxy-delegate");
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("stdout is piped")));
    let stderr = read(Box::new(child.stderr.take().expect("stderr is piped")));
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("poll the child") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} did not exit within {EXIT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        stdout.join().expect("the stdout reader"),
        stderr.join().expect("the stderr reader"),
    )
}

/// A plain HTTP client for the service: no proxy, bounded by
/// [`HTTP_TIMEOUT`].
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(HTTP_TIMEOUT)
        .build()
        .expect("build the HTTP client")
}

/// The ids of the service's proxies (`GET /api/v1/proxies`, with `token`
/// as a bearer token when given); anything but 200 fails the test.
pub(crate) async fn proxy_ids(
    http: &reqwest::Client,
    server: &ServeProcess,
    token: Option<&str>,
) -> Vec<String> {
    let mut req = http.get(server.url_for("/api/v1/proxies"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("GET /api/v1/proxies");
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let v: serde_json::Value = r.json().await.expect("JSON");
    v["proxies"]
        .as_array()
        .expect("a list of proxies")
        .iter()
        .map(|p| p["id"].as_str().expect("an id").to_owned())
        .collect()
}
