//! Bounded text: the validated string newtypes of the model and the wire form
//! that lets the decoder report an oversized string under its field name.

use core::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

use crate::{Reason, ValidationError};

/// Which characters a bounded text accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    /// ASCII letters, digits, `_`, `-` and `.`: exchange ids, regions, strategies.
    Identifier,
    /// Any character except control characters: client ids, symbols, free text.
    Printable,
}

impl Charset {
    fn accepts(self, c: char) -> bool {
        match self {
            Charset::Identifier => c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'),
            Charset::Printable => !c.is_control(),
        }
    }

    /// Whether every character of `s` is accepted. ASCII text, the usual
    /// case, is checked byte by byte without decoding characters.
    fn accepts_all(self, s: &str) -> bool {
        match self {
            // Identifiers are ASCII: a byte check is the whole check.
            Charset::Identifier => s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')),
            Charset::Printable => {
                s.bytes().all(|b| (0x20..0x7f).contains(&b)) || s.chars().all(|c| self.accepts(c))
            }
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Charset::Identifier => "ASCII letters, digits, '_', '-' or '.'",
            Charset::Printable => "printable characters, no control characters",
        }
    }
}

/// Checks `s` against the rules shared by every bounded text and copies it,
/// lower-casing ASCII when `fold_case` is set.
pub(crate) fn validate<const N: usize>(
    s: &str,
    field: &'static str,
    charset: Charset,
    fold_case: bool,
) -> Result<heapless::String<N>, ValidationError> {
    if s.is_empty() {
        return Err(ValidationError::new(field, Reason::Empty));
    }
    if s.len() > N {
        return Err(ValidationError::new(
            field,
            Reason::TooLong {
                len: s.len(),
                max: N,
            },
        ));
    }
    if !charset.accepts_all(s) {
        return Err(ValidationError::new(
            field,
            Reason::InvalidCharacter {
                expected: charset.expected(),
            },
        ));
    }
    let mut out = heapless::String::new();
    // Length was checked above, so the push cannot fail.
    let _ = out.push_str(s);
    if fold_case {
        out.make_ascii_lowercase();
    }
    Ok(out)
}

/// Copies `s` into a string of capacity `N`, cutting it on a character boundary
/// when it is longer. Returns the copy and whether anything was cut.
pub(crate) fn truncate_into<const N: usize>(s: &str) -> (heapless::String<N>, bool) {
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = heapless::String::new();
    let _ = out.push_str(&s[..end]);
    (out, end < s.len())
}

/// The wire form of a bounded string: up to `N` bytes of the input (cut on a
/// character boundary) and the input's full length, so that validation can say
/// "`exchange_id`: too long" instead of a bare decoder error.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct WireText<const N: usize> {
    text: heapless::String<N>,
    len: usize,
}

impl<const N: usize> WireText<N> {
    pub(crate) fn from_str(s: &str) -> Self {
        let (text, _) = truncate_into(s);
        Self { text, len: s.len() }
    }

    /// The text, or a `TooLong` error naming `field` when the input did not fit.
    pub(crate) fn checked(&self, field: &'static str) -> Result<&str, ValidationError> {
        if self.len > N {
            return Err(ValidationError::new(
                field,
                Reason::TooLong {
                    len: self.len,
                    max: N,
                },
            ));
        }
        Ok(&self.text)
    }

    /// The text, cut to `N` bytes if the input was longer.
    pub(crate) fn truncated(&self) -> &str {
        &self.text
    }

    /// A borrowed view that keeps the input's full length.
    #[allow(dead_code)]
    pub(crate) fn as_str_ref(&self) -> Str<'_> {
        Str {
            text: &self.text,
            len: self.len,
        }
    }
}

impl<const N: usize> fmt::Debug for WireText<N> {
    // Wire text may hold a URL with a password: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WireText({} bytes)", self.len)
    }
}

impl<const N: usize> Serialize for WireText<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de, const N: usize> Deserialize<'de> for WireText<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<const N: usize> Visitor<'_> for V<N> {
            type Value = WireText<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(WireText::from_str(v))
            }
        }
        deserializer.deserialize_str(V::<N>)
    }
}

/// Wire text borrowed from the input: what the decoders read on their fast
/// path, without copying. `len` is the input's full length in bytes; it is
/// larger than `text.len()` only when the text was cut on the way in (a
/// [`WireText`] viewed through [`WireText::as_str_ref`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Str<'a> {
    text: &'a str,
    len: usize,
}

impl<'a> Str<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            len: text.len(),
        }
    }

    /// The text, or a `TooLong` error naming `field` when the input is
    /// longer than `max` bytes.
    #[inline]
    pub(crate) fn checked(
        self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a str, ValidationError> {
        if self.len > max {
            return Err(ValidationError::new(
                field,
                Reason::TooLong { len: self.len, max },
            ));
        }
        Ok(self.text)
    }

    /// The text as read (possibly cut).
    #[inline]
    pub(crate) fn text(self) -> &'a str {
        self.text
    }
}

impl fmt::Debug for Str<'_> {
    // Wire text may hold a URL with a password: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Str({} bytes)", self.len)
    }
}

impl Serialize for Str<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.text)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    /// Accepts only text borrowed from the input. A deserializer that hands
    /// out transient text (a JSON string with escapes) gets an error, and the
    /// codec decodes such input again through the owned wire form.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string borrowed from the input")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str::new(v))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// The wire form of a bounded list: up to `N` items and the input's full
/// count, so that validation can report `TooMany` under the field's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireList<T, const N: usize> {
    pub(crate) items: heapless::Vec<T, N>,
    pub(crate) len: usize,
}

impl<T, const N: usize> Default for WireList<T, N> {
    fn default() -> Self {
        Self {
            items: heapless::Vec::new(),
            len: 0,
        }
    }
}

impl<T, const N: usize> WireList<T, N> {
    pub(crate) fn checked(&self, field: &'static str) -> Result<&[T], ValidationError> {
        if self.len > N {
            return Err(ValidationError::new(
                field,
                Reason::TooMany {
                    len: self.len,
                    max: N,
                },
            ));
        }
        Ok(&self.items)
    }
}

impl<T: Serialize, const N: usize> Serialize for WireList<T, N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.items.iter())
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for WireList<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(core::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
            type Value = WireList<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = WireList::default();
                while let Some(item) = seq.next_element::<T>()? {
                    out.len += 1;
                    let _ = out.items.push(item);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_seq(V::<T, N>(core::marker::PhantomData))
    }
}

/// Declares a validated, bounded string newtype.
macro_rules! bounded_text {
    (
        $(#[$meta:meta])*
        $name:ident, max = $max:expr, field = $field:literal, charset = $charset:ident, fold_case = $fold:expr
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(heapless::String<{ $max }>);

        impl $name {
            /// Longest accepted value, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates `s`: not empty, at most [`Self::MAX_LEN`] bytes, allowed
            /// characters only.
            pub fn new(s: &str) -> Result<Self, $crate::ValidationError> {
                $crate::model::text::validate::<{ $max }>(
                    s,
                    $field,
                    $crate::model::text::Charset::$charset,
                    $fold,
                )
                .map(Self)
            }

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            #[allow(dead_code)]
            pub(crate) fn from_wire(
                w: &$crate::model::text::WireText<{ $max }>,
                field: &'static str,
            ) -> Result<Self, $crate::ValidationError> {
                Self::new(w.checked(field)?).map_err(|e| e.at(field))
            }

            /// Validates borrowed wire text, reporting errors under `field`.
            #[allow(dead_code)]
            #[inline]
            pub(crate) fn from_str_wire(
                w: $crate::model::text::Str<'_>,
                field: &'static str,
            ) -> Result<Self, $crate::ValidationError> {
                Self::new(w.checked(field, $max)?).map_err(|e| e.at(field))
            }

            #[allow(dead_code)]
            pub(crate) fn to_wire(&self) -> $crate::model::text::WireText<{ $max }> {
                $crate::model::text::WireText::from_str(&self.0)
            }

            /// Borrowed wire text for encoding.
            #[allow(dead_code)]
            pub(crate) fn as_wire(&self) -> $crate::model::text::Str<'_> {
                $crate::model::text::Str::new(&self.0)
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Debug::fmt(self.as_str(), f)
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl core::str::FromStr for $name {
            type Err = $crate::ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let w = $crate::model::text::WireText::<{ $max }>::deserialize(d)?;
                Self::from_wire(&w, $field).map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use bounded_text;
