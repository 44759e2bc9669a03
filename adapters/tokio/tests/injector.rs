//! `ProxyInjector` against real parts on 127.0.0.1: the reference service
//! (in-process), Debian's tinyproxy (HTTP CONNECT with BasicAuth, and as an
//! `https://` proxy behind a TLS front) and microsocks (SOCKS5 with user
//! name and password), WebSocket and HTTP targets, plain and TLS with a CA
//! made here. Each outcome is checked where it lands: the category of the
//! error, the feedback the service applied, and the service's view of the
//! proxy.
#![cfg(feature = "injector")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::proxies::{Microsocks, Tinyproxy};
use common::ssh_socks::SshSocks;
use common::targets::{Target, TestPki, closed_port, http_target, tls_front, ws_echo};
use futures_util::{SinkExt as _, StreamExt as _};
use proxy_delegate_core::model::ErrorCategory;
use proxy_delegate_core::resolver::Source;
use proxy_delegate_service::{Running, Service, ServiceConfig};
use proxy_delegate_tokio::{
    ConnectError, HttpTransport, InjectorConfig, ProxyInjector, ProxyServiceClient, TransportConfig,
};
use tokio_tungstenite::tungstenite::Message;

const USER: &str = "desk";
const PASS: &str = "pw-Zq81xv";
const EXCHANGE: &str = "binance";

/// The reference service with these proxies (id, URL) in its inventory,
/// round robin, ejecting a proxy after one failure.
async fn start_service(proxies: &[(&str, &str)]) -> Running {
    let mut toml = String::from(
        "listen = \"127.0.0.1:0\"\n[pool]\nstrategy = \"round_robin\"\nttl_seconds = 300\n\
         eject_consecutive_failures = 1\n",
    );
    for (id, url) in proxies {
        toml.push_str(&format!("[[proxies]]\nid = \"{id}\"\nurl = \"{url}\"\n"));
    }
    let config = ServiceConfig::parse(&toml, false).expect("valid service config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    Service::new(config)
        .expect("service builds")
        .start(listener)
        .expect("service starts")
}

fn settings(yaml: &str) -> Box<proxy_delegate_config::Settings> {
    proxy_delegate_config::Loader::new()
        .yaml_str("config.yaml", yaml.to_owned())
        .load()
        .expect("valid settings")
        .settings
}

/// An injector delegating to `service`; feedback goes out one event at a
/// time, at once.
fn delegating(service: &Running, pki: &TestPki) -> ProxyInjector {
    let s = settings(&format!(
        "proxy:\n  enabled: true\n  external_service:\n    enabled: true\n    endpoints: [\"http://{}\"]\n    resolve_deadline_ms: 2000\n",
        service.local_addr()
    ));
    let mut delegation = s
        .external_service
        .delegation(proxy_delegate_core::model::ClientId::new("injector-test").expect("valid"))
        .expect("a working block");
    delegation.config.feedback.batch_size = 1;
    let transport =
        HttpTransport::new(TransportConfig::from_settings(&s.external_service)).expect("transport");
    let client = ProxyServiceClient::with_transport(delegation, s.clone(), Arc::new(transport))
        .expect("client");
    ProxyInjector::with_config(s, Some(client), config(pki)).expect("injector")
}

fn config(pki: &TestPki) -> InjectorConfig {
    InjectorConfig {
        connect_timeout: Duration::from_secs(5),
        ca_file: Some(pki.ca_path()),
        system_roots: false,
        websocket: None,
    }
}

/// The service's row for proxy `id` (GET /api/v1/proxies).
async fn row(service: &Running, id: &str) -> serde_json::Value {
    let url = format!("http://{}/api/v1/proxies", service.local_addr());
    let body: serde_json::Value = reqwest::get(&url)
        .await
        .expect("GET /api/v1/proxies")
        .json()
        .await
        .expect("JSON");
    body["proxies"]
        .as_array()
        .expect("a list of proxies")
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no proxy {id} in {body}"))
}

/// Waits (up to 10 s) until the service's row for `id` satisfies `done`.
async fn row_until(
    service: &Running,
    id: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..400 {
        last = row(service, id).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the service's view of {id} never showed {what}: {last}");
}

fn failures(row: &serde_json::Value, category: &str) -> u64 {
    row["recent_failures"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["category"] == category)
        .and_then(|f| f["count"].as_u64())
        .unwrap_or(0)
}

/// Echoes one message through the socket and closes it.
async fn echo(ws: &mut proxy_delegate_tokio::InjectedWebSocket) {
    ws.send(Message::text("ping-42")).await.expect("send");
    let back = ws.next().await.expect("a message").expect("no error");
    assert_eq!(back, Message::text("ping-42"));
}

async fn ws_through(injector: &ProxyInjector, target: &Target) -> Result<(), ConnectError> {
    let mut ws = injector
        .connect_websocket(&target.url_for_host("localhost", "/stream"), EXCHANGE)
        .await?;
    echo(&mut ws).await;
    ws.close().await.expect("close");
    Ok(())
}

#[tokio::test]
async fn websockets_and_http_go_through_every_proxy_kind_and_the_service_learns_of_them() {
    let pki = TestPki::new();
    let ws_plain = ws_echo(None).await;
    let ws_tls = ws_echo(Some(&pki)).await;
    let http_plain = http_target(None).await;
    let http_tls = http_target(Some(&pki)).await;
    let tiny = Tinyproxy::start(Some((USER, PASS)));
    let socks = Microsocks::start(Some((USER, PASS)));
    let front = tls_front(tiny.addr(), &pki).await;
    let https_proxy = format!("https://{USER}:{PASS}@localhost:{}", front.port());
    let kinds = [
        ("http", tiny.url()),
        ("https", https_proxy),
        ("socks5", socks.url("socks5")),
        ("socks5h", socks.url("socks5h")),
    ];
    for (kind, url) in kinds {
        let service = start_service(&[(kind, &url)]).await;
        let injector = delegating(&service, &pki);

        for target in [&ws_plain, &ws_tls] {
            let mut ws = injector
                .connect_websocket(&target.url_for_host("localhost", "/stream"), EXCHANGE)
                .await
                .unwrap_or_else(|e| panic!("{kind} websocket to {}: {e}", target.url("")));
            assert_eq!(
                ws.route().proxy_url.as_ref().map(|p| p.scheme().as_str()),
                Some(kind)
            );
            assert!(matches!(ws.route().source, Source::Service | Source::Cache));
            echo(&mut ws).await;
            ws.close().await.expect("close");
        }
        for target in [&http_plain, &http_tls] {
            let url = target.url_for_host("localhost", "/");
            let request = reqwest::Request::new(reqwest::Method::GET, url.parse().expect("URL"));
            let response = injector
                .send(EXCHANGE, request)
                .await
                .unwrap_or_else(|e| panic!("{kind} GET {url}: {e}"));
            assert_eq!(response.status(), 200, "{kind} GET {url}");
            // The plain reqwest client for the exchange goes the same way.
            let client = injector.http_client(EXCHANGE).await.expect("a client");
            let status = client.get(&url).send().await.expect("GET").status();
            assert_eq!(status, 200, "{kind} http_client GET {url}");
        }
        // Four connections reported: connect_start, success with a latency,
        // disconnect; none left open at the service.
        let seen = row_until(
            &service,
            kind,
            "four successes and no open connection",
            |r| {
                r["latency_ms"].is_number()
                    && r["open_connections"] == 0
                    && r["success_rate"] == 1.0
            },
        )
        .await;
        assert_eq!(seen["state"], "active", "{kind}: {seen}");
    }
    // Every connection reached a target through the proxies (none direct).
    assert_eq!(ws_plain.upgraded(), 4);
    assert_eq!(ws_tls.upgraded(), 4);
}

#[tokio::test]
async fn wrong_credentials_are_proxy_auth_at_the_service() {
    let pki = TestPki::new();
    let target = ws_echo(None).await;
    let tiny = Tinyproxy::start(Some((USER, PASS)));
    let socks = Microsocks::start(Some((USER, PASS)));
    for (id, url) in [
        ("tiny", tiny.url_with(USER, "wrong-pass")),
        ("socks", socks.url_with("socks5h", USER, "wrong-pass")),
    ] {
        let service = start_service(&[(id, &url)]).await;
        let injector = delegating(&service, &pki);
        let e = ws_through(&injector, &target).await.expect_err("refused");
        assert_eq!(e.category(), Some(ErrorCategory::ProxyAuth), "{id}: {e}");
        let text = e.to_string();
        assert!(
            !text.contains("wrong-pass") && !text.contains(PASS),
            "{text}"
        );
        assert!(
            text.contains("127.0.0.1"),
            "the message names the proxy: {text}"
        );
        row_until(&service, id, "a proxy_auth failure", |r| {
            failures(r, "proxy_auth") >= 1
        })
        .await;

        // With a good proxy beside it, the retry moves on and the service
        // ejects the bad one: it is no longer handed out.
        let good = Microsocks::start(None);
        let service = start_service(&[(id, &url), ("good", &good.url("socks5h"))]).await;
        let injector = delegating(&service, &pki);
        let ws = injector
            .connect_websocket(&target.url("/"), EXCHANGE)
            .await
            .expect("the retry goes through the good proxy");
        assert_eq!(
            ws.route().proxy_url.as_ref().map(|p| p.port()),
            Some(good.port())
        );
        let seen = row_until(&service, id, "the bad proxy ejected", |r| {
            r["state"] == "ejected"
        })
        .await;
        assert!(failures(&seen, "proxy_auth") >= 1, "{seen}");
        drop(ws);
    }
    assert_eq!(target.opened(), 2, "only the good proxy reached the target");
}

#[tokio::test]
async fn a_refused_tunnel_is_tunnel_refused_and_the_target_is_not_blamed() {
    let pki = TestPki::new();
    let nobody = closed_port();
    let tiny = Tinyproxy::start(Some((USER, PASS)));
    let socks = Microsocks::start(Some((USER, PASS)));
    for (id, url) in [("tiny", tiny.url()), ("socks", socks.url("socks5"))] {
        let service = start_service(&[(id, &url)]).await;
        let injector = delegating(&service, &pki);
        let e = injector
            .connect_websocket(&format!("ws://127.0.0.1:{}/", nobody.port()), EXCHANGE)
            .await
            .expect_err("nothing listens there");
        assert_eq!(
            e.category(),
            Some(ErrorCategory::TunnelRefused),
            "{id}: {e}"
        );
        row_until(&service, id, "a tunnel_refused failure", |r| {
            failures(r, "tunnel_refused") >= 1
        })
        .await;
    }
}

#[tokio::test]
async fn target_answers_are_classified_and_only_proxy_faults_are_retried() {
    let pki = TestPki::new();
    let ws = ws_echo(Some(&pki)).await;
    let http = http_target(None).await;
    let socks = Microsocks::start(Some((USER, PASS)));

    let cases = [
        (451, ErrorCategory::GeoBlocked, 2),
        (403, ErrorCategory::GeoBlocked, 2),
        (429, ErrorCategory::RateLimited, 2),
        // The target's fault: no second try.
        (503, ErrorCategory::TargetHttp5xx, 1),
    ];
    for (status, category, tries) in cases {
        let path = format!("/status/{status}");
        // A fresh service each time: a geo-block cools the proxy down for
        // the exchange, which would send the next connection direct.
        let service = start_service(&[("a", &socks.url("socks5h"))]).await;
        let injector = delegating(&service, &pki);
        let before = ws.opened();
        let e = injector
            .connect_websocket(&ws.url_for_host("localhost", &path), EXCHANGE)
            .await
            .expect_err("refused by the target");
        assert_eq!(e.category(), Some(category), "ws {status}: {e}");
        assert_eq!(ws.opened() - before, tries, "ws {status}: attempts");
        let seen = row_until(&service, "a", "the failure", |r| {
            failures(r, category.as_str()) >= 1
        })
        .await;
        assert!(seen["recent_failures"].is_array(), "{seen}");

        let service = start_service(&[("a", &socks.url("socks5h"))]).await;
        let injector = delegating(&service, &pki);
        let count = |t: &Target| t.paths().iter().filter(|p| **p == path).count();
        let before = count(&http);
        let request =
            reqwest::Request::new(reqwest::Method::GET, http.url(&path).parse().expect("URL"));
        let e = injector.send(EXCHANGE, request).await.expect_err("refused");
        assert_eq!(e.category(), Some(category), "http {status}: {e}");
        assert_eq!(count(&http) - before, tries, "http {status}: attempts");
    }
}

#[tokio::test]
async fn a_proxy_killed_mid_session_ends_the_socket_and_the_next_connection_moves_on() {
    let pki = TestPki::new();
    let target = ws_echo(None).await;
    let mut first = Microsocks::start(Some((USER, PASS)));
    let second = Microsocks::start(Some((USER, PASS)));
    let urls = [first.url("socks5h"), second.url("socks5h")];
    let service = start_service(&[("first", &urls[0]), ("second", &urls[1])]).await;
    let injector = delegating(&service, &pki);

    // Round robin from the first: open one socket through each.
    let mut a = injector
        .connect_websocket(&target.url("/a"), EXCHANGE)
        .await
        .expect("connects");
    echo(&mut a).await;
    let through_first = a.route().proxy_url.as_ref().map(|p| p.port()) == Some(first.port());
    assert!(
        through_first,
        "round robin starts at the first proxy: {:?}",
        a.route()
    );

    // The proxy dies under an open socket: the stream ends, with a disconnect.
    first.kill();
    let ended = tokio::time::timeout(Duration::from_secs(5), a.next())
        .await
        .expect("the socket notices within 5 s");
    assert!(!matches!(ended, Some(Ok(Message::Text(_)))), "{ended:?}");
    drop(a);

    // The next connections: any that draws the dead proxy fails with
    // proxy_connect and is retried through a fresh route; all succeed.
    for i in 0..4 {
        let mut ws = injector
            .connect_websocket(&target.url(&format!("/b{i}")), EXCHANGE)
            .await
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert_eq!(
            ws.route().proxy_url.as_ref().map(|p| p.port()),
            Some(second.port()),
            "connection {i}"
        );
        echo(&mut ws).await;
    }
    let seen = row_until(&service, "first", "the dead proxy ejected", |r| {
        r["state"] == "ejected"
    })
    .await;
    assert!(failures(&seen, "proxy_connect") >= 1, "{seen}");
    row_until(&service, "second", "its connections closed", |r| {
        r["open_connections"] == 0
    })
    .await;
}

#[tokio::test]
async fn without_a_service_it_routes_as_the_embedded_configuration() {
    let pki = TestPki::new();
    let target = ws_echo(None).await;
    let one = Microsocks::start(Some((USER, PASS)));
    let two = Microsocks::start(Some((USER, PASS)));
    let yaml = format!(
        "proxy:\n  enabled: true\n  exchanges:\n    binance:\n      websocket:\n        pool:\n          strategy: least_connections\n          proxies:\n            - url: {}\n            - url: {}\n      http: {}\n",
        one.url("socks5h"),
        two.url("socks5"),
        one.url("socks5")
    );
    let injector =
        ProxyInjector::with_config(settings(&yaml), None, config(&pki)).expect("injector");

    // The HTTP entry as configured, every time.
    for _ in 0..3 {
        let url = injector.http_proxy_url(EXCHANGE).await.expect("a route");
        assert_eq!(
            url.map(|u| u.expose_credentials().to_string()),
            Some(one.url("socks5"))
        );
    }
    // least_connections: an open socket holds its lease, so the next goes
    // to the other proxy; when it closes, its proxy is free again.
    let a = injector
        .connect_websocket(&target.url("/"), EXCHANGE)
        .await
        .expect("a");
    let b = injector
        .connect_websocket(&target.url("/"), EXCHANGE)
        .await
        .expect("b");
    let port = |ws: &proxy_delegate_tokio::InjectedWebSocket| {
        ws.route().proxy_url.as_ref().map(|p| p.port())
    };
    assert_eq!(a.route().source, Source::Embedded);
    assert_ne!(port(&a), port(&b), "least_connections spreads open sockets");
    let freed = port(&a);
    drop(a);
    let c = injector
        .connect_websocket(&target.url("/"), EXCHANGE)
        .await
        .expect("c");
    assert_eq!(port(&c), freed, "the closed socket's lease was given back");
    drop((b, c));
    target.wait_closed(3).await;

    // No proxy configured for another exchange: direct.
    let direct = injector
        .connect_websocket(&target.url("/"), "kraken")
        .await
        .expect("direct");
    assert_eq!(direct.route().source, Source::Direct);
    assert!(direct.route().proxy_url.is_none());
}

#[tokio::test]
async fn an_unreachable_proxy_is_proxy_connect_and_bad_urls_say_what_is_wrong() {
    let pki = TestPki::new();
    let nobody = closed_port();
    let yaml = format!(
        "proxy:\n  enabled: true\n  default:\n    websocket: socks5://{USER}:{PASS}@127.0.0.1:{}\n",
        nobody.port()
    );
    let injector =
        ProxyInjector::with_config(settings(&yaml), None, config(&pki)).expect("injector");
    let e = injector
        .connect_websocket("ws://127.0.0.1:9/", EXCHANGE)
        .await
        .expect_err("no proxy there");
    assert_eq!(e.category(), Some(ErrorCategory::ProxyConnect), "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}", nobody.port())),
        "{text}"
    );
    assert!(!text.contains(PASS), "{text}");

    let e = injector
        .connect_websocket("https://127.0.0.1/", EXCHANGE)
        .await
        .expect_err("not a WebSocket URL");
    assert_eq!(e.category(), None);
    assert!(e.to_string().contains("ws:// or wss://"), "{e}");
    let e = injector
        .connect_websocket("ws://127.0.0.1/", "not an exchange!")
        .await
        .expect_err("bad exchange id");
    assert!(e.to_string().contains("exchange"), "{e}");
}

#[tokio::test]
async fn socks4_and_socks4a_carry_websockets_and_http() {
    let pki = TestPki::new();
    let ws_plain = ws_echo(None).await;
    let ws_tls = ws_echo(Some(&pki)).await;
    let http_tls = http_target(Some(&pki)).await;
    let ssh = SshSocks::start();
    for scheme in ["socks4", "socks4a"] {
        let yaml = format!(
            "proxy:\n  enabled: true\n  default:\n    websocket: {}\n    http: {}\n",
            ssh.url_with_user(scheme, "desk"),
            ssh.url(scheme)
        );
        let injector =
            ProxyInjector::with_config(settings(&yaml), None, config(&pki)).expect("injector");
        for target in [&ws_plain, &ws_tls] {
            // socks4 resolves "localhost" here; socks4a leaves it to the proxy.
            let mut ws = injector
                .connect_websocket(&target.url_for_host("localhost", "/"), EXCHANGE)
                .await
                .unwrap_or_else(|e| panic!("{scheme}: {e}"));
            assert_eq!(
                ws.route().proxy_url.as_ref().map(|p| p.scheme().as_str()),
                Some(scheme)
            );
            echo(&mut ws).await;
        }
        let url = http_tls.url_for_host("localhost", "/status/200");
        let request = reqwest::Request::new(reqwest::Method::GET, url.parse().expect("URL"));
        let response = injector
            .send(EXCHANGE, request)
            .await
            .unwrap_or_else(|e| panic!("{scheme} GET: {e}"));
        assert_eq!(response.status(), 200);
    }
    assert_eq!(ws_plain.upgraded() + ws_tls.upgraded(), 4);
}

#[tokio::test]
async fn an_untrusted_target_certificate_is_target_tls_and_not_retried() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let ws = ws_echo(Some(&pki)).await;
    let socks = Microsocks::start(Some((USER, PASS)));
    let yaml = format!(
        "proxy:\n  enabled: true\n  default:\n    websocket: {}\n",
        socks.url("socks5h")
    );
    // This injector trusts another CA only.
    let injector =
        ProxyInjector::with_config(settings(&yaml), None, config(&other)).expect("injector");
    let e = injector
        .connect_websocket(&ws.url_for_host("localhost", "/"), EXCHANGE)
        .await
        .expect_err("the certificate is not trusted");
    assert_eq!(e.category(), Some(ErrorCategory::TargetTls), "{e}");
    assert!(e.to_string().contains("certificate was refused"), "{e}");
    ws.wait_opened(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ws.opened(), 1, "the target's fault: no second try");
}

#[tokio::test]
async fn a_proxy_that_never_answers_times_out_within_the_bound() {
    let pki = TestPki::new();
    let hole = common::targets::black_hole().await;
    let yaml = format!(
        "proxy:\n  enabled: true\n  default:\n    websocket: socks5://{USER}:{PASS}@{}\n",
        hole.addr
    );
    let mut cfg = config(&pki);
    cfg.connect_timeout = Duration::from_millis(400);
    let injector = ProxyInjector::with_config(settings(&yaml), None, cfg).expect("injector");
    let started = std::time::Instant::now();
    let e = injector
        .connect_websocket("ws://127.0.0.1:9/", EXCHANGE)
        .await
        .expect_err("the proxy never answers");
    assert!(e.is_timeout(), "{e}");
    assert_eq!(e.category(), Some(ErrorCategory::Timeout), "{e}");
    // Bounded: it gave up (generous margin for a loaded machine).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn without_a_service_picks_follow_the_embedded_configuration_exactly() {
    let pki = TestPki::new();
    let yaml = "proxy:\n  enabled: true\n  default:\n    http:\n      pool:\n        strategy: random\n        proxies:\n          - url: socks5://10.0.0.1:1080\n          - url: socks5://10.0.0.2:1080\n          - url: http://10.0.0.3:3128\n";
    let injector =
        ProxyInjector::with_config(settings(yaml), None, config(&pki)).expect("injector");
    let mut alone = settings(yaml);
    let exchange = proxy_delegate_core::model::ExchangeId::new(EXCHANGE).expect("valid");
    for i in 0..50 {
        let expected = alone
            .resolve(&exchange, proxy_delegate_core::model::ConnectionType::Http)
            .map(|p| p.proxy_url.clone());
        let got = injector.http_proxy_url(EXCHANGE).await.expect("a route");
        assert_eq!(got, expected, "pick {i}");
    }
}

#[tokio::test]
async fn an_embedded_entry_bounds_each_attempt_with_its_timeout_seconds() {
    let pki = TestPki::new();
    let hole = common::targets::black_hole().await;
    let yaml = format!(
        "proxy:\n  enabled: true\n  default:\n    websocket:\n      url: socks5://{}\n      timeout_seconds: 1\n",
        hole.addr
    );
    // The injector's own bound is far away: the entry's 1 s decides.
    let mut cfg = config(&pki);
    cfg.connect_timeout = Duration::from_secs(30);
    let injector = ProxyInjector::with_config(settings(&yaml), None, cfg).expect("injector");
    let started = std::time::Instant::now();
    let e = injector
        .connect_websocket("ws://127.0.0.1:9/", EXCHANGE)
        .await
        .expect_err("the proxy never answers");
    assert!(e.is_timeout(), "{e}");
    assert!(e.to_string().contains("within 1000 ms"), "{e}");
    // Two attempts (a timeout is the proxy's fault), each 1 s.
    assert_eq!(hole.accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
