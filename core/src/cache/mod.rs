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
//!
//! # Where each concept lives
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | [`Cache`] itself: construction, lookups, insertion, events |
//! | `invalidate.rs` | removing entries: by key, exchange, proxy, or all |
//! | `key.rs` | [`CacheKey`] and its borrowed view [`CacheKeyRef`], and how a key is hashed |
//! | `value.rs` | [`CacheValue`]: what the cache needs to know about a value |
//! | `config.rs` | [`CacheConfig`] and its checks |
//! | `output.rs` | what lookups and the event queue return: [`Hit`], [`Freshness`], [`Event`] |
//! | `refresh.rs` | refresh-ahead and warm keys: [`Cache::poll_refresh`], [`Cache::handle_timeout`] |
//! | `storage.rs` | the slots' bookkeeping: recency and pending lists, the open-addressed key index |

mod config;
mod invalidate;
mod key;
mod output;
mod refresh;
mod storage;
mod value;

pub use config::CacheConfig;
pub use key::{CacheKey, CacheKeyRef};
pub use output::{Event, Freshness, Hit, InvalidationScope};
pub use value::CacheValue;

use core::fmt;

use embassy_time::{Duration, Instant};

use key::hash_key;
use refresh::WarmState;
use storage::{Ends, Link, List, Meta, NIL, Pos};

use crate::storage::{Inline, Storage};

/// Most keys [`CacheConfig::warm_keys`] can hold.
pub const MAX_WARM_KEYS: usize = 16;

/// Default of the `EVENTS` capacity: events kept until [`Cache::poll_event`]
/// takes them. When the queue is full the oldest event is dropped and counted
/// in [`Cache::dropped_events`]; with this default, a caller that drains
/// events after every call never loses one (no single call produces more
/// than [`MAX_WARM_KEYS`] events).
pub const EVENT_QUEUE_LEN: usize = 32;

// ---------------------------------------------------------------- cache

/// A fixed-capacity response cache for `N` keys (a power of two, 2 to 65 536;
/// anything else is a compile-time error), with least-recently-used eviction.
///
/// A lookup costs the same at any size: a hash of the key, a probe in an
/// open-addressed index from keys to slots, and a constant number of link
/// updates in an intrusive recency list over the fixed array of `N` slots.
/// `V` is usually [`ProxyResponse`](crate::model::ProxyResponse) or a small struct around it
/// ([`CacheValue`]).
///
/// Its arrays of `N` slots live where `St` says ([`storage`](crate::storage)):
/// inline by default, so that `Cache<ProxyResponse, 4096>` is a few
/// megabytes and belongs in a `static`; on the heap with
/// [`Boxed`](crate::storage::Boxed), so that it can be built on any thread.
/// `EVENTS` is the room for events not yet taken (default
/// [`EVENT_QUEUE_LEN`]).
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
pub struct Cache<V, const N: usize, St: Storage = Inline, const EVENTS: usize = EVENT_QUEUE_LEN> {
    /// From key hash to slot: `2N` positions, linear probing.
    table: St::Array<[Pos; 2], N>,
    /// Slot-indexed: the keys, the values, their timing, their recency and
    /// pending links.
    keys: St::Array<Option<CacheKey>, N>,
    values: St::Array<Option<V>, N>,
    len: usize,
    meta: St::Array<Meta, N>,
    links: St::Array<Link, N>,
    pending_links: St::Array<Link, N>,
    lru: Ends,
    pending: Ends,
    /// Slots never used yet start here; released slots go to `free`.
    unused: u32,
    free: heapless::Vec<u32, N>,
    config: CacheConfig,
    /// Parallel to `config.warm_keys`.
    warm: heapless::Vec<WarmState, MAX_WARM_KEYS>,
    events: heapless::Deque<Event, EVENTS>,
    dropped_events: u64,
    /// Slot of the most recent successful lookup, until the cache changes.
    last_hit: u32,
}

impl<V, const N: usize, St: Storage, const EVENTS: usize> fmt::Debug for Cache<V, N, St, EVENTS> {
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

impl<V: CacheValue, const N: usize, St: Storage, const EVENTS: usize> Cache<V, N, St, EVENTS> {
    const CHECK_N: () = assert!(
        N >= 2 && N <= 65_536 && N.is_power_of_two(),
        "Cache<V, N>: N must be a power of two from 2 to 65536 (e.g. 16, 256, 4096)"
    );

    /// Positions in the index, minus one: the index has `2N` positions.
    const MASK: usize = 2 * N - 1;

    /// An empty cache, or the first problem with `config`.
    pub fn new(config: CacheConfig) -> Result<Self, crate::ValidationError> {
        config.validate()?;
        Ok(Self::assemble(config))
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
            table: St::array(),
            keys: St::array(),
            values: St::array(),
            len: 0,
            meta: St::array(),
            links: St::array(),
            pending_links: St::array(),
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
}
