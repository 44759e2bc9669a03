//! The service's configuration file (TOML, or YAML by extension `.yaml` /
//! `.yml`): listen address, TLS, clients and their secrets, rate limit, pool
//! defaults, per-exchange policies and the inventory. See
//! `docs/configuration.md` for every key with its default.
//!
//! Secrets (`clients[].bearer_token`, `clients[].api_key`, passwords inside
//! `proxies[].url`) may be written as `${NAME}` (an environment variable) or
//! `${file:/path}` (a file's contents); they are held in types whose `Debug`
//! shows `***`.
//!
//! Where each part lives:
//!
//! * this file: the validated configuration ([`ServiceConfig`] and its
//!   parts), [`ConfigError`], and the file as written (the `Raw*` types,
//!   every key the file may hold);
//! * `config/bounded.rs`: the lists and maps with a bound, refused at their
//!   first item past it;
//! * `config/parse.rs`: reading the text ([`ServiceConfig::load`],
//!   [`ServiceConfig::parse`]): size bounds, TOML and YAML errors that
//!   never quote the source, and the embedded default;
//! * `config/validate.rs`: the file as written checked and turned into a
//!   [`ServiceConfig`] (clients and their secrets, authentication, rate
//!   limit, [`ServiceConfig::check_exposure`]);
//! * `config/pool.rs`: the `[pool]`, `[exchanges.*]` and `[[proxies]]`
//!   sections turned into the core pool's types.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use proxy_delegate_core::pool::{PoolConfig, ProxySpec};
use serde::Deserialize;
use subtle::ConstantTimeEq;

mod bounded;
mod parse;
mod pool;
mod validate;

use bounded::{allowed_exchanges, exchange_policies, inventory, proxy_regions};

/// Address the service listens on when neither the file nor `--listen` names one.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A token or key, as the client side holds it too: `Debug` and `Display`
/// print `***`.
pub use proxy_delegate_core::settings::Secret;

/// Whether `candidate` equals `secret`, in time that does not depend on
/// where they differ.
pub(crate) fn secret_matches(secret: &Secret, candidate: &[u8]) -> bool {
    secret.expose().as_bytes().ct_eq(candidate).into()
}

/// What a client may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// `POST /api/v1/proxy/request`.
    Request,
    /// `POST /api/v1/proxy/feedback`.
    Feedback,
    /// `GET /api/v1/proxies`, the status page, and `/metrics` / `/health`
    /// when those need authentication.
    Read,
}

/// All scopes: what a client has when its entry lists none.
pub const ALL_SCOPES: [Scope; 3] = [Scope::Request, Scope::Feedback, Scope::Read];

/// One named client and the credentials it may present (any of them).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The name metrics and logs use for this client.
    pub name: String,
    /// `Authorization: Bearer <token>` values.
    pub bearer_tokens: Vec<Secret>,
    /// `X-API-Key: <key>` values.
    pub api_keys: Vec<Secret>,
    /// Client-certificate names (the subject's common name or a DNS name)
    /// accepted over mutual TLS.
    pub tls_names: Vec<String>,
    /// What the client may call.
    pub scopes: Vec<Scope>,
}

/// TLS for the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain of the service.
    pub cert_file: PathBuf,
    /// PEM private key of the service.
    pub key_file: PathBuf,
    /// PEM CA bundle for client certificates: set, every connection must
    /// present a certificate it signed (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
}

/// Which routes need authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthConfig {
    /// Whether the API, the inventory and the status page need a known client.
    /// Default: true when any client is configured.
    pub required: bool,
    /// Whether `GET /health` needs it. Default false.
    pub health: bool,
    /// Whether `GET /metrics` needs it. Default false.
    pub metrics: bool,
    /// Whether the file says `auth.required = false`: serving without
    /// authentication is a choice, allowed on any address. Without it, a
    /// service with no client listens only on a loopback address.
    pub unauthenticated_on_purpose: bool,
}

/// Per-client rate limit (clients are told apart by name; unauthenticated
/// callers share one bucket per remote address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second. Default 1,000.
    pub per_second: u32,
    /// Burst above the sustained rate. Default 2,000.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 1_000,
            burst: 2_000,
        }
    }
}

/// The whole service configuration, validated.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Whether `listen` came from the command line (`serve --listen`),
    /// overriding the file's: a reload then ignores the file's `listen`, as
    /// a restart with the same command would.
    pub listen_overridden: bool,
    /// TLS, when set.
    pub tls: Option<TlsConfig>,
    /// Which routes need authentication.
    pub auth: AuthConfig,
    /// Known clients.
    pub clients: Vec<ClientConfig>,
    /// Per-client rate limit; `None` disables it.
    pub rate_limit: Option<RateLimit>,
    /// Status page refresh, in seconds. Default 5.
    pub status_refresh_seconds: u32,
    /// On shutdown, how long the service keeps accepting (answering 503 on
    /// `/health`) before it stops accepting and drains, so that load balancers
    /// take it out of rotation first. 0–300, default 0.
    pub unready_seconds: u32,
    /// The pool's knobs and per-exchange policies.
    pub pool: PoolConfig,
    /// The inventory.
    pub proxies: Vec<ProxySpec>,
    /// The file it came from (reloads read it again); `None` for the
    /// embedded default.
    pub source: Option<PathBuf>,
    /// Most client connections open at once; one more is closed as soon as
    /// it is accepted. 1-1,000,000, default [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: u32,
}

/// Client connections the service holds open at once unless
/// `max_connections` says otherwise: well under the usual soft limit of
/// 1,024 file descriptors, which leaves room for probes and files.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 512;

/// A configuration that cannot be used. Never holds a secret's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when there is one.
    pub file: Option<PathBuf>,
    /// The key, dotted (`proxies[2].url`), when known.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: None,
        field: field.into(),
        message: message.into(),
    }
}

// ------------------------------------------------------------------ the file

/// The file as written. No `Debug` here or below where secrets or proxy
/// URLs are held as written: nothing can print them by accident.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    listen: Option<String>,
    tls: Option<RawTls>,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    clients: Vec<RawClient>,
    rate_limit: Option<RawRateLimit>,
    status_refresh_seconds: Option<u32>,
    unready_seconds: Option<u32>,
    #[serde(default)]
    pool: RawPool,
    #[serde(default, deserialize_with = "exchange_policies")]
    exchanges: std::collections::BTreeMap<String, RawExchange>,
    #[serde(default, deserialize_with = "inventory")]
    proxies: Vec<RawProxy>,
    max_connections: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    required: Option<bool>,
    #[serde(default)]
    health: bool,
    #[serde(default)]
    metrics: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: String,
    #[serde(default)]
    bearer_tokens: RawSecrets,
    #[serde(default)]
    api_keys: RawSecrets,
    #[serde(default)]
    tls_names: Vec<String>,
    scopes: Option<Vec<Scope>>,
}

/// A list of secrets as written (before `${...}` references are expanded).
/// It reads only a list of strings, and its errors never hold what was
/// written instead: the parsers' own "invalid type" messages quote a
/// misplaced value, and a secret written without quotes is one.
#[derive(Default)]
struct RawSecrets(Vec<String>);

impl std::fmt::Debug for RawSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[***; {}]", self.0.len())
    }
}

/// Visitor methods that refuse every scalar but a string with `expected
/// $what`, naming no value.
macro_rules! refuse_non_text_scalars {
    ($value:ty, $what:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<$value, E> {
            Err(E::custom(format!("expected {}", $what)))
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<$value, E> {
            Err(E::custom(format!("expected {}", $what)))
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<$value, E> {
            Err(E::custom(format!("expected {}", $what)))
        }
        fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<$value, E> {
            Err(E::custom(format!("expected {}", $what)))
        }
        fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<$value, E> {
            Err(E::custom(format!("expected {}", $what)))
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<$value, E> {
            Err(E::custom(format!("expected {}", $what)))
        }
    };
}

impl<'de> Deserialize<'de> for RawSecrets {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, SeqAccess, Visitor};
        const LIST: &str = "a list of secrets, each in quotes (the value given is not shown)";
        const ITEM: &str = "a secret in quotes (the value given is not shown)";

        /// One secret: a string; anything else is refused without echo.
        struct Item(String);
        impl<'de> Deserialize<'de> for Item {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = Item;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(ITEM)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<Item, E> {
                        Ok(Item(v.to_owned()))
                    }
                    refuse_non_text_scalars!(Item, ITEM);
                }
                d.deserialize_any(V)
            }
        }

        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSecrets;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(LIST)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawSecrets, A::Error> {
                let mut out = Vec::new();
                while let Some(Item(s)) = seq.next_element()? {
                    out.push(s);
                }
                Ok(RawSecrets(out))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RawSecrets, E> {
                Err(E::custom(format!("expected {LIST}")))
            }
            refuse_non_text_scalars!(RawSecrets, LIST);
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    #[serde(default = "yes")]
    enabled: bool,
    per_second: Option<u32>,
    burst: Option<u32>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    seed: Option<u64>,
    strategy: Option<String>,
    ttl_seconds: Option<u32>,
    fallback_policy: Option<String>,
    sticky_ttl_seconds: Option<u64>,
    lease_ttl_seconds: Option<u64>,
    latency_target_ms: Option<u32>,
    eject_consecutive_failures: Option<u16>,
    eject_success_rate_gap: Option<f32>,
    eject_min_samples: Option<u32>,
    eject_base_seconds: Option<u64>,
    eject_max_seconds: Option<u64>,
    max_ejected_percent: Option<u8>,
    geo_block_cooldown_seconds: Option<u64>,
    rate_limit_cooldown_seconds: Option<u64>,
    probe_interval_seconds: Option<u64>,
    failure_window_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExchange {
    fallback_policy: Option<String>,
    strategy: Option<String>,
    ttl_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    id: String,
    url: String,
    #[serde(default, deserialize_with = "proxy_regions")]
    regions: Vec<String>,
    #[serde(default, deserialize_with = "allowed_exchanges")]
    exchanges: Option<Vec<String>>,
    connection_types: Option<Vec<String>>,
    weight: Option<u16>,
    max_connections: Option<u32>,
    #[serde(default = "yes")]
    enabled: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret written without quotes (a number, a boolean) or in place of
    /// the list is refused without echo, and so is a URL written in a field
    /// that names a choice.
    #[test]
    fn misplaced_values_are_never_quoted() {
        for (value, shown) in [
            ("[20261127123456789]", "20261127123456789"),
            ("[1234.5678]", "1234.5678"),
            (
                "[123456789012345678901234567890]",
                "123456789012345678901234567890",
            ),
            ("[true]", "true"),
            ("98765432109876", "98765432109876"),
            ("\"sup3r-secret\"", "sup3r-secret"),
        ] {
            for key in ["bearer_tokens", "api_keys"] {
                let toml = format!("[[clients]]\nname = \"a\"\n{key} = {value}\n");
                let e = ServiceConfig::parse(&toml, false).unwrap_err();
                assert!(e.field.starts_with(&format!("clients[0].{key}")), "{e}");
                assert!(!e.to_string().contains(shown), "{toml}: {e}");
                let yaml = format!("clients:\n  - name: a\n    {key}: {value}\n");
                let e = ServiceConfig::parse(&yaml, true).unwrap_err();
                assert!(e.field.starts_with(&format!("clients[0].{key}")), "{e}");
                assert!(!e.to_string().contains(shown), "{yaml}: {e}");
            }
        }
        let url = "socks5://alice:FbSecretXYZ@h:1";
        for (key, toml) in [
            (
                "connection_types",
                format!(
                    "[[proxies]]\nid = \"p\"\nurl = \"http://h:1\"\nconnection_types = [\"{url}\"]\n"
                ),
            ),
            (
                "fallback_policy",
                format!("[pool]\nfallback_policy = \"{url}\"\n"),
            ),
            ("strategy", format!("[pool]\nstrategy = \"{url}\"\n")),
        ] {
            let e = ServiceConfig::parse(&toml, false).unwrap_err().to_string();
            assert!(!e.contains("FbSecret"), "{toml}: {e}");
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("tok-123").unwrap();
        assert_eq!(format!("{s:?}"), "***");
        assert!(secret_matches(&s, b"tok-123"));
        assert!(!secret_matches(&s, b"tok-124"));
        assert!(!secret_matches(&s, b"tok-12"));
        let e = ServiceConfig::parse("[[clients]]\nname = \"a\"\nbearer_tokens = [\"\"]\n", false)
            .unwrap_err();
        assert_eq!(e.field, "clients[0].bearer_tokens[0]");
    }
}
