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
    /// Whether the value names this proxy: by the service's id, or by URL
    /// ([`ProxyUrl::same_proxy`]). Either may be absent.
    fn names_proxy(&self, proxy_id: Option<&ProxyId>, proxy_url: Option<&ProxyUrl>) -> bool;
}

impl CacheValue for ProxyResponse {
    fn ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.ttl_seconds.get()))
    }

    fn names_proxy(&self, proxy_id: Option<&ProxyId>, proxy_url: Option<&ProxyUrl>) -> bool {
        let by_id = proxy_id.is_some_and(|id| self.metadata.proxy_id.as_ref() == Some(id));
        let by_url = proxy_url.is_some_and(|url| {
            self.proxy_url
                .as_ref()
                .is_some_and(|mine| mine.same_proxy(url))
        });
        by_id || by_url
    }
}
