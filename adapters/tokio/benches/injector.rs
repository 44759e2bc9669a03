//! `ProxyInjector` on loopback, each figure in the same run as its peer:
//!
//! 1. **WebSocket connect + close through SOCKS5** (microsocks with user
//!    name and password): the injector on the embedded configuration naming
//!    that proxy, against the same connection written by hand
//!    (`tokio_socks::tcp::Socks5Stream::connect_with_password`, then
//!    `tokio_tungstenite::client_async`), and a direct connection for
//!    context (what the relay costs).
//! 2. **The same through HTTP CONNECT** (tinyproxy with BasicAuth): the peer
//!    writes `CONNECT host:port` with `Proxy-Authorization: Basic`, reads
//!    the answer's head, then `client_async`.
//! 3. **A cache hit adds no measurable time**: the injector delegating to
//!    the reference service (in process, its inventory holding the same
//!    microsocks), its cache warm, against the injector on the embedded
//!    configuration: same proxy, same target.
//! 4. **Messages through an established tunnel**: one WebSocket through the
//!    injector (via microsocks), one written by hand through the same proxy,
//!    and one direct, to the same echo server: a send + echo round trip of
//!    a 100-byte text message.
//!
//! There is no pipelined batch of messages: the echo server (a test
//! fixture) answers each message with its own small write on a socket with
//! Nagle's algorithm on, so a burst's echoes after the first wait for the
//! client's delayed ACK (about 40 ms on Linux) on every path, direct
//! included: such a group measures the kernel's timer, not the tunnel.
//!
//! ```text
//! cargo bench -p proxy-delegate-tokio --bench injector
//! ```
//!
//! Every connect iteration is the whole life of a connection: connect
//! (tunnel and WebSocket handshake), then the close handshake (send Close,
//! read the server's Close, then the end of the stream), for every
//! contender alike. Every hand-written peer sets `TCP_NODELAY`, as the
//! injector does. The timed loops run as a task on a 2-worker tokio
//! runtime, which also runs the echo server (and the service); the proxies
//! are child processes. Each group is measured twice: by criterion (one
//! contender after the other, seconds each), then in alternating rounds
//! (the order reversed every other round), which record every iteration
//! and this process's CPU time (`/proc/self/task/*/schedstat`). On a shared
//! machine whose load comes and goes, the rounds' per-round ratios and the
//! CPU time are the figures to trust; criterion's can land its contenders
//! in different load. Nothing about time is asserted; every connection is
//! checked to have gone the expected way.
//!
//! Exact instruction counts per connection (the client's own work, not
//! the proxies'): run one group under callgrind and read the inclusive
//! cost of `ProxyInjector::connect_websocket::{{closure}}` against the
//! bench's `socks_ws::{{closure}}`, each divided by the connections made
//! (the count on the future's `drop_in_place`; the closure's own count is
//! of polls):
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/deps/injector-<hash> --bench "SOCKS5|round trip" \
//!     --warm-up-time 0.1 --measurement-time 0.3
//! callgrind_annotate --inclusive=yes --threshold=100 cg.out | grep -E 'connect_websocket|socks_ws'
//! ```

// The bench's output is its table.
#![allow(clippy::print_stdout)]

#[path = "../tests/common/proxies.rs"]
mod proxies;
#[path = "../tests/common/targets.rs"]
mod targets;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use criterion::Criterion;
use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};
use proxy_delegate_core::model::ClientId;
use proxy_delegate_core::resolver::Source;
use proxy_delegate_service::{Running, Service, ServiceConfig};
use proxy_delegate_tokio::{
    Embedded, HttpTransport, InjectorConfig, ProxyInjector, ProxyServiceClient, TransportConfig,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_socks::tcp::Socks5Stream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use proxies::{Microsocks, Tinyproxy};
use targets::ws_echo;

const USER: &str = "desk";
const PASS: &str = "pw-Zq81xv";
const EXCHANGE: &str = "binance";
/// Runtime workers (an application's runtime on this 2-core machine).
const WORKERS: usize = 2;
/// The length of the round-trip group's text message.
const MESSAGE_LEN: usize = 100;
/// Criterion samples per contender.
const SAMPLES: usize = 20;
/// Alternating rounds after criterion's pass.
const ROUNDS: usize = 16;

// ---------------------------------------------------------------- contenders

/// A WebSocket of any kind: the injector's, or tokio-tungstenite's over
/// whatever stream.
trait Ws:
    Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin + Send + 'static
{
}

impl<T> Ws for T where
    T: Stream<Item = Result<Message, WsError>>
        + Sink<Message, Error = WsError>
        + Unpin
        + Send
        + 'static
{
}

/// The close handshake: Close out, the server's Close in, then the end.
async fn close(mut ws: impl Ws) {
    ws.close().await.expect("close");
    while let Some(Ok(_)) = ws.next().await {}
}

/// One way to open a WebSocket to the echo server.
#[derive(Clone)]
enum Connect {
    /// `ProxyInjector::connect_websocket`; every route must come from
    /// `source`.
    Injector {
        injector: ProxyInjector,
        url: String,
        source: Source,
    },
    /// By hand: tokio-socks with user name and password, then
    /// `client_async`.
    Socks {
        proxy: SocketAddr,
        target: SocketAddr,
        url: String,
    },
    /// By hand: `CONNECT` with Basic auth, the answer's head read, then
    /// `client_async`.
    HttpTunnel {
        proxy: SocketAddr,
        target: SocketAddr,
        url: String,
    },
    /// No proxy: tokio-tungstenite's `connect_async_with_config`, Nagle off.
    Direct { url: String },
}

impl Connect {
    /// Connects and closes.
    async fn once(&self) {
        match self {
            Self::Injector {
                injector,
                url,
                source,
            } => {
                let ws = injector
                    .connect_websocket(url, EXCHANGE)
                    .await
                    .expect("the injector connects");
                assert_eq!(ws.route().source, *source, "the route's source");
                close(ws).await;
            }
            Self::Socks { proxy, target, url } => close(socks_ws(*proxy, *target, url).await).await,
            Self::HttpTunnel { proxy, target, url } => {
                let tunnel = http_connect(*proxy, *target).await;
                let (ws, _) = tokio_tungstenite::client_async(url.as_str(), tunnel)
                    .await
                    .expect("the WebSocket handshake through CONNECT");
                close(ws).await;
            }
            Self::Direct { url } => close(direct_ws(url).await).await,
        }
    }
}

async fn socks_ws(proxy: SocketAddr, target: SocketAddr, url: &str) -> impl Ws + use<> {
    let stream = Socks5Stream::connect_with_password(proxy, target, USER, PASS)
        .await
        .expect("SOCKS5 through microsocks");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let (ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("the WebSocket handshake through SOCKS5");
    ws
}

async fn direct_ws(url: &str) -> impl Ws + use<> {
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .expect("a direct WebSocket");
    ws
}

/// A CONNECT tunnel through tinyproxy, written by hand.
async fn http_connect(proxy: SocketAddr, target: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).await.expect("reach tinyproxy");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
    let head = format!(
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {token}\r\n\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("write CONNECT");
    // The target speaks only after the WebSocket request, so nothing past
    // the head can arrive here.
    let mut buf = [0u8; 1024];
    let mut n = 0;
    while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buf[n..]).await.expect("read the answer");
        assert!(read > 0 && n + read < buf.len(), "a short answer head");
        n += read;
    }
    assert!(
        buf.starts_with(b"HTTP/1.") && buf.get(9..12) == Some(b"200"),
        "CONNECT refused: {}",
        String::from_utf8_lossy(&buf[..n])
    );
    stream
}

/// One text message out and its echo in.
async fn echo_round(ws: &mut impl Ws, message: &Message) {
    ws.send(message.clone()).await.expect("send");
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.len() == MESSAGE_LEN => {}
        other => panic!("not the echo: {other:?}"),
    }
}

fn nanos(d: Duration) -> u32 {
    u32::try_from(d.as_nanos()).unwrap_or(u32::MAX)
}

/// A contender: runs `iters` iterations as one task on the runtime and
/// returns their time.
struct Contender<'a> {
    name: &'static str,
    /// Runs `iters` iterations: their total time and each one's.
    run: Box<dyn FnMut(u64) -> (Duration, Vec<u32>) + 'a>,
    /// Nanoseconds per iteration, one per criterion sample (warm-up first).
    samples: Vec<f64>,
    /// Nanoseconds per iteration, one per alternating round.
    rounds: Vec<f64>,
    /// Every iteration of the alternating rounds, nanoseconds.
    each: Vec<u32>,
    /// CPU time of this process (client, echo server, service, runtime)
    /// per iteration, nanoseconds, one per alternating round.
    cpu: Vec<f64>,
}

impl<'a> Contender<'a> {
    fn new(name: &'static str, run: impl FnMut(u64) -> (Duration, Vec<u32>) + 'a) -> Self {
        Self {
            name,
            run: Box::new(run),
            samples: Vec::new(),
            rounds: Vec::new(),
            each: Vec::new(),
            cpu: Vec::new(),
        }
    }

    /// Opens and closes a connection per iteration.
    fn connect(rt: &'a Runtime, name: &'static str, how: Connect) -> Self {
        Self::new(name, move |iters| {
            let how = how.clone();
            spawned(rt, async move {
                let mut each = Vec::with_capacity(iters as usize);
                let t0 = Instant::now();
                let mut last = t0;
                for _ in 0..iters {
                    how.once().await;
                    let now = Instant::now();
                    each.push(nanos(now - last));
                    last = now;
                }
                (last - t0, each)
            })
        })
    }

    /// Echoes one message per iteration through one open socket.
    fn messages(rt: &'a Runtime, name: &'static str, ws: impl Ws) -> Self {
        let message = Message::text("m".repeat(MESSAGE_LEN));
        let mut slot = Some(ws);
        Self::new(name, move |iters| {
            let mut ws = slot.take().expect("the socket came back");
            let message = message.clone();
            let (ws, dt, each) = spawned(rt, async move {
                let mut each = Vec::with_capacity(iters as usize);
                let t0 = Instant::now();
                let mut last = t0;
                for _ in 0..iters {
                    echo_round(&mut ws, &message).await;
                    let now = Instant::now();
                    each.push(nanos(now - last));
                    last = now;
                }
                (ws, last - t0, each)
            });
            slot = Some(ws);
            (dt, each)
        })
    }

    /// Criterion's samples (its measurement phase: the last `SAMPLES`).
    fn criterion_median(&self) -> Option<f64> {
        median(&self.samples[self.samples.len().saturating_sub(SAMPLES)..])
    }

    /// A quantile of the alternating rounds' iterations.
    fn quantile(&self, q: f64) -> Option<f64> {
        if self.each.is_empty() {
            return None;
        }
        let mut v = self.each.clone();
        v.sort_unstable();
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        Some(f64::from(v[i]))
    }

    /// The median over alternating rounds of this one's time / `other`'s.
    fn paired_ratio(&self, other: &Self) -> Option<f64> {
        paired(&self.rounds, &other.rounds)
    }

    /// The same for the process's CPU time.
    fn paired_cpu_ratio(&self, other: &Self) -> Option<f64> {
        paired(&self.cpu, &other.cpu)
    }
}

/// Runs `task` on the runtime's workers (as an application's task runs,
/// not on this thread) and waits for it.
fn spawned<T: Send + 'static>(rt: &Runtime, task: impl Future<Output = T> + Send + 'static) -> T {
    rt.block_on(rt.spawn(task)).expect("the bench task")
}

/// The median of the per-round ratios `a / b`.
fn paired(a: &[f64], b: &[f64]) -> Option<f64> {
    let ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    median(&ratios)
}

/// CPU time used so far by every thread of this process, nanoseconds (the
/// scheduler's own accounting, `/proc/self/task/*/schedstat`): unlike wall
/// time it does not grow while a thread waits for a core, so it tells what
/// a contender costs on a machine that others are loading.
fn process_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Criterion's pass over every contender, one after the other; then
/// `ROUNDS` alternating rounds of `per_round` iterations each, the order
/// reversed every other round.
fn measure(c: &mut Criterion, title: &str, contenders: &mut [Contender<'_>], per_round: u64) {
    let mut group = c.benchmark_group(title);
    group.sample_size(SAMPLES);
    for ct in contenders.iter_mut() {
        group.bench_function(ct.name, |b| {
            b.iter_custom(|iters| {
                let (dt, _) = (ct.run)(iters);
                ct.samples.push(dt.as_nanos() as f64 / iters as f64);
                dt
            })
        });
    }
    group.finish();
    if contenders.iter().all(|ct| ct.samples.is_empty()) {
        // Filtered out on the command line.
        return;
    }
    let rounds = if test_mode() { 1 } else { ROUNDS };
    let per_round = if test_mode() { 1 } else { per_round };
    let n = contenders.len();
    for r in 0..rounds {
        for i in 0..n {
            let ct = &mut contenders[if r % 2 == 0 { i } else { n - 1 - i }];
            let cpu = process_cpu_ns();
            let (dt, each) = (ct.run)(per_round);
            let cpu = process_cpu_ns().saturating_sub(cpu);
            ct.rounds.push(dt.as_nanos() as f64 / per_round as f64);
            ct.cpu.push(cpu as f64 / per_round as f64);
            ct.each.extend(each);
        }
    }
}

/// `cargo test --benches` runs each bench once with `--test`.
fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

// ---------------------------------------------------------------- setup

fn embedded(proxy_url: &str) -> Embedded {
    proxy_delegate_config::load_yaml_str(&format!(
        "proxy:\n  enabled: true\n  exchanges:\n    {EXCHANGE}:\n      websocket: {proxy_url}\n"
    ))
    .expect("valid settings")
}

fn injector_config() -> InjectorConfig {
    InjectorConfig {
        connect_timeout: Duration::from_secs(10),
        // Plain ws:// only: no CA is needed.
        ca_file: None,
        system_roots: false,
        websocket: None,
    }
}

/// The reference service with this one proxy in its inventory.
async fn start_service(proxy_url: &str) -> Running {
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n[pool]\nstrategy = \"round_robin\"\nttl_seconds = 300\n\
         [[proxies]]\nid = \"microsocks\"\nurl = \"{proxy_url}\"\n"
    );
    let config = ServiceConfig::parse(&toml, false).expect("valid service config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    Service::new(config)
        .expect("service builds")
        .start(listener)
        .expect("service starts")
}

/// An injector delegating to `service`, with the client's default feedback
/// batching (as an application runs it).
fn delegating(rt: &Runtime, service: &Running) -> ProxyInjector {
    let settings = proxy_delegate_config::load_yaml_str(&format!(
        "proxy:\n  enabled: true\n  external_service:\n    enabled: true\n    endpoints: [\"http://{}\"]\n    resolve_deadline_ms: 2000\n",
        service.local_addr()
    ))
    .expect("valid settings");
    let delegation = settings
        .external_service
        .delegation(ClientId::new("injector-bench").expect("valid client id"))
        .expect("a working external_service block");
    let transport = HttpTransport::new(TransportConfig::from_settings(&settings.external_service))
        .expect("the HTTP transport");
    let _guard = rt.enter();
    let client =
        ProxyServiceClient::with_transport(delegation, settings.clone(), Arc::new(transport))
            .expect("the client builds");
    ProxyInjector::with_config(settings, Some(client), injector_config()).expect("the injector")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        None => "—".to_owned(),
        Some(ns) if ns >= 1_000_000.0 => format!("{:.2} ms", ns / 1e6),
        Some(ns) if ns >= 1_000.0 => format!("{:.1} µs", ns / 1e3),
        Some(ns) => format!("{ns:.0} ns"),
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "—".to_owned(), |r| format!("{r:.3}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

/// One table row per contender, each against the first: criterion's
/// median sample mean, the alternating rounds' per-iteration distribution
/// and CPU time, and the ratios.
fn print_group(title: &str, contenders: &[Contender<'_>]) {
    let first = &contenders[0];
    println!("{title}");
    println!(
        "| | criterion | rounds p50 | p90 | p99 | > 10 ms | CPU | {0} / this: criterion | p50 | per-round means | CPU |",
        first.name
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (i, ct) in contenders.iter().enumerate() {
        let ratios = if i == 0 {
            "1 | 1 | 1 | 1".to_owned()
        } else {
            format!(
                "{} | {} | {} | {}",
                fmt_ratio(ratio(first.criterion_median(), ct.criterion_median())),
                fmt_ratio(ratio(first.quantile(0.5), ct.quantile(0.5))),
                fmt_ratio(first.paired_ratio(ct)),
                fmt_ratio(first.paired_cpu_ratio(ct)),
            )
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {ratios} |",
            ct.name,
            fmt_ns(ct.criterion_median()),
            fmt_ns(ct.quantile(0.5)),
            fmt_ns(ct.quantile(0.9)),
            fmt_ns(ct.quantile(0.99)),
            ct.each.iter().filter(|&&ns| ns > 10_000_000).count(),
            fmt_ns(median(&ct.cpu)),
        );
    }
    println!();
}

// ---------------------------------------------------------------- main

fn main() {
    let load_before = loadavg();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("the runtime");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    let echo = rt.block_on(ws_echo(None));
    let socks = Microsocks::start(Some((USER, PASS)));
    let tiny = Tinyproxy::start(Some((USER, PASS)));
    let url = echo.url("/stream");
    let socks_url = socks.url("socks5");
    let via_socks = ProxyInjector::with_config(embedded(&socks_url), None, injector_config())
        .expect("the SOCKS5 injector");
    let via_http = ProxyInjector::with_config(embedded(&tiny.url()), None, injector_config())
        .expect("the HTTP CONNECT injector");
    let service = rt.block_on(start_service(&socks_url));
    let cached = delegating(&rt, &service);
    // Warm the cache: the first route comes from the service, every one
    // after it from the cache.
    spawned(&rt, {
        let cached = cached.clone();
        let url = url.clone();
        async move {
            let ws = cached
                .connect_websocket(&url, EXCHANGE)
                .await
                .expect("the first connection through the service's proxy");
            assert_eq!(ws.route().source, Source::Service, "the first resolve asks");
            close(ws).await;
        }
    });

    let injector = |injector: &ProxyInjector, source| Connect::Injector {
        injector: injector.clone(),
        url: url.clone(),
        source,
    };

    // ---- 1. connect + close through SOCKS5
    let mut socks_connect = [
        Contender::connect(&rt, "injector", injector(&via_socks, Source::Embedded)),
        Contender::connect(
            &rt,
            "peer: tokio-socks + client_async",
            Connect::Socks {
                proxy: socks.addr(),
                target: echo.addr,
                url: url.clone(),
            },
        ),
        Contender::connect(
            &rt,
            "direct, no proxy (context)",
            Connect::Direct { url: url.clone() },
        ),
    ];
    measure(
        &mut c,
        "connect + close, SOCKS5 (microsocks)",
        &mut socks_connect,
        50,
    );

    // ---- 2. connect + close through HTTP CONNECT
    let mut http_connect = [
        Contender::connect(&rt, "injector", injector(&via_http, Source::Embedded)),
        Contender::connect(
            &rt,
            "peer: CONNECT by hand + client_async",
            Connect::HttpTunnel {
                proxy: tiny.addr(),
                target: echo.addr,
                url: url.clone(),
            },
        ),
    ];
    measure(
        &mut c,
        "connect + close, HTTP CONNECT (tinyproxy)",
        &mut http_connect,
        50,
    );

    // ---- 3. a cache hit against the embedded configuration
    let mut cache_connect = [
        Contender::connect(
            &rt,
            "injector, delegating (cache hit)",
            injector(&cached, Source::Cache),
        ),
        Contender::connect(
            &rt,
            "injector, embedded configuration",
            injector(&via_socks, Source::Embedded),
        ),
    ];
    measure(
        &mut c,
        "connect + close, cache hit vs embedded (microsocks)",
        &mut cache_connect,
        50,
    );

    // ---- 4. messages through an open tunnel
    let (injected, by_hand, direct) = {
        let (via_socks, url) = (via_socks.clone(), url.clone());
        let (proxy, target) = (socks.addr(), echo.addr);
        spawned(&rt, async move {
            let injected = via_socks
                .connect_websocket(&url, EXCHANGE)
                .await
                .expect("the injector connects");
            assert_eq!(injected.route().source, Source::Embedded);
            (
                injected,
                socks_ws(proxy, target, &url).await,
                direct_ws(&url).await,
            )
        })
    };
    let mut messages = [
        Contender::messages(&rt, "injector via microsocks", injected),
        Contender::messages(&rt, "peer: tokio-socks via microsocks", by_hand),
        Contender::messages(&rt, "direct tokio-tungstenite (no relay)", direct),
    ];
    measure(
        &mut c,
        "echo round trip, one 100-byte text message",
        &mut messages,
        500,
    );

    c.final_summary();
    let (resolved, feedback) = cached
        .client()
        .expect("the delegating injector has a client")
        .stats();
    let load_after = loadavg();

    // ---- the tables
    println!();
    println!(
        "injector bench: {} cores, {WORKERS} runtime workers, load average {load_before} before, {load_after} after",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "(per iteration. criterion: the median of its {SAMPLES} sample means. rounds: every iteration of {ROUNDS} alternating rounds; > 10 ms counts the stalls among them. CPU: this process's CPU time per iteration (client, echo server, in-process service), median over the rounds; ratios of rounds and CPU are medians of per-round ratios)"
    );
    println!();
    print_group(
        "1. connect + close through SOCKS5 (microsocks, user/password)",
        &socks_connect,
    );
    print_group(
        "2. connect + close through HTTP CONNECT (tinyproxy, BasicAuth)",
        &http_connect,
    );
    print_group(
        "3. connect + close, delegating with a warm cache vs embedded",
        &cache_connect,
    );
    println!(
        "   (delegating client: routes by source [service, cache, stale, embedded, direct] {:?}; feedback {} sent, {} dropped, {} queued)",
        resolved.resolved, feedback.sent, feedback.dropped, feedback.queued
    );
    println!();
    print_group(
        "4. echo round trip of one 100-byte text message through an open WebSocket",
        &messages,
    );
    drop(service);
    // Every connection reached the echo server.
    println!(
        "   (echo server: {} connections accepted, {} upgraded)",
        echo.opened(),
        echo.upgraded()
    );
}
