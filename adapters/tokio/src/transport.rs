//! The seam between the client's driver and the network: one call sends one
//! core transmit to one endpoint and gives back the service's answer or a
//! classified failure. [`crate::HttpTransport`] (feature `reqwest`) is the
//! real one; tests and other stacks can bring their own.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use proxy_delegate_core::contract::WireFormat;
use proxy_delegate_core::endpoints::ServiceUrl;
use proxy_delegate_core::resolver::{CorrelationId, TransmitKind};

use crate::error::ServiceError;

/// One request for the service, as the core's transmit describes it.
#[derive(Debug, Clone, Copy)]
pub struct ServiceCall<'a> {
    /// The endpoint's base URL; the path comes from [`TransmitKind::path`].
    pub endpoint: &'a ServiceUrl,
    /// What to send (method and path).
    pub kind: TransmitKind,
    /// Sent in the [`CORRELATION_HEADER`](proxy_delegate_core::contract::CORRELATION_HEADER).
    pub id: CorrelationId,
    /// The body (empty for a health check).
    pub body: &'a [u8],
    /// The body's format (`Content-Type`), and the answer's (`Accept`).
    pub wire: WireFormat,
    /// Give up after this long.
    pub timeout: Duration,
}

/// An HTTP answer of the service: any status, with its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The body, at most [`MAX_BODY`](proxy_delegate_core::contract::MAX_BODY) bytes.
    pub body: Bytes,
    /// The `Retry-After` header (seconds form), if any.
    pub retry_after: Option<Duration>,
}

/// A boxed, sendable future (what [`Transport::send`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends calls to the service.
///
/// An implementation answers every call with the HTTP answer (whatever its
/// status) or a [`ServiceError`] that says why there was none (timeout,
/// refused, DNS, TLS, oversized answer...). It must honour `call.timeout`
/// and never read more than `MAX_BODY` bytes of an answer.
pub trait Transport: Send + Sync + 'static {
    /// Sends one call.
    fn send<'a>(
        &'a self,
        call: ServiceCall<'a>,
    ) -> BoxFuture<'a, Result<ServiceAnswer, ServiceError>>;
}
