//! How a connection attempt ended: [`ConnectError`], classified into the
//! feedback categories from what really happened.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use proxy_delegate_core::model::ErrorCategory;
use proxy_delegate_core::resolver::{ResolveError, Route};

use crate::error::causes;

/// Why a connection through the injector did not open.
///
/// [`category`](Self::category) is what the feedback reported (none when no
/// connection was tried: bad input, or the service's `fail` policy);
/// `Display` is one line naming the transport, exchange, target and proxy
/// (never its credentials), what happened, and what to do.
#[derive(Debug)]
pub struct ConnectError {
    pub(crate) category: Option<ErrorCategory>,
    pub(crate) timed_out: bool,
    pub(crate) status: Option<u16>,
    /// Boxed: a route holds a whole proxy URL, and errors travel by value.
    pub(crate) route: Option<Box<Route>>,
    pub(crate) resolve_wait: Option<std::time::Duration>,
    pub(crate) context: String,
    pub(crate) problem: String,
}

impl ConnectError {
    /// The feedback category, or `None` when no connection was tried.
    pub fn category(&self) -> Option<ErrorCategory> {
        self.category
    }

    /// Whether the attempt ran out of time (reported as a `timeout` event).
    pub fn is_timeout(&self) -> bool {
        self.timed_out
    }

    /// What happened, without the context (transport, exchange, proxy).
    pub fn problem(&self) -> &str {
        &self.problem
    }

    /// The HTTP status that refused the connection, when one did: the
    /// target's (403, 429, 451, 5xx, ...) or the proxy's answer to
    /// `CONNECT`.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The route of the last attempt (its proxy prints the password as
    /// `***`), when one was resolved.
    pub fn route(&self) -> Option<&Route> {
        self.route.as_deref()
    }

    /// Time spent resolving routes before this error (every attempt's
    /// resolve, summed), when a resolve was tried.
    pub fn resolve_wait(&self) -> Option<std::time::Duration> {
        self.resolve_wait
    }

    pub(crate) fn with_resolve_wait(mut self, wait: std::time::Duration) -> Self {
        self.resolve_wait = Some(wait);
        self
    }

    pub(crate) fn invalid(problem: impl Into<String>) -> Self {
        Self {
            category: None,
            timed_out: false,
            status: None,
            route: None,
            resolve_wait: None,
            context: String::new(),
            problem: problem.into(),
        }
    }

    pub(crate) fn unresolved(e: &ResolveError) -> Self {
        Self::invalid(format!("no route: {e}"))
    }

    pub(crate) fn timeout(after: std::time::Duration) -> Self {
        Failure::timeout_after(after).into()
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.context.is_empty() {
            write!(f, "{}: ", self.context)?;
        }
        match self.category {
            Some(c) => write!(f, "{} ({c})", self.problem),
            None => f.write_str(&self.problem),
        }
    }
}

impl StdError for ConnectError {}

/// A classified failure while the connection is being made (the context is
/// added by the caller, which knows it).
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) category: ErrorCategory,
    pub(crate) timed_out: bool,
    pub(crate) status: Option<u16>,
    pub(crate) problem: String,
}

impl Failure {
    pub(crate) fn new(category: ErrorCategory, problem: impl Into<String>) -> Self {
        Self {
            category,
            timed_out: false,
            status: None,
            problem: problem.into(),
        }
    }

    /// The attempt ran out of time (`after` zero: the time is not known).
    pub(crate) fn timeout_after(after: std::time::Duration) -> Self {
        let problem = if after.is_zero() {
            "timed out".to_owned()
        } else {
            format!("no connection within {} ms", after.as_millis())
        };
        Self::new(ErrorCategory::Timeout, problem).timed_out()
    }

    fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    fn timed_out(mut self) -> Self {
        self.timed_out = true;
        self
    }

    /// The proxy could not be reached (TCP or TLS to the proxy).
    pub(crate) fn proxy_unreachable(what: &str, e: &io::Error) -> Self {
        if is_timeout(e) {
            return Self::new(ErrorCategory::Timeout, format!("{what}: {e}")).timed_out();
        }
        Self::new(
            ErrorCategory::ProxyConnect,
            format!("{what}: {}", io_problem(e)),
        )
    }

    /// The target could not be reached directly (no proxy).
    pub(crate) fn target_unreachable(e: &io::Error) -> Self {
        if is_timeout(e) {
            return Self::new(
                ErrorCategory::Timeout,
                format!("cannot reach the target: {e}"),
            )
            .timed_out();
        }
        Self::new(
            ErrorCategory::Other,
            format!("cannot reach the target: {}", io_problem(e)),
        )
    }

    /// The proxy's answer to `CONNECT`.
    pub(crate) fn connect_refused(status: u16, reason: &str) -> Self {
        // 407 is the standard answer; tinyproxy answers a refused
        // Proxy-Authorization on CONNECT with 401.
        let failure = if status == 407 || status == 401 {
            Self::new(
                ErrorCategory::ProxyAuth,
                format!(
                    "the proxy refused the credentials (HTTP {status} {reason}): check the user \
                     name and password of this proxy"
                ),
            )
        } else {
            Self::new(
                ErrorCategory::TunnelRefused,
                format!("the proxy refused the tunnel (HTTP {status} {reason})"),
            )
        };
        failure.with_status(status)
    }

    /// A SOCKS handshake that failed.
    pub(crate) fn socks(e: &tokio_socks::Error) -> Self {
        use tokio_socks::Error as E;
        match e {
            E::Io(io) if is_timeout(io) => {
                Self::new(ErrorCategory::Timeout, format!("SOCKS handshake: {io}")).timed_out()
            }
            E::Io(io) => Self::new(
                ErrorCategory::ProxyConnect,
                format!(
                    "the proxy broke off the SOCKS handshake: {}",
                    io_problem(io)
                ),
            ),
            E::PasswordAuthFailure(_)
            | E::AuthorizationRequired
            | E::NoAcceptableAuthMethods
            | E::UnknownAuthMethod
            | E::IdentdAuthFailure
            | E::InvalidUserIdAuthFailure => Self::new(
                ErrorCategory::ProxyAuth,
                format!(
                    "the SOCKS proxy refused the credentials ({e}): check the user name and \
                     password of this proxy"
                ),
            ),
            E::InvalidAuthValues(why) => Self::new(
                ErrorCategory::ProxyAuth,
                format!("the proxy's credentials cannot be sent over SOCKS: {why}"),
            ),
            E::InvalidTargetAddress(why) => Self::new(
                ErrorCategory::Other,
                format!("invalid target address: {why}"),
            ),
            E::InvalidResponseVersion
            | E::InvalidReservedByte
            | E::UnknownAddressType
            | E::ParseError(_) => Self::new(
                ErrorCategory::ProxyConnect,
                format!("the proxy does not speak SOCKS as expected ({e})"),
            ),
            // Every other answer is the proxy declining the tunnel (host or
            // network unreachable, refused, ruleset, general failure, ...).
            other => Self::new(
                ErrorCategory::TunnelRefused,
                format!("the SOCKS proxy refused the tunnel: {other}"),
            ),
        }
    }

    /// TLS with the target failed.
    pub(crate) fn target_tls(e: &io::Error) -> Self {
        if is_timeout(e) {
            return Self::new(ErrorCategory::Timeout, format!("TLS with the target: {e}"))
                .timed_out();
        }
        let tls = causes(e)
            .into_iter()
            .find_map(|c| c.downcast_ref::<rustls::Error>());
        let problem = match tls {
            Some(rustls::Error::InvalidCertificate(cert)) => format!(
                "the target's certificate was refused ({cert:?}): if the target uses a private \
                 CA, add it to the injector's ca_file"
            ),
            Some(other) => format!("TLS with the target failed: {other}"),
            None => format!("TLS with the target failed: {}", io_problem(e)),
        };
        Self::new(ErrorCategory::TargetTls, problem)
    }

    /// The target answered an HTTP status that refuses the connection.
    pub(crate) fn target_status(status: u16) -> Self {
        let (category, what) = match status {
            451 => (
                ErrorCategory::GeoBlocked,
                "the target refuses this proxy's location",
            ),
            // Exchanges answer a blocked region with 403 (CloudFront and
            // the like); the service cools the proxy down for the exchange.
            403 => (
                ErrorCategory::GeoBlocked,
                "the target forbids this proxy's address (read as a geo-block)",
            ),
            429 => (
                ErrorCategory::RateLimited,
                "the target rate-limits this proxy's address",
            ),
            500..=599 => (ErrorCategory::TargetHttp5xx, "the target failed"),
            _ => (ErrorCategory::Other, "the target refused the request"),
        };
        Self::new(category, format!("{what} (HTTP {status})")).with_status(status)
    }

    /// Any other failure (a broken handshake, a protocol error).
    pub(crate) fn other(problem: impl Into<String>) -> Self {
        Self::new(ErrorCategory::Other, problem)
    }

    /// The failure with its context, as the caller sees it.
    pub(crate) fn into_error(self, context: String, route: Option<Route>) -> ConnectError {
        ConnectError {
            category: Some(self.category),
            timed_out: self.timed_out,
            status: self.status,
            route: route.map(Box::new),
            resolve_wait: None,
            context,
            problem: self.problem,
        }
    }
}

impl From<Failure> for ConnectError {
    fn from(f: Failure) -> Self {
        f.into_error(String::new(), None)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
}

/// An I/O error as a person reads it.
fn io_problem(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused (is it running?)".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        io::ErrorKind::UnexpectedEof => "the connection closed early".to_owned(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_their_categories() {
        let c = |s| Failure::target_status(s).category;
        assert_eq!(c(451), ErrorCategory::GeoBlocked);
        assert_eq!(c(403), ErrorCategory::GeoBlocked);
        assert_eq!(c(429), ErrorCategory::RateLimited);
        assert_eq!(c(503), ErrorCategory::TargetHttp5xx);
        assert_eq!(c(404), ErrorCategory::Other);
        assert_eq!(
            Failure::connect_refused(407, "Proxy Authentication Required").category,
            ErrorCategory::ProxyAuth
        );
        assert_eq!(
            Failure::connect_refused(403, "Forbidden").category,
            ErrorCategory::TunnelRefused
        );
    }

    #[test]
    fn socks_answers_map_to_their_categories() {
        use tokio_socks::Error as E;
        let c = |e: E| Failure::socks(&e).category;
        assert_eq!(c(E::PasswordAuthFailure(1)), ErrorCategory::ProxyAuth);
        assert_eq!(c(E::NoAcceptableAuthMethods), ErrorCategory::ProxyAuth);
        assert_eq!(c(E::ConnectionRefused), ErrorCategory::TunnelRefused);
        assert_eq!(c(E::HostUnreachable), ErrorCategory::TunnelRefused);
        assert_eq!(
            c(E::GeneralSocksServerFailure),
            ErrorCategory::TunnelRefused
        );
        let timeout = Failure::socks(&E::Io(io::ErrorKind::TimedOut.into()));
        assert!(timeout.timed_out);
    }
}
