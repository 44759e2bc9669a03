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

// ------------------------------------------------------------------ the service

use proxy_delegate_service::fuzzing::{Decoded, Route, decode_request_body};

/// The password planted in the feedback bodies `service_request` builds:
/// no rejection may quote it.
const PLANTED_PASSWORD: &str = "Pw7f3kq9XZ";
/// The template URL, and the same with the planted password.
const TEMPLATE_URL: &str = "socks5://user:pass@proxy-server:1080";
const PLANTED_URL: &str = "socks5://user:Pw7f3kq9XZ@proxy-server:1080";

/// `Content-Type` lines by the input's second byte (several values are
/// several header lines).
const CONTENT_TYPES: [&[&[u8]]; 8] = [
    &[],
    &[b"application/json"],
    &[b"application/x-postcard"],
    &[b"application/json; charset=utf-8"],
    &[b"APPLICATION/X-POSTCARD"],
    &[b"text/plain"],
    &[b"application/x-postcard", b"application/json"],
    &[b"application/json\xff"],
];

/// `Content-Encoding` lines by the input's third byte, and whether the
/// target gzips the body itself.
const ENCODINGS: [(&[&[u8]], bool); 8] = [
    (&[], false),
    (&[b"gzip"], true),
    (&[b"X-Gzip "], true),
    (&[b"gzip"], false),
    (&[b"identity"], false),
    (&[b""], false),
    (&[b"gzip", b"gzip"], true),
    (&[b"br"], false),
];

/// `Accept` lines by the input's fourth byte.
const ACCEPTS: [&[&[u8]]; 8] = [
    &[],
    &[b"application/x-postcard"],
    &[b"application/json"],
    &[b"application/x-postcard;q=0"],
    &[b"*/*;q=0"],
    &[b"application/json;q=0.5, application/x-postcard;q=0.9"],
    &[b"text/html", b"application/*;q=0.2"],
    &[b"application/*;q=0, application/json;q=1"],
];

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("writing to a Vec");
    enc.finish().expect("writing to a Vec")
}

/// One message of template `which`, filled from `records`, in JSON or (when
/// it is valid) postcard.
fn template_message(which: usize, records: &[u8], postcard: bool) -> Vec<u8> {
    let json = fill(which, records);
    let json = if which == 2 {
        replace_bytes(&json, TEMPLATE_URL.as_bytes(), PLANTED_URL.as_bytes())
    } else {
        json
    };
    if !postcard {
        return json;
    }
    let encoded = match which {
        0 => postcard_of::<ProxyRequest>(&json),
        _ => postcard_of::<ProxyFeedback>(&json),
    };
    encoded.unwrap_or(json)
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while !rest.is_empty() {
        if rest.starts_with(from) {
            out.extend_from_slice(to);
            rest = &rest[from.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// The `service_request` target (see `fuzz_targets/service_request.rs`).
///
/// Byte 0: `% 3` the route and shape (0: a request, 1: one feedback event,
/// 2: a feedback batch), bit 2 whether the body is the rest of the input as
/// is (0) or built from the published bodies (1: the rest as template
/// records, a batch's elements separated by `0xFE`, in postcard when the
/// `Content-Type` says so). Byte 1 picks the `Content-Type`, byte 2 the
/// `Content-Encoding` (bit 3: gzip the body in two members), byte 3 the
/// `Accept`.
pub fn service_request_target(data: &[u8]) {
    let [mode, ct, enc, acc, rest @ ..] = data else {
        return;
    };
    let shape = mode % 3;
    let route = if shape == 0 {
        Route::Request
    } else {
        Route::Feedback
    };
    let content_type = CONTENT_TYPES[usize::from(*ct) % 8];
    let (encoding, compress) = ENCODINGS[usize::from(*enc) % 8];
    let accept = ACCEPTS[usize::from(*acc) % 8];
    let postcard = matches!(ct % 8, 2 | 4);
    let which = if shape == 0 { 0 } else { 2 };

    let mut body = if mode & 0x04 == 0 {
        rest.to_vec()
    } else if shape == 2 {
        let elements: Vec<Vec<u8>> = rest
            .split(|&b| b == 0xFE)
            .map(|r| template_message(which, r, postcard))
            .collect();
        if postcard {
            elements.concat()
        } else {
            let mut out = b"[".to_vec();
            out.extend_from_slice(&elements.join(&b","[..]));
            out.push(b']');
            out
        }
    } else {
        template_message(which, rest, postcard)
    };
    // Every occurrence of the planted password is in the planted URL.
    let planted = count(&body, PLANTED_PASSWORD.as_bytes()) > 0
        && count(&body, PLANTED_PASSWORD.as_bytes()) == count(&body, PLANTED_URL.as_bytes());
    if compress {
        body = if enc & 0x08 != 0 {
            let (a, b) = body.split_at(body.len() / 2);
            [gzip(a), gzip(b)].concat()
        } else {
            gzip(&body)
        };
    }

    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    headers.extend(content_type.iter().map(|v| ("content-type", *v)));
    headers.extend(encoding.iter().map(|v| ("content-encoding", *v)));
    headers.extend(accept.iter().map(|v| ("accept", *v)));

    let first = decode_request_body(route, &headers, &body);
    let second = decode_request_body(route, &headers, &body);
    assert_eq!(first, second, "the same request decoded twice differs");

    match first {
        Ok(Decoded::Request { request, answer }) => {
            assert_eq!(route, Route::Request);
            assert!(answer == "application/json" || answer == "application/x-postcard");
            request.check_invariants();
        }
        Ok(Decoded::Feedback(events)) => {
            assert_eq!(route, Route::Feedback);
            assert!(!events.is_empty(), "an empty batch was accepted");
            for e in &events {
                e.check_invariants();
            }
        }
        Err(rejection) => {
            let code = match rejection.status {
                400 => "malformed_body",
                406 => "not_acceptable",
                413 => "payload_too_large",
                415 => "unsupported_media_type",
                422 => "invalid_field",
                other => panic!("a body was refused with status {other}: {rejection:?}"),
            };
            assert_eq!(
                rejection.content_type.as_deref(),
                Some("application/json"),
                "{rejection:?}"
            );
            let value: serde_json::Value = serde_json::from_slice(&rejection.body)
                .unwrap_or_else(|e| panic!("the error body is not JSON ({e}): {rejection:?}"));
            let error = value
                .as_object()
                .filter(|o| o.len() == 1)
                .and_then(|o| o.get("error"))
                .and_then(|e| e.as_object())
                .filter(|e| e.len() == 2)
                .unwrap_or_else(|| panic!("not {{\"error\":{{code,message}}}}: {value}"));
            assert_eq!(
                error.get("code").and_then(|c| c.as_str()),
                Some(code),
                "{value}"
            );
            let message = error
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or_else(|| panic!("no message: {value}"));
            assert!(!message.is_empty());
            if planted {
                assert!(
                    !message.contains(PLANTED_PASSWORD),
                    "a rejection quotes the proxy_url's password: {message}"
                );
            }
        }
    }
}

/// Token-like values of `text` written where the service's configuration
/// keeps secrets: the items of `bearer_tokens` and `api_keys` (an inline
/// list on the key's line, or YAML `- item` lines under it) and the
/// passwords of URLs (`scheme://user:password@`). Only values of at least 8
/// characters of `[A-Za-z0-9._-]` with a letter and a digit, found nowhere
/// else in the text (so they are not also a name the file uses), count.
pub fn config_secrets(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let Some(at) = ["bearer_tokens", "api_keys"]
            .iter()
            .filter_map(|k| line.find(k).map(|i| i + k.len()))
            .max()
        else {
            continue;
        };
        found.extend(quoted(&line[at..]));
        let indent = line.len() - line.trim_start().len();
        for next in lines.iter().skip(n + 1) {
            let trimmed = next.trim_start();
            if next.len() - trimmed.len() < indent || trimmed.is_empty() {
                break;
            }
            let Some(item) = trimmed.strip_prefix("- ") else {
                break;
            };
            let item = item.trim();
            let unquoted = item.trim_matches(|c| c == '"' || c == '\'');
            found.push(unquoted.to_owned());
        }
    }
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        rest = &rest[i + 3..];
        let end = rest
            .find(|c: char| c.is_whitespace() || "\"'`<>,;)}]".contains(c))
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            found.push(password.to_owned());
        }
    }
    let token_like = |s: &str| {
        s.len() >= 8
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && s.bytes().any(|b| b.is_ascii_alphabetic())
            && s.bytes().any(|b| b.is_ascii_digit())
    };
    let mut secrets: Vec<String> = Vec::new();
    for s in &found {
        let collected = found.iter().filter(|x| *x == s).count();
        if token_like(s) && text.matches(s.as_str()).count() == collected && !secrets.contains(s) {
            secrets.push(s.clone());
        }
    }
    secrets
}

/// The strings in double or single quotes in `text`.
fn quoted(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['"', '\'']) {
        let q = rest[i..].chars().next().unwrap_or('"');
        let after = &rest[i + 1..];
        let Some(end) = after.find(q) else { break };
        out.push(after[..end].to_owned());
        rest = &after[end + 1..];
    }
    out
}

/// The `service_config` target (see `fuzz_targets/service_config.rs`):
/// byte 0 even is TOML, odd YAML; the rest is the text.
pub fn service_config_target(data: &[u8]) {
    use proxy_delegate_service::ServiceConfig;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let yaml = mode % 2 == 1;
    let first = ServiceConfig::parse(&text, yaml);
    let second = ServiceConfig::parse(&text, yaml);
    let secrets = config_secrets(&text);
    match (&first, &second) {
        (Ok(a), Ok(b)) => {
            let shown = format!("{a:?}");
            assert_eq!(
                shown,
                format!("{b:?}"),
                "parsing twice gave two configurations"
            );
            a.pool
                .validate()
                .unwrap_or_else(|e| panic!("an accepted configuration's pool is invalid: {e}"));
            for s in &secrets {
                assert!(
                    !shown.contains(s.as_str()),
                    "a secret in the configuration's Debug"
                );
            }
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "parsing twice gave two errors");
            let shown = format!("{a} {a:?}");
            for s in &secrets {
                assert!(
                    !shown.contains(s.as_str()),
                    "a configuration error quotes a secret of the input: {shown}"
                );
            }
        }
        _ => panic!("parsing the same text twice gave a configuration and an error"),
    }
}
