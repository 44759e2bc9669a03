//! An endpoint's [`Health`], why it changes ([`HealthReason`]), the
//! [`EndpointEvent`]s that report it, and the [`HealthCheck`]s to send.

use core::fmt;

use embassy_time::Instant;

use crate::breaker::BreakerEvent;

/// The health of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// Answering; takes traffic.
    Healthy,
    /// One call or check failed; an immediate check with a short timeout
    /// decides. Takes traffic only when no endpoint is healthy.
    Suspect,
    /// Failed its confirming check; takes no traffic until a check succeeds.
    Down,
}

crate::labels! {
    /// Lower-case name for logs and metrics labels.
    Health {
        Healthy => "healthy",
        Suspect => "suspect",
        Down => "down",
    }
}

/// Why an endpoint's health changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HealthReason {
    /// A call to the endpoint failed.
    CallFailed,
    /// A call to the endpoint succeeded.
    CallSucceeded,
    /// A health check answered "not ok".
    CheckFailed,
    /// A health check had no answer before its timeout.
    CheckTimedOut,
    /// A health check answered "ok".
    CheckSucceeded,
}

crate::labels! {
    /// Lower-case name for logs and metrics labels.
    HealthReason {
        CallFailed => "call_failed",
        CallSucceeded => "call_succeeded",
        CheckFailed => "check_failed",
        CheckTimedOut => "check_timed_out",
        CheckSucceeded => "check_succeeded",
    }
}

/// Something the adapter should log or count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointEvent {
    /// An endpoint's health changed.
    Health {
        /// The endpoint's index (its position in the list given to
        /// [`Endpoints::new`](super::Endpoints::new)).
        index: usize,
        /// Health before.
        from: Health,
        /// Health after.
        to: Health,
        /// Why.
        reason: HealthReason,
    },
    /// An endpoint's breaker changed state.
    Breaker {
        /// The endpoint's index.
        index: usize,
        /// The transition.
        event: BreakerEvent,
    },
}

impl fmt::Display for EndpointEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointEvent::Health {
                index,
                from,
                to,
                reason,
            } => write!(f, "endpoint {index}: {from} -> {to} ({reason})"),
            EndpointEvent::Breaker { index, event } => write!(f, "endpoint {index}: {event}"),
        }
    }
}

/// A health check to send: the adapter sends a request to endpoint `index`
/// and answers with [`Endpoints::handle_check_result`](super::Endpoints::handle_check_result) and the same `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    /// The endpoint's index.
    pub index: usize,
    /// The check's id, unique within this [`Endpoints`](super::Endpoints).
    pub id: u64,
    /// The check counts as failed if no answer is handled by then.
    pub deadline: Instant,
}
