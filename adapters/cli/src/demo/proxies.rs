//! The demo's two forward proxies, in process on 127.0.0.1: an HTTP CONNECT
//! proxy (hyper, Basic credentials) and a SOCKS5 proxy (fast-socks5, user
//! name and password). Both check the credentials, and both tunnel only to
//! loopback targets, so nothing the demo does reaches beyond 127.0.0.1.
//!
//! A proxy can be stopped (its port then refuses connections and its open
//! tunnels end, as when a proxy process dies) and started again on the same
//! port.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use fast_socks5::server::{Socks5ServerProtocol, SocksServerError, run_tcp_proxy};
use fast_socks5::util::target_addr::TargetAddr;
use fast_socks5::{ReplyError, Socks5Command};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::header::{PROXY_AUTHENTICATE, PROXY_AUTHORIZATION};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// The user name of both proxies.
pub(crate) const USER: &str = "demo";
/// The HTTP CONNECT proxy's password. Only ever printed as `***`.
pub(crate) const HTTP_PASSWORD: &str = "Http-demo-pw.4821";
/// The SOCKS5 proxy's password. Only ever printed as `***`.
pub(crate) const SOCKS_PASSWORD: &str = "Socks-demo-pw.7390";

/// How long a proxy may take to reach its (loopback) target.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take over its request (CONNECT or SOCKS5).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `restart` keeps trying to bind the old port.
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);

/// Which kind of proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `http://`: CONNECT tunnels, `Proxy-Authorization: Basic`.
    HttpConnect,
    /// `socks5://`: user name and password authentication.
    Socks5,
}

impl Kind {
    /// Its id in the service's inventory.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Kind::HttpConnect => "demo-http",
            Kind::Socks5 => "demo-socks",
        }
    }

    fn scheme(self) -> &'static str {
        match self {
            Kind::HttpConnect => "http",
            Kind::Socks5 => "socks5",
        }
    }

    fn password(self) -> &'static str {
        match self {
            Kind::HttpConnect => HTTP_PASSWORD,
            Kind::Socks5 => SOCKS_PASSWORD,
        }
    }

    /// What it is, for a person.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Kind::HttpConnect => "HTTP CONNECT proxy",
            Kind::Socks5 => "SOCKS5 proxy",
        }
    }
}

/// One proxy on 127.0.0.1, running or stopped.
#[derive(Debug)]
pub(crate) struct LocalProxy {
    kind: Kind,
    addr: SocketAddr,
    running: Option<Serving>,
}

/// A listening proxy: its accept loop and the signal that ends its tunnels.
#[derive(Debug)]
struct Serving {
    stop: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.accept.abort();
    }
}

impl LocalProxy {
    /// Starts a proxy of this kind on 127.0.0.1, on a free port.
    pub(crate) async fn start(kind: Kind) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        Ok(Self {
            kind,
            addr,
            running: Some(serve(listener, kind)),
        })
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its URL with the credentials, for the inventory and the embedded
    /// configuration. Never printed: a `ProxyUrl` made from it prints the
    /// password as `***`.
    pub(crate) fn url_with_credentials(&self) -> String {
        format!(
            "{}://{USER}:{}@{}",
            self.kind.scheme(),
            self.kind.password(),
            self.addr
        )
    }

    /// Stops it: the port refuses connections from now on, and its open
    /// tunnels end.
    pub(crate) async fn stop(&mut self) {
        if let Some(mut serving) = self.running.take() {
            let _ = serving.stop.send(true);
            serving.accept.abort();
            // Aborted, the accept loop has dropped its listener.
            let _ = (&mut serving.accept).await;
        }
    }

    /// Starts it again on the same port (retrying for a few seconds while the
    /// port is not free yet).
    pub(crate) async fn restart(&mut self) -> io::Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + REBIND_TIMEOUT;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.running = Some(serve(listener, self.kind));
        Ok(())
    }
}

/// The accept loop; each connection runs until it ends or the proxy stops.
fn serve(listener: TcpListener, kind: Kind) -> Serving {
    let (stop, stopped) = watch::channel(false);
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors, or a connection reset before accept:
                // wait a little rather than spin.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let work = async {
                    match kind {
                        Kind::HttpConnect => http_connect(stream).await,
                        Kind::Socks5 => {
                            // A refused client or target ends just this
                            // connection; the client learns why from the reply.
                            let _ = socks5(stream).await;
                        }
                    }
                };
                tokio::select! {
                    () = work => {}
                    // Stopped, or the proxy is gone.
                    _ = stopped.wait_for(|s| *s) => {}
                }
            });
        }
    });
    Serving { stop, accept }
}

// ------------------------------------------------------------ HTTP CONNECT

/// What an accepted CONNECT hands to its connection once the `200` is sent.
type Tunnel = (OnUpgrade, TcpStream);

/// One client connection of the HTTP proxy: requests until a CONNECT is
/// accepted, then the tunnel.
async fn http_connect(stream: TcpStream) {
    let (tx, rx) = oneshot::channel::<Tunnel>();
    let tx = Arc::new(Mutex::new(Some(tx)));
    let service = hyper::service::service_fn(move |req| {
        let tx = tx.clone();
        async move { Ok::<_, Infallible>(answer_connect(req, &tx).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if connection.await.is_err() {
        return;
    }
    // The connection ended: with a tunnel to run, or without one (the
    // client went away, or was refused).
    let Ok((upgrade, mut upstream)) = rx.await else {
        return;
    };
    let Ok(upgraded) = upgrade.await else {
        return;
    };
    let mut client = TokioIo::new(upgraded);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// The answer to one request: `200` and a tunnel for an authorised CONNECT
/// to a loopback target; `405`, `407`, `403` or `502` otherwise.
async fn answer_connect(
    mut req: Request<Incoming>,
    tunnel: &Mutex<Option<oneshot::Sender<Tunnel>>>,
) -> Response<Empty<Bytes>> {
    if req.method() != Method::CONNECT {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let authorised = req
        .headers()
        .get(PROXY_AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| basic_matches(v, USER, HTTP_PASSWORD));
    if !authorised {
        let mut response = status(StatusCode::PROXY_AUTHENTICATION_REQUIRED);
        response.headers_mut().insert(
            PROXY_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Basic realm=\"proxy-delegate demo\""),
        );
        return response;
    }
    let target = req
        .uri()
        .authority()
        .and_then(|a| loopback(a.host(), a.port_u16()?));
    let Some(target) = target else {
        return status(StatusCode::FORBIDDEN);
    };
    let upstream = match tokio::time::timeout(UPSTREAM_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(upstream)) => upstream,
        _ => return status(StatusCode::BAD_GATEWAY),
    };
    let _ = upstream.set_nodelay(true);
    let upgrade = hyper::upgrade::on(&mut req);
    let sender = tunnel.lock().unwrap_or_else(|p| p.into_inner()).take();
    let handed = sender.is_some_and(|sender| sender.send((upgrade, upstream)).is_ok());
    if handed {
        status(StatusCode::OK)
    } else {
        // A second CONNECT on one connection: there is one tunnel per connection.
        status(StatusCode::BAD_REQUEST)
    }
}

fn status(code: StatusCode) -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    *response.status_mut() = code;
    response
}

/// Whether a `Proxy-Authorization` value is `Basic` with these credentials.
fn basic_matches(value: &str, user: &str, password: &str) -> bool {
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    decoded == format!("{user}:{password}").as_bytes()
}

// ------------------------------------------------------------ SOCKS5

/// One client connection of the SOCKS5 proxy.
async fn socks5(stream: TcpStream) -> Result<(), SocksServerError> {
    let handshake = async {
        let (proto, _) = Socks5ServerProtocol::accept_password_auth(stream, |user, password| {
            user == USER && password == SOCKS_PASSWORD
        })
        .await?;
        proto.read_command().await
    };
    let Ok(read) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await else {
        return Ok(());
    };
    let (proto, command, target) = read?;
    if !matches!(command, Socks5Command::TCPConnect) {
        return proto.reply_error(&ReplyError::CommandNotSupported).await;
    }
    let target = match &target {
        TargetAddr::Ip(addr) => loopback(&addr.ip().to_string(), addr.port()),
        TargetAddr::Domain(host, port) => loopback(host, *port),
    };
    let Some(target) = target else {
        return proto.reply_error(&ReplyError::ConnectionNotAllowed).await;
    };
    run_tcp_proxy(proto, &TargetAddr::Ip(target), UPSTREAM_TIMEOUT, true).await?;
    Ok(())
}

// ------------------------------------------------------------ targets

/// The target if it is on this machine's loopback (`localhost`, 127.0.0.0/8
/// or `::1`); `None` for anything else, which these proxies refuse.
fn loopback(host: &str, port: u16) -> Option<SocketAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse::<IpAddr>().ok()?
    };
    ip.is_loopback().then_some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_allowed() {
        assert_eq!(
            loopback("127.0.0.1", 80),
            Some("127.0.0.1:80".parse().expect("address"))
        );
        assert!(loopback("localhost", 80).is_some());
        assert!(loopback("[::1]", 80).is_some());
        assert!(loopback("127.9.9.9", 80).is_some());
        assert!(loopback("10.0.0.1", 80).is_none());
        assert!(loopback("example.com", 80).is_none());
        assert!(loopback("", 80).is_none());
    }

    #[test]
    fn basic_credentials_are_checked() {
        let good = base64::engine::general_purpose::STANDARD.encode("demo:pw");
        assert!(basic_matches(&format!("Basic {good}"), "demo", "pw"));
        assert!(basic_matches(&format!("basic  {good}"), "demo", "pw"));
        assert!(!basic_matches(&format!("Bearer {good}"), "demo", "pw"));
        assert!(!basic_matches(&format!("Basic {good}"), "demo", "other"));
        assert!(!basic_matches("Basic !!!", "demo", "pw"));
        assert!(!basic_matches("", "demo", "pw"));
    }
}
