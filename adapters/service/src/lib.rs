//! `proxy-delegate-service`: the reference proxy service. It answers
//! `POST /api/v1/proxy/request` with a proxy chosen by
//! [`core::pool`](proxy_delegate_core::pool), takes feedback on
//! `POST /api/v1/proxy/feedback`, and shows the pool on `GET /` (status
//! page), `GET /api/v1/proxies`, `GET /metrics` and `GET /health`; the API
//! is described at `GET /openapi.json`.
//!
//! ```no_run
//! use proxy_delegate_service::{Service, ServiceConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ServiceConfig::load("service.toml")?;
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! let running = Service::new(config)?.start(listener)?;
//! println!("listening on {}", running.local_addr());
//! running.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The adapter decides nothing itself: selection, health, cool-downs and
//! ejections are the pool's. It owns the clock, the sockets, TLS,
//! authentication, rate limits, metrics and the configuration file.

#![deny(missing_docs)]

mod app;
mod auth;
mod body;
pub mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod metrics;
pub mod openapi;
mod server;
pub mod snapshot;
mod status_page;

use std::fmt;

pub use app::{FeedbackAck, Health, HealthStatus, MAX_PROXIES, MAX_STICKY};
pub use body::{JSON, MAX_BODY, POSTCARD};
pub use config::{ConfigError, ServiceConfig};
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use server::{ReloadReport, Running, Service, run_until_signal};
pub use status_page::render_status_page;

/// The service could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration cannot be used.
    Config(String),
    /// The TLS certificate, key or CA cannot be used.
    Tls(String),
    /// A socket or thread could not be set up.
    Io(std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(m) => write!(f, "configuration: {m}"),
            StartError::Tls(m) => write!(f, "TLS: {m}"),
            StartError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}
