//! Where a machine's large per-slot arrays live, chosen by its user.
//!
//! A [`Cache`](crate::cache::Cache) of 4,096 routes or a
//! [`Pool`](crate::pool::Pool) of 4,096 proxies holds megabytes in arrays of
//! one entry per slot. Rust builds a value on the stack before moving it into
//! place, so a machine that holds those arrays inline cannot be built on a
//! small stack (a tokio worker's or a test thread's 2 MiB) at all. The
//! machines therefore take a [`Storage`] type that says where those arrays
//! live, in the way smoltcp's `SocketSet` takes its storage from its caller:
//!
//! - [`Inline`] (the default): inside the machine itself. No allocation, so it
//!   is what a `no_std` target uses, with the machine in a `static`. The
//!   whole machine passes through the stack while it is built.
//! - [`Boxed`] (feature `alloc`): on the heap, built one entry at a time,
//!   so only one entry ever passes through the stack. Building allocates
//!   once per array; using the machine never allocates.
//!
//! ```
//! use proxy_delegate_core::cache::{Cache, CacheConfig};
//! use proxy_delegate_core::model::ProxyResponse;
//! use proxy_delegate_core::storage::Boxed;
//!
//! // About 4 MB of routes, built on the heap from any thread.
//! let cache = Cache::<ProxyResponse, 4096, Boxed>::new(CacheConfig::default())?;
//! assert_eq!(cache.len(), 0);
//! # Ok::<(), proxy_delegate_core::ValidationError>(())
//! ```
//!
//! The choice changes where the bytes are, not what the machine does:
//! every machine behaves the same with either.

use core::ops::{Deref, DerefMut};

/// Where a machine keeps its arrays of `N` entries (see the [module
/// docs](self)).
pub trait Storage {
    /// An array of exactly `N` entries of `T`, used as a slice.
    type Array<T, const N: usize>: Deref<Target = [T]> + DerefMut;

    /// An array of `N` unused entries.
    fn array<T: Unused, const N: usize>() -> Self::Array<T, N>;
}

/// The value a slot holds while it is not in use: what a machine's arrays
/// start as.
pub trait Unused {
    /// The unused value. A constant, so that an inline array of them is
    /// written in place, never built on the stack and moved.
    const UNUSED: Self;
}

impl<T> Unused for Option<T> {
    const UNUSED: Self = None;
}

impl<T: Unused, const N: usize> Unused for [T; N] {
    const UNUSED: Self = [const { T::UNUSED }; N];
}

/// Arrays inside the machine: no allocation (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inline;

/// Arrays on the heap, built entry by entry (feature `alloc`).
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Boxed;

/// [`Inline`]'s array: `[T; N]` as a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineArray<T, const N: usize>([T; N]);

impl<T, const N: usize> Deref for InlineArray<T, N> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T, const N: usize> DerefMut for InlineArray<T, N> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

impl Storage for Inline {
    type Array<T, const N: usize> = InlineArray<T, N>;

    #[inline(always)]
    fn array<T: Unused, const N: usize>() -> InlineArray<T, N> {
        InlineArray([const { T::UNUSED }; N])
    }
}

#[cfg(feature = "alloc")]
impl Storage for Boxed {
    type Array<T, const N: usize> = alloc::boxed::Box<[T]>;

    fn array<T: Unused, const N: usize>() -> alloc::boxed::Box<[T]> {
        // Collected straight into its allocation: never a whole array on the
        // stack.
        (0..N).map(|_| T::UNUSED).collect()
    }
}

/// A vector of at most `N` entries kept in a [`Storage`]: `heapless::Vec`
/// for storage the user chooses. Entries are only ever added.
pub(crate) struct StorageVec<T, const N: usize, St: Storage> {
    items: St::Array<Option<T>, N>,
    len: usize,
}

impl<T, const N: usize, St: Storage> StorageVec<T, N, St> {
    pub(crate) fn new() -> Self {
        Self {
            items: St::array(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        self.items.get(i)?.as_ref()
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.items.get_mut(i)?.as_mut()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.items[..self.len].iter().flatten()
    }

    /// Adds `item` at the end, or gives it back when the vector is full.
    pub(crate) fn push(&mut self, item: T) -> Result<(), T> {
        match self.items.get_mut(self.len) {
            Some(place) => {
                *place = Some(item);
                self.len += 1;
                Ok(())
            }
            None => Err(item),
        }
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::{Boxed, Inline, Storage};

    #[test]
    fn both_storages_hold_n_unused_entries() {
        let mut inline = Inline::array::<Option<u32>, 5>();
        let mut boxed = Boxed::array::<Option<u32>, 5>();
        assert_eq!(&*inline, &[None; 5]);
        assert_eq!(&*boxed, &[None; 5]);
        inline[4] = Some(1);
        boxed[4] = Some(1);
        assert_eq!(inline.last(), Some(&Some(1)));
        assert_eq!(boxed.last(), Some(&Some(1)));
    }

    #[test]
    fn a_storage_vec_holds_what_was_pushed_up_to_its_capacity() {
        let mut v = super::StorageVec::<u32, 2, Boxed>::new();
        assert_eq!((v.len(), v.get(0)), (0, None));
        assert_eq!(v.push(7), Ok(()));
        assert_eq!(v.push(8), Ok(()));
        assert_eq!(v.push(9), Err(9));
        if let Some(x) = v.get_mut(1) {
            *x += 1;
        }
        assert_eq!(v.iter().copied().collect::<Vec<_>>(), [7, 9]);
        assert_eq!((v.len(), v.get(1), v.get(2)), (2, Some(&9), None));
    }
}
