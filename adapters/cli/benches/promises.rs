//! The promises, measured end to end: the real `proxy-delegate serve`
//! binary, a `ProxyServiceClient` under a steady resolve load, and the
//! service killed (SIGKILL: connections refused) and frozen (SIGSTOP: it
//! accepts connections and never answers) several times, on 127.0.0.1
//! only. No criterion: it prints one table (`harness = false`).
//!
//! ```text
//! cargo bench -p proxy-delegate --bench promises
//! ```
//!
//! Cargo builds the `proxy-delegate` binary for it, optimised (the bench
//! profile), and hands its path over as `CARGO_BIN_EXE_proxy-delegate`; the
//! binary is started and signalled through the same fixture the fault suite
//! uses (`tests/common/mod.rs`). A run takes about a minute.
//!
//! # The load
//!
//! Two loads run side by side for the whole run, each [`TASKS`] tasks on
//! one 2-worker tokio runtime, each task looping: one
//! `ProxyInjector::route` (a resolve, timed), then a pause of [`PACE`]. One
//! resolve in [`NEW_KEY_EVERY`] is for an exchange never asked before (it
//! needs the service); the others cycle over [`SHARED_KEYS`] exchanges
//! (cached; the service's answers live 1 s, so the client keeps refreshing
//! them, and they go stale within a second of an outage).
//!
//! - **delegating**: the injector over the `ProxyServiceClient`, which asks
//!   the service (default resolve deadline, 500 ms; default request
//!   timeout, 10 s) and falls back to the embedded configuration;
//! - **peer, embedded only**: the same injector type on the same
//!   configuration without a client, the same mix of exchanges.
//!
//! Both meet the same machine at every instant, so each window's figures
//! are read against the peer's in the same window.
//!
//! # The faults
//!
//! [`CYCLES`] cycles, alternating SIGKILL and SIGSTOP: 1.5 s healthy, then
//! the fault for [`FAULT`], then the service is restarted on the same port
//! (SIGKILL) or resumed (SIGCONT), and the run waits for the service's
//! first answer again.
//!
//! **Death** is the instant the signal is sent. **The first fallback
//! answer** is the answer of the first resolve that needs the service —
//! for an exchange that has no fresh answer in the cache — and gets a
//! fallback route (stale, embedded or direct) because the service is gone.
//! Two probes start as soon as the signal has taken effect (the process
//! reaped, or reported stopped in `/proc`): one for an exchange never
//! asked (its fallback is the embedded configuration) and one for an
//! exchange whose answer expired 0.4 s before (its fallback is the stale
//! answer). Their time is counted from the signal, so it includes the
//! reaping. The load's own first fallback answer after the signal is
//! reported too (it depends on when a task next needs the service).
//!
//! Only the breaker's open duration (1 s) and the health-check intervals
//! (0.5 s, 0.25 s when down) are shortened from the defaults, so that the
//! client comes back to the service between cycles within the run; none
//! of them is on the path of the figures above.

#![allow(clippy::print_stdout)]
#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{BIN, any_port};
use proxy_delegate_config::Settings;
use proxy_delegate_core::model::{ClientId, ConnectionType};
use proxy_delegate_core::resolver::Source;
use proxy_delegate_test_support::ServeProcess;
use proxy_delegate_tokio::{
    HttpTransport, InjectorConfig, ProxyInjector, ProxyServiceClient, TransportConfig,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Tasks per load.
const TASKS: usize = 8;
/// The pause of each task between resolves.
const PACE: Duration = Duration::from_millis(5);
/// One resolve in this many is for an exchange never asked before.
const NEW_KEY_EVERY: usize = 20;
/// The exchanges the other resolves cycle over.
const SHARED_KEYS: usize = 16;
/// Fault cycles (odd: SIGKILL, even: SIGSTOP).
const CYCLES: usize = 10;
/// Healthy load before each fault.
const HEALTHY: Duration = Duration::from_millis(1500);
/// How long each fault lasts.
const FAULT: Duration = Duration::from_millis(2500);
/// The client's resolve deadline (the default of `resolve_deadline_ms`).
const RESOLVE_DEADLINE: Duration = Duration::from_millis(500);
/// Goal: death to first fallback answer when the service refuses.
const GOAL_REFUSED: Duration = Duration::from_millis(5);
/// The embedded configuration's proxy (never connected to: only routes).
const EMBEDDED_PROXY: &str = "socks5h://127.0.0.1:1080";

// ------------------------------------------------------------ the load

/// One timed resolve.
#[derive(Debug, Clone, Copy)]
struct Sample {
    start: Instant,
    wait: Duration,
    /// `None`: an error.
    source: Option<Source>,
    /// An exchange never asked before.
    new_key: bool,
}

impl Sample {
    fn end(&self) -> Instant {
        self.start + self.wait
    }
}

fn is_fallback(source: Option<Source>) -> bool {
    matches!(
        source,
        Some(Source::Stale | Source::Embedded | Source::Direct)
    )
}

/// A running load: its tasks hand their samples back when stopped.
#[derive(Debug)]
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Vec<Sample>>>,
}

impl Load {
    fn start(injector: &ProxyInjector, tag: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..TASKS)
            .map(|n| tokio::spawn(task(n, tag, injector.clone(), stop.clone())))
            .collect();
        Self { stop, tasks }
    }

    async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.expect("a load task panicked"));
        }
        all
    }
}

async fn task(
    n: usize,
    tag: &'static str,
    injector: ProxyInjector,
    stop: Arc<AtomicBool>,
) -> Vec<Sample> {
    let mut samples = Vec::with_capacity(1 << 16);
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let new_key = i % NEW_KEY_EVERY == NEW_KEY_EVERY - 1;
        let exchange = if new_key {
            format!("{tag}-n{n}-{i}")
        } else {
            format!("ex{}", (n + i) % SHARED_KEYS)
        };
        i += 1;
        let start = Instant::now();
        let routed = injector
            .route(&exchange, ConnectionType::Websocket)
            .await
            .ok();
        samples.push(Sample {
            start,
            wait: start.elapsed(),
            source: routed.map(|r| r.source),
            new_key,
        });
        tokio::time::sleep(PACE).await;
    }
    samples
}

// ------------------------------------------------------------ set-up

/// The service's configuration: the answers live 1 s (so that the client
/// keeps asking), round-robin over two proxies nobody connects to, no rate
/// limit (the load would reach it), no authentication (loopback only).
fn write_service_config(path: &Path) {
    let text = "[rate_limit]\nenabled = false\n\n[pool]\nstrategy = \"round_robin\"\n\
                ttl_seconds = 1\n\n[[proxies]]\nid = \"p1\"\nurl = \"socks5://127.0.0.1:1081\"\n\n\
                [[proxies]]\nid = \"p2\"\nurl = \"http://127.0.0.1:1082\"\n";
    std::fs::write(path, text).expect("write the service configuration");
}

/// The client's `config.yaml`: the embedded default proxy for both
/// connection types, and delegation to `endpoint` with every other
/// `external_service` key at its default.
fn client_settings(endpoint: &str) -> Box<Settings> {
    let yaml = format!(
        "proxy:\n  enabled: true\n  default:\n    http: \"{EMBEDDED_PROXY}\"\n    \
         websocket: \"{EMBEDDED_PROXY}\"\n  external_service:\n    enabled: true\n    \
         endpoints: [\"{endpoint}\"]\n"
    );
    proxy_delegate_config::Loader::new()
        .yaml_str("promises-client.yaml", yaml)
        .env(std::iter::empty::<(String, String)>())
        .load()
        .expect("the client settings load")
        .settings
}

/// The client as `from_settings` builds it, with the breaker's open
/// duration and the health-check intervals shortened (see the module doc).
fn build_client(settings: Box<Settings>) -> ProxyServiceClient {
    use embassy_time::Duration as Ticks;
    let client_id = ClientId::new("promises").expect("a client id");
    let mut delegation = settings
        .external_service
        .delegation(client_id)
        .expect("the delegation settings");
    assert_eq!(
        delegation.config.resolve_deadline,
        Ticks::from_millis(RESOLVE_DEADLINE.as_millis() as u64),
        "the default resolve deadline"
    );
    let endpoints = &mut delegation.config.endpoints;
    endpoints.breaker.open_duration = Ticks::from_secs(1);
    endpoints.breaker.max_open_duration = Ticks::from_secs(1);
    endpoints.breaker.open_duration_multiplier = 1;
    endpoints.check_interval = Ticks::from_millis(500);
    endpoints.down_check_interval = Ticks::from_millis(250);
    let mut transport = TransportConfig::from_settings(&settings.external_service);
    transport.system_roots = false;
    let transport = HttpTransport::new(transport).expect("the HTTP transport");
    ProxyServiceClient::with_transport(delegation, settings, Arc::new(transport))
        .expect("the client builds")
}

/// Resolves `exchange` once through `injector`: its source, when it ended
/// and how long it waited.
async fn probe(injector: &ProxyInjector, exchange: &str) -> (Option<Source>, Instant, Duration) {
    let start = Instant::now();
    let source = injector
        .route(exchange, ConnectionType::Websocket)
        .await
        .ok()
        .map(|r| r.source);
    let end = Instant::now();
    (source, end, end - start)
}

/// Resolves new exchanges every 10 ms until the service answers one (at
/// most 20 s); the time that took.
async fn wait_for_service(injector: &ProxyInjector, tag: &str) -> Duration {
    let t0 = Instant::now();
    for i in 0.. {
        let (source, ..) = probe(injector, &format!("{tag}-{i}")).await;
        if source == Some(Source::Service) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no answer of the service within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    unreachable!()
}

// ------------------------------------------------------------ the run

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGKILL: connections refused.
    Refused,
    /// SIGSTOP: connections accepted, never answered.
    Hung,
}

/// What one fault cycle measured.
#[derive(Debug, Clone)]
struct Cycle {
    fault: Fault,
    healthy: (Instant, Instant),
    down: (Instant, Instant),
    /// When the signal was sent.
    death: Instant,
    /// The probe for a never-asked exchange: source, since death, own wait.
    probe_new: (Option<Source>, Duration, Duration),
    /// The probe for an exchange whose answer had expired.
    probe_expired: (Option<Source>, Duration, Duration),
    /// From the restart (or SIGCONT) to the service's first answer.
    recovery: Duration,
}

async fn run() -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("service.toml");
    write_service_config(&config);
    let mut service = ServeProcess::with_config_on(BIN, &config, any_port());
    let listen = service.addr();
    let endpoint = service.url();

    let client = build_client(client_settings(&endpoint));
    let delegating = ProxyInjector::with_config(
        client_settings(&endpoint),
        Some(client.clone()),
        InjectorConfig::default(),
    )
    .expect("the delegating injector");
    let embedded =
        ProxyInjector::with_config(client_settings(&endpoint), None, InjectorConfig::default())
            .expect("the embedded-only injector");

    wait_for_service(&delegating, "first").await;
    let subject_load = Load::start(&delegating, "d");
    let peer_load = Load::start(&embedded, "e");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let load_before = loadavg();
    let t_begin = Instant::now();
    let mut cycles = Vec::new();
    for c in 0..CYCLES {
        let fault = if c % 2 == 0 {
            Fault::Refused
        } else {
            Fault::Hung
        };
        let healthy_start = Instant::now();
        // An answer that will have expired (TTL 1 s) 0.4 s before the fault.
        tokio::time::sleep(HEALTHY - Duration::from_millis(1400)).await;
        let expired = format!("old{c}");
        let (source, ..) = probe(&delegating, &expired).await;
        assert_eq!(source, Some(Source::Service), "{expired} from the service");
        tokio::time::sleep_until(healthy_start + HEALTHY).await;

        let fresh = format!("probe{c}");
        let death = Instant::now();
        match fault {
            Fault::Refused => service.kill(),
            Fault::Hung => service.freeze(),
        }
        let (new, old) = tokio::join!(probe(&delegating, &fresh), probe(&delegating, &expired));
        tokio::time::sleep_until(death + FAULT).await;
        let down_end = Instant::now();
        let resumed = Instant::now();
        match fault {
            Fault::Refused => service = ServeProcess::with_config_on(BIN, &config, listen),
            Fault::Hung => service.signal("CONT"),
        }
        let restarted_in = resumed.elapsed();
        let recovery = wait_for_service(&delegating, &format!("back{c}")).await + restarted_in;
        cycles.push(Cycle {
            fault,
            healthy: (healthy_start, death),
            down: (death, down_end),
            death,
            probe_new: (new.0, new.1 - death, new.2),
            probe_expired: (old.0, old.1 - death, old.2),
            recovery,
        });
    }
    let elapsed = t_begin.elapsed();
    let load_after = loadavg();
    let subject = subject_load.stop().await;
    let peer = peer_load.stop().await;
    let _ = client.shutdown(Duration::from_secs(2)).await;
    drop(service);
    report(&cycles, &subject, &peer, elapsed, &load_before, &load_after)
}

// ------------------------------------------------------------ figures

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// p50, p99, max and the count of the waits of `samples` that pass `keep`.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    n: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Stats {
    fn of<'a>(samples: impl Iterator<Item = &'a Sample>) -> Self {
        let mut waits: Vec<Duration> = samples.map(|s| s.wait).collect();
        waits.sort_unstable();
        Self {
            n: waits.len(),
            p50: percentile(&waits, 0.50),
            p99: percentile(&waits, 0.99),
            max: waits.last().copied().unwrap_or_default(),
        }
    }
}

fn fmt_d(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1_000.0)
    }
}

fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        "-".to_owned()
    } else {
        format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
    }
}

fn in_windows<'a>(
    samples: &'a [Sample],
    windows: &'a [(Instant, Instant)],
) -> impl Iterator<Item = &'a Sample> {
    samples
        .iter()
        .filter(|s| windows.iter().any(|&(a, b)| s.start >= a && s.start < b))
}

fn sources<'a>(samples: impl Iterator<Item = &'a Sample>) -> String {
    let mut counts = [0usize; 6];
    for s in samples {
        let i = match s.source {
            Some(Source::Service) => 0,
            Some(Source::Cache) => 1,
            Some(Source::Stale) => 2,
            Some(Source::Embedded) => 3,
            Some(Source::Direct) => 4,
            None => 5,
        };
        counts[i] += 1;
    }
    let names = ["service", "cache", "stale", "embedded", "direct", "error"];
    names
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn source_name(s: Option<Source>) -> &'static str {
    s.map_or("error", Source::as_str)
}

fn summary(values: &mut [Duration]) -> (Duration, Duration) {
    values.sort_unstable();
    (
        percentile(values, 0.5),
        values.last().copied().unwrap_or_default(),
    )
}

/// Death-to-fallback times of one kind of fault, over the cycles.
#[derive(Debug, Default)]
struct Delays {
    /// The never-asked exchange's probe, since death.
    new: Vec<Duration>,
    /// The expired answer's probe, since death.
    expired: Vec<Duration>,
    /// The load's first fallback answer, since death.
    load: Vec<Duration>,
    /// The longer of the two probes' own waits.
    own: Vec<Duration>,
}

fn report(
    cycles: &[Cycle],
    subject: &[Sample],
    peer: &[Sample],
    elapsed: Duration,
    load_before: &str,
    load_after: &str,
) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(
        o,
        "machine: {} cores, {}; load average before: {load_before}, after: {load_after}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    let _ = writeln!(
        o,
        "load: {TASKS} tasks per load, a resolve then {PACE:?}; 1 in {NEW_KEY_EVERY} a new \
         exchange, the rest over {SHARED_KEYS}; {CYCLES} cycles ({HEALTHY:?} healthy, \
         {FAULT:?} fault) in {:.1} s; resolve deadline {RESOLVE_DEADLINE:?}",
        elapsed.as_secs_f64()
    );
    let _ = writeln!(o);

    // Resolve latency by window.
    let window = |kind: Option<Fault>| -> Vec<(Instant, Instant)> {
        cycles
            .iter()
            .filter(|c| kind.is_none_or(|k| c.fault == k))
            .map(|c| match kind {
                None => c.healthy,
                Some(_) => c.down,
            })
            .collect()
    };
    let _ = writeln!(
        o,
        "resolve latency (ProxyInjector::route), by window; peer = embedded only, same windows"
    );
    let _ = writeln!(
        o,
        "| window | resolves | n | p50 | p99 | max | peer p50 | peer p99 | peer max | p50 / peer | p99 / peer | sources |"
    );
    let _ = writeln!(
        o,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for (name, kind) in [
        ("healthy", None),
        ("refused (SIGKILL)", Some(Fault::Refused)),
        ("hung (SIGSTOP)", Some(Fault::Hung)),
    ] {
        let w = window(kind);
        for (which, filter) in [
            ("all", None),
            ("new exchange", Some(true)),
            ("shared", Some(false)),
        ] {
            let keep = |s: &&Sample| filter.is_none_or(|f| s.new_key == f);
            let a = Stats::of(in_windows(subject, &w).filter(keep));
            let b = Stats::of(in_windows(peer, &w).filter(keep));
            let _ = writeln!(
                o,
                "| {name} | {which} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                a.n,
                fmt_d(a.p50),
                fmt_d(a.p99),
                fmt_d(a.max),
                fmt_d(b.p50),
                fmt_d(b.p99),
                fmt_d(b.max),
                ratio(a.p50, b.p50),
                ratio(a.p99, b.p99),
                sources(in_windows(subject, &w).filter(keep)),
            );
        }
    }
    let _ = writeln!(o);

    // Death to first fallback answer.
    let _ = writeln!(
        o,
        "death (signal sent) to the first fallback answer, per cycle"
    );
    let _ = writeln!(
        o,
        "| cycle | fault | new exchange: source, since death (own wait) | expired answer: source, since death (own wait) | load's first fallback after death | recovery after restart/SIGCONT |"
    );
    let _ = writeln!(o, "| ---: | --- | --- | --- | --- | ---: |");
    let mut by_fault: [Delays; 2] = Default::default();
    let mut unexpected = Vec::new();
    for (i, c) in cycles.iter().enumerate() {
        let load_first = subject
            .iter()
            .filter(|s| s.end() >= c.death && s.start < c.down.1 && is_fallback(s.source))
            .map(|s| s.end() - c.death)
            .min();
        let k = usize::from(c.fault == Fault::Hung);
        let slot = &mut by_fault[k];
        if is_fallback(c.probe_new.0) {
            slot.new.push(c.probe_new.1);
        } else {
            unexpected.push(format!(
                "cycle {i}: new-exchange probe from {}",
                source_name(c.probe_new.0)
            ));
        }
        if is_fallback(c.probe_expired.0) {
            slot.expired.push(c.probe_expired.1);
        } else {
            unexpected.push(format!(
                "cycle {i}: expired-answer probe from {}",
                source_name(c.probe_expired.0)
            ));
        }
        if let Some(d) = load_first {
            slot.load.push(d);
        }
        slot.own.push(c.probe_new.2.max(c.probe_expired.2));
        let _ = writeln!(
            o,
            "| {i} | {:?} | {}, {} ({}) | {}, {} ({}) | {} | {} |",
            c.fault,
            source_name(c.probe_new.0),
            fmt_d(c.probe_new.1),
            fmt_d(c.probe_new.2),
            source_name(c.probe_expired.0),
            fmt_d(c.probe_expired.1),
            fmt_d(c.probe_expired.2),
            load_first.map_or("none".to_owned(), fmt_d),
            fmt_d(c.recovery),
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "| fault | goal | new exchange p50 / max | expired answer p50 / max | load's first fallback p50 / max | probes' own wait max | verdict |"
    );
    let _ = writeln!(o, "| --- | --- | --- | --- | --- | --- | --- |");
    for (k, fault) in [Fault::Refused, Fault::Hung].into_iter().enumerate() {
        let d = &mut by_fault[k];
        let (new_p50, new_max) = summary(&mut d.new);
        let (old_p50, old_max) = summary(&mut d.expired);
        let (load_p50, load_max) = summary(&mut d.load);
        let (_, own_max) = summary(&mut d.own);
        let worst = new_max.max(old_max);
        let over = |d: Duration, bound: Duration| {
            if d <= bound {
                "MET".to_owned()
            } else {
                format!("NOT MET (over by {})", fmt_d(d - bound))
            }
        };
        let (goal, verdict) = match fault {
            Fault::Refused => (
                format!("< {}", fmt_d(GOAL_REFUSED)),
                if worst < GOAL_REFUSED {
                    "MET".to_owned()
                } else {
                    format!("NOT MET (probes' max {})", fmt_d(worst))
                },
            ),
            Fault::Hung => (
                format!("<= {} (the deadline)", fmt_d(RESOLVE_DEADLINE)),
                format!(
                    "load's first fallback: {}; probes' own wait: {}; probes since death: {}",
                    over(load_max, RESOLVE_DEADLINE),
                    over(own_max, RESOLVE_DEADLINE),
                    over(worst, RESOLVE_DEADLINE)
                ),
            ),
        };
        let _ = writeln!(
            o,
            "| {fault:?} | {goal} | {} / {} | {} / {} | {} / {} | {} | {verdict} |",
            fmt_d(new_p50),
            fmt_d(new_max),
            fmt_d(old_p50),
            fmt_d(old_max),
            fmt_d(load_p50),
            fmt_d(load_max),
            fmt_d(own_max),
        );
    }
    // Every resolve of the delegating load against its deadline.
    let over: Vec<Duration> = subject
        .iter()
        .filter(|s| s.wait > RESOLVE_DEADLINE)
        .map(|s| s.wait)
        .collect();
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "delegating resolves over the deadline ({}): {} of {}{}",
        fmt_d(RESOLVE_DEADLINE),
        over.len(),
        subject.len(),
        over.iter()
            .max()
            .map(|m| format!(", the longest {}", fmt_d(*m)))
            .unwrap_or_default()
    );
    let errors = subject.iter().filter(|s| s.source.is_none()).count();
    let _ = writeln!(o, "delegating resolves that ended in an error: {errors}");
    for u in unexpected {
        let _ = writeln!(o, "NOTE: {u}");
    }
    out
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "-".to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "CPU model unknown".to_owned())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // that matters here either: the run is the same.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let table = runtime.block_on(run());
    print!("{table}");
}
