//! The status snapshot: every proxy of the inventory with its health and
//! state, for a status page or a metrics endpoint.

use embassy_time::Instant;

use super::slot::Slot;
use super::status::{ProxyState, ProxyStatus};
use super::{NO_REGION, Pool, ticks};
use crate::model::ProxyId;
use crate::storage::Storage;

impl<const N: usize, const S: usize, St: Storage> Pool<N, S, St> {
    /// Every proxy of the inventory with its health and state, in the
    /// order of the last [`Pool::replace_inventory`].
    pub fn proxies(&self, now: Instant) -> impl Iterator<Item = ProxyStatus<'_>> + '_ {
        let t = now.as_ticks();
        self.order
            .iter()
            .filter_map(|&s| self.slots.get(s as usize))
            .filter(|x| x.occupied)
            .map(move |x| self.status_of(x, t))
    }

    /// One proxy, by id.
    pub fn proxy(&self, now: Instant, id: &ProxyId) -> Option<ProxyStatus<'_>> {
        let s = self.find_slot(Some(id), None).ok()?;
        self.slots.get(s).map(|x| self.status_of(x, now.as_ticks()))
    }

    fn status_of<'a>(&'a self, x: &'a Slot, t: u64) -> ProxyStatus<'a> {
        let state = if !x.enabled {
            ProxyState::Disabled
        } else if x.ejected_until.is_some() {
            ProxyState::Ejected
        } else if x.bars.iter().flatten().any(|b| b.until > t) {
            ProxyState::CoolingDown
        } else {
            ProxyState::Active
        };
        let mut regions = heapless::Vec::new();
        for i in x.region_list.iter().filter(|i| **i != NO_REGION) {
            if let Some(r) = self.regions.get(usize::from(*i)) {
                let _ = regions.push(r);
            }
        }
        let health = x.health(&self.config);
        ProxyStatus {
            id: &x.id,
            url: x.url.without_credentials(),
            regions,
            state,
            health_score: health,
            success_rate: x.success,
            latency_ms: x.latency,
            open_connections: x.open(),
            max_connections: (x.max_conns != u32::MAX).then_some(x.max_conns),
            weight: x.weight,
            ejections: x.ejections,
            ejected_until: x.ejected_until.map(Instant::from_ticks),
            recent_failures: x.recent_failures(t, ticks(self.config.failure_window)),
        }
    }
}
