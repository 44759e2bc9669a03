//! A point-in-time view of the pool, without credentials: what
//! `GET /api/v1/proxies`, `GET /metrics` and the status page `GET /` show.

use proxy_delegate_core::pool::{PoolStats, ProxyStatus};
use serde::Serialize;
use utoipa::ToSchema;

/// Recent failures of one category.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FailureCount {
    /// The `error_category` (`proxy_connect`, `proxy_auth`, `tunnel_refused`,
    /// `target_tls`, `target_http_5xx`, `geo_blocked`, `rate_limited`,
    /// `timeout`, `other`).
    pub category: &'static str,
    /// Failures of that category in the recent window.
    pub count: u32,
}

/// One proxy of the inventory with its health and state. Holds no credentials.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProxyRow {
    /// The proxy's id (`metadata.proxy_id` in answers).
    pub id: String,
    /// The proxy's URL without user name and password, e.g. `socks5://10.0.0.1:1080`.
    pub url: String,
    /// Its regions.
    pub regions: Vec<String>,
    /// `active`, `cooling_down`, `ejected` or `disabled`.
    pub state: &'static str,
    /// Health score, 0–1 (success rate × latency factor).
    pub health_score: f32,
    /// Moving average of the success rate, 0–1.
    pub success_rate: f32,
    /// Moving average of the connect latency in milliseconds, once reported.
    pub latency_ms: Option<f32>,
    /// Open connections (from `connect_start` / `disconnect` feedback).
    pub open_connections: u32,
    /// Connection limit, if any.
    pub max_connections: Option<u32>,
    /// Weight for the `weighted` strategy.
    pub weight: u16,
    /// How many times it has been ejected.
    pub ejections: u32,
    /// Seconds until its ejection ends, while ejected.
    pub ejected_for_seconds: Option<u64>,
    /// Recent failures by category; categories with no failure are left out.
    pub recent_failures: Vec<FailureCount>,
}

impl ProxyRow {
    /// The row for one proxy; `now_ticks` is the pool clock's current tick.
    pub(crate) fn from_status(s: &ProxyStatus<'_>, now: embassy_time::Instant) -> Self {
        Self {
            id: s.id.as_str().to_owned(),
            // The pool already strips credentials; strip again so this row
            // can never carry them whatever its source.
            url: s.url.without_credentials().to_string(),
            regions: s.regions.iter().map(|r| r.as_str().to_owned()).collect(),
            state: s.state.as_str(),
            health_score: s.health_score,
            success_rate: s.success_rate,
            latency_ms: s.latency_ms,
            open_connections: s.open_connections,
            max_connections: s.max_connections,
            weight: s.weight,
            ejections: s.ejections,
            ejected_for_seconds: s
                .ejected_until
                .map(|u| u.checked_duration_since(now).map_or(0, |d| d.as_secs())),
            recent_failures: s
                .recent_failures
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(c, n)| FailureCount {
                    category: c.as_str(),
                    count: n,
                })
                .collect(),
        }
    }
}

/// Counts over the whole pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct PoolSummary {
    /// Proxies in the inventory.
    pub proxies: u32,
    /// Proxies a request may get now.
    pub available: u32,
    /// Ejected proxies.
    pub ejected: u32,
    /// The most proxies that may be ejected at once.
    pub max_ejected: u32,
}

impl From<PoolStats> for PoolSummary {
    fn from(s: PoolStats) -> Self {
        Self {
            proxies: s.proxies,
            available: s.available,
            ejected: s.ejected,
            max_ejected: s.max_ejected,
        }
    }
}

/// The body of `GET /api/v1/proxies`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Snapshot {
    /// Counts over the pool.
    pub summary: PoolSummary,
    /// Every proxy, in inventory order.
    pub proxies: Vec<ProxyRow>,
}
