//! The feedback queue: a bounded, batching, never-blocking outbox for
//! [`ProxyFeedback`] events.
//!
//! See [`FeedbackQueue`] for the call order and an example.

use core::fmt;

use embassy_time::{Duration, Instant};
use heapless::Deque;

use crate::backoff::{Backoff, BackoffConfig, Jitter};
use crate::codec::{self, EncodeError};
use crate::contract::WireFormat;
use crate::keep::Keep;
use crate::model::{ErrorDetails, ProxyFeedback};
use crate::{Reason, ValidationError, error::nest};

/// Settings of a [`FeedbackQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedbackConfig {
    /// A batch is sent as soon as this many events wait. Default 64. Values
    /// above the queue's capacity `N` act as `N`. Must not be zero.
    pub batch_size: usize,
    /// A batch is sent once the oldest unsent event has waited this long, even
    /// if it is smaller than `batch_size`. Default 1 s.
    pub max_age: Duration,
    /// How long a batch may stay in flight without [`FeedbackQueue::handle_sent`]
    /// or [`FeedbackQueue::handle_send_failed`]; after that it counts as failed
    /// (and is retried), so a lost callback never stalls the queue. Default
    /// 30 s. Must not be zero.
    pub ack_timeout: Duration,
    /// The batches' wire format: a JSON array, or postcard messages one after
    /// another. Default JSON.
    pub wire: WireFormat,
    /// Backoff between attempts after a failed batch. Default: base 1 s, cap
    /// 60 s, equal jitter, no attempt limit, `Retry-After` honoured up to
    /// 300 s, seed 0. Feedback is never given up on: if `max_attempts` is set
    /// and reached, the queue keeps retrying every `max_delay`.
    pub retry: BackoffConfig,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            batch_size: 64,
            max_age: Duration::from_secs(1),
            ack_timeout: Duration::from_secs(30),
            wire: WireFormat::Json,
            retry: BackoffConfig {
                base: Duration::from_secs(1),
                max_delay: Duration::from_secs(60),
                jitter: Jitter::Equal,
                max_attempts: None,
                max_retry_after: Duration::from_secs(300),
                seed: 0,
            },
        }
    }
}

/// An acknowledgement that does not match the batch in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeedbackError {
    /// No batch with this id is in flight: it was already acknowledged, timed
    /// out (after [`FeedbackConfig::ack_timeout`]) or drained. Nothing changed;
    /// its events are queued and will be (or were) sent again.
    UnknownBatch {
        /// The id given.
        id: BatchId,
    },
}

impl fmt::Display for FeedbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedbackError::UnknownBatch { id } => write!(
                f,
                "{id} is not in flight (already acknowledged, timed out or drained); ignored"
            ),
        }
    }
}

impl core::error::Error for FeedbackError {}

/// Identifies a batch handed out by [`FeedbackQueue::poll_transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(u64);

impl BatchId {
    /// The number (batches are numbered from 1 in the order they are sent).
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "feedback batch {}", self.0)
    }
}

/// A batch to send: `out[..len]` (the buffer given to
/// [`FeedbackQueue::poll_transmit`]) holds a JSON array of `count` events, for
/// `POST /api/v1/proxy/feedback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Give it back to [`FeedbackQueue::handle_sent`] or
    /// [`FeedbackQueue::handle_send_failed`].
    pub id: BatchId,
    /// Bytes written at the start of the buffer.
    pub len: usize,
    /// Events in the batch.
    pub count: usize,
}

/// Why a batch failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailReason {
    /// The adapter reported the failure.
    SendFailed,
    /// Neither success nor failure was reported within `ack_timeout`.
    AckTimeout,
}

/// What happened, for the adapter to log and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The queue was full and its oldest events were dropped (coalesced: the
    /// count since the previous `Dropped`).
    Dropped {
        /// Events dropped.
        count: u64,
    },
    /// The service acknowledged a batch.
    BatchSent {
        /// The batch.
        id: BatchId,
        /// Its events still queued when it was acknowledged (the ones counted
        /// as sent).
        count: usize,
    },
    /// The service refused a batch as invalid; its events were removed.
    BatchRejected {
        /// The batch.
        id: BatchId,
        /// Its events that were removed (counted in [`Stats::rejected`]).
        count: usize,
    },
    /// A batch failed; its events stay queued and are sent again after
    /// `retry_in`.
    BatchFailed {
        /// The batch.
        id: BatchId,
        /// Its events still queued.
        count: usize,
        /// Why.
        reason: FailReason,
        /// The backoff before the next attempt.
        retry_in: Duration,
    },
    /// Not even the oldest event fits in the buffer given to
    /// [`FeedbackQueue::poll_transmit`]; nothing was sent or lost. Give a
    /// larger buffer (one of [`MIN_TRANSMIT_BUFFER`] bytes always holds an
    /// event). Reported once per buffer size; retried with backoff.
    EncodeFailed {
        /// The encoder's error.
        error: EncodeError,
    },
}

/// The queue's counters. At every moment
/// `sent + rejected + queued + dropped + drained == reported`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Events given to [`FeedbackQueue::report`].
    pub reported: u64,
    /// Events in acknowledged batches.
    pub sent: u64,
    /// Events dropped because the queue was full.
    pub dropped: u64,
    /// Events in batches the service refused as invalid
    /// ([`FeedbackQueue::handle_rejected`]).
    pub rejected: u64,
    /// Events handed out by [`FeedbackQueue::drain`].
    pub drained: u64,
    /// Events in the queue now, in flight or not.
    pub queued: usize,
    /// Of `queued`, those in the batch in flight.
    pub in_flight: usize,
}

impl Stats {
    /// Whether `sent + rejected + queued + dropped + drained == reported`.
    pub fn is_conserved(&self) -> bool {
        self.sent + self.rejected + self.queued as u64 + self.dropped + self.drained
            == self.reported
    }
}

/// A [`FeedbackQueue::poll_transmit`] buffer of this many bytes always holds
/// at least one event, however long and escaped its text (4.5 KiB). Typical
/// events encode to 200–350 bytes, so 32 KiB holds a default batch of 64.
pub const MIN_TRANSMIT_BUFFER: usize = 4608;

/// Room for unread [`Event`]s (besides the coalesced `Dropped`); the oldest
/// goes when full. Drain [`FeedbackQueue::poll_event`] after every call.
const EVENT_ROOM: usize = 8;

#[derive(Debug, Clone, Copy)]
struct InFlight {
    id: BatchId,
    count: usize,
    deadline: Instant,
}

/// A bounded queue of feedback events that sends them in batches.
///
/// Holds up to `N` events. A batch is due when `batch_size` events wait or
/// when the oldest unsent one has waited `max_age`. One batch is in flight at
/// a time; its events stay queued until the batch is acknowledged, so a
/// failed batch (or one never acknowledged within `ack_timeout`) is sent
/// again, after a backoff, in the same order. Delivery is FIFO and
/// at-least-once (a late acknowledgement after a timeout can duplicate a
/// batch).
///
/// [`report`](Self::report) never blocks and never fails: when the queue is
/// full, the oldest event is dropped, counted in [`Stats::dropped`] and
/// announced by [`Event::Dropped`]. The oldest event may belong to the batch
/// in flight; it then counts as dropped even if the service receives it, and
/// the batch's acknowledgement counts only its events still queued. Nothing
/// is lost while the queue has room. [`stats`](Self::stats) keeps
/// `sent + queued + dropped + drained == reported` at every step.
///
/// The queue stores `N` events inline (1.4 KB each), so keep large
/// queues in a `static` or a `Box` rather than on a small stack.
///
/// # Call order
///
/// 1. [`new`](Self::new) once.
/// 2. [`report`](Self::report) whenever a connection has something to say.
/// 3. [`poll_transmit`](Self::poll_transmit) after every input, until `None`
///    (it is `None` while a batch is in flight): send `out[..len]` and answer
///    with [`handle_sent`](Self::handle_sent) or
///    [`handle_send_failed`](Self::handle_send_failed) (with the server's
///    `Retry-After`, if any).
/// 4. [`poll_event`](Self::poll_event) until `None`: log and count.
/// 5. Sleep until [`poll_timeout`](Self::poll_timeout) (or the next input),
///    then [`handle_timeout`](Self::handle_timeout) and go to 3.
/// 6. At shutdown, [`drain`](Self::drain) hands every queued event to the
///    adapter, in order, in flight or not.
///
/// ```
/// use embassy_time::{Duration, Instant};
/// use proxy_delegate_core::codec;
/// use proxy_delegate_core::feedback::{Event, FeedbackConfig, FeedbackQueue};
/// use proxy_delegate_core::model::ProxyFeedback;
///
/// let feedback: ProxyFeedback = codec::json::decode(
///     br#"{"proxy_url":"socks5://proxy-server:1080","exchange_id":"binance",
///          "connection_type":"websocket","success":true,"latency_ms":45,
///          "timestamp":"2024-09-23T10:30:00Z","client_id":"cryptofeed-1"}"#,
/// )?;
/// let mut queue = FeedbackQueue::<16>::new(FeedbackConfig::default())?;
/// let mut out = [0u8; 4096];
/// let t0 = Instant::from_secs(100);
///
/// queue.report(t0, feedback.clone());
/// queue.report(t0, feedback);
/// // Not due yet: fewer than 64 events and the oldest is younger than 1 s.
/// assert!(queue.poll_transmit(t0, &mut out).is_none());
/// assert_eq!(queue.poll_timeout(), Some(t0 + Duration::from_secs(1)));
///
/// let t1 = t0 + Duration::from_secs(1);
/// queue.handle_timeout(t1);
/// let tx = queue.poll_transmit(t1, &mut out).expect("the oldest event is 1 s old");
/// assert_eq!(tx.count, 2);
/// assert!(out[..tx.len].starts_with(b"[{"));
///
/// // The service is down: the batch stays queued and is retried with backoff.
/// queue.handle_send_failed(t1, tx.id, None)?;
/// let Some(Event::BatchFailed { retry_in, .. }) = queue.poll_event() else { panic!() };
/// let t2 = t1 + retry_in;
/// let tx = queue.poll_transmit(t2, &mut out).expect("retry is due");
/// queue.handle_sent(t2, tx.id)?;
/// assert_eq!(queue.poll_event(), Some(Event::BatchSent { id: tx.id, count: 2 }));
/// assert_eq!(queue.stats().sent, 2);
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
///
/// `K` is the form the events are kept in ([`keep`](crate::keep)): whole
/// (the default) or [`Packed`](crate::keep::Packed) in a few bytes each.
#[derive(Debug)]
pub struct FeedbackQueue<const N: usize, K = ProxyFeedback> {
    config: FeedbackConfig,
    backoff: Backoff,
    /// The events, oldest first; the first `in_flight.count` are in flight.
    events: Deque<K, N>,
    /// When each event in `events` was reported (same order, same length).
    times: Deque<Instant, N>,
    in_flight: Option<InFlight>,
    /// After a failure: no batch before this.
    retry_at: Option<Instant>,
    next_id: u64,
    reported: u64,
    sent: u64,
    dropped: u64,
    rejected: u64,
    drained: u64,
    /// Drops not yet announced by an `Event::Dropped`.
    unannounced_drops: u64,
    /// The buffer size last reported in `Event::EncodeFailed`.
    encode_blocked: Option<usize>,
    outbox: Deque<Event, EVENT_ROOM>,
    /// Shutting down: every queued event is due now, backoff or not.
    flushing: bool,
}

impl<const N: usize, K: Keep<ProxyFeedback>> FeedbackQueue<N, K> {
    /// An empty queue. Fails if the config is invalid, or names a wire
    /// format this build lacks (`wire`: JSON without the `json` feature).
    /// (`N` = 0 does not compile.)
    pub fn new(config: FeedbackConfig) -> Result<Self, ValidationError> {
        config.wire.check_supported()?;
        let backoff = Self::validate(&config)?;
        Ok(Self::assemble(config, backoff))
    }

    /// Checks `config`; gives the retry backoff it describes. The error
    /// names the field: `batch_size`, `ack_timeout` or `retry.<field>`.
    pub(crate) fn validate(config: &FeedbackConfig) -> Result<Backoff, ValidationError> {
        if config.batch_size == 0 {
            return Err(ValidationError::new(
                "batch_size",
                Reason::OutOfRange {
                    expected: "at least 1",
                },
            ));
        }
        if config.ack_timeout.as_ticks() == 0 {
            return Err(ValidationError::new(
                "ack_timeout",
                Reason::OutOfRange {
                    expected: "a duration above zero",
                },
            ));
        }
        Backoff::new(config.retry).map_err(nest!(
            "retry": "base" | "max_delay" | "max_attempts" | "max_retry_after"
        ))
    }

    /// An empty queue for a validated configuration. Infallible, so that a
    /// caller can build it straight into its final place.
    #[inline(always)]
    pub(crate) fn assemble(config: FeedbackConfig, backoff: Backoff) -> Self {
        Self {
            config,
            backoff,
            events: Deque::new(),
            times: Deque::new(),
            in_flight: None,
            retry_at: None,
            next_id: 1,
            reported: 0,
            sent: 0,
            dropped: 0,
            rejected: 0,
            drained: 0,
            unannounced_drops: 0,
            encode_blocked: None,
            outbox: Deque::new(),
            flushing: false,
        }
    }

    /// The settings.
    pub fn config(&self) -> &FeedbackConfig {
        &self.config
    }

    /// Queues one event. Never blocks, never fails: when the queue is full,
    /// the oldest event is dropped and counted (see the type's doc). Kept
    /// packed, an event too large for its slot loses the end of its
    /// `error_details` until it fits; one that does not fit even without
    /// them is dropped and counted.
    pub fn report(&mut self, now: Instant, feedback: ProxyFeedback) {
        self.reported += 1;
        let Some(kept) = keep_feedback::<K>(feedback) else {
            self.count_drop();
            return;
        };
        if self.events.is_full() {
            self.drop_oldest();
        }
        if self.events.push_back(kept).is_err() {
            // Unreachable (room was just made; heapless refuses N = 0 at
            // compile time); counted, not lost silently.
            self.count_drop();
            return;
        }
        if self.times.push_back(now).is_err() {
            // Unreachable: `times` mirrors `events`. Keep them in step.
            let _ = self.events.pop_back();
            self.count_drop();
        }
    }

    fn drop_oldest(&mut self) {
        if self.events.pop_front().is_some() {
            let _ = self.times.pop_front();
            self.count_drop();
            if let Some(f) = &mut self.in_flight {
                f.count = f.count.saturating_sub(1);
            }
        }
    }

    fn count_drop(&mut self) {
        self.dropped += 1;
        self.unannounced_drops += 1;
    }

    fn batch_max(&self) -> usize {
        self.config.batch_size.min(N)
    }

    /// When the next batch is due if nothing else happens (`None`: nothing
    /// queued). While a batch is in flight, the acknowledgement deadline.
    /// May be in the past: then a batch is due now.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(f) = &self.in_flight {
            return Some(f.deadline);
        }
        let oldest = *self.times.front()?;
        if self.flushing {
            return Some(oldest);
        }
        if let Some(at) = self.retry_at {
            return Some(at);
        }
        if let Some(t) = self.times.get(self.batch_max() - 1) {
            return Some(*t);
        }
        Some(oldest.saturating_add(self.config.max_age))
    }

    /// From now on every queued event is due at once, whatever the batching
    /// delay or the backoff (for a shutdown that sends what it can within a
    /// bound). One batch is still in flight at a time.
    pub fn flush(&mut self) {
        self.flushing = true;
    }

    /// Handles the passing of time: a batch in flight past its
    /// acknowledgement deadline counts as failed. Due batches are handed out
    /// by [`poll_transmit`](Self::poll_transmit).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(f) = self.in_flight
            && now >= f.deadline
        {
            self.fail(now, f, None, FailReason::AckTimeout);
        }
    }

    /// The next batch, if one is due and none is in flight, encoded as a JSON
    /// array into `out`. If `out` cannot hold the whole batch, the batch is
    /// cut to what fits (the rest follows in the next batch); if not even one
    /// event fits, nothing is sent, [`Event::EncodeFailed`] says so and the
    /// queue retries with backoff. Nothing is ever lost for want of room.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        if self.in_flight.is_some() {
            return None;
        }
        let oldest = *self.times.front()?;
        let retrying = match self.retry_at {
            Some(_) if self.flushing => true,
            Some(at) if now < at => return None,
            Some(_) => true,
            None => false,
        };
        let pending = self.events.len();
        let batch_max = self.batch_max();
        let due = self.flushing
            || retrying
            || pending >= batch_max
            || now >= oldest.saturating_add(self.config.max_age);
        if !due {
            return None;
        }
        let want = pending.min(batch_max);
        let batch = &self.events.make_contiguous()[..want];
        let encoded = match self.config.wire {
            #[cfg(feature = "json")]
            WireFormat::Json => match encode_json(batch, out) {
                Ok(len) => Ok((want, len)),
                Err(error) => largest_fitting(batch, out)
                    .ok_or_else(|| encode_json(&batch[..1], out).err().unwrap_or(error)),
            },
            // Refused by `FeedbackQueue::new` and `Resolver::new` in builds
            // without JSON.
            #[cfg(not(feature = "json"))]
            WireFormat::Json => Err(EncodeError::Unsupported {
                format: codec::Format::Json,
            }),
            WireFormat::Postcard => {
                codec::postcard::encode_prefix_with(batch, out, K::encode_postcard)
            }
        };
        let (count, len) = match encoded {
            Ok(fit) => fit,
            Err(single) => {
                self.blocked(now, out.len(), single);
                return None;
            }
        };
        self.encode_blocked = None;
        self.retry_at = None;
        let id = BatchId(self.next_id);
        self.next_id += 1;
        self.in_flight = Some(InFlight {
            id,
            count,
            deadline: now.saturating_add(self.config.ack_timeout),
        });
        Some(Transmit { id, len, count })
    }

    fn blocked(&mut self, now: Instant, capacity: usize, error: EncodeError) {
        if self.encode_blocked != Some(capacity) {
            self.encode_blocked = Some(capacity);
            self.push_event(Event::EncodeFailed { error });
        }
        let delay = self.next_delay(None);
        self.retry_at = Some(now.saturating_add(delay));
    }

    fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        self.backoff.next_delay(retry_after).unwrap_or_else(|_| {
            // Feedback is never given up on: keep trying at the cap, still
            // honouring the hint.
            let cap = self.config.retry.max_delay;
            retry_after.map_or(cap, |h| cap.max(h.min(self.config.retry.max_retry_after)))
        })
    }

    /// The service acknowledged batch `id`: its events (those still queued)
    /// count as sent and leave the queue; the backoff resets.
    pub fn handle_sent(&mut self, now: Instant, id: BatchId) -> Result<(), FeedbackError> {
        let _ = now;
        let count = self.settle(id)?;
        self.sent += count as u64;
        self.push_event(Event::BatchSent { id, count });
        Ok(())
    }

    /// The service refused batch `id` as invalid (400, 413, 415, 422): sending
    /// it again would fail again and hold up every event queued behind it, so
    /// its events leave the queue, counted in [`Stats::rejected`] and announced
    /// by [`Event::BatchRejected`].
    pub fn handle_rejected(&mut self, now: Instant, id: BatchId) -> Result<(), FeedbackError> {
        let _ = now;
        let count = self.settle(id)?;
        self.rejected += count as u64;
        self.push_event(Event::BatchRejected { id, count });
        Ok(())
    }

    /// Sending batch `id` failed (connection error, timeout, 5xx, 429…): its
    /// events stay queued and are sent again after a backoff, never sooner
    /// than `retry_after` (the server's `Retry-After`, honoured up to
    /// `retry.max_retry_after`).
    pub fn handle_send_failed(
        &mut self,
        now: Instant,
        id: BatchId,
        retry_after: Option<Duration>,
    ) -> Result<(), FeedbackError> {
        let f = self.take_in_flight(id)?;
        self.fail(now, f, retry_after, FailReason::SendFailed);
        Ok(())
    }

    /// Batch `id` is done with (acknowledged or refused): its events still
    /// queued leave the queue and the backoff resets. Returns their count.
    fn settle(&mut self, id: BatchId) -> Result<usize, FeedbackError> {
        let f = self.take_in_flight(id)?;
        for _ in 0..f.count {
            let _ = self.events.pop_front();
            let _ = self.times.pop_front();
        }
        self.backoff.reset();
        self.retry_at = None;
        Ok(f.count)
    }

    fn take_in_flight(&mut self, id: BatchId) -> Result<InFlight, FeedbackError> {
        match self.in_flight {
            Some(f) if f.id == id => {
                self.in_flight = None;
                Ok(f)
            }
            _ => Err(FeedbackError::UnknownBatch { id }),
        }
    }

    fn fail(
        &mut self,
        now: Instant,
        f: InFlight,
        retry_after: Option<Duration>,
        reason: FailReason,
    ) {
        self.in_flight = None;
        let retry_in = self.next_delay(retry_after);
        self.retry_at = Some(now.saturating_add(retry_in));
        self.push_event(Event::BatchFailed {
            id: f.id,
            count: f.count,
            reason,
            retry_in,
        });
    }

    fn push_event(&mut self, event: Event) {
        if self.outbox.is_full() {
            let _ = self.outbox.pop_front();
        }
        let _ = self.outbox.push_back(event);
    }

    /// The next thing that happened, for logging and counting. Drain it after
    /// every call; a backlog keeps the latest few events, and the
    /// [`stats`](Self::stats) are exact regardless.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.unannounced_drops > 0 {
            let count = core::mem::take(&mut self.unannounced_drops);
            return Some(Event::Dropped { count });
        }
        self.outbox.pop_front()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        Stats {
            reported: self.reported,
            sent: self.sent,
            dropped: self.dropped,
            rejected: self.rejected,
            drained: self.drained,
            queued: self.events.len(),
            in_flight: self.in_flight.map_or(0, |f| f.count),
        }
    }

    /// The batch in flight, if any: handed out by
    /// [`poll_transmit`](Self::poll_transmit) and not yet acknowledged, failed,
    /// timed out or drained. (Unlike [`Stats::in_flight`], which counts its
    /// events still queued, this stays `Some` even if every one of them was
    /// dropped.)
    pub fn in_flight(&self) -> Option<BatchId> {
        self.in_flight.map(|f| f.id)
    }

    /// Whether no event is queued.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// At shutdown: hands out every queued event, oldest first, in flight or
    /// not (the batch in flight is forgotten; acknowledging it afterwards is
    /// [`FeedbackError::UnknownBatch`]). Events the iterator yields count as
    /// [`Stats::drained`]; events it does not reach (if dropped early) stay
    /// queued.
    pub fn drain(&mut self) -> Drain<'_, N, K> {
        self.in_flight = None;
        self.retry_at = None;
        Drain { queue: self }
    }
}

/// The largest prefix of `batch` whose JSON array fits in `out`, as
/// `(count, len)`, encoded into `out`; `None` if not even one event fits.
#[cfg(feature = "json")]
fn largest_fitting<K: Keep<ProxyFeedback>>(batch: &[K], out: &mut [u8]) -> Option<(usize, usize)> {
    // `fits(lo)` (or lo == 0) and `!fits(hi)`: the encoded length grows with
    // the count, so a binary search finds the boundary.
    let (mut lo, mut hi) = (0, batch.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if encode_json(&batch[..mid], out).is_ok() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if lo == 0 {
        return None;
    }
    let len = encode_json(&batch[..lo], out).ok()?;
    Some((lo, len))
}

/// `feedback` in the queue's form; kept packed, with as much of its
/// `error_details` as fits (`None`: it does not fit even without them).
fn keep_feedback<K: Keep<ProxyFeedback>>(feedback: ProxyFeedback) -> Option<K> {
    let mut feedback = match K::keep(feedback) {
        Ok(kept) => return Some(kept),
        Err(back) => back,
    };
    let details = feedback.error_details.take()?;
    let text = details.as_str();
    let with = |n: usize| {
        let mut f = feedback.clone();
        f.error_details = (n > 0).then(|| ErrorDetails::new(&text[..n]));
        K::keep(f).ok()
    };
    // The longest prefix that fits, by bisection: `fits` does, `too_long`
    // does not (each try encodes once; this is the rare path).
    let mut best = with(0)?;
    let (mut fits, mut too_long) = (0, text.len());
    while too_long - fits > 1 {
        let mid = fits + (too_long - fits) / 2;
        // A character boundary strictly between the two (one is at most
        // three bytes from any index).
        let Some(cut) = (mid..too_long)
            .chain((fits + 1..mid).rev())
            .find(|&i| text.is_char_boundary(i))
        else {
            break;
        };
        match with(cut) {
            Some(kept) => {
                best = kept;
                fits = cut;
            }
            None => too_long = cut,
        }
    }
    Some(best)
}

/// `batch` as one JSON array.
#[cfg(feature = "json")]
fn encode_json<K: Keep<ProxyFeedback>>(batch: &[K], out: &mut [u8]) -> Result<usize, EncodeError> {
    codec::json::encode_any(&Lent(batch), out)
}

/// Kept events serialized as the events they hold (a JSON batch).
#[cfg(feature = "json")]
struct Lent<'a, K>(&'a [K]);

#[cfg(feature = "json")]
impl<K: Keep<ProxyFeedback>> serde::Serialize for Lent<'_, K> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for kept in self.0 {
            let mut scratch = None;
            let event = kept
                .lend(&mut scratch)
                .ok_or_else(|| S::Error::custom("a kept feedback event did not decode"))?;
            seq.serialize_element(event)?;
        }
        seq.end()
    }
}

/// The iterator returned by [`FeedbackQueue::drain`].
#[derive(Debug)]
pub struct Drain<'a, const N: usize, K = ProxyFeedback> {
    queue: &'a mut FeedbackQueue<N, K>,
}

impl<const N: usize, K: Keep<ProxyFeedback>> Iterator for Drain<'_, N, K> {
    type Item = ProxyFeedback;

    fn next(&mut self) -> Option<ProxyFeedback> {
        loop {
            let kept = self.queue.events.pop_front()?;
            let _ = self.queue.times.pop_front();
            match kept.into_value() {
                Some(event) => {
                    self.queue.drained += 1;
                    return Some(event);
                }
                // Unreachable (packed from a valid event); counted, not hidden.
                None => self.queue.count_drop(),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.queue.events.len();
        (n, Some(n))
    }
}

impl<const N: usize, K: Keep<ProxyFeedback>> ExactSizeIterator for Drain<'_, N, K> {}
