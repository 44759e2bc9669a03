//! The service's Prometheus metrics (`GET /metrics`, OpenMetrics text).
//!
//! Labels carry proxy ids, client names, strategies and categories — never a
//! URL, a password or a token.

use std::sync::atomic::AtomicU64;

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::snapshot::Snapshot;

/// The content type of `GET /metrics`.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A client's name as a label value: shares the caller's name, so counting
/// a request allocates nothing once its series exists.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub(crate) struct ClientLabel(pub(crate) Arc<str>);

impl EncodeLabelValue for ClientLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, &self.0)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) route: &'static str,
    pub(crate) status: u16,
    pub(crate) client: ClientLabel,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    pub(crate) outcome: &'static str,
    pub(crate) client: ClientLabel,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReloadLabels {
    pub(crate) outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StrategyLabels {
    pub(crate) strategy: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProxyLabels {
    pub(crate) proxy: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EjectionLabels {
    pub(crate) proxy: String,
    pub(crate) reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FeedbackLabels {
    pub(crate) event: &'static str,
    pub(crate) category: &'static str,
    pub(crate) client: ClientLabel,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) reason: &'static str,
}

/// Every metric of one service instance, in its own registry (no globals:
/// several services in one process keep separate counts).
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) http_requests: Family<RequestLabels, Counter>,
    pub(crate) proxy_requests: Family<OutcomeLabels, Counter>,
    pub(crate) selections: Family<StrategyLabels, Counter>,
    pub(crate) ejections: Family<EjectionLabels, Counter>,
    pub(crate) restorations: Family<ProxyLabels, Counter>,
    pub(crate) feedback: Family<FeedbackLabels, Counter>,
    pub(crate) feedback_ignored: Family<ReasonLabels, Counter>,
    pub(crate) auth_failures: Family<ReasonLabels, Counter>,
    pub(crate) reloads: Family<ReloadLabels, Counter>,
    events_dropped: Counter,
    health: Family<ProxyLabels, Gauge<f64, AtomicU64>>,
    open_connections: Family<ProxyLabels, Gauge>,
    proxies: Gauge,
    available: Gauge,
    ejected: Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("proxy_delegate");
        let m = Self {
            http_requests: Family::default(),
            proxy_requests: Family::default(),
            selections: Family::default(),
            ejections: Family::default(),
            restorations: Family::default(),
            feedback: Family::default(),
            feedback_ignored: Family::default(),
            auth_failures: Family::default(),
            reloads: Family::default(),
            events_dropped: Counter::default(),
            health: Family::default(),
            open_connections: Family::default(),
            proxies: Gauge::default(),
            available: Gauge::default(),
            ejected: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route, status and client",
            m.http_requests.clone(),
        );
        registry.register(
            "proxy_requests",
            "Answers to POST /api/v1/proxy/request by outcome (proxy, no_proxy) and client",
            m.proxy_requests.clone(),
        );
        registry.register(
            "selections",
            "Proxies selected, by strategy",
            m.selections.clone(),
        );
        registry.register(
            "ejections",
            "Proxy ejections, by proxy and reason",
            m.ejections.clone(),
        );
        registry.register(
            "restorations",
            "Ejected proxies brought back, by proxy",
            m.restorations.clone(),
        );
        registry.register(
            "feedback",
            "Feedback events applied, by event, error category and client",
            m.feedback.clone(),
        );
        registry.register(
            "feedback_ignored",
            "Feedback events accepted but not applied (in full), by reason (unknown_proxy, \
             no_proxy, cool_down_dropped)",
            m.feedback_ignored.clone(),
        );
        registry.register(
            "auth_failures",
            "Rejected credentials, by reason",
            m.auth_failures.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads, by outcome",
            m.reloads.clone(),
        );
        registry.register(
            "pool_events_dropped",
            "Pool events (ejections, restorations, cool-downs) lost before the service \
             logged and counted them; should stay 0",
            m.events_dropped.clone(),
        );
        registry.register(
            "proxy_health_score",
            "Health score of each proxy, 0-1",
            m.health.clone(),
        );
        registry.register(
            "proxy_open_connections",
            "Open connections (leases) of each proxy",
            m.open_connections.clone(),
        );
        registry.register(
            "pool_proxies",
            "Proxies in the inventory",
            m.proxies.clone(),
        );
        registry.register(
            "pool_available",
            "Proxies a request may get now",
            m.available.clone(),
        );
        registry.register("pool_ejected", "Ejected proxies", m.ejected.clone());
        Self { registry, ..m }
    }

    /// The text of `GET /metrics`, with the per-proxy gauges set from
    /// `snapshot` and the dropped-events counter brought up to
    /// `events_dropped` (the pool's [`events_dropped`] count, which only
    /// grows).
    ///
    /// [`events_dropped`]: proxy_delegate_core::pool::Pool::events_dropped
    pub(crate) fn render(&self, snapshot: &Snapshot, events_dropped: u64) -> String {
        // `fetch_max`: two scrapes at once cannot count the same loss twice.
        self.events_dropped
            .inner()
            .fetch_max(events_dropped, std::sync::atomic::Ordering::Relaxed);
        // Proxies removed by a reload must not linger as stale series.
        self.health.clear();
        self.open_connections.clear();
        for p in &snapshot.proxies {
            let l = ProxyLabels {
                proxy: p.id.clone(),
            };
            self.health.get_or_create(&l).set(f64::from(p.health_score));
            self.open_connections
                .get_or_create(&l)
                .set(i64::from(p.open_connections));
        }
        self.proxies.set(i64::from(snapshot.summary.proxies));
        self.available.set(i64::from(snapshot.summary.available));
        self.ejected.set(i64::from(snapshot.summary.ejected));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}
