//! `ProxyUrl`: a validated proxy address whose password never leaks.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::text::WireText;
use crate::error::excerpt;
use crate::{Reason, ValidationError};

/// Longest accepted proxy URL, in bytes.
pub const MAX_URL_LEN: usize = 512;
/// Longest accepted host, in bytes (a DNS name is at most 253; an IPv6 literal
/// with brackets is shorter).
pub const MAX_HOST_LEN: usize = 253;
/// Longest accepted user name or password, in bytes, as written in the URL
/// (that is, percent-encoded).
pub const MAX_USERINFO_LEN: usize = 128;

const FIELD: &str = "proxy_url";

/// The proxy protocols a [`ProxyUrl`] may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// HTTP proxy (CONNECT for TLS targets).
    Http,
    /// HTTP proxy reached over TLS.
    Https,
    /// SOCKS4, target resolved by the client.
    Socks4,
    /// SOCKS4a, target resolved by the proxy.
    Socks4a,
    /// SOCKS5, target resolved by the client.
    Socks5,
    /// SOCKS5, target resolved by the proxy.
    Socks5h,
}

impl Scheme {
    /// Every scheme, in the order of the error message.
    pub const ALL: [Scheme; 6] = [
        Scheme::Http,
        Scheme::Https,
        Scheme::Socks4,
        Scheme::Socks4a,
        Scheme::Socks5,
        Scheme::Socks5h,
    ];

    /// The scheme as written in a URL, lower case.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Socks4 => "socks4",
            Scheme::Socks4a => "socks4a",
            Scheme::Socks5 => "socks5",
            Scheme::Socks5h => "socks5h",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|scheme| scheme.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A proxy password. `Debug` and `Display` print `***`; the text is reachable
/// only through [`Password::expose`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Password(heapless::String<MAX_USERINFO_LEN>);

impl Password {
    /// The password as written in the URL (percent-encoded). Call this only to
    /// hand the password to a connector.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A validated proxy URL: `scheme://[user[:password]@]host:port[/]`.
///
/// * scheme: `http`, `https`, `socks4`, `socks4a`, `socks5` or `socks5h`,
///   matched case-insensitively and kept in lower case;
/// * host: a DNS name, an IPv4 address or a bracketed IPv6 address (required);
/// * port: 1–65535 (required);
/// * user and password: optional, percent-encoded as in any URL.
///
/// `Display` and `Debug` show the password as `***`. The full URL, password
/// included, is written only by [`ProxyUrl::expose_credentials`], which is what a
/// connector calls. [`ProxyUrl::without_credentials`] gives the form used in
/// feedback and logs.
///
/// ```
/// use proxy_delegate_core::model::ProxyUrl;
///
/// let url: ProxyUrl = "SOCKS5://alice:s3cret@proxy.example:1080".parse()?;
/// assert_eq!(url.to_string(), "socks5://alice:***@proxy.example:1080");
/// assert_eq!(url.expose_credentials().to_string(), "socks5://alice:s3cret@proxy.example:1080");
/// assert_eq!(url.without_credentials().to_string(), "socks5://proxy.example:1080");
///
/// let err = "ftp://proxy.example:21".parse::<ProxyUrl>().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     r#"proxy_url: unsupported scheme "ftp" (expected one of http, https, socks4, socks4a, socks5, socks5h)"#
/// );
/// # Ok::<(), proxy_delegate_core::ValidationError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyUrl {
    scheme: Scheme,
    host: heapless::String<MAX_HOST_LEN>,
    port: u16,
    username: Option<heapless::String<MAX_USERINFO_LEN>>,
    password: Option<Password>,
}

fn err(reason: Reason) -> ValidationError {
    ValidationError::new(FIELD, reason)
}

/// Userinfo may hold unreserved characters, sub-delimiters and percent escapes.
fn check_userinfo(s: &str, part: &'static str) -> Result<(), ValidationError> {
    if s.len() > MAX_USERINFO_LEN {
        return Err(err(Reason::TooLong {
            len: s.len(),
            max: MAX_USERINFO_LEN,
        }));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Err(err(Reason::Malformed {
                    expected: "a valid percent escape (%XX) in the user name or password",
                }));
            }
            i += 3;
            continue;
        }
        let allowed = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        if !allowed {
            return Err(err(Reason::InvalidCharacter {
                expected: if part == "user" {
                    "user name characters; percent-encode others"
                } else {
                    "password characters; percent-encode others"
                },
            }));
        }
        i += 1;
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), ValidationError> {
    if host.is_empty() {
        return Err(err(Reason::MissingPart { part: "host" }));
    }
    if host.len() > MAX_HOST_LEN {
        return Err(err(Reason::TooLong {
            len: host.len(),
            max: MAX_HOST_LEN,
        }));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let ok = inner
            .strip_suffix(']')
            .is_some_and(|ip| core::net::Ipv6Addr::from_str(ip).is_ok());
        if !ok {
            return Err(err(Reason::Malformed {
                expected: "an IPv6 address in brackets, e.g. [::1]",
            }));
        }
        return Ok(());
    }
    let valid = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    let double_dot = host.as_bytes().windows(2).any(|w| w == b"..");
    if !valid || host.starts_with('.') || double_dot {
        return Err(err(Reason::InvalidCharacter {
            expected: "a host name (letters, digits, '-', '_', '.') or an IP address",
        }));
    }
    Ok(())
}

impl ProxyUrl {
    /// Parses and validates a proxy URL. Errors name the field `proxy_url` and
    /// never contain the password.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() {
            return Err(err(Reason::Empty));
        }
        if s.len() > MAX_URL_LEN {
            return Err(err(Reason::TooLong {
                len: s.len(),
                max: MAX_URL_LEN,
            }));
        }
        // The scheme ends at the first ':', which must start "://". (Same
        // outcome as splitting at the first "://": if an earlier ':' exists,
        // that scheme would hold a ':' and be refused as malformed below.)
        let malformed = || {
            err(Reason::Malformed {
                expected: "scheme://[user[:password]@]host:port",
            })
        };
        let colon = s.bytes().position(|b| b == b':').ok_or_else(malformed)?;
        let (scheme_text, rest) = (&s[..colon], &s[colon + 1..]);
        let rest = rest.strip_prefix("//").ok_or_else(malformed)?;
        // Only echo a scheme that looks like one: anything else might be a
        // mistyped credential.
        let scheme_like = !scheme_text.is_empty()
            && scheme_text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_like {
            return Err(err(Reason::Malformed {
                expected: "scheme://[user[:password]@]host:port",
            }));
        }
        let scheme = Scheme::parse(scheme_text).ok_or_else(|| {
            err(Reason::UnsupportedScheme {
                got: excerpt(scheme_text),
            })
        })?;

        // A proxy URL has no path, query or fragment; a lone trailing '/' is tolerated.
        let authority_end = rest
            .bytes()
            .position(|b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if !(tail.is_empty() || tail == "/") {
            return Err(err(Reason::Malformed {
                expected: "no path, query or fragment after host:port",
            }));
        }

        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((ui, hp)) => (Some(ui), hp),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (user, pass) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (ui, None),
                };
                if user.is_empty() {
                    return Err(err(Reason::MissingPart { part: "user name" }));
                }
                check_userinfo(user, "user")?;
                let user = super::text::truncate_into(user).0;
                let pass = match pass {
                    Some(p) if !p.is_empty() => {
                        check_userinfo(p, "password")?;
                        Some(Password(super::text::truncate_into(p).0))
                    }
                    _ => None,
                };
                (Some(user), pass)
            }
        };

        let (host, port_text) = if hostport.starts_with('[') {
            match hostport.find(']') {
                Some(close) => {
                    let (h, after) = hostport.split_at(close + 1);
                    (h, after.strip_prefix(':'))
                }
                None => (hostport, None),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        check_host(host)?;
        let port_text = port_text
            .filter(|p| !p.is_empty())
            .ok_or(err(Reason::MissingPart { part: "port" }))?;
        if !port_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(Reason::Malformed {
                expected: "a numeric port",
            }));
        }
        let port = port_text
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or(err(Reason::OutOfRange {
                expected: "port 1 to 65535",
            }))?;

        Ok(Self {
            scheme,
            host: super::text::truncate_into(host).0,
            port,
            username,
            password,
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host: a DNS name, an IPv4 address, or an IPv6 address in brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user name as written in the URL (percent-encoded), if any.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password, if any. It prints as `***`; see [`Password::expose`].
    pub fn password(&self) -> Option<&Password> {
        self.password.as_ref()
    }

    /// Whether the URL carries a user name or a password.
    pub fn has_credentials(&self) -> bool {
        self.username.is_some() || self.password.is_some()
    }

    /// The same proxy without user name and password: the form sent in feedback
    /// and written to logs.
    pub fn without_credentials(&self) -> Self {
        Self {
            scheme: self.scheme,
            host: self.host.clone(),
            port: self.port,
            username: None,
            password: None,
        }
    }

    /// The full URL, password included, for a connector. This is the one place
    /// the password is written out; keep the result away from logs.
    pub fn expose_credentials(&self) -> ExposedUrl<'_> {
        ExposedUrl(self)
    }

    fn write(&self, f: &mut dyn fmt::Write, show_password: bool) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(user) = &self.username {
            f.write_str(user)?;
            if let Some(p) = &self.password {
                f.write_char(':')?;
                f.write_str(if show_password { p.expose() } else { "***" })?;
            }
            f.write_char('@')?;
        }
        write!(f, "{}:{}", self.host, self.port)
    }

    /// The URL in full as wire text (the codec's one deliberate exposure).
    pub(crate) fn to_wire_exposed(&self) -> WireText<MAX_URL_LEN> {
        let mut s = heapless::String::<MAX_URL_LEN>::new();
        // Every component is bounded so that the whole fits in MAX_URL_LEN... except in
        // pathological cases, where the text is cut and the decoder reports it too long.
        let _ = self.write(&mut s, true);
        WireText::from_str(&s)
    }

    pub(crate) fn from_wire(
        w: &WireText<MAX_URL_LEN>,
        field: &'static str,
    ) -> Result<Self, ValidationError> {
        Self::parse(w.checked(field)?).map_err(|e| e.at(field))
    }
}

/// The full URL with its password, from [`ProxyUrl::expose_credentials`].
/// Its `Debug` still redacts; only `Display` writes the password.
pub struct ExposedUrl<'a>(&'a ProxyUrl);

impl fmt::Display for ExposedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f, true)
    }
}

impl fmt::Debug for ExposedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProxyUrl(\"")?;
        self.write(f, false)?;
        f.write_str("\")")
    }
}

impl FromStr for ProxyUrl {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Deserializes from a URL string, validating it. (There is deliberately no
/// `Serialize`: writing a URL out with its password is a named call,
/// [`ProxyUrl::expose_credentials`], never a side effect of serialising a struct.)
impl<'de> Deserialize<'de> for ProxyUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireText::<MAX_URL_LEN>::deserialize(d)?;
        Self::from_wire(&w, FIELD).map_err(serde::de::Error::custom)
    }
}
