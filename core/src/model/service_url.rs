//! `ServiceUrl`: the validated base URL of a proxy service endpoint.

use core::fmt;
use core::str::FromStr;

use crate::error::excerpt;
use crate::{Reason, ValidationError};

/// Longest accepted service URL, in bytes.
pub const MAX_SERVICE_URL_LEN: usize = 256;
/// Longest accepted service host, in bytes.
pub const MAX_SERVICE_HOST_LEN: usize = 253;
/// Longest accepted base path, in bytes.
pub const MAX_SERVICE_PATH_LEN: usize = 128;

const URL_FIELD: &str = "service_url";

fn url_err(reason: Reason) -> ValidationError {
    ValidationError::new(URL_FIELD, reason)
}

/// `http` or `https`: the schemes a proxy service is reached by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceScheme {
    /// Plain HTTP (default port 80).
    Http,
    /// HTTP over TLS (default port 443).
    Https,
}

impl ServiceScheme {
    /// The port used when the URL names none.
    pub const fn default_port(self) -> u16 {
        match self {
            ServiceScheme::Http => 80,
            ServiceScheme::Https => 443,
        }
    }
}

crate::labels! {
    /// The scheme as written in a URL.
    ServiceScheme {
        Http => "http",
        Https => "https",
    }
}

/// The validated base URL of a proxy service: `http[s]://host[:port][/base/path]`.
///
/// * scheme `http` or `https` (case-insensitive, kept in lower case);
/// * host: a DNS name, an IPv4 address or a bracketed IPv6 address;
/// * port: optional, 1–65535, default 80 or 443;
/// * base path: optional, at most [`MAX_SERVICE_PATH_LEN`] bytes, kept without
///   its trailing `/`;
/// * no user name or password (send credentials in a header, so they never
///   sit in a URL that is logged), no query, no fragment.
///
/// Errors name the field `service_url`.
///
/// ```
/// use proxy_delegate_core::endpoints::ServiceUrl;
///
/// let url: ServiceUrl = "HTTPS://proxy-service.internal:8443/pd/".parse()?;
/// assert_eq!(url.to_string(), "https://proxy-service.internal:8443/pd");
/// assert_eq!((url.host(), url.port(), url.path()), ("proxy-service.internal", 8443, "/pd"));
///
/// let err = "ftp://proxy-service.internal".parse::<ServiceUrl>().unwrap_err();
/// assert_eq!(err.to_string(), r#"service_url: unknown value "ftp" (expected one of http, https)"#);
/// # Ok::<(), proxy_delegate_core::ValidationError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ServiceUrl {
    scheme: ServiceScheme,
    host: heapless::String<MAX_SERVICE_HOST_LEN>,
    port: u16,
    path: heapless::String<MAX_SERVICE_PATH_LEN>,
}

fn check_service_host(host: &str) -> Result<(), ValidationError> {
    if host.is_empty() {
        return Err(url_err(Reason::MissingPart { part: "host" }));
    }
    if host.len() > MAX_SERVICE_HOST_LEN {
        return Err(url_err(Reason::TooLong {
            len: host.len(),
            max: MAX_SERVICE_HOST_LEN,
        }));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let ok = inner
            .strip_suffix(']')
            .is_some_and(|ip| core::net::Ipv6Addr::from_str(ip).is_ok());
        return if ok {
            Ok(())
        } else {
            Err(url_err(Reason::Malformed {
                expected: "an IPv6 address in brackets, e.g. [::1]",
            }))
        };
    }
    let valid = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !valid || host.starts_with('.') || host.contains("..") {
        return Err(url_err(Reason::InvalidCharacter {
            expected: "a host name (letters, digits, '-', '_', '.') or an IP address",
        }));
    }
    Ok(())
}

fn check_service_path(path: &str) -> Result<(), ValidationError> {
    if path.len() > MAX_SERVICE_PATH_LEN {
        return Err(url_err(Reason::TooLong {
            len: path.len(),
            max: MAX_SERVICE_PATH_LEN,
        }));
    }
    let valid = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:@".contains(&b));
    if !valid || path.contains("//") {
        return Err(url_err(Reason::InvalidCharacter {
            expected: "a URL path (letters, digits, '/', '-', '.', '_', '~', percent escapes)",
        }));
    }
    Ok(())
}

impl ServiceUrl {
    /// Parses and validates a service base URL.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() {
            return Err(url_err(Reason::Empty));
        }
        if s.len() > MAX_SERVICE_URL_LEN {
            return Err(url_err(Reason::TooLong {
                len: s.len(),
                max: MAX_SERVICE_URL_LEN,
            }));
        }
        const SHAPE: &str = "http[s]://host[:port][/path]";
        let (scheme_text, rest) = s
            .split_once("://")
            .ok_or(url_err(Reason::Malformed { expected: SHAPE }))?;
        let scheme_like = !scheme_text.is_empty()
            && scheme_text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_like {
            // Never echo text that may be a mistyped credential.
            return Err(url_err(Reason::Malformed { expected: SHAPE }));
        }
        let scheme = if scheme_text.eq_ignore_ascii_case("http") {
            ServiceScheme::Http
        } else if scheme_text.eq_ignore_ascii_case("https") {
            ServiceScheme::Https
        } else {
            return Err(url_err(Reason::UnknownValue {
                got: excerpt(scheme_text),
                expected: "http, https",
            }));
        };
        if rest.contains(['?', '#']) {
            return Err(url_err(Reason::Malformed {
                expected: "no query or fragment in a service base URL",
            }));
        }
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(url_err(Reason::Malformed {
                expected: "no user:password@ in a service URL (send credentials in a header)",
            }));
        }
        let (host, port_text) = if authority.starts_with('[') {
            match authority.find(']') {
                Some(close) => {
                    let (h, after) = authority.split_at(close + 1);
                    if !after.is_empty() && !after.starts_with(':') {
                        return Err(url_err(Reason::Malformed { expected: SHAPE }));
                    }
                    (h, after.strip_prefix(':'))
                }
                None => (authority, None),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        check_service_host(host)?;
        let port = match port_text {
            None => scheme.default_port(),
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(url_err(Reason::Malformed {
                        expected: "a numeric port after ':'",
                    }));
                }
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or(url_err(Reason::OutOfRange {
                        expected: "port 1 to 65535",
                    }))?
            }
        };
        let path = path.trim_end_matches('/');
        check_service_path(path)?;
        let mut host_buf = heapless::String::new();
        let mut path_buf = heapless::String::new();
        // Both fit: lengths were checked above.
        let _ = host_buf.push_str(host);
        let _ = path_buf.push_str(path);
        host_buf.make_ascii_lowercase();
        Ok(Self {
            scheme,
            host: host_buf,
            port,
            path: path_buf,
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> ServiceScheme {
        self.scheme
    }

    /// The host, in lower case; an IPv6 address keeps its brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (the scheme's default when the URL named none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The base path without a trailing `/` (`""` when there is none).
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        f.write_str(&self.path)
    }
}

impl fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceUrl({self})")
    }
}

impl FromStr for ServiceUrl {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
