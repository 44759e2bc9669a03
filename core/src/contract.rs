//! The HTTP contract between a client and the proxy service, as code: the
//! paths, headers, media types, the body limit and what each status means.
//! The reference service's router and the client adapters both use these, so
//! the two cannot drift apart.
//!
//! ```
//! use proxy_delegate_core::contract::{self, Method, WireFormat};
//! use proxy_delegate_core::resolver::TransmitKind;
//!
//! assert_eq!(TransmitKind::Resolve.path(), "/api/v1/proxy/request");
//! assert_eq!(TransmitKind::HealthCheck.method(), Method::Get);
//! assert!(contract::is_healthy(204));
//! assert_eq!(WireFormat::Postcard.content_type(), "application/x-postcard");
//! ```

/// `POST`: ask the service for a proxy (a `ProxyRequest`, answered by a `ProxyResponse`).
pub const REQUEST_PATH: &str = "/api/v1/proxy/request";
/// `POST`: report how connections went (one `ProxyFeedback` or a batch).
pub const FEEDBACK_PATH: &str = "/api/v1/proxy/feedback";
/// `GET`: the service's inventory and the health of every proxy.
pub const PROXIES_PATH: &str = "/api/v1/proxies";
/// `GET`: liveness and readiness; healthy when [`is_healthy`] says so.
pub const HEALTH_PATH: &str = "/health";

/// The header that carries a transmit's
/// [`CorrelationId`](crate::resolver::CorrelationId) (16 hex digits), in
/// the request and echoed in the answer; both sides log it.
pub const CORRELATION_HEADER: &str = "x-correlation-id";
/// The header that carries an API key (`auth_method: api_key`).
pub const API_KEY_HEADER: &str = "x-api-key";

/// The JSON media type.
pub const JSON: &str = "application/json";
/// The postcard media type (the compact binary form of the same messages).
pub const POSTCARD: &str = "application/x-postcard";

/// Largest body either side accepts (request bodies before and after
/// inflating, answers as read by the client): 64 KiB.
pub const MAX_BODY: usize = 64 * 1024;

/// An HTTP method of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

crate::labels! {
    /// As written on the wire.
    Method {
        Get => "GET",
        Post => "POST",
    }
}

/// The wire format of request and feedback bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WireFormat {
    /// JSON, what the REST API speaks by default.
    #[default]
    Json,
    /// postcard, for constrained links; a feedback batch is the messages
    /// one after another.
    Postcard,
}

impl WireFormat {
    /// The media type, for `Content-Type` and `Accept`.
    pub const fn content_type(self) -> &'static str {
        match self {
            WireFormat::Json => JSON,
            WireFormat::Postcard => POSTCARD,
        }
    }

    /// Whether this build of the core can encode and decode the format:
    /// postcard always, JSON with the crate's `json` feature (on by
    /// default).
    pub const fn is_supported(self) -> bool {
        match self {
            WireFormat::Json => cfg!(feature = "json"),
            WireFormat::Postcard => true,
        }
    }

    /// `Ok` when [`is_supported`](Self::is_supported); otherwise the
    /// `ValidationError` a Resolver or feedback queue configured with it
    /// is refused with (field `wire`).
    pub(crate) fn check_supported(self) -> Result<(), crate::ValidationError> {
        if self.is_supported() {
            Ok(())
        } else {
            Err(crate::ValidationError::new(
                "wire",
                crate::Reason::Requires {
                    what: "proxy-delegate-core's `json` feature, which this build leaves out \
                           (speak postcard, or build the core with `json`)",
                },
            ))
        }
    }
}

crate::labels! {
    /// The lower-case name used in configuration (`json`, `postcard`).
    WireFormat {
        Json => "json",
        Postcard => "postcard",
    }
}

/// Whether an answer to `GET /health` means the endpoint is healthy: any 2xx.
/// (A draining service answers 503.)
pub const fn is_healthy(status: u16) -> bool {
    is_success(status)
}

/// Whether a status is a success (2xx).
pub const fn is_success(status: u16) -> bool {
    status >= 200 && status < 300
}

/// Whether an error status refuses the request itself (bad body, unknown
/// route, too large, wrong media type, invalid field): sending it again, or
/// to another endpoint, cannot help, and it says nothing about the
/// endpoint's health.
pub const fn is_request_refused(status: u16) -> bool {
    status == 404 || is_body_refused(status)
}

/// Whether an error status refuses the body that was sent (malformed, too
/// large, wrong media type, invalid field): the same body will never be
/// taken. Unlike a 404, which during a deployment may be the route that is
/// missing for a while, so a queued feedback batch is kept and retried.
pub const fn is_body_refused(status: u16) -> bool {
    matches!(status, 400 | 413 | 415 | 422)
}

/// Whether an error status means the client's credentials were refused
/// (401, 403): retrying with the same token cannot help.
pub const fn is_auth_refused(status: u16) -> bool {
    matches!(status, 401 | 403)
}
