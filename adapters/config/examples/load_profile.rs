//! A driver for profiling the loader with exact instruction counts: loads the
//! `benches/settings.rs` configuration `N` times (default 1000) from YAML or
//! from the environment.
//!
//! ```text
//! cargo build --release -p proxy-delegate-config --example load_profile
//! valgrind --tool=callgrind target/release/examples/load_profile yaml 1000
//! ```

use proxy_delegate_config::Loader;

const YAML: &str = r#"
proxy:
  enabled: true
  default:
    http:
      url: "http://user:pass@proxy-default:8080"
      timeout_seconds: 20
    websocket: "socks5://proxy-ws:1080"
  exchanges:
    binance:
      http: "http://proxy-binance:8080"
      websocket: "socks5://proxy-binance-ws:1081"
    coinbase:
      http:
        url: "http://proxy-coinbase:8080"
        timeout_seconds: 15
    kraken:
      websocket:
        pool:
          strategy: round_robin
          proxies:
            - url: "socks5://k1:1080"
            - url: "socks5://k2:1080"
              weight: 2
            - url: "socks5://k3:1080"
"#;

const ENV: [(&str, &str); 9] = [
    ("CRYPTOFEED_PROXY_ENABLED", "true"),
    (
        "CRYPTOFEED_PROXY_DEFAULT__HTTP__URL",
        "http://user:pass@proxy-default:8080",
    ),
    ("CRYPTOFEED_PROXY_DEFAULT__HTTP__TIMEOUT_SECONDS", "20"),
    (
        "CRYPTOFEED_PROXY_DEFAULT__WEBSOCKET__URL",
        "socks5://proxy-ws:1080",
    ),
    (
        "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__HTTP__URL",
        "http://proxy-binance:8080",
    ),
    (
        "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__WEBSOCKET__URL",
        "socks5://proxy-binance-ws:1081",
    ),
    (
        "CRYPTOFEED_PROXY_EXCHANGES__COINBASE__HTTP__URL",
        "http://proxy-coinbase:8080",
    ),
    (
        "CRYPTOFEED_PROXY_EXCHANGES__COINBASE__HTTP__TIMEOUT_SECONDS",
        "15",
    ),
    (
        "CRYPTOFEED_PROXY_EXCHANGES__KRAKEN__WEBSOCKET__POOL",
        r#"{"strategy":"round_robin","proxies":[{"url":"socks5://k1:1080"},{"url":"socks5://k2:1080","weight":2},{"url":"socks5://k3:1080"}]}"#,
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "yaml".into());
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let mut enabled = 0usize;
    for _ in 0..n {
        let loaded = match mode.as_str() {
            "yaml" => Loader::new()
                .yaml_str("bench.yaml", std::hint::black_box(YAML))
                .env(std::iter::empty::<(&str, &str)>())
                .load()?,
            "env" => Loader::new().env(std::hint::black_box(ENV)).load()?,
            other => return Err(format!("unknown mode {other:?} (yaml or env)").into()),
        };
        enabled += usize::from(loaded.settings.enabled);
    }
    use std::io::Write;
    writeln!(std::io::stdout(), "{mode}: {n} loads, {enabled} enabled")?;
    Ok(())
}
