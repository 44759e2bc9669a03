//! Response-cache benchmark: a fresh hit of `Resolver::resolve` (the whole
//! cached path a caller takes) and of `Cache::get` in a full cache of
//! 16, 256 and 4096 entries, in the same run as a
//! `std::collections::HashMap<String, String>` lookup (the floor) and
//! `moka::sync::Cache::get` (the peer a Rust user would reach for) over the
//! same number of keys and the same access order.
//!
//! ```text
//! cargo bench --bench cache -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Two access patterns: `one key` looks up the same key every time (the cost
//! of the lookup itself, everything in the CPU cache); `all keys` looks up the
//! next key of a fixed shuffled order of all the keys, so larger sizes also
//! pay for their larger working set. The bench measures; it asserts nothing
//! about time. Before measuring it checks that every lookup is a fresh hit.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkGroup, Criterion, criterion_group, measurement::WallTime};
use embassy_time::{Duration, Instant};
use proxy_delegate_core::cache::{Cache, CacheConfig, CacheKey, Freshness};
use proxy_delegate_core::codec;
use proxy_delegate_core::endpoints::EndpointConfig;
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ExchangeId, FallbackPolicy, ProxyId, ProxyRequest, ProxyResponse,
    ProxyUrl, Region, ResponseMetadata, Strategy, TtlSeconds,
};
use proxy_delegate_core::resolver::{
    MAX_FLIGHTS, MAX_WAITERS, MIN_TRANSMIT_BUFFER, Output, Reply, Resolution, Resolver,
    ResolverConfig, Source, TransmitKind,
};
use proxy_delegate_core::storage::Boxed;

fn exchange(i: usize) -> String {
    format!("exchange-{i:04}")
}

fn cache_key(i: usize) -> CacheKey {
    CacheKey::new(
        ExchangeId::new(&exchange(i)).expect("valid exchange id"),
        ConnectionType::Websocket,
        Some(Region::new("us-east-1").expect("valid region")),
    )
}

/// The same key as text, for the HashMap floor and moka.
fn string_key(i: usize) -> String {
    format!("{}/websocket/us-east-1", exchange(i))
}

fn response(i: usize) -> ProxyResponse {
    ProxyResponse {
        proxy_url: Some(
            ProxyUrl::parse(&format!("socks5://user:pass@proxy-{i}.example:1080"))
                .expect("valid url"),
        ),
        strategy: Strategy::new("least_connections").expect("valid strategy"),
        ttl_seconds: TtlSeconds::new(300).expect("valid ttl"),
        fallback_policy: FallbackPolicy::DirectConnection,
        metadata: ResponseMetadata {
            proxy_id: Some(ProxyId::new(&format!("proxy-{i}")).expect("valid id")),
            ..ResponseMetadata::default()
        },
    }
}

/// A fixed shuffle of `0..n` (seeded, so every run measures the same order).
fn order(n: usize) -> Vec<usize> {
    let mut rng = fastrand_seed(0x5eed);
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

fn fastrand_seed(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed;
    move || {
        // splitmix64
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn size<const N: usize>(group: &mut BenchmarkGroup<'_, WallTime>, all_keys: bool) {
    let now = Instant::from_secs(1_000);
    let lookup_at = now + Duration::from_secs(1);
    let seq = if all_keys { order(N) } else { vec![N / 2] };
    let len = seq.len();

    // proxy-delegate: Cache<ProxyResponse, N>, full, its slots on the heap.
    let mut cache =
        Cache::<ProxyResponse, N, Boxed>::new(CacheConfig::default()).expect("valid config");
    let keys: Vec<CacheKey> = (0..N).map(cache_key).collect();
    for (i, k) in keys.iter().enumerate() {
        cache.insert(now, k.clone(), response(i));
    }
    assert_eq!(cache.len(), N);
    for k in &keys {
        let hit = cache.get(lookup_at, k).expect("fresh hit");
        assert_eq!(hit.freshness, Freshness::Fresh);
    }
    assert!(cache.poll_event().is_none(), "no eviction, no refresh");
    let mut at = 0;
    group.bench_function(format!("proxy-delegate Cache::get/{N}"), |b| {
        b.iter(|| {
            let k = &keys[seq[at]];
            at = (at + 1) % len;
            let hit = cache.get(black_box(lookup_at), black_box(k));
            black_box(hit.map(|h| h.value as *const ProxyResponse))
        })
    });

    // proxy-delegate: Resolver::resolve, its cache filled through the real
    // path (resolve, transmit, the service's reply).
    let mut resolver = Resolver::<(), N, 2, 64, MAX_FLIGHTS, MAX_WAITERS, Boxed>::new_boxed(
        now,
        ResolverConfig::new(ClientId::new("bench").expect("valid client id")),
        &[EndpointConfig::new(
            "http://127.0.0.1:8080".parse().expect("valid url"),
            0,
        )],
        (),
    )
    .expect("valid resolver config");
    let requests: Vec<ProxyRequest> = keys
        .iter()
        .map(|k| {
            let mut r = ProxyRequest::new(
                k.exchange_id.clone(),
                k.connection_type,
                ClientId::new("bench").expect("valid client id"),
            );
            r.region = k.region.clone();
            r
        })
        .collect();
    let mut buf = vec![0u8; MIN_TRANSMIT_BUFFER];
    let mut body = vec![0u8; MIN_TRANSMIT_BUFFER];
    for (i, request) in requests.iter().enumerate() {
        assert!(matches!(
            resolver.resolve(now, request),
            Resolution::Pending(_)
        ));
        let mut answered = false;
        loop {
            match resolver.poll_output(now, &mut buf) {
                Output::Transmit(t) => {
                    let reply = if t.kind == TransmitKind::Resolve {
                        let n = codec::json::encode(&response(i), &mut body).expect("encodes");
                        Reply::Ok(&body[..n])
                    } else {
                        Reply::Ok(b"{}")
                    };
                    resolver.handle_reply(now, t.id, reply).expect("known id");
                }
                Output::Answer(_) => answered = true,
                Output::Event(_) => {}
                Output::Timeout(_) => break,
            }
        }
        assert!(answered, "answered");
    }
    for request in &requests {
        match resolver.resolve(lookup_at, request) {
            Resolution::Ready(route) => assert_eq!(route.source, Source::Cache),
            other => panic!("expected a cache hit, got {other:?}"),
        }
    }
    while !matches!(
        resolver.poll_output(lookup_at, &mut buf),
        Output::Timeout(_)
    ) {}
    let mut at = 0;
    group.bench_function(format!("proxy-delegate Resolver::resolve/{N}"), |b| {
        b.iter(|| {
            let r = &requests[seq[at]];
            at = (at + 1) % len;
            match resolver.resolve(black_box(lookup_at), black_box(r)) {
                Resolution::Ready(route) => {
                    black_box(route.proxy_url.map(|u| u as *const ProxyUrl));
                }
                _ => unreachable!("every lookup is a fresh hit"),
            }
        })
    });

    // The floor: HashMap<String, String>.
    let map: HashMap<String, String> = (0..N)
        .map(|i| {
            (
                string_key(i),
                format!("socks5://user:pass@proxy-{i}.example:1080"),
            )
        })
        .collect();
    let skeys: Vec<String> = (0..N).map(string_key).collect();
    let mut at = 0;
    group.bench_function(format!("HashMap<String, String>::get/{N}"), |b| {
        b.iter(|| {
            let k = &skeys[seq[at]];
            at = (at + 1) % len;
            black_box(map.get(black_box(k.as_str())).map(|v| v.as_ptr()))
        })
    });

    // The peer: moka::sync::Cache<String, Arc<ProxyResponse>>.
    let moka = moka::sync::Cache::<String, Arc<ProxyResponse>>::new(N as u64);
    for i in 0..N {
        moka.insert(string_key(i), Arc::new(response(i)));
    }
    moka.run_pending_tasks();
    for k in &skeys {
        assert!(moka.get(k).is_some(), "moka hit");
    }
    let mut at = 0;
    group.bench_function(format!("moka::sync::Cache::get/{N}"), |b| {
        b.iter(|| {
            let k = &skeys[seq[at]];
            at = (at + 1) % len;
            black_box(moka.get(black_box(k)))
        })
    });
}

fn bench(c: &mut Criterion) {
    for (name, all_keys) in [("cache hit, one key", false), ("cache hit, all keys", true)] {
        let mut group = c.benchmark_group(name);
        size::<16>(&mut group, all_keys);
        size::<256>(&mut group, all_keys);
        size::<4096>(&mut group, all_keys);
        group.finish();
    }
}

criterion_group!(benches, bench);

fn main() {
    // The caches and resolvers keep their slots on the heap (`Boxed`): any
    // thread's stack will do.
    benches();
    Criterion::default().configure_from_args().final_summary();
}
