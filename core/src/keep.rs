//! In what form a machine keeps the messages it holds for later, chosen by
//! its user: whole, or packed into a few bytes.
//!
//! A [`ProxyResponse`] has room for a 253-byte host and long credentials, a
//! [`ProxyFeedback`] for 512 bytes of error details, a [`ProxyRequest`] for
//! 32 symbols: 776, 1,400 and 3,512 bytes on x86_64, whatever they hold. A
//! [`Resolver`](crate::resolver::Resolver) that keeps 32 routes, 32 feedback
//! events and 4 requests whole needs about 120 KB, more than a
//! microcontroller gateway can spare. Kept as their postcard encoding, the
//! same messages take what they hold: a typical route or feedback event is
//! under 100 bytes.
//!
//! - [`Whole`] (the default): the messages as they are. A cache hit lends
//!   the cached value itself; nothing is encoded or decoded.
//! - [`Compact<RESPONSE, FEEDBACK, REQUEST>`](Compact): each message in a
//!   [`Packed`] slot of that many bytes. A cache hit decodes the route
//!   (postcard, a few thousand instructions), a feedback batch in postcard
//!   is the slots' bytes one after another. A message that does not fit its
//!   slot is handled where it is kept: a route is used but not cached, a
//!   feedback event loses the end of its `error_details` (then, if it still
//!   does not fit, is dropped and counted), a request to the service loses
//!   its informational `metadata` (then, if it still does not fit, the
//!   resolve falls back as [`Overloaded`](crate::resolver::FallbackReason)).
//!
//! ```
//! use proxy_delegate_core::keep::{Keep, Packed};
//! use proxy_delegate_core::model::ProxyResponse;
//!
//! let body = br#"{"proxy_url":"socks5://user:secret@proxy-a:1080","strategy":"round_robin","ttl_seconds":300}"#;
//! let response: ProxyResponse = proxy_delegate_core::codec::json::decode(body)?;
//! let packed = Packed::<ProxyResponse, 96>::keep(response.clone()).expect("fits in 96 bytes");
//! assert!(packed.len() < 96);
//! // Its Debug output shows a length, never the credentials it holds.
//! assert!(!format!("{packed:?}").contains("secret"));
//! let mut scratch = None;
//! assert_eq!(packed.lend(&mut scratch), Some(&response));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;
use core::marker::PhantomData;

use crate::cache::CacheValue;
use crate::codec::{self, EncodeError, Format, Message};
use crate::model::{ProxyFeedback, ProxyId, ProxyRequest, ProxyResponse, ProxyUrl};
use crate::resolver::{Route, Source};

/// A value with a compact byte form: a message's postcard encoding, or a
/// route's (its URL with credentials, its proxy id, its source).
pub trait Pack: Sized {
    /// Writes the byte form into `out`; its length.
    fn pack(&self, out: &mut [u8]) -> Result<usize, EncodeError>;
    /// The value back from its byte form (`None`: not a valid one).
    fn unpack(bytes: &[u8]) -> Option<Self>;
}

impl<M: Message> Pack for M {
    fn pack(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        codec::postcard::encode(self, out)
    }

    fn unpack(bytes: &[u8]) -> Option<Self> {
        codec::postcard::decode(bytes).ok()
    }
}

impl Pack for Route {
    fn pack(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let url = self.proxy_url.as_ref().map(ProxyUrl::exposed_text);
        let id = self.proxy_id.as_ref().map(ProxyId::as_str);
        let capacity = out.len();
        ::postcard::to_slice(&(url.as_deref(), id, self.source as u8), out)
            .map(|written| written.len())
            .map_err(|_| EncodeError::BufferTooSmall {
                format: Format::Postcard,
                capacity,
            })
    }

    fn unpack(bytes: &[u8]) -> Option<Self> {
        let (url, id, source): (Option<&str>, Option<&str>, u8) =
            ::postcard::from_bytes(bytes).ok()?;
        Some(Route {
            proxy_url: match url {
                Some(u) => Some(u.parse().ok()?),
                None => None,
            },
            proxy_id: match id {
                Some(i) => Some(ProxyId::new(i).ok()?),
                None => None,
            },
            source: *Source::ALL.get(usize::from(source))?,
        })
    }
}

/// How a value of `T` is kept: as itself, or [`Packed`].
pub trait Keep<T>: Sized {
    /// Keeps `value`; gives it back when it does not fit.
    fn keep(value: T) -> Result<Self, T>;

    /// The value, lent: kept whole, the value itself; packed, decoded into
    /// `scratch`. `None` only if packed bytes fail to decode, which would be
    /// a bug (they were encoded from a valid message).
    fn lend<'a>(&'a self, scratch: &'a mut Option<T>) -> Option<&'a T>;

    /// The value, given up (`None` as for [`lend`](Self::lend)).
    fn into_value(self) -> Option<T>;

    /// Writes the value's byte form ([`Pack`]) into `out`; its length.
    fn encode_postcard(&self, out: &mut [u8]) -> Result<usize, EncodeError>;
}

macro_rules! keep_whole {
    ($($t:ty),*) => {$(
        impl Keep<$t> for $t {
            #[inline(always)]
            fn keep(value: $t) -> Result<Self, $t> {
                Ok(value)
            }

            #[inline(always)]
            fn lend<'a>(&'a self, _scratch: &'a mut Option<$t>) -> Option<&'a $t> {
                Some(self)
            }

            #[inline(always)]
            fn into_value(self) -> Option<$t> {
                Some(self)
            }

            fn encode_postcard(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
                self.pack(out)
            }
        }
    )*};
}

keep_whole!(ProxyResponse, ProxyFeedback, ProxyRequest, Route);

/// A value kept in its byte form ([`Pack`]: a message's postcard encoding)
/// in at most `B` bytes (`B` at most 65,535).
///
/// Its `Debug` output is its length only: a packed route holds the proxy's
/// credentials.
pub struct Packed<T, const B: usize> {
    len: u16,
    bytes: [u8; B],
    message: PhantomData<fn() -> T>,
}

impl<T, const B: usize> Packed<T, B> {
    const FITS_U16: () = assert!(B <= u16::MAX as usize, "Packed holds at most 65,535 bytes");

    /// The length of the encoding.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Never true: every message encodes to at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The postcard encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len()]
    }
}

impl<T: Pack, const B: usize> Keep<T> for Packed<T, B> {
    fn keep(value: T) -> Result<Self, T> {
        let () = Self::FITS_U16;
        let mut bytes = [0u8; B];
        match value.pack(&mut bytes) {
            // `len <= B <= u16::MAX`, checked at compile time above.
            Ok(len) => Ok(Self {
                len: len as u16,
                bytes,
                message: PhantomData,
            }),
            Err(_) => Err(value),
        }
    }

    fn lend<'a>(&'a self, scratch: &'a mut Option<T>) -> Option<&'a T> {
        *scratch = self.unpack();
        scratch.as_ref()
    }

    fn into_value(self) -> Option<T> {
        self.unpack()
    }

    fn encode_postcard(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let bytes = self.as_bytes();
        let Some(place) = out.get_mut(..bytes.len()) else {
            return Err(EncodeError::BufferTooSmall {
                format: Format::Postcard,
                capacity: out.len(),
            });
        };
        place.copy_from_slice(bytes);
        Ok(bytes.len())
    }
}

impl<T: Pack, const B: usize> Packed<T, B> {
    fn unpack(&self) -> Option<T> {
        T::unpack(self.as_bytes())
    }
}

impl<T, const B: usize> fmt::Debug for Packed<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packed").field("len", &self.len).finish()
    }
}

/// A packed route, as the cache sees it: decoded when it asks.
impl<const B: usize> CacheValue for Packed<ProxyResponse, B> {
    fn ttl(&self) -> embassy_time::Duration {
        self.unpack()
            .map_or(embassy_time::Duration::from_secs(0), |r| r.ttl())
    }

    fn names_proxy(&self, proxy_id: Option<&ProxyId>, proxy_url: Option<&ProxyUrl>) -> bool {
        self.unpack()
            .is_some_and(|r| r.names_proxy(proxy_id, proxy_url))
    }
}

/// In what form a [`Resolver`](crate::resolver::Resolver) keeps its cached
/// routes, its queued feedback and its requests in flight (see the [module
/// docs](self)).
pub trait Profile {
    /// A cached route.
    type Response: Keep<ProxyResponse> + CacheValue + fmt::Debug;
    /// A queued feedback event.
    type Feedback: Keep<ProxyFeedback> + fmt::Debug;
    /// A request to the service, kept for its retries and hedges.
    type Request: Keep<ProxyRequest> + fmt::Debug;
    /// The route of an answer not yet taken.
    type Route: Keep<Route> + fmt::Debug;
}

/// Messages kept whole (the default): no encoding on any path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole;

impl Profile for Whole {
    type Response = ProxyResponse;
    type Feedback = ProxyFeedback;
    type Request = ProxyRequest;
    type Route = Route;
}

/// Messages packed: a cached route (and the route of an answer not yet
/// taken) in `RESPONSE` bytes, a feedback event in `FEEDBACK` bytes, a
/// request in `REQUEST` bytes (postcard). For a gateway:
/// `Compact<128, 160, 96>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compact<const RESPONSE: usize, const FEEDBACK: usize, const REQUEST: usize>;

impl<const RESPONSE: usize, const FEEDBACK: usize, const REQUEST: usize> Profile
    for Compact<RESPONSE, FEEDBACK, REQUEST>
{
    type Response = Packed<ProxyResponse, RESPONSE>;
    type Feedback = Packed<ProxyFeedback, FEEDBACK>;
    type Request = Packed<ProxyRequest, REQUEST>;
    type Route = Packed<Route, RESPONSE>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::samples::RESPONSE;

    fn response() -> ProxyResponse {
        codec::json::decode(RESPONSE.as_bytes()).expect("the sample decodes")
    }

    #[test]
    fn a_packed_message_comes_back_equal() {
        let r = response();
        let packed = Packed::<ProxyResponse, 256>::keep(r.clone()).expect("fits");
        let mut scratch = None;
        assert_eq!(packed.lend(&mut scratch), Some(&r));
        let mut whole = [0u8; 256];
        let n = codec::postcard::encode(&r, &mut whole).expect("encodes");
        let mut copy = [0u8; 256];
        assert_eq!(packed.encode_postcard(&mut copy), Ok(n));
        assert_eq!(copy[..n], whole[..n]);
        assert_eq!(packed.into_value(), Some(r));
    }

    #[test]
    fn a_message_too_large_is_given_back() {
        let r = response();
        let n = codec::postcard::encode(&r, &mut [0u8; 256]).expect("encodes");
        assert!(Packed::<ProxyResponse, 256>::keep(r.clone()).is_ok());
        let back = match Packed::<ProxyResponse, 8>::keep(r.clone()) {
            Err(back) => back,
            Ok(p) => panic!("{n} bytes kept in 8: {p:?}"),
        };
        assert_eq!(back, r);
    }

    #[test]
    fn encoding_into_a_short_buffer_is_an_error() {
        let packed = Packed::<ProxyResponse, 256>::keep(response()).expect("fits");
        assert!(matches!(
            packed.encode_postcard(&mut [0u8; 4]),
            Err(EncodeError::BufferTooSmall { capacity: 4, .. })
        ));
    }
}
