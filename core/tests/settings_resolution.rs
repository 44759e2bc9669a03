//! `core::settings`: cryptofeed's resolution rules, pool strategies, bounds.

use proxy_delegate_core::Reason;
use proxy_delegate_core::embedded::EmbeddedRoutes;
use proxy_delegate_core::endpoints::ServiceUrl;
use proxy_delegate_core::model::{ConnectionType, ExchangeId, ProxyUrl};
use proxy_delegate_core::settings::*;

use ConnectionType::{Http, Websocket};

type S = ProxySettings<4, 4>;

fn url(s: &str) -> ProxyUrl {
    s.parse().unwrap()
}

fn id(s: &str) -> ExchangeId {
    ExchangeId::new(s).unwrap()
}

fn pool(urls: &[&str], strategy: PoolStrategy) -> ProxyPool<4> {
    ProxyPool::new(urls.iter().map(|u| PoolProxy::new(url(u))), strategy).unwrap()
}

fn picked(s: &mut S, ex: &str, ct: ConnectionType) -> Option<String> {
    s.resolve(&id(ex), ct).map(|p| p.proxy_url.to_string())
}

fn base() -> S {
    let mut s = S::default();
    s.enabled = true;
    s.default.http = Some(ProxyConfig::url(url("http://default-http:8080")));
    s.default.websocket = Some(ProxyConfig::url(url("socks5://default-ws:1080")));
    let binance = ConnectionProxies {
        http: Some(ProxyConfig::url(url("http://binance:8080"))),
        ..ConnectionProxies::default()
    };
    s.insert_exchange(id("binance"), binance).unwrap();
    s
}

#[test]
fn disabled_gives_no_proxy() {
    let mut s = base();
    s.enabled = false;
    assert_eq!(picked(&mut s, "binance", Http), None);
    assert_eq!(picked(&mut s, "other", Websocket), None);
    assert!(s.entry(&id("binance"), Http).is_none());
}

#[test]
fn exchange_entry_then_default_case_insensitive() {
    let mut s = base();
    assert_eq!(
        picked(&mut s, "BiNaNcE", Http).as_deref(),
        Some("http://binance:8080")
    );
    // binance has no websocket entry: the default's.
    assert_eq!(
        picked(&mut s, "binance", Websocket).as_deref(),
        Some("socks5://default-ws:1080")
    );
    assert_eq!(
        picked(&mut s, "kraken", Http).as_deref(),
        Some("http://default-http:8080")
    );
}

#[test]
fn nothing_configured_is_direct_and_no_websocket_to_http_fallback() {
    let mut s = base();
    s.default.websocket = None;
    assert_eq!(picked(&mut s, "kraken", Websocket), None);
    assert_eq!(picked(&mut s, "binance", Websocket), None);
}

#[test]
fn empty_entry_means_direct_without_fallback() {
    let mut s = base();
    let coinbase = ConnectionProxies {
        http: Some(ProxyConfig::default()),
        ..ConnectionProxies::default()
    };
    s.insert_exchange(id("coinbase"), coinbase).unwrap();
    assert!(s.entry(&id("coinbase"), Http).unwrap().is_direct());
    assert_eq!(picked(&mut s, "coinbase", Http), None);
    // Not listed (None): falls back.
    assert_eq!(
        picked(&mut s, "coinbase", Websocket).as_deref(),
        Some("socks5://default-ws:1080")
    );
}

#[test]
fn timeout_comes_from_the_entry() {
    let mut s = base();
    s.default.http.as_mut().unwrap().timeout_seconds = TimeoutSeconds::new(7).unwrap();
    assert_eq!(s.resolve(&id("kraken"), Http).unwrap().timeout_seconds, 7);
    assert_eq!(s.resolve(&id("binance"), Http).unwrap().timeout_seconds, 30);
}

#[test]
fn pool_wins_over_url_round_robin() {
    let mut s = base();
    let entry = s.default.http.as_mut().unwrap();
    entry.pool = Some(pool(
        &["http://p1:1", "http://p2:1", "http://p3:1"],
        PoolStrategy::RoundRobin,
    ));
    let got: Vec<_> = (0..7)
        .map(|_| picked(&mut s, "kraken", Http).unwrap())
        .collect();
    assert_eq!(
        got,
        [
            "http://p1:1",
            "http://p2:1",
            "http://p3:1",
            "http://p1:1",
            "http://p2:1",
            "http://p3:1",
            "http://p1:1"
        ]
    );
}

#[test]
fn round_robin_skips_disabled_and_unhealthy() {
    let mut s = base();
    let mut p = pool(
        &["http://p1:1", "http://p2:1", "http://p3:1"],
        PoolStrategy::RoundRobin,
    );
    let mut proxies: Vec<PoolProxy> = p.proxies().to_vec();
    proxies[1].enabled = false;
    p = ProxyPool::new(proxies, PoolStrategy::RoundRobin).unwrap();
    s.default.http = Some(ProxyConfig::pool(p));
    let got: Vec<_> = (0..4).map(|_| picked(&mut s, "x", Http).unwrap()).collect();
    assert_eq!(
        got,
        ["http://p1:1", "http://p3:1", "http://p1:1", "http://p3:1"]
    );
    assert_eq!(s.set_health(&url("http://p3:1"), false), 1);
    let got: Vec<_> = (0..3).map(|_| picked(&mut s, "x", Http).unwrap()).collect();
    assert_eq!(got, ["http://p1:1", "http://p1:1", "http://p1:1"]);
    // No healthy proxy left: choose among all enabled ones (never the disabled p2).
    s.set_health(&url("http://p1:1"), false);
    let got: Vec<_> = (0..4).map(|_| picked(&mut s, "x", Http).unwrap()).collect();
    assert_eq!(
        got,
        ["http://p3:1", "http://p1:1", "http://p3:1", "http://p1:1"]
    );
    // Healthy again.
    s.set_health(&url("http://p1:1"), true);
    assert!((0..3).all(|_| picked(&mut s, "x", Http).as_deref() == Some("http://p1:1")));
}

#[test]
fn all_disabled_pool_is_direct() {
    let mut s = base();
    let mut p = PoolProxy::new(url("http://p1:1"));
    p.enabled = false;
    s.default.http = Some(ProxyConfig::pool(
        ProxyPool::new([p], PoolStrategy::RoundRobin).unwrap(),
    ));
    assert_eq!(picked(&mut s, "x", Http), None);
}

#[test]
fn random_is_seeded_and_weighted() {
    let mk = |seed| {
        let mut s = base();
        s.set_seed(seed);
        let mut a = PoolProxy::new(url("http://heavy:1"));
        a.weight = Weight::new(9.0).unwrap();
        let b = PoolProxy::new(url("http://light:1"));
        s.default.http = Some(ProxyConfig::pool(
            ProxyPool::new([a, b], PoolStrategy::Random).unwrap(),
        ));
        s
    };
    let run = |seed| {
        let mut s = mk(seed);
        (0..2000)
            .map(|_| picked(&mut s, "x", Http).unwrap())
            .collect::<Vec<_>>()
    };
    let first = run(7);
    assert_eq!(first, run(7), "same seed, same picks");
    assert_ne!(first, run(8), "another seed, other picks");
    let heavy = first
        .iter()
        .filter(|u| u.as_str() == "http://heavy:1")
        .count();
    // Expected 1800 of 2000 (weight 9 vs 1); far from 1000 (unweighted).
    assert!((1650..=1950).contains(&heavy), "{heavy}");
}

#[test]
fn least_connections_leases_and_ties() {
    let mut s = base();
    s.default.http = Some(ProxyConfig::pool(pool(
        &["http://p1:1", "http://p2:1"],
        PoolStrategy::LeastConnections,
    )));
    let a = s.resolve(&id("x"), Http).unwrap();
    assert_eq!(
        a.proxy_url.to_string(),
        "http://p1:1",
        "tie goes to the first listed"
    );
    let lease_a = a.lease.unwrap();
    let b = s.resolve(&id("x"), Http).unwrap();
    assert_eq!(b.proxy_url.to_string(), "http://p2:1");
    let lease_b = b.lease.unwrap();
    let c = s.resolve(&id("x"), Http).unwrap();
    assert_eq!(c.proxy_url.to_string(), "http://p1:1");
    let pool = s.default.http.as_ref().unwrap().pool.as_ref().unwrap();
    assert_eq!(pool.leases(), [2, 1]);
    s.release(lease_a);
    s.release(lease_b);
    s.release(lease_b); // twice: harmless
    let pool = s.default.http.as_ref().unwrap().pool.as_ref().unwrap();
    assert_eq!(pool.leases(), [1, 0]);
    assert_eq!(picked(&mut s, "x", Http).as_deref(), Some("http://p2:1"));
    // Release by URL (for EmbeddedRoutes callers).
    assert!(s.release_url(&id("x"), Http, &url("http://p2:1")));
    assert!(!s.release_url(&id("x"), Http, &url("http://p2:1")));
    assert!(s.release_url(&id("x"), Http, &url("http://p1:1")));
    let pool = s.default.http.as_ref().unwrap().pool.as_ref().unwrap();
    assert_eq!(pool.leases(), [0, 0]);
}

#[test]
fn round_robin_and_url_picks_carry_no_lease() {
    let mut s = base();
    assert!(s.resolve(&id("x"), Http).unwrap().lease.is_none());
}

#[test]
fn embedded_routes_for_the_resolver() {
    let mut s = base();
    let route = s.embedded_route(&id("binance"), Http).unwrap();
    assert_eq!(route.proxy_url, url("http://binance:8080"));
    assert_eq!(route.timeout_seconds, 30);
    s.enabled = false;
    assert!(s.embedded_route(&id("binance"), Http).is_none());
}

#[test]
fn exchange_capacity_and_replacement() {
    let mut s = S::default();
    for name in ["a", "b", "c", "d"] {
        s.insert_exchange(id(name), ConnectionProxies::default())
            .unwrap();
    }
    // Replacing an existing one works at capacity.
    let c = ConnectionProxies {
        http: Some(ProxyConfig::url(url("http://c:1"))),
        ..ConnectionProxies::default()
    };
    s.insert_exchange(id("C"), c).unwrap();
    assert!(s.exchange(&id("c")).unwrap().http.is_some());
    let err = s
        .insert_exchange(id("e"), ConnectionProxies::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "proxy.exchanges: too many items: 5 (at most 4 allowed)"
    );
    assert!(s.remove_exchange(&id("a")).is_some());
    s.insert_exchange(id("e"), ConnectionProxies::default())
        .unwrap();
    assert_eq!(s.exchanges().count(), 4);
}

#[test]
fn pool_bounds() {
    let e = ProxyPool::<2>::new([], PoolStrategy::RoundRobin).unwrap_err();
    assert_eq!(e.reason, Reason::Empty);
    let three = ["http://a:1", "http://b:1", "http://c:1"].map(|u| PoolProxy::new(url(u)));
    let e = ProxyPool::<2>::new(three, PoolStrategy::RoundRobin).unwrap_err();
    assert_eq!(e.reason, Reason::TooMany { len: 3, max: 2 });
}

#[test]
fn number_bounds_and_defaults() {
    assert_eq!(TimeoutSeconds::default().get(), 30);
    assert!(TimeoutSeconds::new(0).is_err() && TimeoutSeconds::new(301).is_err());
    assert!(TimeoutSeconds::new(1).is_ok() && TimeoutSeconds::new(300).is_ok());
    assert_eq!(Weight::default().get(), 1.0);
    assert!(
        Weight::new(0.09).is_err() && Weight::new(10.01).is_err() && Weight::new(f64::NAN).is_err()
    );
    assert!(Weight::new(0.1).is_ok() && Weight::new(10.0).is_ok());
    assert!(ServiceTimeoutSeconds::new(0).is_err() && ServiceTimeoutSeconds::new(61).is_err());
    assert!(CacheTtlSeconds::new(59).is_err() && CacheTtlSeconds::new(3601).is_err());
    let x = ExternalService::default();
    assert!(!x.enabled && x.circuit_breaker_enabled && x.fallback_to_embedded);
    assert_eq!(x.timeout_seconds.get(), 10);
    assert_eq!(x.cache_ttl_seconds.get(), 300);
    assert_eq!(PoolStrategy::default(), PoolStrategy::RoundRobin);
    assert_eq!(
        PoolStrategy::parse("LEAST_CONNECTIONS").unwrap(),
        PoolStrategy::LeastConnections
    );
    assert!(PoolStrategy::parse("fastest").is_err());
    assert_eq!(
        AuthMethod::parse("mutual_tls").unwrap(),
        AuthMethod::MutualTls
    );
}

#[test]
fn secrets_never_print() {
    let token = Secret::new("tok-123-secret").unwrap();
    assert_eq!(format!("{token:?} {token}"), "*** ***");
    let mut x = ExternalService::default();
    x.auth_credentials.token = Some(token);
    assert!(!format!("{x:?}").contains("tok-123"));
    let mut s = base();
    s.default.http = Some(ProxyConfig::url(url("http://u:pw-secret@p:1")));
    assert!(!format!("{s:?}").contains("pw-secret"));
    assert!(Secret::new("").is_err());
}

#[test]
fn endpoints_are_validated() {
    assert!(ServiceUrl::parse("https://svc:8443").is_ok());
    assert!(ServiceUrl::parse("http://10.0.0.1:8080/base").is_ok());
    assert!(ServiceUrl::parse("ftp://svc").is_err());
    assert!(ServiceUrl::parse("https://").is_err());
    assert!(ServiceUrl::parse("https://u:p@svc").is_err());
    assert!(ServiceUrl::parse("https://sv c").is_err());
    // A key in a query or a fragment would be printed with the endpoint.
    for keyed in ["https://svc:8443/?api_key=k3y", "https://svc/#k3y"] {
        let e = ServiceUrl::parse(keyed).unwrap_err().to_string();
        assert!(e.contains("no query or fragment"), "{e}");
        assert!(!e.contains("k3y"), "{e}");
    }
}

#[test]
fn pools_built_in_place_pick_and_fail_like_new() {
    let mut s = base();
    let entry = s.default.websocket.get_or_insert_with(ProxyConfig::default);
    let members = ["socks5://p1:1", "socks5://p2:1"].map(|u| PoolProxy::new(url(u)));
    let built = entry.set_pool(members, PoolStrategy::RoundRobin).unwrap();
    assert_eq!(
        built,
        &pool(
            &["socks5://p1:1", "socks5://p2:1"],
            PoolStrategy::RoundRobin
        )
    );
    let picks: Vec<_> = (0..3)
        .map(|_| picked(&mut s, "bitmex", Websocket).unwrap())
        .collect();
    assert_eq!(picks, ["socks5://p1:1", "socks5://p2:1", "socks5://p1:1"]);

    // Refilling resets the runtime state: the cursor starts over.
    let entry = s.default.websocket.as_mut().unwrap();
    let members = ["socks5://q1:1", "socks5://q2:1"].map(|u| PoolProxy::new(url(u)));
    entry
        .set_pool(members, PoolStrategy::LeastConnections)
        .unwrap();
    let pick = s.resolve(&id("bitmex"), Websocket).unwrap();
    assert_eq!(pick.proxy_url.to_string(), "socks5://q1:1");
    assert!(pick.lease.is_some());

    // Failures are ProxyPool::new's, and leave no pool behind.
    let mut entry = ProxyConfig::<2>::url(url("http://single:1"));
    let e = entry.set_pool([], PoolStrategy::RoundRobin).unwrap_err();
    assert_eq!((e.field, e.reason), ("pool.proxies", Reason::Empty));
    assert!(entry.pool.is_none());
    let three = ["http://a:1", "http://b:1", "http://c:1"].map(|u| PoolProxy::new(url(u)));
    let e = entry.set_pool(three, PoolStrategy::RoundRobin).unwrap_err();
    assert_eq!(e.reason, Reason::TooMany { len: 3, max: 2 });
    assert!(entry.pool.is_none());
    assert_eq!(entry.url, Some(url("http://single:1")));
}

#[test]
fn exchange_entries_filled_in_place() {
    let mut s = base();
    // An existing exchange: its entries, matched case-insensitively.
    let binance = s.exchange_entry(id("BINANCE")).unwrap();
    assert!(binance.http.is_some());
    binance.websocket = Some(ProxyConfig::url(url("socks5://bws:1")));
    assert_eq!(
        picked(&mut s, "binance", Websocket).as_deref(),
        Some("socks5://bws:1")
    );
    assert_eq!(s.exchanges().count(), 1);

    // A new exchange starts with nothing listed: the default applies.
    assert_eq!(
        s.exchange_entry(id("kraken")).unwrap(),
        &ConnectionProxies::default()
    );
    assert_eq!(
        picked(&mut s, "kraken", Http).as_deref(),
        Some("http://default-http:8080")
    );
    s.exchange_entry(id("kraken")).unwrap().http = Some(ProxyConfig::default());
    assert_eq!(picked(&mut s, "kraken", Http), None);

    // Full: the same error as insert_exchange, and nothing added.
    s.exchange_entry(id("c")).unwrap();
    s.exchange_entry(id("d")).unwrap();
    let e = s.exchange_entry(id("e")).unwrap_err();
    assert_eq!(e.field, "proxy.exchanges");
    assert_eq!(e.reason, Reason::TooMany { len: 5, max: 4 });
    assert!(s.exchange(&id("e")).is_none());
    assert_eq!(s.exchanges().count(), 4);
}
