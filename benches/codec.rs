//! Codec benchmark: the core's JSON and postcard codecs against serde_json
//! decoding into the owned std structs a Rust user would write, in one run.
//!
//! ```text
//! cargo bench --bench codec -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Goals (issue 2): the core's JSON decode is no slower than serde_json's;
//! postcard decode is at least 3x faster than either JSON decode. The bench
//! measures; it asserts nothing about time. Before measuring it checks that
//! every contestant decodes the published body to the same values, so that no
//! contestant wins by doing less.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use proxy_delegate_core::codec;
use proxy_delegate_core::model::{ProxyRequest, ProxyResponse};
use proxy_delegate_tests::{REQUEST_JSON, RESPONSE_JSON};
use serde::{Deserialize, Serialize};

/// The response as a std user would model it with serde_json.
#[derive(Debug, Serialize, Deserialize)]
struct OwnedResponse {
    #[serde(default)]
    proxy_url: Option<String>,
    strategy: String,
    ttl_seconds: u32,
    #[serde(default)]
    fallback_policy: Option<String>,
    #[serde(default)]
    metadata: OwnedResponseMetadata,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OwnedResponseMetadata {
    #[serde(default)]
    proxy_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    health_score: Option<f64>,
}

/// The request as a std user would model it with serde_json.
#[derive(Debug, Serialize, Deserialize)]
struct OwnedRequest {
    exchange_id: String,
    connection_type: String,
    #[serde(default)]
    region: Option<String>,
    client_id: String,
    #[serde(default)]
    metadata: OwnedRequestMetadata,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OwnedRequestMetadata {
    #[serde(default)]
    feed_types: Vec<String>,
    #[serde(default)]
    symbols: Vec<String>,
}

/// Room for either message in either format.
const BUF_LEN: usize = 1024;

/// One message's contest, in one group: the core's JSON and postcard decode
/// and encode against serde_json with the owned struct. Checks first that the
/// postcard form decodes back to the same value.
fn contest<M, O>(c: &mut Criterion, name: &str, body: &[u8], core: M, owned: O)
where
    M: codec::Message + PartialEq + std::fmt::Debug,
    O: Serialize + for<'de> Deserialize<'de>,
{
    let mut postcard_buf = [0u8; BUF_LEN];
    let n = codec::postcard::encode(&core, &mut postcard_buf).expect("postcard encodes");
    let postcard = postcard_buf[..n].to_vec();
    let from_postcard: M = codec::postcard::decode(&postcard).expect("decodes");
    assert_eq!(from_postcard, core);

    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode/core_json", |b| {
        b.iter(|| codec::json::decode::<M>(black_box(body)).unwrap())
    });
    g.bench_function("decode/serde_json_owned", |b| {
        b.iter(|| serde_json::from_slice::<O>(black_box(body)).unwrap())
    });
    g.bench_function("decode/core_postcard", |b| {
        b.iter(|| codec::postcard::decode::<M>(black_box(&postcard)).unwrap())
    });
    let mut out = [0u8; BUF_LEN];
    g.bench_function("encode/core_json", |b| {
        b.iter(|| codec::json::encode(black_box(&core), &mut out).unwrap())
    });
    g.bench_function("encode/serde_json_owned", |b| {
        b.iter(|| serde_json::to_vec(black_box(&owned)).unwrap())
    });
    g.bench_function("encode/core_postcard", |b| {
        b.iter(|| codec::postcard::encode(black_box(&core), &mut out).unwrap())
    });
    g.finish();
}

fn response(c: &mut Criterion) {
    let body = RESPONSE_JSON.as_bytes();
    let core: ProxyResponse = codec::json::decode(body).expect("published response decodes");
    let owned: OwnedResponse = serde_json::from_slice(body).expect("serde_json decodes it");
    // Same values on both sides, so that the comparison is fair.
    assert_eq!(
        core.proxy_url
            .as_ref()
            .map(|u| u.expose_credentials().to_string()),
        owned.proxy_url
    );
    assert_eq!(core.strategy.as_str(), owned.strategy);
    assert_eq!(core.ttl_seconds.get(), owned.ttl_seconds);
    assert_eq!(
        Some(core.fallback_policy.as_str()),
        owned.fallback_policy.as_deref()
    );
    assert_eq!(
        core.metadata.proxy_id.as_ref().map(|p| p.as_str()),
        owned.metadata.proxy_id.as_deref()
    );
    contest(c, "response", body, core, owned);
}

fn request(c: &mut Criterion) {
    let body = REQUEST_JSON.as_bytes();
    let core: ProxyRequest = codec::json::decode(body).expect("published request decodes");
    let owned: OwnedRequest = serde_json::from_slice(body).expect("serde_json decodes it");
    assert_eq!(core.exchange_id.as_str(), owned.exchange_id);
    assert_eq!(core.client_id.as_str(), owned.client_id);
    assert_eq!(
        core.metadata.symbols.len() + core.metadata.feed_types.len(),
        owned.metadata.symbols.len() + owned.metadata.feed_types.len()
    );
    contest(c, "request", body, core, owned);
}

criterion_group!(benches, response, request);
criterion_main!(benches);
