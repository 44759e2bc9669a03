//! What a resolve gives: [`Resolution`] at once, or an [`Answer`] for its
//! [`Ticket`] later; a [`Route`] (or [`RouteRef`]) and its [`Source`], or a
//! [`ResolveError`]; and why the service's answer was missing,
//! [`FallbackReason`].

use core::fmt;

use embassy_time::Instant;

#[cfg(doc)]
use super::{Output, Resolver};
use crate::model::{ProxyId, ProxyUrl};

/// Where a route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The service answered this resolve.
    Service,
    /// A fresh cached answer of the service.
    Cache,
    /// An expired cached answer, within its grace, because the service could
    /// not answer in time.
    Stale,
    /// The embedded configuration.
    Embedded,
    /// No proxy: connect directly.
    Direct,
}

impl Source {
    /// Every source, in the order of their numbers (`source as usize`, the
    /// index of [`Stats::resolved`](super::Stats::resolved)).
    pub const ALL: [Source; 5] = [
        Source::Service,
        Source::Cache,
        Source::Stale,
        Source::Embedded,
        Source::Direct,
    ];
}

crate::labels! {
    /// Lower-case name for logs and metrics labels.
    Source {
        Service => "service",
        Cache => "cache",
        Stale => "stale",
        Embedded => "embedded",
        Direct => "direct",
    }
}

/// Why a resolve did not get the service's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FallbackReason {
    /// No endpoint could take the request: all down, or their breakers open.
    /// The fallback cost no waiting.
    NoEndpoint,
    /// The resolve's deadline passed before the service answered.
    Deadline,
    /// Every attempt failed (errors, timeouts, malformed or refused answers).
    ServiceFailed,
    /// Too many requests or waiting resolves at once (the resolver's
    /// `FLIGHTS` and `WAITERS` capacities).
    Overloaded,
}

crate::labels! {
    /// Lower-case name for logs and metrics labels.
    FallbackReason {
        NoEndpoint => "no_endpoint",
        Deadline => "deadline",
        ServiceFailed => "service_failed",
        Overloaded => "overloaded",
    }
}

/// A resolve that yields no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveError {
    /// The service could not answer and the last `fallback_policy` for this key
    /// is `fail`: do not connect.
    ServiceUnavailable {
        /// Why the service's answer was missing.
        reason: FallbackReason,
    },
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::ServiceUnavailable { reason } => write!(
                f,
                "the proxy service gave no answer ({reason}) and its fallback_policy for this \
                 connection is \"fail\": not connecting"
            ),
        }
    }
}

impl core::error::Error for ResolveError {}

/// A route, borrowed from the resolver (what [`Resolver::resolve`] returns at
/// once). [`RouteRef::to_owned`] copies it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteRef<'a> {
    /// The proxy to connect through, with credentials for the connector;
    /// `None`: connect directly.
    pub proxy_url: Option<&'a ProxyUrl>,
    /// The service's id of the proxy, when the service chose it.
    pub proxy_id: Option<&'a ProxyId>,
    /// Where the route came from.
    pub source: Source,
}

impl RouteRef<'_> {
    /// An owned copy.
    pub fn to_owned(&self) -> Route {
        Route {
            proxy_url: self.proxy_url.cloned(),
            proxy_id: self.proxy_id.cloned(),
            source: self.source,
        }
    }
}

/// A route, owned (what [`Output::Answer`] hands out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The proxy to connect through; `None`: connect directly.
    pub proxy_url: Option<ProxyUrl>,
    /// The service's id of the proxy, when the service chose it.
    pub proxy_id: Option<ProxyId>,
    /// Where the route came from.
    pub source: Source,
}

/// A pending resolve's handle; its answer comes out of [`Resolver::poll_output`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub(super) u64);

impl Ticket {
    /// The number (unique within one resolver).
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The ticket with this number, for a caller that kept it as a number.
    pub const fn from_raw(n: u64) -> Self {
        Self(n)
    }
}

/// What [`Resolver::resolve`] gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution<'a> {
    /// The route, at once: a fresh cached answer, or a fallback that costs no
    /// waiting (the service cannot be asked).
    Ready(RouteRef<'a>),
    /// Asked the service (or joined a request already in flight): the answer
    /// comes out of [`Resolver::poll_output`] with this ticket by the deadline.
    Pending(Ticket),
    /// No route: the service cannot be asked and the policy is `fail`.
    Failed(ResolveError),
}

/// The answer to a [`Resolution::Pending`] resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The resolve's ticket.
    pub ticket: Ticket,
    /// The route, or why there is none.
    pub result: Result<Route, ResolveError>,
    /// When the resolve was made (its latency is the answer's time minus this).
    pub started: Instant,
}
