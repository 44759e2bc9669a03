//! What the demo sets up: the service's configuration, the client's
//! settings (delegation and the embedded configuration) and the client with
//! a demo's timings; and the service's view of a proxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proxy_delegate_core::model::{ClientId, ProxyUrl};
use proxy_delegate_service::{Running, Service, ServiceConfig};
use proxy_delegate_tokio::{HttpTransport, ProxyServiceClient, TransportConfig};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::proxies::LocalProxy;
use super::{
    BREAKER_OPEN_MS, CLIENT_ID, DOWN_CHECK_MS, SERVICE_TTL_SECONDS, STALE_GRACE_SECONDS,
    VIEW_TIMEOUT,
};
use crate::Failure;

/// The proxy's URL with its password as `***`.
pub(super) fn shown_url(proxy: &LocalProxy) -> String {
    proxy
        .url_with_credentials()
        .parse::<ProxyUrl>()
        .map_or_else(
            |_| format!("127.0.0.1:{}", proxy.addr().port()),
            |u| u.to_string(),
        )
}

/// The service's configuration: shaped like its embedded default (ids,
/// regions, coinbase's policy), its proxies the demo's own, short TTLs, and
/// one failure ejects a proxy.
pub(super) fn service_config(
    socks: &LocalProxy,
    http: &LocalProxy,
) -> Result<ServiceConfig, Failure> {
    let toml = format!(
        r#"listen = "127.0.0.1:0"

[pool]
strategy = "round_robin"
ttl_seconds = {SERVICE_TTL_SECONDS}
eject_consecutive_failures = 1

[exchanges.coinbase]
fallback_policy = "direct_connection"

[[proxies]]
id = "{}"
url = "{}"
regions = ["us-east-1"]

[[proxies]]
id = "{}"
url = "{}"
regions = ["eu-west-1"]
"#,
        socks.kind().id(),
        socks.url_with_credentials(),
        http.kind().id(),
        http.url_with_credentials(),
    );
    ServiceConfig::parse(&toml, false)
        .map_err(|e| Failure::Failed(format!("the demo's service configuration: {e}")))
}

pub(super) fn start_service(
    config: &ServiceConfig,
    listener: TcpListener,
) -> Result<Running, Failure> {
    Service::new(config.clone())
        .and_then(|s| s.start(listener))
        .map_err(|e| Failure::Failed(format!("the demo's service: {e}")))
}

/// The client's settings: delegation to the demo's service, and an embedded
/// (cryptofeed-compatible) configuration through the demo's proxies.
pub(super) fn client_settings(
    socks: &LocalProxy,
    http: &LocalProxy,
    service: SocketAddr,
) -> Result<Box<proxy_delegate_config::Settings>, Failure> {
    let yaml = format!(
        r#"proxy:
  enabled: true
  default:
    websocket: "{}"
  exchanges:
    kraken:
      websocket: "{}"
  external_service:
    enabled: true
    endpoints: ["http://{service}"]
    client_id: "{CLIENT_ID}"
    timeout_seconds: 1
    resolve_deadline_ms: 1000
    hedge_delay_ms: 0
    stale_grace_seconds: {STALE_GRACE_SECONDS}
"#,
        socks.url_with_credentials(),
        http.url_with_credentials(),
    );
    proxy_delegate_config::Loader::new()
        .yaml_str("demo.yaml", yaml)
        .load()
        .map(|loaded| loaded.settings)
        .map_err(|e| Failure::Failed(format!("the demo's client configuration: {e}")))
}

/// The client, with the timings of a demo: a breaker that opens for a
/// second, checks of a down service four times a second, feedback sent
/// within 0.2 s and retried within a second.
pub(super) fn build_client(
    settings: &proxy_delegate_config::Settings,
) -> Result<ProxyServiceClient, Failure> {
    use embassy_time::Duration as Ticks;
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        Failure::Failed(format!("the demo's client ({what}): {e}"))
    };
    let client_id = ClientId::new(CLIENT_ID).map_err(|e| failed("client id", &e))?;
    let mut delegation = settings
        .external_service
        .delegation(client_id)
        .map_err(|e| failed("delegation", &e))?;
    let endpoints = &mut delegation.config.endpoints;
    endpoints.breaker.open_duration = Ticks::from_millis(BREAKER_OPEN_MS);
    endpoints.breaker.max_open_duration = Ticks::from_millis(2 * BREAKER_OPEN_MS);
    endpoints.check_interval = Ticks::from_secs(1);
    endpoints.down_check_interval = Ticks::from_millis(DOWN_CHECK_MS);
    endpoints.check_jitter_percent = 10;
    endpoints.check_timeout = Ticks::from_millis(500);
    endpoints.suspect_check_timeout = Ticks::from_millis(500);
    let feedback = &mut delegation.config.feedback;
    feedback.max_age = Ticks::from_millis(200);
    feedback.retry.base = Ticks::from_millis(200);
    feedback.retry.max_delay = Ticks::from_secs(1);
    let mut transport = TransportConfig::from_settings(&settings.external_service);
    transport.connect_timeout = Duration::from_secs(1);
    // Plain http:// on loopback: no certificate to check.
    transport.system_roots = false;
    let transport = HttpTransport::new(transport).map_err(|e| failed("transport", &e))?;
    ProxyServiceClient::with_transport(delegation, boxed(settings), Arc::new(transport))
        .map_err(|e| failed("client", &e))
}

/// The settings, copied to the heap (out of line: the copy's temporary lives
/// in this frame, not in the caller's async state).
#[inline(never)]
fn boxed(settings: &proxy_delegate_config::Settings) -> Box<proxy_delegate_config::Settings> {
    Box::new(settings.clone())
}

/// What `GET /api/v1/proxies` says of proxy `id`, once it shows the
/// reported failure (or after [`VIEW_TIMEOUT`]).
pub(super) async fn service_view(service: SocketAddr, id: &str) -> String {
    let url = format!("http://{service}/api/v1/proxies");
    // Loopback only: never through a proxy from the environment.
    let Ok(http) = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()
    else {
        return "unknown (no HTTP client)".into();
    };
    let deadline = Instant::now() + VIEW_TIMEOUT;
    let mut last = "unknown (no answer)".to_owned();
    loop {
        let row = async {
            let body: serde_json::Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            body["proxies"]
                .as_array()?
                .iter()
                .find(|p| p["id"] == id)
                .cloned()
        };
        if let Some(row) = row.await {
            let state = row["state"].as_str().unwrap_or("unknown").to_owned();
            let failures: Vec<String> = row["recent_failures"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    format!(
                        "{} {}",
                        f["count"].as_u64().unwrap_or(0),
                        f["category"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            last = if failures.is_empty() {
                format!("{state}, no failure reported yet")
            } else {
                format!("{state}, recent failures: {}", failures.join(", "))
            };
            if state == "ejected" {
                return last;
            }
        }
        if Instant::now() >= deadline {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
