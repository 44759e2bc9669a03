//! The service side: an inventory of proxies, selection strategies, health
//! scoring from feedback, cool-downs and ejection — the decisions of the
//! reference proxy service, as a sans-IO state machine ([`Pool`]).
//!
//! # Health and eligibility
//!
//! * Feedback moves two moving averages per proxy (weight
//!   [`PoolConfig::ewma_alpha`]): the success rate and the connect latency.
//!   The health score is `success rate × min(1, latency_target / latency)`.
//! * Only failures that are the proxy's fault count against it:
//!   `proxy_connect`, `proxy_auth`, `tunnel_refused` and `timeout` (a
//!   `timeout` event without a category counts as `timeout`).
//! * A failure without a category (what a client that speaks only the
//!   published API sends: `success: false` with free-text `error_details`)
//!   takes the category its `error_details` name, by the fixed table of
//!   [`category_from_details`] (`timed out` → `timeout`, `connection
//!   refused` → `proxy_connect`, `407` → `proxy_auth`, `451` →
//!   `geo_blocked`, `429` → `rate_limited`, ...), and then counts as that
//!   category does. When the text names none (or there is no text), the
//!   failure counts against the proxy, and appears as `other` in its recent
//!   failures. Only an explicit category can say a failure is not the
//!   proxy's fault.
//! * `geo_blocked` bars the proxy for that exchange for
//!   [`PoolConfig::geo_block_cooldown`]; when the proxy has exactly one
//!   region, that region is barred for the exchange as well (every proxy
//!   whose regions are all barred is skipped for it). `rate_limited` bars the
//!   proxy for that exchange for [`PoolConfig::rate_limit_cooldown`].
//!   `target_tls`, `target_http_5xx` and `other` failures do not count
//!   against the proxy; they only appear in its recent failures.
//! * The pool tracks at most [`MAX_EXCHANGES`] exchanges by name at once:
//!   those the allow-lists name and those with a live cool-down. An
//!   exchange whose cool-downs are over and that no allow-list names gives
//!   its entry up for another, so feedback naming many exchanges cannot
//!   fill the table for good. A cool-down that finds every entry held by a
//!   live cool-down or an allow-list is not recorded
//!   ([`Event::CoolDownDropped`]). Allow-lists always come first:
//!   [`Pool::replace_inventory`] ends the cool-downs of exchanges no
//!   allow-list names when it needs their entries, those that end first
//!   first ([`Event::CoolDownsEnded`]).
//! * A proxy is ejected after [`PoolConfig::eject_consecutive_failures`]
//!   proxy-fault failures in a row, or when (after
//!   [`PoolConfig::eject_min_samples`] samples) its success rate is
//!   [`PoolConfig::eject_success_rate_gap`] below the pool's mean. The n-th
//!   ejection lasts `n × eject_base`, at most `eject_max`. At most
//!   [`PoolConfig::max_ejected_percent`] of the inventory (rounded down) is
//!   ejected at once. With [`PoolConfig::probe_interval`] set, an ejected
//!   proxy is probed (a TCP connect, emitted by [`Pool::poll_transmit`]) and
//!   comes back at the first probe that reaches it.
//! * Open connections are leases: `connect_start` opens one, `disconnect`,
//!   `failure` or `timeout` closes the oldest, and a lease nobody closes
//!   expires after [`PoolConfig::lease_ttl`] (to within a third of it). The
//!   count never goes below zero: a close with no open lease is ignored.
//!
//! A proxy is *eligible* for a request when it is in the inventory, enabled,
//! not ejected, under its connection limit, allowed for the exchange and the
//! connection type, and not barred for the exchange. Among eligible proxies,
//! those in the requested region are preferred; any other region is used
//! only when none of those is eligible.
//!
//! # Events
//!
//! Events wait in a queue of 64 until [`Pool::poll_event`] takes them.
//! Timers never push an event out: a timer that would emit an event (a
//! lease expiring, an ejection ending, a reload's restore for the share
//! limit) is processed only while the queue has room for its events and
//! one more; the rest stay due, and [`Pool::poll_timeout`] stays at or
//! before `now`. So many timers ending at once (hundreds of ejections) are
//! delivered in turns: drain [`Pool::poll_event`], call
//! [`Pool::handle_timeout`] again, until [`Pool::poll_timeout`] is after
//! `now`. Until then, the timers held back act late: a proxy stays ejected,
//! a lease open or a cool-down on a little longer, never the other way.
//!
//! Every other call emits at most one event of its own
//! ([`Pool::replace_inventory`]: one per exchange whose cool-downs it ends,
//! and it keeps room for them before it processes timers). A caller that
//! drains the events after every call, as the [call order](Pool#call-order)
//! says, never loses one; one that lets more than 64 pile up loses the
//! oldest ([`Pool::events_dropped`]), and its timers wait until it drains.
//!
//! # Cost and size
//!
//! Selection uses an aggregate tree over the slots: every node keeps, for
//! the proxies below it, how many are available, the sum of their effective
//! weights, their smallest connection count, and the union of their regions,
//! usable exchanges and connection types. Round-robin and random pick by
//! rank, weighted by prefix sum, least-connections by a bounded
//! branch-and-bound on the smallest count; each descends one path,
//! `O(log N)`, skipping every subtree with no candidate for the request.
//!
//! The limits, stated plainly:
//!
//! * The unions are per property, so a subtree can look promising (it has a
//!   proxy in the requested region *and* one allowed for the exchange)
//!   without holding a proxy that is both. A search then walks leaves until
//!   it finds one; in the worst case (every proxy of the region excluded by
//!   an allow-list or a geo-block) that is `O(N)`.
//! * Least-connections, once it has a candidate, enters at most 256 more
//!   tree nodes looking for a smaller count. When the least-loaded proxies
//!   all fail the request's filters, the answer is the best proxy seen
//!   within that budget rather than the global minimum.
//! * `sticky` computes rendezvous hashing over all eligible proxies (`O(N)`)
//!   the first time a (client, exchange) pair asks, when its choice is no
//!   longer eligible, or when its choice is outside the requested region;
//!   within its TTL the pair is answered from a table in `O(1)`.
//!
//! Feedback and timers cost `O(log N)` each, with one exception: a cool-down
//! for an exchange the pool does not track yet, when every entry of the
//! exchange table is taken, first sweeps the table for entries whose
//! cool-downs are over (`O(N)`), at most once each time a cool-down may
//! have ended or been pushed out. [`Pool::replace_inventory`] costs
//! `O(N log N)`.
//!
//! The pool is one value of `size_of::<Pool<N, S>>()` bytes: 1,118 bytes
//! per proxy on x86-64 (560 of them the proxy's URL with its credentials,
//! whose bounds come from the model; 96 the two tree nodes; 52 the lookup
//! indexes and the inventory order), plus about 36 KiB of fixed state (event queue, sticky table of
//! 256 entries, intern tables). A pool of 10,000 proxies is about 11 MiB:
//! build it in a `Box` (or a `static`) on std, on a thread whose stack can
//! hold it while it is constructed (see `benches/pool.rs`).

mod classify;
mod config;
mod inventory;
mod status;
mod tree;

pub use classify::category_from_details;
pub use config::{ConfigError, ExchangePolicy, MAX_EXCHANGE_POLICIES, PoolConfig, StrategyKind};
pub use inventory::{
    ConnectionTypes, InventoryChange, InventoryError, MAX_ALLOWED_EXCHANGES, MAX_EXCHANGES,
    MAX_PROXY_REGIONS, MAX_REGIONS, ProxySpec,
};
pub use status::{
    EjectReason, Event, FailureCounts, FeedbackError, PoolStats, Probe, ProbeToken, ProxyState,
    ProxyStatus, RestoreCause,
};

use core::fmt;

use embassy_time::{Duration, Instant};
use heapless::index_map::FnvIndexMap;

use crate::model::{
    ConnectionType, ErrorCategory, ExchangeId, FeedbackEvent, HealthScore, ProxyFeedback, ProxyId,
    ProxyRequest, ProxyResponse, ProxyUrl, Region, ResponseMetadata, Strategy, TtlSeconds,
};
use status::{CATEGORIES, category_index};
use tree::{Agg, Tree, Want};

/// Bit of the exchanges not tracked by name: only proxies without an
/// allow-list may serve them.
const OTHER_EXCHANGE: u64 = 1 << MAX_EXCHANGES;
/// Most (exchange, region) bars from geo-blocks at once.
const MAX_REGION_BARS: usize = 32;
/// Most per-exchange cool-downs one proxy holds at once; a new one replaces
/// the one that ends first.
const BARS_PER_PROXY: usize = 4;
/// Lease buckets per proxy (a bucket spans a third of the lease TTL).
const LEASE_BUCKETS: usize = 4;
/// Events kept until polled. Timers wait for room (see the module docs);
/// the other calls' own events push the oldest out when nobody polls.
const EVENT_QUEUE: usize = 64;
/// Room a timer leaves in the event queue besides its own events: the one
/// event of the call that processes it (feedback, a probe result).
const TIMER_RESERVE: usize = 1;
/// Probes waiting for `poll_transmit`.
const PROBE_QUEUE: usize = 16;
const NO_REGION: u8 = u8::MAX;

// ------------------------------------------------------------------ hashing

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The splitmix64 finaliser: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn id_hash(id: &ProxyId) -> u64 {
    mix(fnv(FNV_OFFSET, id.as_str().as_bytes()))
}

fn endpoint_hash(u: &ProxyUrl) -> u64 {
    let h = fnv(FNV_OFFSET, u.scheme().as_str().as_bytes());
    let h = fnv(h, b"://");
    let h = fnv(h, u.host().as_bytes());
    mix(fnv(h, &u.port().to_le_bytes()))
}

fn sticky_key(req: &ProxyRequest) -> u64 {
    let h = fnv(FNV_OFFSET, req.client_id.as_str().as_bytes());
    let h = fnv(h, &[0xff]);
    mix(fnv(h, req.exchange_id.as_str().as_bytes()))
}

const fn ctype_bit(t: ConnectionType) -> u8 {
    match t {
        ConnectionType::Http => 1,
        ConnectionType::Websocket => 2,
    }
}

fn is_proxy_fault(c: ErrorCategory) -> bool {
    matches!(
        c,
        ErrorCategory::ProxyConnect
            | ErrorCategory::ProxyAuth
            | ErrorCategory::TunnelRefused
            | ErrorCategory::Timeout
    )
}

/// The category a failure counts as, and whether it counts against the
/// proxy. Without a category: a `timeout` event is a `timeout`; otherwise
/// `error_details` may name one ([`category_from_details`]); a failure
/// nothing categorises counts against the proxy, as `other`.
fn failure_category(feedback: &ProxyFeedback) -> (ErrorCategory, bool) {
    let category = match (feedback.error_category, feedback.event) {
        (Some(c), _) => c,
        (None, FeedbackEvent::Timeout) => ErrorCategory::Timeout,
        (None, _) => match feedback
            .error_details
            .as_ref()
            .and_then(|d| category_from_details(d.as_str()))
        {
            Some(c) => c,
            None => return (ErrorCategory::Other, true),
        },
    };
    (category, is_proxy_fault(category))
}

// ------------------------------------------------------------------ slots

#[derive(Debug, Clone, Copy, Default)]
struct Lease {
    start: u64,
    count: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bar {
    exchange: u8,
    until: u64,
}

/// One proxy: its inventory entry (compacted to bit masks) and its state.
#[derive(Debug, Clone)]
struct Slot {
    occupied: bool,
    enabled: bool,
    generation: u32,
    id: ProxyId,
    url: ProxyUrl,
    id_hash: u64,
    regions: u32,
    region_list: [u8; MAX_PROXY_REGIONS],
    allowed: u64,
    ctypes: u8,
    weight: u16,
    max_conns: u32,
    // health
    success: f32,
    latency: Option<f32>,
    samples: u32,
    consecutive: u16,
    // leases and cool-downs
    leases: [Lease; LEASE_BUCKETS],
    bars: [Option<Bar>; BARS_PER_PROXY],
    barred: u64,
    // ejection
    ejected_until: Option<u64>,
    ejections: u32,
    probe_at: Option<u64>,
    /// A reload shrank the pool: the ejection ends at `ejected_until` (its
    /// time) for the share limit ([`RestoreCause::ShareLimit`]).
    share_restore: bool,
    // recent failures
    window_start: u64,
    fail_cur: [u16; CATEGORIES],
    fail_prev: [u16; CATEGORIES],
}

impl Slot {
    fn open(&self) -> u32 {
        self.leases
            .iter()
            .fold(0u32, |a, l| a.saturating_add(l.count))
    }

    fn available(&self) -> bool {
        self.occupied
            && self.enabled
            && self.ejected_until.is_none()
            && self.open() < self.max_conns
    }

    fn health(&self, cfg: &PoolConfig) -> f32 {
        let target = cfg.latency_target_ms as f32;
        let factor = match self.latency {
            Some(l) if l > target => target / l,
            _ => 1.0,
        };
        let h = self.success * factor;
        if h.is_nan() { 0.0 } else { h.clamp(0.0, 1.0) }
    }

    fn deadline(&self, lease_ttl: u64) -> u64 {
        let mut d = u64::MAX;
        for l in &self.leases {
            if l.count > 0 {
                d = d.min(l.start.saturating_add(lease_ttl));
            }
        }
        for b in self.bars.iter().flatten() {
            d = d.min(b.until);
        }
        if let Some(u) = self.ejected_until {
            d = d.min(u);
        }
        if let Some(p) = self.probe_at {
            d = d.min(p);
        }
        d
    }

    fn leases_due(&self, now: u64, ttl: u64) -> bool {
        self.leases
            .iter()
            .any(|l| l.count > 0 && l.start.saturating_add(ttl) <= now)
    }

    fn expire_leases(&mut self, now: u64, ttl: u64) -> u32 {
        let mut expired = 0u32;
        for l in &mut self.leases {
            if l.count > 0 && l.start.saturating_add(ttl) <= now {
                expired = expired.saturating_add(l.count);
                *l = Lease::default();
            }
        }
        expired
    }

    fn add_lease(&mut self, now: u64, ttl: u64) {
        let width = (ttl / 3).max(1);
        let newest = self
            .leases
            .iter_mut()
            .filter(|l| l.count > 0)
            .max_by_key(|l| l.start);
        if let Some(l) = newest
            && now < l.start.saturating_add(width)
        {
            l.count = l.count.saturating_add(1);
            return;
        }
        if let Some(l) = self.leases.iter_mut().find(|l| l.count == 0) {
            *l = Lease {
                start: now,
                count: 1,
            };
        } else if let Some(l) = self.leases.iter_mut().max_by_key(|l| l.start) {
            // Only reachable when time runs backwards: merge into the newest.
            l.count = l.count.saturating_add(1);
        }
    }

    /// Closes the oldest lease; `false` when none is open.
    fn release_lease(&mut self) -> bool {
        match self
            .leases
            .iter_mut()
            .filter(|l| l.count > 0)
            .min_by_key(|l| l.start)
        {
            Some(l) => {
                l.count -= 1;
                true
            }
            None => false,
        }
    }

    fn expire_bars(&mut self, now: u64) {
        for b in &mut self.bars {
            if b.is_some_and(|b| b.until <= now) {
                *b = None;
            }
        }
        self.recompute_barred();
    }

    fn recompute_barred(&mut self) {
        self.barred = self
            .bars
            .iter()
            .flatten()
            .fold(0u64, |m, b| m | (1u64 << b.exchange));
    }

    /// Bars the proxy for `exchange` until `until`; returns whether that
    /// pushed out the bar of another exchange (all [`BARS_PER_PROXY`] in use).
    fn add_bar(&mut self, exchange: u8, until: u64) -> bool {
        let mut replaced = false;
        if let Some(b) = self
            .bars
            .iter_mut()
            .flatten()
            .find(|b| b.exchange == exchange)
        {
            b.until = b.until.max(until);
        } else if let Some(free) = self.bars.iter_mut().find(|b| b.is_none()) {
            *free = Some(Bar { exchange, until });
        } else if let Some(first) = self
            .bars
            .iter_mut()
            .min_by_key(|b| b.map_or(0, |b| b.until))
        {
            *first = Some(Bar { exchange, until });
            replaced = true;
        }
        self.recompute_barred();
        replaced
    }

    /// Drops every bar for an exchange in `mask`; returns whether any was.
    fn drop_bars(&mut self, mask: u64) -> bool {
        let mut dropped = false;
        for b in &mut self.bars {
            if b.is_some_and(|b| mask & (1u64 << b.exchange) != 0) {
                *b = None;
                dropped = true;
            }
        }
        if dropped {
            self.recompute_barred();
        }
        dropped
    }

    /// The exchanges this proxy's allow-list names (0 without one).
    fn allow_listed(&self) -> u64 {
        if self.allowed & OTHER_EXCHANGE == 0 {
            self.allowed
        } else {
            0
        }
    }

    fn record_success(&mut self, latency_ms: Option<u32>, alpha: f32) {
        self.success += alpha * (1.0 - self.success);
        if let Some(l) = latency_ms {
            let l = l as f32;
            self.latency = Some(match self.latency {
                Some(avg) => avg + alpha * (l - avg),
                None => l,
            });
        }
        self.samples = self.samples.saturating_add(1);
        self.consecutive = 0;
    }

    fn record_failure(&mut self, alpha: f32) {
        self.success -= alpha * self.success;
        self.samples = self.samples.saturating_add(1);
        self.consecutive = self.consecutive.saturating_add(1);
    }

    fn count_failure(&mut self, c: ErrorCategory, now: u64, window: u64) {
        self.rotate_window(now, window);
        if let Some(n) = self.fail_cur.get_mut(category_index(c)) {
            *n = n.saturating_add(1);
        }
    }

    fn rotate_window(&mut self, now: u64, window: u64) {
        if now >= self.window_start.saturating_add(window.saturating_mul(2)) {
            self.fail_cur = [0; CATEGORIES];
            self.fail_prev = [0; CATEGORIES];
            self.window_start = now;
        } else if now >= self.window_start.saturating_add(window) {
            self.fail_prev = self.fail_cur;
            self.fail_cur = [0; CATEGORIES];
            self.window_start = self.window_start.saturating_add(window);
        }
    }

    fn recent_failures(&self, now: u64, window: u64) -> FailureCounts {
        let mut out = [0u32; CATEGORIES];
        let age = now.saturating_sub(self.window_start);
        for (i, o) in out.iter_mut().enumerate() {
            let cur = u32::from(self.fail_cur.get(i).copied().unwrap_or(0));
            let prev = u32::from(self.fail_prev.get(i).copied().unwrap_or(0));
            *o = if age < window {
                cur + prev
            } else if age < window.saturating_mul(2) {
                cur
            } else {
                0
            };
        }
        FailureCounts(out)
    }
}

#[derive(Debug, Clone, Copy)]
struct RegionBar {
    exchange: u8,
    region: u8,
    until: u64,
}

#[derive(Debug, Clone, Copy)]
struct StickyEntry {
    slot: u32,
    generation: u32,
    until: u64,
}

// ------------------------------------------------------------------ the pool

/// The proxy pool of the reference service: inventory, selection, health,
/// cool-downs, ejection and probes. Sans-IO: it never reads a clock and
/// never touches a socket; the adapter passes `now` in and carries out the
/// probes it asks for.
///
/// `N` is the capacity (most proxies), `S` the number of sticky
/// (client, exchange) entries kept (a power of two, checked at compile time;
/// default 256). See the [module docs](self) for the rules, the cost of each
/// operation and the memory per proxy.
///
/// # Call order
///
/// 1. [`Pool::new`], then [`Pool::replace_inventory`] with the proxies (call
///    it again on every reload: proxies that stay keep their state).
/// 2. For each client request, [`Pool::select`] → a [`ProxyResponse`] to
///    send back (with `proxy_url: None` and the exchange's fallback policy
///    when nothing is eligible).
/// 3. For each feedback event, [`Pool::handle_feedback`].
/// 4. After any of these, drain [`Pool::poll_event`] (log and count the
///    events) and [`Pool::poll_transmit`] (run each probe, then report with
///    [`Pool::handle_probe_result`]).
/// 5. Arm a timer for [`Pool::poll_timeout`]; when it fires, call
///    [`Pool::handle_timeout`] and go to 4, until [`Pool::poll_timeout`] is
///    after `now`: timers whose events found no room in the queue wait for
///    the next turn (see [Events](self#events)). (`select` and
///    `handle_feedback` also process the timers due at their `now`, so a late
///    timer never makes a decision stale while the events are drained.)
///
/// [`Pool::proxies`] and [`Pool::stats`] give the snapshot for a status page
/// or metrics at any time.
///
/// ```
/// use embassy_time::{Duration, Instant};
/// use proxy_delegate_core::model::{
///     ConnectionType, ErrorCategory, FeedbackEvent, ProxyFeedback, ProxyRequest,
/// };
/// use proxy_delegate_core::pool::{Event, Pool, PoolConfig, ProxySpec, StrategyKind};
///
/// let config = PoolConfig {
///     strategy: StrategyKind::RoundRobin,
///     eject_consecutive_failures: 2,
///     ..PoolConfig::default()
/// };
/// let mut pool = Pool::<8>::new(config)?;
/// let t0 = Instant::from_secs(1_000);
/// pool.replace_inventory(t0, &[
///     ProxySpec::new("a".parse()?, "http://user:pw@10.0.0.1:3128".parse()?),
///     ProxySpec::new("b".parse()?, "http://user:pw@10.0.0.2:3128".parse()?),
/// ])?;
///
/// let request = ProxyRequest::new("binance".parse()?, ConnectionType::Websocket, "c1".parse()?);
/// let answer = pool.select(t0, &request);
/// let first = answer.metadata.proxy_id.clone().unwrap();
///
/// // Two proxy-fault failures eject it (the pool may eject half of its 2 proxies).
/// let failure: ProxyFeedback = serde_json::from_str(&format!(
///     r#"{{"proxy_id":"{first}","exchange_id":"binance","connection_type":"websocket",
///         "event":"failure","success":false,"error_category":"proxy_connect",
///         "timestamp":"2026-01-01T00:00:00Z","client_id":"c1"}}"#
/// ))?;
/// pool.handle_feedback(t0, &failure)?;
/// pool.handle_feedback(t0, &failure)?;
/// assert!(matches!(pool.poll_event(), Some(Event::Ejected { .. })));
///
/// // Until the ejection ends, every answer names the other proxy.
/// for _ in 0..4 {
///     assert_ne!(pool.select(t0, &request).metadata.proxy_id, Some(first.clone()));
/// }
/// let end = pool.poll_timeout().unwrap();
/// assert_eq!(end, t0 + Duration::from_secs(30));
/// pool.handle_timeout(end);
/// assert!(matches!(pool.poll_event(), Some(Event::Restored { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pool<const N: usize, const S: usize = 256> {
    config: PoolConfig,
    ttl: TtlSeconds,
    names: [Strategy; 5],
    rng: fastrand::Rng,
    cursor: u32,
    slots: heapless::Vec<Slot, N>,
    tree: Tree<N>,
    /// (id hash, slot), sorted: feedback lookup by id in `O(log N)`.
    by_id: heapless::Vec<(u64, u32), N>,
    /// (endpoint hash, slot), sorted: feedback lookup by URL.
    by_url: heapless::Vec<(u64, u32), N>,
    /// Scratch for a new inventory's ids, kept so a reload needs no stack.
    scratch: heapless::Vec<(u64, u32), N>,
    /// The slots in inventory order: a reload gives a new proxy a freed
    /// slot, and the snapshot lists proxies as the inventory does.
    order: heapless::Vec<u32, N>,
    regions: heapless::Vec<Region, MAX_REGIONS>,
    /// The exchanges tracked by name; an entry's index is its bit in the
    /// exchange masks. An entry nothing refers to any more (no allow-list of
    /// the inventory, no live cool-down) is freed (`None`) and reused.
    exchanges: heapless::Vec<Option<ExchangeId>, MAX_EXCHANGES>,
    /// No entry of `exchanges` held only by cool-downs can be free before
    /// this time (a lower bound): until then a full table is not swept again.
    exchange_sweep_at: u64,
    region_bars: heapless::Vec<RegionBar, MAX_REGION_BARS>,
    sticky: FnvIndexMap<u64, StickyEntry, S>,
    occupied: u32,
    ejected: u32,
    events: heapless::Deque<Event, EVENT_QUEUE>,
    events_dropped: u64,
    probes: heapless::Deque<ProbeToken, PROBE_QUEUE>,
}

impl<const N: usize, const S: usize> fmt::Debug for Pool<N, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("capacity", &N)
            .field("proxies", &self.occupied)
            .field("ejected", &self.ejected)
            .field("available", &self.tree.root().count)
            .field("sticky_entries", &self.sticky.len())
            .finish_non_exhaustive()
    }
}

fn ticks(d: Duration) -> u64 {
    d.as_ticks()
}

impl<const N: usize, const S: usize> Pool<N, S> {
    /// An empty pool. Fails when a [`PoolConfig`] field is out of range.
    pub fn new(config: PoolConfig) -> Result<Self, ConfigError> {
        const {
            assert!(
                N >= 1 && N <= u32::MAX as usize / 2,
                "pool capacity N must be at least 1"
            )
        };
        config.validate()?;
        let ttl =
            TtlSeconds::new(u64::from(config.ttl_seconds)).map_err(|_| ConfigError::Invalid {
                field: "ttl_seconds",
                problem: "must be between 1 and 86400 seconds",
            })?;
        let name = |k: StrategyKind| {
            Strategy::new(k.as_str()).map_err(|_| ConfigError::Invalid {
                field: "strategy",
                problem: "strategy name does not fit the model's Strategy type",
            })
        };
        let names = [
            name(StrategyKind::RoundRobin)?,
            name(StrategyKind::Random)?,
            name(StrategyKind::LeastConnections)?,
            name(StrategyKind::Weighted)?,
            name(StrategyKind::Sticky)?,
        ];
        Ok(Self {
            rng: fastrand::Rng::with_seed(config.seed),
            config,
            ttl,
            names,
            cursor: 0,
            slots: heapless::Vec::new(),
            tree: Tree::new(),
            by_id: heapless::Vec::new(),
            by_url: heapless::Vec::new(),
            scratch: heapless::Vec::new(),
            order: heapless::Vec::new(),
            regions: heapless::Vec::new(),
            exchanges: heapless::Vec::new(),
            exchange_sweep_at: 0,
            region_bars: heapless::Vec::new(),
            sticky: FnvIndexMap::new(),
            occupied: 0,
            ejected: 0,
            events: heapless::Deque::new(),
            events_dropped: 0,
            probes: heapless::Deque::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Counts over the pool.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            proxies: self.occupied,
            available: self.tree.root().count,
            ejected: self.ejected,
            max_ejected: self.max_ejected(),
        }
    }

    /// Events dropped because nobody polled them: the queue keeps the newest
    /// 64. Timers never drop one (they wait for room), so this stays 0 for a
    /// caller that drains [`Pool::poll_event`] after every call.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    fn max_ejected(&self) -> u32 {
        let share = u64::from(self.occupied) * u64::from(self.config.max_ejected_percent) / 100;
        share as u32
    }

    fn emit(&mut self, e: Event) {
        if self.events.is_full() {
            let _ = self.events.pop_front();
            self.events_dropped = self.events_dropped.saturating_add(1);
        }
        let _ = self.events.push_back(e);
    }

    fn leaf_of(&self, s: usize) -> Agg {
        let Some(slot) = self.slots.get(s) else {
            return Agg::EMPTY;
        };
        if !slot.occupied {
            return Agg::EMPTY;
        }
        let mut a = Agg {
            deadline: slot.deadline(ticks(self.config.lease_ttl)),
            ..Agg::EMPTY
        };
        if slot.samples >= self.config.eject_min_samples {
            a.ssum = slot.success;
            a.scnt = 1;
        }
        if slot.available() {
            a.count = 1;
            a.wsum = f32::from(slot.weight) * slot.health(&self.config).max(0.01);
            a.minconn = slot.open();
            a.regions = slot.regions;
            a.exch = slot.allowed & !slot.barred;
            a.ctypes = slot.ctypes;
        }
        a
    }

    fn refresh(&mut self, s: usize) {
        let a = self.leaf_of(s);
        self.tree.set(s, a);
    }

    fn exchange_index(&self, e: &ExchangeId) -> Option<u8> {
        self.exchanges
            .iter()
            .position(|x| x.as_ref() == Some(e))
            .map(|i| i as u8)
    }

    fn region_index(&self, r: &Region) -> Option<u8> {
        self.regions.iter().position(|x| x == r).map(|i| i as u8)
    }

    fn barred_regions(&self, exchange: u8, now: u64) -> u32 {
        self.region_bars
            .iter()
            .filter(|b| b.exchange == exchange && b.until > now)
            .fold(0, |m, b| m | (1u32 << b.region))
    }

    // -------------------------------------------------------------- selection

    /// Picks a proxy for `request` (processing the timers due at `now`
    /// first). When nothing is eligible the answer has no `proxy_url` and
    /// carries the exchange's fallback policy.
    pub fn select(&mut self, now: Instant, request: &ProxyRequest) -> ProxyResponse {
        self.handle_timeout(now);
        let t = now.as_ticks();
        let policy = self.config.policy_for(&request.exchange_id);
        let kind = policy
            .and_then(|p| p.strategy)
            .unwrap_or(self.config.strategy);
        let fallback_policy = policy.map_or(self.config.fallback_policy, |p| p.fallback_policy);
        let ttl = policy.and_then(|p| p.ttl).unwrap_or(self.ttl);

        let exchange = self.exchange_index(&request.exchange_id);
        let barred = exchange.map_or(0, |e| self.barred_regions(e, t));
        let region_bit = request
            .region
            .as_ref()
            .and_then(|r| self.region_index(r))
            .map(|i| 1u32 << i)
            .filter(|b| b & barred == 0);
        let any = Want {
            exch: exchange.map_or(OTHER_EXCHANGE, |e| 1u64 << e),
            ctype: ctype_bit(request.connection_type),
            region: 0,
        };

        let pick = if kind == StrategyKind::Sticky {
            self.pick_sticky(t, request, any, region_bit, barred)
        } else {
            region_bit
                .and_then(|region| self.pick(kind, Want { region, ..any }, barred))
                .or_else(|| self.pick(kind, any, barred))
        };

        let strategy = self.names[kind.index() % 5].clone();
        let Some(slot) = pick.and_then(|s| self.slots.get(s)) else {
            return ProxyResponse {
                proxy_url: None,
                strategy,
                ttl_seconds: ttl,
                fallback_policy,
                metadata: ResponseMetadata::default(),
            };
        };
        let region = match (region_bit, &request.region) {
            (Some(bit), Some(r)) if slot.regions & bit != 0 => Some(r.clone()),
            _ => slot
                .region_list
                .first()
                .and_then(|i| self.regions.get(usize::from(*i)))
                .cloned(),
        };
        ProxyResponse {
            proxy_url: Some(slot.url.clone()),
            strategy,
            ttl_seconds: ttl,
            fallback_policy,
            metadata: ResponseMetadata {
                proxy_id: Some(slot.id.clone()),
                region,
                health_score: HealthScore::new(slot.health(&self.config)).ok(),
            },
        }
    }

    fn pick(&mut self, kind: StrategyKind, want: Want, barred: u32) -> Option<usize> {
        let count = self.tree.root().count;
        if count == 0 {
            return None;
        }
        let slots = &self.slots;
        // Without region bars every leaf that passes `may` is eligible:
        // no need to touch the slot.
        let mut ok = |s: usize| barred == 0 || slots.get(s).is_some_and(|x| region_ok(x, barred));
        match kind {
            StrategyKind::RoundRobin | StrategyKind::Random => {
                let k = if kind == StrategyKind::Random {
                    self.rng.u32(0..count)
                } else {
                    let k = self.cursor % count;
                    self.cursor = self.cursor.wrapping_add(1);
                    k
                };
                self.tree
                    .by_rank(k, &want, &mut ok)
                    .or_else(|| self.tree.by_rank(0, &want, &mut ok))
            }
            StrategyKind::LeastConnections => {
                let k = self.cursor % count;
                self.cursor = self.cursor.wrapping_add(1);
                self.tree.least(k, &want, &mut ok)
            }
            StrategyKind::Weighted => {
                let target = self.rng.f32() * self.tree.root().wsum;
                self.tree
                    .by_weight(target, &want, &mut ok)
                    .or_else(|| self.tree.by_weight(0.0, &want, &mut ok))
                    .or_else(|| self.tree.by_rank(0, &want, &mut ok))
            }
            StrategyKind::Sticky => self.rendezvous(0, want, barred),
        }
    }

    fn rendezvous(&self, key: u64, want: Want, barred: u32) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        self.tree.each(&want, &mut |s| {
            if let Some(slot) = self.slots.get(s)
                && region_ok(slot, barred)
            {
                let score = mix(key ^ slot.id_hash);
                if best.is_none_or(|(b, _)| score > b) {
                    best = Some((score, s));
                }
            }
        });
        best.map(|(_, s)| s)
    }

    fn pick_sticky(
        &mut self,
        t: u64,
        request: &ProxyRequest,
        any: Want,
        region_bit: Option<u32>,
        barred: u32,
    ) -> Option<usize> {
        let key = sticky_key(request);
        if let Some(e) = self.sticky.get(&key) {
            let s = e.slot as usize;
            let valid = e.until > t
                && self
                    .slots
                    .get(s)
                    .is_some_and(|x| x.generation == e.generation && region_ok(x, barred))
                && any.may(self.tree.leaf(s));
            // Region affinity comes first: a choice outside the requested
            // region stands only while no proxy in the region is eligible.
            let in_region = region_bit.is_none_or(|bit| {
                self.slots.get(s).is_some_and(|x| x.regions & bit != 0)
                    || self
                        .rendezvous(key, Want { region: bit, ..any }, barred)
                        .is_none()
            });
            if valid && in_region {
                return Some(s);
            }
        }
        let pick = region_bit
            .and_then(|region| self.rendezvous(key, Want { region, ..any }, barred))
            .or_else(|| self.rendezvous(key, any, barred))?;
        let entry = StickyEntry {
            slot: pick as u32,
            generation: self.slots.get(pick).map_or(0, |x| x.generation),
            until: t.saturating_add(ticks(self.config.sticky_ttl)),
        };
        if self.sticky.is_full() && !self.sticky.contains_key(&key) {
            self.sticky.retain(|_, e| e.until > t);
            if self.sticky.is_full() {
                let oldest = self
                    .sticky
                    .iter()
                    .min_by_key(|(_, e)| e.until)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    let _ = self.sticky.swap_remove(&k);
                }
            }
        }
        let _ = self.sticky.insert(key, entry);
        Some(pick)
    }

    // -------------------------------------------------------------- feedback

    fn find_slot(
        &self,
        id: Option<&ProxyId>,
        url: Option<&ProxyUrl>,
    ) -> Result<usize, FeedbackError> {
        if id.is_none() && url.is_none() {
            return Err(FeedbackError::NoProxy);
        }
        if let Some(id) = id {
            let h = id_hash(id);
            let start = self.by_id.partition_point(|e| e.0 < h);
            for &(eh, s) in self.by_id.get(start..).unwrap_or(&[]) {
                if eh != h {
                    break;
                }
                if self.slots.get(s as usize).is_some_and(|x| &x.id == id) {
                    return Ok(s as usize);
                }
            }
        }
        if let Some(url) = url {
            let h = endpoint_hash(url);
            let start = self.by_url.partition_point(|e| e.0 < h);
            for &(eh, s) in self.by_url.get(start..).unwrap_or(&[]) {
                if eh != h {
                    break;
                }
                if self
                    .slots
                    .get(s as usize)
                    .is_some_and(|x| x.url.same_proxy(url))
                {
                    return Ok(s as usize);
                }
            }
        }
        Err(FeedbackError::UnknownProxy)
    }

    /// Applies one feedback event (processing the timers due at `now` first).
    /// The proxy is found by `proxy_id`, else by the URL's scheme, host and
    /// port. See the [module docs](self) for what each event and category does.
    pub fn handle_feedback(
        &mut self,
        now: Instant,
        feedback: &ProxyFeedback,
    ) -> Result<(), FeedbackError> {
        self.handle_timeout(now);
        let s = self.find_slot(feedback.proxy_id.as_ref(), feedback.proxy_url.as_ref())?;
        let t = now.as_ticks();
        let lease_ttl = ticks(self.config.lease_ttl);
        let alpha = self.config.ewma_alpha;
        let window = ticks(self.config.failure_window);
        let Some(slot) = self.slots.get_mut(s) else {
            return Err(FeedbackError::UnknownProxy);
        };
        match feedback.event {
            FeedbackEvent::ConnectStart => {
                let expired = slot.expire_leases(t, lease_ttl);
                slot.add_lease(t, lease_ttl);
                if expired > 0 {
                    let proxy = slot.id.clone();
                    self.emit(Event::LeasesExpired {
                        proxy,
                        count: expired,
                    });
                }
            }
            FeedbackEvent::Disconnect => {
                slot.release_lease();
            }
            FeedbackEvent::Success => slot.record_success(feedback.latency_ms, alpha),
            FeedbackEvent::Failure | FeedbackEvent::Timeout => {
                slot.release_lease();
                let (category, proxy_fault) = failure_category(feedback);
                slot.count_failure(category, t, window);
                if proxy_fault {
                    slot.record_failure(alpha);
                    self.refresh(s);
                    self.maybe_eject(s, t);
                } else if category == ErrorCategory::GeoBlocked {
                    let until = t.saturating_add(ticks(self.config.geo_block_cooldown));
                    self.cool_down(s, &feedback.exchange_id, category, t, until);
                } else if category == ErrorCategory::RateLimited {
                    let until = t.saturating_add(ticks(self.config.rate_limit_cooldown));
                    self.cool_down(s, &feedback.exchange_id, category, t, until);
                }
            }
        }
        self.refresh(s);
        Ok(())
    }

    /// The index of `e`, taking a free entry of the table if it is new;
    /// `None` when the table is full.
    fn intern_exchange(&mut self, e: &ExchangeId) -> Option<u8> {
        if let Some(i) = self.exchange_index(e) {
            return Some(i);
        }
        if let Some((i, free)) = self
            .exchanges
            .iter_mut()
            .enumerate()
            .find(|(_, x)| x.is_none())
        {
            *free = Some(e.clone());
            return Some(i as u8);
        }
        self.exchanges.push(Some(e.clone())).ok()?;
        Some((self.exchanges.len() - 1) as u8)
    }

    /// Free entries of the exchange table.
    fn free_exchange_entries(&self) -> usize {
        MAX_EXCHANGES - self.exchanges.iter().filter(|x| x.is_some()).count()
    }

    /// The index of `e` for a cool-down at `t`. When the table is full, it
    /// is swept first (at most once per time a cool-down-only entry may
    /// have become free), so entries of expired cool-downs are reused.
    fn intern_for_cool_down(&mut self, e: &ExchangeId, t: u64) -> Option<u8> {
        if let Some(i) = self.exchange_index(e) {
            return Some(i);
        }
        if self.free_exchange_entries() == 0 && t >= self.exchange_sweep_at {
            let allow = self.slots_allow_listed();
            self.sweep_exchanges(t, allow);
        }
        self.intern_exchange(e)
    }

    /// The exchanges named by the allow-list of any proxy of the inventory.
    fn slots_allow_listed(&self) -> u64 {
        self.slots
            .iter()
            .filter(|x| x.occupied)
            .fold(0, |m, x| m | x.allow_listed())
    }

    /// Frees every entry of the exchange table that neither `allow` (the
    /// allow-listed exchanges) nor a live cool-down (a proxy's bar or a
    /// region bar ending after `t`) refers to. Returns, per entry, when its
    /// last live cool-down ends (0: none), and sets `exchange_sweep_at`.
    /// `O(N)`.
    fn sweep_exchanges(&mut self, t: u64, allow: u64) -> [u64; MAX_EXCHANGES] {
        let mut ends = [0u64; MAX_EXCHANGES];
        let mut note = |exchange: u8, until: u64| {
            if until > t
                && let Some(end) = ends.get_mut(usize::from(exchange))
            {
                *end = (*end).max(until);
            }
        };
        for slot in self.slots.iter().filter(|x| x.occupied) {
            for b in slot.bars.iter().flatten() {
                note(b.exchange, b.until);
            }
        }
        for b in &self.region_bars {
            note(b.exchange, b.until);
        }
        let mut unused = 0u64;
        let mut next = u64::MAX;
        for (i, (x, end)) in self.exchanges.iter().zip(ends).enumerate() {
            let bit = 1u64 << i;
            if x.is_none() || allow & bit != 0 {
                continue;
            }
            if end == 0 {
                unused |= bit;
            } else {
                next = next.min(end);
            }
        }
        self.free_exchanges(unused);
        self.exchange_sweep_at = next;
        ends
    }

    /// Frees the entries of the exchange table in `mask` and drops every
    /// bar that refers to one. No allow-list may name them.
    fn free_exchanges(&mut self, mask: u64) {
        if mask == 0 {
            return;
        }
        for (i, x) in self.exchanges.iter_mut().enumerate() {
            if mask & (1u64 << i) != 0 {
                *x = None;
            }
        }
        self.region_bars
            .retain(|b| mask & (1u64 << b.exchange) == 0);
        for s in 0..self.slots.len() {
            let changed = self.slots.get_mut(s).is_some_and(|x| x.drop_bars(mask));
            if changed {
                self.refresh(s);
            }
        }
    }

    /// Makes room in the exchange table for the allow-lists of `inventory`
    /// (already validated: they name at most [`MAX_EXCHANGES`] exchanges)
    /// and interns their exchanges. Entries nothing refers to any more are
    /// freed; when that is not enough, the live cool-downs of exchanges no
    /// allow-list names are ended early, those that end first first (each
    /// reported as [`Event::CoolDownsEnded`]). The allow-lists always fit.
    fn intern_allow_lists(&mut self, t: u64, inventory: &[ProxySpec]) {
        let mut allow = 0u64;
        // Distinct names not yet interned (`validate_inventory` bounds them).
        let mut new: heapless::Vec<&ExchangeId, MAX_EXCHANGES> = heapless::Vec::new();
        for e in inventory.iter().flat_map(|x| x.exchanges.iter().flatten()) {
            match self.exchange_index(e) {
                Some(i) => allow |= 1u64 << i,
                None if !new.contains(&e) => {
                    let _ = new.push(e);
                }
                None => {}
            }
        }
        let ends = self.sweep_exchanges(t, allow);
        let short = new.len().saturating_sub(self.free_exchange_entries());
        if short > 0 {
            // Every entry left that no allow-list names has a live
            // cool-down: end those that end first.
            let mut live: heapless::Vec<(u64, u8), MAX_EXCHANGES> = self
                .exchanges
                .iter()
                .zip(ends)
                .enumerate()
                .filter(|(i, (x, _))| x.is_some() && allow & (1u64 << i) == 0)
                .map(|(i, (_, end))| (end, i as u8))
                .collect();
            live.sort_unstable();
            let mut evict = 0u64;
            for &(_, i) in live.iter().take(short) {
                evict |= 1u64 << i;
                if let Some(Some(exchange)) = self.exchanges.get(usize::from(i)) {
                    let exchange = exchange.clone();
                    self.emit(Event::CoolDownsEnded { exchange });
                }
            }
            self.free_exchanges(evict);
        }
        for e in new {
            let _ = self.intern_exchange(e);
        }
    }

    fn cool_down(
        &mut self,
        s: usize,
        exchange: &ExchangeId,
        category: ErrorCategory,
        t: u64,
        until: u64,
    ) {
        let Some(e) = self.intern_for_cool_down(exchange, t) else {
            if let Some(slot) = self.slots.get(s) {
                let proxy = slot.id.clone();
                self.emit(Event::CoolDownDropped {
                    proxy,
                    exchange: exchange.clone(),
                });
            }
            return;
        };
        // The entry cannot be free before this bar ends; a bar pushed out
        // may free another entry at once.
        self.exchange_sweep_at = self.exchange_sweep_at.min(until);
        let Some(slot) = self.slots.get_mut(s) else {
            return;
        };
        if slot.add_bar(e, until) {
            self.exchange_sweep_at = t;
        }
        let proxy = slot.id.clone();
        let single_region = (category == ErrorCategory::GeoBlocked
            && slot.regions.count_ones() == 1)
            .then(|| slot.region_list.first().copied())
            .flatten()
            .filter(|r| *r != NO_REGION);
        let mut region = None;
        if let Some(r) = single_region {
            if self.bar_region(e, r, until) {
                self.exchange_sweep_at = t;
            }
            region = self.regions.get(usize::from(r)).cloned();
        }
        self.emit(Event::CooledDown {
            proxy,
            exchange: exchange.clone(),
            category,
            until: Instant::from_ticks(until),
            region,
        });
    }

    /// Bars `region` for `exchange` until `until`; returns whether that
    /// replaced another bar (the table of region bars was full).
    fn bar_region(&mut self, exchange: u8, region: u8, until: u64) -> bool {
        if let Some(b) = self
            .region_bars
            .iter_mut()
            .find(|b| b.exchange == exchange && b.region == region)
        {
            b.until = b.until.max(until);
            return false;
        }
        let bar = RegionBar {
            exchange,
            region,
            until,
        };
        if self.region_bars.is_full() {
            // Replace the bar that ends first (expired ones end first).
            if let Some(first) = self.region_bars.iter_mut().min_by_key(|b| b.until) {
                *first = bar;
            }
            true
        } else {
            let _ = self.region_bars.push(bar);
            false
        }
    }

    fn maybe_eject(&mut self, s: usize, t: u64) {
        let root = *self.tree.root();
        let mean = if root.scnt > 0 {
            root.ssum / root.scnt as f32
        } else {
            1.0
        };
        let cfg = &self.config;
        let Some(slot) = self.slots.get(s) else {
            return;
        };
        if slot.ejected_until.is_some() || !slot.enabled {
            return;
        }
        let reason = if slot.consecutive >= cfg.eject_consecutive_failures {
            EjectReason::ConsecutiveFailures
        } else if slot.samples >= cfg.eject_min_samples
            && root.scnt >= 2
            && slot.success < mean - cfg.eject_success_rate_gap
        {
            EjectReason::LowSuccessRate
        } else {
            return;
        };
        let proxy = slot.id.clone();
        if self.ejected >= self.max_ejected() {
            self.emit(Event::EjectionSuppressed { proxy, reason });
            return;
        }
        let base = ticks(self.config.eject_base);
        let max = ticks(self.config.eject_max);
        let probe = self.config.probe_interval.map(|p| ticks(p).max(1));
        let Some(slot) = self.slots.get_mut(s) else {
            return;
        };
        slot.ejections = slot.ejections.saturating_add(1);
        let until = t.saturating_add(base.saturating_mul(u64::from(slot.ejections)).min(max));
        slot.ejected_until = Some(until);
        slot.probe_at = probe.map(|p| t.saturating_add(p));
        let ejections = slot.ejections;
        self.ejected += 1;
        self.refresh(s);
        self.emit(Event::Ejected {
            proxy,
            reason,
            ejections,
            until: Instant::from_ticks(until),
        });
    }

    fn restore(&mut self, s: usize, cause: RestoreCause) {
        let root = *self.tree.root();
        let mean = if root.scnt > 0 {
            root.ssum / root.scnt as f32
        } else {
            1.0
        };
        let Some(slot) = self.slots.get_mut(s) else {
            return;
        };
        if slot.ejected_until.take().is_none() {
            return;
        }
        slot.share_restore = false;
        slot.probe_at = None;
        slot.consecutive = 0;
        slot.samples = 0;
        slot.success = slot.success.max(mean);
        let proxy = slot.id.clone();
        self.ejected = self.ejected.saturating_sub(1);
        self.refresh(s);
        self.emit(Event::Restored { proxy, cause });
    }

    // -------------------------------------------------------------- timers and probes

    /// When [`Pool::handle_timeout`] should next be called, if ever: the
    /// earliest end of an ejection, cool-down or lease, or the next probe.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let d = self.tree.root().deadline;
        (d != u64::MAX).then(|| Instant::from_ticks(d))
    }

    /// Processes the timers due at `now`: ends ejections and cool-downs,
    /// expires leases, queues due probes. `O(log N)` per due timer.
    ///
    /// Timers never push an event out of the queue: those that would emit
    /// an event wait while it has no room for it (see the [module
    /// docs](self#events)). When [`Pool::poll_timeout`] is still at or
    /// before `now` afterwards, drain [`Pool::poll_event`] and call again.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.process_timers(now.as_ticks(), TIMER_RESERVE);
    }

    /// Processes the timers due at `t` while the event queue has room for
    /// their events and `reserve` more; the others stay due.
    fn process_timers(&mut self, t: u64, reserve: usize) {
        let lease_ttl = ticks(self.config.lease_ttl);
        let probe = self.config.probe_interval.map(|p| ticks(p).max(1));
        // Each pass moves one slot's deadline past `t`; the bound is a
        // safety net, never reached.
        for _ in 0..(4 * N + 8) {
            let Some(s) = self.tree.due(t) else {
                break;
            };
            let room = EVENT_QUEUE - self.events.len();
            let Some(slot) = self.slots.get_mut(s) else {
                break;
            };
            let restore = slot.ejected_until.is_some_and(|u| u <= t);
            let emits = usize::from(slot.leases_due(t, lease_ttl)) + usize::from(restore);
            if emits > 0 && room < emits + reserve {
                // Held back until the caller drains the events.
                break;
            }
            let expired = slot.expire_leases(t, lease_ttl);
            slot.expire_bars(t);
            let proxy = slot.id.clone();
            let cause = if slot.share_restore {
                RestoreCause::ShareLimit
            } else {
                RestoreCause::Expired
            };
            let mut probe_due = false;
            if !restore && slot.probe_at.is_some_and(|p| p <= t) {
                slot.probe_at = probe.map(|p| t.saturating_add(p));
                probe_due = slot.probe_at.is_some();
            }
            let token = ProbeToken {
                slot: s as u32,
                generation: slot.generation,
            };
            if expired > 0 {
                self.emit(Event::LeasesExpired {
                    proxy,
                    count: expired,
                });
            }
            if probe_due && !self.probes.is_full() {
                let _ = self.probes.push_back(token);
            }
            if restore {
                self.restore(s, cause);
            }
            self.refresh(s);
        }
    }

    /// The next active probe to run, if any (processing the timers due at
    /// `now` first).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Probe> {
        self.handle_timeout(now);
        while let Some(token) = self.probes.pop_front() {
            let Some(slot) = self.slots.get(token.slot as usize) else {
                continue;
            };
            if slot.occupied && slot.generation == token.generation && slot.ejected_until.is_some()
            {
                return Some(Probe {
                    token,
                    target: slot.url.without_credentials(),
                });
            }
        }
        None
    }

    /// The result of a probe from [`Pool::poll_transmit`]: when `reachable`,
    /// the proxy comes back at once. Returns whether the result changed
    /// anything (a stale token, or a proxy no longer ejected, changes nothing).
    pub fn handle_probe_result(
        &mut self,
        now: Instant,
        token: ProbeToken,
        reachable: bool,
    ) -> bool {
        self.handle_timeout(now);
        let current = self.slots.get(token.slot as usize).is_some_and(|x| {
            x.occupied && x.generation == token.generation && x.ejected_until.is_some()
        });
        if current && reachable {
            self.restore(token.slot as usize, RestoreCause::Probe);
            return true;
        }
        false
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // -------------------------------------------------------------- inventory

    /// Replaces the inventory. Proxies whose id stays keep their health,
    /// leases, cool-downs and ejection state (their URL, regions, allow-lists,
    /// weight, limit and enabled flag are updated); the others are dropped or
    /// added. On error nothing changes.
    pub fn replace_inventory(
        &mut self,
        now: Instant,
        inventory: &[ProxySpec],
    ) -> Result<InventoryChange, InventoryError> {
        let t = now.as_ticks();
        let new_names = self.validate_inventory(inventory)?;
        // The timers due now, leaving room for the events of the cool-downs
        // this reload may end (at most one per exchange it adds).
        self.process_timers(t, new_names.max(TIMER_RESERVE));

        for spec in inventory {
            for r in &spec.regions {
                if self.region_index(r).is_none() {
                    let _ = self.regions.push(r.clone());
                }
            }
        }

        let mut change = InventoryChange::default();
        // Drop the proxies that are gone (`scratch` holds the new ids, sorted).
        for s in 0..self.slots.len() {
            let Some(slot) = self.slots.get(s) else {
                continue;
            };
            if !slot.occupied || self.scratch_find(inventory, &slot.id).is_some() {
                continue;
            }
            let was_ejected = slot.ejected_until.is_some();
            if let Some(slot) = self.slots.get_mut(s) {
                slot.occupied = false;
                slot.generation = slot.generation.wrapping_add(1);
                slot.ejected_until = None;
                slot.probe_at = None;
                slot.share_restore = false;
            }
            if was_ejected {
                self.ejected = self.ejected.saturating_sub(1);
            }
            self.occupied = self.occupied.saturating_sub(1);
            change.removed += 1;
        }
        // With the removed proxies gone, their cool-downs no longer hold
        // entries of the exchange table.
        self.intern_allow_lists(t, inventory);

        // Update the proxies that stay, add the new ones.
        let mut free = 0usize;
        self.order.clear();
        for spec in inventory {
            let compact = self.compact(spec);
            if let Ok(s) = self.find_slot(Some(&spec.id), None) {
                if let Some(slot) = self.slots.get_mut(s) {
                    apply_spec(slot, spec, &compact);
                    change.kept += 1;
                }
                // Capacity was checked by `validate_inventory`.
                let _ = self.order.push(s as u32);
                continue;
            }
            while self.slots.get(free).is_some_and(|x| x.occupied) {
                free += 1;
            }
            let fresh = new_slot(spec, &compact, t);
            match self.slots.get_mut(free) {
                Some(slot) => {
                    let generation = slot.generation;
                    *slot = Slot {
                        generation,
                        ..fresh
                    };
                }
                None => {
                    // Capacity was checked by `validate_inventory`.
                    let _ = self.slots.push(fresh);
                }
            }
            let _ = self.order.push(free as u32);
            free += 1;
            self.occupied += 1;
            change.added += 1;
        }

        // Rebuild the lookup indexes and the tree.
        self.by_id.clear();
        self.by_url.clear();
        for (s, slot) in self.slots.iter().enumerate() {
            if slot.occupied {
                let _ = self.by_id.push((slot.id_hash, s as u32));
                let _ = self.by_url.push((endpoint_hash(&slot.url), s as u32));
            }
        }
        self.by_id.sort_unstable();
        self.by_url.sort_unstable();
        self.scratch.clear();
        self.rebuild_tree();

        // A smaller pool may allow fewer ejected proxies: those whose
        // ejections end first end now, through the timers (so that their
        // events wait for room like any timer's). Ejections already due
        // (held back) end anyway.
        let mut ending = self
            .slots
            .iter()
            .filter(|x| x.ejected_until.is_some_and(|u| u <= t))
            .count() as u32;
        while self.ejected.saturating_sub(ending) > self.max_ejected() {
            let first = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(s, x)| x.ejected_until.filter(|u| *u > t).map(|u| (u, s)))
                .min();
            let Some((_, s)) = first else {
                break;
            };
            if let Some(slot) = self.slots.get_mut(s) {
                slot.ejected_until = Some(t);
                slot.share_restore = true;
            }
            ending += 1;
            self.refresh(s);
        }
        self.process_timers(t, TIMER_RESERVE);
        Ok(change)
    }

    fn rebuild_tree(&mut self) {
        let mut tree = core::mem::replace(&mut self.tree, Tree::new());
        tree.rebuild(|s| self.leaf_of(s));
        self.tree = tree;
    }

    fn scratch_find(&self, inventory: &[ProxySpec], id: &ProxyId) -> Option<usize> {
        let h = id_hash(id);
        let start = self.scratch.partition_point(|e| e.0 < h);
        self.scratch
            .get(start..)
            .unwrap_or(&[])
            .iter()
            .take_while(|e| e.0 == h)
            .map(|e| e.1 as usize)
            .find(|i| inventory.get(*i).is_some_and(|x| &x.id == id))
    }

    /// Checks `inventory` and fills `scratch` with its ids. Returns how
    /// many exchanges its allow-lists name that the pool does not track yet.
    fn validate_inventory(&mut self, inventory: &[ProxySpec]) -> Result<usize, InventoryError> {
        if inventory.len() > N {
            return Err(InventoryError::TooManyProxies {
                len: inventory.len(),
                max: N,
            });
        }
        // Names not yet interned, kept by reference: at most the room left.
        let mut new_regions: heapless::Vec<&Region, MAX_REGIONS> = heapless::Vec::new();
        // Every distinct exchange the allow-lists name: cool-downs give
        // way to them (see `intern_allow_lists`), so only their number counts.
        let mut allow_listed: heapless::Vec<&ExchangeId, MAX_EXCHANGES> = heapless::Vec::new();
        let region_room = MAX_REGIONS - self.regions.len();
        for spec in inventory {
            let invalid = |field, problem| InventoryError::InvalidProxy {
                id: spec.id.clone(),
                field,
                problem,
            };
            if spec.weight == 0 {
                return Err(invalid("weight", "must be at least 1"));
            }
            if !spec.connection_types.http && !spec.connection_types.websocket {
                return Err(invalid(
                    "connection_types",
                    "allows neither http nor websocket; allow at least one",
                ));
            }
            if spec.exchanges.as_ref().is_some_and(|l| l.is_empty()) {
                return Err(invalid(
                    "exchanges",
                    "is an empty allow-list; omit it to allow every exchange",
                ));
            }
            for r in &spec.regions {
                if self.region_index(r).is_none() && !new_regions.contains(&r) {
                    if new_regions.len() >= region_room {
                        return Err(InventoryError::TooManyRegions { max: MAX_REGIONS });
                    }
                    let _ = new_regions.push(r);
                }
            }
            for e in spec.exchanges.iter().flatten() {
                if !allow_listed.contains(&e) && allow_listed.push(e).is_err() {
                    return Err(InventoryError::TooManyExchanges { max: MAX_EXCHANGES });
                }
            }
        }
        self.scratch.clear();
        for (i, spec) in inventory.iter().enumerate() {
            let _ = self.scratch.push((id_hash(&spec.id), i as u32));
        }
        self.scratch.sort_unstable();
        for w in self.scratch.windows(2) {
            if let [a, b] = w
                && a.0 == b.0
                && let (Some(x), Some(y)) =
                    (inventory.get(a.1 as usize), inventory.get(b.1 as usize))
                && x.id == y.id
            {
                return Err(InventoryError::DuplicateId { id: x.id.clone() });
            }
        }
        Ok(allow_listed
            .iter()
            .filter(|e| self.exchange_index(e).is_none())
            .count())
    }

    fn compact(&self, spec: &ProxySpec) -> Compact {
        let mut regions = 0u32;
        let mut region_list = [NO_REGION; MAX_PROXY_REGIONS];
        for (r, out) in spec.regions.iter().zip(region_list.iter_mut()) {
            if let Some(i) = self.region_index(r) {
                regions |= 1 << i;
                *out = i;
            }
        }
        let allowed = match &spec.exchanges {
            None => u64::MAX,
            Some(list) => list
                .iter()
                .filter_map(|e| self.exchange_index(e))
                .fold(0u64, |m, i| m | (1u64 << i)),
        };
        Compact {
            regions,
            region_list,
            allowed,
        }
    }

    // -------------------------------------------------------------- snapshot

    /// Every proxy of the inventory with its health and state, in the
    /// order of the last [`Pool::replace_inventory`].
    pub fn proxies(&self, now: Instant) -> impl Iterator<Item = ProxyStatus<'_>> + '_ {
        let t = now.as_ticks();
        self.order
            .iter()
            .filter_map(|&s| self.slots.get(s as usize))
            .filter(|x| x.occupied)
            .map(move |x| self.status_of(x, t))
    }

    /// One proxy, by id.
    pub fn proxy(&self, now: Instant, id: &ProxyId) -> Option<ProxyStatus<'_>> {
        let s = self.find_slot(Some(id), None).ok()?;
        self.slots.get(s).map(|x| self.status_of(x, now.as_ticks()))
    }

    fn status_of<'a>(&'a self, x: &'a Slot, t: u64) -> ProxyStatus<'a> {
        let state = if !x.enabled {
            ProxyState::Disabled
        } else if x.ejected_until.is_some() {
            ProxyState::Ejected
        } else if x.bars.iter().flatten().any(|b| b.until > t) {
            ProxyState::CoolingDown
        } else {
            ProxyState::Active
        };
        let mut regions = heapless::Vec::new();
        for i in x.region_list.iter().filter(|i| **i != NO_REGION) {
            if let Some(r) = self.regions.get(usize::from(*i)) {
                let _ = regions.push(r);
            }
        }
        let health = x.health(&self.config);
        ProxyStatus {
            id: &x.id,
            url: x.url.without_credentials(),
            regions,
            state,
            health_score: health,
            success_rate: x.success,
            latency_ms: x.latency,
            open_connections: x.open(),
            max_connections: (x.max_conns != u32::MAX).then_some(x.max_conns),
            weight: x.weight,
            ejections: x.ejections,
            ejected_until: x.ejected_until.map(Instant::from_ticks),
            recent_failures: x.recent_failures(t, ticks(self.config.failure_window)),
        }
    }
}

fn region_ok(slot: &Slot, barred: u32) -> bool {
    slot.regions == 0 || slot.regions & !barred != 0
}

struct Compact {
    regions: u32,
    region_list: [u8; MAX_PROXY_REGIONS],
    allowed: u64,
}

fn apply_spec(slot: &mut Slot, spec: &ProxySpec, c: &Compact) {
    slot.url = spec.url.clone();
    slot.regions = c.regions;
    slot.region_list = c.region_list;
    slot.allowed = c.allowed;
    slot.ctypes = spec.connection_types.mask();
    slot.weight = spec.weight;
    slot.max_conns = spec.max_connections.unwrap_or(u32::MAX);
    slot.enabled = spec.enabled;
}

fn new_slot(spec: &ProxySpec, c: &Compact, now: u64) -> Slot {
    let mut slot = Slot {
        occupied: true,
        enabled: true,
        generation: 0,
        id: spec.id.clone(),
        url: spec.url.clone(),
        id_hash: id_hash(&spec.id),
        regions: 0,
        region_list: [NO_REGION; MAX_PROXY_REGIONS],
        allowed: 0,
        ctypes: 0,
        weight: 1,
        max_conns: u32::MAX,
        success: 1.0,
        latency: None,
        samples: 0,
        consecutive: 0,
        leases: [Lease::default(); LEASE_BUCKETS],
        bars: [None; BARS_PER_PROXY],
        barred: 0,
        ejected_until: None,
        ejections: 0,
        probe_at: None,
        share_restore: false,
        window_start: now,
        fail_cur: [0; CATEGORIES],
        fail_prev: [0; CATEGORIES],
    };
    apply_spec(&mut slot, spec, c);
    slot
}
