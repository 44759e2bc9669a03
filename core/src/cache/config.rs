//! How the cache treats TTLs, refreshes and stale entries ([`CacheConfig`]),
//! and what can be wrong with it.

use embassy_time::Duration;

use super::{CacheKey, MAX_WARM_KEYS};
use crate::{Reason, ValidationError};

/// How the cache treats TTLs, refreshes and stale entries.
///
/// Every field has a documented default ([`CacheConfig::default`]);
/// [`Cache::new`](super::Cache::new) checks the values and names the first wrong field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Shortest time an answer is kept fresh, whatever its TTL says. Default 1 s.
    pub min_ttl: Duration,
    /// Longest time an answer is kept fresh, whatever its TTL says; must be
    /// greater than zero and at least `min_ttl`. Default 1 h.
    pub max_ttl: Duration,
    /// Share of the TTL, in percent (1–100), after which a lookup schedules a
    /// background refresh. 100 turns refresh-ahead off. Default 80.
    pub refresh_ahead_percent: u8,
    /// How long an expired entry is kept for [`Cache::get_stale`](super::Cache::get_stale). Zero turns
    /// stale-if-error off. Default 10 min.
    pub stale_grace: Duration,
    /// How long a refresh handed out by [`Cache::poll_refresh`](super::Cache::poll_refresh) may take before
    /// the key can be scheduled again (guards against a refresh whose outcome
    /// is never reported). Must be greater than zero. Default 10 s.
    pub refresh_timeout: Duration,
    /// How long after [`Cache::refresh_failed`](super::Cache::refresh_failed) the key can be scheduled again.
    /// Must be greater than zero. Default 5 s.
    pub refresh_retry: Duration,
    /// Keys kept fresh proactively: each comes out of [`Cache::poll_refresh`](super::Cache::poll_refresh)
    /// when it is missing or its refresh is due, without waiting for a lookup.
    /// Each key at most once. Default empty.
    pub warm_keys: heapless::Vec<CacheKey, MAX_WARM_KEYS>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(3600),
            refresh_ahead_percent: 80,
            stale_grace: Duration::from_secs(600),
            refresh_timeout: Duration::from_secs(10),
            refresh_retry: Duration::from_secs(5),
            warm_keys: heapless::Vec::new(),
        }
    }
}

impl CacheConfig {
    /// Checks the configuration; the error names the first wrong field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let range =
            |field, expected| Err(ValidationError::new(field, Reason::OutOfRange { expected }));
        if self.max_ttl == Duration::from_ticks(0) {
            return range("max_ttl", "a duration above zero");
        }
        if self.min_ttl > self.max_ttl {
            return range("min_ttl", "at most max_ttl");
        }
        if !(1..=100).contains(&self.refresh_ahead_percent) {
            return range(
                "refresh_ahead_percent",
                "1 to 100 percent (100 turns refresh-ahead off)",
            );
        }
        if self.refresh_timeout == Duration::from_ticks(0) {
            return range("refresh_timeout", "a duration above zero");
        }
        if self.refresh_retry == Duration::from_ticks(0) {
            return range("refresh_retry", "a duration above zero");
        }
        for (index, key) in self.warm_keys.iter().enumerate() {
            if self.warm_keys[..index].contains(key) {
                return Err(ValidationError::new(
                    "warm_keys",
                    Reason::Duplicate { index },
                ));
            }
        }
        Ok(())
    }
}
