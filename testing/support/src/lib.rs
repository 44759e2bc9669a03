//! Test fixtures shared by the crates of the workspace (never published):
//!
//! * [`ServeProcess`]: the REAL `proxy-delegate serve` binary on 127.0.0.1
//!   as a child process, started with a configuration file, its address
//!   read from its `listening on http://` line; killed and reaped on drop,
//!   so that a failing test never leaks one. Every wait has a deadline.
//!   [`ServeProcess::with_config_on`] restarts it on a given address.
//! * [`metric_sum`]: the sum of a metric's samples in a Prometheus /
//!   OpenMetrics text.
//! * [`write_config`] and [`workspace_binary`].
//!
//! It blocks (threads and `std` I/O), so it serves any test, whatever its
//! executor: tokio's or embassy's.

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long the binary may take to print its `listening on` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one HTTP exchange with the service may take ([`ServeProcess::metrics`]).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`ServeProcess::with_config_on`] keeps trying (the attempts'
/// pauses; each attempt has [`START_TIMEOUT`] of its own).
pub const RESTART_TIMEOUT: Duration = Duration::from_secs(5);

/// The line the service prints once it accepts connections, before its
/// address.
const LISTENING: &str = "listening on http://";

/// The variable naming the `proxy-delegate` binary for
/// [`workspace_binary`].
pub const BIN_VARIABLE: &str = "PROXY_DELEGATE_BIN";

/// The workspace's `proxy-delegate` binary, for the tests of a package that
/// does not build it (a package's own tests use
/// `env!("CARGO_BIN_EXE_proxy-delegate")`): the file
/// [`PROXY_DELEGATE_BIN`](BIN_VARIABLE) names, or else
/// `target/<profile>/proxy-delegate`, next to the `deps` directory of the
/// running test binary. `cargo test --workspace` builds it; a package's
/// tests alone need `cargo build -p proxy-delegate` first.
///
/// # Panics
///
/// When the file is missing, with a message saying how to build it.
pub fn workspace_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(BIN_VARIABLE) {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<this test> -> target/<profile>/proxy-delegate
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary sits in target/<profile>/deps");
    let path = dir.join(format!("proxy-delegate{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: these tests run the real service binary; build it with \
         `cargo build -p proxy-delegate` (cargo test --workspace does), or name one \
         in {BIN_VARIABLE}",
        path.display()
    );
    path
}

/// A running `proxy-delegate serve`; killed (and reaped) on drop, stopped or
/// not, and its configuration file removed if it owns one.
#[derive(Debug)]
pub struct ServeProcess {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
    /// The configuration file of [`with_toml_config`](Self::with_toml_config),
    /// removed when this is dropped (after the process is killed).
    config: Option<tempfile::TempPath>,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServeProcess {
    /// Starts `bin` with `args` and `env` (on a clean environment, stdin and
    /// stdout null) and waits (at most [`START_TIMEOUT`]) for its
    /// `listening on http://…` line. Its stderr is read on a thread of its
    /// own, line by line, into [`stderr_text`](Self::stderr_text). Blocks
    /// the thread.
    ///
    /// # Errors
    ///
    /// No `listening on` line in time (the process exited, or it is slow):
    /// the message holds the stderr so far.
    ///
    /// # Panics
    ///
    /// When the process cannot be started, or its listening line holds no
    /// address.
    pub fn try_start<A: AsRef<OsStr>>(
        bin: impl AsRef<Path>,
        args: &[A],
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let bin = bin.as_ref();
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
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
            config: None,
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
    pub fn start<A: AsRef<OsStr>>(bin: impl AsRef<Path>, args: &[A], env: &[(&str, &str)]) -> Self {
        Self::try_start(bin, args, env).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`start`](Self::start)s `bin serve --config <path> --listen
    /// 127.0.0.1:0`.
    pub fn with_config(bin: impl AsRef<Path>, path: &Path) -> Self {
        let path = path.to_str().expect("a UTF-8 path");
        Self::start(
            bin,
            &["serve", "--config", path, "--listen", "127.0.0.1:0"],
            &[],
        )
    }

    /// `bin serve --config <config> --listen <listen>`, retrying for about
    /// [`RESTART_TIMEOUT`] while it does not start: a restart on the port
    /// of a process just killed may find it still taken for a moment.
    /// Blocks the thread.
    ///
    /// # Panics
    ///
    /// When it has not started by then, with the last attempt's stderr.
    pub fn with_config_on(bin: impl AsRef<Path>, config: &Path, listen: SocketAddr) -> Self {
        let bin = bin.as_ref();
        let listen_text = listen.to_string();
        let args = [
            OsStr::new("serve"),
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--listen"),
            OsStr::new(&listen_text),
        ];
        let pause = Duration::from_millis(100);
        let attempts = RESTART_TIMEOUT.as_millis() / pause.as_millis();
        let mut last = String::new();
        for _ in 0..attempts {
            match Self::try_start(bin, &args, &[]) {
                Ok(server) => return server,
                Err(e) => last = e,
            }
            std::thread::sleep(pause);
        }
        panic!("the service did not start on {listen}: {last}");
    }

    /// [`with_config`](Self::with_config) on a new TOML file holding `text`
    /// in the temporary directory, removed when this is dropped.
    pub fn with_toml_config(bin: impl AsRef<Path>, text: &str) -> Self {
        let file = tempfile::Builder::new()
            .prefix("proxy-delegate-test-")
            .suffix(".toml")
            .tempfile()
            .expect("create the configuration file");
        write_config(file.path(), text);
        let path = file.into_temp_path();
        let mut server = Self::with_config(bin, &path);
        server.config = Some(path);
        server
    }

    /// The address of its `listening on` line.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://<addr><path>`; `path` starts with `/`.
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }

    /// Everything it wrote to stderr so far, one line a line.
    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// Its `/metrics` text, status line and headers included: a plain
    /// HTTP/1.1 GET, each read bounded by [`HTTP_TIMEOUT`]. Blocks the
    /// thread.
    ///
    /// # Panics
    ///
    /// When the exchange fails or the status is not 200.
    pub fn metrics(&self) -> String {
        let mut s = TcpStream::connect(self.addr).expect("connect to the service");
        s.set_read_timeout(Some(HTTP_TIMEOUT)).expect("timeout");
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .expect("send GET /metrics");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read /metrics");
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        text
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends the signal `name` (`HUP`, `TERM`, `STOP`, ...) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name}");
    }

    /// SIGSTOP, returning once the kernel reports the process stopped
    /// (`T` in `/proc/<pid>/stat`): a signal is delivered asynchronously,
    /// and a request sent just after `kill` returns could still be answered.
    pub fn freeze(&self) {
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
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the service");
        self.child.wait().expect("reap the service");
    }

    /// Its exit status if it has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll the child")
    }

    /// Waits (at most `within`) for the process to exit.
    ///
    /// # Panics
    ///
    /// When it has not exited by then, with its stderr.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
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

/// Writes a configuration file (the test fails if it cannot).
pub fn write_config(path: &Path, text: &str) {
    std::fs::write(path, text)
        .unwrap_or_else(|e| panic!("write the configuration {}: {e}", path.display()));
}

/// The sum of the samples of `name` whose labels include every `labels`
/// pair, in a Prometheus / OpenMetrics text (comment lines skipped; a
/// sample whose value does not parse counts nothing). 0 when none match.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, label_text) = series.split_once('{').unwrap_or((series, ""));
            let matches = n == name
                && labels
                    .iter()
                    .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP requests Requests.\n\
        # TYPE requests counter\n\
        requests_total{endpoint=\"a\",outcome=\"ok\"} 3\n\
        requests_total{endpoint=\"a\",outcome=\"tls\"} 1\n\
        requests_total{endpoint=\"b\",outcome=\"ok\"} 2.5\n\
        requests_total_other{endpoint=\"a\",outcome=\"ok\"} 100\n\
        up 1\n\
        broken{endpoint=\"a\"} NaN-ish\n";

    /// The harness against the real binary (the workspace's: `cargo test
    /// --workspace` builds it): its address, its metrics, its end.
    #[test]
    fn the_real_service_starts_answers_and_is_killed() {
        let config = "[[proxies]]\nid = \"px-1\"\nurl = \"http://192.0.2.1:3128\"\n\n\
                      [[proxies]]\nid = \"px-2\"\nurl = \"http://192.0.2.2:3128\"\n";
        let mut serve = ServeProcess::with_toml_config(workspace_binary(), config);
        let file = serve
            .config
            .as_ref()
            .expect("it owns its file")
            .to_path_buf();
        assert!(file.is_file());
        assert!(serve.addr().ip().is_loopback());
        assert_ne!(serve.addr().port(), 0);
        assert_eq!(serve.url(), format!("http://{}", serve.addr()));
        let metrics = serve.metrics();
        assert_eq!(
            metric_sum(&metrics, "proxy_delegate_pool_proxies", &[]),
            2.0
        );
        assert_eq!(
            metric_sum(
                &metrics,
                "proxy_delegate_proxy_health_score",
                &[("proxy", "px-2")]
            ),
            1.0
        );
        assert!(serve.try_wait().is_none(), "{}", serve.stderr_text());
        serve.kill();
        assert!(serve.try_wait().is_some());
        assert!(TcpStream::connect(serve.addr()).is_err(), "nothing listens");
        drop(serve);
        assert!(!file.exists(), "{} is removed", file.display());
    }

    #[test]
    fn a_service_that_does_not_start_is_an_error_with_its_stderr() {
        let e = ServeProcess::try_start(workspace_binary(), &["serve", "--no-such-flag"], &[])
            .expect_err("no listening line");
        assert!(e.contains("no `listening on` line"), "{e}");
        assert!(e.contains("--no-such-flag"), "{e}");
    }

    #[test]
    fn metric_sum_adds_the_samples_whose_labels_match() {
        assert_eq!(metric_sum(TEXT, "requests_total", &[]), 6.5);
        assert_eq!(
            metric_sum(TEXT, "requests_total", &[("outcome", "ok")]),
            5.5
        );
        assert_eq!(
            metric_sum(
                TEXT,
                "requests_total",
                &[("endpoint", "a"), ("outcome", "tls")]
            ),
            1.0
        );
        assert_eq!(metric_sum(TEXT, "up", &[]), 1.0);
        assert_eq!(metric_sum(TEXT, "requests", &[]), 0.0);
        assert_eq!(metric_sum(TEXT, "broken", &[]), 0.0);
        assert_eq!(metric_sum(TEXT, "requests_total", &[("outcome", "x")]), 0.0);
    }
}
