//! What the operator says about the endpoints: each one's URL and priority
//! ([`EndpointConfig`]) and the settings they share ([`EndpointsConfig`]).

use embassy_time::Duration;

use crate::breaker::BreakerConfig;
use crate::model::ServiceUrl;
use crate::{Reason, ValidationError};

/// One endpoint: its URL and its priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// The service's base URL.
    pub url: ServiceUrl,
    /// Lower is preferred: endpoints of the best priority that are healthy
    /// take all the traffic, in rotation.
    pub priority: u8,
}

impl EndpointConfig {
    /// An endpoint with the given URL and priority.
    pub fn new(url: ServiceUrl, priority: u8) -> Self {
        Self { url, priority }
    }
}

/// Settings shared by all endpoints. Every field has a documented default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointsConfig {
    /// The configuration of each endpoint's breaker (each breaker gets its
    /// own seed, derived from `seed` and the endpoint's index). Default
    /// [`BreakerConfig::default`].
    pub breaker: BreakerConfig,
    /// Interval between health checks of a healthy endpoint. Must not be zero.
    /// Default 10 s.
    pub check_interval: Duration,
    /// Interval between health checks of a down endpoint. Must not be zero.
    /// Default 2 s.
    pub down_check_interval: Duration,
    /// Random extra delay added to every scheduled check, up to this share of
    /// its interval, in percent (0 to 100). The first check of each endpoint
    /// is spread over the same share of `check_interval`. Default 20.
    pub check_jitter_percent: u8,
    /// A routine check with no answer within this time failed. Must not be
    /// zero. Default 2 s.
    pub check_timeout: Duration,
    /// Timeout of the immediate check sent when an endpoint becomes suspect,
    /// and of checks of a down endpoint. Must not be zero and at most 2 s, so
    /// that a dead endpoint is marked down within 2 s of its first failure.
    /// Default 1 s.
    pub suspect_check_timeout: Duration,
    /// Seed of the check jitter: the same seed gives the same schedule.
    /// Default 0.
    pub seed: u64,
}

impl Default for EndpointsConfig {
    fn default() -> Self {
        Self {
            breaker: BreakerConfig::default(),
            check_interval: Duration::from_secs(10),
            down_check_interval: Duration::from_secs(2),
            check_jitter_percent: 20,
            check_timeout: Duration::from_secs(2),
            suspect_check_timeout: Duration::from_secs(1),
            seed: 0,
        }
    }
}

impl EndpointsConfig {
    /// Checks every field; the error names the field (`endpoints.<field>`).
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.breaker.validate()?;
        let range = |ok: bool, field: &'static str, expected: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(ValidationError::new(field, Reason::OutOfRange { expected }))
            }
        };
        let positive = |d: Duration| d.as_ticks() > 0;
        range(
            positive(self.check_interval),
            "endpoints.check_interval",
            "a duration above zero",
        )?;
        range(
            positive(self.down_check_interval),
            "endpoints.down_check_interval",
            "a duration above zero",
        )?;
        range(
            self.check_jitter_percent <= 100,
            "endpoints.check_jitter_percent",
            "0 to 100 percent",
        )?;
        range(
            positive(self.check_timeout),
            "endpoints.check_timeout",
            "a duration above zero",
        )?;
        range(
            positive(self.suspect_check_timeout)
                && self.suspect_check_timeout <= Duration::from_secs(2),
            "endpoints.suspect_check_timeout",
            "above zero and at most 2 s",
        )?;
        Ok(())
    }
}
