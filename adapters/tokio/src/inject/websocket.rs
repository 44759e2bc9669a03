//! [`InjectedWebSocket`]: a WebSocket opened through the delegated proxy,
//! which reports `disconnect` once, when it closes or is dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Sink, Stream};
use proxy_delegate_core::resolver::Route;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::Connection;
use super::tunnel::Tunnel;

/// A WebSocket to an exchange through its delegated proxy (or direct).
///
/// A [`Stream`] of messages and a [`Sink`] for them, like the
/// `WebSocketStream` it wraps (use `futures_util::{StreamExt, SinkExt}`).
/// When the stream ends, an error ends it, the socket is closed, or it is
/// dropped, the connection reports `disconnect` and gives back its
/// `least_connections` lease, once.
#[derive(Debug)]
pub struct InjectedWebSocket {
    ws: WebSocketStream<Tunnel>,
    connection: Connection,
}

impl InjectedWebSocket {
    pub(crate) fn new(ws: WebSocketStream<Tunnel>, connection: Connection) -> Self {
        Self { ws, connection }
    }

    /// The route this socket went through (the proxy prints its password
    /// as `***`).
    pub fn route(&self) -> &Route {
        self.connection.route()
    }

    /// How long connecting took: tunnel, TLS and WebSocket handshake.
    pub fn connect_latency(&self) -> std::time::Duration {
        self.connection.latency()
    }

    /// Time spent resolving the route (every attempt's resolve, summed).
    pub fn resolve_wait(&self) -> std::time::Duration {
        self.connection.resolve_wait()
    }

    /// The WebSocket stream itself (its configuration, its state).
    pub fn get_ref(&self) -> &WebSocketStream<Tunnel> {
        &self.ws
    }
}

impl Stream for InjectedWebSocket {
    type Item = Result<Message, WsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.ws).poll_next(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.connection.close();
        }
        polled
    }
}

impl Sink<Message> for InjectedWebSocket {
    type Error = WsError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.ws).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        Pin::new(&mut self.ws).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.ws).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let polled = Pin::new(&mut self.ws).poll_close(cx);
        if polled.is_ready() {
            self.connection.close();
        }
        polled
    }
}
