//! The end-to-end fault suite: the real `proxy-delegate serve` binary (two
//! where a scenario needs two), real forward proxies (Debian's tinyproxy and
//! microsocks), a local WebSocket exchange (an echo server), and the client
//! library under steady load ([`load::Load`]: eight tasks resolving,
//! connecting through the route, echoing one message and closing). Each
//! scenario injects one fault and checks the outcome:
//!
//! * no connection fails because of the service's fault (failures the
//!   target causes, or a proxy the scenario killed, are counted apart);
//! * every resolve is answered within its deadline (plus
//!   [`WAIT_SLACK`] for a busy machine);
//! * delegated answers come back within one breaker open duration plus one
//!   probe after the fault ends (plus [`RECOVERY_SLACK`]);
//! * feedback is conserved (sent + rejected + queued + dropped + drained =
//!   reported), nothing is dropped while the queue has room, and the
//!   service received at least what the client counts as sent.
//!
//! Each scenario prints one line of figures (connections, failures by
//! cause, resolves by source, worst resolve wait, recovery time, feedback
//! counts); the line is also the message of every assertion. Run the suite
//! with
//!
//! ```sh
//! cargo test -p proxy-delegate --features proxy-delegate-tokio/dns-srv --test faults -- --nocapture
//! ```
//!
//! The client's timings are shortened so that a scenario lasts seconds
//! (see [`rig::build_client`]): resolve deadline 250 ms, service calls
//! 1 s, breaker open 1 s, down checks every 250 ms. The SRV scenario builds
//! the client exactly as an application does (`from_settings_with_dns`),
//! with the product's own timings. Every server binds 127.0.0.1; every
//! process is killed on drop; every wait is bounded.

mod common;
#[path = "../../tokio/tests/common/dnsmasq.rs"]
mod dnsmasq;
#[path = "../../tokio/tests/common/proxies.rs"]
mod proxies;
#[path = "../../tokio/tests/common/targets.rs"]
mod targets;

#[path = "faults/harness.rs"]
mod harness;
#[path = "faults/load.rs"]
mod load;
#[path = "faults/relay.rs"]
mod relay;
#[path = "faults/rig.rs"]
mod rig;

use std::time::Duration;

use proxy_delegate_core::resolver::Source;
use proxy_delegate_tokio::ProxyServiceClient;
use tokio::time::Instant;

use harness::{
    Expect, FAULT, Rig, Session, TAIL, check, check_received, client_counter, echo, log_lines_with,
    proxy_addr, recovery_bound,
};
use load::{Figures, ResolveSample};
use proxy_delegate_test_support::{ServeProcess, metric_sum};
use relay::{Mode, Relay};
use rig::{BREAKER_OPEN, CLIENTS, Endpoints, OPS_TOKEN, REQUEST_TIMEOUT};

// ------------------------------------------------------------ relay faults

/// The service behind a relay; the relay misbehaves as `mode` for
/// [`FAULT`], then passes again. Returns the figures and the relay's URL.
async fn relay_scenario(name: &'static str, mode: Mode) -> (Figures, String) {
    let rig = Rig::start().await;
    let config = rig.service_config("service", "p");
    let service = common::start_service(&config, common::any_port()).await;
    let relay = Relay::start(service.addr()).await;
    let h = rig.client(Endpoints::List(vec![relay.url()]));
    h.warm_up().await;

    let before = relay.counts();
    let start = Instant::now();
    relay.set(mode);
    tokio::time::sleep(FAULT).await;
    relay.set(Mode::Pass);
    let end = Instant::now();
    let during = relay.counts();
    h.recover(end, Duration::from_secs(15)).await;

    let mut f = h.finish(name, Some((start, end)), Some(end), None).await;
    let received = check_received(&f, &service).await;
    let url = relay.url();
    let calls = |outcome: &str| calls_to(&url, outcome);
    let outcomes: Vec<String> = ["ok", "server_error", "timeout", "malformed"]
        .iter()
        .map(|outcome| format!("{outcome} {}", calls(outcome)))
        .collect();
    f.extra = format!(
        "requests the relay read during the fault: resolve {}, feedback {}, health {}; {}; \
         the client's calls by outcome: {}; WARN lines naming the relay: {}; service \
         received {received} feedback events",
        during.resolve - before.resolve,
        during.feedback - before.feedback,
        during.health - before.health,
        relay.counts(),
        outcomes.join(", "),
        log_lines_with(&["WARN", &url]).len(),
    );
    check(
        &f,
        Expect {
            recovery: Some(recovery_bound()),
        },
    );
    // Every failed call is classified as what it was.
    let expected = match mode {
        Mode::Fail => Some("server_error"),
        Mode::Slow(_) | Mode::BlackHole => Some("timeout"),
        Mode::Pass | Mode::Malformed => None,
    };
    if let Some(outcome) = expected {
        assert!(
            calls(outcome) > 0,
            "no call to the relay counted as {outcome}: {f}"
        );
    }
    (f, url)
}

/// The client's calls to `url` (resolves, feedback, health checks) that it
/// classified as `outcome` (`proxy_delegate_service_requests_total`).
fn calls_to(url: &str, outcome: &str) -> u64 {
    let port = format!(":{}", url.rsplit(':').next().unwrap_or_default());
    client_counter("proxy_delegate_service_requests_total", |k, v| match k {
        "endpoint" => v.ends_with(&port) || v.contains(&format!("{port}/")),
        "outcome" => v == outcome,
        _ => true,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_a_5xx() {
    relay_scenario("5xx", Mode::Fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers() {
    relay_scenario("malformed", Mode::Malformed).await;
}

/// The malformed answers are failures an operator must act on: docs/client.md
/// promises a WARN line (`proxy service <url> sent an answer that does not
/// decode: …`) and `outcome="malformed"` in
/// `proxy_delegate_service_requests_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_are_reported_to_the_operator() {
    let (f, url) = relay_scenario("malformed, reported", Mode::Malformed).await;
    let warned = log_lines_with(&["WARN", &url, "does not decode"]);
    let counted = calls_to(&url, "malformed");
    assert!(
        !warned.is_empty() && counted > 0,
        "{} WARN lines say {url} sent an answer that does not decode, {counted} calls counted \
         as malformed: {f}",
        warned.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_slower_than_the_timeout() {
    relay_scenario(
        "slow",
        Mode::Slow(REQUEST_TIMEOUT + Duration::from_millis(1500)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_path_to_the_service_black_holed() {
    relay_scenario("black hole", Mode::BlackHole).await;
}

// ------------------------------------------------------------ process faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_killed_then_restarted() {
    let rig = Rig::start().await;
    let config = rig.service_config("service", "p");
    let mut service = common::start_service(&config, common::any_port()).await;
    let addr = service.addr();
    let h = rig.client(Endpoints::List(vec![service.url()]));
    h.warm_up().await;

    let start = Instant::now();
    tokio::task::block_in_place(|| service.kill());
    tokio::time::sleep(FAULT).await;
    // The same port again: the client's endpoint is unchanged.
    let restarted = common::start_service(&config, addr).await;
    let end = Instant::now();
    h.recover(end, Duration::from_secs(15)).await;

    let mut f = h
        .finish("killed", Some((start, end)), Some(end), None)
        .await;
    // The restarted process saw only what came after the restart.
    let received = rig::service_feedback_received(&restarted.url()).await;
    f.extra = format!(
        "restart took {} ms; the restarted service received {received} feedback events",
        (end - start - FAULT).as_millis()
    );
    check(
        &f,
        Expect {
            recovery: Some(recovery_bound()),
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_frozen_then_resumed() {
    let rig = Rig::start().await;
    let config = rig.service_config("service", "p");
    let service = common::start_service(&config, common::any_port()).await;
    let h = rig.client(Endpoints::List(vec![service.url()]));
    h.warm_up().await;

    let start = Instant::now();
    // Stopped: the kernel still accepts connections; nothing answers.
    tokio::task::block_in_place(|| service.freeze());
    tokio::time::sleep(FAULT).await;
    service.signal("CONT");
    let end = Instant::now();
    h.recover(end, Duration::from_secs(15)).await;

    let mut f = h
        .finish("frozen", Some((start, end)), Some(end), None)
        .await;
    let received = check_received(&f, &service).await;
    f.extra = format!("service received {received} feedback events");
    check(
        &f,
        Expect {
            recovery: Some(recovery_bound()),
        },
    );
}

// ------------------------------------------------------------ the token

/// `proxy_delegate_http_requests_total` of the proxy-request route with
/// `status`.
async fn requests_with_status(service: &ServeProcess, status: &str) -> f64 {
    let text = rig::service_metrics(&service.url()).await;
    metric_sum(
        &text,
        "proxy_delegate_http_requests_total",
        &[("route", "/api/v1/proxy/request"), ("status", status)],
    )
}

/// Sends SIGHUP and waits (at most 10 s) for the service's `n`-th
/// `configuration reloaded` line.
async fn reload(service: &ServeProcess, n: usize) {
    service.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while service
        .stderr_text()
        .matches("configuration reloaded")
        .count()
        < n
    {
        assert!(
            Instant::now() < deadline,
            "reload {n} not done within 10 s:\n{}",
            service.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_token_revoked_mid_run() {
    let rig = Rig::start().await;
    let config = rig.service_config("service", "p");
    let service = common::start_service(&config, common::any_port()).await;
    let url = service.url();
    let h = rig.client(Endpoints::List(vec![url.clone()]));
    h.warm_up().await;
    let refused_before = requests_with_status(&service, "401").await;

    // The file without this client (the other client stays, so
    // authentication stays on), reloaded.
    let inventory = rig.proxies.inventory("p");
    rig::write_service_config(&config, &[("ops", OPS_TOKEN)], &inventory);
    reload(&service, 1).await;
    let start = Instant::now();
    tokio::time::sleep(FAULT).await;
    let refused = requests_with_status(&service, "401").await - refused_before;
    let stats_then = h.client.stats().0;
    // The token back: delegation resumes.
    rig::write_service_config(&config, &CLIENTS, &inventory);
    reload(&service, 2).await;
    let end = Instant::now();
    h.recover(end, Duration::from_secs(15)).await;

    let mut f = h
        .finish("token revoked", Some((start, end)), Some(end), None)
        .await;
    let received = check_received(&f, &service).await;
    let fault_secs = (end - start).as_secs_f64();
    let resolves_in_fault: usize = f.in_fault.iter().sum();
    // No retry storm: after five failures the breaker opens for a second,
    // then lets one probe through. Bound: the requests in flight when the
    // token went (one per key, at most 16), the five that trip it, and per
    // second of fault one probe and its hedge — far below one request per
    // resolve.
    let storm_bound = 16.0 + 5.0 + 2.0 * (fault_secs / BREAKER_OPEN.as_secs_f64()).ceil();
    f.extra = format!(
        "{refused} proxy requests refused (401) in {fault_secs:.1} s of revocation for \
         {resolves_in_fault} resolves (bound {storm_bound}); client stats then {stats_then:?}; \
         service received {received} feedback events"
    );
    let warned = log_lines_with(&["HTTP 401", &url, "WARN"]);
    check(
        &f,
        Expect {
            recovery: Some(recovery_bound()),
        },
    );
    assert!(refused >= 1.0, "the service was asked and refused: {f}");
    assert!(
        refused <= storm_bound,
        "a retry storm: {refused} refused requests, over {storm_bound}: {f}"
    );
    let line = warned
        .first()
        .unwrap_or_else(|| panic!("no WARN line about the 401 from {url}: {f}"));
    assert!(
        line.contains(&format!(
            "check the bearer token configured for endpoint {url}"
        )) && line.contains("external_service.auth_credentials.token"),
        "the 401 line says what to check: {line}"
    );
    assert!(
        !line.contains(rig::TOKEN),
        "the 401 line shows the token: {line}"
    );
    eprintln!(
        "[token revoked] {} WARN lines about the 401 from {url}; the first: {line}",
        warned.len()
    );
}

// ------------------------------------------------------------ two endpoints

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_endpoints_down() {
    let rig = Rig::start().await;
    let config = rig.service_config("service", "p");
    let mut first = common::start_service(&config, common::any_port()).await;
    let second = common::start_service(&config, common::any_port()).await;
    let h = rig.client(Endpoints::List(vec![first.url(), second.url()]));
    h.warm_up().await;

    let start = Instant::now();
    tokio::task::block_in_place(|| first.kill());
    tokio::time::sleep(FAULT + TAIL).await;
    let end = Instant::now();

    let f = h
        .finish("one of two down", Some((start, end)), None, None)
        .await;
    let mut f = f;
    let received = rig::service_feedback_received(&second.url()).await;
    let answered = requests_with_status(&second, "200").await;
    f.extra = format!(
        "the second endpoint answered {answered} proxy requests and received {received} \
         feedback events"
    );
    check(&f, Expect { recovery: None });
    assert_eq!(
        f.fallbacks_in_fault(),
        0,
        "resolves fell back although the second endpoint was up: {f}"
    );
    assert!(
        f.in_fault[0] > 0,
        "the second endpoint answered during the fault: {f}"
    );
}

// ------------------------------------------------------------ SRV

/// The SRV name of the scenario (`_http`: plain http).
const SRV_NAME: &str = "_http._tcp.faults.pd.test";

fn srv_records(host: &str, port: u16) -> Vec<String> {
    vec![
        format!("--srv-host={SRV_NAME},{host},{port},0,10"),
        format!("--host-record={host},127.0.0.1"),
        "--local-ttl=1".to_owned(),
    ]
}

/// SRV lookups dnsmasq has answered so far.
fn srv_queries(dns: &dnsmasq::Dnsmasq) -> usize {
    dns.log_text()
        .lines()
        .filter(|l| l.contains("query[SRV]") && l.contains(SRV_NAME))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_srv_record_moved_to_a_new_endpoint() {
    let rig = Rig::start().await;
    let config_a = rig.service_config("service-a", "a");
    let config_b = rig.service_config("service-b", "b");
    let mut a = common::start_service(&config_a, common::any_port()).await;
    let b = common::start_service(&config_b, common::any_port()).await;
    let (port_a, port_b) = (a.addr().port(), b.addr().port());
    let dns = tokio::task::block_in_place(|| {
        dnsmasq::Dnsmasq::start(&srv_records("svc-a.pd.test", port_a))
    });
    let dns_port = dns.port;

    // Built as an application builds it: the settings, DNS SRV discovery
    // (with its own refresh), the product's own breaker and check timings.
    let endpoints = Endpoints::Srv(SRV_NAME.to_owned());
    let settings = rig::client_settings(&endpoints, &rig.proxies.embedded_url());
    let client = tokio::time::timeout(
        Duration::from_secs(10),
        ProxyServiceClient::from_settings_with_dns(settings, rig::CLIENT_ID, &dns.dns()),
    )
    .await
    .expect("the client builds within 10 s")
    .unwrap_or_else(|e| panic!("the client builds: {e}\n{}", dns.log_text()));
    let h = rig.harness(client, &endpoints);
    h.warm_up().await;
    let from_a = |r: &ResolveSample| r.proxy_id.as_deref().is_some_and(|p| p.starts_with("a-"));
    assert!(
        h.load
            .first_resolve_after(Instant::now() - Duration::from_secs(60), from_a)
            .is_some(),
        "the service at the first record answered"
    );

    // Move right after the client's lookup, so the move and the next
    // lookup do not race (the next one is due one refresh period later).
    let seen = srv_queries(&dns);
    let deadline = Instant::now() + Duration::from_secs(15);
    while srv_queries(&dns) == seen {
        assert!(Instant::now() < deadline, "no SRV lookup within 15 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let moved = tokio::task::block_in_place(move || {
        drop(dns);
        let mut last = String::new();
        for _ in 0..20 {
            match dnsmasq::Dnsmasq::start_on(dns_port, &srv_records("svc-b.pd.test", port_b)) {
                Ok(d) => return d,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dnsmasq did not start again on port {dns_port}: {last}");
    });
    // The old endpoint goes away with its record.
    tokio::task::block_in_place(|| a.kill());
    let start = Instant::now();
    let from_b = |r: &ResolveSample| {
        matches!(r.source, Ok(Source::Service))
            && r.proxy_id.as_deref().is_some_and(|p| p.starts_with("b-"))
    };
    let followed = h
        .load
        .wait_for_resolve(start, Duration::from_secs(20), from_b)
        .await;
    tokio::time::sleep(TAIL).await;

    let end = followed.unwrap_or(start);
    let mut f = h.finish("srv moved", Some((start, end)), None, None).await;
    // The old endpoint took feedback until it was killed: the new one's
    // count is only a part of what was sent.
    let received = rig::service_feedback_received(&b.url()).await;
    let srv_refresh = Duration::from_secs(5);
    let bound = srv_refresh + Duration::from_secs(2);
    let followed_after = followed.map(|t| t - start);
    f.extra = format!(
        "the client followed the record {} ms after the move (bound {} ms: the SRV refresh \
         floor, 5 s, + 2 s); the new endpoint received {received} feedback events; {} SRV \
         lookups since the move",
        followed_after.map_or(-1, |d| d.as_millis() as i64),
        bound.as_millis(),
        srv_queries(&moved)
    );
    check(&f, Expect { recovery: None });
    let followed_after =
        followed_after.unwrap_or_else(|| panic!("the client never asked the new endpoint: {f}"));
    assert!(
        followed_after <= bound,
        "the client followed the moved record after {followed_after:?}, over {bound:?}: {f}"
    );
}

// ------------------------------------------------------------ a proxy dies

/// A forward proxy of the inventory (microsocks `p-socks-a`) killed while
/// sessions run through it and the load goes on. The feedback of the
/// failed connections must make the service eject it; sessions through
/// the other proxies go on; every broken session reconnects. `strict`:
/// no connection at all may fail because of the dead proxy (the
/// injector's retry after a proxy failure must go through another proxy).
async fn proxy_killed(name: &'static str, strict: bool) {
    let mut rig = Rig::start().await;
    let config = rig.service_config("service", "p");
    let service = common::start_service(&config, common::any_port()).await;
    let h = rig.client(Endpoints::List(vec![service.url()]));
    h.warm_up().await;
    let dead = format!("127.0.0.1:{}", rig.proxies.socks_a.port());
    let through_dead = |r: &ResolveSample| r.proxy.as_deref() == Some(dead.as_str());
    assert!(
        h.load
            .first_resolve_after(Instant::now() - Duration::from_secs(60), through_dead)
            .is_some(),
        "the service handed out the proxy before it was killed"
    );

    // Sessions open when the proxy dies, one exchange each, spread over
    // the inventory by the service (least connections: the pause lets each
    // session's `connect_start` reach it before the next is asked for),
    // until three go through the doomed proxy.
    let url = rig.target.url("/ws");
    let through = |ws: &proxy_delegate_tokio::InjectedWebSocket| {
        proxy_addr(ws.route()).as_deref() == Some(dead.as_str())
    };
    let mut sessions: Vec<Session> = Vec::new();
    for k in 0..30 {
        if sessions.iter().filter(|s| through(&s.ws)).count() == 3 {
            break;
        }
        let exchange = format!("session-{k}");
        let ws = h
            .injector
            .connect_websocket(&url, &exchange)
            .await
            .unwrap_or_else(|e| panic!("session {exchange}: {e}"));
        sessions.push(Session { exchange, ws });
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let opened = sessions.len();
    let doomed = sessions.iter().filter(|s| through(&s.ws)).count();
    assert!(doomed > 0, "no session went through {dead}");

    let start = Instant::now();
    tokio::task::block_in_place(|| rig.proxies.socks_a.kill());
    // Every session: its tunnel through the dead proxy is gone; the others
    // go on. A broken session reconnects through the injector at once.
    let (mut broken, mut unaffected, mut reconnected) = (0, 0, 0);
    let mut reconnect_failures = Vec::new();
    for mut s in sessions {
        let through_dead = through(&s.ws);
        match echo(&mut s.ws, "still there?").await {
            Ok(()) => {
                assert!(
                    !through_dead,
                    "a session through the dead proxy still echoes"
                );
                unaffected += 1;
                continue;
            }
            Err(e) => {
                assert!(through_dead, "session {} broke: {e}", s.exchange);
                broken += 1;
            }
        }
        drop(s.ws);
        match h.injector.connect_websocket(&url, &s.exchange).await {
            Ok(mut ws) => match echo(&mut ws, "again").await {
                Ok(()) => reconnected += 1,
                Err(e) => reconnect_failures.push(format!("{}: echo: {e}", s.exchange)),
            },
            Err(e) => reconnect_failures.push(format!("{}: {e}", s.exchange)),
        }
    }

    // The feedback of the failed connections ejects it at the service.
    let deadline = Instant::now() + Duration::from_secs(10);
    let row = loop {
        let row = rig::proxy_row(&service.url(), "p-socks-a").await;
        if row["state"] == "ejected" {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not eject the dead proxy within 10 s: {row}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ejected = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Routes naming the dead proxy once the service knew (its cached
    // answers were dropped by the failure; a fresh one lives 1 s).
    let settled = ejected + Duration::from_millis(1500);
    let late = h.load.count_resolves_after(settled, through_dead);

    let mut f = h
        .finish(name, Some((start, ejected)), None, Some(&dead))
        .await;
    let received = check_received(&f, &service).await;
    f.extra = format!(
        "sessions: {doomed} of {opened} through it, {broken} broke, {unaffected} others unaffected, \
         {reconnected} reconnected, reconnects failed: {reconnect_failures:?}; the service \
         ejected it {} ms after the kill ({row}); {late} routes named it from 1.5 s after the \
         ejection on; service received {received} feedback events",
        (ejected - start).as_millis()
    );
    check(&f, Expect { recovery: None });
    assert_eq!(
        broken, doomed,
        "every session through the dead proxy broke: {f}"
    );
    assert_eq!(
        late, 0,
        "the service kept handing out the dead proxy after it ejected it: {f}"
    );
    if strict {
        assert!(
            f.failed_dead_proxy == 0 && reconnect_failures.is_empty(),
            "connections failed because the retry went through the dead proxy again: {f}"
        );
    }
}

/// The load's connections through the dead proxy may fail while the
/// service does not know yet (counted as `dead proxy`, printed); everything
/// else is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_proxy_killed_mid_session() {
    proxy_killed("proxy killed", false).await;
}

/// The same, strict: no connection may fail at all, since a working proxy
/// was always there and the injector retries a proxy failure once through
/// a fresh route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "intermittent: a reconnect can still fail twice through the dead proxy (seen once \
            in five full runs after the fixes: the retry takes the embedded proxy when the \
            service names the dead one again); run with --ignored"]
async fn a_forward_proxy_killed_mid_session_costs_no_connection() {
    proxy_killed("proxy killed, strict", true).await;
}
