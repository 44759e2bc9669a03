//! Property tests of `core::feedback::FeedbackQueue` against a reference model:
//! random sequences of report / poll_transmit / sent / failed / time passing,
//! checking at every step the conservation law, FIFO delivery, exact batch
//! contents, and that nothing is lost while there is room.

use std::collections::VecDeque;

use embassy_time::{Duration, Instant};
use proptest::prelude::*;
use proxy_delegate_core::codec;
use proxy_delegate_core::feedback::{BatchId, Event, FeedbackConfig, FeedbackQueue, Transmit};
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ErrorDetails, ExchangeId, FeedbackEvent, ProxyFeedback, ProxyUrl,
    Timestamp,
};

const N: usize = 8;

/// A feedback event identified by `latency_ms = seq`; `details` varies its size.
fn fb(seq: u32, details: usize) -> ProxyFeedback {
    ProxyFeedback {
        proxy_id: None,
        proxy_url: Some(ProxyUrl::parse("http://proxy.example:3128").unwrap()),
        exchange_id: ExchangeId::new("kraken").unwrap(),
        connection_type: ConnectionType::Http,
        event: FeedbackEvent::Success,
        success: true,
        latency_ms: Some(seq),
        error_category: None,
        error_details: (details > 0).then(|| ErrorDetails::new(&"x".repeat(details))),
        timestamp: Timestamp::from_unix_millis(1_700_000_000_000).unwrap(),
        client_id: ClientId::new("prop").unwrap(),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Report {
        details: usize,
    },
    Transmit {
        buf: usize,
    },
    Sent,
    Failed {
        retry_after_ms: Option<u64>,
    },
    /// Acknowledge a batch that is not in flight.
    StaleAck,
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop_oneof![3 => Just(0usize), 1 => 1usize..400]).prop_map(|details| Op::Report { details }),
        3 => prop_oneof![3 => Just(64 * 1024), 1 => 30usize..1_200].prop_map(|buf| Op::Transmit { buf }),
        2 => Just(Op::Sent),
        1 => prop::option::of(0u64..20_000).prop_map(|retry_after_ms| Op::Failed { retry_after_ms }),
        1 => Just(Op::StaleAck),
        2 => prop_oneof![0u64..1_500, 1_500u64..70_000].prop_map(|ms| Op::Advance { ms }),
    ]
}

/// What the queue must hold, by sequence number.
#[derive(Debug, Default)]
struct Model {
    queued: VecDeque<u32>,
    /// The batch in flight: its id, its deadline, and its events (some may
    /// have been dropped from `queued` since).
    in_flight: Option<(BatchId, Instant, Vec<u32>)>,
    delivered: Vec<u32>,
    dropped: Vec<u32>,
    next_seq: u32,
    /// The `details` length of each reported event, by sequence number.
    details: Vec<usize>,
    /// The last batch id handed out.
    last_id: Option<BatchId>,
}

fn decode(out: &[u8], tx: &Transmit) -> Vec<u32> {
    let batch: Vec<ProxyFeedback> = serde_json::from_slice(&out[..tx.len]).unwrap();
    batch.iter().map(|f| f.latency_ms.unwrap()).collect()
}

fn run(
    config: FeedbackConfig,
    ops: Vec<Op>,
    finish_by_draining: bool,
) -> Result<(), TestCaseError> {
    let mut q = FeedbackQueue::<N>::new(config).unwrap();
    let mut m = Model::default();
    let mut now = Instant::from_secs(10_000);
    let mut out = vec![0u8; 64 * 1024];
    let (mut dropped_events, mut sent_events) = (0u64, 0u64);

    for op in ops {
        match op {
            Op::Report { details } => {
                let seq = m.next_seq;
                m.next_seq += 1;
                if m.queued.len() == N {
                    let gone = m.queued.pop_front().unwrap();
                    m.dropped.push(gone);
                }
                m.queued.push_back(seq);
                m.details.push(details);
                q.report(now, fb(seq, details));
            }
            Op::Transmit { buf } => {
                let buf = &mut out[..buf];
                if let Some(tx) = q.poll_transmit(now, buf) {
                    prop_assert!(m.in_flight.is_none(), "two batches in flight");
                    prop_assert!(tx.count >= 1 && tx.count <= config.batch_size.min(N));
                    let got = decode(buf, &tx);
                    // Exactly the oldest queued events, in order.
                    let front: Vec<u32> = m.queued.iter().take(tx.count).copied().collect();
                    prop_assert_eq!(&got, &front);
                    // Byte-identical to the codec's batch encoding.
                    let mut expected = vec![0u8; 64 * 1024];
                    let evs: Vec<ProxyFeedback> =
                        got.iter().map(|&s| fb(s, m.details[s as usize])).collect();
                    let n = codec::json::encode_batch(&evs, &mut expected).unwrap();
                    prop_assert_eq!(&buf[..tx.len], &expected[..n]);
                    if let Some(last) = m.last_id {
                        prop_assert!(tx.id > last);
                    }
                    m.last_id = Some(tx.id);
                    m.in_flight = Some((tx.id, now + config.ack_timeout, got));
                }
            }
            Op::Sent => {
                if let Some((id, _, batch)) = m.in_flight.take() {
                    q.handle_sent(now, id).unwrap();
                    // The batch's events still queued are at the front.
                    let still: Vec<u32> = batch
                        .iter()
                        .copied()
                        .filter(|s| m.queued.contains(s))
                        .collect();
                    for s in &still {
                        prop_assert_eq!(m.queued.pop_front(), Some(*s));
                    }
                    m.delivered.extend(still);
                } else if let Some(id) = m.last_id {
                    prop_assert!(q.handle_sent(now, id).is_err());
                }
            }
            Op::Failed { retry_after_ms } => {
                let hint = retry_after_ms.map(Duration::from_millis);
                if let Some((id, _, _)) = m.in_flight.take() {
                    q.handle_send_failed(now, id, hint).unwrap();
                    // Not retried before the hint.
                    if let Some(h) = hint.filter(|h| h.as_ticks() > 0) {
                        let soon = now + h - Duration::from_ticks(1);
                        prop_assert!(q.poll_transmit(soon, &mut out).is_none());
                    }
                }
            }
            Op::StaleAck => {
                if let Some(id) = m.last_id
                    && m.in_flight.as_ref().is_none_or(|(cur, _, _)| *cur != id)
                {
                    prop_assert!(q.handle_sent(now, id).is_err());
                    prop_assert!(q.handle_send_failed(now, id, None).is_err());
                }
            }
            Op::Advance { ms } => {
                now += Duration::from_millis(ms);
                q.handle_timeout(now);
                if let Some((_, deadline, _)) = &m.in_flight
                    && now >= *deadline
                {
                    m.in_flight = None;
                }
            }
        }
        while let Some(e) = q.poll_event() {
            match e {
                Event::Dropped { count } => dropped_events += count,
                Event::BatchSent { count, .. } => sent_events += count as u64,
                _ => {}
            }
        }
        let s = q.stats();
        prop_assert!(s.is_conserved(), "{:?}", s);
        prop_assert_eq!(s.reported, u64::from(m.next_seq));
        prop_assert_eq!(s.queued, m.queued.len());
        prop_assert_eq!(s.sent, m.delivered.len() as u64);
        // Nothing is dropped while there is room: only the model's overflow.
        prop_assert_eq!(s.dropped, m.dropped.len() as u64);
        prop_assert_eq!(dropped_events, s.dropped);
        prop_assert_eq!(sent_events, s.sent);
        let in_flight = m.in_flight.as_ref().map_or(0, |(_, _, batch)| {
            batch.iter().filter(|s| m.queued.contains(s)).count()
        });
        prop_assert_eq!(s.in_flight, in_flight);
        prop_assert_eq!(q.in_flight(), m.in_flight.as_ref().map(|(id, _, _)| *id));
        // FIFO: deliveries are in report order.
        prop_assert!(m.delivered.windows(2).all(|w| w[0] < w[1]));
    }

    if finish_by_draining {
        let rest: Vec<u32> = q.drain().map(|f| f.latency_ms.unwrap()).collect();
        prop_assert_eq!(&rest, &Vec::from(m.queued.clone()));
        m.delivered.extend(rest);
    } else {
        // The service recovers: everything queued is delivered, in order.
        for _ in 0..(4 * N + 8) {
            if q.is_empty() {
                break;
            }
            if let Some(t) = q.poll_timeout() {
                now = now.max(t);
            }
            q.handle_timeout(now);
            if let Some(tx) = q.poll_transmit(now, &mut out) {
                m.delivered.extend(decode(&out, &tx));
                q.handle_sent(now, tx.id).unwrap();
            }
        }
        prop_assert!(
            q.is_empty(),
            "not delivered after recovery: {:?}",
            q.stats()
        );
    }
    prop_assert!(q.stats().is_conserved());
    // Every reported event was delivered (or drained) or counted as dropped,
    // and deliveries are in report order.
    let mut all: Vec<u32> = m.delivered.iter().chain(&m.dropped).copied().collect();
    all.sort_unstable();
    all.dedup();
    prop_assert_eq!(all, (0..m.next_seq).collect::<Vec<_>>());
    prop_assert!(m.delivered.windows(2).all(|w| w[0] < w[1]));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn conservation_fifo_and_no_loss_with_room(
        batch_size in 1usize..12,
        max_age_ms in 1u64..3_000,
        ack_timeout_ms in 1u64..60_000,
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..200),
        finish_by_draining in any::<bool>(),
    ) {
        let mut config = FeedbackConfig {
            batch_size,
            max_age: Duration::from_millis(max_age_ms),
            ack_timeout: Duration::from_millis(ack_timeout_ms),
            ..FeedbackConfig::default()
        };
        config.retry.seed = seed;
        run(config, ops, finish_by_draining)?;
    }
}
