//! The seam between the Resolver and the embedded (cryptofeed-compatible)
//! configuration: when the service cannot answer, the Resolver asks an
//! [`EmbeddedRoutes`] for the route the local configuration gives.

use crate::model::{ConnectionType, ExchangeId, ProxyUrl};

/// A proxy chosen by the embedded configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedRoute {
    /// The proxy to connect through (with credentials, for the connector).
    pub proxy_url: ProxyUrl,
    /// The configured connect timeout for this proxy, in seconds.
    pub timeout_seconds: u16,
}

/// The embedded configuration, as the Resolver sees it.
///
/// `&mut self` because pool strategies advance on every pick (round-robin,
/// seeded random, least-connections leases).
pub trait EmbeddedRoutes {
    /// The route for this exchange connection, or `None` when the embedded
    /// configuration gives no proxy (disabled, nothing configured, or an
    /// explicit "connect directly").
    fn embedded_route(
        &mut self,
        exchange_id: &ExchangeId,
        connection_type: ConnectionType,
    ) -> Option<EmbeddedRoute>;

    /// A connection made through `proxy_url`, which this configuration gave
    /// for this exchange connection, has ended: give back what the pick took
    /// (a `least_connections` lease), so later picks see the pool as it is.
    /// The default has nothing to give back.
    fn release_route(
        &mut self,
        exchange_id: &ExchangeId,
        connection_type: ConnectionType,
        proxy_url: &ProxyUrl,
    ) {
        let _ = (exchange_id, connection_type, proxy_url);
    }
}

/// No embedded configuration: every lookup gives "connect directly".
impl EmbeddedRoutes for () {
    fn embedded_route(&mut self, _: &ExchangeId, _: ConnectionType) -> Option<EmbeddedRoute> {
        None
    }
}

/// A boxed configuration (a large one lives on the heap) routes as itself.
#[cfg(feature = "alloc")]
impl<T: EmbeddedRoutes + ?Sized> EmbeddedRoutes for alloc::boxed::Box<T> {
    fn embedded_route(
        &mut self,
        exchange_id: &ExchangeId,
        connection_type: ConnectionType,
    ) -> Option<EmbeddedRoute> {
        (**self).embedded_route(exchange_id, connection_type)
    }

    fn release_route(
        &mut self,
        exchange_id: &ExchangeId,
        connection_type: ConnectionType,
        proxy_url: &ProxyUrl,
    ) {
        (**self).release_route(exchange_id, connection_type, proxy_url);
    }
}
