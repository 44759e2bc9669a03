//! A minimal JSON reader for the decoder's fast path.
//!
//! It reads the messages' wire structs from JSON without escapes, borrowing
//! every string, checking UTF-8 once for the whole input rather than once per
//! string. It is deliberately strict: it accepts only well-formed JSON
//! (RFC 8259), and of that a subset of what serde-json-core accepts: no
//! escapes, no control characters in strings, numbers only as the JSON
//! grammar has them (`syntax::number`; serde-json-core also reads `01`, `1.`
//! or `+1.`), no trailing commas, well-formed values where a field is
//! skipped. It reads numbers to the values serde-json-core reads. On anything
//! else it gives up with [`Bail`], and the caller decodes the input
//! with serde-json-core and checks it with `syntax::check_syntax`, which report
//! the error. It never reports an error of its own, so errors are unchanged.
//!
//! `deserializer.rs` holds the serde `Deserializer` over [`Reader`]; this
//! file the scanner, exact floats and the token readers it is built from.

mod deserializer;

use core::fmt;
use core::str::FromStr;

use serde::de;

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
    fn exact(n: &super::syntax::Number) -> Option<Self>;
}

macro_rules! exact_float {
    ($t:ty, $mantissa_bits:expr, [$($pow:expr),* $(,)?]) => {
        impl Float for $t {
            #[inline]
            fn exact(n: &super::syntax::Number) -> Option<Self> {
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
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
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

    /// A JSON number (RFC 8259, as `syntax::number` reads it), read to
    /// the same value as serde-json-core reads it with `FromStr`.
    /// serde-json-core reads the longest run of `0-9 + - . e E` (`01`,
    /// `1.`, `-.5`, `1e`…); the runs that are not JSON are left to it,
    /// and refused there.
    #[inline]
    fn float<F: Float>(&mut self) -> Result<F> {
        self.ws();
        let start = self.i;
        let n = super::syntax::number(&self.text.as_bytes()[start..]).ok_or(Bail)?;
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
                let n = super::syntax::number(&self.text.as_bytes()[self.i..]).ok_or(Bail)?;
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

#[cfg(test)]
mod tests {
    use std::string::String;
    use std::vec;

    use crate::codec::json::{self, syntax};
    use crate::codec::samples::{REQUEST, RESPONSE};
    use crate::model::{ProxyFeedback, ProxyRequest, ProxyResponse};

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
    fn agree<M: crate::codec::Message + PartialEq + core::fmt::Debug>(input: &[u8]) -> bool {
        let Ok(wire) = super::from_str::<M::Wire<'_>>(input) else {
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
                        assert_eq!(super::string_stop(&text), want, "{len} {stop} {c} {fill}");
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
            use super::Float;
            let n = syntax::number(text.as_bytes()).expect("a JSON number");
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
            let whole = syntax::number(run.as_bytes()).is_some_and(|n| n.len == run.len());
            let reference = serde_json::from_str::<serde_json::Number>(&run)
                .map_or_else(|e| e.to_string().starts_with("number out of range"), |_| true);
            proptest::prop_assert_eq!(whole, reference, "{}", run);
        }
    }
}
