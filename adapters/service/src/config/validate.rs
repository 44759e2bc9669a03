//! The file as written, checked and turned into a [`ServiceConfig`]:
//! clients and their secrets, authentication and exposure, rate limit and
//! the other top-level keys. The pool and the inventory are `pool.rs`'s.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::pool::{pool_config, proxy_spec};
use super::{
    ALL_SCOPES, AuthConfig, ClientConfig, ConfigError, DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS,
    RateLimit, RawFile, RawSecrets, Secret, ServiceConfig, TlsConfig, err,
};

impl ServiceConfig {
    /// Refuses to serve without authentication on an address other than
    /// loopback, unless the file says so (`auth.required = false`). Loading
    /// checks the file's `listen`; [`Service::new`](crate::Service::new)
    /// checks again, for an address given in its place (`--listen`).
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        check_exposure(self.listen, &self.auth)
    }

    pub(super) fn from_raw(raw: RawFile) -> Result<Self, ConfigError> {
        let listen = raw
            .listen
            .as_deref()
            .unwrap_or(DEFAULT_LISTEN)
            .parse::<SocketAddr>()
            .map_err(|e| err("listen", format!("not an address like 127.0.0.1:8080: {e}")))?;
        let tls = raw.tls.map(|t| TlsConfig {
            cert_file: t.cert_file,
            key_file: t.key_file,
            client_ca_file: t.client_ca_file,
        });

        let mut clients = Vec::with_capacity(raw.clients.len());
        // `${...}` references by their text, expanded.
        let mut expanded: HashMap<String, Result<String, String>> = HashMap::new();
        // Each token and key (by kind) with the client that holds it first
        // and where.
        let mut holders: HashMap<(&'static str, String), (String, String)> = HashMap::new();
        for (i, c) in raw.clients.into_iter().enumerate() {
            let at = |k: &str| format!("clients[{i}].{k}");
            if c.name.trim().is_empty() {
                return Err(err(at("name"), "must not be empty"));
            }
            if clients.iter().any(|x: &ClientConfig| x.name == c.name) {
                return Err(err(
                    at("name"),
                    format!("duplicate client name {:?}", c.name),
                ));
            }
            let mut secrets = |list: RawSecrets, key: &'static str| {
                let what = if key == "api_keys" {
                    "API key"
                } else {
                    "bearer token"
                };
                let mut out = Vec::with_capacity(list.0.len());
                for (j, s) in list.0.iter().enumerate() {
                    let field = format!("{}[{j}]", at(key));
                    // The same reference read once per load, however often
                    // the file repeats it.
                    let v = expanded
                        .entry(s.clone())
                        .or_insert_with(|| proxy_delegate_config::expand_references(s, false))
                        .clone()
                        .map_err(|m| err(&field, m))?;
                    // The service compares what a request presents with its
                    // surrounding whitespace trimmed: this could never match.
                    if v.trim_ascii() != v {
                        return Err(err(
                            field,
                            format!(
                                "the {what} of client {:?} starts or ends with whitespace, \
                                 which a request never carries: it could never match (the \
                                 value is not shown)",
                                c.name
                            ),
                        ));
                    }
                    let secret = Secret::new(&v).map_err(|e| err(&field, e.reason.to_string()))?;
                    // The first client holding a secret always wins it.
                    if let Some((first, first_field)) = holders.get(&(key, v.clone())) {
                        if *first != c.name {
                            return Err(err(
                                field,
                                format!(
                                    "client {:?} has the same {what} as client {first:?} \
                                     ({first_field}): a request presenting it is always taken \
                                     for {first:?}; give each client its own (the value is not \
                                     shown)",
                                    c.name
                                ),
                            ));
                        }
                    } else {
                        holders.insert((key, v), (c.name.clone(), field));
                    }
                    out.push(secret);
                }
                Ok::<_, ConfigError>(out)
            };
            let bearer_tokens = secrets(c.bearer_tokens, "bearer_tokens")?;
            let api_keys = secrets(c.api_keys, "api_keys")?;
            if bearer_tokens.is_empty() && api_keys.is_empty() && c.tls_names.is_empty() {
                return Err(err(
                    at("name"),
                    "the client has no credential: give bearer_tokens, api_keys or tls_names",
                ));
            }
            clients.push(ClientConfig {
                name: c.name,
                bearer_tokens,
                api_keys,
                tls_names: c.tls_names,
                scopes: c.scopes.unwrap_or_else(|| ALL_SCOPES.to_vec()),
            });
        }
        let auth = AuthConfig {
            required: raw.auth.required.unwrap_or(!clients.is_empty()),
            health: raw.auth.health,
            metrics: raw.auth.metrics,
            unauthenticated_on_purpose: raw.auth.required == Some(false),
        };
        check_exposure(listen, &auth)?;
        if auth.required && clients.is_empty() {
            return Err(err(
                "auth.required",
                "authentication is required but no client is configured: add [[clients]]",
            ));
        }
        let rate_limit = match raw.rate_limit {
            None => Some(RateLimit::default()),
            Some(r) if !r.enabled => None,
            Some(r) => {
                let d = RateLimit::default();
                let l = RateLimit {
                    per_second: r.per_second.unwrap_or(d.per_second),
                    burst: r.burst.unwrap_or(d.burst),
                };
                if l.per_second == 0 {
                    return Err(err(
                        "rate_limit.per_second",
                        "must be at least 1 (set rate_limit.enabled = false to turn it off)",
                    ));
                }
                Some(l)
            }
        };
        let status_refresh_seconds = raw.status_refresh_seconds.unwrap_or(5);
        if !(1..=3600).contains(&status_refresh_seconds) {
            return Err(err("status_refresh_seconds", "must be between 1 and 3600"));
        }

        let unready_seconds = raw.unready_seconds.unwrap_or(0);
        if unready_seconds > 300 {
            return Err(err("unready_seconds", "must be between 0 and 300"));
        }
        let pool = pool_config(raw.pool, raw.exchanges)?;
        let mut proxies = Vec::with_capacity(raw.proxies.len());
        for (i, p) in raw.proxies.into_iter().enumerate() {
            proxies.push(proxy_spec(i, p)?);
        }
        Ok(Self {
            listen,
            listen_overridden: false,
            tls,
            auth,
            clients,
            rate_limit,
            status_refresh_seconds,
            unready_seconds,
            pool,
            proxies,
            source: None,
            max_connections: match raw.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS) {
                n @ 1..=1_000_000 => n,
                _ => return Err(err("max_connections", "must be between 1 and 1000000")),
            },
        })
    }
}

/// See [`ServiceConfig::check_exposure`].
fn check_exposure(listen: SocketAddr, auth: &AuthConfig) -> Result<(), ConfigError> {
    if auth.required || auth.unauthenticated_on_purpose || listen.ip().is_loopback() {
        return Ok(());
    }
    Err(err(
        "auth.required",
        format!(
            "no client is configured, so the service would answer anyone who reaches {listen} \
             without authentication: add [[clients]], listen on a loopback address, or set \
             auth.required = false to serve without authentication on purpose"
        ),
    ))
}
