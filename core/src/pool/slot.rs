//! One proxy's slot: its inventory entry (compacted to bit masks), its
//! leases, its per-exchange cool-down bars, its health averages and its
//! recent failures by category.

use super::inventory::MAX_PROXY_REGIONS;
use super::status::{CATEGORIES, FailureCounts, category_index};
use super::{BARS_PER_PROXY, LEASE_BUCKETS, OTHER_EXCHANGE, PoolConfig};
use crate::model::{ErrorCategory, ProxyId, ProxyUrl};

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Lease {
    pub(super) start: u64,
    pub(super) count: u32,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Bar {
    pub(super) exchange: u8,
    pub(super) until: u64,
}

/// One proxy: its inventory entry (compacted to bit masks) and its state.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub(super) occupied: bool,
    pub(super) enabled: bool,
    pub(super) generation: u32,
    pub(super) id: ProxyId,
    pub(super) url: ProxyUrl,
    pub(super) id_hash: u64,
    pub(super) regions: u32,
    pub(super) region_list: [u8; MAX_PROXY_REGIONS],
    pub(super) allowed: u64,
    pub(super) ctypes: u8,
    pub(super) weight: u16,
    pub(super) max_conns: u32,
    // health
    pub(super) success: f32,
    pub(super) latency: Option<f32>,
    pub(super) samples: u32,
    pub(super) consecutive: u16,
    // leases and cool-downs
    pub(super) leases: [Lease; LEASE_BUCKETS],
    pub(super) bars: [Option<Bar>; BARS_PER_PROXY],
    pub(super) barred: u64,
    // ejection
    pub(super) ejected_until: Option<u64>,
    pub(super) ejections: u32,
    pub(super) probe_at: Option<u64>,
    /// A reload shrank the pool: the ejection ends at `ejected_until` (its
    /// time) for the share limit ([`RestoreCause::ShareLimit`](super::RestoreCause::ShareLimit)).
    pub(super) share_restore: bool,
    // recent failures
    pub(super) window_start: u64,
    pub(super) fail_cur: [u16; CATEGORIES],
    pub(super) fail_prev: [u16; CATEGORIES],
}

impl Slot {
    pub(super) fn open(&self) -> u32 {
        self.leases
            .iter()
            .fold(0u32, |a, l| a.saturating_add(l.count))
    }

    pub(super) fn available(&self) -> bool {
        self.occupied
            && self.enabled
            && self.ejected_until.is_none()
            && self.open() < self.max_conns
    }

    pub(super) fn health(&self, cfg: &PoolConfig) -> f32 {
        let target = cfg.latency_target_ms as f32;
        let factor = match self.latency {
            Some(l) if l > target => target / l,
            _ => 1.0,
        };
        let h = self.success * factor;
        if h.is_nan() { 0.0 } else { h.clamp(0.0, 1.0) }
    }

    pub(super) fn deadline(&self, lease_ttl: u64) -> u64 {
        let mut d = u64::MAX;
        for l in &self.leases {
            if l.count > 0 {
                d = d.min(l.start.saturating_add(lease_ttl));
            }
        }
        for b in self.bars.iter().flatten() {
            d = d.min(b.until);
        }
        if let Some(u) = self.ejected_until {
            d = d.min(u);
        }
        if let Some(p) = self.probe_at {
            d = d.min(p);
        }
        d
    }

    pub(super) fn leases_due(&self, now: u64, ttl: u64) -> bool {
        self.leases
            .iter()
            .any(|l| l.count > 0 && l.start.saturating_add(ttl) <= now)
    }

    pub(super) fn expire_leases(&mut self, now: u64, ttl: u64) -> u32 {
        let mut expired = 0u32;
        for l in &mut self.leases {
            if l.count > 0 && l.start.saturating_add(ttl) <= now {
                expired = expired.saturating_add(l.count);
                *l = Lease::default();
            }
        }
        expired
    }

    pub(super) fn add_lease(&mut self, now: u64, ttl: u64) {
        let width = (ttl / 3).max(1);
        let newest = self
            .leases
            .iter_mut()
            .filter(|l| l.count > 0)
            .max_by_key(|l| l.start);
        if let Some(l) = newest
            && now < l.start.saturating_add(width)
        {
            l.count = l.count.saturating_add(1);
            return;
        }
        if let Some(l) = self.leases.iter_mut().find(|l| l.count == 0) {
            *l = Lease {
                start: now,
                count: 1,
            };
        } else if let Some(l) = self.leases.iter_mut().max_by_key(|l| l.start) {
            // Only reachable when time runs backwards: merge into the newest.
            l.count = l.count.saturating_add(1);
        }
    }

    /// Closes the oldest lease; `false` when none is open.
    pub(super) fn release_lease(&mut self) -> bool {
        match self
            .leases
            .iter_mut()
            .filter(|l| l.count > 0)
            .min_by_key(|l| l.start)
        {
            Some(l) => {
                l.count -= 1;
                true
            }
            None => false,
        }
    }

    pub(super) fn expire_bars(&mut self, now: u64) {
        for b in &mut self.bars {
            if b.is_some_and(|b| b.until <= now) {
                *b = None;
            }
        }
        self.recompute_barred();
    }

    pub(super) fn recompute_barred(&mut self) {
        self.barred = self
            .bars
            .iter()
            .flatten()
            .fold(0u64, |m, b| m | (1u64 << b.exchange));
    }

    /// Bars the proxy for `exchange` until `until`; returns whether that
    /// pushed out the bar of another exchange (all [`BARS_PER_PROXY`] in use).
    pub(super) fn add_bar(&mut self, exchange: u8, until: u64) -> bool {
        let mut replaced = false;
        if let Some(b) = self
            .bars
            .iter_mut()
            .flatten()
            .find(|b| b.exchange == exchange)
        {
            b.until = b.until.max(until);
        } else if let Some(free) = self.bars.iter_mut().find(|b| b.is_none()) {
            *free = Some(Bar { exchange, until });
        } else if let Some(first) = self
            .bars
            .iter_mut()
            .min_by_key(|b| b.map_or(0, |b| b.until))
        {
            *first = Some(Bar { exchange, until });
            replaced = true;
        }
        self.recompute_barred();
        replaced
    }

    /// Drops every bar for an exchange in `mask`; returns whether any was.
    pub(super) fn drop_bars(&mut self, mask: u64) -> bool {
        let mut dropped = false;
        for b in &mut self.bars {
            if b.is_some_and(|b| mask & (1u64 << b.exchange) != 0) {
                *b = None;
                dropped = true;
            }
        }
        if dropped {
            self.recompute_barred();
        }
        dropped
    }

    /// The exchanges this proxy's allow-list names (0 without one).
    pub(super) fn allow_listed(&self) -> u64 {
        if self.allowed & OTHER_EXCHANGE == 0 {
            self.allowed
        } else {
            0
        }
    }

    pub(super) fn record_success(&mut self, latency_ms: Option<u32>, alpha: f32) {
        self.success += alpha * (1.0 - self.success);
        if let Some(l) = latency_ms {
            let l = l as f32;
            self.latency = Some(match self.latency {
                Some(avg) => avg + alpha * (l - avg),
                None => l,
            });
        }
        self.samples = self.samples.saturating_add(1);
        self.consecutive = 0;
    }

    pub(super) fn record_failure(&mut self, alpha: f32) {
        self.success -= alpha * self.success;
        self.samples = self.samples.saturating_add(1);
        self.consecutive = self.consecutive.saturating_add(1);
    }

    pub(super) fn count_failure(&mut self, c: ErrorCategory, now: u64, window: u64) {
        self.rotate_window(now, window);
        if let Some(n) = self.fail_cur.get_mut(category_index(c)) {
            *n = n.saturating_add(1);
        }
    }

    pub(super) fn rotate_window(&mut self, now: u64, window: u64) {
        if now >= self.window_start.saturating_add(window.saturating_mul(2)) {
            self.fail_cur = [0; CATEGORIES];
            self.fail_prev = [0; CATEGORIES];
            self.window_start = now;
        } else if now >= self.window_start.saturating_add(window) {
            self.fail_prev = self.fail_cur;
            self.fail_cur = [0; CATEGORIES];
            self.window_start = self.window_start.saturating_add(window);
        }
    }

    pub(super) fn recent_failures(&self, now: u64, window: u64) -> FailureCounts {
        let mut out = [0u32; CATEGORIES];
        let age = now.saturating_sub(self.window_start);
        for (i, o) in out.iter_mut().enumerate() {
            let cur = u32::from(self.fail_cur.get(i).copied().unwrap_or(0));
            let prev = u32::from(self.fail_prev.get(i).copied().unwrap_or(0));
            *o = if age < window {
                cur + prev
            } else if age < window.saturating_mul(2) {
                cur
            } else {
                0
            };
        }
        FailureCounts(out)
    }
}
