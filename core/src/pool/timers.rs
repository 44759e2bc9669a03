//! Timers and probes: leases expiring, ejections and cool-downs ending,
//! active probes of ejected proxies — each processed only while the event
//! queue has room for what it emits (see [Events](super#events)).

use embassy_time::Instant;

use super::status::{Event, Probe, ProbeToken, RestoreCause};
use super::{EVENT_QUEUE, Pool, TIMER_RESERVE, ticks};
use crate::storage::Storage;

impl<const N: usize, const S: usize, St: Storage> Pool<N, S, St> {
    /// When [`Pool::handle_timeout`] should next be called, if ever: the
    /// earliest end of an ejection, cool-down or lease, or the next probe.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let d = self.tree.root().deadline;
        (d != u64::MAX).then(|| Instant::from_ticks(d))
    }

    /// Processes the timers due at `now`: ends ejections and cool-downs,
    /// expires leases, queues due probes. `O(log N)` per due timer.
    ///
    /// Timers never push an event out of the queue: those that would emit
    /// an event wait while it has no room for it (see the [module
    /// docs](super#events)). When [`Pool::poll_timeout`] is still at or
    /// before `now` afterwards, drain [`Pool::poll_event`] and call again.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.process_timers(now.as_ticks(), TIMER_RESERVE);
    }

    /// Processes the timers due at `t` while the event queue has room for
    /// their events and `reserve` more; the others stay due.
    pub(super) fn process_timers(&mut self, t: u64, reserve: usize) {
        let lease_ttl = ticks(self.config.lease_ttl);
        let probe = self.config.probe_interval.map(|p| ticks(p).max(1));
        // Each pass moves one slot's deadline past `t`; the bound is a
        // safety net, never reached.
        for _ in 0..(4 * N + 8) {
            let Some(s) = self.tree.due(t) else {
                break;
            };
            let room = EVENT_QUEUE - self.events.len();
            let Some(slot) = self.slots.get_mut(s) else {
                break;
            };
            let restore = slot.ejected_until.is_some_and(|u| u <= t);
            let emits = usize::from(slot.leases_due(t, lease_ttl)) + usize::from(restore);
            if emits > 0 && room < emits + reserve {
                // Held back until the caller drains the events.
                break;
            }
            let expired = slot.expire_leases(t, lease_ttl);
            slot.expire_bars(t);
            let proxy = slot.id.clone();
            let cause = if slot.share_restore {
                RestoreCause::ShareLimit
            } else {
                RestoreCause::Expired
            };
            let mut probe_due = false;
            if !restore && slot.probe_at.is_some_and(|p| p <= t) {
                slot.probe_at = probe.map(|p| t.saturating_add(p));
                probe_due = slot.probe_at.is_some();
            }
            let token = ProbeToken {
                slot: s as u32,
                generation: slot.generation,
            };
            if expired > 0 {
                self.emit(Event::LeasesExpired {
                    proxy,
                    count: expired,
                });
            }
            if probe_due && !self.probes.is_full() {
                let _ = self.probes.push_back(token);
            }
            if restore {
                self.restore(s, cause);
            }
            self.refresh(s);
        }
    }

    /// The next active probe to run, if any (processing the timers due at
    /// `now` first).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Probe> {
        self.handle_timeout(now);
        while let Some(token) = self.probes.pop_front() {
            let Some(slot) = self.slots.get(token.slot as usize) else {
                continue;
            };
            if slot.occupied && slot.generation == token.generation && slot.ejected_until.is_some()
            {
                return Some(Probe {
                    token,
                    target: slot.url.without_credentials(),
                });
            }
        }
        None
    }

    /// The result of a probe from [`Pool::poll_transmit`]: when `reachable`,
    /// the proxy comes back at once. Returns whether the result changed
    /// anything (a stale token, or a proxy no longer ejected, changes nothing).
    pub fn handle_probe_result(
        &mut self,
        now: Instant,
        token: ProbeToken,
        reachable: bool,
    ) -> bool {
        self.handle_timeout(now);
        let current = self.slots.get(token.slot as usize).is_some_and(|x| {
            x.occupied && x.generation == token.generation && x.ejected_until.is_some()
        });
        if current && reachable {
            self.restore(token.slot as usize, RestoreCause::Probe);
            return true;
        }
        false
    }
}
