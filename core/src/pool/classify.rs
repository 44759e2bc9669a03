//! Categories for failures reported without one: a client that speaks only
//! the published API sends `success: false` with free-text `error_details`
//! and no `error_category`. The text is matched against a small fixed table
//! (see [`category_from_details`]); allocation-free and bounded.

use crate::model::ErrorCategory;

/// One pattern of the table (lower-case ASCII).
#[derive(Debug, Clone, Copy)]
enum Pattern {
    /// Text anywhere, ASCII case-insensitive.
    Text(&'static str),
    /// A status code: these digits, not part of a longer number or a
    /// decimal, and not a duration in milliseconds (`500 ms`).
    Code(&'static str),
}

use ErrorCategory::{
    GeoBlocked, ProxyAuth, ProxyConnect, RateLimited, TargetHttp5xx, TargetTls, Timeout,
    TunnelRefused,
};
use Pattern::{Code, Text};

/// The table, row by row: of the patterns found in the text, the first
/// listed wins.
const PATTERNS: [(ErrorCategory, Pattern); 41] = [
    (ProxyAuth, Code("407")),
    (ProxyAuth, Text("proxy auth")),
    (ProxyAuth, Text("proxy-auth")),
    (TunnelRefused, Text("tunnel")),
    (TunnelRefused, Text("httpproxyerror")),
    (TunnelRefused, Text("not allowed by ruleset")),
    (RateLimited, Code("429")),
    (RateLimited, Text("rate limit")),
    (RateLimited, Text("rate-limit")),
    (RateLimited, Text("ratelimit")),
    (RateLimited, Text("too many requests")),
    (GeoBlocked, Code("451")),
    (GeoBlocked, Code("403")),
    (GeoBlocked, Text("forbidden")),
    (GeoBlocked, Text("geo-block")),
    (GeoBlocked, Text("geoblock")),
    (GeoBlocked, Text("geo block")),
    (GeoBlocked, Text("geographic")),
    (GeoBlocked, Text("restricted location")),
    (GeoBlocked, Text("legal reasons")),
    (TargetTls, Text("certificate")),
    (TargetTls, Text("tls")),
    (TargetTls, Text("[ssl")),
    (TargetTls, Text("sslerror")),
    (TargetTls, Text("sslcert")),
    (TargetHttp5xx, Code("500")),
    (TargetHttp5xx, Code("502")),
    (TargetHttp5xx, Code("503")),
    (TargetHttp5xx, Code("504")),
    (TargetHttp5xx, Text("bad gateway")),
    (TargetHttp5xx, Text("gateway timeout")),
    (TargetHttp5xx, Text("service unavailable")),
    (TargetHttp5xx, Text("internal server error")),
    (Timeout, Text("timed out")),
    (Timeout, Text("timeout")),
    (Timeout, Text("time out")),
    (ProxyConnect, Text("connect")),
    (ProxyConnect, Text("refused")),
    (ProxyConnect, Text("unreachable")),
    (ProxyConnect, Text("reset by peer")),
    (ProxyConnect, Text("socks")),
];

const fn text_of(p: Pattern) -> &'static str {
    match p {
        Text(t) | Code(t) => t,
    }
}

/// For each (lower-case) byte, the patterns that start with it, one bit
/// per index into [`PATTERNS`].
const BY_FIRST_BYTE: [u64; 256] = {
    assert!(PATTERNS.len() < 64);
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < PATTERNS.len() {
        let text = text_of(PATTERNS[i].1).as_bytes();
        assert!(!text.is_empty());
        let mut j = 0;
        while j < text.len() {
            assert!(!text[j].is_ascii_uppercase(), "patterns are lower case");
            j += 1;
        }
        table[text[0] as usize] |= 1 << i;
        i += 1;
    }
    table
};

/// The category that free-text `error_details` names, if any: the first
/// row of this table with a pattern in the text (ASCII case-insensitive;
/// a status code counts only as a number of its own, not inside a longer
/// number, a decimal or a duration such as `500 ms`).
///
/// | category | patterns |
/// | --- | --- |
/// | `proxy_auth` | `407`, `proxy auth`, `proxy-auth` |
/// | `tunnel_refused` | `tunnel`, `httpproxyerror`, `not allowed by ruleset` |
/// | `rate_limited` | `429`, `rate limit`, `rate-limit`, `ratelimit`, `too many requests` |
/// | `geo_blocked` | `451`, `403`, `forbidden`, `geo-block`, `geoblock`, `geo block`, `geographic`, `restricted location`, `legal reasons` |
/// | `target_tls` | `certificate`, `tls`, `[ssl`, `sslerror`, `sslcert` |
/// | `target_http_5xx` | `500`, `502`, `503`, `504`, `bad gateway`, `gateway timeout`, `service unavailable`, `internal server error` |
/// | `timeout` | `timed out`, `timeout`, `time out` |
/// | `proxy_connect` | `connect`, `refused`, `unreachable`, `reset by peer`, `socks` |
///
/// Only the first [`MAX_ERROR_DETAILS_LEN`](crate::model::MAX_ERROR_DETAILS_LEN)
/// bytes are looked at. Never allocates; one pass over the text, trying at
/// each byte only the patterns that start with it.
///
/// ```
/// use proxy_delegate_core::model::ErrorCategory;
/// use proxy_delegate_core::pool::category_from_details;
///
/// assert_eq!(
///     category_from_details("Cannot connect to host 10.0.0.1:3128 [Connection refused]"),
///     Some(ErrorCategory::ProxyConnect)
/// );
/// assert_eq!(
///     category_from_details("Tunnel connection failed: 407 Proxy Authentication Required"),
///     Some(ErrorCategory::ProxyAuth)
/// );
/// assert_eq!(
///     category_from_details("server rejected WebSocket connection: HTTP 503"),
///     Some(ErrorCategory::TargetHttp5xx)
/// );
/// assert_eq!(category_from_details("timed out after 500 ms"), Some(ErrorCategory::Timeout));
/// assert_eq!(category_from_details("something went wrong"), None);
/// ```
pub fn category_from_details(details: &str) -> Option<ErrorCategory> {
    let text = details.as_bytes();
    let text = text
        .get(..crate::model::MAX_ERROR_DETAILS_LEN)
        .unwrap_or(text);
    // One pass: at each byte, only the patterns that start with it and
    // come before the best match so far.
    let mut best = PATTERNS.len();
    for (at, b) in text.iter().enumerate() {
        let first = BY_FIRST_BYTE
            .get(usize::from(b.to_ascii_lowercase()))
            .copied()
            .unwrap_or(0);
        let mut candidates = first & ((1u64 << best) - 1);
        while candidates != 0 {
            let i = candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            if PATTERNS
                .get(i)
                .is_some_and(|(_, p)| matches_at(text, at, *p))
            {
                best = i;
                break;
            }
        }
        if best == 0 {
            break;
        }
    }
    PATTERNS.get(best).map(|(c, _)| *c)
}

/// Whether pattern `p` occurs in `text` at `at`.
fn matches_at(text: &[u8], at: usize, p: Pattern) -> bool {
    let pat = text_of(p).as_bytes();
    let found = text
        .get(at..at + pat.len())
        .is_some_and(|w| w.eq_ignore_ascii_case(pat));
    match p {
        Text(_) => found,
        Code(_) => found && is_code_at(text, at, pat.len()),
    }
}

/// Whether the digits at `at..at + len` stand as a number of their own.
fn is_code_at(text: &[u8], at: usize, len: usize) -> bool {
    let before = at.checked_sub(1).and_then(|i| text.get(i)).copied();
    if before.is_some_and(|b| b.is_ascii_digit() || b == b'.') {
        return false;
    }
    let after = text.get(at + len..).unwrap_or(&[]);
    match after {
        [d, ..] if d.is_ascii_digit() => false,
        [b'.', d, ..] if d.is_ascii_digit() => false,
        // Not a duration: `500ms`, `500 ms`, `500 msec`.
        _ => !after
            .trim_ascii_start()
            .get(..2)
            .is_some_and(|u| u.eq_ignore_ascii_case(b"ms")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(text: &[u8], p: Pattern) -> bool {
        (0..text.len()).any(|at| matches_at(text, at, p))
    }

    #[test]
    fn codes_stand_alone() {
        assert!(matches(b"HTTP 503", Code("503")));
        assert!(matches(b"(503)", Code("503")));
        assert!(matches(b"503, message='x'", Code("503")));
        assert!(!matches(b"port 15030", Code("503")));
        assert!(!matches(b"took 503ms", Code("503")));
        assert!(!matches(b"took 503 ms", Code("503")));
        assert!(!matches(b"took 503 msec", Code("503")));
        assert!(!matches(b"v1.503", Code("503")));
        assert!(!matches(b"503.5 s", Code("503")));
        assert!(matches(b"error 5030 then 503", Code("503")));
    }
}
