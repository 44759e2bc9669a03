//! The client's metrics, through the [`metrics`] facade (install any
//! recorder, e.g. a Prometheus exporter; without one they cost nothing).
//! Labels never hold a secret: endpoints are base URLs (which refuse
//! credentials and queries), sources, reasons and outcomes are fixed words.
//!
//! | name | kind | labels | what |
//! | --- | --- | --- | --- |
//! | `proxy_delegate_service_requests_total` | counter | `endpoint`, `kind` (`resolve`, `feedback`, `health`), `outcome` (`ok`, or a [`FailureKind`](crate::FailureKind) name) | calls to the service |
//! | `proxy_delegate_service_request_seconds` | histogram | `kind` | time of each call to the service |
//! | `proxy_delegate_resolutions_total` | counter | `source` (`service`, `cache`, `stale`, `embedded`, `direct`, `failed`) | routes handed out |
//! | `proxy_delegate_cache_total` | counter | `result` (`hit`, `miss`, `stale`) | resolves by what the cache had |
//! | `proxy_delegate_fallbacks_total` | counter | `reason` (`no_endpoint`, `deadline`, `service_failed`, `overloaded`) | resolves that did not get the service's answer |
//! | `proxy_delegate_breaker_state` | gauge | `endpoint` | 0 closed, 1 half-open, 2 open, 3 forced open, 4 disabled |
//! | `proxy_delegate_feedback_total` | counter | `outcome` (`sent`, `dropped`) | feedback events |
//! | `proxy_delegate_feedback_queued` | gauge | | feedback events waiting to be sent |
//! | `proxy_delegate_resolve_seconds` | histogram | `source` | from a resolve that had to wait to its answer |
//! | `proxy_delegate_connections_total` | counter | `transport` (`http`, `websocket`), `event` (`connect_start`, `success`, `failure`, `timeout`, `disconnect`), `category` (an error category, or `none`) | connections made by the [`ProxyInjector`](crate::ProxyInjector), by what they reported |
//!
//! Counters that the core keeps ([`Stats`](proxy_delegate_core::resolver::Stats))
//! are published by the driver as they change, so a cache hit, the hot
//! path, touches no metric at all.

use proxy_delegate_core::breaker::BreakerState;
use proxy_delegate_core::endpoints::ServiceUrl;
use proxy_delegate_core::resolver::{Event, Source};

use crate::client::ClientResolver;

/// Calls to the service.
pub const SERVICE_REQUESTS: &str = "proxy_delegate_service_requests_total";
/// Time of each call to the service.
pub const SERVICE_LATENCY: &str = "proxy_delegate_service_request_seconds";
/// Routes handed out, by source.
pub const RESOLUTIONS: &str = "proxy_delegate_resolutions_total";
/// Resolves by what the cache had.
pub const CACHE: &str = "proxy_delegate_cache_total";
/// Fallbacks by reason.
pub const FALLBACKS: &str = "proxy_delegate_fallbacks_total";
/// Breaker state per endpoint.
pub const BREAKER_STATE: &str = "proxy_delegate_breaker_state";
/// Feedback events sent or dropped.
pub const FEEDBACK: &str = "proxy_delegate_feedback_total";
/// Feedback events queued.
pub const FEEDBACK_QUEUED: &str = "proxy_delegate_feedback_queued";
/// Connections made by the injector, by reported event and category.
pub const CONNECTIONS: &str = "proxy_delegate_connections_total";
/// Latency of resolves that waited.
pub const RESOLVE_LATENCY: &str = "proxy_delegate_resolve_seconds";

const SOURCES: [Source; 5] = [
    Source::Service,
    Source::Cache,
    Source::Stale,
    Source::Embedded,
    Source::Direct,
];
const REASONS: [&str; 4] = ["no_endpoint", "deadline", "service_failed", "overloaded"];

/// What was last published, to publish only the increase.
#[derive(Debug, Default)]
pub(crate) struct Published {
    resolved: [u64; 5],
    failed: u64,
    fallbacks: [u64; 4],
    sent: u64,
    dropped: u64,
    /// The gauges as last set: they are set again only when they change
    /// (this runs on every driver pass, under the client's lock).
    queued: Option<usize>,
    breakers: Vec<(ServiceUrl, f64)>,
}

/// The breaker gauge's value for a state.
fn breaker_value(state: BreakerState) -> f64 {
    match state {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
        BreakerState::ForcedOpen => 3.0,
        BreakerState::Disabled => 4.0,
    }
}

/// Publishes the core's counters and gauges (called by the driver after each
/// pass, under the client's lock).
pub(crate) fn record_state(
    r: &ClientResolver,
    fb: proxy_delegate_core::feedback::Stats,
    last: &mut Published,
) {
    let stats = r.stats();
    for (i, source) in SOURCES.iter().enumerate() {
        let delta = stats.resolved[i].saturating_sub(last.resolved[i]);
        if delta > 0 {
            metrics::counter!(RESOLUTIONS, "source" => source.as_str()).increment(delta);
            match source {
                Source::Cache => metrics::counter!(CACHE, "result" => "hit").increment(delta),
                Source::Stale => metrics::counter!(CACHE, "result" => "stale").increment(delta),
                _ => {}
            }
        }
    }
    let failed = stats.failed.saturating_sub(last.failed);
    if failed > 0 {
        metrics::counter!(RESOLUTIONS, "source" => "failed").increment(failed);
    }
    for (i, reason) in REASONS.iter().enumerate() {
        let delta = stats.fallbacks[i].saturating_sub(last.fallbacks[i]);
        if delta > 0 {
            metrics::counter!(FALLBACKS, "reason" => *reason).increment(delta);
        }
    }
    let sent = fb.sent.saturating_sub(last.sent);
    if sent > 0 {
        metrics::counter!(FEEDBACK, "outcome" => "sent").increment(sent);
    }
    let dropped = fb.dropped.saturating_sub(last.dropped);
    if dropped > 0 {
        metrics::counter!(FEEDBACK, "outcome" => "dropped").increment(dropped);
    }
    if last.queued != Some(fb.queued) {
        metrics::gauge!(FEEDBACK_QUEUED).set(fb.queued as f64);
        last.queued = Some(fb.queued);
    }
    let n = r.endpoints().len();
    let current = |i: usize| {
        r.endpoint(i)
            .zip(r.endpoints().breaker_state(i))
            .map(|(e, state)| (&e.url, breaker_value(state)))
    };
    let unchanged = last.breakers.len() == n
        && (0..n).all(|i| current(i) == Some((&last.breakers[i].0, last.breakers[i].1)));
    if !unchanged {
        last.breakers.clear();
        for (url, value) in (0..n).filter_map(current) {
            metrics::gauge!(BREAKER_STATE, "endpoint" => url.to_string()).set(value);
            last.breakers.push((url.clone(), value));
        }
    }
    last.resolved = stats.resolved;
    last.failed = stats.failed;
    last.fallbacks = stats.fallbacks;
    last.sent = fb.sent;
    last.dropped = fb.dropped;
}

/// Logs an event of the core and records what it measures.
pub(crate) fn record_event(e: &Event) {
    match e {
        Event::Resolved { source, latency } => {
            metrics::histogram!(RESOLVE_LATENCY, "source" => source.as_str())
                .record(latency.as_micros() as f64 / 1e6);
        }
        Event::Fallback {
            key,
            reason,
            source,
        } => {
            tracing::debug!(
                exchange = key.exchange_id.as_str(),
                connection_type = key.connection_type.as_str(),
                reason = reason.as_str(),
                source = source.map_or("none (fallback_policy fail)", Source::as_str),
                "fallback"
            );
        }
        Event::BadReply {
            id,
            endpoint,
            status,
        } => {
            tracing::debug!(correlation_id = %id, endpoint, status, "unusable reply");
        }
        Event::Endpoint(ev) => tracing::info!(event = ?ev, "endpoint"),
        Event::Feedback(ev) => tracing::debug!(event = ?ev, "feedback queue"),
        other => tracing::trace!(event = ?other, "resolver"),
    }
}
