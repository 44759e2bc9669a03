//! A small HTTP/1.1 client for the three calls of the service contract,
//! over any [`TcpConnect`] and [`Dns`] of `embedded-nal-async`.
//!
//! One connection per call (`Connection: close`), so that no state outlives
//! a call. The request head is written from the core's contract constants:
//! the method and path of the [`TransmitKind`], `Host`, `Accept` and
//! `Content-Type` of the wire format, `Content-Length`, the
//! [`CORRELATION_HEADER`] and the credential ([`Auth`]). The answer is read
//! into the caller's fixed buffer: its status line and headers (parsed by
//! `httparse`), then a body of `Content-Length` bytes, a chunked body, or
//! the bytes up to the close. An answer that does not fit the buffer is
//! refused ([`Failure::Oversized`]); nothing is allocated.

use core::fmt;
use core::net::{IpAddr, SocketAddr};

use embassy_time::Duration;
use embedded_io_async::{Read, Write};
use embedded_nal_async::{AddrType, Dns, TcpConnect};
use proxy_delegate_core::contract::{API_KEY_HEADER, CORRELATION_HEADER, WireFormat};
use proxy_delegate_core::endpoints::ServiceUrl;
use proxy_delegate_core::resolver::{CorrelationId, TransmitKind};
use proxy_delegate_core::settings::Secret;

/// Most headers of an answer that are looked at; an answer with more is
/// refused as malformed.
const MAX_HEADERS: usize = 32;

/// Room for a request head: the request line (a 128-byte base path), `Host`
/// (a 253-byte name), the credential (a 512-byte secret) and the fixed
/// headers.
const HEAD_CAPACITY: usize = 1280;

/// How the adapter authenticates to the service. `Debug` never shows the
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Auth {
    /// No credential.
    #[default]
    None,
    /// `Authorization: Bearer <token>` (`auth_method: bearer_token`).
    Bearer(Secret),
    /// `X-API-Key: <key>` (`auth_method: api_key`).
    ApiKey(Secret),
}

/// Why a call to the service got no usable HTTP answer. Each one is a
/// [`Reply::Failed`](proxy_delegate_core::resolver::Reply::Failed) for the
/// core, as the tokio adapter reports a transport error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Failure {
    /// The endpoint's host name did not resolve (or the stack has no DNS).
    Dns,
    /// The TCP connection could not be made.
    Connect,
    /// Writing the request or reading the answer failed, or the
    /// connection closed before the answer was whole.
    Io,
    /// The answer is not HTTP/1.x the client understands.
    Malformed,
    /// The answer is larger than the answer buffer
    /// ([`ANSWER_BUFFER`](crate::ANSWER_BUFFER)).
    Oversized,
    /// No whole answer by the transmit's deadline.
    Timeout,
    /// The request head did not fit (cannot happen with validated
    /// endpoints and secrets; kept as an error rather than a panic).
    RequestTooLarge,
}

impl Failure {
    /// Every failure, in the order of [`Stats::failures`](crate::AdapterStats::failures).
    pub const ALL: [Failure; 7] = [
        Failure::Dns,
        Failure::Connect,
        Failure::Io,
        Failure::Malformed,
        Failure::Oversized,
        Failure::Timeout,
        Failure::RequestTooLarge,
    ];

    /// Lower-case name for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Failure::Dns => "dns",
            Failure::Connect => "connect",
            Failure::Io => "io",
            Failure::Malformed => "malformed",
            Failure::Oversized => "oversized",
            Failure::Timeout => "timeout",
            Failure::RequestTooLarge => "request_too_large",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An HTTP answer: its status, `Retry-After` (delta seconds) and where the
/// body sits in the answer buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) body: core::ops::Range<usize>,
}

/// One call: what to send, to whom.
pub(crate) struct Call<'a> {
    pub(crate) endpoint: &'a ServiceUrl,
    pub(crate) kind: TransmitKind,
    pub(crate) id: CorrelationId,
    pub(crate) body: &'a [u8],
    pub(crate) wire: WireFormat,
    pub(crate) auth: &'a Auth,
}

/// The endpoint's socket address: an IP literal as it is, a name through
/// `dns`.
async fn address<D: Dns>(dns: &D, url: &ServiceUrl) -> Result<SocketAddr, Failure> {
    let host = url.host();
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip = match literal.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => dns
            .get_host_by_name(host, AddrType::Either)
            .await
            .map_err(|_| Failure::Dns)?,
    };
    Ok(SocketAddr::new(ip, url.port()))
}

/// Sends `call` and reads the answer into `answer`.
pub(crate) async fn exchange<T: TcpConnect, D: Dns>(
    tcp: &T,
    dns: &D,
    call: &Call<'_>,
    answer: &mut [u8],
) -> Result<Answer, Failure> {
    let head = request_head(call)?;
    let remote = address(dns, call.endpoint).await?;
    let mut conn = tcp.connect(remote).await.map_err(|_| Failure::Connect)?;
    conn.write_all(head.as_bytes())
        .await
        .map_err(|_| Failure::Io)?;
    if !call.body.is_empty() {
        conn.write_all(call.body).await.map_err(|_| Failure::Io)?;
    }
    conn.flush().await.map_err(|_| Failure::Io)?;
    read_answer(&mut conn, answer).await
}

/// The request head of `call`, ending with the blank line.
pub(crate) fn request_head(call: &Call<'_>) -> Result<heapless::String<HEAD_CAPACITY>, Failure> {
    let mut head = heapless::String::<HEAD_CAPACITY>::new();
    write_head(&mut head, call).map_err(|_| Failure::RequestTooLarge)?;
    Ok(head)
}

fn write_head(w: &mut impl fmt::Write, call: &Call<'_>) -> fmt::Result {
    let url = call.endpoint;
    write!(
        w,
        "{} {}{} HTTP/1.1\r\nHost: {}",
        call.kind.method().as_str(),
        url.path(),
        call.kind.path(),
        url.host()
    )?;
    if url.port() != url.scheme().default_port() {
        write!(w, ":{}", url.port())?;
    }
    let media = call.wire.content_type();
    write!(
        w,
        "\r\nAccept: {media}\r\n{CORRELATION_HEADER}: {}\r\nConnection: close\r\n\
         User-Agent: proxy-delegate-embassy/{}\r\n",
        call.id,
        env!("CARGO_PKG_VERSION")
    )?;
    match call.auth {
        Auth::None => {}
        Auth::Bearer(token) => write!(w, "Authorization: Bearer {}\r\n", token.expose())?,
        Auth::ApiKey(key) => write!(w, "{API_KEY_HEADER}: {}\r\n", key.expose())?,
    }
    if call.kind.method() == proxy_delegate_core::contract::Method::Post {
        write!(
            w,
            "Content-Type: {media}\r\nContent-Length: {}\r\n",
            call.body.len()
        )?;
    }
    w.write_str("\r\n")
}

/// What the head of an answer says about its body.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Reads one answer from `conn` into `buf`.
pub(crate) async fn read_answer<C: Read>(conn: &mut C, buf: &mut [u8]) -> Result<Answer, Failure> {
    let mut filled = 0;
    let (status, retry_after, framing, head_len) = loop {
        if filled == buf.len() {
            return Err(Failure::Oversized);
        }
        let n = conn
            .read(&mut buf[filled..])
            .await
            .map_err(|_| Failure::Io)?;
        if n == 0 {
            return Err(Failure::Io);
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf[..filled]) {
            Ok(httparse::Status::Partial) => continue,
            Ok(httparse::Status::Complete(len)) => {
                let status = response.code.ok_or(Failure::Malformed)?;
                let (retry_after, framing) = head_facts(response.headers)?;
                break (status, retry_after, framing, len);
            }
            Err(_) => return Err(Failure::Malformed),
        }
    };
    let body = match framing {
        Framing::Length(len) => {
            let end = head_len.checked_add(len).ok_or(Failure::Oversized)?;
            if end > buf.len() {
                return Err(Failure::Oversized);
            }
            while filled < end {
                let n = conn
                    .read(&mut buf[filled..end])
                    .await
                    .map_err(|_| Failure::Io)?;
                if n == 0 {
                    return Err(Failure::Io);
                }
                filled += n;
            }
            head_len..end
        }
        Framing::UntilClose | Framing::Chunked => {
            loop {
                if filled == buf.len() {
                    // Full: the answer is too large unless it ends here.
                    let mut probe = [0u8; 1];
                    match conn.read(&mut probe).await {
                        Ok(0) => break,
                        Ok(_) => return Err(Failure::Oversized),
                        Err(_) => return Err(Failure::Io),
                    }
                }
                let n = conn
                    .read(&mut buf[filled..])
                    .await
                    .map_err(|_| Failure::Io)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if matches!(framing, Framing::Chunked) {
                let len = dechunk(&mut buf[head_len..filled])?;
                head_len..head_len + len
            } else {
                head_len..filled
            }
        }
    };
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// `Retry-After` (delta seconds; the date form is ignored, as the tokio
/// adapter does) and the body's framing.
fn head_facts(headers: &[httparse::Header<'_>]) -> Result<(Option<Duration>, Framing), Failure> {
    let mut retry_after = None;
    let mut framing = Framing::UntilClose;
    for h in headers {
        let value = core::str::from_utf8(h.value)
            .map_err(|_| Failure::Malformed)?
            .trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let len = value.parse::<usize>().map_err(|_| Failure::Malformed)?;
            if matches!(framing, Framing::Length(other) if other != len) {
                return Err(Failure::Malformed);
            }
            if !matches!(framing, Framing::Chunked) {
                framing = Framing::Length(len);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if value.eq_ignore_ascii_case("chunked") {
                framing = Framing::Chunked;
            } else {
                return Err(Failure::Malformed);
            }
        } else if h.name.eq_ignore_ascii_case("retry-after") {
            retry_after = value
                .parse::<u32>()
                .ok()
                .map(|s| Duration::from_secs(s.into()));
        }
    }
    Ok((retry_after, framing))
}

/// Decodes a chunked body in place; its length.
fn dechunk(buf: &mut [u8]) -> Result<usize, Failure> {
    let mut read = 0;
    let mut written = 0;
    loop {
        let line_end = buf[read..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(Failure::Malformed)?;
        let line =
            core::str::from_utf8(&buf[read..read + line_end]).map_err(|_| Failure::Malformed)?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| Failure::Malformed)?;
        read += line_end + 2;
        if size == 0 {
            return Ok(written);
        }
        let end = read.checked_add(size).ok_or(Failure::Malformed)?;
        if end + 2 > buf.len() || &buf[end..end + 2] != b"\r\n" {
            return Err(Failure::Malformed);
        }
        buf.copy_within(read..end, written);
        written += size;
        read = end + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer handed over in pieces of `step` bytes.
    struct Pieces<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl embedded_io_async::ErrorType for Pieces<'_> {
        type Error = embedded_io_async::ErrorKind;
    }

    impl Read for Pieces<'_> {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn read(data: &[u8], step: usize, buf: &mut [u8]) -> Result<Answer, Failure> {
        let mut conn = Pieces { data, step };
        embassy_futures::block_on(read_answer(&mut conn, buf))
    }

    fn call<'a>(url: &'a ServiceUrl, auth: &'a Auth, body: &'a [u8]) -> Call<'a> {
        Call {
            endpoint: url,
            kind: TransmitKind::Resolve,
            id: CorrelationId::from_raw(0xab),
            body,
            wire: WireFormat::Json,
            auth,
        }
    }

    #[test]
    fn the_head_names_path_host_media_correlation_and_credential() {
        let url: ServiceUrl = "http://svc.local:8080/pd".parse().unwrap();
        let auth = Auth::Bearer(Secret::new("tok-1").unwrap());
        let head = request_head(&call(&url, &auth, b"{}")).unwrap();
        assert_eq!(
            head.as_str(),
            "POST /pd/api/v1/proxy/request HTTP/1.1\r\nHost: svc.local:8080\r\n\
             Accept: application/json\r\nx-correlation-id: 00000000000000ab\r\n\
             Connection: close\r\nUser-Agent: proxy-delegate-embassy/0.1.0\r\n\
             Authorization: Bearer tok-1\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\n\r\n"
        );
        let key = Auth::ApiKey(Secret::new("key-2").unwrap());
        let url: ServiceUrl = "https://svc.local".parse().unwrap();
        let mut c = call(&url, &key, b"");
        c.kind = TransmitKind::HealthCheck;
        c.wire = WireFormat::Postcard;
        let head = request_head(&c).unwrap();
        assert!(
            head.starts_with("GET /health HTTP/1.1\r\nHost: svc.local\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nx-api-key: key-2\r\n"), "{head}");
        assert!(
            head.contains("Accept: application/x-postcard\r\n"),
            "{head}"
        );
        assert!(!head.contains("Content-Length"), "{head}");
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
    }

    #[test]
    fn an_answer_with_a_length_is_read_whole_even_in_small_pieces() {
        let text = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx: y\r\n\r\nhello";
        for step in [1, 3, 7, 64] {
            let mut buf = [0u8; 256];
            let a = read(text, step, &mut buf).unwrap();
            assert_eq!(a.status, 200);
            assert_eq!(&buf[a.body], b"hello", "step {step}");
        }
    }

    #[test]
    fn retry_after_in_seconds_is_read() {
        let text = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n";
        let mut buf = [0u8; 256];
        let a = read(text, 10, &mut buf).unwrap();
        assert_eq!(
            (a.status, a.retry_after),
            (429, Some(Duration::from_secs(7)))
        );
    }

    #[test]
    fn chunked_and_close_delimited_bodies_are_read() {
        let text = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n";
        let mut buf = [0u8; 256];
        let a = read(text, 5, &mut buf).unwrap();
        assert_eq!(&buf[a.body], b"abcde");
        let text = b"HTTP/1.1 503 Unavailable\r\n\r\ndown";
        let a = read(text, 2, &mut buf).unwrap();
        assert_eq!((a.status, &buf[a.body]), (503, &b"down"[..]));
    }

    #[test]
    fn an_answer_larger_than_the_buffer_is_refused() {
        let text = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
        let mut buf = [0u8; 64];
        assert_eq!(read(text, 64, &mut buf), Err(Failure::Oversized));
        let mut long = [b'a'; 200];
        long[..19].copy_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(read(&long, 16, &mut buf), Err(Failure::Oversized));
        // A head that never ends fills the buffer too.
        let mut endless = [b'a'; 200];
        endless[..20].copy_from_slice(b"HTTP/1.1 200 OK\r\nx: ");
        assert_eq!(read(&endless, 16, &mut buf), Err(Failure::Oversized));
    }

    #[test]
    fn broken_answers_are_typed_errors() {
        let mut buf = [0u8; 256];
        assert_eq!(
            read(b"SMTP ready\r\n\r\n", 64, &mut buf),
            Err(Failure::Malformed)
        );
        assert_eq!(
            read(
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                64,
                &mut buf
            ),
            Err(Failure::Malformed)
        );
        assert_eq!(
            read(
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc",
                64,
                &mut buf
            ),
            Err(Failure::Io),
            "closed before the body was whole"
        );
        assert_eq!(read(b"HTTP/1.1 200", 64, &mut buf), Err(Failure::Io));
        assert_eq!(
            read(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                64,
                &mut buf
            ),
            Err(Failure::Malformed)
        );
    }
}
