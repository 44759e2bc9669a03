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
//!
//! # Where each concept lives
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | [`ProxySettings`]: the exchanges, the resolution rules, leases and health |
//! | `proxy.rs` | the cryptofeed model of one entry: [`ProxyConfig`], [`ProxyPool`] and its strategies, [`ConnectionProxies`] |
//! | `external.rs` | the `external_service` block: [`ExternalService`], authentication, secrets |
//! | `storage.rs` | the fixed-capacity, insertion-ordered storage of the exchanges |

use crate::embedded::{EmbeddedRoute, EmbeddedRoutes};
use crate::model::{ConnectionType, ExchangeId, ProxyUrl};
use crate::{Reason, ValidationError};

/// Default number of exchanges a [`ProxySettings`] holds.
pub const DEFAULT_EXCHANGES: usize = 16;
/// Default number of proxies a [`ProxyPool`] holds.
pub const DEFAULT_POOL: usize = 16;

// Defined before the submodules, which use it (a `macro_rules!` macro is
// visible only after its definition).
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

mod external;
mod proxy;
mod storage;

pub use external::{
    AUTH_CREDENTIALS_FIELDS, AuthCredentials, AuthMethod, CacheTtlSeconds, EXTERNAL_SERVICE_FIELDS,
    ExternalService, FilePath, HedgeDelayMs, MAX_ENDPOINTS, MAX_FILE_PATH_LEN, MAX_SECRET_LEN,
    MAX_SRV_NAME_LEN, ResolveDeadlineMs, Secret, ServiceTimeoutSeconds, StaleGraceSeconds,
};
pub use proxy::{
    ConnectionProxies, PoolProxy, PoolStrategy, ProxyConfig, ProxyPool, TimeoutSeconds, Weight,
};
use storage::Slots;

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
