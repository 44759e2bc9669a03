//! Exact instruction counts for `Pool::select`, to tell the algorithm's growth
//! from the memory effects a timed bench also sees: builds the
//! `benches/pool.rs` pool (same inventory, same open connections) of `N`
//! proxies, lets every client ask once (as the bench does before measuring)
//! and then makes `SELECTS` selections with one strategy.
//!
//! ```text
//! cargo build --release --example pool_profile
//! valgrind --tool=callgrind target/release/examples/pool_profile round_robin 10000 0
//! valgrind --tool=callgrind target/release/examples/pool_profile round_robin 10000 20000
//! ```
//!
//! (total with 20,000 selections − total with 0) / 20,000 = instructions per select.

use std::hint::black_box;

use embassy_time::Instant;
use proxy_delegate_core::model::{
    ConnectionType, FeedbackEvent, ProxyFeedback, ProxyRequest, Region,
};
use proxy_delegate_core::pool::{Pool, PoolConfig, ProxySpec, StrategyKind};
use proxy_delegate_core::storage::Boxed;

include!("../benches/fixtures/pool_inventory.rs");

fn run<const N: usize>(strategy: StrategyKind, n: usize, selects: usize) -> usize {
    let mut pool = build::<N>(strategy, n);
    let reqs = requests();
    // As the bench does before measuring: every client asks once (for
    // `sticky`, this is the rendezvous that fills its table).
    for r in &reqs {
        black_box(pool.select(NOW, r));
    }
    let mut answered = 0;
    for k in 0..selects {
        let answer = pool.select(NOW, black_box(&reqs[k % CLIENTS]));
        answered += usize::from(black_box(answer).proxy_url.is_some());
    }
    answered
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let strategy = StrategyKind::parse(&args.next().unwrap_or_else(|| "round_robin".into()))?;
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let selects: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    if n > 16_384 {
        return Err(format!("at most 16384 proxies, not {n}").into());
    }
    // The bench's capacities for its three sizes (their slots on the heap).
    let answered = match n {
        0..=16 => run::<16>(strategy, n, selects),
        17..=1024 => run::<1024>(strategy, n, selects),
        _ => run::<16_384>(strategy, n, selects),
    };
    use std::io::Write;
    writeln!(
        std::io::stdout(),
        "{strategy}: {n} proxies, {selects} selects, {answered} answered"
    )?;
    Ok(())
}
