//! Decoding messages: one or a batch, in either wire format, and the
//! mapping of every decoding failure to its status and message (which
//! never quotes a value the client sent).

use proxy_delegate_core::codec::{self, DecodeError, Message};
use proxy_delegate_core::{Excerpt, Reason, ValidationError};
use serde::de::DeserializeOwned;

use super::{Wire, strict};
use crate::error::ApiError;

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
    use proxy_delegate_core::model::ProxyFeedback;

    use super::super::test_support::FEEDBACK;
    use super::*;

    #[test]
    fn invalid_fields_never_quote_the_value() {
        let bad = FEEDBACK.replace(r#""websocket""#, r#""Pw-7f3kq9.x""#);
        let e = decode_one::<ProxyFeedback>(Wire::Json, bad.as_bytes()).unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!e.message.contains("Pw-7f3kq9"), "{}", e.message);
        assert!(
            e.message
                .starts_with("connection_type: unknown value (expected"),
            "{}",
            e.message
        );
        let bad = FEEDBACK.replace("socks5://user:pass@", "Pw-7f3kq9.x://");
        let e = decode_one::<ProxyFeedback>(Wire::Json, bad.as_bytes()).unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
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
        assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.message.starts_with("[1] exchange_id"), "{}", e.message);
        let e = decode_batch::<ProxyFeedback>(Wire::Json, b"[{").unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        let e = decode_batch::<ProxyFeedback>(Wire::Json, b"[]").unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
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
