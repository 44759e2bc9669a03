//! The embedded, cryptofeed-compatible proxy settings and their resolution
//! rules.
//!
//! This is the model of cryptofeed's `ProxySettings` (its `config.yaml` `proxy:`
//! block and its `CRYPTOFEED_PROXY_*` environment variables), plus the
//! `external_service` block that switches delegation on. Reading files and the
//! environment is the std side's job (`proxy-delegate-config`); this module
//! holds the values, validates them, and answers "which proxy for this exchange
//! connection", exactly as cryptofeed does:
//!
//! 1. settings disabled: no proxy;
//! 2. the exchange (matched case-insensitively) lists an entry for the
//!    connection type: that entry (an empty entry, `http: {}`, means "connect
//!    directly" and does not fall back);
//! 3. otherwise the default's entry for that type;
//! 4. otherwise no proxy. There is no fallback from websocket to http.
//!
//! An entry with both `url` and `pool` uses the pool.
//!
//! # Capacities
//!
//! Storage is bounded: [`ProxySettings<E, P>`](ProxySettings) holds at most `E`
//! exchanges (default [`DEFAULT_EXCHANGES`]) and every pool at most `P` proxies
//! (default [`DEFAULT_POOL`]). A [`ProxyUrl`] is about 530 bytes, so the default
//! `ProxySettings` is roughly `E × 2 × (P + 1) × 580` bytes (≈ 320 KiB): keep it
//! in a `static`, a `Box` or a long-lived task, not in a hot stack frame.
//! Making a default one writes only the empty slots' tags (in optimised
//! builds), and the settings can be filled in place, without moving pool-sized
//! values: [`ProxySettings::exchange_entry`] and [`ProxyConfig::set_pool`].
//!
//! # Call order
//!
//! Build the settings (the loader does it), then call
//! [`ProxySettings::resolve`] per connection. A pick from a
//! `least_connections` pool carries a [`Lease`]: hand it back with
//! [`ProxySettings::release`] when the connection ends. Health comes from
//! outside: [`ProxySettings::set_health`] marks a proxy unhealthy or healthy
//! again. Same seed, same sequence of random picks.
//!
//! ```
//! use proxy_delegate_core::model::{ConnectionType, ExchangeId, ProxyUrl};
//! use proxy_delegate_core::settings::*;
//!
//! let mut s: ProxySettings = ProxySettings::default();
//! s.enabled = true;
//! s.default.http = Some(ProxyConfig::url("http://proxy-a:8080".parse()?));
//! let mut binance = ConnectionProxies::default();
//! binance.websocket = Some(ProxyConfig::url("socks5://proxy-b:1080".parse()?));
//! s.insert_exchange(ExchangeId::new("Binance")?, binance).unwrap();
//!
//! let binance = ExchangeId::new("BINANCE")?;
//! let pick = s.resolve(&binance, ConnectionType::Websocket).unwrap();
//! assert_eq!(pick.proxy_url.to_string(), "socks5://proxy-b:1080");
//! // binance lists no http entry: the default's applies.
//! let pick = s.resolve(&binance, ConnectionType::Http).unwrap();
//! assert_eq!(pick.proxy_url.to_string(), "http://proxy-a:8080");
//! assert_eq!(pick.timeout_seconds, 30);
//! # Ok::<(), proxy_delegate_core::ValidationError>(())
//! ```

use core::fmt;

use crate::embedded::{EmbeddedRoute, EmbeddedRoutes};
use crate::endpoints::ServiceUrl;
use crate::error::excerpt;
use crate::model::{ClientId, ConnectionType, ExchangeId, ProxyUrl, Region};
use crate::{Reason, ValidationError};

/// Default number of exchanges a [`ProxySettings`] holds.
pub const DEFAULT_EXCHANGES: usize = 16;
/// Default number of proxies a [`ProxyPool`] holds.
pub const DEFAULT_POOL: usize = 16;
/// Most service endpoints in `external_service.endpoints`.
pub const MAX_ENDPOINTS: usize = 8;
/// Longest secret (token, API key), in bytes.
pub const MAX_SECRET_LEN: usize = 512;
/// Longest file path (certificate, key, CA bundle), in bytes.
pub const MAX_FILE_PATH_LEN: usize = 256;
/// Longest DNS SRV name, in bytes.
pub const MAX_SRV_NAME_LEN: usize = 253;

macro_rules! bounded_number {
    (
        $(#[$meta:meta])*
        $name:ident($ty:ty), min = $min:expr, max = $max:expr, default = $default:expr,
        field = $field:literal, expected = $expected:literal
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name($ty);

        impl $name {
            /// Smallest allowed value.
            pub const MIN: $ty = $min;
            /// Largest allowed value.
            pub const MAX: $ty = $max;
            /// The documented default.
            pub const DEFAULT: Self = Self($default);

            /// Validates `v` against the bounds.
            pub fn new(v: u64) -> Result<Self, ValidationError> {
                if (Self::MIN as u64..=Self::MAX as u64).contains(&v) {
                    Ok(Self(v as $ty))
                } else {
                    Err(ValidationError::new($field, Reason::OutOfRange { expected: $expected }))
                }
            }

            /// The value.
            pub const fn get(self) -> $ty {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::DEFAULT
            }
        }
    };
}

bounded_number! {
    /// A proxy's connect timeout: 1–300 seconds, default 30.
    TimeoutSeconds(u16), min = 1, max = 300, default = 30,
    field = "timeout_seconds", expected = "1 to 300 seconds"
}
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

/// A pool member's weight for the `random` strategy: 0.1–10, default 1.0.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Weight(f64);

impl Weight {
    /// Smallest weight.
    pub const MIN: f64 = 0.1;
    /// Largest weight.
    pub const MAX: f64 = 10.0;
    /// The default weight.
    pub const DEFAULT: Self = Self(1.0);

    /// Validates `w` against 0.1–10 (NaN is rejected).
    pub fn new(w: f64) -> Result<Self, ValidationError> {
        if (Self::MIN..=Self::MAX).contains(&w) {
            Ok(Self(w))
        } else {
            Err(ValidationError::new(
                "weight",
                Reason::OutOfRange {
                    expected: "0.1 to 10",
                },
            ))
        }
    }

    /// The weight.
    pub const fn get(self) -> f64 {
        self.0
    }

    /// The weight in thousandths (100–10000), for integer arithmetic.
    fn milli(self) -> u32 {
        // In range by construction; the cast saturates anyway.
        (self.0 * 1000.0) as u32
    }
}

impl Default for Weight {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How a pool chooses among its proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PoolStrategy {
    /// In turn, over the enabled, healthy proxies (the default).
    #[default]
    RoundRobin,
    /// At random (seeded), in proportion to the weights.
    Random,
    /// The proxy with the fewest open leases; ties go to the first listed.
    LeastConnections,
}

impl PoolStrategy {
    /// Every strategy.
    pub const ALL: [PoolStrategy; 3] = [
        PoolStrategy::RoundRobin,
        PoolStrategy::Random,
        PoolStrategy::LeastConnections,
    ];

    /// The configuration spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            PoolStrategy::RoundRobin => "round_robin",
            PoolStrategy::Random => "random",
            PoolStrategy::LeastConnections => "least_connections",
        }
    }

    /// Parses the configuration spelling, ignoring ASCII case.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                ValidationError::new(
                    "strategy",
                    Reason::UnknownValue {
                        got: excerpt(s),
                        expected: "round_robin, random, least_connections",
                    },
                )
            })
    }
}

impl fmt::Display for PoolStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One proxy of a pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolProxy {
    /// The proxy.
    pub url: ProxyUrl,
    /// Its weight for the `random` strategy (default 1.0).
    pub weight: Weight,
    /// Whether it may be chosen (default true).
    pub enabled: bool,
}

impl PoolProxy {
    /// An enabled proxy of weight 1.0.
    pub fn new(url: ProxyUrl) -> Self {
        Self {
            url,
            weight: Weight::DEFAULT,
            enabled: true,
        }
    }
}

/// A pool of proxies (at least one, at most `P`) and how to choose among them,
/// with the runtime state of that choice (round-robin cursor, leases, health).
///
/// Equality compares the configuration only, not the runtime state.
#[derive(Debug, Clone)]
pub struct ProxyPool<const P: usize = DEFAULT_POOL> {
    proxies: heapless::Vec<PoolProxy, P>,
    strategy: PoolStrategy,
    cursor: usize,
    leases: [u32; P],
    unhealthy: [bool; P],
}

impl<const P: usize> PartialEq for ProxyPool<P> {
    fn eq(&self, other: &Self) -> bool {
        self.proxies == other.proxies && self.strategy == other.strategy
    }
}

impl<const P: usize> ProxyPool<P> {
    /// A pool of `proxies` chosen by `strategy`. Fails with
    /// [`Reason::Empty`] for no proxies and [`Reason::TooMany`] for more than
    /// `P`; the error's field is `pool.proxies`.
    pub fn new(
        proxies: impl IntoIterator<Item = PoolProxy>,
        strategy: PoolStrategy,
    ) -> Result<Self, ValidationError> {
        let mut list = heapless::Vec::new();
        let mut len = 0usize;
        for p in proxies {
            len += 1;
            if len <= P {
                // Cannot fail: len <= P.
                let _ = list.push(p);
            }
        }
        if len == 0 {
            return Err(ValidationError::new("pool.proxies", Reason::Empty));
        }
        if len > P {
            return Err(ValidationError::new(
                "pool.proxies",
                Reason::TooMany { len, max: P },
            ));
        }
        Ok(Self {
            proxies: list,
            strategy,
            cursor: 0,
            leases: [0; P],
            unhealthy: [false; P],
        })
    }

    /// Replaces this pool's members and strategy in place (no pool-sized
    /// value is moved) and resets its runtime state (cursor, leases, health).
    /// Fails like [`ProxyPool::new`]; on failure the pool is left empty of
    /// members and must not be used, so the caller drops it (see
    /// [`ProxyConfig::set_pool`], which does).
    fn refill(
        &mut self,
        proxies: impl IntoIterator<Item = PoolProxy>,
        strategy: PoolStrategy,
    ) -> Result<(), ValidationError> {
        self.proxies.clear();
        let mut len = 0usize;
        for p in proxies {
            len += 1;
            if len <= P {
                // Cannot fail: len <= P.
                let _ = self.proxies.push(p);
            }
        }
        if len == 0 {
            return Err(ValidationError::new("pool.proxies", Reason::Empty));
        }
        if len > P {
            return Err(ValidationError::new(
                "pool.proxies",
                Reason::TooMany { len, max: P },
            ));
        }
        self.strategy = strategy;
        self.cursor = 0;
        self.leases[..len].fill(0);
        self.unhealthy[..len].fill(false);
        Ok(())
    }

    /// The proxies, in configuration order.
    pub fn proxies(&self) -> &[PoolProxy] {
        &self.proxies
    }

    /// The strategy.
    pub fn strategy(&self) -> PoolStrategy {
        self.strategy
    }

    /// Open leases per proxy (for `least_connections`), in configuration order.
    pub fn leases(&self) -> &[u32] {
        &self.leases[..self.proxies.len()]
    }

    /// Marks every member with the same scheme, host and port as `url` healthy
    /// or not. Returns how many members matched.
    pub fn set_health(&mut self, url: &ProxyUrl, healthy: bool) -> usize {
        let mut n = 0;
        for (i, p) in self.proxies.iter().enumerate() {
            if p.url.same_proxy(url) {
                self.unhealthy[i] = !healthy;
                n += 1;
            }
        }
        n
    }

    fn candidate(&self, i: usize, need_healthy: bool) -> bool {
        self.proxies[i].enabled && !(need_healthy && self.unhealthy[i])
    }

    /// Chooses a proxy index, or `None` when no member is enabled.
    fn pick(&mut self, rng: &mut fastrand::Rng) -> Option<usize> {
        let n = self.proxies.len();
        let need_healthy = (0..n).any(|i| self.candidate(i, true));
        if !need_healthy && !(0..n).any(|i| self.candidate(i, false)) {
            return None;
        }
        match self.strategy {
            PoolStrategy::RoundRobin => {
                let start = self.cursor % n;
                let i = (0..n)
                    .map(|k| (start + k) % n)
                    .find(|&i| self.candidate(i, need_healthy))?;
                self.cursor = i + 1;
                Some(i)
            }
            PoolStrategy::Random => {
                let total: u32 = (0..n)
                    .filter(|&i| self.candidate(i, need_healthy))
                    .map(|i| self.proxies[i].weight.milli().max(1))
                    .sum();
                let mut r = rng.u32(0..total.max(1));
                for i in 0..n {
                    if !self.candidate(i, need_healthy) {
                        continue;
                    }
                    let w = self.proxies[i].weight.milli().max(1);
                    if r < w {
                        return Some(i);
                    }
                    r -= w;
                }
                (0..n).find(|&i| self.candidate(i, need_healthy))
            }
            PoolStrategy::LeastConnections => {
                let i = (0..n)
                    .filter(|&i| self.candidate(i, need_healthy))
                    .min_by_key(|&i| self.leases[i])?;
                self.leases[i] = self.leases[i].saturating_add(1);
                Some(i)
            }
        }
    }
}

/// One connection type's proxy: a single URL, a pool, or (neither) "connect
/// directly". When both `url` and `pool` are set the pool is used.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig<const P: usize = DEFAULT_POOL> {
    /// A single proxy.
    pub url: Option<ProxyUrl>,
    /// Connect timeout (default 30 seconds).
    pub timeout_seconds: TimeoutSeconds,
    /// A pool; wins over `url`.
    pub pool: Option<ProxyPool<P>>,
}

impl<const P: usize> Default for ProxyConfig<P> {
    /// The empty entry: connect directly.
    fn default() -> Self {
        Self {
            url: None,
            timeout_seconds: TimeoutSeconds::DEFAULT,
            pool: None,
        }
    }
}

impl<const P: usize> ProxyConfig<P> {
    /// A single proxy with the default timeout.
    pub fn url(url: ProxyUrl) -> Self {
        Self {
            url: Some(url),
            ..Self::default()
        }
    }

    /// A pool with the default timeout.
    pub fn pool(pool: ProxyPool<P>) -> Self {
        Self {
            pool: Some(pool),
            ..Self::default()
        }
    }

    /// Sets this entry's pool to `proxies` chosen by `strategy`, building it
    /// in place (a pool is `P` proxies wide, so this avoids moving it; the
    /// loader uses it). Fails like [`ProxyPool::new`], and then leaves no pool.
    pub fn set_pool(
        &mut self,
        proxies: impl IntoIterator<Item = PoolProxy>,
        strategy: PoolStrategy,
    ) -> Result<&mut ProxyPool<P>, ValidationError> {
        let pool = self.pool.get_or_insert_with(|| ProxyPool {
            proxies: heapless::Vec::new(),
            strategy,
            cursor: 0,
            leases: [0; P],
            unhealthy: [false; P],
        });
        if let Err(e) = pool.refill(proxies, strategy) {
            self.pool = None;
            return Err(e);
        }
        // Just filled: present.
        self.pool
            .as_mut()
            .ok_or_else(|| ValidationError::new("pool.proxies", Reason::Empty))
    }

    /// Whether this entry means "connect directly" (neither url nor pool).
    pub fn is_direct(&self) -> bool {
        self.url.is_none() && self.pool.is_none()
    }
}

/// The proxies of one exchange (or the default), per connection type. `None`
/// means "not listed": fall back to the default's entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionProxies<const P: usize = DEFAULT_POOL> {
    /// For REST / HTTP connections (configuration alias `rest`).
    pub http: Option<ProxyConfig<P>>,
    /// For WebSocket connections (configuration alias `ws`).
    pub websocket: Option<ProxyConfig<P>>,
}

impl<const P: usize> ConnectionProxies<P> {
    /// The entry for `connection_type`.
    pub fn get(&self, connection_type: ConnectionType) -> Option<&ProxyConfig<P>> {
        match connection_type {
            ConnectionType::Http => self.http.as_ref(),
            ConnectionType::Websocket => self.websocket.as_ref(),
        }
    }

    fn get_mut(&mut self, connection_type: ConnectionType) -> Option<&mut ProxyConfig<P>> {
        match connection_type {
            ConnectionType::Http => self.http.as_mut(),
            ConnectionType::Websocket => self.websocket.as_mut(),
        }
    }
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

    /// The configuration spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMethod::BearerToken => "bearer_token",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::MutualTls => "mutual_tls",
        }
    }

    /// Parses the configuration spelling, ignoring ASCII case.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                ValidationError::new(
                    "auth_method",
                    Reason::UnknownValue {
                        got: excerpt(s),
                        expected: "bearer_token, api_key, mutual_tls",
                    },
                )
            })
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

/// Fixed-capacity, insertion-ordered storage. Unlike a `heapless::Vec`, its
/// empty value writes only `N` tags, not `N` slots: the exchanges' storage is
/// most of a [`ProxySettings`], and a new one should cost nothing to make.
#[derive(Debug, Clone)]
struct Slots<T, const N: usize> {
    /// `Some` exactly for the first `len` slots.
    items: [Option<T>; N],
    len: usize,
}

impl<T, const N: usize> Slots<T, N> {
    #[inline]
    fn new() -> Self {
        // Optimised, `from_fn` becomes `N` tag stores (a constant array is
        // copied or zero-filled whole, hundreds of KiB for the settings).
        // Unoptimised, `from_fn` keeps several copies of the array on the
        // stack, enough to overflow a test thread's 2 MiB: copy the constant.
        #[cfg(not(debug_assertions))]
        let items = core::array::from_fn(|_| None);
        #[cfg(debug_assertions)]
        let items = [const { None }; N];
        Self { items, len: 0 }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.items[..self.len].iter().flatten()
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.items[..self.len].iter_mut().flatten()
    }

    fn get(&self, i: usize) -> Option<&T> {
        self.items[..self.len].get(i)?.as_ref()
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.items[..self.len].get_mut(i)?.as_mut()
    }

    /// Appends `v`, or gives it back when full.
    fn push(&mut self, v: T) -> Result<(), T> {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(v);
                self.len += 1;
                Ok(())
            }
            None => Err(v),
        }
    }

    /// Removes the `i`th item, keeping the order of the others.
    fn remove(&mut self, i: usize) -> Option<T> {
        let v = self.items[..self.len].get_mut(i)?.take();
        self.items[i..self.len].rotate_left(1);
        self.len -= 1;
        v
    }
}

/// Identifies a `least_connections` pick, to be handed back to
/// [`ProxySettings::release`] when the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Index of the exchange, or `None` for the default.
    exchange: Option<u16>,
    connection_type: ConnectionType,
    proxy: u16,
}

/// The answer of [`ProxySettings::resolve`].
#[derive(Debug, Clone, PartialEq)]
pub struct Pick<'a> {
    /// The proxy (prints redacted; the connector calls `expose_credentials`).
    pub proxy_url: &'a ProxyUrl,
    /// The entry's connect timeout in seconds.
    pub timeout_seconds: u16,
    /// Set for a `least_connections` pick: release it when done.
    pub lease: Option<Lease>,
}

/// cryptofeed's `ProxySettings`: the embedded configuration, for at most `E`
/// exchanges with pools of at most `P` proxies. See the module docs for the
/// resolution rules and the call order.
#[derive(Debug, Clone)]
pub struct ProxySettings<const E: usize = DEFAULT_EXCHANGES, const P: usize = DEFAULT_POOL> {
    /// Proxying on (default false: no proxy for anything).
    pub enabled: bool,
    /// The entries used when an exchange lists none for a type.
    pub default: ConnectionProxies<P>,
    exchanges: Slots<(ExchangeId, ConnectionProxies<P>), E>,
    /// Delegation to the proxy service.
    pub external_service: ExternalService,
    seed: u64,
    rng: fastrand::Rng,
}

impl<const E: usize, const P: usize> Default for ProxySettings<E, P> {
    /// Disabled, nothing configured, seed 0.
    #[inline]
    fn default() -> Self {
        Self {
            enabled: false,
            default: ConnectionProxies::default(),
            exchanges: Slots::new(),
            external_service: ExternalService::default(),
            seed: 0,
            rng: fastrand::Rng::with_seed(0),
        }
    }
}

impl<const E: usize, const P: usize> PartialEq for ProxySettings<E, P> {
    /// Compares the configuration (not the pools' runtime state, nor the
    /// order the exchanges were inserted in).
    fn eq(&self, other: &Self) -> bool {
        self.enabled == other.enabled
            && self.default == other.default
            && self.exchanges.len() == other.exchanges.len()
            && self
                .exchanges
                .iter()
                .all(|(k, v)| other.exchange(k) == Some(v))
            && self.external_service == other.external_service
            && self.seed == other.seed
    }
}

impl<const E: usize, const P: usize> ProxySettings<E, P> {
    /// The seed of the `random` pools.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Sets the seed of the `random` pools and restarts their sequence.
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
        self.rng = fastrand::Rng::with_seed(seed);
    }

    /// The exchanges, in insertion order, with their (case-folded) ids.
    pub fn exchanges(&self) -> impl Iterator<Item = (&ExchangeId, &ConnectionProxies<P>)> {
        self.exchanges.iter().map(|(k, v)| (k, v))
    }

    /// The entries of one exchange.
    pub fn exchange(&self, id: &ExchangeId) -> Option<&ConnectionProxies<P>> {
        self.exchanges.iter().find(|(k, _)| k == id).map(|(_, v)| v)
    }

    /// Adds or replaces an exchange's entries (replaced as a whole). Fails
    /// with `exchanges: too many items` when `E` exchanges are already held.
    pub fn insert_exchange(
        &mut self,
        id: ExchangeId,
        proxies: ConnectionProxies<P>,
    ) -> Result<(), ValidationError> {
        if let Some(slot) = self.exchanges.iter_mut().find(|(k, _)| *k == id) {
            slot.1 = proxies;
            return Ok(());
        }
        self.exchanges.push((id, proxies)).map_err(|_| {
            ValidationError::new("proxy.exchanges", Reason::TooMany { len: E + 1, max: E })
        })
    }

    /// The entries of exchange `id` for filling in place: the existing ones,
    /// or new empty ones (nothing listed) added at the end. Fails like
    /// [`insert_exchange`](Self::insert_exchange) when `E` exchanges are
    /// already held. Building in place avoids moving a
    /// [`ConnectionProxies`] (two pools wide); the loader uses it.
    pub fn exchange_entry(
        &mut self,
        id: ExchangeId,
    ) -> Result<&mut ConnectionProxies<P>, ValidationError> {
        let found = self.exchanges.iter().position(|(k, _)| *k == id);
        let i = match found {
            Some(i) => i,
            None => {
                self.exchanges
                    .push((id, ConnectionProxies::default()))
                    .map_err(|_| {
                        ValidationError::new(
                            "proxy.exchanges",
                            Reason::TooMany { len: E + 1, max: E },
                        )
                    })?;
                self.exchanges.len() - 1
            }
        };
        self.exchanges.get_mut(i).map(|(_, v)| v).ok_or_else(|| {
            ValidationError::new("proxy.exchanges", Reason::TooMany { len: E + 1, max: E })
        })
    }

    /// Removes an exchange's entries; returns them.
    pub fn remove_exchange(&mut self, id: &ExchangeId) -> Option<ConnectionProxies<P>> {
        let i = self.exchanges.iter().position(|(k, _)| k == id)?;
        self.exchanges.remove(i).map(|(_, v)| v)
    }

    /// The entry cryptofeed's rules choose, with where it came from
    /// (`Some(index)` of the exchange, or `None` for the default).
    fn entry_slot(
        &self,
        exchange_id: &ExchangeId,
        connection_type: ConnectionType,
    ) -> Option<Option<usize>> {
        if !self.enabled {
            return None;
        }
        if let Some(i) = self.exchanges.iter().position(|(k, _)| k == exchange_id)
            && self
                .exchanges
                .get(i)
                .is_some_and(|(_, v)| v.get(connection_type).is_some())
        {
            return Some(Some(i));
        }
        self.default.get(connection_type).map(|_| None)
    }

    /// The configured entry for this exchange connection under cryptofeed's
    /// rules, without choosing from a pool: `None` when disabled or nothing
    /// applies. A returned entry may be "direct" ([`ProxyConfig::is_direct`]).
    pub fn entry(
        &self,
        exchange_id: &ExchangeId,
        connection_type: ConnectionType,
    ) -> Option<&ProxyConfig<P>> {
        match self.entry_slot(exchange_id, connection_type)? {
            Some(i) => self.exchanges.get(i)?.1.get(connection_type),
            None => self.default.get(connection_type),
        }
    }

    /// The proxy for this exchange connection, or `None` for "connect
    /// directly". Pools advance (round-robin, seeded random, leases).
    pub fn resolve(
        &mut self,
        exchange_id: &ExchangeId,
        connection_type: ConnectionType,
    ) -> Option<Pick<'_>> {
        let slot = self.entry_slot(exchange_id, connection_type)?;
        let entry = match slot {
            Some(i) => self.exchanges.get_mut(i)?.1.get_mut(connection_type)?,
            None => self.default.get_mut(connection_type)?,
        };
        let timeout_seconds = entry.timeout_seconds.get();
        if let Some(pool) = entry.pool.as_mut() {
            let i = pool.pick(&mut self.rng)?;
            let lease = (pool.strategy == PoolStrategy::LeastConnections).then_some(Lease {
                exchange: slot.map(|s| s as u16),
                connection_type,
                proxy: i as u16,
            });
            return Some(Pick {
                proxy_url: &pool.proxies[i].url,
                timeout_seconds,
                lease,
            });
        }
        entry.url.as_ref().map(|proxy_url| Pick {
            proxy_url,
            timeout_seconds,
            lease: None,
        })
    }

    fn pool_mut(
        &mut self,
        exchange: Option<usize>,
        connection_type: ConnectionType,
    ) -> Option<&mut ProxyPool<P>> {
        let proxies = match exchange {
            Some(i) => &mut self.exchanges.get_mut(i)?.1,
            None => &mut self.default,
        };
        proxies.get_mut(connection_type)?.pool.as_mut()
    }

    /// Hands back a lease from a `least_connections` pick. Releasing twice,
    /// or after the settings changed, is harmless (counts never go below 0).
    pub fn release(&mut self, lease: Lease) {
        if let Some(pool) = self.pool_mut(lease.exchange.map(usize::from), lease.connection_type)
            && let Some(n) = pool.leases.get_mut(usize::from(lease.proxy))
        {
            *n = n.saturating_sub(1);
        }
    }

    /// Releases one lease on the pool member with the same scheme, host and
    /// port as `url` in the pool this exchange connection resolves to (for
    /// callers that kept the URL, not the [`Lease`], e.g. through
    /// [`EmbeddedRoutes`]). Returns whether a lease was released.
    pub fn release_url(
        &mut self,
        exchange_id: &ExchangeId,
        connection_type: ConnectionType,
        url: &ProxyUrl,
    ) -> bool {
        let Some(slot) = self.entry_slot(exchange_id, connection_type) else {
            return false;
        };
        let Some(pool) = self.pool_mut(slot, connection_type) else {
            return false;
        };
        let n = pool.proxies.len();
        for i in 0..n {
            if pool.proxies[i].url.same_proxy(url) && pool.leases[i] > 0 {
                pool.leases[i] -= 1;
                return true;
            }
        }
        false
    }

    /// Marks every pool member (in every pool) with the same scheme, host and
    /// port as `url` healthy or unhealthy. Unhealthy members are skipped while
    /// a healthy enabled member remains. Returns how many members matched.
    pub fn set_health(&mut self, url: &ProxyUrl, healthy: bool) -> usize {
        let mut n = 0;
        let all =
            core::iter::once(&mut self.default).chain(self.exchanges.iter_mut().map(|(_, v)| v));
        for proxies in all {
            for entry in [proxies.http.as_mut(), proxies.websocket.as_mut()]
                .into_iter()
                .flatten()
            {
                if let Some(pool) = entry.pool.as_mut() {
                    n += pool.set_health(url, healthy);
                }
            }
        }
        n
    }
}

/// The settings as the Resolver's fallback: a pick is cloned out. Leases from
/// `least_connections` pools are released with
/// [`ProxySettings::release_url`].
impl<const E: usize, const P: usize> EmbeddedRoutes for ProxySettings<E, P> {
    fn embedded_route(
        &mut self,
        exchange_id: &ExchangeId,
        connection_type: ConnectionType,
    ) -> Option<EmbeddedRoute> {
        self.resolve(exchange_id, connection_type)
            .map(|pick| EmbeddedRoute {
                proxy_url: pick.proxy_url.clone(),
                timeout_seconds: pick.timeout_seconds,
            })
    }

    fn release_route(
        &mut self,
        exchange_id: &ExchangeId,
        connection_type: ConnectionType,
        proxy_url: &ProxyUrl,
    ) {
        self.release_url(exchange_id, connection_type, proxy_url);
    }
}
