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
//!
//! # Where each concept lives
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | [`Pool`] itself: its state, construction, counts, the event queue and the lookup of a proxy by id or URL |
//! | `slot.rs` | one proxy's slot: its leases, cool-down bars, health averages and recent failures |
//! | `select.rs` | selection: [`Pool::select`], the strategies, sticky rendezvous hashing |
//! | `health.rs` | health and ejection: [`Pool::handle_feedback`], ejection and restore |
//! | `cooldown.rs` | exchange cool-downs: geo-block and rate-limit bars, region bars, the exchange table |
//! | `timers.rs` | timers and probes: [`Pool::poll_timeout`], [`Pool::handle_timeout`], [`Pool::poll_transmit`], [`Pool::handle_probe_result`] |
//! | `reload.rs` | inventory replacement: [`Pool::replace_inventory`] |
//! | `snapshot.rs` | the status snapshot: [`Pool::proxies`], [`Pool::proxy`] |
//! | `inventory.rs` | what the operator says about each proxy ([`ProxySpec`]) |
//! | `config.rs` | [`PoolConfig`] and per-exchange policies |
//! | `status.rs` | what the pool reports: [`Event`], [`Probe`], [`ProxyStatus`], errors |
//! | `classify.rs` | [`category_from_details`]: free-text failures to categories |
//! | `tree.rs` | the aggregate tree selection descends |

mod classify;
mod config;
mod cooldown;
mod health;
mod inventory;
mod reload;
mod select;
mod slot;
mod snapshot;
mod status;
mod timers;
mod tree;

pub use classify::category_from_details;
pub use config::{ExchangePolicy, MAX_EXCHANGE_POLICIES, PoolConfig, StrategyKind};
pub use inventory::{
    ConnectionTypes, InventoryChange, InventoryError, MAX_ALLOWED_EXCHANGES, MAX_EXCHANGES,
    MAX_PROXY_REGIONS, MAX_REGIONS, ProxySpec,
};
pub use status::{
    EjectReason, Event, FailureCounts, FeedbackError, PoolStats, Probe, ProbeToken, ProxyState,
    ProxyStatus, RestoreCause,
};

use core::fmt;

use embassy_time::Duration;
use heapless::index_map::FnvIndexMap;

use crate::ValidationError;
use crate::hash::{FNV_OFFSET, fnv, mix};
use crate::model::{ExchangeId, ProxyId, ProxyUrl, Region, Strategy, TtlSeconds};
use crate::storage::{Inline, Storage, StorageVec};
use cooldown::RegionBar;
use select::StickyEntry;
use slot::Slot;
use tree::{Agg, Tree};

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

fn id_hash(id: &ProxyId) -> u64 {
    mix(fnv(FNV_OFFSET, id.as_str().as_bytes()))
}

fn endpoint_hash(u: &ProxyUrl) -> u64 {
    let h = fnv(FNV_OFFSET, u.scheme().as_str().as_bytes());
    let h = fnv(h, b"://");
    let h = fnv(h, u.host().as_bytes());
    mix(fnv(h, &u.port().to_le_bytes()))
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
/// 2. For each client request, [`Pool::select`] → a [`ProxyResponse`](crate::model::ProxyResponse) to
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
/// The proxies' slots live where `St` says ([`storage`](crate::storage)):
/// inline by default (a `Pool<4096>` is a few MiB, for a `static`), on the
/// heap with [`Boxed`](crate::storage::Boxed) (built entry by entry, so a
/// large pool can be built on any thread). The selection tree (96 B a
/// proxy) stays inline, where a search walks it fastest.
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
pub struct Pool<const N: usize, const S: usize = 256, St: Storage = Inline> {
    config: PoolConfig,
    ttl: TtlSeconds,
    names: [Strategy; 5],
    rng: fastrand::Rng,
    cursor: u32,
    slots: StorageVec<Slot, N, St>,
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

impl<const N: usize, const S: usize, St: Storage> fmt::Debug for Pool<N, S, St> {
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

impl<const N: usize, const S: usize, St: Storage> Pool<N, S, St> {
    /// An empty pool. Fails when a [`PoolConfig`] field is out of range.
    pub fn new(config: PoolConfig) -> Result<Self, ValidationError> {
        let (ttl, names) = Self::validate(&config)?;
        Ok(Self::assemble(config, ttl, names))
    }

    /// Like [`new`](Self::new), boxed: the value is built with no `Result`
    /// around it and written into a fresh allocation, so that an optimised
    /// build holds at most one copy on the stack. With [`Boxed`] storage the
    /// slots are on the heap already, and that copy is about 1.2 MB for
    /// `Pool<4096, 4096, Boxed>` (the selection tree and the indexes).
    ///
    /// [`Boxed`]: crate::storage::Boxed
    #[cfg(feature = "alloc")]
    pub fn new_boxed(config: PoolConfig) -> Result<alloc::boxed::Box<Self>, ValidationError> {
        let (ttl, names) = Self::validate(&config)?;
        Ok(alloc::boxed::Box::write(
            alloc::boxed::Box::new_uninit(),
            Self::assemble(config, ttl, names),
        ))
    }

    /// Checks the configuration, and builds the small parts.
    fn validate(config: &PoolConfig) -> Result<(TtlSeconds, [Strategy; 5]), ValidationError> {
        const {
            assert!(
                N >= 1 && N <= u32::MAX as usize / 2,
                "pool capacity N must be at least 1"
            )
        };
        config.validate()?;
        let ttl =
            TtlSeconds::new(u64::from(config.ttl_seconds)).map_err(|e| e.at("ttl_seconds"))?;
        let name = |k: StrategyKind| Strategy::new(k.as_str()).map_err(|e| e.at("strategy"));
        let names = [
            name(StrategyKind::RoundRobin)?,
            name(StrategyKind::Random)?,
            name(StrategyKind::LeastConnections)?,
            name(StrategyKind::Weighted)?,
            name(StrategyKind::Sticky)?,
        ];
        Ok((ttl, names))
    }

    /// An empty pool for a configuration already validated. Infallible, so
    /// that a caller can build it straight into its final place.
    #[inline(always)]
    fn assemble(config: PoolConfig, ttl: TtlSeconds, names: [Strategy; 5]) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(config.seed),
            config,
            ttl,
            names,
            cursor: 0,
            slots: StorageVec::new(),
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
        }
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

    // -------------------------------------------------------------- lookup

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

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
