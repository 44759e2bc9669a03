//! The bodies published in the API documentation decode to the values they
//! state and re-encode to equivalent JSON, through core's JSON codec and
//! through serde_json with the model's serde impls. Also: what a lenient
//! reader of the published API must accept (unknown fields, null as absent,
//! defaults, aliases, case folding).

use proxy_delegate_core::codec::{self, DecodeError, Message};
use proxy_delegate_core::model::{
    ConnectionType, FallbackPolicy, FeedbackEvent, ProxyFeedback, ProxyRequest, ProxyResponse,
    Scheme,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

const REQUEST_JSON: &str = r#"{"exchange_id":"binance","connection_type":"websocket","region":"us-east-1","client_id":"cryptofeed-instance-123","metadata":{"feed_types":["trades","book"],"symbols":["BTC-USD","ETH-USD"]}}"#;
const RESPONSE_JSON: &str = r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","strategy":"least_connections","ttl_seconds":300,"fallback_policy":"direct_connection","metadata":{"proxy_id":"proxy-123","region":"us-east-1","health_score":0.98}}"#;
const FEEDBACK_JSON: &str = r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","exchange_id":"binance","connection_type":"websocket","success":true,"latency_ms":45,"error_details":null,"timestamp":"2024-09-23T10:30:00Z","client_id":"cryptofeed-instance-123"}"#;

/// Fields the feedback encoder adds to the published body: the event that
/// `success` was derived from. Nothing else may appear.
const FEEDBACK_EXTRA_FIELDS: &[&str] = &["event"];

/// Removes every `null` member of every object, so that `null` and absent
/// compare equal.
fn drop_nulls(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, drop_nulls(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(drop_nulls).collect()),
        other => other,
    }
}

/// Compares `actual` with `expected` (null = absent), allowing only the
/// listed top-level `extra` fields on top.
fn assert_equivalent(actual: &str, expected: Value, extra: &[&str]) {
    let mut actual = drop_nulls(serde_json::from_str(actual).expect("encoder wrote invalid JSON"));
    let obj = actual.as_object_mut().expect("an object");
    for field in extra {
        assert!(
            obj.remove(*field).is_some(),
            "listed extra field {field:?} was not written"
        );
    }
    assert_eq!(actual, drop_nulls(expected));
}

/// Decodes with core's codec and with serde_json, checks both agree, and
/// returns the value with both re-encodings.
fn decode_both<M>(body: &str) -> (M, String, String)
where
    M: Message + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let core: M = codec::json::decode(body.as_bytes()).expect("core codec decodes");
    let std: M = serde_json::from_str(body).expect("serde_json decodes");
    assert_eq!(core, std, "the two decoders disagree");
    let mut buf = [0u8; 4096];
    let n = codec::json::encode(&core, &mut buf).expect("core codec encodes");
    let core_text = std::str::from_utf8(&buf[..n]).unwrap().to_owned();
    let std_text = serde_json::to_string(&std).expect("serde_json encodes");
    (core, core_text, std_text)
}

#[test]
fn published_request_decodes_and_re_encodes() {
    let (req, core_text, std_text) = decode_both::<ProxyRequest>(REQUEST_JSON);
    assert_eq!(req.exchange_id.as_str(), "binance");
    assert_eq!(req.connection_type, ConnectionType::Websocket);
    assert_eq!(req.region.as_ref().map(|r| r.as_str()), Some("us-east-1"));
    assert_eq!(req.client_id.as_str(), "cryptofeed-instance-123");
    let feeds: Vec<&str> = req.metadata.feed_types.iter().map(|f| f.as_str()).collect();
    assert_eq!(feeds, ["trades", "book"]);
    let symbols: Vec<&str> = req.metadata.symbols.iter().map(|s| s.as_str()).collect();
    assert_eq!(symbols, ["BTC-USD", "ETH-USD"]);

    let published: Value = serde_json::from_str(REQUEST_JSON).unwrap();
    assert_equivalent(&core_text, published.clone(), &[]);
    assert_equivalent(&std_text, published, &[]);
}

#[test]
fn published_response_decodes_and_re_encodes() {
    let (resp, core_text, std_text) = decode_both::<ProxyResponse>(RESPONSE_JSON);
    let url = resp.proxy_url.as_ref().expect("a proxy");
    assert_eq!(url.scheme(), Scheme::Socks5);
    assert_eq!(url.host(), "proxy-server");
    assert_eq!(url.port(), 1080);
    assert_eq!(url.username(), Some("user"));
    assert_eq!(url.password().map(|p| p.expose()), Some("pass"));
    assert_eq!(url.to_string(), "socks5://user:***@proxy-server:1080");
    assert_eq!(resp.strategy.as_str(), "least_connections");
    assert_eq!(resp.ttl_seconds.get(), 300);
    assert_eq!(resp.fallback_policy, FallbackPolicy::DirectConnection);
    assert_eq!(
        resp.metadata.proxy_id.as_ref().map(|p| p.as_str()),
        Some("proxy-123")
    );
    assert_eq!(
        resp.metadata.region.as_ref().map(|r| r.as_str()),
        Some("us-east-1")
    );
    assert_eq!(resp.metadata.health_score.map(|h| h.get()), Some(0.98));

    // The response is the one message whose encoding carries credentials: the
    // client needs them to connect.
    let published: Value = serde_json::from_str(RESPONSE_JSON).unwrap();
    assert_equivalent(&core_text, published.clone(), &[]);
    assert_equivalent(&std_text, published, &[]);
}

#[test]
fn published_feedback_decodes_without_credentials_and_re_encodes() {
    let (fb, core_text, std_text) = decode_both::<ProxyFeedback>(FEEDBACK_JSON);
    let url = fb.proxy_url.as_ref().expect("a proxy");
    assert!(!url.has_credentials());
    assert_eq!(
        url.expose_credentials().to_string(),
        "socks5://proxy-server:1080"
    );
    assert_eq!(fb.proxy_id, None);
    assert_eq!(fb.exchange_id.as_str(), "binance");
    assert_eq!(fb.connection_type, ConnectionType::Websocket);
    assert!(fb.success);
    assert_eq!(fb.event, FeedbackEvent::Success);
    assert_eq!(fb.latency_ms, Some(45));
    assert_eq!(fb.error_category, None);
    assert_eq!(fb.error_details, None);
    assert_eq!(fb.timestamp.unix_millis(), 1_727_087_400_000);
    assert_eq!(fb.timestamp.to_string(), "2024-09-23T10:30:00Z");
    assert_eq!(fb.client_id.as_str(), "cryptofeed-instance-123");

    let mut expected: Value = serde_json::from_str(FEEDBACK_JSON).unwrap();
    expected["proxy_url"] = json!("socks5://proxy-server:1080");
    for text in [&core_text, &std_text] {
        assert!(!text.contains("pass"), "credentials re-encoded: {text}");
        assert!(!text.contains("user@"), "credentials re-encoded: {text}");
        assert_equivalent(text, expected.clone(), FEEDBACK_EXTRA_FIELDS);
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["event"], json!("success"));
    }
}

#[test]
fn published_bodies_round_trip_through_postcard() {
    fn check<M: Message + DeserializeOwned + PartialEq + std::fmt::Debug>(body: &str) {
        let value: M = codec::json::decode(body.as_bytes()).unwrap();
        let mut buf = [0u8; 1024];
        let n = codec::postcard::encode(&value, &mut buf).unwrap();
        assert!(n < body.len(), "postcard should be more compact than JSON");
        assert_eq!(codec::postcard::decode::<M>(&buf[..n]).unwrap(), value);
    }
    check::<ProxyRequest>(REQUEST_JSON);
    check::<ProxyResponse>(RESPONSE_JSON);
    check::<ProxyFeedback>(FEEDBACK_JSON);
}

/// Decodes `body` with both decoders, which must agree.
fn both<M>(body: &str) -> M
where
    M: Message + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    decode_both::<M>(body).0
}

#[test]
fn response_ignores_unknown_fields_of_any_shape() {
    let base: ProxyResponse = both(RESPONSE_JSON);
    let bodies = [
        r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","zz":1,"strategy":"least_connections","ttl_seconds":300,"fallback_policy":"direct_connection","metadata":{"proxy_id":"proxy-123","region":"us-east-1","health_score":0.98}}"#,
        r#"{"version":2,"proxy_url":"socks5://user:pass@proxy-server:1080","strategy":"least_connections","ttl_seconds":300,"fallback_policy":"direct_connection","metadata":{"proxy_id":"proxy-123","region":"us-east-1","health_score":0.98},"trailer":"x"}"#,
        // Nested objects and arrays, escapes, numbers, booleans and null.
        r#"{"debug":{"candidates":[{"id":"p1","score":0.5,"tags":["a","b\"c"]},{"id":"p2","score":-1e3,"ok":false}],"n":null},
            "proxy_url":"socks5://user:pass@proxy-server:1080","strategy":"least_connections",
            "extra_list":[[1,2],[],{},[{"x":[null,true]}]],"ttl_seconds":300,"note":"caf\u00e9 \"quoted\"",
            "fallback_policy":"direct_connection",
            "metadata":{"proxy_id":"proxy-123","weight":7,"region":"us-east-1","labels":{"tier":["gold"]},"health_score":0.98,"last":[]}}"#,
        // Whitespace everywhere.
        "{ \"proxy_url\" : \"socks5://user:pass@proxy-server:1080\" ,\n\t\"strategy\":\"least_connections\",\r\n \"ttl_seconds\" : 300 , \"fallback_policy\":\"direct_connection\",\"metadata\":{ \"proxy_id\":\"proxy-123\",\"region\":\"us-east-1\",\"health_score\":0.98 , \"x\" : { } } }",
    ];
    for body in bodies {
        let got: ProxyResponse = both(body);
        assert_eq!(got, base, "body: {body}");
    }
}

#[test]
fn request_and_feedback_ignore_unknown_fields() {
    let req: ProxyRequest = both(
        r#"{"exchange_id":"binance","sdk":{"name":"cryptofeed","v":[2,4]},"connection_type":"websocket","region":"us-east-1","client_id":"cryptofeed-instance-123","metadata":{"feed_types":["trades","book"],"depth":10,"symbols":["BTC-USD","ETH-USD"]}}"#,
    );
    assert_eq!(req, both::<ProxyRequest>(REQUEST_JSON));
    let fb: ProxyFeedback = both(
        r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","exchange_id":"binance","connection_type":"websocket","success":true,"latency_ms":45,"error_details":null,"timestamp":"2024-09-23T10:30:00Z","client_id":"cryptofeed-instance-123","host":{"os":"linux","cpus":[0,1]}}"#,
    );
    assert_eq!(fb, both::<ProxyFeedback>(FEEDBACK_JSON));
}

#[test]
fn absent_or_null_proxy_url_means_direct() {
    for body in [
        r#"{"strategy":"direct","ttl_seconds":60}"#,
        r#"{"proxy_url":null,"strategy":"direct","ttl_seconds":60}"#,
        r#"{"proxy_url":null,"strategy":"direct","ttl_seconds":60,"fallback_policy":"fail","metadata":null}"#,
    ] {
        let resp: ProxyResponse = both(body);
        assert_eq!(resp.proxy_url, None, "body: {body}");
        assert_eq!(resp.metadata.proxy_id, None);
        assert_eq!(resp.metadata.health_score, None);
        // Re-encoded, it stays direct (proxy_url null).
        let mut buf = [0u8; 512];
        let n = codec::json::encode(&resp, &mut buf).unwrap();
        let v: Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(v["proxy_url"], Value::Null);
        assert_eq!(
            both::<ProxyResponse>(std::str::from_utf8(&buf[..n]).unwrap()),
            resp
        );
    }
}

#[test]
fn fallback_policy_defaults_to_embedded_fallback() {
    assert_eq!(FallbackPolicy::default(), FallbackPolicy::EmbeddedFallback);
    for body in [
        r#"{"proxy_url":"http://proxy:3128","strategy":"x","ttl_seconds":60}"#,
        r#"{"proxy_url":"http://proxy:3128","strategy":"x","ttl_seconds":60,"fallback_policy":null}"#,
    ] {
        let resp: ProxyResponse = both(body);
        assert_eq!(resp.fallback_policy, FallbackPolicy::EmbeddedFallback);
    }
    for (text, policy) in [
        ("direct_connection", FallbackPolicy::DirectConnection),
        ("embedded_fallback", FallbackPolicy::EmbeddedFallback),
        ("fail", FallbackPolicy::Fail),
        ("FAIL", FallbackPolicy::Fail),
        ("Direct_Connection", FallbackPolicy::DirectConnection),
    ] {
        let body = format!(r#"{{"strategy":"x","ttl_seconds":60,"fallback_policy":"{text}"}}"#);
        assert_eq!(both::<ProxyResponse>(&body).fallback_policy, policy);
    }
}

#[test]
fn connection_type_aliases_and_case() {
    for (text, ct) in [
        ("http", ConnectionType::Http),
        ("rest", ConnectionType::Http),
        ("REST", ConnectionType::Http),
        ("Http", ConnectionType::Http),
        ("websocket", ConnectionType::Websocket),
        ("ws", ConnectionType::Websocket),
        ("WS", ConnectionType::Websocket),
        ("WebSocket", ConnectionType::Websocket),
    ] {
        let body =
            format!(r#"{{"exchange_id":"binance","connection_type":"{text}","client_id":"c1"}}"#);
        let req: ProxyRequest = both(&body);
        assert_eq!(req.connection_type, ct, "{text}");
        // Written back in the canonical spelling.
        let mut buf = [0u8; 256];
        let n = codec::json::encode(&req, &mut buf).unwrap();
        let v: Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(v["connection_type"], json!(ct.as_str()));
        let fb_body = format!(
            r#"{{"exchange_id":"binance","connection_type":"{text}","success":false,"timestamp":"2024-09-23T10:30:00Z","client_id":"c1"}}"#
        );
        let fb: ProxyFeedback = both(&fb_body);
        assert_eq!(fb.connection_type, ct);
        assert_eq!(fb.event, FeedbackEvent::Failure);
    }
}

#[test]
fn exchange_id_is_case_folded() {
    for text in ["BINANCE", "Binance", "biNaNcE", "binance"] {
        let body = format!(r#"{{"exchange_id":"{text}","connection_type":"ws","client_id":"c1"}}"#);
        let req: ProxyRequest = both(&body);
        assert_eq!(req.exchange_id.as_str(), "binance");
        let fb_body = format!(
            r#"{{"exchange_id":"{text}","connection_type":"ws","success":true,"timestamp":"2024-09-23T10:30:00Z","client_id":"c1"}}"#
        );
        assert_eq!(
            both::<ProxyFeedback>(&fb_body).exchange_id.as_str(),
            "binance"
        );
    }
    // Other ids keep their case.
    let req: ProxyRequest = both(
        r#"{"exchange_id":"Coinbase","connection_type":"ws","region":"US-East-1","client_id":"Client-A"}"#,
    );
    assert_eq!(req.exchange_id.as_str(), "coinbase");
    assert_eq!(req.region.unwrap().as_str(), "US-East-1");
    assert_eq!(req.client_id.as_str(), "Client-A");
}

#[test]
fn optional_request_fields_may_be_absent_or_null() {
    let minimal: ProxyRequest =
        both(r#"{"exchange_id":"binance","connection_type":"websocket","client_id":"c1"}"#);
    assert_eq!(minimal.region, None);
    assert!(minimal.metadata.feed_types.is_empty());
    assert!(minimal.metadata.symbols.is_empty());
    for body in [
        r#"{"exchange_id":"binance","connection_type":"websocket","client_id":"c1","region":null,"metadata":null}"#,
        r#"{"exchange_id":"binance","connection_type":"websocket","client_id":"c1","metadata":{}}"#,
        r#"{"exchange_id":"binance","connection_type":"websocket","client_id":"c1","metadata":{"feed_types":[],"symbols":[]}}"#,
        r#"{"exchange_id":"binance","connection_type":"websocket","client_id":"c1","metadata":{"feed_types":null,"symbols":null}}"#,
    ] {
        assert_eq!(both::<ProxyRequest>(body), minimal, "body: {body}");
    }
}

#[test]
fn feedback_event_and_success_derive_each_other() {
    let base = r#""exchange_id":"binance","connection_type":"ws","timestamp":"2024-09-23T10:30:00Z","client_id":"c1""#;
    for (fields, event, success) in [
        (r#""success":true"#, FeedbackEvent::Success, true),
        (r#""success":false"#, FeedbackEvent::Failure, false),
        (r#""event":"timeout""#, FeedbackEvent::Timeout, false),
        (r#""event":"failure""#, FeedbackEvent::Failure, false),
        (
            r#""event":"connect_start""#,
            FeedbackEvent::ConnectStart,
            true,
        ),
        (r#""event":"disconnect""#, FeedbackEvent::Disconnect, true),
        (
            r#""event":"disconnect","success":false"#,
            FeedbackEvent::Disconnect,
            false,
        ),
    ] {
        let fb: ProxyFeedback = both(&format!("{{{base},{fields}}}"));
        assert_eq!((fb.event, fb.success), (event, success), "{fields}");
    }
    let err = codec::json::decode::<ProxyFeedback>(format!("{{{base}}}").as_bytes()).unwrap_err();
    assert_eq!(err.to_string(), "success: missing (this field is required)");
    assert!(matches!(err, DecodeError::Invalid(_)));
}
