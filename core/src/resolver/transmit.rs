//! The resolver's exchange with its adapter over HTTP: a [`Transmit`] to
//! send (its [`TransmitKind`] names the method and path), identified by a
//! [`CorrelationId`], and the [`Reply`] it got, or the [`InputError`] when
//! the reply cannot be used.

use core::fmt;

use embassy_time::{Duration, Instant};

#[cfg(doc)]
use super::Resolver;
use crate::contract::{self, Method};
use crate::feedback::BatchId;

/// Identifies one transmit end to end: the adapter sends it in an HTTP header
/// (`X-Correlation-Id`) and writes it in its logs, and gives it back with the
/// reply. Displayed as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CorrelationId(pub(super) u64);

impl CorrelationId {
    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The id with this number, for an adapter that carried it as a number.
    pub const fn from_raw(n: u64) -> Self {
        Self(n)
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What a transmit asks the adapter to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransmitKind {
    /// `POST {endpoint}/api/v1/proxy/request` with the JSON body in the buffer.
    Resolve,
    /// `POST {endpoint}/api/v1/proxy/feedback` with the JSON array in the buffer.
    Feedback(BatchId),
    /// `GET {endpoint}/health`; the buffer is not used (`len` is 0).
    HealthCheck,
}

impl TransmitKind {
    /// The path to send to, below the endpoint's base URL.
    pub const fn path(self) -> &'static str {
        match self {
            TransmitKind::Resolve => contract::REQUEST_PATH,
            TransmitKind::Feedback(_) => contract::FEEDBACK_PATH,
            TransmitKind::HealthCheck => contract::HEALTH_PATH,
        }
    }

    /// The HTTP method.
    pub const fn method(self) -> Method {
        match self {
            TransmitKind::Resolve | TransmitKind::Feedback(_) => Method::Post,
            TransmitKind::HealthCheck => Method::Get,
        }
    }
}

crate::labels! {
    /// Lower-case name for logs and metrics labels.
    TransmitKind {
        Resolve => "resolve",
        Feedback(_) => "feedback",
        HealthCheck => "health",
    }
}

/// A request for the adapter to send; the body is `out[..len]` of the buffer
/// given to [`Resolver::poll_output`]. It carries its route: the endpoint,
/// and [`TransmitKind::path`] and [`TransmitKind::method`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Give it back with the reply.
    pub id: CorrelationId,
    /// Index of the endpoint to send to (see [`Resolver::endpoint`]).
    pub endpoint: usize,
    /// What to send.
    pub kind: TransmitKind,
    /// Bytes of body written at the start of the buffer.
    pub len: usize,
    /// Give up (and report [`Reply::Failed`]) if no reply by then; replying
    /// later is harmless.
    pub deadline: Instant,
}

/// How a transmit ended, as the adapter saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// A 2xx status with this body.
    Ok(&'a [u8]),
    /// Any other status; `retry_after` from the `Retry-After` header.
    Status {
        /// The HTTP status.
        code: u16,
        /// The server's hint, if any.
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused or reset, TLS failure, timeout.
    Failed,
}

/// An input the resolver could not use. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputError {
    /// [`Resolver::handle_reply`] got an id that is unknown, already answered
    /// or timed out.
    UnknownCorrelation {
        /// The id given.
        id: CorrelationId,
    },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::UnknownCorrelation { id } => write!(
                f,
                "reply for correlation id {id} ignored: unknown, already answered or timed out"
            ),
        }
    }
}

impl core::error::Error for InputError {}
