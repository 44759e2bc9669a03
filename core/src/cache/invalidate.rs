//! Invalidation: removing the entries of one key, one exchange, one proxy
//! (by id or by [`ProxyUrl::same_proxy`]), or all of them.

use super::storage::{Ends, NIL, Pos};
use super::{Cache, CacheKey, CacheValue, Event, InvalidationScope};
use crate::model::{ExchangeId, ProxyId, ProxyUrl};
use crate::storage::Storage;

impl<V: CacheValue, const N: usize, St: Storage, const EVENTS: usize> Cache<V, N, St, EVENTS> {
    /// Removes the entry for `key`. Returns whether there was one.
    pub fn invalidate(&mut self, key: &CacheKey) -> bool {
        let Some((_, slot)) = self.find(key) else {
            return false;
        };
        self.remove_slot(slot);
        self.emit(Event::Invalidated {
            scope: InvalidationScope::Key,
            count: 1,
        });
        true
    }

    /// Removes every entry of `exchange_id` (all connection types and regions).
    /// Returns how many went.
    pub fn invalidate_exchange(&mut self, exchange_id: &ExchangeId) -> usize {
        self.remove_where(InvalidationScope::Exchange, |k, _| {
            k.exchange_id == *exchange_id
        })
    }

    /// Removes every entry whose value names the proxy `proxy_id`, or the proxy
    /// at `proxy_url` (same scheme, host and port; credentials are ignored).
    /// Either may be `None`. Returns how many went.
    pub fn invalidate_proxy(
        &mut self,
        proxy_id: Option<&ProxyId>,
        proxy_url: Option<&ProxyUrl>,
    ) -> usize {
        if proxy_id.is_none() && proxy_url.is_none() {
            return 0;
        }
        self.remove_where(InvalidationScope::Proxy, |_, v| {
            v.names_proxy(proxy_id, proxy_url)
        })
    }

    /// Removes every entry. Returns how many went.
    pub fn invalidate_all(&mut self) -> usize {
        self.last_hit = NIL;
        let count = self.len;
        self.len = 0;
        for pair in self.table.iter_mut() {
            *pair = [Pos::EMPTY; 2];
        }
        for k in self.keys.iter_mut() {
            *k = None;
        }
        for v in self.values.iter_mut() {
            *v = None;
        }
        self.lru = Ends::EMPTY;
        self.pending = Ends::EMPTY;
        self.unused = 0;
        self.free.clear();
        if count > 0 {
            self.emit(Event::Invalidated {
                scope: InvalidationScope::All,
                count,
            });
        }
        count
    }

    fn remove_where(
        &mut self,
        scope: InvalidationScope,
        mut pred: impl FnMut(&CacheKey, &V) -> bool,
    ) -> usize {
        let mut count = 0;
        for slot in 0..N {
            let hit = match (self.keys.get(slot), self.values.get(slot)) {
                (Some(Some(k)), Some(Some(v))) => pred(k, v),
                _ => false,
            };
            if hit {
                self.remove_slot(slot as u32);
                count += 1;
            }
        }
        if count > 0 {
            self.emit(Event::Invalidated { scope, count });
        }
        count
    }
}
