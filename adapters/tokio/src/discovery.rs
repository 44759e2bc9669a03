//! Endpoints from DNS SRV (feature `dns-srv`): the client starts on the
//! first lookup's endpoints and a task looks again when the records' TTL
//! runs out, replacing the Resolver's endpoints when they change. A failed
//! lookup keeps the endpoints the client has and is tried again.

use std::sync::{Arc, Weak};

use proxy_delegate_core::delegation::Delegation;

use crate::client::{ClientError, Embedded, ProxyServiceClient};
use crate::http::{HttpTransport, TransportConfig};
use crate::srv::{DnsConfig, SrvDiscovery};

/// Looks the SRV name up, builds the client on its endpoints (and on the
/// same DNS configuration for the HTTP client's own name lookups), and
/// keeps the endpoints current.
pub(crate) async fn start(
    srv_name: &str,
    dns: &DnsConfig,
    mut delegation: Delegation,
    embedded: Embedded,
    transport: TransportConfig,
) -> Result<ProxyServiceClient, ClientError> {
    let discovery =
        SrvDiscovery::new(srv_name, dns).map_err(|e| ClientError::Discovery(e.to_string()))?;
    let found = discovery
        .lookup()
        .await
        .map_err(|e| ClientError::Discovery(e.to_string()))?;
    // Static endpoints, if any, come after the discovered ones.
    let mut endpoints = found.endpoints.clone();
    endpoints.extend(delegation.endpoints.iter().cloned());
    endpoints.truncate(crate::client::ENDPOINT_CAPACITY);
    delegation.endpoints = endpoints.iter().cloned().collect();
    let transport = HttpTransport::with_resolver(transport, discovery.http_resolver())
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    let client = ProxyServiceClient::with_transport(delegation, embedded, Arc::new(transport))?;
    tokio::spawn(refresh(
        discovery,
        client.downgrade(),
        endpoints,
        found.refresh_at,
    ));
    Ok(client)
}

/// Looks again at each refresh time while the client lives.
async fn refresh(
    discovery: SrvDiscovery,
    client: Weak<crate::client::Handle>,
    mut current: Vec<proxy_delegate_core::endpoints::EndpointConfig>,
    mut at: tokio::time::Instant,
) {
    loop {
        tokio::time::sleep_until(at).await;
        let Some(client) = ProxyServiceClient::upgrade(&client) else {
            return;
        };
        match discovery.lookup().await {
            Ok(found) => {
                if found.endpoints != current {
                    match client.replace_endpoints(&found.endpoints) {
                        Ok(()) => {
                            tracing::info!(
                                srv_name = discovery.srv_name(),
                                endpoints = found.endpoints.len(),
                                "service endpoints changed"
                            );
                            current = found.endpoints;
                        }
                        Err(e) => tracing::warn!(srv_name = discovery.srv_name(), "{e}"),
                    }
                }
                at = found.refresh_at;
            }
            Err(e) => {
                tracing::warn!(
                    srv_name = discovery.srv_name(),
                    "{e}; keeping the current endpoints"
                );
                at = tokio::time::Instant::now() + discovery.retry_after();
            }
        }
    }
}
