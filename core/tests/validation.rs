//! Validation of every field, with its exact error message (field path and
//! reason), through the constructors and through both decoders; and the
//! codecs' own errors: oversized input, malformed JSON, truncated or garbage
//! postcard, trailing bytes, escapes, and encoding into a too-small buffer.

use proptest::prelude::*;
use proxy_delegate_core::codec::{self, DecodeError, EncodeError, Format, MAX_INPUT_LEN, Message};
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ErrorCategory, ErrorDetails, ExchangeId, FallbackPolicy, FeedType,
    FeedbackEvent, HealthScore, MAX_CLIENT_ID_LEN, MAX_ERROR_DETAILS_LEN, MAX_EXCHANGE_ID_LEN,
    MAX_FEED_TYPES, MAX_HOST_LEN, MAX_PROXY_ID_LEN, MAX_REGION_LEN, MAX_STRATEGY_LEN, MAX_SYMBOLS,
    MAX_TIMESTAMP_LEN, MAX_TOPIC_LEN, MAX_URL_LEN, MAX_USERINFO_LEN, ProxyFeedback, ProxyId,
    ProxyRequest, ProxyResponse, ProxyUrl, Region, Strategy, Symbol, Timestamp, TtlSeconds,
};
use proxy_delegate_core::{Reason, ValidationError};
use serde_json::{Value, json};

const IDENT: &str = "ASCII letters, digits, '_', '-' or '.'";
const PRINTABLE: &str = "printable characters, no control characters";

fn request_body() -> Value {
    json!({"exchange_id":"binance","connection_type":"websocket","region":"us-east-1",
           "client_id":"cryptofeed-instance-123",
           "metadata":{"feed_types":["trades","book"],"symbols":["BTC-USD","ETH-USD"]}})
}
fn response_body() -> Value {
    json!({"proxy_url":"socks5://user:pass@proxy-server:1080","strategy":"least_connections",
           "ttl_seconds":300,"fallback_policy":"direct_connection",
           "metadata":{"proxy_id":"proxy-123","region":"us-east-1","health_score":0.98}})
}
fn feedback_body() -> Value {
    json!({"proxy_url":"socks5://proxy-server:1080","exchange_id":"binance",
           "connection_type":"websocket","success":true,"latency_ms":45,"error_details":null,
           "timestamp":"2024-09-23T10:30:00Z","client_id":"cryptofeed-instance-123"})
}

/// Sets `path` (dotted) in `body` to `value`; `None` removes the field.
fn with(mut body: Value, path: &str, value: Option<Value>) -> Value {
    let mut target = &mut body;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            let obj = target.as_object_mut().unwrap();
            match &value {
                Some(v) => {
                    obj.insert(part.to_owned(), v.clone());
                }
                None => {
                    obj.remove(part);
                }
            }
            break;
        }
        target = &mut target[part];
    }
    body
}

// The postcard layout of each message, field by field, with unbounded types so
// that a test can encode what the model's own encoder never would (oversized
// text, too many items). The order is the wire order; `accepts` below checks
// that these mirrors decode to the same values as the JSON they come from.
#[derive(serde::Serialize, serde::Deserialize)]
struct RawRequest {
    exchange_id: Option<String>,
    connection_type: Option<String>,
    region: Option<String>,
    client_id: Option<String>,
    metadata: Option<RawRequestMetadata>,
}
#[derive(serde::Serialize, serde::Deserialize)]
struct RawRequestMetadata {
    feed_types: Option<Vec<String>>,
    symbols: Option<Vec<String>>,
}
#[derive(serde::Serialize, serde::Deserialize)]
struct RawResponse {
    proxy_url: Option<String>,
    strategy: Option<String>,
    ttl_seconds: Option<i64>,
    fallback_policy: Option<String>,
    metadata: Option<RawResponseMetadata>,
}
#[derive(serde::Serialize, serde::Deserialize)]
struct RawResponseMetadata {
    proxy_id: Option<String>,
    region: Option<String>,
    health_score: Option<f32>,
}
#[derive(serde::Serialize, serde::Deserialize)]
struct RawFeedback {
    proxy_id: Option<String>,
    proxy_url: Option<String>,
    exchange_id: Option<String>,
    connection_type: Option<String>,
    event: Option<String>,
    success: Option<bool>,
    latency_ms: Option<u32>,
    error_category: Option<String>,
    error_details: Option<String>,
    timestamp: Option<String>,
    client_id: Option<String>,
}

/// A message type and its unbounded postcard mirror.
trait Raw: Message + serde::de::DeserializeOwned + std::fmt::Debug {
    type Raw: serde::Serialize + serde::de::DeserializeOwned;
}
impl Raw for ProxyRequest {
    type Raw = RawRequest;
}
impl Raw for ProxyResponse {
    type Raw = RawResponse;
}
impl Raw for ProxyFeedback {
    type Raw = RawFeedback;
}

/// Postcard bytes of the message that the JSON `body` stands for, valid or not.
fn postcard_of<M: Raw>(body: &Value) -> Vec<u8> {
    let raw: M::Raw = serde_json::from_value(body.clone()).unwrap();
    let mut buf = vec![0u8; 4 * MAX_INPUT_LEN];
    let n = postcard::to_slice(&raw, &mut buf).unwrap().len();
    buf.truncate(n);
    buf
}

/// Asserts that `body` is rejected with exactly `message`, by core's JSON
/// decoder, by core's postcard decoder, and by serde_json through the model's
/// serde impls; returns the error.
fn rejects<M: Raw>(body: &Value, message: &str) -> ValidationError {
    let text = serde_json::to_string(body).unwrap();
    let err = match codec::json::decode::<M>(text.as_bytes()) {
        Err(DecodeError::Invalid(e)) => e,
        other => panic!("JSON {text}: expected a validation error, got {other:?}"),
    };
    assert_eq!(err.to_string(), message, "JSON {text}");
    assert_eq!(DecodeError::Invalid(err.clone()).to_string(), message);

    match codec::postcard::decode::<M>(&postcard_of::<M>(body)) {
        Err(DecodeError::Invalid(e)) => assert_eq!(e, err, "postcard of {text}"),
        other => panic!("postcard of {text}: expected {err:?}, got {other:?}"),
    }

    let std_err = serde_json::from_str::<M>(&text).unwrap_err();
    assert!(
        std_err.to_string().starts_with(message),
        "serde_json: {std_err} (expected {message})"
    );
    err
}

fn accepts<M: Raw + PartialEq>(body: &Value) -> M {
    let text = serde_json::to_string(body).unwrap();
    let a: M = codec::json::decode(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
    let b: M = codec::postcard::decode(&postcard_of::<M>(body)).unwrap();
    let c: M = serde_json::from_str(&text).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    a
}

// ---------------------------------------------------------------- URLs

#[test]
fn proxy_url_errors_have_exact_messages() {
    let cases: &[(&str, &str)] = &[
        (
            "ftp://proxy:21",
            r#"proxy_url: unsupported scheme "ftp" (expected one of http, https, socks4, socks4a, socks5, socks5h)"#,
        ),
        (
            "FTP://proxy:21",
            r#"proxy_url: unsupported scheme "FTP" (expected one of http, https, socks4, socks4a, socks5, socks5h)"#,
        ),
        (
            "socks6://proxy:1080",
            r#"proxy_url: unsupported scheme "socks6" (expected one of http, https, socks4, socks4a, socks5, socks5h)"#,
        ),
        ("", "proxy_url: must not be empty"),
        (
            "proxy:1080",
            "proxy_url: malformed (expected scheme://[user[:password]@]host:port)",
        ),
        (
            "://proxy:1080",
            "proxy_url: malformed (expected scheme://[user[:password]@]host:port)",
        ),
        (
            "so cks5://proxy:1080",
            "proxy_url: malformed (expected scheme://[user[:password]@]host:port)",
        ),
        (
            "user:secret@proxy://x",
            "proxy_url: malformed (expected scheme://[user[:password]@]host:port)",
        ),
        ("socks5://:1080", "proxy_url: missing host"),
        ("socks5://user:pw@:1080", "proxy_url: missing host"),
        ("socks5://proxy", "proxy_url: missing port"),
        ("socks5://proxy:", "proxy_url: missing port"),
        ("socks5://[::1]", "proxy_url: missing port"),
        ("socks5://[::1]:", "proxy_url: missing port"),
        (
            "socks5://proxy:0",
            "proxy_url: out of range (expected port 1 to 65535)",
        ),
        (
            "socks5://proxy:65536",
            "proxy_url: out of range (expected port 1 to 65535)",
        ),
        (
            "socks5://proxy:99999999999999999999999",
            "proxy_url: out of range (expected port 1 to 65535)",
        ),
        (
            "socks5://proxy:http",
            "proxy_url: malformed (expected a numeric port)",
        ),
        (
            "socks5://proxy:-1",
            "proxy_url: malformed (expected a numeric port)",
        ),
        (
            "socks5://proxy:+80",
            "proxy_url: malformed (expected a numeric port)",
        ),
        (
            "socks5://proxy: 80",
            "proxy_url: malformed (expected a numeric port)",
        ),
        (
            "socks5://[::1]:80:81",
            "proxy_url: malformed (expected a numeric port)",
        ),
        (
            "socks5://us%zzer:pw@proxy:1080",
            "proxy_url: malformed (expected a valid percent escape (%XX) in the user name or password)",
        ),
        (
            "socks5://user:pw%4@proxy:1080",
            "proxy_url: malformed (expected a valid percent escape (%XX) in the user name or password)",
        ),
        (
            "socks5://user:pw%@proxy:1080",
            "proxy_url: malformed (expected a valid percent escape (%XX) in the user name or password)",
        ),
        (
            "socks5://us er:pw@proxy:1080",
            "proxy_url: invalid character (expected user name characters; percent-encode others)",
        ),
        (
            "socks5://user:p w@proxy:1080",
            "proxy_url: invalid character (expected password characters; percent-encode others)",
        ),
        (
            "socks5://user:p:w@proxy:1080",
            "proxy_url: invalid character (expected password characters; percent-encode others)",
        ),
        (
            "socks5://user:p@w@proxy:1080",
            "proxy_url: invalid character (expected password characters; percent-encode others)",
        ),
        ("socks5://:pw@proxy:1080", "proxy_url: missing user name"),
        (
            "socks5://pro xy:1080",
            "proxy_url: invalid character (expected a host name (letters, digits, '-', '_', '.') or an IP address)",
        ),
        (
            "socks5://prox!y:1080",
            "proxy_url: invalid character (expected a host name (letters, digits, '-', '_', '.') or an IP address)",
        ),
        (
            "socks5://pröxy:1080",
            "proxy_url: invalid character (expected a host name (letters, digits, '-', '_', '.') or an IP address)",
        ),
        (
            "socks5://.proxy:1080",
            "proxy_url: invalid character (expected a host name (letters, digits, '-', '_', '.') or an IP address)",
        ),
        (
            "socks5://a..b:1080",
            "proxy_url: invalid character (expected a host name (letters, digits, '-', '_', '.') or an IP address)",
        ),
        (
            "socks5://::1:1080",
            "proxy_url: invalid character (expected a host name (letters, digits, '-', '_', '.') or an IP address)",
        ),
        (
            "socks5://[::g]:1080",
            "proxy_url: malformed (expected an IPv6 address in brackets, e.g. [::1])",
        ),
        (
            "socks5://[::1:1080",
            "proxy_url: malformed (expected an IPv6 address in brackets, e.g. [::1])",
        ),
        (
            "socks5://[1.2.3.4]:1080",
            "proxy_url: malformed (expected an IPv6 address in brackets, e.g. [::1])",
        ),
        (
            "socks5://proxy:1080/path",
            "proxy_url: malformed (expected no path, query or fragment after host:port)",
        ),
        (
            "socks5://proxy:1080?x=1",
            "proxy_url: malformed (expected no path, query or fragment after host:port)",
        ),
        (
            "socks5://proxy:1080#top",
            "proxy_url: malformed (expected no path, query or fragment after host:port)",
        ),
        (
            "socks5://proxy:1080//",
            "proxy_url: malformed (expected no path, query or fragment after host:port)",
        ),
    ];
    for (text, message) in cases {
        let err = ProxyUrl::parse(text).unwrap_err();
        assert_eq!(err.to_string(), *message, "{text:?}");
        assert_eq!(err.field, "proxy_url");
        // The same through the response decoders.
        let body = with(response_body(), "proxy_url", Some(json!(text)));
        rejects::<ProxyResponse>(&body, message);
    }
}

#[test]
fn proxy_url_length_limits() {
    let host_253 = "h".repeat(MAX_HOST_LEN);
    assert!(ProxyUrl::parse(&format!("http://{host_253}:1")).is_ok());
    assert_eq!(
        ProxyUrl::parse(&format!("http://{host_253}h:1"))
            .unwrap_err()
            .to_string(),
        "proxy_url: too long: 254 bytes (at most 253 allowed)"
    );
    let user = "u".repeat(MAX_USERINFO_LEN);
    assert!(ProxyUrl::parse(&format!("http://{user}:{user}@h:1")).is_ok());
    assert_eq!(
        ProxyUrl::parse(&format!("http://{user}u:p@h:1"))
            .unwrap_err()
            .to_string(),
        "proxy_url: too long: 129 bytes (at most 128 allowed)"
    );
    assert_eq!(
        ProxyUrl::parse(&format!("http://u:{user}p@h:1"))
            .unwrap_err()
            .to_string(),
        "proxy_url: too long: 129 bytes (at most 128 allowed)"
    );
    // A 512-byte URL is accepted, 513 bytes is refused whole.
    let head = format!("http://{user}:{user}@");
    let host = "h".repeat(MAX_URL_LEN - head.len() - ":1".len());
    let longest = format!("{head}{host}:1");
    assert_eq!(longest.len(), MAX_URL_LEN);
    let url = ProxyUrl::parse(&longest).unwrap();
    assert_eq!((url.host(), url.port()), (host.as_str(), 1));
    assert_eq!(url.expose_credentials().to_string(), longest);
    let too_long = format!("{longest}0");
    assert_eq!(
        ProxyUrl::parse(&too_long).unwrap_err().to_string(),
        "proxy_url: too long: 513 bytes (at most 512 allowed)"
    );
    // Through the decoders, an oversized URL is TooLong under the field, not cut.
    let body = with(
        response_body(),
        "proxy_url",
        Some(json!(format!("socks5://{}:1080", "p".repeat(600)))),
    );
    let err = rejects::<ProxyResponse>(
        &body,
        "proxy_url: too long: 614 bytes (at most 512 allowed)",
    );
    assert_eq!(
        err.reason,
        Reason::TooLong {
            len: 614,
            max: MAX_URL_LEN
        }
    );
    let body = with(
        feedback_body(),
        "proxy_url",
        Some(json!(format!("socks5://{}:1080", "p".repeat(600)))),
    );
    rejects::<ProxyFeedback>(
        &body,
        "proxy_url: too long: 614 bytes (at most 512 allowed)",
    );
}

#[test]
fn accepted_url_shapes() {
    for (text, host, port) in [
        ("http://proxy:3128", "proxy", 3128),
        ("HTTPS://proxy.example.com:443/", "proxy.example.com", 443),
        ("socks4://10.0.0.1:1080", "10.0.0.1", 1080),
        ("socks4a://proxy_1.internal.:1", "proxy_1.internal.", 1),
        ("socks5h://[::1]:65535", "[::1]", 65535),
        (
            "SoCkS5://[2001:db8::8a2e:370:7334]:1080",
            "[2001:db8::8a2e:370:7334]",
            1080,
        ),
        ("socks5://u%40x:p%3Aw%2F@proxy:01080", "proxy", 1080),
    ] {
        let url = ProxyUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!((url.host(), url.port()), (host, port), "{text}");
    }
    let url = ProxyUrl::parse("socks5://u%40x:p%3Aw%2F@proxy:1080").unwrap();
    assert_eq!(url.username(), Some("u%40x"));
    assert_eq!(url.password().unwrap().expose(), "p%3Aw%2F");
    // A user name with an empty password has no password.
    let url = ProxyUrl::parse("http://user:@proxy:8080").unwrap();
    assert_eq!(url.username(), Some("user"));
    assert!(url.password().is_none());
    assert_eq!(url.to_string(), "http://user@proxy:8080");
}

// ---------------------------------------------------------------- ids

#[test]
fn bounded_ids_report_empty_too_long_and_bad_characters() {
    type Check = fn(&str) -> Result<String, ValidationError>;
    let ids: &[(&str, usize, &str, Check)] = &[
        ("exchange_id", MAX_EXCHANGE_ID_LEN, IDENT, |s| {
            ExchangeId::new(s).map(|v| v.as_str().to_owned())
        }),
        ("client_id", MAX_CLIENT_ID_LEN, PRINTABLE, |s| {
            ClientId::new(s).map(|v| v.as_str().to_owned())
        }),
        ("region", MAX_REGION_LEN, IDENT, |s| {
            Region::new(s).map(|v| v.as_str().to_owned())
        }),
        ("proxy_id", MAX_PROXY_ID_LEN, PRINTABLE, |s| {
            ProxyId::new(s).map(|v| v.as_str().to_owned())
        }),
        ("strategy", MAX_STRATEGY_LEN, IDENT, |s| {
            Strategy::new(s).map(|v| v.as_str().to_owned())
        }),
        ("metadata.feed_types", MAX_TOPIC_LEN, PRINTABLE, |s| {
            FeedType::new(s).map(|v| v.as_str().to_owned())
        }),
        ("metadata.symbols", MAX_TOPIC_LEN, PRINTABLE, |s| {
            Symbol::new(s).map(|v| v.as_str().to_owned())
        }),
    ];
    for (field, max, charset, check) in ids {
        assert_eq!(
            check("").unwrap_err().to_string(),
            format!("{field}: must not be empty")
        );
        let longest = "a".repeat(*max);
        assert_eq!(check(&longest).unwrap(), longest);
        assert_eq!(
            check(&format!("{longest}a")).unwrap_err().to_string(),
            format!(
                "{field}: too long: {} bytes (at most {max} allowed)",
                max + 1
            )
        );
        // Multi-byte characters count in bytes.
        let wide = "é".repeat(max / 2 + 1);
        let err = check(&wide).unwrap_err();
        if *charset == PRINTABLE {
            assert_eq!(
                err.reason,
                Reason::TooLong {
                    len: wide.len(),
                    max: *max
                },
                "{field}"
            );
            assert_eq!(check(&"é".repeat(max / 2)).unwrap(), "é".repeat(max / 2));
        }
        for bad in ["a\u{0}b", "tab\there", "new\nline", "\u{7f}"] {
            assert_eq!(
                check(bad).unwrap_err().to_string(),
                format!("{field}: invalid character (expected {charset})"),
                "{field} {bad:?}"
            );
        }
        if *charset == IDENT {
            for bad in ["a b", "a/b", "é", "a:b", "a@b", "\"x\""] {
                assert_eq!(
                    check(bad).unwrap_err().to_string(),
                    format!("{field}: invalid character (expected {IDENT})"),
                    "{field} {bad:?}"
                );
            }
            assert_eq!(check("Aa0_-.").unwrap().to_lowercase(), "aa0_-.");
        } else {
            assert_eq!(check("a b/\"é€😀").unwrap(), "a b/\"é€😀");
        }
    }
    assert_eq!(ExchangeId::new("BinanceUS").unwrap().as_str(), "binanceus");
    assert_eq!(Region::new("US-East").unwrap().as_str(), "US-East");
}

#[test]
fn id_errors_name_the_field_through_the_decoders() {
    let long = |n: usize| json!("a".repeat(n));
    let cases: Vec<(Value, String)> = vec![
        (
            with(request_body(), "exchange_id", Some(long(65))),
            "exchange_id: too long: 65 bytes (at most 64 allowed)".into(),
        ),
        (
            with(request_body(), "exchange_id", Some(json!(""))),
            "exchange_id: must not be empty".into(),
        ),
        (
            with(request_body(), "exchange_id", Some(json!("bin ance"))),
            format!("exchange_id: invalid character (expected {IDENT})"),
        ),
        (
            with(request_body(), "client_id", Some(long(129))),
            "client_id: too long: 129 bytes (at most 128 allowed)".into(),
        ),
        (
            with(request_body(), "client_id", Some(json!("a\u{1}b"))),
            format!("client_id: invalid character (expected {PRINTABLE})"),
        ),
        (
            with(request_body(), "region", Some(long(65))),
            "region: too long: 65 bytes (at most 64 allowed)".into(),
        ),
        (
            with(request_body(), "region", Some(json!(""))),
            "region: must not be empty".into(),
        ),
        (
            with(
                request_body(),
                "metadata.feed_types",
                Some(json!(["trades", "a".repeat(33)])),
            ),
            "metadata.feed_types: too long: 33 bytes (at most 32 allowed)".into(),
        ),
        (
            with(request_body(), "metadata.feed_types", Some(json!([""]))),
            "metadata.feed_types: must not be empty".into(),
        ),
        (
            with(
                request_body(),
                "metadata.symbols",
                Some(json!(["BTC-USD", "a".repeat(40)])),
            ),
            "metadata.symbols: too long: 40 bytes (at most 32 allowed)".into(),
        ),
        (
            with(
                request_body(),
                "metadata.symbols",
                Some(json!(["BTC\nUSD"])),
            ),
            format!("metadata.symbols: invalid character (expected {PRINTABLE})"),
        ),
    ];
    for (body, message) in &cases {
        rejects::<ProxyRequest>(body, message);
    }
    let cases: Vec<(Value, String)> = vec![
        (
            with(response_body(), "strategy", Some(long(33))),
            "strategy: too long: 33 bytes (at most 32 allowed)".into(),
        ),
        (
            with(
                response_body(),
                "strategy",
                Some(json!("least connections")),
            ),
            format!("strategy: invalid character (expected {IDENT})"),
        ),
        (
            with(response_body(), "metadata.proxy_id", Some(long(65))),
            "metadata.proxy_id: too long: 65 bytes (at most 64 allowed)".into(),
        ),
        (
            with(response_body(), "metadata.proxy_id", Some(json!(""))),
            "metadata.proxy_id: must not be empty".into(),
        ),
        (
            with(response_body(), "metadata.region", Some(long(65))),
            "metadata.region: too long: 65 bytes (at most 64 allowed)".into(),
        ),
        (
            with(response_body(), "metadata.region", Some(json!("us east"))),
            format!("metadata.region: invalid character (expected {IDENT})"),
        ),
    ];
    for (body, message) in &cases {
        rejects::<ProxyResponse>(body, message);
    }
    let cases: Vec<(Value, String)> = vec![
        (
            with(feedback_body(), "proxy_id", Some(long(65))),
            "proxy_id: too long: 65 bytes (at most 64 allowed)".into(),
        ),
        (
            with(feedback_body(), "exchange_id", Some(long(100))),
            "exchange_id: too long: 100 bytes (at most 64 allowed)".into(),
        ),
        (
            with(feedback_body(), "client_id", Some(long(200))),
            "client_id: too long: 200 bytes (at most 128 allowed)".into(),
        ),
        (
            with(feedback_body(), "timestamp", Some(long(41))),
            "timestamp: too long: 41 bytes (at most 40 allowed)".into(),
        ),
    ];
    for (body, message) in &cases {
        rejects::<ProxyFeedback>(body, message);
    }
}

#[test]
fn enums_report_unknown_values_with_the_accepted_ones() {
    rejects::<ProxyRequest>(
        &with(
            request_body(),
            "connection_type",
            Some(json!("carrier-pigeon")),
        ),
        r#"connection_type: unknown value "carrier-pigeon" (expected one of http, websocket (or rest, ws))"#,
    );
    // A value that might be a secret written in the wrong place (longer
    // than 20 bytes, or holding anything but letters, digits, `_-.+`) is not
    // quoted: a cut-off URL could still hold a password.
    for unfit in [
        "websocket-over-carrier-pigeon",
        "socks5://alice:s3cret@proxy:1080",
        "tok en",
    ] {
        rejects::<ProxyRequest>(
            &with(request_body(), "connection_type", Some(json!(unfit))),
            "connection_type: unknown value (expected one of http, websocket (or rest, ws))",
        );
    }
    rejects::<ProxyRequest>(
        &with(request_body(), "connection_type", Some(json!(""))),
        "connection_type: unknown value (expected one of http, websocket (or rest, ws))",
    );
    rejects::<ProxyResponse>(
        &with(response_body(), "fallback_policy", Some(json!("retry"))),
        r#"fallback_policy: unknown value "retry" (expected one of direct_connection, embedded_fallback, fail)"#,
    );
    rejects::<ProxyFeedback>(
        &with(feedback_body(), "event", Some(json!("exploded"))),
        r#"event: unknown value "exploded" (expected one of connect_start, success, failure, timeout, disconnect)"#,
    );
    rejects::<ProxyFeedback>(
        &with(
            feedback_body(),
            "error_category",
            Some(json!("cosmic_rays")),
        ),
        r#"error_category: unknown value "cosmic_rays" (expected one of proxy_connect, proxy_auth, tunnel_refused, target_tls, target_http_5xx, geo_blocked, rate_limited, timeout, other)"#,
    );
    // Every spelling parses back to itself.
    for c in ConnectionType::ALL {
        assert_eq!(ConnectionType::parse(c.as_str()).unwrap(), *c);
    }
    for p in FallbackPolicy::ALL {
        assert_eq!(p.as_str().parse::<FallbackPolicy>().unwrap(), *p);
    }
    for e in FeedbackEvent::ALL {
        assert_eq!(
            FeedbackEvent::parse(&e.as_str().to_uppercase()).unwrap(),
            *e
        );
    }
    for c in ErrorCategory::ALL {
        let body = with(feedback_body(), "error_category", Some(json!(c.as_str())));
        assert_eq!(accepts::<ProxyFeedback>(&body).error_category, Some(*c));
    }
}

// ---------------------------------------------------------------- required fields

#[test]
fn missing_or_null_required_fields_are_reported() {
    for field in ["exchange_id", "connection_type", "client_id"] {
        let message = format!("{field}: missing (this field is required)");
        rejects::<ProxyRequest>(&with(request_body(), field, None), &message);
        rejects::<ProxyRequest>(&with(request_body(), field, Some(Value::Null)), &message);
    }
    for field in ["strategy", "ttl_seconds"] {
        let message = format!("{field}: missing (this field is required)");
        rejects::<ProxyResponse>(&with(response_body(), field, None), &message);
        rejects::<ProxyResponse>(&with(response_body(), field, Some(Value::Null)), &message);
    }
    for field in ["exchange_id", "connection_type", "timestamp", "client_id"] {
        let message = format!("{field}: missing (this field is required)");
        rejects::<ProxyFeedback>(&with(feedback_body(), field, None), &message);
        rejects::<ProxyFeedback>(&with(feedback_body(), field, Some(Value::Null)), &message);
    }
    rejects::<ProxyFeedback>(
        &with(feedback_body(), "success", None),
        "success: missing (this field is required)",
    );
    let err = rejects::<ProxyRequest>(&json!({}), "exchange_id: missing (this field is required)");
    assert_eq!(
        err,
        ValidationError {
            field: "exchange_id",
            reason: Reason::Missing
        }
    );
}

// ---------------------------------------------------------------- numbers

#[test]
fn ttl_seconds_range() {
    for ttl in [
        0i64,
        -1,
        86_401,
        i64::from(u32::MAX) + 1,
        i64::MIN,
        i64::MAX,
    ] {
        rejects::<ProxyResponse>(
            &with(response_body(), "ttl_seconds", Some(json!(ttl))),
            "ttl_seconds: out of range (expected 1 to 86400 seconds)",
        );
    }
    for ttl in [1u64, 2, 300, 86_399, 86_400] {
        let resp: ProxyResponse = accepts(&with(response_body(), "ttl_seconds", Some(json!(ttl))));
        assert_eq!(u64::from(resp.ttl_seconds.get()), ttl);
        assert_eq!(u64::from(TtlSeconds::new(ttl).unwrap().get()), ttl);
    }
    assert_eq!(
        TtlSeconds::new(u64::MAX).unwrap_err().to_string(),
        "ttl_seconds: out of range (expected 1 to 86400 seconds)"
    );
    // A whole number spelled as JSON Schema's `integer` allows is accepted;
    // a fraction is refused, never rounded.
    for body in [
        r#"{"strategy":"x","ttl_seconds":300.0}"#,
        r#"{"strategy":"x","ttl_seconds":3e2}"#,
        r#"{"strategy":"x","ttl_seconds":3.00E+2}"#,
    ] {
        let resp = codec::json::decode::<ProxyResponse>(body.as_bytes()).expect(body);
        assert_eq!(resp.ttl_seconds.get(), 300, "{body}");
    }
    for body in [
        r#"{"strategy":"x","ttl_seconds":1.5}"#,
        r#"{"strategy":"x","ttl_seconds":300.25}"#,
        r#"{"strategy":"x","ttl_seconds":1e300}"#,
    ] {
        assert_eq!(
            codec::json::decode::<ProxyResponse>(body.as_bytes())
                .unwrap_err()
                .to_string(),
            "ttl_seconds: out of range (expected 1 to 86400 seconds)",
            "{body}"
        );
    }
    // Not a number: a JSON error.
    for body in [
        r#"{"strategy":"x","ttl_seconds":"300"}"#,
        r#"{"strategy":"x","ttl_seconds":true}"#,
    ] {
        assert!(
            matches!(
                codec::json::decode::<ProxyResponse>(body.as_bytes()),
                Err(DecodeError::Json(_))
            ),
            "{body}"
        );
    }
}

#[test]
fn health_score_range() {
    for score in [-0.01f64, 1.01, -1.0, 2.0, 1e10, -1e-30] {
        rejects::<ProxyResponse>(
            &with(response_body(), "metadata.health_score", Some(json!(score))),
            "metadata.health_score: out of range (expected 0.0 to 1.0)",
        );
    }
    for score in [0.0f64, 1.0, 0.5, 0.98, 1e-30] {
        let resp: ProxyResponse = accepts(&with(
            response_body(),
            "metadata.health_score",
            Some(json!(score)),
        ));
        assert_eq!(resp.metadata.health_score.unwrap().get(), score as f32);
    }
    for bad in [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -f32::MIN_POSITIVE,
        1.0 + f32::EPSILON,
    ] {
        assert_eq!(
            HealthScore::new(bad).unwrap_err().to_string(),
            "metadata.health_score: out of range (expected 0.0 to 1.0)"
        );
    }
    // NaN can travel in postcard (not in JSON): still rejected.
    let body = with(response_body(), "metadata.health_score", Some(json!(0.5)));
    let mut bytes = postcard_of::<ProxyResponse>(&body);
    let at = bytes
        .windows(4)
        .rposition(|w| w == 0.5f32.to_le_bytes())
        .unwrap();
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_eq!(
        codec::postcard::decode::<ProxyResponse>(&bytes)
            .unwrap_err()
            .to_string(),
        "metadata.health_score: out of range (expected 0.0 to 1.0)"
    );
}

#[test]
fn latency_must_be_a_u32() {
    let fb: ProxyFeedback = accepts(&with(feedback_body(), "latency_ms", Some(json!(u32::MAX))));
    assert_eq!(fb.latency_ms, Some(u32::MAX));
    // JSON only: postcard carries the integer itself.
    for whole in ["45.0", "4.5e1", "45"] {
        let text = serde_json::to_string(&feedback_body())
            .unwrap()
            .replace(r#""latency_ms":45"#, &format!(r#""latency_ms":{whole}"#));
        let fb = codec::json::decode::<ProxyFeedback>(text.as_bytes()).expect(&text);
        assert_eq!(fb.latency_ms, Some(45), "{text}");
        let fb: ProxyFeedback = serde_json::from_str(&text).expect(&text);
        assert_eq!(fb.latency_ms, Some(45), "serde_json: {text}");
    }
    for bad in [json!(-1), json!(u64::from(u32::MAX) + 1), json!(4.5)] {
        let text = serde_json::to_string(&with(feedback_body(), "latency_ms", Some(bad))).unwrap();
        assert_eq!(
            codec::json::decode::<ProxyFeedback>(text.as_bytes())
                .unwrap_err()
                .to_string(),
            "latency_ms: out of range (expected a whole number of milliseconds from 0 to 4294967295)",
            "{text}"
        );
    }
    for bad in [json!("45"), json!(true)] {
        let text = serde_json::to_string(&with(feedback_body(), "latency_ms", Some(bad))).unwrap();
        assert!(
            matches!(
                codec::json::decode::<ProxyFeedback>(text.as_bytes()),
                Err(DecodeError::Json(_))
            ),
            "{text}"
        );
    }
}

// ---------------------------------------------------------------- timestamps

#[test]
fn timestamp_errors() {
    let malformed =
        "timestamp: malformed (expected an RFC 3339 date-time such as 2024-09-23T10:30:00Z)";
    let out_of_range = "timestamp: out of range (expected a real calendar date and a time of day)";
    for (text, message) in [
        ("2024-09-23 10:30:00", malformed),
        ("2024-09-23T10:30:00", malformed),
        ("2024-09-23T10:30:00.Z", malformed),
        ("2024-09-23T10:30:00+0200", malformed),
        ("2024-9-23T10:30:00Z", malformed),
        ("yesterday at noon, UTC", malformed),
        ("2024-09-23T10:30:00Zjunk", malformed),
        ("2024-09-23T1é:30:00Z", malformed),
        ("", malformed),
        ("2024-02-30T00:00:00Z", out_of_range),
        ("2023-02-29T00:00:00Z", out_of_range),
        ("2024-13-01T00:00:00Z", out_of_range),
        ("2024-00-01T00:00:00Z", out_of_range),
        ("2024-09-23T24:00:00Z", out_of_range),
        ("2024-09-23T10:60:00Z", out_of_range),
        ("2024-09-23T10:30:61Z", out_of_range),
        ("2024-09-23T10:30:00+24:00", out_of_range),
        ("0000-01-01T00:00:00+00:01", out_of_range),
        ("9999-12-31T23:59:59-00:01", out_of_range),
    ] {
        assert_eq!(
            text.parse::<Timestamp>().unwrap_err().to_string(),
            message,
            "{text:?}"
        );
        rejects::<ProxyFeedback>(
            &with(feedback_body(), "timestamp", Some(json!(text))),
            message,
        );
    }
    for (text, canonical) in [
        ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"),
        ("2024-09-23t10:30:00z", "2024-09-23T10:30:00Z"),
        ("2024-09-23 10:30:00Z", "2024-09-23T10:30:00Z"),
        ("2024-09-23T10:30:00.5Z", "2024-09-23T10:30:00.500Z"),
        ("2024-09-23T10:30:00.123456789Z", "2024-09-23T10:30:00.123Z"),
        ("2024-09-23T10:30:00.000Z", "2024-09-23T10:30:00Z"),
        ("2024-09-23T05:00:00-05:30", "2024-09-23T10:30:00Z"),
        ("2016-12-31T23:59:60Z", "2017-01-01T00:00:00Z"),
        ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
        ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
    ] {
        assert_eq!(
            text.parse::<Timestamp>().unwrap().to_string(),
            canonical,
            "{text}"
        );
    }
    let longest = format!(
        "2024-09-23T10:30:00.{}Z",
        "1".repeat(MAX_TIMESTAMP_LEN - 21)
    );
    assert_eq!(longest.len(), MAX_TIMESTAMP_LEN);
    assert!(longest.parse::<Timestamp>().is_ok());
    let first = "0000-01-01T00:00:00Z"
        .parse::<Timestamp>()
        .unwrap()
        .unix_millis();
    let last = "9999-12-31T23:59:59.999Z"
        .parse::<Timestamp>()
        .unwrap()
        .unix_millis();
    assert!(Timestamp::from_unix_millis(first).is_some());
    assert!(Timestamp::from_unix_millis(first - 1).is_none());
    assert!(Timestamp::from_unix_millis(last).is_some());
    assert!(Timestamp::from_unix_millis(last + 1).is_none());
    assert!(Timestamp::from_unix_millis(i64::MIN).is_none());
    assert!(Timestamp::from_unix_millis(i64::MAX).is_none());
}

// ---------------------------------------------------------------- lists and free text

#[test]
fn lists_over_their_bound_are_too_many() {
    let feeds: Vec<String> = (0..=MAX_FEED_TYPES).map(|i| format!("f{i}")).collect();
    rejects::<ProxyRequest>(
        &with(request_body(), "metadata.feed_types", Some(json!(feeds))),
        "metadata.feed_types: too many items: 17 (at most 16 allowed)",
    );
    let symbols: Vec<String> = (0..MAX_SYMBOLS + 10).map(|i| format!("S{i}")).collect();
    let err = rejects::<ProxyRequest>(
        &with(request_body(), "metadata.symbols", Some(json!(symbols))),
        "metadata.symbols: too many items: 74 (at most 64 allowed)",
    );
    assert_eq!(
        err.reason,
        Reason::TooMany {
            len: 74,
            max: MAX_SYMBOLS
        }
    );
    // Exactly at the bound is fine, and nothing is dropped.
    let feeds: Vec<String> = (0..MAX_FEED_TYPES).map(|i| format!("f{i}")).collect();
    let symbols: Vec<String> = (0..MAX_SYMBOLS).map(|i| format!("S{i}")).collect();
    let body = with(
        with(request_body(), "metadata.feed_types", Some(json!(feeds))),
        "metadata.symbols",
        Some(json!(symbols)),
    );
    let req: ProxyRequest = accepts(&body);
    assert_eq!(req.metadata.feed_types.len(), MAX_FEED_TYPES);
    assert_eq!(req.metadata.symbols.len(), MAX_SYMBOLS);
    assert_eq!(req.metadata.symbols.last().unwrap().as_str(), "S63");
    // A list of the wrong type is a JSON error.
    let text = serde_json::to_string(&with(
        request_body(),
        "metadata.symbols",
        Some(json!("BTC-USD")),
    ))
    .unwrap();
    assert!(matches!(
        codec::json::decode::<ProxyRequest>(text.as_bytes()),
        Err(DecodeError::Json(_))
    ));
}

#[test]
fn error_details_are_cut_on_a_char_boundary_never_rejected() {
    let max = MAX_ERROR_DETAILS_LEN;
    // (input, expected kept text)
    let cases: Vec<(String, String)> = vec![
        ("x".repeat(max), "x".repeat(max)),
        ("x".repeat(max + 1), "x".repeat(max)),
        ("x".repeat(5 * max), "x".repeat(max)),
        // A 2-byte char straddling the cut is dropped whole.
        (format!("{}é", "x".repeat(max - 1)), "x".repeat(max - 1)),
        (
            format!("{}é", "x".repeat(max - 2)),
            format!("{}é", "x".repeat(max - 2)),
        ),
        // 3- and 4-byte chars at every offset of the cut.
        (format!("{}€tail", "x".repeat(max - 1)), "x".repeat(max - 1)),
        (format!("{}€tail", "x".repeat(max - 2)), "x".repeat(max - 2)),
        (
            format!("{}€tail", "x".repeat(max - 3)),
            format!("{}€", "x".repeat(max - 3)),
        ),
        (format!("{}😀", "x".repeat(max - 3)), "x".repeat(max - 3)),
        (format!("{}😀", "x".repeat(max - 1)), "x".repeat(max - 1)),
        ("😀".repeat(200), "😀".repeat(max / 4)),
        ("é".repeat(300), "é".repeat(max / 2)),
        // Control characters are kept (it is free text).
        (
            "line1\nline2\ttab\u{0}".to_owned(),
            "line1\nline2\ttab\u{0}".to_owned(),
        ),
    ];
    for (input, kept) in &cases {
        assert_eq!(ErrorDetails::new(input).as_str(), kept.as_str());
        let body = with(feedback_body(), "error_details", Some(json!(input)));
        let fb: ProxyFeedback = accepts(&body);
        assert_eq!(fb.error_details.as_ref().unwrap().as_str(), kept.as_str());
        // And it round-trips once cut.
        let mut buf = [0u8; 8192];
        let n = codec::json::encode(&fb, &mut buf).unwrap();
        assert_eq!(codec::json::decode::<ProxyFeedback>(&buf[..n]).unwrap(), fb);
    }
}

// ---------------------------------------------------------------- codec errors

#[test]
fn input_over_the_limit_is_too_large() {
    // Exactly MAX_INPUT_LEN bytes (valid JSON padded with whitespace) is accepted.
    let body = serde_json::to_string(&request_body()).unwrap();
    let padded = format!("{body}{}", " ".repeat(MAX_INPUT_LEN - body.len()));
    assert_eq!(padded.len(), MAX_INPUT_LEN);
    assert!(codec::json::decode::<ProxyRequest>(padded.as_bytes()).is_ok());
    let over = format!("{padded} ");
    let err = codec::json::decode::<ProxyRequest>(over.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        DecodeError::TooLarge {
            format: Format::Json,
            len: MAX_INPUT_LEN + 1,
            max: MAX_INPUT_LEN
        }
    );
    assert_eq!(
        err.to_string(),
        "JSON message too large: 16385 bytes (at most 16384 accepted)"
    );

    let mut bytes = postcard_of::<ProxyRequest>(&request_body());
    bytes.resize(MAX_INPUT_LEN + 1, 0);
    let err = codec::postcard::decode::<ProxyRequest>(&bytes).unwrap_err();
    assert_eq!(
        err,
        DecodeError::TooLarge {
            format: Format::Postcard,
            len: MAX_INPUT_LEN + 1,
            max: MAX_INPUT_LEN
        }
    );
    assert_eq!(
        err.to_string(),
        "postcard message too large: 16385 bytes (at most 16384 accepted)"
    );
    for len in [MAX_INPUT_LEN + 1, 10 * MAX_INPUT_LEN] {
        let huge = vec![b'{'; len];
        assert!(matches!(
            codec::json::decode::<ProxyFeedback>(&huge),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}

#[test]
fn malformed_json_is_a_typed_error() {
    let bodies: &[&[u8]] = &[
        b"",
        b"   ",
        b"{",
        b"}",
        b"[]",
        b"null",
        b"42",
        b"\"exchange_id\"",
        br#"{"exchange_id":}"#,
        br#"{"exchange_id":"binance""#,
        br#"{"exchange_id":"binance",}"#,
        br#"{"exchange_id":"binance" "connection_type":"ws"}"#,
        br#"{"exchange_id":"bin"#,
        br#"{"exchange_id":42,"connection_type":"ws","client_id":"c"}"#,
        br#"{"exchange_id":["binance"],"connection_type":"ws","client_id":"c"}"#,
        br#"{"exchange_id":"binance","connection_type":"ws","client_id":"c"} trailing"#,
        br#"{"exchange_id":"binance","connection_type":"ws","client_id":"c"}{}"#,
        br#"{exchange_id:"binance"}"#,
        br#"{'exchange_id':'binance'}"#,
        br#"{"exchange_id":"bad \x escape","connection_type":"ws","client_id":"c"}"#,
        br#"{"exchange_id":"bad \u12 escape","connection_type":"ws","client_id":"c"}"#,
        b"{\"exchange_id\":\"\xff\xfe\",\"connection_type\":\"ws\",\"client_id\":\"c\"}",
        b"\xef\xbb\xbf{}",
        br#"{"metadata":{"feed_types":[1,2]},"exchange_id":"binance","connection_type":"ws","client_id":"c"}"#,
        br#"{"metadata":{"feed_types":["a",]},"exchange_id":"binance","connection_type":"ws","client_id":"c"}"#,
    ];
    for body in bodies {
        let err = codec::json::decode::<ProxyRequest>(body).unwrap_err();
        assert!(
            matches!(err, DecodeError::Json(_)),
            "{:?}: {err:?}",
            String::from_utf8_lossy(body)
        );
        assert!(err.to_string().starts_with("malformed JSON: "), "{err}");
    }
}

#[test]
fn json_escapes_are_decoded() {
    let body = br#"{"exchange_id":"\u0062inance","connection_type":"w\u0073","client_id":"c1"}"#;
    let req: ProxyRequest = codec::json::decode(body).unwrap();
    assert_eq!(req.exchange_id.as_str(), "binance");
    assert_eq!(req.connection_type, ConnectionType::Websocket);
    let body = br#"{"exchange_id":"binance","connection_type":"ws","client_id":"say \"hi\" caf\u00e9 \\ \/ \ud83d\ude00"}"#;
    let req: ProxyRequest = codec::json::decode(body).unwrap();
    assert_eq!(req.client_id.as_str(), "say \"hi\" café \\ / 😀");
    // Re-encoded with escapes where JSON needs them, and read back equal.
    let mut buf = [0u8; 256];
    let n = codec::json::encode(&req, &mut buf).unwrap();
    let v: Value = serde_json::from_slice(&buf[..n]).unwrap();
    assert_eq!(v["client_id"], json!("say \"hi\" café \\ / 😀"));
    assert_eq!(codec::json::decode::<ProxyRequest>(&buf[..n]).unwrap(), req);
    // Escapes count after decoding: 64 escaped chars fit a 64-byte id.
    let escaped = "\\u0061".repeat(MAX_EXCHANGE_ID_LEN);
    let body = format!(r#"{{"exchange_id":"{escaped}","connection_type":"ws","client_id":"c"}}"#);
    let req: ProxyRequest = codec::json::decode(body.as_bytes()).unwrap();
    assert_eq!(req.exchange_id.as_str(), "a".repeat(MAX_EXCHANGE_ID_LEN));
    let body =
        format!(r#"{{"exchange_id":"{escaped}\u0061","connection_type":"ws","client_id":"c"}}"#);
    assert_eq!(
        codec::json::decode::<ProxyRequest>(body.as_bytes())
            .unwrap_err()
            .to_string(),
        "exchange_id: too long: 65 bytes (at most 64 allowed)"
    );
    // Escaped control characters in error details are kept.
    let body = br#"{"exchange_id":"binance","connection_type":"ws","success":false,"timestamp":"2024-09-23T10:30:00Z","client_id":"c","error_details":"line1\nline2 \"quoted\" \u00e9"}"#;
    let fb: ProxyFeedback = codec::json::decode(body).unwrap();
    assert_eq!(
        fb.error_details.unwrap().as_str(),
        "line1\nline2 \"quoted\" é"
    );
    // A control character in an id, escaped or not, is invalid.
    let body = br#"{"exchange_id":"binance","connection_type":"ws","client_id":"a\u0000b"}"#;
    assert_eq!(
        codec::json::decode::<ProxyRequest>(body)
            .unwrap_err()
            .to_string(),
        format!("client_id: invalid character (expected {PRINTABLE})")
    );
}

/// A JSON string literal for `s` written the way Python's `json.dumps` writes
/// it by default (`ensure_ascii`): every non-ASCII character as `\uXXXX`, those
/// outside the Basic Multilingual Plane as a surrogate pair.
fn ascii_json(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => {
                for unit in c.encode_utf16(&mut [0u16; 2]) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

#[test]
fn surrogate_pair_escapes_are_joined() {
    let body = br#"{"exchange_id":"binance","connection_type":"ws","client_id":"bot \ud83d\ude00 \uD83D\uDE80 caf\u00e9"}"#;
    let req: ProxyRequest = codec::json::decode(body).unwrap();
    assert_eq!(req.client_id.as_str(), "bot 😀 🚀 café");
    assert_eq!(serde_json::from_slice::<ProxyRequest>(body).unwrap(), req);
    for c in ['\u{10000}', '\u{1F600}', '\u{10FFFF}'] {
        let text = format!("a{c}b");
        let body = format!(
            r#"{{"exchange_id":"binance","connection_type":"ws","client_id":{}}}"#,
            ascii_json(&text)
        );
        let req: ProxyRequest = codec::json::decode(body.as_bytes()).unwrap();
        assert_eq!(req.client_id.as_str(), text);
    }
    // An escaped backslash followed by "ud83d" is text, not an escape.
    let body = br#"{"exchange_id":"binance","connection_type":"ws","client_id":"\\ud83d\\ude00 \ud83d\ude00"}"#;
    let req: ProxyRequest = codec::json::decode(body).unwrap();
    assert_eq!(req.client_id.as_str(), "\\ud83d\\ude00 😀");
    assert_eq!(serde_json::from_slice::<ProxyRequest>(body).unwrap(), req);
    // In keys and unknown fields too.
    let body = br#"{"n\ud83d\ude00":"\ud83d\ude00","exchange_id":"binance","connection_type":"ws","client_id":"c"}"#;
    assert_eq!(
        codec::json::decode::<ProxyRequest>(body)
            .unwrap()
            .client_id
            .as_str(),
        "c"
    );
    // A lone or reversed surrogate is still malformed, as with serde_json.
    for lone in [
        r"\ud83d",
        r"\ude00",
        r"\ud83d\u0041",
        r"\ud83dx",
        r"\ude00\ud83d",
        r"\ud83d\ud83d",
    ] {
        let body =
            format!(r#"{{"exchange_id":"binance","connection_type":"ws","client_id":"a{lone}"}}"#);
        assert!(
            matches!(
                codec::json::decode::<ProxyRequest>(body.as_bytes()),
                Err(DecodeError::Json(_))
            ),
            "{lone}"
        );
        assert!(
            serde_json::from_str::<ProxyRequest>(&body).is_err(),
            "{lone}"
        );
    }
    // Other errors are not hidden by the retry.
    let body = br#"{"exchange_id":"binance","connection_type":"ws","client_id":"\ud83d\ude00 \x"}"#;
    assert_eq!(
        codec::json::decode::<ProxyRequest>(body).unwrap_err(),
        DecodeError::Json(serde_json_core::de::Error::InvalidEscapeSequence)
    );
    let body = br#"{"exchange_id":"bin ance","connection_type":"ws","client_id":"\ud83d\ude00"}"#;
    assert_eq!(
        codec::json::decode::<ProxyRequest>(body)
            .unwrap_err()
            .to_string(),
        format!("exchange_id: invalid character (expected {IDENT})")
    );
}

#[test]
fn long_escaped_strings_decode() {
    // Error details with escapes, longer than the usual unescape scratch
    // buffer: cut to MAX_ERROR_DETAILS_LEN bytes, never refused.
    let text = "line \"quoted\"\n\tcaf\u{e9} \u{1F600}\n".repeat(100);
    assert!(text.len() > 2 * codec::json::UNESCAPE_SCRATCH_LEN);
    for body in [
        serde_json::to_string(&with(feedback_body(), "error_details", Some(json!(text)))).unwrap(),
        serde_json::to_string(&feedback_body()).unwrap().replace(
            r#""error_details":null"#,
            &format!(r#""error_details":{}"#, ascii_json(&text)),
        ),
    ] {
        assert!(body.len() <= MAX_INPUT_LEN);
        let fb: ProxyFeedback = codec::json::decode(body.as_bytes()).unwrap();
        let kept = fb.error_details.unwrap();
        assert_eq!(kept.as_str(), ErrorDetails::new(&text).as_str());
        assert!(kept.as_str().len() > MAX_ERROR_DETAILS_LEN - 4);
    }
    // An unknown field with a long escaped string is still ignored.
    let mut body = response_body();
    body["debug"] = json!("trace \"x\"\n".repeat(400));
    let text = serde_json::to_string(&body).unwrap();
    assert_eq!(
        codec::json::decode::<ProxyResponse>(text.as_bytes()).unwrap(),
        accepts::<ProxyResponse>(&response_body())
    );
    // A long escaped id is too long under its name, not a JSON error.
    let body = format!(
        r#"{{"exchange_id":"{}","connection_type":"ws","client_id":"c"}}"#,
        "\\u0061".repeat(2000)
    );
    assert_eq!(
        codec::json::decode::<ProxyRequest>(body.as_bytes())
            .unwrap_err()
            .to_string(),
        "exchange_id: too long: 2000 bytes (at most 64 allowed)"
    );
}

proptest! {
    /// Whatever a Python client writes with `json.dumps` decodes like serde_json.
    #[test]
    fn ascii_escaped_text_decodes(text in "\\PC{1,32}", details in "\\PC{0,600}") {
        prop_assume!(text.len() <= MAX_CLIENT_ID_LEN);
        let body = format!(
            r#"{{"exchange_id":"binance","connection_type":"ws","success":false,"timestamp":"2024-09-23T10:30:00Z","client_id":{},"error_details":{}}}"#,
            ascii_json(&text),
            ascii_json(&details)
        );
        let fb: ProxyFeedback = codec::json::decode(body.as_bytes()).unwrap();
        prop_assert_eq!(fb.client_id.as_str(), text.as_str());
        let expected = ErrorDetails::new(&details);
        prop_assert_eq!(fb.error_details.as_ref(), Some(&expected));
        prop_assert_eq!(serde_json::from_str::<ProxyFeedback>(&body).unwrap(), fb);
    }
}

fn encoded_postcard<M: Message>(msg: &M) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_INPUT_LEN];
    let n = codec::postcard::encode(msg, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn sample_messages() -> (ProxyRequest, ProxyResponse, ProxyFeedback) {
    let req = accepts::<ProxyRequest>(&request_body());
    let resp = accepts::<ProxyResponse>(&response_body());
    let fb = accepts::<ProxyFeedback>(&with(
        feedback_body(),
        "error_details",
        Some(json!("tunnel refused: 403 \"Forbidden\" ü")),
    ));
    (req, resp, fb)
}

#[test]
fn truncated_postcard_is_an_error() {
    fn check<M: Message + std::fmt::Debug>(msg: &M) {
        let bytes = encoded_postcard(msg);
        for cut in 0..bytes.len() {
            let err = codec::postcard::decode::<M>(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, DecodeError::Postcard(_)),
                "cut at {cut}: {err:?}"
            );
            assert!(err.to_string().starts_with("malformed postcard message: "));
        }
    }
    let (req, resp, fb) = sample_messages();
    check(&req);
    check(&resp);
    check(&fb);
}

#[test]
fn trailing_bytes_after_postcard_are_an_error() {
    fn check<M: Message + std::fmt::Debug>(msg: &M) {
        let bytes = encoded_postcard(msg);
        assert!(codec::postcard::decode::<M>(&bytes).is_ok());
        for extra in [&[0u8][..], &[1], &[0, 0, 0, 0], &bytes] {
            let mut longer = bytes.clone();
            longer.extend_from_slice(extra);
            assert_eq!(
                codec::postcard::decode::<M>(&longer).unwrap_err(),
                DecodeError::Postcard(postcard::Error::DeserializeBadEncoding)
            );
        }
    }
    let (req, resp, fb) = sample_messages();
    check(&req);
    check(&resp);
    check(&fb);
}

#[test]
fn encoding_into_a_small_buffer_is_buffer_too_small() {
    fn check<M: Message>(msg: &M) {
        let mut big = [0u8; 4096];
        for (format, needed) in [
            (Format::Json, codec::json::encode(msg, &mut big).unwrap()),
            (
                Format::Postcard,
                codec::postcard::encode(msg, &mut big).unwrap(),
            ),
        ] {
            for capacity in (0..needed).step_by(7).chain([needed - 1]) {
                let mut small = vec![0u8; capacity];
                let err = match format {
                    Format::Json => codec::json::encode(msg, &mut small),
                    Format::Postcard => codec::postcard::encode(msg, &mut small),
                }
                .unwrap_err();
                assert_eq!(err, EncodeError::BufferTooSmall { format, capacity });
            }
            let mut exact = vec![0u8; needed];
            let n = match format {
                Format::Json => codec::json::encode(msg, &mut exact),
                Format::Postcard => codec::postcard::encode(msg, &mut exact),
            }
            .unwrap();
            assert_eq!(n, needed);
        }
    }
    let (req, resp, fb) = sample_messages();
    check(&req);
    check(&resp);
    check(&fb);
    let err = codec::json::encode(&req, &mut [0u8; 10]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "JSON encoding does not fit in a 10-byte buffer; give a larger one"
    );
    let err = codec::json::encode_batch(&[fb.clone(), fb], &mut [0u8; 100]).unwrap_err();
    assert_eq!(
        err,
        EncodeError::BufferTooSmall {
            format: Format::Json,
            capacity: 100
        }
    );
}

#[test]
fn errors_are_std_errors_with_sources() {
    let err = codec::json::decode::<ProxyRequest>(
        br#"{"exchange_id":"","connection_type":"ws","client_id":"c"}"#,
    )
    .unwrap_err();
    let as_dyn: &dyn std::error::Error = &err;
    let source = as_dyn.source().expect("the validation error");
    assert_eq!(source.to_string(), "exchange_id: must not be empty");
    let err = codec::json::decode::<ProxyRequest>(b"{").unwrap_err();
    assert!((&err as &dyn std::error::Error).source().is_none());
}

// ---------------------------------------------------------------- garbage in

fn decode_all(bytes: &[u8]) {
    // Only the absence of panics (and hangs) is checked: any result is fine.
    let _ = codec::json::decode::<ProxyRequest>(bytes);
    let _ = codec::json::decode::<ProxyResponse>(bytes);
    let _ = codec::json::decode::<ProxyFeedback>(bytes);
    let _ = codec::postcard::decode::<ProxyRequest>(bytes);
    let _ = codec::postcard::decode::<ProxyResponse>(bytes);
    let _ = codec::postcard::decode::<ProxyFeedback>(bytes);
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(
        which in 0usize..3,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        json in any::<bool>(),
    ) {
        let (req, resp, fb) = sample_messages();
        let mut buf = [0u8; 2048];
        let n = match (which, json) {
            (0, true) => codec::json::encode(&req, &mut buf),
            (1, true) => codec::json::encode(&resp, &mut buf),
            (_, true) => codec::json::encode(&fb, &mut buf),
            (0, false) => codec::postcard::encode(&req, &mut buf),
            (1, false) => codec::postcard::encode(&resp, &mut buf),
            (_, false) => codec::postcard::encode(&fb, &mut buf),
        }
        .unwrap();
        let bytes = &mut buf[..n];
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        decode_all(bytes);
    }

    /// Postcard with a huge declared list length reads to the end of the
    /// input and fails; it does not try to hold the items.
    #[test]
    fn absurd_postcard_lengths_fail_cleanly(len in 65u32.., fill in any::<u8>()) {
        let (req, _, _) = sample_messages();
        let bytes = encoded_postcard(&req);
        let mut evil = bytes.clone();
        // Replace everything after the first field with a varint length and filler.
        evil.truncate(1);
        let mut v = len;
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                evil.push(b);
                break;
            }
            evil.push(b | 0x80);
        }
        evil.extend(std::iter::repeat_n(fill, 64));
        prop_assert!(codec::postcard::decode::<ProxyRequest>(&evil).is_err());
    }
}
