//! A byte stream to `host:port` through a proxy: an HTTP CONNECT tunnel
//! (over TCP, or TLS to the proxy for `https://`), or a SOCKS4/4a/5/5h
//! tunnel; a plain TCP connection when there is no proxy. Then TLS to the
//! target when asked. Every failure is classified as it happens.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use percent_encoding::percent_decode_str;
use proxy_delegate_core::model::{ProxyUrl, Scheme};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use super::outcome::Failure;

/// Longest answer head to `CONNECT` that is read.
const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// A stream the injector hands out: TCP, TLS or a tunnel inside TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug> Io for T {}

/// The connection under a WebSocket or a request, whatever it goes through.
#[derive(Debug)]
pub struct Tunnel(Box<dyn Io>);

impl Tunnel {
    fn new(io: impl Io + 'static) -> Self {
        Self(Box::new(io))
    }
}

impl AsyncRead for Tunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// Where to connect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) host: &'a str,
    pub(crate) port: u16,
    /// TLS to the target (`wss://`, `https://`).
    pub(crate) tls: bool,
}

/// Opens a stream to `target` through `proxy` (directly when `None`), with
/// TLS to the target when it asks for it.
pub(crate) async fn open(
    proxy: Option<&ProxyUrl>,
    target: Target<'_>,
    tls: &TlsConnector,
) -> Result<Tunnel, Failure> {
    let stream = match proxy {
        None => Tunnel::new(
            TcpStream::connect((target.host, target.port))
                .await
                .map_err(|e| Failure::target_unreachable(&e))
                .inspect(nodelay)?,
        ),
        Some(proxy) => through(proxy, target, tls).await?,
    };
    if !target.tls {
        return Ok(stream);
    }
    let name = server_name(target.host)?;
    let tls = tls
        .connect(name, stream)
        .await
        .map_err(|e| Failure::target_tls(&e))?;
    Ok(Tunnel::new(tls))
}

fn nodelay(s: &TcpStream) {
    // Feed messages are small: do not hold them back (Nagle).
    let _ = s.set_nodelay(true);
}

fn server_name(host: &str) -> Result<ServerName<'static>, Failure> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned())
        .map_err(|_| Failure::other(format!("{host:?} is not a name TLS can check")))
}

async fn through(
    proxy: &ProxyUrl,
    target: Target<'_>,
    tls: &TlsConnector,
) -> Result<Tunnel, Failure> {
    let tcp = TcpStream::connect((proxy_host(proxy), proxy.port()))
        .await
        .map_err(|e| Failure::proxy_unreachable("cannot reach the proxy", &e))?;
    nodelay(&tcp);
    let user = proxy.username().map(decode);
    let pass = proxy.password().map(|p| decode(p.expose()));
    match proxy.scheme() {
        Scheme::Http => connect_tunnel(tcp, target, user, pass).await,
        Scheme::Https => {
            let name = server_name(proxy.host())?;
            let to_proxy = tls
                .connect(name, tcp)
                .await
                .map_err(|e| Failure::proxy_unreachable("TLS with the proxy failed", &e))?;
            connect_tunnel(to_proxy, target, user, pass).await
        }
        Scheme::Socks5 | Scheme::Socks4 => {
            // The client resolves the target's name.
            let addr = resolve(target, proxy.scheme() == Scheme::Socks4).await?;
            socks(tcp, proxy.scheme(), addr, user, pass).await
        }
        Scheme::Socks5h | Scheme::Socks4a => {
            // The proxy resolves the name.
            socks(tcp, proxy.scheme(), (target.host, target.port), user, pass).await
        }
    }
}

fn proxy_host(proxy: &ProxyUrl) -> &str {
    proxy.host().trim_start_matches('[').trim_end_matches(']')
}

/// Userinfo is kept percent-encoded in a [`ProxyUrl`]; proxies want it plain.
fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

async fn resolve(target: Target<'_>, ipv4_only: bool) -> Result<SocketAddr, Failure> {
    let addrs = tokio::net::lookup_host((target.host, target.port))
        .await
        .map_err(|e| Failure::other(format!("cannot resolve {}: {e}", target.host)))?;
    let mut addrs = addrs.filter(|a| !ipv4_only || a.is_ipv4());
    addrs.next().ok_or_else(|| {
        Failure::other(format!(
            "{} has no {}address",
            target.host,
            if ipv4_only { "IPv4 " } else { "" }
        ))
    })
}

async fn socks<'t, T>(
    tcp: TcpStream,
    scheme: Scheme,
    target: T,
    user: Option<String>,
    pass: Option<String>,
) -> Result<Tunnel, Failure>
where
    T: tokio_socks::IntoTargetAddr<'t>,
{
    use tokio_socks::tcp::{Socks4Stream, Socks5Stream};
    let stream = match (scheme, user, pass) {
        (Scheme::Socks4 | Scheme::Socks4a, Some(user), _) => {
            Socks4Stream::connect_with_userid_and_socket(tcp, target, &user)
                .await
                .map(Socks4Stream::into_inner)
        }
        (Scheme::Socks4 | Scheme::Socks4a, None, _) => {
            Socks4Stream::connect_with_socket(tcp, target)
                .await
                .map(Socks4Stream::into_inner)
        }
        (_, Some(user), pass) => Socks5Stream::connect_with_password_and_socket(
            tcp,
            target,
            &user,
            pass.as_deref().unwrap_or(""),
        )
        .await
        .map(Socks5Stream::into_inner),
        (_, None, _) => Socks5Stream::connect_with_socket(tcp, target)
            .await
            .map(Socks5Stream::into_inner),
    };
    stream.map(Tunnel::new).map_err(|e| Failure::socks(&e))
}

/// `CONNECT host:port` on an HTTP proxy; Basic auth from the URL's
/// credentials. The answer's head is read through a buffer that stays in
/// the stream when the proxy sent more than the head.
async fn connect_tunnel<S>(
    stream: S,
    target: Target<'_>,
    user: Option<String>,
    pass: Option<String>,
) -> Result<Tunnel, Failure>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug + 'static,
{
    let authority = if target.host.contains(':') && !target.host.starts_with('[') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(user) = user {
        let pair = format!("{user}:{}", pass.unwrap_or_default());
        let token = base64::engine::general_purpose::STANDARD.encode(pair);
        head.push_str("Proxy-Authorization: Basic ");
        head.push_str(&token);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut reader = BufReader::new(stream);
    let broke = |e: std::io::Error| Failure::proxy_unreachable("the proxy broke off CONNECT", &e);
    reader
        .get_mut()
        .write_all(head.as_bytes())
        .await
        .map_err(broke)?;
    reader.get_mut().flush().await.map_err(broke)?;

    let mut line = Vec::with_capacity(64);
    let mut read = 0;
    let mut status: Option<(u16, String)> = None;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).await.map_err(broke)?;
        read += n;
        if n == 0 {
            return Err(broke(std::io::ErrorKind::UnexpectedEof.into()));
        }
        if read > MAX_CONNECT_HEAD {
            return Err(Failure::new(
                proxy_delegate_core::model::ErrorCategory::ProxyConnect,
                format!("the proxy's answer to CONNECT is longer than {MAX_CONNECT_HEAD} bytes"),
            ));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        match &status {
            None => status = Some(parse_status(text)?),
            Some(_) if text.is_empty() => break,
            Some(_) => {}
        }
    }
    let (code, reason) = status.unwrap_or_default();
    if !(200..300).contains(&code) {
        return Err(Failure::connect_refused(code, &reason));
    }
    // Keep the buffer only when the proxy already sent the target's bytes.
    if reader.buffer().is_empty() {
        Ok(Tunnel::new(reader.into_inner()))
    } else {
        Ok(Tunnel::new(reader))
    }
}

fn parse_status(line: &str) -> Result<(u16, String), Failure> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(code) if version.starts_with("HTTP/1.") => {
            Ok((code, parts.next().unwrap_or_default().to_owned()))
        }
        _ => Err(Failure::new(
            proxy_delegate_core::model::ErrorCategory::ProxyConnect,
            format!(
                "the proxy does not speak HTTP (it answered CONNECT with {:?})",
                line.chars().take(60).collect::<String>()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_read() {
        assert_eq!(
            parse_status("HTTP/1.1 200 Connection established").unwrap(),
            (200, "Connection established".to_owned())
        );
        assert_eq!(
            parse_status("HTTP/1.0 407 Proxy Authentication Required")
                .unwrap()
                .0,
            407
        );
        assert!(parse_status("SSH-2.0-OpenSSH").is_err());
    }

    #[test]
    fn userinfo_is_decoded() {
        assert_eq!(decode("p%40ss%3Aword"), "p@ss:word");
    }
}
