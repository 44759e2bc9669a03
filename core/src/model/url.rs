//! `ProxyUrl`: a validated proxy address whose password never leaks.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::text::{Str, WireText};
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

    fn parse(s: &str) -> Option<Self> {
        // At most 7 bytes: fold case into a fixed buffer and match it whole.
        let b = s.as_bytes();
        if b.len() > 7 {
            return None;
        }
        let mut low = [0u8; 7];
        for (l, c) in low.iter_mut().zip(b) {
            *l = c.to_ascii_lowercase();
        }
        match &low[..b.len()] {
            b"http" => Some(Scheme::Http),
            b"https" => Some(Scheme::Https),
            b"socks4" => Some(Scheme::Socks4),
            b"socks4a" => Some(Scheme::Socks4a),
            b"socks5" => Some(Scheme::Socks5),
            b"socks5h" => Some(Scheme::Socks5h),
            _ => None,
        }
    }
}

crate::labels! {
    /// The scheme as written in a URL, lower case.
    Scheme {
        Http => "http",
        Https => "https",
        Socks4 => "socks4",
        Socks4a => "socks4a",
        Socks5 => "socks5",
        Socks5h => "socks5h",
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

/// Bytes allowed as they are in a user name or password: unreserved
/// characters and sub-delimiters (`%` escapes are checked separately).
const USERINFO: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
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
        b += 1;
    }
    t
};

/// Copies text already checked to fit.
#[inline]
fn copy<const N: usize>(s: &str) -> heapless::String<N> {
    let mut out = heapless::String::new();
    // Callers check the length first, so the push cannot fail; if it ever
    // did, the text would be cut rather than the program stopped.
    if out.push_str(s).is_err() {
        out = super::text::truncate_into(s).0;
    }
    out
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
        if !USERINFO[usize::from(b)] {
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
    // One pass: allowed characters, no leading '.', no "..".
    let mut prev = b'.';
    let mut valid = true;
    for b in host.bytes() {
        valid &=
            (b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')) || (b == b'.' && prev != b'.');
        prev = b;
    }
    if !valid {
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

        // Byte scans rather than `str` searches: the parts are short.
        let (userinfo, hostport) = match authority.bytes().rposition(|b| b == b'@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (user, pass) = match ui.bytes().position(|b| b == b':') {
                    Some(c) => (&ui[..c], Some(&ui[c + 1..])),
                    None => (ui, None),
                };
                if user.is_empty() {
                    return Err(err(Reason::MissingPart { part: "user name" }));
                }
                check_userinfo(user, "user")?;
                let user = copy(user);
                let pass = match pass {
                    Some(p) if !p.is_empty() => {
                        check_userinfo(p, "password")?;
                        Some(Password(copy(p)))
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
            match hostport.bytes().rposition(|b| b == b':') {
                Some(c) => (&hostport[..c], Some(&hostport[c + 1..])),
                None => (hostport, None),
            }
        };
        check_host(host)?;
        let port_text = port_text
            .filter(|p| !p.is_empty())
            .ok_or(err(Reason::MissingPart { part: "port" }))?;
        // Digits only (leading zeros allowed), saturating above the range.
        let mut port = 0u32;
        for b in port_text.bytes() {
            if !b.is_ascii_digit() {
                return Err(err(Reason::Malformed {
                    expected: "a numeric port",
                }));
            }
            port = (port * 10 + u32::from(b - b'0')).min(1 << 17);
        }
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or(err(Reason::OutOfRange {
                expected: "port 1 to 65535",
            }))?;

        Ok(Self {
            scheme,
            host: copy(host),
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

    /// Whether `self` and `other` name the same proxy: same scheme, same port
    /// and the same host ignoring ASCII case. Credentials do not matter
    /// (feedback and logs carry none), so a URL and its
    /// [`without_credentials`](Self::without_credentials) form are the same
    /// proxy.
    ///
    /// ```
    /// use proxy_delegate_core::model::ProxyUrl;
    ///
    /// let a: ProxyUrl = "socks5://alice:s3cret@Proxy.Example:1080".parse()?;
    /// assert!(a.same_proxy(&"socks5://proxy.example:1080".parse()?));
    /// assert!(!a.same_proxy(&"socks5h://proxy.example:1080".parse()?));
    /// assert!(!a.same_proxy(&"socks5://proxy.example:1081".parse()?));
    /// # Ok::<(), proxy_delegate_core::ValidationError>(())
    /// ```
    pub fn same_proxy(&self, other: &ProxyUrl) -> bool {
        self.scheme == other.scheme
            && self.port == other.port
            && self.host.eq_ignore_ascii_case(&other.host)
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

    /// The URL in full, password included (the codec's one deliberate
    /// exposure). Every component is bounded so that the whole fits in
    /// [`MAX_URL_LEN`]; were it ever longer, the text is cut and a decoder
    /// reports it as too long.
    pub(crate) fn exposed_text(&self) -> heapless::String<MAX_URL_LEN> {
        let mut s = heapless::String::<MAX_URL_LEN>::new();
        // Pieces pushed directly: no formatting machinery on the encode path.
        let _ = s.push_str(self.scheme.as_str());
        let _ = s.push_str("://");
        if let Some(user) = &self.username {
            let _ = s.push_str(user);
            if let Some(p) = &self.password {
                let _ = s.push(':');
                let _ = s.push_str(p.expose());
            }
            let _ = s.push('@');
        }
        let _ = s.push_str(&self.host);
        let _ = s.push(':');
        let mut digits = [0u8; 5];
        let mut n = self.port;
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &d in &digits[i..] {
            let _ = s.push(char::from(d));
        }
        s
    }

    /// Validates borrowed wire text, reporting errors under `field`.
    #[inline]
    pub(crate) fn from_str_wire(w: Str<'_>, field: &'static str) -> Result<Self, ValidationError> {
        Self::parse(w.checked(field, MAX_URL_LEN)?).map_err(|e| e.at(field))
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
        Self::from_str_wire(w.as_str_ref(), FIELD).map_err(serde::de::Error::custom)
    }
}
