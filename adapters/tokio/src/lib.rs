//! # proxy-delegate-tokio
//!
//! Drives the sans-IO [`proxy_delegate_core`] on tokio: [`ProxyServiceClient`]
//! asks the proxy service which proxy each exchange connection uses (over
//! [`HttpTransport`], feature `reqwest`, on by default), caches the answers,
//! falls back when the service is slow, down or wrong, and reports feedback.
//!
//! * [`ProxyServiceClient::from_boxed_settings`] builds it from the loaded
//!   cryptofeed-compatible settings; [`ProxyServiceClient::with_transport`]
//!   over any [`Transport`].
//! * [`ProxyServiceClient::get_proxy`] (async) answers from a fresh cache
//!   entry at once, otherwise within the resolve deadline;
//!   [`ProxyServiceClient::report_feedback`] never awaits;
//!   [`ProxyServiceClient::shutdown`] delivers what is queued within a bound.
//! * Failures are [`ServiceError`]s classified by [`FailureKind`], with a
//!   message that says what to do; [`metrics`] lists every metric.
//! * Feature `injector` (on by default): [`ProxyInjector`] opens HTTP
//!   clients and WebSockets to exchanges through their delegated proxies
//!   (HTTP CONNECT, SOCKS4/4a/5/5h) and reports every connection.
//! * Feature `dns-srv`: endpoints from DNS SRV records (the `srv` module).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
#[cfg(feature = "dns-srv")]
mod discovery;
pub mod error;
#[cfg(feature = "reqwest")]
mod http;
#[cfg(feature = "injector")]
mod inject;
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
#[cfg(feature = "injector")]
pub use inject::{ConnectError, InjectedWebSocket, InjectorConfig, ProxyInjector, Tunnel};
pub use transport::{BoxFuture, ServiceAnswer, ServiceCall, Transport};
