//! `proxy-delegate soak`: keeps resolving and connecting, at a given
//! concurrency, against a real target for a given time, and measures it.
//!
//! Each worker loops over the exchanges: it times `ProxyInjector::route`
//! (the route's source and the resolve latency go into its [`Tally`]), then
//! connects to the target through the injector as `connect` does (a
//! WebSocket handshake, an optional echo round trip and a clean close; or a
//! GET) and counts a success or the failure's category. A failure is counted,
//! never fatal: the run goes on whatever the proxy service does (the client
//! falls back). Workers count into tallies of their own, merged at the end;
//! the status line each second reads a few shared atomic counters.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proxy_delegate_core::model::{ConnectionType, ErrorCategory, ExchangeId};
use proxy_delegate_core::resolver::Source;
use proxy_delegate_tokio::{InjectorConfig, ProxyInjector, ProxyServiceClient};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::connect::{
    CLOSE_TIMEOUT, category_hint, close_websocket, connect_target, parse_timeout, redacted_url,
};
use crate::summary::{FeedbackCounts, Summary, Tally, UNROUTED, feedback_counts};
use crate::{Failure, client_build_failure, init_logging, load};

/// Most workers.
const MAX_CONCURRENCY: u32 = 10_000;
/// Most exchanges `--exchanges N` makes.
const MAX_EXCHANGES: usize = 10_000;
/// The longest run.
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a worker waits after a failed attempt before the next one (so
/// that a failure that comes at once does not spin).
const FAILURE_PAUSE: Duration = Duration::from_millis(50);
/// How long the queued feedback may take to reach the service at the end.
const FEEDBACK_TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes of an HTTP response body read (the rest is dropped).
const MAX_BODY: usize = 1 << 20;
/// Exit status after SIGINT (128 + 2), once the summary is printed.
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, clap::Args)]
pub(crate) struct SoakArgs {
    /// A cryptofeed config.yaml (settings under `proxy:`); with
    /// `external_service.enabled`, routes come from the proxy service.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The exchanges to cycle through: ids separated by commas
    /// (binance,coinbase), or a number N for the ids ex1 to exN (at most
    /// 10000).
    #[arg(long, value_name = "LIST|N", value_parser = parse_exchanges)]
    exchanges: Exchanges,
    /// How long to run: 30s, 2m, 1h, 500ms or a number of seconds.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    duration: Duration,
    /// How many connections are made at once (1 to 10000).
    #[arg(long, value_name = "C",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONCURRENCY)))]
    concurrency: u32,
    /// The target: ws:// or wss:// (a WebSocket handshake, then a clean
    /// close), http:// or https:// (a GET). The connection type follows the
    /// scheme.
    #[arg(long, value_name = "URL")]
    target: String,
    /// The summary as one JSON object on stdout (attempts, successes,
    /// failures, resolutions, resolve_latency_us, max_fallback_wait_ms,
    /// feedback); the status lines go to stderr.
    #[arg(long)]
    json: bool,
    /// The bound of one connection attempt in seconds (resolve, tunnel, TLS,
    /// handshake or response headers, and the one retry through a fresh
    /// proxy), e.g. 2.5.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_timeout)]
    timeout: Duration,
    /// An extra CA certificate (PEM) to trust for the target and for
    /// https:// proxies, besides the platform's store.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// WebSocket only: after the handshake, send one text message and
    /// require it back (for a target that echoes) before closing.
    #[arg(long)]
    echo: bool,
}

/// The exchange ids to cycle through.
#[derive(Debug, Clone)]
struct Exchanges(Vec<String>);

/// `--exchanges`: `a,b,c` or a number N (`ex1` to `exN`).
fn parse_exchanges(text: &str) -> Result<Exchanges, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let n: usize = text
            .parse()
            .ok()
            .filter(|n| (1..=MAX_EXCHANGES).contains(n))
            .ok_or_else(|| {
                format!("{text} is out of range: give 1 to {MAX_EXCHANGES} exchanges")
            })?;
        return Ok(Exchanges((1..=n).map(|i| format!("ex{i}")).collect()));
    }
    let mut ids = Vec::new();
    for id in text.split(',').map(str::trim) {
        if id.is_empty() {
            return Err(format!(
                "{text:?} has an empty exchange id: give ids separated by commas, or a number"
            ));
        }
        ExchangeId::new(id).map_err(|e| format!("exchange {id:?}: {}", e.reason))?;
        if !ids
            .iter()
            .any(|known: &String| known.eq_ignore_ascii_case(id))
        {
            ids.push(id.to_owned());
        }
    }
    Ok(Exchanges(ids))
}

/// `--duration`: a number with a unit (`ms`, `s`, `m`, `h`), or seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ms" => 1e-3,
        "" | "s" | "sec" | "secs" => 1.0,
        "m" | "min" | "mins" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?}: give a number with ms, s, m or h, e.g. 30s or 2m"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: give e.g. 30s, 2m or 1h"))?;
    let seconds = value * scale;
    if !(seconds > 0.0 && seconds <= MAX_DURATION.as_secs_f64()) {
        return Err(format!(
            "{text} is out of range: give more than 0 and at most {} hours",
            MAX_DURATION.as_secs() / 3600
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Where the workers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Run,
    /// Finish the attempt in progress, then stop.
    Stop,
    /// Stop now, leaving the attempt in progress (it is not counted).
    Abort,
}

/// What every worker shares.
struct Ctx {
    injector: ProxyInjector,
    exchanges: Vec<String>,
    connection_type: ConnectionType,
    url: reqwest::Url,
    echo: bool,
    timeout: Duration,
    concurrency: usize,
    live: Live,
}

/// Counters for the status line: atomics, no lock.
#[derive(Default)]
struct Live {
    attempts: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    /// By source, in [`SOURCES`]' order.
    sources: [AtomicU64; 5],
}

const SOURCES: [Source; 5] = [
    Source::Service,
    Source::Cache,
    Source::Stale,
    Source::Embedded,
    Source::Direct,
];

fn source_index(source: Source) -> usize {
    match source {
        Source::Service => 0,
        Source::Cache => 1,
        Source::Stale => 2,
        Source::Embedded => 3,
        Source::Direct => 4,
    }
}

/// A snapshot of [`Live`].
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    attempts: u64,
    successes: u64,
    failures: u64,
    sources: [u64; 5],
}

impl Live {
    fn snapshot(&self) -> Counts {
        Counts {
            attempts: self.attempts.load(Ordering::Relaxed),
            successes: self.successes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            sources: std::array::from_fn(|i| self.sources[i].load(Ordering::Relaxed)),
        }
    }
}

/// One attempt: the route's source and resolve time (when one was
/// resolved), and how the connection went.
struct Attempt {
    resolved: Option<(Source, Duration)>,
    outcome: Result<(), Option<ErrorCategory>>,
}

/// What a worker hands back.
struct WorkerEnd {
    tally: Tally,
    /// An attempt was in progress when the run was aborted (not counted).
    abandoned: bool,
}

/// `soak`: runs the workers for the duration (or until SIGINT), printing a
/// status line each second, then the summary.
pub(crate) fn soak(args: &SoakArgs, out: &mut impl Write) -> Result<(), Failure> {
    let (url, connection_type) = connect_target(&args.target, None, "soak")?;
    if args.echo && connection_type != ConnectionType::Websocket {
        return Err(Failure::Invalid(format!(
            "--echo needs a ws:// or wss:// target, not {}",
            redacted_url(&url)
        )));
    }
    let loaded = load(args.config.as_ref())?;
    // The injector's warning for every failed attempt would flood the
    // terminal under load; the counts and the summary say it. RUST_LOG
    // shows them.
    init_logging("warn,proxy_delegate_tokio::inject=error");
    let config = InjectorConfig {
        connect_timeout: args.timeout,
        ca_file: args.ca_file.clone(),
        ..InjectorConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The status lines are written here, on the thread that runs
    // `block_on` (which holds the stdout lock); the workers are tasks.
    runtime.block_on(async {
        let client = if loaded.settings.external_service.enabled {
            Some(
                ProxyServiceClient::from_settings(&loaded.settings, &loaded.client_id())
                    .await
                    .map_err(|e| client_build_failure(&e, args.config.as_deref()))?,
            )
        } else {
            None
        };
        let injector = ProxyInjector::with_config(loaded.settings.clone(), client.clone(), config)
            .map_err(|e| {
                if e.key() == "injector.ca_file" {
                    Failure::Invalid(format!("--ca-file: {e}"))
                } else {
                    Failure::Invalid(e.to_string())
                }
            })?;
        let ctx = Arc::new(Ctx {
            injector,
            exchanges: args.exchanges.0.clone(),
            connection_type,
            url,
            echo: args.echo,
            timeout: args.timeout,
            concurrency: args.concurrency as usize,
            live: Live::default(),
        });
        let run = run(&ctx, args, client.as_ref(), out).await;

        // Whatever happened, the feedback goes to the service first.
        let mut feedback = FeedbackCounts::default();
        if let Some(client) = &client {
            let report = client.shutdown(FEEDBACK_TIMEOUT).await;
            feedback = feedback_counts(Some(client));
            // Not delivered within the bound: drained from the queue at
            // shutdown, so the client no longer counts them as queued.
            feedback.queued = feedback.queued.saturating_add(report.undelivered);
        }
        let (tally, interrupted) = run?;
        let summary = tally.summary(feedback);
        if args.json {
            let line = serde_json::to_string(&summary).map_err(std::io::Error::other)?;
            writeln!(out, "{line}")?;
        } else {
            summary.write_text(out)?;
        }
        out.flush()?;
        // What to check, for each kind of failure seen (on stderr).
        for (category, count) in &tally.failures {
            let parsed = ErrorCategory::parse(category).ok();
            if let Some(hint) = category_hint(parsed) {
                eprintln!("hint: {category} ({count}): {hint}");
            }
        }
        if let Some(failure) = nothing_done(&summary, args.duration) {
            return Err(failure);
        }
        if interrupted {
            return Err(Failure::Interrupted);
        }
        Ok(())
    })
}

/// The run itself: the workers, the status lines, the end (duration or
/// SIGINT). The merged tally, and whether SIGINT ended it.
async fn run(
    ctx: &Arc<Ctx>,
    args: &SoakArgs,
    client: Option<&ProxyServiceClient>,
    out: &mut impl Write,
) -> Result<(Tally, bool), Failure> {
    // Listened to from here on: a SIGINT once a worker runs ends the run
    // (the first), or the attempts in progress (the second).
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let (phase, _) = watch::channel(Phase::Run);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for id in 0..ctx.concurrency {
        workers.spawn(worker(id, ctx.clone(), phase.subscribe()));
    }

    let end = started + args.duration;
    let mut ticks =
        tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Counts::default();
    let mut last_at = started;
    let mut interrupted = false;
    let mut written = Ok(());
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            _ = sigint.recv() => {
                interrupted = true;
                break;
            }
            at = ticks.tick() => {
                let now = ctx.live.snapshot();
                let line = status_line(at - started, at - last_at, last, now, client);
                last = now;
                last_at = at;
                written = if args.json {
                    writeln!(std::io::stderr(), "{line}")
                } else {
                    writeln!(out, "{line}").and_then(|()| out.flush())
                };
                if written.is_err() {
                    break;
                }
            }
        }
    }

    // The attempts in progress finish (each is bounded), unless SIGINT
    // comes (again) or they overrun their bound.
    let _ = phase.send(Phase::Stop);
    let bound = ctx.timeout * 2 + CLOSE_TIMEOUT + Duration::from_secs(1);
    let drain_until = Instant::now() + bound;
    let mut tally = Tally::default();
    let mut abandoned = 0u64;
    let mut aborted = false;
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                Some(Ok(end)) => {
                    tally.merge(&end.tally);
                    abandoned += u64::from(end.abandoned);
                }
                Some(Err(e)) => eprintln!("warning: a soak worker failed: {e}"),
                None => break,
            },
            _ = tokio::time::sleep_until(drain_until), if !aborted => {
                aborted = true;
                let _ = phase.send(Phase::Abort);
            }
            _ = sigint.recv(), if !aborted => {
                interrupted = true;
                aborted = true;
                let _ = phase.send(Phase::Abort);
            }
        }
    }
    if abandoned > 0 {
        eprintln!("warning: {abandoned} attempt(s) still in progress at the end were not counted");
    }
    written?;
    Ok((tally, interrupted))
}

/// `soak 3s: 812 attempts/s, 2431 ok, 0 failed; sources cache 800, service
/// 12; feedback queued 5`: successes and failures so far, the rest over the
/// last second.
fn status_line(
    elapsed: Duration,
    interval: Duration,
    before: Counts,
    now: Counts,
    client: Option<&ProxyServiceClient>,
) -> String {
    let seconds = interval.as_secs_f64().max(1e-3);
    let rate = (now.attempts - before.attempts) as f64 / seconds;
    let sources: Vec<String> = SOURCES
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let n = now.sources[i] - before.sources[i];
            (n > 0).then(|| format!("{} {n}", s.as_str()))
        })
        .collect();
    let sources = if sources.is_empty() {
        "none".to_owned()
    } else {
        sources.join(", ")
    };
    format!(
        "soak {}s: {rate:.0} attempts/s, {} ok, {} failed; sources {sources}; feedback queued {}",
        elapsed.as_secs_f64().round(),
        now.successes,
        now.failures,
        feedback_counts(client).queued
    )
}

/// A worker: attempts until the phase leaves `Run`.
async fn worker(id: usize, ctx: Arc<Ctx>, mut phase: watch::Receiver<Phase>) -> WorkerEnd {
    let mut tally = Tally::default();
    let mut next = id;
    loop {
        if *phase.borrow() != Phase::Run {
            return WorkerEnd {
                tally,
                abandoned: false,
            };
        }
        let exchange = &ctx.exchanges[next % ctx.exchanges.len()];
        next = next.wrapping_add(ctx.concurrency);
        let attempt = tokio::select! {
            attempt = one(&ctx, exchange) => attempt,
            _ = phase.wait_for(|p| *p == Phase::Abort) => {
                return WorkerEnd { tally, abandoned: true };
            }
        };
        if let Some((source, waited)) = attempt.resolved {
            tally.resolved(source, waited);
            ctx.live.sources[source_index(source)].fetch_add(1, Ordering::Relaxed);
        }
        let failed = attempt.outcome.is_err();
        tally.attempted(attempt.outcome);
        ctx.live.attempts.fetch_add(1, Ordering::Relaxed);
        if failed {
            ctx.live.failures.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                () = tokio::time::sleep(FAILURE_PAUSE) => {}
                _ = phase.wait_for(|p| *p != Phase::Run) => {}
            }
        } else {
            ctx.live.successes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One attempt: a connection through the injector, which resolves the
/// route (the wait and the source are taken from what it says) and reports
/// the feedback.
async fn one(ctx: &Ctx, exchange: &str) -> Attempt {
    let resolved = |route: Option<&proxy_delegate_core::resolver::Route>,
                    wait: Option<Duration>| {
        route.zip(wait).map(|(r, w)| (r.source, w))
    };
    match ctx.connection_type {
        ConnectionType::Websocket => {
            match ctx
                .injector
                .connect_websocket(ctx.url.as_str(), exchange)
                .await
            {
                Ok(mut ws) => {
                    let seen = resolved(Some(ws.route()), Some(ws.resolve_wait()));
                    let echoed = if ctx.echo {
                        echo(&mut ws, ctx.timeout).await
                    } else {
                        Ok(())
                    };
                    close_websocket(&mut ws).await;
                    drop(ws);
                    Attempt {
                        resolved: seen,
                        outcome: echoed,
                    }
                }
                Err(e) => Attempt {
                    resolved: resolved(e.route(), e.resolve_wait()),
                    outcome: Err(e.category()),
                },
            }
        }
        // `Http` (the target's scheme gives one of the two).
        _ => {
            let request = reqwest::Request::new(reqwest::Method::GET, ctx.url.clone());
            match ctx.injector.send(exchange, request).await {
                Ok(response) => {
                    let seen = response
                        .extensions()
                        .get::<proxy_delegate_tokio::Connected>()
                        .map(|c| (c.route.source, c.resolve_wait));
                    // Read (some of) the body, so that the connection can
                    // be used again.
                    let _ = tokio::time::timeout(ctx.timeout, read_body(response)).await;
                    Attempt {
                        resolved: seen,
                        outcome: Ok(()),
                    }
                }
                Err(e) => Attempt {
                    resolved: resolved(e.route(), e.resolve_wait()),
                    outcome: Err(e.category()),
                },
            }
        }
    }
}

/// One text message to an echoing target and back, within `bound`; any
/// other outcome is `other`.
async fn echo(
    ws: &mut proxy_delegate_tokio::InjectedWebSocket,
    bound: Duration,
) -> Result<(), Option<ErrorCategory>> {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    const PING: &str = "proxy-delegate soak";
    let round_trip = async {
        ws.send(Message::text(PING)).await.ok()?;
        while let Some(message) = ws.next().await {
            match message.ok()? {
                Message::Text(text) if text.as_str() == PING => return Some(()),
                Message::Ping(_) | Message::Pong(_) => {}
                _ => return None,
            }
        }
        None
    };
    match tokio::time::timeout(bound, round_trip).await {
        Ok(Some(())) => Ok(()),
        Ok(None) => Err(Some(ErrorCategory::Other)),
        Err(_) => Err(Some(ErrorCategory::Timeout)),
    }
}

/// Reads at most [`MAX_BODY`] bytes of the body.
async fn read_body(mut response: reqwest::Response) {
    let mut read = 0;
    while let Ok(Some(chunk)) = response.chunk().await {
        read += chunk.len();
        if read >= MAX_BODY {
            break;
        }
    }
}

/// The failure when nothing could be done at all: no attempt finished, or
/// none found a route.
fn nothing_done(summary: &Summary, duration: Duration) -> Option<Failure> {
    if summary.attempts == 0 {
        return Some(
            Failure::Failed(format!(
                "no connection attempt finished in {:.1} s",
                duration.as_secs_f64()
            ))
            .with_hint("raise --timeout or --duration, or check that the proxy and the target are reachable"),
        );
    }
    let unrouted = summary.failures.get(UNROUTED).copied().unwrap_or(0);
    if unrouted == summary.attempts {
        return Some(
            Failure::Failed(format!(
                "no exchange got a route in {} attempts: the proxy service's fallback_policy \
                 is `fail` for them and it could not answer",
                summary.attempts
            ))
            .with_hint("check that the proxy service is up, or give these exchanges another fallback_policy"),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "0s", "-1s", "3d", "s", "1.2.3s", "1000h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exchanges() {
        let Exchanges(ids) = parse_exchanges("3").unwrap();
        assert_eq!(ids, ["ex1", "ex2", "ex3"]);
        let Exchanges(ids) = parse_exchanges("binance, coinbase,BINANCE").unwrap();
        assert_eq!(ids, ["binance", "coinbase"]);
        for bad in ["0", "10001", "", "binance,,okx", "bin ance"] {
            assert!(parse_exchanges(bad).is_err(), "{bad}");
        }
    }
}
