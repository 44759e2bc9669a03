//! The service's configuration file (TOML, or YAML by extension `.yaml` /
//! `.yml`): listen address, TLS, clients and their secrets, rate limit, pool
//! defaults, per-exchange policies and the inventory. See
//! `docs/configuration.md` for every key with its default.
//!
//! Secrets (`clients[].bearer_token`, `clients[].api_key`, passwords inside
//! `proxies[].url`) may be written as `${NAME}` (an environment variable) or
//! `${file:/path}` (a file's contents); they are held in types whose `Debug`
//! shows `***`.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use embassy_time::Duration;
use proxy_delegate_core::model::{
    ConnectionType, ExchangeId, FallbackPolicy, ProxyId, ProxyUrl, Region, TtlSeconds,
};
use proxy_delegate_core::pool::{
    ConnectionTypes, ExchangePolicy, PoolConfig, ProxySpec, StrategyKind,
};
use serde::Deserialize;
use subtle::ConstantTimeEq;

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

// ------------------------------------------------------------------ bounded lists

/// The lists and maps of the file that have a bound refuse their first item
/// past it as it arrives, before reading it: a list of a million names (or
/// one alias repeated) is never built to be counted afterwards.
fn bounded_list<'de, D, T>(d: D, max: usize, message: &'static str) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
    struct V<T>(usize, &'static str, std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {} items", self.0)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while out.len() < self.0 {
                match seq.next_element()? {
                    Some(v) => out.push(v),
                    None => return Ok(out),
                }
            }
            match seq.next_element::<IgnoredAny>()? {
                Some(_) => Err(de::Error::custom(self.1)),
                None => Ok(out),
            }
        }
    }
    d.deserialize_seq(V(max, message, std::marker::PhantomData))
}

fn inventory<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<RawProxy>, D::Error> {
    const _: () = assert!(crate::app::MAX_PROXIES == 4096);
    bounded_list(
        d,
        crate::app::MAX_PROXIES,
        "at most 4096 proxies (MAX_PROXIES)",
    )
}

fn proxy_regions<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    const _: () = assert!(proxy_delegate_core::pool::MAX_PROXY_REGIONS == 4);
    bounded_list(
        d,
        proxy_delegate_core::pool::MAX_PROXY_REGIONS,
        "at most 4 regions per proxy",
    )
}

fn allowed_exchanges<'de, D>(d: D) -> Result<Option<Vec<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    // Null (YAML) is "not given", as for any optional key.
    Option::<AllowedExchanges>::deserialize(d).map(|o| o.map(|list| list.0))
}

/// The `exchanges` of a proxy: at most 16 names.
struct AllowedExchanges(Vec<String>);

impl<'de> Deserialize<'de> for AllowedExchanges {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const _: () = assert!(proxy_delegate_core::pool::MAX_ALLOWED_EXCHANGES == 16);
        bounded_list(
            d,
            proxy_delegate_core::pool::MAX_ALLOWED_EXCHANGES,
            "at most 16 exchanges per proxy (leave the list out to allow all)",
        )
        .map(AllowedExchanges)
    }
}

fn exchange_policies<'de, D>(
    d: D,
) -> Result<std::collections::BTreeMap<String, RawExchange>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::{self, MapAccess, Visitor};
    const MAX: usize = proxy_delegate_core::pool::MAX_EXCHANGE_POLICIES;
    const _: () = assert!(MAX == 32);
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = std::collections::BTreeMap<String, RawExchange>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table of exchanges and their policies")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = std::collections::BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                if out.len() == MAX && !out.contains_key(&name) {
                    return Err(de::Error::custom(
                        "more than 32 exchanges with their own policy",
                    ));
                }
                let policy = map.next_value()?;
                out.insert(name, policy);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V)
}

impl ServiceConfig {
    /// Reads and validates a configuration file: YAML when its name ends in
    /// `.yaml` or `.yml`, TOML otherwise.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let in_file = |mut e: ConfigError| {
            e.file = Some(path.to_owned());
            e
        };
        let text =
            proxy_delegate_config::read_bounded_text(path, proxy_delegate_config::MAX_CONFIG_FILE)
                .map_err(|e| in_file(err("", format!("cannot read the file: {e}"))))?;
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        let mut config = Self::parse(&text, yaml).map_err(in_file)?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Parses and validates configuration text (TOML, or YAML with `yaml`).
    pub fn parse(text: &str, yaml: bool) -> Result<Self, ConfigError> {
        let raw: RawFile = if yaml {
            // Bounded before anything is built: the parser's own work (nesting,
            // size as written), then aliases counted as what they repeat.
            proxy_delegate_config::check_yaml_text(text)
                .and_then(|()| proxy_delegate_config::check_yaml_aliases(text))
                .map_err(|e| {
                    let at = match (e.line, e.column) {
                        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
                        (Some(l), None) => format!(" (line {l})"),
                        _ => String::new(),
                    };
                    err(e.path, format!("{}{at}", e.reason))
                })?;
            serde_norway::from_str(text).map_err(|e| yaml_error(&e))?
        } else {
            toml_size(text)?;
            let de = toml::Deserializer::parse(text).map_err(|e| toml_error(text, "", &e))?;
            serde_path_to_error::deserialize(de).map_err(|e| {
                let field = e.path().to_string();
                toml_error(text, &field, e.inner())
            })?
        };
        Self::from_raw(raw)
    }

    /// Refuses to serve without authentication on an address other than
    /// loopback, unless the file says so (`auth.required = false`). Loading
    /// checks the file's `listen`; [`Service::new`](crate::Service::new)
    /// checks again, for an address given in its place (`--listen`).
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        check_exposure(self.listen, &self.auth)
    }

    /// The configuration `proxy-delegate serve` runs without a file: three
    /// made-up proxies on documentation addresses (TEST-NET), no
    /// authentication, loopback only.
    pub fn embedded_default() -> Self {
        Self::parse(EMBEDDED_DEFAULT, false)
            .unwrap_or_else(|e| unreachable!("the embedded default configuration is valid: {e}"))
    }

    fn from_raw(raw: RawFile) -> Result<Self, ConfigError> {
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

/// Refuses TOML of more than [`MAX_YAML_NODES`](proxy_delegate_config::MAX_YAML_NODES)
/// keys and values before the parser (which keeps about 150 bytes for each)
/// sees it: every `=`, `,`, `[` and `{` outside strings and comments counts,
/// an upper bound of what the document holds. Linear, allocates nothing.
fn toml_size(text: &str) -> Result<(), ConfigError> {
    enum In {
        Code,
        Comment,
        Basic,
        Literal,
        MultiBasic,
        MultiLiteral,
    }
    let b = text.as_bytes();
    let (mut state, mut count, mut line, mut i) = (In::Code, 0usize, 1usize, 0usize);
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
        }
        match state {
            In::Code => match c {
                b'#' => state = In::Comment,
                b'"' if b[i..].starts_with(b"\"\"\"") => {
                    state = In::MultiBasic;
                    i += 2;
                }
                b'\'' if b[i..].starts_with(b"'''") => {
                    state = In::MultiLiteral;
                    i += 2;
                }
                b'"' => state = In::Basic,
                b'\'' => state = In::Literal,
                b'=' | b',' | b'[' | b'{' => {
                    count += 1;
                    if count > proxy_delegate_config::MAX_YAML_NODES {
                        return Err(err(
                            "",
                            format!(
                                "more than {} keys and values: too large for a configuration \
                                 file (line {line})",
                                proxy_delegate_config::MAX_YAML_NODES
                            ),
                        ));
                    }
                }
                _ => {}
            },
            In::Comment if c == b'\n' => state = In::Code,
            In::Basic if c == b'\\' => i += 1,
            In::Basic | In::Literal if c == b'\n' => state = In::Code,
            In::Basic if c == b'"' => state = In::Code,
            In::Literal if c == b'\'' => state = In::Code,
            In::MultiBasic if c == b'\\' => i += 1,
            In::MultiBasic if b[i..].starts_with(b"\"\"\"") => {
                state = In::Code;
                i += 2;
            }
            In::MultiLiteral if b[i..].starts_with(b"'''") => {
                state = In::Code;
                i += 2;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
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

/// A TOML error as the field (serde_path_to_error's path, `.` for the
/// root), the parser's message and the line. Never the parser's `Display`:
/// it quotes the offending source line, which may hold a secret.
fn toml_error(text: &str, field: &str, e: &toml::de::Error) -> ConfigError {
    let span = e
        .span()
        .map(|s| s.start.min(text.len())..s.end.min(text.len()));
    let line = span
        .as_ref()
        .map(|s| format!(" (line {})", text[..s.start].matches('\n').count() + 1))
        .unwrap_or_default();
    // "duplicate key" says which only through its span: name the key when it
    // is fit to quote (a key, not a value, but it costs nothing to check).
    let key = span
        .filter(|_| e.message().starts_with("duplicate key"))
        .and_then(|s| text.get(s))
        .and_then(|k| proxy_delegate_core::quotable(k.trim().trim_matches('"')))
        .map(|k| format!(" `{k}`"))
        .unwrap_or_default();
    // serde_path_to_error's path already ends with an unknown key.
    err(
        if field == "." { "" } else { field },
        proxy_delegate_config::redact_text(&format!("{}{key}{line}", e.message())),
    )
}

/// A YAML error as the field and the message with its line and column.
/// serde_norway's message is `path: reason at line L column C`; the path
/// becomes the field, and the quoted text of a type error is redacted.
fn yaml_error(e: &serde_norway::Error) -> ConfigError {
    let mut message = e.to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    let (field, reason) = match message.split_once(": ") {
        Some((path, reason)) if !path.contains(' ') => (path.to_owned(), reason.to_owned()),
        _ => (String::new(), message),
    };
    // An unknown key is named by its full path, not its parent's.
    let field = proxy_delegate_config::unknown_key_path(&field, &reason).unwrap_or(field);
    let at = e
        .location()
        .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
        .unwrap_or_default();
    err(
        field,
        proxy_delegate_config::redact_text(&format!("{reason}{at}")),
    )
}

fn secs(field: &str, v: Option<u64>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(0) => Err(err(field, "must be at least 1 second")),
        Some(s) if s > 365 * 24 * 3600 => Err(err(field, "must be at most a year")),
        Some(s) => Ok(Duration::from_secs(s)),
    }
}

fn strategy(field: &str, s: &str) -> Result<StrategyKind, ConfigError> {
    StrategyKind::parse(s).map_err(|e| err(field, e.to_string()))
}

fn fallback(field: &str, s: &str) -> Result<FallbackPolicy, ConfigError> {
    FallbackPolicy::parse(s).map_err(|e| err(field, e.reason.to_string()))
}

fn pool_config(
    raw: RawPool,
    exchanges: std::collections::BTreeMap<String, RawExchange>,
) -> Result<PoolConfig, ConfigError> {
    let d = PoolConfig::default();
    let mut c = PoolConfig {
        seed: raw.seed.unwrap_or(d.seed),
        strategy: match &raw.strategy {
            Some(s) => strategy("pool.strategy", s)?,
            None => d.strategy,
        },
        ttl_seconds: raw.ttl_seconds.unwrap_or(d.ttl_seconds),
        fallback_policy: match &raw.fallback_policy {
            Some(s) => fallback("pool.fallback_policy", s)?,
            None => d.fallback_policy,
        },
        exchange_policies: heapless::Vec::new(),
        sticky_ttl: secs(
            "pool.sticky_ttl_seconds",
            raw.sticky_ttl_seconds,
            d.sticky_ttl,
        )?,
        lease_ttl: secs("pool.lease_ttl_seconds", raw.lease_ttl_seconds, d.lease_ttl)?,
        ewma_alpha: d.ewma_alpha,
        latency_target_ms: raw.latency_target_ms.unwrap_or(d.latency_target_ms),
        eject_consecutive_failures: raw
            .eject_consecutive_failures
            .unwrap_or(d.eject_consecutive_failures),
        eject_success_rate_gap: raw
            .eject_success_rate_gap
            .unwrap_or(d.eject_success_rate_gap),
        eject_min_samples: raw.eject_min_samples.unwrap_or(d.eject_min_samples),
        eject_base: secs(
            "pool.eject_base_seconds",
            raw.eject_base_seconds,
            d.eject_base,
        )?,
        eject_max: secs("pool.eject_max_seconds", raw.eject_max_seconds, d.eject_max)?,
        max_ejected_percent: raw.max_ejected_percent.unwrap_or(d.max_ejected_percent),
        geo_block_cooldown: secs(
            "pool.geo_block_cooldown_seconds",
            raw.geo_block_cooldown_seconds,
            d.geo_block_cooldown,
        )?,
        rate_limit_cooldown: secs(
            "pool.rate_limit_cooldown_seconds",
            raw.rate_limit_cooldown_seconds,
            d.rate_limit_cooldown,
        )?,
        probe_interval: match raw.probe_interval_seconds {
            None => None,
            Some(s) => Some(secs("pool.probe_interval_seconds", Some(s), Duration::MIN)?),
        },
        failure_window: secs(
            "pool.failure_window_seconds",
            raw.failure_window_seconds,
            d.failure_window,
        )?,
    };
    for (name, e) in exchanges {
        let at = |k: &str| format!("exchanges.{name}.{k}");
        let exchange: ExchangeId = name
            .parse()
            .map_err(|e| err(format!("exchanges.{name}"), format!("{e}")))?;
        let mut policy = ExchangePolicy::new(
            exchange,
            match &e.fallback_policy {
                Some(s) => fallback(&at("fallback_policy"), s)?,
                None => c.fallback_policy,
            },
        );
        if let Some(s) = &e.strategy {
            policy.strategy = Some(strategy(&at("strategy"), s)?);
        }
        if let Some(t) = e.ttl_seconds {
            policy.ttl =
                Some(TtlSeconds::new(t).map_err(|e| err(at("ttl_seconds"), e.to_string()))?);
        }
        c.exchange_policies.push(policy).map_err(|_| {
            err(
                "exchanges",
                format!(
                    "more than {} exchanges with their own policy",
                    proxy_delegate_core::pool::MAX_EXCHANGE_POLICIES
                ),
            )
        })?;
    }
    c.validate().map_err(|e| err("pool", e.to_string()))?;
    Ok(c)
}

fn proxy_spec(i: usize, p: RawProxy) -> Result<ProxySpec, ConfigError> {
    let at = |k: &str| format!("proxies[{i}].{k}");
    let id: ProxyId = p.id.parse().map_err(|e| err(at("id"), format!("{e}")))?;
    let url_text =
        proxy_delegate_config::expand_references(&p.url, true).map_err(|m| err(at("url"), m))?;
    let url: ProxyUrl = url_text.parse().map_err(|e| {
        err(
            at("url"),
            proxy_delegate_config::redact_text(&format!("{e}")),
        )
    })?;
    let mut spec = ProxySpec::new(id, url).with_enabled(p.enabled);
    if p.regions.len() > proxy_delegate_core::pool::MAX_PROXY_REGIONS {
        return Err(err(
            at("regions"),
            format!(
                "at most {} regions per proxy",
                proxy_delegate_core::pool::MAX_PROXY_REGIONS
            ),
        ));
    }
    for (j, r) in p.regions.iter().enumerate() {
        let region: Region = r
            .parse()
            .map_err(|e| err(format!("{}[{j}]", at("regions")), format!("{e}")))?;
        spec = spec.with_region(region);
    }
    if let Some(list) = p.exchanges {
        if list.len() > proxy_delegate_core::pool::MAX_ALLOWED_EXCHANGES {
            return Err(err(
                at("exchanges"),
                format!(
                    "at most {} exchanges per proxy (leave the list out to allow all)",
                    proxy_delegate_core::pool::MAX_ALLOWED_EXCHANGES
                ),
            ));
        }
        if list.is_empty() {
            return Err(err(
                at("exchanges"),
                "an empty list allows nothing: leave it out to allow every exchange, or set enabled = false",
            ));
        }
        for (j, x) in list.iter().enumerate() {
            let e: ExchangeId = x
                .parse()
                .map_err(|e| err(format!("{}[{j}]", at("exchanges")), format!("{e}")))?;
            spec = spec.with_exchange(e);
        }
    }
    if let Some(types) = p.connection_types {
        let mut t = ConnectionTypes {
            http: false,
            websocket: false,
        };
        for (j, x) in types.iter().enumerate() {
            match x.parse::<ConnectionType>() {
                Ok(ConnectionType::Http) => t.http = true,
                Ok(ConnectionType::Websocket) => t.websocket = true,
                _ => {
                    return Err(err(
                        format!("{}[{j}]", at("connection_types")),
                        format!(
                            "unknown connection type{} (expected http or websocket)",
                            proxy_delegate_config::quoted(x)
                        ),
                    ));
                }
            }
        }
        if !t.http && !t.websocket {
            return Err(err(
                at("connection_types"),
                "must name http, websocket or both",
            ));
        }
        spec = spec.with_connection_types(t);
    }
    if let Some(w) = p.weight {
        if w == 0 {
            return Err(err(at("weight"), "must be at least 1"));
        }
        spec = spec.with_weight(w);
    }
    if let Some(m) = p.max_connections {
        spec = spec.with_max_connections(m);
    }
    Ok(spec)
}

/// The embedded default: `proxy-delegate serve` without `--config`.
const EMBEDDED_DEFAULT: &str = r#"
listen = "127.0.0.1:8080"

[pool]
strategy = "least_connections"
ttl_seconds = 300

[exchanges.coinbase]
fallback_policy = "direct_connection"

[[proxies]]
id = "demo-us-1"
url = "socks5://192.0.2.10:1080"
regions = ["us-east-1"]

[[proxies]]
id = "demo-eu-1"
url = "http://198.51.100.20:3128"
regions = ["eu-west-1"]

[[proxies]]
id = "demo-ap-1"
url = "socks5h://203.0.113.30:1080"
regions = ["ap-northeast-1"]
connection_types = ["websocket"]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid_and_open() {
        let c = ServiceConfig::embedded_default();
        assert_eq!(c.proxies.len(), 3);
        assert!(!c.auth.required);
        assert!(c.listen.ip().is_loopback());
    }

    #[test]
    fn unknown_key_names_its_path() {
        let e = ServiceConfig::parse(
            "[[proxies]]\nid = \"a\"\nurl = \"http://h:1\"\ncolour = 1\n",
            false,
        )
        .unwrap_err();
        assert!(e.field.starts_with("proxies[0]"), "{e}");
        assert!(e.message.contains("colour"), "{e}");
    }

    #[test]
    fn bad_url_is_named_and_password_hidden() {
        let e = ServiceConfig::parse(
            "[[proxies]]\nid = \"a\"\nurl = \"ftp://u:hunter2@h:1\"\n",
            false,
        )
        .unwrap_err();
        assert_eq!(e.field, "proxies[0].url");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn syntax_errors_never_quote_the_source() {
        // A parser's own message quotes the offending line; a token on it
        // must not reach the error.
        let toml = "[[clients]]\nname = \"a\"\nbearer_tokens = [\"sup3r-secret\" oops]\n";
        let e = ServiceConfig::parse(toml, false).unwrap_err().to_string();
        assert!(!e.contains("sup3r-secret"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        let toml = "[[clients]]\nname = \"a\"\nbearer_tokens = \"sup3r-secret\"\n";
        let e = ServiceConfig::parse(toml, false).unwrap_err();
        assert_eq!(e.field, "clients[0].bearer_tokens");
        assert!(!e.to_string().contains("sup3r-secret"), "{e}");
        let yaml = "clients:\n  - name: a\n    bearer_tokens: \"sup3r-secret\"\n";
        let e = ServiceConfig::parse(yaml, true).unwrap_err();
        assert_eq!(e.field, "clients[0].bearer_tokens");
        assert!(!e.to_string().contains("sup3r-secret"), "{e}");
        assert!(e.message.contains("line 3, column"), "{e}");
    }

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
    fn a_duplicate_key_is_named() {
        let e = ServiceConfig::parse(
            "[pool]\nstrategy = \"random\"\nstrategy = \"random\"\n",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("duplicate key `strategy` (line 3)"), "{e}");
    }

    #[test]
    fn yaml_and_toml_agree() {
        let toml = "listen = \"127.0.0.1:9000\"\n[[clients]]\nname = \"a\"\napi_keys = [\"k\"]\n[[proxies]]\nid = \"p\"\nurl = \"http://h:1\"\nregions = [\"eu\"]\n";
        let yaml = "listen: 127.0.0.1:9000\nclients:\n  - name: a\n    api_keys: [k]\nproxies:\n  - id: p\n    url: http://h:1\n    regions: [eu]\n";
        let a = ServiceConfig::parse(toml, false).unwrap();
        let b = ServiceConfig::parse(yaml, true).unwrap();
        assert_eq!(a.listen, b.listen);
        assert_eq!(a.proxies, b.proxies);
        assert!(a.auth.required && b.auth.required);
        assert_eq!(a.clients[0].name, b.clients[0].name);
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
