//! Inventory replacement: [`Pool::replace_inventory`] validates a new
//! inventory, keeps the state of the proxies that stay, frees and reuses
//! the slots of those that go, and rebuilds the lookup indexes and the tree.

use embassy_time::Instant;

use super::slot::{Lease, Slot};
use super::status::CATEGORIES;
use super::{
    BARS_PER_PROXY, InventoryChange, InventoryError, LEASE_BUCKETS, MAX_EXCHANGES,
    MAX_PROXY_REGIONS, MAX_REGIONS, NO_REGION, Pool, ProxySpec, TIMER_RESERVE, Tree, endpoint_hash,
    id_hash,
};
use crate::model::{ExchangeId, ProxyId, Region};
use crate::storage::Storage;

impl<const N: usize, const S: usize, St: Storage> Pool<N, S, St> {
    /// Replaces the inventory. Proxies whose id stays keep their health,
    /// leases, cool-downs and ejection state (their URL, regions, allow-lists,
    /// weight, limit and enabled flag are updated); the others are dropped or
    /// added. On error nothing changes.
    pub fn replace_inventory(
        &mut self,
        now: Instant,
        inventory: &[ProxySpec],
    ) -> Result<InventoryChange, InventoryError> {
        let t = now.as_ticks();
        let new_names = self.validate_inventory(inventory)?;
        // The timers due now, leaving room for the events of the cool-downs
        // this reload may end (at most one per exchange it adds).
        self.process_timers(t, new_names.max(TIMER_RESERVE));

        for spec in inventory {
            for r in &spec.regions {
                if self.region_index(r).is_none() {
                    let _ = self.regions.push(r.clone());
                }
            }
        }

        let mut change = InventoryChange::default();
        // Drop the proxies that are gone (`scratch` holds the new ids, sorted).
        for s in 0..self.slots.len() {
            let Some(slot) = self.slots.get(s) else {
                continue;
            };
            if !slot.occupied || self.scratch_find(inventory, &slot.id).is_some() {
                continue;
            }
            let was_ejected = slot.ejected_until.is_some();
            if let Some(slot) = self.slots.get_mut(s) {
                slot.occupied = false;
                slot.generation = slot.generation.wrapping_add(1);
                slot.ejected_until = None;
                slot.probe_at = None;
                slot.share_restore = false;
            }
            if was_ejected {
                self.ejected = self.ejected.saturating_sub(1);
            }
            self.occupied = self.occupied.saturating_sub(1);
            change.removed += 1;
        }
        // With the removed proxies gone, their cool-downs no longer hold
        // entries of the exchange table.
        self.intern_allow_lists(t, inventory);

        // Update the proxies that stay, add the new ones.
        let mut free = 0usize;
        self.order.clear();
        for spec in inventory {
            let compact = self.compact(spec);
            if let Ok(s) = self.find_slot(Some(&spec.id), None) {
                if let Some(slot) = self.slots.get_mut(s) {
                    apply_spec(slot, spec, &compact);
                    change.kept += 1;
                }
                // Capacity was checked by `validate_inventory`.
                let _ = self.order.push(s as u32);
                continue;
            }
            while self.slots.get(free).is_some_and(|x| x.occupied) {
                free += 1;
            }
            let fresh = new_slot(spec, &compact, t);
            match self.slots.get_mut(free) {
                Some(slot) => {
                    let generation = slot.generation;
                    *slot = Slot {
                        generation,
                        ..fresh
                    };
                }
                None => {
                    // Capacity was checked by `validate_inventory`.
                    let _ = self.slots.push(fresh);
                }
            }
            let _ = self.order.push(free as u32);
            free += 1;
            self.occupied += 1;
            change.added += 1;
        }

        // Rebuild the lookup indexes and the tree.
        self.by_id.clear();
        self.by_url.clear();
        for (s, slot) in self.slots.iter().enumerate() {
            if slot.occupied {
                let _ = self.by_id.push((slot.id_hash, s as u32));
                let _ = self.by_url.push((endpoint_hash(&slot.url), s as u32));
            }
        }
        self.by_id.sort_unstable();
        self.by_url.sort_unstable();
        self.scratch.clear();
        self.rebuild_tree();

        // A smaller pool may allow fewer ejected proxies: those whose
        // ejections end first end now, through the timers (so that their
        // events wait for room like any timer's). Ejections already due
        // (held back) end anyway.
        let mut ending = self
            .slots
            .iter()
            .filter(|x| x.ejected_until.is_some_and(|u| u <= t))
            .count() as u32;
        while self.ejected.saturating_sub(ending) > self.max_ejected() {
            let first = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(s, x)| x.ejected_until.filter(|u| *u > t).map(|u| (u, s)))
                .min();
            let Some((_, s)) = first else {
                break;
            };
            if let Some(slot) = self.slots.get_mut(s) {
                slot.ejected_until = Some(t);
                slot.share_restore = true;
            }
            ending += 1;
            self.refresh(s);
        }
        self.process_timers(t, TIMER_RESERVE);
        Ok(change)
    }

    fn rebuild_tree(&mut self) {
        let mut tree = core::mem::replace(&mut self.tree, Tree::new());
        tree.rebuild(|s| self.leaf_of(s));
        self.tree = tree;
    }

    fn scratch_find(&self, inventory: &[ProxySpec], id: &ProxyId) -> Option<usize> {
        let h = id_hash(id);
        let start = self.scratch.partition_point(|e| e.0 < h);
        self.scratch
            .get(start..)
            .unwrap_or(&[])
            .iter()
            .take_while(|e| e.0 == h)
            .map(|e| e.1 as usize)
            .find(|i| inventory.get(*i).is_some_and(|x| &x.id == id))
    }

    /// Checks `inventory` and fills `scratch` with its ids. Returns how
    /// many exchanges its allow-lists name that the pool does not track yet.
    fn validate_inventory(&mut self, inventory: &[ProxySpec]) -> Result<usize, InventoryError> {
        if inventory.len() > N {
            return Err(InventoryError::TooManyProxies {
                len: inventory.len(),
                max: N,
            });
        }
        // Names not yet interned, kept by reference: at most the room left.
        let mut new_regions: heapless::Vec<&Region, MAX_REGIONS> = heapless::Vec::new();
        // Every distinct exchange the allow-lists name: cool-downs give
        // way to them (see `intern_allow_lists`), so only their number counts.
        let mut allow_listed: heapless::Vec<&ExchangeId, MAX_EXCHANGES> = heapless::Vec::new();
        let region_room = MAX_REGIONS - self.regions.len();
        for spec in inventory {
            let invalid = |field, problem| InventoryError::InvalidProxy {
                id: spec.id.clone(),
                field,
                problem,
            };
            if spec.weight == 0 {
                return Err(invalid("weight", "must be at least 1"));
            }
            if !spec.connection_types.http && !spec.connection_types.websocket {
                return Err(invalid(
                    "connection_types",
                    "allows neither http nor websocket; allow at least one",
                ));
            }
            if spec.exchanges.as_ref().is_some_and(|l| l.is_empty()) {
                return Err(invalid(
                    "exchanges",
                    "is an empty allow-list; omit it to allow every exchange",
                ));
            }
            for r in &spec.regions {
                if self.region_index(r).is_none() && !new_regions.contains(&r) {
                    if new_regions.len() >= region_room {
                        return Err(InventoryError::TooManyRegions { max: MAX_REGIONS });
                    }
                    let _ = new_regions.push(r);
                }
            }
            for e in spec.exchanges.iter().flatten() {
                if !allow_listed.contains(&e) && allow_listed.push(e).is_err() {
                    return Err(InventoryError::TooManyExchanges { max: MAX_EXCHANGES });
                }
            }
        }
        self.scratch.clear();
        for (i, spec) in inventory.iter().enumerate() {
            let _ = self.scratch.push((id_hash(&spec.id), i as u32));
        }
        self.scratch.sort_unstable();
        for w in self.scratch.windows(2) {
            if let [a, b] = w
                && a.0 == b.0
                && let (Some(x), Some(y)) =
                    (inventory.get(a.1 as usize), inventory.get(b.1 as usize))
                && x.id == y.id
            {
                return Err(InventoryError::DuplicateId { id: x.id.clone() });
            }
        }
        Ok(allow_listed
            .iter()
            .filter(|e| self.exchange_index(e).is_none())
            .count())
    }

    fn compact(&self, spec: &ProxySpec) -> Compact {
        let mut regions = 0u32;
        let mut region_list = [NO_REGION; MAX_PROXY_REGIONS];
        for (r, out) in spec.regions.iter().zip(region_list.iter_mut()) {
            if let Some(i) = self.region_index(r) {
                regions |= 1 << i;
                *out = i;
            }
        }
        let allowed = match &spec.exchanges {
            None => u64::MAX,
            Some(list) => list
                .iter()
                .filter_map(|e| self.exchange_index(e))
                .fold(0u64, |m, i| m | (1u64 << i)),
        };
        Compact {
            regions,
            region_list,
            allowed,
        }
    }
}

struct Compact {
    regions: u32,
    region_list: [u8; MAX_PROXY_REGIONS],
    allowed: u64,
}

fn apply_spec(slot: &mut Slot, spec: &ProxySpec, c: &Compact) {
    slot.url = spec.url.clone();
    slot.regions = c.regions;
    slot.region_list = c.region_list;
    slot.allowed = c.allowed;
    slot.ctypes = spec.connection_types.mask();
    slot.weight = spec.weight;
    slot.max_conns = spec.max_connections.unwrap_or(u32::MAX);
    slot.enabled = spec.enabled;
}

fn new_slot(spec: &ProxySpec, c: &Compact, now: u64) -> Slot {
    let mut slot = Slot {
        occupied: true,
        enabled: true,
        generation: 0,
        id: spec.id.clone(),
        url: spec.url.clone(),
        id_hash: id_hash(&spec.id),
        regions: 0,
        region_list: [NO_REGION; MAX_PROXY_REGIONS],
        allowed: 0,
        ctypes: 0,
        weight: 1,
        max_conns: u32::MAX,
        success: 1.0,
        latency: None,
        samples: 0,
        consecutive: 0,
        leases: [Lease::default(); LEASE_BUCKETS],
        bars: [None; BARS_PER_PROXY],
        barred: 0,
        ejected_until: None,
        ejections: 0,
        probe_at: None,
        share_restore: false,
        window_start: now,
        fail_cur: [0; CATEGORIES],
        fail_prev: [0; CATEGORIES],
    };
    apply_spec(&mut slot, spec, c);
    slot
}
