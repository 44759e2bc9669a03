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
    use super::{DecodeError, EncodeError, Format, Message, check_len};

    /// Room for one string that contains escapes (`\"`, `\u00e9`…), unescaped.
    /// Strings without escapes are read in place and have no such limit.
    pub const UNESCAPE_SCRATCH_LEN: usize = 1024;

    /// Decodes and validates one message. Unknown fields are ignored.
    pub fn decode<M: Message>(input: &[u8]) -> Result<M, DecodeError> {
        check_len(Format::Json, input)?;
        let mut scratch = [0u8; UNESCAPE_SCRATCH_LEN];
        let (wire, _) = serde_json_core::from_slice_escaped::<M::Wire>(input, &mut scratch)
            .map_err(DecodeError::Json)?;
        Ok(M::from_wire(wire)?)
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
