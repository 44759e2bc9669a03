//! Health from plain clients: a client that speaks only the published API
//! reports `success: false` with free-text `error_details` and no
//! `error_category`. Such a failure takes the category its text names
//! (`category_from_details`), and one nothing categorises counts against
//! the proxy, so a dead proxy is ejected.

use embassy_time::Instant;
use proxy_delegate_core::model::{ErrorCategory, ProxyFeedback};
use proxy_delegate_core::pool::{
    EjectReason, Event, Pool, PoolConfig, ProxySpec, ProxyState, StrategyKind,
    category_from_details,
};

type P = Pool<16>;

const T0: Instant = Instant::from_secs(10_000);

fn spec(name: &str, host: u8) -> ProxySpec {
    ProxySpec::new(
        name.parse().unwrap(),
        format!("http://user:pw@10.0.0.{host}:3128")
            .parse()
            .unwrap(),
    )
}

fn pool() -> P {
    let mut p = P::new(PoolConfig {
        strategy: StrategyKind::RoundRobin,
        ..PoolConfig::default()
    })
    .unwrap();
    p.replace_inventory(
        T0,
        &[spec("a", 1), spec("b", 2), spec("c", 3), spec("d", 4)],
    )
    .unwrap();
    p
}

/// What a plain cryptofeed client sends: the published fields only (no
/// `event`, no `error_category`), decoded as the service decodes it.
fn plain_failure(proxy: &str, details: Option<&str>) -> ProxyFeedback {
    let details = details.map_or(String::new(), |d| {
        format!(r#","error_details":{}"#, serde_json::to_string(d).unwrap())
    });
    serde_json::from_str(&format!(
        r#"{{"proxy_id":"{proxy}","exchange_id":"binance","connection_type":"websocket",
            "success":false{details},"timestamp":"2026-01-01T00:00:00Z",
            "client_id":"cryptofeed-instance-123"}}"#
    ))
    .unwrap()
}

fn events(p: &mut P) -> Vec<Event> {
    std::iter::from_fn(|| p.poll_event()).collect()
}

#[test]
fn a_plain_clients_failures_eject_a_dead_proxy() {
    for details in [None, Some("WebSocket closed unexpectedly"), Some("")] {
        let mut p = pool();
        let f = plain_failure("a", details);
        assert_eq!(f.error_category, None);
        let threshold = p.config().eject_consecutive_failures;
        for _ in 1..threshold {
            p.handle_feedback(T0, &f).unwrap();
        }
        assert!(events(&mut p).is_empty());
        assert!(p.proxy(T0, &"a".parse().unwrap()).unwrap().health_score < 1.0);
        p.handle_feedback(T0, &f).unwrap();
        assert!(
            matches!(
                events(&mut p).as_slice(),
                [Event::Ejected {
                    reason: EjectReason::ConsecutiveFailures,
                    ..
                }]
            ),
            "{details:?}"
        );
        let s = p.proxy(T0, &"a".parse().unwrap()).unwrap();
        assert_eq!(s.state, ProxyState::Ejected);
        // Counted as `other`: nothing named a category.
        assert_eq!(
            s.recent_failures.get(ErrorCategory::Other),
            u32::from(threshold)
        );
    }
}

#[test]
fn common_details_count_under_their_category() {
    let cases = [
        (
            "Cannot connect to host 10.0.0.1:3128 ssl:default [Connection refused]",
            ErrorCategory::ProxyConnect,
        ),
        (
            "Tunnel connection failed: 407 Proxy Authentication Required",
            ErrorCategory::ProxyAuth,
        ),
        (
            "Tunnel connection failed: 403 Forbidden",
            ErrorCategory::TunnelRefused,
        ),
        ("Proxy connection timed out: 10", ErrorCategory::Timeout),
    ];
    for (details, category) in cases {
        let mut p = pool();
        let f = plain_failure("b", Some(details));
        for _ in 0..p.config().eject_consecutive_failures {
            p.handle_feedback(T0, &f).unwrap();
        }
        let s = p.proxy(T0, &"b".parse().unwrap()).unwrap();
        assert_eq!(s.state, ProxyState::Ejected, "{details}");
        assert_eq!(
            s.recent_failures.get(category),
            u32::from(p.config().eject_consecutive_failures),
            "{details}"
        );
    }
}

#[test]
fn details_naming_the_target_do_not_count_against_the_proxy() {
    for (details, category) in [
        (
            "Cannot connect to host api.binance.com:443 ssl:True \
             [SSLCertVerificationError: certificate verify failed]",
            ErrorCategory::TargetTls,
        ),
        (
            "server rejected WebSocket connection: HTTP 502",
            ErrorCategory::TargetHttp5xx,
        ),
    ] {
        let mut p = pool();
        for _ in 0..20 {
            p.handle_feedback(T0, &plain_failure("c", Some(details)))
                .unwrap();
        }
        let s = p.proxy(T0, &"c".parse().unwrap()).unwrap();
        assert_eq!(s.state, ProxyState::Active, "{details}");
        assert_eq!(s.health_score, 1.0, "{details}");
        assert_eq!(s.recent_failures.get(category), 20, "{details}");
    }
}

#[test]
fn geo_blocks_and_rate_limits_in_details_cool_the_proxy_down() {
    let mut p = pool();
    let cfg = p.config().clone();
    p.handle_feedback(
        T0,
        &plain_failure("d", Some("server rejected WebSocket connection: HTTP 451")),
    )
    .unwrap();
    p.handle_feedback(T0, &plain_failure("a", Some("429 Too Many Requests")))
        .unwrap();
    let evs = events(&mut p);
    let cooled: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Event::CooledDown {
                proxy,
                category,
                until,
                ..
            } => Some((proxy.to_string(), *category, *until)),
            _ => None,
        })
        .collect();
    assert_eq!(
        cooled,
        [
            (
                "d".to_owned(),
                ErrorCategory::GeoBlocked,
                T0 + cfg.geo_block_cooldown
            ),
            (
                "a".to_owned(),
                ErrorCategory::RateLimited,
                T0 + cfg.rate_limit_cooldown
            ),
        ]
    );
    assert_eq!(
        p.proxy(T0, &"d".parse().unwrap()).unwrap().state,
        ProxyState::CoolingDown
    );
}

#[test]
fn an_explicit_other_still_does_not_count() {
    let mut p = pool();
    let mut f = plain_failure("a", Some("Connection refused"));
    f.error_category = Some(ErrorCategory::Other);
    for _ in 0..20 {
        p.handle_feedback(T0, &f).unwrap();
    }
    let s = p.proxy(T0, &"a".parse().unwrap()).unwrap();
    assert_eq!(s.state, ProxyState::Active);
    assert_eq!(s.health_score, 1.0);
}

#[test]
fn the_details_table() {
    use ErrorCategory::*;
    let cases: &[(&str, Option<ErrorCategory>)] = &[
        // proxy_auth
        ("407 Proxy Authentication Required", Some(ProxyAuth)),
        (
            "ClientHttpProxyError: 407, message='Proxy Authentication Required'",
            Some(ProxyAuth),
        ),
        ("SOCKS proxy auth failed", Some(ProxyAuth)),
        // tunnel_refused
        (
            "Tunnel connection failed: 403 Forbidden",
            Some(TunnelRefused),
        ),
        (
            "ClientHttpProxyError: 403, message='Forbidden'",
            Some(TunnelRefused),
        ),
        ("Connection not allowed by ruleset", Some(TunnelRefused)),
        // rate_limited
        (
            "server rejected WebSocket connection: HTTP 429",
            Some(RateLimited),
        ),
        ("Too Many Requests", Some(RateLimited)),
        ("rate limited by exchange", Some(RateLimited)),
        // geo_blocked
        ("HTTP 451 Unavailable For Legal Reasons", Some(GeoBlocked)),
        (
            "server rejected WebSocket connection: HTTP 403",
            Some(GeoBlocked),
        ),
        (
            "Service unavailable from a restricted location",
            Some(GeoBlocked),
        ),
        ("geo-blocked", Some(GeoBlocked)),
        // target_tls
        (
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
            Some(TargetTls),
        ),
        ("TLS handshake failed", Some(TargetTls)),
        (
            "ssl.SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number",
            Some(TargetTls),
        ),
        // target_http_5xx
        (
            "server rejected WebSocket connection: HTTP 503",
            Some(TargetHttp5xx),
        ),
        ("502 Bad Gateway", Some(TargetHttp5xx)),
        ("504 Gateway Timeout", Some(TargetHttp5xx)),
        ("Internal Server Error", Some(TargetHttp5xx)),
        // timeout
        ("TimeoutError()", Some(Timeout)),
        ("Connection timed out", Some(Timeout)),
        (
            "ProxyTimeoutError: Proxy connection timed out: 60",
            Some(Timeout),
        ),
        ("no answer after 500 ms", None),
        ("timed out after 503 ms", Some(Timeout)),
        // proxy_connect
        ("[Errno 111] Connection refused", Some(ProxyConnect)),
        (
            "Cannot connect to host 10.0.0.1:1080 ssl:default [Connect call failed ('10.0.0.1', 1080)]",
            Some(ProxyConnect),
        ),
        (
            "ProxyConnectionError: Couldn't connect to proxy",
            Some(ProxyConnect),
        ),
        ("General SOCKS server failure", Some(ProxyConnect)),
        ("Network is unreachable", Some(ProxyConnect)),
        ("Connection reset by peer", Some(ProxyConnect)),
        // none: counts against the proxy as `other`
        ("", None),
        ("WebSocket closed unexpectedly", None),
        ("port 14070 on 10.0.4.51", None),
        ("took 5030 ms", None),
        ("décodage: échec — ungültig", None),
    ];
    for (text, want) in cases {
        assert_eq!(category_from_details(text), *want, "{text:?}");
    }
}

#[test]
fn the_table_reads_a_bounded_prefix_and_any_text() {
    // Longer than the model keeps: only the first 512 bytes are read.
    let long = format!("{} connection refused", "x".repeat(600));
    assert_eq!(category_from_details(&long), None);
    let early = format!("connection refused {}", "x".repeat(600));
    assert_eq!(
        category_from_details(&early),
        Some(ErrorCategory::ProxyConnect)
    );
    // Multi-byte text around a pattern, and upper case.
    assert_eq!(
        category_from_details("ÄÖÜ CONNECTION REFUSED ✓"),
        Some(ErrorCategory::ProxyConnect)
    );
}

#[test]
fn the_documented_table_is_the_one_applied() {
    // docs/service.md lists the table; every pattern there maps to its row.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/service.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let start = doc
        .find("| category | patterns in `error_details` |")
        .expect("the table in docs/service.md");
    let mut rows = 0;
    for line in doc[start..].lines().skip(2) {
        let Some(row) = line.strip_prefix("| `") else {
            break;
        };
        let (category, patterns) = row.split_once("` | ").unwrap();
        let category: ErrorCategory = category.parse().unwrap();
        for pattern in patterns.trim_end_matches(" |").split(", ") {
            let pattern = pattern.trim_matches('`');
            assert_eq!(
                category_from_details(pattern),
                Some(category),
                "{pattern:?}"
            );
            assert_eq!(
                category_from_details(&pattern.to_uppercase()),
                Some(category),
                "{pattern:?} in upper case"
            );
        }
        rows += 1;
    }
    assert_eq!(rows, 8);
}
