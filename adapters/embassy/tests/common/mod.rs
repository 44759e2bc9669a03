//! The fixtures of the host tests: the REAL `proxy-delegate serve` binary
//! on 127.0.0.1 (killed and reaped on drop), a plain HTTP GET for its
//! `/metrics`, and embassy's std executor on a thread of its own.
//!
//! The binary is the workspace's: `cargo test --workspace` builds it (the
//! CLI's own tests need it); `cargo test -p proxy-delegate-embassy` alone
//! needs `cargo build -p proxy-delegate` first, or `PROXY_DELEGATE_BIN`
//! naming one.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// The service's bearer token for this client.
pub(crate) const TOKEN: &str = "tok-embassy-3c9d41f2";

/// The service's inventory: (id, URL).
pub(crate) const INVENTORY: [(&str, &str); 2] = [
    ("px-1", "socks5://192.0.2.21:1080"),
    ("px-2", "http://192.0.2.22:3128"),
];

/// `proxy-delegate`, built for this profile next to the test binaries.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PROXY_DELEGATE_BIN") {
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
         in PROXY_DELEGATE_BIN",
        path.display()
    );
    path
}

/// A running `proxy-delegate serve`; killed and reaped on drop.
#[derive(Debug)]
pub(crate) struct Serve {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
    config: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

impl Serve {
    /// Starts `serve` on 127.0.0.1 (a free port) with one client (bearer
    /// [`TOKEN`]) and the [`INVENTORY`], and waits (at most 30 s) for its
    /// `listening on` line.
    pub(crate) fn start() -> Serve {
        static N: AtomicUsize = AtomicUsize::new(0);
        let config = std::env::temp_dir().join(format!(
            "proxy-delegate-embassy-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let text = format!(
            "[[clients]]\nname = \"gateway\"\nbearer_tokens = [\"{TOKEN}\"]\n\n\
             [[proxies]]\nid = \"{}\"\nurl = \"{}\"\n\n\
             [[proxies]]\nid = \"{}\"\nurl = \"{}\"\n",
            INVENTORY[0].0, INVENTORY[0].1, INVENTORY[1].0, INVENTORY[1].1
        );
        std::fs::write(&config, text).expect("write the service configuration");
        let mut child = Command::new(binary())
            .env_clear()
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start proxy-delegate serve");
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
        let mut serve = Serve {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
            config,
        };
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("listening on http://") {
                        serve.addr = rest.trim().parse().expect("an address");
                        return serve;
                    }
                }
                Err(e) => panic!(
                    "serve printed no `listening on` line ({e}); stderr:\n{}",
                    serve.stderr_text()
                ),
            }
        }
    }

    /// `http://<addr>`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything it wrote to stderr so far.
    pub(crate) fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// SIGKILL, and reap: nothing listens on its port when this returns.
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the service");
        self.child.wait().expect("reap the service");
    }

    /// Its `/metrics` text (a plain HTTP/1.1 GET, 10 s bounds).
    pub(crate) fn metrics(&self) -> String {
        let mut s = TcpStream::connect(self.addr).expect("connect to the service");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
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
}

/// The sum of the samples of `name` whose labels contain every `labels`
/// pair (OpenMetrics text).
pub(crate) fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, label_text) = series.split_once('{').unwrap_or((series, ""));
            let wanted = n == name
                && labels
                    .iter()
                    .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Runs `start` on a fresh embassy std executor on a thread of its own
/// (the executor never returns; the thread ends with the test process),
/// and waits at most `bound` for what the spawned task sends back.
pub(crate) fn on_embassy<T: Send + 'static>(
    bound: Duration,
    start: impl FnOnce(embassy_executor::Spawner, mpsc::Sender<T>) + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let executor = Box::leak(Box::new(embassy_executor::Executor::new()));
        executor.run(move |spawner| start(spawner, tx));
    });
    rx.recv_timeout(bound)
        .unwrap_or_else(|e| panic!("the embassy task gave no result within {bound:?}: {e}"))
}
