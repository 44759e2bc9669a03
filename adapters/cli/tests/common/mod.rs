//! The real `proxy-delegate serve` binary as a test fixture, shared by the
//! test binaries of this package (each compiles this module on its own, so
//! not every item is used by every one of them).
//!
//! A [`ServeProcess`] owns the process: it is killed and reaped on drop, so a
//! failing test never leaks one; every wait has a deadline.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_proxy-delegate");

/// How long the binary may take to exit once it should.
pub(crate) const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one HTTP exchange with the service may take.
pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the binary may take to print its `listening on` line.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The line the service prints once it accepts connections, before its
/// address.
const LISTENING: &str = "listening on http://";

/// A running `proxy-delegate serve`; killed (and reaped) on drop, stopped or
/// not.
#[derive(Debug)]
pub(crate) struct ServeProcess {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServeProcess {
    /// Starts the binary with `args` and `env` (on a clean environment, stdin
    /// and stdout null) and waits (at most [`START_TIMEOUT`]) for its
    /// `listening on http://…` line. Its stderr is read on a thread of its
    /// own, line by line, into [`stderr_text`](Self::stderr_text). Blocks
    /// the thread.
    ///
    /// No `listening on` line in time (the process exited, or it is slow) is
    /// an error, with the stderr so far; a process that cannot be started,
    /// or a listening line without an address, panics.
    pub(crate) fn try_start<A: AsRef<OsStr>>(
        args: &[A],
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start proxy-delegate serve");
        let pipe = child.stderr.take().expect("stderr is piped");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let lines = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                lines
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(line.clone());
                let _ = tx.send(line);
            }
        });
        // The guard exists from here on: a failed wait below kills the child.
        let mut server = ServeProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(LISTENING) {
                        server.addr = rest.trim().parse().unwrap_or_else(|e| {
                            panic!("the listening line names an address: {line:?}: {e}")
                        });
                        return Ok(server);
                    }
                }
                Err(e) => {
                    return Err(format!(
                        "no `listening on` line ({e}); stderr so far:\n{}",
                        server.stderr_text()
                    ));
                }
            }
        }
    }

    /// [`try_start`](Self::try_start), panicking on an error.
    pub(crate) fn start<A: AsRef<OsStr>>(args: &[A], env: &[(&str, &str)]) -> Self {
        Self::try_start(args, env).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`start`](Self::start)s `serve --config <path> --listen 127.0.0.1:0`.
    pub(crate) fn with_config(path: &Path) -> Self {
        let path = path.to_str().expect("a UTF-8 path");
        Self::start(&["serve", "--config", path, "--listen", "127.0.0.1:0"], &[])
    }

    /// The address of its `listening on` line.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, no trailing slash.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://<addr><path>`; `path` starts with `/`.
    pub(crate) fn url_for(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }

    /// Everything it wrote to stderr so far, one line a line.
    pub(crate) fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// The log once it contains `needle` (it is read on another thread),
    /// waiting at most 10 s.
    pub(crate) async fn stderr_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.stderr_text();
            if text.contains(needle) || Instant::now() >= deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends the signal `name` (`HUP`, `TERM`, `STOP`, ...) with `kill`.
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name}");
    }

    /// SIGSTOP, returning once the kernel reports the process stopped
    /// (`T` in `/proc/<pid>/stat`): a signal is delivered asynchronously,
    /// and a request sent just after `kill` returns could still be answered.
    pub(crate) fn freeze(&self) {
        self.signal("STOP");
        let stat = format!("/proc/{}/stat", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&stat).unwrap_or_default();
            // The state follows the command name, which is in parentheses.
            let state = text
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            if state == Some("T") {
                return;
            }
            assert!(Instant::now() < deadline, "not stopped within 10 s: {text}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, and reap: the port is free when this returns.
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the service");
        self.child.wait().expect("reap the service");
    }

    /// Its exit status if it has exited, without waiting.
    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll the child")
    }

    /// Waits (at most `within`) for the process to exit.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {within:?}; stderr:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// Writes a configuration file (the test fails if it cannot).
pub(crate) fn write_config(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write the configuration");
}
