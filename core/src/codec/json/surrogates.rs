//! UTF-16 surrogate-pair escapes (`\ud83d\ude00`, as Python's `json.dumps`
//! writes characters outside the Basic Multilingual Plane), which
//! serde-json-core refuses: the input is copied with each pair joined into
//! the character's UTF-8 bytes, and decoded again.

use serde_json_core::de::Error as JsonError;

use super::{UNESCAPE_SCRATCH_LEN, decode_with};
use crate::codec::{DecodeError, MAX_INPUT_LEN, Message};

/// serde-json-core reads `\uXXXX` escapes one at a time and rejects the
/// two halves of a surrogate pair. Decode a copy of the input in which
/// every pair inside a string is replaced by the character's UTF-8 bytes
/// (4 bytes for 12, so the copy always fits). A lone surrogate stays an
/// error, as in any JSON parser that produces Unicode text.
#[cold]
#[inline(never)]
pub(super) fn decode_surrogates<M: Message>(input: &[u8]) -> Result<M, DecodeError> {
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
pub(super) fn has_surrogate_escape(input: &[u8]) -> bool {
    input.windows(4).any(|w| {
        w[0] == b'\\'
            && w[1] == b'u'
            && matches!(w[2], b'd' | b'D')
            && matches!(w[3], b'8' | b'9' | b'a' | b'b' | b'A' | b'B')
    })
}

pub(super) fn hex4(digits: &[u8]) -> Option<u32> {
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
