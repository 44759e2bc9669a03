//! What well-formed JSON is: the nesting pre-scan every decode runs
//! ([`check_depth`]), the number grammar the fast reader shares
//! ([`number`]), and the full RFC 8259 check of the cold paths
//! ([`check_syntax`]).

use serde_json_core::de::Error as JsonError;

use super::MAX_DEPTH;
use super::surrogates::hex4;
use crate::codec::DecodeError;

/// Refuses input that nests deeper than [`MAX_DEPTH`] before the
/// (recursive) decoder sees it.
///
/// The scan follows serde-json-core's reading of the input: strings end
/// at an unescaped quote, and a value that starts with anything but a
/// quote, bracket or brace runs up to the next `,`, `]` or `}` (that is how
/// serde-json-core skips unknown scalars). Wherever serde-json-core reads
/// the input without error, the scan's depth is the decoder's depth.
pub(super) fn check_depth(input: &[u8]) -> Result<(), DecodeError> {
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
