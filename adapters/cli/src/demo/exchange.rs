//! The demo's "exchange": a WebSocket server on 127.0.0.1 serving one path
//! per exchange (`/binance`, `/coinbase`, `/kraken`). Each socket gets one
//! ticker message naming its exchange, then has its messages echoed until
//! it closes. Any other path is refused with `404`.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

/// The exchanges the demo connects to, in the order it shows them.
pub(crate) const EXCHANGES: [&str; 3] = ["binance", "coinbase", "kraken"];

/// How long a client may take over its WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The exchange server; stops when dropped.
#[derive(Debug)]
pub(crate) struct LocalExchange {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for LocalExchange {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl LocalExchange {
    /// Starts the server on 127.0.0.1, on a free port.
    pub(crate) async fn start() -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let sequence = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let sequence = sequence.clone();
                tokio::spawn(serve(stream, sequence));
            }
        });
        Ok(Self { addr, accept })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WebSocket URL of `exchange`'s stream.
    pub(crate) fn url(&self, exchange: &str) -> String {
        format!("ws://{}/{exchange}", self.addr)
    }
}

/// The ticker message `exchange`'s stream opens with.
pub(crate) fn ticker(exchange: &str, sequence: u64) -> String {
    let price = match exchange {
        "binance" => "64210.50",
        "coinbase" => "64208.25",
        _ => "64213.00",
    };
    format!(
        r#"{{"exchange":"{exchange}","channel":"ticker","symbol":"BTC-USD","price":"{price}","sequence":{sequence}}}"#
    )
}

/// One socket: the handshake (its path names the exchange), a ticker, then
/// an echo until the client closes.
async fn serve(stream: TcpStream, sequence: Arc<AtomicU64>) {
    let _ = stream.set_nodelay(true);
    let mut exchange = None;
    // The error type is tungstenite's (a whole HTTP response), not ours.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        let path = request.uri().path().trim_start_matches('/');
        match EXCHANGES.iter().find(|e| **e == path) {
            Some(found) => {
                exchange = Some(*found);
                Ok(response)
            }
            None => {
                let mut refused = ErrorResponse::new(Some(format!(
                    "no such stream: this exchange serves /{}",
                    EXCHANGES.join(", /")
                )));
                *refused.status_mut() = StatusCode::NOT_FOUND;
                Err(refused)
            }
        }
    };
    let accepted = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::accept_hdr_async(stream, callback),
    )
    .await;
    let (Ok(Ok(mut ws)), Some(exchange)) = (accepted, exchange) else {
        return;
    };
    let n = sequence.fetch_add(1, Ordering::Relaxed) + 1;
    if ws.send(Message::text(ticker(exchange, n))).await.is_err() {
        return;
    }
    // Pings and a Close are tungstenite's to answer; a Close ends the stream.
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            return;
        }
    }
}
