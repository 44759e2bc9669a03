//! What the pool reports: events, probe transmits, the per-proxy status
//! snapshot, and the errors of feedback.

use core::fmt;

use embassy_time::Instant;

use super::inventory::MAX_PROXY_REGIONS;
use crate::model::{ErrorCategory, ExchangeId, ProxyId, ProxyUrl, Region};

pub(crate) const CATEGORIES: usize = ErrorCategory::ALL.len();

pub(crate) fn category_index(c: ErrorCategory) -> usize {
    ErrorCategory::ALL
        .iter()
        .position(|x| *x == c)
        .unwrap_or(CATEGORIES - 1)
}

/// Why a proxy was ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EjectReason {
    /// [`PoolConfig::eject_consecutive_failures`](super::PoolConfig::eject_consecutive_failures)
    /// proxy-fault failures in a row.
    ConsecutiveFailures,
    /// Its success rate fell
    /// [`PoolConfig::eject_success_rate_gap`](super::PoolConfig::eject_success_rate_gap)
    /// below the pool's mean.
    LowSuccessRate,
}

/// Why an ejected proxy came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreCause {
    /// Its ejection time ran out.
    Expired,
    /// An active probe reached it.
    Probe,
    /// An inventory replacement shrank the pool, and the share of ejected
    /// proxies would otherwise exceed its bound.
    ShareLimit,
}

/// Something the adapter may log or count. Drain with
/// [`Pool::poll_event`](super::Pool::poll_event). No event carries a secret.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A proxy was ejected: no request gets it until `until` (or a probe
    /// reaches it).
    Ejected {
        /// The proxy.
        proxy: ProxyId,
        /// Why.
        reason: EjectReason,
        /// How many times it has been ejected, this time included.
        ejections: u32,
        /// When the ejection ends.
        until: Instant,
    },
    /// A proxy would have been ejected, but the pool already has its largest
    /// allowed share of ejected proxies.
    EjectionSuppressed {
        /// The proxy.
        proxy: ProxyId,
        /// Why it would have been ejected.
        reason: EjectReason,
    },
    /// An ejected proxy is back.
    Restored {
        /// The proxy.
        proxy: ProxyId,
        /// Why.
        cause: RestoreCause,
    },
    /// A proxy is barred for one exchange (`geo_blocked`, `rate_limited`).
    CooledDown {
        /// The proxy.
        proxy: ProxyId,
        /// The exchange.
        exchange: ExchangeId,
        /// The failure that caused it.
        category: ErrorCategory,
        /// When the bar ends.
        until: Instant,
        /// For `geo_blocked` on a single-region proxy: that region is barred
        /// for the exchange too.
        region: Option<Region>,
    },
    /// A cool-down could not be recorded: every one of the
    /// [`MAX_EXCHANGES`](super::MAX_EXCHANGES) entries of the pool's exchange
    /// table is held by an allow-list or a live cool-down of another
    /// exchange. The proxy is not barred for this exchange.
    CoolDownDropped {
        /// The proxy.
        proxy: ProxyId,
        /// The exchange.
        exchange: ExchangeId,
    },
    /// Every cool-down for `exchange` (of any proxy, and its region bars)
    /// ended early: an inventory replacement needed its entry of the
    /// exchange table for an exchange its allow-lists name. Cool-downs that
    /// end first give way first.
    CoolDownsEnded {
        /// The exchange.
        exchange: ExchangeId,
    },
    /// Connections opened by `connect_start` were never closed by
    /// `disconnect` and their leases ran out.
    LeasesExpired {
        /// The proxy.
        proxy: ProxyId,
        /// How many leases expired.
        count: u32,
    },
}

/// Identifies one active probe; hand it back to
/// [`Pool::handle_probe_result`](super::Pool::handle_probe_result).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProbeToken {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

/// An active probe to run: open a TCP connection to `target`'s host and port
/// (nothing else), then report whether it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Hand back with the result.
    pub token: ProbeToken,
    /// The proxy, without credentials.
    pub target: ProxyUrl,
}

/// A proxy's state, as a status page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyState {
    /// Chosen for requests.
    Active,
    /// Chosen, but barred for at least one exchange (`geo_blocked`, `rate_limited`).
    CoolingDown,
    /// Chosen for nothing until its ejection ends.
    Ejected,
    /// Disabled in the inventory.
    Disabled,
}

crate::labels! {
    /// `active`, `cooling_down`, `ejected` or `disabled`.
    ProxyState {
        Active => "active",
        CoolingDown => "cooling_down",
        Ejected => "ejected",
        Disabled => "disabled",
    }
}

/// Failures by category over the recent window (see
/// [`PoolConfig::failure_window`](super::PoolConfig::failure_window)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureCounts(pub(crate) [u32; CATEGORIES]);

impl FailureCounts {
    /// Failures of category `c`.
    pub fn get(&self, c: ErrorCategory) -> u32 {
        self.0.get(category_index(c)).copied().unwrap_or(0)
    }

    /// All failures.
    pub fn total(&self) -> u32 {
        self.0.iter().fold(0u32, |a, b| a.saturating_add(*b))
    }

    /// Every category with its count (zeros included).
    pub fn iter(&self) -> impl Iterator<Item = (ErrorCategory, u32)> + '_ {
        ErrorCategory::ALL
            .iter()
            .copied()
            .zip(self.0.iter().copied())
    }
}

/// One proxy, as a status page or a metrics endpoint shows it. Holds no
/// credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyStatus<'a> {
    /// The id.
    pub id: &'a ProxyId,
    /// The URL without user name and password.
    pub url: ProxyUrl,
    /// The regions.
    pub regions: heapless::Vec<&'a Region, MAX_PROXY_REGIONS>,
    /// The state.
    pub state: ProxyState,
    /// The health score, 0–1 (success rate × latency factor).
    pub health_score: f32,
    /// The moving average of the success rate, 0–1.
    pub success_rate: f32,
    /// The moving average of the connect latency, if any was reported.
    pub latency_ms: Option<f32>,
    /// Open connections (leases).
    pub open_connections: u32,
    /// The connection limit.
    pub max_connections: Option<u32>,
    /// The weight.
    pub weight: u16,
    /// How many times it has been ejected.
    pub ejections: u32,
    /// When its ejection ends, while ejected.
    pub ejected_until: Option<Instant>,
    /// Failures by category, recently.
    pub recent_failures: FailureCounts,
}

/// Counts over the whole pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Proxies in the inventory.
    pub proxies: u32,
    /// Proxies a request may get (enabled, not ejected, under their limit).
    pub available: u32,
    /// Ejected proxies.
    pub ejected: u32,
    /// The most proxies that may be ejected at once.
    pub max_ejected: u32,
}

/// A feedback that the pool could not apply. Neither is harmful; an HTTP
/// adapter would accept the feedback and count it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeedbackError {
    /// The feedback names no proxy (neither `proxy_id` nor `proxy_url`): a
    /// direct connection, nothing to score.
    NoProxy,
    /// No proxy of the inventory has that `proxy_id` or URL (removed by a
    /// reload, or from another service).
    UnknownProxy,
}

impl fmt::Display for FeedbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedbackError::NoProxy => f.write_str(
                "feedback: neither proxy_id nor proxy_url is set; nothing to score (direct connection)",
            ),
            FeedbackError::UnknownProxy => f.write_str(
                "feedback: proxy_id / proxy_url names no proxy of the inventory; check that the client uses this service's answers",
            ),
        }
    }
}

impl core::error::Error for FeedbackError {}
