//! The selection index: an aggregate tree over the pool's slots.
//!
//! Leaves are the `N` slots, stored at tree positions `N..2N`; internal node
//! `i` (for `1 ≤ i < N`) combines nodes `2i` and `2i + 1`. For any `N` this
//! is a full binary tree rooted at position 1 (for `N = 1` the root is the
//! only leaf), of depth at most ⌈log₂ 2N⌉, so an update is `O(log N)` and a
//! search that is not pruned away descends one path.
//!
//! Every node holds what a search needs to skip whole subtrees: how many
//! available proxies lie below (round-robin and random pick by rank), the sum
//! of their weights (weighted picks by prefix sum), their smallest connection
//! count (least-connections bounds its search), the union of their regions,
//! usable exchanges and connection types (a subtree with no candidate for
//! the request is never entered), and the earliest timer below
//! (`handle_timeout` walks straight to due slots).

/// The aggregate of a subtree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Agg {
    /// Available proxies (occupied, enabled, not ejected, under their limit).
    pub(crate) count: u32,
    /// Sum of the effective weights of the available proxies.
    pub(crate) wsum: f32,
    /// Fewest open connections among the available proxies (`u32::MAX`: none).
    pub(crate) minconn: u32,
    /// Union of the region bits of the available proxies.
    pub(crate) regions: u32,
    /// Union of the usable-exchange bits (allowed and not cooling down).
    pub(crate) exch: u64,
    /// Union of the connection-type bits.
    pub(crate) ctypes: u8,
    /// Earliest timer of any occupied slot, in ticks (`u64::MAX`: none).
    pub(crate) deadline: u64,
    /// Sum of the success rates of occupied slots with enough samples.
    pub(crate) ssum: f32,
    /// Number of slots in `ssum`.
    pub(crate) scnt: u32,
}

impl Agg {
    pub(crate) const EMPTY: Agg = Agg {
        count: 0,
        wsum: 0.0,
        minconn: u32::MAX,
        regions: 0,
        exch: 0,
        ctypes: 0,
        deadline: u64::MAX,
        ssum: 0.0,
        scnt: 0,
    };

    fn combine(a: &Agg, b: &Agg) -> Agg {
        Agg {
            count: a.count + b.count,
            wsum: a.wsum + b.wsum,
            minconn: a.minconn.min(b.minconn),
            regions: a.regions | b.regions,
            exch: a.exch | b.exch,
            ctypes: a.ctypes | b.ctypes,
            deadline: a.deadline.min(b.deadline),
            ssum: a.ssum + b.ssum,
            scnt: a.scnt + b.scnt,
        }
    }
}

/// What a request needs of a subtree: one bit each for its exchange and
/// connection type, and region bits (0: any region).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Want {
    pub(crate) exch: u64,
    pub(crate) ctype: u8,
    pub(crate) region: u32,
}

impl Want {
    #[inline]
    pub(crate) fn may(&self, a: &Agg) -> bool {
        a.count > 0
            && a.exch & self.exch != 0
            && a.ctypes & self.ctype != 0
            && (self.region == 0 || a.regions & self.region != 0)
    }
}

/// Tree nodes a least-connections search enters after its first candidate
/// (about 16 root-to-leaf paths in a pool of 10,000).
pub(crate) const LEAST_BUDGET: u32 = 256;

struct Least {
    best: Option<(u32, usize)>,
    budget: u32,
}

/// Inline whatever the pool's storage: a search visits a few hundred nodes,
/// and through a `Box<[Agg]>` each visit cost a load more (least-connections
/// selection was 25-40% slower with the tree on the heap).
#[derive(Debug)]
pub(crate) struct Tree<const N: usize> {
    internal: [Agg; N],
    leaves: [Agg; N],
}

impl<const N: usize> Tree<N> {
    pub(crate) const fn new() -> Self {
        Self {
            internal: [Agg::EMPTY; N],
            leaves: [Agg::EMPTY; N],
        }
    }

    #[inline]
    fn node(&self, i: usize) -> &Agg {
        if i >= N {
            self.leaves.get(i - N).unwrap_or(&Agg::EMPTY)
        } else {
            self.internal.get(i).unwrap_or(&Agg::EMPTY)
        }
    }

    pub(crate) fn root(&self) -> &Agg {
        self.node(1)
    }

    pub(crate) fn leaf(&self, slot: usize) -> &Agg {
        self.node(N + slot)
    }

    /// Sets a leaf and recomputes its ancestors: `O(log N)`.
    pub(crate) fn set(&mut self, slot: usize, agg: Agg) {
        if let Some(l) = self.leaves.get_mut(slot) {
            *l = agg;
        }
        let mut i = N + slot;
        while i > 1 {
            i /= 2;
            let c = Agg::combine(self.node(2 * i), self.node(2 * i + 1));
            if let Some(n) = self.internal.get_mut(i) {
                *n = c;
            }
        }
    }

    /// Sets every leaf at once and rebuilds the internal nodes: `O(N)`.
    pub(crate) fn rebuild(&mut self, mut leaf: impl FnMut(usize) -> Agg) {
        for (slot, l) in self.leaves.iter_mut().enumerate() {
            *l = leaf(slot);
        }
        for i in (1..N).rev() {
            let c = Agg::combine(self.node(2 * i), self.node(2 * i + 1));
            if let Some(n) = self.internal.get_mut(i) {
                *n = c;
            }
        }
    }

    /// The first slot, in tree order, at or after the `skip`-th available one
    /// that matches `want` and `ok`.
    pub(crate) fn by_rank(
        &self,
        skip: u32,
        want: &Want,
        ok: &mut impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let mut skip = skip;
        self.rank_rec(1, &mut skip, want, ok)
    }

    fn rank_rec(
        &self,
        i: usize,
        skip: &mut u32,
        want: &Want,
        ok: &mut impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let a = self.node(i);
        if a.count == 0 {
            return None;
        }
        if *skip >= a.count {
            *skip -= a.count;
            return None;
        }
        if !want.may(a) {
            // The start position lies in this subtree, and nothing here matches.
            *skip = 0;
            return None;
        }
        if i >= N {
            return ok(i - N).then_some(i - N);
        }
        self.rank_rec(2 * i, skip, want, ok)
            .or_else(|| self.rank_rec(2 * i + 1, skip, want, ok))
    }

    /// The first slot, in tree order, whose weight interval ends after
    /// `target` (a prefix sum of effective weights) and that matches.
    /// Slots of weight zero are never returned.
    pub(crate) fn by_weight(
        &self,
        target: f32,
        want: &Want,
        ok: &mut impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let mut target = target;
        self.weight_rec(1, &mut target, want, ok)
    }

    fn weight_rec(
        &self,
        i: usize,
        target: &mut f32,
        want: &Want,
        ok: &mut impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let a = self.node(i);
        if a.count == 0 || a.wsum <= 0.0 {
            return None;
        }
        if *target >= a.wsum {
            *target -= a.wsum;
            return None;
        }
        if !want.may(a) {
            *target = 0.0;
            return None;
        }
        if i >= N {
            *target = 0.0;
            return ok(i - N).then_some(i - N);
        }
        self.weight_rec(2 * i, target, want, ok)
            .or_else(|| self.weight_rec(2 * i + 1, target, want, ok))
    }

    /// The matching slot with the fewest connections; among equals, the first
    /// in tree order at or after rank `from` (wrapping).
    ///
    /// Subtrees whose smallest count cannot beat the best so far are
    /// skipped, but that smallest count is over all available proxies, not
    /// only those matching the request: when the least-loaded proxies all
    /// fail the request's filters, many subtrees can pass the bound. So once
    /// a candidate is found, at most [`LEAST_BUDGET`] more nodes are entered
    /// and the best leaf seen wins: exact in the common case, approximate
    /// (still never `None` while a match exists) in that one.
    pub(crate) fn least(
        &self,
        from: u32,
        want: &Want,
        ok: &mut impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let mut search = Least {
            best: None,
            budget: LEAST_BUDGET,
        };
        self.least_rec(1, 0, (from, u32::MAX), want, ok, &mut search);
        self.least_rec(1, 0, (0, from), want, ok, &mut search);
        search.best.map(|(_, slot)| slot)
    }

    fn least_rec(
        &self,
        i: usize,
        lo: u32,
        range: (u32, u32),
        want: &Want,
        ok: &mut impl FnMut(usize) -> bool,
        search: &mut Least,
    ) {
        let a = self.node(i);
        let hi = lo + a.count;
        if a.count == 0 || hi <= range.0 || lo >= range.1 || !want.may(a) {
            return;
        }
        if let Some((b, _)) = search.best {
            if a.minconn >= b || search.budget == 0 {
                return;
            }
            search.budget -= 1;
        }
        if i >= N {
            if ok(i - N) {
                search.best = Some((a.minconn, i - N));
            }
            return;
        }
        let left = self.node(2 * i).count;
        self.least_rec(2 * i, lo, range, want, ok, search);
        self.least_rec(2 * i + 1, lo + left, range, want, ok, search);
    }

    /// Calls `f` for every slot that may match `want` (a full walk of the
    /// matching subtrees: `O(matches × log N)` at worst).
    pub(crate) fn each(&self, want: &Want, f: &mut impl FnMut(usize)) {
        self.each_rec(1, want, f);
    }

    fn each_rec(&self, i: usize, want: &Want, f: &mut impl FnMut(usize)) {
        if !want.may(self.node(i)) {
            return;
        }
        if i >= N {
            f(i - N);
            return;
        }
        self.each_rec(2 * i, want, f);
        self.each_rec(2 * i + 1, want, f);
    }

    /// A slot whose timer is due at `now`, if any.
    pub(crate) fn due(&self, now: u64) -> Option<usize> {
        let mut i = 1;
        if self.node(i).deadline > now {
            return None;
        }
        while i < N {
            i = if self.node(2 * i).deadline <= now {
                2 * i
            } else {
                2 * i + 1
            };
        }
        Some(i - N)
    }
}
