//! Configuration of a [`Pool`](super::Pool): strategies, health scoring,
//! ejection and cool-downs, and the per-exchange policies.

use embassy_time::Duration;

use crate::model::{ExchangeId, FallbackPolicy, TtlSeconds};
use crate::{Reason, ValidationError};

/// Most per-exchange policies a [`PoolConfig`] holds.
pub const MAX_EXCHANGE_POLICIES: usize = 32;

/// How the pool picks a proxy among the eligible ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StrategyKind {
    /// Each eligible proxy in turn (wire name `round_robin`).
    RoundRobin,
    /// A uniformly random eligible proxy, from the configured seed (wire name `random`).
    Random,
    /// The eligible proxy with the fewest open connections, counted from
    /// `connect_start` / `disconnect` feedback; ties go round-robin (wire name
    /// `least_connections`).
    LeastConnections,
    /// A random eligible proxy with probability proportional to
    /// `weight × health score` (wire name `weighted`).
    Weighted,
    /// The same proxy for a (client, exchange) pair for
    /// [`PoolConfig::sticky_ttl`], chosen by rendezvous hashing so that the
    /// choice survives inventory changes (wire name `sticky`).
    Sticky,
}

impl StrategyKind {
    /// Every strategy.
    pub const ALL: [StrategyKind; 5] = [
        StrategyKind::RoundRobin,
        StrategyKind::Random,
        StrategyKind::LeastConnections,
        StrategyKind::Weighted,
        StrategyKind::Sticky,
    ];

    pub(crate) const fn index(self) -> usize {
        match self {
            StrategyKind::RoundRobin => 0,
            StrategyKind::Random => 1,
            StrategyKind::LeastConnections => 2,
            StrategyKind::Weighted => 3,
            StrategyKind::Sticky => 4,
        }
    }
}

crate::labels! {
    /// The name written in a response's `strategy` field.
    StrategyKind {
        RoundRobin => "round_robin",
        Random => "random",
        LeastConnections => "least_connections",
        Weighted => "weighted",
        Sticky => "sticky",
    }
    parse(field = "strategy", expected = "round_robin, random, least_connections, weighted, sticky")
}

/// What the pool answers for one exchange, overriding the pool-wide defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangePolicy {
    /// The exchange this policy is for.
    pub exchange: ExchangeId,
    /// The `fallback_policy` every answer for this exchange carries, with or
    /// without a proxy.
    pub fallback_policy: FallbackPolicy,
    /// The strategy for this exchange (`None`: [`PoolConfig::strategy`]).
    pub strategy: Option<StrategyKind>,
    /// The TTL of answers for this exchange (`None`: [`PoolConfig::ttl_seconds`]).
    pub ttl: Option<TtlSeconds>,
}

impl ExchangePolicy {
    /// A policy that only sets the fallback policy.
    pub fn new(exchange: ExchangeId, fallback_policy: FallbackPolicy) -> Self {
        Self {
            exchange,
            fallback_policy,
            strategy: None,
            ttl: None,
        }
    }
}

/// Configuration of a [`Pool`](super::Pool). Every field has a documented
/// default ([`PoolConfig::default`]); [`Pool::new`](super::Pool::new) checks the
/// values and names the first wrong field.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Seed of the random strategies (`random`, `weighted`). Default `0`.
    pub seed: u64,
    /// Strategy for exchanges without their own policy. Default `least_connections`.
    pub strategy: StrategyKind,
    /// `ttl_seconds` of answers for exchanges without their own TTL, 1–86400.
    /// Default 300.
    pub ttl_seconds: u32,
    /// `fallback_policy` of answers for exchanges without their own policy.
    /// Default `embedded_fallback`.
    pub fallback_policy: FallbackPolicy,
    /// Per-exchange overrides (at most [`MAX_EXCHANGE_POLICIES`]). Default none.
    pub exchange_policies: heapless::Vec<ExchangePolicy, MAX_EXCHANGE_POLICIES>,
    /// How long a sticky (client, exchange) choice lasts. Default 10 min.
    pub sticky_ttl: Duration,
    /// How long a `connect_start` counts as an open connection when no
    /// `disconnect` arrives. Default 1 h. Must be at least 3 ticks.
    pub lease_ttl: Duration,
    /// Weight of a new sample in the success-rate and latency moving averages,
    /// in (0, 1]. Default 0.1.
    pub ewma_alpha: f32,
    /// Latency up to which a proxy's health is not reduced; above it the score
    /// is multiplied by `target / latency`. Default 250 ms. Must be > 0.
    pub latency_target_ms: u32,
    /// Consecutive proxy-fault failures that eject a proxy. Default 5. Must be ≥ 1.
    pub eject_consecutive_failures: u16,
    /// A proxy whose success rate is this far below the pool's mean is
    /// ejected, in [0, 1]. Default 0.3.
    pub eject_success_rate_gap: f32,
    /// Samples a proxy needs before the success-rate rule applies. Default 10.
    pub eject_min_samples: u32,
    /// Base ejection time; the n-th ejection lasts `n × base`, at most
    /// [`PoolConfig::eject_max`]. Default 30 s.
    pub eject_base: Duration,
    /// Longest ejection. Default 10 min.
    pub eject_max: Duration,
    /// Largest share of the pool ejected at once, in percent of the inventory
    /// (rounded down), 0–100. Default 50.
    pub max_ejected_percent: u8,
    /// How long a `geo_blocked` failure bars the proxy (and, for a proxy with
    /// a single region, that region) for the exchange. Default 1 h.
    pub geo_block_cooldown: Duration,
    /// How long a `rate_limited` failure cools the proxy down for the exchange.
    /// Default 60 s.
    pub rate_limit_cooldown: Duration,
    /// Interval of active probes (a TCP connect to the proxy, emitted by
    /// [`Pool::poll_transmit`](super::Pool::poll_transmit)) while a proxy is
    /// ejected; `None` disables probes. Default `None`. Must be > 0.
    pub probe_interval: Option<Duration>,
    /// Length of the window of "recent failures" in the status snapshot: the
    /// counts cover the current and the previous window. Default 5 min.
    pub failure_window: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            strategy: StrategyKind::LeastConnections,
            ttl_seconds: 300,
            fallback_policy: FallbackPolicy::EmbeddedFallback,
            exchange_policies: heapless::Vec::new(),
            sticky_ttl: Duration::from_secs(600),
            lease_ttl: Duration::from_secs(3600),
            ewma_alpha: 0.1,
            latency_target_ms: 250,
            eject_consecutive_failures: 5,
            eject_success_rate_gap: 0.3,
            eject_min_samples: 10,
            eject_base: Duration::from_secs(30),
            eject_max: Duration::from_secs(600),
            max_ejected_percent: 50,
            geo_block_cooldown: Duration::from_secs(3600),
            rate_limit_cooldown: Duration::from_secs(60),
            probe_interval: None,
            failure_window: Duration::from_secs(300),
        }
    }
}

impl PoolConfig {
    /// Checks every field; the error names the first wrong one.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let range =
            |field, expected| Err(ValidationError::new(field, Reason::OutOfRange { expected }));
        if TtlSeconds::new(u64::from(self.ttl_seconds)).is_err() {
            return range("ttl_seconds", "1 to 86400 seconds");
        }
        if !(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0) {
            return range("ewma_alpha", "greater than 0 and at most 1");
        }
        if self.latency_target_ms == 0 {
            return range("latency_target_ms", "at least 1 ms");
        }
        if self.eject_consecutive_failures == 0 {
            return range("eject_consecutive_failures", "at least 1");
        }
        if !(0.0..=1.0).contains(&self.eject_success_rate_gap) {
            return range("eject_success_rate_gap", "0 to 1");
        }
        if self.max_ejected_percent > 100 {
            return range("max_ejected_percent", "0 to 100 percent");
        }
        if self.lease_ttl.as_ticks() < 3 {
            return range("lease_ttl", "a duration above zero (at least 3 ticks)");
        }
        if self.eject_max.as_ticks() < self.eject_base.as_ticks() {
            return range("eject_max", "at least eject_base");
        }
        if self.failure_window.as_ticks() == 0 {
            return range("failure_window", "a duration above zero");
        }
        if self.probe_interval.is_some_and(|p| p.as_ticks() == 0) {
            return range(
                "probe_interval",
                "a duration above zero, or None to disable probes",
            );
        }
        for (index, p) in self.exchange_policies.iter().enumerate() {
            if self.exchange_policies[..index]
                .iter()
                .any(|q| q.exchange == p.exchange)
            {
                // One policy per exchange.
                return Err(ValidationError::new(
                    "exchange_policies",
                    Reason::Duplicate { index },
                ));
            }
        }
        Ok(())
    }

    /// The policy for `exchange`, if one is configured.
    pub fn policy_for(&self, exchange: &ExchangeId) -> Option<&ExchangePolicy> {
        self.exchange_policies
            .iter()
            .find(|p| &p.exchange == exchange)
    }
}
