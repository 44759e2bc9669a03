//! The inventory: what the operator says about each proxy.

use core::fmt;

use crate::model::{ConnectionType, ExchangeId, ProxyId, ProxyUrl, Region};

/// Most regions one proxy may list.
pub const MAX_PROXY_REGIONS: usize = 4;
/// Most exchanges in one proxy's allow-list.
pub const MAX_ALLOWED_EXCHANGES: usize = 16;
/// Most distinct regions a pool knows (over all proxies, for its lifetime).
pub const MAX_REGIONS: usize = 32;
/// Most distinct exchanges a pool tracks at once: those the inventory's
/// allow-lists name plus those with a live cool-down. An exchange nothing
/// refers to any more (its cool-downs over, no allow-list naming it) frees
/// its entry for another; allow-lists always take precedence over
/// cool-downs. Requests for other exchanges are still served by proxies
/// without an allow-list.
pub const MAX_EXCHANGES: usize = 63;

/// The connection types a proxy may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionTypes {
    /// Plain HTTP(S) requests.
    pub http: bool,
    /// WebSocket streams.
    pub websocket: bool,
}

impl ConnectionTypes {
    /// Both HTTP and WebSocket (the default).
    pub const ALL: Self = Self {
        http: true,
        websocket: true,
    };

    /// Only `t`.
    pub const fn only(t: ConnectionType) -> Self {
        match t {
            ConnectionType::Http => Self {
                http: true,
                websocket: false,
            },
            ConnectionType::Websocket => Self {
                http: false,
                websocket: true,
            },
        }
    }

    /// Whether `t` is allowed.
    pub const fn allows(self, t: ConnectionType) -> bool {
        match t {
            ConnectionType::Http => self.http,
            ConnectionType::Websocket => self.websocket,
        }
    }

    pub(crate) const fn mask(self) -> u8 {
        (self.http as u8) | ((self.websocket as u8) << 1)
    }
}

impl Default for ConnectionTypes {
    fn default() -> Self {
        Self::ALL
    }
}

/// One proxy of the inventory.
///
/// ```
/// use proxy_delegate_core::pool::ProxySpec;
///
/// let spec = ProxySpec::new("eu-1".parse()?, "socks5://u:p@10.0.0.1:1080".parse()?)
///     .with_region("eu-west-1".parse()?)
///     .with_weight(3);
/// assert_eq!(spec.weight, 3);
/// # Ok::<(), proxy_delegate_core::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySpec {
    /// Unique id, returned in `metadata.proxy_id` and used by feedback.
    pub id: ProxyId,
    /// The proxy, with credentials (handed to clients in answers).
    pub url: ProxyUrl,
    /// Where the proxy is; the first is reported when a request names none of them.
    pub regions: heapless::Vec<Region, MAX_PROXY_REGIONS>,
    /// Exchanges the proxy may be used for; `None` allows every exchange.
    pub exchanges: Option<heapless::Vec<ExchangeId, MAX_ALLOWED_EXCHANGES>>,
    /// Connection types the proxy may carry. Default both.
    pub connection_types: ConnectionTypes,
    /// Relative weight for the `weighted` strategy, ≥ 1. Default 1.
    pub weight: u16,
    /// Most open connections (by lease); `None` is unlimited. Default `None`.
    pub max_connections: Option<u32>,
    /// A disabled proxy stays in the inventory (and keeps its state) but is
    /// never chosen. Default `true`.
    pub enabled: bool,
}

impl ProxySpec {
    /// An enabled proxy with no region, no allow-list, weight 1 and no
    /// connection limit.
    pub fn new(id: ProxyId, url: ProxyUrl) -> Self {
        Self {
            id,
            url,
            regions: heapless::Vec::new(),
            exchanges: None,
            connection_types: ConnectionTypes::ALL,
            weight: 1,
            max_connections: None,
            enabled: true,
        }
    }

    /// Adds a region (ignored beyond [`MAX_PROXY_REGIONS`]).
    pub fn with_region(mut self, region: Region) -> Self {
        let _ = self.regions.push(region);
        self
    }

    /// Adds an exchange to the allow-list, creating it (ignored beyond
    /// [`MAX_ALLOWED_EXCHANGES`]).
    pub fn with_exchange(mut self, exchange: ExchangeId) -> Self {
        let list = self.exchanges.get_or_insert_with(heapless::Vec::new);
        let _ = list.push(exchange);
        self
    }

    /// Sets the allowed connection types.
    pub fn with_connection_types(mut self, types: ConnectionTypes) -> Self {
        self.connection_types = types;
        self
    }

    /// Sets the weight.
    pub fn with_weight(mut self, weight: u16) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the connection limit.
    pub fn with_max_connections(mut self, max: u32) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// Enables or disables the proxy.
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }
}

/// An inventory was refused; the pool is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InventoryError {
    /// More proxies than the pool's capacity `N`.
    TooManyProxies {
        /// Proxies in the inventory.
        len: usize,
        /// The pool's capacity.
        max: usize,
    },
    /// Two entries share an id.
    DuplicateId {
        /// The id.
        id: ProxyId,
    },
    /// An entry's field holds an unusable value.
    InvalidProxy {
        /// The entry's id.
        id: ProxyId,
        /// The field, e.g. `weight`.
        field: &'static str,
        /// What is wrong and what to do.
        problem: &'static str,
    },
    /// The inventory names more distinct regions than a pool can track.
    TooManyRegions {
        /// The bound ([`MAX_REGIONS`]).
        max: usize,
    },
    /// The allow-lists name more distinct exchanges than a pool can track.
    TooManyExchanges {
        /// The bound ([`MAX_EXCHANGES`]).
        max: usize,
    },
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InventoryError::TooManyProxies { len, max } => write!(
                f,
                "inventory: {len} proxies exceed the pool's capacity of {max}; remove proxies or build the pool with a larger capacity"
            ),
            InventoryError::DuplicateId { id } => write!(
                f,
                "inventory: proxy id \"{id}\" appears more than once; give every proxy its own id"
            ),
            InventoryError::InvalidProxy { id, field, problem } => {
                write!(f, "inventory: proxy \"{id}\": {field}: {problem}")
            }
            InventoryError::TooManyRegions { max } => write!(
                f,
                "inventory: more than {max} distinct regions over the pool's lifetime; use fewer region names"
            ),
            InventoryError::TooManyExchanges { max } => write!(
                f,
                "inventory: the allow-lists name more than {max} distinct exchanges; use fewer allow-list entries"
            ),
        }
    }
}

impl core::error::Error for InventoryError {}

/// What [`Pool::replace_inventory`](super::Pool::replace_inventory) changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InventoryChange {
    /// Proxies new in the inventory.
    pub added: usize,
    /// Proxies that were in the old inventory and are in the new one; their
    /// health, leases, cool-downs and ejection state are kept.
    pub kept: usize,
    /// Proxies no longer in the inventory; their state is dropped.
    pub removed: usize,
}
