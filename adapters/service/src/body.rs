//! Reading request bodies: the 64 KiB limit, gzip, the two wire formats,
//! and the mapping of every decoding failure to its status.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use proxy_delegate_core::codec::{self, DecodeError, Message};
use proxy_delegate_core::{Excerpt, Reason, ValidationError};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body accepted, before and after gzip decompression.
pub use proxy_delegate_core::contract::MAX_BODY;
/// The wire formats' media types.
pub use proxy_delegate_core::contract::{JSON, POSTCARD};

/// A wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    Json,
    Postcard,
}

impl Wire {
    /// The request's format, from `Content-Type` (parameters such as
    /// `charset=utf-8` are ignored).
    pub(crate) fn of_request(headers: &HeaderMap) -> Result<Self, ApiError> {
        let Some(value) = headers.get(header::CONTENT_TYPE) else {
            return Err(ApiError::unsupported_media(format!(
                "Content-Type is missing; send {JSON} or {POSTCARD}"
            )));
        };
        let essence = value
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        match essence.as_str() {
            JSON => Ok(Wire::Json),
            POSTCARD => Ok(Wire::Postcard),
            _ => Err(ApiError::unsupported_media(format!(
                "Content-Type {:?} is not accepted; send {JSON} or {POSTCARD}",
                crate::error::excerpt(value.to_str().unwrap_or("(not text)"))
            ))),
        }
    }

    /// The answer's format, from `Accept` and its q-values (RFC 9110
    /// §12.5.1): of the two formats, the one `Accept` prefers (the higher
    /// q; at equal q, one named outright over one matched by `*/*` or
    /// `application/*`; then the request's own format). A format is refused
    /// when the range that names it most precisely has `q=0`. When `Accept`
    /// gives neither a q above 0 (it is absent, or names only other types),
    /// the request's format, unless refused, else the other one unless
    /// refused; both refused: 406.
    pub(crate) fn of_answer(headers: &HeaderMap, request: Wire) -> Result<Self, ApiError> {
        let mut accept = String::new();
        for value in headers.get_all(header::ACCEPT) {
            // A value that is not text says nothing usable: ignored.
            if let Ok(text) = value.to_str() {
                if !accept.is_empty() {
                    accept.push(',');
                }
                accept.push_str(text);
            }
        }
        let other = match request {
            Wire::Json => Wire::Postcard,
            Wire::Postcard => Wire::Json,
        };
        let (mine, theirs) = (
            preference(&accept, request.media()),
            preference(&accept, other.media()),
        );
        let acceptable = |p: Option<Preference>| p.is_some_and(|p| p.q > 0);
        if acceptable(mine) || acceptable(theirs) {
            let key = |p: Option<Preference>| p.filter(|p| p.q > 0).map(|p| (p.q, p.specificity));
            return Ok(if key(theirs) > key(mine) {
                other
            } else {
                request
            });
        }
        // No q above 0: a format Accept does not name is still fine.
        match (mine, theirs) {
            (None, _) => Ok(request),
            (Some(_), None) => Ok(other),
            (Some(_), Some(_)) => Err(ApiError::not_acceptable(format!(
                "Accept refuses both {JSON} and {POSTCARD} (q=0); accept one of them"
            ))),
        }
    }

    pub(crate) fn media(self) -> &'static str {
        match self {
            Wire::Json => JSON,
            Wire::Postcard => POSTCARD,
        }
    }

    /// Encodes `msg` as an answer with status 200 in this format. JSON goes
    /// through serde_json (the std side may allocate; it is the faster
    /// writer), postcard through the core's encoder.
    pub(crate) fn answer<M: Message>(self, msg: &M) -> Response {
        let (encoded, media) = match self {
            Wire::Json => (serde_json::to_vec(msg).map_err(|e| e.to_string()), JSON),
            Wire::Postcard => (encode_postcard(msg).map_err(|e| e.to_string()), POSTCARD),
        };
        match encoded {
            Ok(bytes) => (
                [(header::CONTENT_TYPE, HeaderValue::from_static(media))],
                Bytes::from(bytes),
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "encoding an answer failed");
                ApiError::internal().into_response()
            }
        }
    }
}

/// What `Accept` says of one media type: the q-value, in thousandths, of the
/// range that matches it most precisely, and how precisely (3: named, 2:
/// `application/*`, 1: `*/*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Preference {
    q: u16,
    specificity: u8,
}

/// The preference `accept` (a comma-separated list of media ranges) gives
/// `media`; `None` when no range matches it. A range with a q-value that is
/// not one (RFC 9110 §12.4.2: `0` to `1` with at most three decimals) is
/// ignored; other parameters are.
fn preference(accept: &str, media: &str) -> Option<Preference> {
    let mut best: Option<Preference> = None;
    for element in accept.split(',') {
        let mut parts = element.split(';');
        let range = parts.next().unwrap_or("").trim();
        let specificity = if range.eq_ignore_ascii_case(media) {
            3
        } else if range.eq_ignore_ascii_case("application/*") {
            2
        } else if range == "*/*" {
            1
        } else {
            continue;
        };
        let mut q = Some(1000);
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("q") {
                q = qvalue(value.trim());
            }
        }
        let Some(q) = q else {
            continue;
        };
        let this = Preference { q, specificity };
        best = match best {
            Some(b) if b.specificity > specificity => Some(b),
            Some(b) if b.specificity == specificity && b.q >= q => Some(b),
            _ => Some(this),
        };
    }
    best
}

/// A q-value in thousandths: `0`, `0.5`, `1`, `1.000`; `None` otherwise.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// postcard bytes of `msg`, in a buffer that grows until it fits.
fn encode_postcard<M: Message>(msg: &M) -> Result<Vec<u8>, codec::EncodeError> {
    let mut buf = vec![0u8; 1024];
    loop {
        match codec::postcard::encode(msg, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(codec::EncodeError::BufferTooSmall { .. }) if buf.len() < codec::MAX_INPUT_LEN => {
                buf.resize(buf.len() * 4, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads the whole body: refuses more than [`MAX_BODY`] bytes (413), inflates
/// `Content-Encoding: gzip` (refusing more than [`MAX_BODY`] inflated bytes),
/// and refuses any other encoding (415).
pub(crate) async fn read(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::too_large(format!(
            "request body over {MAX_BODY} bytes; send smaller batches"
        ))
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > MAX_BODY as u64
    {
        return Err(too_large());
    }
    let gzip = match content_encoding(headers)? {
        None => false,
        Some(e) if e.is_empty() || e == "identity" => false,
        Some(e) if e == "gzip" || e == "x-gzip" => true,
        Some(e) => {
            return Err(ApiError::unsupported_media(format!(
                "Content-Encoding {:?} is not accepted; send gzip or no encoding",
                crate::error::excerpt(&e)
            )));
        }
    };
    let raw = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        // The only error besides the limit is a broken connection.
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            too_large()
        } else {
            ApiError::malformed(format!("could not read the request body: {e}"))
        }
    })?;
    if !gzip {
        return Ok(raw);
    }
    // Inflating is CPU work of up to MAX_GZIP_MEMBERS decoders and MAX_BODY
    // bytes: on a blocking thread, so that no runtime worker (and no other
    // request waiting for one) waits for it.
    let inflated = tokio::task::spawn_blocking(move || gunzip(&raw))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "inflating a request body failed");
            ApiError::internal()
        })?;
    let out = inflated.map_err(|e| match e {
        Gunzip::TooLarge => too_large(),
        Gunzip::Malformed(message) => ApiError::malformed(message),
    })?;
    Ok(Bytes::from(out))
}

/// Most gzip members a body may hold. Each member costs a decoder of its
/// own (tens of KiB set up and torn down), so a 64 KiB body of 3,000 empty
/// members cost as much as hundreds of ordinary requests; a client sends
/// one member, or a few concatenated.
pub(crate) const MAX_GZIP_MEMBERS: usize = 16;

/// The request's `Content-Encoding`, trimmed and lower-cased: `None` when
/// absent. Several header lines are one list (RFC 9110 §5.3), joined with
/// `, ` so that a list of codings is refused like `gzip, gzip` is. A value
/// that is not visible ASCII is refused (415), never taken for no encoding.
fn content_encoding(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut joined: Option<String> = None;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let Ok(text) = value.to_str() else {
            return Err(ApiError::unsupported_media(
                "Content-Encoding is not visible ASCII text; send gzip or no encoding",
            ));
        };
        let text = text.trim().to_ascii_lowercase();
        joined = Some(match joined {
            None => text,
            Some(before) if before.is_empty() => text,
            Some(before) if text.is_empty() => before,
            Some(before) => format!("{before}, {text}"),
        });
    }
    Ok(joined)
}

/// Why a gzip body was refused.
#[derive(Debug, PartialEq, Eq)]
enum Gunzip {
    /// More than [`MAX_BODY`] bytes inflated.
    TooLarge,
    /// Not gzip, a member cut short or corrupt, or trailing bytes that are
    /// not a gzip member; the message says which and where.
    Malformed(String),
}

/// Inflates every member of a gzip body (RFC 1952 §2.2: a gzip file is a
/// series of members, and `gzip -dc` writes them all, one after the other),
/// refusing more than [`MAX_BODY`] bytes inflated in total, and refusing
/// trailing bytes that are not a gzip member rather than ignoring them.
///
/// Each member is read by `bufread::GzDecoder` over the rest of the slice,
/// which consumes exactly the member's bytes, so the member count and the
/// offset of whatever follows are known for the message.
fn gunzip(raw: &[u8]) -> Result<Vec<u8>, Gunzip> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(MAX_BODY + 1));
    let mut rest = raw;
    let mut member = 0usize;
    #[cfg(test)]
    tests::inflated_on_this_thread();
    loop {
        member += 1;
        let offset = raw.len() - rest.len();
        if member > MAX_GZIP_MEMBERS {
            return Err(Gunzip::Malformed(format!(
                "gzip body has more than {MAX_GZIP_MEMBERS} members (member {member} starts at \
                 byte {offset}); send one member, or at most {MAX_GZIP_MEMBERS}"
            )));
        }
        let budget = (MAX_BODY + 1 - out.len()) as u64;
        let mut decoder = flate2::bufread::GzDecoder::new(rest);
        let read = (&mut decoder).take(budget).read_to_end(&mut out);
        if out.len() > MAX_BODY {
            return Err(Gunzip::TooLarge);
        }
        if let Err(e) = read {
            return Err(Gunzip::Malformed(if member == 1 {
                format!("gzip body does not inflate: {e}")
            } else if rest.len() >= 2 && rest[..2] == [0x1f, 0x8b] {
                format!(
                    "gzip body does not inflate: member {member} (at byte {offset}) is \
                     corrupt or cut short: {e}"
                )
            } else {
                format!(
                    "gzip body has {} bytes after its last member (from byte {offset}) \
                     that are not a gzip member; send only gzip members",
                    rest.len()
                )
            }));
        }
        rest = decoder.into_inner();
        if rest.is_empty() {
            return Ok(out);
        }
    }
}

/// The status of a decoding failure: 413 too large, 422 an invalid field,
/// 400 anything not well-formed. `at` prefixes the message (`[3]` for a
/// batch element).
pub(crate) fn decode_error(e: &DecodeError, at: &str) -> ApiError {
    match e {
        DecodeError::TooLarge { .. } => ApiError::too_large(format!("{at}{e}")),
        DecodeError::Invalid(v) => ApiError::invalid(format!("{at}{}", unquoted(v))),
        _ => ApiError::malformed(format!("{at}{e}")),
    }
}

/// A validation error's message without the value it quotes: the core
/// quotes short values of an enum or a URL scheme (`unknown value "wss"`),
/// but a 422 never quotes what the client sent, which may be a secret in
/// the wrong field. Whatever is still in double quotes is dropped too.
fn unquoted(v: &ValidationError) -> String {
    let reason = match &v.reason {
        Reason::UnknownValue { expected, .. } => Reason::UnknownValue {
            got: Excerpt::new(),
            expected,
        },
        Reason::UnsupportedScheme { .. } => Reason::UnsupportedScheme {
            got: Excerpt::new(),
        },
        other => other.clone(),
    };
    let text = ValidationError {
        field: v.field,
        reason,
    }
    .to_string();
    let mut out = String::with_capacity(text.len());
    let mut parts = text.split('"');
    while let Some(outside) = parts.next() {
        out.push_str(outside);
        if parts.next().is_some() {
            out.push_str("(value not shown)");
        }
    }
    out
}

/// Decodes exactly one message.
pub(crate) fn decode_one<M: Message + DeserializeOwned>(
    wire: Wire,
    body: &[u8],
) -> Result<M, ApiError> {
    match wire {
        Wire::Json => codec::json::decode(body).map_err(|e| json_error::<M>(&e, body, "", (1, 0))),
        Wire::Postcard => codec::postcard::decode(body).map_err(|e| decode_error(&e, "")),
    }
}

/// The answer to a JSON message the core refused. The core's own validation
/// errors (422, naming the field), and its size and depth limits, stand as
/// they are. A bare JSON error (serde-json-core says neither where nor which
/// field) is diagnosed again: the same bytes are read by `serde_json`, through
/// `serde_path_to_error`, into the same model type, so that
///
/// - a syntax error is 400 with its line and column;
/// - a value of the wrong JSON type, or otherwise refused in well-formed JSON,
///   is 422 naming the field's path (`metadata.symbols[1]: invalid type:
///   integer, expected a string at line 1 column 179`), never the value, which
///   may be a secret.
///
/// `at` prefixes the message (`[3] ` for a batch element); `origin` is the
/// 1-based line and the 0-based column where `input` starts in the body, so
/// that positions are the body's.
///
/// Only the failure path does this work; if `serde_json` reads the input
/// where the core did not, the core's own message stands.
#[cold]
#[inline(never)]
fn json_error<M: DeserializeOwned>(
    e: &DecodeError,
    input: &[u8],
    at: &str,
    origin: (usize, usize),
) -> ApiError {
    if !matches!(e, DecodeError::Json(_)) {
        return decode_error(e, at);
    }
    let position = |line: usize, column: usize| {
        if line <= 1 {
            (origin.0, origin.1 + column)
        } else {
            (origin.0 + line - 1, column)
        }
    };
    if input.starts_with(BOM) {
        let (line, column) = position(1, 1);
        return ApiError::malformed(format!(
            "{at}malformed JSON at line {line} column {column}: the body starts with a UTF-8 \
             byte order mark (EF BB BF); send JSON without one (RFC 8259 §8.1)"
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(input);
    let (path, err) = match serde_path_to_error::deserialize::<_, M>(strict::Strict(&mut de)) {
        Ok(_) => match de.end() {
            Ok(()) => return decode_error(e, at),
            Err(err) => (String::new(), err),
        },
        Err(err) => (field_path(err.path()), err.into_inner()),
    };
    let (line, column) = position(err.line(), err.column());
    let text = err.to_string();
    let bare = text
        .strip_suffix(&format!(" at line {} column {}", err.line(), err.column()))
        .unwrap_or(&text);
    match err.classify() {
        serde_json::error::Category::Data => {
            let field = if path.is_empty() {
                String::new()
            } else {
                format!("{path}: ")
            };
            ApiError::invalid(format!(
                "{at}{field}{} at line {line} column {column}",
                without_values(bare)
            ))
        }
        // A syntax error may lie inside an unknown field, whose name is the
        // client's text: the line and column say where, without it.
        _ => ApiError::malformed(format!(
            "{at}malformed JSON at line {line} column {column}: {}",
            proxy_delegate_config::redact_text(bare)
        )),
    }
}

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A `serde_path_to_error` path as a message names a field: `metadata`,
/// `metadata.symbols[1]`. On a data error, keys are the messages' own field
/// names (the value of an unknown field is skipped, so no data error arises
/// in it); any key that does not look like one is shown as `?` all the same,
/// so that no text of the body is echoed.
fn field_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                let known = !key.is_empty()
                    && key.len() <= 32
                    && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
                out.push_str(if known { key } else { "?" });
            }
            serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}

/// A serde data error's message without the value it quotes: `invalid type:
/// string "tok-…", expected a boolean` becomes `invalid type: string,
/// expected a boolean` (likewise integers, floating point numbers, booleans
/// and characters); the wire structs' names become `a JSON object`. Whatever
/// is left goes through [`proxy_delegate_config::redact_text`] too.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(after) = rest.strip_prefix(prefix) {
            out.push_str(prefix);
            rest = after;
            for (kind, close) in [
                ("string \"", '"'),
                ("integer `", '`'),
                ("floating point `", '`'),
                ("boolean `", '`'),
                ("character `", '`'),
            ] {
                let Some(quoted) = rest.strip_prefix(kind) else {
                    continue;
                };
                out.push_str(&kind[..kind.len() - 2]);
                // The closing mark: the first one not escaped by a backslash
                // (a string is quoted with `{:?}`, which escapes its quotes).
                let mut escaped = false;
                let end = quoted
                    .char_indices()
                    .find(|&(_, c)| {
                        let closes = !escaped && c == close;
                        escaped = !escaped && c == '\\';
                        closes
                    })
                    .map_or(quoted.len(), |(i, c)| i + c.len_utf8());
                rest = &quoted[end..];
                break;
            }
            break;
        }
    }
    out.push_str(rest);
    let mut named = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("struct ") {
        let name_len = rest[i + 7..]
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(rest.len() - i - 7);
        named.push_str(&rest[..i]);
        if rest[i + 7..i + 7 + name_len].ends_with("Wire") {
            named.push_str("a JSON object");
        } else {
            named.push_str(&rest[i..i + 7 + name_len]);
        }
        rest = &rest[i + 7 + name_len..];
    }
    named.push_str(rest);
    proxy_delegate_config::redact_text(&named)
}

/// Decodes one message or a batch: a JSON object or array of objects; in
/// postcard, one or more concatenated messages. Every message is validated
/// before any is returned, so a batch is taken whole or not at all.
pub(crate) fn decode_batch<M: Message + DeserializeOwned>(
    wire: Wire,
    body: &[u8],
) -> Result<Vec<M>, ApiError> {
    match wire {
        Wire::Json => {
            let start = body.iter().position(|b| !b.is_ascii_whitespace());
            if start.and_then(|i| body.get(i)) != Some(&b'[') {
                return decode_one(wire, body).map(|m| vec![m]);
            }
            let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body)
                .map_err(|e| ApiError::malformed(format!("malformed JSON batch: {e}")))?;
            if items.is_empty() {
                return Err(ApiError::invalid(
                    "empty batch: send one event or a non-empty array",
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, raw)| {
                    let element = raw.get().as_bytes();
                    codec::json::decode(element).map_err(|e| {
                        json_error::<M>(&e, element, &format!("[{i}] "), origin(body, element))
                    })
                })
                .collect()
        }
        Wire::Postcard => {
            let mut out = Vec::new();
            let mut rest = body;
            if rest.is_empty() {
                return Err(ApiError::malformed("empty postcard body"));
            }
            while !rest.is_empty() {
                let (m, tail) = codec::postcard::take(rest)
                    .map_err(|e| decode_error(&e, &format!("[{}] ", out.len())))?;
                out.push(m);
                rest = tail;
            }
            Ok(out)
        }
    }
}

/// Where `part`, a slice of `body`, starts in it: the 1-based line and the
/// 0-based column (in bytes, as `serde_json` counts them).
fn origin(body: &[u8], part: &[u8]) -> (usize, usize) {
    let offset = (part.as_ptr() as usize)
        .saturating_sub(body.as_ptr() as usize)
        .min(body.len());
    let before = &body[..offset];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let column = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(offset, |nl| offset - nl - 1);
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy_delegate_core::model::ProxyFeedback;

    std::thread_local! {
        /// Whether this thread inflated a body.
        static INFLATED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Notes that this thread inflates a body.
    pub(super) fn inflated_on_this_thread() {
        INFLATED.with(|i| i.set(true));
    }

    /// The runtime's thread never inflates: a blocking thread does.
    #[tokio::test]
    async fn inflating_leaves_the_runtime_thread_free() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let body = Body::from(gz(FEEDBACK.as_bytes()));
        let out = read(&headers, body).await.unwrap();
        assert_eq!(&out[..], FEEDBACK.as_bytes());
        assert!(
            !INFLATED.with(|i| i.get()),
            "the body was inflated on the runtime's thread"
        );
        // (The check itself works.)
        gunzip(&gz(b"x")).unwrap();
        assert!(INFLATED.with(|i| i.get()));
    }

    #[test]
    fn gzip_members_are_capped() {
        let empty = gz(b"");
        let at_cap = empty.repeat(MAX_GZIP_MEMBERS);
        assert_eq!(gunzip(&at_cap).unwrap(), b"");
        let over = empty.repeat(3_000);
        let Err(Gunzip::Malformed(m)) = gunzip(&over) else {
            panic!("3,000 members are refused");
        };
        assert_eq!(
            m,
            format!(
                "gzip body has more than 16 members (member 17 starts at byte {}); send one \
                 member, or at most 16",
                16 * empty.len()
            )
        );
    }

    fn answer(accept: &[&'static str], request: Wire) -> Result<Wire, u16> {
        let mut headers = HeaderMap::new();
        for a in accept {
            headers.append(header::ACCEPT, HeaderValue::from_static(a));
        }
        Wire::of_answer(&headers, request).map_err(|e| e.status.as_u16())
    }

    #[test]
    fn accept_q_values_are_honoured() {
        use Wire::{Json as J, Postcard as P};
        for (accept, request, expected) in [
            (&[][..], J, Ok(J)),
            (&[][..], P, Ok(P)),
            (&["application/x-postcard"], J, Ok(P)),
            (&["application/json"], P, Ok(J)),
            // q=0 refuses: the other format, even when not named.
            (&["application/x-postcard;q=0"], P, Ok(J)),
            (&["application/x-postcard; q=0, application/json"], P, Ok(J)),
            (&["application/json;q=0"], J, Ok(P)),
            (&["application/x-postcard;q=0.0, */*"], P, Ok(J)),
            (&["*/*;q=0.1, application/x-postcard;q=0"], P, Ok(J)),
            // The higher q wins; at equal q, named over wildcard, then the request's.
            (
                &["application/json;q=0.5, application/x-postcard;q=0.9"],
                J,
                Ok(P),
            ),
            (
                &["application/json;q=1, application/x-postcard;q=0.999"],
                P,
                Ok(J),
            ),
            (&["application/x-postcard, */*"], J, Ok(P)),
            (&["application/*, application/json"], P, Ok(J)),
            (&["application/x-postcard, application/json"], J, Ok(J)),
            (&["application/x-postcard, application/json"], P, Ok(P)),
            (&["APPLICATION/X-POSTCARD;Q=1.000"], J, Ok(P)),
            // Several header lines are one list.
            (&["text/html", "application/x-postcard;q=0.3"], J, Ok(P)),
            // Other types only: no preference, the request's format.
            (&["text/html"], P, Ok(P)),
            // A q that is not one: the range is ignored.
            (&["application/x-postcard;q=2"], J, Ok(J)),
            (&["application/x-postcard;q=0.1234"], J, Ok(J)),
            // Both refused: 406.
            (
                &["application/x-postcard;q=0, application/json;q=0"],
                P,
                Err(406),
            ),
            (&["*/*;q=0"], J, Err(406)),
            (&["text/html, application/*;q=0"], J, Err(406)),
        ] {
            assert_eq!(
                answer(accept, request),
                expected,
                "Accept {accept:?}, {request:?}"
            );
        }
    }

    #[test]
    fn invalid_fields_never_quote_the_value() {
        let bad = FEEDBACK.replace(r#""websocket""#, r#""Pw-7f3kq9.x""#);
        let e = decode_one::<ProxyFeedback>(Wire::Json, bad.as_bytes()).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!e.message.contains("Pw-7f3kq9"), "{}", e.message);
        assert!(
            e.message
                .starts_with("connection_type: unknown value (expected"),
            "{}",
            e.message
        );
        let bad = FEEDBACK.replace("socks5://user:pass@", "Pw-7f3kq9.x://");
        let e = decode_one::<ProxyFeedback>(Wire::Json, bad.as_bytes()).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            !e.message.to_lowercase().contains("pw-7f3kq9"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("unsupported scheme (expected"),
            "{}",
            e.message
        );
    }

    const FEEDBACK: &str = r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","exchange_id":"binance","connection_type":"websocket","success":true,"latency_ms":45,"error_details":null,"timestamp":"2024-09-23T10:30:00Z","client_id":"cryptofeed-instance-123"}"#;

    #[test]
    fn json_one_or_batch() {
        let one: Vec<ProxyFeedback> = decode_batch(Wire::Json, FEEDBACK.as_bytes()).unwrap();
        assert_eq!(one.len(), 1);
        let batch = format!(" [{FEEDBACK},{FEEDBACK},{FEEDBACK}]");
        let three: Vec<ProxyFeedback> = decode_batch(Wire::Json, batch.as_bytes()).unwrap();
        assert_eq!(three.len(), 3);
        assert_eq!(three[2], one[0]);
        assert!(
            !three[0].proxy_url.as_ref().unwrap().has_credentials(),
            "credentials are dropped on receipt"
        );
    }

    #[test]
    fn postcard_concatenation_is_a_batch() {
        let one: ProxyFeedback = codec::json::decode(FEEDBACK.as_bytes()).unwrap();
        let mut buf = [0u8; 1024];
        let n = codec::postcard::encode(&one, &mut buf).unwrap();
        let mut body = buf[..n].to_vec();
        body.extend_from_slice(&buf[..n]);
        let two: Vec<ProxyFeedback> = decode_batch(Wire::Postcard, &body).unwrap();
        assert_eq!(two, vec![one.clone(), one]);
        body.push(0xff);
        let e = decode_batch::<ProxyFeedback>(Wire::Postcard, &body).unwrap_err();
        assert!(e.message.starts_with("[2] "), "{}", e.message);
    }

    #[test]
    fn batch_error_names_the_element_and_status() {
        let bad = FEEDBACK.replace("binance", "");
        let batch = format!("[{FEEDBACK},{bad}]");
        let e = decode_batch::<ProxyFeedback>(Wire::Json, batch.as_bytes()).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.message.starts_with("[1] exchange_id"), "{}", e.message);
        let e = decode_batch::<ProxyFeedback>(Wire::Json, b"[{").unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        let e = decode_batch::<ProxyFeedback>(Wire::Json, b"[]").unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gunzip_reads_every_member_and_refuses_the_rest() {
        let mut body = gz(b"one ");
        body.extend(gz(b""));
        body.extend(gz(b"two"));
        assert_eq!(gunzip(&body).unwrap(), b"one two");

        // Exactly the limit over two members is taken; one byte more is not.
        let mut body = gz(&vec![b' '; MAX_BODY - 10]);
        body.extend(gz(&[b' '; 10]));
        assert_eq!(gunzip(&body).unwrap().len(), MAX_BODY);
        body.extend(gz(b" "));
        assert_eq!(gunzip(&body), Err(Gunzip::TooLarge));

        let first = gz(b"one");
        for tail in [&b"\0"[..], b"\x1f", b"junk\n", b"\x1f\x8c rest"] {
            let mut body = first.clone();
            body.extend_from_slice(tail);
            let Err(Gunzip::Malformed(m)) = gunzip(&body) else {
                panic!("{tail:?} after a member is refused");
            };
            assert_eq!(
                m,
                format!(
                    "gzip body has {} bytes after its last member (from byte {}) that are not \
                     a gzip member; send only gzip members",
                    tail.len(),
                    first.len()
                )
            );
        }
        let mut body = first.clone();
        body.extend_from_slice(&first[..12]);
        let Err(Gunzip::Malformed(m)) = gunzip(&body) else {
            panic!("a member cut short is refused");
        };
        assert!(
            m.starts_with(&format!(
                "gzip body does not inflate: member 2 (at byte {})",
                first.len()
            )),
            "{m}"
        );
        let Err(Gunzip::Malformed(m)) = gunzip(b"not gzip") else {
            panic!("not gzip is refused");
        };
        assert!(m.starts_with("gzip body does not inflate: "), "{m}");
    }

    #[test]
    fn data_error_messages_drop_the_values() {
        for (message, expected) in [
            (
                r#"invalid type: string "tok-\"SECRET\", expected x", expected a boolean"#,
                "invalid type: string, expected a boolean",
            ),
            (
                "invalid type: integer `123456`, expected a string",
                "invalid type: integer, expected a string",
            ),
            (
                "invalid value: floating point `1.5`, expected a whole number",
                "invalid value: floating point, expected a whole number",
            ),
            (
                "invalid type: boolean `true`, expected struct RequestMetadataWire",
                "invalid type: boolean, expected a JSON object",
            ),
            (
                "invalid type: map, expected struct FeedbackWire",
                "invalid type: map, expected a JSON object",
            ),
            (
                "proxy_url: bad URL http://u:pw@h:1",
                "proxy_url: bad URL http://u:***@h:1",
            ),
            ("duplicate field `success`", "duplicate field `success`"),
        ] {
            assert_eq!(without_values(message), expected, "{message}");
        }
    }

    #[test]
    fn origin_is_line_and_column_in_the_body() {
        let body = b"[{},\n  {\"a\":1}]";
        assert_eq!(origin(body, &body[1..3]), (1, 1));
        assert_eq!(origin(body, &body[7..14]), (2, 2));
    }
}

/// A deserializer wrapper that reads structs only from JSON objects, as the
/// core's decoders do. serde's derived structs also take an array of the
/// fields in order, so without it `serde_json` would read `"metadata": []`,
/// which the core refuses, and could not say why the core refused it.
/// Everything else is forwarded unchanged, at every depth.
mod strict {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    /// The wrapped deserializer.
    pub(super) struct Strict<D>(pub(super) D);

    macro_rules! forward {
        ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                self.0.$method($($arg,)* Wrap(visitor))
            }
        )*};
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
        type Error = D::Error;

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_map(Wrap(visitor))
        }

        fn is_human_readable(&self) -> bool {
            self.0.is_human_readable()
        }

        forward! {
            deserialize_any();
            deserialize_bool();
            deserialize_i8();
            deserialize_i16();
            deserialize_i32();
            deserialize_i64();
            deserialize_i128();
            deserialize_u8();
            deserialize_u16();
            deserialize_u32();
            deserialize_u64();
            deserialize_u128();
            deserialize_f32();
            deserialize_f64();
            deserialize_char();
            deserialize_str();
            deserialize_string();
            deserialize_bytes();
            deserialize_byte_buf();
            deserialize_option();
            deserialize_unit();
            deserialize_unit_struct(name: &'static str);
            deserialize_newtype_struct(name: &'static str);
            deserialize_seq();
            deserialize_tuple(len: usize);
            deserialize_tuple_struct(name: &'static str, len: usize);
            deserialize_map();
            deserialize_enum(name: &'static str, variants: &'static [&'static str]);
            deserialize_identifier();
            deserialize_ignored_any();
        }
    }

    /// A visitor whose nested values are read through [`Strict`].
    struct Wrap<V>(V);

    macro_rules! visit {
        ($($method:ident($ty:ty);)*) => {$(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.0.$method(v)
            }
        )*};
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.expecting(f)
        }

        visit! {
            visit_bool(bool);
            visit_i8(i8);
            visit_i16(i16);
            visit_i32(i32);
            visit_i64(i64);
            visit_i128(i128);
            visit_u8(u8);
            visit_u16(u16);
            visit_u32(u32);
            visit_u64(u64);
            visit_u128(u128);
            visit_f32(f32);
            visit_f64(f64);
            visit_char(char);
            visit_str(&str);
            visit_borrowed_str(&'de str);
            visit_string(String);
            visit_bytes(&[u8]);
            visit_borrowed_bytes(&'de [u8]);
            visit_byte_buf(Vec<u8>);
        }

        fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
            self.0.visit_none()
        }

        fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
            self.0.visit_unit()
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.0.visit_some(Strict(d))
        }

        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.0.visit_newtype_struct(Strict(d))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
            self.0.visit_seq(Seq(seq))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
            self.0.visit_map(Map(map))
        }

        fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
            // The wire forms have no enums; read one as it comes.
            self.0.visit_enum(data)
        }
    }

    /// A seed whose value is read through [`Strict`].
    struct Seed<S>(S);

    impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
        type Value = S::Value;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
            self.0.deserialize(Strict(d))
        }
    }

    /// A sequence whose elements are read through [`Strict`].
    struct Seq<A>(A);

    impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<A> {
        type Error = A::Error;

        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>, A::Error> {
            self.0.next_element_seed(Seed(seed))
        }

        fn size_hint(&self) -> Option<usize> {
            self.0.size_hint()
        }
    }

    /// A map whose keys and values are read through [`Strict`].
    struct Map<A>(A);

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<A> {
        type Error = A::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            self.0.next_key_seed(Seed(seed))
        }

        fn next_value_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<T::Value, A::Error> {
            self.0.next_value_seed(Seed(seed))
        }

        fn size_hint(&self) -> Option<usize> {
            self.0.size_hint()
        }
    }
}
