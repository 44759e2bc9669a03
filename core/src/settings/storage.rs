//! Fixed-capacity, insertion-ordered storage for the exchanges of a
//! [`ProxySettings`](super::ProxySettings).

/// Fixed-capacity, insertion-ordered storage. Unlike a `heapless::Vec`, its
/// empty value writes only `N` tags, not `N` slots: the exchanges' storage is
/// most of a [`ProxySettings`](super::ProxySettings), and a new one should cost nothing to make.
#[derive(Debug, Clone)]
pub(super) struct Slots<T, const N: usize> {
    /// `Some` exactly for the first `len` slots.
    items: [Option<T>; N],
    len: usize,
}

impl<T, const N: usize> Slots<T, N> {
    #[inline]
    pub(super) fn new() -> Self {
        // Optimised, `from_fn` becomes `N` tag stores (a constant array is
        // copied or zero-filled whole, hundreds of KiB for the settings).
        // Unoptimised, `from_fn` keeps several copies of the array on the
        // stack, enough to overflow a test thread's 2 MiB: copy the constant.
        #[cfg(not(debug_assertions))]
        let items = core::array::from_fn(|_| None);
        #[cfg(debug_assertions)]
        let items = [const { None }; N];
        Self { items, len: 0 }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.items[..self.len].iter().flatten()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.items[..self.len].iter_mut().flatten()
    }

    pub(super) fn get(&self, i: usize) -> Option<&T> {
        self.items[..self.len].get(i)?.as_ref()
    }

    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.items[..self.len].get_mut(i)?.as_mut()
    }

    /// Appends `v`, or gives it back when full.
    pub(super) fn push(&mut self, v: T) -> Result<(), T> {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(v);
                self.len += 1;
                Ok(())
            }
            None => Err(v),
        }
    }

    /// Removes the `i`th item, keeping the order of the others.
    pub(super) fn remove(&mut self, i: usize) -> Option<T> {
        let v = self.items[..self.len].get_mut(i)?.take();
        self.items[i..self.len].rotate_left(1);
        self.len -= 1;
        v
    }
}
