//! The cryptofeed model of one entry of the `proxy:` block: a single proxy
//! URL or a pool of them ([`ProxyConfig`]), the pool's members, strategy and
//! runtime state ([`ProxyPool`]), and the entries of one exchange per
//! connection type ([`ConnectionProxies`]).

use super::DEFAULT_POOL;
use crate::model::{ConnectionType, ProxyUrl};
use crate::{Reason, ValidationError};

bounded_number! {
    /// A proxy's connect timeout: 1–300 seconds, default 30.
    TimeoutSeconds(u16), min = 1, max = 300, default = 30,
    field = "timeout_seconds", expected = "1 to 300 seconds"
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
}

crate::labels! {
    /// The configuration spelling.
    PoolStrategy {
        RoundRobin => "round_robin",
        Random => "random",
        LeastConnections => "least_connections",
    }
    parse(field = "strategy", expected = "round_robin, random, least_connections")
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
    pub(super) proxies: heapless::Vec<PoolProxy, P>,
    pub(super) strategy: PoolStrategy,
    pub(super) cursor: usize,
    pub(super) leases: [u32; P],
    pub(super) unhealthy: [bool; P],
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
    pub(super) fn pick(&mut self, rng: &mut fastrand::Rng) -> Option<usize> {
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

    pub(super) fn get_mut(
        &mut self,
        connection_type: ConnectionType,
    ) -> Option<&mut ProxyConfig<P>> {
        match connection_type {
            ConnectionType::Http => self.http.as_mut(),
            ConnectionType::Websocket => self.websocket.as_mut(),
        }
    }
}
