//! Tests of `core::backoff`: jitter bounds, reproducibility, attempt limits,
//! Retry-After, and the retry budget's bound.

use embassy_time::{Duration, Instant};
use proptest::prelude::*;
use proxy_delegate_core::Reason;
use proxy_delegate_core::backoff::{
    Backoff, BackoffConfig, GiveUp, Jitter, RetryBudget, RetryBudgetConfig,
};

const JITTERS: [Jitter; 4] = [
    Jitter::None,
    Jitter::Full,
    Jitter::Equal,
    Jitter::Decorrelated,
];

fn config(base_ms: u64, cap_ms: u64, jitter: Jitter, seed: u64) -> BackoffConfig {
    BackoffConfig {
        base: Duration::from_millis(base_ms),
        max_delay: Duration::from_millis(cap_ms),
        jitter,
        max_attempts: None,
        max_retry_after: Duration::from_millis(cap_ms.max(60_000)),
        seed,
    }
}

/// The un-jittered delay of the `n`-th failure (from 1), computed independently.
fn exp_ticks(base: u64, cap: u64, n: u32) -> u64 {
    let v = u128::from(base) << (n - 1).min(100);
    v.min(u128::from(cap)) as u64
}

proptest! {
    #[test]
    fn every_jitter_kind_stays_in_its_bounds(
        base_ms in 1u64..5_000,
        extra_ms in 0u64..120_000,
        seed in any::<u64>(),
        kind in 0usize..4,
        failures in 1u32..80,
    ) {
        let cap_ms = base_ms + extra_ms;
        let jitter = JITTERS[kind];
        let cfg = config(base_ms, cap_ms, jitter, seed);
        let mut b = Backoff::new(cfg).unwrap();
        let (base, cap) = (cfg.base.as_ticks(), cfg.max_delay.as_ticks());
        let mut prev = base;
        for n in 1..=failures {
            let d = b.next_delay(None).unwrap().as_ticks();
            let exp = exp_ticks(base, cap, n);
            match jitter {
                Jitter::None => prop_assert_eq!(d, exp),
                Jitter::Full => prop_assert!(d <= exp, "full: {} > {}", d, exp),
                Jitter::Equal => prop_assert!(exp / 2 <= d && d <= exp, "equal: {} not in {}/2..={}", d, exp, exp),
                Jitter::Decorrelated => {
                    prop_assert!(base <= d && d <= cap, "decorrelated: {} not in {}..={}", d, base, cap);
                    prop_assert!(d <= prev.saturating_mul(3).max(base), "decorrelated: {} > 3 x {}", d, prev);
                    prev = d;
                }
                _ => unreachable!(),
            }
            prop_assert_eq!(b.failures(), n);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_delays(seed in any::<u64>(), kind in 0usize..4, hints in prop::collection::vec(prop::option::of(0u64..90_000), 1..40)) {
        let cfg = config(50, 20_000, JITTERS[kind], seed);
        let (mut a, mut b) = (Backoff::new(cfg).unwrap(), Backoff::new(cfg).unwrap());
        for (i, h) in hints.iter().enumerate() {
            let h = h.map(Duration::from_millis);
            prop_assert_eq!(a.next_delay(h), b.next_delay(h));
            if i % 7 == 6 {
                a.reset();
                b.reset();
            }
        }
    }

    #[test]
    fn retry_after_is_never_undercut_up_to_its_cap(
        seed in any::<u64>(),
        kind in 0usize..4,
        hint_ms in 0u64..200_000,
        failures in 1u32..12,
    ) {
        let mut cfg = config(100, 10_000, JITTERS[kind], seed);
        cfg.max_retry_after = Duration::from_secs(60);
        let mut b = Backoff::new(cfg).unwrap();
        for _ in 1..failures {
            b.next_delay(None).unwrap();
        }
        let hint = Duration::from_millis(hint_ms);
        let d = b.next_delay(Some(hint)).unwrap();
        let honoured = hint.min(cfg.max_retry_after);
        prop_assert!(d >= honoured, "{:?} sooner than hint {:?}", d, honoured);
        // Never longer than the larger of the two caps.
        prop_assert!(d <= cfg.max_delay.max(honoured));
    }

    /// Over any sequence of successes, retries and time steps, the budget allows
    /// at most floor x (1 + elapsed seconds) + successes x deposit retries.
    #[test]
    fn budget_never_allows_more_than_deposits_plus_floor(
        deposit_milli in 0u32..=1000,
        floor in 0u32..5,
        max_tokens in 0u32..20,
        ops in prop::collection::vec((0u8..3, 0u64..1_500), 1..400),
    ) {
        let cfg = RetryBudgetConfig { deposit_per_success_milli: deposit_milli, min_retries_per_sec: floor, max_tokens };
        let mut budget = RetryBudget::new(cfg).unwrap();
        let start = Instant::from_secs(1_000);
        let mut now = start;
        let (mut successes, mut allowed) = (0u64, 0u64);
        for (op, ms) in ops {
            match op {
                0 => { budget.record_success(now); successes += 1; }
                1 => { if budget.try_retry(now) { allowed += 1; } }
                _ => now += Duration::from_millis(ms),
            }
            // In millionths of a token.
            let elapsed_us = (now - start).as_micros();
            let limit = u64::from(floor) * 1_000_000
                + u64::from(floor) * elapsed_us
                + successes * u64::from(deposit_milli) * 1_000;
            prop_assert!(allowed * 1_000_000 <= limit,
                "{} retries allowed; limit {} millionths ({} successes, {} us)", allowed, limit, successes, elapsed_us);
        }
    }
}

#[test]
fn full_jitter_spreads_over_its_range() {
    let mut lo = u64::MAX;
    let mut hi = 0;
    for seed in 0..200 {
        let mut b = Backoff::new(config(1_000, 1_000, Jitter::Full, seed)).unwrap();
        let d = b.next_delay(None).unwrap().as_millis();
        lo = lo.min(d);
        hi = hi.max(d);
    }
    assert!(
        lo < 250 && hi > 750,
        "full jitter over 200 seeds stayed in {lo}..={hi} ms"
    );
}

#[test]
fn different_seeds_give_different_delays() {
    let delays = |seed| {
        let mut b = Backoff::new(config(1_000, 60_000, Jitter::Full, seed)).unwrap();
        (0..10)
            .map(|_| b.next_delay(None).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(delays(1), delays(1));
    assert_ne!(delays(1), delays(2));
}

#[test]
fn max_attempts_counts_the_first_attempt() {
    for max in 1..6u32 {
        let mut cfg = config(10, 1_000, Jitter::Equal, 3);
        cfg.max_attempts = Some(max);
        let mut b = Backoff::new(cfg).unwrap();
        // Attempt 1 is made by the caller; each failure asks for the next one.
        for _ in 1..max {
            assert!(b.next_delay(None).is_ok());
        }
        assert_eq!(
            b.next_delay(None),
            Err(GiveUp::AttemptsExhausted { attempts: max })
        );
        // Still exhausted until reset; a reset starts over.
        assert!(b.next_delay(None).is_err());
        b.reset();
        assert_eq!(b.failures(), 0);
        if max > 1 {
            assert!(b.next_delay(None).is_ok());
        }
    }
}

#[test]
fn no_attempt_limit_retries_for_ever_at_the_cap() {
    let mut b = Backoff::new(config(100, 5_000, Jitter::None, 0)).unwrap();
    let mut last = Duration::from_ticks(0);
    for _ in 0..10_000 {
        last = b.next_delay(None).unwrap();
    }
    assert_eq!(last, Duration::from_secs(5));
}

#[test]
fn exponential_growth_without_jitter() {
    let mut b = Backoff::new(config(100, 1_000, Jitter::None, 0)).unwrap();
    let got: Vec<u64> = (0..6)
        .map(|_| b.next_delay(None).unwrap().as_millis())
        .collect();
    assert_eq!(got, [100, 200, 400, 800, 1_000, 1_000]);
    b.reset();
    assert_eq!(b.next_delay(None).unwrap(), Duration::from_millis(100));
}

#[test]
fn a_huge_retry_after_is_capped_at_max_retry_after() {
    let mut cfg = config(100, 10_000, Jitter::Full, 9);
    cfg.max_retry_after = Duration::from_secs(120);
    let mut b = Backoff::new(cfg).unwrap();
    let d = b.next_delay(Some(Duration::from_secs(86_400))).unwrap();
    assert_eq!(d, Duration::from_secs(120));
    // A short hint below the jittered delay leaves the delay alone.
    let mut c = Backoff::new(config(1_000, 1_000, Jitter::None, 0)).unwrap();
    assert_eq!(
        c.next_delay(Some(Duration::from_millis(10))).unwrap(),
        Duration::from_secs(1)
    );
}

#[test]
fn invalid_backoff_configs_name_the_field() {
    let ok = BackoffConfig::default();
    assert!(Backoff::new(ok).is_ok());
    let cases = [
        (
            BackoffConfig {
                base: Duration::from_ticks(0),
                ..ok
            },
            "base",
        ),
        (
            BackoffConfig {
                max_delay: Duration::from_millis(50),
                ..ok
            },
            "max_delay",
        ),
        (
            BackoffConfig {
                max_attempts: Some(0),
                ..ok
            },
            "max_attempts",
        ),
        (
            BackoffConfig {
                max_retry_after: Duration::from_secs(1),
                ..ok
            },
            "max_retry_after",
        ),
    ];
    for (cfg, field) in cases {
        let err = Backoff::new(cfg).unwrap_err();
        assert_eq!(err.field, field);
        assert!(matches!(err.reason, Reason::OutOfRange { .. }), "{err}");
        assert!(err.to_string().starts_with(field), "{err}");
    }
}

#[test]
fn invalid_budget_configs_name_the_field() {
    let ok = RetryBudgetConfig::default();
    for (cfg, field) in [
        (
            RetryBudgetConfig {
                deposit_per_success_milli: 1_001,
                ..ok
            },
            "deposit_per_success_milli",
        ),
        (
            RetryBudgetConfig {
                min_retries_per_sec: 2_000_000,
                ..ok
            },
            "min_retries_per_sec",
        ),
        (
            RetryBudgetConfig {
                max_tokens: u32::MAX,
                ..ok
            },
            "max_tokens",
        ),
    ] {
        let err = RetryBudget::new(cfg).unwrap_err();
        assert!(err.to_string().starts_with(field), "{err}");
    }
}

#[test]
fn the_floor_allows_one_retry_per_second_without_successes() {
    let mut budget = RetryBudget::new(RetryBudgetConfig::default()).unwrap();
    let t0 = Instant::from_secs(50);
    assert!(budget.try_retry(t0));
    assert!(!budget.try_retry(t0));
    assert!(!budget.try_retry(t0 + Duration::from_millis(999)));
    assert!(budget.try_retry(t0 + Duration::from_millis(1_000)));
    assert!(!budget.try_retry(t0 + Duration::from_millis(1_000)));
    // A long idle spell refills only one second's worth.
    assert_eq!(budget.available(t0 + Duration::from_secs(3_600)), 1);
}

#[test]
fn ten_successes_buy_one_retry_and_deposits_are_capped() {
    let mut budget = RetryBudget::new(RetryBudgetConfig {
        min_retries_per_sec: 0,
        ..RetryBudgetConfig::default()
    })
    .unwrap();
    let t = Instant::from_secs(1);
    for _ in 0..9 {
        budget.record_success(t);
    }
    assert!(!budget.try_retry(t), "0.9 token is not a retry");
    budget.record_success(t);
    assert!(budget.try_retry(t));
    assert!(!budget.try_retry(t));

    for _ in 0..10_000 {
        budget.record_success(t);
    }
    assert_eq!(budget.available(t), 10, "capped at max_tokens");
    let allowed = (0..100).filter(|_| budget.try_retry(t)).count();
    assert_eq!(allowed, 10);
}

#[test]
fn time_going_backwards_refills_nothing() {
    let mut budget = RetryBudget::new(RetryBudgetConfig::default()).unwrap();
    let t = Instant::from_secs(100);
    assert!(budget.try_retry(t));
    assert!(!budget.try_retry(Instant::from_secs(10)));
    assert!(!budget.try_retry(t));
}
