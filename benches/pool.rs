//! Proxy selection benchmark: `core::pool::Pool::select` with 10, 1,000 and
//! 10,000 proxies, for every strategy, in the same run as a linear-scan
//! least-connections pool (the way a simple service picks: one pass over a
//! `Vec` of proxies, checking each against the request) over the same
//! inventory, connection counts and requests.
//!
//! ```text
//! cargo bench --bench pool -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The inventory: proxies spread over 8 regions, every tenth allowed only
//! for `okx`, every proxy with 0–4 open connections (from `connect_start`
//! feedback). Requests rotate over 256 clients, ask for `binance` over
//! WebSocket, and name a region for half of them. `sticky` is measured once
//! every client has its entry (the common case: a table hit); its first
//! choice per client is a rendezvous over all proxies, `O(N)`, like the peer.
//!
//! A `Pool<16384>` is about 18 MB, so the pools keep their slots on the heap
//! (`Boxed` storage) and are built there. The bench measures; it asserts nothing about time. Before
//! measuring it checks that every request gets a proxy.

use std::hint::black_box;

use criterion::Criterion;
use embassy_time::Instant;
use proxy_delegate_core::model::{
    ConnectionType, FeedbackEvent, ProxyFeedback, ProxyId, ProxyRequest, ProxyUrl, Region,
};
use proxy_delegate_core::pool::{Pool, PoolConfig, ProxySpec, StrategyKind};
use proxy_delegate_core::storage::Boxed;

include!("fixtures/pool_inventory.rs");

/// The peer: every proxy in a `Vec`, each request a full pass.
struct LinearPool {
    proxies: Vec<LinearProxy>,
    cursor: usize,
}

struct LinearProxy {
    id: ProxyId,
    url: ProxyUrl,
    region: Region,
    okx_only: bool,
    enabled: bool,
    ejected: bool,
    open: u32,
}

impl LinearPool {
    fn new(n: usize) -> Self {
        let proxies = (0..n)
            .map(|i| LinearProxy {
                id: format!("proxy-{i}").parse().expect("valid id"),
                url: format!("socks5://user:pass@proxy-{i}.example:1080")
                    .parse()
                    .expect("valid url"),
                region: region(i),
                okx_only: i % 10 == 0,
                enabled: true,
                ejected: false,
                open: open_connections(i) as u32,
            })
            .collect();
        Self { proxies, cursor: 0 }
    }

    /// Least connections among eligible proxies, preferring the requested
    /// region, ties broken round-robin from a moving cursor. Returns the
    /// URL and id, cloned, as the pool's answer does.
    fn select(&mut self, req: &ProxyRequest) -> Option<(ProxyUrl, ProxyId)> {
        let n = self.proxies.len();
        let start = self.cursor % n;
        self.cursor = self.cursor.wrapping_add(1);
        let exchange_ok = req.exchange_id.as_str() == "okx";
        let mut best: [Option<(u32, usize)>; 2] = [None, None];
        for k in 0..n {
            let i = (start + k) % n;
            let p = &self.proxies[i];
            if !p.enabled || p.ejected || (p.okx_only && !exchange_ok) {
                continue;
            }
            let tier = usize::from(req.region.as_ref() != Some(&p.region));
            if best[tier].is_none_or(|(o, _)| p.open < o) {
                best[tier] = Some((p.open, i));
            }
        }
        best[0]
            .or(best[1])
            .map(|(_, i)| (self.proxies[i].url.clone(), self.proxies[i].id.clone()))
    }
}

fn bench_size<const N: usize>(c: &mut Criterion, n: usize) {
    let reqs = requests();
    let mut group = c.benchmark_group("pool_select");
    for strategy in StrategyKind::ALL {
        let mut pool = build::<N>(strategy, n);
        for r in &reqs {
            assert!(
                pool.select(NOW, r).proxy_url.is_some(),
                "every request gets a proxy"
            );
        }
        let mut k = 0usize;
        group.bench_function(format!("{}/{n}", strategy.as_str()), |b| {
            b.iter(|| {
                k = (k + 1) % CLIENTS;
                black_box(pool.select(NOW, black_box(&reqs[k])))
            })
        });
    }
    let mut peer = LinearPool::new(n);
    for r in &reqs {
        assert!(peer.select(r).is_some());
    }
    let mut k = 0usize;
    group.bench_function(format!("linear_scan_least_connections/{n}"), |b| {
        b.iter(|| {
            k = (k + 1) % CLIENTS;
            black_box(peer.select(black_box(&reqs[k])))
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_size::<16>(&mut c, 10);
    bench_size::<1024>(&mut c, 1_000);
    bench_size::<16384>(&mut c, 10_000);
    c.final_summary();
}
