//! Exchange cool-downs: a `geo_blocked` or `rate_limited` failure bars the
//! proxy for that exchange for a while (and a geo-block a single-region
//! proxy's region too), and the table of exchanges tracked by name that
//! those bars and the allow-lists share.

use embassy_time::Instant;

use super::status::Event;
use super::{MAX_EXCHANGES, NO_REGION, Pool, ProxySpec};
use crate::model::{ErrorCategory, ExchangeId};
use crate::storage::Storage;

#[derive(Debug, Clone, Copy)]
pub(super) struct RegionBar {
    exchange: u8,
    region: u8,
    until: u64,
}

impl<const N: usize, const S: usize, St: Storage> Pool<N, S, St> {
    pub(super) fn barred_regions(&self, exchange: u8, now: u64) -> u32 {
        self.region_bars
            .iter()
            .filter(|b| b.exchange == exchange && b.until > now)
            .fold(0, |m, b| m | (1u32 << b.region))
    }

    /// The index of `e`, taking a free entry of the table if it is new;
    /// `None` when the table is full.
    fn intern_exchange(&mut self, e: &ExchangeId) -> Option<u8> {
        if let Some(i) = self.exchange_index(e) {
            return Some(i);
        }
        if let Some((i, free)) = self
            .exchanges
            .iter_mut()
            .enumerate()
            .find(|(_, x)| x.is_none())
        {
            *free = Some(e.clone());
            return Some(i as u8);
        }
        self.exchanges.push(Some(e.clone())).ok()?;
        Some((self.exchanges.len() - 1) as u8)
    }

    /// Free entries of the exchange table.
    fn free_exchange_entries(&self) -> usize {
        MAX_EXCHANGES - self.exchanges.iter().filter(|x| x.is_some()).count()
    }

    /// The index of `e` for a cool-down at `t`. When the table is full, it
    /// is swept first (at most once per time a cool-down-only entry may
    /// have become free), so entries of expired cool-downs are reused.
    fn intern_for_cool_down(&mut self, e: &ExchangeId, t: u64) -> Option<u8> {
        if let Some(i) = self.exchange_index(e) {
            return Some(i);
        }
        if self.free_exchange_entries() == 0 && t >= self.exchange_sweep_at {
            let allow = self.slots_allow_listed();
            self.sweep_exchanges(t, allow);
        }
        self.intern_exchange(e)
    }

    /// The exchanges named by the allow-list of any proxy of the inventory.
    fn slots_allow_listed(&self) -> u64 {
        self.slots
            .iter()
            .filter(|x| x.occupied)
            .fold(0, |m, x| m | x.allow_listed())
    }

    /// Frees every entry of the exchange table that neither `allow` (the
    /// allow-listed exchanges) nor a live cool-down (a proxy's bar or a
    /// region bar ending after `t`) refers to. Returns, per entry, when its
    /// last live cool-down ends (0: none), and sets `exchange_sweep_at`.
    /// `O(N)`.
    fn sweep_exchanges(&mut self, t: u64, allow: u64) -> [u64; MAX_EXCHANGES] {
        let mut ends = [0u64; MAX_EXCHANGES];
        let mut note = |exchange: u8, until: u64| {
            if until > t
                && let Some(end) = ends.get_mut(usize::from(exchange))
            {
                *end = (*end).max(until);
            }
        };
        for slot in self.slots.iter().filter(|x| x.occupied) {
            for b in slot.bars.iter().flatten() {
                note(b.exchange, b.until);
            }
        }
        for b in &self.region_bars {
            note(b.exchange, b.until);
        }
        let mut unused = 0u64;
        let mut next = u64::MAX;
        for (i, (x, end)) in self.exchanges.iter().zip(ends).enumerate() {
            let bit = 1u64 << i;
            if x.is_none() || allow & bit != 0 {
                continue;
            }
            if end == 0 {
                unused |= bit;
            } else {
                next = next.min(end);
            }
        }
        self.free_exchanges(unused);
        self.exchange_sweep_at = next;
        ends
    }

    /// Frees the entries of the exchange table in `mask` and drops every
    /// bar that refers to one. No allow-list may name them.
    fn free_exchanges(&mut self, mask: u64) {
        if mask == 0 {
            return;
        }
        for (i, x) in self.exchanges.iter_mut().enumerate() {
            if mask & (1u64 << i) != 0 {
                *x = None;
            }
        }
        self.region_bars
            .retain(|b| mask & (1u64 << b.exchange) == 0);
        for s in 0..self.slots.len() {
            let changed = self.slots.get_mut(s).is_some_and(|x| x.drop_bars(mask));
            if changed {
                self.refresh(s);
            }
        }
    }

    /// Makes room in the exchange table for the allow-lists of `inventory`
    /// (already validated: they name at most [`MAX_EXCHANGES`] exchanges)
    /// and interns their exchanges. Entries nothing refers to any more are
    /// freed; when that is not enough, the live cool-downs of exchanges no
    /// allow-list names are ended early, those that end first first (each
    /// reported as [`Event::CoolDownsEnded`]). The allow-lists always fit.
    pub(super) fn intern_allow_lists(&mut self, t: u64, inventory: &[ProxySpec]) {
        let mut allow = 0u64;
        // Distinct names not yet interned (`validate_inventory` bounds them).
        let mut new: heapless::Vec<&ExchangeId, MAX_EXCHANGES> = heapless::Vec::new();
        for e in inventory.iter().flat_map(|x| x.exchanges.iter().flatten()) {
            match self.exchange_index(e) {
                Some(i) => allow |= 1u64 << i,
                None if !new.contains(&e) => {
                    let _ = new.push(e);
                }
                None => {}
            }
        }
        let ends = self.sweep_exchanges(t, allow);
        let short = new.len().saturating_sub(self.free_exchange_entries());
        if short > 0 {
            // Every entry left that no allow-list names has a live
            // cool-down: end those that end first.
            let mut live: heapless::Vec<(u64, u8), MAX_EXCHANGES> = self
                .exchanges
                .iter()
                .zip(ends)
                .enumerate()
                .filter(|(i, (x, _))| x.is_some() && allow & (1u64 << i) == 0)
                .map(|(i, (_, end))| (end, i as u8))
                .collect();
            live.sort_unstable();
            let mut evict = 0u64;
            for &(_, i) in live.iter().take(short) {
                evict |= 1u64 << i;
                if let Some(Some(exchange)) = self.exchanges.get(usize::from(i)) {
                    let exchange = exchange.clone();
                    self.emit(Event::CoolDownsEnded { exchange });
                }
            }
            self.free_exchanges(evict);
        }
        for e in new {
            let _ = self.intern_exchange(e);
        }
    }

    pub(super) fn cool_down(
        &mut self,
        s: usize,
        exchange: &ExchangeId,
        category: ErrorCategory,
        t: u64,
        until: u64,
    ) {
        let Some(e) = self.intern_for_cool_down(exchange, t) else {
            if let Some(slot) = self.slots.get(s) {
                let proxy = slot.id.clone();
                self.emit(Event::CoolDownDropped {
                    proxy,
                    exchange: exchange.clone(),
                });
            }
            return;
        };
        // The entry cannot be free before this bar ends; a bar pushed out
        // may free another entry at once.
        self.exchange_sweep_at = self.exchange_sweep_at.min(until);
        let Some(slot) = self.slots.get_mut(s) else {
            return;
        };
        if slot.add_bar(e, until) {
            self.exchange_sweep_at = t;
        }
        let proxy = slot.id.clone();
        let single_region = (category == ErrorCategory::GeoBlocked
            && slot.regions.count_ones() == 1)
            .then(|| slot.region_list.first().copied())
            .flatten()
            .filter(|r| *r != NO_REGION);
        let mut region = None;
        if let Some(r) = single_region {
            if self.bar_region(e, r, until) {
                self.exchange_sweep_at = t;
            }
            region = self.regions.get(usize::from(r)).cloned();
        }
        self.emit(Event::CooledDown {
            proxy,
            exchange: exchange.clone(),
            category,
            until: Instant::from_ticks(until),
            region,
        });
    }

    /// Bars `region` for `exchange` until `until`; returns whether that
    /// replaced another bar (the table of region bars was full).
    fn bar_region(&mut self, exchange: u8, region: u8, until: u64) -> bool {
        if let Some(b) = self
            .region_bars
            .iter_mut()
            .find(|b| b.exchange == exchange && b.region == region)
        {
            b.until = b.until.max(until);
            return false;
        }
        let bar = RegionBar {
            exchange,
            region,
            until,
        };
        if self.region_bars.is_full() {
            // Replace the bar that ends first (expired ones end first).
            if let Some(first) = self.region_bars.iter_mut().min_by_key(|b| b.until) {
                *first = bar;
            }
            true
        } else {
            let _ = self.region_bars.push(bar);
            false
        }
    }
}
