//! The `external_service` block: whether and how to delegate to the proxy
//! service ([`ExternalService`]) — its endpoints, authentication and
//! secrets, timeouts, cache and fallback settings.

use core::fmt;

use crate::endpoints::ServiceUrl;
use crate::model::{ClientId, Region};
use crate::{Reason, ValidationError};

/// Most service endpoints in `external_service.endpoints`.
pub const MAX_ENDPOINTS: usize = 8;
/// Longest secret (token, API key), in bytes.
pub const MAX_SECRET_LEN: usize = 512;
/// Longest file path (certificate, key, CA bundle), in bytes.
pub const MAX_FILE_PATH_LEN: usize = 256;
/// Longest DNS SRV name, in bytes.
pub const MAX_SRV_NAME_LEN: usize = 253;

bounded_number! {
    /// How long to wait for the proxy service: 1–60 seconds, default 10.
    ServiceTimeoutSeconds(u16), min = 1, max = 60, default = 10,
    field = "timeout_seconds", expected = "1 to 60 seconds"
}
bounded_number! {
    /// How long a service answer is cached when it names no TTL: 60–3600
    /// seconds, default 300.
    CacheTtlSeconds(u16), min = 60, max = 3600, default = 300,
    field = "cache_ttl_seconds", expected = "60 to 3600 seconds"
}
bounded_number! {
    /// The whole budget of one resolve (service round trips, retries, hedge)
    /// before the Resolver falls back: 10–60000 ms, default 500.
    ResolveDeadlineMs(u32), min = 10, max = 60_000, default = 500,
    field = "resolve_deadline_ms", expected = "10 to 60000 milliseconds"
}
bounded_number! {
    /// How long the Resolver waits on one endpoint before sending the same
    /// request to the next one: 0–10000 ms (0 turns hedging off), default 100.
    HedgeDelayMs(u32), min = 0, max = 10_000, default = 100,
    field = "hedge_delay_ms", expected = "0 to 10000 milliseconds"
}
bounded_number! {
    /// How long past its TTL a cached answer may still be used when the service
    /// fails (stale-if-error): 0–86400 seconds, default 600.
    StaleGraceSeconds(u32), min = 0, max = 86_400, default = 600,
    field = "stale_grace_seconds", expected = "0 to 86400 seconds"
}

/// How the client authenticates to the proxy service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// `Authorization: Bearer <token>`.
    BearerToken,
    /// `X-API-Key: <api_key>`.
    ApiKey,
    /// A client certificate (`cert_file`, `key_file`, optional `ca_file`).
    MutualTls,
}

impl AuthMethod {
    /// Every method.
    pub const ALL: [AuthMethod; 3] = [
        AuthMethod::BearerToken,
        AuthMethod::ApiKey,
        AuthMethod::MutualTls,
    ];
}

crate::labels! {
    /// The configuration spelling.
    AuthMethod {
        BearerToken => "bearer_token",
        ApiKey => "api_key",
        MutualTls => "mutual_tls",
    }
    parse(field = "auth_method", expected = "bearer_token, api_key, mutual_tls")
}

/// A secret (token, API key). `Debug` and `Display` print `***`; the text is
/// reachable only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(heapless::String<MAX_SECRET_LEN>);

impl Secret {
    /// Wraps `s`; fails when it is empty or longer than [`MAX_SECRET_LEN`].
    /// The error never contains the text.
    pub fn new(s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() {
            return Err(ValidationError::new("secret", Reason::Empty));
        }
        let (text, cut) = crate::model::text::truncate_into(s);
        if cut {
            return Err(ValidationError::new(
                "secret",
                Reason::TooLong {
                    len: s.len(),
                    max: MAX_SECRET_LEN,
                },
            ));
        }
        Ok(Self(text))
    }

    /// The secret. Call this only to put it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A file path (certificate, key, CA bundle), at most [`MAX_FILE_PATH_LEN`] bytes.
pub type FilePath = heapless::String<MAX_FILE_PATH_LEN>;

/// Credentials for the proxy service. Secrets print as `***`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthCredentials {
    /// Bearer token (for `bearer_token`).
    pub token: Option<Secret>,
    /// API key (for `api_key`).
    pub api_key: Option<Secret>,
    /// Client certificate, PEM (for `mutual_tls`).
    pub cert_file: Option<FilePath>,
    /// Client private key, PEM (for `mutual_tls`).
    pub key_file: Option<FilePath>,
    /// CA bundle that signs the service's certificate.
    pub ca_file: Option<FilePath>,
}

/// The keys of the `external_service` block, in the order of
/// [`ExternalService`]'s fields: the one list the loaders (unknown-key
/// messages, environment variable names, layering) work from. A test checks
/// that it names every field.
pub const EXTERNAL_SERVICE_FIELDS: [&str; 14] = [
    "enabled",
    "endpoints",
    "auth_method",
    "auth_credentials",
    "timeout_seconds",
    "cache_ttl_seconds",
    "circuit_breaker_enabled",
    "fallback_to_embedded",
    "resolve_deadline_ms",
    "hedge_delay_ms",
    "stale_grace_seconds",
    "region",
    "client_id",
    "srv_name",
];

/// The keys of `external_service.auth_credentials`, in the order of
/// [`AuthCredentials`]' fields. A test checks that it names every field.
pub const AUTH_CREDENTIALS_FIELDS: [&str; 5] =
    ["token", "api_key", "cert_file", "key_file", "ca_file"];

/// The `external_service` block: whether and how to delegate to the proxy
/// service. Every field has the documented default (see `Default`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalService {
    /// Delegate to the service (default false).
    pub enabled: bool,
    /// Service base URLs, tried in order (default none).
    pub endpoints: heapless::Vec<ServiceUrl, MAX_ENDPOINTS>,
    /// How to authenticate (default none).
    pub auth_method: Option<AuthMethod>,
    /// The credentials for `auth_method`.
    pub auth_credentials: AuthCredentials,
    /// Per-request timeout (default 10 s, 1–60).
    pub timeout_seconds: ServiceTimeoutSeconds,
    /// Cache TTL when the service names none (default 300 s, 60–3600).
    pub cache_ttl_seconds: CacheTtlSeconds,
    /// Use a circuit breaker per endpoint (default true).
    pub circuit_breaker_enabled: bool,
    /// Fall back to this embedded configuration when the service fails
    /// (default true).
    pub fallback_to_embedded: bool,
    /// Budget of one resolve (default 500 ms).
    pub resolve_deadline_ms: ResolveDeadlineMs,
    /// Hedge delay (default 100 ms, 0 = off).
    pub hedge_delay_ms: HedgeDelayMs,
    /// Stale-if-error grace (default 600 s).
    pub stale_grace_seconds: StaleGraceSeconds,
    /// Region sent with each request (default none: the service decides).
    pub region: Option<Region>,
    /// Client id sent with each request. `None` means the std side's default,
    /// `cryptofeed-<hostname>-<pid>`.
    pub client_id: Option<ClientId>,
    /// DNS SRV name to discover endpoints from (default none).
    pub srv_name: Option<heapless::String<MAX_SRV_NAME_LEN>>,
}

impl Default for ExternalService {
    #[inline]
    fn default() -> Self {
        Self {
            enabled: false,
            endpoints: heapless::Vec::new(),
            auth_method: None,
            auth_credentials: AuthCredentials::default(),
            timeout_seconds: ServiceTimeoutSeconds::DEFAULT,
            cache_ttl_seconds: CacheTtlSeconds::DEFAULT,
            circuit_breaker_enabled: true,
            fallback_to_embedded: true,
            resolve_deadline_ms: ResolveDeadlineMs::DEFAULT,
            hedge_delay_ms: HedgeDelayMs::DEFAULT,
            stale_grace_seconds: StaleGraceSeconds::DEFAULT,
            region: None,
            client_id: None,
            srv_name: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field names of a struct, from a pattern without `..`: adding a
    /// field breaks the build here until it is listed.
    macro_rules! names {
        ($t:ident { $($f:ident),* $(,)? }) => {{
            let $t { $($f: _),* } = $t::default();
            [$(stringify!($f)),*]
        }};
    }

    #[test]
    fn the_field_lists_name_every_field_in_order() {
        let fields = names!(ExternalService {
            enabled,
            endpoints,
            auth_method,
            auth_credentials,
            timeout_seconds,
            cache_ttl_seconds,
            circuit_breaker_enabled,
            fallback_to_embedded,
            resolve_deadline_ms,
            hedge_delay_ms,
            stale_grace_seconds,
            region,
            client_id,
            srv_name,
        });
        assert_eq!(fields, EXTERNAL_SERVICE_FIELDS);
        let credentials = names!(AuthCredentials {
            token,
            api_key,
            cert_file,
            key_file,
            ca_file,
        });
        assert_eq!(credentials, AUTH_CREDENTIALS_FIELDS);
    }
}
