//! The two wire formats: JSON (what the REST API speaks) and postcard
//! (`application/x-postcard`, the compact form for constrained links).
//!
//! Both encode into a caller's buffer and decode from a byte slice without
//! allocating. Decoding validates every field; an invalid value comes back as
//! [`DecodeError::Invalid`] naming the field. Input larger than
//! [`MAX_INPUT_LEN`] is refused, never truncated.
//!
//! ```
//! use proxy_delegate_core::codec::{self, DecodeError};
//! use proxy_delegate_core::model::ProxyRequest;
//!
//! let body = br#"{"exchange_id":"BINANCE","connection_type":"ws","client_id":"c1"}"#;
//! let request: ProxyRequest = codec::json::decode(body)?;
//! assert_eq!(request.exchange_id.as_str(), "binance");
//!
//! let mut buf = [0u8; 256];
//! let n = codec::postcard::encode(&request, &mut buf)?;
//! let back: ProxyRequest = codec::postcard::decode(&buf[..n])?;
//! assert_eq!(back, request);
//!
//! let bad = br#"{"exchange_id":"binance","connection_type":"carrier-pigeon","client_id":"c1"}"#;
//! let err = codec::json::decode::<ProxyRequest>(bad).unwrap_err();
//! assert!(err.to_string().starts_with("connection_type: unknown value"));
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```

use core::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ValidationError;

/// Largest encoded message accepted by the decoders, in bytes.
pub const MAX_INPUT_LEN: usize = 16 * 1024;

/// A protocol message that the codecs can carry: [`ProxyRequest`],
/// [`ProxyResponse`] and [`ProxyFeedback`].
///
/// [`ProxyRequest`]: crate::model::ProxyRequest
/// [`ProxyResponse`]: crate::model::ProxyResponse
/// [`ProxyFeedback`]: crate::model::ProxyFeedback
pub trait Message: Serialize + Sized {
    /// The unvalidated wire form (an implementation detail).
    #[doc(hidden)]
    type Wire: DeserializeOwned;
    /// Validates the wire form.
    #[doc(hidden)]
    fn from_wire(wire: Self::Wire) -> Result<Self, ValidationError>;
}

/// Which wire format an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// postcard.
    Postcard,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "JSON",
            Format::Postcard => "postcard",
        })
    }
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is larger than [`MAX_INPUT_LEN`].
    TooLarge {
        /// The format being decoded.
        format: Format,
        /// Input length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The JSON text is not well-formed, or a value has the wrong JSON type.
    Json(serde_json_core::de::Error),
    /// The postcard bytes are not a valid encoding of the message.
    Postcard(::postcard::Error),
    /// The message is well-formed but a field is invalid.
    Invalid(ValidationError),
    /// The JSON nests arrays and objects deeper than [`json::MAX_DEPTH`].
    TooDeep {
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { format, len, max } => write!(
                f,
                "{format} message too large: {len} bytes (at most {max} accepted)"
            ),
            DecodeError::Json(e) => write!(f, "malformed JSON: {e}"),
            DecodeError::Postcard(e) => write!(f, "malformed postcard message: {e}"),
            DecodeError::Invalid(e) => fmt::Display::fmt(e, f),
            DecodeError::TooDeep { max } => write!(
                f,
                "JSON nested more than {max} arrays or objects deep; the messages need 3 levels, \
                 keep unknown fields within the rest"
            ),
        }
    }
}

impl core::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            DecodeError::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ValidationError> for DecodeError {
    fn from(e: ValidationError) -> Self {
        DecodeError::Invalid(e)
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is too small for the message.
    BufferTooSmall {
        /// The format being encoded.
        format: Format,
        /// The buffer's size in bytes.
        capacity: usize,
    },
    /// The serializer failed for another reason.
    Other {
        /// The format being encoded.
        format: Format,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall { format, capacity } => write!(
                f,
                "{format} encoding does not fit in a {capacity}-byte buffer; give a larger one"
            ),
            EncodeError::Other { format } => write!(f, "{format} encoding failed"),
        }
    }
}

impl core::error::Error for EncodeError {}

fn check_len(format: Format, input: &[u8]) -> Result<(), DecodeError> {
    if input.len() > MAX_INPUT_LEN {
        return Err(DecodeError::TooLarge {
            format,
            len: input.len(),
            max: MAX_INPUT_LEN,
        });
    }
    Ok(())
}

/// JSON, as the REST API speaks it.
pub mod json {
    use super::{DecodeError, EncodeError, Format, MAX_INPUT_LEN, Message, check_len};
    use serde_json_core::de::Error as JsonError;

    /// Room for one string that contains escapes (`\"`, `\u00e9`…), unescaped,
    /// on the usual decoding path. Strings without escapes are read in place
    /// and have no such limit. A longer escaped string (a long `error_details`,
    /// an unknown field) is decoded on a slower path with a
    /// [`MAX_INPUT_LEN`]-byte scratch buffer on the stack.
    pub const UNESCAPE_SCRATCH_LEN: usize = 1024;

    /// Decodes and validates one message. Unknown fields are ignored.
    ///
    /// Stack use: [`UNESCAPE_SCRATCH_LEN`] bytes, plus up to twice
    /// [`MAX_INPUT_LEN`] for input with an escaped string longer than
    /// [`UNESCAPE_SCRATCH_LEN`] or with UTF-16 surrogate-pair escapes
    /// (`\ud83d\ude00`, as Python's `json.dumps` writes characters outside
    /// the Basic Multilingual Plane).
    pub fn decode<M: Message>(input: &[u8]) -> Result<M, DecodeError> {
        check_len(Format::Json, input)?;
        check_depth(input)?;
        match decode_with::<M, UNESCAPE_SCRATCH_LEN>(input) {
            Err(DecodeError::Json(JsonError::EscapedStringIsTooLong)) => decode_long(input),
            Err(DecodeError::Json(JsonError::InvalidEscapeSequence))
                if has_surrogate_escape(input) =>
            {
                decode_surrogates(input)
            }
            other => other,
        }
    }

    /// Deepest nesting of JSON arrays and objects accepted. The messages
    /// themselves nest 3 deep; the rest is room for unknown fields. The bound
    /// keeps the decoder's recursion, and so its stack use, small whatever the
    /// input (without it, 16 KiB of `[` overflowed a 2 MiB stack).
    pub const MAX_DEPTH: usize = 16;

    /// Refuses input that nests deeper than [`MAX_DEPTH`] before the
    /// (recursive) decoder sees it.
    ///
    /// The scan follows serde-json-core's reading of the input: strings end
    /// at an unescaped quote, and a value that starts with anything but a
    /// quote, bracket or brace runs up to the next `,`, `]` or `}` (that is how
    /// serde-json-core skips unknown scalars). Wherever serde-json-core reads
    /// the input without error, the scan's depth is the decoder's depth.
    fn check_depth(input: &[u8]) -> Result<(), DecodeError> {
        // Fast path: input with few brackets cannot nest deep. (`[` and `{`
        // are the only bytes that `| 0x20` maps to `{`; a byte-wide sum over
        // short chunks vectorises, a filter on two values does not.)
        let opens: usize = input
            .chunks(255)
            .map(|chunk| {
                let n = chunk
                    .iter()
                    .fold(0u8, |n, &b| n + u8::from((b | 0x20) == b'{'));
                usize::from(n)
            })
            .sum();
        if opens <= MAX_DEPTH {
            return Ok(());
        }
        #[derive(Clone, Copy)]
        enum At {
            Value,
            AfterValue,
            Text { escaped: bool },
            Scalar,
        }
        let too_deep = DecodeError::TooDeep { max: MAX_DEPTH };
        let mut depth = 0usize;
        let mut at = At::Value;
        for &b in input {
            at = match (at, b) {
                (At::Text { escaped: true }, _) => At::Text { escaped: false },
                (At::Text { escaped: false }, b'\\') => At::Text { escaped: true },
                (At::Text { .. }, b'"') => At::AfterValue,
                (At::Text { .. }, _) => at,
                (At::Value | At::AfterValue, b' ' | b'\n' | b'\t' | b'\r') => at,
                (_, b'[' | b'{') if !matches!(at, At::Scalar) => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(too_deep);
                    }
                    At::Value
                }
                (_, b']' | b'}') => {
                    depth = depth.saturating_sub(1);
                    At::AfterValue
                }
                (_, b',') => At::Value,
                (At::AfterValue, b':') => At::Value,
                (At::Value | At::AfterValue, b'"') => At::Text { escaped: false },
                (At::Scalar, _) | (At::Value | At::AfterValue, _) => At::Scalar,
            };
        }
        Ok(())
    }

    fn decode_with<M: Message, const SCRATCH: usize>(input: &[u8]) -> Result<M, DecodeError> {
        let mut scratch = [0u8; SCRATCH];
        let (wire, _) = serde_json_core::from_slice_escaped::<M::Wire>(input, &mut scratch)
            .map_err(DecodeError::Json)?;
        Ok(M::from_wire(wire)?)
    }

    /// An escaped string did not fit the usual scratch buffer. No string
    /// unescapes to more bytes than the input holds, so this one always fits.
    #[cold]
    #[inline(never)]
    fn decode_long<M: Message>(input: &[u8]) -> Result<M, DecodeError> {
        match decode_with::<M, MAX_INPUT_LEN>(input) {
            Err(DecodeError::Json(JsonError::InvalidEscapeSequence))
                if has_surrogate_escape(input) =>
            {
                decode_surrogates(input)
            }
            other => other,
        }
    }

    /// serde-json-core reads `\uXXXX` escapes one at a time and rejects the
    /// two halves of a surrogate pair. Decode a copy of the input in which
    /// every pair inside a string is replaced by the character's UTF-8 bytes
    /// (4 bytes for 12, so the copy always fits). A lone surrogate stays an
    /// error, as in any JSON parser that produces Unicode text.
    #[cold]
    #[inline(never)]
    fn decode_surrogates<M: Message>(input: &[u8]) -> Result<M, DecodeError> {
        let mut copy = [0u8; MAX_INPUT_LEN];
        let len = join_surrogate_pairs(input, &mut copy);
        match decode_with::<M, UNESCAPE_SCRATCH_LEN>(&copy[..len]) {
            Err(DecodeError::Json(JsonError::EscapedStringIsTooLong)) => {
                decode_with::<M, MAX_INPUT_LEN>(&copy[..len])
            }
            other => other,
        }
    }

    /// Whether `input` may hold a `\uD800`–`\uDBFF` escape (a false positive
    /// only costs the slower path).
    fn has_surrogate_escape(input: &[u8]) -> bool {
        input.windows(4).any(|w| {
            w[0] == b'\\'
                && w[1] == b'u'
                && matches!(w[2], b'd' | b'D')
                && matches!(w[3], b'8' | b'9' | b'a' | b'b' | b'A' | b'B')
        })
    }

    fn hex4(digits: &[u8]) -> Option<u32> {
        digits.iter().try_fold(0u32, |acc, d| {
            char::from(*d).to_digit(16).map(|v| acc * 16 + v)
        })
    }

    /// The character a surrogate-pair escape (`\uD83D\uDE00`) at the start of
    /// `s` stands for.
    fn surrogate_pair(s: &[u8]) -> Option<char> {
        let seq = s.get(..12)?;
        if seq[0] != b'\\' || seq[1] != b'u' || seq[6] != b'\\' || seq[7] != b'u' {
            return None;
        }
        let (high, low) = (hex4(&seq[2..6])?, hex4(&seq[8..12])?);
        if !(0xD800..0xDC00).contains(&high) || !(0xDC00..0xE000).contains(&low) {
            return None;
        }
        char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
    }

    /// Copies `input` into `out` (at least as long), replacing each
    /// surrogate-pair escape inside a string with UTF-8. Returns the length.
    fn join_surrogate_pairs(input: &[u8], out: &mut [u8]) -> usize {
        let (mut i, mut n) = (0, 0);
        let mut in_string = false;
        while i < input.len() {
            let b = input[i];
            if in_string && b == b'\\' {
                if let Some(c) = surrogate_pair(&input[i..]) {
                    n += c.encode_utf8(&mut out[n..n + 4]).len();
                    i += 12;
                } else {
                    // Any other escape is copied as is; its second byte is
                    // never a quote that ends the string.
                    let end = (i + 2).min(input.len());
                    out[n..n + (end - i)].copy_from_slice(&input[i..end]);
                    n += end - i;
                    i = end;
                }
                continue;
            }
            if b == b'"' {
                in_string = !in_string;
            }
            out[n] = b;
            n += 1;
            i += 1;
        }
        n
    }

    /// Encodes one message into `out`, returning the length written.
    pub fn encode<M: Message>(msg: &M, out: &mut [u8]) -> Result<usize, EncodeError> {
        serde_json_core::to_slice(msg, out).map_err(|e| map_err(e, out.len()))
    }

    /// Encodes a batch of messages as one JSON array (the feedback endpoint
    /// takes one event or a batch).
    pub fn encode_batch<M: Message>(msgs: &[M], out: &mut [u8]) -> Result<usize, EncodeError> {
        serde_json_core::to_slice(msgs, out).map_err(|e| map_err(e, out.len()))
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
}

/// postcard, the compact binary form (`application/x-postcard`).
pub mod postcard {
    use super::{DecodeError, EncodeError, Format, Message, check_len};

    /// Decodes and validates one message. Trailing bytes are an error.
    pub fn decode<M: Message>(input: &[u8]) -> Result<M, DecodeError> {
        check_len(Format::Postcard, input)?;
        let (wire, rest) =
            ::postcard::take_from_bytes::<M::Wire>(input).map_err(DecodeError::Postcard)?;
        if !rest.is_empty() {
            return Err(DecodeError::Postcard(
                ::postcard::Error::DeserializeBadEncoding,
            ));
        }
        Ok(M::from_wire(wire)?)
    }

    /// Encodes one message into `out`, returning the length written.
    pub fn encode<M: Message>(msg: &M, out: &mut [u8]) -> Result<usize, EncodeError> {
        let capacity = out.len();
        ::postcard::to_slice(msg, out)
            .map(|written| written.len())
            .map_err(|e| match e {
                ::postcard::Error::SerializeBufferFull => EncodeError::BufferTooSmall {
                    format: Format::Postcard,
                    capacity,
                },
                _ => EncodeError::Other {
                    format: Format::Postcard,
                },
            })
    }
}
