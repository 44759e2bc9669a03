//! # proxy-delegate-core
//!
//! The sans-IO heart of proxy-delegate: the data model of the proxy-delegation
//! protocol and its two wire formats (JSON and postcard), the HTTP contract
//! ([`contract`]), and the state machines an adapter drives: the client's
//! [`resolver::Resolver`] (with its [`cache`], [`breaker`]s, [`endpoints`],
//! [`backoff`] and [`feedback`] queue, falling back to the cryptofeed-compatible
//! [`settings`]), and the service's [`pool`]. [`delegation`] turns the loaded
//! `external_service` block into the Resolver's configuration.
//!
//! An adapter owns the clock and the sockets: it calls
//! [`Resolver::resolve`](resolver::Resolver::resolve) and
//! [`Resolver::report`](resolver::Resolver::report), drains
//! [`Resolver::poll_output`](resolver::Resolver::poll_output) until it says
//! `Timeout`, sends each `Transmit`, and feeds each reply back with
//! [`Resolver::handle_reply`](resolver::Resolver::handle_reply).
//!
//! The crate is `#![no_std]`, never allocates and never performs IO or reads a
//! clock. Every value is validated when it is built and when it is decoded; an
//! invalid value is a [`ValidationError`] that names the field and the reason.
//!
//! ```
//! use proxy_delegate_core::{codec, model::ProxyResponse};
//!
//! let body = br#"{"proxy_url":"socks5://user:pass@proxy-server:1080","strategy":"least_connections",
//!     "ttl_seconds":300,"fallback_policy":"direct_connection",
//!     "metadata":{"proxy_id":"proxy-123","region":"us-east-1","health_score":0.98}}"#;
//! let response: ProxyResponse = codec::json::decode(body)?;
//! // The password never reaches Display or Debug output.
//! assert_eq!(
//!     response.proxy_url.as_ref().map(|u| u.to_string()).as_deref(),
//!     Some("socks5://user:***@proxy-server:1080")
//! );
//! # Ok::<(), proxy_delegate_core::codec::DecodeError>(())
//! ```
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod backoff;
pub mod breaker;
pub mod cache;
pub mod codec;
pub mod contract;
pub mod delegation;
pub mod embedded;
pub mod endpoints;
mod error;
pub mod feedback;
mod hash;
pub mod keep;
mod labels;
pub mod model;
pub mod pool;
pub mod resolver;
pub mod settings;
pub mod storage;

pub use error::{Excerpt, MAX_QUOTED_LEN, Reason, ValidationError, quotable};
