//! Every rejection the service makes: a status and a JSON body
//! `{"error": {"code", "message"}}`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// What was wrong and where, for a person. Never holds a secret.
    #[schema(example = "exchange_id: required field is missing")]
    pub message: String,
}

/// The machine-readable code of an error, one per kind of rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body is not well-formed JSON, postcard or gzip.
    MalformedBody,
    /// The request line or a header is not valid HTTP/1.1 (a bad
    /// `Content-Length`, a control character in a header, ...).
    MalformedRequest,
    /// No credentials, or unknown ones.
    Unauthorized,
    /// A known client without the route's scope.
    Forbidden,
    /// No such route.
    NotFound,
    /// The route exists, the method does not.
    MethodNotAllowed,
    /// `Accept` refuses both formats the route answers in.
    NotAcceptable,
    /// The body did not arrive in time.
    RequestTimeout,
    /// The body is over 64 KiB, before or after inflating.
    PayloadTooLarge,
    /// A content type or encoding the route does not take.
    UnsupportedMediaType,
    /// Well-formed, but a field is missing, of the wrong JSON type, or
    /// invalid; the message names the field, never its value.
    InvalidField,
    /// Over the client's rate limit.
    RateLimited,
    /// The request line and headers are over 32 KiB, or hold more
    /// than 100 header fields.
    HeadersTooLarge,
    /// A fault of the service.
    Internal,
}

impl ErrorCode {
    /// Every code, in the order of their statuses. The OpenAPI document's
    /// error answers (one per status), the list in its description, and each
    /// operation's error statuses are made from it and from [`status`](Self::status).
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::MalformedBody,
        ErrorCode::MalformedRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::NotAcceptable,
        ErrorCode::RequestTimeout,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::InvalidField,
        ErrorCode::RateLimited,
        ErrorCode::HeadersTooLarge,
        ErrorCode::Internal,
    ];

    /// The status of every answer with this code.
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorCode::MalformedBody | ErrorCode::MalformedRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidField => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

proxy_delegate_core::labels! {
    /// The wire spelling, e.g. `invalid_field`.
    ErrorCode {
        MalformedBody => "malformed_body",
        MalformedRequest => "malformed_request",
        Unauthorized => "unauthorized",
        Forbidden => "forbidden",
        NotFound => "not_found",
        MethodNotAllowed => "method_not_allowed",
        NotAcceptable => "not_acceptable",
        RequestTimeout => "request_timeout",
        PayloadTooLarge => "payload_too_large",
        UnsupportedMediaType => "unsupported_media_type",
        InvalidField => "invalid_field",
        RateLimited => "rate_limited",
        HeadersTooLarge => "headers_too_large",
        Internal => "internal",
    }
}

/// At most 64 characters of `s`, marked with `…` when cut: how a message
/// quotes what the client sent (a path, a header) without growing with it.
pub(crate) fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// A rejection: the status, the code and the message.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    /// Machine-readable code, which decides the status.
    pub(crate) code: ErrorCode,
    /// Human-readable message.
    pub(crate) message: String,
    /// Seconds to wait, for 429 and 503 (`Retry-After`).
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this code (and its status) and message.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The HTTP status: the code's.
    pub(crate) const fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The body is not well-formed.
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedBody, message)
    }

    /// Well-formed, but a field is invalid.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidField, message)
    }

    /// No credentials, or unknown ones.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// A known client without the scope for this route.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// No such route.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// The route exists, the method does not.
    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MethodNotAllowed, message)
    }

    /// `Accept` refuses every format the route answers in.
    pub(crate) fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotAcceptable, message)
    }

    /// The body is over the limit.
    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, message)
    }

    /// A content type or encoding the route does not take.
    pub(crate) fn unsupported_media(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedMediaType, message)
    }

    /// The client is over its rate limit.
    pub(crate) fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                ErrorCode::RateLimited,
                "too many requests from this client; retry after the Retry-After delay",
            )
        }
    }

    /// A fault of the service; the message is generic, the detail is logged.
    pub(crate) fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error; see the service log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (self.code.status(), axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.code == ErrorCode::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"proxy-delegate\""),
            );
        }
        response
    }
}

// ------------------------------------------------------- below the router

/// Largest request head (request line and headers) the service reads.
pub(crate) const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Most header fields a request may have.
pub(crate) const MAX_HEADER_FIELDS: usize = 100;

/// The rejections hyper makes itself, before the router sees a request: a
/// request head it cannot parse (400) or one over the limits (431). hyper
/// writes them with no body; [`JsonRejections`] gives them the JSON error
/// body every other rejection has. (hyper's 414 for a request target over
/// 64 KiB cannot happen: a head over [`MAX_HEAD_BYTES`] is 431 first.)
fn below_router(status: u16) -> Option<ApiError> {
    let code = [ErrorCode::MalformedRequest, ErrorCode::HeadersTooLarge]
        .into_iter()
        .find(|c| c.status().as_u16() == status)?;
    let message = match code {
        ErrorCode::HeadersTooLarge => format!(
            "the request line and headers are over {MAX_HEAD_BYTES} bytes, or hold more \
             than {MAX_HEADER_FIELDS} header fields; the connection is closed"
        ),
        _ => "the request line or a header is not valid HTTP/1.1 (for example a Content-Length \
              that is not one number, a Transfer-Encoding other than chunked, or a control \
              character in a header); the connection is closed"
            .to_owned(),
    };
    Some(ApiError::new(code, message))
}

/// hyper's own answer to a request head it refused, rewritten with a JSON
/// error body: `head` is the whole of what hyper wrote (`HTTP/1.1 431 ...`,
/// its headers with `content-length: 0`, the blank line). Every answer the
/// router makes to a 400 has a body, so an empty one is hyper's. `None`:
/// not such an answer, written as it is.
fn rewrite_rejection(head: &[u8]) -> Option<Vec<u8>> {
    let status = head
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| head.strip_prefix(b"HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse::<u16>().ok())?;
    let error = below_router(status)?;
    let text = std::str::from_utf8(head).ok()?;
    let headers = text.strip_suffix("\r\n\r\n")?;
    if headers.contains("\r\n\r\n") {
        return None;
    }
    let mut lines: Vec<&str> = headers.split("\r\n").collect();
    let empty = lines
        .iter()
        .position(|l| l.eq_ignore_ascii_case("content-length: 0"))?;
    lines.remove(empty);
    let body = serde_json::to_vec(&ErrorBody {
        error: ErrorDetail {
            code: error.code,
            message: error.message,
        },
    })
    .ok()?;
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(
        format!(
            "\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    Some(out)
}

/// A connection's stream as hyper sees it: everything passes through,
/// except hyper's bodiless 400 and 431, which get the JSON error body
/// ([`rewrite_rejection`]).
#[derive(Debug)]
pub(crate) struct JsonRejections<S> {
    inner: S,
    /// The rewritten answer, and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> JsonRejections<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> JsonRejections<S> {
    /// Writes what is left of a rewritten answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written >= bytes.len() {
                self.pending = None;
                break;
            }
            let n =
                std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `head` as written when it is a rejection to rewrite.
    fn intercept(&mut self, cx: &mut Context<'_>, head: &[u8]) -> Option<Poll<io::Result<usize>>> {
        let rewritten = rewrite_rejection(head)?;
        self.pending = Some((rewritten, 0));
        // hyper flushes next, which writes whatever this does not.
        Some(match self.poll_pending(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(head.len())),
        })
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for JsonRejections<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for JsonRejections<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.poll_pending(cx))?;
        if let Some(done) = this.intercept(cx, buf) {
            return done;
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.poll_pending(cx))?;
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next())
            && let Some(done) = this.intercept(cx, only)
        {
            return done;
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_wire_spelling() {
        for &code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str(), "{code:?}");
        }
        let body = serde_json::to_value(ErrorBody {
            error: ErrorDetail {
                code: ErrorCode::InvalidField,
                message: "exchange_id: required field is missing".into(),
            },
        })
        .unwrap();
        assert_eq!(body["error"]["code"], "invalid_field");
    }

    #[test]
    fn bodiless_rejections_of_hyper_get_the_json_body() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                     content-length: 0\r\ndate: Sun, 06 Dec 2026 21:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite_rejection(head).unwrap()).unwrap();
        let (headers, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(headers.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(headers.contains("\r\nconnection: close\r\n"), "{out}");
        assert!(headers.contains("\r\ndate: "), "{out}");
        assert!(
            headers.contains("\r\ncontent-type: application/json"),
            "{out}"
        );
        assert!(
            headers.contains(&format!("\r\ncontent-length: {}", body.len())),
            "{out}"
        );
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "headers_too_large");
        let head = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let out = String::from_utf8(rewrite_rejection(head).unwrap()).unwrap();
        assert!(out.contains("\"malformed_request\""), "{out}");
        // Answers of the router, and anything but a whole head, pass as they are.
        for other in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 57\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
        ] {
            assert_eq!(rewrite_rejection(other), None, "{other:?}");
        }
    }
}
