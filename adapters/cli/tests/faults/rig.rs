//! The pieces every fault scenario is built from: real forward proxies
//! (tinyproxy and microsocks), the service's configuration file and the
//! real `serve` binary, the client (with timings shortened so that a
//! scenario lasts seconds) and its injector, and reads of the service's
//! `/metrics` and `/api/v1/proxies`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proxy_delegate_config::Settings;
use proxy_delegate_core::model::ClientId;
use proxy_delegate_tokio::{
    HttpTransport, InjectorConfig, ProxyInjector, ProxyServiceClient, TransportConfig,
};

use crate::common::http_client;
use crate::proxies::{Microsocks, Tinyproxy};
use proxy_delegate_test_support::metric_sum;

/// The client's bearer token at the service (client `feed`).
pub(crate) const TOKEN: &str = "tok-faults-feed-7c21e93b";
/// Another client's token (`ops`), which stays when `feed`'s is revoked.
pub(crate) const OPS_TOKEN: &str = "tok-faults-ops-41d0aa5e";
/// The id the client reports as.
pub(crate) const CLIENT_ID: &str = "faults-client";

/// How long a resolve waits for the service before it falls back.
pub(crate) const RESOLVE_DEADLINE: Duration = Duration::from_millis(250);
/// How long one call to the service may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an endpoint's breaker stays open once it trips (every trip:
/// the multiplier is 1).
pub(crate) const BREAKER_OPEN: Duration = Duration::from_secs(1);
/// How often a down endpoint is checked.
pub(crate) const DOWN_CHECK: Duration = Duration::from_millis(250);

/// The answers' TTL at the service (`[pool] ttl_seconds`): short, so that
/// the client keeps asking the service under steady load.
const ANSWER_TTL_SECONDS: u32 = 1;

// ------------------------------------------------------------ proxies

/// The forward proxies of one scenario, each a real process on 127.0.0.1:
/// three in the service's inventory and one in the client's embedded
/// configuration (its fallback).
pub(crate) struct Proxies {
    /// tinyproxy (HTTP CONNECT), inventory id `<prefix>-tiny`.
    pub(crate) tiny: Tinyproxy,
    /// microsocks (SOCKS5), inventory id `<prefix>-socks-a`.
    pub(crate) socks_a: Microsocks,
    /// microsocks (SOCKS5), inventory id `<prefix>-socks-b`.
    pub(crate) socks_b: Microsocks,
    /// microsocks, the embedded configuration's proxy (`socks5h`).
    pub(crate) embedded: Microsocks,
}

impl std::fmt::Debug for Proxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxies")
            .field("tiny", &self.tiny.port())
            .field("socks_a", &self.socks_a.port())
            .field("socks_b", &self.socks_b.port())
            .field("embedded", &self.embedded.port())
            .finish()
    }
}

impl Proxies {
    /// Starts the four proxies (blocking work, on the blocking pool).
    pub(crate) async fn start() -> Self {
        tokio::task::spawn_blocking(|| Self {
            tiny: Tinyproxy::start(None),
            socks_a: Microsocks::start(None),
            socks_b: Microsocks::start(None),
            embedded: Microsocks::start(None),
        })
        .await
        .expect("start the proxies")
    }

    /// The service's inventory: (id, URL), ids prefixed with `prefix`.
    pub(crate) fn inventory(&self, prefix: &str) -> Vec<(String, String)> {
        vec![
            (format!("{prefix}-tiny"), self.tiny.url()),
            (format!("{prefix}-socks-a"), self.socks_a.url("socks5")),
            (format!("{prefix}-socks-b"), self.socks_b.url("socks5")),
        ]
    }

    /// The embedded configuration's proxy.
    pub(crate) fn embedded_url(&self) -> String {
        self.embedded.url("socks5h")
    }
}

// ------------------------------------------------------------ the service

/// Writes the service's configuration to `path`: the `clients` (name,
/// bearer token; `auth` is on), the `inventory`, answers with a TTL of
/// [`ANSWER_TTL_SECONDS`], and ejection after three proxy failures in a row.
pub(crate) fn write_service_config(
    path: &Path,
    clients: &[(&str, &str)],
    inventory: &[(String, String)],
) {
    let mut text = format!(
        "[pool]\nttl_seconds = {ANSWER_TTL_SECONDS}\neject_consecutive_failures = 3\n\
         eject_base_seconds = 60\n"
    );
    for (name, token) in clients {
        text.push_str(&format!(
            "\n[[clients]]\nname = \"{name}\"\nbearer_tokens = [\"{token}\"]\n"
        ));
    }
    for (id, url) in inventory {
        text.push_str(&format!("\n[[proxies]]\nid = \"{id}\"\nurl = \"{url}\"\n"));
    }
    // Written aside and renamed: a reload never reads half a file.
    let aside = path.with_extension("toml.new");
    std::fs::write(&aside, text).expect("write the service configuration");
    std::fs::rename(&aside, path).expect("move the service configuration into place");
}

/// The usual clients: `feed` (this client) and `ops`.
pub(crate) const CLIENTS: [(&str, &str); 2] = [("feed", TOKEN), ("ops", OPS_TOKEN)];

/// A service configuration file in `dir` with the usual clients and
/// `proxies`' inventory (ids prefixed with `prefix`).
pub(crate) fn service_config(dir: &Path, name: &str, proxies: &Proxies, prefix: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    write_service_config(&path, &CLIENTS, &proxies.inventory(prefix));
    path
}

/// The service's `/metrics` (open without credentials).
pub(crate) async fn service_metrics(base: &str) -> String {
    let r = http_client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert!(
        r.status().is_success(),
        "GET {base}/metrics: {}",
        r.status()
    );
    r.text().await.expect("the metrics text")
}

/// Feedback events the service took from any client: applied, plus those
/// it accepted and ignored (no proxy id: routes of the embedded
/// configuration; unknown proxies).
pub(crate) async fn service_feedback_received(base: &str) -> f64 {
    let text = service_metrics(base).await;
    metric_sum(&text, "proxy_delegate_feedback_total", &[])
        + metric_sum(&text, "proxy_delegate_feedback_ignored_total", &[])
}

/// `GET /api/v1/proxies` with the `ops` token: the row of proxy `id`.
pub(crate) async fn proxy_row(base: &str, id: &str) -> serde_json::Value {
    let r = http_client()
        .get(format!("{base}/api/v1/proxies"))
        .bearer_auth(OPS_TOKEN)
        .send()
        .await
        .expect("GET /api/v1/proxies");
    assert!(
        r.status().is_success(),
        "GET /api/v1/proxies: {}",
        r.status()
    );
    let all: serde_json::Value = r.json().await.expect("the inventory as JSON");
    all["proxies"]
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not in the inventory: {all}"))
}

// ------------------------------------------------------------ the client

/// Where the client finds the service.
#[derive(Debug, Clone)]
pub(crate) enum Endpoints {
    /// These URLs, the first preferred.
    List(Vec<String>),
    /// DNS SRV records of this name.
    Srv(String),
}

/// The client's `config.yaml`: the embedded default proxy `embedded` for
/// both connection types, delegation to `endpoints` with [`TOKEN`], the
/// scenario's timeout and resolve deadline. Loaded twice (the client and
/// the injector each own a copy; loading is cheaper on the stack than
/// cloning).
pub(crate) fn client_settings(endpoints: &Endpoints, embedded: &str) -> Box<Settings> {
    let discovery = match endpoints {
        Endpoints::List(urls) => {
            let quoted: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
            format!("endpoints: [{}]", quoted.join(", "))
        }
        Endpoints::Srv(name) => format!("srv_name: {name}"),
    };
    let yaml = format!(
        "proxy:\n\
         \x20 enabled: true\n\
         \x20 default:\n\
         \x20   http: \"{embedded}\"\n\
         \x20   websocket: \"{embedded}\"\n\
         \x20 external_service:\n\
         \x20   enabled: true\n\
         \x20   {discovery}\n\
         \x20   auth_method: bearer_token\n\
         \x20   auth_credentials:\n\
         \x20     token: \"{TOKEN}\"\n\
         \x20   timeout_seconds: {}\n\
         \x20   resolve_deadline_ms: {}\n",
        REQUEST_TIMEOUT.as_secs(),
        RESOLVE_DEADLINE.as_millis(),
    );
    proxy_delegate_config::Loader::new()
        .yaml_str("faults-client.yaml", yaml)
        .env(std::iter::empty::<(String, String)>())
        .load()
        .expect("the client settings load")
        .settings
}

/// The client over the HTTP transport, as `from_settings` builds it, with
/// the timings of a scenario: a breaker that opens for [`BREAKER_OPEN`]
/// after five failures in a row (each trip as long: no growth), health
/// checks every 0.5 s ([`DOWN_CHECK`] when down), feedback in batches of
/// 16 or every 0.1 s, retried after 0.1–0.5 s.
pub(crate) fn build_client(settings: Box<Settings>) -> ProxyServiceClient {
    use embassy_time::Duration as Ticks;
    let ticks = |d: Duration| Ticks::from_micros(u64::try_from(d.as_micros()).expect("short"));
    let client_id = ClientId::new(CLIENT_ID).expect("a client id");
    let mut delegation = settings
        .external_service
        .delegation(client_id)
        .expect("the delegation settings");
    let endpoints = &mut delegation.config.endpoints;
    endpoints.breaker.failure_threshold = 5;
    endpoints.breaker.open_duration = ticks(BREAKER_OPEN);
    endpoints.breaker.max_open_duration = ticks(BREAKER_OPEN);
    endpoints.breaker.open_duration_multiplier = 1;
    endpoints.breaker.probe_timeout = ticks(REQUEST_TIMEOUT);
    endpoints.check_interval = Ticks::from_millis(500);
    endpoints.down_check_interval = ticks(DOWN_CHECK);
    endpoints.check_jitter_percent = 10;
    endpoints.check_timeout = Ticks::from_millis(500);
    endpoints.suspect_check_timeout = Ticks::from_millis(500);
    let feedback = &mut delegation.config.feedback;
    feedback.batch_size = 16;
    feedback.max_age = Ticks::from_millis(100);
    feedback.ack_timeout = Ticks::from_secs(3);
    feedback.retry.base = Ticks::from_millis(100);
    feedback.retry.max_delay = Ticks::from_millis(500);
    let mut transport = TransportConfig::from_settings(&settings.external_service);
    transport.request_timeout = REQUEST_TIMEOUT;
    transport.connect_timeout = REQUEST_TIMEOUT;
    // Plain http:// on loopback: no certificate to check.
    transport.system_roots = false;
    let transport = HttpTransport::new(transport).expect("the HTTP transport");
    ProxyServiceClient::with_transport(delegation, settings, Arc::new(transport))
        .expect("the client builds")
}

/// The injector over `client`, connecting within 5 s.
pub(crate) fn injector(settings: Box<Settings>, client: ProxyServiceClient) -> ProxyInjector {
    let config = InjectorConfig {
        connect_timeout: Duration::from_secs(5),
        ..InjectorConfig::default()
    };
    ProxyInjector::with_config(settings, Some(client), config).expect("the injector builds")
}
