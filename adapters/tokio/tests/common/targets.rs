//! Local stand-ins for an exchange, for the injector's tests: a WebSocket
//! echo server and a small HTTP/1.1 server (plain TCP or TLS with a test CA
//! made here by rcgen), a TLS-terminating front for a plaintext server (to
//! turn tinyproxy into an `https://` proxy), a black hole that accepts and
//! never answers, and a closed port. Everything runs in process, on the
//! calling test's tokio runtime, on 127.0.0.1:0.
//!
//! Special paths, on both servers: `/status/NNN` answers HTTP status NNN
//! (the WebSocket handshake is refused with it; 429 and 503 carry
//! `Retry-After: 1`). Anything else is a WebSocket echo / `200 ok`.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Response as HttpResponse, StatusCode};
use futures_util::{SinkExt as _, StreamExt as _};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

pub const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// How long `Target::wait_*` wait before they panic.
pub const WAIT: Duration = Duration::from_secs(5);

// ------------------------------------------------------------------ PKI

/// A test CA and a server certificate it signed for `localhost` and
/// `127.0.0.1` (IP SAN), ECDSA P-256. The PEM files are written to a
/// temporary directory that lives as long as this value.
#[derive(Debug)]
pub struct TestPki {
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub server_cert_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
    dir: tempfile::TempDir,
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    /// A fresh CA and server certificate: two `TestPki`s do not trust each
    /// other's certificates.
    pub fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "proxy-delegate injector test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
            .expect("self-signed CA");

        let key = KeyPair::generate().expect("server key");
        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server parameters");
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server.signed_by(&key, &*ca).expect("server certificate");

        let dir = tempfile::Builder::new()
            .prefix("proxy-delegate-pki-")
            .tempdir()
            .expect("create a temporary directory");
        let pki = Self {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            server_cert_pem: server.pem(),
            server_key_pem: key.serialize_pem(),
            server_cert_der: server.der().clone(),
            server_key_der: key.serialize_der(),
            dir,
        };
        pki.write_ca(&pki.ca_path());
        std::fs::write(pki.dir.path().join("server.pem"), &pki.server_cert_pem)
            .expect("write server.pem");
        std::fs::write(pki.dir.path().join("server.key"), &pki.server_key_pem)
            .expect("write server.key");
        pki
    }

    /// The CA certificate as a PEM file (`ca.pem` in its directory).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn server_cert_path(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn server_key_path(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// Writes the CA certificate (PEM) to `path`.
    pub fn write_ca(&self, path: &Path) {
        std::fs::write(path, &self.ca_pem)
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// A server configuration presenting the server certificate, offering
    /// the ALPN protocols `alpn` (none: no ALPN).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        let mut config = ServerConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.server_cert_der.clone()], key)
            .expect("server certificate and key");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    pub fn acceptor(&self, alpn: &[&[u8]]) -> TlsAcceptor {
        TlsAcceptor::from(self.server_config(alpn))
    }

    /// A client configuration trusting only this CA.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("add the test CA");
        Arc::new(
            ClientConfig::builder_with_provider(Self::provider())
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.client_config())
    }
}

// ------------------------------------------------------------------ Target

/// One request (HTTP) or handshake (WebSocket) a target saw.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// The request target: path and query.
    pub path: String,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    WebSocket,
    Http,
}

/// A running target server and what it has seen. Clones share the
/// counters. Dropping it does not stop the server (it runs until the test's
/// runtime ends); `stop` and `kick` do.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub kind: Kind,
    pub tls: bool,
    /// TCP connections accepted.
    pub opened: Arc<AtomicUsize>,
    /// TCP connections open now (accepted and not yet closed).
    pub open_now: Arc<AtomicUsize>,
    /// TCP connections closed, by either side.
    pub closed: Arc<AtomicUsize>,
    /// WebSocket handshakes answered with 101 (always 0 on the HTTP target).
    pub upgraded: Arc<AtomicUsize>,
    /// Every handshake or request, refused ones included, in order.
    pub requests: Arc<Mutex<Vec<SeenRequest>>>,
    control: watch::Sender<Control>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Control {
    /// Bumped by `kick`: every open connection is dropped.
    kicks: u64,
    /// Set by `stop`: the listener is closed.
    stopped: bool,
}

impl Target {
    fn new(addr: SocketAddr, kind: Kind, tls: bool) -> Self {
        Self {
            addr,
            kind,
            tls,
            opened: Arc::default(),
            open_now: Arc::default(),
            closed: Arc::default(),
            upgraded: Arc::default(),
            requests: Arc::default(),
            control: watch::Sender::new(Control::default()),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `ws://`, `wss://`, `http://` or `https://` `127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        self.url_for_host("127.0.0.1", path)
    }

    /// The same with another host name, e.g. `localhost` (also in the
    /// certificate).
    pub fn url_for_host(&self, host: &str, path: &str) -> String {
        let scheme = match (self.kind, self.tls) {
            (Kind::WebSocket, false) => "ws",
            (Kind::WebSocket, true) => "wss",
            (Kind::Http, false) => "http",
            (Kind::Http, true) => "https",
        };
        format!("{scheme}://{host}:{}{path}", self.port())
    }

    pub fn opened(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }

    pub fn open_now(&self) -> usize {
        self.open_now.load(Ordering::SeqCst)
    }

    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn upgraded(&self) -> usize {
        self.upgraded.load(Ordering::SeqCst)
    }

    /// The paths of every request seen so far.
    pub fn paths(&self) -> Vec<String> {
        self.requests
            .lock()
            .expect("requests lock")
            .iter()
            .map(|r| r.path.clone())
            .collect()
    }

    pub fn last_request(&self) -> Option<SeenRequest> {
        self.requests.lock().expect("requests lock").last().cloned()
    }

    /// Waits (up to `WAIT`) until `done` holds; panics naming `what`
    /// otherwise.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "target {}: not {what} within {} s (opened {}, open now {}, closed {}, upgraded {})",
                self.addr,
                WAIT.as_secs(),
                self.opened(),
                self.open_now(),
                self.closed(),
                self.upgraded(),
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until at least `n` connections were closed in all.
    pub async fn wait_closed(&self, n: usize) {
        self.wait_until(&format!("{n} connections closed"), |t| t.closed() >= n)
            .await;
    }

    /// Waits until exactly `n` connections are open.
    pub async fn wait_open_now(&self, n: usize) {
        self.wait_until(&format!("{n} connections open"), |t| t.open_now() == n)
            .await;
    }

    /// Waits until at least `n` connections were accepted in all.
    pub async fn wait_opened(&self, n: usize) {
        self.wait_until(&format!("{n} connections opened"), |t| t.opened() >= n)
            .await;
    }

    /// Drops every open connection (no WebSocket close frame, no HTTP
    /// answer); the server goes on accepting new ones.
    pub fn kick(&self) {
        self.control.send_modify(|c| c.kicks += 1);
    }

    /// Closes the listener (new connections are refused) and drops every
    /// open connection.
    pub fn stop(&self) {
        self.control.send_modify(|c| {
            c.kicks += 1;
            c.stopped = true;
        });
    }

    fn record(&self, path: String, headers: &axum::http::HeaderMap) {
        let headers = headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        self.requests
            .lock()
            .expect("requests lock")
            .push(SeenRequest { path, headers });
    }

    /// Accepts connections until `stop`, running `serve` on each (after the
    /// TLS handshake when `acceptor` is given) until it ends or `kick`.
    fn spawn_accept_loop<F, Fut>(
        &self,
        listener: TcpListener,
        acceptor: Option<TlsAcceptor>,
        serve: F,
    ) where
        F: Fn(Self, Box<dyn Io>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let target = self.clone();
        let serve = Arc::new(serve);
        tokio::spawn(async move {
            let mut control = target.control.subscribe();
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    () = until(&mut control, |c| c.stopped) => return,
                };
                target.opened.fetch_add(1, Ordering::SeqCst);
                target.open_now.fetch_add(1, Ordering::SeqCst);
                let guard = OpenGuard(target.clone());
                let mut kicked = target.control.subscribe();
                let (acceptor, serve, target) =
                    (acceptor.clone(), Arc::clone(&serve), target.clone());
                tokio::spawn(async move {
                    let _guard = guard;
                    let session = async {
                        let io: Box<dyn Io> = match acceptor {
                            Some(acceptor) => match acceptor.accept(stream).await {
                                Ok(tls) => Box::new(tls),
                                Err(_) => return,
                            },
                            None => Box::new(stream),
                        };
                        serve(target, io).await;
                    };
                    tokio::select! {
                        () = session => {}
                        () = changed(&mut kicked) => {}
                    }
                });
            }
        });
    }
}

/// Counts a connection closed when its task ends, however it ends.
struct OpenGuard(Target);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open_now.fetch_sub(1, Ordering::SeqCst);
        self.0.closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// Resolves on the next change; never when every `Target` is gone (the
/// server then runs until the runtime ends).
async fn changed(control: &mut watch::Receiver<Control>) {
    if control.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn until(control: &mut watch::Receiver<Control>, done: impl Fn(&Control) -> bool) {
    if control.wait_for(|c| done(c)).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A plain or TLS server-side stream.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// `NNN` from `/status/NNN` (query ignored), when it is a valid status.
fn status_path(path: &str) -> Option<StatusCode> {
    let path = path.split('?').next().unwrap_or(path);
    let code = path.strip_prefix("/status/")?.parse::<u16>().ok()?;
    StatusCode::from_u16(code)
        .ok()
        .filter(|s| s.as_u16() >= 200)
}

async fn bind() -> TcpListener {
    TcpListener::bind((LOCALHOST, 0))
        .await
        .expect("bind 127.0.0.1:0")
}

// ------------------------------------------------------------------ WebSocket

/// A WebSocket echo server on 127.0.0.1 (TLS with `pki`'s server
/// certificate when given): every text and binary message is sent back;
/// pings are answered; a handshake to `/status/NNN` is refused with HTTP
/// status NNN and the body `status NNN`.
pub async fn ws_echo(tls: Option<&TestPki>) -> Target {
    let listener = bind().await;
    let target = Target::new(
        listener.local_addr().expect("local address"),
        Kind::WebSocket,
        tls.is_some(),
    );
    let acceptor = tls.map(|pki| pki.acceptor(&[]));
    target.spawn_accept_loop(listener, acceptor, |target, io| async move {
        let seen = target.clone();
        // tungstenite's Callback fixes this closure's (large) error type.
        #[allow(clippy::result_large_err)]
        let callback = move |request: &Request, response: Response| {
            seen.record(request.uri().to_string(), request.headers());
            match status_path(request.uri().path()) {
                Some(status) => Err(refusal(status)),
                None => Ok(response),
            }
        };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(io, callback).await else {
            return;
        };
        target.upgraded.fetch_add(1, Ordering::SeqCst);
        // A Close is answered by tungstenite on the next read, which then
        // ends the stream.
        while let Some(Ok(message)) = ws.next().await {
            if matches!(message, Message::Text(_) | Message::Binary(_))
                && ws.send(message).await.is_err()
            {
                break;
            }
        }
    });
    target
}

fn refusal(status: StatusCode) -> ErrorResponse {
    let body = format!("status {}", status.as_u16());
    let mut response = HttpResponse::builder()
        .status(status)
        .header("content-type", "text/plain")
        .header("content-length", body.len().to_string())
        .header("connection", "close");
    if matches!(status.as_u16(), 429 | 503) {
        response = response.header("retry-after", "1");
    }
    response.body(Some(body)).expect("refusal response")
}

// ------------------------------------------------------------------ HTTP

/// An HTTP/1.1 server on 127.0.0.1 (TLS with `pki`'s server certificate
/// and ALPN `http/1.1` when given): `GET /status/NNN` answers status NNN
/// with the body `status NNN`; any other path `200 ok`.
pub async fn http_target(tls: Option<&TestPki>) -> Target {
    let listener = bind().await;
    let target = Target::new(
        listener.local_addr().expect("local address"),
        Kind::Http,
        tls.is_some(),
    );
    let acceptor = tls.map(|pki| pki.acceptor(&[b"http/1.1"]));
    target.spawn_accept_loop(listener, acceptor, |target, io| async move {
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let target = target.clone();
            async move {
                let path = request.uri().path_and_query().map_or_else(
                    || request.uri().path().to_owned(),
                    |p| p.as_str().to_owned(),
                );
                target.record(path, request.headers());
                let (status, body) = match status_path(request.uri().path()) {
                    Some(status) => (status, format!("status {}", status.as_u16())),
                    None => (StatusCode::OK, "ok".to_owned()),
                };
                let mut response = HttpResponse::builder()
                    .status(status)
                    .header("content-type", "text/plain");
                if matches!(status.as_u16(), 429 | 503) {
                    response = response.header("retry-after", "1");
                }
                Ok::<_, Infallible>(response.body(Body::from(body)).expect("response"))
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(io), service)
            .await;
    });
    target
}

// ------------------------------------------------------------------ TLS front

/// A TLS-terminating front on 127.0.0.1 for `backend`: accepts TLS with
/// `pki`'s server certificate (no ALPN) and pipes the plaintext both ways
/// to a new connection to `backend`. In front of tinyproxy it makes an
/// `https://` proxy (TLS to the proxy).
pub async fn tls_front(backend: SocketAddr, pki: &TestPki) -> SocketAddr {
    let listener = bind().await;
    let addr = listener.local_addr().expect("local address");
    let acceptor = pki.acceptor(&[]);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

// ------------------------------------------------------------------ dead ends

/// A listener that accepts connections and never reads, writes or closes
/// them (for timeouts).
#[derive(Clone, Debug)]
pub struct BlackHole {
    pub addr: SocketAddr,
    /// Connections accepted (and held open).
    pub accepted: Arc<AtomicUsize>,
}

pub async fn black_hole() -> BlackHole {
    let listener = bind().await;
    let hole = BlackHole {
        addr: listener.local_addr().expect("local address"),
        accepted: Arc::default(),
    };
    let accepted = Arc::clone(&hole.accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    hole
}

/// An address on 127.0.0.1 nobody listens on (a port just bound and
/// released): connecting to it is refused.
pub fn closed_port() -> SocketAddr {
    StdTcpListener::bind((LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
}
