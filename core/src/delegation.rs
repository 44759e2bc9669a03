//! The one bridge from the `external_service` block of the settings to the
//! [`Resolver`](crate::resolver::Resolver): which configuration, which
//! endpoints, and what the adapter must do itself (authentication, SRV
//! discovery, the region of its requests).
//!
//! Every `external_service` key has its effect here or is refused here:
//!
//! | key | effect |
//! | --- | --- |
//! | `enabled` | whether an adapter builds a service client at all ([`Delegation::enabled`]) |
//! | `endpoints` | the static endpoints, the first preferred ([`EndpointConfig::priority`] is the position) |
//! | `srv_name` | endpoints discovered from DNS SRV by the adapter ([`Delegation::srv_name`]) |
//! | `auth_method`, `auth_credentials` | checked here (the method's credential must be present); sent by the adapter's transport |
//! | `timeout_seconds` | [`ResolverConfig::request_timeout`] |
//! | `cache_ttl_seconds` | the longest a service answer stays fresh ([`CacheConfig::max_ttl`](crate::cache::CacheConfig::max_ttl)); a shorter `ttl_seconds` from the service wins |
//! | `circuit_breaker_enabled` | [`ResolverConfig::circuit_breaker_enabled`] |
//! | `fallback_to_embedded` | [`ResolverConfig::fallback_to_embedded`] |
//! | `resolve_deadline_ms` | [`ResolverConfig::resolve_deadline`] |
//! | `hedge_delay_ms` | [`ResolverConfig::hedge_delay`] |
//! | `stale_grace_seconds` | [`CacheConfig::stale_grace`](crate::cache::CacheConfig::stale_grace) |
//! | `region` | the region of requests that name none ([`Delegation::region`]) |
//! | `client_id` | [`ResolverConfig::client_id`] (else the caller's default) |
//!
//! [`ResolverConfig::new`] is this bridge applied to the default block, so
//! the settings and the Resolver have one set of defaults.
//!
//! ```
//! use proxy_delegate_core::model::ClientId;
//! use proxy_delegate_core::settings::{AuthMethod, ExternalService};
//!
//! let mut block = ExternalService::default();
//! block.enabled = true;
//! block.endpoints.push("https://svc-a:8443".parse()?).unwrap();
//! block.endpoints.push("https://svc-b:8443".parse()?).unwrap();
//! let d = block.delegation(ClientId::new("feed-1")?)?;
//! assert_eq!(d.endpoints.len(), 2);
//! assert_eq!(d.endpoints[1].priority, 1);
//! assert_eq!(d.config.request_timeout.as_secs(), 10);
//!
//! block.auth_method = Some(AuthMethod::BearerToken);
//! let err = block.delegation(ClientId::new("feed-1")?).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "external_service.auth_credentials.token: requires a token when auth_method is bearer_token"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use embassy_time::Duration;

use crate::endpoints::EndpointConfig;
use crate::model::{ClientId, Region};
use crate::resolver::ResolverConfig;
use crate::settings::{AuthMethod, ExternalService, MAX_ENDPOINTS, MAX_SRV_NAME_LEN};
use crate::{Reason, ValidationError};

/// What the `external_service` block asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// Whether to delegate at all (`external_service.enabled`).
    pub enabled: bool,
    /// The Resolver's configuration.
    pub config: ResolverConfig,
    /// The static endpoints (may be empty when `srv_name` is set).
    pub endpoints: heapless::Vec<EndpointConfig, MAX_ENDPOINTS>,
    /// Discover the endpoints from this DNS SRV name (the adapter's job).
    pub srv_name: Option<heapless::String<MAX_SRV_NAME_LEN>>,
    /// The region for requests that name none.
    pub region: Option<Region>,
    /// How the adapter's transport authenticates (its credentials were
    /// checked to be present).
    pub auth_method: Option<AuthMethod>,
}

fn refuse(field: &'static str, what: &'static str) -> ValidationError {
    ValidationError::new(field, Reason::Requires { what })
}

impl ExternalService {
    /// The Resolver's configuration and endpoints this block describes,
    /// with `client_id` used when the block names none. Refuses a block that
    /// cannot work: enabled with neither endpoints nor `srv_name`, or an
    /// `auth_method` whose credential is missing.
    pub fn delegation(&self, client_id: ClientId) -> Result<Delegation, ValidationError> {
        if self.enabled && self.endpoints.is_empty() && self.srv_name.is_none() {
            return Err(refuse(
                "external_service.endpoints",
                "at least one endpoint, or an srv_name, when enabled is true",
            ));
        }
        let creds = &self.auth_credentials;
        match self.auth_method {
            Some(AuthMethod::BearerToken) if creds.token.is_none() => {
                return Err(refuse(
                    "external_service.auth_credentials.token",
                    "a token when auth_method is bearer_token",
                ));
            }
            Some(AuthMethod::ApiKey) if creds.api_key.is_none() => {
                return Err(refuse(
                    "external_service.auth_credentials.api_key",
                    "an api_key when auth_method is api_key",
                ));
            }
            Some(AuthMethod::MutualTls) if creds.cert_file.is_none() => {
                return Err(refuse(
                    "external_service.auth_credentials.cert_file",
                    "a cert_file when auth_method is mutual_tls",
                ));
            }
            Some(AuthMethod::MutualTls) if creds.key_file.is_none() => {
                return Err(refuse(
                    "external_service.auth_credentials.key_file",
                    "a key_file when auth_method is mutual_tls",
                ));
            }
            _ => {}
        }
        let mut config = ResolverConfig::base(self.client_id.clone().unwrap_or(client_id));
        self.apply(&mut config);
        let mut endpoints = heapless::Vec::new();
        for (i, url) in self.endpoints.iter().enumerate() {
            // Same capacity as `self.endpoints`; the position fits in a u8.
            let _ = endpoints.push(EndpointConfig::new(
                url.clone(),
                u8::try_from(i).unwrap_or(u8::MAX),
            ));
        }
        Ok(Delegation {
            enabled: self.enabled,
            config,
            endpoints,
            srv_name: self.srv_name.clone(),
            region: self.region.clone(),
            auth_method: self.auth_method,
        })
    }

    /// Sets what this block decides in `config` (everything but the client
    /// id).
    pub(crate) fn apply(&self, config: &mut ResolverConfig) {
        config.request_timeout = Duration::from_secs(u64::from(self.timeout_seconds.get()));
        config.resolve_deadline = Duration::from_millis(u64::from(self.resolve_deadline_ms.get()));
        config.hedge_delay = Duration::from_millis(u64::from(self.hedge_delay_ms.get()));
        config.fallback_to_embedded = self.fallback_to_embedded;
        config.circuit_breaker_enabled = self.circuit_breaker_enabled;
        config.cache.max_ttl = Duration::from_secs(u64::from(self.cache_ttl_seconds.get()));
        config.cache.stale_grace = Duration::from_secs(u64::from(self.stale_grace_seconds.get()));
    }
}
