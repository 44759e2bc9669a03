//! Selection: [`Pool::select`] and the strategies behind it (round-robin,
//! random, least-connections and weighted over the aggregate tree; sticky
//! by rendezvous hashing, remembered per (client, exchange)).

use embassy_time::Instant;

use super::slot::Slot;
use super::tree::Want;
use super::{OTHER_EXCHANGE, Pool, StrategyKind, ticks};
use crate::hash::{FNV_OFFSET, fnv, mix};
use crate::model::{ConnectionType, HealthScore, ProxyRequest, ProxyResponse, ResponseMetadata};
use crate::storage::Storage;

fn sticky_key(req: &ProxyRequest) -> u64 {
    let h = fnv(FNV_OFFSET, req.client_id.as_str().as_bytes());
    let h = fnv(h, &[0xff]);
    mix(fnv(h, req.exchange_id.as_str().as_bytes()))
}

const fn ctype_bit(t: ConnectionType) -> u8 {
    match t {
        ConnectionType::Http => 1,
        ConnectionType::Websocket => 2,
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct StickyEntry {
    slot: u32,
    generation: u32,
    until: u64,
}

fn region_ok(slot: &Slot, barred: u32) -> bool {
    slot.regions == 0 || slot.regions & !barred != 0
}

impl<const N: usize, const S: usize, St: Storage> Pool<N, S, St> {
    /// Picks a proxy for `request` (processing the timers due at `now`
    /// first). When nothing is eligible the answer has no `proxy_url` and
    /// carries the exchange's fallback policy.
    pub fn select(&mut self, now: Instant, request: &ProxyRequest) -> ProxyResponse {
        self.handle_timeout(now);
        let t = now.as_ticks();
        let policy = self.config.policy_for(&request.exchange_id);
        let kind = policy
            .and_then(|p| p.strategy)
            .unwrap_or(self.config.strategy);
        let fallback_policy = policy.map_or(self.config.fallback_policy, |p| p.fallback_policy);
        let ttl = policy.and_then(|p| p.ttl).unwrap_or(self.ttl);

        let exchange = self.exchange_index(&request.exchange_id);
        let barred = exchange.map_or(0, |e| self.barred_regions(e, t));
        let region_bit = request
            .region
            .as_ref()
            .and_then(|r| self.region_index(r))
            .map(|i| 1u32 << i)
            .filter(|b| b & barred == 0);
        let any = Want {
            exch: exchange.map_or(OTHER_EXCHANGE, |e| 1u64 << e),
            ctype: ctype_bit(request.connection_type),
            region: 0,
        };

        let pick = if kind == StrategyKind::Sticky {
            self.pick_sticky(t, request, any, region_bit, barred)
        } else {
            region_bit
                .and_then(|region| self.pick(kind, Want { region, ..any }, barred))
                .or_else(|| self.pick(kind, any, barred))
        };

        let strategy = self.names[kind.index() % 5].clone();
        let Some(slot) = pick.and_then(|s| self.slots.get(s)) else {
            return ProxyResponse {
                proxy_url: None,
                strategy,
                ttl_seconds: ttl,
                fallback_policy,
                metadata: ResponseMetadata::default(),
            };
        };
        let region = match (region_bit, &request.region) {
            (Some(bit), Some(r)) if slot.regions & bit != 0 => Some(r.clone()),
            _ => slot
                .region_list
                .first()
                .and_then(|i| self.regions.get(usize::from(*i)))
                .cloned(),
        };
        ProxyResponse {
            proxy_url: Some(slot.url.clone()),
            strategy,
            ttl_seconds: ttl,
            fallback_policy,
            metadata: ResponseMetadata {
                proxy_id: Some(slot.id.clone()),
                region,
                health_score: HealthScore::new(slot.health(&self.config)).ok(),
            },
        }
    }

    fn pick(&mut self, kind: StrategyKind, want: Want, barred: u32) -> Option<usize> {
        let count = self.tree.root().count;
        if count == 0 {
            return None;
        }
        let slots = &self.slots;
        // Without region bars every leaf that passes `may` is eligible:
        // no need to touch the slot.
        let mut ok = |s: usize| barred == 0 || slots.get(s).is_some_and(|x| region_ok(x, barred));
        match kind {
            StrategyKind::RoundRobin | StrategyKind::Random => {
                let k = if kind == StrategyKind::Random {
                    self.rng.u32(0..count)
                } else {
                    let k = self.cursor % count;
                    self.cursor = self.cursor.wrapping_add(1);
                    k
                };
                self.tree
                    .by_rank(k, &want, &mut ok)
                    .or_else(|| self.tree.by_rank(0, &want, &mut ok))
            }
            StrategyKind::LeastConnections => {
                let k = self.cursor % count;
                self.cursor = self.cursor.wrapping_add(1);
                self.tree.least(k, &want, &mut ok)
            }
            StrategyKind::Weighted => {
                let target = self.rng.f32() * self.tree.root().wsum;
                self.tree
                    .by_weight(target, &want, &mut ok)
                    .or_else(|| self.tree.by_weight(0.0, &want, &mut ok))
                    .or_else(|| self.tree.by_rank(0, &want, &mut ok))
            }
            StrategyKind::Sticky => self.rendezvous(0, want, barred),
        }
    }

    fn rendezvous(&self, key: u64, want: Want, barred: u32) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        self.tree.each(&want, &mut |s| {
            if let Some(slot) = self.slots.get(s)
                && region_ok(slot, barred)
            {
                let score = mix(key ^ slot.id_hash);
                if best.is_none_or(|(b, _)| score > b) {
                    best = Some((score, s));
                }
            }
        });
        best.map(|(_, s)| s)
    }

    fn pick_sticky(
        &mut self,
        t: u64,
        request: &ProxyRequest,
        any: Want,
        region_bit: Option<u32>,
        barred: u32,
    ) -> Option<usize> {
        let key = sticky_key(request);
        if let Some(e) = self.sticky.get(&key) {
            let s = e.slot as usize;
            let valid = e.until > t
                && self
                    .slots
                    .get(s)
                    .is_some_and(|x| x.generation == e.generation && region_ok(x, barred))
                && any.may(self.tree.leaf(s));
            // Region affinity comes first: a choice outside the requested
            // region stands only while no proxy in the region is eligible.
            let in_region = region_bit.is_none_or(|bit| {
                self.slots.get(s).is_some_and(|x| x.regions & bit != 0)
                    || self
                        .rendezvous(key, Want { region: bit, ..any }, barred)
                        .is_none()
            });
            if valid && in_region {
                return Some(s);
            }
        }
        let pick = region_bit
            .and_then(|region| self.rendezvous(key, Want { region, ..any }, barred))
            .or_else(|| self.rendezvous(key, any, barred))?;
        let entry = StickyEntry {
            slot: pick as u32,
            generation: self.slots.get(pick).map_or(0, |x| x.generation),
            until: t.saturating_add(ticks(self.config.sticky_ttl)),
        };
        if self.sticky.is_full() && !self.sticky.contains_key(&key) {
            self.sticky.retain(|_, e| e.until > t);
            if self.sticky.is_full() {
                let oldest = self
                    .sticky
                    .iter()
                    .min_by_key(|(_, e)| e.until)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    let _ = self.sticky.swap_remove(&k);
                }
            }
        }
        let _ = self.sticky.insert(key, entry);
        Some(pick)
    }
}
