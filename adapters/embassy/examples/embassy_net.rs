//! Wiring `proxy-delegate-embassy` to an embassy-net stack, as a gateway's
//! firmware does (docs/gateway.md, "Wiring the embassy adapter").
//!
//! This file is compiled on the host with the workspace's tests, so that
//! the wiring follows the adapter's and embassy-net's real APIs; it is not
//! run. A `Stack` needs the board's network driver (its Ethernet or Wi-Fi
//! peripheral, from its HAL), which the host does not have; the adapter
//! itself is tested on the host over `std-embedded-nal-async`
//! (`tests/service.rs`). On a board, `start` is called from the firmware's
//! `#[embassy_executor::main]` once `embassy_net::new` has given the stack
//! and its runner task is spawned.
//!
//! ```text
//! cargo build -p proxy-delegate-embassy --example embassy_net
//! ```

use embassy_executor::Spawner;
use embassy_net::Stack;
use embassy_net::dns::DnsSocket;
use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use proxy_delegate_core::ValidationError;
use proxy_delegate_core::contract::WireFormat;
use proxy_delegate_core::endpoints::EndpointConfig;
use proxy_delegate_core::keep::Compact;
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ExchangeId, FeedbackEvent, ProxyFeedback, ProxyRequest, Timestamp,
};
use proxy_delegate_core::resolver::{Resolver, ResolverConfig};
use proxy_delegate_core::storage::Inline;
use proxy_delegate_embassy::{Auth, Buffers, Client, now};
use static_cell::StaticCell;

// The gateway profile: 32 cached routes, 2 endpoints, 32 feedback events,
// 4 requests in flight, 8 waiting resolves, its messages kept packed
// (docs/gateway.md, "Whole or packed messages"), 8 events.
type Keeping = Compact<128, 160, 96>;
type GatewayResolver = Resolver<(), 32, 2, 32, 4, 8, Inline, Keeping, 8>;
type GatewayClient =
    Client<'static, CriticalSectionRawMutex, (), 32, 2, 32, 4, 8, Inline, Keeping, 8>;

/// Calls to the service at once: a request, a feedback batch and a health
/// check here. Each sender costs a transmit buffer (4 KiB) and an answer
/// buffer (2 KiB) in `Buffers`, and a socket (its TX and RX buffers) in
/// the `TcpClientState`.
const SENDERS: usize = 3;

static RESOLVER: StaticCell<GatewayResolver> = StaticCell::new();
static CLIENT: StaticCell<GatewayClient> = StaticCell::new();
static BUFFERS: StaticCell<Buffers<SENDERS>> = StaticCell::new();
/// One socket per sender, 1 KiB each way (a request or an answer is a few
/// hundred bytes; a feedback batch streams through).
static TCP_STATE: StaticCell<TcpClientState<SENDERS, 1024, 1024>> = StaticCell::new();

/// The driver: the adapter's one long-running future, over the stack's
/// TCP client and DNS.
#[embassy_executor::task]
async fn proxy_delegate(
    client: &'static GatewayClient,
    stack: Stack<'static>,
    buffers: &'static mut Buffers<SENDERS>,
) -> ! {
    let tcp = TcpClient::new(stack, TCP_STATE.init(TcpClientState::new()));
    let dns = DnsSocket::new(stack);
    client.run(&tcp, &dns, buffers).await
}

/// Any other task: asks for a route, connects through it, reports how it
/// went.
#[embassy_executor::task]
async fn market_data(client: &'static GatewayClient) {
    let (Ok(exchange), Ok(client_id)) = (ExchangeId::new("binance"), ClientId::new("gateway-1"))
    else {
        return;
    };
    let request = ProxyRequest::new(
        exchange.clone(),
        ConnectionType::Websocket,
        client_id.clone(),
    );
    // A fresh cache entry at once; otherwise the service within the resolve
    // deadline, or the fallback the core decides. An error only for the
    // `fail` policy.
    let Ok(route) = client.resolve(&request).await else {
        return;
    };
    // ... connect through `route.proxy_url` (None: directly) ...
    let Some(timestamp) = Timestamp::from_unix_millis(1_767_225_600_000) else {
        return;
    };
    client.report_feedback(ProxyFeedback {
        proxy_id: route.proxy_id.clone(),
        proxy_url: route.proxy_url.clone(),
        exchange_id: exchange.clone(),
        connection_type: ConnectionType::Websocket,
        event: FeedbackEvent::Success,
        success: true,
        latency_ms: Some(40),
        error_category: None,
        error_details: None,
        timestamp,
        client_id,
    });
    // ... when the connection ends (an embedded least_connections pick
    // gets its lease back):
    client.connection_closed(&exchange, ConnectionType::Websocket, &route);
}

/// Builds the Resolver and the client in their statics and spawns the
/// driver and a user. Called once, from the firmware's main, with the
/// stack embassy-net built.
fn start(spawner: Spawner, stack: Stack<'static>) -> Result<(), ValidationError> {
    let mut config = ResolverConfig::new(ClientId::new("gateway-1")?);
    // postcard needs no JSON code in flash (the core without `json`).
    config.wire = WireFormat::Postcard;
    let endpoints = [
        EndpointConfig::new("http://10.0.0.2:8080".parse()?, 0),
        EndpointConfig::new("http://10.0.0.3:8080".parse()?, 0),
    ];
    // `Resolver::new` returns the Resolver by value: building it takes
    // about its size of stack for a moment (docs/gateway.md, "The stack").
    // A firmware short of stack builds it in place with
    // `StaticCell::init_with`, as examples/gateway-firmware does.
    let resolver = RESOLVER.init(GatewayResolver::new(now(), config, &endpoints, ())?);
    let client: &'static GatewayClient = CLIENT.init(Client::new(resolver, Auth::None));
    let buffers = BUFFERS.init(Buffers::new());
    if let Ok(driver) = proxy_delegate(client, stack, buffers) {
        spawner.spawn(driver);
    }
    if let Ok(user) = market_data(client) {
        spawner.spawn(user);
    }
    Ok(())
}

fn main() {
    // Not run on the host (see the top of the file): naming `start` keeps
    // it compiled and type-checked as a board's main would call it.
    let _board_main: fn(Spawner, Stack<'static>) -> Result<(), ValidationError> = start;
}
