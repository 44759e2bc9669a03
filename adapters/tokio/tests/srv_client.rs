//! `ProxyServiceClient` finding the reference service through DNS SRV, end
//! to end: two in-process reference services (A and B, with inventories
//! that tell their answers apart) on 127.0.0.1, a real Debian `dnsmasq` on
//! 127.0.0.1 serving the SRV record and its target's address, and the
//! client built from a `config.yaml` whose `external_service` names only an
//! `srv_name`. Nothing here sends a packet to an address other than
//! 127.0.0.1.
//!
//! dnsmasq must be installed (`apt-get install dnsmasq-base`; scripts/test.sh
//! installs it): without it these tests fail, they do not skip.
//!
//! Every wait is bounded: dnsmasq's start-up, each `get_proxy` (by the
//! resolve deadline and an outer timeout), the poll for a moved record, the
//! shutdowns.

use std::time::{Duration, Instant};

use proxy_delegate_core::model::{ConnectionType, ExchangeId};
use proxy_delegate_core::resolver::{Route, Source};
use proxy_delegate_service::{Running, Service, ServiceConfig};
use proxy_delegate_tokio::srv::DnsConfig;
use proxy_delegate_tokio::{ClientError, ProxyServiceClient};

/// The SRV name the client is configured with.
const SRV_NAME: &str = "_http._tcp.pd.test";

/// The longest one `get_proxy` may take (its resolve deadline is 1 s).
const GET_PROXY_BOUND: Duration = Duration::from_secs(5);

mod common;
use common::dnsmasq::{Dnsmasq, LOCALHOST};

/// The dnsmasq options for one SRV record `SRV_NAME -> host:port` (TTL 1 s)
/// and `host`'s address, 127.0.0.1.
fn srv_records(host: &str, port: u16) -> Vec<String> {
    vec![
        format!("--srv-host={SRV_NAME},{host},{port},0,10"),
        format!("--host-record={host},127.0.0.1"),
        "--local-ttl=1".to_owned(),
    ]
}

/// Runs blocking dnsmasq work (process start, probe) off the async workers'
/// hands.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

// ------------------------------------------------------------------ services

/// A reference service on 127.0.0.1:0 whose inventory is `count` proxies
/// `socks5://<label>-proxy-<n>:1080` (ids `<label>-<n>`), no authentication,
/// no rate limit.
async fn start_service(label: &str, count: usize) -> Running {
    let mut toml =
        String::from("[rate_limit]\nenabled = false\n\n[pool]\nstrategy = \"round_robin\"\n");
    for n in 1..=count {
        toml.push_str(&format!(
            "\n[[proxies]]\nid = \"{label}-{n}\"\nurl = \"socks5://{label}-proxy-{n}:1080\"\n"
        ));
    }
    let config = ServiceConfig::parse(&toml, false)
        .unwrap_or_else(|e| panic!("service {label}: configuration: {e}"));
    let listener = tokio::net::TcpListener::bind((LOCALHOST, 0))
        .await
        .expect("bind 127.0.0.1:0");
    Service::new(config)
        .unwrap_or_else(|e| panic!("service {label} builds: {e:?}"))
        .start(listener)
        .unwrap_or_else(|e| panic!("service {label} starts: {e:?}"))
}

async fn stop_service(running: Running) {
    tokio::time::timeout(Duration::from_secs(20), running.shutdown())
        .await
        .expect("service shutdown finishes within 20 s");
}

// ------------------------------------------------------------------ client

/// The client's `config.yaml`: delegation on, endpoints only from
/// `srv_name`, no embedded proxies (a fallback answers Direct).
fn client_yaml(srv_name: &str) -> String {
    format!(
        "proxy:\n  enabled: true\n  external_service:\n    enabled: true\n    \
         srv_name: {srv_name}\n    resolve_deadline_ms: 1000\n"
    )
}

fn settings(srv_name: &str) -> Box<proxy_delegate_config::Settings> {
    proxy_delegate_config::Loader::new()
        .yaml_str("config.yaml", client_yaml(srv_name))
        // No CRYPTOFEED_PROXY_* of the machine running the tests.
        .env(std::iter::empty::<(String, String)>())
        .load()
        .expect("the client configuration loads")
        .settings
}

async fn build_client(srv_name: &str, dns: &DnsConfig) -> Result<ProxyServiceClient, ClientError> {
    let settings = settings(srv_name);
    tokio::time::timeout(
        Duration::from_secs(10),
        ProxyServiceClient::from_settings_with_dns(settings, "srv-client-test", dns),
    )
    .await
    .expect("from_settings_with_dns returns within 10 s")
}

/// `get_proxy` for a websocket connection to `exchange`, bounded.
async fn route_for(client: &ProxyServiceClient, exchange: &str) -> Route {
    let request = client.request(
        ExchangeId::new(exchange).expect("a valid exchange id"),
        ConnectionType::Websocket,
    );
    tokio::time::timeout(GET_PROXY_BOUND, client.get_proxy(&request))
        .await
        .unwrap_or_else(|_| {
            panic!("get_proxy for {exchange} did not return within {GET_PROXY_BOUND:?}")
        })
        .unwrap_or_else(|e| panic!("get_proxy for {exchange}: {e:?}"))
}

/// The proxy host of a route, or `"<direct>"`.
fn proxy_host(route: &Route) -> String {
    route
        .proxy_url
        .as_ref()
        .map_or_else(|| "<direct>".to_owned(), |u| u.host().to_owned())
}

/// Which service answered: `"a"` for `a-proxy-N`, `"b"` for `b-proxy-N`.
fn answered_by(route: &Route) -> Option<&'static str> {
    let host = proxy_host(route);
    if host.starts_with("a-proxy-") {
        Some("a")
    } else if host.starts_with("b-proxy-") {
        Some("b")
    } else {
        None
    }
}

// ------------------------------------------------------------------ runtime

/// Runs a test on a multi-thread runtime with 2 workers, its `block_on` on
/// libtest's own thread (a 2 MiB stack, like a tokio worker's): the client
/// must build there.
fn run<F>(test: impl FnOnce() -> F)
where
    F: std::future::Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    runtime.block_on(test());
}

// ------------------------------------------------------------------ tests

#[test]
fn the_client_finds_the_service_through_srv() {
    run(|| async {
        let a = start_service("a", 3).await;
        let b = start_service("b", 3).await;
        let dns = blocking(|| Dnsmasq::start(&srv_records("svc-a.pd.test", a.local_addr().port())));

        let client = build_client(SRV_NAME, &dns.dns())
            .await
            .unwrap_or_else(|e| panic!("client builds: {e}\n{}", dns.log_text()));

        let route = route_for(&client, "binance").await;
        assert_eq!(
            route.source,
            Source::Service,
            "{route:?}\ndnsmasq log:\n{}",
            dns.log_text()
        );
        assert_eq!(answered_by(&route), Some("a"), "{route:?}");
        let url = route.proxy_url.as_ref().expect("a proxy");
        assert_eq!(url.port(), 1080);
        assert!(
            route
                .proxy_id
                .as_ref()
                .is_some_and(|id| id.as_str().starts_with("a-")),
            "{route:?}"
        );

        // The same key again: the cache answers with A's proxy.
        let again = route_for(&client, "binance").await;
        assert_eq!(again.source, Source::Cache, "{again:?}");
        assert_eq!(again.proxy_url, route.proxy_url);

        // Another exchange: the service again, still A.
        let other = route_for(&client, "kraken").await;
        assert_eq!(other.source, Source::Service, "{other:?}");
        assert_eq!(answered_by(&other), Some("a"), "{other:?}");

        let (stats, _) = client.stats();
        assert_eq!(stats.resolved[0], 2, "service answers: {stats:?}");
        assert_eq!(stats.resolved[1], 1, "cache answers: {stats:?}");
        assert_eq!(stats.fallbacks, [0; 4], "{stats:?}");
        assert_eq!(stats.failed, 0, "{stats:?}");

        // The dnsmasq log shows the client asked it for the SRV record and for
        // svc-a's address (the HTTP client resolved the target through it).
        let log = dns.log_text();
        assert!(log.contains(SRV_NAME), "{log}");
        assert!(log.contains("svc-a.pd.test"), "{log}");

        let report = client.shutdown(Duration::from_secs(5)).await;
        assert_eq!(report.undelivered, 0, "{report:?}");
        drop(dns);
        stop_service(a).await;
        stop_service(b).await;
    });
}

#[test]
fn the_client_follows_the_srv_record_when_it_moves() {
    run(|| async {
        let a = start_service("a", 3).await;
        let b = start_service("b", 3).await;
        let port_a = a.local_addr().port();
        let port_b = b.local_addr().port();
        let first = blocking(|| Dnsmasq::start(&srv_records("svc-a.pd.test", port_a)));
        let dns_port = first.port;
        let dns = first.dns();

        let client = build_client(SRV_NAME, &dns)
            .await
            .unwrap_or_else(|e| panic!("client builds: {e}\n{}", first.log_text()));
        let built = Instant::now();

        let route = route_for(&client, "ex-before").await;
        assert_eq!(route.source, Source::Service, "{route:?}");
        assert_eq!(answered_by(&route), Some("a"), "{route:?}");

        // The record moves: same DNS server address, the SRV record now names
        // svc-b at B's port. Done well before the client's first re-lookup (the
        // TTL of 1 s is raised to the 5 s floor), so that re-lookup sees it.
        // svc-a still resolves (A is still up), so the client's calls to A
        // until then do not depend on its kept-alive connection.
        let mut moved_records = srv_records("svc-b.pd.test", port_b);
        moved_records.push("--host-record=svc-a.pd.test,127.0.0.1".to_owned());
        let second = blocking(move || {
            drop(first);
            let mut last_error = String::new();
            for _ in 0..20 {
                match Dnsmasq::start_on(dns_port, &moved_records) {
                    Ok(dnsmasq) => return dnsmasq,
                    Err(e) => {
                        last_error = e;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
            panic!("dnsmasq did not restart on port {dns_port}: {last_error}");
        });
        let moved = Instant::now();
        assert!(
            moved - built < Duration::from_secs(4),
            "the restart took too long ({:?}) to come before the re-lookup",
            moved - built
        );

        // Poll with a new key each time (the cache must not answer) until B
        // answers: the 5 s refresh floor plus a margin.
        let limit = Duration::from_secs(15);
        let mut tries = Vec::new();
        let mut n = 0u32;
        let switched = loop {
            n += 1;
            let exchange = format!("ex-moved-{n}");
            let route = route_for(&client, &exchange).await;
            // A service answers every try: A until the re-lookup, B after it.
            // The move never makes the client fall back.
            assert_eq!(
                route.source,
                Source::Service,
                "try {n} ({exchange}) at {:?} after the move: {route:?}\ndnsmasq log:\n{}",
                moved.elapsed(),
                second.log_text()
            );
            let by = answered_by(&route);
            tries.push((moved.elapsed(), by));
            if by == Some("b") {
                break moved.elapsed();
            }
            assert_eq!(by, Some("a"), "{route:?}");
            assert!(
                moved.elapsed() < limit,
                "still answered by A {:?} after the move ({} tries: {tries:?})\ndnsmasq log:\n{}",
                moved.elapsed(),
                tries.len(),
                second.log_text()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        // Not before the refresh floor (5 s after the first lookup): the TTL of
        // 1 s did not make the client look again sooner.
        let since_built = built.elapsed();
        assert!(
            since_built >= Duration::from_millis(4500),
            "B answered {since_built:?} after the client was built, before the 5 s refresh floor \
         ({tries:?})"
        );
        assert!(switched < limit, "{switched:?}");

        // From now on B answers new keys; the key A answered is still cached.
        let after = route_for(&client, "ex-after").await;
        assert_eq!(after.source, Source::Service, "{after:?}");
        assert_eq!(answered_by(&after), Some("b"), "{after:?}");
        let cached = route_for(&client, "ex-before").await;
        assert_eq!(cached.source, Source::Cache, "{cached:?}");
        assert_eq!(cached.proxy_url, route.proxy_url);

        let log = second.log_text();
        assert!(log.contains("svc-b.pd.test"), "{log}");

        let (stats, _) = client.stats();
        assert_eq!(stats.fallbacks, [0; 4], "{stats:?}");
        assert_eq!(stats.failed, 0, "{stats:?}");

        let report = client.shutdown(Duration::from_secs(5)).await;
        assert_eq!(report.undelivered, 0, "{report:?}");
        drop(second);
        stop_service(a).await;
        stop_service(b).await;
    });
}

#[test]
fn an_srv_name_without_records_is_a_discovery_error_naming_it() {
    run(|| async {
        let a = start_service("a", 1).await;
        let dns = blocking(|| Dnsmasq::start(&srv_records("svc-a.pd.test", a.local_addr().port())));
        // NXDOMAIN (under --local=/pd.test/), and a name that exists with no
        // SRV record (svc-a has only an address).
        for name in ["_http._tcp.nothing.pd.test", "svc-a.pd.test"] {
            let started = Instant::now();
            let err = build_client(name, &dns.dns())
                .await
                .expect_err("no SRV records: the client is not built");
            let took = started.elapsed();
            let ClientError::Discovery(message) = &err else {
                panic!("{name}: expected ClientError::Discovery, got {err:?}");
            };
            assert!(message.contains(name), "{name}: {message}");
            assert!(err.to_string().contains(name), "{name}: {err}");
            assert!(
                err.to_string()
                    .starts_with("cannot discover the proxy service: "),
                "{err}"
            );
            // dnsmasq answers at once: no timeout was waited for.
            assert!(took < Duration::from_secs(3), "{name}: took {took:?}");
        }
        drop(dns);
        stop_service(a).await;
    });
}
