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

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

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
    /// The unvalidated wire form whose text borrows from the input (an
    /// implementation detail): what the codecs read on their fast path.
    #[doc(hidden)]
    type Wire<'de>: Deserialize<'de> + Default;
    /// The unvalidated wire form holding bounded copies of its text (an
    /// implementation detail): for JSON strings with escapes.
    #[doc(hidden)]
    type OwnedWire: DeserializeOwned;
    /// Reads the borrowed wire form into `place` (which holds the default),
    /// without moving it.
    #[doc(hidden)]
    fn read_wire<'de, D: Deserializer<'de>>(
        d: D,
        place: &mut Self::Wire<'de>,
    ) -> Result<(), D::Error>;
    /// Validates the borrowed wire form; an invalid field is
    /// [`DecodeError::Invalid`].
    #[doc(hidden)]
    fn from_wire(wire: &Self::Wire<'_>) -> Result<Self, DecodeError>;
    /// Validates the owned wire form; an invalid field is
    /// [`DecodeError::Invalid`].
    #[doc(hidden)]
    fn from_owned_wire(wire: &Self::OwnedWire) -> Result<Self, DecodeError>;
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
        if super::reader::read(input, |r| M::read_wire(r, &mut wire)).is_ok() {
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
            Err(DecodeError::Json(JsonError::InvalidEscapeSequence))
                if has_surrogate_escape(input) =>
            {
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

    /// A JSON number (RFC 8259: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`)
    /// as [`number`] reads it.
    #[derive(Clone, Copy)]
    pub(super) struct Number {
        /// Its length in bytes.
        pub(super) len: usize,
        /// Whether it starts with `-`.
        pub(super) negative: bool,
        /// Its digits (integer and fraction) as an integer, if at most 19.
        pub(super) mantissa: Option<u64>,
        /// The power of ten to scale `mantissa` by (saturating).
        pub(super) exponent: i32,
    }

    /// The JSON number at the start of `b`, or `None` if `b` does not start
    /// with one. What follows the number is not looked at: in `01` the
    /// number is `0`.
    ///
    /// Shared by the fast reader (which reads only such numbers) and
    /// [`check_syntax`].
    #[inline(always)]
    pub(super) fn number(b: &[u8]) -> Option<Number> {
        let at = |i: usize| b.get(i).copied().unwrap_or(0);
        let digit = |c: u8| c.wrapping_sub(b'0') < 10;
        let negative = at(0) == b'-';
        let mut i = usize::from(negative);
        // At most 19 digits always fit a u64.
        let (mut mantissa, mut digits, mut exponent) = (0u64, 0u32, 0i32);
        let mut push = |c: u8| {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            digits += 1;
        };
        match at(i) {
            b'0' => i += 1,
            b'1'..=b'9' => {
                while digit(at(i)) {
                    push(at(i));
                    i += 1;
                }
            }
            _ => return None,
        }
        if at(i) == b'.' {
            i += 1;
            if !digit(at(i)) {
                return None;
            }
            while digit(at(i)) {
                push(at(i));
                exponent -= 1;
                i += 1;
            }
        }
        if at(i) | 0x20 == b'e' {
            i += 1;
            let minus = at(i) == b'-';
            if minus || at(i) == b'+' {
                i += 1;
            }
            if !digit(at(i)) {
                return None;
            }
            let mut e = 0i32;
            while digit(at(i)) {
                e = e.saturating_mul(10).saturating_add(i32::from(at(i) - b'0'));
                i += 1;
            }
            exponent = exponent.saturating_add(if minus { -e } else { e });
        }
        Some(Number {
            len: i,
            negative,
            mantissa: (digits <= 19).then_some(mantissa),
            exponent,
        })
    }

    /// Checks that `input` is exactly one well-formed JSON value as RFC 8259
    /// defines it: strings with valid escapes (a `\uD800`–`\uDBFF` escape
    /// followed by a `\uDC00`–`\uDFFF` one, never a lone surrogate), no raw
    /// control characters and valid UTF-8; numbers as [`number`] reads
    /// them; `true`, `false`, `null`; whitespace; matching brackets, no
    /// trailing commas, nothing after the value.
    ///
    /// It runs on the cold paths only, after serde-json-core has read the
    /// input: the fast reader reads only well-formed JSON itself. It does not
    /// recurse: open containers are bits in a fixed-size stack, at most
    /// [`MAX_DEPTH`] of them ([`DecodeError::TooDeep`] beyond, which
    /// [`check_depth`] has already refused).
    ///
    /// The error is the closest serde-json-core [`JsonError`], for the first
    /// fault in the input.
    pub(super) fn check_syntax(input: &[u8]) -> Result<(), DecodeError> {
        const _: () = assert!(MAX_DEPTH <= u64::BITS as usize);
        /// What the next token may be.
        #[derive(Clone, Copy, PartialEq)]
        enum Want {
            /// A value (after `:`, at the start, or after `,` in an array).
            Value,
            /// A value or `]` (just after `[`).
            ValueOrEnd,
            /// A key (after `,` in an object).
            Key,
            /// A key or `}` (just after `{`).
            KeyOrEnd,
            /// `,`, or the end of the open container (or of the input).
            Next,
        }
        let fail = |e: JsonError| Err(DecodeError::Json(e));
        if core::str::from_utf8(input).is_err() {
            return fail(JsonError::InvalidUnicodeCodePoint);
        }
        // Bit `d` of `objects` is set when the container open at depth
        // `d + 1` is an object.
        let (mut objects, mut depth) = (0u64, 0usize);
        let mut want = Want::Value;
        let mut i = 0;
        loop {
            while let Some(b' ' | b'\n' | b'\t' | b'\r') = input.get(i) {
                i += 1;
            }
            let in_object = depth > 0 && objects & (1 << (depth - 1)) != 0;
            let Some(&b) = input.get(i) else {
                return match (want, depth) {
                    (Want::Next, 0) => Ok(()),
                    (_, 0) => fail(JsonError::EofWhileParsingValue),
                    _ if in_object => fail(JsonError::EofWhileParsingObject),
                    _ => fail(JsonError::EofWhileParsingList),
                };
            };
            match want {
                Want::Next => {
                    want = match (b, in_object) {
                        _ if depth == 0 => return fail(JsonError::TrailingCharacters),
                        (b',', true) => Want::Key,
                        (b',', false) => Want::Value,
                        (b'}', true) | (b']', false) => {
                            depth -= 1;
                            Want::Next
                        }
                        (_, true) => return fail(JsonError::ExpectedObjectCommaOrEnd),
                        (_, false) => return fail(JsonError::ExpectedListCommaOrEnd),
                    };
                    i += 1;
                    continue;
                }
                Want::KeyOrEnd | Want::ValueOrEnd if b == b'}' || b == b']' => {
                    if (b == b'}') != (want == Want::KeyOrEnd) {
                        return fail(if in_object {
                            JsonError::ExpectedObjectCommaOrEnd
                        } else {
                            JsonError::ExpectedListCommaOrEnd
                        });
                    }
                    depth -= 1;
                    want = Want::Next;
                    i += 1;
                    continue;
                }
                Want::Key | Want::KeyOrEnd => {
                    match b {
                        b'"' => i = string_end(input, i)?,
                        b'}' => return fail(JsonError::TrailingComma),
                        _ => return fail(JsonError::KeyMustBeAString),
                    }
                    while let Some(b' ' | b'\n' | b'\t' | b'\r') = input.get(i) {
                        i += 1;
                    }
                    match input.get(i) {
                        Some(b':') => i += 1,
                        Some(_) => return fail(JsonError::ExpectedColon),
                        None => return fail(JsonError::EofWhileParsingObject),
                    }
                    want = Want::Value;
                    continue;
                }
                Want::Value | Want::ValueOrEnd => {}
            }
            // A value.
            want = Want::Next;
            match b {
                b'{' | b'[' => {
                    if depth == MAX_DEPTH {
                        return Err(DecodeError::TooDeep { max: MAX_DEPTH });
                    }
                    if b == b'{' {
                        objects |= 1 << depth;
                        want = Want::KeyOrEnd;
                    } else {
                        objects &= !(1 << depth);
                        want = Want::ValueOrEnd;
                    }
                    depth += 1;
                    i += 1;
                }
                b'"' => i = string_end(input, i)?,
                b't' | b'f' | b'n' => {
                    let word: &[u8] = match b {
                        b't' => b"true",
                        b'f' => b"false",
                        _ => b"null",
                    };
                    if !input[i..].starts_with(word) {
                        return fail(JsonError::ExpectedSomeIdent);
                    }
                    i += word.len();
                }
                b'-' | b'0'..=b'9' => {
                    let Some(n) = number(&input[i..]) else {
                        return fail(JsonError::InvalidNumber);
                    };
                    i += n.len;
                    // `01`, `1.2.3`, `1e5e5`: more number after a number.
                    if let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = input.get(i) {
                        return fail(JsonError::InvalidNumber);
                    }
                }
                b']' if !in_object && depth > 0 => return fail(JsonError::TrailingComma),
                _ => return fail(JsonError::ExpectedSomeValue),
            }
        }
    }

    /// Where the string starting with the quote at `input[start]` ends (just
    /// past its closing quote), checking its escapes and that it holds no
    /// raw control character. The input is valid UTF-8.
    fn string_end(input: &[u8], start: usize) -> Result<usize, DecodeError> {
        let fail = |e: JsonError| Err(DecodeError::Json(e));
        let mut i = start + 1;
        loop {
            match input.get(i) {
                None => return fail(JsonError::EofWhileParsingString),
                Some(b'"') => return Ok(i + 1),
                Some(0..=0x1f) => return fail(JsonError::InvalidUnicodeCodePoint),
                Some(b'\\') => match input.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                    Some(b'u') => {
                        let unit = |at: usize| input.get(at..at + 4).and_then(hex4);
                        match unit(i + 2) {
                            Some(0xD800..=0xDBFF) => {
                                // A high surrogate: a low one must follow.
                                let low = if input.get(i + 6..i + 8) == Some(&b"\\u"[..]) {
                                    unit(i + 8)
                                } else {
                                    None
                                };
                                if !matches!(low, Some(0xDC00..=0xDFFF)) {
                                    return fail(JsonError::InvalidEscapeSequence);
                                }
                                i += 12;
                            }
                            Some(0xDC00..=0xDFFF) | None => {
                                return fail(JsonError::InvalidEscapeSequence);
                            }
                            Some(_) => i += 6,
                        }
                    }
                    _ => return fail(JsonError::InvalidEscapeSequence),
                },
                Some(_) => i += 1,
            }
        }
    }

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

/// A minimal JSON reader for the decoder's fast path.
///
/// It reads the messages' wire structs from JSON without escapes, borrowing
/// every string, checking UTF-8 once for the whole input rather than once per
/// string. It is deliberately strict: it accepts only well-formed JSON
/// (RFC 8259), and of that a subset of what serde-json-core accepts: no
/// escapes, no control characters in strings, numbers only as the JSON
/// grammar has them (`json::number`; serde-json-core also reads `01`, `1.`
/// or `+1.`), no trailing commas, well-formed values where a field is
/// skipped. It reads numbers to the values serde-json-core reads. On anything
/// else it gives up with [`reader::Bail`], and the caller decodes the input
/// with serde-json-core and checks it with `json::check_syntax`, which report
/// the error. It never reports an error of its own, so errors are unchanged.
mod reader {
    use core::fmt;
    use core::str::FromStr;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    /// The reader gave up; decode with serde-json-core instead.
    #[derive(Debug)]
    pub(super) struct Bail;

    impl fmt::Display for Bail {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("not read by the fast JSON reader")
        }
    }

    impl de::StdError for Bail {}

    impl de::Error for Bail {
        fn custom<T: fmt::Display>(_msg: T) -> Self {
            Bail
        }
    }

    type Result<T> = core::result::Result<T, Bail>;

    /// Runs `read` over the input, which must fill it (surrounding
    /// whitespace aside).
    pub(super) fn read<'de>(
        input: &'de [u8],
        read: impl FnOnce(&mut Reader<'de>) -> Result<()>,
    ) -> Result<()> {
        let text = core::str::from_utf8(input).map_err(|_| Bail)?;
        let mut r = Reader { text, i: 0 };
        read(&mut r)?;
        if r.ws().is_some() {
            return Err(Bail);
        }
        Ok(())
    }

    /// Reads one value of type `T` filling the whole input (surrounding
    /// whitespace aside).
    #[cfg(test)]
    pub(super) fn from_str<'de, T: de::Deserialize<'de>>(input: &'de [u8]) -> Result<T> {
        let mut value = None;
        read(input, |r| {
            value = Some(T::deserialize(r)?);
            Ok(())
        })?;
        value.ok_or(Bail)
    }

    /// Where the first `"`, `\\` or control character (below 0x20, which
    /// JSON strings must escape) in `b` is. Eight bytes at a time, with the
    /// usual word tricks: the lowest flagged byte of `(x - k…) & !x & 0x80…`
    /// is the first byte of `x` below `k` (borrows only flag bytes above it).
    /// A backslash is a zero byte of `w ^ 0x5c…`; `w ^ 0x02…` swaps `"` and
    /// a space, keeping the bytes below 0x20 below it, so a quote or a
    /// control character is a byte of it below 0x21. Two tests a word, as for
    /// quotes and backslashes alone.
    #[inline(never)]
    pub(super) fn string_stop(b: &[u8]) -> Option<usize> {
        const LO: u64 = u64::from_ne_bytes([0x01; 8]);
        const HI: u64 = u64::from_ne_bytes([0x80; 8]);
        const BELOW: u64 = u64::from_ne_bytes([0x21; 8]);
        const SWAP: u64 = u64::from_ne_bytes([0x02; 8]);
        const BACKSLASH: u64 = u64::from_ne_bytes([b'\\'; 8]);
        // `!q & HI` and `!s & HI` are both `!w & HI`: SWAP and BACKSLASH
        // have no high bits.
        let stops = |w: u64| {
            let (q, s) = (w ^ SWAP, w ^ BACKSLASH);
            (q.wrapping_sub(BELOW) | s.wrapping_sub(LO)) & (!w & HI)
        };
        let mut chunks = b.chunks_exact(8);
        let mut at = 0;
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let hits = stops(u64::from_le_bytes(word));
            if hits != 0 {
                return Some(at + (hits.trailing_zeros() / 8) as usize);
            }
            at += 8;
        }
        chunks
            .remainder()
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .map(|p| at + p)
    }

    /// `f32` and `f64`, read exactly without `FromStr` when that is cheap.
    pub(super) trait Float: FromStr {
        /// The value of `n` when its mantissa and the power of ten are both
        /// exact in `Self` (Clinger's fast path): one IEEE multiplication or
        /// division of exact operands is correctly rounded, so the result is
        /// the one `FromStr` (also correctly rounded) gives. `None` otherwise.
        fn exact(n: &super::json::Number) -> Option<Self>;
    }

    macro_rules! exact_float {
        ($t:ty, $mantissa_bits:expr, [$($pow:expr),* $(,)?]) => {
            impl Float for $t {
                #[inline]
                fn exact(n: &super::json::Number) -> Option<Self> {
                    const POWERS: &[$t] = &[$($pow),*];
                    let m = n.mantissa.filter(|&m| m <= 1 << $mantissa_bits)?;
                    let pow = *POWERS.get(usize::try_from(n.exponent.unsigned_abs()).ok()?)?;
                    // Exact: `m` has at most `$mantissa_bits` significant bits.
                    #[allow(clippy::cast_precision_loss)]
                    let m = m as $t;
                    let x = if n.exponent < 0 { m / pow } else { m * pow };
                    Some(if n.negative { -x } else { x })
                }
            }
        };
    }

    exact_float!(
        f32,
        24,
        [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10]
    );
    exact_float!(
        f64,
        53,
        [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
        ]
    );

    pub(super) struct Reader<'de> {
        text: &'de str,
        i: usize,
    }

    impl<'de> Reader<'de> {
        #[inline]
        fn peek(&self) -> Option<u8> {
            self.text.as_bytes().get(self.i).copied()
        }

        /// Skips whitespace (as serde-json-core defines it) and peeks.
        #[inline]
        fn ws(&mut self) -> Option<u8> {
            while let Some(b) = self.peek() {
                if !matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                    return Some(b);
                }
                self.i += 1;
            }
            None
        }

        #[inline]
        fn eat(&mut self, b: u8) -> Result<()> {
            if self.ws() == Some(b) {
                self.i += 1;
                Ok(())
            } else {
                Err(Bail)
            }
        }

        fn ident(&mut self, word: &[u8]) -> Result<()> {
            let end = self.i + word.len();
            if self.text.as_bytes().get(self.i..end) == Some(word) {
                self.i = end;
                Ok(())
            } else {
                Err(Bail)
            }
        }

        /// A string without escapes or control characters, borrowed from
        /// the input.
        #[inline]
        fn string(&mut self) -> Result<&'de str> {
            self.eat(b'"')?;
            let start = self.i;
            let bytes = self.text.as_bytes();
            let len = string_stop(&bytes[start..]).ok_or(Bail)?;
            let end = start + len;
            if bytes[end] != b'"' {
                return Err(Bail);
            }
            self.i = end + 1;
            // Both ends sit next to an ASCII quote: character boundaries.
            self.text.get(start..end).ok_or(Bail)
        }

        /// serde-json-core's unsigned integers: digits, no leading zeros
        /// read past (`0` ends the number), overflow refused.
        fn unsigned(&mut self) -> Result<u64> {
            match self.ws() {
                Some(b'0') => {
                    self.i += 1;
                    Ok(0)
                }
                Some(c @ b'1'..=b'9') => {
                    self.i += 1;
                    let mut n = u64::from(c - b'0');
                    while let Some(c @ b'0'..=b'9') = self.peek() {
                        self.i += 1;
                        n = n
                            .checked_mul(10)
                            .and_then(|n| n.checked_add(u64::from(c - b'0')))
                            .ok_or(Bail)?;
                    }
                    Ok(n)
                }
                _ => Err(Bail),
            }
        }

        /// serde-json-core's signed integers: an optional `-`, then as
        /// [`Self::unsigned`].
        fn signed(&mut self) -> Result<i64> {
            let negative = self.ws() == Some(b'-');
            if negative {
                self.i += 1;
                // No whitespace between the sign and the digits.
                if !matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(Bail);
                }
            }
            let n = i128::from(self.unsigned()?);
            i64::try_from(if negative { -n } else { n }).map_err(|_| Bail)
        }

        /// A JSON number (RFC 8259, as `json::number` reads it), read to
        /// the same value as serde-json-core reads it with `FromStr`.
        /// serde-json-core reads the longest run of `0-9 + - . e E` (`01`,
        /// `1.`, `-.5`, `1e`…); the runs that are not JSON are left to it,
        /// and refused there.
        #[inline]
        fn float<F: Float>(&mut self) -> Result<F> {
            self.ws();
            let start = self.i;
            let n = super::json::number(&self.text.as_bytes()[start..]).ok_or(Bail)?;
            self.i = start + n.len;
            match F::exact(&n) {
                Some(x) => Ok(x),
                None => self.text[start..self.i].parse().map_err(|_| Bail),
            }
        }

        /// Skips one well-formed value (strings without escapes). The depth
        /// is bounded by the caller's check (`json::MAX_DEPTH`).
        fn skip(&mut self) -> Result<()> {
            match self.ws().ok_or(Bail)? {
                b'"' => self.string().map(drop),
                b't' => self.ident(b"true"),
                b'f' => self.ident(b"false"),
                b'n' => self.ident(b"null"),
                b'-' | b'0'..=b'9' => {
                    let n = super::json::number(&self.text.as_bytes()[self.i..]).ok_or(Bail)?;
                    self.i += n.len;
                    Ok(())
                }
                b'[' => {
                    self.i += 1;
                    if self.ws() == Some(b']') {
                        self.i += 1;
                        return Ok(());
                    }
                    loop {
                        self.skip()?;
                        match self.ws() {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(());
                            }
                            _ => return Err(Bail),
                        }
                    }
                }
                b'{' => {
                    self.i += 1;
                    if self.ws() == Some(b'}') {
                        self.i += 1;
                        return Ok(());
                    }
                    loop {
                        self.string()?;
                        self.eat(b':')?;
                        self.skip()?;
                        match self.ws() {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(());
                            }
                            _ => return Err(Bail),
                        }
                    }
                }
                _ => Err(Bail),
            }
        }
    }

    impl<'de> Deserializer<'de> for &mut Reader<'de> {
        type Error = Bail;

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
            Err(Bail)
        }

        fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            match self.ws() {
                Some(b't') => {
                    self.ident(b"true")?;
                    visitor.visit_bool(true)
                }
                Some(b'f') => {
                    self.ident(b"false")?;
                    visitor.visit_bool(false)
                }
                _ => Err(Bail),
            }
        }

        fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            let n = self.signed()?;
            visitor.visit_i64(n)
        }

        fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            let n = u32::try_from(self.unsigned()?).map_err(|_| Bail)?;
            visitor.visit_u32(n)
        }

        fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            let x = self.float::<f32>()?;
            visitor.visit_f32(x)
        }

        /// A whole number as an integer (exact and cheap), anything else
        /// (`45.0`, `4.5e1`, `0.5`) through `FromStr`.
        fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            self.ws();
            let start = self.i;
            if let Ok(n) = self.signed()
                && !matches!(self.peek(), Some(b'.' | b'e' | b'E'))
            {
                return visitor.visit_i64(n);
            }
            self.i = start;
            let x = self.float::<f64>()?;
            visitor.visit_f64(x)
        }

        fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            let s = self.string()?;
            visitor.visit_borrowed_str(s)
        }

        fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            self.deserialize_str(visitor)
        }

        fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            self.deserialize_str(visitor)
        }

        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            if self.ws() == Some(b'n') {
                self.ident(b"null")?;
                visitor.visit_none()
            } else {
                visitor.visit_some(self)
            }
        }

        fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            self.eat(b'[')?;
            let value = visitor.visit_seq(Items {
                r: &mut *self,
                first: true,
            })?;
            self.eat(b']')?;
            Ok(value)
        }

        fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            self.eat(b'{')?;
            let value = visitor.visit_map(Items {
                r: &mut *self,
                first: true,
            })?;
            self.eat(b'}')?;
            Ok(value)
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value> {
            self.deserialize_map(visitor)
        }

        fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            self.skip()?;
            visitor.visit_unit()
        }

        serde::forward_to_deserialize_any! {
            i8 i16 i32 i128 u8 u16 u64 u128 char bytes byte_buf unit
            unit_struct newtype_struct tuple tuple_struct enum
        }
    }

    /// The entries of an array or an object.
    struct Items<'a, 'de> {
        r: &'a mut Reader<'de>,
        first: bool,
    }

    impl Items<'_, '_> {
        /// Whether another entry follows; leaves the closing bracket unread.
        fn more(&mut self, close: u8) -> Result<bool> {
            let b = self.r.ws().ok_or(Bail)?;
            if b == close {
                return Ok(false);
            }
            if !self.first {
                if b != b',' {
                    return Err(Bail);
                }
                self.r.i += 1;
                // `[1,]` and `{"a":1,}` are not read here.
                if self.r.ws() == Some(close) {
                    return Err(Bail);
                }
            }
            self.first = false;
            Ok(true)
        }
    }

    impl<'de> SeqAccess<'de> for Items<'_, 'de> {
        type Error = Bail;

        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>> {
            if !self.more(b']')? {
                return Ok(None);
            }
            seed.deserialize(&mut *self.r).map(Some)
        }
    }

    impl<'de> MapAccess<'de> for Items<'_, 'de> {
        type Error = Bail;

        fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
            if !self.more(b'}')? {
                return Ok(None);
            }
            let key = seed.deserialize(&mut *self.r)?;
            self.r.eat(b':')?;
            Ok(Some(key))
        }

        fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
            seed.deserialize(&mut *self.r)
        }
    }
}

/// postcard, the compact binary form (`application/x-postcard`).
pub mod postcard {
    use super::{DecodeError, EncodeError, Format, Message, check_len};

    /// Decodes and validates one message. Trailing bytes are an error.
    pub fn decode<M: Message>(input: &[u8]) -> Result<M, DecodeError> {
        check_len(Format::Postcard, input)?;
        // postcard strings are always borrowed from the input.
        let mut wire = M::Wire::default();
        let mut de = ::postcard::Deserializer::from_bytes(input);
        M::read_wire(&mut de, &mut wire).map_err(DecodeError::Postcard)?;
        let rest = de.finalize().map_err(DecodeError::Postcard)?;
        if !rest.is_empty() {
            return Err(DecodeError::Postcard(
                ::postcard::Error::DeserializeBadEncoding,
            ));
        }
        M::from_wire(&wire)
    }

    /// Decodes and validates the message at the start of `input` and returns
    /// it with the bytes after it: a stream of concatenated messages (the
    /// feedback endpoint's postcard batch) is read by calling it until the
    /// rest is empty. No length limit applies to `input` as a whole; each
    /// message is bounded by the model's own bounds.
    pub fn take<M: Message>(input: &[u8]) -> Result<(M, &[u8]), DecodeError> {
        let mut wire = M::Wire::default();
        let mut de = ::postcard::Deserializer::from_bytes(input);
        M::read_wire(&mut de, &mut wire).map_err(DecodeError::Postcard)?;
        let rest = de.finalize().map_err(DecodeError::Postcard)?;
        Ok((M::from_wire(&wire)?, rest))
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

    /// Encodes as many of `msgs` as fit into `out`, one after another (the
    /// feedback endpoint's postcard batch), returning how many were written
    /// and their length; an error when not even the first fits.
    pub fn encode_prefix<M: Message>(
        msgs: &[M],
        out: &mut [u8],
    ) -> Result<(usize, usize), EncodeError> {
        let mut len = 0;
        for (i, msg) in msgs.iter().enumerate() {
            match encode(msg, &mut out[len..]) {
                Ok(n) => len += n,
                Err(e) if i == 0 => {
                    return Err(match e {
                        EncodeError::BufferTooSmall { format, .. } => EncodeError::BufferTooSmall {
                            format,
                            capacity: out.len(),
                        },
                        other => other,
                    });
                }
                Err(_) => return Ok((i, len)),
            }
        }
        Ok((msgs.len(), len))
    }
}

#[cfg(test)]
mod tests {
    use std::string::String;
    use std::vec;

    use super::{DecodeError, json, postcard};
    use crate::model::{ProxyFeedback, ProxyRequest, ProxyResponse};

    const REQUEST: &str = r#"{"exchange_id":"binance","connection_type":"websocket","region":"us-east-1","client_id":"cryptofeed-instance-123","metadata":{"feed_types":["trades","book"],"symbols":["BTC-USD","ETH-USD"]}}"#;
    const RESPONSE: &str = r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","strategy":"least_connections","ttl_seconds":300,"fallback_policy":"direct_connection","metadata":{"proxy_id":"proxy-123","region":"us-east-1","health_score":0.98}}"#;

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

    /// Bodies around the published ones: odd whitespace and numbers, nulls,
    /// unknown fields of every shape, repeated fields, trailing commas.
    const VARIANTS: &[&str] = &[
        r#" { "strategy" : "s" , "ttl_seconds" : 300 } "#,
        "{\n\t\"strategy\":\"s\",\r\"ttl_seconds\":-0}",
        r#"{"strategy":"s","ttl_seconds":007}"#,
        r#"{"strategy":"s","ttl_seconds":9223372036854775808}"#,
        r#"{"strategy":"s","ttl_seconds":-9223372036854775808}"#,
        r#"{"strategy":"s","ttl_seconds":300.0}"#,
        r#"{"strategy":"s","ttl_seconds":3e2}"#,
        r#"{"strategy":"s","ttl_seconds":- 3}"#,
        r#"{"strategy":"s","ttl_seconds":300,"metadata":{"health_score":1}}"#,
        r#"{"strategy":"s","ttl_seconds":300,"metadata":{"health_score":.5e-0}}"#,
        r#"{"strategy":"s","ttl_seconds":300,"metadata":{"health_score":null}}"#,
        r#"{"strategy":"s","ttl_seconds":300,"metadata":{"health_score":+1.}}"#,
        r#"{"strategy":"s","ttl_seconds":300,"metadata":null}"#,
        r#"{"strategy":"s","ttl_seconds":300,"x":{"a":[1,{"b":null}],"c":"]"}}"#,
        r#"{"strategy":"s","ttl_seconds":300,"x":[true,false,null,-1.5e3,""]}"#,
        r#"{"strategy":"s","ttl_seconds":300,"x":tru}"#,
        r#"{"strategy":"s","ttl_seconds":300,"x":[1,]}"#,
        r#"{"strategy":"s","ttl_seconds":300,}"#,
        r#"{"strategy":"s","strategy":"t","ttl_seconds":300}"#,
        r#"{"strategy":"s","ttl_seconds":300} x"#,
        r#"{"strategy":"s","ttl_seconds":300}}"#,
        r#"{"strategy":"s" "ttl_seconds":300}"#,
        r#"{"strategy":"a\"b","ttl_seconds":300}"#,
        r#"{"strategy":null,"ttl_seconds":300}"#,
        r#"{"strategy":"s","ttl_seconds":300,"fallback_policy":"FAIL"}"#,
        r#"[]"#,
        r#""#,
    ];

    /// Whatever the fast reader accepts, serde-json-core (the owned path)
    /// reads to the same message or the same validation error.
    fn agree<M: super::Message + PartialEq + core::fmt::Debug>(input: &[u8]) -> bool {
        let Ok(wire) = super::reader::from_str::<M::Wire<'_>>(input) else {
            return false;
        };
        let fast = M::from_wire(&wire);
        let slow = json::decode_owned::<M>(input);
        assert_eq!(fast, slow, "{}", String::from_utf8_lossy(input));
        true
    }

    #[test]
    fn fast_reader_agrees_with_serde_json_core() {
        let mut accepted = 0;
        for v in VARIANTS {
            accepted += usize::from(agree::<ProxyResponse>(v.as_bytes()));
            assert_eq!(
                json::decode::<ProxyResponse>(v.as_bytes()),
                json::decode_owned::<ProxyResponse>(v.as_bytes()),
                "{v}"
            );
        }
        // The common shapes are read by the fast reader, not handed on.
        assert!(accepted >= 10, "{accepted}");
        assert!(agree::<ProxyResponse>(RESPONSE.as_bytes()));
        let request = r#"{"exchange_id":"binance","connection_type":"websocket","region":"us-east-1","client_id":"c","metadata":{"feed_types":["trades","book"],"symbols":["BTC-USD"],"x":1}}"#;
        assert!(agree::<ProxyRequest>(request.as_bytes()));
        let feedback = r#"{"proxy_url":"socks5://u:p@h:1080","exchange_id":"binance","connection_type":"websocket","success":true,"latency_ms":45,"error_details":null,"timestamp":"2024-09-23T10:30:00Z","client_id":"c"}"#;
        assert!(agree::<ProxyFeedback>(feedback.as_bytes()));
    }

    proptest::proptest! {
        /// Random JSON-ish text spliced into the published response: the
        /// fast reader never accepts what serde-json-core reads differently.
        #[test]
        fn fast_reader_agrees_on_spliced_bodies(
            at in 0usize..260,
            cut in 0usize..8,
            splice in "[\\[\\]{}\",: 0-9.eE+\\-ntrufalsx\\\\]{0,12}",
        ) {
            let body = RESPONSE.as_bytes();
            let at = at.min(body.len());
            let end = (at + cut).min(body.len());
            let mut input = body[..at].to_vec();
            input.extend_from_slice(splice.as_bytes());
            input.extend_from_slice(&body[end..]);
            agree::<ProxyResponse>(&input);
            let request = REQUEST.as_bytes();
            let at = at.min(request.len());
            let end = (at + cut).min(request.len());
            let mut input = request[..at].to_vec();
            input.extend_from_slice(splice.as_bytes());
            input.extend_from_slice(&request[end..]);
            agree::<ProxyRequest>(&input);
        }
    }

    /// The eight-byte scan finds the first quote, backslash or control
    /// character wherever it is, whatever the bytes around it.
    #[test]
    fn string_scan_finds_the_first_stop() {
        let is_stop = |b: &u8| *b == b'"' || *b == b'\\' || *b < 0x20;
        for len in 0..40 {
            for stop in 0..=len {
                for c in [b'"', b'\\', 0, b'\t', b'\n', 0x1f] {
                    for fill in [b'a', b' ', b'!', 0x7f, 0x80, 0xff] {
                        let mut text = vec![fill; len];
                        if stop < len {
                            text[stop] = c;
                            // A later stop must not win.
                            if stop + 1 < len {
                                text[len - 1] = b'"';
                            }
                        }
                        let want = text.iter().position(is_stop);
                        assert_eq!(
                            super::reader::string_stop(&text),
                            want,
                            "{len} {stop} {c} {fill}"
                        );
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// The fast reader's numbers are exactly what `FromStr` reads, and
        /// every JSON number's text (and nothing else) is one.
        #[test]
        fn fast_reader_numbers_match_from_str(
            text in "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,2})?",
            tail in "[0-9.eE+-]?",
        ) {
            use super::reader::Float;
            let n = json::number(text.as_bytes()).expect("a JSON number");
            proptest::prop_assert_eq!(n.len, text.len());
            if let Some(x) = f64::exact(&n) {
                proptest::prop_assert_eq!(x.to_bits(), text.parse::<f64>().unwrap().to_bits());
            }
            if let Some(x) = f32::exact(&n) {
                proptest::prop_assert_eq!(x.to_bits(), text.parse::<f32>().unwrap().to_bits());
            }
            // A longer run is a JSON number only if it is one as a whole
            // (serde_json reads the grammar, and refuses numbers beyond
            // f64's range).
            let run = format!("{text}{tail}");
            let whole = json::number(run.as_bytes()).is_some_and(|n| n.len == run.len());
            let reference = serde_json::from_str::<serde_json::Number>(&run)
                .map_or_else(|e| e.to_string().starts_with("number out of range"), |_| true);
            proptest::prop_assert_eq!(whole, reference, "{}", run);
        }
    }

    /// postcard text is borrowed from the input, and round-trips.
    #[test]
    fn postcard_round_trip_borrows() {
        let msg: ProxyResponse = json::decode(RESPONSE.as_bytes()).unwrap();
        let mut buf = [0u8; 512];
        let n = postcard::encode(&msg, &mut buf).unwrap();
        assert_eq!(postcard::decode::<ProxyResponse>(&buf[..n]).unwrap(), msg);
    }
}
