//! Embedded-settings benchmark (issue 4), in one run:
//!
//! * `resolve/exchange_override`: `ProxySettings::resolve` for an exchange
//!   that lists the connection type;
//! * `resolve/default_hit`: for an exchange that is not listed (the default's
//!   entry, after scanning the exchanges);
//! * `resolve/round_robin_pick`: a pick from a 3-proxy round-robin pool;
//! * `resolve/hashmap_floor`: a `HashMap<String, String>` lookup of
//!   `"binance:http"`, the floor any lookup table pays;
//! * `load/yaml` and `load/env`: loading plus validating a cryptofeed
//!   configuration with a default and 3 exchanges, from YAML and from
//!   `CRYPTOFEED_PROXY_*` variables (including provenance).
//!
//! ```text
//! cargo bench --bench settings -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Goals: resolve under 25 ns, pool pick under 100 ns, load under 20 µs
//! (cryptofeed's Python: 233 ns, 1,397 ns, 197 µs). The bench measures; it
//! asserts nothing about time. Before measuring it checks that every
//! contestant gives the expected answer, so that none wins by doing less.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use proxy_delegate_config::Loader;
use proxy_delegate_core::model::{ConnectionType, ExchangeId};

include!("fixtures/cryptofeed_config.rs");

fn no_env() -> std::iter::Empty<(&'static str, &'static str)> {
    std::iter::empty()
}

fn bench(c: &mut Criterion) {
    let mut settings = Loader::new()
        .yaml_str("bench.yaml", YAML)
        .env(no_env())
        .load()
        .expect("bench config loads")
        .settings;
    let from_env = Loader::new()
        .env(ENV)
        .load()
        .expect("bench env loads")
        .settings;
    assert!(
        *from_env == *settings,
        "YAML and environment give the same settings"
    );

    let binance = ExchangeId::new("binance").unwrap();
    let bitmex = ExchangeId::new("bitmex").unwrap();
    let kraken = ExchangeId::new("kraken").unwrap();
    // Same answers as cryptofeed's get_proxy.
    let url = |s: &mut proxy_delegate_config::Settings, e: &ExchangeId, t| {
        s.resolve(e, t).map(|p| p.proxy_url.to_string())
    };
    assert_eq!(
        url(&mut settings, &binance, ConnectionType::Http).as_deref(),
        Some("http://proxy-binance:8080")
    );
    assert_eq!(
        url(&mut settings, &bitmex, ConnectionType::Http).as_deref(),
        Some("http://user:***@proxy-default:8080")
    );
    let picks: Vec<_> = (0..3)
        .map(|_| url(&mut settings, &kraken, ConnectionType::Websocket).unwrap())
        .collect();
    assert_eq!(
        picks,
        ["socks5://k1:1080", "socks5://k2:1080", "socks5://k3:1080"]
    );

    let mut map: HashMap<String, String> = HashMap::new();
    for (k, v) in [
        ("binance:http", "http://proxy-binance:8080"),
        ("binance:websocket", "socks5://proxy-binance-ws:1081"),
        ("coinbase:http", "http://proxy-coinbase:8080"),
        ("default:http", "http://user:pass@proxy-default:8080"),
        ("default:websocket", "socks5://proxy-ws:1080"),
    ] {
        map.insert(k.into(), v.into());
    }
    assert_eq!(
        map.get("binance:http").map(String::as_str),
        Some("http://proxy-binance:8080")
    );

    let mut g = c.benchmark_group("resolve");
    g.bench_function("exchange_override", |b| {
        b.iter(|| {
            settings
                .resolve(black_box(&binance), black_box(ConnectionType::Http))
                .map(|p| p.timeout_seconds)
        })
    });
    g.bench_function("default_hit", |b| {
        b.iter(|| {
            settings
                .resolve(black_box(&bitmex), black_box(ConnectionType::Http))
                .map(|p| p.timeout_seconds)
        })
    });
    g.bench_function("round_robin_pick", |b| {
        b.iter(|| {
            settings
                .resolve(black_box(&kraken), black_box(ConnectionType::Websocket))
                .map(|p| p.proxy_url.port())
        })
    });
    g.bench_function("hashmap_floor", |b| {
        b.iter(|| map.get(black_box("binance:http")).map(String::len))
    });
    g.finish();

    let mut g = c.benchmark_group("load");
    g.bench_function("yaml", |b| {
        b.iter(|| {
            Loader::new()
                .yaml_str("bench.yaml", black_box(YAML))
                .env(no_env())
                .load()
                .map(|l| l.settings.enabled)
        })
    });
    g.bench_function("env", |b| {
        b.iter(|| {
            Loader::new()
                .env(black_box(ENV))
                .load()
                .map(|l| l.settings.enabled)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
