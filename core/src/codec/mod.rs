//! The two wire formats: JSON (what the REST API speaks) and postcard
//! (`application/x-postcard`, the compact form for constrained links).
//!
//! Both encode into a caller's buffer and decode from a byte slice without
//! allocating. `json` is there with the crate's `json` feature (on by
//! default); without it the core speaks postcard only. Decoding validates
//! every field; an invalid value comes back as [`DecodeError::Invalid`]
//! naming the field. Input larger than
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
//!
//! # Where each concept lives
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the [`Message`] trait the codecs carry, [`MAX_INPUT_LEN`] |
//! | `error.rs` | [`Format`], [`DecodeError`], [`EncodeError`] |
//! | `json/mod.rs` | [`json`]: decoding (the fast path and the serde-json-core paths) and encoding |
//! | `json/syntax.rs` | what well-formed JSON is: the nesting pre-scan, the number grammar, the RFC 8259 syntax checker |
//! | `json/surrogates.rs` | UTF-16 surrogate-pair escapes (`\ud83d\ude00`), joined before serde-json-core reads them |
//! | `json/reader/mod.rs` | the fast JSON reader: its scanner, exact floats and token readers |
//! | `json/reader/deserializer.rs` | the fast reader as a serde `Deserializer` |
//! | `postcard.rs` | [`postcard`]: the compact binary form |

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

mod error;
#[cfg(feature = "json")]
pub mod json;
pub mod postcard;

pub use error::{DecodeError, EncodeError, Format};

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

/// The published example bodies, shared by the codec's unit tests.
#[cfg(test)]
pub(crate) mod samples {
    pub(crate) const REQUEST: &str = r#"{"exchange_id":"binance","connection_type":"websocket","region":"us-east-1","client_id":"cryptofeed-instance-123","metadata":{"feed_types":["trades","book"],"symbols":["BTC-USD","ETH-USD"]}}"#;
    pub(crate) const RESPONSE: &str = r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","strategy":"least_connections","ttl_seconds":300,"fallback_policy":"direct_connection","metadata":{"proxy_id":"proxy-123","region":"us-east-1","health_score":0.98}}"#;
}
