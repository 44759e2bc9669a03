//! A switchable HTTP/1.1 relay on 127.0.0.1 in front of the real service:
//! the client's endpoint is the relay, and the relay's [`Mode`] decides,
//! request by request, what the client gets — the service's own answer,
//! a 5xx, a malformed answer, an answer slower than the client's timeout,
//! or nothing at all (a black hole: it accepts, and stops forwarding bytes
//! in either direction).
//!
//! It reads each request whole (head and body: `Content-Length` or
//! chunked), looks at the mode, and then answers or forwards it over a
//! backend connection of its own (one per client connection, kept alive).
//! Every request is counted by route.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// What the relay does with the requests it reads from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Forward to the service and back, unchanged.
    Pass,
    /// Answer every request itself with 500 or 503 (in turn; the 503 with
    /// `Retry-After: 1`), forwarding nothing.
    Fail,
    /// Forward, but replace each `200` answer to a proxy request with a
    /// malformed one (four kinds in turn: a field of the wrong type, the
    /// real answer cut short, an HTML page, a proxy URL of an unsupported
    /// scheme).
    Malformed,
    /// Forward, and hold the answer this long before passing it on.
    Slow(Duration),
    /// Read the request and never answer; forward nothing; keep the
    /// connection open until the client closes it.
    BlackHole,
}

/// Requests the relay read, by route and by what it did.
#[derive(Debug, Default)]
struct Counts {
    resolve: AtomicU64,
    feedback: AtomicU64,
    health: AtomicU64,
    other: AtomicU64,
    failed: AtomicU64,
    mangled: AtomicU64,
    delayed: AtomicU64,
    swallowed: AtomicU64,
}

/// A snapshot of the relay's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RelayCounts {
    /// `POST /api/v1/proxy/request`.
    pub(crate) resolve: u64,
    /// `POST /api/v1/proxy/feedback`.
    pub(crate) feedback: u64,
    /// `GET /health`.
    pub(crate) health: u64,
    /// Anything else.
    pub(crate) other: u64,
    /// Answered 500/503 by the relay.
    pub(crate) failed: u64,
    /// Answers replaced with malformed ones.
    pub(crate) mangled: u64,
    /// Answers held back.
    pub(crate) delayed: u64,
    /// Requests swallowed by the black hole.
    pub(crate) swallowed: u64,
}

impl std::fmt::Display for RelayCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "relay saw resolve={} feedback={} health={} other={} (answered 5xx {}, mangled {}, \
             delayed {}, swallowed {})",
            self.resolve,
            self.feedback,
            self.health,
            self.other,
            self.failed,
            self.mangled,
            self.delayed,
            self.swallowed
        )
    }
}

#[derive(Debug)]
struct Shared {
    backend: SocketAddr,
    mode: Mutex<Mode>,
    counts: Counts,
    /// Turns of the `Fail` and `Malformed` answers.
    turn: AtomicU64,
}

/// The relay: listening on 127.0.0.1 until the test's runtime ends.
#[derive(Debug, Clone)]
pub(crate) struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Relay {
    /// Starts the relay in [`Mode::Pass`] in front of `backend`.
    pub(crate) async fn start(backend: SocketAddr) -> Self {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the relay on 127.0.0.1");
        let addr = listener.local_addr().expect("the relay's address");
        let shared = Arc::new(Shared {
            backend,
            mode: Mutex::new(Mode::Pass),
            counts: Counts::default(),
            turn: AtomicU64::new(0),
        });
        let accepting = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = accepting.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &shared).await;
                });
            }
        });
        Self { addr, shared }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the mode for the requests read from now on.
    pub(crate) fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
    }

    /// The counters so far.
    pub(crate) fn counts(&self) -> RelayCounts {
        let c = &self.shared.counts;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        RelayCounts {
            resolve: get(&c.resolve),
            feedback: get(&c.feedback),
            health: get(&c.health),
            other: get(&c.other),
            failed: get(&c.failed),
            mangled: get(&c.mangled),
            delayed: get(&c.delayed),
            swallowed: get(&c.swallowed),
        }
    }
}

/// One HTTP/1.1 message as read: its raw bytes (forwarded as they are).
#[derive(Debug)]
struct Message {
    raw: Vec<u8>,
    /// Where the body starts in `raw`.
    body_start: usize,
    /// The first line: `POST /path HTTP/1.1` or `HTTP/1.1 200 OK`.
    first_line: String,
}

impl Message {
    fn body(&self) -> &[u8] {
        &self.raw[self.body_start..]
    }
}

/// Serves one client connection until it closes or fails.
async fn serve(mut client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut from_client = Vec::new();
    let mut backend: Option<(TcpStream, Vec<u8>)> = None;
    loop {
        let Some(request) = read_message(&mut client, &mut from_client, false).await? else {
            return Ok(());
        };
        let counts = &shared.counts;
        let route = request.first_line.split(' ').nth(1).unwrap_or_default();
        let is_resolve =
            request.first_line.starts_with("POST ") && route.starts_with("/api/v1/proxy/request");
        let counter = if is_resolve {
            &counts.resolve
        } else if route.starts_with("/api/v1/proxy/feedback") {
            &counts.feedback
        } else if route.starts_with("/health") {
            &counts.health
        } else {
            &counts.other
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let mode = *shared.mode.lock().unwrap_or_else(|p| p.into_inner());
        match mode {
            Mode::BlackHole => {
                counts.swallowed.fetch_add(1, Ordering::SeqCst);
                // Nothing goes anywhere: read and discard until the client
                // gives up and closes.
                drop(backend.take());
                let mut sink = [0u8; 4096];
                while client.read(&mut sink).await? > 0 {}
                return Ok(());
            }
            Mode::Fail => {
                counts.failed.fetch_add(1, Ordering::SeqCst);
                let turn = shared.turn.fetch_add(1, Ordering::SeqCst);
                // A 503 asks the client to wait a second, as a balancer
                // in maintenance does.
                let (status, extra) = if turn.is_multiple_of(2) {
                    ("500 Internal Server Error", "")
                } else {
                    ("503 Service Unavailable", "retry-after: 1\r\n")
                };
                let body =
                    r#"{"error":{"code":"internal","message":"injected by the fault relay"}}"#;
                client
                    .write_all(&response(
                        extra,
                        status,
                        "application/json",
                        body.as_bytes(),
                    ))
                    .await?;
            }
            Mode::Pass | Mode::Malformed | Mode::Slow(_) => {
                let Some(answer) = forward(shared.backend, &mut backend, &request).await else {
                    // The service is not there: the client sees its
                    // connection closed.
                    return Ok(());
                };
                let mut bytes = answer.raw.clone();
                if let Mode::Slow(delay) = mode {
                    counts.delayed.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                }
                let ok = answer.first_line.split(' ').nth(1) == Some("200");
                if mode == Mode::Malformed && is_resolve && ok {
                    counts.mangled.fetch_add(1, Ordering::SeqCst);
                    let turn = shared.turn.fetch_add(1, Ordering::SeqCst);
                    bytes = malformed(turn, answer.body());
                }
                client.write_all(&bytes).await?;
            }
        }
    }
}

/// Sends `request` to the backend (connecting first if needed) and reads
/// its answer; `None` when the backend cannot be reached or breaks off.
async fn forward(
    addr: SocketAddr,
    backend: &mut Option<(TcpStream, Vec<u8>)>,
    request: &Message,
) -> Option<Message> {
    for fresh in [false, true] {
        if fresh || backend.is_none() {
            let stream = TcpStream::connect(addr).await.ok()?;
            let _ = stream.set_nodelay(true);
            *backend = Some((stream, Vec::new()));
        }
        let (stream, buf) = backend.as_mut()?;
        if stream.write_all(&request.raw).await.is_err() {
            continue;
        }
        match read_message(stream, buf, true).await {
            Ok(Some(answer)) => return Some(answer),
            // A kept-alive connection the service closed: once more, on a
            // new one. (Requests here are idempotent enough for a test.)
            _ if !fresh => continue,
            _ => {
                *backend = None;
                return None;
            }
        }
    }
    None
}

/// A whole response with `extra` headers (each ending in `\r\n`).
fn response(extra: &str, status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A `200` answer to a proxy request that does not decode (or decodes to
/// something invalid), one kind per turn.
fn malformed(turn: u64, real: &[u8]) -> Vec<u8> {
    match turn % 4 {
        0 => response(
            "",
            "200 OK",
            "application/json",
            br#"{"proxy_url": 12, "ttl_seconds": "soon"}"#,
        ),
        1 => {
            let cut = &real[..real.len() / 2];
            response("", "200 OK", "application/json", cut)
        }
        2 => response(
            "",
            "200 OK",
            "text/html",
            b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        ),
        _ => response(
            "",
            "200 OK",
            "application/json",
            br#"{"proxy_url":"ftp://127.0.0.1:21","fallback_policy":"embedded_fallback","ttl_seconds":60,"metadata":{"proxy_id":"px-ftp"}}"#,
        ),
    }
}

/// Reads more bytes into `buf`; `Ok(0)` at end of stream.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

/// Reads one message from `stream`, starting with the bytes already in
/// `buf`; what follows it stays in `buf`. `None` at a clean end of stream
/// before its first byte. The body is framed by `Content-Length` or chunked
/// encoding; a response with neither runs to the end of the stream.
async fn read_message(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    response: bool,
) -> std::io::Result<Option<Message>> {
    let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "cut short");
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if fill(stream, buf).await? == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(eof()) };
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let first_line = head.lines().next().unwrap_or_default().to_owned();
    let header = |name: &str| {
        head.lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    let end = if chunked {
        let mut pos = head_end;
        loop {
            let line_end = loop {
                if let Some(e) = find_crlf(buf, pos) {
                    break e;
                }
                if fill(stream, buf).await? == 0 {
                    return Err(eof());
                }
            };
            let size_text = String::from_utf8_lossy(&buf[pos..line_end]).into_owned();
            let size_text = size_text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| std::io::Error::other("a bad chunk size"))?;
            pos = line_end + 2;
            if size == 0 {
                // Trailers, up to an empty line.
                loop {
                    let e = loop {
                        if let Some(e) = find_crlf(buf, pos) {
                            break e;
                        }
                        if fill(stream, buf).await? == 0 {
                            return Err(eof());
                        }
                    };
                    let empty = e == pos;
                    pos = e + 2;
                    if empty {
                        break;
                    }
                }
                break pos;
            }
            while buf.len() < pos + size + 2 {
                if fill(stream, buf).await? == 0 {
                    return Err(eof());
                }
            }
            pos += size + 2;
        }
    } else if let Some(length) = length {
        while buf.len() < head_end + length {
            if fill(stream, buf).await? == 0 {
                return Err(eof());
            }
        }
        head_end + length
    } else if response && !first_line.contains(" 204 ") && !first_line.contains(" 304 ") {
        while fill(stream, buf).await? > 0 {}
        buf.len()
    } else {
        head_end
    };
    let raw: Vec<u8> = buf.drain(..end).collect();
    Ok(Some(Message {
        raw,
        body_start: head_end,
        first_line,
    }))
}
