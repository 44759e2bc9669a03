//! The HTTP load run of the reference service, measured against a minimal
//! axum JSON handler in the same process and the same run.
//!
//! # What it measures
//!
//! The hot path of the service, `POST /api/v1/proxy/request` with a JSON
//! `ProxyRequest`, on two servers:
//!
//! - the **peer**: a minimal axum server with that one route, which parses the
//!   body with `axum::Json<serde_json::Value>` and answers a fixed JSON object
//!   of the shape of a `ProxyResponse`. It is the floor cost of "axum + JSON"
//!   on this machine;
//! - the **subject**: the real service (`proxy_delegate_service`), started in
//!   this process by [`start_subject`] on the configuration `proxy-delegate
//!   serve` uses without a file (three proxies, least-connections, no
//!   authentication) with the per-caller rate limit raised out of reach (it
//!   stays in the path, its cost is measured), or any running service given
//!   with `--target URL`.
//!
//! Each server runs on its own tokio runtime with 2 worker threads; the load
//! client runs on a third runtime (2 workers), so the client and the servers
//! never share workers. They do share the machine's cores: that is the same
//! for both servers, which is why the result is read as a ratio.
//!
//! Two phases per server, interleaved (peer A, subject A, peer B, subject B,
//! subject B@peer):
//!
//! - **A, closed loop** (maximum throughput): `--connections` keep-alive HTTP/1.1
//!   connections each send requests back to back, for 1 s of warm-up and then
//!   `--seconds` of measurement. Only `200` answers count; every other status,
//!   connection error or time-out (5 s per request) is counted apart.
//! - **B, open loop** (fixed rate): requests on a fixed schedule at half the
//!   rate that server reached in phase A (request `i` is due at
//!   `start + i / rate`). Latency is measured from the *due* time, not from
//!   the moment the request was actually sent, so a stalled server cannot hide
//!   its stall by slowing the sender down (no coordinated omission). The
//!   "svc p99" column is measured from the actual send, for comparison. The
//!   schedule is kept by a thread of its own that sleeps with the operating
//!   system's timer (tens of microseconds), not tokio's 1 ms timer, so that
//!   requests leave evenly spread rather than in a burst per millisecond.
//!   Each phase B has a 1 s warm-up at its rate, not counted.
//! - **B@peer**: the subject at half the *peer's* phase-A rate, the same
//!   absolute rate as the peer's phase B: the stricter reading of the latency
//!   goal.
//!
//! Requests vary over 1,000 `client_id`s, five exchanges, both connection
//! types and three regions, so that sticky and least-connections selection see
//! realistic keys.
//!
//! # How to run
//!
//! ```text
//! cargo run --release -p proxy-delegate-service --example load -- [--seconds N] [--connections C]
//!     [--inflight M] [--rounds R] [--target URL]
//! ```
//!
//! - `--seconds N`: measured seconds per phase (default 5).
//! - `--connections C`: concurrent connections in phase A (default 32).
//! - `--inflight M`: requests phase B may have in flight, each on its own
//!   keep-alive connection (default 4 × C).
//! - `--rounds R`: run the interleaved sequence R times (default 1); the
//!   verdicts then use the median over the rounds.
//! - `--target URL`: measure a running service at `URL` (e.g.
//!   `http://127.0.0.1:8080`) instead of starting one in-process.
//! - `--peer-only`: start only the peer, print its URL and serve until Ctrl-C;
//!   for checking the tool itself (`--target` at a second peer should give a
//!   ratio near 1).
//! - `--self-check`: measure a second in-process peer as the subject, on the
//!   subject's runtime; a check of the tool itself (the ratio should be near
//!   100%, and what it is not shows the run's noise).
//!
//! Always use `--release`: a debug build measures the compiler, not the code.
//!
//! # How to read the output
//!
//! One row per server and phase: the achieved rate of `200` answers, the
//! counts of `200`s (`ok`) and of everything else (`failed`), latency
//! percentiles in milliseconds, phase B's p99 from the actual send (`svc
//! p99`), and the share of the machine other processes took meanwhile
//! (`others`, from `/proc`; `-` elsewhere). Then the goals of the issue:
//!
//! - the subject's phase-A throughput is at least 60% of the peer's;
//! - the subject's phase-B p99 (from the due time) is under 5 ms, at half its
//!   own rate and, stricter, at half the peer's;
//! - the subject's p99 at most 1.5x the peer's at the same offered rate
//!   (phase B@peer against the peer's phase B, both at half the peer's
//!   phase-A rate): the median of the per-round ratios. Absolute
//!   milliseconds on a shared machine follow the host; the ratio is what
//!   one run can say.
//!
//! With `--rounds R` the verdicts use the median over the rounds. A loud
//! warning is printed when any request of any phase was not answered `200`
//! (the figures of such a run are not valid), and a note when other processes
//! took more than 10% of the machine in a phase (the figures are disturbed:
//! on 2 cores one busy neighbour is half the machine). The tool prints
//! figures only and never fails on timing: judge a figure over a few rounds.

// A reporting tool: its output is the table on stdout.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use proxy_delegate_core::codec::json;
use proxy_delegate_core::model::ProxyResponse;
use proxy_delegate_service::config::RateLimit;
use proxy_delegate_service::{Running, Service, ServiceConfig, StartError};
use serde::Serialize;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The route under load.
const PATH: &str = "/api/v1/proxy/request";
/// Warm-up before phase A's measurement.
const WARMUP: Duration = Duration::from_secs(1);
/// A request not answered within this is counted as a time-out.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Goal: the subject's phase-A throughput over the peer's.
const GOAL_RATIO: f64 = 0.60;
/// Goal: the subject's phase-B p99, in microseconds.
const GOAL_P99_US: u32 = 5_000;
/// Goal: the subject's p99 over the peer's at the same offered rate (phase
/// B@peer against the peer's phase B).
const GOAL_P99_RATIO: f64 = 1.5;
/// Above this share of the machine (percent) taken by other processes in a
/// phase, the run says its figures are disturbed.
const NOISY_OTHERS_CPU: f64 = 10.0;
/// Distinct `client_id`s in the request mix.
const CLIENTS: usize = 1_000;
/// Exchanges in the request mix.
const EXCHANGES: [&str; 5] = ["binance", "coinbase", "kraken", "okx", "bybit"];
/// Regions in the request mix.
const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-northeast-1"];

/// Why the run could not be made.
#[derive(Debug)]
#[non_exhaustive]
enum LoadError {
    /// A flag needs a value and none followed it.
    MissingValue { flag: &'static str },
    /// A flag's value is not acceptable.
    BadValue {
        flag: &'static str,
        value: String,
        expected: &'static str,
    },
    /// An argument the tool does not know.
    UnknownArgument(String),
    /// The service could not be started in-process.
    SubjectStart(StartError),
    /// A runtime, socket or listener could not be set up.
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    /// The first request to a server did not get a `200`.
    Preflight {
        target: &'static str,
        detail: String,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingValue { flag } => {
                write!(f, "`{flag}` needs a value; see --help")
            }
            Self::BadValue {
                flag,
                value,
                expected,
            } => write!(f, "`{flag} {value}`: expected {expected}"),
            Self::UnknownArgument(a) => {
                write!(f, "unknown argument `{a}`; see --help")
            }
            Self::SubjectStart(e) => write!(
                f,
                "starting the service in-process: {e}; or start one \
                 (e.g. `cargo run --release -p proxy-delegate -- serve`) and pass \
                 `--target http://127.0.0.1:PORT`"
            ),
            Self::Io { what, source } => write!(f, "{what}: {source}"),
            Self::Preflight { target, detail } => write!(
                f,
                "the {target} did not answer the first request with 200 ({detail}); \
                 check that it serves POST {PATH} without authentication"
            ),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::SubjectStart(e) => Some(e),
            _ => None,
        }
    }
}

/// The command line.
#[derive(Debug, Clone, PartialEq)]
struct Args {
    /// Measured seconds per phase.
    seconds: u64,
    /// Concurrent connections of phase A.
    connections: usize,
    /// Requests phase B may have in flight; `None`: 4 × `connections`.
    inflight: Option<usize>,
    /// How many times the whole interleaved sequence runs.
    rounds: usize,
    /// A running service to measure instead of an in-process one.
    target: Option<Uri>,
    /// Serve only the peer until Ctrl-C.
    peer_only: bool,
    /// Measure a second in-process peer as the subject.
    self_check: bool,
    /// Print the usage and stop.
    help: bool,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            seconds: 5,
            connections: 32,
            inflight: None,
            rounds: 1,
            target: None,
            peer_only: false,
            self_check: false,
            help: false,
        }
    }
}

const USAGE: &str = "\
load: the HTTP load run of the reference service against a minimal axum JSON handler

usage: cargo run --release -p proxy-delegate-service --example load -- [options]

options:
  --seconds N       measured seconds per phase (1-3600, default 5)
  --connections C   concurrent connections of phase A (1-4096, default 32)
  --inflight M      requests phase B may have in flight (1-16384,
                    default 4 x connections)
  --rounds R        run the interleaved sequence R times (1-100, default 1);
                    the verdicts use the median over the rounds
  --target URL      measure the running service at URL (http://host:port)
                    instead of starting one in-process
  --peer-only       start only the peer, print its URL, serve until Ctrl-C
  --self-check      measure a second in-process peer as the subject (a check
                    of the tool: the ratio should be near 100%)
  --help            this text";

impl Args {
    /// Parses the arguments after the program name.
    fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Self, LoadError> {
        let mut out = Self::default();
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            // `--flag=value` and `--flag value` are both accepted.
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            let mut value = |flag: &'static str| {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or(LoadError::MissingValue { flag })
            };
            match flag.as_str() {
                "--seconds" => {
                    let v = value("--seconds")?;
                    out.seconds = parse_in_range(&v, "--seconds", 1, 3600)?;
                }
                "--connections" => {
                    let v = value("--connections")?;
                    out.connections = parse_in_range(&v, "--connections", 1, 4096)?;
                }
                "--inflight" => {
                    let v = value("--inflight")?;
                    out.inflight = Some(parse_in_range(&v, "--inflight", 1, 16384)?);
                }
                "--rounds" => {
                    let v = value("--rounds")?;
                    out.rounds = parse_in_range(&v, "--rounds", 1, 100)?;
                }
                "--target" => {
                    let v = value("--target")?;
                    out.target = Some(parse_target(&v)?);
                }
                "--peer-only" if inline.is_none() => out.peer_only = true,
                "--self-check" if inline.is_none() => out.self_check = true,
                "--help" | "-h" if inline.is_none() => out.help = true,
                _ => return Err(LoadError::UnknownArgument(arg)),
            }
        }
        Ok(out)
    }
}

fn parse_in_range<T>(v: &str, flag: &'static str, min: T, max: T) -> Result<T, LoadError>
where
    T: std::str::FromStr + PartialOrd,
{
    let bad = || LoadError::BadValue {
        flag,
        value: v.to_owned(),
        expected: "a whole number in the range shown by --help",
    };
    let n: T = v.parse().map_err(|_| bad())?;
    if n < min || n > max {
        return Err(bad());
    }
    Ok(n)
}

/// Checks a `--target` base URL: `http://host:port`, no path beyond `/`.
fn parse_target(v: &str) -> Result<Uri, LoadError> {
    let bad = |expected| LoadError::BadValue {
        flag: "--target",
        value: v.to_owned(),
        expected,
    };
    let uri: Uri = v
        .parse()
        .map_err(|_| bad("a URL such as http://127.0.0.1:8080"))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad(
            "an http:// URL (the load client speaks plain HTTP/1.1)",
        ));
    }
    if uri.host().is_none() {
        return Err(bad("a URL with a host, such as http://127.0.0.1:8080"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("a base URL without a path: the tool appends the route"));
    }
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    if authority.contains('@') {
        return Err(bad("a URL without credentials"));
    }
    request_uri(authority).map_err(|_| bad("a URL such as http://127.0.0.1:8080"))
}

/// The full URL of the route on `authority` (`host:port`).
fn request_uri(authority: &str) -> Result<Uri, hyper::http::Error> {
    Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(PATH)
        .build()
}

// ---------------------------------------------------------------------------
// The servers
// ---------------------------------------------------------------------------

/// A server runtime: 2 workers, its own threads.
fn server_runtime(name: &'static str) -> Result<Runtime, LoadError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|source| LoadError::Io {
            what: "building a server runtime",
            source,
        })
}

/// The peer's answer: the shape of a `ProxyResponse`.
#[derive(Serialize)]
struct PeerAnswer {
    proxy_url: &'static str,
    strategy: &'static str,
    ttl_seconds: u32,
    fallback_policy: &'static str,
    metadata: PeerMetadata,
}

#[derive(Serialize)]
struct PeerMetadata {
    proxy_id: &'static str,
    region: &'static str,
    health_score: f64,
}

/// The minimal axum JSON handler: parse the body, answer a fixed object.
async fn peer_handler(Json(_request): Json<serde_json::Value>) -> Json<PeerAnswer> {
    Json(PeerAnswer {
        proxy_url: "http://proxy-1.example:8080",
        strategy: "least_connections",
        ttl_seconds: 300,
        fallback_policy: "embedded_fallback",
        metadata: PeerMetadata {
            proxy_id: "proxy-1",
            region: "us-east-1",
            health_score: 0.98,
        },
    })
}

/// Starts the peer on 127.0.0.1, port chosen by the system, on `rt`.
fn start_peer(rt: &Runtime) -> Result<SocketAddr, LoadError> {
    let io = |what| move |source| LoadError::Io { what, source };
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(SocketAddr::from((
            [127, 0, 0, 1],
            0,
        ))))
        .map_err(io("binding the peer to 127.0.0.1"))?;
    let addr = listener
        .local_addr()
        .map_err(io("reading the peer's address"))?;
    let app = Router::new().route(PATH, post(peer_handler));
    rt.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("peer server stopped: {e}");
        }
    });
    Ok(addr)
}

/// The subject's per-caller rate limit: far above any rate this tool can
/// reach, so that the limiter stays in the request path (its cost is
/// measured) without ever refusing a request.
const SUBJECT_RATE_LIMIT: RateLimit = RateLimit {
    per_second: 10_000_000,
    burst: 10_000_000,
};

/// Starts the subject, the real service, on 127.0.0.1 (port chosen by the
/// system) on `rt`, and returns its address and the handle that keeps it.
///
/// The configuration is the one `proxy-delegate serve` runs without a file
/// ([`ServiceConfig::embedded_default`]: three proxies, least-connections,
/// no authentication), with the rate limit raised to
/// [`SUBJECT_RATE_LIMIT`] (the default, 1,000 requests per second per caller,
/// would answer most of the load with 429) and active probes off.
fn start_subject(rt: &Runtime) -> Result<(SocketAddr, Running), LoadError> {
    let mut config = ServiceConfig::embedded_default();
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.rate_limit = Some(SUBJECT_RATE_LIMIT);
    // The load sends no feedback, so nothing is ejected and nothing probed;
    // said outright: the demo proxies sit on documentation addresses and the
    // run must not reach anything but 127.0.0.1.
    config.pool.probe_interval = None;
    let listen = config.listen;
    let running = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| LoadError::Io {
                what: "binding the subject to 127.0.0.1",
                source,
            })?;
        Service::new(config)
            .and_then(|service| service.start(listener))
            .map_err(LoadError::SubjectStart)
    })?;
    Ok((running.local_addr(), running))
}

// ---------------------------------------------------------------------------
// The load client
// ---------------------------------------------------------------------------

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One server under load.
#[derive(Debug)]
struct Target {
    /// `peer` or `subject`.
    name: &'static str,
    /// The full URL of the route.
    uri: Uri,
    /// A keep-alive client of its own, so the two servers never share a pool.
    client: HttpClient,
    /// A request not answered within this counts as a time-out
    /// ([`REQUEST_TIMEOUT`]).
    timeout: Duration,
}

impl Target {
    fn new(name: &'static str, uri: Uri) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(120))
            .build(connector);
        Self {
            name,
            uri,
            client,
            timeout: REQUEST_TIMEOUT,
        }
    }
}

/// The request bodies, built once: every `client_id` appears, with exchanges,
/// connection types and regions spread over them.
fn request_bodies() -> Arc<[Bytes]> {
    (0..CLIENTS * 4)
        .map(|i| {
            let client = i % CLIENTS;
            let exchange = EXCHANGES[(i / CLIENTS + client) % EXCHANGES.len()];
            let kind = if (i / 7) % 2 == 0 { "websocket" } else { "http" };
            let region = REGIONS[(client / 3) % REGIONS.len()];
            Bytes::from(format!(
                r#"{{"exchange_id":"{exchange}","connection_type":"{kind}","region":"{region}","client_id":"load-{client}"}}"#
            ))
        })
        .collect()
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Answered `200` with a body that was read in full.
    Ok,
    /// Answered with another status.
    Status(StatusCode),
    /// The connection or the exchange failed.
    Error(String),
    /// No answer within the target's time-out.
    Timeout,
}

/// Sends one request and reads the whole answer.
async fn send(client: &HttpClient, uri: &Uri, timeout: Duration, body: Bytes) -> Outcome {
    let request = match Request::post(uri.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
    {
        Ok(r) => r,
        Err(e) => return Outcome::Error(format!("building the request: {e}")),
    };
    let exchange = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(status)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(StatusCode::OK)) => Outcome::Ok,
        Ok(Ok(status)) => Outcome::Status(status),
        Ok(Err(e)) => Outcome::Error(e),
        Err(_) => Outcome::Timeout,
    }
}

/// What one phase saw.
#[derive(Debug, Default)]
struct Recorder {
    /// Latency of every `200`, in microseconds: from the send (phase A) or
    /// from the due time (phase B).
    latencies_us: Vec<u32>,
    /// Phase B only: latency of every `200` from the actual send.
    service_us: Vec<u32>,
    /// Non-`200` answers by status.
    statuses: BTreeMap<u16, u64>,
    /// Failed exchanges.
    errors: u64,
    /// Requests without an answer in time.
    timeouts: u64,
    /// Phase B: requests never sent because the phase ran past its end by
    /// more than the request time-out (the server stopped answering).
    skipped: u64,
    /// The first error's text, for the report.
    first_error: Option<String>,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Recorder {
    fn record(&mut self, outcome: Outcome, latency: Duration, service: Option<Duration>) {
        match outcome {
            Outcome::Ok => {
                self.latencies_us.push(micros(latency));
                if let Some(s) = service {
                    self.service_us.push(micros(s));
                }
            }
            Outcome::Status(s) => *self.statuses.entry(s.as_u16()).or_default() += 1,
            Outcome::Error(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
            Outcome::Timeout => self.timeouts += 1,
        }
    }

    fn merge(&mut self, other: Self) {
        self.latencies_us.extend(other.latencies_us);
        self.service_us.extend(other.service_us);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.skipped += other.skipped;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn ok(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    fn failed(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.errors + self.timeouts + self.skipped
    }
}

/// Latency percentiles of one phase, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Percentiles {
    p50: u32,
    p90: u32,
    p99: u32,
    p999: u32,
    max: u32,
}

/// Nearest-rank percentile `q` (0 < q <= 1) of sorted samples; 0 when empty.
fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Percentiles {
    fn of(samples: &mut [u32]) -> Self {
        samples.sort_unstable();
        Self {
            p50: percentile(samples, 0.50),
            p90: percentile(samples, 0.90),
            p99: percentile(samples, 0.99),
            p999: percentile(samples, 0.999),
            max: samples.last().copied().unwrap_or(0),
        }
    }
}

/// The figures of one phase on one server.
#[derive(Debug)]
struct PhaseResult {
    /// `200` answers per second of measurement.
    rate: f64,
    /// The latencies (phase A: per request; phase B: from the due time).
    latency: Percentiles,
    /// Phase B only: from the actual send.
    service: Option<Percentiles>,
    /// Phase B only: the rate asked for.
    asked_rate: Option<f64>,
    /// Share of the machine (percent) other processes used during the
    /// phase; `None` where it cannot be read (not Linux).
    others_cpu: Option<f64>,
    recorder: Recorder,
}

/// Cumulative CPU time counters, in clock ticks, read from `/proc`: to tell
/// how much of the machine other processes took during a phase.
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    /// All CPUs, all states.
    total: u64,
    /// All CPUs, not idle (steal included: a hypervisor's other guests).
    busy: u64,
    /// This process, user and system.
    own: u64,
}

impl CpuSample {
    /// Reads the counters; `None` where `/proc` is missing or unexpected.
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        // user nice system idle iowait irq softirq steal (guest time is
        // already counted in user).
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name may hold spaces; the fields after it are plain.
        let after_name: Vec<&str> = own_stat.rsplit_once(')')?.1.split_whitespace().collect();
        // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
        let utime: u64 = after_name.get(11)?.parse().ok()?;
        let stime: u64 = after_name.get(12)?.parse().ok()?;
        Some(Self {
            total,
            busy: total.saturating_sub(idle),
            own: utime + stime,
        })
    }

    /// The share of the machine, in percent, that other processes used
    /// between `earlier` and `self`.
    fn others_since(&self, earlier: &Self) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        if total == 0 {
            return None;
        }
        let busy = self.busy.saturating_sub(earlier.busy);
        let own = self.own.saturating_sub(earlier.own);
        Some(busy.saturating_sub(own) as f64 * 100.0 / total as f64)
    }
}

/// Runs a phase and notes how much of the machine others used meanwhile.
async fn watching_others(phase: impl Future<Output = PhaseResult>) -> PhaseResult {
    let before = CpuSample::read();
    let mut result = phase.await;
    let after = CpuSample::read();
    result.others_cpu = before
        .zip(after)
        .and_then(|(before, after)| after.others_since(&before));
    result
}

/// Phase A: `connections` loops sending back to back. Counts what completes
/// within `[start + warmup, start + warmup + measure)`.
async fn closed_loop(
    target: &Target,
    bodies: &Arc<[Bytes]>,
    connections: usize,
    warmup: Duration,
    measure: Duration,
) -> PhaseResult {
    let start = Instant::now();
    let from = start + warmup;
    let end = from + measure;
    let mut tasks = JoinSet::new();
    for worker in 0..connections {
        let client = target.client.clone();
        let uri = target.uri.clone();
        let timeout = target.timeout;
        let bodies = Arc::clone(bodies);
        tasks.spawn(async move {
            let mut rec = Recorder::default();
            let mut k = worker;
            while Instant::now() < end {
                let body = bodies[k % bodies.len()].clone();
                k = k.wrapping_add(connections);
                let sent = Instant::now();
                let outcome = send(&client, &uri, timeout, body).await;
                let done = Instant::now();
                if done >= from && done < end {
                    rec.record(outcome, done - sent, None);
                }
            }
            rec
        });
    }
    let mut recorder = join_all(tasks).await;
    let latency = Percentiles::of(&mut recorder.latencies_us);
    PhaseResult {
        rate: recorder.ok() as f64 / measure.as_secs_f64(),
        latency,
        service: None,
        asked_rate: None,
        others_cpu: None,
        recorder,
    }
}

/// Phase B: `rate` requests per second for `measure`, request `i` due at
/// `start + i / rate`, `workers` requests in flight at most. Latency counts
/// from the due time.
///
/// The schedule is kept by [`pace`] on a thread of its own; the workers take
/// one request per slot it releases.
async fn open_loop(
    target: &Target,
    bodies: &Arc<[Bytes]>,
    workers: usize,
    rate: f64,
    measure: Duration,
) -> PhaseResult {
    let total = (rate * measure.as_secs_f64()).floor() as u64;
    let next = Arc::new(AtomicU64::new(0));
    let slots = Arc::new(Semaphore::new(0));
    // A short lead so that every worker is waiting when request 0 is due.
    let start = Instant::now() + Duration::from_millis(20);
    // Past this, requests still waiting for a worker are not sent: a server
    // that stopped answering must not keep the run going for hours.
    let give_up = start + measure + target.timeout;
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        let client = target.client.clone();
        let uri = target.uri.clone();
        let timeout = target.timeout;
        let bodies = Arc::clone(bodies);
        let next = Arc::clone(&next);
        let slots = Arc::clone(&slots);
        tasks.spawn(async move {
            let mut rec = Recorder::default();
            loop {
                match slots.acquire().await {
                    Ok(slot) => slot.forget(),
                    Err(_) => break,
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if Instant::now() > give_up {
                    rec.skipped += 1;
                    continue;
                }
                let due = due_time(start, i, rate);
                let body = bodies[(i as usize) % bodies.len()].clone();
                let sent = Instant::now();
                let outcome = send(&client, &uri, timeout, body).await;
                let done = Instant::now();
                rec.record(outcome, done - due, Some(done - sent));
            }
            rec
        });
    }
    let pacer = {
        let slots = Arc::clone(&slots);
        std::thread::Builder::new()
            .name("load-pacer".into())
            .spawn(move || pace(&slots, start, total, rate, workers))
    };
    if let Err(e) = &pacer {
        // Without a pacer no slot is ever released: stop the workers.
        slots.close();
        eprintln!("cannot start the pacer thread: {e}");
    }
    let mut recorder = join_all(tasks).await;
    if let Ok(handle) = pacer {
        // It has released its last slot: the workers stopped on them.
        let _ = handle.join();
    } else {
        recorder.errors += 1;
        recorder
            .first_error
            .get_or_insert_with(|| "the pacer thread did not start".to_owned());
    }
    let elapsed = start.elapsed().max(measure);
    let latency = Percentiles::of(&mut recorder.latencies_us);
    let service = Percentiles::of(&mut recorder.service_us);
    PhaseResult {
        rate: recorder.ok() as f64 / elapsed.as_secs_f64(),
        latency,
        service: Some(service),
        asked_rate: Some(rate),
        others_cpu: None,
        recorder,
    }
}

/// When request `i` of a schedule at `rate` per second is due.
fn due_time(start: Instant, i: u64, rate: f64) -> Instant {
    start + Duration::from_secs_f64(i as f64 / rate)
}

/// Releases one slot per request as it falls due, then one more per worker
/// so that every worker wakes, finds the schedule done and stops.
///
/// It runs on a plain thread and sleeps with the operating system's timer
/// (tens of microseconds on Linux) rather than tokio's (1 ms): with tokio's,
/// every request due within a millisecond would leave at the same tick, and
/// the server would see bursts that the schedule does not have.
fn pace(slots: &Semaphore, start: Instant, total: u64, rate: f64, workers: usize) {
    let mut released = 0u64;
    while released < total {
        let now = Instant::now();
        if now >= start {
            let due = ((now - start).as_secs_f64() * rate).floor() as u64 + 1;
            let due = due.min(total);
            if due > released {
                // Bounded by the semaphore's capacity (never reached in
                // practice: it is the count of due requests not yet taken).
                let room = Semaphore::MAX_PERMITS.saturating_sub(slots.available_permits());
                let n = usize::try_from(due - released)
                    .unwrap_or(usize::MAX)
                    .min(room);
                slots.add_permits(n);
                released += n as u64;
            }
        }
        if released < total {
            let next = due_time(start, released, rate);
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
        }
    }
    let room = Semaphore::MAX_PERMITS.saturating_sub(slots.available_permits());
    slots.add_permits(workers.min(room));
}

async fn join_all(mut tasks: JoinSet<Recorder>) -> Recorder {
    let mut all = Recorder::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(rec) => all.merge(rec),
            Err(e) => {
                all.errors += 1;
                all.first_error
                    .get_or_insert(format!("a load task failed: {e}"));
            }
        }
    }
    all
}

/// Sends one request and checks the answer is a `200` carrying a valid
/// `ProxyResponse`. Returns a redacted description of the answer.
async fn preflight(target: &Target, body: Bytes) -> Result<String, LoadError> {
    let fail = |detail| LoadError::Preflight {
        target: target.name,
        detail,
    };
    let request = Request::post(target.uri.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| fail(format!("building the request: {e}")))?;
    let exchange = async {
        let response = target
            .client
            .request(request)
            .await
            .map_err(|e| format!("{e} (is it listening at {}?)", target.uri))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(target.timeout, exchange)
        .await
        .map_err(|_| fail(format!("no answer within {:?}", target.timeout)))?
        .map_err(fail)?;
    if status != StatusCode::OK {
        // Error bodies carry a code and a message, never credentials.
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
        return Err(fail(format!("status {status}, body {text}")));
    }
    // Decoded with the core's codec; printed with Debug, which redacts the
    // proxy's password.
    match json::decode::<ProxyResponse>(&bytes) {
        Ok(answer) => Ok(format!("{answer:?}")),
        Err(e) => Ok(format!(
            "WARNING: the 200 answer is not a valid ProxyResponse ({e})"
        )),
    }
}

// ---------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------

fn ms(us: u32) -> String {
    format!("{:.3}", f64::from(us) / 1000.0)
}

fn print_header() {
    println!(
        "{:<8} {:<6} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "server",
        "phase",
        "req/s",
        "ok",
        "failed",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "svc p99",
        "others"
    );
}

fn print_row(name: &str, phase: &str, r: &PhaseResult) {
    let l = r.latency;
    println!(
        "{:<8} {:<6} {:>10.0} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        name,
        phase,
        r.rate,
        r.recorder.ok(),
        r.recorder.failed(),
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.p999),
        ms(l.max),
        r.service.map_or_else(|| "-".to_owned(), |s| ms(s.p99)),
        r.others_cpu
            .map_or_else(|| "-".to_owned(), |c| format!("{c:.0}%")),
    );
}

/// Prints what went wrong in a phase, loudly.
fn warn_failures(name: &str, phase: &str, r: &PhaseResult) {
    let rec = &r.recorder;
    if rec.failed() == 0 {
        return;
    }
    println!(
        "!!! WARNING: {name} phase {phase}: {} request(s) not answered 200 \
         (statuses {:?}, errors {}, time-outs {}, never sent {}){}",
        rec.failed(),
        rec.statuses,
        rec.errors,
        rec.timeouts,
        rec.skipped,
        rec.first_error
            .as_deref()
            .map(|e| format!("; first error: {e}"))
            .unwrap_or_default(),
    );
}

fn verdict(met: bool) -> &'static str {
    if met { "MET" } else { "NOT MET" }
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

/// One interleaved sequence: peer A, subject A, peer B, subject B, subject
/// B at the peer's phase-B rate.
#[derive(Debug)]
struct Round {
    peer_a: PhaseResult,
    subject_a: PhaseResult,
    peer_b: PhaseResult,
    subject_b: PhaseResult,
    /// The stricter reading of the latency goal: the subject at half the
    /// peer's phase-A rate (the same absolute rate as the peer's phase B).
    subject_b_at_peer: PhaseResult,
}

impl Round {
    fn rows(&self) -> [(&'static str, &'static str, &PhaseResult); 5] {
        [
            ("peer", "A", &self.peer_a),
            ("subject", "A", &self.subject_a),
            ("peer", "B", &self.peer_b),
            ("subject", "B", &self.subject_b),
            ("subject", "B@peer", &self.subject_b_at_peer),
        ]
    }

    /// Subject over peer, phase-A throughput.
    fn ratio(&self) -> f64 {
        if self.peer_a.rate > 0.0 {
            self.subject_a.rate / self.peer_a.rate
        } else {
            0.0
        }
    }

    fn failed(&self) -> bool {
        self.rows().iter().any(|(_, _, r)| r.recorder.failed() > 0)
    }

    /// Subject over peer, p99 at the same offered rate: phase B@peer
    /// against the peer's phase B.
    fn p99_ratio(&self) -> f64 {
        let peer = f64::from(self.peer_b.latency.p99);
        if peer > 0.0 {
            f64::from(self.subject_b_at_peer.latency.p99) / peer
        } else {
            0.0
        }
    }

    /// The most of the machine other processes used in any phase, percent.
    fn others_cpu(&self) -> Option<f64> {
        self.rows()
            .iter()
            .filter_map(|(_, _, r)| r.others_cpu)
            .reduce(f64::max)
    }
}

/// Settings shared by every phase of a run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    connections: usize,
    inflight: usize,
    measure: Duration,
}

/// Phase B at `rate` after a warm-up at the same rate (not counted), so
/// that the connections it needs beyond phase A's are open before measuring.
async fn fixed_rate(target: &Target, bodies: &Arc<[Bytes]>, plan: Plan, rate: f64) -> PhaseResult {
    let _ = open_loop(target, bodies, plan.inflight, rate, WARMUP).await;
    watching_others(open_loop(target, bodies, plan.inflight, rate, plan.measure)).await
}

async fn round(peer: &Target, subject: &Target, bodies: &Arc<[Bytes]>, plan: Plan) -> Round {
    let closed = |target| {
        watching_others(closed_loop(
            target,
            bodies,
            plan.connections,
            WARMUP,
            plan.measure,
        ))
    };
    let peer_a = closed(peer).await;
    let subject_a = closed(subject).await;
    let half = |r: &PhaseResult| (r.rate / 2.0).max(1.0);
    let peer_b = fixed_rate(peer, bodies, plan, half(&peer_a)).await;
    let subject_b = fixed_rate(subject, bodies, plan, half(&subject_a)).await;
    let subject_b_at_peer = fixed_rate(subject, bodies, plan, half(&peer_a)).await;
    Round {
        peer_a,
        subject_a,
        peer_b,
        subject_b,
        subject_b_at_peer,
    }
}

fn print_round(r: &Round) {
    print_header();
    for (name, phase, res) in r.rows() {
        print_row(name, phase, res);
    }
    for (name, phase, res) in r.rows() {
        if let Some(want) = res.asked_rate {
            println!(
                "  {name} phase {phase}: asked {want:.0} req/s, got {:.0} req/s",
                res.rate
            );
        }
    }
    for (name, phase, res) in r.rows() {
        warn_failures(name, phase, res);
    }
}

/// The median of `values` (the mean of the middle two for an even count);
/// 0 when empty.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

async fn run(args: &Args, peer: Target, subject: Target) -> Result<(), LoadError> {
    let bodies = request_bodies();
    let plan = Plan {
        connections: args.connections,
        inflight: args
            .inflight
            .unwrap_or_else(|| args.connections.saturating_mul(4)),
        measure: Duration::from_secs(args.seconds),
    };
    for t in [&peer, &subject] {
        let answer = preflight(t, bodies[0].clone()).await?;
        println!("{:<8} {}: {answer}", t.name, t.uri);
    }
    println!(
        "phase A: closed loop, {} connections, {WARMUP:?} warm-up + {:?}; \
         phase B: open loop at half each server's phase-A rate, {WARMUP:?} warm-up + {:?}, \
         at most {} requests in flight; {} round(s)",
        plan.connections, plan.measure, plan.measure, plan.inflight, args.rounds
    );

    let mut rounds = Vec::with_capacity(args.rounds);
    for i in 1..=args.rounds {
        println!();
        println!("round {i} of {}", args.rounds);
        let r = round(&peer, &subject, &bodies, plan).await;
        print_round(&r);
        rounds.push(r);
    }

    let over = |f: &dyn Fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let ratio = over(&|r| r.ratio());
    let peer_rate = over(&|r| r.peer_a.rate);
    let subject_rate = over(&|r| r.subject_a.rate);
    let p99 = |f: &dyn Fn(&Round) -> &PhaseResult| over(&|r| f64::from(f(r).latency.p99));
    let subject_p99 = p99(&|r| &r.subject_b);
    let peer_p99 = p99(&|r| &r.peer_b);
    let strict_p99 = p99(&|r| &r.subject_b_at_peer);
    let goal_ms = f64::from(GOAL_P99_US) / 1000.0;
    let of = if rounds.len() > 1 {
        format!("median of {} rounds, ", rounds.len())
    } else {
        String::new()
    };
    println!();
    println!(
        "throughput subject/peer ({of}phase A): {subject_rate:.0} / {peer_rate:.0} req/s, \
         ratio {:.1}% (goal >= {:.0}%): {}",
        ratio * 100.0,
        GOAL_RATIO * 100.0,
        verdict(ratio >= GOAL_RATIO)
    );
    println!(
        "subject p99 at half its own rate ({of}phase B): {:.3} ms (peer at half its rate: \
         {:.3} ms) (goal < {goal_ms:.0} ms): {}",
        subject_p99 / 1000.0,
        peer_p99 / 1000.0,
        verdict(subject_p99 < f64::from(GOAL_P99_US))
    );
    println!(
        "subject p99 at half the peer's rate ({of}phase B@peer): {:.3} ms (goal < {goal_ms:.0} ms): {}",
        strict_p99 / 1000.0,
        verdict(strict_p99 < f64::from(GOAL_P99_US))
    );
    let p99_ratio = over(&|r| r.p99_ratio());
    let per_round: Vec<String> = rounds
        .iter()
        .map(|r| format!("{:.2}", r.p99_ratio()))
        .collect();
    println!(
        "p99 at the same offered rate, subject (B@peer) / peer (B) ({of}per-round ratios): \
         {:.3} / {:.3} ms, ratio {p99_ratio:.2}x [rounds: {}] (goal <= {GOAL_P99_RATIO}x): {}",
        strict_p99 / 1000.0,
        peer_p99 / 1000.0,
        per_round.join(", "),
        verdict(p99_ratio <= GOAL_P99_RATIO)
    );
    let others = rounds.iter().filter_map(Round::others_cpu).reduce(f64::max);
    if let Some(others) = others.filter(|&o| o > NOISY_OTHERS_CPU) {
        println!();
        println!(
            "NOTE: other processes used up to {others:.0}% of the machine during a phase \
             (column `others`): the figures are disturbed; compare rounds, rerun on a quiet machine."
        );
    }
    if rounds.iter().any(Round::failed) {
        println!();
        println!(
            "!!! WARNING: some requests were not answered 200 (see above): this run's figures are NOT valid."
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<(), LoadError> {
    let args = Args::parse(std::env::args().skip(1))?;
    if args.help {
        println!("{USAGE}");
        return Ok(());
    }
    let peer_rt = server_runtime("load-peer")?;
    let peer_addr = start_peer(&peer_rt)?;
    if args.peer_only {
        println!("peer listening at http://{peer_addr} (POST {PATH}); Ctrl-C to stop");
        peer_rt
            .block_on(tokio::signal::ctrl_c())
            .map_err(|source| LoadError::Io {
                what: "waiting for Ctrl-C",
                source,
            })?;
        return Ok(());
    }
    // The runtime and the handle are kept until the end of the run:
    // dropping them stops the subject.
    let subject_rt = server_runtime("load-subject")?;
    let (subject, subject_uri) = match &args.target {
        Some(uri) => (None, uri.clone()),
        None if args.self_check => {
            let addr = start_peer(&subject_rt)?;
            let uri = request_uri(&addr.to_string()).map_err(|_| LoadError::BadValue {
                flag: "(subject address)",
                value: addr.to_string(),
                expected: "a host:port",
            })?;
            (None, uri)
        }
        None => {
            let (addr, running) = start_subject(&subject_rt)?;
            let uri = request_uri(&addr.to_string()).map_err(|_| LoadError::BadValue {
                flag: "(subject address)",
                value: addr.to_string(),
                expected: "a host:port",
            })?;
            (Some(running), uri)
        }
    };
    match &subject {
        Some(_) => println!(
            "subject: proxy-delegate-service in-process, embedded default configuration, \
             rate limit {} req/s per caller",
            SUBJECT_RATE_LIMIT.per_second
        ),
        None if args.target.is_some() => println!("subject: the service at --target"),
        None => println!("subject: a second peer (--self-check: the ratio should be near 100%)"),
    }
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load-client")
        .enable_all()
        .build()
        .map_err(|source| LoadError::Io {
            what: "building the client runtime",
            source,
        })?;

    println!(
        "load run: {} cores, {} build",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if cfg!(debug_assertions) {
            "DEBUG (figures meaningless: use --release)"
        } else {
            "release"
        }
    );
    let peer_uri = request_uri(&peer_addr.to_string()).map_err(|_| LoadError::BadValue {
        flag: "(peer address)",
        value: peer_addr.to_string(),
        expected: "a host:port",
    })?;
    client_rt.block_on(async {
        let peer = Target::new("peer", peer_uri);
        let subject = Target::new("subject", subject_uri);
        run(&args, peer, subject).await
    })?;
    drop(client_rt);
    drop(subject);
    drop(subject_rt);
    drop(peer_rt);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, LoadError> {
        Args::parse(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn parses_flags_in_both_forms() {
        let a = args(&[
            "--seconds",
            "7",
            "--connections=3",
            "--target",
            "http://127.0.0.1:9/",
        ])
        .unwrap();
        assert_eq!(a.seconds, 7);
        assert_eq!(a.connections, 3);
        assert_eq!(
            a.target.unwrap().to_string(),
            "http://127.0.0.1:9/api/v1/proxy/request"
        );
        assert_eq!(args(&[]).unwrap(), Args::default());
        assert!(args(&["--peer-only"]).unwrap().peer_only);
        let a = args(&["--rounds", "3", "--inflight=9"]).unwrap();
        assert_eq!((a.rounds, a.inflight), (3, Some(9)));
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = args(&["--seconds", "0"]).unwrap_err();
        assert!(e.to_string().contains("--seconds 0"), "{e}");
        let e = args(&["--connections"]).unwrap_err();
        assert!(matches!(
            e,
            LoadError::MissingValue {
                flag: "--connections"
            }
        ));
        let e = args(&["--target", "https://x:1"]).unwrap_err();
        assert!(e.to_string().contains("http://"), "{e}");
        let e = args(&["--target", "http://u:p@x:1"]).unwrap_err();
        assert!(e.to_string().contains("credentials"), "{e}");
        let e = args(&["--target", "http://x:1/api"]).unwrap_err();
        assert!(e.to_string().contains("without a path"), "{e}");
        let e = args(&["--bogus"]).unwrap_err();
        assert!(matches!(e, LoadError::UnknownArgument(ref a) if a == "--bogus"));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u32> = (1..=1000).rev().collect();
        let p = Percentiles::of(&mut v);
        assert_eq!(
            p,
            Percentiles {
                p50: 500,
                p90: 900,
                p99: 990,
                p999: 999,
                max: 1000
            }
        );
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[42], 0.999), 42);
    }

    #[test]
    fn others_share_of_the_machine() {
        let before = CpuSample {
            total: 1000,
            busy: 400,
            own: 100,
        };
        let after = CpuSample {
            total: 2000,
            busy: 1100,
            own: 500,
        };
        // 1000 ticks, 700 of them busy, 400 of those ours: others took 30%.
        assert_eq!(after.others_since(&before), Some(30.0));
        assert_eq!(before.others_since(&before), None);
        assert_eq!(before.others_since(&after), None);
        if cfg!(target_os = "linux") {
            let now = CpuSample::read().expect("/proc/stat and /proc/self/stat");
            assert!(now.busy <= now.total && now.total > 0);
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }

    /// A server that accepts connections and never answers: every request
    /// times out or, once the phase is past its end by a time-out, is not
    /// sent at all; the phase ends instead of working through the schedule.
    #[test]
    fn silent_server_times_out_and_the_phase_ends() {
        let client = tokio::runtime::Runtime::new().unwrap();
        client.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let holder = tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((stream, _)) = listener.accept().await {
                    held.push(stream);
                }
            });
            let mut silent = Target::new("subject", request_uri(&addr.to_string()).unwrap());
            silent.timeout = Duration::from_millis(100);
            let bodies = request_bodies();
            let b = open_loop(&silent, &bodies, 2, 100.0, Duration::from_millis(200)).await;
            let rec = &b.recorder;
            assert_eq!(rec.ok(), 0);
            assert!(rec.timeouts > 0, "{rec:?}");
            assert!(rec.skipped > 0, "{rec:?}");
            assert_eq!(rec.timeouts + rec.skipped, 20, "{rec:?}");
            assert_eq!(rec.failed(), 20);
            let e = preflight(&silent, bodies[0].clone()).await.unwrap_err();
            assert!(e.to_string().contains("no answer within"), "{e}");
            holder.abort();
        });
    }

    /// The in-process subject is the real service and answers the load's
    /// requests with valid `ProxyResponse`s, without rate-limiting a burst
    /// far above the default limit.
    #[test]
    fn subject_starts_and_answers() {
        let server = server_runtime("test-subject").unwrap();
        let (addr, _running) = start_subject(&server).unwrap();
        assert!(addr.ip().is_loopback());
        let client = tokio::runtime::Runtime::new().unwrap();
        client.block_on(async {
            let bodies = request_bodies();
            let subject = Target::new("subject", request_uri(&addr.to_string()).unwrap());
            let answer = preflight(&subject, bodies[0].clone()).await.unwrap();
            assert!(answer.contains("ProxyResponse"), "{answer}");
            assert!(!answer.contains("WARNING"), "{answer}");
            let b = open_loop(&subject, &bodies, 8, 5000.0, Duration::from_millis(600)).await;
            assert_eq!(
                b.recorder.failed(),
                0,
                "{:?} {:?}",
                b.recorder.statuses,
                b.recorder.first_error
            );
            assert_eq!(b.recorder.ok(), 3000);
        });
    }

    #[test]
    fn bodies_cover_every_client_and_exchange() {
        let bodies = request_bodies();
        let mut clients = std::collections::HashSet::new();
        let mut exchanges = std::collections::HashSet::new();
        for b in bodies.iter() {
            let v: serde_json::Value = serde_json::from_slice(b).unwrap();
            clients.insert(v["client_id"].as_str().unwrap().to_owned());
            exchanges.insert(v["exchange_id"].as_str().unwrap().to_owned());
            assert!(matches!(
                v["connection_type"].as_str(),
                Some("http" | "websocket")
            ));
        }
        assert_eq!(clients.len(), CLIENTS);
        assert_eq!(exchanges.len(), EXCHANGES.len());
    }

    /// The mechanics against a real peer: 200s are counted with latencies,
    /// non-200s and refused connections are counted apart.
    #[test]
    fn phases_count_answers_and_failures() {
        let server = server_runtime("test-peer").unwrap();
        let addr = start_peer(&server).unwrap();
        let client = tokio::runtime::Runtime::new().unwrap();
        client.block_on(async {
            let bodies = request_bodies();
            let good = Target::new("peer", request_uri(&addr.to_string()).unwrap());
            let answer = preflight(&good, bodies[0].clone()).await.unwrap();
            assert!(answer.contains("least_connections"), "{answer}");

            let a = closed_loop(
                &good,
                &bodies,
                2,
                Duration::from_millis(50),
                Duration::from_millis(300),
            )
            .await;
            assert!(a.recorder.ok() > 0);
            assert_eq!(a.recorder.failed(), 0, "{:?}", a.recorder.first_error);
            assert!(a.latency.p50 > 0 && a.latency.p50 <= a.latency.max);

            let b = open_loop(&good, &bodies, 4, 200.0, Duration::from_millis(250)).await;
            assert_eq!(b.recorder.ok(), 50);
            assert_eq!(b.recorder.failed(), 0);
            let service = b.service.unwrap();
            // From the due time is never shorter than from the send.
            assert!(b.latency.max >= service.max);

            let missing_uri = Uri::builder()
                .scheme("http")
                .authority(addr.to_string())
                .path_and_query("/nowhere")
                .build()
                .unwrap();
            let missing = Target::new("peer", missing_uri);
            let b = open_loop(&missing, &bodies, 2, 100.0, Duration::from_millis(100)).await;
            assert_eq!(b.recorder.ok(), 0);
            assert_eq!(b.recorder.statuses.get(&404), Some(&10));
            assert!(matches!(
                preflight(&missing, bodies[0].clone()).await,
                Err(LoadError::Preflight { .. })
            ));
        });
        // Nothing listens there once the peer's runtime is gone.
        drop(server);
        client.block_on(async {
            let bodies = request_bodies();
            let gone = Target::new("peer", request_uri(&addr.to_string()).unwrap());
            let b = open_loop(&gone, &bodies, 2, 100.0, Duration::from_millis(50)).await;
            assert_eq!(b.recorder.ok(), 0);
            assert_eq!(b.recorder.errors, 5);
            assert!(b.recorder.first_error.is_some());
        });
    }
}
