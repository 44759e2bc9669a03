//! A real SOCKS4 and SOCKS4a proxy for the tests: OpenSSH's dynamic port
//! forwarding (`ssh -D`), through an `sshd` of the test's own on 127.0.0.1
//! (keys made here, public-key login, nothing read from the system's
//! configuration). microsocks speaks only SOCKS5 and Debian's dante-server
//! has no SOCKS4a; `ssh -D` answers SOCKS4, SOCKS4a and SOCKS5.
#![allow(dead_code, unreachable_pub)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn free_port() -> u16 {
    TcpListener::bind((LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn binary(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed: the SOCKS4/4a tests run OpenSSH's dynamic forwarding. \
                 Install it with `apt-get install openssh-server openssh-client` \
                 (scripts/test.sh does)"
            )
        })
}

/// `sshd` on 127.0.0.1 and `ssh -N -D 127.0.0.1:PORT` logged in to it.
#[derive(Debug)]
pub struct SshSocks {
    sshd: Child,
    ssh: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SshSocks {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = |name: &str| dir.path().join(name);
        for key in ["host_key", "user_key"] {
            let status = Command::new(binary("ssh-keygen"))
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path(key))
                .status()
                .expect("run ssh-keygen");
            assert!(status.success(), "ssh-keygen failed");
        }
        std::fs::copy(path("user_key.pub"), path("authorized_keys")).expect("authorized_keys");
        let ssh_port = free_port();
        let config = format!(
            "Port {ssh_port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
             PidFile {}\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nAllowTcpForwarding yes\n\
             PermitRootLogin prohibit-password\n",
            path("host_key").display(),
            path("authorized_keys").display(),
            path("sshd.pid").display(),
        );
        std::fs::write(path("sshd_config"), config).expect("write sshd_config");
        // sshd's privilege separation wants this directory (root only).
        let _ = std::fs::create_dir_all("/run/sshd");
        let sshd = Command::new(binary("sshd"))
            .args(["-D", "-e", "-f"])
            .arg(path("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(path("sshd.log")).expect("sshd.log"))
            .spawn()
            .expect("start sshd");
        wait_for(ssh_port, &path("sshd.log"));
        let port = free_port();
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(whoami);
        let ssh = Command::new(binary("ssh"))
            .arg("-N")
            .arg("-D")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-i")
            .arg(path("user_key"))
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
                "-F",
                "/dev/null",
                "-p",
            ])
            .arg(ssh_port.to_string())
            .arg(format!("{user}@127.0.0.1"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(path("ssh.log")).expect("ssh.log"))
            .spawn()
            .expect("start ssh -D");
        wait_for(port, &path("ssh.log"));
        Self {
            sshd,
            ssh,
            port,
            dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.port))
    }

    /// `{scheme}://127.0.0.1:PORT` (`socks4`, `socks4a`, `socks5`, `socks5h`).
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The same with a SOCKS4 user id (ssh ignores it).
    pub fn url_with_user(&self, scheme: &str, user: &str) -> String {
        format!("{scheme}://{user}@127.0.0.1:{}", self.port)
    }
}

impl Drop for SshSocks {
    fn drop(&mut self) {
        for child in [&mut self.ssh, &mut self.sshd] {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = &self.dir;
    }
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Waits (10 s at most) until 127.0.0.1:`port` accepts connections.
fn wait_for(port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect((LOCALHOST, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on 127.0.0.1:{port} after 10 s; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
