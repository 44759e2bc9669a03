//! Capped exponential backoff with jitter, and a retry budget.
//!
//! Two small, clock-free helpers that every retrying machine in the core
//! shares:
//!
//! - [`Backoff`] says how long to wait before the next attempt: capped
//!   exponential growth with full, equal or decorrelated jitter (the AWS
//!   "Exponential Backoff and Jitter" note), a maximum number of attempts, and
//!   a server's `Retry-After` hint honoured. The jitter comes from a seed: the
//!   same seed gives the same delays.
//! - [`RetryBudget`] says whether a retry may happen at all: a token bucket in
//!   which each success deposits a fraction of a token and each retry spends
//!   one, plus a small floor of retries per second that is always allowed. A
//!   struggling service therefore sees at most `deposit × successes + floor`
//!   retries, never a multiple of its normal load.
//!
//! All arithmetic is integer: delays in `embassy_time` ticks, tokens in
//! millionths of a token.
//!
//! ```
//! use embassy_time::{Duration, Instant};
//! use proxy_delegate_core::backoff::{
//!     Backoff, BackoffConfig, Jitter, RetryBudget, RetryBudgetConfig,
//! };
//!
//! let config = BackoffConfig {
//!     base: Duration::from_millis(100),
//!     max_delay: Duration::from_secs(5),
//!     jitter: Jitter::Full,
//!     max_attempts: Some(3),
//!     seed: 7,
//!     ..BackoffConfig::default()
//! };
//! let mut backoff = Backoff::new(config)?;
//! let mut budget = RetryBudget::new(RetryBudgetConfig::default())?;
//! let now = Instant::from_secs(10);
//!
//! // Attempt 1 failed: wait at most `base` (full jitter draws from 0..=base).
//! let wait = backoff.next_delay(None).expect("attempt 2 is allowed");
//! assert!(wait <= Duration::from_millis(100));
//! assert!(budget.try_retry(now)); // the floor allows one retry per second
//!
//! // Attempt 2 failed with `Retry-After: 2`: never retry sooner than that.
//! let wait = backoff.next_delay(Some(Duration::from_secs(2))).expect("attempt 3 is allowed");
//! assert!(wait >= Duration::from_secs(2));
//! assert!(!budget.try_retry(now)); // no successes yet, floor spent
//!
//! // Attempt 3 failed: that was the last one.
//! assert!(backoff.next_delay(None).is_err());
//!
//! // The same seed replays the same delays.
//! let mut a = Backoff::new(config)?;
//! let mut b = Backoff::new(config)?;
//! for _ in 0..2 {
//!     assert_eq!(a.next_delay(None), b.next_delay(None));
//! }
//! # Ok::<(), proxy_delegate_core::ValidationError>(())
//! ```

use core::fmt;

use embassy_time::{Duration, Instant};

use crate::{Reason, ValidationError};

/// How the exponential delay is randomised (see the AWS note "Exponential
/// Backoff and Jitter"). With `exp = min(max_delay, base × 2^(attempt − 1))`:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// No jitter: exactly `exp`. Only for tests and single clients; many
    /// clients without jitter retry in lockstep.
    None,
    /// Uniform in `0..=exp` (the default: the least total work for the server).
    #[default]
    Full,
    /// Uniform in `exp/2..=exp`: never shorter than half the exponential delay.
    Equal,
    /// `min(max_delay, uniform in base..=3 × previous)`, starting from
    /// `previous = base`; grows with its own history rather than the attempt
    /// count.
    Decorrelated,
}

/// Settings of a [`Backoff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first (un-jittered) delay. Default 100 ms. Must not be zero.
    pub base: Duration,
    /// The cap on the computed delay. Default 10 s. Must be at least `base`.
    pub max_delay: Duration,
    /// How the delay is randomised. Default [`Jitter::Full`].
    pub jitter: Jitter,
    /// Attempts in all, the first one included (`Some(1)` never retries);
    /// `None` retries for ever. Default `Some(4)`. `Some(0)` is refused.
    pub max_attempts: Option<u32>,
    /// The longest `Retry-After` hint honoured. Default 60 s. A longer hint is
    /// treated as this long, so a misconfigured or hostile server cannot park
    /// the client for hours; shorter hints are never undercut. Must be at
    /// least `max_delay`.
    pub max_retry_after: Duration,
    /// Seed of the jitter: the same seed gives the same delays. Default 0;
    /// give every client its own seed so they do not retry in lockstep.
    pub seed: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            jitter: Jitter::Full,
            max_attempts: Some(4),
            max_retry_after: Duration::from_secs(60),
            seed: 0,
        }
    }
}

const fn invalid(field: &'static str, expected: &'static str) -> ValidationError {
    ValidationError::new(field, Reason::OutOfRange { expected })
}

impl BackoffConfig {
    /// Checks that the settings can work.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.base.as_ticks() == 0 {
            return Err(invalid("base", "a duration above zero"));
        }
        if self.max_delay < self.base {
            return Err(invalid("max_delay", "at least `base`"));
        }
        if self.max_attempts == Some(0) {
            return Err(invalid(
                "max_attempts",
                "at least 1 (the first attempt), or None for no limit",
            ));
        }
        if self.max_retry_after < self.max_delay {
            return Err(invalid("max_retry_after", "at least `max_delay`"));
        }
        Ok(())
    }
}

/// Why [`Backoff::next_delay`] says not to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GiveUp {
    /// Every allowed attempt has been made.
    AttemptsExhausted {
        /// Attempts made (the configured `max_attempts`).
        attempts: u32,
    },
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUp::AttemptsExhausted { attempts } => write!(
                f,
                "gave up after {attempts} attempts (raise `max_attempts` to retry more)"
            ),
        }
    }
}

impl core::error::Error for GiveUp {}

/// Capped exponential backoff with seeded jitter.
///
/// # Call order
///
/// 1. [`Backoff::new`] once, from a validated [`BackoffConfig`].
/// 2. After each failed attempt, [`Backoff::next_delay`] with the server's
///    `Retry-After` hint if it sent one: `Ok(delay)` means "retry after
///    `delay`" (the caller sets its timer to `now + delay`), `Err(GiveUp)`
///    means "stop retrying".
/// 3. After a success, [`Backoff::reset`], so the next failure starts from
///    `base` again.
///
/// The delay for the `n`-th failure (`n` from 1) is drawn from the
/// [`Jitter`] rule with `exp = min(max_delay, base × 2^(n−1))`; then, if a hint
/// was given, it is raised to `min(hint, max_retry_after)`. So a retry never
/// comes sooner than a `Retry-After` of up to `max_retry_after`, and no delay
/// is ever longer than `max(max_delay, max_retry_after)`.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    rng: fastrand::Rng,
    /// Failures since the last reset.
    failures: u32,
    /// The previous jittered delay, in ticks (decorrelated jitter).
    prev: u64,
}

impl Backoff {
    /// A backoff with no failures yet.
    pub fn new(config: BackoffConfig) -> Result<Self, ValidationError> {
        config.validate()?;
        Ok(Self {
            rng: fastrand::Rng::with_seed(config.seed),
            failures: 0,
            prev: config.base.as_ticks(),
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// Failed attempts since the last [`reset`](Self::reset).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failed attempt and says how long to wait before the next
    /// one, honouring the server's `Retry-After` hint (see the type's doc).
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Result<Duration, GiveUp> {
        self.failures = self.failures.saturating_add(1);
        if let Some(max) = self.config.max_attempts
            && self.failures >= max
        {
            return Err(GiveUp::AttemptsExhausted { attempts: max });
        }
        let base = self.config.base.as_ticks();
        let cap = self.config.max_delay.as_ticks();
        let shift = (self.failures - 1).min(63);
        let exp = base.checked_shl(shift).filter(|v| v >> shift == base);
        let exp = exp.map_or(cap, |v| v.min(cap));
        let ticks = match self.config.jitter {
            Jitter::None => exp,
            Jitter::Full => self.rng.u64(0..=exp),
            Jitter::Equal => {
                let half = exp / 2;
                self.rng.u64(half..=exp)
            }
            Jitter::Decorrelated => {
                let hi = self.prev.saturating_mul(3).min(cap).max(base);
                let v = self.rng.u64(base..=hi);
                self.prev = v;
                v
            }
        };
        let mut delay = Duration::from_ticks(ticks);
        if let Some(hint) = retry_after {
            delay = delay.max(hint.min(self.config.max_retry_after));
        }
        Ok(delay)
    }

    /// Forgets past failures (call after a success). The jitter's random
    /// sequence continues; it is not re-seeded.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.prev = self.config.base.as_ticks();
    }
}

/// One token, in the budget's fixed-point unit (millionths of a token).
const TOKEN: u64 = 1_000_000;
/// The largest `min_retries_per_sec` accepted (keeps the arithmetic in `u64`).
const MAX_FLOOR_PER_SEC: u32 = 1_000_000;
/// The largest `max_tokens` accepted.
const MAX_TOKENS: u32 = 1_000_000;

/// Settings of a [`RetryBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RetryBudgetConfig {
    /// What one success deposits, in thousandths of a token. Default 100
    /// (0.1 token: at most one retry per ten successes, a 10% extra load).
    /// At most 1000: a success may not buy more than one retry.
    pub deposit_per_success_milli: u32,
    /// Retries per second always allowed, even with no successes (so a client
    /// can notice that a service has recovered). Default 1. The floor bucket
    /// holds one second's worth and refills continuously. At most 1,000,000.
    pub min_retries_per_sec: u32,
    /// The most deposited tokens kept, so a long healthy spell cannot bank an
    /// unbounded burst of retries. Default 10. At most 1,000,000.
    pub max_tokens: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        Self {
            deposit_per_success_milli: 100,
            min_retries_per_sec: 1,
            max_tokens: 10,
        }
    }
}

impl RetryBudgetConfig {
    /// Checks that the settings can work.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.deposit_per_success_milli > 1000 {
            return Err(invalid(
                "deposit_per_success_milli",
                "at most 1000 (one token per success); more would let retries multiply load",
            ));
        }
        if self.min_retries_per_sec > MAX_FLOOR_PER_SEC {
            return Err(invalid("min_retries_per_sec", "at most 1000000"));
        }
        if self.max_tokens > MAX_TOKENS {
            return Err(invalid("max_tokens", "at most 1000000"));
        }
        Ok(())
    }
}

/// A retry budget: a token bucket filled by successes, plus a floor.
///
/// Over any run of `T` seconds with `S` successes, at most
/// `min_retries_per_sec × (1 + T) + S × deposit` retries are allowed (the
/// floor bucket starts full and refills at its rate; deposits start at zero).
///
/// # Call order
///
/// 1. [`RetryBudget::new`] once.
/// 2. [`RetryBudget::record_success`] after every successful call (first
///    attempts and retries alike).
/// 3. Before every *retry* (not before first attempts),
///    [`RetryBudget::try_retry`]: `true` spends a token and allows it, `false`
///    means "do not retry; fail or fall back now".
///
/// Times passed in must not go backwards; an earlier `now` is treated as no
/// time passing.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    config: RetryBudgetConfig,
    /// Deposited tokens, in millionths.
    tokens: u64,
    /// Floor tokens, in millionths.
    floor: u64,
    /// When the floor bucket was last brought up to date; `None` until first use
    /// (it starts full, so its start time does not matter).
    floor_at: Option<Instant>,
}

impl RetryBudget {
    /// An empty budget with a full floor bucket.
    pub fn new(config: RetryBudgetConfig) -> Result<Self, ValidationError> {
        config.validate()?;
        Ok(Self {
            config,
            tokens: 0,
            floor: u64::from(config.min_retries_per_sec) * TOKEN,
            floor_at: None,
        })
    }

    /// The settings.
    pub fn config(&self) -> &RetryBudgetConfig {
        &self.config
    }

    /// Deposits the share of a token that a success earns.
    pub fn record_success(&mut self, now: Instant) {
        self.refill(now);
        let deposit = u64::from(self.config.deposit_per_success_milli) * (TOKEN / 1000);
        let cap = u64::from(self.config.max_tokens) * TOKEN;
        self.tokens = (self.tokens + deposit).min(cap);
    }

    /// Spends one token for a retry if there is one (deposits first, then the
    /// floor). `false`: the budget is spent; do not retry.
    pub fn try_retry(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= TOKEN {
            self.tokens -= TOKEN;
            true
        } else if self.floor >= TOKEN {
            self.floor -= TOKEN;
            true
        } else {
            false
        }
    }

    /// Whole retries the budget would allow at `now`, without spending any.
    pub fn available(&self, now: Instant) -> u64 {
        let mut copy = self.clone();
        copy.refill(now);
        copy.tokens / TOKEN + copy.floor / TOKEN
    }

    fn refill(&mut self, now: Instant) {
        let rate = u64::from(self.config.min_retries_per_sec);
        let cap = rate * TOKEN;
        let Some(at) = self.floor_at else {
            self.floor_at = Some(now);
            return;
        };
        if self.floor >= cap {
            self.floor_at = Some(now);
            return;
        }
        let elapsed = now.saturating_duration_since(at);
        // One second refills the whole bucket; clamping keeps the product small.
        let micros = elapsed.as_micros().min(1_000_000);
        // `rate` tokens per second is `rate` millionths per microsecond.
        let gained = micros * rate;
        if self.floor + gained >= cap {
            self.floor = cap;
            self.floor_at = Some(now);
        } else if gained > 0 {
            self.floor += gained;
            self.floor_at = Some(at + Duration::from_micros(micros));
        }
    }
}
