//! Circuit-breaker benchmark: one permit plus its outcome in the closed
//! state, against a hand-rolled consecutive-failure counter (the floor: what
//! the cheapest possible breaker costs) in the same run; plus endpoint
//! selection with its breaker permit.
//!
//! ```text
//! cargo bench --bench breaker -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The bench measures; it asserts nothing about time. Before measuring it
//! checks that the breaker stays closed over the measured pattern, so that
//! the figure is that of the closed-state path.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use embassy_time::Instant;
use proxy_delegate_core::breaker::{Breaker, BreakerConfig, BreakerState, Outcome};
use proxy_delegate_core::endpoints::{EndpointConfig, Endpoints, EndpointsConfig};

/// The floor: a breaker that only counts consecutive failures.
struct Counter {
    failures: u32,
    threshold: u32,
    open: bool,
}

impl Counter {
    fn try_acquire(&self) -> Result<(), ()> {
        if self.open { Err(()) } else { Ok(()) }
    }

    fn record(&mut self, failed: bool) {
        if failed {
            self.failures += 1;
            self.open = self.failures >= self.threshold;
        } else {
            self.failures = 0;
        }
    }
}

/// One failure in four calls: below every default trip rule.
fn outcome(i: u64) -> Outcome {
    if i % 4 == 3 {
        Outcome::Failure
    } else {
        Outcome::Success
    }
}

fn bench(c: &mut Criterion) {
    let start = Instant::from_secs(1_000);
    let mut group = c.benchmark_group("breaker permit + outcome (closed)");

    let mut breaker = Breaker::new(BreakerConfig::default()).expect("valid config");
    for i in 0..1_000 {
        let p = breaker.try_acquire(start).expect("closed");
        breaker.record(start, p, outcome(i)).expect("counted");
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    let mut i = 0u64;
    group.bench_function("core::breaker::Breaker", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let now = black_box(start);
            let permit = breaker.try_acquire(black_box(now)).expect("closed");
            let _ = black_box(breaker.record(now, permit, black_box(outcome(i))));
        })
    });
    assert_eq!(breaker.state(), BreakerState::Closed);

    let mut counter = Counter {
        failures: 0,
        threshold: 5,
        open: false,
    };
    let mut i = 0u64;
    group.bench_function("hand-rolled consecutive-failure counter (floor)", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let _ = black_box(counter.try_acquire());
            counter.record(black_box(outcome(i)) == Outcome::Failure);
        })
    });
    group.finish();

    let list: Vec<EndpointConfig> = (0..4)
        .map(|i| {
            let url = format!("https://svc-{i}.internal")
                .parse()
                .expect("valid url");
            EndpointConfig::new(url, (i / 2) as u8)
        })
        .collect();
    let mut endpoints =
        Endpoints::<4>::new(start, EndpointsConfig::default(), &list).expect("valid");
    let mut group = c.benchmark_group("endpoints select + record");
    group.bench_function("core::endpoints::Endpoints<4>", |b| {
        b.iter(|| {
            let selected = endpoints.select(black_box(start)).expect("an endpoint");
            let _ = black_box(endpoints.record(start, selected, Outcome::Success));
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
