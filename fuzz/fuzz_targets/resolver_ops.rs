//! Drives the Resolver with an arbitrary sequence of operations: resolves,
//! replies (valid, garbage, error statuses, transport failures, unknown ids),
//! feedback, breaker switches and time jumps.
//!
//! Oracles: nothing panics; every ticket is answered exactly once and, once
//! the driver lets time run to the end, every resolve has been answered;
//! feedback is conserved (sent + queued + dropped + drained == reported).
//! Each input drives two Resolvers: one keeping its messages whole, one
//! keeping them packed in slots small enough that many do not fit (routes not
//! cached, answers' routes spilled, feedback details cut, request metadata
//! dropped).
#![no_main]

use std::collections::HashSet;

use embassy_time::{Duration, Instant};
use libfuzzer_sys::fuzz_target;
use proxy_delegate_core::endpoints::EndpointConfig;
use proxy_delegate_core::keep::{Compact, Profile, Whole};
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ExchangeId, FeedbackEvent, ProxyFeedback, ProxyRequest, Timestamp,
};
use proxy_delegate_core::resolver::{
    CorrelationId, MAX_FLIGHTS, MAX_WAITERS, MIN_TRANSMIT_BUFFER, Output, Reply, Resolution,
    Resolver, ResolverConfig, Ticket,
};
use proxy_delegate_core::storage::Inline;

/// The Resolver under test, keeping its messages as `P` says.
type R<P> = Resolver<(), 16, 3, 32, MAX_FLIGHTS, MAX_WAITERS, Inline, P>;

const EXCHANGES: [&str; 3] = ["binance", "kraken", "coinbase"];
const POLICIES: [&str; 3] = ["direct_connection", "embedded_fallback", "fail"];

struct Driver<'a, P: Profile> {
    data: &'a [u8],
    r: Box<R<P>>,
    now: Instant,
    sent: Vec<CorrelationId>,
    waiting: HashSet<u64>,
    answered: HashSet<u64>,
    reported: u64,
    buf: Vec<u8>,
}

impl<P: Profile> Driver<'_, P> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self
            .data
            .split_first()
            .map_or((0, &[][..]), |(b, r)| (*b, r));
        self.data = rest;
        b
    }

    fn drain(&mut self) {
        loop {
            match self.r.poll_output(self.now, &mut self.buf) {
                Output::Transmit(t) => self.sent.push(t.id),
                Output::Answer(a) => {
                    let t = a.ticket.get();
                    assert!(
                        self.waiting.remove(&t),
                        "answer for a ticket not waiting: {t}"
                    );
                    assert!(self.answered.insert(t), "ticket answered twice: {t}");
                }
                Output::Event(_) => {}
                Output::Timeout(_) => break,
            }
        }
        let stats = self.r.feedback_stats();
        assert!(stats.is_conserved(), "feedback not conserved: {stats:?}");
        assert_eq!(stats.reported, self.reported);
    }

    fn take_sent(&mut self) -> Option<CorrelationId> {
        if self.sent.is_empty() {
            return None;
        }
        let i = usize::from(self.byte()) % self.sent.len();
        Some(self.sent.swap_remove(i))
    }

    fn step(&mut self) {
        match self.byte() % 13 {
            0 => {
                let ms = u64::from(self.byte()) * 10;
                self.now += Duration::from_millis(ms);
            }
            1 | 2 => {
                let ex = EXCHANGES[usize::from(self.byte()) % EXCHANGES.len()];
                let ct = if self.byte() % 2 == 0 {
                    ConnectionType::Http
                } else {
                    ConnectionType::Websocket
                };
                let request = ProxyRequest::new(
                    ExchangeId::new(ex).expect("valid"),
                    ct,
                    ClientId::new("fuzz").expect("valid"),
                );
                let now = self.now;
                let deadline = now + Duration::from_millis(u64::from(self.byte()) * 5);
                if let Resolution::Pending(t) = self.r.resolve_by(now, &request, deadline) {
                    assert!(self.waiting.insert(t.get()), "ticket reused");
                }
            }
            3 | 4 => {
                if let Some(id) = self.take_sent() {
                    let ttl = 1 + u32::from(self.byte());
                    let policy = POLICIES[usize::from(self.byte()) % POLICIES.len()];
                    let url = if self.byte() % 4 == 0 {
                        "null".to_owned()
                    } else {
                        format!("\"socks5://u:p@proxy-{}:1080\"", self.byte() % 4)
                    };
                    let body = format!(
                        "{{\"proxy_url\":{url},\"strategy\":\"s\",\"ttl_seconds\":{ttl},\"fallback_policy\":\"{policy}\",\"metadata\":{{\"proxy_id\":\"p\"}}}}"
                    );
                    let _ = self
                        .r
                        .handle_reply(self.now, id, Reply::Ok(body.as_bytes()));
                }
            }
            5 => {
                if let Some(id) = self.take_sent() {
                    let n = usize::from(self.byte()).min(self.data.len());
                    let (garbage, rest) = self.data.split_at(n);
                    self.data = rest;
                    let _ = self.r.handle_reply(self.now, id, Reply::Ok(garbage));
                }
            }
            6 => {
                if let Some(id) = self.take_sent() {
                    let code = 100 + u16::from(self.byte()) * 2;
                    let retry_after =
                        (self.byte() % 2 == 0).then(|| Duration::from_secs(u64::from(self.byte())));
                    let _ = self
                        .r
                        .handle_reply(self.now, id, Reply::Status { code, retry_after });
                }
            }
            7 => {
                if let Some(id) = self.take_sent() {
                    let _ = self.r.handle_reply(self.now, id, Reply::Failed);
                }
            }
            8 => {
                if let Some(t) = self.r.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.r.handle_timeout(self.now);
            }
            9 => {
                let success = self.byte() % 2 == 0;
                let fb = ProxyFeedback {
                    proxy_id: None,
                    proxy_url: Some("socks5://proxy-1:1080".parse().expect("valid")),
                    exchange_id: ExchangeId::new("binance").expect("valid"),
                    connection_type: ConnectionType::Http,
                    event: if success {
                        FeedbackEvent::Success
                    } else {
                        FeedbackEvent::Failure
                    },
                    success,
                    latency_ms: None,
                    error_category: None,
                    error_details: None,
                    timestamp: Timestamp::from_unix_millis(0).expect("valid"),
                    client_id: ClientId::new("fuzz").expect("valid"),
                };
                self.r.report(self.now, fb);
                self.reported += 1;
            }
            10 => {
                let i = usize::from(self.byte()) % 3;
                let now = self.now;
                if let Some(b) = self.r.breaker_mut(i) {
                    if self.data.first().is_some_and(|b| b % 2 == 0) {
                        b.force_open(now);
                    } else {
                        b.enable(now);
                    }
                }
            }
            11 => {
                // A caller goes away: its ticket is withdrawn and never answered.
                let pick = usize::from(self.byte());
                if let Some(&t) = self.waiting.iter().nth(pick % self.waiting.len().max(1)) {
                    assert!(
                        self.r.cancel(Ticket::from_raw(t)),
                        "a waiting ticket cancels"
                    );
                    self.waiting.remove(&t);
                    assert!(!self.r.cancel(Ticket::from_raw(t)), "a ticket cancels once");
                }
            }
            _ => {
                let id = CorrelationId::from_raw(u64::from(self.byte()));
                let _ = self.r.handle_reply(self.now, id, Reply::Failed);
            }
        }
        self.drain();
    }
}

fuzz_target!(|data: &[u8]| {
    run::<Whole>(data);
    run::<Compact<64, 96, 48>>(data);
});

fn run<P: Profile>(data: &[u8]) {
    let now = Instant::from_secs(1);
    let config = ResolverConfig::new(ClientId::new("fuzz").expect("valid"));
    let endpoints: Vec<EndpointConfig> = (0..3)
        .map(|i| {
            EndpointConfig::new(
                format!("http://127.0.0.1:{}", 9000 + i)
                    .parse()
                    .expect("valid"),
                (i % 2) as u8,
            )
        })
        .collect();
    let r = R::<P>::new_boxed(now, config, &endpoints, ()).expect("valid config");
    let mut d = Driver {
        data,
        r,
        now,
        sent: Vec::new(),
        waiting: HashSet::new(),
        answered: HashSet::new(),
        reported: 0,
        buf: vec![0; MIN_TRANSMIT_BUFFER],
    };
    for _ in 0..512 {
        if d.data.is_empty() {
            break;
        }
        d.step();
    }
    // Let time run: every resolve must be answered by its deadline.
    for _ in 0..10_000 {
        if d.waiting.is_empty() {
            break;
        }
        match d.r.poll_timeout() {
            Some(t) => {
                d.now = d.now.max(t);
                d.r.handle_timeout(d.now);
                d.drain();
            }
            None => break,
        }
    }
    assert!(
        d.waiting.is_empty(),
        "{} resolves never answered",
        d.waiting.len()
    );
    let before = d.r.feedback_stats();
    let drained = d.r.drain_feedback().count();
    assert_eq!(drained, before.queued);
}
