//! The response cache: the service's answers, kept per exchange connection for
//! the TTL the service gave, with least-recently-used eviction, refresh-ahead,
//! stale-if-error, invalidation and warming.
//!
//! [`Cache`] is a sans-IO state machine like every machine in this crate: time
//! comes in as an argument, work for the caller (keys to refresh) and events
//! (evictions, scheduled refreshes, invalidations) are pulled, and
//! [`Cache::poll_timeout`] says when [`Cache::handle_timeout`] is due. It never
//! allocates: entries live in a fixed table of `N` slots.
//!
//! # Lifetimes of an entry
//!
//! An entry inserted at `t` with a TTL (the response's, clamped to
//! [`CacheConfig::min_ttl`]..=[`CacheConfig::max_ttl`]) is
//!
//! - **fresh** while `now < t + ttl`: [`Cache::get`] returns it. From
//!   `t + ttl * refresh_ahead_percent / 100` on, the first lookup also schedules
//!   one background refresh for its key (refresh-ahead);
//! - **stale** while `t + ttl <= now < t + ttl + stale_grace`: [`Cache::get`]
//!   does not return it; only [`Cache::get_stale`] does, marked
//!   [`Freshness::Stale`] (stale-if-error);
//! - **dead** afterwards: never returned, and removed when a lookup meets it.

use core::fmt;
use core::hash::{Hash, Hasher};

use embassy_time::{Duration, Instant};

use crate::model::{
    ConnectionType, ExchangeId, ProxyId, ProxyRequest, ProxyResponse, ProxyUrl, Region,
};

/// Most keys [`CacheConfig::warm_keys`] can hold.
pub const MAX_WARM_KEYS: usize = 16;

/// Events kept until [`Cache::poll_event`] takes them. When the queue is full
/// the oldest event is dropped and counted in [`Cache::dropped_events`]; a
/// caller that drains events after every call never loses one (no single call
/// produces more than [`MAX_WARM_KEYS`] events).
pub const EVENT_QUEUE_LEN: usize = 32;

// ---------------------------------------------------------------- key

/// What an answer is cached under: the exchange, the connection type and the
/// region the client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey {
    /// The exchange.
    pub exchange_id: ExchangeId,
    /// HTTP or WebSocket.
    pub connection_type: ConnectionType,
    /// The region the client asked for, if any.
    pub region: Option<Region>,
}

impl CacheKey {
    /// A key from its parts.
    pub fn new(
        exchange_id: ExchangeId,
        connection_type: ConnectionType,
        region: Option<Region>,
    ) -> Self {
        Self {
            exchange_id,
            connection_type,
            region,
        }
    }

    /// The key a request's answer is cached under.
    pub fn from_request(request: &ProxyRequest) -> Self {
        Self::new(
            request.exchange_id.clone(),
            request.connection_type,
            request.region.clone(),
        )
    }
}

/// `exchange/connection_type[/region]`, e.g. `binance/websocket/us-east-1`.
impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.exchange_id, self.connection_type)?;
        if let Some(r) = &self.region {
            write!(f, "/{r}")?;
        }
        Ok(())
    }
}

/// A borrowed view of a [`CacheKey`], so that a lookup need not build (and
/// copy) a key. Hashes and compares exactly like the key it views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKeyRef<'a> {
    /// The exchange.
    pub exchange_id: &'a ExchangeId,
    /// HTTP or WebSocket.
    pub connection_type: ConnectionType,
    /// The region the client asked for, if any.
    pub region: Option<&'a Region>,
}

impl<'a> CacheKeyRef<'a> {
    /// The key a request's answer is cached under, borrowed from the request.
    pub fn from_request(request: &'a ProxyRequest) -> Self {
        Self {
            exchange_id: &request.exchange_id,
            connection_type: request.connection_type,
            region: request.region.as_ref(),
        }
    }

    fn matches(&self, key: &CacheKey) -> bool {
        *self.exchange_id == key.exchange_id
            && self.connection_type == key.connection_type
            && self.region == key.region.as_ref()
    }
}

impl<'a> From<&'a CacheKey> for CacheKeyRef<'a> {
    fn from(key: &'a CacheKey) -> Self {
        Self {
            exchange_id: &key.exchange_id,
            connection_type: key.connection_type,
            region: key.region.as_ref(),
        }
    }
}

// ---------------------------------------------------------------- value

/// What the cache needs to know about a cached value: its TTL and the proxy it
/// names (for [`Cache::invalidate_proxy`]).
///
/// Implemented for [`ProxyResponse`]; a caller that caches a larger struct
/// around a response implements it by delegation.
pub trait CacheValue {
    /// How long the value may be cached, before clamping to the configured
    /// minimum and maximum.
    fn ttl(&self) -> Duration;
    /// The service's id of the proxy the value names, if any.
    fn proxy_id(&self) -> Option<&ProxyId>;
    /// The proxy URL the value names, if any (`None`: a direct connection).
    fn proxy_url(&self) -> Option<&ProxyUrl>;
}

impl CacheValue for ProxyResponse {
    fn ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.ttl_seconds.get()))
    }

    fn proxy_id(&self) -> Option<&ProxyId> {
        self.metadata.proxy_id.as_ref()
    }

    fn proxy_url(&self) -> Option<&ProxyUrl> {
        self.proxy_url.as_ref()
    }
}

// ---------------------------------------------------------------- config

/// How the cache treats TTLs, refreshes and stale entries.
///
/// Every field has a documented default ([`CacheConfig::default`]);
/// [`Cache::new`] checks the values and names the first wrong field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Shortest time an answer is kept fresh, whatever its TTL says. Default 1 s.
    pub min_ttl: Duration,
    /// Longest time an answer is kept fresh, whatever its TTL says; must be
    /// greater than zero and at least `min_ttl`. Default 1 h.
    pub max_ttl: Duration,
    /// Share of the TTL, in percent (1–100), after which a lookup schedules a
    /// background refresh. 100 turns refresh-ahead off. Default 80.
    pub refresh_ahead_percent: u8,
    /// How long an expired entry is kept for [`Cache::get_stale`]. Zero turns
    /// stale-if-error off. Default 10 min.
    pub stale_grace: Duration,
    /// How long a refresh handed out by [`Cache::poll_refresh`] may take before
    /// the key can be scheduled again (guards against a refresh whose outcome
    /// is never reported). Must be greater than zero. Default 10 s.
    pub refresh_timeout: Duration,
    /// How long after [`Cache::refresh_failed`] the key can be scheduled again.
    /// Must be greater than zero. Default 5 s.
    pub refresh_retry: Duration,
    /// Keys kept fresh proactively: each comes out of [`Cache::poll_refresh`]
    /// when it is missing or its refresh is due, without waiting for a lookup.
    /// Each key at most once. Default empty.
    pub warm_keys: heapless::Vec<CacheKey, MAX_WARM_KEYS>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(3600),
            refresh_ahead_percent: 80,
            stale_grace: Duration::from_secs(600),
            refresh_timeout: Duration::from_secs(10),
            refresh_retry: Duration::from_secs(5),
            warm_keys: heapless::Vec::new(),
        }
    }
}

impl CacheConfig {
    /// Checks the configuration; the error names the first wrong field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_ttl == Duration::from_ticks(0) {
            return Err(ConfigError::ZeroDuration { field: "max_ttl" });
        }
        if self.min_ttl > self.max_ttl {
            return Err(ConfigError::TtlRange {
                min_ms: self.min_ttl.as_millis(),
                max_ms: self.max_ttl.as_millis(),
            });
        }
        if !(1..=100).contains(&self.refresh_ahead_percent) {
            return Err(ConfigError::RefreshAheadPercent {
                got: self.refresh_ahead_percent,
            });
        }
        if self.refresh_timeout == Duration::from_ticks(0) {
            return Err(ConfigError::ZeroDuration {
                field: "refresh_timeout",
            });
        }
        if self.refresh_retry == Duration::from_ticks(0) {
            return Err(ConfigError::ZeroDuration {
                field: "refresh_retry",
            });
        }
        for (index, key) in self.warm_keys.iter().enumerate() {
            if self.warm_keys[..index].contains(key) {
                return Err(ConfigError::DuplicateWarmKey { index });
            }
        }
        Ok(())
    }
}

/// A [`CacheConfig`] value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `min_ttl` is greater than `max_ttl`.
    TtlRange {
        /// `min_ttl` in milliseconds.
        min_ms: u64,
        /// `max_ttl` in milliseconds.
        max_ms: u64,
    },
    /// A duration that must be positive is zero.
    ZeroDuration {
        /// The field.
        field: &'static str,
    },
    /// `refresh_ahead_percent` is outside 1–100.
    RefreshAheadPercent {
        /// The value given.
        got: u8,
    },
    /// `warm_keys` lists a key twice.
    DuplicateWarmKey {
        /// Position of the repeated key in `warm_keys`.
        index: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::TtlRange { min_ms, max_ms } => write!(
                f,
                "cache config: min_ttl ({min_ms} ms) is greater than max_ttl ({max_ms} ms); \
                 lower min_ttl or raise max_ttl"
            ),
            ConfigError::ZeroDuration { field } => write!(
                f,
                "cache config: {field} is zero; set it to a positive duration \
                 (see CacheConfig::default for the default)"
            ),
            ConfigError::RefreshAheadPercent { got } => write!(
                f,
                "cache config: refresh_ahead_percent is {got}; use 1 to 100 \
                 (100 turns refresh-ahead off)"
            ),
            ConfigError::DuplicateWarmKey { index } => write!(
                f,
                "cache config: warm_keys[{index}] repeats an earlier key; list each key once"
            ),
        }
    }
}

impl core::error::Error for ConfigError {}

// ---------------------------------------------------------------- outputs

/// Whether a lookup's answer is within its TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Freshness {
    /// Within its TTL.
    Fresh,
    /// Past its TTL but within the stale grace; only [`Cache::get_stale`]
    /// returns it.
    Stale,
}

/// A lookup's answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit<'a, V> {
    /// The cached value.
    pub value: &'a V,
    /// Fresh, or stale (only from [`Cache::get_stale`]).
    pub freshness: Freshness,
    /// When the value stops (or stopped) being fresh.
    pub expires_at: Instant,
}

/// Which invalidation removed entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidationScope {
    /// One key ([`Cache::invalidate`]).
    Key,
    /// Every key of an exchange ([`Cache::invalidate_exchange`]).
    Exchange,
    /// Every entry naming a proxy ([`Cache::invalidate_proxy`]).
    Proxy,
    /// Everything ([`Cache::invalidate_all`]).
    All,
}

/// Something an adapter may log or count; pulled with [`Cache::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The least recently used entry made room for a new key.
    Evicted {
        /// The key that went.
        key: CacheKey,
    },
    /// A background refresh was scheduled; the key comes out of
    /// [`Cache::poll_refresh`].
    RefreshScheduled {
        /// The key to refresh.
        key: CacheKey,
        /// `true` when scheduled for a warm key by [`Cache::handle_timeout`],
        /// `false` when a lookup found the entry due (refresh-ahead).
        warm: bool,
    },
    /// An invalidation removed entries (only emitted when it removed any).
    Invalidated {
        /// Which invalidation.
        scope: InvalidationScope,
        /// How many entries went.
        count: usize,
    },
}

// ---------------------------------------------------------------- storage

/// A word-at-a-time hasher for keys: keys are short and come from the
/// application, not from an adversary, so speed matters more than flooding
/// resistance. `finish` mixes the high bits down because the index uses the
/// low bits.
#[derive(Default)]
struct KeyHasher(u64);

impl KeyHasher {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(
                <[u8; 8]>::try_from(c).unwrap_or_default(),
            ));
        }
        // The last 0–7 bytes as one word, read with (overlapping) whole-word
        // loads rather than a byte copy, plus their count.
        let rest = chunks.remainder();
        let n = rest.len();
        let word = if n >= 4 {
            let lo = u32::from_le_bytes(<[u8; 4]>::try_from(&rest[..4]).unwrap_or_default());
            let hi = u32::from_le_bytes(<[u8; 4]>::try_from(&rest[n - 4..]).unwrap_or_default());
            u64::from(lo) | (u64::from(hi) << 32)
        } else if n > 0 {
            u64::from(rest[0]) | (u64::from(rest[n / 2]) << 8) | (u64::from(rest[n - 1]) << 16)
        } else {
            0
        };
        self.add(word ^ ((n as u64) << 59));
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn write_isize(&mut self, i: isize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let h = self.0;
        let h = (h ^ (h >> 32)).wrapping_mul(Self::K);
        h ^ (h >> 29)
    }
}

/// "No slot": the end of a list.
const NIL: u32 = u32::MAX;

/// A slot's place in one doubly linked list.
#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

impl Link {
    const NONE: Link = Link {
        prev: NIL,
        next: NIL,
    };
}

/// Head and tail of a list threaded through the slots.
#[derive(Debug, Clone, Copy)]
struct Ends {
    head: u32,
    tail: u32,
}

impl Ends {
    const EMPTY: Ends = Ends {
        head: NIL,
        tail: NIL,
    };
}

/// The two lists: recency (head = most recently used) and refreshes waiting
/// for [`Cache::poll_refresh`] (head = oldest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Lru,
    Pending,
}

/// What a lookup needs to know about the entry in a slot, kept apart from the
/// values (which may be large) so that a lookup reads one small record.
#[derive(Debug, Clone, Copy)]
struct Meta {
    fresh_until: Instant,
    /// No refresh is scheduled before this: the refresh-ahead point after an
    /// insert, the in-flight guard after a poll, the retry point after a failure.
    refresh_not_before: Instant,
    /// On the pending list.
    queued: bool,
}

impl Meta {
    const EMPTY: Meta = Meta {
        fresh_until: Instant::MIN,
        refresh_not_before: Instant::MIN,
        queued: false,
    };
}

/// A position of the key index: the key's hash and its slot (`NIL`: empty).
#[derive(Debug, Clone, Copy)]
struct Pos {
    hash: u32,
    slot: u32,
}

impl Pos {
    const EMPTY: Pos = Pos { hash: 0, slot: NIL };
}

fn hash_key(key: &CacheKey) -> u32 {
    hash_key_ref(CacheKeyRef::from(key))
}

/// Hashes a key's fields; [`CacheKeyRef`]'s derived `Hash` feeds the hasher
/// exactly what [`CacheKey`]'s does, so both find the same entry.
fn hash_key_ref(key: CacheKeyRef<'_>) -> u32 {
    let mut h = KeyHasher::default();
    key.hash(&mut h);
    h.finish() as u32
}

/// Refresh state of a warm key while it has no entry.
#[derive(Debug, Clone, Copy)]
struct WarmState {
    /// Scheduled, waiting for [`Cache::poll_refresh`].
    queued: bool,
    /// Not scheduled again before this.
    not_before: Instant,
}

// ---------------------------------------------------------------- cache

/// A fixed-capacity response cache for `N` keys (a power of two, 2 to 65 536;
/// anything else is a compile-time error), with least-recently-used eviction.
///
/// A lookup costs the same at any size: a hash of the key, a probe in an
/// open-addressed index from keys to slots, and a constant number of link
/// updates in an intrusive recency list over the fixed array of `N` slots.
/// `V` is usually [`ProxyResponse`] or a small struct around it
/// ([`CacheValue`]).
///
/// The cache holds its `N` values inline: `Cache<ProxyResponse, 4096>` is a
/// few megabytes, so large caches belong in a `static` or a `Box`, not on a
/// small stack.
///
/// # Call order
///
/// 1. [`Cache::new`] once, with a validated [`CacheConfig`].
/// 2. On each resolve, [`Cache::get`]`(now, key)`: a fresh hit is the answer.
///    On a miss, ask the service; when it answers, [`Cache::insert`]. If the
///    service cannot answer in time, [`Cache::get_stale`]`(now, key)` gives an
///    expired entry within its grace, marked [`Freshness::Stale`].
/// 3. On feedback that a proxy failed, [`Cache::invalidate_proxy`]; the other
///    invalidations as needed.
/// 4. After every call, drain [`Cache::poll_refresh`]`(now)`: each key is one
///    background refresh to start. Report its outcome with [`Cache::insert`]
///    (success) or [`Cache::refresh_failed`] (failure).
/// 5. After every call, drain [`Cache::poll_event`] to log and count.
/// 6. When [`Cache::poll_timeout`] has passed (warm keys due), call
///    [`Cache::handle_timeout`]`(now)`, then go back to 4.
///
/// # Example
///
/// ```
/// use embassy_time::{Duration, Instant};
/// use proxy_delegate_core::cache::{Cache, CacheConfig, CacheKey, Event, Freshness};
/// use proxy_delegate_core::codec;
/// use proxy_delegate_core::model::{ConnectionType, ExchangeId, ProxyResponse};
///
/// let mut cache = Cache::<ProxyResponse, 16>::new(CacheConfig::default())?;
/// let key = CacheKey::new(ExchangeId::new("binance")?, ConnectionType::Websocket, None);
/// let response: ProxyResponse = codec::json::decode(
///     br#"{"proxy_url":"socks5://proxy-1:1080","strategy":"round_robin","ttl_seconds":100,
///          "metadata":{"proxy_id":"proxy-1"}}"#,
/// )?;
///
/// let t0 = Instant::from_secs(1_000);
/// assert!(cache.get(t0, &key).is_none()); // miss: ask the service
/// cache.insert(t0, key.clone(), response);
///
/// // Fresh for 100 s; after 80 s (80% of the TTL) a lookup also schedules a refresh.
/// let t80 = t0 + Duration::from_secs(80);
/// assert_eq!(cache.get(t80, &key).map(|hit| hit.freshness), Some(Freshness::Fresh));
/// assert_eq!(cache.poll_refresh(t80), Some(key.clone()));
/// assert_eq!(cache.poll_refresh(t80), None); // exactly one
/// assert!(matches!(cache.poll_event(), Some(Event::RefreshScheduled { .. })));
/// cache.refresh_failed(t80, &key);
///
/// // Expired: never fresh again, but served as stale when asked for it.
/// let t101 = t0 + Duration::from_secs(101);
/// assert!(cache.get(t101, &key).is_none());
/// assert_eq!(cache.get_stale(t101, &key).map(|hit| hit.freshness), Some(Freshness::Stale));
///
/// // Feedback says proxy-1 failed: every entry naming it goes.
/// assert_eq!(cache.invalidate_proxy(Some(&"proxy-1".parse()?), None), 1);
/// assert!(cache.get_stale(t101, &key).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A capacity that is not a power of two is refused when the program is
/// compiled ("N must be a power of two from 2 to 65536"):
///
/// ```compile_fail
/// use proxy_delegate_core::cache::{Cache, CacheConfig};
/// use proxy_delegate_core::model::ProxyResponse;
///
/// let cache = Cache::<ProxyResponse, 100>::new(CacheConfig::default());
/// ```
pub struct Cache<V, const N: usize> {
    /// From key hash to slot: `2N` positions, linear probing.
    table: [[Pos; 2]; N],
    /// Slot-indexed: the keys, the values, their timing, their recency and
    /// pending links.
    keys: [Option<CacheKey>; N],
    values: [Option<V>; N],
    len: usize,
    meta: [Meta; N],
    links: [Link; N],
    pending_links: [Link; N],
    lru: Ends,
    pending: Ends,
    /// Slots never used yet start here; released slots go to `free`.
    unused: u32,
    free: heapless::Vec<u32, N>,
    config: CacheConfig,
    /// Parallel to `config.warm_keys`.
    warm: heapless::Vec<WarmState, MAX_WARM_KEYS>,
    events: heapless::Deque<Event, EVENT_QUEUE_LEN>,
    dropped_events: u64,
    /// Slot of the most recent successful lookup, until the cache changes.
    last_hit: u32,
}

impl<V, const N: usize> fmt::Debug for Cache<V, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("len", &self.len)
            .field("capacity", &N)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `now + d`, saturating at the end of time instead of panicking.
fn after(now: Instant, d: Duration) -> Instant {
    now.saturating_add(d)
}

/// `percent`% of `d`, without overflow.
fn share(d: Duration, percent: u8) -> Duration {
    let t = d.as_ticks();
    let p = u64::from(percent);
    Duration::from_ticks(t / 100 * p + t % 100 * p / 100)
}

impl<V: CacheValue, const N: usize> Cache<V, N> {
    const CHECK_N: () = assert!(
        N >= 2 && N <= 65_536 && N.is_power_of_two(),
        "Cache<V, N>: N must be a power of two from 2 to 65536 (e.g. 16, 256, 4096)"
    );

    /// Positions in the index, minus one: the index has `2N` positions.
    const MASK: usize = 2 * N - 1;

    /// An empty cache, or the first problem with `config`.
    pub fn new(config: CacheConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::assemble(config))
    }

    /// Like [`new`](Self::new), boxed: written into a fresh allocation with
    /// no `Result` around it, so an optimised build holds at most one copy
    /// on the stack (a `Cache<ProxyResponse, 4096>` is several MiB).
    #[cfg(feature = "alloc")]
    pub fn new_boxed(config: CacheConfig) -> Result<alloc::boxed::Box<Self>, ConfigError> {
        config.validate()?;
        Ok(alloc::boxed::Box::write(
            alloc::boxed::Box::new_uninit(),
            Self::assemble(config),
        ))
    }

    /// An empty cache for a configuration already validated. Infallible, so
    /// that a caller can build it straight into its final place.
    #[inline(always)]
    pub(crate) fn assemble(config: CacheConfig) -> Self {
        let () = Self::CHECK_N;
        let mut warm = heapless::Vec::new();
        for _ in &config.warm_keys {
            // Same capacity as `warm_keys`: cannot fail.
            let _ = warm.push(WarmState {
                queued: false,
                not_before: Instant::MIN,
            });
        }
        Self {
            table: [[Pos::EMPTY; 2]; N],
            keys: [const { None }; N],
            values: [const { None }; N],
            len: 0,
            meta: [Meta::EMPTY; N],
            links: [Link::NONE; N],
            pending_links: [Link::NONE; N],
            lru: Ends::EMPTY,
            pending: Ends::EMPTY,
            unused: 0,
            free: heapless::Vec::new(),
            config,
            warm,
            events: heapless::Deque::new(),
            dropped_events: 0,
            last_hit: NIL,
        }
    }

    /// The configuration the cache runs with.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Entries held, including stale and dead ones not yet reclaimed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most entries the cache holds: `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Whether an entry (fresh, stale or dead) is held for `key`; neither
    /// touches recency nor schedules anything.
    pub fn contains(&self, key: &CacheKey) -> bool {
        self.find(key).is_some()
    }

    /// The value held for `key`, whatever its freshness, without touching
    /// recency or scheduling anything. It does not look at the clock: use it
    /// only to re-read an entry that [`Cache::get`] or [`Cache::get_stale`]
    /// has just found usable at the same `now` (for example to return the
    /// borrow from a `&self` method).
    pub fn peek(&self, key: &CacheKey) -> Option<&V> {
        let (_, slot) = self.find(key)?;
        self.values.get(slot as usize)?.as_ref()
    }

    /// The value the most recent successful [`Cache::get`] or
    /// [`Cache::get_stale`] found, as long as nothing was inserted or removed
    /// since. Lets a caller that needed `&mut` for the lookup lend the value
    /// without a second lookup.
    pub fn last_hit(&self) -> Option<&V> {
        self.values.get(self.last_hit as usize)?.as_ref()
    }

    // ------------------------------------------------------------ lookups

    /// The fresh entry for `key`, if any. Never returns an expired entry.
    ///
    /// A hit becomes the most recently used entry; when its refresh is due
    /// (it has lived `refresh_ahead_percent` of its TTL and no refresh is
    /// scheduled or in flight), the hit also schedules one background refresh:
    /// the key comes out of [`Cache::poll_refresh`] and an
    /// [`Event::RefreshScheduled`] is emitted.
    ///
    /// `key` is a `&CacheKey` or a borrowed [`CacheKeyRef`].
    pub fn get<'k>(&mut self, now: Instant, key: impl Into<CacheKeyRef<'k>>) -> Option<Hit<'_, V>> {
        self.lookup(now, key.into(), false)
    }

    /// Like [`Cache::get`], but an expired entry within its stale grace is
    /// returned too, marked [`Freshness::Stale`]. Call it only when the service
    /// cannot answer in time. A stale hit becomes the most recently used entry
    /// but schedules no refresh (the caller is already asking the service).
    pub fn get_stale<'k>(
        &mut self,
        now: Instant,
        key: impl Into<CacheKeyRef<'k>>,
    ) -> Option<Hit<'_, V>> {
        self.lookup(now, key.into(), true)
    }

    fn lookup(
        &mut self,
        now: Instant,
        key: CacheKeyRef<'_>,
        allow_stale: bool,
    ) -> Option<Hit<'_, V>> {
        let (_, slot) = self.find_ref(key)?;
        let m = *self.meta.get(slot as usize)?;
        let fresh = now < m.fresh_until;
        if !fresh {
            if now >= after(m.fresh_until, self.config.stale_grace) {
                // Dead: reclaim the slot.
                self.remove_slot(slot);
                return None;
            }
            if !allow_stale {
                return None;
            }
        }
        self.touch(slot);
        if fresh && !m.queued && now >= m.refresh_not_before {
            self.schedule(slot, false);
        }
        self.last_hit = slot;
        Some(Hit {
            value: self.values.get(slot as usize)?.as_ref()?,
            freshness: if fresh {
                Freshness::Fresh
            } else {
                Freshness::Stale
            },
            expires_at: m.fresh_until,
        })
    }

    // ------------------------------------------------------------ insert

    /// Stores the service's answer for `key` at `now`, fresh for its TTL
    /// clamped to the configured range. This is also how a refresh reports
    /// success.
    ///
    /// An existing entry for `key` is replaced (and any refresh scheduled for
    /// it is dropped: the answer is new). A new key in a full cache evicts the
    /// least recently used entry ([`Event::Evicted`]). The entry becomes the
    /// most recently used.
    pub fn insert(&mut self, now: Instant, key: CacheKey, value: V) {
        self.last_hit = NIL;
        let ttl = value
            .ttl()
            .max(self.config.min_ttl)
            .min(self.config.max_ttl);
        let fresh_until = after(now, ttl);
        let refresh_not_before = after(now, share(ttl, self.config.refresh_ahead_percent));

        if let Some(w) = self.warm_index(&key) {
            // The key has an entry now: its own schedule applies.
            self.warm[w].queued = false;
        }

        let hash = hash_key(&key);
        if let Some((_, slot)) = self.find_hashed(hash, CacheKeyRef::from(&key)) {
            if self.meta(slot).is_some_and(|m| m.queued) {
                self.unlink(List::Pending, slot);
            }
            if let Some(m) = self.meta(slot) {
                m.fresh_until = fresh_until;
                m.refresh_not_before = refresh_not_before;
                m.queued = false;
            }
            if let Some(v) = self.values.get_mut(slot as usize) {
                *v = Some(value);
            }
            self.touch(slot);
            return;
        }

        if self.len >= N
            && self.lru.tail != NIL
            && let Some(evicted) = self.remove_slot(self.lru.tail)
        {
            self.emit(Event::Evicted { key: evicted });
        }
        let Some(slot) = self.free.pop().or_else(|| {
            let fresh = (self.unused as usize) < N;
            let slot = self.unused;
            self.unused += u32::from(fresh);
            fresh.then_some(slot)
        }) else {
            return;
        };
        self.place(hash, slot);
        self.len += 1;
        if let Some(m) = self.meta(slot) {
            *m = Meta {
                fresh_until,
                refresh_not_before,
                queued: false,
            };
        }
        if let Some(k) = self.keys.get_mut(slot as usize) {
            *k = Some(key);
        }
        if let Some(v) = self.values.get_mut(slot as usize) {
            *v = Some(value);
        }
        self.push_front(List::Lru, slot);
    }

    // ------------------------------------------------------------ invalidation

    /// Removes the entry for `key`. Returns whether there was one.
    pub fn invalidate(&mut self, key: &CacheKey) -> bool {
        let Some((_, slot)) = self.find(key) else {
            return false;
        };
        self.remove_slot(slot);
        self.emit(Event::Invalidated {
            scope: InvalidationScope::Key,
            count: 1,
        });
        true
    }

    /// Removes every entry of `exchange_id` (all connection types and regions).
    /// Returns how many went.
    pub fn invalidate_exchange(&mut self, exchange_id: &ExchangeId) -> usize {
        self.remove_where(InvalidationScope::Exchange, |k, _| {
            k.exchange_id == *exchange_id
        })
    }

    /// Removes every entry whose value names the proxy `proxy_id`, or the proxy
    /// at `proxy_url` (same scheme, host and port; credentials are ignored).
    /// Either may be `None`. Returns how many went.
    pub fn invalidate_proxy(
        &mut self,
        proxy_id: Option<&ProxyId>,
        proxy_url: Option<&ProxyUrl>,
    ) -> usize {
        if proxy_id.is_none() && proxy_url.is_none() {
            return 0;
        }
        self.remove_where(InvalidationScope::Proxy, |_, v| {
            let by_id = proxy_id.is_some_and(|id| v.proxy_id() == Some(id));
            let by_url =
                proxy_url.is_some_and(|url| v.proxy_url().is_some_and(|mine| mine.same_proxy(url)));
            by_id || by_url
        })
    }

    /// Removes every entry. Returns how many went.
    pub fn invalidate_all(&mut self) -> usize {
        self.last_hit = NIL;
        let count = self.len;
        self.len = 0;
        for pair in &mut self.table {
            *pair = [Pos::EMPTY; 2];
        }
        for k in &mut self.keys {
            *k = None;
        }
        for v in &mut self.values {
            *v = None;
        }
        self.lru = Ends::EMPTY;
        self.pending = Ends::EMPTY;
        self.unused = 0;
        self.free.clear();
        if count > 0 {
            self.emit(Event::Invalidated {
                scope: InvalidationScope::All,
                count,
            });
        }
        count
    }

    fn remove_where(
        &mut self,
        scope: InvalidationScope,
        mut pred: impl FnMut(&CacheKey, &V) -> bool,
    ) -> usize {
        let mut count = 0;
        for slot in 0..N {
            let hit = match (self.keys.get(slot), self.values.get(slot)) {
                (Some(Some(k)), Some(Some(v))) => pred(k, v),
                _ => false,
            };
            if hit {
                self.remove_slot(slot as u32);
                count += 1;
            }
        }
        if count > 0 {
            self.emit(Event::Invalidated { scope, count });
        }
        count
    }

    // ------------------------------------------------------------ refreshes

    /// The next key to refresh in the background, if any: first those a lookup
    /// found due (oldest first), then warm keys [`Cache::handle_timeout`]
    /// found missing or due. Each key comes out once; it is not scheduled
    /// again until its outcome is reported ([`Cache::insert`] or
    /// [`Cache::refresh_failed`]) or `refresh_timeout` passes.
    pub fn poll_refresh(&mut self, now: Instant) -> Option<CacheKey> {
        self.next_refresh(now)
    }

    /// Whether [`poll_refresh`](Self::poll_refresh) has a key to hand out
    /// (a constant-time check).
    pub fn refresh_pending(&self) -> bool {
        self.pending.head != NIL || self.warm.iter().any(|w| w.queued)
    }

    fn next_refresh(&mut self, now: Instant) -> Option<CacheKey> {
        let in_flight_until = after(now, self.config.refresh_timeout);
        let head = self.pending.head;
        if head != NIL {
            self.unlink(List::Pending, head);
            let m = self.meta(head)?;
            m.queued = false;
            m.refresh_not_before = in_flight_until;
            let key = self.keys.get(head as usize)?.clone()?;
            if let Some(w) = self.warm_index(&key) {
                self.warm[w].not_before = in_flight_until;
            }
            return Some(key);
        }
        let w = self.warm.iter().position(|w| w.queued)?;
        self.warm[w].queued = false;
        self.warm[w].not_before = in_flight_until;
        self.config.warm_keys.get(w).cloned()
    }

    /// Reports that the refresh of `key` failed: the key can be scheduled
    /// again from `now + refresh_retry`. The entry itself stays as it was.
    pub fn refresh_failed(&mut self, now: Instant, key: &CacheKey) {
        let retry_at = after(now, self.config.refresh_retry);
        if let Some((_, slot)) = self.find(key)
            && let Some(m) = self.meta(slot)
        {
            m.refresh_not_before = retry_at;
        }
        if let Some(w) = self.warm_index(key) {
            self.warm[w].not_before = retry_at;
        }
    }

    /// When [`Cache::handle_timeout`] should next run: the earliest time a
    /// warm key is missing or due and not yet scheduled. `None` without warm
    /// keys (refresh-ahead of other keys is driven by lookups).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for (key, w) in self.config.warm_keys.iter().zip(&self.warm) {
            let meta = self
                .find(key)
                .and_then(|(_, slot)| self.meta.get(slot as usize));
            let due = match meta {
                Some(m) if m.queued => None,
                Some(m) => Some(m.refresh_not_before),
                None if w.queued => None,
                None => Some(w.not_before),
            };
            next = match (next, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        next
    }

    /// Schedules a refresh for every warm key that is missing or due at `now`
    /// ([`Event::RefreshScheduled`] with `warm: true`); the keys come out of
    /// [`Cache::poll_refresh`].
    pub fn handle_timeout(&mut self, now: Instant) {
        for w in 0..self.warm.len() {
            let Some(key) = self.config.warm_keys.get(w) else {
                break;
            };
            match self.find(key) {
                Some((_, slot)) => {
                    let due = self
                        .meta
                        .get(slot as usize)
                        .is_some_and(|m| !m.queued && now >= m.refresh_not_before);
                    if due {
                        self.schedule(slot, true);
                    }
                }
                None => {
                    let state = &mut self.warm[w];
                    if !state.queued && now >= state.not_before {
                        state.queued = true;
                        let key = key.clone();
                        self.emit(Event::RefreshScheduled { key, warm: true });
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------ events

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Events dropped because nobody drained [`Cache::poll_event`] in time.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    fn emit(&mut self, event: Event) {
        if self.events.is_full() {
            let _ = self.events.pop_front();
            self.dropped_events += 1;
        }
        let _ = self.events.push_back(event);
    }

    // ------------------------------------------------------------ internals

    fn warm_index(&self, key: &CacheKey) -> Option<usize> {
        self.config.warm_keys.iter().position(|k| k == key)
    }

    fn meta(&mut self, slot: u32) -> Option<&mut Meta> {
        self.meta.get_mut(slot as usize)
    }

    fn link(&mut self, slot: u32, list: List) -> Option<&mut Link> {
        match list {
            List::Lru => self.links.get_mut(slot as usize),
            List::Pending => self.pending_links.get_mut(slot as usize),
        }
    }

    fn ends(&mut self, list: List) -> &mut Ends {
        match list {
            List::Lru => &mut self.lru,
            List::Pending => &mut self.pending,
        }
    }

    /// Puts `slot` on the pending list and says so.
    fn schedule(&mut self, slot: u32, warm: bool) {
        let Some(m) = self.meta(slot) else {
            return;
        };
        m.queued = true;
        self.push_back(List::Pending, slot);
        if let Some(Some(key)) = self.keys.get(slot as usize) {
            let key = key.clone();
            self.emit(Event::RefreshScheduled { key, warm });
        }
    }

    /// Makes `slot` the most recently used.
    fn touch(&mut self, slot: u32) {
        if self.lru.head != slot {
            self.unlink(List::Lru, slot);
            self.push_front(List::Lru, slot);
        }
    }

    fn unlink(&mut self, list: List, slot: u32) {
        let Some(link) = self.link(slot, list) else {
            return;
        };
        let Link { prev, next } = *link;
        *link = Link::NONE;
        match self.link(prev, list) {
            Some(p) => p.next = next,
            None => self.ends(list).head = next,
        }
        match self.link(next, list) {
            Some(n) => n.prev = prev,
            None => self.ends(list).tail = prev,
        }
    }

    fn push_front(&mut self, list: List, slot: u32) {
        let head = self.ends(list).head;
        if let Some(l) = self.link(slot, list) {
            *l = Link {
                prev: NIL,
                next: head,
            };
        }
        match self.link(head, list) {
            Some(h) => h.prev = slot,
            None => self.ends(list).tail = slot,
        }
        self.ends(list).head = slot;
    }

    fn push_back(&mut self, list: List, slot: u32) {
        let tail = self.ends(list).tail;
        if let Some(l) = self.link(slot, list) {
            *l = Link {
                prev: tail,
                next: NIL,
            };
        }
        match self.link(tail, list) {
            Some(t) => t.next = slot,
            None => self.ends(list).head = slot,
        }
        self.ends(list).tail = slot;
    }

    // ------------------------------------------------------------ index

    /// Position `p` of the index (`2N` positions: load factor at most 1/2,
    /// so probes stay short however full the cache is).
    fn at(&self, p: usize) -> Pos {
        self.table
            .get(p >> 1)
            .and_then(|pair| pair.get(p & 1))
            .copied()
            .unwrap_or(Pos::EMPTY)
    }

    fn set(&mut self, p: usize, pos: Pos) {
        if let Some(cell) = self
            .table
            .get_mut(p >> 1)
            .and_then(|pair| pair.get_mut(p & 1))
        {
            *cell = pos;
        }
    }

    /// The index position and slot of `key`.
    fn find(&self, key: &CacheKey) -> Option<(usize, u32)> {
        self.find_ref(CacheKeyRef::from(key))
    }

    fn find_ref(&self, key: CacheKeyRef<'_>) -> Option<(usize, u32)> {
        self.find_hashed(hash_key_ref(key), key)
    }

    fn find_hashed(&self, hash: u32, key: CacheKeyRef<'_>) -> Option<(usize, u32)> {
        let mut p = hash as usize & Self::MASK;
        // Linear probing; the index always has empty positions, and the bound
        // makes "never hangs" evident.
        for _ in 0..=Self::MASK {
            let pos = self.at(p);
            if pos.slot == NIL {
                return None;
            }
            if pos.hash == hash
                && let Some(Some(k)) = self.keys.get(pos.slot as usize)
                && key.matches(k)
            {
                return Some((p, pos.slot));
            }
            p = (p + 1) & Self::MASK;
        }
        None
    }

    /// Records `slot` under `hash` in the first empty position of its probe
    /// sequence (the key is known to be absent).
    fn place(&mut self, hash: u32, slot: u32) {
        let mut p = hash as usize & Self::MASK;
        for _ in 0..=Self::MASK {
            if self.at(p).slot == NIL {
                self.set(p, Pos { hash, slot });
                return;
            }
            p = (p + 1) & Self::MASK;
        }
    }

    /// Empties position `p` and shifts later entries of the same probe run
    /// back, so that no lookup stops early (no tombstones).
    fn unplace(&mut self, p: usize) {
        let mut hole = p;
        let mut j = (p + 1) & Self::MASK;
        for _ in 0..Self::MASK {
            let pos = self.at(j);
            if pos.slot == NIL {
                break;
            }
            let home = pos.hash as usize & Self::MASK;
            // `pos` may fill the hole unless its home lies after the hole
            // (cyclically, within hole+1..=j).
            if (j.wrapping_sub(home) & Self::MASK) >= (j.wrapping_sub(hole) & Self::MASK) {
                self.set(hole, pos);
                hole = j;
            }
            j = (j + 1) & Self::MASK;
        }
        self.set(hole, Pos::EMPTY);
    }

    /// Removes the entry in `slot` from the index and both lists, and frees
    /// the slot. Returns the key.
    fn remove_slot(&mut self, slot: u32) -> Option<CacheKey> {
        self.last_hit = NIL;
        let key = self.keys.get(slot as usize)?.as_ref()?;
        let (p, _) = self.find(key)?;
        self.unplace(p);
        let queued = self.meta.get(slot as usize).is_some_and(|m| m.queued);
        self.unlink(List::Lru, slot);
        if queued {
            self.unlink(List::Pending, slot);
        }
        if let Some(v) = self.values.get_mut(slot as usize) {
            *v = None;
        }
        if let Some(m) = self.meta(slot) {
            *m = Meta::EMPTY;
        }
        self.len -= 1;
        let _ = self.free.push(slot);
        self.keys.get_mut(slot as usize)?.take()
    }
}
