//! What the cache needs to know about a cached value ([`CacheValue`]).

use embassy_time::Duration;

use crate::model::{ProxyId, ProxyResponse, ProxyUrl};

/// What the cache needs to know about a cached value: its TTL and the proxy it
/// names (for [`Cache::invalidate_proxy`](super::Cache::invalidate_proxy)).
///
/// Implemented for [`ProxyResponse`]; a caller that caches a larger struct
/// around a response implements it by delegation.
pub trait CacheValue {
    /// How long the value may be cached, before clamping to the configured
    /// minimum and maximum.
    fn ttl(&self) -> Duration;
    /// The service's id of the proxy the value names, if any.
    fn proxy_id(&self) -> Option<&ProxyId>;
    /// The proxy URL the value names, if any (`None`: a direct connection).
    fn proxy_url(&self) -> Option<&ProxyUrl>;
}

impl CacheValue for ProxyResponse {
    fn ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.ttl_seconds.get()))
    }

    fn proxy_id(&self) -> Option<&ProxyId> {
        self.metadata.proxy_id.as_ref()
    }

    fn proxy_url(&self) -> Option<&ProxyUrl> {
        self.proxy_url.as_ref()
    }
}
