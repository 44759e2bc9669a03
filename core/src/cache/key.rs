//! What an answer is cached under: [`CacheKey`] (and its borrowed view
//! [`CacheKeyRef`]), and the hasher the key index uses.

use core::fmt;
use core::hash::{Hash, Hasher};

use crate::model::{ConnectionType, ExchangeId, ProxyRequest, Region};

/// What an answer is cached under: the exchange, the connection type and the
/// region the client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey {
    /// The exchange.
    pub exchange_id: ExchangeId,
    /// HTTP or WebSocket.
    pub connection_type: ConnectionType,
    /// The region the client asked for, if any.
    pub region: Option<Region>,
}

impl CacheKey {
    /// A key from its parts.
    pub fn new(
        exchange_id: ExchangeId,
        connection_type: ConnectionType,
        region: Option<Region>,
    ) -> Self {
        Self {
            exchange_id,
            connection_type,
            region,
        }
    }

    /// The key a request's answer is cached under.
    pub fn from_request(request: &ProxyRequest) -> Self {
        Self::new(
            request.exchange_id.clone(),
            request.connection_type,
            request.region.clone(),
        )
    }
}

/// `exchange/connection_type[/region]`, e.g. `binance/websocket/us-east-1`.
impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.exchange_id, self.connection_type)?;
        if let Some(r) = &self.region {
            write!(f, "/{r}")?;
        }
        Ok(())
    }
}

/// A borrowed view of a [`CacheKey`], so that a lookup need not build (and
/// copy) a key. Hashes and compares exactly like the key it views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKeyRef<'a> {
    /// The exchange.
    pub exchange_id: &'a ExchangeId,
    /// HTTP or WebSocket.
    pub connection_type: ConnectionType,
    /// The region the client asked for, if any.
    pub region: Option<&'a Region>,
}

impl<'a> CacheKeyRef<'a> {
    /// The key a request's answer is cached under, borrowed from the request.
    pub fn from_request(request: &'a ProxyRequest) -> Self {
        Self {
            exchange_id: &request.exchange_id,
            connection_type: request.connection_type,
            region: request.region.as_ref(),
        }
    }

    pub(super) fn matches(&self, key: &CacheKey) -> bool {
        *self.exchange_id == key.exchange_id
            && self.connection_type == key.connection_type
            && self.region == key.region.as_ref()
    }
}

impl<'a> From<&'a CacheKey> for CacheKeyRef<'a> {
    fn from(key: &'a CacheKey) -> Self {
        Self {
            exchange_id: &key.exchange_id,
            connection_type: key.connection_type,
            region: key.region.as_ref(),
        }
    }
}

/// A word-at-a-time hasher for keys: keys are short and come from the
/// application, not from an adversary, so speed matters more than flooding
/// resistance. `finish` mixes the high bits down because the index uses the
/// low bits.
#[derive(Default)]
struct KeyHasher(u64);

impl KeyHasher {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(
                <[u8; 8]>::try_from(c).unwrap_or_default(),
            ));
        }
        // The last 0–7 bytes as one word, read with (overlapping) whole-word
        // loads rather than a byte copy, plus their count.
        let rest = chunks.remainder();
        let n = rest.len();
        let word = if n >= 4 {
            let lo = u32::from_le_bytes(<[u8; 4]>::try_from(&rest[..4]).unwrap_or_default());
            let hi = u32::from_le_bytes(<[u8; 4]>::try_from(&rest[n - 4..]).unwrap_or_default());
            u64::from(lo) | (u64::from(hi) << 32)
        } else if n > 0 {
            u64::from(rest[0]) | (u64::from(rest[n / 2]) << 8) | (u64::from(rest[n - 1]) << 16)
        } else {
            0
        };
        self.add(word ^ ((n as u64) << 59));
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn write_isize(&mut self, i: isize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let h = self.0;
        let h = (h ^ (h >> 32)).wrapping_mul(Self::K);
        h ^ (h >> 29)
    }
}

pub(super) fn hash_key(key: &CacheKey) -> u32 {
    hash_key_ref(CacheKeyRef::from(key))
}

/// Hashes a key's fields; [`CacheKeyRef`]'s derived `Hash` feeds the hasher
/// exactly what [`CacheKey`]'s does, so both find the same entry.
pub(super) fn hash_key_ref(key: CacheKeyRef<'_>) -> u32 {
    let mut h = KeyHasher::default();
    key.hash(&mut h);
    h.finish() as u32
}
