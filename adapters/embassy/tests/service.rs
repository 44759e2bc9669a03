//! `proxy-delegate-embassy` on embassy's std executor (embassy-time's std
//! clock), over the operating system's network behind the
//! embedded-nal-async traits (`std-embedded-nal-async`), against the REAL
//! `proxy-delegate serve` binary on 127.0.0.1: delegation and caching in
//! both wire formats, feedback reaching the service, fallback (stale,
//! embedded, direct) once the service is killed, and a dropped resolve
//! giving its slot back.
//!
//! The Resolver is the gateway profile: 32 cached routes, 2 endpoints, 32
//! feedback events, 4 requests in flight, 8 waiting resolves. The driver
//! runs in a task of its own, as an application runs it; each scenario is
//! another task that sends its findings to the test thread. No assertion
//! is on time: waits are bounded polls, and the whole scenario has a
//! generous bound against a hang.

mod common;

use std::sync::mpsc;
use std::time::Duration as StdDuration;

use embassy_executor::Spawner;
use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_time::{Duration, Instant, Timer};
use proxy_delegate_core::contract::WireFormat;
use proxy_delegate_core::embedded::{EmbeddedRoute, EmbeddedRoutes};
use proxy_delegate_core::endpoints::EndpointConfig;
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ExchangeId, FeedbackEvent, ProxyFeedback, ProxyRequest, ProxyUrl,
    Timestamp,
};
use proxy_delegate_core::resolver::{Resolver, ResolverConfig, Route, Source};
use proxy_delegate_core::settings::Secret;
use proxy_delegate_core::storage::Inline;
use proxy_delegate_embassy::{Auth, Buffers, Client, Failure, Stats, now};

use common::{INVENTORY, TOKEN, on_embassy, start_service};
use proxy_delegate_test_support::metric_sum;

/// The embedded configuration's proxy (with a password).
const EMBEDDED_PROXY: &str = "http://gw:pw-embedded-77@127.0.0.1:3128";

/// The gateway profile.
/// The gateway profile, its messages kept packed as a microcontroller keeps
/// them (`keep::Compact`), so these tests drive the packed paths over the
/// network: routes lent from packed slots, feedback batches from packed events.
type Keeping = proxy_delegate_core::keep::Compact<128, 128, 96>;
type Gateway = Resolver<Fixed, 32, 2, 32, 4, 8, Inline, Keeping, 8>;
type GatewayClient =
    Client<'static, CriticalSectionRawMutex, Fixed, 32, 2, 32, 4, 8, Inline, Keeping, 8>;
/// Calls to the service at once.
const SENDERS: usize = 2;

/// Bound of a whole scenario (a hang guard, not a measurement).
const SCENARIO_BOUND: StdDuration = StdDuration::from_secs(60);

/// The embedded configuration: one proxy for every exchange, except those
/// whose id starts with `direct`, which connect directly.
#[derive(Debug)]
struct Fixed(ProxyUrl);

impl EmbeddedRoutes for Fixed {
    fn embedded_route(
        &mut self,
        exchange_id: &ExchangeId,
        _: ConnectionType,
    ) -> Option<EmbeddedRoute> {
        (!exchange_id.as_str().starts_with("direct")).then(|| EmbeddedRoute {
            proxy_url: self.0.clone(),
            timeout_seconds: 5,
        })
    }
}

/// A client of the service at `endpoint` (the Resolver and the client
/// leaked: they live as long as the executor, as `StaticCell`s would).
fn client(endpoint: &str, tweak: impl FnOnce(&mut ResolverConfig)) -> &'static GatewayClient {
    let mut config = ResolverConfig::new(ClientId::new("gateway").expect("valid"));
    config.request_timeout = Duration::from_secs(2);
    // Feedback goes out as soon as one event waits.
    config.feedback.batch_size = 1;
    tweak(&mut config);
    let endpoints = [EndpointConfig::new(endpoint.parse().expect("a URL"), 0)];
    let embedded = Fixed(EMBEDDED_PROXY.parse().expect("a proxy URL"));
    let resolver = Box::leak(
        Gateway::new_boxed(now(), config, &endpoints, embedded).expect("a valid configuration"),
    );
    let auth = Auth::Bearer(Secret::new(TOKEN).expect("a token"));
    Box::leak(Box::new(Client::new(resolver, auth)))
}

/// The driver, as an application spawns it.
#[embassy_executor::task(pool_size = 8)]
async fn driver(client: &'static GatewayClient) -> ! {
    let stack = Box::leak(Box::new(std_embedded_nal_async::Stack::default()));
    let buffers = Box::leak(Box::new(Buffers::<SENDERS>::new()));
    client.run(&*stack, &*stack, buffers).await
}

fn request(exchange: &str) -> ProxyRequest {
    ProxyRequest::new(
        ExchangeId::new(exchange).expect("an exchange id"),
        ConnectionType::Websocket,
        ClientId::new("gateway").expect("valid"),
    )
}

/// Resolves `exchange`; an error fails the scenario.
async fn resolve(client: &GatewayClient, exchange: &str) -> Result<Route, String> {
    client
        .resolve(&request(exchange))
        .await
        .map_err(|e| format!("resolve({exchange}): {e}"))
}

/// Waits (bounded: 400 × 25 ms) until `done` holds of the client's stats.
async fn eventually(
    client: &GatewayClient,
    what: &str,
    done: impl Fn(&Stats) -> bool,
) -> Result<(), String> {
    for _ in 0..400 {
        if done(&client.stats()) {
            return Ok(());
        }
        Timer::after(Duration::from_millis(25)).await;
    }
    Err(format!(
        "{what} did not happen within 10 s: {:?}",
        client.stats()
    ))
}

fn in_inventory(route: &Route) -> bool {
    let (Some(url), Some(id)) = (&route.proxy_url, &route.proxy_id) else {
        return false;
    };
    let url = url.to_string();
    INVENTORY
        .iter()
        .any(|(i, u)| *i == id.as_str() && *u == url)
}

// ------------------------------------------------------------ delegation

/// What the delegation scenario saw.
#[derive(Debug)]
struct Delegated {
    first: Route,
    second: Route,
    stats: Stats,
}

#[embassy_executor::task(pool_size = 4)]
async fn delegation(client: &'static GatewayClient, tx: mpsc::Sender<Result<Delegated, String>>) {
    let result = async {
        let first = resolve(client, "binance").await?;
        let second = resolve(client, "binance").await?;
        let feedback = ProxyFeedback {
            proxy_id: first.proxy_id.clone(),
            proxy_url: first.proxy_url.clone(),
            exchange_id: ExchangeId::new("binance").expect("valid"),
            connection_type: ConnectionType::Websocket,
            event: FeedbackEvent::Success,
            success: true,
            latency_ms: Some(12),
            error_category: None,
            error_details: None,
            timestamp: Timestamp::from_unix_millis(1_700_000_000_000).expect("valid"),
            client_id: ClientId::new("gateway").expect("valid"),
        };
        client.report_feedback(feedback);
        eventually(client, "feedback delivery", |s| s.feedback.sent == 1).await?;
        Ok(Delegated {
            first,
            second,
            stats: client.stats(),
        })
    }
    .await;
    let _ = tx.send(result);
}

fn delegates_caches_and_reports(wire: WireFormat) {
    let serve = start_service();
    let url = serve.url();
    let seen = on_embassy(SCENARIO_BOUND, move |spawner: Spawner, tx| {
        let client = client(&url, |c| {
            c.wire = wire;
            // A long deadline: this case is about delegation, and a fresh
            // process on a busy machine may answer its first call slowly.
            c.resolve_deadline = Duration::from_secs(10);
        });
        spawner.spawn(driver(client).expect("a driver slot"));
        spawner.spawn(delegation(client, tx).expect("a scenario slot"));
    })
    .unwrap_or_else(|e| panic!("{wire}: {e}\nservice log:\n{}", serve.stderr_text()));

    // Delegation: the service chose one of its proxies.
    assert_eq!(seen.first.source, Source::Service, "{wire}: {seen:?}");
    assert!(
        in_inventory(&seen.first),
        "{wire}: {seen:?} names no proxy of the inventory"
    );
    // Caching: the second resolve is a hit, the same route.
    assert_eq!(seen.second.source, Source::Cache, "{wire}: {seen:?}");
    assert_eq!(seen.second.proxy_url, seen.first.proxy_url);
    assert_eq!(
        seen.stats.resolver.resolved[Source::Service as usize],
        1,
        "{seen:?}"
    );
    assert_eq!(
        seen.stats.resolver.resolved[Source::Cache as usize],
        1,
        "{seen:?}"
    );
    assert_eq!(
        seen.stats.adapter.failures,
        [0; Failure::ALL.len()],
        "{seen:?}"
    );

    let metrics = serve.metrics();
    // The service saw one proxy request (the hit asked nothing) and applied
    // the one feedback event.
    let requests = metric_sum(
        &metrics,
        "proxy_delegate_http_requests_total",
        &[("route", "/api/v1/proxy/request")],
    );
    assert_eq!(
        requests, 1.0,
        "{wire}: one request for two resolves:\n{metrics}"
    );
    let applied = metric_sum(
        &metrics,
        "proxy_delegate_feedback_total",
        &[("event", "success")],
    );
    assert_eq!(
        applied, 1.0,
        "{wire}: the service applied the event:\n{metrics}"
    );
    // The token never reaches the service's log.
    assert!(
        !serve.stderr_text().contains(TOKEN),
        "{}",
        serve.stderr_text()
    );
}

#[test]
fn delegates_caches_and_reports_in_json() {
    delegates_caches_and_reports(WireFormat::Json);
}

#[test]
fn delegates_caches_and_reports_in_postcard() {
    delegates_caches_and_reports(WireFormat::Postcard);
}

// ------------------------------------------------------------ fallback

/// What the fallback scenario saw after the service was killed.
#[derive(Debug)]
struct FellBack {
    before: Route,
    stale: Route,
    embedded: Vec<Route>,
    direct: Route,
    stats: Stats,
    /// The slowest resolve after the kill (reported, not asserted).
    slowest: Duration,
}

#[embassy_executor::task(pool_size = 4)]
async fn fallback(
    client: &'static GatewayClient,
    kill: mpsc::Sender<()>,
    killed: &'static std::sync::Mutex<mpsc::Receiver<()>>,
    tx: mpsc::Sender<Result<FellBack, String>>,
) {
    let result = async {
        let before = resolve(client, "binance").await?;
        if before.source != Source::Service {
            return Err(format!("the first answer is not the service's: {before:?}"));
        }
        // The test thread kills the service; wait (bounded) for it.
        kill.send(()).map_err(|e| e.to_string())?;
        let mut gone = false;
        for _ in 0..400 {
            if killed.lock().expect("lock").try_recv().is_ok() {
                gone = true;
                break;
            }
            Timer::after(Duration::from_millis(25)).await;
        }
        if !gone {
            return Err("the service was not killed within 10 s".into());
        }
        // The cached answer expires (max_ttl 1 s): then it is stale.
        Timer::after(Duration::from_millis(1500)).await;
        let mut slowest = Duration::from_ticks(0);
        let timed = |started: Instant, slowest: &mut Duration| {
            *slowest = (*slowest).max(Instant::now() - started);
        };
        let started = Instant::now();
        let stale = resolve(client, "binance").await?;
        timed(started, &mut slowest);
        let mut embedded = Vec::new();
        for i in 0..6 {
            let started = Instant::now();
            embedded.push(resolve(client, &format!("kraken-{i}")).await?);
            timed(started, &mut slowest);
        }
        let started = Instant::now();
        let direct = resolve(client, "direct-1").await?;
        timed(started, &mut slowest);
        Ok(FellBack {
            before,
            stale,
            embedded,
            direct,
            stats: client.stats(),
            slowest,
        })
    }
    .await;
    let _ = tx.send(result);
}

#[test]
fn falls_back_to_stale_embedded_and_direct_when_the_service_is_killed() {
    let mut serve = start_service();
    let url = serve.url();
    let (kill_tx, kill_rx) = mpsc::channel();
    let (killed_tx, killed_rx) = mpsc::channel();
    let killed_rx: &'static _ = Box::leak(Box::new(std::sync::Mutex::new(killed_rx)));
    let (result_tx, result_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let executor = Box::leak(Box::new(embassy_executor::Executor::new()));
        executor.run(move |spawner| {
            let client = client(&url, |c| {
                c.resolve_deadline = Duration::from_millis(300);
                c.cache.max_ttl = Duration::from_secs(1);
                c.cache.min_ttl = Duration::from_millis(500);
                c.cache.refresh_ahead_percent = 100; // off
            });
            spawner.spawn(driver(client).expect("a driver slot"));
            spawner
                .spawn(fallback(client, kill_tx, killed_rx, result_tx).expect("a scenario slot"));
        });
    });
    kill_rx.recv_timeout(SCENARIO_BOUND).unwrap_or_else(|e| {
        panic!(
            "no first answer ({e}); service log:\n{}",
            serve.stderr_text()
        )
    });
    serve.kill();
    killed_tx.send(()).expect("the scenario waits");
    let seen = result_rx
        .recv_timeout(SCENARIO_BOUND)
        .expect("the scenario ends")
        .unwrap_or_else(|e| panic!("{e}"));

    assert!(in_inventory(&seen.before), "{seen:?}");
    assert_eq!(seen.stale.source, Source::Stale, "{seen:?}");
    assert_eq!(seen.stale.proxy_url, seen.before.proxy_url, "{seen:?}");
    let embedded: ProxyUrl = EMBEDDED_PROXY.parse().expect("valid");
    for route in &seen.embedded {
        assert_eq!(route.source, Source::Embedded, "{seen:?}");
        assert_eq!(route.proxy_url.as_ref(), Some(&embedded), "{seen:?}");
    }
    assert_eq!(seen.direct.source, Source::Direct, "{seen:?}");
    assert_eq!(seen.direct.proxy_url, None, "{seen:?}");
    // Every fallback is the core's, for a reason it names; the adapter saw
    // the refused connections.
    let fallbacks: u64 = seen.stats.resolver.fallbacks.iter().sum();
    assert_eq!(fallbacks, 8, "{seen:?}");
    assert!(seen.stats.adapter.failed(Failure::Connect) > 0, "{seen:?}");
    // The embedded proxy's password is in no Debug output of the stats.
    assert!(!format!("{seen:?}").contains("pw-embedded-77"), "{seen:?}");
    eprintln!(
        "slowest resolve after the kill: {} ms (deadline 300 ms)",
        seen.slowest.as_millis()
    );
}

// ------------------------------------------------------------ cancel

#[embassy_executor::task(pool_size = 4)]
async fn dropped(client: &'static GatewayClient, tx: mpsc::Sender<Result<Stats, String>>) {
    // 20 resolves of one key (one service request), each dropped while it
    // waits: with 8 slots, the 9th would be overloaded unless each drop gave
    // its slot back.
    for i in 0..20 {
        let waited = select(
            client.resolve(&request("silent")),
            Timer::after(Duration::from_millis(20)),
        )
        .await;
        if let Either::First(r) = waited {
            let _ = tx.send(Err(format!("resolve {i} answered: {r:?}")));
            return;
        }
    }
    let _ = tx.send(Ok(client.stats()));
}

#[test]
fn a_dropped_resolve_gives_its_slot_back() {
    // A listener that accepts and never answers: every resolve waits.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let url = format!("http://{}", silent.local_addr().expect("an address"));
    let stats = on_embassy(SCENARIO_BOUND, move |spawner: Spawner, tx| {
        let client = client(&url, |c| c.resolve_deadline = Duration::from_secs(30));
        spawner.spawn(driver(client).expect("a driver slot"));
        spawner.spawn(dropped(client, tx).expect("a scenario slot"));
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats.adapter.overloaded, 0, "{stats:?}");
    assert_eq!(stats.resolver.fallbacks, [0; 4], "{stats:?}");
    assert_eq!(stats.resolver.failed, 0, "{stats:?}");
    drop(silent);
}
