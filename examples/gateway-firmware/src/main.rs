//! The gateway firmware: `proxy-delegate-core`'s Resolver on a Cortex-M4F
//! (QEMU's `mps2-an386`), driven through a scripted conversation with the
//! proxy service.
//!
//! The Resolver is the "gateway profile" (32 cached routes, 2 endpoints, 32
//! feedback events, 4 requests in flight, 8 waiting resolves) and lives in a
//! `static`, as does its embedded, cryptofeed-style configuration. There is
//! no network and no clock: the firmware plays the service's part itself,
//! feeding its replies in through the sans-IO API (`poll_output`,
//! `handle_reply`, `handle_timeout`), and advances an [`Instant`] by hand.
//! The conversation is in postcard (`application/x-postcard`): the core is
//! built without its `json` feature, which keeps the JSON codec (and float
//! parsing) out of flash; the firmware decodes what the Resolver sends as
//! the service would, and encodes the service's answers.
//!
//! Every step checks what the Resolver decided (the route's source, its
//! proxy, whether a request went to the service) and prints one line over
//! semihosting, `step N <name>: <what> ok`. The first mismatch prints
//! `FAILED` and exits with the semihosting failure status; the end prints the
//! footprint it measured and exits with success. `scripts/gateway-qemu.sh`
//! runs it and checks the output.
#![no_std]
#![no_main]

use core::mem::size_of;
use core::panic::PanicInfo;

use cortex_m_rt::{ExceptionFrame, entry, exception};
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hprintln;
use embassy_time::{Duration, Instant};
use static_cell::StaticCell;

use proxy_delegate_core::breaker::BreakerState;
use proxy_delegate_core::codec::{self, DecodeError};
use proxy_delegate_core::contract::WireFormat;
use proxy_delegate_core::embedded::{EmbeddedRoute, EmbeddedRoutes};
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ExchangeId, FallbackPolicy, FeedbackEvent, ProxyFeedback, ProxyId,
    ProxyRequest, ProxyResponse, ProxyUrl, ResponseMetadata, Strategy, Timestamp, TtlSeconds,
};
use proxy_delegate_core::resolver::{
    Answer, CorrelationId, FallbackReason, MIN_TRANSMIT_BUFFER, Output, Reply, Resolution,
    Resolver, Source, Ticket, TransmitKind,
};
use proxy_delegate_core::settings::{
    ExternalService, PoolProxy, PoolStrategy, ProxyConfig, ProxySettings,
};

use proxy_delegate_core::keep::Compact;
use proxy_delegate_core::storage::Inline;

mod footprint;

// ---------------------------------------------------------------- the profile

/// Cached routes (a power of two).
pub const CACHE: usize = 32;
/// Service endpoints.
pub const ENDPOINTS: usize = 2;
/// Queued feedback events.
pub const FEEDBACK: usize = 32;
/// Service requests in flight.
pub const FLIGHTS: usize = 4;
/// Resolves waiting for an answer.
pub const WAITERS: usize = 8;
/// Events not yet taken with `poll_output` (the firmware drains them after
/// every input).
pub const EVENTS: usize = 8;
/// Bytes for one cached route, packed (postcard): a URL with credentials, a
/// strategy, a proxy id and a region of everyday lengths.
pub const RESPONSE_BYTES: usize = 128;
/// Bytes for one queued feedback event, packed; longer `error_details` are
/// cut to fit.
pub const FEEDBACK_BYTES: usize = 160;
/// Bytes for one request in flight, packed (no metadata on a gateway).
pub const REQUEST_BYTES: usize = 96;
/// Exchanges the embedded configuration holds.
pub const EXCHANGES: usize = 2;
/// Proxies in one pool of the embedded configuration.
pub const POOL: usize = 2;

/// The embedded configuration's storage.
pub type Settings = ProxySettings<EXCHANGES, POOL>;
/// The gateway-profile Resolver as the issue measures it: no embedded
/// configuration inside.
pub type ProfileResolver =
    Resolver<(), CACHE, ENDPOINTS, FEEDBACK, FLIGHTS, WAITERS, Inline, Keeping, EVENTS>;
/// How the gateway keeps its routes, feedback and requests: packed.
pub type Keeping = Compact<RESPONSE_BYTES, FEEDBACK_BYTES, REQUEST_BYTES>;
/// The firmware's Resolver: the profile, with the embedded configuration
/// lent from its own `static`.
pub type GatewayResolver =
    Resolver<Embedded, CACHE, ENDPOINTS, FEEDBACK, FLIGHTS, WAITERS, Inline, Keeping, EVENTS>;

/// The embedded configuration, lent to the Resolver: the settings stay in
/// their own `static` and the Resolver holds one pointer.
#[derive(Debug)]
pub struct Embedded(&'static mut Settings);

impl EmbeddedRoutes for Embedded {
    fn embedded_route(
        &mut self,
        exchange_id: &ExchangeId,
        connection_type: ConnectionType,
    ) -> Option<EmbeddedRoute> {
        self.0.embedded_route(exchange_id, connection_type)
    }

    fn release_route(
        &mut self,
        exchange_id: &ExchangeId,
        connection_type: ConnectionType,
        proxy_url: &ProxyUrl,
    ) {
        self.0
            .release_route(exchange_id, connection_type, proxy_url);
    }
}

// ---------------------------------------------------------------- the script's data

/// The service's endpoints (never contacted: the firmware answers for them).
const ENDPOINT_URLS: [&str; ENDPOINTS] = [
    "http://svc-a.gateway.invalid:8080",
    "http://svc-b.gateway.invalid:8080",
];
/// The password in the proxy URLs: it must never reach the output or a
/// feedback body.
const SECRET: &str = "gw-s3cret";
/// The service's first answer.
const PROXY_S1: &str = "socks5://gw:gw-s3cret@proxy-s1.gateway.invalid:1080";
/// The service's answer after recovery.
const PROXY_S2: &str = "socks5://gw:gw-s3cret@proxy-s2.gateway.invalid:1080";
/// The embedded configuration's default http proxy.
const PROXY_DEFAULT_HTTP: &str = "http://proxy-default.gateway.invalid:8080";
/// The embedded configuration's pool for binance websockets.
const PROXY_POOL: [&str; POOL] = [
    "socks5://proxy-b1.gateway.invalid:1080",
    "socks5://proxy-b2.gateway.invalid:1080",
];
/// The embedded configuration's coinbase websocket proxy.
const PROXY_COINBASE_WS: &str = "socks5://proxy-c.gateway.invalid:1080";

/// A service answer naming `proxy` for 300 s, falling back to the embedded
/// configuration, encoded as the service sends it to a postcard client.
fn answer_body<'a>(proxy: &str, proxy_id: &str, out: &'a mut [u8; 256]) -> &'a [u8] {
    let (Ok(strategy), Ok(ttl_seconds), Ok(proxy_id)) = (
        Strategy::new("round_robin"),
        TtlSeconds::new(300),
        ProxyId::new(proxy_id),
    ) else {
        fail(0, "setup", format_args!("invalid answer fields"))
    };
    let response = ProxyResponse {
        proxy_url: Some(url(proxy)),
        strategy,
        ttl_seconds,
        fallback_policy: FallbackPolicy::EmbeddedFallback,
        metadata: ResponseMetadata {
            proxy_id: Some(proxy_id),
            region: None,
            health_score: None,
        },
    };
    match codec::postcard::encode(&response, out) {
        Ok(n) => &out[..n],
        Err(e) => fail(0, "setup", format_args!("encoding an answer: {}", e)),
    }
}

// ---------------------------------------------------------------- checks and output

/// Stops the firmware: prints why and exits with the failure status.
fn fail(step: u32, name: &str, args: core::fmt::Arguments<'_>) -> ! {
    hprintln!("step {} {}: FAILED: {}", step, name, args);
    exit(false)
}

fn exit(success: bool) -> ! {
    debug::exit(if success { EXIT_SUCCESS } else { EXIT_FAILURE });
    // Only reached without a semihosting host: stop here.
    loop {
        cortex_m::asm::bkpt();
    }
}

/// Checks a condition of the current step; on failure prints the step and
/// the message and exits with failure.
macro_rules! ensure {
    ($g:expr, $cond:expr, $($arg:tt)+) => {
        if !$cond {
            let (step, name) = ($g.step, $g.name);
            fail(step, name, format_args!($($arg)+));
        }
    };
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    hprintln!("panic: {}", info);
    exit(false)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("hard fault at pc {:#010x}", frame.pc());
    exit(false)
}

#[exception]
unsafe fn DefaultHandler(irq: i16) {
    hprintln!("unexpected exception {}", irq);
    exit(false)
}

// ---------------------------------------------------------------- the harness

/// A transmit the firmware has to answer, with what its body said.
#[derive(Debug, Clone, Copy)]
struct Sent {
    id: CorrelationId,
    endpoint: usize,
    kind: TransmitKind,
    len: usize,
    /// Messages in the body (a request, or a batch of feedback events),
    /// decoded as the service decodes them.
    objects: usize,
    /// Whether the body names each exchange of the script.
    names: [bool; 3],
    /// Whether the body holds the proxies' password.
    leaks_secret: bool,
}

/// The exchanges of the script, in `Sent::names` order.
const EXCHANGE_NAMES: [&str; 3] = ["binance", "coinbase", "kraken"];

/// What a postcard body holds: how many messages, and which of the
/// script's exchanges they name. A resolve carries one `ProxyRequest`; a
/// feedback batch is `ProxyFeedback` messages one after another. Its own
/// frame: the decoded messages (kilobytes) are not kept on the stack while
/// `setup` builds the Resolver.
#[inline(never)]
fn read_body(kind: TransmitKind, body: &[u8]) -> Result<(usize, [bool; 3]), DecodeError> {
    let mut names = [false; 3];
    let mut note = |exchange: &ExchangeId| {
        for (seen, name) in names.iter_mut().zip(EXCHANGE_NAMES) {
            *seen |= exchange.as_str() == name;
        }
    };
    let mut objects = 0;
    if kind == TransmitKind::Resolve {
        let request: ProxyRequest = codec::postcard::decode(body)?;
        note(&request.exchange_id);
        objects = 1;
    } else {
        let mut rest = body;
        while !rest.is_empty() {
            let (event, after) = codec::postcard::take::<ProxyFeedback>(rest)?;
            note(&event.exchange_id);
            objects += 1;
            rest = after;
        }
    }
    Ok((objects, names))
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// The Resolver, its simulated clock, and what it output that the firmware
/// still has to act on.
struct Gateway {
    r: &'static mut GatewayResolver,
    now: Instant,
    buf: [u8; MIN_TRANSMIT_BUFFER],
    /// Resolve and feedback transmits not yet answered.
    sent: heapless::Vec<Sent, 8>,
    answers: heapless::Vec<Answer, 4>,
    /// Health checks answered (healthy) by the firmware.
    health_checks: u32,
    events: u32,
    /// Deepest the stack went in any step so far.
    max_stack: usize,
    step: u32,
    name: &'static str,
}

impl Gateway {
    fn begin(&mut self, name: &'static str) {
        self.step += 1;
        self.name = name;
    }

    /// Prints the step's line, with the deepest the stack went during it,
    /// and paints the stack again for the next step.
    fn pass(&mut self, args: core::fmt::Arguments<'_>) {
        let stack = footprint::stack_high_water();
        self.max_stack = self.max_stack.max(stack);
        hprintln!(
            "step {} {}: {} [stack {} B] ok",
            self.step,
            self.name,
            args,
            stack
        );
        footprint::paint_stack();
    }

    /// Drains `poll_output` after an input, as an adapter's driving loop
    /// does: health checks are answered healthy at once, other transmits
    /// are kept for the script to answer, answers and events are kept.
    fn pump(&mut self) {
        for _ in 0..1_000 {
            match self.r.poll_output(self.now, &mut self.buf) {
                Output::Transmit(t) if t.kind == TransmitKind::HealthCheck => {
                    self.health_checks += 1;
                    let result =
                        self.r
                            .handle_reply(self.now, t.id, Reply::Ok(b"{\"status\":\"ok\"}"));
                    ensure!(self, result.is_ok(), "a fresh health check id was refused");
                }
                Output::Transmit(t) => {
                    let body = &self.buf[..t.len];
                    let (objects, names) = match read_body(t.kind, body) {
                        Ok(read) => read,
                        Err(e) => fail(
                            self.step,
                            self.name,
                            format_args!("the {} body is not postcard: {}", t.kind.path(), e),
                        ),
                    };
                    let sent = Sent {
                        id: t.id,
                        endpoint: t.endpoint,
                        kind: t.kind,
                        len: t.len,
                        objects,
                        names,
                        leaks_secret: count(body, SECRET.as_bytes()) > 0,
                    };
                    ensure!(
                        self,
                        self.sent.push(sent).is_ok(),
                        "more transmits outstanding than the script expects"
                    );
                }
                Output::Answer(a) => {
                    ensure!(
                        self,
                        self.answers.push(a).is_ok(),
                        "more answers than the script expects"
                    );
                }
                Output::Event(_) => self.events += 1,
                Output::Timeout(_) => return,
            }
        }
        fail(
            self.step,
            self.name,
            format_args!("poll_output never came to Timeout"),
        );
    }

    /// Moves the clock to `target`, firing every timer due on the way.
    fn advance_to(&mut self, target: Instant) {
        for _ in 0..1_000 {
            match self.r.poll_timeout() {
                Some(t) if t <= target && t >= self.now => {
                    self.now = t;
                    self.r.handle_timeout(self.now);
                    self.pump();
                    if self.r.poll_timeout() == Some(t) {
                        break;
                    }
                }
                _ => break,
            }
        }
        self.now = target;
        self.r.handle_timeout(self.now);
        self.pump();
    }

    fn advance(&mut self, d: Duration) {
        self.advance_to(self.now + d);
    }

    /// The transmits of `kind` not yet answered, taken out.
    fn take(&mut self, resolve: bool) -> heapless::Vec<Sent, 8> {
        let mut taken = heapless::Vec::new();
        let mut kept = heapless::Vec::<Sent, 8>::new();
        for s in self.sent.iter() {
            let is_resolve = s.kind == TransmitKind::Resolve;
            let _ = if is_resolve == resolve {
                taken.push(*s)
            } else {
                kept.push(*s)
            };
        }
        self.sent = kept;
        taken
    }

    fn reply(&mut self, id: CorrelationId, reply: Reply<'_>) {
        let result = self.r.handle_reply(self.now, id, reply);
        ensure!(
            self,
            result.is_ok(),
            "reply to {} refused: {:?}",
            id,
            result
        );
        self.pump();
    }

    /// The one answer waiting, for `ticket`.
    fn one_answer(&mut self, ticket: Ticket) -> Answer {
        ensure!(
            self,
            self.answers.len() == 1,
            "expected one answer, got {}",
            self.answers.len()
        );
        let answer = self.answers.swap_remove(0);
        ensure!(
            self,
            answer.ticket == ticket,
            "the answer is for ticket {}, not {}",
            answer.ticket.get(),
            ticket.get()
        );
        answer
    }

    fn breakers(&self) -> [Option<BreakerState>; ENDPOINTS] {
        core::array::from_fn(|i| self.r.endpoints().breaker_state(i))
    }
}

fn url(s: &str) -> ProxyUrl {
    match s.parse() {
        Ok(u) => u,
        Err(e) => fail(0, "setup", format_args!("proxy url {}: {}", s, e)),
    }
}

fn exchange(s: &str) -> ExchangeId {
    match ExchangeId::new(s) {
        Ok(id) => id,
        Err(e) => fail(0, "setup", format_args!("exchange {}: {}", s, e)),
    }
}

/// The embedded configuration, built in place, as this `config.yaml` block
/// would give it:
///
/// ```yaml
/// proxy:
///   enabled: true
///   default:
///     http: { url: "http://proxy-default.gateway.invalid:8080" }
///   exchanges:
///     binance:
///       websocket:
///         pool:
///           strategy: round_robin
///           proxies:
///             - url: "socks5://proxy-b1.gateway.invalid:1080"
///             - url: "socks5://proxy-b2.gateway.invalid:1080"
///     coinbase:
///       websocket: { url: "socks5://proxy-c.gateway.invalid:1080" }
///   external_service:
///     enabled: true
///     endpoints: ["http://svc-a.gateway.invalid:8080", "http://svc-b.gateway.invalid:8080"]
///     client_id: "gateway-1"
/// ```
fn fill_settings(s: &mut Settings) -> Result<(), proxy_delegate_core::ValidationError> {
    s.enabled = true;
    s.default.http = Some(ProxyConfig::url(url(PROXY_DEFAULT_HTTP)));
    let binance = s.exchange_entry(exchange("binance"))?;
    binance
        .websocket
        .get_or_insert_with(ProxyConfig::default)
        .set_pool(
            PROXY_POOL.iter().map(|u| PoolProxy::new(url(u))),
            PoolStrategy::RoundRobin,
        )?;
    let coinbase = s.exchange_entry(exchange("coinbase"))?;
    coinbase.websocket = Some(ProxyConfig::url(url(PROXY_COINBASE_WS)));
    let external: &mut ExternalService = &mut s.external_service;
    external.enabled = true;
    for e in ENDPOINT_URLS {
        let parsed = e.parse()?;
        let _ = external.endpoints.push(parsed);
    }
    external.client_id = Some(ClientId::new("gateway-1")?);
    Ok(())
}

static SETTINGS: StaticCell<Settings> = StaticCell::new();
static RESOLVER: StaticCell<GatewayResolver> = StaticCell::new();
static GATEWAY: StaticCell<Gateway> = StaticCell::new();

const T0: Instant = Instant::from_secs(1_000);

#[entry]
fn main() -> ! {
    footprint::paint_stack();
    hprintln!("gateway-firmware: proxy-delegate-core on a Cortex-M4F");
    let g = setup();
    let setup_stack = footprint::stack_high_water();
    if !footprint::within_reserve(setup_stack) {
        hprintln!(
            "setup: FAILED: building the Resolver took {} B of stack, past the reserve of memory.x (_stack_reserve): the statics next to the stack may be overwritten",
            setup_stack
        );
        exit(false);
    }
    footprint::paint_stack();
    hprintln!(
        "setup: resolver in a static ({} B), {} endpoints, embedded configuration of {} exchanges",
        size_of::<GatewayResolver>(),
        g.r.endpoints().len(),
        EXCHANGES
    );
    run(g);
    if !footprint::report(setup_stack, g.max_stack) {
        exit(false);
    }
    hprintln!("all {} steps ok", g.step);
    exit(true)
}

/// Builds the embedded configuration, the Resolver and the harness in their
/// statics. Its own frame, so that what building needs on the stack is
/// given back before the script runs.
#[inline(never)]
fn setup() -> &'static mut Gateway {
    let settings = SETTINGS.init_with(Settings::default);
    if let Err(e) = fill_settings(settings) {
        fail(0, "setup", format_args!("embedded configuration: {}", e));
    }
    let delegation = match settings
        .external_service
        .delegation(exchange_client("gateway-default"))
    {
        Ok(d) => d,
        Err(e) => fail(0, "setup", format_args!("external_service: {}", e)),
    };
    let mut config = delegation.config;
    // The gateway speaks postcard (`application/x-postcard`): its core is
    // built without the `json` feature.
    config.wire = WireFormat::Postcard;
    // Health checks at fixed times, so the script's clock is easy to follow.
    config.endpoints.check_jitter_percent = 0;
    let resolver = RESOLVER.init_with(|| {
        match GatewayResolver::new(T0, config, &delegation.endpoints, Embedded(settings)) {
            Ok(r) => r,
            Err(e) => fail(0, "setup", format_args!("resolver: {}", e)),
        }
    });
    let g = GATEWAY.init_with(|| Gateway {
        r: resolver,
        now: T0,
        buf: [0; MIN_TRANSMIT_BUFFER],
        sent: heapless::Vec::new(),
        answers: heapless::Vec::new(),
        health_checks: 0,
        events: 0,
        max_stack: 0,
        step: 0,
        name: "setup",
    });
    g.pump();
    g
}

/// The scripted conversation: each step drives the Resolver, checks what it
/// decided and prints its line.
#[inline(never)]
fn run(g: &mut Gateway) {
    let client_id = g.r.config().client_id.clone();
    let binance_ws = ProxyRequest::new(
        exchange("binance"),
        ConnectionType::Websocket,
        client_id.clone(),
    );
    let coinbase_ws = ProxyRequest::new(
        exchange("coinbase"),
        ConnectionType::Websocket,
        client_id.clone(),
    );
    let kraken_http =
        ProxyRequest::new(exchange("kraken"), ConnectionType::Http, client_id.clone());
    let mut body = [0u8; 256];

    // ---------------------------------------------------------------- 1. cache miss
    g.begin("cache miss");
    let ticket = match g.r.resolve(g.now, &binance_ws) {
        Resolution::Pending(t) => t,
        other => fail(
            g.step,
            g.name,
            format_args!("expected Pending, got {:?}", other),
        ),
    };
    g.pump();
    let sent = g.take(true);
    ensure!(
        g,
        sent.len() == 1,
        "expected 1 resolve transmit, got {}",
        sent.len()
    );
    let request = sent[0];
    ensure!(
        g,
        request.names == [true, false, false] && request.objects == 1,
        "the request body does not name binance alone"
    );
    g.pass(format_args!(
        "binance/websocket pending, 1 transmit POST {} ({} B) to endpoint {}",
        request.kind.path(),
        request.len,
        request.endpoint
    ));

    // ---------------------------------------------------------------- 2. service answer
    g.begin("service answer");
    g.advance(Duration::from_millis(20));
    let reply = answer_body(PROXY_S1, "s1", &mut body);
    g.reply(request.id, Reply::Ok(reply));
    let answer = g.one_answer(ticket);
    let route = match answer.result {
        Ok(route) => route,
        Err(e) => fail(g.step, g.name, format_args!("no route: {}", e)),
    };
    ensure!(
        g,
        route.source == Source::Service,
        "source {}, not service",
        route.source
    );
    ensure!(
        g,
        route.proxy_url == Some(url(PROXY_S1)),
        "proxy {:?}, not {}",
        route.proxy_url,
        PROXY_S1
    );
    ensure!(g, g.take(true).is_empty(), "a second request went out");
    g.pass(format_args!(
        "delegated route from the service, {} (after {} ms)",
        DisplayUrl(&route.proxy_url),
        (g.now - answer.started).as_millis()
    ));

    // ---------------------------------------------------------------- 3. cache hit
    g.begin("cache hit");
    g.advance(Duration::from_secs(1));
    match g.r.resolve(g.now, &binance_ws) {
        Resolution::Ready(route) => {
            ensure!(
                g,
                route.source == Source::Cache,
                "source {}, not cache",
                route.source
            );
            ensure!(
                g,
                route.proxy_url == Some(&url(PROXY_S1)),
                "proxy {:?}, not {}",
                route.proxy_url,
                PROXY_S1
            );
        }
        other => fail(
            g.step,
            g.name,
            format_args!("expected Ready, got {:?}", other),
        ),
    }
    g.pump();
    ensure!(g, g.take(true).is_empty(), "a cache hit sent a request");
    g.pass(format_args!(
        "binance/websocket ready from the cache, no transmit"
    ));

    // ---------------------------------------------------------------- 4. service failures
    g.begin("service failures");
    let mut failed_replies = 0u32;
    let mut rounds = 0u32;
    while g.breakers() != [Some(BreakerState::Open); ENDPOINTS] {
        rounds += 1;
        ensure!(
            g,
            rounds <= 20,
            "breakers still {:?} after 20 failed resolves",
            g.breakers()
        );
        let ticket = match g.r.resolve(g.now, &kraken_http) {
            Resolution::Pending(t) => t,
            Resolution::Ready(route) => {
                // Both breakers open between two rounds: only the last may.
                ensure!(
                    g,
                    route.source == Source::Embedded,
                    "ready from {}, not the embedded configuration",
                    route.source
                );
                break;
            }
            other => fail(
                g.step,
                g.name,
                format_args!("expected Pending, got {:?}", other),
            ),
        };
        g.pump();
        // The service is up (its health checks pass) but fails every
        // request: each attempt, and each retry on the other endpoint, gets
        // a 503.
        for _ in 0..3 {
            let sent = g.take(true);
            if sent.is_empty() {
                break;
            }
            for s in sent {
                ensure!(g, s.names[2], "the request does not name kraken");
                failed_replies += 1;
                g.reply(
                    s.id,
                    Reply::Status {
                        code: 503,
                        retry_after: None,
                    },
                );
            }
        }
        let answer = g.one_answer(ticket);
        let route = match answer.result {
            Ok(route) => route,
            Err(e) => fail(g.step, g.name, format_args!("no route: {}", e)),
        };
        ensure!(
            g,
            route.source == Source::Embedded && route.proxy_url == Some(url(PROXY_DEFAULT_HTTP)),
            "fell back to {} {}, not the embedded default http proxy",
            route.source,
            DisplayUrl(&route.proxy_url)
        );
        g.advance(Duration::from_millis(100));
    }
    let stats = g.r.stats();
    ensure!(
        g,
        stats.fallbacks[FallbackReason::ServiceFailed as usize] >= 1,
        "no fallback counted as service_failed"
    );
    g.pass(format_args!(
        "{} requests answered 503 over {} resolves, each fell back to the embedded {}; breakers {:?}",
        failed_replies,
        rounds,
        PROXY_DEFAULT_HTTP,
        g.breakers()
    ));

    // ---------------------------------------------------------------- 5. breaker open
    g.begin("breaker open");
    let before = g.r.stats().fallbacks[FallbackReason::NoEndpoint as usize];
    let mut picks: [Option<ProxyUrl>; 2] = [None, None];
    for (i, request) in [&coinbase_ws, &kraken_http].into_iter().enumerate() {
        match g.r.resolve(g.now, request) {
            Resolution::Ready(route) => {
                ensure!(
                    g,
                    route.source == Source::Embedded,
                    "source {}, not embedded",
                    route.source
                );
                picks[i] = route.proxy_url.cloned();
            }
            other => fail(
                g.step,
                g.name,
                format_args!("expected Ready, got {:?}", other),
            ),
        }
        g.pump();
    }
    ensure!(
        g,
        picks == [Some(url(PROXY_COINBASE_WS)), Some(url(PROXY_DEFAULT_HTTP))],
        "embedded picks {:?}",
        picks
    );
    ensure!(
        g,
        g.take(true).is_empty(),
        "a request went out with every breaker open"
    );
    let after = g.r.stats().fallbacks[FallbackReason::NoEndpoint as usize];
    ensure!(
        g,
        after == before + 2,
        "no_endpoint fallbacks {} -> {}",
        before,
        after
    );
    g.pass(format_args!(
        "coinbase/websocket -> {}, kraken/http -> {} from the embedded configuration at once, no transmit",
        DisplayUrl(&picks[0]),
        DisplayUrl(&picks[1])
    ));

    // ---------------------------------------------------------------- 6. recovery
    g.begin("recovery");
    let reopen = g.r.endpoints().breaker(0).map(|b| b.next_open_duration());
    let Some(open_for) = reopen else {
        fail(g.step, g.name, format_args!("no endpoint 0"))
    };
    // Past the open duration, the breakers let a probe through.
    g.advance(open_for + Duration::from_secs(1));
    ensure!(
        g,
        g.breakers() == [Some(BreakerState::HalfOpen); ENDPOINTS],
        "breakers {:?} after the open duration",
        g.breakers()
    );
    let ticket = match g.r.resolve(g.now, &coinbase_ws) {
        Resolution::Pending(t) => t,
        other => fail(
            g.step,
            g.name,
            format_args!("expected Pending (a probe), got {:?}", other),
        ),
    };
    g.pump();
    let sent = g.take(true);
    ensure!(g, sent.len() == 1, "expected 1 probe, got {}", sent.len());
    let probe = sent[0];
    ensure!(g, probe.names[1], "the probe does not name coinbase");
    g.advance(Duration::from_millis(15));
    let reply = answer_body(PROXY_S2, "s2", &mut body);
    g.reply(probe.id, Reply::Ok(reply));
    let answer = g.one_answer(ticket);
    let route = match answer.result {
        Ok(route) => route,
        Err(e) => fail(g.step, g.name, format_args!("no route: {}", e)),
    };
    ensure!(
        g,
        route.source == Source::Service && route.proxy_url == Some(url(PROXY_S2)),
        "got {} {}, not the service's {}",
        route.source,
        DisplayUrl(&route.proxy_url),
        PROXY_S2
    );
    ensure!(
        g,
        g.breakers()[probe.endpoint] == Some(BreakerState::Closed),
        "the probed endpoint's breaker is {:?}, not closed",
        g.breakers()[probe.endpoint]
    );
    g.pass(format_args!(
        "{} s later the breakers let a probe through; endpoint {} answered it: coinbase/websocket delegated to {}, breaker closed",
        (open_for + Duration::from_secs(1)).as_secs(),
        probe.endpoint,
        DisplayUrl(&route.proxy_url)
    ));

    // ---------------------------------------------------------------- 7. feedback
    g.begin("feedback");
    let reported = g.r.feedback_stats().reported;
    let connected = [(&binance_ws, PROXY_S1), (&coinbase_ws, PROXY_S2)];
    for (i, (request, proxy)) in connected.into_iter().enumerate() {
        let feedback = ProxyFeedback {
            proxy_id: None,
            proxy_url: Some(url(proxy)),
            exchange_id: request.exchange_id.clone(),
            connection_type: request.connection_type,
            event: FeedbackEvent::Success,
            success: true,
            latency_ms: Some(40 + i as u32),
            error_category: None,
            error_details: None,
            timestamp: match Timestamp::from_unix_millis(1_767_225_600_000) {
                Some(t) => t,
                None => fail(g.step, g.name, format_args!("timestamp out of range")),
            },
            client_id: client_id.clone(),
        };
        g.r.report(g.now, feedback);
        g.pump();
    }
    ensure!(
        g,
        g.take(false).is_empty(),
        "feedback went out at once instead of being batched"
    );
    let queued = g.r.feedback_stats().queued;
    ensure!(g, queued == 2, "{} events queued, not 2", queued);
    // The batch leaves once the oldest event has waited `max_age`.
    g.advance(Duration::from_secs(2));
    let batches = g.take(false);
    ensure!(
        g,
        batches.len() == 1,
        "expected 1 feedback batch, got {}",
        batches.len()
    );
    let batch = batches[0];
    ensure!(
        g,
        matches!(batch.kind, TransmitKind::Feedback(_)),
        "not a feedback transmit"
    );
    ensure!(
        g,
        batch.objects == 2 && batch.names[0] && batch.names[1],
        "the batch holds {} events, not binance's and coinbase's",
        batch.objects
    );
    ensure!(
        g,
        !batch.leaks_secret,
        "the feedback batch carries the proxy password"
    );
    g.reply(batch.id, Reply::Ok(b""));
    let stats = g.r.feedback_stats();
    ensure!(
        g,
        stats.sent == 2 && stats.queued == 0 && stats.reported == reported + 2,
        "feedback stats {:?}",
        stats
    );
    g.pass(format_args!(
        "2 reports queued, sent as 1 batch ({} B, no credentials) to endpoint {}, acknowledged",
        batch.len, batch.endpoint
    ));

    // ---------------------------------------------------------------- the end
    let stats = g.r.stats();
    hprintln!(
        "resolved by source [service, cache, stale, embedded, direct] {:?}; fallbacks [no_endpoint, deadline, service_failed, overloaded] {:?}; {} health checks, {} events",
        stats.resolved,
        stats.fallbacks,
        g.health_checks,
        g.events
    );
}

/// A client id for the delegation bridge's default (the block names its own).
fn exchange_client(s: &str) -> ClientId {
    match ClientId::new(s) {
        Ok(c) => c,
        Err(e) => fail(0, "setup", format_args!("client id: {}", e)),
    }
}

/// Prints an optional proxy URL (redacted, as `ProxyUrl`'s `Display` is).
struct DisplayUrl<'a>(&'a Option<ProxyUrl>);

impl core::fmt::Display for DisplayUrl<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(u) => write!(f, "{u}"),
            None => f.write_str("direct"),
        }
    }
}
