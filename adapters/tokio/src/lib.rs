//! # proxy-delegate-tokio
//!
//! Drives the sans-IO [`proxy_delegate_core`] on tokio.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
#[cfg(feature = "dns-srv")]
mod discovery;
pub mod error;
#[cfg(feature = "reqwest")]
mod http;
pub mod metrics;
#[cfg(feature = "dns-srv")]
pub mod srv;
pub mod transport;

pub use client::{
    CACHE_CAPACITY, ClientError, ClientResolver, ENDPOINT_CAPACITY, Embedded, FEEDBACK_CAPACITY,
    FLIGHT_CAPACITY, ProxyServiceClient, ShutdownReport, WAITER_CAPACITY,
};
pub use error::{BuildError, FailureKind, ServiceError};
#[cfg(feature = "reqwest")]
pub use http::{HttpTransport, TransportConfig};
pub use transport::{BoxFuture, ServiceAnswer, ServiceCall, Transport};
