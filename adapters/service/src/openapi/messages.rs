//! The schemas of the wire messages. The messages live in the `no_std`
//! core, which does not depend on utoipa, so the types here mirror the JSON
//! the core reads and writes, field for field, with the core's bounds; the
//! tests below keep the two from drifting apart.

use std::borrow::Cow;

use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::text::printable;
use crate::body::POSTCARD;

fn client_id_schema() -> Schema {
    printable(
        proxy_delegate_core::model::MAX_CLIENT_ID_LEN,
        false,
        "Who is asking or reporting, e.g. `cryptofeed-instance-123`: no control characters, \
         1 to 128 bytes of UTF-8.",
    )
}

fn proxy_id_schema() -> Schema {
    printable(
        proxy_delegate_core::model::MAX_PROXY_ID_LEN,
        true,
        "The service's id of the proxy (`metadata.proxy_id` of an answer), e.g. `proxy-123`: \
         no control characters, 1 to 64 bytes of UTF-8.",
    )
}

/// The body of `POST /api/v1/proxy/request`: which proxy for this exchange
/// connection. Unknown fields are ignored; `null` reads as absent.
#[derive(Debug, ToSchema)]
#[schema(
    as = ProxyRequest,
    examples(json!({
        "exchange_id": "binance",
        "connection_type": "websocket",
        "region": "us-east-1",
        "client_id": "cryptofeed-instance-123",
        "metadata": {"feed_types": ["trades", "book"], "symbols": ["BTC-USD", "ETH-USD"]}
    }))
)]
pub struct ProxyRequestDoc {
    /// The exchange, e.g. `binance`: ASCII letters, digits, `_`, `-`, `.`,
    /// at most 64 bytes; case-folded to lower case.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.-]+$")]
    pub exchange_id: String,
    /// HTTP or WebSocket.
    pub connection_type: ConnectionTypeDoc,
    /// The region the client would like its proxy in, e.g. `us-east-1`:
    /// ASCII letters, digits, `_`, `-`, `.`, at most 64 bytes.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.-]+$")]
    pub region: Option<String>,
    /// Who is asking, e.g. `cryptofeed-instance-123`: no control
    /// characters, at most 128 bytes.
    #[schema(schema_with = client_id_schema)]
    pub client_id: String,
    /// What the connection will carry; informational.
    pub metadata: Option<RequestMetadataDoc>,
}

/// What a requested connection will carry.
#[derive(Debug, ToSchema)]
#[schema(as = RequestMetadata)]
pub struct RequestMetadataDoc {
    /// Feed types, e.g. `trades`, `book`: at most 16.
    #[schema(max_items = 16)]
    pub feed_types: Option<Vec<Topic>>,
    /// Symbols, e.g. `BTC-USD`: at most 64.
    #[schema(max_items = 64)]
    pub symbols: Option<Vec<Topic>>,
}

/// A feed type or symbol: no control characters, at most 32 bytes.
#[derive(Debug)]
pub struct Topic;

impl PartialSchema for Topic {
    fn schema() -> RefOr<Schema> {
        printable(
            proxy_delegate_core::model::MAX_TOPIC_LEN,
            false,
            "A feed type or symbol, e.g. `trades`, `BTC-USD`: no control characters, \
             1 to 32 bytes of UTF-8.",
        )
        .into()
    }
}

impl ToSchema for Topic {}

/// The answer to `POST /api/v1/proxy/request` (in JSON; the same fields in
/// postcard). Every field is written; clients ignore fields they do not know.
#[derive(Debug, ToSchema)]
#[schema(
    as = ProxyResponse,
    examples(json!({
        "proxy_url": "socks5://user:pass@proxy-server:1080",
        "strategy": "least_connections",
        "ttl_seconds": 300,
        "fallback_policy": "direct_connection",
        "metadata": {"proxy_id": "proxy-123", "region": "us-east-1", "health_score": 0.98}
    }))
)]
pub struct ProxyResponseDoc {
    /// The proxy to use, with its credentials;
    /// `scheme://[user[:password]@]host:port`, scheme `http`, `https`,
    /// `socks4`, `socks4a`, `socks5` or `socks5h`, at most 512 bytes.
    /// `null`: connect directly.
    #[schema(
        min_length = 1,
        max_length = 512,
        pattern = "^(https?|socks4a?|socks5h?)://((?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}){1,42}(:(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}){0,42})?@)?[A-Za-z0-9_-]{1,63}(\\.[A-Za-z0-9_-]{1,62}){0,3}\\.?:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])/?$"
    )]
    pub proxy_url: Option<String>,
    /// The selection strategy used, e.g. `least_connections` (open-ended):
    /// ASCII letters, digits, `_`, `-`, `.`, at most 32 bytes.
    #[schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_.-]+$")]
    pub strategy: String,
    /// How long the answer may be cached, in seconds.
    #[schema(value_type = i64, minimum = 1, maximum = 86400)]
    pub ttl_seconds: u32,
    /// What to do when the service cannot answer next time.
    pub fallback_policy: FallbackPolicyDoc,
    /// About the chosen proxy.
    pub metadata: ResponseMetadataDoc,
}

/// About the proxy an answer names (`null` fields: no proxy).
#[derive(Debug, ToSchema)]
#[schema(as = ResponseMetadata)]
pub struct ResponseMetadataDoc {
    /// The service's id of the proxy: no control characters, at most 64 bytes.
    #[schema(schema_with = proxy_id_schema)]
    pub proxy_id: Option<String>,
    /// The proxy's region.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.-]+$")]
    pub region: Option<String>,
    /// The proxy's health score, 0 (dead) to 1 (perfect).
    #[schema(minimum = 0, maximum = 1)]
    pub health_score: Option<f32>,
}

/// One feedback event (see the `ProxyFeedback` schema, which adds the rule
/// that `success` or `event` must be given).
#[derive(Debug, ToSchema)]
#[schema(as = ProxyFeedback)]
pub struct ProxyFeedbackDoc {
    /// The service's id of the proxy (`metadata.proxy_id` of the answer),
    /// if known: no control characters, at most 64 bytes.
    #[schema(schema_with = proxy_id_schema)]
    pub proxy_id: Option<String>,
    /// The proxy, preferably without credentials (they are dropped on
    /// receipt); `null` for a direct connection. At most 512 bytes.
    #[schema(
        min_length = 1,
        max_length = 512,
        pattern = "^(https?|socks4a?|socks5h?)://((?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}){1,42}(:(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}){0,42})?@)?[A-Za-z0-9_-]{1,63}(\\.[A-Za-z0-9_-]{1,62}){0,3}\\.?:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])/?$"
    )]
    pub proxy_url: Option<String>,
    /// The exchange: ASCII letters, digits, `_`, `-`, `.`, at most 64 bytes.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.-]+$")]
    pub exchange_id: String,
    /// HTTP or WebSocket.
    pub connection_type: ConnectionTypeDoc,
    /// What happened; derived from `success` when absent.
    pub event: Option<FeedbackEventDoc>,
    /// Whether it went well; derived from `event` when absent.
    pub success: Option<bool>,
    /// How long connecting took, in milliseconds.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub latency_ms: Option<u32>,
    /// Why it failed, when it did.
    pub error_category: Option<ErrorCategoryDoc>,
    /// Free-text details; text over 512 bytes is cut, never refused.
    pub error_details: Option<String>,
    /// When it happened: RFC 3339, e.g. `2024-09-23T10:30:00Z` (fractional
    /// seconds and numeric offsets accepted), years 0000–9999.
    #[schema(format = DateTime, min_length = 20, max_length = 40)]
    pub timestamp: String,
    /// Who reports: no control characters, at most 128 bytes.
    #[schema(schema_with = client_id_schema)]
    pub client_id: String,
}

/// The body of `POST /api/v1/proxy/feedback`: one event, or a non-empty
/// array of them (a batch is taken whole or refused whole).
#[derive(Debug)]
pub struct FeedbackBody;

impl PartialSchema for FeedbackBody {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(Ref::from_schema_name("ProxyFeedback"))
            .item(
                ArrayBuilder::new()
                    .items(Ref::from_schema_name("ProxyFeedback"))
                    .min_items(Some(1)),
            )
            .description(Some(
                "One feedback event, or a non-empty array of them. A batch is taken whole \
                 or refused whole; an error names the element as `[i]`.",
            ))
            .into()
    }
}

impl ToSchema for FeedbackBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("FeedbackBody")
    }
}

/// A message in postcard, the compact binary form of the JSON message.
#[derive(Debug)]
pub struct PostcardMessage;

impl PartialSchema for PostcardMessage {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .content_media_type(POSTCARD)
            .description(Some(
                "The message in postcard (serde's compact binary format), fields in the \
                 order of the JSON schema; for feedback, one or more messages back to back.",
            ))
            .into()
    }
}

impl ToSchema for PostcardMessage {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("PostcardMessage")
    }
}

/// The kind of exchange connection: `http` (alias `rest`) or `websocket`
/// (alias `ws`), matched without regard to case.
#[derive(Debug, ToSchema)]
#[schema(as = ConnectionType, rename_all = "snake_case")]
pub enum ConnectionTypeDoc {
    /// REST and other HTTP(S) requests.
    Http,
    /// WebSocket streams.
    Websocket,
    /// Alias of `http`.
    Rest,
    /// Alias of `websocket`.
    Ws,
}

/// What the client does when the service cannot give it a proxy:
/// `direct_connection`, `embedded_fallback` (the default) or `fail`.
#[derive(Debug, ToSchema)]
#[schema(as = FallbackPolicy, rename_all = "snake_case")]
pub enum FallbackPolicyDoc {
    /// Connect without a proxy.
    DirectConnection,
    /// Use the embedded configuration, then connect directly.
    EmbeddedFallback,
    /// Do not connect.
    Fail,
}

/// What happened on a connection (matched without regard to case).
#[derive(Debug, ToSchema)]
#[schema(as = FeedbackEvent, rename_all = "snake_case")]
pub enum FeedbackEventDoc {
    /// Started connecting through the proxy.
    ConnectStart,
    /// Connected.
    Success,
    /// Failed.
    Failure,
    /// Timed out.
    Timeout,
    /// An established connection ended.
    Disconnect,
}

/// Why a connection failed (matched without regard to case). Only some
/// categories count against the proxy.
#[derive(Debug, ToSchema)]
#[schema(as = ErrorCategory, rename_all = "snake_case")]
pub enum ErrorCategoryDoc {
    /// The proxy could not be reached.
    ProxyConnect,
    /// The proxy refused the credentials.
    ProxyAuth,
    /// The proxy refused the tunnel.
    TunnelRefused,
    /// TLS with the target failed.
    TargetTls,
    /// The target answered 5xx.
    #[schema(rename = "target_http_5xx")]
    TargetHttp5xx,
    /// The target refused the proxy's location (HTTP 451 and the like).
    GeoBlocked,
    /// The target rate-limited the proxy's address.
    RateLimited,
    /// A timeout.
    Timeout,
    /// Anything else.
    Other,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proxy_delegate_core::codec;
    use proxy_delegate_core::model::{self as m, ProxyFeedback, ProxyRequest, ProxyResponse};
    use serde_json::Value;

    use super::super::test_support::{document, keys, object, properties, required, schema};
    use super::super::{IDENTIFIER_PATTERN, PRINTABLE_PATTERN, PROXY_URL_PATTERN};

    /// The published example bodies (the root crate's fixtures).
    const REQUEST_JSON: &str = r#"{"exchange_id":"binance","connection_type":"websocket","region":"us-east-1","client_id":"cryptofeed-instance-123","metadata":{"feed_types":["trades","book"],"symbols":["BTC-USD","ETH-USD"]}}"#;
    const RESPONSE_JSON: &str = r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","strategy":"least_connections","ttl_seconds":300,"fallback_policy":"direct_connection","metadata":{"proxy_id":"proxy-123","region":"us-east-1","health_score":0.98}}"#;
    const FEEDBACK_JSON: &str = r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","exchange_id":"binance","connection_type":"websocket","success":true,"latency_ms":45,"error_details":null,"timestamp":"2024-09-23T10:30:00Z","client_id":"cryptofeed-instance-123"}"#;

    /// What the core's JSON encoder writes for `msg`, as a JSON value.
    fn encoded<M: codec::Message>(msg: &M) -> Value {
        let mut buf = [0u8; 4096];
        let n = codec::json::encode(msg, &mut buf).unwrap();
        serde_json::from_slice(&buf[..n]).unwrap()
    }

    fn full_request() -> ProxyRequest {
        let r: ProxyRequest = codec::json::decode(REQUEST_JSON.as_bytes()).unwrap();
        assert!(r.region.is_some() && !r.metadata.feed_types.is_empty());
        r
    }

    fn full_response() -> ProxyResponse {
        codec::json::decode(RESPONSE_JSON.as_bytes()).unwrap()
    }

    fn full_feedback() -> ProxyFeedback {
        let mut f: ProxyFeedback = codec::json::decode(FEEDBACK_JSON.as_bytes()).unwrap();
        f.proxy_id = Some("proxy-123".parse().unwrap());
        f.error_category = Some(m::ErrorCategory::Timeout);
        f.error_details = Some(m::ErrorDetails::new("connect timed out"));
        f.event = m::FeedbackEvent::Timeout;
        f
    }

    #[test]
    fn mirror_fields_are_what_the_core_writes() {
        let doc = document();
        let req = encoded(&full_request());
        assert_eq!(properties(&doc, "ProxyRequest"), keys(&req));
        assert_eq!(properties(&doc, "RequestMetadata"), keys(&req["metadata"]));
        let resp = encoded(&full_response());
        assert_eq!(properties(&doc, "ProxyResponse"), keys(&resp));
        assert_eq!(
            properties(&doc, "ResponseMetadata"),
            keys(&resp["metadata"])
        );
        let fb = encoded(&full_feedback());
        // Every field is populated, so every field the encoder knows is here.
        assert!(fb.as_object().unwrap().values().all(|v| !v.is_null()));
        assert_eq!(properties(&doc, "ProxyFeedback"), keys(&fb));
    }

    #[test]
    fn required_fields_are_the_ones_the_core_requires() {
        let doc = document();
        for (name, body) in [
            ("ProxyRequest", REQUEST_JSON),
            ("ProxyFeedback", FEEDBACK_JSON),
        ] {
            let full: Value = serde_json::from_str(body).unwrap();
            for field in keys(&full) {
                if name == "ProxyFeedback" && field == "success" {
                    // Required only without `event`: checked below.
                    continue;
                }
                let mut without = full.clone();
                without.as_object_mut().unwrap().remove(&field);
                let text = serde_json::to_vec(&without).unwrap();
                let refused = if name == "ProxyRequest" {
                    codec::json::decode::<ProxyRequest>(&text).is_err()
                } else {
                    codec::json::decode::<ProxyFeedback>(&text).is_err()
                };
                assert_eq!(
                    refused,
                    required(&doc, name).contains(&field),
                    "{name}.{field}: the core and the schema disagree on whether it is required"
                );
            }
        }
        // `success` is required only without `event`: the anyOf says so.
        let any_of = &schema(&doc, "ProxyFeedback")["allOf"][1]["anyOf"];
        let alternatives: BTreeSet<_> = any_of
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["required"][0].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(alternatives, ["event", "success"].map(String::from).into());
        let mut no_success: Value = serde_json::from_str(FEEDBACK_JSON).unwrap();
        no_success.as_object_mut().unwrap().remove("success");
        let text = serde_json::to_vec(&no_success).unwrap();
        assert!(codec::json::decode::<ProxyFeedback>(&text).is_err());
        no_success["event"] = "success".into();
        let text = serde_json::to_vec(&no_success).unwrap();
        assert!(codec::json::decode::<ProxyFeedback>(&text).is_ok());
        // The response's required fields are the ones the core requires.
        let resp = required(&doc, "ProxyResponse");
        for field in ["strategy", "ttl_seconds"] {
            assert!(resp.contains(field), "{field}");
        }
    }

    #[test]
    fn bounds_are_the_cores() {
        let doc = document();
        let max = |name: &str, field: &str| {
            object(&doc, name)["properties"][field]["maxLength"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}.{field} has no maxLength")) as usize
        };
        // Printable text: the byte bound, split by the widest character.
        let printable_max = |s: &Value| -> usize {
            let any = s["anyOf"].as_array().expect("printable text is an anyOf");
            let max = |i: usize| any[i]["maxLength"].as_u64().unwrap() as usize;
            let bytes = max(0);
            assert_eq!(
                (max(1), max(2), max(3)),
                (bytes / 2, bytes / 3, bytes / 4),
                "{s}"
            );
            assert_eq!(any[3]["pattern"], PRINTABLE_PATTERN);
            bytes
        };
        let field = |name: &str, field: &str| object(&doc, name)["properties"][field].clone();
        assert_eq!(max("ProxyRequest", "exchange_id"), m::MAX_EXCHANGE_ID_LEN);
        assert_eq!(max("ProxyRequest", "region"), m::MAX_REGION_LEN);
        assert_eq!(
            printable_max(&field("ProxyRequest", "client_id")),
            m::MAX_CLIENT_ID_LEN
        );
        assert_eq!(max("ProxyResponse", "proxy_url"), m::MAX_URL_LEN);
        assert_eq!(max("ProxyResponse", "strategy"), m::MAX_STRATEGY_LEN);
        assert_eq!(
            printable_max(&field("ResponseMetadata", "proxy_id")),
            m::MAX_PROXY_ID_LEN
        );
        assert_eq!(max("ResponseMetadata", "region"), m::MAX_REGION_LEN);
        assert_eq!(
            printable_max(&field("ProxyFeedback", "proxy_id")),
            m::MAX_PROXY_ID_LEN
        );
        assert_eq!(max("ProxyFeedback", "proxy_url"), m::MAX_URL_LEN);
        assert_eq!(max("ProxyFeedback", "exchange_id"), m::MAX_EXCHANGE_ID_LEN);
        assert_eq!(
            printable_max(&field("ProxyFeedback", "client_id")),
            m::MAX_CLIENT_ID_LEN
        );
        assert_eq!(max("ProxyFeedback", "timestamp"), m::MAX_TIMESTAMP_LEN);
        assert_eq!(printable_max(schema(&doc, "Topic")), m::MAX_TOPIC_LEN);
        let meta = &object(&doc, "RequestMetadata")["properties"];
        assert_eq!(
            meta["feed_types"]["maxItems"].as_u64(),
            Some(m::MAX_FEED_TYPES as u64)
        );
        assert_eq!(
            meta["symbols"]["maxItems"].as_u64(),
            Some(m::MAX_SYMBOLS as u64)
        );
        let ttl = &object(&doc, "ProxyResponse")["properties"]["ttl_seconds"];
        assert_eq!(ttl["minimum"].as_u64(), Some(u64::from(m::TtlSeconds::MIN)));
        assert_eq!(ttl["maximum"].as_u64(), Some(u64::from(m::TtlSeconds::MAX)));
        let latency = &object(&doc, "ProxyFeedback")["properties"]["latency_ms"];
        assert_eq!(latency["maximum"].as_u64(), Some(u64::from(u32::MAX)));
        // The patterns are the module's constants.
        let p = |name: &str, field: &str| {
            object(&doc, name)["properties"][field]["pattern"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(p("ProxyRequest", "exchange_id"), IDENTIFIER_PATTERN);
        assert_eq!(p("ProxyFeedback", "exchange_id"), IDENTIFIER_PATTERN);
        assert_eq!(p("ProxyRequest", "region"), IDENTIFIER_PATTERN);
        assert_eq!(p("ProxyResponse", "strategy"), IDENTIFIER_PATTERN);
        assert_eq!(p("ProxyResponse", "proxy_url"), PROXY_URL_PATTERN);
        assert_eq!(p("ProxyFeedback", "proxy_url"), PROXY_URL_PATTERN);
    }

    #[test]
    fn enums_are_the_cores_spellings() {
        let doc = document();
        let values = |name: &str| -> BTreeSet<String> {
            schema(&doc, name)["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        let spell = |all: &[&str]| all.iter().map(|s| (*s).to_owned()).collect();
        let core: BTreeSet<String> = m::ConnectionType::ALL
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        let doc_ct = values("ConnectionType");
        assert!(core.is_subset(&doc_ct));
        for alias in doc_ct.difference(&core) {
            assert!(m::ConnectionType::parse(alias).is_ok(), "{alias}");
        }
        assert_eq!(
            values("FallbackPolicy"),
            spell(
                &m::FallbackPolicy::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
            )
        );
        assert_eq!(
            values("FeedbackEvent"),
            spell(
                &m::FeedbackEvent::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
            )
        );
        assert_eq!(
            values("ErrorCategory"),
            spell(
                &m::ErrorCategory::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
            )
        );
    }

    #[test]
    fn published_examples_are_the_fixtures_and_fit_the_schemas() {
        let doc = document();
        for (name, body) in [
            ("ProxyRequest", REQUEST_JSON),
            ("ProxyResponse", RESPONSE_JSON),
            ("ProxyFeedback", FEEDBACK_JSON),
        ] {
            let fixture: Value = serde_json::from_str(body).unwrap();
            assert_eq!(schema(&doc, name)["examples"][0], fixture, "{name}");
            // Every field of the example is a property, and every required
            // property is in the example.
            assert!(keys(&fixture).is_subset(&properties(&doc, name)), "{name}");
            assert!(required(&doc, name).is_subset(&keys(&fixture)), "{name}");
        }
        // And the core takes them.
        assert!(codec::json::decode::<ProxyRequest>(REQUEST_JSON.as_bytes()).is_ok());
        assert!(codec::json::decode::<ProxyResponse>(RESPONSE_JSON.as_bytes()).is_ok());
        assert!(codec::json::decode::<ProxyFeedback>(FEEDBACK_JSON.as_bytes()).is_ok());
    }
}
