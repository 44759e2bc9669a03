//! Refresh-ahead and warm keys: the keys to refresh in the background, when
//! a failed refresh may be tried again, and the timer that keeps warm keys
//! loaded.

use embassy_time::Instant;

use super::storage::{List, NIL};
use super::{Cache, CacheKey, CacheValue, Event, after};
use crate::storage::Storage;

/// Refresh state of a warm key while it has no entry.
#[derive(Debug, Clone, Copy)]
pub(super) struct WarmState {
    /// Scheduled, waiting for [`Cache::poll_refresh`].
    pub(super) queued: bool,
    /// Not scheduled again before this.
    pub(super) not_before: Instant,
}

impl<V: CacheValue, const N: usize, St: Storage, const EVENTS: usize> Cache<V, N, St, EVENTS> {
    /// The next key to refresh in the background, if any: first those a lookup
    /// found due (oldest first), then warm keys [`Cache::handle_timeout`]
    /// found missing or due. Each key comes out once; it is not scheduled
    /// again until its outcome is reported ([`Cache::insert`] or
    /// [`Cache::refresh_failed`]) or `refresh_timeout` passes.
    pub fn poll_refresh(&mut self, now: Instant) -> Option<CacheKey> {
        self.next_refresh(now)
    }

    /// Whether [`poll_refresh`](Self::poll_refresh) has a key to hand out
    /// (a constant-time check).
    pub fn refresh_pending(&self) -> bool {
        self.pending.head != NIL || self.warm.iter().any(|w| w.queued)
    }

    fn next_refresh(&mut self, now: Instant) -> Option<CacheKey> {
        let in_flight_until = after(now, self.config.refresh_timeout);
        let head = self.pending.head;
        if head != NIL {
            self.unlink(List::Pending, head);
            let m = self.meta(head)?;
            m.queued = false;
            m.refresh_not_before = in_flight_until;
            let key = self.keys.get(head as usize)?.clone()?;
            if let Some(w) = self.warm_index(&key) {
                self.warm[w].not_before = in_flight_until;
            }
            return Some(key);
        }
        let w = self.warm.iter().position(|w| w.queued)?;
        self.warm[w].queued = false;
        self.warm[w].not_before = in_flight_until;
        self.config.warm_keys.get(w).cloned()
    }

    /// Reports that the refresh of `key` failed: the key can be scheduled
    /// again from `now + refresh_retry`. The entry itself stays as it was.
    pub fn refresh_failed(&mut self, now: Instant, key: &CacheKey) {
        let retry_at = after(now, self.config.refresh_retry);
        if let Some((_, slot)) = self.find(key)
            && let Some(m) = self.meta(slot)
        {
            m.refresh_not_before = retry_at;
        }
        if let Some(w) = self.warm_index(key) {
            self.warm[w].not_before = retry_at;
        }
    }

    /// When [`Cache::handle_timeout`] should next run: the earliest time a
    /// warm key is missing or due and not yet scheduled. `None` without warm
    /// keys (refresh-ahead of other keys is driven by lookups).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for (key, w) in self.config.warm_keys.iter().zip(&self.warm) {
            let meta = self
                .find(key)
                .and_then(|(_, slot)| self.meta.get(slot as usize));
            let due = match meta {
                Some(m) if m.queued => None,
                Some(m) => Some(m.refresh_not_before),
                None if w.queued => None,
                None => Some(w.not_before),
            };
            next = match (next, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        next
    }

    /// Schedules a refresh for every warm key that is missing or due at `now`
    /// ([`Event::RefreshScheduled`] with `warm: true`); the keys come out of
    /// [`Cache::poll_refresh`].
    pub fn handle_timeout(&mut self, now: Instant) {
        for w in 0..self.warm.len() {
            let Some(key) = self.config.warm_keys.get(w) else {
                break;
            };
            match self.find(key) {
                Some((_, slot)) => {
                    let due = self
                        .meta
                        .get(slot as usize)
                        .is_some_and(|m| !m.queued && now >= m.refresh_not_before);
                    if due {
                        self.schedule(slot, true);
                    }
                }
                None => {
                    let state = &mut self.warm[w];
                    if !state.queued && now >= state.not_before {
                        state.queued = true;
                        let key = key.clone();
                        self.emit(Event::RefreshScheduled { key, warm: true });
                    }
                }
            }
        }
    }
}
