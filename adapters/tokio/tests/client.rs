//! `ProxyServiceClient` against the reference service run in-process on
//! 127.0.0.1: both wire formats, a dropped `get_proxy` freeing its slot, and
//! a client built on an ordinary test thread (2 MiB stack).

use std::sync::Arc;
use std::time::Duration;

use proxy_delegate_core::contract::WireFormat;
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ExchangeId, FeedbackEvent, ProxyFeedback, Timestamp,
};
use proxy_delegate_core::resolver::Source;
use proxy_delegate_service::{Running, Service, ServiceConfig};
use proxy_delegate_tokio::{HttpTransport, ProxyServiceClient, TransportConfig};

async fn start_service() -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    Service::new(ServiceConfig::embedded_default())
        .expect("service builds")
        .start(listener)
        .expect("service starts")
}

fn settings(endpoint: &str) -> Box<proxy_delegate_config::Settings> {
    let yaml = format!(
        "proxy:\n  enabled: true\n  default:\n    http: http://user:pw-embedded@127.0.0.1:3128\n  external_service:\n    enabled: true\n    endpoints: [\"{endpoint}\"]\n    resolve_deadline_ms: 2000\n"
    );
    proxy_delegate_config::Loader::new()
        .yaml_str("config.yaml", yaml)
        .load()
        .expect("valid settings")
        .settings
}

async fn client(endpoint: &str, wire: WireFormat) -> ProxyServiceClient {
    client_with(endpoint, wire, |_| {}).await
}

async fn client_with(
    endpoint: &str,
    wire: WireFormat,
    tweak: impl FnOnce(&mut proxy_delegate_core::delegation::Delegation),
) -> ProxyServiceClient {
    let s = settings(endpoint);
    let mut delegation = s
        .external_service
        .delegation(ClientId::new("tokio-test").expect("valid"))
        .expect("a working block");
    delegation.config.wire = wire;
    // Feedback goes out as soon as one event waits.
    delegation.config.feedback.batch_size = 1;
    tweak(&mut delegation);
    let transport =
        HttpTransport::new(TransportConfig::from_settings(&s.external_service)).expect("transport");
    ProxyServiceClient::with_transport(delegation, s, Arc::new(transport)).expect("client")
}

fn feedback(exchange: &str) -> ProxyFeedback {
    ProxyFeedback {
        proxy_id: None,
        proxy_url: Some("socks5://192.0.2.10:1080".parse().expect("valid")),
        exchange_id: ExchangeId::new(exchange).expect("valid"),
        connection_type: ConnectionType::Websocket,
        event: FeedbackEvent::Success,
        success: true,
        latency_ms: Some(12),
        error_category: None,
        error_details: None,
        timestamp: Timestamp::from_unix_millis(1_700_000_000_000).expect("valid"),
        client_id: ClientId::new("tokio-test").expect("valid"),
    }
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} did not happen within 5 s");
}

/// The metrics recorder of this test binary (installed once, global: the
/// driver records from its own tasks).
fn recorder() -> &'static metrics_util::debugging::Snapshotter {
    static SNAPSHOTTER: std::sync::OnceLock<metrics_util::debugging::Snapshotter> =
        std::sync::OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this binary");
        snapshotter
    })
}

/// Every `name{labels}` recorded so far, with counters' values.
fn recorded() -> Vec<(String, Option<u64>)> {
    use metrics_util::debugging::DebugValue;
    recorder()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let count = match value {
                DebugValue::Counter(n) => Some(n),
                _ => None,
            };
            (format!("{}{{{}}}", key.name(), labels.join(",")), count)
        })
        .collect()
}

async fn delegates_and_reports(wire: WireFormat) {
    recorder();
    let service = start_service().await;
    let base = format!("http://{}", service.local_addr());
    let c = client(&base, wire).await;
    let request = c.request(
        ExchangeId::new("binance").expect("valid"),
        ConnectionType::Websocket,
    );
    let first = c.get_proxy(&request).await.expect("a route");
    assert_eq!(first.source, Source::Service, "{wire}: {first:?}");
    let url = first.proxy_url.clone().expect("the service names a proxy");
    assert!(url.to_string().starts_with("socks5://192.0.2."), "{url}");
    let again = c.get_proxy(&request).await.expect("a route");
    assert_eq!(again.source, Source::Cache);
    assert_eq!(again.proxy_url, first.proxy_url);
    c.report_feedback(feedback("binance"));
    eventually("feedback delivery", || c.stats().1.sent == 1).await;
    let report = c.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.undelivered, 0);
    // The documented metrics were recorded, with no secret in any label.
    let seen = recorded();
    let has = |prefix: &str| seen.iter().any(|(k, _)| k.starts_with(prefix));
    for name in [
        "proxy_delegate_service_requests_total{endpoint=http://127.0.0.1",
        "proxy_delegate_service_request_seconds{kind=resolve",
        "proxy_delegate_resolutions_total{source=service",
        "proxy_delegate_cache_total{result=miss",
        "proxy_delegate_cache_total{result=hit",
        "proxy_delegate_breaker_state{endpoint=",
        "proxy_delegate_feedback_total{outcome=sent",
        "proxy_delegate_feedback_queued{",
        "proxy_delegate_resolve_seconds{source=service",
    ] {
        assert!(has(name), "no {name}… in {seen:?}");
    }
    assert!(seen.iter().all(|(k, _)| !k.contains("pw-embedded")));
    // The service counted the event in its metrics (no credentials there).
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // (It was `contains("feedback")`, which every metrics page satisfies:
    // read the applied-events counter itself.)
    let applied: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("proxy_delegate_feedback_total{") && l.contains("event=\"success\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(
        applied, 1.0,
        "the service applied the one event:\n{metrics}"
    );
    assert!(!metrics.contains("pw-embedded"), "{metrics}");
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegates_and_reports_in_json() {
    delegates_and_reports(WireFormat::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegates_and_reports_in_postcard() {
    delegates_and_reports(WireFormat::Postcard).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_get_proxy_frees_its_slot() {
    // A listener that accepts and never answers: every resolve waits.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    // Nothing times out while the test runs, however slow the machine: no
    // resolve deadline, request timeout or failed health check can answer
    // a resolve early.
    let long = embassy_time::Duration::from_secs(60);
    let c = client_with(&format!("http://{addr}"), WireFormat::Json, |d| {
        d.config.resolve_deadline = long;
        d.config.request_timeout = long;
        d.config.endpoints.check_interval = long;
        d.config.endpoints.check_timeout = long;
    })
    .await;
    // More callers than WAITER_CAPACITY, each dropped after a moment: if
    // dropping did not free the slot, the later ones would be refused at
    // once as overloaded instead of waiting.
    let n = proxy_delegate_tokio::WAITER_CAPACITY * 2;
    for i in 0..n {
        let request = c.request(
            ExchangeId::new(&format!("ex{}", i % 8)).expect("valid"),
            ConnectionType::Http,
        );
        let waited = tokio::time::timeout(Duration::from_millis(2), c.get_proxy(&request)).await;
        assert!(waited.is_err(), "resolve {i} did not wait: {waited:?}");
    }
    let (stats, _) = c.stats();
    assert_eq!(
        stats.fallbacks[3], 0,
        "no resolve was refused as overloaded: {stats:?}"
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_of_the_proxy_drops_its_cached_route_at_once() {
    let service = start_service().await;
    let c = client(
        &format!("http://{}", service.local_addr()),
        WireFormat::Json,
    )
    .await;
    let request = c.request(
        ExchangeId::new("kraken").expect("valid"),
        ConnectionType::Websocket,
    );
    let first = c.get_proxy(&request).await.expect("a route");
    assert_eq!(first.source, Source::Service);
    assert_eq!(
        c.get_proxy(&request).await.expect("a route").source,
        Source::Cache
    );
    // A success leaves the cached route alone (it is queued, not applied).
    c.report_feedback(feedback("kraken"));
    assert_eq!(
        c.get_proxy(&request).await.expect("a route").source,
        Source::Cache
    );
    // The proxy failed: the very next resolve asks the service again.
    let mut failed = feedback("kraken");
    failed.proxy_url = first.proxy_url.as_ref().map(|u| u.without_credentials());
    failed.proxy_id = first.proxy_id.clone();
    failed.event = FeedbackEvent::Failure;
    failed.success = false;
    c.report_feedback(failed);
    assert_eq!(
        c.get_proxy(&request).await.expect("a route").source,
        Source::Service,
        "the failed proxy's cached route must be gone"
    );
    // Both events reach the service.
    eventually("feedback delivery", || c.stats().1.sent == 2).await;
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_conserved_when_reports_outrun_the_service() {
    // Nothing listens: every batch fails, and reports come faster than
    // anything could be sent.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let c = client(&format!("http://{addr}"), WireFormat::Json).await;
    let room = proxy_delegate_tokio::FEEDBACK_CAPACITY + proxy_delegate_tokio::INBOX_CAPACITY;
    let n = room as u64 * 2;
    for i in 0..n {
        c.report_feedback(feedback(&format!("ex{}", i % 16)));
    }
    let (_, fb) = c.stats();
    assert_eq!(fb.reported, n, "{fb:?}");
    assert!(fb.is_conserved(), "{fb:?}");
    assert!(fb.dropped > 0, "more than fits was reported: {fb:?}");
    assert!(fb.queued <= room, "{fb:?}");
    let report = c.shutdown(Duration::from_millis(200)).await;
    assert_eq!(
        report.delivered + report.undelivered + report.dropped,
        n,
        "every event is delivered, undelivered or counted as dropped: {report:?}"
    );
    assert_eq!(report.delivered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_feedback_is_held_not_dropped_and_all_of_it_arrives() {
    // Far more events at once than the Resolver's queue holds: they wait in
    // the client's inbox while batches go out, and none is dropped.
    let service = start_service().await;
    let base = format!("http://{}", service.local_addr());
    let c = client_with(&base, WireFormat::Json, |d| {
        d.config.feedback.batch_size = 64
    })
    .await;
    let n = (proxy_delegate_tokio::FEEDBACK_CAPACITY * 12) as u64;
    for i in 0..n {
        c.report_feedback(feedback(&format!("ex{}", i % 16)));
    }
    let report = c.shutdown(Duration::from_secs(20)).await;
    assert_eq!(report.dropped, 0, "{report:?}");
    assert_eq!(report.undelivered, 0, "{report:?}");
    assert_eq!(c.stats().1.sent, n, "{report:?}");
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let applied: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("proxy_delegate_feedback_total{") && l.contains("event=\"success\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(applied, n as f64, "the service applied every event");
    service.shutdown().await;
}

/// A service in the test's own process that answers every request with a
/// short TTL, counting the requests.
#[derive(Default)]
struct ShortTtl {
    resolves: std::sync::atomic::AtomicU64,
}

impl proxy_delegate_tokio::Transport for ShortTtl {
    fn send<'a>(
        &'a self,
        call: proxy_delegate_tokio::ServiceCall<'a>,
    ) -> proxy_delegate_tokio::BoxFuture<
        'a,
        Result<proxy_delegate_tokio::ServiceAnswer, proxy_delegate_tokio::ServiceError>,
    > {
        use proxy_delegate_core::resolver::TransmitKind;
        let body: &'static [u8] = match call.kind {
            TransmitKind::Resolve => {
                self.resolves
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                br#"{"proxy_url":"socks5://192.0.2.77:1080","strategy":"round_robin","ttl_seconds":4,"fallback_policy":"embedded_fallback","metadata":{"proxy_id":"p77"}}"#
            }
            _ => b"{}",
        };
        Box::pin(async move {
            Ok(proxy_delegate_tokio::ServiceAnswer {
                status: 200,
                body: bytes::Bytes::from_static(body),
                retry_after: None,
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_near_expiry_refreshes_in_the_background() {
    let s = settings("http://127.0.0.1:9");
    let mut delegation = s
        .external_service
        .delegation(ClientId::new("tokio-test").expect("valid"))
        .expect("a working block");
    // Answers are fresh for 4 s; from half of that a hit refreshes ahead.
    // (Wide windows: a slow machine oversleeps.)
    delegation.config.cache.min_ttl = embassy_time::Duration::from_secs(1);
    delegation.config.cache.refresh_ahead_percent = 50;
    let service = Arc::new(ShortTtl::default());
    let c = ProxyServiceClient::with_transport(delegation, s, service.clone()).expect("client");
    let request = c.request(ExchangeId::new("okx").expect("valid"), ConnectionType::Http);
    let resolves = || service.resolves.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        c.get_proxy(&request).await.expect("route").source,
        Source::Service
    );
    assert_eq!(resolves(), 1);
    let first = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    // A hit past half the TTL: answered from the cache at once, and it
    // wakes the driver, which asks the service ahead of expiry.
    assert_eq!(
        c.get_proxy(&request).await.expect("route").source,
        Source::Cache
    );
    eventually("the refresh request", || resolves() == 2).await;
    // Past the first answer's TTL (4 s), the refreshed entry (fetched at
    // about 2.5 s, so refreshed ahead again only from about 4.5 s) answers:
    // no wait, no new request.
    tokio::time::sleep_until(first + Duration::from_millis(4_200)).await;
    assert_eq!(
        c.get_proxy(&request).await.expect("route").source,
        Source::Cache
    );
    assert_eq!(resolves(), 2);
}
