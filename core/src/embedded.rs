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
}

/// No embedded configuration: every lookup gives "connect directly".
impl EmbeddedRoutes for () {
    fn embedded_route(&mut self, _: &ExchangeId, _: ConnectionType) -> Option<EmbeddedRoute> {
        None
    }
}
