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
//!
//! ```no_run
//! use futures_util::{SinkExt as _, StreamExt as _};
//! use proxy_delegate_tokio::{ProxyInjector, ProxyServiceClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let loaded = proxy_delegate_config::Loader::new()
//!     .yaml_file("config.yaml")
//!     .process_env()
//!     .load()?;
//! let client_id = loaded.client_id();
//! // Delegation on: ask the service; off: the embedded configuration alone.
//! let client = if loaded.settings.external_service.enabled {
//!     Some(ProxyServiceClient::from_settings(&loaded.settings, &client_id).await?)
//! } else {
//!     None
//! };
//! let injector = ProxyInjector::new(loaded.settings, client.clone())?;
//!
//! let mut ws = injector
//!     .connect_websocket("wss://stream.binance.com:9443/ws", "binance")
//!     .await?;
//! ws.send(tokio_tungstenite::tungstenite::Message::text("{}")).await?;
//! if let Some(message) = ws.next().await {
//!     println!("{:?}", message?);
//! }
//! drop(ws); // reports `disconnect`
//!
//! if let Some(client) = client {
//!     let report = client.shutdown(std::time::Duration::from_secs(2)).await;
//!     eprintln!("{} feedback events not delivered", report.undelivered);
//! }
//! # Ok(()) }
//! ```
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
    FLIGHT_CAPACITY, INBOX_CAPACITY, ProxyServiceClient, ShutdownReport, WAITER_CAPACITY,
};
pub use error::{BuildError, FailureKind, ServiceError};
#[cfg(feature = "reqwest")]
pub use http::{HttpTransport, TransportConfig};
#[cfg(feature = "injector")]
pub use inject::{
    ConnectError, Connected, InjectedWebSocket, InjectorConfig, ProxyInjector, Tunnel,
};
pub use transport::{BoxFuture, ServiceAnswer, ServiceCall, Transport};
