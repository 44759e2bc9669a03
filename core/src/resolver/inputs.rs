//! The driving loop's inputs: [`Resolver::resolve`] for each connection,
//! [`Resolver::report`] when a connection attempt ends (with
//! [`proxy_at_fault`] deciding whether its proxy's cached answers go),
//! [`Resolver::handle_reply`] for each transmit's outcome and
//! [`Resolver::handle_timeout`] when the timer fires.

use embassy_time::Instant;

use super::flight::Waiter;
use super::{
    CorrelationId, Event, FallbackReason, InputError, MAX_RETRY_AFTER, Reply, Resolution, Resolver,
    RouteRef, Source, Ticket,
};
use crate::breaker::Outcome;
use crate::cache::{CacheKey, CacheKeyRef};
use crate::codec;
use crate::contract;
use crate::embedded::EmbeddedRoutes;
use crate::keep::{Keep, Profile};
use crate::model::{ErrorCategory, FeedbackEvent, ProxyFeedback, ProxyRequest, ProxyResponse};
use crate::storage::Storage;

/// Whether a failure reported in feedback is the proxy's fault, so that
/// [`Resolver::report`] removes the cached answers naming it at once (an
/// adapter that queues other feedback before reporting it must report these
/// without delay).
pub fn proxy_at_fault(feedback: &ProxyFeedback) -> bool {
    let failed = matches!(
        feedback.event,
        FeedbackEvent::Failure | FeedbackEvent::Timeout
    ) || !feedback.success;
    let target_fault = matches!(
        feedback.error_category,
        Some(ErrorCategory::TargetHttp5xx | ErrorCategory::TargetTls)
    );
    failed
        && !target_fault
        && !matches!(
            feedback.event,
            FeedbackEvent::ConnectStart | FeedbackEvent::Disconnect
        )
}

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
    /// Resolves a route for `request`, waiting at most the configured
    /// `resolve_deadline` for the service.
    pub fn resolve(&mut self, now: Instant, request: &ProxyRequest) -> Resolution<'_> {
        let deadline = now.saturating_add(self.config.resolve_deadline);
        self.resolve_by(now, request, deadline)
    }

    /// Like [`resolve`](Self::resolve), with the caller's own deadline.
    pub fn resolve_by(
        &mut self,
        now: Instant,
        request: &ProxyRequest,
        deadline: Instant,
    ) -> Resolution<'_> {
        // The lookup needs `&mut` (recency, refresh-ahead) and borrows the
        // request's key; the value is then lent through `last_hit`, as a
        // conditional return of the lookup's own borrow does not pass today's
        // borrow checker.
        if self
            .cache
            .get(now, CacheKeyRef::from_request(request))
            .is_some()
        {
            // The hot path: counted, not evented (see `Event::Resolved`).
            self.stats.resolved[Source::Cache as usize] += 1;
            return self.cached();
        }
        let key = CacheKey::from_request(request);
        if self.waiters.len() + self.answers.len() >= WAITERS {
            return self.fallback_ready(now, key, FallbackReason::Overloaded);
        }
        let serial = match self.flights.iter().find(|f| f.key == key) {
            Some(f) => f.serial,
            None => match self.start_flight(now, key.clone(), request.clone(), false) {
                Ok(serial) => serial,
                Err(reason) => return self.fallback_ready(now, key, reason),
            },
        };
        let ticket = Ticket(self.next_serial);
        self.next_serial += 1;
        let waiter = Waiter {
            ticket,
            flight: serial,
            started: now,
            deadline: deadline.max(now),
        };
        // Room was checked above.
        let _ = self.waiters.push(waiter);
        Resolution::Pending(ticket)
    }

    /// The route of the cache entry a lookup has just found.
    fn cached(&mut self) -> Resolution<'_> {
        // `last_hit` right after a hit always finds the entry.
        Resolution::Ready(self.last_hit_route(Source::Cache))
    }

    /// The route of the cache entry the last lookup found, as `source`
    /// (a direct connection if there is none); a packed entry is decoded
    /// into `lent` to be lent.
    pub(super) fn last_hit_route(&mut self, source: Source) -> RouteRef<'_> {
        match self.cache.last_hit().and_then(|v| v.lend(&mut self.lent)) {
            Some(r) => RouteRef {
                proxy_url: r.proxy_url.as_ref(),
                proxy_id: r.metadata.proxy_id.as_ref(),
                source,
            },
            None => RouteRef {
                proxy_url: None,
                proxy_id: None,
                source: Source::Direct,
            },
        }
    }

    /// Reports how a connection went. Never blocks and never fails: the event
    /// is queued for the service (the oldest queued event is dropped and
    /// counted when the queue is full). A failure that is the proxy's fault
    /// also removes every cached answer naming that proxy, so the next resolve
    /// asks the service again.
    pub fn report(&mut self, now: Instant, feedback: ProxyFeedback) {
        if proxy_at_fault(&feedback) {
            let count = self
                .cache
                .invalidate_proxy(feedback.proxy_id.as_ref(), feedback.proxy_url.as_ref());
            if count > 0 {
                self.emit(Event::ProxyInvalidated { count });
            }
        }
        self.feedback.report(now, feedback);
    }

    /// The outcome of transmit `id`.
    pub fn handle_reply(
        &mut self,
        now: Instant,
        id: CorrelationId,
        reply: Reply<'_>,
    ) -> Result<(), InputError> {
        if let Some(pos) = self.checks.iter().position(|(c, ..)| *c == id) {
            let (_, check, ..) = self.checks.swap_remove(pos);
            let ok = matches!(reply, Reply::Ok(_))
                || matches!(reply, Reply::Status { code, .. } if contract::is_healthy(code));
            // An unknown check id means the endpoints already timed it out.
            let _ = self.endpoints.handle_check_result(now, check, ok);
            return Ok(());
        }
        if let Some((fid, batch)) = self.feedback_in_flight
            && fid == id
        {
            self.feedback_in_flight = None;
            let result = match reply {
                Reply::Ok(_) => self.feedback.handle_sent(now, batch),
                Reply::Status { code, .. } if contract::is_success(code) => {
                    self.feedback.handle_sent(now, batch)
                }
                // The service refused the batch itself: retrying cannot help.
                Reply::Status { code, .. } if contract::is_body_refused(code) => {
                    self.feedback.handle_rejected(now, batch)
                }
                Reply::Status { retry_after, .. } => {
                    self.feedback.handle_send_failed(now, batch, retry_after)
                }
                Reply::Failed => self.feedback.handle_send_failed(now, batch, None),
            };
            // An unknown batch means the queue already timed it out and will resend.
            let _ = result;
            return Ok(());
        }
        let (fi, ai) = self
            .find_attempt(id)
            .ok_or(InputError::UnknownCorrelation { id })?;
        match reply {
            Reply::Ok(body) => match match self.config.wire {
                #[cfg(feature = "json")]
                contract::WireFormat::Json => codec::json::decode::<ProxyResponse>(body),
                // Refused by `Resolver::new` in builds without JSON.
                #[cfg(not(feature = "json"))]
                contract::WireFormat::Json => Err(codec::DecodeError::Unsupported {
                    format: codec::Format::Json,
                }),
                contract::WireFormat::Postcard => codec::postcard::decode::<ProxyResponse>(body),
            } {
                Ok(response) => {
                    self.end_attempt(now, fi, ai, Outcome::Success);
                    self.budget.record_success(now);
                    self.complete_flight(now, fi, response);
                }
                Err(_) => {
                    let endpoint = self.flights[fi].attempts[ai].endpoint;
                    self.emit(Event::BadReply {
                        id,
                        endpoint,
                        status: 200,
                    });
                    self.attempt_failed(now, fi, ai, Outcome::Failure);
                }
            },
            Reply::Status { code, retry_after } => {
                let endpoint = self.flights[fi].attempts[ai].endpoint;
                if let (429 | 503, Some(wait)) = (code, retry_after) {
                    // The service asked to be left alone: no request goes
                    // to it before then (resolves fall back meanwhile).
                    let wait = wait.min(MAX_RETRY_AFTER);
                    self.endpoints.hold_off(endpoint, now.saturating_add(wait));
                }
                self.emit(Event::BadReply {
                    id,
                    endpoint,
                    status: code,
                });
                // A refusal of the request itself is not the endpoint's health.
                let outcome = if contract::is_request_refused(code) {
                    Outcome::Ignored
                } else {
                    Outcome::Failure
                };
                self.attempt_failed(now, fi, ai, outcome);
            }
            Reply::Failed => self.attempt_failed(now, fi, ai, Outcome::Failure),
        }
        Ok(())
    }

    /// Applies every timer that has passed by `now`: resolves past their
    /// deadline fall back, requests past their timeout fail, hedges go out,
    /// and the machines inside advance. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Resolves past their deadline fall back; their request goes on and
        // its reply still fills the cache.
        while let Some(w) = self.take_waiter(|w| w.deadline <= now) {
            // A waiter's request is in flight until it answers every waiter.
            let key = self
                .flights
                .iter()
                .find(|f| f.serial == w.flight)
                .map(|f| f.key.clone());
            self.answer_fallback(now, w, key, FallbackReason::Deadline);
        }
        // Requests past their timeout: every outstanding attempt failed.
        let mut fi = 0;
        while fi < self.flights.len() {
            if self.flights[fi].expires_at <= now {
                for ai in 0..self.flights[fi].attempts.len() {
                    self.end_attempt(now, fi, ai, Outcome::Failure);
                }
                self.fail_flight(now, fi);
                continue;
            }
            let hedge_due = self.flights[fi].hedge_at.is_some_and(|t| t <= now);
            if hedge_due {
                self.flights[fi].hedge_at = None;
                self.try_another_attempt(now, fi, true);
            }
            fi += 1;
        }
        self.endpoints.handle_timeout(now);
        // Health checks the endpoints timed out are gone: forget their ids.
        // The endpoints failed the checks past their deadline: forget their ids.
        self.checks.retain(|(_, _, deadline, _)| *deadline > now);
        self.cache.handle_timeout(now);
        self.feedback.handle_timeout(now);
        if let Some((_, batch)) = self.feedback_in_flight
            && self.feedback.in_flight() != Some(batch)
        {
            // The queue timed the batch out itself; a late reply is ignored.
            self.feedback_in_flight = None;
        }
    }
}
