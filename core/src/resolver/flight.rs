//! Service requests in flight: a [`Flight`] per key (concurrent resolves of
//! a key join it as [`Waiter`]s), each with up to [`MAX_ATTEMPTS`]
//! [`Attempt`]s (first try, hedge, retries), from start to the answer or the
//! failure.

use embassy_time::Instant;

use super::{
    Answer, CorrelationId, Event, FallbackReason, MAX_ATTEMPTS, Resolver, Route, Source, Ticket,
};
use crate::breaker::Outcome;
use crate::cache::CacheKey;
use crate::embedded::EmbeddedRoutes;
use crate::endpoints::Selected;
use crate::keep::{Keep, Profile};
use crate::model::{ProxyRequest, ProxyResponse};
use crate::storage::Storage;

#[derive(Debug)]
pub(super) struct Attempt {
    pub(super) id: CorrelationId,
    pub(super) endpoint: usize,
    /// The endpoint's breaker permit, given back when the attempt ends.
    pub(super) selected: Option<Selected>,
    pub(super) sent: bool,
}

/// A service request in flight; `R` is the request in the profile's form.
#[derive(Debug)]
pub(super) struct Flight<R> {
    pub(super) serial: u64,
    pub(super) key: CacheKey,
    pub(super) request: R,
    pub(super) attempts: heapless::Vec<Attempt, MAX_ATTEMPTS>,
    pub(super) hedge_at: Option<Instant>,
    pub(super) expires_at: Instant,
    pub(super) refresh: bool,
}

impl<R> Flight<R> {
    fn outstanding(&self) -> usize {
        self.attempts
            .iter()
            .filter(|a| a.selected.is_some())
            .count()
    }
}

#[derive(Debug)]
pub(super) struct Waiter {
    pub(super) ticket: Ticket,
    /// Its request's serial: the key is the request's.
    pub(super) flight: u64,
    pub(super) started: Instant,
    pub(super) deadline: Instant,
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
    pub(super) fn find_attempt(&self, id: CorrelationId) -> Option<(usize, usize)> {
        self.flights.iter().enumerate().find_map(|(fi, f)| {
            f.attempts
                .iter()
                .position(|a| a.id == id && a.selected.is_some())
                .map(|ai| (fi, ai))
        })
    }

    pub(super) fn start_flight(
        &mut self,
        now: Instant,
        key: CacheKey,
        request: ProxyRequest,
        refresh: bool,
    ) -> Result<u64, FallbackReason> {
        if self.flights.is_full() {
            return Err(FallbackReason::Overloaded);
        }
        let request = keep_request::<P::Request>(request).ok_or(FallbackReason::Overloaded)?;
        let selected = self
            .endpoints
            .select(now)
            .ok_or(FallbackReason::NoEndpoint)?;
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut attempts = heapless::Vec::new();
        let _ = attempts.push(Attempt {
            id: self.next_correlation(),
            endpoint: selected.index(),
            selected: Some(selected),
            sent: false,
        });
        let hedging = self.endpoints.len() > 1 && self.config.hedge_delay.as_ticks() > 0;
        let hedge_at = hedging.then(|| now.saturating_add(self.config.hedge_delay));
        let _ = self.flights.push(Flight {
            serial,
            key,
            request,
            attempts,
            hedge_at,
            expires_at: now.saturating_add(self.config.request_timeout),
            refresh,
        });
        Ok(serial)
    }

    /// Gives attempt `ai`'s permit back with `outcome` (once).
    pub(super) fn end_attempt(&mut self, now: Instant, fi: usize, ai: usize, outcome: Outcome) {
        if let Some(selected) = self.flights[fi].attempts[ai].selected.take() {
            // A stale permit (the breaker moved on) is not an error for us.
            let _ = self.endpoints.record(now, selected, outcome);
        }
    }

    pub(super) fn attempt_failed(&mut self, now: Instant, fi: usize, ai: usize, outcome: Outcome) {
        self.end_attempt(now, fi, ai, outcome);
        if self.flights[fi].outstanding() > 0 {
            return; // another attempt may still answer
        }
        if !self.try_another_attempt(now, fi, false) {
            self.fail_flight(now, fi);
        }
    }

    /// Sends the request to another endpoint, within the attempt limit and the
    /// retry budget. Returns whether it did.
    pub(super) fn try_another_attempt(&mut self, now: Instant, fi: usize, hedge: bool) -> bool {
        let flight = &self.flights[fi];
        if flight.attempts.is_full() {
            return false;
        }
        let last = flight.attempts.last().map_or(0, |a| a.endpoint);
        let first = flight.attempts[0].id;
        // Spend a token only for an attempt that is really sent: a hedge with
        // no other endpoint to go to must not starve a later retry.
        if self.budget.available(now) == 0 {
            return false;
        }
        let selected = if hedge {
            // A hedge must go elsewhere; a retry may go anywhere usable.
            self.endpoints.next_after(now, last)
        } else {
            self.endpoints
                .next_after(now, last)
                .or_else(|| self.endpoints.select(now))
        };
        let Some(selected) = selected else {
            return false;
        };
        // `available` said there is a token at `now`.
        let _ = self.budget.try_retry(now);
        let id = self.next_correlation();
        let endpoint = selected.index();
        let _ = self.flights[fi].attempts.push(Attempt {
            id,
            endpoint,
            selected: Some(selected),
            sent: false,
        });
        if hedge {
            self.stats.hedges += 1;
            self.emit(Event::Hedged {
                first,
                id,
                endpoint,
            });
        } else {
            self.stats.retries += 1;
        }
        true
    }

    pub(super) fn complete_flight(&mut self, now: Instant, fi: usize, response: ProxyResponse) {
        let flight = self.flights.swap_remove(fi);
        // The other attempts are abandoned: neither success nor failure.
        for attempt in flight.attempts {
            if let Some(selected) = attempt.selected {
                let _ = self.endpoints.record(now, selected, Outcome::Ignored);
            }
        }
        self.remember_policy(&flight.key, response.fallback_policy);
        let route = Route {
            proxy_url: response.proxy_url.clone(),
            proxy_id: response.metadata.proxy_id.clone(),
            source: Source::Service,
        };
        match P::Response::keep(response) {
            Ok(kept) => self.cache.insert(now, flight.key.clone(), kept),
            Err(_) => self.emit(Event::NotCached {
                key: flight.key.clone(),
            }),
        }
        if flight.refresh {
            self.emit(Event::Refresh {
                key: flight.key.clone(),
                succeeded: Some(true),
            });
        }
        while let Some(w) = self.take_waiter(|w| w.flight == flight.serial) {
            self.count_resolved(Source::Service, now - w.started);
            self.push_answer(Answer {
                ticket: w.ticket,
                result: Ok(route.clone()),
                started: w.started,
            });
        }
    }

    pub(super) fn fail_flight(&mut self, now: Instant, fi: usize) {
        let flight = self.flights.swap_remove(fi);
        for attempt in flight.attempts {
            if let Some(selected) = attempt.selected {
                let _ = self.endpoints.record(now, selected, Outcome::Failure);
            }
        }
        if flight.refresh {
            self.cache.refresh_failed(now, &flight.key);
            self.emit(Event::Refresh {
                key: flight.key.clone(),
                succeeded: Some(false),
            });
        }
        while let Some(w) = self.take_waiter(|w| w.flight == flight.serial) {
            self.answer_fallback(
                now,
                w,
                Some(flight.key.clone()),
                FallbackReason::ServiceFailed,
            );
        }
    }

    /// Removes and returns a waiting resolve that matches `pred`.
    pub(super) fn take_waiter(&mut self, pred: impl Fn(&Waiter) -> bool) -> Option<Waiter> {
        let i = self.waiters.iter().position(pred)?;
        Some(self.waiters.swap_remove(i))
    }

    pub(super) fn push_answer(&mut self, answer: Answer) {
        // Room is reserved: waiters + answers never exceed WAITERS.
        let _ = self.answers.push(answer);
    }
}

/// `request` in the profile's form; kept packed, without its informational
/// metadata if that is what it takes to fit (`None`: it does not fit even
/// then).
fn keep_request<R: Keep<ProxyRequest>>(request: ProxyRequest) -> Option<R> {
    match R::keep(request) {
        Ok(kept) => Some(kept),
        Err(mut back) if back.metadata != Default::default() => {
            back.metadata = Default::default();
            R::keep(back).ok()
        }
        Err(_) => None,
    }
}
