//! `proxy-delegate demo`: the whole story on this machine, on 127.0.0.1
//! only, with nothing to install.
//!
//! It starts a local WebSocket "exchange" (`/binance`, `/coinbase`,
//! `/kraken`), two real forward proxies (HTTP CONNECT with Basic
//! credentials, SOCKS5 with a user name and password), and the reference
//! proxy service in process, whose inventory names those two proxies. A
//! client (`ProxyServiceClient` + `ProxyInjector`, with short TTLs and a
//! short breaker) then:
//!
//! 1. connects every exchange through the proxy the service chose;
//! 2. loses a proxy (stopped: its port refuses), connects again, and the
//!    service, told of the failure, moves the exchange to the other proxy;
//! 3. loses the service, and keeps connecting from its cache, its stale
//!    cache and the embedded (cryptofeed-compatible) configuration;
//! 4. gets the service back, on the same address, and returns to its
//!    answers;
//! 5. prints the summary.
//!
//! Every wait is bounded; a phase that does not show what it should within
//! its bound ends the demo with status 1 and says which.

mod attempts;
mod connection;
mod exchange;
mod proxies;
mod setup;
mod show;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal as _, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use proxy_delegate_core::resolver::{Route, Source};
use proxy_delegate_service::{Running, ServiceConfig};
use proxy_delegate_tokio::{InjectorConfig, ProxyInjector, ProxyServiceClient};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::Failure;
use crate::summary::{self, Summary, Tally};
use attempts::Attempts;
use exchange::{EXCHANGES, LocalExchange};
use proxies::{Kind, LocalProxy};
use setup::{build_client, client_settings, service_config, shown_url, start_service};
use show::{Colour, Show, ms};

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Print only the final summary on stdout, as one JSON object: the
    /// summary's counts plus `demo` (the proxy move of phase 2 and the
    /// measured times of phases 3 and 4). The progress lines go to stderr.
    #[arg(long)]
    json: bool,
}

/// `ttl_seconds` of the service's answers: the client's cache keeps them
/// fresh this long.
const SERVICE_TTL_SECONDS: u32 = 3;
/// The client's `stale_grace_seconds`: how long an expired answer still
/// serves while the service is down.
const STALE_GRACE_SECONDS: u32 = 3;
/// The client's breaker for the service stays open this long after it trips.
const BREAKER_OPEN_MS: u64 = 1_000;
/// How often the client checks the service while it is down.
const DOWN_CHECK_MS: u64 = 250;
/// Between two connections in phases 3 and 4.
const TICK: Duration = Duration::from_millis(250);
/// The most a phase may take to show what it should.
const PHASE_BOUND: Duration = Duration::from_secs(20);
/// The injector's bound on one connection (resolve, tunnel, handshake, the
/// one retry).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
/// The demo's own bound on one connection, above the injector's.
const CONNECT_BOUND: Duration = Duration::from_secs(6);
/// The demo's bound on one resolve (the client answers within its deadline).
const RESOLVE_BOUND: Duration = Duration::from_secs(3);
/// How long the exchange may take to send its first ticker.
const TICKER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long closing a WebSocket may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the service may take to stop, or its port to be free again.
const SERVICE_BOUND: Duration = Duration::from_secs(5);
/// How long the client may take to deliver its feedback at the end.
const FEEDBACK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the service may take to show a reported failure.
const VIEW_TIMEOUT: Duration = Duration::from_secs(3);
/// The whole demo, whatever happens.
const RUN_BOUND: Duration = Duration::from_secs(100);
/// The client's id at the service.
const CLIENT_ID: &str = "proxy-delegate-demo";
/// The exchange whose proxy fails in phase 2.
const VICTIM: &str = "binance";

/// `demo`: runs the five phases; status 1 when one of them fails.
pub(crate) fn demo(args: &DemoArgs, out: &mut impl Write) -> Result<(), Failure> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = if args.json {
        let mut stderr = std::io::stderr();
        let colour = stderr.is_terminal();
        let mut show = Show::new(&mut stderr, colour);
        runtime.block_on(bounded(&mut show))
    } else {
        let colour = std::io::stdout().is_terminal();
        let mut show = Show::new(out, colour);
        runtime.block_on(bounded(&mut show))
    };
    // Whatever is left (a tunnel, a server task) ends with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(1));
    let report = result?;
    if args.json {
        let line = serde_json::to_string(&report).map_err(std::io::Error::other)?;
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Logs on stderr as RUST_LOG asks (nothing by default): what the client,
/// the injector and the service did. Never the SOCKS5 proxy's own logs:
/// fast-socks5 logs the password it receives at DEBUG.
fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::filter_fn(|meta| {
            !meta.target().starts_with("fast_socks5")
        }))
        .with(filter)
        .with(fmt)
        .try_init();
}

async fn bounded(show: &mut Show<'_>) -> Result<DemoReport, Failure> {
    match tokio::time::timeout(RUN_BOUND, run(show)).await {
        Ok(result) => result,
        Err(_) => Err(Failure::Failed(format!(
            "the demo did not finish within {} s",
            RUN_BOUND.as_secs()
        ))),
    }
}

/// What `--json` prints: the summary, and the demo's own figures.
#[derive(Debug, Serialize)]
struct DemoReport {
    #[serde(flatten)]
    summary: Summary,
    demo: Figures,
}

/// What the phases measured.
#[derive(Debug, Default, Serialize)]
struct Figures {
    /// Phase 2: the exchange whose proxy failed, and where the service moved it.
    moved: Option<Moved>,
    /// Phase 3: from the service's stop to the first fallback answer.
    first_fallback_after_ms: Option<f64>,
    /// Phase 3: where that answer came from (`stale`, `embedded`, `direct`).
    first_fallback_source: Option<&'static str>,
    /// Phase 3: the resolutions while the service was down, by source.
    sources_while_down: BTreeMap<&'static str, u64>,
    /// Phase 4: from the restart to the first answer of the service.
    first_delegated_after_ms: Option<f64>,
    /// Phase 4: from the restart until every exchange had one.
    all_delegated_after_ms: Option<f64>,
    /// The whole demo.
    duration_ms: f64,
}

#[derive(Debug, Serialize)]
struct Moved {
    exchange: &'static str,
    from: String,
    to: String,
}

/// Everything the phases share.
struct Demo<'s, 'w> {
    show: &'s mut Show<'w>,
    exchange: LocalExchange,
    /// The SOCKS5 proxy, then the HTTP CONNECT proxy.
    proxies: [LocalProxy; 2],
    service_addr: SocketAddr,
    service_config: ServiceConfig,
    service: Option<Running>,
    client: ProxyServiceClient,
    injector: ProxyInjector,
    attempts: Option<Attempts>,
    tally: Tally,
    figures: Figures,
}

async fn run(show: &mut Show<'_>) -> Result<DemoReport, Failure> {
    let started = Instant::now();
    let attempts = Attempts::install();
    show.line(&show.paint(
        Colour::Bold,
        "proxy-delegate demo: everything below runs in this process, on 127.0.0.1 only",
    ))?;
    let exchange = LocalExchange::start().await?;
    let socks = LocalProxy::start(Kind::Socks5).await?;
    let http = LocalProxy::start(Kind::HttpConnect).await?;
    let service_config = service_config(&socks, &http)?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let service_addr = listener.local_addr()?;
    let service = start_service(&service_config, listener)?;
    let settings = client_settings(&socks, &http, service_addr)?;
    let client = build_client(&settings)?;
    let injector = ProxyInjector::with_config(
        settings,
        Some(client.clone()),
        InjectorConfig {
            connect_timeout: CONNECT_TIMEOUT,
            ca_file: None,
            // Loopback and ws:// only: no certificate to check.
            system_roots: false,
            websocket: None,
        },
    )
    .map_err(|e| Failure::Failed(format!("the demo's injector: {e}")))?;

    show.note(&format!(
        "exchange    ws://{}/{{{}}}  (WebSocket: a ticker, then an echo)",
        exchange.addr(),
        EXCHANGES.join(",")
    ))?;
    for proxy in [&socks, &http] {
        show.note(&format!(
            "{:<10}  {:<18}  {}  (checks its credentials; tunnels to 127.0.0.1 only)",
            proxy.kind().id(),
            proxy.kind().describe(),
            shown_url(proxy)
        ))?;
    }
    show.note(&format!(
        "service     http://{service_addr}  (the reference service; answers live {SERVICE_TTL_SECONDS} s, \
         one failure ejects a proxy, coinbase falls back to direct)"
    ))?;
    show.note(&format!(
        "client      stale grace {STALE_GRACE_SECONDS} s, breaker open {:.0} s; embedded config: \
         websocket via demo-socks, kraken via demo-http",
        BREAKER_OPEN_MS as f64 / 1e3
    ))?;

    let mut demo = Demo {
        show,
        exchange,
        proxies: [socks, http],
        service_addr,
        service_config,
        service: Some(service),
        client,
        injector,
        attempts,
        tally: Tally::default(),
        figures: Figures::default(),
    };
    let outcome = demo.phases(started).await;
    demo.stop().await;
    outcome
}

impl Demo<'_, '_> {
    async fn phases(&mut self, started: Instant) -> Result<DemoReport, Failure> {
        self.connect_all().await?;
        self.fail_a_proxy().await?;
        self.lose_the_service().await?;
        self.restore_the_service().await?;
        self.summary(started).await
    }

    // ------------------------------------------------------------ phase 1

    async fn connect_all(&mut self) -> Result<(), Failure> {
        self.show
            .phase(1, "connect every exchange through its delegated proxy")?;
        self.show.note(
            "each exchange asks the service for a proxy, then opens its WebSocket through it",
        )?;
        let deadline = Instant::now() + PHASE_BOUND;
        let mut pending: Vec<&'static str> = EXCHANGES.to_vec();
        loop {
            let mut left = Vec::new();
            for exchange in pending {
                let c = self.connect(exchange).await;
                self.print(&c)?;
                let delegated = matches!(c.source(), Some(Source::Service | Source::Cache));
                if !(delegated && c.connected().is_some()) {
                    left.push(exchange);
                }
            }
            pending = left;
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(phase_failed(
                    1,
                    format!(
                        "{} did not connect through a proxy of the service within {} s",
                        pending.join(", "),
                        PHASE_BOUND.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(TICK).await;
        }
    }

    // ------------------------------------------------------------ phase 2

    async fn fail_a_proxy(&mut self) -> Result<(), Failure> {
        self.show
            .phase(2, "a proxy fails, and the service moves the exchange")?;
        let (route, waited) = self.resolve(VICTIM).await?;
        let text = format!(
            "{}  resolve {}  <- {VICTIM}'s proxy now",
            self.show.route(VICTIM, &route),
            ms(waited)
        );
        self.show.step(&text)?;
        let Some(from) = route.proxy_id.as_ref().map(|id| id.as_str().to_owned()) else {
            return Err(phase_failed(
                2,
                format!(
                    "{VICTIM}'s route names no proxy of the service ({})",
                    route.source
                ),
            ));
        };
        let Some(victim) = self.proxies.iter().position(|p| p.kind().id() == from) else {
            return Err(phase_failed(
                2,
                format!("the service named {from}, which is not one of the demo's proxies"),
            ));
        };
        self.proxies[victim].stop().await;
        let stopped = self.show.paint(
            Colour::Red,
            &format!(
                "stopped {from} ({}): 127.0.0.1:{} refuses connections now",
                self.proxies[victim].kind().describe(),
                self.proxies[victim].addr().port()
            ),
        );
        self.show.step(&stopped)?;

        let deadline = Instant::now() + PHASE_BOUND;
        let to = loop {
            let c = self.connect(VICTIM).await;
            self.print(&c)?;
            if let Some(id) = c
                .connected()
                .and_then(|r| r.proxy_id.as_ref())
                .filter(|id| id.as_str() != from)
            {
                break id.as_str().to_owned();
            }
            if Instant::now() >= deadline {
                return Err(phase_failed(
                    2,
                    format!(
                        "{VICTIM} did not connect through another proxy within {} s",
                        PHASE_BOUND.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(TICK).await;
        };
        let moved = self.show.paint(
            Colour::Green,
            &format!("the service moved {VICTIM}: {from} -> {to}"),
        );
        self.show.step(&moved)?;
        let view = setup::service_view(self.service_addr, &from).await;
        self.show
            .step(&format!("the service's view of {from}: {view}"))?;

        self.proxies[victim].restart().await?;
        self.show.step(&format!(
            "{from} is back on 127.0.0.1:{} (the service keeps it ejected for now)",
            self.proxies[victim].addr().port()
        ))?;
        self.figures.moved = Some(Moved {
            exchange: VICTIM,
            from,
            to,
        });
        Ok(())
    }

    // ------------------------------------------------------------ phase 3

    async fn lose_the_service(&mut self) -> Result<(), Failure> {
        self.show.phase(
            3,
            "the service stops; the client answers from cache, stale cache, embedded config",
        )?;
        self.show
            .note("one connection per exchange first, so that each has a fresh answer cached")?;
        for exchange in EXCHANGES {
            let c = self.connect(exchange).await;
            self.print(&c)?;
        }
        let running = self
            .service
            .take()
            .ok_or_else(|| Failure::Failed("phase 3: the service was not running".into()))?;
        if tokio::time::timeout(SERVICE_BOUND, running.shutdown())
            .await
            .is_err()
        {
            return Err(phase_failed(
                3,
                format!(
                    "the service did not stop within {} s",
                    SERVICE_BOUND.as_secs()
                ),
            ));
        }
        let died = Instant::now();
        self.show.mark();
        let text = self.show.paint(
            Colour::Red,
            &format!(
                "service stopped: {} refuses connections; +t counts from here",
                self.service_addr
            ),
        );
        self.show.step(&text)?;
        self.show.note(
            "connecting on, one exchange every 0.25 s; a line each time an exchange's answer changes",
        )?;

        let deadline = died + PHASE_BOUND;
        let mut last: BTreeMap<&str, Route> = BTreeMap::new();
        let mut seen: BTreeSet<&'static str> = BTreeSet::new();
        let mut settled: BTreeSet<&str> = BTreeSet::new();
        let (mut connections, mut opened) = (0u64, 0u64);
        let failed_before = self.tally.failed();
        for exchange in EXCHANGES.iter().copied().cycle() {
            let done = settled.len() == EXCHANGES.len()
                && ["cache", "stale", "embedded"]
                    .iter()
                    .all(|s| seen.contains(s));
            if done {
                break;
            }
            if Instant::now() >= deadline {
                return Err(phase_failed(
                    3,
                    format!(
                        "within {} s of the service's stop the client answered from {} only \
                         (expected cache, stale and embedded)",
                        PHASE_BOUND.as_secs(),
                        seen.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            let c = self.connect(exchange).await;
            connections += 1;
            if c.connected().is_some() {
                opened += 1;
            }
            if let Some((route, waited)) = &c.resolved {
                let source = route.source.as_str();
                seen.insert(source);
                *self.figures.sources_while_down.entry(source).or_default() += 1;
                let fallback = matches!(
                    route.source,
                    Source::Stale | Source::Embedded | Source::Direct
                );
                if last.get(exchange) != Some(route) || c.connected().is_none() {
                    self.print(&c)?;
                    last.insert(exchange, route.clone());
                }
                if fallback && self.figures.first_fallback_after_ms.is_none() {
                    let after = died.elapsed();
                    self.figures.first_fallback_after_ms = Some(millis(after));
                    self.figures.first_fallback_source = Some(source);
                    let text = self.show.paint(
                        Colour::Yellow,
                        &format!(
                            "first fallback answer {:.2} s after the service stopped \
                             ({exchange}, {source}; the resolve waited {})",
                            after.as_secs_f64(),
                            ms(*waited)
                        ),
                    );
                    self.show.step(&text)?;
                }
                if matches!(route.source, Source::Embedded | Source::Direct) {
                    settled.insert(exchange);
                }
            } else {
                self.print(&c)?;
            }
            tokio::time::sleep(TICK).await;
        }
        let by_source: Vec<String> = self
            .figures
            .sources_while_down
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        let failed = self.tally.failed() - failed_before;
        self.show.step(&format!(
            "without the service: {connections} connections, {opened} opened, {failed} failed \
             attempt(s); answers from {}",
            by_source.join(", ")
        ))?;
        if last
            .get("coinbase")
            .is_some_and(|r| r.source == Source::Direct)
        {
            self.show
                .note("coinbase went direct: the service's policy for it is direct_connection")?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ phase 4

    async fn restore_the_service(&mut self) -> Result<(), Failure> {
        self.show
            .phase(4, "the service comes back on the same address")?;
        let addr = self.service_addr;
        let bind_until = Instant::now() + SERVICE_BOUND;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(e) if Instant::now() >= bind_until => {
                    return Err(phase_failed(
                        4,
                        format!("cannot listen on {addr} again: {e}"),
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.service = Some(start_service(&self.service_config, listener)?);
        let restarted = Instant::now();
        self.show.mark();
        let text = self.show.paint(
            Colour::Green,
            &format!("service restarted on {addr}; +t counts from here"),
        );
        self.show.step(&text)?;
        self.show.note(&format!(
            "the client checks a down service every {:.2} s; its breaker stays open {:.0} s",
            DOWN_CHECK_MS as f64 / 1e3,
            BREAKER_OPEN_MS as f64 / 1e3
        ))?;

        let deadline = restarted + PHASE_BOUND;
        let mut last: BTreeMap<&str, Route> = BTreeMap::new();
        let mut back: BTreeSet<&str> = BTreeSet::new();
        for exchange in EXCHANGES.iter().copied().cycle() {
            if back.len() == EXCHANGES.len() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(phase_failed(
                    4,
                    format!(
                        "within {} s of the restart only {} got an answer of the service again",
                        PHASE_BOUND.as_secs(),
                        if back.is_empty() {
                            "no exchange".to_owned()
                        } else {
                            back.iter().copied().collect::<Vec<_>>().join(", ")
                        }
                    ),
                ));
            }
            let c = self.connect(exchange).await;
            match &c.resolved {
                Some((route, _)) => {
                    if last.get(exchange) != Some(route) || c.connected().is_none() {
                        self.print(&c)?;
                        last.insert(exchange, route.clone());
                    }
                    if route.source == Source::Service && c.connected().is_some() {
                        if self.figures.first_delegated_after_ms.is_none() {
                            let after = restarted.elapsed();
                            self.figures.first_delegated_after_ms = Some(millis(after));
                            let text = self.show.paint(
                                Colour::Green,
                                &format!(
                                    "first answer of the service {:.2} s after the restart ({exchange})",
                                    after.as_secs_f64()
                                ),
                            );
                            self.show.step(&text)?;
                        }
                        back.insert(exchange);
                    }
                }
                None => self.print(&c)?,
            }
            if back.len() < EXCHANGES.len() {
                tokio::time::sleep(TICK).await;
            }
        }
        let after = restarted.elapsed();
        self.figures.all_delegated_after_ms = Some(millis(after));
        let text = self.show.paint(
            Colour::Green,
            &format!(
                "every exchange is back on the service's answers {:.2} s after the restart",
                after.as_secs_f64()
            ),
        );
        self.show.step(&text)?;
        Ok(())
    }

    // ------------------------------------------------------------ phase 5

    async fn summary(&mut self, started: Instant) -> Result<DemoReport, Failure> {
        self.show.phase(5, "summary")?;
        // The feedback still queued goes to the service before anything stops.
        let shutdown = self.client.shutdown(FEEDBACK_TIMEOUT).await;
        if shutdown.undelivered > 0 {
            let text = self.show.paint(
                Colour::Yellow,
                &format!(
                    "{} feedback event(s) not delivered within {} s",
                    shutdown.undelivered,
                    FEEDBACK_TIMEOUT.as_secs()
                ),
            );
            self.show.note(&text)?;
        }
        let summary = self
            .tally
            .summary(summary::feedback_counts(Some(&self.client)));
        summary.write_text(&mut self.show.writer())?;
        self.figures.duration_ms = millis(started.elapsed());
        let f = &self.figures;
        let secs = |ms: Option<f64>| ms.map_or("-".to_owned(), |ms| format!("{:.2} s", ms / 1e3));
        let text = format!(
            "timings       first fallback {} after the service stopped; first service answer {} \
             after the restart, every exchange {}; whole demo {:.1} s",
            secs(f.first_fallback_after_ms),
            secs(f.first_delegated_after_ms),
            secs(f.all_delegated_after_ms),
            f.duration_ms / 1e3
        );
        self.show.line(&text)?;
        Ok(DemoReport {
            summary,
            demo: std::mem::take(&mut self.figures),
        })
    }

    /// Stops everything the demo started, each within a bound.
    async fn stop(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.client.shutdown(Duration::ZERO))
            .await;
        if let Some(running) = self.service.take() {
            let _ = tokio::time::timeout(SERVICE_BOUND, running.shutdown()).await;
        }
        for proxy in &mut self.proxies {
            proxy.stop().await;
        }
    }
}

/// Milliseconds, to the microsecond.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn phase_failed(phase: u8, what: String) -> Failure {
    Failure::Failed(format!("phase {phase}/5 failed: {what}")).with_hint(
        "everything runs in this process on 127.0.0.1; RUST_LOG=debug shows what the client, \
         the injector and the service did",
    )
}
