//! How a [`Resolver`] is configured: [`ResolverConfig`].

use embassy_time::Duration;

#[cfg(doc)]
use super::Resolver;
use crate::backoff::RetryBudgetConfig;
use crate::cache::CacheConfig;
use crate::contract;
use crate::endpoints::EndpointsConfig;
use crate::feedback::FeedbackConfig;
use crate::model::{ClientId, FallbackPolicy};

/// How a [`Resolver`] behaves. [`ResolverConfig::new`] gives the documented
/// defaults for everything but the client id: those of the settings'
/// `external_service` block, through the one bridge,
/// [`ExternalService::delegation`](crate::settings::ExternalService::delegation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Sent in service requests built for background refreshes.
    pub client_id: ClientId,
    /// How long a resolve waits for the service before it falls back. Default 500 ms.
    pub resolve_deadline: Duration,
    /// How long a service request may take before its attempt counts as
    /// failed. A reply after the resolve deadline but within this still
    /// fills the cache. Default 10 s (`timeout_seconds`).
    pub request_timeout: Duration,
    /// If an endpoint has not answered within this, the same request also goes
    /// to the next healthy endpoint (within the retry budget); zero turns
    /// hedging off. Default 100 ms (as `hedge_delay_ms` in the settings).
    pub hedge_delay: Duration,
    /// Whether the `embedded_fallback` policy may use the embedded
    /// configuration (otherwise it connects directly). Default true.
    pub fallback_to_embedded: bool,
    /// The policy for keys the service has not answered yet. Default
    /// `embedded_fallback`.
    pub default_fallback_policy: FallbackPolicy,
    /// Whether each endpoint has a circuit breaker; when false the breakers
    /// are disabled (they admit every call). Default true.
    pub circuit_breaker_enabled: bool,
    /// The response cache. Default [`CacheConfig::default`] with `max_ttl`
    /// 300 s (`cache_ttl_seconds`).
    pub cache: CacheConfig,
    /// The service endpoints' health checks and breakers. Default
    /// [`EndpointsConfig::default`].
    pub endpoints: EndpointsConfig,
    /// The budget for hedges and retries. Default [`RetryBudgetConfig::default`].
    pub retry_budget: RetryBudgetConfig,
    /// The feedback queue. Default [`FeedbackConfig::default`].
    pub feedback: FeedbackConfig,
    /// Seed of the correlation ids (the machines have their own seeds in their
    /// configs). Default 0.
    pub seed: u64,
    /// The wire format of requests, answers and feedback batches (the
    /// feedback queue's own `wire` is set from it). Default JSON, which
    /// needs the crate's `json` feature: a build without it must set
    /// postcard ([`WireFormat::is_supported`](contract::WireFormat::is_supported)).
    pub wire: contract::WireFormat,
}

impl ResolverConfig {
    /// The defaults, for a client called `client_id`.
    pub fn new(client_id: ClientId) -> Self {
        let mut config = Self::base(client_id);
        crate::settings::ExternalService::default().apply(&mut config);
        config
    }

    /// The machine's own defaults, before the settings' defaults apply.
    pub(crate) fn base(client_id: ClientId) -> Self {
        Self {
            client_id,
            resolve_deadline: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
            hedge_delay: Duration::from_millis(100),
            fallback_to_embedded: true,
            circuit_breaker_enabled: true,
            default_fallback_policy: FallbackPolicy::EmbeddedFallback,
            cache: CacheConfig::default(),
            endpoints: EndpointsConfig::default(),
            retry_budget: RetryBudgetConfig::default(),
            feedback: FeedbackConfig::default(),
            seed: 0,
            wire: contract::WireFormat::Json,
        }
    }
}
