//! The data model of the proxy-delegation protocol.
//!
//! Every type validates on construction and on decode. Text is held in bounded
//! `heapless` strings whose bounds are the `MAX_*` constants documented here;
//! lists are bounded `heapless` vectors.

mod messages;
mod service_url;
pub(crate) mod text;
mod timestamp;
mod url;

pub use messages::{ProxyFeedback, ProxyRequest, ProxyResponse, RequestMetadata, ResponseMetadata};
pub use service_url::{
    MAX_SERVICE_HOST_LEN, MAX_SERVICE_PATH_LEN, MAX_SERVICE_URL_LEN, ServiceScheme, ServiceUrl,
};
pub use timestamp::{MAX_TIMESTAMP_LEN, Timestamp};
pub use url::{
    ExposedUrl, MAX_HOST_LEN, MAX_URL_LEN, MAX_USERINFO_LEN, Password, ProxyUrl, Scheme,
};

use crate::{Reason, ValidationError};
use text::bounded_text;

/// Longest exchange id, in bytes.
pub const MAX_EXCHANGE_ID_LEN: usize = 64;
/// Longest client id, in bytes.
pub const MAX_CLIENT_ID_LEN: usize = 128;
/// Longest region name, in bytes.
pub const MAX_REGION_LEN: usize = 64;
/// Longest proxy id, in bytes.
pub const MAX_PROXY_ID_LEN: usize = 64;
/// Longest strategy name, in bytes.
pub const MAX_STRATEGY_LEN: usize = 32;
/// Longest feed type or symbol, in bytes.
pub const MAX_TOPIC_LEN: usize = 32;
/// Most feed types in a request's metadata.
pub const MAX_FEED_TYPES: usize = 16;
/// Most symbols in a request's metadata.
pub const MAX_SYMBOLS: usize = 64;
/// Longest `error_details` kept, in bytes; longer text is cut on a character boundary.
pub const MAX_ERROR_DETAILS_LEN: usize = 512;

bounded_text! {
    /// An exchange id such as `binance`: ASCII letters, digits, `_`, `-`, `.`,
    /// at most [`MAX_EXCHANGE_ID_LEN`] bytes, case-folded to lower case.
    ExchangeId, max = MAX_EXCHANGE_ID_LEN, field = "exchange_id", charset = Identifier, fold_case = true
}
bounded_text! {
    /// The id a client gives itself, e.g. `cryptofeed-instance-123`: printable
    /// text of at most [`MAX_CLIENT_ID_LEN`] bytes.
    ClientId, max = MAX_CLIENT_ID_LEN, field = "client_id", charset = Printable, fold_case = false
}
bounded_text! {
    /// A region such as `us-east-1`: ASCII letters, digits, `_`, `-`, `.`, at
    /// most [`MAX_REGION_LEN`] bytes.
    Region, max = MAX_REGION_LEN, field = "region", charset = Identifier, fold_case = false
}
bounded_text! {
    /// The service's id for a proxy, e.g. `proxy-123`: printable text of at most
    /// [`MAX_PROXY_ID_LEN`] bytes.
    ProxyId, max = MAX_PROXY_ID_LEN, field = "proxy_id", charset = Printable, fold_case = false
}
bounded_text! {
    /// The name of the selection strategy the service used, e.g.
    /// `least_connections`: at most [`MAX_STRATEGY_LEN`] bytes. Open-ended so the
    /// service can add strategies.
    Strategy, max = MAX_STRATEGY_LEN, field = "strategy", charset = Identifier, fold_case = false
}
bounded_text! {
    /// A feed type in a request's metadata, e.g. `trades`: at most
    /// [`MAX_TOPIC_LEN`] bytes.
    FeedType, max = MAX_TOPIC_LEN, field = "metadata.feed_types", charset = Printable, fold_case = false
}
bounded_text! {
    /// A symbol in a request's metadata, e.g. `BTC-USD`: at most
    /// [`MAX_TOPIC_LEN`] bytes.
    Symbol, max = MAX_TOPIC_LEN, field = "metadata.symbols", charset = Printable, fold_case = false
}

/// Free-text details of a failure. Text longer than [`MAX_ERROR_DETAILS_LEN`]
/// bytes is cut on a character boundary, never rejected.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ErrorDetails(heapless::String<MAX_ERROR_DETAILS_LEN>);

impl ErrorDetails {
    /// Keeps up to [`MAX_ERROR_DETAILS_LEN`] bytes of `s`.
    pub fn new(s: &str) -> Self {
        Self(text::truncate_into(s).0)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Debug for ErrorDetails {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl core::fmt::Display for ErrorDetails {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares a closed set of names with their wire spellings and aliases.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident, field = $field:literal, expected = $expected:literal,
        { $( $(#[$vmeta:meta])* $variant:ident = $text:literal $(| $alias:literal)* ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Parses the wire spelling or an alias, ignoring ASCII case.
            pub fn parse(s: &str) -> Result<Self, ValidationError> {
                $(
                    if s.eq_ignore_ascii_case($text) $(|| s.eq_ignore_ascii_case($alias))* {
                        return Ok($name::$variant);
                    }
                )+
                Err(ValidationError::new(
                    $field,
                    Reason::UnknownValue { got: crate::error::excerpt(s), expected: $expected },
                ))
            }
        }

        crate::labels! {
            /// The wire spelling.
            $name { $($variant => $text),+ }
        }

        impl core::str::FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let w = text::WireText::<ENUM_TEXT_LEN>::deserialize(d)?;
                Self::parse(w.truncated()).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Room for the longest enum spelling on the wire (longer input is unknown anyway).
pub(crate) const ENUM_TEXT_LEN: usize = 24;

wire_enum! {
    /// The kind of exchange connection a proxy is wanted for.
    ConnectionType, field = "connection_type", expected = "http, websocket (or rest, ws)",
    {
        /// REST and other plain HTTP(S) requests (alias `rest`).
        Http = "http" | "rest",
        /// WebSocket streams (alias `ws`).
        Websocket = "websocket" | "ws",
    }
}

wire_enum! {
    /// What the client does when the service cannot give it a proxy.
    FallbackPolicy, field = "fallback_policy", expected = "direct_connection, embedded_fallback, fail",
    {
        /// Connect to the exchange without a proxy.
        DirectConnection = "direct_connection",
        /// Use the embedded (cryptofeed) configuration, then connect directly.
        EmbeddedFallback = "embedded_fallback",
        /// Do not connect: the caller gets an error.
        Fail = "fail",
    }
}

// Not derived: the macro declares the enum, and only this one has a default.
#[allow(clippy::derivable_impls)]
impl Default for FallbackPolicy {
    fn default() -> Self {
        FallbackPolicy::EmbeddedFallback
    }
}

wire_enum! {
    /// What happened on a connection, as reported in feedback.
    FeedbackEvent, field = "event", expected = "connect_start, success, failure, timeout, disconnect",
    {
        /// The client started connecting through the proxy.
        ConnectStart = "connect_start",
        /// The connection was established.
        Success = "success",
        /// The connection failed.
        Failure = "failure",
        /// The connection timed out.
        Timeout = "timeout",
        /// An established connection ended.
        Disconnect = "disconnect",
    }
}

wire_enum! {
    /// Why a connection failed. Only some categories are the proxy's fault.
    ErrorCategory, field = "error_category",
    expected = "proxy_connect, proxy_auth, tunnel_refused, target_tls, target_http_5xx, geo_blocked, rate_limited, timeout, other",
    {
        /// The proxy could not be reached.
        ProxyConnect = "proxy_connect",
        /// The proxy refused the credentials.
        ProxyAuth = "proxy_auth",
        /// The proxy refused to open a tunnel to the target.
        TunnelRefused = "tunnel_refused",
        /// TLS with the target failed.
        TargetTls = "target_tls",
        /// The target answered with a 5xx status.
        TargetHttp5xx = "target_http_5xx",
        /// The target refused the proxy's location (HTTP 451 and the like).
        GeoBlocked = "geo_blocked",
        /// The target rate-limited the proxy's address.
        RateLimited = "rate_limited",
        /// A timeout.
        Timeout = "timeout",
        /// Anything else.
        Other = "other",
    }
}

/// How long a response may be cached, in seconds: 1 to 86400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TtlSeconds(u32);

impl TtlSeconds {
    /// Shortest TTL.
    pub const MIN: u32 = 1;
    /// Longest TTL (one day).
    pub const MAX: u32 = 86_400;

    /// Validates `secs` against 1–86400.
    pub fn new(secs: u64) -> Result<Self, ValidationError> {
        if (u64::from(Self::MIN)..=u64::from(Self::MAX)).contains(&secs) {
            Ok(Self(secs as u32))
        } else {
            Err(ValidationError::new(
                "ttl_seconds",
                Reason::OutOfRange {
                    expected: "1 to 86400 seconds",
                },
            ))
        }
    }

    /// The TTL in seconds.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// A proxy's health as the service sees it: 0.0 (dead) to 1.0 (perfect).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct HealthScore(f32);

impl HealthScore {
    /// Validates `score` against 0.0–1.0 (NaN is rejected).
    pub fn new(score: f32) -> Result<Self, ValidationError> {
        if (0.0..=1.0).contains(&score) {
            Ok(Self(score))
        } else {
            Err(ValidationError::new(
                "metadata.health_score",
                Reason::OutOfRange {
                    expected: "0.0 to 1.0",
                },
            ))
        }
    }

    /// The score.
    pub const fn get(self) -> f32 {
        self.0
    }
}
