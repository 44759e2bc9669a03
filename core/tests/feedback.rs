//! Scenario tests of `core::feedback::FeedbackQueue`.

use embassy_time::{Duration, Instant};
use proxy_delegate_core::backoff::{BackoffConfig, Jitter};
use proxy_delegate_core::codec;
use proxy_delegate_core::feedback::{
    Event, FailReason, FeedbackConfig, FeedbackError, FeedbackQueue, Stats, Transmit,
};
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ErrorCategory, ErrorDetails, ExchangeId, FeedbackEvent,
    ProxyFeedback, ProxyId, ProxyUrl, Timestamp,
};

/// A feedback event whose `latency_ms` is its sequence number.
fn fb(seq: u32) -> ProxyFeedback {
    ProxyFeedback {
        proxy_id: Some(ProxyId::new("proxy-123").unwrap()),
        proxy_url: Some(ProxyUrl::parse("socks5://proxy-server:1080").unwrap()),
        exchange_id: ExchangeId::new("binance").unwrap(),
        connection_type: ConnectionType::Websocket,
        event: FeedbackEvent::Failure,
        success: false,
        latency_ms: Some(seq),
        error_category: Some(ErrorCategory::Timeout),
        error_details: Some(ErrorDetails::new("connect timed out")),
        timestamp: Timestamp::from_unix_millis(1_727_087_400_000 + i64::from(seq)).unwrap(),
        client_id: ClientId::new("cryptofeed-instance-123").unwrap(),
    }
}

/// The sequence numbers in a transmitted batch.
fn seqs(out: &[u8], tx: &Transmit) -> Vec<u32> {
    let batch: Vec<ProxyFeedback> = serde_json::from_slice(&out[..tx.len]).unwrap();
    assert_eq!(batch.len(), tx.count);
    batch.iter().map(|f| f.latency_ms.unwrap()).collect()
}

fn events<const N: usize>(q: &mut FeedbackQueue<N>) -> Vec<Event> {
    std::iter::from_fn(|| q.poll_event()).collect()
}

fn assert_conserved(s: Stats) {
    assert!(s.is_conserved(), "{s:?}");
}

fn cfg(batch_size: usize) -> FeedbackConfig {
    FeedbackConfig {
        batch_size,
        retry: BackoffConfig {
            jitter: Jitter::None,
            ..FeedbackConfig::default().retry
        },
        ..FeedbackConfig::default()
    }
}

const T0: Instant = Instant::from_secs(1_000);

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[test]
fn a_full_batch_goes_at_once_and_matches_encode_batch() {
    let mut q = FeedbackQueue::<16>::new(cfg(4)).unwrap();
    let mut out = vec![0u8; 16 * 1024];
    for i in 0..3 {
        q.report(T0, fb(i));
        assert!(q.poll_transmit(T0, &mut out).is_none());
    }
    q.report(T0, fb(3));
    assert_eq!(q.poll_timeout(), Some(T0), "a full batch is due now");
    let tx = q.poll_transmit(T0, &mut out).unwrap();
    assert_eq!(seqs(&out, &tx), [0, 1, 2, 3]);
    let mut expected = vec![0u8; 16 * 1024];
    let n = codec::json::encode_batch(&[fb(0), fb(1), fb(2), fb(3)], &mut expected).unwrap();
    assert_eq!(&out[..tx.len], &expected[..n]);
    // One batch in flight at a time.
    q.report(T0, fb(4));
    assert!(q.poll_transmit(T0 + ms(5_000), &mut out).is_none());
    assert_eq!(
        q.stats(),
        Stats {
            reported: 5,
            sent: 0,
            dropped: 0,
            rejected: 0,
            drained: 0,
            queued: 5,
            in_flight: 4
        }
    );
    q.handle_sent(T0, tx.id).unwrap();
    assert_eq!(
        events(&mut q),
        [Event::BatchSent {
            id: tx.id,
            count: 4
        }]
    );
    assert_eq!(q.stats().sent, 4);
    assert_eq!(q.stats().queued, 1);
    assert_conserved(q.stats());
}

#[test]
fn age_is_measured_from_the_oldest_unsent_event() {
    let mut q = FeedbackQueue::<16>::new(cfg(64)).unwrap();
    let mut out = vec![0u8; 16 * 1024];
    assert_eq!(q.poll_timeout(), None);
    q.report(T0, fb(0));
    q.report(T0 + ms(500), fb(1));
    assert_eq!(q.poll_timeout(), Some(T0 + ms(1_000)));
    assert!(q.poll_transmit(T0 + ms(999), &mut out).is_none());
    let tx = q.poll_transmit(T0 + ms(1_000), &mut out).unwrap();
    assert_eq!(seqs(&out, &tx), [0, 1]);
    assert_eq!(
        q.poll_timeout(),
        Some(T0 + ms(1_000) + Duration::from_secs(30))
    );
    q.handle_sent(T0 + ms(1_100), tx.id).unwrap();
    assert_eq!(q.poll_timeout(), None);
    q.report(T0 + ms(1_200), fb(2));
    assert_eq!(q.poll_timeout(), Some(T0 + ms(2_200)));
}

#[test]
fn a_failed_batch_is_retried_with_backoff_and_retry_after() {
    let mut q = FeedbackQueue::<16>::new(cfg(2)).unwrap();
    let mut out = vec![0u8; 16 * 1024];
    q.report(T0, fb(0));
    q.report(T0, fb(1));
    let tx = q.poll_transmit(T0, &mut out).unwrap();
    q.handle_send_failed(T0, tx.id, None).unwrap();
    // Default retry base is 1 s, no jitter here.
    assert_eq!(
        events(&mut q),
        [Event::BatchFailed {
            id: tx.id,
            count: 2,
            reason: FailReason::SendFailed,
            retry_in: Duration::from_secs(1)
        }]
    );
    assert_eq!(q.poll_timeout(), Some(T0 + Duration::from_secs(1)));
    assert!(q.poll_transmit(T0 + ms(999), &mut out).is_none());
    let tx2 = q.poll_transmit(T0 + ms(1_000), &mut out).unwrap();
    assert_ne!(tx2.id, tx.id);
    assert_eq!(seqs(&out, &tx2), [0, 1]);

    // The server says Retry-After: 30 s; the backoff alone would say 2 s.
    let t1 = T0 + ms(1_000);
    q.handle_send_failed(t1, tx2.id, Some(Duration::from_secs(30)))
        .unwrap();
    let [
        Event::BatchFailed {
            retry_in, count: 2, ..
        },
    ] = events(&mut q)[..]
    else {
        panic!("expected one BatchFailed")
    };
    assert_eq!(retry_in, Duration::from_secs(30));
    assert!(
        q.poll_transmit(t1 + Duration::from_secs(29), &mut out)
            .is_none()
    );
    let tx3 = q
        .poll_transmit(t1 + Duration::from_secs(30), &mut out)
        .unwrap();
    q.handle_sent(t1 + Duration::from_secs(30), tx3.id).unwrap();
    assert_eq!(q.stats().sent, 2);

    // Success reset the backoff: the next failure waits `base` again.
    q.report(t1 + Duration::from_secs(30), fb(2));
    q.report(t1 + Duration::from_secs(30), fb(3));
    let t2 = t1 + Duration::from_secs(31);
    let tx4 = q.poll_transmit(t2, &mut out).unwrap();
    q.handle_send_failed(t2, tx4.id, None).unwrap();
    assert!(matches!(
        events(&mut q)[..],
        [.., Event::BatchFailed { retry_in, .. }] if retry_in == Duration::from_secs(1)
    ));
}

#[test]
fn nothing_is_lost_through_a_long_outage_while_there_is_room() {
    let mut config = FeedbackConfig {
        batch_size: 8,
        ..FeedbackConfig::default()
    };
    // Even a configured attempt limit does not make the queue give up.
    config.retry.max_attempts = Some(3);
    let mut q = FeedbackQueue::<32>::new(config).unwrap();
    let mut out = vec![0u8; 32 * 1024];
    let mut now = T0;
    let mut next = 0;
    let mut delivered = Vec::new();
    for round in 0..200 {
        if next < 30 {
            q.report(now, fb(next));
            next += 1;
        }
        let outage = round < 150;
        if let Some(t) = q.poll_timeout() {
            now = now.max(t);
        }
        q.handle_timeout(now);
        if let Some(tx) = q.poll_transmit(now, &mut out) {
            if outage {
                q.handle_send_failed(now, tx.id, None).unwrap();
            } else {
                delivered.extend(seqs(&out, &tx));
                q.handle_sent(now, tx.id).unwrap();
            }
        }
        assert_conserved(q.stats());
        while q.poll_event().is_some() {}
    }
    assert_eq!(q.stats().dropped, 0);
    assert_eq!(delivered, (0..30).collect::<Vec<_>>());
    assert!(q.is_empty());
}

#[test]
fn when_full_the_oldest_is_dropped_counted_and_announced() {
    let mut q = FeedbackQueue::<4>::new(cfg(64)).unwrap();
    let mut out = vec![0u8; 16 * 1024];
    for i in 0..10 {
        q.report(T0, fb(i));
    }
    assert_eq!(q.stats().dropped, 6);
    assert_eq!(q.poll_event(), Some(Event::Dropped { count: 6 }));
    assert_eq!(q.poll_event(), None);
    q.report(T0, fb(10));
    assert_eq!(events(&mut q), [Event::Dropped { count: 1 }]);
    // batch_size 64 acts as N = 4: a full queue is a due batch.
    let tx = q.poll_transmit(T0, &mut out).unwrap();
    assert_eq!(seqs(&out, &tx), [7, 8, 9, 10]);
    assert_conserved(q.stats());
}

#[test]
fn dropping_an_in_flight_event_shrinks_the_acknowledged_count() {
    let mut q = FeedbackQueue::<4>::new(cfg(4)).unwrap();
    let mut out = vec![0u8; 16 * 1024];
    for i in 0..4 {
        q.report(T0, fb(i));
    }
    let tx = q.poll_transmit(T0, &mut out).unwrap();
    q.report(T0, fb(4));
    q.report(T0, fb(5));
    assert_eq!(q.stats().in_flight, 2);
    assert_conserved(q.stats());
    q.report(T0, fb(6));
    q.report(T0, fb(7));
    // Every event of the batch is gone, but the batch is still in flight.
    assert_eq!(q.stats().in_flight, 0);
    assert_eq!(q.in_flight(), Some(tx.id));
    q.handle_sent(T0, tx.id).unwrap();
    assert_eq!(q.in_flight(), None);
    assert_eq!(
        events(&mut q),
        [
            Event::Dropped { count: 4 },
            Event::BatchSent {
                id: tx.id,
                count: 0
            }
        ]
    );
    let s = q.stats();
    assert_eq!((s.sent, s.dropped, s.queued), (0, 4, 4));
    assert_conserved(s);
    let rest: Vec<u32> = q.drain().map(|f| f.latency_ms.unwrap()).collect();
    assert_eq!(rest, [4, 5, 6, 7]);
}

#[test]
fn a_small_buffer_sends_fewer_events_and_loses_none() {
    let mut q = FeedbackQueue::<32>::new(cfg(10)).unwrap();
    let mut one = vec![0u8; 4096];
    let one_len = codec::json::encode_batch(&[fb(0)], &mut one).unwrap();
    // Room for two events and a bit, not three.
    let mut out = vec![0u8; one_len * 2 + one_len / 2];
    for i in 0..10 {
        q.report(T0, fb(i));
    }
    let mut delivered = Vec::new();
    let mut now = T0;
    while !q.is_empty() {
        now = now.max(q.poll_timeout().unwrap());
        let tx = q.poll_transmit(now, &mut out).expect("a batch is due");
        let got = seqs(&out, &tx);
        assert_eq!(got.len(), 2, "as many as fit");
        delivered.extend(got);
        q.handle_sent(now, tx.id).unwrap();
    }
    assert_eq!(delivered, (0..10).collect::<Vec<_>>());
    assert!(
        events(&mut q)
            .iter()
            .all(|e| !matches!(e, Event::EncodeFailed { .. }))
    );
}

#[test]
fn a_buffer_too_small_for_one_event_waits_without_spinning() {
    let mut q = FeedbackQueue::<8>::new(cfg(1)).unwrap();
    let mut tiny = [0u8; 40];
    q.report(T0, fb(0));
    assert!(q.poll_transmit(T0, &mut tiny).is_none());
    let evs = events(&mut q);
    assert!(matches!(evs[..], [Event::EncodeFailed { .. }]), "{evs:?}");
    // Not due again until the backoff passes, so a driver loop does not spin.
    let next = q.poll_timeout().unwrap();
    assert!(next > T0);
    assert!(q.poll_transmit(T0 + ms(1), &mut tiny).is_none());
    // Announced once per buffer size.
    assert!(q.poll_transmit(next, &mut tiny).is_none());
    assert!(events(&mut q).is_empty());
    let mut out = vec![0u8; 4096];
    let next = q.poll_timeout().unwrap();
    let tx = q.poll_transmit(next, &mut out).unwrap();
    assert_eq!(seqs(&out, &tx), [0]);
    assert_eq!(q.stats().dropped, 0);
}

#[test]
fn batches_stay_in_order_across_the_ring_wrap() {
    let mut q = FeedbackQueue::<8>::new(cfg(5)).unwrap();
    let mut out = vec![0u8; 16 * 1024];
    let mut delivered = Vec::new();
    let mut next = 0;
    for _ in 0..20 {
        for _ in 0..3 {
            q.report(T0, fb(next));
            next += 1;
        }
        if let Some(tx) = q.poll_transmit(T0, &mut out) {
            delivered.extend(seqs(&out, &tx));
            q.handle_sent(T0, tx.id).unwrap();
        }
    }
    let rest: Vec<u32> = q.drain().map(|f| f.latency_ms.unwrap()).collect();
    delivered.extend(rest);
    assert_eq!(delivered, (0..next).collect::<Vec<_>>());
}

#[test]
fn an_unacknowledged_batch_times_out_and_is_sent_again() {
    let mut q = FeedbackQueue::<8>::new(cfg(1)).unwrap();
    let mut out = vec![0u8; 4096];
    q.report(T0, fb(7));
    let tx = q.poll_transmit(T0, &mut out).unwrap();
    let deadline = T0 + Duration::from_secs(30);
    assert_eq!(q.poll_timeout(), Some(deadline));
    q.handle_timeout(deadline - ms(1));
    assert_eq!(q.stats().in_flight, 1);
    assert_eq!(q.in_flight(), Some(tx.id));
    q.handle_timeout(deadline);
    assert_eq!(q.in_flight(), None);
    assert_eq!(
        events(&mut q),
        [Event::BatchFailed {
            id: tx.id,
            count: 1,
            reason: FailReason::AckTimeout,
            retry_in: Duration::from_secs(1)
        }]
    );
    // A late acknowledgement is refused; the event is still queued.
    let err = q.handle_sent(deadline, tx.id).unwrap_err();
    assert_eq!(err, FeedbackError::UnknownBatch { id: tx.id });
    assert!(err.to_string().contains("not in flight"), "{err}");
    assert_eq!(q.stats().queued, 1);
    let tx2 = q
        .poll_transmit(deadline + Duration::from_secs(1), &mut out)
        .unwrap();
    assert_eq!(seqs(&out, &tx2), [7]);
    assert!(q.handle_send_failed(deadline, tx.id, None).is_err());
}

#[test]
fn drain_hands_out_everything_including_the_batch_in_flight() {
    let mut q = FeedbackQueue::<16>::new(cfg(3)).unwrap();
    let mut out = vec![0u8; 16 * 1024];
    for i in 0..5 {
        q.report(T0, fb(i));
    }
    let tx = q.poll_transmit(T0, &mut out).unwrap();
    assert_eq!(tx.count, 3);
    let drain = q.drain();
    assert_eq!(drain.len(), 5);
    let all: Vec<u32> = drain.map(|f| f.latency_ms.unwrap()).collect();
    assert_eq!(all, [0, 1, 2, 3, 4]);
    let s = q.stats();
    assert_eq!((s.drained, s.queued, s.in_flight), (5, 0, 0));
    assert_conserved(s);
    assert!(q.handle_sent(T0, tx.id).is_err());
    assert_eq!(q.poll_timeout(), None);
    // A partly consumed drain leaves the rest queued and counted.
    q.report(T0, fb(10));
    q.report(T0, fb(11));
    assert_eq!(q.drain().next().unwrap().latency_ms, Some(10));
    assert_eq!(q.stats().queued, 1);
    assert_conserved(q.stats());
}

#[test]
fn invalid_configs_name_the_field() {
    let err = FeedbackQueue::<4>::new(FeedbackConfig {
        batch_size: 0,
        ..FeedbackConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().starts_with("batch_size:"), "{err}");
    let err = FeedbackQueue::<4>::new(FeedbackConfig {
        ack_timeout: Duration::from_ticks(0),
        ..FeedbackConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().starts_with("ack_timeout:"), "{err}");
    let mut config = FeedbackConfig::default();
    config.retry.base = Duration::from_ticks(0);
    let err = FeedbackQueue::<4>::new(config).unwrap_err();
    assert_eq!(err.field, "retry.base");
    assert!(err.to_string().starts_with("retry.base:"), "{err}");
}

#[test]
fn the_same_seed_replays_the_same_retry_schedule() {
    let run = |seed| {
        let mut config = FeedbackConfig {
            batch_size: 1,
            ..FeedbackConfig::default()
        };
        config.retry.seed = seed;
        config.retry.jitter = Jitter::Full;
        let mut q = FeedbackQueue::<4>::new(config).unwrap();
        let mut out = vec![0u8; 4096];
        let mut now = T0;
        q.report(now, fb(0));
        let mut delays = Vec::new();
        for _ in 0..8 {
            now = now.max(q.poll_timeout().unwrap());
            let tx = q.poll_transmit(now, &mut out).unwrap();
            q.handle_send_failed(now, tx.id, None).unwrap();
            if let Some(Event::BatchFailed { retry_in, .. }) = q.poll_event() {
                delays.push(retry_in);
            }
        }
        delays
    };
    assert_eq!(run(5).len(), 8);
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

/// The longest, most escaped event the model admits.
fn worst_case() -> ProxyFeedback {
    let host = format!("{}.example", "h".repeat(240));
    ProxyFeedback {
        proxy_id: Some(ProxyId::new(&"\"".repeat(64)).unwrap()),
        proxy_url: Some(ProxyUrl::parse(&format!("socks5h://{host}:65535")).unwrap()),
        exchange_id: ExchangeId::new(&"e".repeat(64)).unwrap(),
        connection_type: ConnectionType::Websocket,
        event: FeedbackEvent::ConnectStart,
        success: false,
        latency_ms: Some(u32::MAX),
        error_category: Some(ErrorCategory::TargetHttp5xx),
        error_details: Some(ErrorDetails::new(&"\u{1}".repeat(600))),
        timestamp: Timestamp::from_unix_millis(253_402_300_799_999).unwrap(),
        client_id: ClientId::new(&"\\".repeat(128)).unwrap(),
    }
}

#[test]
fn min_transmit_buffer_always_holds_one_event() {
    use proxy_delegate_core::feedback::MIN_TRANSMIT_BUFFER;
    let mut big = vec![0u8; 64 * 1024];
    let worst = codec::json::encode_batch(&[worst_case()], &mut big).unwrap();
    assert!(
        worst <= MIN_TRANSMIT_BUFFER,
        "worst case {worst} bytes > {MIN_TRANSMIT_BUFFER}"
    );
    let typical = codec::json::encode_batch(&[fb(12_345)], &mut big).unwrap();
    assert!(
        64 * typical <= 32 * 1024,
        "a typical event is {typical} bytes"
    );

    let mut q = FeedbackQueue::<4>::new(cfg(1)).unwrap();
    q.report(T0, worst_case());
    let mut out = vec![0u8; MIN_TRANSMIT_BUFFER];
    let tx = q.poll_transmit(T0, &mut out).expect("fits");
    assert_eq!(tx.count, 1);
    let back: Vec<ProxyFeedback> = serde_json::from_slice(&out[..tx.len]).unwrap();
    assert_eq!(back, [worst_case()]);
}

/// The sequence numbers in a postcard batch (messages back to back).
fn postcard_seqs(out: &[u8], tx: &Transmit) -> Vec<u32> {
    let mut rest = &out[..tx.len];
    let mut seqs = Vec::new();
    while !rest.is_empty() {
        let (f, r) = codec::postcard::take::<ProxyFeedback>(rest).unwrap();
        seqs.push(f.latency_ms.unwrap());
        rest = r;
    }
    assert_eq!(seqs.len(), tx.count);
    seqs
}

#[test]
fn postcard_batches_are_messages_back_to_back_cut_to_what_fits() {
    use proxy_delegate_core::contract::WireFormat;
    let mut q = FeedbackQueue::<16>::new(FeedbackConfig {
        wire: WireFormat::Postcard,
        ..cfg(4)
    })
    .unwrap();
    for i in 0..4 {
        q.report(T0, fb(i));
    }
    let mut one = [0u8; 1024];
    let one_len = codec::postcard::encode(&fb(0), &mut one).unwrap();
    // Room for two and a half events: two go, the others follow.
    let mut out = vec![0u8; one_len * 5 / 2];
    let tx = q.poll_transmit(T0, &mut out).unwrap();
    assert_eq!(postcard_seqs(&out, &tx), [0, 1]);
    q.handle_sent(T0, tx.id).unwrap();
    // The rest is a partial batch: due once the oldest has waited max_age.
    let later = T0 + ms(1_000);
    let tx = q.poll_transmit(later, &mut out).unwrap();
    assert_eq!(postcard_seqs(&out, &tx), [2, 3]);
    q.handle_sent(later, tx.id).unwrap();
    assert_conserved(q.stats());
    // Not even one fits: nothing is sent or lost, and it says so.
    q.report(T0, fb(9));
    let mut tiny = [0u8; 8];
    assert!(q.poll_transmit(T0 + ms(2_000), &mut tiny).is_none());
    assert!(
        events(&mut q)
            .iter()
            .any(|e| matches!(e, Event::EncodeFailed { .. }))
    );
    assert_eq!(q.stats().queued, 1);
}
