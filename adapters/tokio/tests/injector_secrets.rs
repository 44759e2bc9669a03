//! No proxy credential leaves the injector: connections through real
//! proxies with user names and passwords, succeeding and failing, with every
//! log line at TRACE captured (the injector's, the client's, reqwest's and
//! hyper's), and the `Debug` of everything handed out. The log lines of a
//! proxied connection name the transport, exchange, scheme and `host:port`.
#![cfg(feature = "injector")]

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use common::proxies::{Microsocks, Tinyproxy};
use common::targets::{TestPki, http_target, ws_echo};
use futures_util::{SinkExt as _, StreamExt as _};
use proxy_delegate_core::model::ClientId;
use proxy_delegate_service::{Service, ServiceConfig};
use proxy_delegate_tokio::{
    HttpTransport, InjectorConfig, ProxyInjector, ProxyServiceClient, TransportConfig,
};
use tokio_tungstenite::tungstenite::Message;

const USER: &str = "desk";
const PASS: &str = "pw-Kx93hq";
const WRONG: &str = "pw-wrong71";

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .try_init()
            .expect("install the tracing subscriber");
    });
}

fn log_text() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// Every form a secret of this test could take in text.
fn secrets() -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    vec![
        PASS.to_owned(),
        WRONG.to_owned(),
        b64(&format!("{USER}:{PASS}")),
        b64(&format!("{USER}:{WRONG}")),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for secret in secrets() {
        assert!(
            !text.contains(&secret),
            "{what} holds a secret ({secret}):\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_reaches_a_log_line_an_error_or_a_debug() {
    capture();
    let pki = TestPki::new();
    let ws = ws_echo(Some(&pki)).await;
    let http = http_target(Some(&pki)).await;
    let tiny = Tinyproxy::start(Some((USER, PASS)));
    let socks = Microsocks::start(Some((USER, PASS)));

    // The service hands out the proxies, credentials included.
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n[pool]\nstrategy = \"round_robin\"\n\
         [[proxies]]\nid = \"socks\"\nurl = \"{}\"\nconnection_types = [\"websocket\"]\n\
         [[proxies]]\nid = \"tiny\"\nurl = \"{}\"\nconnection_types = [\"http\"]\n",
        socks.url("socks5h"),
        tiny.url()
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let service = Service::new(ServiceConfig::parse(&toml, false).expect("config"))
        .expect("service")
        .start(listener)
        .expect("starts");
    let yaml = format!(
        "proxy:\n  enabled: true\n  exchanges:\n    kraken:\n      websocket: {}\n  external_service:\n    enabled: true\n    endpoints: [\"http://{}\"]\n",
        tiny.url_with(USER, WRONG),
        service.local_addr()
    );
    let settings = proxy_delegate_config::Loader::new()
        .yaml_str("config.yaml", yaml)
        .load()
        .expect("settings")
        .settings;
    let mut delegation = settings
        .external_service
        .delegation(ClientId::new("secrets-test").expect("valid"))
        .expect("delegation");
    delegation.config.feedback.batch_size = 1;
    let transport = HttpTransport::new(TransportConfig::from_settings(&settings.external_service))
        .expect("transport");
    let client =
        ProxyServiceClient::with_transport(delegation, settings.clone(), Arc::new(transport))
            .expect("client");
    let config = InjectorConfig {
        connect_timeout: Duration::from_secs(5),
        ca_file: Some(pki.ca_path()),
        system_roots: false,
        websocket: None,
    };
    let injector = ProxyInjector::with_config(settings, Some(client.clone()), config.clone())
        .expect("injector");

    // A WebSocket through SOCKS5 with credentials, from the service.
    let mut socket = injector
        .connect_websocket(&ws.url_for_host("localhost", "/"), "binance")
        .await
        .expect("connects");
    socket.send(Message::text("x")).await.expect("send");
    assert!(socket.next().await.is_some());
    assert_clean("the socket's Debug", &format!("{socket:?}"));
    assert_clean("the injector's Debug", &format!("{injector:?}"));
    drop(socket);

    // HTTP through tinyproxy with BasicAuth, and its reqwest client.
    let url = http.url_for_host("localhost", "/");
    let request = reqwest::Request::new(reqwest::Method::GET, url.parse().expect("URL"));
    let response = injector.send("binance", request).await.expect("GET");
    assert_eq!(response.status(), 200);
    let http_client = injector.http_client("binance").await.expect("client");
    assert_clean("the reqwest client's Debug", &format!("{http_client:?}"));

    // Wrong credentials (the embedded route of another exchange, through a
    // client that has no service answer for it): refused, and said so
    // without the password.
    let embedded_only = ProxyInjector::with_config(
        proxy_delegate_config::Loader::new()
            .yaml_str(
                "config.yaml",
                format!(
                    "proxy:\n  enabled: true\n  exchanges:\n    kraken:\n      websocket: {}\n",
                    tiny.url_with(USER, WRONG)
                ),
            )
            .load()
            .expect("settings")
            .settings,
        None,
        config,
    )
    .expect("injector");
    let e = embedded_only
        .connect_websocket(&ws.url("/"), "kraken")
        .await
        .expect_err("wrong password");
    assert_clean("the error's Display", &e.to_string());
    assert_clean("the error's Debug", &format!("{e:?}"));

    let report = client.shutdown(Duration::from_secs(2)).await;
    assert_eq!(report.undelivered, 0);
    service.shutdown().await;

    let log = log_text();
    assert_clean("the log", &log);
    // The connection's own line names what an operator needs.
    let line = log
        .lines()
        .find(|l| l.contains("connected to") && l.contains("transport=\"websocket\""))
        .unwrap_or_else(|| panic!("no connection line in the log:\n{log}"));
    for needle in [
        "exchange=\"binance\"",
        "scheme=\"socks5h\"",
        &format!("proxy=\"127.0.0.1:{}\"", socks.port()),
    ] {
        assert!(line.contains(needle), "{needle} missing from: {line}");
    }
    assert!(
        log.lines()
            .any(|l| l.contains("failed") && l.contains("category=\"proxy_auth\"")),
        "no failure line with its category:\n{log}"
    );
}
