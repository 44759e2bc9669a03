//! Real forward proxies for the injector's tests, run as child processes on
//! 127.0.0.1 (a free high port each): Debian's `tinyproxy` (HTTP, CONNECT,
//! optional BasicAuth) and `microsocks` (SOCKS5, optional username/password;
//! `socks5` and `socks5h` are the same server). scripts/test.sh installs them.
//!
//! What they answer (tinyproxy 1.11.1, microsocks 1.0.3, checked by hand):
//! - tinyproxy, no `Proxy-Authorization`: `407 Proxy Authentication Required`;
//!   a wrong or malformed one: `401 Unauthorized` (not 407);
//! - tinyproxy, CONNECT or GET to a closed port or an unresolvable name:
//!   `500 Unable to connect`; CONNECT to a port outside `ConnectPort` (none
//!   is configured here, so every port is allowed): `403 Access violation`;
//! - microsocks, wrong credentials: auth reply `01 01` (failure), then
//!   closes; no acceptable method (e.g. no-auth offered when it wants
//!   credentials, or a SOCKS4 greeting): `05 FF`, then closes;
//! - microsocks, target port closed: reply `05 05` (connection refused);
//!   a name it cannot resolve: `05 01` (general failure). It connects to the
//!   first address `getaddrinfo` gives, and its BND.ADDR is always 0.0.0.0:0.
#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// How long a proxy may take to accept connections after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP port nobody listens on at the moment, on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind((LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind a TCP socket on 127.0.0.1")
        .port()
}

/// The path of `name` in /usr/bin, /usr/sbin or on PATH; panics with the
/// install command when it is missing.
pub fn proxy_binary(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed: the injector tests run real proxies on 127.0.0.1. \
                 Install them with `apt-get install tinyproxy microsocks` (scripts/test.sh does)"
            )
        })
}

/// `user:pass@`, percent-encoded, or nothing.
fn userinfo(auth: Option<(&str, &str)>) -> String {
    fn encode(text: &str) -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    auth.map(|(user, pass)| format!("{}:{}@", encode(user), encode(pass)))
        .unwrap_or_default()
}

fn read_to_string(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    text
}

/// One proxy process in its own temporary directory, killed when dropped.
struct Process {
    name: &'static str,
    child: Child,
    port: u16,
    /// Holds the configuration, the log and the pid file.
    dir: TempDir,
    log: PathBuf,
}

impl Process {
    /// Runs `command` (its stdout and stderr go to `log`) and waits until
    /// `port` accepts connections. `Err` when the process exited first.
    fn spawn(
        name: &'static str,
        mut command: Command,
        port: u16,
        dir: TempDir,
        log: PathBuf,
    ) -> Result<Self, String> {
        let output = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("create {}: {e}", log.display()))?;
        let stderr = output.try_clone().map_err(|e| e.to_string())?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(output))
            .stderr(Stdio::from(stderr));
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {name}: {e}"))?;
        let mut process = Self {
            name,
            child,
            port,
            dir,
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = process.child.try_wait() {
                return Err(format!(
                    "{name} on port {port} exited ({status}): {}",
                    process.log_text()
                ));
            }
            let addr = SocketAddr::from((LOCALHOST, port));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(process);
            }
            if Instant::now() >= deadline {
                let log = process.log_text();
                drop(process);
                panic!(
                    "{name} did not accept connections on 127.0.0.1:{port} within {} s; its log:\n{log}",
                    START_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts on a free port, trying another one if the process exits (the
    /// port was taken between `free_port` and the bind).
    fn start(name: &'static str, build: impl Fn(u16, &Path) -> (Command, PathBuf)) -> Self {
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix(&format!("proxy-delegate-{name}-"))
                .tempdir()
                .expect("create a temporary directory");
            let port = free_port();
            let (command, log) = build(port, dir.path());
            match Self::spawn(name, command, port, dir, log) {
                Ok(process) => return process,
                Err(e) => last_error = e,
            }
        }
        panic!("{name} did not start: {last_error}");
    }

    fn log_text(&self) -> String {
        read_to_string(&self.log)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

// ------------------------------------------------------------------ tinyproxy

/// tinyproxy: an HTTP forward proxy (absolute-form requests and CONNECT to
/// any port), with BasicAuth when started with credentials.
pub struct Tinyproxy {
    process: Process,
    auth: Option<(String, String)>,
}

impl Tinyproxy {
    /// Starts tinyproxy on a free port of 127.0.0.1, in the foreground, with
    /// its configuration, log and pid file in a temporary directory.
    ///
    /// tinyproxy's configuration grammar takes only `[-A-Za-z0-9._]` in
    /// BasicAuth user names and passwords; anything else panics here.
    pub fn start(auth: Option<(&str, &str)>) -> Self {
        if let Some((user, pass)) = auth {
            let valid = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            };
            assert!(
                valid(user) && valid(pass),
                "tinyproxy's BasicAuth takes only [-A-Za-z0-9._]: {user:?} / {pass:?}"
            );
        }
        let binary = proxy_binary("tinyproxy");
        let process = Process::start("tinyproxy", |port, dir| {
            let log = dir.join("tinyproxy.log");
            let conf = dir.join("tinyproxy.conf");
            // No User/Group lines: as root, tinyproxy would switch to that
            // user before opening its log, which it then cannot create in
            // this root-only directory. Without them it stays the current
            // user (root only warns "You SHOULD set a UserName").
            // No ConnectPort line: CONNECT is allowed to every port.
            let mut text = format!(
                "Port {port}\n\
                 Listen 127.0.0.1\n\
                 Allow 127.0.0.1\n\
                 Timeout 60\n\
                 MaxClients 200\n\
                 DisableViaHeader Yes\n\
                 LogFile \"{log}\"\n\
                 LogLevel Info\n\
                 PidFile \"{pid}\"\n",
                log = log.display(),
                pid = dir.join("tinyproxy.pid").display(),
            );
            if let Some((user, pass)) = auth {
                text.push_str(&format!("BasicAuth {user} {pass}\n"));
            }
            std::fs::write(&conf, text).expect("write tinyproxy.conf");
            let mut command = Command::new(&binary);
            command.arg("-d").arg("-c").arg(&conf);
            (command, log)
        });
        Self {
            process,
            auth: auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
        }
    }

    pub fn port(&self) -> u16 {
        self.process.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.port()))
    }

    /// `http://user:pass@127.0.0.1:PORT` with its own credentials, or
    /// `http://127.0.0.1:PORT` when it has none.
    pub fn url(&self) -> String {
        let auth = self.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
        format!("http://{}127.0.0.1:{}", userinfo(auth), self.port())
    }

    /// `http://user:pass@127.0.0.1:PORT` with the given credentials.
    pub fn url_with(&self, user: &str, pass: &str) -> String {
        format!(
            "http://{}127.0.0.1:{}",
            userinfo(Some((user, pass))),
            self.port()
        )
    }

    /// `http://127.0.0.1:PORT`, no credentials.
    pub fn url_without_auth(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// Its log so far (LogLevel Info: one line per request and its outcome).
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    pub fn dir(&self) -> &Path {
        self.process.dir.path()
    }

    /// SIGKILL, then waits for it to exit: its port refuses connections
    /// from then on.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

// ------------------------------------------------------------------ microsocks

/// microsocks: a SOCKS5 proxy (CONNECT only; IPv4, IPv6 and domain-name
/// targets, so it serves both `socks5://` and `socks5h://`), with
/// username/password authentication when started with credentials.
pub struct Microsocks {
    process: Process,
    auth: Option<(String, String)>,
}

impl Microsocks {
    /// Starts `microsocks -i 127.0.0.1 -p PORT [-u user -P pass]` on a free
    /// port; its output goes to a log in a temporary directory.
    pub fn start(auth: Option<(&str, &str)>) -> Self {
        let binary = proxy_binary("microsocks");
        let process = Process::start("microsocks", |port, dir| {
            let log = dir.join("microsocks.log");
            let mut command = Command::new(&binary);
            command
                .args(["-i", "127.0.0.1", "-p"])
                .arg(port.to_string());
            if let Some((user, pass)) = auth {
                command.args(["-u", user, "-P", pass]);
            }
            (command, log)
        });
        Self {
            process,
            auth: auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
        }
    }

    pub fn port(&self) -> u16 {
        self.process.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.port()))
    }

    /// `{scheme}://user:pass@127.0.0.1:PORT` with its own credentials (none
    /// when it has none); `scheme` is `socks5` or `socks5h`.
    pub fn url(&self, scheme: &str) -> String {
        let auth = self.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
        format!("{scheme}://{}127.0.0.1:{}", userinfo(auth), self.port())
    }

    /// `{scheme}://user:pass@127.0.0.1:PORT` with the given credentials.
    pub fn url_with(&self, scheme: &str, user: &str, pass: &str) -> String {
        format!(
            "{scheme}://{}127.0.0.1:{}",
            userinfo(Some((user, pass))),
            self.port()
        )
    }

    /// `{scheme}://127.0.0.1:PORT`, no credentials.
    pub fn url_without_auth(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port())
    }

    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// Its output so far (microsocks prints only errors).
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// SIGKILL, then waits for it to exit.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}
