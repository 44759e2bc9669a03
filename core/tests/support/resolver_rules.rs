//! Targeted tests of the Resolver: one test per rule, each driving a
//! `Resolver<Table, 16, 4, 64>` with a virtual clock, a small embedded table
//! and hand-written service replies. (The simulator checks the global
//! invariants over many seeds; these pin each rule on its own.) The rules
//! hold whatever the form the Resolver keeps its messages in: the test
//! crates that include this module choose it (`super::Keeping`).

use std::collections::HashSet;

use embassy_time::{Duration, Instant};
use proxy_delegate_core::breaker::{BreakerState, TransitionReason};
use proxy_delegate_core::embedded::{EmbeddedRoute, EmbeddedRoutes};
use proxy_delegate_core::endpoints::{EndpointConfig, EndpointEvent, Health};
use proxy_delegate_core::keep::{Keep, Profile};
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ErrorCategory, ExchangeId, FallbackPolicy, FeedbackEvent,
    ProxyFeedback, ProxyId, ProxyRequest, ProxyUrl, Timestamp,
};
use proxy_delegate_core::resolver::{
    Answer, CorrelationId, Event, FallbackReason, InputError, MIN_TRANSMIT_BUFFER, Output, Reply,
    Resolution, ResolveError, Resolver, ResolverConfig, Route, Source, Ticket, TransmitKind,
};

/// The embedded configuration: coinbase (both connection types) has a proxy,
/// every other exchange connects directly.
#[derive(Debug)]
pub(crate) struct Table {
    lookups: usize,
}

pub(crate) const EMBEDDED_PROXY: &str = "http://embedded-proxy:3128";

impl EmbeddedRoutes for Table {
    fn embedded_route(&mut self, ex: &ExchangeId, _: ConnectionType) -> Option<EmbeddedRoute> {
        self.lookups += 1;
        (ex.as_str() == "coinbase").then(|| EmbeddedRoute {
            proxy_url: EMBEDDED_PROXY.parse().expect("valid"),
            timeout_seconds: 30,
        })
    }
}

pub(crate) type R = Resolver<
    Table,
    16,
    4,
    64,
    { proxy_delegate_core::resolver::MAX_FLIGHTS },
    { proxy_delegate_core::resolver::MAX_WAITERS },
    proxy_delegate_core::storage::Inline,
    super::Keeping,
>;

/// Runs a test body (the resolver is built on the heap by `new_boxed`, so
/// the test thread's own stack is enough).
pub(crate) fn run(body: impl FnOnce()) {
    body();
}

/// A transmit as the adapter would keep it.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub(crate) id: CorrelationId,
    pub(crate) endpoint: usize,
    pub(crate) kind: TransmitKind,
    pub(crate) body: Vec<u8>,
    pub(crate) deadline: Instant,
}

/// A resolve's outcome, owned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Res {
    Ready(Box<Route>),
    Pending(Ticket),
    Failed(ResolveError),
}

/// The test harness: a resolver, a virtual clock, and everything it output.
pub(crate) struct H {
    pub(crate) r: Box<R>,
    pub(crate) now: Instant,
    /// Answer health checks with 200 at once (off: they land in `sent`).
    pub(crate) auto_checks: bool,
    pub(crate) sent: Vec<Sent>,
    pub(crate) answers: Vec<(Instant, Answer)>,
    pub(crate) events: Vec<Event>,
}

pub(crate) const T0: Instant = Instant::from_secs(1000);

pub(crate) fn config() -> ResolverConfig {
    let mut c = ResolverConfig::new(ClientId::new("test-client").expect("valid"));
    // Health checks at fixed times: the first ones are due at once.
    c.endpoints.check_jitter_percent = 0;
    // The timings below are written for a 2 s request timeout.
    c.request_timeout = Duration::from_secs(2);
    c.seed = 7;
    c
}

pub(crate) fn endpoint_list(n: usize) -> Vec<EndpointConfig> {
    (0..n)
        .map(|i| {
            EndpointConfig::new(
                format!("http://127.0.0.1:{}", 18_100 + i)
                    .parse()
                    .expect("valid"),
                0,
            )
        })
        .collect()
}

impl H {
    pub(crate) fn new(config: ResolverConfig, endpoints: usize) -> H {
        H::build(config, endpoints, true)
    }

    /// Like `new`, with health checks left to the test (they land in `sent`).
    pub(crate) fn manual_checks(config: ResolverConfig, endpoints: usize) -> H {
        H::build(config, endpoints, false)
    }

    pub(crate) fn build(config: ResolverConfig, endpoints: usize, auto_checks: bool) -> H {
        let r = R::new_boxed(T0, config, &endpoint_list(endpoints), Table { lookups: 0 })
            .expect("valid config");
        let mut h = H {
            r,
            now: T0,
            auto_checks,
            sent: Vec::new(),
            answers: Vec::new(),
            events: Vec::new(),
        };
        h.pump();
        h
    }

    /// Drains every output after an input.
    pub(crate) fn pump(&mut self) {
        let mut buf = vec![0u8; MIN_TRANSMIT_BUFFER];
        for _ in 0..10_000 {
            let t = match self.r.poll_output(self.now, &mut buf) {
                Output::Transmit(t) => t,
                Output::Answer(a) => {
                    self.answers.push((self.now, a));
                    continue;
                }
                Output::Event(e) => {
                    self.events.push(e);
                    continue;
                }
                Output::Timeout(_) => return,
            };
            if t.kind == TransmitKind::HealthCheck {
                assert_eq!(t.len, 0, "a health check has no body");
                if self.auto_checks {
                    self.r
                        .handle_reply(self.now, t.id, Reply::Ok(b"{\"status\":\"ok\"}"))
                        .expect("a fresh check id is known");
                    continue;
                }
            }
            self.sent.push(Sent {
                id: t.id,
                endpoint: t.endpoint,
                kind: t.kind,
                body: buf[..t.len].to_vec(),
                deadline: t.deadline,
            });
        }
        panic!("poll_output never came to Timeout");
    }

    pub(crate) fn resolve(&mut self, request: &ProxyRequest) -> Res {
        let res = match self.r.resolve(self.now, request) {
            Resolution::Ready(route) => Res::Ready(Box::new(route.to_owned())),
            Resolution::Pending(t) => Res::Pending(t),
            Resolution::Failed(e) => Res::Failed(e),
        };
        self.pump();
        res
    }

    pub(crate) fn resolve_by(&mut self, request: &ProxyRequest, deadline: Instant) -> Res {
        let res = match self.r.resolve_by(self.now, request, deadline) {
            Resolution::Ready(route) => Res::Ready(Box::new(route.to_owned())),
            Resolution::Pending(t) => Res::Pending(t),
            Resolution::Failed(e) => Res::Failed(e),
        };
        self.pump();
        res
    }

    pub(crate) fn reply(&mut self, id: CorrelationId, reply: Reply<'_>) -> Result<(), InputError> {
        let r = self.r.handle_reply(self.now, id, reply);
        self.pump();
        r
    }

    pub(crate) fn report(&mut self, feedback: ProxyFeedback) {
        self.r.report(self.now, feedback);
        self.pump();
    }

    /// Moves the clock to `target`, firing every timer due on the way.
    pub(crate) fn advance_to(&mut self, target: Instant) {
        assert!(target >= self.now, "time goes forward");
        for _ in 0..10_000 {
            match self.r.poll_timeout() {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    self.r.handle_timeout(self.now);
                    self.pump();
                    if self.r.poll_timeout() == Some(t) && t == self.now {
                        // A timer still due at the same instant: move on.
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

    pub(crate) fn advance(&mut self, d: Duration) {
        self.advance_to(self.now + d);
    }

    pub(crate) fn take_sent(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.sent)
    }

    pub(crate) fn take_resolves(&mut self) -> Vec<Sent> {
        let all = self.take_sent();
        let (resolves, other): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|s| s.kind == TransmitKind::Resolve);
        self.sent = other;
        resolves
    }

    pub(crate) fn one_resolve(&mut self) -> Sent {
        let mut r = self.take_resolves();
        assert_eq!(r.len(), 1, "expected exactly one resolve transmit: {r:?}");
        r.remove(0)
    }

    pub(crate) fn take_answers(&mut self) -> Vec<(Instant, Answer)> {
        std::mem::take(&mut self.answers)
    }

    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Resolves `request` through the service with `body` as its answer.
    pub(crate) fn fill(&mut self, request: &ProxyRequest, body: &[u8]) -> Route {
        let Res::Pending(ticket) = self.resolve(request) else {
            panic!("expected a miss for {request:?}");
        };
        let t = self.one_resolve();
        self.reply(t.id, Reply::Ok(body)).expect("known id");
        let answers = self.take_answers();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].1.ticket, ticket);
        answers[0].1.result.clone().expect("a route")
    }
}

pub(crate) fn request(exchange: &str) -> ProxyRequest {
    ProxyRequest::new(
        ExchangeId::new(exchange).expect("valid"),
        ConnectionType::Websocket,
        ClientId::new("caller").expect("valid"),
    )
}

/// A service answer.
pub(crate) fn body(proxy: Option<&str>, proxy_id: &str, ttl: u32, policy: &str) -> Vec<u8> {
    let url = proxy.map_or_else(|| "null".to_owned(), |p| format!("\"{p}\""));
    format!(
        r#"{{"proxy_url":{url},"strategy":"round_robin","ttl_seconds":{ttl},"fallback_policy":"{policy}","metadata":{{"proxy_id":"{proxy_id}","health_score":0.9}}}}"#
    )
    .into_bytes()
}

pub(crate) fn url(s: &str) -> ProxyUrl {
    s.parse().expect("valid url")
}

pub(crate) fn feedback(
    exchange: &str,
    proxy_id: Option<&str>,
    proxy_url: Option<&str>,
    event: FeedbackEvent,
    category: Option<ErrorCategory>,
) -> ProxyFeedback {
    ProxyFeedback {
        proxy_id: proxy_id.map(|p| ProxyId::new(p).expect("valid")),
        proxy_url: proxy_url.map(url),
        exchange_id: ExchangeId::new(exchange).expect("valid"),
        connection_type: ConnectionType::Websocket,
        event,
        success: event == FeedbackEvent::Success,
        latency_ms: Some(42),
        error_category: category,
        error_details: None,
        timestamp: Timestamp::from_unix_millis(1_700_000_000_000).expect("in range"),
        client_id: ClientId::new("caller").expect("valid"),
    }
}

pub(crate) fn fallbacks(events: &[Event]) -> Vec<(FallbackReason, Option<Source>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Fallback { reason, source, .. } => Some((*reason, *source)),
            _ => None,
        })
        .collect()
}

pub(crate) fn resolved_sources(events: &[Event]) -> Vec<Source> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Resolved { source, .. } => Some(*source),
            _ => None,
        })
        .collect()
}

pub(crate) fn ready(res: Res) -> Route {
    match res {
        Res::Ready(r) => *r,
        other => panic!("expected Ready, got {other:?}"),
    }
}

pub(crate) fn force_all_open(h: &mut H, n: usize) {
    for i in 0..n {
        h.r.breaker_mut(i).expect("endpoint").force_open(h.now);
    }
    h.pump();
}

// ---------------------------------------------------------------- cache

#[test]
fn fresh_cache_hit_is_ready_at_once_and_sends_nothing() {
    run(|| {
        let mut h = H::new(config(), 1);
        let req = request("binance");
        let route = h.fill(
            &req,
            &body(
                Some("socks5://u:pw@proxy-a:1080"),
                "pa",
                300,
                "direct_connection",
            ),
        );
        assert_eq!(route.source, Source::Service);
        h.take_events();
        h.advance(Duration::from_secs(10));
        h.take_sent();
        let route = ready(h.resolve(&req));
        assert_eq!(route.source, Source::Cache);
        assert_eq!(route.proxy_url, Some(url("socks5://u:pw@proxy-a:1080")));
        assert_eq!(route.proxy_id, Some(ProxyId::new("pa").unwrap()));
        assert!(h.take_sent().is_empty(), "a fresh hit transmits nothing");
        assert_eq!(h.r.flights(), 0);
        // Counted by source (a hit may also be evented; it is the hot path).
        assert_eq!(h.r.stats().resolved[Source::Cache as usize], 1);
        assert!(
            resolved_sources(&h.take_events())
                .iter()
                .all(|s| *s == Source::Cache)
        );
    });
}

#[test]
fn a_miss_starts_one_request_and_concurrent_resolves_join_it() {
    run(|| {
        let mut h = H::new(config(), 2);
        let a = request("binance");
        let b = request("kraken");
        let Res::Pending(t1) = h.resolve(&a) else {
            panic!("miss")
        };
        let Res::Pending(t2) = h.resolve(&a) else {
            panic!("miss")
        };
        assert_ne!(t1, t2);
        let sent = h.one_resolve();
        assert_eq!(
            h.r.flights(),
            1,
            "the second resolve joined the first request"
        );
        let asked: ProxyRequest = serde_json::from_slice(&sent.body).expect("a request");
        assert_eq!(asked.exchange_id.as_str(), "binance");
        // A different key is a separate request.
        let Res::Pending(t3) = h.resolve(&b) else {
            panic!("miss")
        };
        let other = h.one_resolve();
        assert_ne!(other.id, sent.id);
        assert_eq!(h.r.flights(), 2);
        let asked: ProxyRequest = serde_json::from_slice(&other.body).expect("a request");
        assert_eq!(asked.exchange_id.as_str(), "kraken");

        h.now += Duration::from_millis(30);
        h.reply(
            sent.id,
            Reply::Ok(&body(Some("socks5://proxy-a:1080"), "pa", 60, "fail")),
        )
        .unwrap();
        let answers = h.take_answers();
        let tickets: HashSet<Ticket> = answers.iter().map(|(_, a)| a.ticket).collect();
        assert_eq!(tickets, HashSet::from([t1, t2]), "one reply answers both");
        for (_, a) in &answers {
            let route = a.result.as_ref().expect("a route");
            assert_eq!(route.source, Source::Service);
            assert_eq!(route.proxy_url, Some(url("socks5://proxy-a:1080")));
            assert_eq!(a.started, T0);
        }
        h.reply(other.id, Reply::Ok(&body(None, "none", 60, "fail")))
            .unwrap();
        let answers = h.take_answers();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].1.ticket, t3);
        assert_eq!(answers[0].1.result.as_ref().unwrap().proxy_url, None);
        assert_eq!(h.r.flights(), 0);
    });
}

// ---------------------------------------------------------------- deadlines

#[test]
fn the_answer_comes_with_the_reply_when_it_is_first() {
    run(|| {
        let mut h = H::new(config(), 1);
        let req = request("binance");
        let Res::Pending(ticket) = h.resolve(&req) else {
            panic!("miss")
        };
        let t = h.one_resolve();
        h.advance(Duration::from_millis(120));
        assert!(h.take_answers().is_empty(), "nothing before the reply");
        h.reply(
            t.id,
            Reply::Ok(&body(
                Some("socks5://proxy-a:1080"),
                "pa",
                60,
                "direct_connection",
            )),
        )
        .unwrap();
        let answers = h.take_answers();
        assert_eq!(answers.len(), 1);
        let (at, answer) = &answers[0];
        assert_eq!(*at, T0 + Duration::from_millis(120));
        assert_eq!(answer.ticket, ticket);
        assert_eq!(answer.result.as_ref().unwrap().source, Source::Service);
        // Nothing more at the old deadline.
        h.advance(Duration::from_secs(1));
        assert!(h.take_answers().is_empty());
    });
}

#[test]
fn the_fallback_comes_at_the_default_deadline_and_a_late_reply_fills_the_cache() {
    run(|| {
        let mut h = H::new(config(), 1);
        let req = request("binance");
        let Res::Pending(ticket) = h.resolve(&req) else {
            panic!("miss")
        };
        let t = h.one_resolve();
        assert!(h.r.poll_timeout().unwrap() <= T0 + Duration::from_millis(500));
        h.advance(Duration::from_millis(499));
        assert!(
            h.take_answers().is_empty(),
            "not before the 500 ms deadline"
        );
        h.take_events();
        h.advance(Duration::from_millis(1));
        let answers = h.take_answers();
        assert_eq!(answers.len(), 1, "answered at the deadline");
        assert_eq!(answers[0].0, T0 + Duration::from_millis(500));
        assert_eq!(answers[0].1.ticket, ticket);
        let route = answers[0].1.result.clone().unwrap();
        assert_eq!(
            route.source,
            Source::Direct,
            "binance has no embedded route"
        );
        assert_eq!(route.proxy_url, None);
        assert_eq!(
            fallbacks(&h.take_events()),
            [(FallbackReason::Deadline, Some(Source::Direct))]
        );
        // The request goes on; its late reply (within the request timeout)
        // still fills the cache.
        assert_eq!(h.r.flights(), 1);
        h.advance(Duration::from_millis(700));
        h.reply(
            t.id,
            Reply::Ok(&body(
                Some("socks5://late:1080"),
                "late",
                300,
                "direct_connection",
            )),
        )
        .unwrap();
        assert!(h.take_answers().is_empty(), "nobody waits any more");
        let route = ready(h.resolve(&req));
        assert_eq!(route.source, Source::Cache);
        assert_eq!(route.proxy_url, Some(url("socks5://late:1080")));
        assert!(h.take_resolves().is_empty());
    });
}

#[test]
fn resolve_by_honours_the_callers_deadline() {
    run(|| {
        let mut h = H::new(config(), 1);
        let req = request("coinbase");
        let deadline = T0 + Duration::from_millis(50);
        let Res::Pending(ticket) = h.resolve_by(&req, deadline) else {
            panic!("miss")
        };
        h.one_resolve();
        assert!(h.r.poll_timeout().unwrap() <= deadline);
        h.advance(Duration::from_millis(49));
        assert!(h.take_answers().is_empty());
        h.advance(Duration::from_millis(1));
        let answers = h.take_answers();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].0, deadline);
        assert_eq!(answers[0].1.ticket, ticket);
        // Nothing known about coinbase yet: the default policy (embedded).
        let route = answers[0].1.result.clone().unwrap();
        assert_eq!(route.source, Source::Embedded);
        assert_eq!(route.proxy_url, Some(url(EMBEDDED_PROXY)));
    });
}

// ---------------------------------------------------------------- fallback order

#[test]
fn fallback_order_is_stale_then_embedded_then_direct() {
    run(|| {
        let mut c = config();
        c.cache.stale_grace = Duration::from_secs(10);
        let mut h = H::new(c, 2);
        let coinbase = request("coinbase");
        let binance = request("binance");
        h.fill(
            &coinbase,
            &body(Some("socks5://svc-c:1080"), "pc", 5, "embedded_fallback"),
        );
        h.fill(
            &binance,
            &body(Some("socks5://svc-b:1080"), "pb", 5, "embedded_fallback"),
        );

        // Expired, within grace: the service cannot be asked -> stale.
        h.advance(Duration::from_secs(6));
        force_all_open(&mut h, 2);
        h.take_events();
        let route = ready(h.resolve(&coinbase));
        assert_eq!(route.source, Source::Stale);
        assert_eq!(route.proxy_url, Some(url("socks5://svc-c:1080")));
        assert_eq!(route.proxy_id, Some(ProxyId::new("pc").unwrap()));
        assert!(h.take_resolves().is_empty());

        // Stale is never served past its grace (expired at +5 s, grace 10 s).
        h.now = T0 + Duration::from_secs(15);
        let route = ready(h.resolve(&coinbase));
        assert_eq!(route.source, Source::Embedded, "past grace: embedded");
        assert_eq!(route.proxy_url, Some(url(EMBEDDED_PROXY)));
        assert_eq!(route.proxy_id, None);
        // No embedded route for binance: direct.
        let route = ready(h.resolve(&binance));
        assert_eq!(route.source, Source::Direct);
        assert_eq!(route.proxy_url, None);
        assert_eq!(
            fallbacks(&h.take_events()),
            [
                (FallbackReason::NoEndpoint, Some(Source::Stale)),
                (FallbackReason::NoEndpoint, Some(Source::Embedded)),
                (FallbackReason::NoEndpoint, Some(Source::Direct)),
            ]
        );
    });
}

#[test]
fn stale_is_served_on_deadline_within_grace_only() {
    run(|| {
        let mut c = config();
        c.cache.stale_grace = Duration::from_secs(10);
        let mut h = H::new(c, 1);
        let req = request("binance");
        h.fill(&req, &body(Some("socks5://svc-b:1080"), "pb", 5, "fail"));
        // Just before the end of grace (expired at +5 s): a miss that times out.
        h.advance_to(T0 + Duration::from_millis(14_000));
        let Res::Pending(_) = h.resolve(&req) else {
            panic!("an expired entry is a miss")
        };
        h.advance(Duration::from_millis(500));
        let answers = h.take_answers();
        assert_eq!(answers.len(), 1);
        let route = answers[0].1.result.clone().expect("stale route");
        assert_eq!(route.source, Source::Stale);
        assert_eq!(route.proxy_url, Some(url("socks5://svc-b:1080")));
        // Past grace: the policy (fail) applies; no stale route.
        h.advance_to(T0 + Duration::from_secs(16));
        let Res::Pending(_) = h.resolve(&req) else {
            panic!("miss")
        };
        h.advance(Duration::from_millis(500));
        let answers = h.take_answers();
        assert_eq!(answers.len(), 1);
        assert_eq!(
            answers[0].1.result,
            Err(ResolveError::ServiceUnavailable {
                reason: FallbackReason::Deadline
            })
        );
    });
}

#[test]
fn direct_connection_policy_skips_embedded() {
    run(|| {
        let mut c = config();
        c.cache.stale_grace = Duration::from_ticks(0);
        let mut h = H::new(c, 1);
        let req = request("coinbase");
        h.fill(
            &req,
            &body(Some("socks5://svc:1080"), "p", 1, "direct_connection"),
        );
        h.advance(Duration::from_secs(2));
        force_all_open(&mut h, 1);
        let lookups = h.r.embedded_mut().lookups;
        let route = ready(h.resolve(&req));
        assert_eq!(route.source, Source::Direct);
        assert_eq!(route.proxy_url, None);
        assert_eq!(
            h.r.embedded_mut().lookups,
            lookups,
            "embedded not even asked"
        );
    });
}

#[test]
fn embedded_fallback_without_fallback_to_embedded_connects_directly() {
    run(|| {
        let mut c = config();
        c.fallback_to_embedded = false;
        let mut h = H::new(c, 1);
        force_all_open(&mut h, 1);
        let route = ready(h.resolve(&request("coinbase")));
        assert_eq!(route.source, Source::Direct);
        assert_eq!(h.r.embedded_mut().lookups, 0);
        // With the switch on, the same key uses the embedded route.
        let mut h = H::new(config(), 1);
        force_all_open(&mut h, 1);
        let route = ready(h.resolve(&request("coinbase")));
        assert_eq!(route.source, Source::Embedded);
    });
}

#[test]
fn fail_policy_yields_resolve_error() {
    run(|| {
        let mut c = config();
        c.cache.stale_grace = Duration::from_ticks(0);
        let mut h = H::new(c.clone(), 1);
        let req = request("coinbase");
        h.fill(&req, &body(Some("socks5://svc:1080"), "p", 1, "fail"));
        h.advance(Duration::from_secs(2));
        force_all_open(&mut h, 1);
        h.take_events();
        let res = h.resolve(&req);
        assert_eq!(
            res,
            Res::Failed(ResolveError::ServiceUnavailable {
                reason: FallbackReason::NoEndpoint
            })
        );
        let Res::Failed(e) = res else { unreachable!() };
        assert!(e.to_string().contains("\"fail\""), "{e}");
        assert_eq!(
            fallbacks(&h.take_events()),
            [(FallbackReason::NoEndpoint, None)]
        );
        assert_eq!(h.r.stats().failed, 1);
        // The default policy can be fail too.
        c.default_fallback_policy = FallbackPolicy::Fail;
        let mut h = H::new(c, 1);
        force_all_open(&mut h, 1);
        assert!(matches!(h.resolve(&request("coinbase")), Res::Failed(_)));
    });
}

// ---------------------------------------------------------------- breaker

#[test]
fn forced_open_breakers_give_the_fallback_at_once() {
    run(|| {
        let mut h = H::new(config(), 3);
        h.take_events();
        force_all_open(&mut h, 3);
        let forced: Vec<usize> = h
            .take_events()
            .iter()
            .filter_map(|e| match e {
                Event::Endpoint(EndpointEvent::Breaker { index, event })
                    if event.to == BreakerState::ForcedOpen =>
                {
                    Some(*index)
                }
                _ => None,
            })
            .collect();
        assert_eq!(forced, [0, 1, 2]);
        let route = ready(h.resolve(&request("coinbase")));
        assert_eq!(route.source, Source::Embedded);
        assert!(h.take_resolves().is_empty(), "no transmit");
        assert_eq!(h.r.flights(), 0);
        assert!(h.take_answers().is_empty(), "nothing pending");
        let events = h.take_events();
        assert_eq!(
            fallbacks(&events),
            [(FallbackReason::NoEndpoint, Some(Source::Embedded))]
        );
        let latency = events.iter().find_map(|e| match e {
            Event::Resolved { latency, .. } => Some(*latency),
            _ => None,
        });
        assert_eq!(latency, Some(Duration::from_ticks(0)), "no waiting");
    });
}

#[test]
fn five_failed_replies_open_the_breaker_and_then_fallback_is_immediate() {
    run(|| {
        let mut c = config();
        // No retries: one failed reply is one failed attempt.
        c.retry_budget.min_retries_per_sec = 0;
        let mut h = H::new(c, 1);
        let req = request("binance");
        for i in 0..5 {
            assert_eq!(
                h.r.endpoints().breaker_state(0),
                Some(BreakerState::Closed),
                "{i}"
            );
            let Res::Pending(_) = h.resolve(&req) else {
                panic!("miss {i}")
            };
            let t = h.one_resolve();
            h.reply(t.id, Reply::Failed).unwrap();
            let answers = h.take_answers();
            assert_eq!(answers.len(), 1, "failed at once, not at the deadline");
            assert_eq!(answers[0].1.result.as_ref().unwrap().source, Source::Direct);
            h.advance(Duration::from_millis(10));
        }
        assert_eq!(h.r.endpoints().breaker_state(0), Some(BreakerState::Open));
        let events = h.take_events();
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Endpoint(EndpointEvent::Breaker { index: 0, event })
                if event.to == BreakerState::Open
                    && event.reason == TransitionReason::ConsecutiveFailures
        )));
        assert_eq!(
            h.r.stats().fallbacks[FallbackReason::ServiceFailed as usize],
            5
        );
        let route = ready(h.resolve(&req));
        assert_eq!(route.source, Source::Direct);
        assert!(h.take_resolves().is_empty());
        assert_eq!(
            h.r.stats().fallbacks[FallbackReason::NoEndpoint as usize],
            1
        );
    });
}

// ---------------------------------------------------------------- hedging and retries

#[test]
fn a_slow_endpoint_is_hedged_on_another_and_the_first_answer_wins() {
    run(|| {
        let mut h = H::new(config(), 2);
        let req = request("binance");
        let Res::Pending(ticket) = h.resolve(&req) else {
            panic!("miss")
        };
        let first = h.one_resolve();
        h.take_events();
        let hedge_delay = h.r.config().hedge_delay;
        h.advance(hedge_delay - Duration::from_millis(1));
        assert!(h.take_resolves().is_empty(), "no hedge before hedge_delay");
        h.advance(Duration::from_millis(1));
        let hedge = h.one_resolve();
        assert_ne!(hedge.endpoint, first.endpoint, "the hedge goes elsewhere");
        assert_ne!(hedge.id, first.id);
        assert_eq!(hedge.body, first.body, "the same request");
        assert!(h.take_events().iter().any(|e| *e
            == Event::Hedged {
                first: first.id,
                id: hedge.id,
                endpoint: hedge.endpoint
            }));
        assert_eq!(h.r.stats().hedges, 1);
        // The hedge answers first and wins.
        h.advance(Duration::from_millis(20));
        h.reply(
            hedge.id,
            Reply::Ok(&body(Some("socks5://fast:1080"), "fast", 60, "fail")),
        )
        .unwrap();
        let answers = h.take_answers();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].1.ticket, ticket);
        assert_eq!(
            answers[0].1.result.as_ref().unwrap().proxy_url,
            Some(url("socks5://fast:1080"))
        );
        // The slow one's late answer is not used.
        assert_eq!(
            h.reply(
                first.id,
                Reply::Ok(&body(Some("socks5://slow:1080"), "slow", 60, "fail"))
            ),
            Err(InputError::UnknownCorrelation { id: first.id })
        );
        let route = ready(h.resolve(&req));
        assert_eq!(route.proxy_url, Some(url("socks5://fast:1080")));
        assert!(h.take_answers().is_empty());
    });
}

#[test]
fn a_zero_hedge_delay_turns_hedging_off() {
    run(|| {
        let mut cfg = config();
        cfg.hedge_delay = Duration::from_ticks(0);
        let mut h = H::new(cfg, 2);
        let Res::Pending(_) = h.resolve(&request("binance")) else {
            panic!("miss")
        };
        let _first = h.one_resolve();
        h.advance(Duration::from_millis(400));
        assert!(h.take_resolves().is_empty(), "no hedge");
        assert_eq!(h.r.stats().hedges, 0);
    });
}

#[test]
fn hedges_stop_when_the_retry_budget_is_empty() {
    run(|| {
        // The default budget: no successes yet, a floor of one retry per second.
        let mut h = H::new(config(), 2);
        for ex in ["binance", "kraken", "bybit"] {
            let Res::Pending(_) = h.resolve(&request(ex)) else {
                panic!("miss")
            };
        }
        assert_eq!(h.take_resolves().len(), 3);
        h.advance(h.r.config().hedge_delay);
        assert_eq!(
            h.take_resolves().len(),
            1,
            "one hedge: the budget allows one"
        );
        assert_eq!(h.r.stats().hedges, 1);
        // No budget at all: no hedge.
        let mut c = config();
        c.retry_budget.min_retries_per_sec = 0;
        let mut h = H::new(c, 2);
        let Res::Pending(_) = h.resolve(&request("binance")) else {
            panic!("miss")
        };
        h.one_resolve();
        h.advance(Duration::from_millis(400));
        assert!(h.take_resolves().is_empty());
        assert_eq!(h.r.stats().hedges, 0);
    });
}

#[test]
fn a_failed_attempt_is_retried_on_another_endpoint_within_the_budget() {
    run(|| {
        let mut h = H::new(config(), 2);
        let req = request("binance");
        let Res::Pending(ticket) = h.resolve(&req) else {
            panic!("miss")
        };
        let first = h.one_resolve();
        h.advance(Duration::from_millis(10));
        h.reply(
            first.id,
            Reply::Status {
                code: 503,
                retry_after: None,
            },
        )
        .unwrap();
        let retry = h.one_resolve();
        assert_ne!(retry.endpoint, first.endpoint);
        assert_ne!(retry.id, first.id);
        assert_eq!(retry.body, first.body);
        assert_eq!(h.r.stats().retries, 1);
        assert!(h.take_answers().is_empty(), "the retry may still answer");
        h.reply(
            retry.id,
            Reply::Ok(&body(Some("socks5://ok:1080"), "ok", 60, "fail")),
        )
        .unwrap();
        let answers = h.take_answers();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].1.ticket, ticket);
        assert_eq!(
            answers[0].1.result.as_ref().unwrap().source,
            Source::Service
        );

        // Budget spent (the floor's one token went on the retry): the next
        // failure falls back at once.
        let other = request("kraken");
        let Res::Pending(_) = h.resolve(&other) else {
            panic!("miss")
        };
        let t = h.one_resolve();
        h.reply(t.id, Reply::Failed).unwrap();
        assert!(h.take_resolves().is_empty(), "no budget, no retry");
        let answers = h.take_answers();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].1.result.as_ref().unwrap().source, Source::Direct);
        assert_eq!(h.r.stats().retries, 1);
    });
}

// ---------------------------------------------------------------- refresh-ahead

#[test]
fn refresh_ahead_sends_one_background_request_and_its_reply_refreshes() {
    run(|| {
        let mut h = H::new(config(), 1);
        let req = request("binance");
        h.fill(&req, &body(Some("socks5://old:1080"), "old", 10, "fail"));
        // Before 80% of the TTL: a plain hit.
        h.advance(Duration::from_millis(7_900));
        assert_eq!(ready(h.resolve(&req)).source, Source::Cache);
        assert!(h.take_resolves().is_empty());
        h.take_events();
        // From 80% on: still a hit, plus exactly one background request.
        h.advance(Duration::from_millis(100));
        let route = ready(h.resolve(&req));
        assert_eq!(route.source, Source::Cache);
        assert_eq!(route.proxy_url, Some(url("socks5://old:1080")));
        let refresh = h.one_resolve();
        let asked: ProxyRequest = serde_json::from_slice(&refresh.body).unwrap();
        assert_eq!(asked.exchange_id.as_str(), "binance");
        assert_eq!(asked.client_id.as_str(), "test-client");
        assert!(h.take_events().iter().any(|e| matches!(
            e,
            Event::Refresh {
                succeeded: None,
                ..
            }
        )));
        assert!(h.take_answers().is_empty(), "nobody waits for a refresh");
        for _ in 0..3 {
            h.advance(Duration::from_millis(100));
            assert_eq!(ready(h.resolve(&req)).source, Source::Cache);
        }
        assert!(h.take_resolves().is_empty(), "one refresh only");
        h.reply(
            refresh.id,
            Reply::Ok(&body(Some("socks5://new:1080"), "new", 10, "fail")),
        )
        .unwrap();
        assert!(h.take_events().iter().any(|e| matches!(
            e,
            Event::Refresh {
                succeeded: Some(true),
                ..
            }
        )));
        // Past the old entry's TTL the refreshed one answers.
        h.advance_to(T0 + Duration::from_secs(12));
        let route = ready(h.resolve(&req));
        assert_eq!(route.source, Source::Cache);
        assert_eq!(route.proxy_url, Some(url("socks5://new:1080")));
        assert!(h.take_resolves().is_empty());
    });
}

// ---------------------------------------------------------------- correlation ids

#[test]
fn every_transmit_has_a_distinct_correlation_id_shown_as_16_hex_digits() {
    run(|| {
        let mut h = H::manual_checks(config(), 2);
        let mut ids = Vec::new();
        for ex in ["binance", "kraken", "coinbase", "bybit", "okx"] {
            let _ = h.resolve(&request(ex));
        }
        h.report(feedback(
            "binance",
            None,
            None,
            FeedbackEvent::Success,
            None,
        ));
        h.advance(Duration::from_secs(2));
        for s in h.take_sent() {
            ids.push(s.id);
        }
        let kinds = ids.len();
        assert!(
            kinds >= 8,
            "health checks, resolves, hedges and feedback: {kinds}"
        );
        let unique: HashSet<CorrelationId> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "ids repeat: {ids:?}");
        for id in ids {
            let text = id.to_string();
            assert_eq!(text.len(), 16, "{text}");
            assert!(
                text.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
            assert_eq!(u64::from_str_radix(&text, 16).unwrap(), id.get());
        }
    });
}

// ---------------------------------------------------------------- feedback

#[test]
fn reports_are_batched_into_a_feedback_transmit_without_credentials() {
    run(|| {
        let mut h = H::new(config(), 1);
        for i in 0..3 {
            let mut f = feedback(
                "binance",
                Some("pa"),
                Some("socks5://user:secret-pw@proxy-a:1080"),
                FeedbackEvent::Success,
                None,
            );
            f.latency_ms = Some(10 + i);
            h.report(f);
        }
        assert!(h.take_sent().is_empty(), "batched, not sent one by one");
        h.advance(Duration::from_secs(1));
        let sent = h.take_sent();
        assert_eq!(sent.len(), 1, "{sent:?}");
        let TransmitKind::Feedback(batch) = sent[0].kind else {
            panic!("a feedback transmit: {:?}", sent[0].kind)
        };
        let text = String::from_utf8(sent[0].body.clone()).unwrap();
        assert!(!text.contains("secret-pw"), "credentials leaked: {text}");
        assert!(!text.contains("user:"), "credentials leaked: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let items = v.as_array().expect("a JSON array");
        assert_eq!(items.len(), 3);
        let latencies: Vec<u64> = items
            .iter()
            .map(|i| i["latency_ms"].as_u64().unwrap())
            .collect();
        assert_eq!(latencies, [10, 11, 12], "in order");
        assert_eq!(items[0]["proxy_url"], "socks5://proxy-a:1080");
        h.reply(sent[0].id, Reply::Ok(b"{}")).unwrap();
        let stats = h.r.feedback_stats();
        assert_eq!((stats.sent, stats.queued), (3, 0));
        assert!(h.take_events().iter().any(|e| matches!(
            e,
            Event::Feedback(proxy_delegate_core::feedback::Event::BatchSent { id, count: 3 })
                if *id == batch
        )));
    });
}

#[test]
fn a_feedback_batch_the_service_refuses_is_rejected_not_retried_for_ever() {
    run(|| {
        let mut h = H::new(config(), 1);
        let report = |h: &mut H| {
            h.report(feedback(
                "binance",
                Some("pa"),
                Some("socks5://proxy-a:1080"),
                FeedbackEvent::Success,
                None,
            ))
        };
        report(&mut h);
        report(&mut h);
        h.advance(Duration::from_secs(1));
        let sent = h.take_sent();
        assert_eq!(sent.len(), 1, "{sent:?}");
        // 503: a failure; the events stay queued and go again later.
        h.reply(
            sent[0].id,
            Reply::Status {
                code: 503,
                retry_after: None,
            },
        )
        .unwrap();
        assert_eq!(h.r.feedback_stats().queued, 2);
        h.advance(Duration::from_secs(5));
        let sent = h.take_sent();
        assert_eq!(sent.len(), 1, "retried after a 503: {sent:?}");
        // 422: the service refuses the batch itself; it leaves the queue, counted.
        h.reply(
            sent[0].id,
            Reply::Status {
                code: 422,
                retry_after: None,
            },
        )
        .unwrap();
        let stats = h.r.feedback_stats();
        assert_eq!((stats.rejected, stats.queued), (2, 0), "{stats:?}");
        assert!(stats.is_conserved());
        assert!(h.take_events().iter().any(|e| matches!(
            e,
            Event::Feedback(proxy_delegate_core::feedback::Event::BatchRejected { count: 2, .. })
        )));
        // Later events are not held up behind it.
        report(&mut h);
        h.advance(Duration::from_secs(1));
        let sent = h.take_sent();
        assert_eq!(sent.len(), 1, "the next batch goes: {sent:?}");
        h.reply(sent[0].id, Reply::Ok(b"{}")).unwrap();
        assert_eq!(h.r.feedback_stats().sent, 1);
    });
}

#[test]
fn a_proxy_failure_report_invalidates_every_entry_naming_that_proxy() {
    run(|| {
        let mut h = H::new(config(), 1);
        let (a, b, c, d) = (
            request("binance"),
            request("kraken"),
            request("coinbase"),
            request("bybit"),
        );
        h.fill(
            &a,
            &body(Some("socks5://u:p@proxy-1:1080"), "p1", 300, "fail"),
        );
        h.fill(
            &b,
            &body(Some("socks5://u:p@proxy-1:1080"), "p1", 300, "fail"),
        );
        h.fill(
            &c,
            &body(Some("socks5://u:p@proxy-2:1080"), "p2", 300, "fail"),
        );
        h.fill(
            &d,
            &body(Some("socks5://u:p@proxy-3:1080"), "p3", 300, "fail"),
        );
        h.take_events();
        // By id.
        h.report(feedback(
            "binance",
            Some("p1"),
            None,
            FeedbackEvent::Failure,
            Some(ErrorCategory::ProxyConnect),
        ));
        assert!(
            h.take_events()
                .contains(&Event::ProxyInvalidated { count: 2 })
        );
        assert!(matches!(h.resolve(&a), Res::Pending(_)), "binance: a miss");
        assert!(matches!(h.resolve(&b), Res::Pending(_)), "kraken: a miss");
        assert_eq!(ready(h.resolve(&c)).source, Source::Cache);
        // By URL (credentials do not matter).
        h.report(feedback(
            "coinbase",
            None,
            Some("socks5://proxy-2:1080"),
            FeedbackEvent::Timeout,
            None,
        ));
        assert!(
            h.take_events()
                .contains(&Event::ProxyInvalidated { count: 1 })
        );
        assert!(matches!(h.resolve(&c), Res::Pending(_)), "coinbase: a miss");
        // A target fault is not the proxy's: nothing goes.
        h.report(feedback(
            "bybit",
            Some("p3"),
            Some("socks5://proxy-3:1080"),
            FeedbackEvent::Failure,
            Some(ErrorCategory::TargetHttp5xx),
        ));
        assert!(
            !h.take_events()
                .iter()
                .any(|e| matches!(e, Event::ProxyInvalidated { .. }))
        );
        assert_eq!(ready(h.resolve(&d)).source, Source::Cache);
        // Nor is a success.
        h.report(feedback(
            "bybit",
            Some("p3"),
            None,
            FeedbackEvent::Success,
            None,
        ));
        assert_eq!(ready(h.resolve(&d)).source, Source::Cache);
    });
}

#[test]
fn drain_feedback_hands_over_everything_queued() {
    run(|| {
        let mut h = H::new(config(), 1);
        for i in 0..5 {
            let mut f = feedback("binance", None, None, FeedbackEvent::Success, None);
            f.latency_ms = Some(i);
            h.report(f);
        }
        // One batch goes out and is never answered; two more are reported.
        h.advance(Duration::from_secs(1));
        assert_eq!(h.take_sent().len(), 1);
        for i in 5..7 {
            let mut f = feedback("binance", None, None, FeedbackEvent::Success, None);
            f.latency_ms = Some(i);
            h.report(f);
        }
        let drained: Vec<u32> =
            h.r.drain_feedback()
                .map(|f| f.latency_ms.unwrap())
                .collect();
        assert_eq!(drained, [0, 1, 2, 3, 4, 5, 6], "all of them, oldest first");
        let stats = h.r.feedback_stats();
        assert_eq!((stats.drained, stats.queued, stats.reported), (7, 0, 7));
        assert!(stats.is_conserved());
        assert_eq!(h.r.drain_feedback().count(), 0);
    });
}

// ---------------------------------------------------------------- events and stats

#[test]
fn events_and_stats_count_every_source_and_reason() {
    run(|| {
        let mut c = config();
        c.cache.stale_grace = Duration::from_secs(30);
        let mut h = H::new(c, 1);
        let (binance, coinbase, kraken) =
            (request("binance"), request("coinbase"), request("kraken"));
        // Service, then cache.
        h.fill(
            &binance,
            &body(Some("socks5://p:1"), "p", 5, "embedded_fallback"),
        );
        assert_eq!(ready(h.resolve(&binance)).source, Source::Cache);
        // Deadline: embedded (coinbase), direct (kraken).
        let _ = h.resolve(&coinbase);
        let _ = h.resolve(&kraken);
        h.advance(Duration::from_millis(500));
        // Let the requests time out so the endpoint is free again, then go stale.
        h.advance_to(T0 + Duration::from_secs(6));
        force_all_open(&mut h, 1);
        assert_eq!(ready(h.resolve(&binance)).source, Source::Stale);
        let events = h.take_events();
        // Every route but a fresh hit (the hot path, only counted) is evented.
        let evented: Vec<Source> = resolved_sources(&events)
            .into_iter()
            .filter(|s| *s != Source::Cache)
            .collect();
        assert_eq!(
            evented,
            [
                Source::Service,
                Source::Embedded,
                Source::Direct,
                Source::Stale
            ]
        );
        assert_eq!(
            fallbacks(&events),
            [
                (FallbackReason::Deadline, Some(Source::Embedded)),
                (FallbackReason::Deadline, Some(Source::Direct)),
                (FallbackReason::NoEndpoint, Some(Source::Stale)),
            ]
        );
        let stats = h.r.stats();
        assert_eq!(stats.resolved, [1, 1, 1, 1, 1]);
        assert_eq!(stats.fallbacks, [1, 2, 0, 0]);
        assert_eq!(stats.failed, 0);
        // The timed-out requests failed the endpoint: a health transition came out.
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Endpoint(EndpointEvent::Health {
                index: 0,
                from: Health::Healthy,
                to: Health::Suspect,
                ..
            })
        )));
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Endpoint(EndpointEvent::Breaker { index: 0, event }) if event.to == BreakerState::ForcedOpen
        )));
        for s in [
            Source::Service,
            Source::Cache,
            Source::Stale,
            Source::Embedded,
            Source::Direct,
        ] {
            assert_eq!(s.to_string(), s.as_str());
        }
    });
}

// ---------------------------------------------------------------- bad replies

/// One bad reply with a breaker that trips on the first failure: whether it
/// opened, and the resolve's answer.
pub(crate) fn one_bad_reply(reply: Reply<'_>) -> (BreakerState, Answer, Vec<Event>) {
    let mut c = config();
    c.endpoints.breaker.failure_threshold = 1;
    c.retry_budget.min_retries_per_sec = 0;
    let mut h = H::new(c, 1);
    let Res::Pending(_) = h.resolve(&request("binance")) else {
        panic!("miss")
    };
    let t = h.one_resolve();
    h.take_events();
    h.reply(t.id, reply).unwrap();
    let mut answers = h.take_answers();
    assert_eq!(answers.len(), 1, "answered at once: no attempt left");
    (
        h.r.endpoints().breaker_state(0).unwrap(),
        answers.remove(0).1,
        h.take_events(),
    )
}

#[test]
fn malformed_5xx_401_and_transport_failures_are_failed_attempts() {
    run(|| {
        let cases: [(Reply<'_>, Option<u16>); 6] = [
            (Reply::Ok(b"{\"proxy_url\": 42"), Some(200)),
            (
                Reply::Ok(br#"{"proxy_url":"ftp://x:1","strategy":"s","ttl_seconds":5}"#),
                Some(200),
            ),
            (
                Reply::Status {
                    code: 503,
                    retry_after: Some(Duration::from_secs(1)),
                },
                Some(503),
            ),
            (
                Reply::Status {
                    code: 500,
                    retry_after: None,
                },
                Some(500),
            ),
            (
                Reply::Status {
                    code: 401,
                    retry_after: None,
                },
                Some(401),
            ),
            (Reply::Failed, None),
        ];
        for (reply, status) in cases {
            let (state, answer, events) = one_bad_reply(reply);
            assert_eq!(
                state,
                BreakerState::Open,
                "{reply:?} must count as a failure"
            );
            let route = answer.result.expect("a fallback route");
            assert_eq!(route.source, Source::Direct);
            assert!(
                fallbacks(&events).contains(&(FallbackReason::ServiceFailed, Some(Source::Direct)))
            );
            let bad = events.iter().find_map(|e| match e {
                Event::BadReply { status, .. } => Some(*status),
                _ => None,
            });
            assert_eq!(bad, status, "{reply:?}");
        }
    });
}

#[test]
fn refusals_of_the_request_do_not_trip_the_breaker() {
    run(|| {
        for code in [400, 422] {
            let (state, answer, events) = one_bad_reply(Reply::Status {
                code,
                retry_after: None,
            });
            assert_eq!(
                state,
                BreakerState::Closed,
                "{code} is not the endpoint's health"
            );
            assert!(answer.result.is_ok());
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, Event::BadReply { status, .. } if *status == code))
            );
            assert!(!events.iter().any(|e| matches!(
                e,
                Event::Endpoint(EndpointEvent::Health {
                    to: Health::Suspect,
                    ..
                })
            )));
        }
    });
}

// ---------------------------------------------------------------- health checks

#[test]
fn health_checks_are_transmitted_and_their_answers_move_the_endpoints() {
    run(|| {
        let mut h = H::manual_checks(config(), 2);
        let checks = h.take_sent();
        assert_eq!(checks.len(), 2, "{checks:?}");
        assert!(
            checks
                .iter()
                .all(|c| c.kind == TransmitKind::HealthCheck && c.body.is_empty())
        );
        let by_endpoint = |e: usize| checks.iter().find(|c| c.endpoint == e).unwrap().clone();
        let (c0, c1) = (by_endpoint(0), by_endpoint(1));
        assert!(c0.deadline > h.now);
        h.reply(c1.id, Reply::Ok(b"{\"status\":\"ok\"}")).unwrap();
        assert_eq!(h.r.endpoint_health(1), Some(Health::Healthy));
        // Endpoint 0 answers 503: suspect, and an immediate re-check.
        h.reply(
            c0.id,
            Reply::Status {
                code: 503,
                retry_after: None,
            },
        )
        .unwrap();
        assert_eq!(h.r.endpoint_health(0), Some(Health::Suspect));
        let recheck = h.take_sent();
        assert_eq!(recheck.len(), 1);
        assert_eq!(
            (recheck[0].endpoint, recheck[0].kind),
            (0, TransmitKind::HealthCheck)
        );
        // No answer by its deadline: down.
        h.advance_to(recheck[0].deadline);
        assert_eq!(h.r.endpoint_health(0), Some(Health::Down));
        let events = h.take_events();
        let changes: Vec<(usize, Health)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Endpoint(EndpointEvent::Health { index, to, .. }) => Some((*index, *to)),
                _ => None,
            })
            .collect();
        assert_eq!(changes, [(0, Health::Suspect), (0, Health::Down)]);
        // Traffic goes to endpoint 1 only.
        for ex in ["binance", "kraken", "bybit"] {
            let Res::Pending(_) = h.resolve(&request(ex)) else {
                panic!("miss")
            };
        }
        let resolves = h.take_resolves();
        assert_eq!(resolves.len(), 3);
        assert!(resolves.iter().all(|s| s.endpoint == 1));
        // A late answer to the timed-out check is unknown and changes nothing.
        assert_eq!(
            h.reply(recheck[0].id, Reply::Ok(b"{}")),
            Err(InputError::UnknownCorrelation { id: recheck[0].id })
        );
        assert_eq!(h.r.endpoint_health(0), Some(Health::Down));
    });
}

#[test]
fn an_unknown_correlation_id_is_an_error_and_changes_nothing() {
    run(|| {
        let mut h = H::new(config(), 1);
        let req = request("binance");
        h.fill(&req, &body(Some("socks5://p:1"), "p", 60, "fail"));
        let Res::Pending(_) = h.resolve(&request("kraken")) else {
            panic!("miss")
        };
        let pending = h.one_resolve();
        h.take_events();
        let answered = {
            // An id already answered: the fill's.
            let Res::Pending(_) = h.resolve(&request("bybit")) else {
                panic!("miss")
            };
            let t = h.one_resolve();
            h.reply(t.id, Reply::Ok(&body(None, "x", 60, "fail")))
                .unwrap();
            h.take_answers();
            h.take_events();
            t.id
        };
        let stats = h.r.stats();
        let fstats = h.r.feedback_stats();
        let flights = h.r.flights();
        let timeout = h.r.poll_timeout();
        let err = h.reply(
            answered,
            Reply::Ok(&body(Some("socks5://evil:1"), "e", 60, "direct_connection")),
        );
        assert_eq!(err, Err(InputError::UnknownCorrelation { id: answered }));
        assert!(err.unwrap_err().to_string().contains(&answered.to_string()));
        assert!(h.reply(answered, Reply::Failed).is_err());
        assert_eq!(h.r.stats(), stats);
        assert_eq!(h.r.feedback_stats(), fstats);
        assert_eq!(h.r.flights(), flights);
        assert_eq!(h.r.poll_timeout(), timeout);
        assert!(h.take_events().is_empty());
        assert!(h.take_answers().is_empty());
        assert!(h.take_sent().is_empty());
        // The pending request is still answered normally.
        h.reply(pending.id, Reply::Ok(&body(None, "k", 60, "fail")))
            .unwrap();
        assert_eq!(h.take_answers().len(), 1);
        assert_eq!(ready(h.resolve(&req)).source, Source::Cache);
    });
}

// ---------------------------------------------------------------- regressions

#[test]
fn a_hedge_with_nowhere_to_go_spends_no_retry_budget() {
    run(|| {
        // Two endpoints, one forced open: the hedge timer fires but there is
        // no other endpoint. The budget's one token must still pay for the
        // retry after the first attempt fails.
        let mut h = H::new(config(), 2);
        h.r.breaker_mut(1).expect("endpoint").force_open(h.now);
        h.pump();
        let Res::Pending(ticket) = h.resolve(&request("binance")) else {
            panic!("miss")
        };
        let first = h.one_resolve();
        assert_eq!(first.endpoint, 0);
        h.advance(Duration::from_millis(200));
        assert!(h.take_resolves().is_empty(), "nowhere to hedge");
        assert_eq!(h.r.stats().hedges, 0);
        h.reply(first.id, Reply::Failed).unwrap();
        let retry = h.one_resolve();
        assert_eq!(retry.endpoint, 0, "the only usable endpoint");
        assert_eq!(h.r.stats().retries, 1);
        h.reply(
            retry.id,
            Reply::Ok(&body(Some("socks5://p:1"), "p", 60, "fail")),
        )
        .unwrap();
        let answers = h.take_answers();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].1.ticket, ticket);
        assert_eq!(
            answers[0].1.result.as_ref().unwrap().source,
            Source::Service
        );
    });
}

#[test]
fn the_largest_feedback_event_fits_the_minimum_transmit_buffer() {
    run(|| {
        let mut h = H::new(config(), 1);
        // Every byte of the details needs a six-byte escape, and every other
        // text field is as long as the model allows.
        let mut f = feedback(
            &"x".repeat(proxy_delegate_core::model::MAX_EXCHANGE_ID_LEN),
            Some(&"p".repeat(proxy_delegate_core::model::MAX_PROXY_ID_LEN)),
            None,
            FeedbackEvent::Failure,
            Some(ErrorCategory::TunnelRefused),
        );
        let host = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        f.proxy_url = Some(url(&format!("socks5h://{host}:65535")));
        f.error_details = Some(proxy_delegate_core::model::ErrorDetails::new(
            &"\u{1}".repeat(proxy_delegate_core::model::MAX_ERROR_DETAILS_LEN),
        ));
        f.client_id = ClientId::new(&"c".repeat(proxy_delegate_core::model::MAX_CLIENT_ID_LEN))
            .expect("valid");
        f.latency_ms = Some(u32::MAX);
        // Kept packed, an event too large for its slot even without its
        // details is dropped and counted, not sent: the profile's choice.
        let mut bare = f.clone();
        bare.error_details = None;
        let fits =
            <<super::Keeping as Profile>::Feedback as Keep<ProxyFeedback>>::keep(bare).is_ok();
        h.report(f);
        h.advance(Duration::from_secs(1));
        let sent = h.take_sent();
        if !fits {
            assert!(sent.is_empty(), "{sent:?}");
            assert_eq!(h.r.feedback_stats().dropped, 1);
            assert!(h.take_events().iter().any(|e| matches!(
                e,
                Event::Feedback(proxy_delegate_core::feedback::Event::Dropped { count: 1 })
            )));
            return;
        }
        assert_eq!(
            sent.len(),
            1,
            "the event must go out: {:?}",
            h.take_events()
        );
        assert!(matches!(sent[0].kind, TransmitKind::Feedback(_)));
        let v: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(1));
    });
}

#[test]
pub(crate) fn too_many_requests_or_waiters_fall_back_at_once_as_overloaded() {
    use proxy_delegate_core::resolver::{MAX_FLIGHTS, MAX_WAITERS};
    run(|| {
        let mut h = H::new(config(), 1);
        let keys: Vec<ProxyRequest> = (0..=MAX_FLIGHTS)
            .map(|i| request(&format!("ex{i}")))
            .collect();
        for k in &keys[..MAX_FLIGHTS] {
            assert!(matches!(h.resolve(k), Res::Pending(_)));
        }
        assert_eq!(h.take_resolves().len(), MAX_FLIGHTS);
        h.take_events();
        // One more key: no room for another request.
        let route = ready(h.resolve(&keys[MAX_FLIGHTS]));
        assert_eq!(route.source, Source::Direct);
        assert_eq!(
            fallbacks(&h.take_events()),
            [(FallbackReason::Overloaded, Some(Source::Direct))]
        );
        // Joining needs no new request, until the waiters are full.
        for _ in MAX_FLIGHTS..MAX_WAITERS {
            assert!(matches!(h.resolve(&keys[0]), Res::Pending(_)));
        }
        assert!(h.take_resolves().is_empty());
        let route = ready(h.resolve(&keys[1]));
        assert_eq!(route.source, Source::Direct);
        assert_eq!(
            h.r.stats().fallbacks[FallbackReason::Overloaded as usize],
            2
        );
        // Once the waiting resolves are answered (at their deadline), there is room again.
        h.advance(Duration::from_millis(500));
        assert_eq!(h.take_answers().len(), MAX_WAITERS);
        assert!(matches!(h.resolve(&keys[0]), Res::Pending(_)));
    });
}

#[test]
fn a_failed_refresh_keeps_the_entry_and_is_tried_again_later() {
    run(|| {
        let mut c = config();
        c.retry_budget.min_retries_per_sec = 0;
        let mut h = H::new(c, 1);
        let req = request("binance");
        h.fill(&req, &body(Some("socks5://old:1080"), "old", 100, "fail"));
        h.advance_to(T0 + Duration::from_secs(80));
        assert_eq!(ready(h.resolve(&req)).source, Source::Cache);
        let refresh = h.one_resolve();
        h.take_events();
        h.reply(
            refresh.id,
            Reply::Status {
                code: 503,
                retry_after: None,
            },
        )
        .unwrap();
        assert!(h.take_events().iter().any(|e| matches!(
            e,
            Event::Refresh {
                succeeded: Some(false),
                ..
            }
        )));
        // The entry stays; no new refresh before refresh_retry (5 s).
        h.advance(Duration::from_secs(1));
        let route = ready(h.resolve(&req));
        assert_eq!(
            (route.source, route.proxy_url),
            (Source::Cache, Some(url("socks5://old:1080")))
        );
        assert!(h.take_resolves().is_empty());
        h.advance(Duration::from_secs(4));
        assert_eq!(ready(h.resolve(&req)).source, Source::Cache);
        assert_eq!(
            h.take_resolves().len(),
            1,
            "tried again after refresh_retry"
        );
    });
}

// ---------------------------------------------------------------- driving API

#[test]
pub(crate) fn capacities_are_the_users_choice() {
    // Two flights, four waiters: the third key and the fifth resolve fall back.
    type Small = Resolver<Table, 16, 4, 64, 2, 4>;
    let mut r = Small::new_boxed(T0, config(), &endpoint_list(1), Table { lookups: 0 })
        .expect("valid config");
    let mut pending = 0;
    for ex in ["a", "b"] {
        assert!(matches!(
            r.resolve(T0, &request(ex)),
            Resolution::Pending(_)
        ));
        pending += 1;
    }
    match r.resolve(T0, &request("c")) {
        Resolution::Ready(route) => assert_eq!(route.source, Source::Direct),
        other => panic!("a third flight must fall back, got {other:?}"),
    }
    while pending < 4 {
        assert!(matches!(
            r.resolve(T0, &request("a")),
            Resolution::Pending(_)
        ));
        pending += 1;
    }
    assert!(matches!(r.resolve(T0, &request("a")), Resolution::Ready(_)));
    assert_eq!(r.stats().fallbacks[FallbackReason::Overloaded as usize], 2);
}

#[test]
pub(crate) fn a_cancelled_resolve_frees_its_slot_and_is_never_answered() {
    type Tiny = Resolver<Table, 16, 4, 64, 4, 2>;
    let mut r = Tiny::new_boxed(T0, config(), &endpoint_list(1), Table { lookups: 0 })
        .expect("valid config");
    let Resolution::Pending(first) = r.resolve(T0, &request("binance")) else {
        panic!("a miss waits");
    };
    let Resolution::Pending(second) = r.resolve(T0, &request("binance")) else {
        panic!("a miss waits");
    };
    // Full: a third resolve falls back at once.
    assert!(matches!(
        r.resolve(T0, &request("binance")),
        Resolution::Ready(_)
    ));
    assert!(r.cancel(first));
    assert!(!r.cancel(first), "a ticket cancels once");
    // Its slot is free at once.
    let Resolution::Pending(third) = r.resolve(T0, &request("binance")) else {
        panic!("the freed slot takes a new resolve");
    };
    // The deadline passes: only the two live tickets are answered.
    let later = T0 + Duration::from_secs(1);
    r.handle_timeout(later);
    let mut buf = vec![0u8; MIN_TRANSMIT_BUFFER];
    let mut answered = Vec::new();
    loop {
        match r.poll_output(later, &mut buf) {
            Output::Answer(a) => answered.push(a.ticket),
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    answered.sort();
    assert_eq!(answered, [second, third]);
    // An answer not yet taken can be cancelled too.
    let Resolution::Pending(t) = r.resolve(later, &request("kraken")) else {
        panic!("a miss waits");
    };
    r.handle_timeout(later + Duration::from_secs(1));
    assert!(r.cancel(t), "an answer not yet taken is withdrawn");
    loop {
        match r.poll_output(later + Duration::from_secs(1), &mut buf) {
            Output::Answer(a) => panic!("a cancelled ticket was answered: {a:?}"),
            Output::Timeout(_) => break,
            _ => {}
        }
    }
}

#[test]
pub(crate) fn poll_output_gives_transmits_then_answers_then_events_then_the_timeout() {
    let mut r =
        R::new_boxed(T0, config(), &endpoint_list(1), Table { lookups: 0 }).expect("valid config");
    // Buffer too small for a request: the flight fails while transmitting,
    // which answers the waiting resolve and emits events in the same drain.
    let Resolution::Pending(ticket) = r.resolve(T0, &request("coinbase")) else {
        panic!("a miss waits");
    };
    let mut small = [0u8; 8];
    let mut order = Vec::new();
    loop {
        match r.poll_output(T0, &mut small) {
            Output::Transmit(t) => {
                order.push('t');
                let _ = r.handle_reply(T0, t.id, Reply::Ok(b"{}"));
            }
            Output::Answer(a) => {
                assert_eq!(a.ticket, ticket);
                order.push('a');
            }
            Output::Event(_) => order.push('e'),
            Output::Timeout(t) => {
                assert_eq!(t, r.poll_timeout(), "the final timeout is the query's");
                break;
            }
        }
    }
    let first_answer = order.iter().position(|c| *c == 'a').expect("answered");
    let first_event = order.iter().position(|c| *c == 'e').expect("events");
    assert!(order[..first_answer].iter().all(|c| *c == 't'), "{order:?}");
    assert!(order[first_event..].iter().all(|c| *c == 'e'), "{order:?}");
}

#[test]
pub(crate) fn breakers_can_be_turned_off_and_endpoints_replaced() {
    let mut c = config();
    c.circuit_breaker_enabled = false;
    let mut r = R::new_boxed(T0, c, &endpoint_list(2), Table { lookups: 0 }).expect("valid");
    assert_eq!(
        r.endpoints().breaker_state(0),
        Some(BreakerState::Disabled),
        "circuit_breaker_enabled: false disables every breaker"
    );
    r.replace_endpoints(T0, &endpoint_list(3)).expect("valid");
    assert_eq!(r.endpoints().len(), 3);
    assert_eq!(r.endpoints().breaker_state(2), Some(BreakerState::Disabled));
    assert!(
        r.replace_endpoints(T0, &[]).is_err(),
        "an empty set is refused"
    );
    assert_eq!(r.endpoints().len(), 3, "nothing changes on error");
}

#[test]
pub(crate) fn config_errors_name_the_nested_field() {
    use proxy_delegate_core::Reason;
    type Change<'a> = &'a dyn Fn(&mut ResolverConfig);
    let refused = |change: Change<'_>, endpoints: usize| {
        let mut c = config();
        change(&mut c);
        match R::new_boxed(T0, c, &endpoint_list(endpoints), Table { lookups: 0 }) {
            Ok(_) => panic!("the config is refused"),
            Err(e) => e,
        }
    };
    let zero = Duration::from_ticks(0);
    // Every field of every nested config that can be wrong, under its full
    // dotted path.
    let cases: [(Change<'_>, &str); 15] = [
        (&|c| c.resolve_deadline = zero, "resolve_deadline"),
        (&|c| c.request_timeout = zero, "request_timeout"),
        (&|c| c.cache.max_ttl = zero, "cache.max_ttl"),
        (
            &|c| c.cache.min_ttl = Duration::from_secs(3601),
            "cache.min_ttl",
        ),
        (
            &|c| c.cache.refresh_ahead_percent = 0,
            "cache.refresh_ahead_percent",
        ),
        (&|c| c.cache.refresh_timeout = zero, "cache.refresh_timeout"),
        (&|c| c.cache.refresh_retry = zero, "cache.refresh_retry"),
        (
            &|c| c.endpoints.check_interval = zero,
            "endpoints.check_interval",
        ),
        (
            &|c| c.retry_budget.max_tokens = u32::MAX,
            "retry_budget.max_tokens",
        ),
        (&|c| c.feedback.batch_size = 0, "feedback.batch_size"),
        (&|c| c.feedback.ack_timeout = zero, "feedback.ack_timeout"),
        (&|c| c.feedback.retry.base = zero, "feedback.retry.base"),
        (
            &|c| c.feedback.retry.max_delay = zero,
            "feedback.retry.max_delay",
        ),
        (
            &|c| c.feedback.retry.max_attempts = Some(0),
            "feedback.retry.max_attempts",
        ),
        (
            &|c| c.feedback.retry.max_retry_after = zero,
            "feedback.retry.max_retry_after",
        ),
    ];
    for (change, field) in cases {
        let e = refused(change, 1);
        assert_eq!(e.field, field, "{e}");
        assert!(matches!(e.reason, Reason::OutOfRange { .. }), "{e}");
        assert!(e.to_string().starts_with(&format!("{field}: ")), "{e}");
    }
    let e = refused(&|_| {}, 0);
    assert_eq!(e.field, "endpoints");
    assert!(matches!(e.reason, Reason::Requires { .. }), "{e}");
    let e = refused(&|_| {}, 5);
    assert_eq!(e.field, "endpoints");
    assert_eq!(e.reason, Reason::TooMany { len: 5, max: 4 });
    let e = refused(
        &|c| {
            let key = proxy_delegate_core::cache::CacheKey::new(
                ExchangeId::new("binance").expect("valid"),
                ConnectionType::Websocket,
                None,
            );
            c.cache.warm_keys.push(key.clone()).expect("room");
            c.cache.warm_keys.push(key).expect("room");
        },
        1,
    );
    assert_eq!(e.field, "cache.warm_keys");
    assert_eq!(e.reason, Reason::Duplicate { index: 1 });
}

#[test]
pub(crate) fn postcard_on_the_wire_when_configured() {
    use proxy_delegate_core::codec;
    use proxy_delegate_core::contract::WireFormat;
    use proxy_delegate_core::model::ProxyResponse;
    let mut c = config();
    c.wire = WireFormat::Postcard;
    c.feedback.batch_size = 2;
    let mut h = H::new(c, 1);
    let Res::Pending(ticket) = h.resolve(&request("binance")) else {
        panic!("a miss waits");
    };
    let sent = h.one_resolve();
    let asked: ProxyRequest = codec::postcard::decode(&sent.body).expect("a postcard request");
    assert_eq!(asked.exchange_id.as_str(), "binance");
    // The service answers in postcard too.
    let json = body(
        Some("socks5://u:p@proxy-a:1080"),
        "pa",
        60,
        "embedded_fallback",
    );
    let response: ProxyResponse = codec::json::decode(&json).expect("valid");
    let mut buf = [0u8; 1024];
    let n = codec::postcard::encode(&response, &mut buf).expect("encodes");
    h.reply(sent.id, Reply::Ok(&buf[..n])).expect("known id");
    let answers = h.take_answers();
    assert_eq!(answers[0].1.ticket, ticket);
    assert_eq!(
        answers[0].1.result.as_ref().expect("a route").source,
        Source::Service
    );
    // A JSON answer is malformed for a postcard client.
    let Res::Pending(_) = h.resolve(&request("kraken")) else {
        panic!("a miss waits");
    };
    let sent = h.one_resolve();
    h.reply(sent.id, Reply::Ok(&json)).expect("known id");
    assert!(
        h.take_events()
            .iter()
            .any(|e| matches!(e, Event::BadReply { status: 200, .. }))
    );
    // Feedback goes as postcard messages back to back.
    for ex in ["binance", "kraken"] {
        h.report(feedback(ex, Some("pa"), None, FeedbackEvent::Success, None));
    }
    let batch = h
        .take_sent()
        .into_iter()
        .find(|s| matches!(s.kind, TransmitKind::Feedback(_)))
        .expect("a feedback batch");
    let (first, rest) = codec::postcard::take::<ProxyFeedback>(&batch.body).expect("first");
    let (second, rest) = codec::postcard::take::<ProxyFeedback>(rest).expect("second");
    assert!(rest.is_empty());
    assert_eq!(
        (first.exchange_id.as_str(), second.exchange_id.as_str()),
        ("binance", "kraken")
    );
}

#[test]
pub(crate) fn a_429_with_retry_after_holds_the_endpoint_off() {
    let mut h = H::new(config(), 1);
    let Res::Pending(_) = h.resolve(&request("binance")) else {
        panic!("a miss waits");
    };
    let sent = h.one_resolve();
    h.reply(
        sent.id,
        Reply::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(5)),
        },
    )
    .expect("known id");
    h.take_answers();
    h.take_events();
    // Within the hold: no request goes out, the fallback is at once.
    h.advance(Duration::from_secs(1));
    let route = ready(h.resolve(&request("kraken")));
    assert_eq!(route.source, Source::Direct);
    assert!(h.take_resolves().is_empty(), "nothing sent while held off");
    assert_eq!(
        fallbacks(&h.take_events()),
        [(FallbackReason::NoEndpoint, Some(Source::Direct))]
    );
    // After it: asked again.
    h.advance(Duration::from_secs(5));
    assert!(matches!(h.resolve(&request("okx")), Res::Pending(_)));
    assert_eq!(h.take_resolves().len(), 1);
}
