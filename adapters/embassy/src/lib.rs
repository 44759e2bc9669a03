//! # proxy-delegate-embassy
//!
//! Drives the sans-IO [`proxy_delegate_core`] on [embassy]: `no_std`, no
//! allocation, no `unsafe`. [`Client`] asks the proxy service which proxy
//! each exchange connection uses, caches the answers, falls back when the
//! service is slow, down or wrong (stale cache, the embedded configuration,
//! a direct connection, as the core decides), and reports feedback, over
//! any network stack that implements the [`embedded-nal-async`] traits
//! (`TcpConnect`, and `Dns` for host names): embassy-net, or
//! `std-embedded-nal-async` on a host.
//!
//! It does the job of `proxy-delegate-tokio`'s `ProxyServiceClient`:
//!
//! * [`Client::run`] is the one driver future the application spawns: it
//!   sleeps until the Resolver's next timer (embassy-time's `Timer::at`)
//!   or until an input signals it (an embassy-sync `Signal`), sends the
//!   Resolver's transmits (`SENDERS` at once) and feeds the replies back.
//! * [`Client::resolve`] answers from a fresh cache entry at once (a lock
//!   and a lookup), otherwise within the resolve deadline; dropping its
//!   future withdraws the resolve.
//! * [`Client::report_feedback`] is synchronous and never blocks: the
//!   Resolver's feedback queue batches the events, and when full drops its
//!   oldest, counted in [`Client::stats`].
//! * Health checks, the breakers, hedging and retries are the core's: each
//!   call's outcome goes back as the tokio adapter reports it (2xx: the
//!   body; another status: the status and `Retry-After`; no answer (DNS,
//!   connect, I/O, malformed, oversized, deadline): `Reply::Failed`).
//!
//! The Resolver's state is borrowed (`&'r mut`), so its storage is the
//! caller's (a `StaticCell`, a `static`), as are the [`Buffers`] the driver
//! works in; the shared state sits in a blocking mutex (`M`, embassy-sync's
//! `RawMutex`) that is never held across an `.await`.
//!
//! ## HTTP and TLS
//!
//! The adapter speaks HTTP/1.1 itself (a small client on `httparse`): one
//! connection per call (`Connection: close`), the method and path of the
//! core's contract, `Host`, `Accept` and `Content-Type` of the wire format
//! (JSON or postcard, `ResolverConfig::wire`), `Content-Length`,
//! `X-Correlation-Id` and the credential ([`Auth`]: bearer token or API
//! key). It reads each answer into a fixed [`ANSWER_BUFFER`] and refuses a
//! larger one. Feedback is not compressed.
//!
//! **TLS is left to the stack.** The adapter writes plain HTTP on the
//! connection its `TcpConnect` gives it, for `http://` and `https://`
//! endpoints alike (port 443 by default for `https`). For an `https`
//! endpoint, give it a `TcpConnect` whose connections are TLS sessions (for
//! example embassy-net's `TcpSocket` wrapped in `embedded-tls`, which then
//! names the server and checks its certificate with the verifier its crypto
//! provider gives); mutual TLS is that stack's too.
//!
//! ## Wiring it to embassy-net
//!
//! In short (not compiled here; the whole wiring, compiled on the host with
//! the tests, is `examples/embassy_net.rs`, and `docs/gateway.md` explains
//! it):
//!
//! ```ignore
//! use embassy_net::dns::DnsSocket;
//! use embassy_net::tcp::client::{TcpClient, TcpClientState};
//! use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
//! use proxy_delegate_core::endpoints::EndpointConfig;
//! use proxy_delegate_core::model::{ClientId, ConnectionType, ExchangeId, ProxyRequest};
//! use proxy_delegate_core::keep::Compact;
//! use proxy_delegate_core::resolver::{Resolver, ResolverConfig};
//! use proxy_delegate_core::storage::Inline;
//! use proxy_delegate_embassy::{Auth, Buffers, Client};
//! use static_cell::StaticCell;
//!
//! // 32 cached routes, 2 endpoints, 32 feedback events, 4 flights, 8 waiters,
//! // messages kept packed (32 KiB in all), 8 events.
//! type Keeping = Compact<128, 160, 96>;
//! type Gateway = Resolver<(), 32, 2, 32, 4, 8, Inline, Keeping, 8>;
//! type GatewayClient =
//!     Client<'static, CriticalSectionRawMutex, (), 32, 2, 32, 4, 8, Inline, Keeping, 8>;
//! const SENDERS: usize = 2;
//!
//! static RESOLVER: StaticCell<Gateway> = StaticCell::new();
//! static CLIENT: StaticCell<GatewayClient> = StaticCell::new();
//! static BUFFERS: StaticCell<Buffers<SENDERS>> = StaticCell::new();
//! static TCP_STATE: StaticCell<TcpClientState<SENDERS, 1024, 1024>> = StaticCell::new();
//!
//! #[embassy_executor::task]
//! async fn proxy_delegate(
//!     client: &'static GatewayClient,
//!     stack: embassy_net::Stack<'static>,
//!     buffers: &'static mut Buffers<SENDERS>,
//! ) -> ! {
//!     let tcp = TcpClient::new(stack, TCP_STATE.init(TcpClientState::new()));
//!     let dns = DnsSocket::new(stack);
//!     client.run(&tcp, &dns, buffers).await
//! }
//!
//! // In main, once the stack is up:
//! let config = ResolverConfig::new(ClientId::new("gateway-1")?);
//! let endpoints = [EndpointConfig::new("http://10.0.0.2:8080".parse()?, 0)];
//! let resolver = RESOLVER.init(Gateway::new(proxy_delegate_embassy::now(), config, &endpoints, ())?);
//! let client = CLIENT.init(Client::new(resolver, Auth::None));
//! spawner.spawn(proxy_delegate(client, stack, BUFFERS.init(Buffers::new()))?);
//!
//! // Any task:
//! let request = ProxyRequest::new(ExchangeId::new("binance")?, ConnectionType::Websocket,
//!     ClientId::new("gateway-1")?);
//! let route = client.resolve(&request).await?; // route.proxy_url: None = connect directly
//! ```
//!
//! `Resolver::new` builds the value on the stack before `StaticCell::init`
//! moves it; for a large Resolver build it in place (`StaticCell::init_with`)
//! or size the stack for it.
//!
//! ## What it gives up compared with the tokio adapter
//!
//! * No TLS of its own, no mutual TLS, no HTTP/2, no connection reuse (one
//!   connection per call), no gzip for feedback batches.
//! * No DNS SRV discovery: endpoints are the ones given (replace them
//!   through the Resolver if needed).
//! * Answers up to [`ANSWER_BUFFER`] bytes (the tokio adapter takes 64
//!   KiB); feedback batches up to [`TRANSMIT_BUFFER`] bytes.
//! * `SENDERS` calls at once, fixed; with all busy, the next transmit and
//!   the answers behind it wait for a sender (each call is bounded by its
//!   deadline).
//! * No inbox in front of the feedback queue: when the Resolver's queue is
//!   full its oldest event is dropped (counted), where the tokio adapter
//!   holds a burst of up to 4,096 more on the heap.
//! * No logs or metrics: the Resolver's events are counted, not logged;
//!   [`Client::stats`] has every counter. Failures are typed ([`Failure`])
//!   but carry no message.
//! * No shutdown that drains the queue within a bound: call
//!   [`Client::flush_feedback`] and let the driver run.
//!
//! [embassy]: https://embassy.dev
//! [`embedded-nal-async`]: https://docs.rs/embedded-nal-async
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod http;

pub use client::{ANSWER_BUFFER, AdapterStats, Buffers, Client, Stats, TRANSMIT_BUFFER, now};
pub use http::{Auth, Failure};

/// A [`Dns`](embedded_nal_async::Dns) for a stack without one: every name
/// fails ([`Failure::Dns`]), so endpoints must be IP literals.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDns;

/// The error of [`NoDns`]: names cannot be looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoDnsError;

impl embedded_nal_async::Dns for NoDns {
    type Error = NoDnsError;

    async fn get_host_by_name(
        &self,
        _host: &str,
        _addr_type: embedded_nal_async::AddrType,
    ) -> Result<core::net::IpAddr, Self::Error> {
        Err(NoDnsError)
    }

    async fn get_host_by_address(
        &self,
        _addr: core::net::IpAddr,
        _result: &mut [u8],
    ) -> Result<usize, Self::Error> {
        Err(NoDnsError)
    }
}
