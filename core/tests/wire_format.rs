//! The wire formats a build can speak: postcard always, JSON with the
//! `json` feature (on by default). A Resolver or feedback queue configured
//! for a format the build lacks is refused with a `ValidationError` on
//! `wire`, and a postcard-only build still resolves end to end.
//!
//! These tests run in both builds:
//!
//! ```text
//! cargo test -p proxy-delegate-core --test wire_format
//! cargo test -p proxy-delegate-core --test wire_format --no-default-features --features std
//! ```
//!
//! (The other test files use the JSON codec, so only this one is built
//! without it.)

use embassy_time::Instant;
use proxy_delegate_core::Reason;
use proxy_delegate_core::codec::{self, DecodeError, EncodeError, Format};
use proxy_delegate_core::contract::WireFormat;
use proxy_delegate_core::endpoints::EndpointConfig;
use proxy_delegate_core::feedback::{FeedbackConfig, FeedbackQueue};
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ExchangeId, FallbackPolicy, ProxyRequest, ProxyResponse,
    ResponseMetadata, Strategy, TtlSeconds,
};
use proxy_delegate_core::resolver::{
    MIN_TRANSMIT_BUFFER, Output, Reply, Resolution, Resolver, ResolverConfig, Source, TransmitKind,
};

type R = Resolver<(), 4, 1, 4, 2, 2>;

const T0: Instant = Instant::from_secs(1_000);

fn config(wire: WireFormat) -> ResolverConfig {
    let mut c = ResolverConfig::new(ClientId::new("wire-test").expect("valid"));
    c.endpoints.check_jitter_percent = 0;
    c.wire = wire;
    c
}

fn endpoints() -> [EndpointConfig; 1] {
    [EndpointConfig::new(
        "http://127.0.0.1:18200".parse().expect("valid"),
        0,
    )]
}

/// JSON is supported exactly when the feature is on; postcard always.
#[test]
fn is_supported_follows_the_json_feature() {
    assert_eq!(WireFormat::Json.is_supported(), cfg!(feature = "json"));
    assert!(WireFormat::Postcard.is_supported());
}

/// A Resolver configured for JSON builds with the feature and is refused,
/// naming `wire` and the feature, without it. Postcard builds in both.
#[test]
fn resolver_refuses_a_wire_format_the_build_lacks() {
    let json = R::new_boxed(T0, config(WireFormat::Json), &endpoints(), ());
    if cfg!(feature = "json") {
        assert!(json.is_ok(), "{:?}", json.err());
    } else {
        let Err(err) = json else {
            panic!("JSON is refused without the json feature")
        };
        assert_eq!(err.field, "wire");
        assert!(matches!(err.reason, Reason::Requires { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("wire: requires") && text.contains("`json` feature"),
            "{text}"
        );
    }
    let postcard = R::new_boxed(T0, config(WireFormat::Postcard), &endpoints(), ());
    assert!(postcard.is_ok(), "{:?}", postcard.err());
}

/// The feedback queue on its own checks its `wire` the same way.
#[test]
fn feedback_queue_refuses_a_wire_format_the_build_lacks() {
    let json = FeedbackQueue::<4>::new(FeedbackConfig {
        wire: WireFormat::Json,
        ..FeedbackConfig::default()
    });
    if cfg!(feature = "json") {
        assert!(json.is_ok(), "{:?}", json.err());
    } else {
        let Err(err) = json else {
            panic!("JSON is refused without the json feature")
        };
        assert_eq!(err.field, "wire");
        assert!(matches!(err.reason, Reason::Requires { .. }), "{err:?}");
    }
    let postcard = FeedbackQueue::<4>::new(FeedbackConfig {
        wire: WireFormat::Postcard,
        ..FeedbackConfig::default()
    });
    assert!(postcard.is_ok(), "{:?}", postcard.err());
}

/// The `Unsupported` errors say which format and why, for the adapters that
/// print them.
#[test]
fn unsupported_errors_name_the_format_and_the_feature() {
    let decode = DecodeError::Unsupported {
        format: Format::Json,
    }
    .to_string();
    let encode = EncodeError::Unsupported {
        format: Format::Json,
    }
    .to_string();
    for text in [decode, encode] {
        assert!(
            text.starts_with("JSON is not supported by this build") && text.contains("`json`"),
            "{text}"
        );
    }
}

/// A postcard Resolver sends a postcard `ProxyRequest` and takes a postcard
/// `ProxyResponse`: the whole resolve works in a build without JSON.
#[test]
fn postcard_resolves_end_to_end() {
    let mut r = R::new_boxed(T0, config(WireFormat::Postcard), &endpoints(), ()).expect("valid");
    let mut buf = [0u8; MIN_TRANSMIT_BUFFER];
    let now = T0;
    let request = ProxyRequest::new(
        ExchangeId::new("binance").expect("valid"),
        ConnectionType::Websocket,
        ClientId::new("wire-test").expect("valid"),
    );
    let ticket = match r.resolve(now, &request) {
        Resolution::Pending(t) => t,
        other => panic!("expected Pending, got {other:?}"),
    };
    let mut sent = None;
    for _ in 0..100 {
        match r.poll_output(now, &mut buf) {
            Output::Transmit(t) if t.kind == TransmitKind::HealthCheck => {
                r.handle_reply(now, t.id, Reply::Ok(b"")).expect("known id");
            }
            Output::Transmit(t) => {
                assert_eq!(t.kind, TransmitKind::Resolve);
                let body: ProxyRequest =
                    codec::postcard::decode(&buf[..t.len]).expect("a postcard request");
                assert_eq!(body, request);
                sent = Some(t.id);
            }
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    let id = sent.expect("a resolve transmit");
    let response = ProxyResponse {
        proxy_url: Some("socks5://proxy-p:1080".parse().expect("valid")),
        strategy: Strategy::new("round_robin").expect("valid"),
        ttl_seconds: TtlSeconds::new(60).expect("valid"),
        fallback_policy: FallbackPolicy::EmbeddedFallback,
        metadata: ResponseMetadata::default(),
    };
    let mut answer = [0u8; 256];
    let n = codec::postcard::encode(&response, &mut answer).expect("fits");
    r.handle_reply(now, id, Reply::Ok(&answer[..n]))
        .expect("known id");
    let mut got = None;
    for _ in 0..100 {
        match r.poll_output(now, &mut buf) {
            Output::Answer(a) => got = Some(a),
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    let answer = got.expect("an answer");
    assert_eq!(answer.ticket, ticket);
    let route = answer.result.expect("a route");
    assert_eq!(route.source, Source::Service);
    assert_eq!(route.proxy_url, response.proxy_url);
}
