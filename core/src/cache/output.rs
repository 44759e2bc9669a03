//! What the cache hands back: a lookup's [`Hit`] and its [`Freshness`], and
//! the [`Event`]s an adapter may log or count.

use embassy_time::Instant;

use super::CacheKey;

/// Whether a lookup's answer is within its TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Freshness {
    /// Within its TTL.
    Fresh,
    /// Past its TTL but within the stale grace; only [`Cache::get_stale`](super::Cache::get_stale)
    /// returns it.
    Stale,
}

/// A lookup's answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit<'a, V> {
    /// The cached value.
    pub value: &'a V,
    /// Fresh, or stale (only from [`Cache::get_stale`](super::Cache::get_stale)).
    pub freshness: Freshness,
    /// When the value stops (or stopped) being fresh.
    pub expires_at: Instant,
}

/// Which invalidation removed entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidationScope {
    /// One key ([`Cache::invalidate`](super::Cache::invalidate)).
    Key,
    /// Every key of an exchange ([`Cache::invalidate_exchange`](super::Cache::invalidate_exchange)).
    Exchange,
    /// Every entry naming a proxy ([`Cache::invalidate_proxy`](super::Cache::invalidate_proxy)).
    Proxy,
    /// Everything ([`Cache::invalidate_all`](super::Cache::invalidate_all)).
    All,
}

/// Something an adapter may log or count; pulled with [`Cache::poll_event`](super::Cache::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The least recently used entry made room for a new key.
    Evicted {
        /// The key that went.
        key: CacheKey,
    },
    /// A background refresh was scheduled; the key comes out of
    /// [`Cache::poll_refresh`](super::Cache::poll_refresh).
    RefreshScheduled {
        /// The key to refresh.
        key: CacheKey,
        /// `true` when scheduled for a warm key by [`Cache::handle_timeout`](super::Cache::handle_timeout),
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
