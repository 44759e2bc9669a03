//! One connection of the demo: the exchange's route (timed and counted),
//! then a WebSocket through the injector, its ticker, a clean close, and
//! its line(s) of progress.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use proxy_delegate_core::model::{ConnectionType, ErrorCategory};
use proxy_delegate_core::resolver::{Route, Source};
use proxy_delegate_tokio::InjectedWebSocket;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::attempts::Attempts;
use super::show::{Colour, ms, proxy_text};
use super::{CLOSE_TIMEOUT, CONNECT_BOUND, Demo, RESOLVE_BOUND, TICKER_TIMEOUT};
use crate::Failure;

/// One connection the demo made: the resolve before it, and how it went.
#[derive(Debug)]
pub(super) struct Conn {
    exchange: &'static str,
    /// The route `route()` gave just before, and how long it took.
    pub(super) resolved: Option<(Route, Duration)>,
    outcome: Outcome,
    /// Attempts that failed, by category, as the injector counted them
    /// (the first attempt of a connection it retried included).
    failed: Vec<(String, u64)>,
}

#[derive(Debug)]
enum Outcome {
    Connected {
        /// Boxed: a route holds a whole proxy URL.
        route: Box<Route>,
        latency: Duration,
        /// Whether the exchange's ticker came through the tunnel.
        ticker: bool,
    },
    Failed {
        message: String,
    },
}

impl Conn {
    pub(super) fn source(&self) -> Option<Source> {
        self.resolved.as_ref().map(|(r, _)| r.source)
    }

    /// The route of a connection that opened and carried the ticker.
    pub(super) fn connected(&self) -> Option<&Route> {
        match &self.outcome {
            Outcome::Connected {
                route,
                ticker: true,
                ..
            } => Some(route),
            _ => None,
        }
    }
}

impl Demo<'_, '_> {
    /// The exchange's route (timed, counted), then a WebSocket through the
    /// injector, its ticker, and a clean close.
    pub(super) async fn connect(&mut self, exchange: &'static str) -> Conn {
        let resolved = match self.resolve(exchange).await {
            Ok(resolved) => resolved,
            Err(failure) => {
                self.tally.attempted(Err(None));
                return Conn {
                    exchange,
                    resolved: None,
                    outcome: Outcome::Failed {
                        message: failure_text(&failure),
                    },
                    failed: Vec::new(),
                };
            }
        };
        let before = self.attempts.as_ref().map(Attempts::snapshot);
        let url = self.exchange.url(exchange);
        let connecting = tokio::time::timeout(
            CONNECT_BOUND,
            self.injector.connect_websocket(&url, exchange),
        )
        .await;
        let delta = match (&self.attempts, &before) {
            (Some(attempts), Some(before)) => Some(attempts.snapshot().since(before)),
            _ => None,
        };
        let (outcome, category) = match connecting {
            Ok(Ok(mut ws)) => {
                let route = Box::new(ws.route().clone());
                let latency = ws.connect_latency();
                let ticker = read_ticker(&mut ws, exchange).await;
                close(&mut ws).await;
                // Dropped: `disconnect` is reported.
                drop(ws);
                (
                    Outcome::Connected {
                        route,
                        latency,
                        ticker,
                    },
                    None,
                )
            }
            Ok(Err(e)) => (
                Outcome::Failed {
                    message: e.to_string(),
                },
                e.category(),
            ),
            Err(_) => (
                Outcome::Failed {
                    message: format!(
                        "websocket to {url} for {exchange}: no connection within {} s",
                        CONNECT_BOUND.as_secs()
                    ),
                },
                Some(ErrorCategory::Timeout),
            ),
        };
        // Every attempt the injector made, as it counted them; without its
        // counts, this connection's outcome.
        let failed = match delta {
            Some(delta) => {
                for _ in 0..delta.successes {
                    self.tally.attempted(Ok(()));
                }
                for (name, n) in &delta.failures {
                    for _ in 0..*n {
                        self.tally.attempted(Err(Some(
                            ErrorCategory::parse(name).unwrap_or(ErrorCategory::Other),
                        )));
                    }
                }
                delta.failures
            }
            None => {
                match &outcome {
                    Outcome::Connected { .. } => self.tally.attempted(Ok(())),
                    Outcome::Failed { .. } => self.tally.attempted(Err(category)),
                }
                Vec::new()
            }
        };
        Conn {
            exchange,
            resolved: Some(resolved),
            outcome,
            failed,
        }
    }

    /// The exchange's route from the injector (service, cache or fallback),
    /// timed and counted.
    pub(super) async fn resolve(
        &mut self,
        exchange: &'static str,
    ) -> Result<(Route, Duration), Failure> {
        let started = Instant::now();
        let route = tokio::time::timeout(
            RESOLVE_BOUND,
            self.injector.route(exchange, ConnectionType::Websocket),
        )
        .await;
        let waited = started.elapsed();
        match route {
            Ok(Ok(route)) => {
                self.tally.resolved(route.source, waited);
                Ok((route, waited))
            }
            Ok(Err(e)) => Err(Failure::Failed(format!("{exchange}: {e}"))),
            Err(_) => Err(Failure::Failed(format!(
                "{exchange}: no route within {} s",
                RESOLVE_BOUND.as_secs()
            ))),
        }
    }

    /// A connection's line(s).
    pub(super) fn print(&mut self, c: &Conn) -> std::io::Result<()> {
        let Some((resolved, waited)) = &c.resolved else {
            let text = self.show.paint(Colour::Red, "no route");
            self.show.step(&format!("{:<9} {text}", c.exchange))?;
            return self.failure_note(&c.outcome);
        };
        let head = format!(
            "{}  resolve {}",
            self.show.route(c.exchange, resolved),
            ms(*waited)
        );
        let indent = " ".repeat(10);
        let retried = !c.failed.is_empty();
        match &c.outcome {
            Outcome::Connected {
                route,
                latency,
                ticker,
            } => {
                let no_ticker = if *ticker {
                    String::new()
                } else {
                    self.show.paint(Colour::Red, "  but no ticker came through")
                };
                let same =
                    route.proxy_url == resolved.proxy_url && route.proxy_id == resolved.proxy_id;
                if !retried && same {
                    return self
                        .show
                        .step(&format!("{head}  connect {}{no_ticker}", ms(*latency)));
                }
                self.show.step(&head)?;
                if retried {
                    let text = self.show.paint(
                        Colour::Red,
                        &format!(
                            "x failed: {}; reported, and the injector retried through a fresh route",
                            failed_text(&c.failed)
                        ),
                    );
                    self.show.step(&format!("{indent}{text}"))?;
                }
                let text = format!(
                    "-> connected through {} (source {}) in {}{no_ticker}",
                    proxy_text(route),
                    self.show
                        .paint(Colour::of(route.source), route.source.as_str()),
                    ms(*latency)
                );
                self.show.step(&format!("{indent}{text}"))
            }
            Outcome::Failed { .. } => {
                let text = if retried {
                    format!("failed: {}", failed_text(&c.failed))
                } else {
                    "failed".to_owned()
                };
                let text = self.show.paint(Colour::Red, &text);
                self.show.step(&format!("{head}  {text}"))?;
                self.failure_note(&c.outcome)
            }
        }
    }

    fn failure_note(&mut self, outcome: &Outcome) -> std::io::Result<()> {
        if let Outcome::Failed { message } = outcome {
            let text = self.show.paint(Colour::Red, message);
            self.show.line(&format!("{}{text}", " ".repeat(14)))?;
        }
        Ok(())
    }
}

/// `proxy_connect` or `proxy_connect x2, timeout`.
fn failed_text(failed: &[(String, u64)]) -> String {
    failed
        .iter()
        .map(|(c, n)| {
            if *n > 1 {
                format!("{c} x{n}")
            } else {
                c.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn failure_text(failure: &Failure) -> String {
    match failure {
        Failure::Failed(m) | Failure::Invalid(m) => m.clone(),
        other => format!("{other:?}"),
    }
}

/// Waits for the exchange's first message: its ticker, naming it.
async fn read_ticker(ws: &mut InjectedWebSocket, exchange: &str) -> bool {
    let wanted = format!("\"exchange\":\"{exchange}\"");
    matches!(
        tokio::time::timeout(TICKER_TIMEOUT, ws.next()).await,
        Ok(Some(Ok(Message::Text(text)))) if text.as_str().contains(&wanted)
    )
}

/// Sends a Close and waits (a little) for the exchange's.
async fn close(ws: &mut InjectedWebSocket) {
    let closing = async {
        if ws.close().await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
}
