//! The service's Prometheus metrics (`GET /metrics`, OpenMetrics text).
//!
//! Labels carry proxy ids, client names, strategies and categories — never a
//! URL, a password or a token. prometheus-client writes label values as they
//! are; the text ones here (client names, proxy ids) are escaped as the
//! exposition format says ([`write_escaped`]), so that no name can end a
//! value, a line or a sample early and forge another.

use std::sync::atomic::AtomicU64;

use std::sync::Arc;

use prometheus_client::encoding::{
    EncodeLabel, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::snapshot::Snapshot;

/// The content type of `GET /metrics`, the OpenMetrics media type (public
/// as [`crate::openapi::OPENMETRICS`]; the document says the same).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A client's name as a label value: shares the caller's name, so counting
/// a request allocates nothing once its series exists.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub(crate) struct ClientLabel(pub(crate) Arc<str>);

impl EncodeLabelValue for ClientLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        write_escaped(encoder, &self.0)
    }
}

/// Writes `value` as the inside of a quoted label value: `\`, `"` and a
/// line feed as `\\`, `\"` and `\n` (Prometheus text format 0.0.4 and
/// OpenMetrics 1.0 alike); everything else as it is.
pub(crate) fn write_escaped(out: &mut impl std::fmt::Write, value: &str) -> std::fmt::Result {
    let mut rest = value;
    while let Some(i) = rest.find(['\\', '"', '\n']) {
        out.write_str(&rest[..i])?;
        out.write_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        })?;
        rest = &rest[i + 1..];
    }
    out.write_str(rest)
}

/// Text as a label value, escaped ([`write_escaped`]).
struct Escaped<'a>(&'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        write_escaped(encoder, self.0)
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

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub(crate) struct ProxyLabels {
    pub(crate) proxy: String,
}

impl EncodeLabelSet for ProxyLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("proxy", Escaped(&self.proxy)).encode(encoder.encode_label())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub(crate) struct EjectionLabels {
    pub(crate) proxy: String,
    pub(crate) reason: &'static str,
}

impl EncodeLabelSet for EjectionLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("proxy", Escaped(&self.proxy)).encode(encoder.encode_label())?;
        ("reason", self.reason).encode(encoder.encode_label())
    }
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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LogLabels {
    /// The message of the log lines: `request_refused`, `connection_refused`.
    pub(crate) event: &'static str,
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
    pub(crate) logs_suppressed: Family<LogLabels, Counter>,
    /// Client connections open now (TLS handshakes included).
    pub(crate) connections: Gauge,
    /// `max_connections`.
    pub(crate) connections_max: Gauge,
    /// Connections closed at once because `max_connections` were open.
    pub(crate) connections_refused: Counter,
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
            logs_suppressed: Family::default(),
            connections: Gauge::default(),
            connections_max: Gauge::default(),
            connections_refused: Counter::default(),
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
            "log_lines_suppressed",
            "Log lines not written because too many of their kind came at once \
             (over 20 a second), by event (request_refused, connection_refused)",
            m.logs_suppressed.clone(),
        );
        registry.register(
            "http_connections",
            "Client connections open now",
            m.connections.clone(),
        );
        registry.register(
            "http_connections_max",
            "Most client connections open at once (max_connections)",
            m.connections_max.clone(),
        );
        registry.register(
            "http_connections_refused",
            "Client connections closed as soon as accepted, because max_connections were open",
            m.connections_refused.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        write_escaped(&mut out, s).unwrap();
        out
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escaped("feed-eu"), "feed-eu");
        assert_eq!(escaped(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escaped("x\ny"), "x\\ny");
        assert_eq!(escaped("\"\n\\"), "\\\"\\n\\\\");
        assert_eq!(escaped("é\r\t"), "é\r\t");
    }

    #[test]
    fn no_name_forges_a_sample() {
        let m = Metrics::new();
        let forged = "x\"} 1\nproxy_delegate_forged_total{a=\"";
        m.http_requests
            .get_or_create(&RequestLabels {
                route: "/health",
                status: 200,
                client: ClientLabel(Arc::from(forged)),
            })
            .inc();
        m.ejections
            .get_or_create(&EjectionLabels {
                proxy: forged.into(),
                reason: "other",
            })
            .inc();
        let snapshot = Snapshot {
            summary: crate::snapshot::PoolSummary {
                proxies: 0,
                available: 0,
                ejected: 0,
                max_ejected: 0,
            },
            proxies: Vec::new(),
        };
        let text = m.render(&snapshot, 0);
        assert!(
            !text.lines().any(|l| l.starts_with("proxy_delegate_forged")),
            "{text}"
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("proxy_delegate_http_requests_total{"))
            .unwrap();
        assert!(
            line.contains(r#"client="x\"} 1\nproxy_delegate_forged_total{a=\"""#),
            "{line}"
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("proxy_delegate_ejections_total{"))
            .unwrap();
        assert!(line.ends_with(r#"",reason="other"} 1"#), "{line}");
    }
}
