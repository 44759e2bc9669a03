//! A deterministic simulator for the Resolver, in the spirit of quinn's
//! virtual-clock test pair: a virtual clock that jumps to the earliest thing
//! due, several clients, several simulated proxy-service endpoints with latency
//! distributions and fault schedules (down, black hole, slow, 5xx, malformed
//! body, auth failure, flapping), all derived from one seed.
//!
//! Every seed checks, at every step:
//! - every resolve is answered within its deadline, and every one is answered;
//! - no breaker admits more half-open probes than permitted;
//! - nothing expired is ever served as fresh (`Cache`);
//! - stale is served only when the service failed, and only within grace;
//! - `fail`, embedded and direct routes agree with the last policy served;
//! - feedback is conserved: sent + queued + dropped + drained == reported;
//! - after an outage, the client is back on the service within one open
//!   duration, one health check and one probe.
//!
//! A failing seed prints itself; replay it with
//! `SIM_SEED=<seed> cargo test -p proxy-delegate-core --test simulator replay -- --ignored`.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use embassy_time::{Duration, Instant};
use proxy_delegate_core::breaker::{BreakerConfig, BreakerState};
use proxy_delegate_core::embedded::{EmbeddedRoute, EmbeddedRoutes};
use proxy_delegate_core::endpoints::{EndpointConfig, EndpointsConfig};
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ExchangeId, FallbackPolicy, FeedbackEvent, ProxyFeedback,
    ProxyRequest, ProxyUrl, Timestamp,
};
use proxy_delegate_core::resolver::{
    Answer, CorrelationId, MIN_TRANSMIT_BUFFER, Output, Reply, Resolution, Resolver,
    ResolverConfig, Route, Source, TransmitKind,
};

const EXCHANGES: [&str; 4] = ["binance", "kraken", "coinbase", "bybit"];
const ENDPOINTS: usize = 3;
const CLIENTS: usize = 3;
/// Simulated time per seed.
const SIM_SECS: u64 = 150;

/// The service's policy per exchange (index into EXCHANGES).
fn policy_for(exchange: &str) -> FallbackPolicy {
    match exchange {
        "binance" => FallbackPolicy::DirectConnection,
        "kraken" => FallbackPolicy::Fail,
        _ => FallbackPolicy::EmbeddedFallback,
    }
}

/// The embedded configuration: a static table (coinbase websocket only).
#[derive(Debug)]
struct Table;

impl EmbeddedRoutes for Table {
    fn embedded_route(&mut self, ex: &ExchangeId, ct: ConnectionType) -> Option<EmbeddedRoute> {
        (ex.as_str() == "coinbase" && ct == ConnectionType::Websocket).then(|| EmbeddedRoute {
            proxy_url: "http://embedded-proxy:3128".parse().expect("valid"),
            timeout_seconds: 30,
        })
    }
}

type Client = Resolver<Table, 64, 4, 128>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Down,
    BlackHole,
    Slow,
    Http5xx,
    Malformed,
    Auth,
    Flapping,
}

#[derive(Debug, Clone)]
struct Window {
    from: u64,
    until: u64,
    fault: Fault,
}

#[derive(Debug)]
struct SimEndpoint {
    base_ms: u64,
    jitter_ms: u64,
    faults: Vec<Window>,
}

impl SimEndpoint {
    fn fault_at(&self, t_ms: u64) -> Option<Fault> {
        self.faults
            .iter()
            .find(|w| w.from <= t_ms && t_ms < w.until)
            .map(|w| w.fault)
            .and_then(|f| match f {
                // Flapping: down for 2 s, up for 2 s.
                Fault::Flapping if (t_ms / 2000).is_multiple_of(2) => Some(Fault::Down),
                Fault::Flapping => None,
                f => Some(f),
            })
    }
}

#[derive(Debug, Clone)]
enum OwnedReply {
    Ok(Vec<u8>),
    Status(u16, Option<Duration>),
    Failed,
}

#[derive(Debug)]
struct Delivery {
    client: usize,
    id: CorrelationId,
    reply: OwnedReply,
    /// The key a resolve transmit asked for.
    key: Option<(String, ConnectionType)>,
}

#[derive(Debug, Clone, Copy)]
struct Fill {
    at: Instant,
    ttl: Duration,
    policy: FallbackPolicy,
}

#[derive(Debug)]
struct ClientState {
    resolver: Box<Client>,
    /// ticket -> (deadline, key)
    pending: HashMap<u64, (Instant, (String, ConnectionType))>,
    fills: HashMap<(String, ConnectionType), Fill>,
    reported: u64,
    served: [u64; 5],
}

struct Sim {
    seed: u64,
    rng: fastrand::Rng,
    now: Instant,
    endpoints: Vec<SimEndpoint>,
    clients: Vec<ClientState>,
    net: BinaryHeap<Reverse<(u64, u64)>>,
    deliveries: HashMap<u64, Delivery>,
    seq: u64,
    next_work: Instant,
    /// When every endpoint's last fault ends (None: no all-down outage).
    outage_end: Option<u64>,
    first_service_after_outage: Option<Instant>,
    /// Whether any fault or slow reply ever happened (for the stale check).
    clean: bool,
    config: ResolverConfig,
    log: RefCell<Vec<String>>,
}

fn key_of(req: &ProxyRequest) -> (String, ConnectionType) {
    (req.exchange_id.as_str().to_owned(), req.connection_type)
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = fastrand::Rng::with_seed(seed);
        let scenario = seed % 4; // 0: clean, 1: random faults, 2: full outage, 3: mixed
        let mut endpoints = Vec::new();
        let mut outage_end = None;
        for _ in 0..ENDPOINTS {
            let base_ms = rng.u64(5..60);
            let jitter_ms = rng.u64(0..80);
            let mut faults = Vec::new();
            if scenario == 1 || scenario == 3 {
                let n = rng.usize(1..4);
                for _ in 0..n {
                    let from = rng.u64(0..SIM_SECS * 1000 / 2);
                    let until = from + rng.u64(1000..30_000);
                    let fault = match rng.u8(0..7) {
                        0 => Fault::Down,
                        1 => Fault::BlackHole,
                        2 => Fault::Slow,
                        3 => Fault::Http5xx,
                        4 => Fault::Malformed,
                        5 => Fault::Auth,
                        _ => Fault::Flapping,
                    };
                    faults.push(Window { from, until, fault });
                }
            }
            endpoints.push(SimEndpoint {
                base_ms,
                jitter_ms,
                faults,
            });
        }
        if scenario == 2 || scenario == 3 {
            // Every endpoint down (or black-holed) over the same window.
            let from = rng.u64(5_000..30_000);
            let until = from + rng.u64(5_000..40_000);
            let fault = if rng.bool() {
                Fault::Down
            } else {
                Fault::BlackHole
            };
            for e in &mut endpoints {
                e.faults.push(Window { from, until, fault });
            }
            let last_fault_end = endpoints
                .iter()
                .flat_map(|e| e.faults.iter().map(|w| w.until))
                .max()
                .unwrap_or(until);
            outage_end = Some(last_fault_end);
        }
        let clean = scenario == 0 && endpoints.iter().all(|e| e.base_ms + e.jitter_ms < 400);

        let mut config = ResolverConfig::new(ClientId::new("sim").expect("valid"));
        config.endpoints = EndpointsConfig {
            breaker: BreakerConfig {
                open_duration: Duration::from_secs(5),
                max_open_duration: Duration::from_secs(20),
                ..BreakerConfig::default()
            },
            ..EndpointsConfig::default()
        };
        config.cache.stale_grace = Duration::from_secs(20);
        let list: Vec<EndpointConfig> = (0..ENDPOINTS)
            .map(|i| {
                EndpointConfig::new(
                    format!("http://127.0.0.1:{}", 18_000 + i)
                        .parse()
                        .expect("valid"),
                    (i / 2) as u8,
                )
            })
            .collect();
        let clients = (0..CLIENTS)
            .map(|c| {
                let mut cfg = config.clone();
                cfg.seed = seed.wrapping_mul(31).wrapping_add(c as u64);
                cfg.endpoints.seed = cfg.seed;
                cfg.endpoints.breaker.seed = cfg.seed;
                ClientState {
                    resolver: Client::new_boxed(Instant::from_millis(0), cfg, &list, Table)
                        .expect("valid config"),
                    pending: HashMap::new(),
                    fills: HashMap::new(),
                    reported: 0,
                    served: [0; 5],
                }
            })
            .collect();
        Sim {
            seed,
            rng,
            now: Instant::from_millis(0),
            endpoints,
            clients,
            net: BinaryHeap::new(),
            deliveries: HashMap::new(),
            seq: 0,
            next_work: Instant::from_millis(10),
            outage_end,
            first_service_after_outage: None,
            clean,
            config,
            log: RefCell::new(Vec::new()),
        }
    }

    fn fail(&self, msg: String) -> ! {
        let log = self.log.borrow();
        let tail: Vec<&String> = log.iter().rev().take(15).collect();
        panic!(
            "seed {} failed at t={} ms: {msg}\nreplay: SIM_SEED={} cargo test -p proxy-delegate-core --test simulator replay -- --ignored\nrecent: {tail:#?}",
            self.seed,
            self.now.as_millis(),
            self.seed
        );
    }

    fn push(&mut self, at: Instant, d: Delivery) {
        self.seq += 1;
        self.net.push(Reverse((at.as_ticks(), self.seq)));
        self.deliveries.insert(self.seq, d);
    }

    /// What endpoint `e` does with a transmit sent now.
    fn serve(
        &mut self,
        client: usize,
        e: usize,
        kind: TransmitKind,
        body: &[u8],
        id: CorrelationId,
        deadline: Instant,
    ) {
        let t = self.now.as_millis();
        let key = (kind == TransmitKind::Resolve).then(|| {
            let req: ProxyRequest =
                serde_json::from_slice(body).expect("client sends a valid request");
            key_of(&req)
        });
        let ep = &self.endpoints[e];
        let mut latency = ep.base_ms + self.rng.u64(0..=ep.jitter_ms);
        let fault = ep.fault_at(t);
        let reply = match fault {
            Some(Fault::Down) => {
                latency = 1;
                OwnedReply::Failed
            }
            Some(Fault::BlackHole) => {
                // The adapter gives up at the transmit's deadline.
                let d = Delivery {
                    client,
                    id,
                    reply: OwnedReply::Failed,
                    key,
                };
                self.push(deadline, d);
                return;
            }
            Some(Fault::Http5xx) => OwnedReply::Status(503, Some(Duration::from_secs(1))),
            Some(Fault::Auth) => OwnedReply::Status(401, None),
            Some(Fault::Malformed) if kind == TransmitKind::Resolve => {
                OwnedReply::Ok(b"{\"proxy_url\": 42".to_vec())
            }
            Some(Fault::Slow) => {
                latency += self.rng.u64(600..3000);
                self.answer(kind, body)
            }
            _ => self.answer(kind, body),
        };
        let at = self.now + Duration::from_millis(latency);
        self.push(
            at,
            Delivery {
                client,
                id,
                reply,
                key,
            },
        );
    }

    fn answer(&mut self, kind: TransmitKind, body: &[u8]) -> OwnedReply {
        match kind {
            TransmitKind::Resolve => {
                let req: serde_json::Value =
                    serde_json::from_slice(body).expect("client sends JSON");
                let exchange = req["exchange_id"].as_str().expect("exchange").to_owned();
                let policy = policy_for(&exchange);
                let ttl = self.rng.u64(2..30);
                let proxy = self.rng.u8(0..5);
                let url = if self.rng.u8(0..10) == 0 {
                    serde_json::Value::Null
                } else {
                    serde_json::Value::String(format!("socks5://user:pw@proxy-{proxy}:1080"))
                };
                let resp = serde_json::json!({
                    "proxy_url": url,
                    "strategy": "round_robin",
                    "ttl_seconds": ttl,
                    "fallback_policy": policy.as_str(),
                    "metadata": {"proxy_id": format!("proxy-{proxy}"), "health_score": 0.9},
                    "future_field": {"ignored": [1, 2]}
                });
                OwnedReply::Ok(serde_json::to_vec(&resp).expect("encodes"))
            }
            TransmitKind::Feedback(_) => {
                let v: serde_json::Value = serde_json::from_slice(body).expect("feedback is JSON");
                assert!(v.is_array(), "feedback batch is a JSON array");
                let text = String::from_utf8_lossy(body);
                assert!(
                    !text.contains(":pw@"),
                    "feedback must not carry credentials"
                );
                OwnedReply::Ok(b"{}".to_vec())
            }
            TransmitKind::HealthCheck => OwnedReply::Ok(b"{\"status\":\"ok\"}".to_vec()),
        }
    }

    /// Drains a client's outputs and checks every answer.
    fn drive(&mut self, c: usize) {
        let mut buf = vec![0u8; MIN_TRANSMIT_BUFFER];
        loop {
            let t = match self.clients[c].resolver.poll_output(self.now, &mut buf) {
                Output::Transmit(t) => t,
                Output::Answer(answer) => {
                    self.check_answer(c, answer);
                    continue;
                }
                Output::Event(_) => continue,
                Output::Timeout(_) => break,
            };
            let body = buf[..t.len].to_vec();
            self.log.borrow_mut().push(format!(
                "t={} client {c} -> endpoint {} {:?} {}",
                self.now.as_millis(),
                t.endpoint,
                t.kind,
                t.id
            ));
            self.serve(c, t.endpoint, t.kind, &body, t.id, t.deadline);
        }
        self.check_machines(c);
    }

    /// Checks one answer against its resolve.
    fn check_answer(&mut self, c: usize, answer: Answer) {
        {
            let Some((deadline, key)) = self.clients[c].pending.remove(&answer.ticket.get()) else {
                self.fail(format!("answer for unknown ticket {:?}", answer.ticket));
            };
            if self.now > deadline {
                self.fail(format!(
                    "ticket {:?} answered at {} ms, after its deadline {} ms",
                    answer.ticket,
                    self.now.as_millis(),
                    deadline.as_millis()
                ));
            }
            self.check_route(c, &key, answer.result.as_ref().ok(), answer.result.is_err());
        }
    }

    fn check_machines(&self, c: usize) {
        let r = &self.clients[c].resolver;
        let stats = r.feedback_stats();
        if !stats.is_conserved() || stats.reported != self.clients[c].reported {
            self.fail(format!(
                "feedback not conserved: {stats:?}, reported by sim {}",
                self.clients[c].reported
            ));
        }
        for i in 0..ENDPOINTS {
            let b = r.endpoints().breaker(i).expect("endpoint exists");
            let allowed = usize::from(b.config().half_open_probes);
            if b.state() == BreakerState::HalfOpen && b.probes_in_flight() > allowed {
                self.fail(format!(
                    "endpoint {i}: {} half-open probes in flight, {allowed} allowed",
                    b.probes_in_flight()
                ));
            }
        }
    }

    fn check_route(
        &mut self,
        c: usize,
        key: &(String, ConnectionType),
        route: Option<&Route>,
        failed: bool,
    ) {
        let now = self.now;
        let fill = self.clients[c].fills.get(key).copied();
        let policy = fill.map_or(FallbackPolicy::EmbeddedFallback, |f| f.policy);
        if failed {
            if policy != FallbackPolicy::Fail {
                self.fail(format!(
                    "{key:?}: resolve failed but the last policy was {policy}"
                ));
            }
            return;
        }
        let Some(route) = route else { return };
        self.clients[c].served[route.source as usize] += 1;
        if route.source == Source::Service
            && self.outage_end.is_some_and(|end| now.as_millis() >= end)
            && self.first_service_after_outage.is_none()
        {
            self.first_service_after_outage = Some(now);
        }
        match route.source {
            Source::Cache => {
                let Some(f) = fill else {
                    self.fail(format!("{key:?}: cache hit without any fill"));
                };
                if now >= f.at + f.ttl {
                    self.fail(format!(
                        "{key:?}: expired entry (filled {} ms, ttl {} ms) served as fresh",
                        f.at.as_millis(),
                        f.ttl.as_millis()
                    ));
                }
            }
            Source::Stale => {
                let Some(f) = fill else {
                    self.fail(format!("{key:?}: stale hit without any fill"));
                };
                let expired = f.at + f.ttl;
                if now < expired || now >= expired + self.config.cache.stale_grace {
                    self.fail(format!(
                        "{key:?}: stale served at {} ms outside [{}, {}) ms",
                        now.as_millis(),
                        expired.as_millis(),
                        (expired + self.config.cache.stale_grace).as_millis()
                    ));
                }
                if self.clean {
                    self.fail(format!(
                        "{key:?}: stale served although the service never failed"
                    ));
                }
            }
            Source::Embedded => {
                if policy != FallbackPolicy::EmbeddedFallback
                    || !(key.0 == "coinbase" && key.1 == ConnectionType::Websocket)
                {
                    self.fail(format!("{key:?}: embedded route under policy {policy}"));
                }
            }
            Source::Direct => {
                if route.proxy_url.is_some() {
                    self.fail(format!("{key:?}: direct route with a proxy"));
                }
                if policy == FallbackPolicy::Fail {
                    self.fail(format!("{key:?}: direct route under policy fail"));
                }
            }
            Source::Service => {}
        }
        if self.clean && !matches!(route.source, Source::Service | Source::Cache) {
            self.fail(format!(
                "{key:?}: {} route although the service never failed",
                route.source
            ));
        }
    }

    fn work(&mut self) {
        let c = self.rng.usize(0..CLIENTS);
        let exchange = EXCHANGES[self.rng.usize(0..EXCHANGES.len())];
        let ct = if self.rng.bool() {
            ConnectionType::Http
        } else {
            ConnectionType::Websocket
        };
        let request = ProxyRequest::new(
            ExchangeId::new(exchange).expect("valid"),
            ct,
            ClientId::new(&format!("sim-{c}")).expect("valid"),
        );
        let key = key_of(&request);
        let now = self.now;
        let outcome = match self.clients[c].resolver.resolve(now, &request) {
            Resolution::Ready(route) => Ok(Some(route.to_owned())),
            Resolution::Pending(ticket) => Err(ticket),
            Resolution::Failed(_) => Ok(None),
        };
        match outcome {
            Ok(route) => {
                let failed = route.is_none();
                self.check_route(c, &key, route.as_ref(), failed);
                // Report how the connection went.
                if let Some(route) = route {
                    self.report(c, &request, route.proxy_url.as_ref());
                }
            }
            Err(ticket) => {
                let deadline = now + self.config.resolve_deadline;
                self.clients[c]
                    .pending
                    .insert(ticket.get(), (deadline, key));
            }
        }
        self.drive(c);
        self.next_work = now + Duration::from_millis(self.rng.u64(5..400));
    }

    fn report(&mut self, c: usize, request: &ProxyRequest, proxy: Option<&ProxyUrl>) {
        let success = self.rng.u8(0..10) > 1;
        let feedback = ProxyFeedback {
            proxy_id: None,
            proxy_url: proxy.map(ProxyUrl::without_credentials),
            exchange_id: request.exchange_id.clone(),
            connection_type: request.connection_type,
            event: if success {
                FeedbackEvent::Success
            } else {
                FeedbackEvent::Failure
            },
            success,
            latency_ms: Some(self.rng.u32(1..500)),
            error_category: None,
            error_details: None,
            timestamp: Timestamp::from_unix_millis(1_700_000_000_000 + self.now.as_millis() as i64)
                .expect("in range"),
            client_id: request.client_id.clone(),
        };
        self.clients[c].resolver.report(self.now, feedback);
        self.clients[c].reported += 1;
    }

    fn deliver(&mut self, seq: u64) {
        let Some(d) = self.deliveries.remove(&seq) else {
            return;
        };
        let c = d.client;
        let reply = match &d.reply {
            OwnedReply::Ok(b) => Reply::Ok(b),
            OwnedReply::Status(code, ra) => Reply::Status {
                code: *code,
                retry_after: *ra,
            },
            OwnedReply::Failed => Reply::Failed,
        };
        let accepted = self.clients[c]
            .resolver
            .handle_reply(self.now, d.id, reply)
            .is_ok();
        // A valid answer that the resolver took filled its cache: remember when.
        if let (true, Some(key), OwnedReply::Ok(body)) = (accepted, &d.key, &d.reply)
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
            && let (Some(ttl), Some(policy)) =
                (v["ttl_seconds"].as_u64(), v["fallback_policy"].as_str())
        {
            let fill = Fill {
                at: self.now,
                ttl: Duration::from_secs(ttl),
                policy: FallbackPolicy::parse(policy).expect("sim sends valid policies"),
            };
            self.clients[c].fills.insert(key.clone(), fill);
        }
        self.drive(c);
    }

    fn run(&mut self) {
        let end = Instant::from_secs(SIM_SECS);
        let mut spins = 0u32;
        loop {
            let net_next = self
                .net
                .peek()
                .map(|Reverse((t, _))| Instant::from_ticks(*t));
            let timer_next = self
                .clients
                .iter()
                .filter_map(|c| c.resolver.poll_timeout())
                .min();
            let work_next = (self.next_work < end).then_some(self.next_work);
            let Some(next) = [net_next, timer_next, work_next]
                .into_iter()
                .flatten()
                .min()
            else {
                break;
            };
            if next > end + Duration::from_secs(30) {
                break;
            }
            if next < self.now {
                self.fail(format!("time went backwards to {} ms", next.as_millis()));
            }
            // A machine whose timer stays due after handle_timeout would spin here.
            if next == self.now {
                spins += 1;
                if spins > 10_000 {
                    self.fail("livelock: the clock stopped advancing".to_owned());
                }
            } else {
                spins = 0;
            }
            self.now = next;
            if net_next == Some(next) {
                let Reverse((_, seq)) = self.net.pop().expect("peeked");
                self.deliver(seq);
            } else if timer_next == Some(next) {
                for c in 0..CLIENTS {
                    if self.clients[c]
                        .resolver
                        .poll_timeout()
                        .is_some_and(|t| t <= next)
                    {
                        self.clients[c].resolver.handle_timeout(next);
                        self.drive(c);
                    }
                }
            } else {
                self.work();
            }
        }
        self.finish();
    }

    fn finish(&mut self) {
        for c in 0..CLIENTS {
            if !self.clients[c].pending.is_empty() {
                self.fail(format!(
                    "client {c}: {} resolves never answered",
                    self.clients[c].pending.len()
                ));
            }
            let before = self.clients[c].resolver.feedback_stats();
            let drained = self.clients[c].resolver.drain_feedback().count() as u64;
            let after = self.clients[c].resolver.feedback_stats();
            if drained != before.queued as u64
                || after.sent + after.rejected + after.dropped + after.drained
                    != self.clients[c].reported
            {
                self.fail(format!(
                    "client {c}: feedback lost at shutdown: {before:?} -> {after:?}"
                ));
            }
        }
        if let Some(end) = self.outage_end {
            // Back on the service within one (capped) open duration, one
            // down-endpoint health check and one probe (the request timeout).
            let cfg = &self.config.endpoints;
            let bound = Duration::from_millis(end)
                + cfg.breaker.max_open_duration
                + cfg.down_check_interval * 2
                + self.config.request_timeout
                + Duration::from_secs(1);
            match self.first_service_after_outage {
                Some(t) if t <= Instant::from_ticks(0) + bound => {}
                Some(t) => self.fail(format!(
                    "service recovered at {end} ms but clients used it again only at {} ms",
                    t.as_millis()
                )),
                None if end + bound.as_millis() < SIM_SECS * 1000 => self.fail(format!(
                    "service recovered at {end} ms but was never used again"
                )),
                None => {}
            }
        }
    }
}

fn run_seed(seed: u64) {
    // The resolvers are built on the heap (`new_boxed`): no large stack needed.
    Sim::new(seed).run();
}

#[test]
fn thousand_seeds() {
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    for seed in 0..seeds {
        run_seed(seed);
    }
}

/// Replays one seed: `SIM_SEED=<seed> cargo test -p proxy-delegate-core --test
/// simulator replay -- --ignored`. Ignored in the suite, where it would have
/// nothing to run.
#[test]
#[ignore = "replays the seed in SIM_SEED"]
fn replay() {
    let seed = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("set SIM_SEED to the seed to replay");
    run_seed(seed);
}
