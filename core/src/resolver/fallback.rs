//! Falling back when the service cannot answer in time: stale cache within
//! its grace, then the embedded configuration, then a direct connection, as
//! the last `fallback_policy` the service gave for the key allows (the
//! policy memory, keyed by [`key_hash`]).

use embassy_time::Instant;

use super::flight::Waiter;
use super::{Answer, Event, FallbackReason, Resolution, ResolveError, Resolver, RouteRef, Source};
use crate::cache::{CacheKey, Freshness};
use crate::embedded::EmbeddedRoutes;
use crate::keep::Profile;
use crate::model::FallbackPolicy;
use crate::storage::Storage;

/// FNV-1a of a cache key: the policy memory keys on it.
fn key_hash(key: &CacheKey) -> u64 {
    use core::hash::{Hash, Hasher};
    let mut h = crate::hash::Fnv::default();
    key.hash(&mut h);
    h.finish()
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
    /// Answers waiter `w` with its fallback for `key` (`None`, which no
    /// waiter has, since its request is in flight while it waits: no route).
    pub(super) fn answer_fallback(
        &mut self,
        now: Instant,
        w: Waiter,
        key: Option<CacheKey>,
        reason: FallbackReason,
    ) {
        let result = match key {
            Some(key) => self
                .fallback(now, key, reason, w.started)
                .map(|r| r.to_owned()),
            None => Err(ResolveError::ServiceUnavailable { reason }),
        };
        self.push_answer(Answer {
            ticket: w.ticket,
            result,
            started: w.started,
        });
    }

    pub(super) fn fallback_ready(
        &mut self,
        now: Instant,
        key: CacheKey,
        reason: FallbackReason,
    ) -> Resolution<'_> {
        match self.fallback(now, key, reason, now) {
            Ok(route) => Resolution::Ready(route),
            Err(e) => Resolution::Failed(e),
        }
    }

    pub(super) fn remember_policy(&mut self, key: &CacheKey, policy: FallbackPolicy) {
        let h = key_hash(key);
        if self.policies.insert(h, policy).is_err() {
            // Full: forget an arbitrary old key (it falls back to the default).
            if let Some(old) = self.policies.keys().next().copied() {
                self.policies.swap_remove(&old);
            }
            let _ = self.policies.insert(h, policy);
        }
    }

    /// The fallback route for `key` (a resolve made at `started`): stale
    /// cache within grace, then embedded, then direct, as the last policy for
    /// the key allows. Counts and reports it.
    fn fallback(
        &mut self,
        now: Instant,
        key: CacheKey,
        reason: FallbackReason,
        started: Instant,
    ) -> Result<RouteRef<'_>, ResolveError> {
        self.stats.fallbacks[reason as usize] += 1;
        // An entry found here is usually past its TTL (a fresh one would have
        // answered the resolve), but label it by what it is.
        let cached = self.cache.get_stale(now, &key).map(|hit| hit.freshness);
        let policy = self
            .policies
            .get(&key_hash(&key))
            .copied()
            .unwrap_or(self.config.default_fallback_policy);
        let source = if let Some(freshness) = cached {
            match freshness {
                Freshness::Fresh => Source::Cache,
                Freshness::Stale => Source::Stale,
            }
        } else {
            match policy {
                FallbackPolicy::Fail => {
                    self.stats.failed += 1;
                    self.emit(Event::Fallback {
                        key,
                        reason,
                        source: None,
                    });
                    return Err(ResolveError::ServiceUnavailable { reason });
                }
                FallbackPolicy::EmbeddedFallback if self.config.fallback_to_embedded => {
                    self.embedded_route = self
                        .embedded
                        .embedded_route(&key.exchange_id, key.connection_type);
                    if self.embedded_route.is_some() {
                        Source::Embedded
                    } else {
                        Source::Direct
                    }
                }
                _ => Source::Direct,
            }
        };
        self.count_resolved(source, now - started);
        self.emit(Event::Fallback {
            key: key.clone(),
            reason,
            source: Some(source),
        });
        Ok(match source {
            // The entry `get_stale` found just above; nothing changed since.
            Source::Stale | Source::Cache => self.last_hit_route(source),
            Source::Embedded => RouteRef {
                proxy_url: self.embedded_route.as_ref().map(|r| &r.proxy_url),
                proxy_id: None,
                source,
            },
            _ => RouteRef {
                proxy_url: None,
                proxy_id: None,
                source: Source::Direct,
            },
        })
    }
}
