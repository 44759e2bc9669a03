//! The codecs' errors: [`DecodeError`] and [`EncodeError`], each naming the
//! [`Format`] it came from.

use core::fmt;

#[cfg(doc)]
use super::MAX_INPUT_LEN;
#[cfg(all(doc, feature = "json"))]
use super::json;
use crate::ValidationError;

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
    #[cfg(feature = "json")]
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
    /// This build cannot read the format: JSON without the crate's `json`
    /// feature.
    Unsupported {
        /// The format asked for.
        format: Format,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { format, len, max } => write!(
                f,
                "{format} message too large: {len} bytes (at most {max} accepted)"
            ),
            #[cfg(feature = "json")]
            DecodeError::Json(e) => write!(f, "malformed JSON: {e}"),
            DecodeError::Postcard(e) => write!(f, "malformed postcard message: {e}"),
            DecodeError::Invalid(e) => fmt::Display::fmt(e, f),
            DecodeError::TooDeep { max } => write!(
                f,
                "JSON nested more than {max} arrays or objects deep; the messages need 3 levels, \
                 keep unknown fields within the rest"
            ),
            DecodeError::Unsupported { format } => unsupported(f, *format),
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
    /// This build cannot write the format: JSON without the crate's `json`
    /// feature.
    Unsupported {
        /// The format asked for.
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
            EncodeError::Unsupported { format } => unsupported(f, *format),
        }
    }
}

/// The message of the `Unsupported` variants.
fn unsupported(f: &mut fmt::Formatter<'_>, format: Format) -> fmt::Result {
    write!(
        f,
        "{format} is not supported by this build (proxy-delegate-core without its `json` feature speaks postcard only)"
    )
}

impl core::error::Error for EncodeError {}
