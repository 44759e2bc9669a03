//! The one validation error every model type returns.

use core::fmt;

/// A value failed validation. The message names the field and the reason, for
/// example `proxy_url: unsupported scheme "ftp" (expected one of http, https,
/// socks4, socks4a, socks5, socks5h)`.
///
/// The error never contains a password or any other secret: only the field
/// path, the reason and, where it helps, a short non-secret excerpt (a scheme,
/// an enum value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Dotted path of the field, e.g. `metadata.health_score`.
    pub field: &'static str,
    /// Why the value was rejected.
    pub reason: Reason,
}

impl ValidationError {
    pub(crate) const fn new(field: &'static str, reason: Reason) -> Self {
        Self { field, reason }
    }

    /// The same error, reported under another field path (used when a value
    /// validated on its own is embedded in a larger message).
    pub(crate) const fn at(mut self, field: &'static str) -> Self {
        self.field = field;
        self
    }
}

/// Re-roots a nested configuration's error under its parent's field: each
/// listed child path `c` becomes `"parent.c"`, built with `concat!` at compile
/// time (`field` is `&'static str`). A path not listed becomes the parent's
/// own name, so an error is never reported under a wrong, unprefixed path.
///
/// ```text
/// Backoff::new(config.retry).map_err(nest!("retry": "base" | "max_delay"))?;
/// ```
macro_rules! nest {
    ($parent:literal: $($child:literal)|+) => {
        |e: $crate::ValidationError| {
            let field = match e.field {
                $($child => concat!($parent, ".", $child),)+
                _ => $parent,
            };
            e.at(field)
        }
    };
}
pub(crate) use nest;

/// Short excerpt of the offending input, truncated on a character boundary.
pub type Excerpt = heapless::String<24>;

pub(crate) fn excerpt(s: &str) -> Excerpt {
    quotable(s)
        .and_then(|q| Excerpt::try_from(q).ok())
        .unwrap_or_default()
}

/// Longest text [`quotable`] lets through, in bytes.
pub const MAX_QUOTED_LEN: usize = 20;

/// `s` when it is safe to quote in an error message: at most
/// [`MAX_QUOTED_LEN`] bytes of ASCII letters, digits, `_`, `-`, `.` and `+`,
/// which is what a mistyped enum value, number, boolean or URL scheme looks
/// like. Anything else (a URL, a token, free text) may be or hold a secret
/// written in the wrong place, and is not quoted: `None`.
///
/// ```
/// use proxy_delegate_core::quotable;
///
/// assert_eq!(quotable("round-robin"), Some("round-robin"));
/// assert_eq!(quotable("socks5://alice:s3cret@proxy:1080"), None);
/// assert_eq!(quotable("sk_live_51Habcdef0123456789"), None);
/// ```
pub fn quotable(s: &str) -> Option<&str> {
    let plain = !s.is_empty()
        && s.len() <= MAX_QUOTED_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'));
    plain.then_some(s)
}

/// Why a value was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// A required field was absent or null.
    Missing,
    /// The field was present but empty.
    Empty,
    /// The text is longer than the documented bound.
    TooLong {
        /// Length of the input in bytes.
        len: usize,
        /// The bound in bytes.
        max: usize,
    },
    /// The list holds more items than the documented bound.
    TooMany {
        /// Number of items in the input.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A number outside its allowed range.
    OutOfRange {
        /// The allowed range, in words (`1 to 86400`).
        expected: &'static str,
    },
    /// A required part of a composite value (a URL's host or port) is absent.
    MissingPart {
        /// The part, e.g. `port`.
        part: &'static str,
    },
    /// A value that is not one of the known names.
    UnknownValue {
        /// The value given, when it is [`quotable`]; else empty.
        got: Excerpt,
        /// The accepted values, comma separated.
        expected: &'static str,
    },
    /// A URL scheme that is not supported.
    UnsupportedScheme {
        /// The scheme given, when it is [`quotable`]; else empty.
        got: Excerpt,
    },
    /// A character that is not allowed in this field.
    InvalidCharacter {
        /// What is allowed.
        expected: &'static str,
    },
    /// The text does not have the expected shape.
    Malformed {
        /// The expected shape, in words.
        expected: &'static str,
    },
    /// A list names the same thing twice.
    Duplicate {
        /// Position (from 0) of the item that repeats an earlier one.
        index: usize,
    },
    /// The value is fine alone, but the other settings need something it
    /// does not give (a token for `bearer_token`, an endpoint when enabled).
    Requires {
        /// What is needed, in words.
        what: &'static str,
    },
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Missing => f.write_str("missing (this field is required)"),
            Reason::Empty => f.write_str("must not be empty"),
            Reason::TooLong { len, max } => {
                write!(f, "too long: {len} bytes (at most {max} allowed)")
            }
            Reason::TooMany { len, max } => {
                write!(f, "too many items: {len} (at most {max} allowed)")
            }
            Reason::MissingPart { part } => write!(f, "missing {part}"),
            Reason::OutOfRange { expected } => write!(f, "out of range (expected {expected})"),
            // An empty `got` is a value not fit to quote (see `quotable`).
            Reason::UnknownValue { got, expected } if got.is_empty() => {
                write!(f, "unknown value (expected one of {expected})")
            }
            Reason::UnknownValue { got, expected } => {
                write!(f, "unknown value {got:?} (expected one of {expected})")
            }
            Reason::UnsupportedScheme { got } => {
                f.write_str("unsupported scheme ")?;
                if !got.is_empty() {
                    write!(f, "{got:?} ")?;
                }
                f.write_str("(expected one of http, https, socks4, socks4a, socks5, socks5h)")
            }
            Reason::InvalidCharacter { expected } => {
                write!(f, "invalid character (expected {expected})")
            }
            Reason::Malformed { expected } => write!(f, "malformed (expected {expected})"),
            Reason::Duplicate { index } => {
                write!(f, "item {index} repeats an earlier one (list each once)")
            }
            Reason::Requires { what } => write!(f, "requires {what}"),
        }
    }
}

impl core::error::Error for ValidationError {}
