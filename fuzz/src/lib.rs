//! Oracles shared by the fuzz targets of `proxy-delegate-core`.
//!
//! Every target feeds arbitrary input to a decoder or parser. Failing is fine;
//! panicking, hanging or crashing is a bug. When decoding succeeds the value is
//! checked against real oracles:
//!
//! * round trip: re-encoding the value and decoding it again gives an equal
//!   value, in the same format and in the other one, and the re-encoding is
//!   stable (encoding the copy gives the same bytes);
//! * redaction: a `ProxyUrl`'s `Display` is exactly what its accessors say with
//!   the password shown as `***`, and the `Debug` of a URL or of a whole
//!   response does not change when only the password changes (so it cannot
//!   contain it); the password text itself never appears where it could not
//!   appear by coincidence;
//! * errors: the only input text an error may echo is a URL scheme or an enum
//!   value, never anything from the credentials.

use std::fmt::Debug;

use proxy_delegate_core::codec::{self, DecodeError, EncodeError, Message};
use proxy_delegate_core::model::{ProxyFeedback, ProxyRequest, ProxyResponse, ProxyUrl};
use proxy_delegate_core::{Reason, ValidationError};

/// Room for the re-encoding of any message the decoders accept (escapes can
/// make a JSON encoding longer than the input it came from).
const ENCODE_BUF_LEN: usize = 4 * codec::MAX_INPUT_LEN;

/// The wire format a target decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `codec::json`.
    Json,
    /// `codec::postcard`.
    Postcard,
}

impl Format {
    fn decode<M: Message>(self, input: &[u8]) -> Result<M, DecodeError> {
        match self {
            Format::Json => codec::json::decode(input),
            Format::Postcard => codec::postcard::decode(input),
        }
    }

    fn encode<M: Message>(self, msg: &M, out: &mut [u8]) -> Result<usize, EncodeError> {
        match self {
            Format::Json => codec::json::encode(msg, out),
            Format::Postcard => codec::postcard::encode(msg, out),
        }
    }

    fn other(self) -> Self {
        match self {
            Format::Json => Format::Postcard,
            Format::Postcard => Format::Json,
        }
    }
}

/// A message under test and the invariants a decoded value must hold.
trait Checked: Message + Clone + PartialEq + Debug {
    const NAME: &'static str;
    fn check_invariants(&self);
}

impl Checked for ProxyRequest {
    const NAME: &'static str = "ProxyRequest";
    fn check_invariants(&self) {
        let id = self.exchange_id.as_str();
        assert_eq!(id, id.to_ascii_lowercase(), "exchange ids are case-folded");
    }
}

impl Checked for ProxyResponse {
    const NAME: &'static str = "ProxyResponse";
    fn check_invariants(&self) {
        let Some(url) = &self.proxy_url else { return };
        check_url(url);
        let Some(password) = url.password() else {
            return;
        };
        // The response's Debug must not depend on the password: swap in
        // another password and compare.
        let mut other = self.clone();
        other.proxy_url = Some(with_other_password(url, password.expose()));
        let shown = format!("{self:?}");
        let shown_other = format!("{other:?}");
        assert_eq!(
            shown, shown_other,
            "a response's Debug output changed with the password"
        );
        let secret = password.expose();
        if !shown_other.contains(secret) {
            assert!(
                !shown.contains(secret),
                "a response's Debug shows the password"
            );
        }
    }
}

impl Checked for ProxyFeedback {
    const NAME: &'static str = "ProxyFeedback";
    fn check_invariants(&self) {
        if let Some(url) = &self.proxy_url {
            assert!(
                !url.has_credentials(),
                "feedback must never carry proxy credentials: {url:?}"
            );
            check_url(url);
        }
    }
}

/// Decodes `data` as each message with `format` and checks every success.
pub fn decode_all(format: Format, data: &[u8]) {
    check_message::<ProxyRequest>(format, data);
    check_message::<ProxyResponse>(format, data);
    check_message::<ProxyFeedback>(format, data);
}

/// The published bodies with holes (`@`) for the field values, and each
/// hole's default. Random bytes almost never form a valid message, so the
/// targets also fill these templates from the input: every input then reaches
/// validation and the round-trip oracles, without a committed corpus.
const TEMPLATES: [(&str, &[&str]); 3] = [
    (
        r#"{"exchange_id":"@","connection_type":"@","region":"@","client_id":"@","metadata":{"feed_types":["@"],"symbols":["@","@"]}}"#,
        &[
            "binance",
            "websocket",
            "us-east-1",
            "cryptofeed-instance-123",
            "trades",
            "BTC-USD",
            "ETH-USD",
        ],
    ),
    (
        r#"{"proxy_url":"@","strategy":"@","ttl_seconds":@,"fallback_policy":"@","metadata":{"proxy_id":"@","region":"@","health_score":@}}"#,
        &[
            "socks5://user:pass@proxy-server:1080",
            "least_connections",
            "300",
            "direct_connection",
            "proxy-123",
            "us-east-1",
            "0.98",
        ],
    ),
    (
        r#"{"proxy_id":"@","proxy_url":"@","exchange_id":"@","connection_type":"@","event":"@","success":@,"latency_ms":@,"error_category":"@","error_details":"@","timestamp":"@","client_id":"@"}"#,
        &[
            "proxy-123",
            "socks5://user:pass@proxy-server:1080",
            "binance",
            "websocket",
            "failure",
            "false",
            "45",
            "timeout",
            "no answer",
            "2024-09-23T10:30:00Z",
            "cryptofeed-instance-123",
        ],
    ),
];

/// Fills template `which` from `records`: records are separated by `0xFF`;
/// a record's first byte picks the hole (modulo their number) and the rest
/// replaces that hole's default, verbatim (quotes and escapes included).
fn fill(which: usize, records: &[u8]) -> Vec<u8> {
    let (template, defaults) = TEMPLATES[which];
    let mut values: Vec<&[u8]> = defaults.iter().map(|d| d.as_bytes()).collect();
    for record in records.split(|&b| b == 0xFF) {
        if let Some((&hole, value)) = record.split_first() {
            let n = values.len();
            values[usize::from(hole) % n] = value;
        }
    }
    let mut out = Vec::with_capacity(template.len() + records.len());
    for (i, part) in template.split('@').enumerate() {
        if i > 0 {
            out.extend_from_slice(values[i - 1]);
        }
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// The `json_decode` target: `data` as is, then every template filled from
/// `data`, each decoded as every message.
pub fn json_target(data: &[u8]) {
    decode_all(Format::Json, data);
    for which in 0..TEMPLATES.len() {
        decode_all(Format::Json, &fill(which, data));
    }
}

/// The `postcard_decode` target: `data` as is; then, for each template filled
/// from the part of `data` before the first `0xFE`, the postcard encoding of
/// the message it holds, as is and with the rest of `data` applied as
/// `(position, byte)` overwrites, each decoded as every message.
pub fn postcard_target(data: &[u8]) {
    decode_all(Format::Postcard, data);
    let (records, edits) = match data.iter().position(|&b| b == 0xFE) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    for which in 0..TEMPLATES.len() {
        let body = fill(which, records);
        let encoded = match which {
            0 => postcard_of::<ProxyRequest>(&body),
            1 => postcard_of::<ProxyResponse>(&body),
            _ => postcard_of::<ProxyFeedback>(&body),
        };
        let Some(mut bytes) = encoded else { continue };
        decode_all(Format::Postcard, &bytes);
        if bytes.is_empty() || edits.len() < 2 {
            continue;
        }
        for edit in edits.chunks_exact(2) {
            let at = usize::from(edit[0]) % bytes.len();
            bytes[at] = edit[1];
        }
        if edits.len() % 2 == 1 {
            // An odd last byte truncates.
            let keep = usize::from(edits[edits.len() - 1]) % bytes.len();
            bytes.truncate(keep);
        }
        decode_all(Format::Postcard, &bytes);
    }
}

/// The postcard encoding of the message in `json`, if it is valid.
fn postcard_of<M: Checked>(json: &[u8]) -> Option<Vec<u8>> {
    let msg: M = codec::json::decode(json).ok()?;
    let mut buf = vec![0u8; ENCODE_BUF_LEN];
    let n = codec::postcard::encode(&msg, &mut buf)
        .unwrap_or_else(|e| panic!("{}: postcard encoding of {msg:?} failed: {e}", M::NAME));
    buf.truncate(n);
    Some(buf)
}

fn check_message<M: Checked>(format: Format, data: &[u8]) {
    let decoded = match format.decode::<M>(data) {
        Ok(m) => m,
        Err(e) => {
            check_decode_error(&e);
            return;
        }
    };
    decoded.check_invariants();
    let name = M::NAME;

    // Same format: encode, decode, compare; the encoding is stable.
    let mut first = vec![0u8; ENCODE_BUF_LEN];
    let n = format
        .encode(&decoded, &mut first)
        .unwrap_or_else(|e| panic!("{name}: {format:?} re-encoding of {decoded:?} failed: {e}"));
    let again: M = format.decode(&first[..n]).unwrap_or_else(|e| {
        panic!("{name}: {format:?} encoding of {decoded:?} does not decode: {e}")
    });
    assert_eq!(
        again, decoded,
        "{name}: {format:?} round trip changed the value"
    );
    let mut second = vec![0u8; ENCODE_BUF_LEN];
    let n2 = format
        .encode(&again, &mut second)
        .unwrap_or_else(|e| panic!("{name}: second {format:?} encoding failed: {e}"));
    assert_eq!(
        &first[..n],
        &second[..n2],
        "{name}: {format:?} encoding is not stable"
    );

    // The other format carries the same value.
    let other = format.other();
    let n3 = other
        .encode(&decoded, &mut second)
        .unwrap_or_else(|e| panic!("{name}: {other:?} encoding of {decoded:?} failed: {e}"));
    let cross: M = other.decode(&second[..n3]).unwrap_or_else(|e| {
        panic!("{name}: {other:?} encoding of {decoded:?} does not decode: {e}")
    });
    assert_eq!(
        cross, decoded,
        "{name}: {other:?} round trip changed the value"
    );
}

fn check_decode_error(e: &DecodeError) {
    // Formatting an error must never panic.
    let shown = e.to_string();
    assert!(!shown.is_empty());
    let _ = format!("{e:?}");
    if let DecodeError::Invalid(v) = e {
        check_validation_error(v, None);
    }
}

/// Checks a validation error: its message is `field: reason`, and the only
/// input text it may echo is a URL scheme (which must look like one: anything
/// else could be a mistyped credential) or an enum value.
fn check_validation_error(v: &ValidationError, scheme: Option<&str>) {
    assert_eq!(v.to_string(), format!("{}: {}", v.field, v.reason));
    if let Reason::UnsupportedScheme { got } = &v.reason {
        assert!(
            got.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')),
            "an error echoed a non-scheme text as a scheme"
        );
        if let Some(scheme) = scheme {
            assert!(
                scheme.starts_with(got.as_str()),
                "UnsupportedScheme must echo the scheme given"
            );
        }
    }
}

/// The URL's `Display` as its accessors describe it, password as `***`.
fn redacted(url: &ProxyUrl) -> String {
    let mut out = format!("{}://", url.scheme());
    if let Some(user) = url.username() {
        out.push_str(user);
        if url.password().is_some() {
            out.push_str(":***");
        }
        out.push('@');
    }
    out.push_str(&format!("{}:{}", url.host(), url.port()));
    out
}

/// The same URL with another password.
fn with_other_password(url: &ProxyUrl, password: &str) -> ProxyUrl {
    let replacement = if password == "x" { "y" } else { "x" };
    let text = format!(
        "{}://{}:{}@{}:{}",
        url.scheme(),
        url.username().unwrap_or("u"),
        replacement,
        url.host(),
        url.port()
    );
    ProxyUrl::parse(&text)
        .unwrap_or_else(|e| panic!("{text:?} (a valid URL with another password) rejected: {e}"))
}

/// Checks a valid URL: the exposed form parses back to an equal URL, the
/// credential-free form has no credentials, and no rendering but the exposed
/// one contains the password.
pub fn check_url(url: &ProxyUrl) {
    let exposed = url.expose_credentials().to_string();
    let back = ProxyUrl::parse(&exposed)
        .unwrap_or_else(|e| panic!("the exposed form of {url:?} does not parse: {e}"));
    assert_eq!(
        &back, url,
        "the exposed form does not parse back to the URL"
    );

    let shown = url.to_string();
    assert_eq!(shown, redacted(url), "Display is not the redacted URL");
    let debug = format!("{url:?}");
    assert_eq!(
        format!("{:?}", url.expose_credentials()),
        debug,
        "ExposedUrl's Debug must redact like ProxyUrl's"
    );

    let bare = url.without_credentials();
    assert!(!bare.has_credentials());
    assert_eq!(
        bare.to_string(),
        format!("{}://{}:{}", url.scheme(), url.host(), url.port())
    );

    let Some(password) = url.password() else {
        return;
    };
    assert_eq!(password.to_string(), "***");
    assert_eq!(format!("{password:?}"), "***");
    let other = with_other_password(url, password.expose());
    assert_eq!(
        other.to_string(),
        shown,
        "Display changed with the password"
    );
    let debug_other = format!("{other:?}");
    assert_eq!(debug_other, debug, "Debug changed with the password");
    let secret = password.expose();
    if !debug_other.contains(secret) {
        assert!(!debug.contains(secret), "Debug shows the password");
    }
    if !redacted(url).contains(secret) {
        assert!(!shown.contains(secret), "Display shows the password");
    }
}

/// Parses `text` as a proxy URL and checks the result either way.
pub fn parse_url(text: &str) {
    match ProxyUrl::parse(text) {
        Ok(url) => {
            assert_eq!(text.parse::<ProxyUrl>().as_ref(), Ok(&url));
            check_url(&url);
        }
        Err(e) => {
            assert_eq!(e.field, "proxy_url");
            check_validation_error(&e, text.split_once("://").map(|(scheme, _)| scheme));
        }
    }
}
