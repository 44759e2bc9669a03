//! The slots' bookkeeping: two doubly linked lists threaded through the
//! slots (recency, and refreshes waiting for
//! [`Cache::poll_refresh`](super::Cache::poll_refresh)), each slot's timing
//! record, and the open-addressed index from key hashes to slots.

use embassy_time::Instant;

use super::key::hash_key_ref;
use super::{Cache, CacheKey, CacheKeyRef, CacheValue, Event};
use crate::storage::{Storage, Unused};

/// "No slot": the end of a list.
pub(super) const NIL: u32 = u32::MAX;

/// A slot's place in one doubly linked list.
#[derive(Debug, Clone, Copy)]
pub(super) struct Link {
    pub(super) prev: u32,
    pub(super) next: u32,
}

impl Link {
    pub(super) const NONE: Link = Link {
        prev: NIL,
        next: NIL,
    };
}

/// Head and tail of a list threaded through the slots.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ends {
    pub(super) head: u32,
    pub(super) tail: u32,
}

impl Ends {
    pub(super) const EMPTY: Ends = Ends {
        head: NIL,
        tail: NIL,
    };
}

/// The two lists: recency (head = most recently used) and refreshes waiting
/// for [`Cache::poll_refresh`] (head = oldest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum List {
    Lru,
    Pending,
}

/// What a lookup needs to know about the entry in a slot, kept apart from the
/// values (which may be large) so that a lookup reads one small record.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    pub(super) fresh_until: Instant,
    /// No refresh is scheduled before this: the refresh-ahead point after an
    /// insert, the in-flight guard after a poll, the retry point after a failure.
    pub(super) refresh_not_before: Instant,
    /// On the pending list.
    pub(super) queued: bool,
}

impl Meta {
    pub(super) const EMPTY: Meta = Meta {
        fresh_until: Instant::MIN,
        refresh_not_before: Instant::MIN,
        queued: false,
    };
}

/// A position of the key index: the key's hash and its slot (`NIL`: empty).
#[derive(Debug, Clone, Copy)]
pub(super) struct Pos {
    pub(super) hash: u32,
    pub(super) slot: u32,
}

impl Pos {
    pub(super) const EMPTY: Pos = Pos { hash: 0, slot: NIL };
}

impl<V: CacheValue, const N: usize, St: Storage, const EVENTS: usize> Cache<V, N, St, EVENTS> {
    pub(super) fn warm_index(&self, key: &CacheKey) -> Option<usize> {
        self.config.warm_keys.iter().position(|k| k == key)
    }

    pub(super) fn meta(&mut self, slot: u32) -> Option<&mut Meta> {
        self.meta.get_mut(slot as usize)
    }

    pub(super) fn link(&mut self, slot: u32, list: List) -> Option<&mut Link> {
        match list {
            List::Lru => self.links.get_mut(slot as usize),
            List::Pending => self.pending_links.get_mut(slot as usize),
        }
    }

    pub(super) fn ends(&mut self, list: List) -> &mut Ends {
        match list {
            List::Lru => &mut self.lru,
            List::Pending => &mut self.pending,
        }
    }

    /// Puts `slot` on the pending list and says so.
    pub(super) fn schedule(&mut self, slot: u32, warm: bool) {
        let Some(m) = self.meta(slot) else {
            return;
        };
        m.queued = true;
        self.push_back(List::Pending, slot);
        if let Some(Some(key)) = self.keys.get(slot as usize) {
            let key = key.clone();
            self.emit(Event::RefreshScheduled { key, warm });
        }
    }

    /// Makes `slot` the most recently used.
    pub(super) fn touch(&mut self, slot: u32) {
        if self.lru.head != slot {
            self.unlink(List::Lru, slot);
            self.push_front(List::Lru, slot);
        }
    }

    pub(super) fn unlink(&mut self, list: List, slot: u32) {
        let Some(link) = self.link(slot, list) else {
            return;
        };
        let Link { prev, next } = *link;
        *link = Link::NONE;
        match self.link(prev, list) {
            Some(p) => p.next = next,
            None => self.ends(list).head = next,
        }
        match self.link(next, list) {
            Some(n) => n.prev = prev,
            None => self.ends(list).tail = prev,
        }
    }

    pub(super) fn push_front(&mut self, list: List, slot: u32) {
        let head = self.ends(list).head;
        if let Some(l) = self.link(slot, list) {
            *l = Link {
                prev: NIL,
                next: head,
            };
        }
        match self.link(head, list) {
            Some(h) => h.prev = slot,
            None => self.ends(list).tail = slot,
        }
        self.ends(list).head = slot;
    }

    pub(super) fn push_back(&mut self, list: List, slot: u32) {
        let tail = self.ends(list).tail;
        if let Some(l) = self.link(slot, list) {
            *l = Link {
                prev: tail,
                next: NIL,
            };
        }
        match self.link(tail, list) {
            Some(t) => t.next = slot,
            None => self.ends(list).head = slot,
        }
        self.ends(list).tail = slot;
    }

    // ------------------------------------------------------------ index

    /// Position `p` of the index (`2N` positions: load factor at most 1/2,
    /// so probes stay short however full the cache is).
    pub(super) fn at(&self, p: usize) -> Pos {
        self.table
            .get(p >> 1)
            .and_then(|pair| pair.get(p & 1))
            .copied()
            .unwrap_or(Pos::EMPTY)
    }

    pub(super) fn set(&mut self, p: usize, pos: Pos) {
        if let Some(cell) = self
            .table
            .get_mut(p >> 1)
            .and_then(|pair| pair.get_mut(p & 1))
        {
            *cell = pos;
        }
    }

    /// The index position and slot of `key`.
    pub(super) fn find(&self, key: &CacheKey) -> Option<(usize, u32)> {
        self.find_ref(CacheKeyRef::from(key))
    }

    pub(super) fn find_ref(&self, key: CacheKeyRef<'_>) -> Option<(usize, u32)> {
        self.find_hashed(hash_key_ref(key), key)
    }

    pub(super) fn find_hashed(&self, hash: u32, key: CacheKeyRef<'_>) -> Option<(usize, u32)> {
        let mut p = hash as usize & Self::MASK;
        // Linear probing; the index always has empty positions, and the bound
        // makes "never hangs" evident.
        for _ in 0..=Self::MASK {
            let pos = self.at(p);
            if pos.slot == NIL {
                return None;
            }
            if pos.hash == hash
                && let Some(Some(k)) = self.keys.get(pos.slot as usize)
                && key.matches(k)
            {
                return Some((p, pos.slot));
            }
            p = (p + 1) & Self::MASK;
        }
        None
    }

    /// Records `slot` under `hash` in the first empty position of its probe
    /// sequence (the key is known to be absent).
    pub(super) fn place(&mut self, hash: u32, slot: u32) {
        let mut p = hash as usize & Self::MASK;
        for _ in 0..=Self::MASK {
            if self.at(p).slot == NIL {
                self.set(p, Pos { hash, slot });
                return;
            }
            p = (p + 1) & Self::MASK;
        }
    }

    /// Empties position `p` and shifts later entries of the same probe run
    /// back, so that no lookup stops early (no tombstones).
    pub(super) fn unplace(&mut self, p: usize) {
        let mut hole = p;
        let mut j = (p + 1) & Self::MASK;
        for _ in 0..Self::MASK {
            let pos = self.at(j);
            if pos.slot == NIL {
                break;
            }
            let home = pos.hash as usize & Self::MASK;
            // `pos` may fill the hole unless its home lies after the hole
            // (cyclically, within hole+1..=j).
            if (j.wrapping_sub(home) & Self::MASK) >= (j.wrapping_sub(hole) & Self::MASK) {
                self.set(hole, pos);
                hole = j;
            }
            j = (j + 1) & Self::MASK;
        }
        self.set(hole, Pos::EMPTY);
    }

    /// Removes the entry in `slot` from the index and both lists, and frees
    /// the slot. Returns the key.
    pub(super) fn remove_slot(&mut self, slot: u32) -> Option<CacheKey> {
        self.last_hit = NIL;
        let key = self.keys.get(slot as usize)?.as_ref()?;
        let (p, _) = self.find(key)?;
        self.unplace(p);
        let queued = self.meta.get(slot as usize).is_some_and(|m| m.queued);
        self.unlink(List::Lru, slot);
        if queued {
            self.unlink(List::Pending, slot);
        }
        if let Some(v) = self.values.get_mut(slot as usize) {
            *v = None;
        }
        if let Some(m) = self.meta(slot) {
            *m = Meta::EMPTY;
        }
        self.len -= 1;
        let _ = self.free.push(slot);
        self.keys.get_mut(slot as usize)?.take()
    }
}

impl Unused for Link {
    const UNUSED: Self = Link::NONE;
}

impl Unused for Meta {
    const UNUSED: Self = Meta::EMPTY;
}

impl Unused for Pos {
    const UNUSED: Self = Pos::EMPTY;
}
