//! SRV discovery against a real DNS server: each test starts its own Debian
//! `dnsmasq` on 127.0.0.1 (a free high port), serving only the records the
//! test gives it and never forwarding a query. Nothing here sends a packet
//! to an address other than 127.0.0.1.
//!
//! dnsmasq must be installed (`apt-get install dnsmasq-base`; scripts/test.sh
//! installs it): without it these tests fail, they do not skip.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use proxy_delegate_core::endpoints::ServiceScheme;
use proxy_delegate_tokio::srv::{DnsConfig, SrvDiscovery, SrvError, SrvErrorKind, SrvOptions};

mod common;
use common::dnsmasq::*;

fn srv(name: &str, target: &str, port: u16, priority: u16, weight: u16) -> String {
    format!("--srv-host={name},{target},{port},{priority},{weight}")
}

/// Short timeouts, so a failing test fails fast.
fn fast_options() -> SrvOptions {
    SrvOptions {
        query_timeout: Duration::from_millis(300),
        attempts: 1,
        lookup_timeout: Duration::from_secs(1),
        ..SrvOptions::default()
    }
}

fn urls(discovery: &proxy_delegate_tokio::srv::Discovered) -> Vec<(String, u8)> {
    discovery
        .endpoints
        .iter()
        .map(|e| (e.url.to_string(), e.priority))
        .collect()
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn lookup_orders_endpoints_by_priority_then_weight() {
    let name = "_http._tcp.pd.test";
    let dns = Dnsmasq::start(&[
        srv(name, "svc-b.pd.test", 8081, 20, 5),
        srv(name, "svc-a.pd.test", 8080, 10, 5),
        srv(name, "SVC-C.pd.test", 8082, 10, 50),
        srv(name, "svc-d.pd.test", 8083, 300, 0),
        // No target: "service not available" (target "."), skipped.
        format!("--srv-host={name}"),
    ]);
    let discovery = SrvDiscovery::with_options(name, &dns.dns(), fast_options()).unwrap();
    assert_eq!(discovery.scheme(), ServiceScheme::Http);
    let found = discovery.lookup().await.unwrap_or_else(|e| {
        panic!("lookup failed: {e}\n{}", dns.log_text());
    });
    assert_eq!(
        urls(&found),
        [
            ("http://svc-c.pd.test:8082".to_owned(), 10),
            ("http://svc-a.pd.test:8080".to_owned(), 10),
            ("http://svc-b.pd.test:8081".to_owned(), 20),
            // Priority 300 is clamped to 255.
            ("http://svc-d.pd.test:8083".to_owned(), 255),
        ]
    );
    let first = &found.endpoints[0].url;
    assert_eq!(
        (first.scheme(), first.host(), first.port(), first.path()),
        (ServiceScheme::Http, "svc-c.pd.test", 8082, "")
    );
}

#[tokio::test]
async fn scheme_follows_the_first_label_of_the_srv_name() {
    let dns = Dnsmasq::start(&[
        srv("_https._tcp.pd.test", "svc-a.pd.test", 8443, 0, 0),
        srv("_proxy-delegate._tcp.pd.test", "svc-b.pd.test", 9443, 0, 0),
        srv("_HTTP._tcp.upper.pd.test", "svc-c.pd.test", 8080, 0, 0),
    ]);
    for (name, scheme, url) in [
        (
            "_https._tcp.pd.test",
            ServiceScheme::Https,
            "https://svc-a.pd.test:8443",
        ),
        (
            "_proxy-delegate._tcp.pd.test.",
            ServiceScheme::Https,
            "https://svc-b.pd.test:9443",
        ),
        (
            "_HTTP._tcp.upper.pd.test",
            ServiceScheme::Http,
            "http://svc-c.pd.test:8080",
        ),
    ] {
        let discovery = SrvDiscovery::with_options(name, &dns.dns(), fast_options()).unwrap();
        assert_eq!(discovery.scheme(), scheme, "{name}");
        assert_eq!(discovery.srv_name(), name.trim_end_matches('.'));
        let found = discovery.lookup().await.unwrap();
        assert_eq!(urls(&found), [(url.to_owned(), 0)], "{name}");
    }
}

#[tokio::test]
async fn refresh_follows_the_ttl_within_floor_and_ceiling() {
    let name = "_https._tcp.pd.test";
    let record = srv(name, "svc-a.pd.test", 8443, 0, 0);
    for (local_ttl, options, expected) in [
        (30, fast_options(), Duration::from_secs(30)),
        // TTL 0: the 5 s floor, so the client cannot spin.
        (0, fast_options(), Duration::from_secs(5)),
        // A day: the 1 h ceiling, so discovery cannot freeze.
        (86_400, fast_options(), Duration::from_secs(3600)),
        // Own bounds.
        (
            0,
            SrvOptions {
                min_refresh: Duration::from_secs(2),
                ..fast_options()
            },
            Duration::from_secs(2),
        ),
        (
            600,
            SrvOptions {
                max_refresh: Duration::from_secs(60),
                ..fast_options()
            },
            Duration::from_secs(60),
        ),
    ] {
        let dns = Dnsmasq::start(&[record.clone(), format!("--local-ttl={local_ttl}")]);
        let discovery = SrvDiscovery::with_options(name, &dns.dns(), options).unwrap();
        let before = tokio::time::Instant::now();
        let found = discovery.lookup().await.unwrap();
        let after = tokio::time::Instant::now();
        assert_eq!(found.ttl, expected, "local-ttl {local_ttl}");
        assert!(
            found.refresh_at >= before + expected && found.refresh_at <= after + expected,
            "local-ttl {local_ttl}: refresh_at is not the lookup time plus {expected:?}"
        );
    }
}

#[tokio::test]
async fn a_moved_record_is_seen_by_the_next_lookup() {
    let name = "_https._tcp.pd.test";
    // A long TTL: the second lookup must still ask the server, not a cache.
    let ttl = "--local-ttl=600".to_owned();
    let first = Dnsmasq::start(&[srv(name, "svc-a.pd.test", 8443, 0, 0), ttl.clone()]);
    let port = first.port;
    let discovery = SrvDiscovery::with_options(name, &first.dns(), fast_options()).unwrap();
    let found = discovery.lookup().await.unwrap();
    assert_eq!(urls(&found), [("https://svc-a.pd.test:8443".to_owned(), 0)]);
    assert_eq!(found.ttl, Duration::from_secs(600));

    drop(first);
    let second = Dnsmasq::start_on(port, &[srv(name, "svc-b.pd.test", 9443, 3, 0), ttl])
        .expect("restart dnsmasq on the same port");
    let found = discovery.lookup().await.unwrap_or_else(|e| {
        panic!("lookup after the move failed: {e}\n{}", second.log_text());
    });
    assert_eq!(urls(&found), [("https://svc-b.pd.test:9443".to_owned(), 3)]);
}

#[tokio::test]
async fn http_resolver_resolves_srv_targets_for_reqwest() {
    // The service the SRV record points at: a tiny axum server.
    let listener = tokio::net::TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let http_port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello from svc-a" }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let name = "_http._tcp.pd.test";
    let dns = Dnsmasq::start(&[
        srv(name, "svc-a.pd.test", http_port, 0, 0),
        "--host-record=svc-a.pd.test,127.0.0.1".to_owned(),
    ]);
    let discovery = SrvDiscovery::with_options(name, &dns.dns(), fast_options()).unwrap();
    let found = discovery.lookup().await.unwrap();
    let url = found.endpoints[0].url.to_string();
    assert_eq!(url, format!("http://svc-a.pd.test:{http_port}"));

    let resolver = discovery.http_resolver();
    assert_eq!(
        resolver.resolve_host("svc-a.pd.test").await.unwrap(),
        [std::net::IpAddr::from(LOCALHOST)]
    );
    let err = resolver.resolve_host("nope.pd.test").await.unwrap_err();
    assert!(
        matches!(&err, SrvError::HostNotFound { host } if host == "nope.pd.test"),
        "{err:?}"
    );
    assert!(err.to_string().contains("nope.pd.test"), "{err}");

    // End to end: reqwest finds svc-a.pd.test only through dnsmasq.
    let client = reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(resolver)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let response = client.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "hello from svc-a");

    // A name the DNS server does not know fails in reqwest's DNS step.
    let err = client
        .get("http://nope.pd.test:1/")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    server.abort();
}

#[tokio::test]
async fn unknown_or_unusable_srv_names_are_typed_errors_naming_them() {
    let dns = Dnsmasq::start(&[
        srv("_https._tcp.pd.test", "svc-a.pd.test", 8443, 0, 0),
        "--host-record=svc-a.pd.test,127.0.0.1".to_owned(),
        // Only "service not available" records.
        "--srv-host=_https._tcp.gone.pd.test".to_owned(),
    ]);
    // NXDOMAIN, and a name that exists without SRV records (NODATA).
    for name in ["_https._tcp.nothing.pd.test", "svc-a.pd.test"] {
        let discovery = SrvDiscovery::with_options(name, &dns.dns(), fast_options()).unwrap();
        let err = discovery.lookup().await.unwrap_err();
        assert_eq!(err, SrvError::NoRecords { name: name.into() });
        assert_eq!(err.kind(), SrvErrorKind::NoRecords);
        assert_eq!(
            err.to_string(),
            format!("no SRV records for {name}: check external_service.srv_name and the DNS zone")
        );
    }
    let name = "_https._tcp.gone.pd.test";
    let discovery = SrvDiscovery::with_options(name, &dns.dns(), fast_options()).unwrap();
    let err = discovery.lookup().await.unwrap_err();
    assert_eq!(
        err,
        SrvError::NoUsableRecords {
            name: name.into(),
            skipped: 1
        }
    );
    assert_eq!(err.kind(), SrvErrorKind::NoRecords);
    assert!(err.to_string().contains(name), "{err}");
    assert_eq!(discovery.retry_after(), Duration::from_secs(10));
}

#[tokio::test]
async fn a_dead_dns_server_fails_within_the_lookup_timeout() {
    let name = "_https._tcp.pd.test";
    // Nothing listening: queries are refused (ICMP port unreachable).
    let refused = free_port();
    // A socket that never reads: queries go unanswered.
    let silent = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    for port in [refused, silent_port] {
        let dns = DnsConfig::Servers(vec![SocketAddr::from((LOCALHOST, port))]);
        let discovery = SrvDiscovery::with_options(name, &dns, fast_options()).unwrap();
        let started = Instant::now();
        let err = discovery.lookup().await.unwrap_err();
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "port {port}: took {took:?} ({err})"
        );
        assert!(
            matches!(err.kind(), SrvErrorKind::Timeout | SrvErrorKind::Failed),
            "port {port}: {err:?}"
        );
        assert!(err.to_string().contains(name), "{err}");

        let err = discovery
            .http_resolver()
            .resolve_host("svc-a.pd.test")
            .await
            .unwrap_err();
        assert!(
            matches!(err.kind(), SrvErrorKind::Timeout | SrvErrorKind::Failed),
            "port {port}: {err:?}"
        );
    }
    drop(silent);
}

#[test]
fn bad_names_and_configurations_are_refused_up_front() {
    let dns = DnsConfig::Servers(vec![SocketAddr::from((LOCALHOST, 53))]);
    let long_label = format!("_{}._tcp.pd.test", "x".repeat(70));
    for name in [
        "",
        ".",
        "_https._tcp..pd.test",
        long_label.as_str(),
        "_https._tcp.pd.tést",
        "_https._tcp.pd test",
    ] {
        let err = SrvDiscovery::new(name, &dns).unwrap_err();
        assert!(
            matches!(&err, SrvError::InvalidName { name: n, .. } if n == name),
            "{name:?}: {err:?}"
        );
        assert_eq!(err.kind(), SrvErrorKind::Config);
        assert!(
            err.to_string().contains("external_service.srv_name"),
            "{err}"
        );
    }
    let err =
        SrvDiscovery::new("_https._tcp.pd.test", &DnsConfig::Servers(Vec::new())).unwrap_err();
    assert_eq!(err, SrvError::NoServers);
    assert_eq!(err.kind(), SrvErrorKind::Config);

    let discovery = SrvDiscovery::new("_https._tcp.pd.test", &dns).unwrap();
    assert!(format!("{discovery:?}").contains("_https._tcp.pd.test"));
}
