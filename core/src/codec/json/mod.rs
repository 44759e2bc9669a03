//! JSON, as the REST API speaks it.
//!
//! [`decode`] tries the fast reader (`reader`) first, then serde-json-core
//! with borrowed strings, then with owned, unescaped strings (a long escaped
//! string and UTF-16 surrogate pairs, `surrogates`, on slower paths still);
//! whatever serde-json-core reads is checked to be well-formed JSON
//! (`syntax`).

mod reader;
mod surrogates;
mod syntax;

use super::{DecodeError, EncodeError, Format, MAX_INPUT_LEN, Message, check_len};
use serde_json_core::de::Error as JsonError;
use surrogates::{decode_surrogates, has_surrogate_escape};
use syntax::{check_depth, check_syntax};

/// Room for one string that contains escapes (`\"`, `\u00e9`…), unescaped,
/// on the usual decoding path. Strings without escapes are read in place
/// and have no such limit. A longer escaped string (a long `error_details`,
/// an unknown field) is decoded on a slower path with a
/// [`MAX_INPUT_LEN`]-byte scratch buffer on the stack.
pub const UNESCAPE_SCRATCH_LEN: usize = 1024;

/// Decodes and validates one message. Unknown fields are ignored, but the
/// whole input, their values included, must be well-formed JSON
/// (RFC 8259); anything else is [`DecodeError::Json`].
///
/// Stack use: [`UNESCAPE_SCRATCH_LEN`] bytes, plus up to twice
/// [`MAX_INPUT_LEN`] for input with an escaped string longer than
/// [`UNESCAPE_SCRATCH_LEN`] or with UTF-16 surrogate-pair escapes
/// (`\ud83d\ude00`, as Python's `json.dumps` writes characters outside
/// the Basic Multilingual Plane).
pub fn decode<M: Message>(input: &[u8]) -> Result<M, DecodeError> {
    check_len(Format::Json, input)?;
    check_depth(input)?;
    // Fastest path: the reader in `reader`, for the JSON the service and
    // clients write (no escapes). It accepts only well-formed JSON, and
    // of that a subset of what serde-json-core accepts, reading it to the
    // same values; anything else is read again below (and checked to be
    // well-formed there).
    let mut wire = M::Wire::default();
    if reader::read(input, |r| M::read_wire(r, &mut wire)).is_ok() {
        return M::from_wire(&wire);
    }
    decode_borrowed(input)
}

/// serde-json-core with every string borrowed from the input. Without
/// room to unescape, a string with escapes fails to parse, as does
/// malformed input; both are read again by `decode_owned`, which reports
/// exactly what it always reported. A validation error is final: every
/// path validates the same text the same way.
///
/// serde-json-core skips an unknown scalar leniently (up to the next `,`,
/// `]` or `}`), reads numbers such as `01` or `1.`, and lets raw control
/// characters through in strings, so whatever it reads is checked by
/// [`check_syntax`] too (see [`strict`]).
#[cold]
#[inline(never)]
fn decode_borrowed<M: Message>(input: &[u8]) -> Result<M, DecodeError> {
    if let Ok((wire, _)) = serde_json_core::from_slice_escaped::<M::Wire<'_>>(input, &mut []) {
        return strict(input, M::from_wire(&wire));
    }
    decode_owned(input)
}

/// The input has a string with escapes (or is malformed): decode it
/// into the owned wire form.
#[cold]
#[inline(never)]
pub(super) fn decode_owned<M: Message>(input: &[u8]) -> Result<M, DecodeError> {
    let decoded = match decode_with::<M, UNESCAPE_SCRATCH_LEN>(input) {
        Err(DecodeError::Json(JsonError::EscapedStringIsTooLong)) => decode_long(input),
        Err(DecodeError::Json(JsonError::InvalidEscapeSequence)) if has_surrogate_escape(input) => {
            decode_surrogates(input)
        }
        other => other,
    };
    strict(input, decoded)
}

/// What serde-json-core made of `input`, unless the input is not
/// well-formed JSON: then the [`check_syntax`] error. An error of
/// serde-json-core's own is kept as it is (the messages callers see for
/// malformed input are unchanged); a message it read, or a validation
/// error, stands only if the whole input is well-formed.
fn strict<M>(input: &[u8], decoded: Result<M, DecodeError>) -> Result<M, DecodeError> {
    if let Err(DecodeError::Json(_)) = decoded {
        return decoded;
    }
    check_syntax(input)?;
    decoded
}

/// Deepest nesting of JSON arrays and objects accepted. The messages
/// themselves nest 3 deep; the rest is room for unknown fields. The bound
/// keeps the decoder's recursion, and so its stack use, small whatever the
/// input (without it, 16 KiB of `[` overflowed a 2 MiB stack).
pub const MAX_DEPTH: usize = 16;

fn decode_with<M: Message, const SCRATCH: usize>(input: &[u8]) -> Result<M, DecodeError> {
    let mut scratch = [0u8; SCRATCH];
    let (wire, _) = serde_json_core::from_slice_escaped::<M::OwnedWire>(input, &mut scratch)
        .map_err(DecodeError::Json)?;
    M::from_owned_wire(&wire)
}

/// An escaped string did not fit the usual scratch buffer. No string
/// unescapes to more bytes than the input holds, so this one always fits.
#[cold]
#[inline(never)]
fn decode_long<M: Message>(input: &[u8]) -> Result<M, DecodeError> {
    match decode_with::<M, MAX_INPUT_LEN>(input) {
        Err(DecodeError::Json(JsonError::InvalidEscapeSequence)) if has_surrogate_escape(input) => {
            decode_surrogates(input)
        }
        other => other,
    }
}

/// Encodes one message into `out`, returning the length written.
pub fn encode<M: Message>(msg: &M, out: &mut [u8]) -> Result<usize, EncodeError> {
    serde_json_core::to_slice(msg, out).map_err(|e| map_err(e, out.len()))
}

/// Encodes a batch of messages as one JSON array (the feedback endpoint
/// takes one event or a batch).
pub fn encode_batch<M: Message>(msgs: &[M], out: &mut [u8]) -> Result<usize, EncodeError> {
    encode_any(msgs, out)
}

/// Encodes any serializable value (a batch of kept messages).
pub(crate) fn encode_any<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    serde_json_core::to_slice(value, out).map_err(|e| map_err(e, out.len()))
}

fn map_err(e: serde_json_core::ser::Error, capacity: usize) -> EncodeError {
    match e {
        serde_json_core::ser::Error::BufferFull => EncodeError::BufferTooSmall {
            format: Format::Json,
            capacity,
        },
        _ => EncodeError::Other {
            format: Format::Json,
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::codec::samples::RESPONSE;
    use crate::codec::{DecodeError, json};
    use crate::model::{ProxyFeedback, ProxyRequest, ProxyResponse};

    /// A string with an escape cannot be borrowed: the JSON decoder takes its
    /// owned path, which must give the same message as the borrowed path.
    #[test]
    fn escaped_and_plain_strings_decode_alike() {
        let plain: ProxyResponse = json::decode(RESPONSE.as_bytes()).unwrap();
        let escaped = RESPONSE.replace("proxy-123", r"proxy\u002d123");
        let from_escaped: ProxyResponse = json::decode(escaped.as_bytes()).unwrap();
        assert_eq!(from_escaped, plain);
        assert_eq!(
            from_escaped.metadata.proxy_id.unwrap().as_str(),
            "proxy-123"
        );
    }

    /// A validation error is the same on both paths, with the first bad
    /// field named whichever path read the input.
    #[test]
    fn validation_errors_match_on_both_paths() {
        let bad = RESPONSE.replace("least_connections", "least connections");
        let plain = json::decode::<ProxyResponse>(bad.as_bytes()).unwrap_err();
        let escaped = bad.replace("us-east-1", r"us\u002deast-1");
        let owned = json::decode::<ProxyResponse>(escaped.as_bytes()).unwrap_err();
        assert!(
            matches!(&plain, DecodeError::Invalid(e) if e.field == "strategy"),
            "{plain}"
        );
        assert_eq!(owned, plain);

        let long = "x".repeat(200);
        for body in [
            format!(r#"{{"exchange_id":"binance","connection_type":"ws","client_id":"{long}"}}"#),
            format!(
                r#"{{"exchange_id":"bin\u0061nce","connection_type":"ws","client_id":"{long}"}}"#
            ),
        ] {
            let err = json::decode::<ProxyRequest>(body.as_bytes()).unwrap_err();
            assert_eq!(
                err.to_string(),
                "client_id: too long: 200 bytes (at most 128 allowed)",
                "{body}"
            );
        }
    }

    /// Malformed input read on the fast path is reported as the owned path
    /// reports it, not as the fast path's own failure.
    #[test]
    fn malformed_json_reports_the_parser_error() {
        let err = json::decode::<ProxyFeedback>(br#"{"exchange_id":"binance""#).unwrap_err();
        assert!(matches!(err, DecodeError::Json(_)), "{err:?}");
        let err = json::decode::<ProxyFeedback>(br#"{"exchange_id":"a\qb"}"#).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Json(serde_json_core::de::Error::InvalidEscapeSequence)
        );
    }
}
