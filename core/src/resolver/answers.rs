//! Answers not yet taken with [`Resolver::poll_output`](super::Resolver::poll_output),
//! their routes kept in the profile's form ([`keep`](crate::keep)).

use embassy_time::Instant;
use heapless::Deque;

use super::{Answer, FallbackReason, ResolveError, Route, Ticket};
use crate::keep::Keep;

/// Where a queued answer's route is.
#[derive(Debug)]
enum Held<R> {
    /// In the answer, in the profile's form.
    Kept(R),
    /// Too large for that form: whole, in [`Answers::spill`].
    Spilled,
}

#[derive(Debug)]
struct Queued<R> {
    ticket: Ticket,
    started: Instant,
    result: Result<Held<R>, ResolveError>,
}

/// At most `N` answers, oldest first.
///
/// A route too large for the profile's form (a packed slot) is held whole in
/// one spare slot, shared by every queued answer that gives that route (the
/// waiters of one request). Should a second, different route not fit while
/// the first is still queued, its answer is
/// [`ResolveError::ServiceUnavailable`] with
/// [`FallbackReason::Overloaded`]: a clear refusal, never a wrong route.
#[derive(Debug)]
pub(super) struct Answers<R, const N: usize> {
    queue: Deque<Queued<R>, N>,
    spill: Option<Route>,
    /// Queued answers that hold [`Held::Spilled`].
    spilled: usize,
}

impl<R: Keep<Route>, const N: usize> Answers<R, N> {
    pub(super) const fn new() -> Self {
        Self {
            queue: Deque::new(),
            spill: None,
            spilled: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Queues `answer`; `false` when there is no room (callers reserve it:
    /// waiters and answers never exceed `N`).
    pub(super) fn push(&mut self, answer: Answer) -> bool {
        if self.queue.is_full() {
            return false;
        }
        let result = match answer.result {
            Err(e) => Err(e),
            Ok(route) => match R::keep(route) {
                Ok(kept) => Ok(Held::Kept(kept)),
                Err(route) => self.spill(route),
            },
        };
        self.queue
            .push_back(Queued {
                ticket: answer.ticket,
                started: answer.started,
                result,
            })
            .is_ok()
    }

    fn spill(&mut self, route: Route) -> Result<Held<R>, ResolveError> {
        match &self.spill {
            Some(held) if self.spilled > 0 && *held != route => {
                Err(ResolveError::ServiceUnavailable {
                    reason: FallbackReason::Overloaded,
                })
            }
            _ => {
                self.spill = Some(route);
                self.spilled += 1;
                Ok(Held::Spilled)
            }
        }
    }

    /// The oldest answer.
    pub(super) fn pop(&mut self) -> Option<Answer> {
        let queued = self.queue.pop_front()?;
        let result = match queued.result {
            Err(e) => Err(e),
            Ok(held) => self.release(held).ok_or(ResolveError::ServiceUnavailable {
                // Unreachable: a kept route unpacks, a spilled one is held.
                reason: FallbackReason::ServiceFailed,
            }),
        };
        Some(Answer {
            ticket: queued.ticket,
            result,
            started: queued.started,
        })
    }

    /// The route `held` stands for, its slot released.
    fn release(&mut self, held: Held<R>) -> Option<Route> {
        match held {
            Held::Kept(kept) => kept.into_value(),
            Held::Spilled => {
                self.spilled = self.spilled.saturating_sub(1);
                if self.spilled == 0 {
                    self.spill.take()
                } else {
                    self.spill.clone()
                }
            }
        }
    }

    /// Discards the answer for `ticket`, keeping the others in order;
    /// whether there was one.
    pub(super) fn remove(&mut self, ticket: Ticket) -> bool {
        let mut found = false;
        for _ in 0..self.queue.len() {
            let Some(queued) = self.queue.pop_front() else {
                break;
            };
            if !found && queued.ticket == ticket {
                found = true;
                if let Ok(held) = queued.result {
                    let _ = self.release(held);
                }
            } else {
                // Room: one was just taken out.
                let _ = self.queue.push_back(queued);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keep::Packed;
    use crate::resolver::Source;

    fn answer(n: u64, url: &str) -> Answer {
        Answer {
            ticket: Ticket(n),
            result: Ok(Route {
                proxy_url: Some(url.parse().expect("valid")),
                proxy_id: None,
                source: Source::Service,
            }),
            started: Instant::from_secs(n),
        }
    }

    #[test]
    fn packed_routes_come_back_in_order_credentials_and_all() {
        let mut a = Answers::<Packed<Route, 64>, 4>::new();
        assert!(a.push(answer(1, "socks5://u:pw@a:1080")));
        assert!(a.push(answer(2, "http://b:8080")));
        assert_eq!(a.pop(), Some(answer(1, "socks5://u:pw@a:1080")));
        assert_eq!(a.pop(), Some(answer(2, "http://b:8080")));
        assert_eq!(a.pop(), None);
    }

    #[test]
    fn a_route_too_large_is_spilled_whole_and_shared() {
        let long = format!("socks5://u:pw@{}:1080", "h".repeat(100));
        let mut a = Answers::<Packed<Route, 64>, 4>::new();
        assert!(a.push(answer(1, &long)));
        assert!(a.push(answer(2, &long)));
        assert!(a.push(answer(3, "http://b:8080")));
        // A second, different route too large while the first is queued.
        let other = format!("socks5://{}:1080", "o".repeat(100));
        assert!(a.push(answer(4, &other)));
        assert_eq!(a.pop(), Some(answer(1, &long)));
        assert_eq!(a.pop(), Some(answer(2, &long)));
        assert_eq!(a.pop(), Some(answer(3, "http://b:8080")));
        let refused = a.pop().expect("answered");
        assert_eq!(refused.ticket, Ticket(4));
        assert_eq!(
            refused.result,
            Err(ResolveError::ServiceUnavailable {
                reason: FallbackReason::Overloaded
            })
        );
        // The spare slot is free again.
        assert!(a.push(answer(5, &other)));
        assert_eq!(a.pop(), Some(answer(5, &other)));
    }

    #[test]
    fn removing_an_answer_keeps_the_others_in_order_and_frees_the_spill() {
        let long = format!("socks5://{}:1080", "h".repeat(100));
        let other = format!("socks5://{}:1080", "o".repeat(100));
        let mut a = Answers::<Packed<Route, 64>, 4>::new();
        assert!(a.push(answer(1, &long)));
        assert!(a.push(answer(2, "http://b:8080")));
        assert!(a.remove(Ticket(1)));
        assert!(!a.remove(Ticket(1)));
        assert!(a.push(answer(3, &other)), "the spill is free");
        assert_eq!(a.pop(), Some(answer(2, "http://b:8080")));
        assert_eq!(a.pop(), Some(answer(3, &other)));
    }

    #[test]
    fn whole_routes_need_no_spill() {
        let long = format!("socks5://{}:1080", "h".repeat(100));
        let mut a = Answers::<Route, 2>::new();
        assert!(a.push(answer(1, &long)));
        assert!(a.push(answer(2, &long)));
        assert!(!a.push(answer(3, &long)), "full");
        assert_eq!(a.pop(), Some(answer(1, &long)));
        assert_eq!(a.spilled, 0);
    }
}
