//! A driver for profiling the loader with exact instruction counts: loads the
//! `benches/settings.rs` configuration `N` times (default 1000) from YAML or
//! from the environment.
//!
//! ```text
//! cargo build --release -p proxy-delegate-config --example load_profile
//! valgrind --tool=callgrind target/release/examples/load_profile yaml 1000
//! ```

use proxy_delegate_config::Loader;

include!("../../../benches/fixtures/cryptofeed_config.rs");

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
