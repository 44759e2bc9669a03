//! Why a call to the proxy service gave no usable answer, classified
//! ([`FailureKind`], also a metrics label) and explained ([`ServiceError`]'s
//! `Display` names the endpoint and says what to check); and why a transport
//! could not be built ([`BuildError`]).
//!
//! No message holds a secret: they are written from the classified cause,
//! never copied from a header, a body, a credential or a key file. The
//! endpoint they name is a [`ServiceUrl`], which cannot carry a user name, a
//! password or a query.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proxy_delegate_core::contract;
use proxy_delegate_core::endpoints::ServiceUrl;
use proxy_delegate_core::settings::AuthMethod;

/// What kind of failure a [`ServiceError`] is.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// No connection within the connect timeout, or no complete answer
    /// within the call's timeout.
    Timeout,
    /// Nothing listens at the endpoint's address and port.
    ConnectionRefused,
    /// The endpoint's host name does not resolve.
    Dns,
    /// The TLS handshake failed: the service's certificate was not trusted,
    /// expired or names another host, the service refused the client
    /// certificate, or the other side does not speak TLS.
    Tls,
    /// The service refused the credentials (HTTP 401 or 403).
    Unauthorized,
    /// The service is rate limiting this client (HTTP 429).
    RateLimited,
    /// The service failed (HTTP 5xx).
    ServerError,
    /// The answer's body did not decode.
    Malformed,
    /// The answer's body is larger than [`contract::MAX_BODY`].
    Oversized,
    /// Anything else: an unexpected status, a connection lost mid-answer...
    Other,
}

impl FailureKind {
    /// Every kind, in declaration order (to register metrics up front).
    pub const ALL: [FailureKind; 10] = [
        FailureKind::Timeout,
        FailureKind::ConnectionRefused,
        FailureKind::Dns,
        FailureKind::Tls,
        FailureKind::Unauthorized,
        FailureKind::RateLimited,
        FailureKind::ServerError,
        FailureKind::Malformed,
        FailureKind::Oversized,
        FailureKind::Other,
    ];
}

proxy_delegate_core::labels! {
    /// The lower-case name, used as a metrics label: `timeout`,
    /// `connection_refused`, `dns`, `tls`, `unauthorized`, `rate_limited`,
    /// `server_error`, `malformed`, `oversized`, `other`.
    FailureKind {
        Timeout => "timeout",
        ConnectionRefused => "connection_refused",
        Dns => "dns",
        Tls => "tls",
        Unauthorized => "unauthorized",
        RateLimited => "rate_limited",
        ServerError => "server_error",
        Malformed => "malformed",
        Oversized => "oversized",
        Other => "other",
    }
}

/// A call to the proxy service that gave no usable answer: what kind of
/// failure, at which endpoint, and (in `Display`) what to do about it.
///
/// ```
/// use proxy_delegate_core::endpoints::ServiceUrl;
/// use proxy_delegate_tokio::{FailureKind, ServiceError};
///
/// let url: ServiceUrl = "https://svc:8443".parse()?;
/// let e = ServiceError::from_status(&url, 503, None).expect("503 is a failure");
/// assert_eq!(e.kind(), FailureKind::ServerError);
/// assert_eq!(e.status(), Some(503));
/// assert!(e.to_string().contains("https://svc:8443"));
/// assert!(ServiceError::from_status(&url, 200, None).is_none());
/// # Ok::<(), proxy_delegate_core::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    kind: FailureKind,
    endpoint: String,
    status: Option<u16>,
    retry_after: Option<Duration>,
    message: String,
}

/// How a duration reads in a message: whole seconds as `7 s`, else `250 ms`.
fn human(d: Duration) -> String {
    if d.subsec_nanos() == 0 && d.as_secs() > 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn capped(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Longest caller-supplied detail kept in a message, in bytes.
const MAX_DETAIL: usize = 300;

impl ServiceError {
    fn new(kind: FailureKind, endpoint: &ServiceUrl, message: String) -> Self {
        Self {
            kind,
            endpoint: endpoint.to_string(),
            status: None,
            retry_after: None,
            message,
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The endpoint's base URL (as [`ServiceUrl`] displays it; it never
    /// holds a secret).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The HTTP status, when the service answered one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The answer's `Retry-After`, when it had one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The failure an answer's status means, or `None` for a 2xx.
    ///
    /// The transport does not know which credential was sent, so a 401 or
    /// 403 message names all three (`token`, `api_key`, client certificate);
    /// [`from_status_with_auth`](Self::from_status_with_auth) names the one
    /// in use (and [`HttpTransport::classify`](crate::HttpTransport::classify)
    /// calls it for you).
    ///
    /// * 401, 403: [`FailureKind::Unauthorized`];
    /// * 429: [`FailureKind::RateLimited`] (with `retry_after`);
    /// * 5xx: [`FailureKind::ServerError`];
    /// * anything else (a 3xx, which is never followed, or a 4xx that refuses
    ///   the request itself): [`FailureKind::Other`], with a message that
    ///   says what the status means.
    pub fn from_status(
        endpoint: &ServiceUrl,
        status: u16,
        retry_after: Option<Duration>,
    ) -> Option<Self> {
        Self::from_answer(endpoint, status, retry_after, Credential::Unknown)
    }

    /// [`from_status`](Self::from_status) for a client that knows how it
    /// authenticated: `auth` is the method in use, `None` when the client
    /// sent no credentials. A 401 or 403 message then names the
    /// configuration key to check (`external_service.auth_credentials.token`,
    /// `.api_key`, or `.cert_file`/`.key_file`), or says that the service
    /// wants credentials and none are configured.
    pub fn from_status_with_auth(
        endpoint: &ServiceUrl,
        status: u16,
        retry_after: Option<Duration>,
        auth: Option<AuthMethod>,
    ) -> Option<Self> {
        let credential = match auth {
            Some(method) => Credential::Method(method),
            None => Credential::None,
        };
        Self::from_answer(endpoint, status, retry_after, credential)
    }

    fn from_answer(
        endpoint: &ServiceUrl,
        status: u16,
        retry_after: Option<Duration>,
        credential: Credential,
    ) -> Option<Self> {
        if contract::is_success(status) {
            return None;
        }
        let ep = endpoint;
        let after = retry_after.map_or(String::new(), |d| {
            format!(" (it asks to retry after {})", human(d))
        });
        let (kind, message) = match status {
            401 | 403 => (FailureKind::Unauthorized, credential.message(ep, status)),
            429 => (
                FailureKind::RateLimited,
                match retry_after {
                    Some(d) => format!(
                        "proxy service {ep} is rate limiting this client (HTTP 429): retry after {}; \
                         lower this client's request rate or raise its limit on the service",
                        human(d)
                    ),
                    None => format!(
                        "proxy service {ep} is rate limiting this client (HTTP 429, no Retry-After): \
                         lower this client's request rate or raise its limit on the service"
                    ),
                },
            ),
            500..=599 => (
                FailureKind::ServerError,
                format!(
                    "proxy service {ep} failed (HTTP {status}, a server error){after}: the service \
                     is failing or unavailable; the client falls back to another endpoint or the \
                     embedded configuration; check the service's logs"
                ),
            ),
            404 => (
                FailureKind::Other,
                format!(
                    "proxy service {ep} has no such route (HTTP 404): check the endpoint's URL and \
                     base path in external_service.endpoints"
                ),
            ),
            400 | 422 => (
                FailureKind::Other,
                format!(
                    "proxy service {ep} refused the request as invalid (HTTP {status}): the client \
                     and the service disagree on the API; check that their versions match"
                ),
            ),
            413 => (
                FailureKind::Other,
                format!(
                    "proxy service {ep} refused the request as too large (HTTP 413): bodies are \
                     limited to {} bytes",
                    contract::MAX_BODY
                ),
            ),
            415 => (
                FailureKind::Other,
                format!(
                    "proxy service {ep} refused the request's media type or encoding (HTTP 415): \
                     check that the service accepts the configured wire format ({} or {}) and gzip",
                    contract::JSON,
                    contract::POSTCARD
                ),
            ),
            300..=399 => (
                FailureKind::Other,
                format!(
                    "proxy service {ep} answered with a redirect (HTTP {status}), which is not \
                     followed (it could send the credentials elsewhere): set \
                     external_service.endpoints to the service's own URL"
                ),
            ),
            _ => (
                FailureKind::Other,
                format!(
                    "proxy service {ep} answered HTTP {status}{after}, which the client does not expect"
                ),
            ),
        };
        let mut e = Self::new(kind, endpoint, message);
        e.status = Some(status);
        e.retry_after = retry_after;
        Some(e)
    }

    /// The answer's body did not decode. `detail` says how (a decoder's
    /// error; it must not quote the body, which may hold a proxy's
    /// password). It is cut to 300 bytes.
    pub fn malformed(endpoint: &ServiceUrl, detail: &str) -> Self {
        Self::new(
            FailureKind::Malformed,
            endpoint,
            format!(
                "proxy service {endpoint} sent an answer that does not decode: {}; the client and \
                 the service may disagree on the API or the wire format",
                capped(detail, MAX_DETAIL)
            ),
        )
    }

    /// The answer's body is larger than `limit` bytes; the rest was not read.
    pub fn oversized(endpoint: &ServiceUrl, limit: usize) -> Self {
        Self::new(
            FailureKind::Oversized,
            endpoint,
            format!(
                "proxy service {endpoint} sent an answer larger than {limit} bytes; it was refused \
                 and the rest left unread: is this endpoint really a proxy service?"
            ),
        )
    }

    /// No complete answer within `after` (the call's timeout).
    pub fn timeout(endpoint: &ServiceUrl, after: Duration) -> Self {
        Self::new(
            FailureKind::Timeout,
            endpoint,
            format!(
                "proxy service {endpoint} gave no answer within {}: the service or the network is \
                 slow or stuck",
                human(after)
            ),
        )
    }

    /// No connection within `after` (the connect timeout).
    pub fn connect_timeout(endpoint: &ServiceUrl, after: Duration) -> Self {
        Self::new(
            FailureKind::Timeout,
            endpoint,
            format!(
                "cannot connect to proxy service {endpoint}: no connection within {}; is the host \
                 reachable (firewall, routing)?",
                human(after)
            ),
        )
    }

    /// The connection was refused: nothing listens there.
    pub fn connection_refused(endpoint: &ServiceUrl) -> Self {
        Self::new(
            FailureKind::ConnectionRefused,
            endpoint,
            format!(
                "cannot connect to proxy service {endpoint}: nothing is listening at {}:{} \
                 (connection refused); is the service running, and is the port in \
                 external_service.endpoints right?",
                endpoint.host(),
                endpoint.port()
            ),
        )
    }

    /// The endpoint's host name did not resolve; `detail` says why (the
    /// resolver's error), cut to 300 bytes.
    pub fn dns(endpoint: &ServiceUrl, detail: &str) -> Self {
        Self::new(
            FailureKind::Dns,
            endpoint,
            format!(
                "cannot resolve host {} of proxy service {endpoint}: {}; check the host name in \
                 external_service.endpoints and this machine's DNS",
                endpoint.host(),
                capped(detail, MAX_DETAIL)
            ),
        )
    }

    /// The TLS handshake failed; `problem` names the problem and what to do
    /// (e.g. "the service's certificate is not signed by a trusted CA ..."),
    /// cut to 300 bytes.
    pub fn tls(endpoint: &ServiceUrl, problem: &str) -> Self {
        Self::new(
            FailureKind::Tls,
            endpoint,
            format!(
                "TLS with proxy service {endpoint} failed: {}",
                capped(problem, MAX_DETAIL)
            ),
        )
    }

    /// Any other failure; `detail` says what happened (no secret, no header
    /// value), cut to 300 bytes.
    pub fn other(endpoint: &ServiceUrl, detail: &str) -> Self {
        Self::new(
            FailureKind::Other,
            endpoint,
            format!("proxy service {endpoint}: {}", capped(detail, MAX_DETAIL)),
        )
    }
}

/// What the client knows of the credential it sent.
#[derive(Clone, Copy)]
enum Credential {
    /// Not said (plain [`ServiceError::from_status`]).
    Unknown,
    /// No credentials are configured.
    None,
    /// This method was used.
    Method(AuthMethod),
}

impl Credential {
    fn message(self, ep: &ServiceUrl, status: u16) -> String {
        let (what, key) = match self {
            Credential::None => {
                return format!(
                    "proxy service {ep} requires credentials (HTTP {status}) and none are \
                     configured: set external_service.auth_method and \
                     external_service.auth_credentials for endpoint {ep}"
                );
            }
            Credential::Method(AuthMethod::BearerToken) => (
                "the bearer token",
                "external_service.auth_credentials.token",
            ),
            Credential::Method(AuthMethod::ApiKey) => {
                ("the API key", "external_service.auth_credentials.api_key")
            }
            Credential::Method(AuthMethod::MutualTls) => (
                "the client certificate (its name must be one the service knows)",
                "external_service.auth_credentials.cert_file and key_file",
            ),
            Credential::Unknown | Credential::Method(_) => (
                "the bearer token, API key or client certificate",
                "external_service.auth_method and external_service.auth_credentials",
            ),
        };
        if status == 403 {
            format!(
                "proxy service {ep} refused this client (HTTP 403): check {what} configured for \
                 endpoint {ep} ({key}) and the scopes the service grants that client"
            )
        } else {
            format!(
                "proxy service {ep} refused the credentials (HTTP {status}): check {what} \
                 configured for endpoint {ep} ({key})"
            )
        }
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServiceError {}

/// A transport could not be built from its configuration: a credential is
/// missing or unusable, or a certificate, key or CA file cannot be used.
///
/// The message names the configuration key and the file, and says what is
/// wrong; it never quotes a secret or a file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    key: &'static str,
    path: Option<PathBuf>,
    problem: String,
}

#[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
impl BuildError {
    /// `key` is required by `method` and is not set.
    pub(crate) fn missing(key: &'static str, method: AuthMethod) -> Self {
        Self {
            key,
            path: None,
            problem: format!("required by auth_method {method} but not set"),
        }
    }

    /// The value of `key` cannot be used.
    pub(crate) fn invalid(key: &'static str, problem: impl Into<String>) -> Self {
        Self {
            key,
            path: None,
            problem: problem.into(),
        }
    }

    /// The file `path` named by `key` cannot be used.
    pub(crate) fn file(key: &'static str, path: &Path, problem: impl Into<String>) -> Self {
        Self {
            key,
            path: Some(path.to_owned()),
            problem: problem.into(),
        }
    }

    /// The configuration key at fault, e.g.
    /// `external_service.auth_credentials.ca_file`.
    pub fn key(&self) -> &str {
        self.key
    }

    /// The file at fault, if a file is.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{} ({}): {}", self.key, path.display(), self.problem),
            None => write!(f, "{}: {}", self.key, self.problem),
        }
    }
}

impl std::error::Error for BuildError {}

/// The errors of a chain, outermost first. `io::Error::source` skips the
/// error it wraps (it gives that error's source): step into it instead, so
/// that a `rustls::Error` inside an I/O error is seen.
#[cfg(feature = "reqwest")]
pub(crate) fn causes<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> Vec<&'e (dyn std::error::Error + 'static)> {
    let mut chain = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        chain.push(e);
        if chain.len() >= 32 {
            break;
        }
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> ServiceUrl {
        "https://svc:8443".parse().unwrap()
    }

    #[test]
    fn statuses_are_classified() {
        let u = url();
        for ok in [200, 204, 299] {
            assert_eq!(ServiceError::from_status(&u, ok, None), None);
        }
        let kind = |s| ServiceError::from_status(&u, s, None).unwrap().kind();
        assert_eq!(kind(401), FailureKind::Unauthorized);
        assert_eq!(kind(403), FailureKind::Unauthorized);
        assert_eq!(kind(429), FailureKind::RateLimited);
        assert_eq!(kind(500), FailureKind::ServerError);
        assert_eq!(kind(503), FailureKind::ServerError);
        for s in [301, 400, 404, 413, 415, 422, 418, 100] {
            assert_eq!(kind(s), FailureKind::Other, "{s}");
        }
    }

    #[test]
    fn messages_say_what_to_check() {
        let u = url();
        let msg = |s, auth| {
            ServiceError::from_status_with_auth(&u, s, None, auth)
                .unwrap()
                .to_string()
        };
        assert_eq!(
            msg(401, Some(AuthMethod::BearerToken)),
            "proxy service https://svc:8443 refused the credentials (HTTP 401): check the bearer \
             token configured for endpoint https://svc:8443 (external_service.auth_credentials.token)"
        );
        assert!(msg(401, Some(AuthMethod::ApiKey)).contains("auth_credentials.api_key"));
        assert!(msg(403, Some(AuthMethod::MutualTls)).contains("cert_file"));
        assert!(msg(401, None).contains("none are configured"));
        let generic = ServiceError::from_status(&u, 401, None)
            .unwrap()
            .to_string();
        assert!(
            generic.contains("bearer token, API key or client certificate"),
            "{generic}"
        );

        let e = ServiceError::from_status(&u, 429, Some(Duration::from_secs(7))).unwrap();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(e.to_string().contains("retry after 7 s"), "{e}");
        let e = ServiceError::from_status(&u, 503, None).unwrap();
        assert!(e.to_string().contains("falls back"), "{e}");
        let e = ServiceError::timeout(&u, Duration::from_millis(250));
        assert!(e.to_string().contains("within 250 ms"), "{e}");
        let e = ServiceError::connection_refused(&u);
        assert!(
            e.to_string().contains("nothing is listening at svc:8443"),
            "{e}"
        );
        assert_eq!(e.endpoint(), "https://svc:8443");
        assert_eq!(e.status(), None);
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<_> = FailureKind::ALL.iter().map(|k| k.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), FailureKind::ALL.len());
    }

    #[test]
    fn details_are_capped() {
        let long = "é".repeat(1000);
        let e = ServiceError::other(&url(), &long);
        assert!(e.to_string().len() < 400);
    }
}
