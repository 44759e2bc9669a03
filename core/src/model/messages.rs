//! The three messages of the protocol and their wire forms.
//!
//! Each message decodes in two steps: serde reads the bytes into a private
//! *wire* struct whose fields are raw, bounded text and numbers, then
//! `from_wire` validates every field and names the first one that is wrong.
//! Both wire formats (JSON and postcard) share the wire structs, so they share
//! the validation too.
//!
//! There are two forms of each wire struct. The codecs read the *borrowed*
//! form (`…Ref<'a>`), whose text fields point into the input: nothing is
//! copied until validation builds the model's bounded strings. A JSON string
//! with escapes cannot be borrowed; such input, and any other deserializer
//! (serde_json through the model's `Deserialize`), goes through the *owned*
//! form (`…Wire`, bounded copies that remember the input's length), which is
//! viewed as the borrowed form for validation.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::text::{Str, WireList, WireText};
use super::{
    ClientId, ConnectionType, ENUM_TEXT_LEN, ErrorCategory, ErrorDetails, ExchangeId,
    FallbackPolicy, FeedType, FeedbackEvent, HealthScore, MAX_CLIENT_ID_LEN, MAX_ERROR_DETAILS_LEN,
    MAX_EXCHANGE_ID_LEN, MAX_FEED_TYPES, MAX_PROXY_ID_LEN, MAX_REGION_LEN, MAX_STRATEGY_LEN,
    MAX_SYMBOLS, MAX_TIMESTAMP_LEN, MAX_TOPIC_LEN, MAX_URL_LEN, ProxyId, ProxyUrl, Region,
    Strategy, Symbol, Timestamp, TtlSeconds,
};
use crate::{Reason, ValidationError};

type EnumText = WireText<ENUM_TEXT_LEN>;

/// A borrowed view of an optional owned wire text.
fn view<const N: usize>(w: &Option<WireText<N>>) -> Option<Str<'_>> {
    w.as_ref().map(WireText::as_str_ref)
}

/// A borrowed view of an owned wire list.
fn view_list<'a, const L: usize, const N: usize>(
    w: &'a Option<WireList<WireText<L>, N>>,
) -> Option<WireList<Str<'a>, N>> {
    w.as_ref().map(|list| {
        let mut out = WireList::default();
        for item in &list.items {
            let _ = out.items.push(item.as_str_ref());
        }
        out.len = list.len;
        out
    })
}

fn required<T>(v: Option<T>, field: &'static str) -> Result<T, ValidationError> {
    v.ok_or(ValidationError::new(field, Reason::Missing))
}

/// A whole number on the wire. In postcard it is the field's integer type
/// `T` (a varint). In JSON, and in any other human-readable format, it is a
/// JSON number: an integer may also be spelled with a zero fraction or an
/// exponent (`45.0`, `4.5e1`), as JSON Schema's `integer` allows, so it is
/// read as a number and `from_wire` checks that it is whole and in range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Whole<T> {
    /// Read from a format that carries `T` itself.
    Exact(T),
    /// Read from a JSON number; not yet checked.
    Number(f64),
}

/// The integer types a [`Whole`] carries.
pub(crate) trait WholeInt: Copy + Serialize + for<'de> Deserialize<'de> {
    /// `x` when it is whole and fits.
    fn from_whole(x: f64) -> Option<Self>;
}

impl WholeInt for u32 {
    fn from_whole(x: f64) -> Option<Self> {
        // In range, the cast only drops a fraction: whole when it round-trips.
        let v = x as u32;
        ((0.0..=f64::from(u32::MAX)).contains(&x) && f64::from(v) == x).then_some(v)
    }
}

impl WholeInt for i64 {
    fn from_whole(x: f64) -> Option<Self> {
        // 2^63 is exactly representable; every whole f64 below it fits.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        let v = x as i64;
        ((-LIMIT..LIMIT).contains(&x) && v as f64 == x).then_some(v)
    }
}

impl<T: WholeInt> Whole<T> {
    /// The value, or an out-of-range error naming `field` and `expected`.
    fn get(self, field: &'static str, expected: &'static str) -> Result<T, ValidationError> {
        match self {
            Whole::Exact(v) => Ok(v),
            Whole::Number(x) => {
                T::from_whole(x).ok_or(ValidationError::new(field, Reason::OutOfRange { expected }))
            }
        }
    }
}

impl<T: WholeInt> Serialize for Whole<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Whole::Exact(v) => v.serialize(s),
            Whole::Number(x) => x.serialize(s),
        }
    }
}

impl<'de, T: WholeInt> Deserialize<'de> for Whole<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Number;
        impl serde::de::Visitor<'_> for Number {
            type Value = f64;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E>(self, v: f64) -> Result<f64, E> {
                Ok(v)
            }
            fn visit_u64<E>(self, v: u64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_i64<E>(self, v: i64) -> Result<f64, E> {
                Ok(v as f64)
            }
        }
        if d.is_human_readable() {
            d.deserialize_f64(Number).map(Whole::Number)
        } else {
            T::deserialize(d).map(Whole::Exact)
        }
    }
}

/// Parses an enum's wire text. (An unknown value's excerpt is the same
/// whether or not the text was cut to [`ENUM_TEXT_LEN`] bytes on the way in:
/// both keep the longest prefix of whole characters within 24 bytes.)
fn enum_field<T>(
    w: Str<'_>,
    field: &'static str,
    parse: fn(&str) -> Result<T, ValidationError>,
) -> Result<T, ValidationError> {
    parse(w.text()).map_err(|e| e.at(field))
}

/// Reads a borrowed wire struct into a place the caller holds, so that a
/// large wire struct is not moved through serde's return values.
pub(crate) trait InPlace<'de>: Deserialize<'de> {
    /// Reads into `place`, which holds the default value.
    fn read_in_place<D: Deserializer<'de>>(d: D, place: &mut Self) -> Result<(), D::Error> {
        *place = Self::deserialize(d)?;
        Ok(())
    }
}

/// Implements serde for a message through its wire structs, so that std users
/// (serde_json, axum) get the same validation and field-named errors.
macro_rules! serde_via_wire {
    ($msg:ty, $borrowed:ident, $owned:ty) => {
        impl<'de> Deserialize<'de> for $msg {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let w = <$owned>::deserialize(d)?;
                Self::from_wire::<ValidationError>(&w.view()).map_err(serde::de::Error::custom)
            }
        }
        impl crate::codec::Message for $msg {
            type Wire<'de> = $borrowed<'de>;
            type OwnedWire = $owned;
            #[inline]
            fn from_wire(w: &Self::Wire<'_>) -> Result<Self, crate::codec::DecodeError> {
                <$msg>::from_wire(w)
            }
            fn read_wire<'de, D: Deserializer<'de>>(
                d: D,
                place: &mut Self::Wire<'de>,
            ) -> Result<(), D::Error> {
                <$borrowed<'de> as InPlace<'de>>::read_in_place(d, place)
            }
            fn from_owned_wire(w: &Self::OwnedWire) -> Result<Self, crate::codec::DecodeError> {
                <$msg>::from_wire(&w.view())
            }
        }
    };
}

// ---------------------------------------------------------------- request

/// What a client asks the service: which proxy to use for this exchange
/// connection.
///
/// ```json
/// {"exchange_id":"binance","connection_type":"websocket","region":"us-east-1",
///  "client_id":"cryptofeed-instance-123",
///  "metadata":{"feed_types":["trades","book"],"symbols":["BTC-USD","ETH-USD"]}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyRequest {
    /// The exchange, case-folded to lower case (required).
    pub exchange_id: ExchangeId,
    /// HTTP or WebSocket (required).
    pub connection_type: ConnectionType,
    /// The region the client would like its proxy in.
    pub region: Option<Region>,
    /// Who is asking (required).
    pub client_id: ClientId,
    /// What the connection will carry.
    pub metadata: RequestMetadata,
}

/// What a requested connection will carry; informational for the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RequestMetadata {
    /// Feed types, e.g. `trades`, `book` (at most [`MAX_FEED_TYPES`]).
    pub feed_types: heapless::Vec<FeedType, MAX_FEED_TYPES>,
    /// Symbols, e.g. `BTC-USD` (at most [`MAX_SYMBOLS`]).
    pub symbols: heapless::Vec<Symbol, MAX_SYMBOLS>,
}

#[doc(hidden)]
#[derive(Debug, Default, Deserialize)]
pub struct RequestWire {
    #[serde(default)]
    exchange_id: Option<WireText<MAX_EXCHANGE_ID_LEN>>,
    #[serde(default)]
    connection_type: Option<EnumText>,
    #[serde(default)]
    region: Option<WireText<MAX_REGION_LEN>>,
    #[serde(default)]
    client_id: Option<WireText<MAX_CLIENT_ID_LEN>>,
    #[serde(default)]
    metadata: Option<RequestMetadataWire>,
}

#[doc(hidden)]
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RequestMetadataWire {
    // Optional so that `null` reads as absent (an empty list), like every other
    // optional field.
    #[serde(default)]
    feed_types: Option<WireList<WireText<MAX_TOPIC_LEN>, MAX_FEED_TYPES>>,
    #[serde(default)]
    symbols: Option<WireList<WireText<MAX_TOPIC_LEN>, MAX_SYMBOLS>>,
}

impl RequestWire {
    fn view(&self) -> RequestRef<'_> {
        RequestRef {
            exchange_id: view(&self.exchange_id),
            connection_type: view(&self.connection_type),
            region: view(&self.region),
            client_id: view(&self.client_id),
            metadata: self.metadata.as_ref().map(|m| RequestMetadataRef {
                feed_types: view_list(&m.feed_types),
                symbols: view_list(&m.symbols),
            }),
        }
    }
}

/// The borrowed wire form of a request (see the module docs). Its
/// `Deserialize` is written out (see `request_de`) so that the lists are
/// filled in place rather than moved through serde's layers.
#[doc(hidden)]
#[derive(Debug, Default, Serialize)]
pub struct RequestRef<'a> {
    #[serde(default, borrow)]
    exchange_id: Option<Str<'a>>,
    #[serde(default, borrow)]
    connection_type: Option<Str<'a>>,
    #[serde(default, borrow)]
    region: Option<Str<'a>>,
    #[serde(default, borrow)]
    client_id: Option<Str<'a>>,
    #[serde(default, borrow)]
    metadata: Option<RequestMetadataRef<'a>>,
}

#[doc(hidden)]
#[derive(Debug, Default, Serialize)]
pub(crate) struct RequestMetadataRef<'a> {
    #[serde(default, borrow)]
    feed_types: Option<WireList<Str<'a>, MAX_FEED_TYPES>>,
    #[serde(default, borrow)]
    symbols: Option<WireList<Str<'a>, MAX_SYMBOLS>>,
}

/// A hand-written `Deserialize` for [`RequestRef`] with the derive's
/// behaviour: every field optional (`null` is absent), unknown fields
/// skipped, a repeated field an error, and the struct read as a sequence of
/// its fields by non-self-describing formats (postcard).
mod request_de {
    use core::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    use super::{
        InPlace, MAX_FEED_TYPES, MAX_SYMBOLS, RequestMetadataRef, RequestRef, Str, WireList,
    };

    const REQUEST_FIELDS: &[&str] = &[
        "exchange_id",
        "connection_type",
        "region",
        "client_id",
        "metadata",
    ];
    const METADATA_FIELDS: &[&str] = &["feed_types", "symbols"];

    /// A field name, as its index in a field list (`None`: unknown).
    struct Key<const M: usize>(Option<usize>);

    impl<'de, const M: usize> de::Deserialize<'de> for Key<M> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<const M: usize>;
            impl<const M: usize> Visitor<'_> for V<M> {
                type Value = Key<M>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a field name")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<M>, E> {
                    let fields = if M == 0 {
                        REQUEST_FIELDS
                    } else {
                        METADATA_FIELDS
                    };
                    Ok(Key(fields.iter().position(|f| *f == v)))
                }
            }
            d.deserialize_identifier(V::<M>)
        }
    }

    /// Marks field `i` as read; a second time is the derive's error.
    fn first_time<E: de::Error>(seen: &mut u8, i: usize, fields: &[&'static str]) -> Result<(), E> {
        if *seen & (1 << i) != 0 {
            return Err(E::duplicate_field(fields[i]));
        }
        *seen |= 1 << i;
        Ok(())
    }

    impl<'de: 'a, 'a> de::Deserialize<'de> for RequestRef<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let mut out = RequestRef::default();
            Self::read_in_place(d, &mut out)?;
            Ok(out)
        }
    }

    impl<'de: 'a, 'a> InPlace<'de> for RequestRef<'a> {
        fn read_in_place<D: Deserializer<'de>>(d: D, place: &mut Self) -> Result<(), D::Error> {
            d.deserialize_struct("RequestRef", REQUEST_FIELDS, RequestVisitor(place))
        }
    }

    struct RequestVisitor<'t, 'a>(&'t mut RequestRef<'a>);

    impl<'de: 'a, 'a> Visitor<'de> for RequestVisitor<'_, 'a> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("struct RequestRef")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let out = self.0;
            // Missing trailing fields keep their defaults, as with the derive.
            if let Some(v) = seq.next_element()? {
                out.exchange_id = v;
            } else {
                return Ok(());
            }
            if let Some(v) = seq.next_element()? {
                out.connection_type = v;
            } else {
                return Ok(());
            }
            if let Some(v) = seq.next_element()? {
                out.region = v;
            } else {
                return Ok(());
            }
            if let Some(v) = seq.next_element()? {
                out.client_id = v;
            } else {
                return Ok(());
            }
            seq.next_element_seed(MetadataSeed(&mut out.metadata))?;
            Ok(())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let out = self.0;
            let mut seen = 0u8;
            while let Some(Key::<0>(key)) = map.next_key()? {
                let Some(i) = key else {
                    map.next_value::<de::IgnoredAny>()?;
                    continue;
                };
                first_time(&mut seen, i, REQUEST_FIELDS)?;
                match i {
                    0 => out.exchange_id = map.next_value()?,
                    1 => out.connection_type = map.next_value()?,
                    2 => out.region = map.next_value()?,
                    3 => out.client_id = map.next_value()?,
                    _ => map.next_value_seed(MetadataSeed(&mut out.metadata))?,
                }
            }
            Ok(())
        }
    }

    /// Reads an optional metadata object into place.
    struct MetadataSeed<'t, 'a>(&'t mut Option<RequestMetadataRef<'a>>);

    impl<'de: 'a, 'a> DeserializeSeed<'de> for MetadataSeed<'_, 'a> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_option(self)
        }
    }

    impl<'de: 'a, 'a> Visitor<'de> for MetadataSeed<'_, 'a> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("option")
        }

        fn visit_none<E: de::Error>(self) -> Result<(), E> {
            *self.0 = None;
            Ok(())
        }

        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            self.visit_none()
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            let m = self.0.insert(RequestMetadataRef::default());
            d.deserialize_struct("RequestMetadataRef", METADATA_FIELDS, MetadataVisitor(m))
        }
    }

    struct MetadataVisitor<'t, 'a>(&'t mut RequestMetadataRef<'a>);

    impl<'de: 'a, 'a> Visitor<'de> for MetadataVisitor<'_, 'a> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("struct RequestMetadataRef")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            if seq
                .next_element_seed(ListSeed(&mut self.0.feed_types))?
                .is_some()
            {
                seq.next_element_seed(ListSeed(&mut self.0.symbols))?;
            }
            Ok(())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = 0u8;
            while let Some(Key::<1>(key)) = map.next_key()? {
                let Some(i) = key else {
                    map.next_value::<de::IgnoredAny>()?;
                    continue;
                };
                first_time(&mut seen, i, METADATA_FIELDS)?;
                if i == 0 {
                    map.next_value_seed(ListSeed::<MAX_FEED_TYPES>(&mut self.0.feed_types))?;
                } else {
                    map.next_value_seed(ListSeed::<MAX_SYMBOLS>(&mut self.0.symbols))?;
                }
            }
            Ok(())
        }
    }

    /// Reads an optional list of strings into place.
    struct ListSeed<'t, 'a, const N: usize>(&'t mut Option<WireList<Str<'a>, N>>);

    impl<'de: 'a, 'a, const N: usize> DeserializeSeed<'de> for ListSeed<'_, 'a, N> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_option(self)
        }
    }

    impl<'de: 'a, 'a, const N: usize> Visitor<'de> for ListSeed<'_, 'a, N> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("option")
        }

        fn visit_none<E: de::Error>(self) -> Result<(), E> {
            *self.0 = None;
            Ok(())
        }

        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            self.visit_none()
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            let list = self.0.insert(WireList::default());
            d.deserialize_seq(ListVisitor(list))
        }
    }

    struct ListVisitor<'t, 'a, const N: usize>(&'t mut WireList<Str<'a>, N>);

    impl<'de: 'a, 'a, const N: usize> Visitor<'de> for ListVisitor<'_, 'a, N> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(item) = seq.next_element::<Str<'a>>()? {
                self.0.len += 1;
                let _ = self.0.items.push(item);
            }
            Ok(())
        }
    }
}

impl ProxyRequest {
    /// A request with no region and no metadata.
    pub fn new(
        exchange_id: ExchangeId,
        connection_type: ConnectionType,
        client_id: ClientId,
    ) -> Self {
        Self {
            exchange_id,
            connection_type,
            region: None,
            client_id,
            metadata: RequestMetadata::default(),
        }
    }

    /// Validates the wire form. Generic over the error so that the codecs
    /// get their `DecodeError` built in place, without moving the message.
    #[inline]
    fn from_wire<E: From<ValidationError>>(w: &RequestRef<'_>) -> Result<Self, E> {
        let exchange_id = required(w.exchange_id, "exchange_id")?;
        let connection_type = required(w.connection_type, "connection_type")?;
        let client_id = required(w.client_id, "client_id")?;
        let mut metadata = RequestMetadata::default();
        if let Some(m) = &w.metadata {
            if let Some(feed_types) = &m.feed_types {
                for t in feed_types.checked("metadata.feed_types")? {
                    let _ = metadata
                        .feed_types
                        .push(FeedType::from_str_wire(*t, "metadata.feed_types")?);
                }
            }
            if let Some(symbols) = &m.symbols {
                for s in symbols.checked("metadata.symbols")? {
                    let _ = metadata
                        .symbols
                        .push(Symbol::from_str_wire(*s, "metadata.symbols")?);
                }
            }
        }
        Ok(Self {
            exchange_id: ExchangeId::from_str_wire(exchange_id, "exchange_id")?,
            connection_type: enum_field(connection_type, "connection_type", ConnectionType::parse)?,
            region: w
                .region
                .map(|r| Region::from_str_wire(r, "region"))
                .transpose()?,
            client_id: ClientId::from_str_wire(client_id, "client_id")?,
            metadata,
        })
    }
}

impl Serialize for ProxyRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut feed_types = WireList::default();
        for t in &self.metadata.feed_types {
            let _ = feed_types.items.push(t.as_wire());
        }
        feed_types.len = feed_types.items.len();
        let mut symbols = WireList::default();
        for t in &self.metadata.symbols {
            let _ = symbols.items.push(t.as_wire());
        }
        symbols.len = symbols.items.len();
        RequestRef {
            exchange_id: Some(self.exchange_id.as_wire()),
            connection_type: Some(Str::new(self.connection_type.as_str())),
            region: self.region.as_ref().map(Region::as_wire),
            client_id: Some(self.client_id.as_wire()),
            metadata: Some(RequestMetadataRef {
                feed_types: Some(feed_types),
                symbols: Some(symbols),
            }),
        }
        .serialize(s)
    }
}

serde_via_wire!(ProxyRequest, RequestRef, RequestWire);

// ---------------------------------------------------------------- response

/// The service's answer: which proxy to use, for how long, and what to do when
/// it cannot answer next time.
///
/// ```json
/// {"proxy_url":"socks5://user:pass@proxy-server:1080","strategy":"least_connections",
///  "ttl_seconds":300,"fallback_policy":"direct_connection",
///  "metadata":{"proxy_id":"proxy-123","region":"us-east-1","health_score":0.98}}
/// ```
///
/// Unknown fields are ignored, so the service can grow.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyResponse {
    /// The proxy to use; `None` (absent or `null` on the wire) means "connect
    /// directly". Encoded with its credentials: the client needs them.
    pub proxy_url: Option<ProxyUrl>,
    /// The strategy the service used (required).
    pub strategy: Strategy,
    /// How long the answer may be cached (required, 1–86400 s).
    pub ttl_seconds: TtlSeconds,
    /// What to do when the service cannot answer (default `embedded_fallback`).
    pub fallback_policy: FallbackPolicy,
    /// About the chosen proxy.
    pub metadata: ResponseMetadata,
}

/// About the proxy a response names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseMetadata {
    /// The service's id of the proxy.
    pub proxy_id: Option<ProxyId>,
    /// The proxy's region.
    pub region: Option<Region>,
    /// The proxy's health score, 0.0–1.0.
    pub health_score: Option<HealthScore>,
}

#[doc(hidden)]
#[derive(Debug, Default, Deserialize)]
pub struct ResponseWire {
    #[serde(default)]
    proxy_url: Option<WireText<MAX_URL_LEN>>,
    #[serde(default)]
    strategy: Option<WireText<MAX_STRATEGY_LEN>>,
    #[serde(default)]
    ttl_seconds: Option<Whole<i64>>,
    #[serde(default)]
    fallback_policy: Option<EnumText>,
    #[serde(default)]
    metadata: Option<ResponseMetadataWire>,
}

#[doc(hidden)]
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResponseMetadataWire {
    #[serde(default)]
    proxy_id: Option<WireText<MAX_PROXY_ID_LEN>>,
    #[serde(default)]
    region: Option<WireText<MAX_REGION_LEN>>,
    #[serde(default)]
    health_score: Option<f32>,
}

impl ResponseWire {
    fn view(&self) -> ResponseRef<'_> {
        ResponseRef {
            proxy_url: view(&self.proxy_url),
            strategy: view(&self.strategy),
            ttl_seconds: self.ttl_seconds,
            fallback_policy: view(&self.fallback_policy),
            metadata: self.metadata.as_ref().map(|m| ResponseMetadataRef {
                proxy_id: view(&m.proxy_id),
                region: view(&m.region),
                health_score: m.health_score,
            }),
        }
    }
}

/// The borrowed wire form of a response (see the module docs).
#[doc(hidden)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ResponseRef<'a> {
    #[serde(default, borrow)]
    proxy_url: Option<Str<'a>>,
    #[serde(default, borrow)]
    strategy: Option<Str<'a>>,
    #[serde(default)]
    ttl_seconds: Option<Whole<i64>>,
    #[serde(default, borrow)]
    fallback_policy: Option<Str<'a>>,
    #[serde(default, borrow)]
    metadata: Option<ResponseMetadataRef<'a>>,
}

#[doc(hidden)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ResponseMetadataRef<'a> {
    #[serde(default, borrow)]
    proxy_id: Option<Str<'a>>,
    #[serde(default, borrow)]
    region: Option<Str<'a>>,
    #[serde(default)]
    health_score: Option<f32>,
}

impl<'de: 'a, 'a> InPlace<'de> for ResponseRef<'a> {}

impl ProxyResponse {
    /// Validates the wire form. Generic over the error so that the codecs
    /// get their `DecodeError` built in place, without moving the message.
    #[inline]
    fn from_wire<E: From<ValidationError>>(w: &ResponseRef<'_>) -> Result<Self, E> {
        let strategy = required(w.strategy, "strategy")?;
        let ttl =
            required(w.ttl_seconds, "ttl_seconds")?.get("ttl_seconds", "1 to 86400 seconds")?;
        let none = ResponseMetadataRef::default();
        let m = w.metadata.as_ref().unwrap_or(&none);
        Ok(Self {
            proxy_url: w
                .proxy_url
                .map(|u| ProxyUrl::from_str_wire(u, "proxy_url"))
                .transpose()?,
            strategy: Strategy::from_str_wire(strategy, "strategy")?,
            ttl_seconds: TtlSeconds::new(u64::try_from(ttl).unwrap_or(0))?,
            fallback_policy: w
                .fallback_policy
                .map(|p| enum_field(p, "fallback_policy", FallbackPolicy::parse))
                .transpose()?
                .unwrap_or_default(),
            metadata: ResponseMetadata {
                proxy_id: m
                    .proxy_id
                    .map(|p| ProxyId::from_str_wire(p, "metadata.proxy_id"))
                    .transpose()?,
                region: m
                    .region
                    .map(|r| Region::from_str_wire(r, "metadata.region"))
                    .transpose()?,
                health_score: m.health_score.map(HealthScore::new).transpose()?,
            },
        })
    }
}

impl Serialize for ProxyResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The one place a response's credentials are written: the client
        // needs them to connect.
        let url = self.proxy_url.as_ref().map(ProxyUrl::exposed_text);
        ResponseRef {
            proxy_url: url.as_deref().map(Str::new),
            strategy: Some(self.strategy.as_wire()),
            ttl_seconds: Some(Whole::Exact(i64::from(self.ttl_seconds.get()))),
            fallback_policy: Some(Str::new(self.fallback_policy.as_str())),
            metadata: Some(ResponseMetadataRef {
                proxy_id: self.metadata.proxy_id.as_ref().map(ProxyId::as_wire),
                region: self.metadata.region.as_ref().map(Region::as_wire),
                health_score: self.metadata.health_score.map(HealthScore::get),
            }),
        }
        .serialize(s)
    }
}

serde_via_wire!(ProxyResponse, ResponseRef, ResponseWire);

// ---------------------------------------------------------------- feedback

/// How a connection through a proxy went, reported by the client.
///
/// ```json
/// {"proxy_url":"socks5://proxy-server:1080","exchange_id":"binance",
///  "connection_type":"websocket","success":true,"latency_ms":45,
///  "error_details":null,"timestamp":"2024-09-23T10:30:00Z",
///  "client_id":"cryptofeed-instance-123"}
/// ```
///
/// `proxy_url` never carries credentials: they are stripped when a feedback is
/// decoded and never written when it is encoded. When `event` is absent on the
/// wire it is derived from `success` (`success` or `failure`); `success` is
/// kept for the published API.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyFeedback {
    /// The service's id of the proxy, if the client knows it.
    pub proxy_id: Option<ProxyId>,
    /// The proxy, without credentials; `None` for a direct connection.
    pub proxy_url: Option<ProxyUrl>,
    /// The exchange (required).
    pub exchange_id: ExchangeId,
    /// HTTP or WebSocket (required).
    pub connection_type: ConnectionType,
    /// What happened.
    pub event: FeedbackEvent,
    /// Whether it went well (the published API's flag).
    pub success: bool,
    /// How long connecting took, in milliseconds.
    pub latency_ms: Option<u32>,
    /// Why it failed, when it did.
    pub error_category: Option<ErrorCategory>,
    /// Free-text details, at most [`MAX_ERROR_DETAILS_LEN`] bytes.
    pub error_details: Option<ErrorDetails>,
    /// When it happened (RFC 3339 UTC on the wire).
    pub timestamp: Timestamp,
    /// Who reports (required).
    pub client_id: ClientId,
}

#[doc(hidden)]
#[derive(Debug, Default, Deserialize)]
pub struct FeedbackWire {
    #[serde(default)]
    proxy_id: Option<WireText<MAX_PROXY_ID_LEN>>,
    #[serde(default)]
    proxy_url: Option<WireText<MAX_URL_LEN>>,
    #[serde(default)]
    exchange_id: Option<WireText<MAX_EXCHANGE_ID_LEN>>,
    #[serde(default)]
    connection_type: Option<EnumText>,
    #[serde(default)]
    event: Option<EnumText>,
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    latency_ms: Option<Whole<u32>>,
    #[serde(default)]
    error_category: Option<EnumText>,
    #[serde(default)]
    error_details: Option<WireText<MAX_ERROR_DETAILS_LEN>>,
    #[serde(default)]
    timestamp: Option<WireText<MAX_TIMESTAMP_LEN>>,
    #[serde(default)]
    client_id: Option<WireText<MAX_CLIENT_ID_LEN>>,
}

impl FeedbackWire {
    fn view(&self) -> FeedbackRef<'_> {
        FeedbackRef {
            proxy_id: view(&self.proxy_id),
            proxy_url: view(&self.proxy_url),
            exchange_id: view(&self.exchange_id),
            connection_type: view(&self.connection_type),
            event: view(&self.event),
            success: self.success,
            latency_ms: self.latency_ms,
            error_category: view(&self.error_category),
            error_details: view(&self.error_details),
            timestamp: view(&self.timestamp),
            client_id: view(&self.client_id),
        }
    }
}

/// The borrowed wire form of a feedback (see the module docs).
#[doc(hidden)]
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct FeedbackRef<'a> {
    #[serde(default, borrow)]
    proxy_id: Option<Str<'a>>,
    #[serde(default, borrow)]
    proxy_url: Option<Str<'a>>,
    #[serde(default, borrow)]
    exchange_id: Option<Str<'a>>,
    #[serde(default, borrow)]
    connection_type: Option<Str<'a>>,
    #[serde(default, borrow)]
    event: Option<Str<'a>>,
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    latency_ms: Option<Whole<u32>>,
    #[serde(default, borrow)]
    error_category: Option<Str<'a>>,
    #[serde(default, borrow)]
    error_details: Option<Str<'a>>,
    #[serde(default, borrow)]
    timestamp: Option<Str<'a>>,
    #[serde(default, borrow)]
    client_id: Option<Str<'a>>,
}

impl<'de: 'a, 'a> InPlace<'de> for FeedbackRef<'a> {}

impl ProxyFeedback {
    /// Validates the wire form. Generic over the error so that the codecs
    /// get their `DecodeError` built in place, without moving the message.
    #[inline]
    fn from_wire<E: From<ValidationError>>(w: &FeedbackRef<'_>) -> Result<Self, E> {
        let exchange_id = required(w.exchange_id, "exchange_id")?;
        let connection_type = required(w.connection_type, "connection_type")?;
        let timestamp = required(w.timestamp, "timestamp")?;
        let client_id = required(w.client_id, "client_id")?;
        let event = w
            .event
            .map(|e| enum_field(e, "event", FeedbackEvent::parse))
            .transpose()?;
        let (event, success) = match (event, w.success) {
            (Some(e), Some(s)) => (e, s),
            (Some(e), None) => (
                e,
                !matches!(e, FeedbackEvent::Failure | FeedbackEvent::Timeout),
            ),
            (None, Some(true)) => (FeedbackEvent::Success, true),
            (None, Some(false)) => (FeedbackEvent::Failure, false),
            (None, None) => return Err(ValidationError::new("success", Reason::Missing).into()),
        };
        Ok(Self {
            proxy_id: w
                .proxy_id
                .map(|p| ProxyId::from_str_wire(p, "proxy_id"))
                .transpose()?,
            proxy_url: w
                .proxy_url
                .map(|u| ProxyUrl::from_str_wire(u, "proxy_url").map(|u| u.without_credentials()))
                .transpose()?,
            exchange_id: ExchangeId::from_str_wire(exchange_id, "exchange_id")?,
            connection_type: enum_field(connection_type, "connection_type", ConnectionType::parse)?,
            event,
            success,
            latency_ms: w
                .latency_ms
                .map(|l| {
                    l.get(
                        "latency_ms",
                        "a whole number of milliseconds from 0 to 4294967295",
                    )
                })
                .transpose()?,
            error_category: w
                .error_category
                .map(|c| enum_field(c, "error_category", ErrorCategory::parse))
                .transpose()?,
            // Cut to the bound as the owned wire form does: the text an owned
            // decode kept is the first MAX_ERROR_DETAILS_LEN bytes either way.
            error_details: w.error_details.map(|d| ErrorDetails::new(d.text())),
            timestamp: Timestamp::parse(
                timestamp.checked("timestamp", MAX_TIMESTAMP_LEN)?,
                "timestamp",
            )?,
            client_id: ClientId::from_str_wire(client_id, "client_id")?,
        })
    }
}

impl Serialize for ProxyFeedback {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut ts = heapless::String::<MAX_TIMESTAMP_LEN>::new();
        let _ = core::fmt::Write::write_fmt(&mut ts, format_args!("{}", self.timestamp));
        // Credentials are never sent back to the service.
        let url = self
            .proxy_url
            .as_ref()
            .map(|u| u.without_credentials().exposed_text());
        FeedbackRef {
            proxy_id: self.proxy_id.as_ref().map(ProxyId::as_wire),
            proxy_url: url.as_deref().map(Str::new),
            exchange_id: Some(self.exchange_id.as_wire()),
            connection_type: Some(Str::new(self.connection_type.as_str())),
            event: Some(Str::new(self.event.as_str())),
            success: Some(self.success),
            latency_ms: self.latency_ms.map(Whole::Exact),
            error_category: self.error_category.map(|c| Str::new(c.as_str())),
            error_details: self.error_details.as_ref().map(|d| Str::new(d.as_str())),
            timestamp: Some(Str::new(&ts)),
            client_id: Some(self.client_id.as_wire()),
        }
        .serialize(s)
    }
}

serde_via_wire!(ProxyFeedback, FeedbackRef, FeedbackWire);
