//! A real DNS server for the tests: Debian's `dnsmasq` on 127.0.0.1 (a free
//! high port), serving only the records a test gives it and never forwarding
//! a query. Shared by `tests/srv.rs` and `tests/srv_client.rs`.
#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use proxy_delegate_tokio::srv::DnsConfig;

pub const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

// ------------------------------------------------------------------ dnsmasq

/// Where dnsmasq is: on PATH, or in the sbin directories a non-root PATH
/// may lack.
pub fn dnsmasq_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("dnsmasq"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "dnsmasq is not installed: these tests run a real DNS server on 127.0.0.1. \
                 Install it with `apt-get install dnsmasq-base` (scripts/test.sh does)"
            )
        })
}

/// A port free for both UDP and TCP on 127.0.0.1, as far as we can tell.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind((LOCALHOST, 0)).expect("bind a UDP socket on 127.0.0.1");
        let port = udp.local_addr().expect("local address").port();
        if TcpListener::bind((LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// A DNS query for `name`, type A, in wire format.
pub fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut packet = Vec::new();
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        packet.push(u8::try_from(label.len()).expect("short label"));
        packet.extend_from_slice(label.as_bytes());
    }
    packet.extend_from_slice(&[0, 0, 1, 0, 1]);
    packet
}

static LOG_COUNTER: AtomicU32 = AtomicU32::new(0);

/// One dnsmasq process, killed when dropped.
pub struct Dnsmasq {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Dnsmasq {
    /// Starts dnsmasq on a free port with `records` (dnsmasq options such as
    /// `--srv-host=...`); retries on another port if the port was taken.
    pub fn start(records: &[String]) -> Self {
        let mut last_error = String::new();
        for _ in 0..5 {
            match Self::start_on(free_port(), records) {
                Ok(dnsmasq) => return dnsmasq,
                Err(e) => last_error = e,
            }
        }
        panic!("dnsmasq did not start: {last_error}");
    }

    /// Starts dnsmasq on `port`, waiting until it answers.
    pub fn start_on(port: u16, records: &[String]) -> Result<Self, String> {
        let binary = dnsmasq_binary();
        let n = LOG_COUNTER.fetch_add(1, Ordering::Relaxed);
        let log = std::env::temp_dir().join(format!(
            "proxy-delegate-dnsmasq-{}-{n}-{port}.log",
            std::process::id()
        ));
        let log_file = File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let mut command = Command::new(&binary);
        command
            .args([
                "--keep-in-foreground",
                // No configuration file, no /etc/hosts, no /etc/resolv.conf:
                // only the records below, and no upstream to forward to.
                "--conf-file=/dev/null",
                "--no-hosts",
                "--no-resolv",
                "--no-poll",
                // Names under pd.test that are not configured are NXDOMAIN;
                // anything else is REFUSED (there is no upstream server).
                "--local=/pd.test/",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--pid-file=",
                "--log-facility=-",
                "--log-queries",
            ])
            .arg(format!("--port={port}"))
            .args(records)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file));
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_file(&log);
                return Err(format!("cannot run {}: {e}", binary.display()));
            }
        };
        let mut dnsmasq = Self { child, port, log };
        dnsmasq.wait_until_answering()?;
        Ok(dnsmasq)
    }

    pub fn wait_until_answering(&mut self) -> Result<(), String> {
        let probe = UdpSocket::bind((LOCALHOST, 0)).map_err(|e| e.to_string())?;
        probe
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 512];
        let mut id = 0x5d00u16;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "dnsmasq on port {} exited ({status}): {}",
                    self.port,
                    self.log_text()
                ));
            }
            id = id.wrapping_add(1);
            // A failed send (ICMP refused from an earlier probe) is retried.
            let _ = probe.send_to(&dns_query(id, "ready.pd.test"), (LOCALHOST, self.port));
            match probe.recv_from(&mut buf) {
                Ok((len, from)) if len >= 2 && from.port() == self.port => return Ok(()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        Err(format!(
            "dnsmasq on port {} did not answer within 10 s: {}",
            self.port,
            self.log_text()
        ))
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.port))
    }

    pub fn dns(&self) -> DnsConfig {
        DnsConfig::Servers(vec![self.addr()])
    }

    pub fn log_text(&self) -> String {
        read_to_string(&self.log)
    }
}

fn read_to_string(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    text
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
