//! The driving loop's outputs: [`Resolver::poll_output`] (transmits,
//! answers, events, then the next timeout), [`Resolver::cancel`], and the
//! shutdown calls [`Resolver::flush_feedback`] and
//! [`Resolver::drain_feedback`]; with the event queue and counters they feed.

use embassy_time::{Duration, Instant};

#[cfg(doc)]
use super::MIN_TRANSMIT_BUFFER;
use super::{CorrelationId, Event, Output, Resolver, Source, Ticket, Transmit, TransmitKind};
use crate::breaker::Outcome;
use crate::codec;
use crate::contract;
use crate::embedded::EmbeddedRoutes;
use crate::endpoints::Health;
use crate::feedback;
use crate::keep::{Keep, Profile};
use crate::model::ProxyRequest;
use crate::storage::Storage;

impl<
    E: EmbeddedRoutes,
    const CACHE: usize,
    const ENDPOINTS: usize,
    const FEEDBACK: usize,
    const FLIGHTS: usize,
    const WAITERS: usize,
    St: Storage,
    P: Profile,
    const EVENTS: usize,
> Resolver<E, CACHE, ENDPOINTS, FEEDBACK, FLIGHTS, WAITERS, St, P, EVENTS>
{
    /// The next thing to do, after any input: drain until it gives
    /// [`Output::Timeout`].
    ///
    /// It gives, in this order: every [`Output::Transmit`] (with its body
    /// written to `out`, at least [`MIN_TRANSMIT_BUFFER`] bytes); then every
    /// [`Output::Answer`] for a pending resolve; then every [`Output::Event`];
    /// then [`Output::Timeout`] with when [`handle_timeout`](Self::handle_timeout)
    /// is next due. The order matters: making a transmit can answer resolves
    /// (a request that cannot be encoded falls back), emit events and move
    /// the next timeout, so the timeout is only final once nothing else is
    /// left.
    pub fn poll_output(&mut self, now: Instant, out: &mut [u8]) -> Output {
        if let Some(t) = self.poll_transmit(now, out) {
            return Output::Transmit(t);
        }
        if let Some(a) = self.answers.pop() {
            return Output::Answer(a);
        }
        if let Some(e) = self.poll_event() {
            return Output::Event(e);
        }
        Output::Timeout(self.poll_timeout())
    }

    /// Withdraws a pending resolve (its caller went away): its slot is free at
    /// once, and an answer not yet taken is discarded. The service request it
    /// joined goes on, and its reply still fills the cache. Returns whether
    /// the ticket was pending or answered and not yet taken.
    pub fn cancel(&mut self, ticket: Ticket) -> bool {
        if self.take_waiter(|w| w.ticket == ticket).is_some() {
            return true;
        }
        self.answers.remove(ticket)
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        // Background refreshes the cache asked for become requests.
        while let Some(key) = self.cache.poll_refresh(now) {
            if self.flights.iter().any(|f| f.key == key) {
                continue;
            }
            let mut request = ProxyRequest::new(
                key.exchange_id.clone(),
                key.connection_type,
                self.config.client_id.clone(),
            );
            request.region = key.region.clone();
            match self.start_flight(now, key.clone(), request, true) {
                Ok(_) => self.emit(Event::Refresh {
                    key,
                    succeeded: None,
                }),
                Err(_) => {
                    self.cache.refresh_failed(now, &key);
                    self.emit(Event::Refresh {
                        key,
                        succeeded: Some(false),
                    });
                }
            }
        }
        // Service requests not sent yet.
        for fi in 0..self.flights.len() {
            let Some(ai) = self.flights[fi]
                .attempts
                .iter()
                .position(|a| !a.sent && a.selected.is_some())
            else {
                continue;
            };
            let flight = &mut self.flights[fi];
            let encoded = match self.config.wire {
                #[cfg(feature = "json")]
                contract::WireFormat::Json => {
                    let mut scratch = None;
                    match flight.request.lend(&mut scratch) {
                        Some(request) => codec::json::encode(request, out),
                        None => Err(codec::EncodeError::Other {
                            format: codec::Format::Json,
                        }),
                    }
                }
                // Refused by `Resolver::new` in builds without JSON.
                #[cfg(not(feature = "json"))]
                contract::WireFormat::Json => Err(codec::EncodeError::Unsupported {
                    format: codec::Format::Json,
                }),
                contract::WireFormat::Postcard => flight.request.encode_postcard(out),
            };
            match encoded {
                Ok(len) => {
                    let attempt = &mut flight.attempts[ai];
                    attempt.sent = true;
                    return Some(Transmit {
                        id: attempt.id,
                        endpoint: attempt.endpoint,
                        kind: TransmitKind::Resolve,
                        len,
                        deadline: flight.expires_at,
                    });
                }
                Err(_) => {
                    // The caller's buffer is too small: not the endpoint's fault.
                    self.attempt_failed(now, fi, ai, Outcome::Ignored);
                    return self.poll_transmit(now, out);
                }
            }
        }
        // Health checks.
        if let Some(check) = self.endpoints.poll_transmit(now) {
            let id = self.next_correlation();
            // An endpoint has one check in flight: a new one supersedes the old.
            self.checks.retain(|(.., index)| *index != check.index);
            let _ = self
                .checks
                .push((id, check.id, check.deadline, check.index));
            return Some(Transmit {
                id,
                endpoint: check.index,
                kind: TransmitKind::HealthCheck,
                len: 0,
                deadline: check.deadline,
            });
        }
        // Feedback, to the best endpoint that is not down.
        if self.feedback_in_flight.is_none()
            && let Some(endpoint) = self.feedback_endpoint()
            && let Some(t) = self.feedback.poll_transmit(now, out)
        {
            let id = self.next_correlation();
            self.feedback_in_flight = Some((id, t.id));
            return Some(Transmit {
                id,
                endpoint,
                kind: TransmitKind::Feedback(t.id),
                len: t.len,
                deadline: now.saturating_add(self.config.request_timeout),
            });
        }
        None
    }

    /// The next event, oldest first; then those of the machines inside.
    fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        if let Some(e) = self.endpoints.poll_event() {
            return Some(Event::Endpoint(e));
        }
        if let Some(e) = self.cache.poll_event() {
            return Some(Event::Cache(e));
        }
        self.feedback.poll_event().map(Event::Feedback)
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due, as things
    /// stand (what [`poll_output`](Self::poll_output) ends with once nothing
    /// else is left). A read-only query.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let waiters = self.waiters.iter().map(|w| w.deadline);
        let flights = self
            .flights
            .iter()
            .flat_map(|f| [Some(f.expires_at), f.hedge_at])
            .flatten();
        // Feedback that is due but has no endpoint to go to waits for an
        // endpoint's health check, which has its own timer.
        let feedback = if self.feedback_in_flight.is_some() || self.feedback_endpoint().is_some() {
            self.feedback.poll_timeout()
        } else {
            None
        };
        waiters
            .chain(flights)
            .chain(self.endpoints.poll_timeout())
            .chain(self.cache.poll_timeout())
            .chain(feedback)
            .min()
    }

    /// At shutdown, first: send every queued feedback event now, whatever
    /// the batching delay or the backoff (then drain
    /// [`poll_output`](Self::poll_output) as usual).
    pub fn flush_feedback(&mut self) {
        self.feedback.flush();
    }

    /// At shutdown: every feedback event still queued, oldest first, for the
    /// adapter to send or persist. They count as drained.
    pub fn drain_feedback(&mut self) -> feedback::Drain<'_, FEEDBACK, P::Feedback> {
        self.feedback_in_flight = None;
        self.feedback.drain()
    }

    pub(super) fn next_correlation(&mut self) -> CorrelationId {
        let id = CorrelationId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    pub(super) fn emit(&mut self, event: Event) {
        if self.events.is_full() {
            let _ = self.events.pop_front();
            self.stats.dropped_events += 1;
        }
        let _ = self.events.push_back(event);
    }

    pub(super) fn count_resolved(&mut self, source: Source, latency: Duration) {
        self.stats.resolved[source as usize] += 1;
        self.emit(Event::Resolved { source, latency });
    }

    /// The endpoint feedback goes to: the best priority among healthy ones,
    /// else among suspect ones; never a down one (the queue keeps the events).
    fn feedback_endpoint(&self) -> Option<usize> {
        [Health::Healthy, Health::Suspect]
            .into_iter()
            .find_map(|wanted| {
                (0..self.endpoints.len())
                    .filter(|i| self.endpoints.health(*i) == Some(wanted))
                    .min_by_key(|i| self.endpoints.endpoint(*i).map_or(u8::MAX, |e| e.priority))
            })
    }
}
