//! `proxy-delegate connect`: one connection to an exchange URL through its
//! delegated proxy, as a `ProxyInjector` makes it, printed and reported.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use proxy_delegate_core::model::{ConnectionType, ErrorCategory, ExchangeId};
use serde::Serialize;

use crate::{Failure, TypeArg, client_build_failure, init_logging, load};

#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    /// The target: http:// or https:// (a GET), ws:// or wss:// (a WebSocket
    /// handshake).
    url: String,
    /// Exchange id, e.g. binance (matched case-insensitively).
    #[arg(long)]
    exchange: String,
    /// Connection type; by default the URL's (http for http:// and https://,
    /// websocket for ws:// and wss://). It must agree with the URL.
    #[arg(long = "type", value_enum)]
    connection_type: Option<TypeArg>,
    /// A cryptofeed config.yaml (settings under `proxy:`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// One JSON object: exchange, connection_type, url, ok, source,
    /// proxy_url, latency_ms, status (http), error {category, message}.
    #[arg(long)]
    json: bool,
    /// The bound of the connection attempt in seconds (resolve, tunnel, TLS,
    /// handshake or response headers, and the one retry through a fresh
    /// proxy), e.g. 2.5.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_timeout)]
    timeout: Duration,
    /// An extra CA certificate (PEM) to trust for the target and for
    /// https:// proxies, besides the platform's store.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
}

/// `--timeout`: seconds, more than 0 and at most 300.
pub(crate) fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= 300.0) {
        return Err(format!(
            "{text} is out of range: give more than 0 and at most 300 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// One connection, as printed by `connect --json`.
#[derive(Debug, Serialize)]
struct ConnectReport<'a> {
    exchange: &'a str,
    connection_type: &'static str,
    /// The target, its password (if any) as `***`.
    url: &'a str,
    ok: bool,
    /// Where the route came from; `None` when no route was found.
    source: Option<&'static str>,
    /// The proxy, its password as `***`; `None`: direct.
    proxy_url: Option<String>,
    /// How long connecting took (`None` on failure).
    latency_ms: Option<f64>,
    /// The HTTP status (HTTP only, on success).
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ConnectFailure>,
}

/// Why `connect` failed, as printed with --json.
#[derive(Debug, Serialize)]
struct ConnectFailure {
    /// The feedback category (`proxy_auth`, `geo_blocked`, ...); `None` when
    /// no connection was tried.
    category: Option<&'static str>,
    /// The one-line message, also printed on stderr.
    message: String,
}

/// What an open connection gave.
struct Opened {
    /// The route the injector says it used (WebSocket only; `send` does not
    /// say).
    route: Option<proxy_delegate_core::resolver::Route>,
    latency: Duration,
    status: Option<u16>,
}

/// How long closing the WebSocket may take once it is open.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the feedback may take to reach the proxy service at the end.
const FEEDBACK_TIMEOUT: Duration = Duration::from_secs(2);

/// `connect`: one connection through the exchange's proxy, reported.
pub(crate) fn connect(args: &ConnectArgs, out: &mut impl Write) -> Result<(), Failure> {
    use proxy_delegate_core::resolver::Source;
    use proxy_delegate_tokio::{InjectorConfig, ProxyInjector, ProxyServiceClient};
    // Checked before anything else runs.
    ExchangeId::new(&args.exchange)
        .map_err(|e| Failure::Invalid(format!("--exchange: {}", e.reason)))?;
    let (url, connection_type) = connect_target(&args.url, args.connection_type, "connect")?;
    let shown_url = redacted_url(&url);
    let loaded = load(args.config.as_ref())?;
    // The injector's own warning about a failed attempt would repeat the
    // error line; RUST_LOG shows it.
    init_logging("warn,proxy_delegate_tokio::inject=error");
    let config = InjectorConfig {
        connect_timeout: args.timeout,
        ca_file: args.ca_file.clone(),
        ..InjectorConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = if loaded.settings.external_service.enabled {
            let client = ProxyServiceClient::from_settings(&loaded.settings, &loaded.client_id())
                .await
                .map_err(|e| client_build_failure(&e, args.config.as_deref()))?;
            Some(client)
        } else {
            None
        };
        let injector = ProxyInjector::with_config(loaded.settings.clone(), client.clone(), config)
            .map_err(|e| {
                if e.key() == "injector.ca_file" {
                    Failure::Invalid(format!("--ca-file: {e}"))
                } else {
                    Failure::Invalid(e.to_string())
                }
            })?;

        let outcome = if connection_type == ConnectionType::Http {
            let request = reqwest::Request::new(reqwest::Method::GET, url.clone());
            injector
                .send(&args.exchange, request)
                .await
                .map(|response| {
                    let connected = response
                        .extensions()
                        .get::<proxy_delegate_tokio::Connected>()
                        .cloned();
                    Opened {
                        route: connected.as_ref().map(|c| c.route.clone()),
                        latency: connected.map(|c| c.latency).unwrap_or_default(),
                        status: Some(response.status().as_u16()),
                    }
                })
        } else {
            match injector
                .connect_websocket(url.as_str(), &args.exchange)
                .await
            {
                Ok(mut ws) => {
                    let opened = Opened {
                        route: Some(ws.route().clone()),
                        latency: ws.connect_latency(),
                        status: None,
                    };
                    close_websocket(&mut ws).await;
                    // Closed (or dropped): `disconnect` is reported.
                    drop(ws);
                    Ok(opened)
                }
                Err(e) => Err(e),
            }
        };
        // The route of the attempt that connected, or of the last that
        // failed (none when no route was resolved).
        let route = match &outcome {
            Ok(opened) => opened.route.clone(),
            Err(e) => e.route().cloned(),
        };
        let proxy_url = route.as_ref().and_then(|r| {
            r.proxy_url.as_ref().map(|u| match r.source {
                // As configured (password as ***), like `resolve`.
                Source::Embedded => loaded.written_url(u),
                _ => u.to_string(),
            })
        });
        let report = ConnectReport {
            exchange: &args.exchange,
            connection_type: connection_type.as_str(),
            url: &shown_url,
            ok: outcome.is_ok(),
            source: route.as_ref().map(|r| r.source.as_str()),
            proxy_url,
            latency_ms: outcome
                .as_ref()
                .ok()
                .map(|c| (c.latency.as_secs_f64() * 1e6).round() / 1e3),
            status: match &outcome {
                Ok(opened) => opened.status,
                Err(e) => e.status(),
            },
            error: outcome.as_ref().err().map(|e| ConnectFailure {
                category: e.category().map(|c| c.as_str()),
                message: e.to_string(),
            }),
        };
        let mut printed = print_connect(&report, args.json, out);
        if printed.is_ok() {
            printed = out.flush().map_err(Failure::from);
        }

        // The feedback (connect_start, success or failure, disconnect) goes
        // to the service before the process ends.
        if let Some(client) = &client {
            let shutdown = client.shutdown(FEEDBACK_TIMEOUT).await;
            if shutdown.undelivered > 0 {
                eprintln!(
                    "warning: {} feedback event(s) not delivered to the proxy service",
                    shutdown.undelivered
                );
            }
        }
        printed?;
        match outcome {
            Ok(_) => Ok(()),
            Err(e) => {
                let failure = Failure::Failed(e.to_string());
                Err(match category_hint(e.category()) {
                    Some(hint) => failure.with_hint(hint),
                    None => failure,
                })
            }
        }
    })
}

/// What to check after a connection failed with `category`: the `hint:`
/// line under the error (`None`: nothing useful to say).
pub(crate) fn category_hint(category: Option<ErrorCategory>) -> Option<&'static str> {
    Some(match category? {
        ErrorCategory::ProxyAuth => {
            "the proxy refused its credentials: check the user name and password in the \
             proxy's URL (in the configuration, or in the service's inventory)"
        }
        ErrorCategory::ProxyConnect => {
            "is the proxy running and reachable from this host? check its address and port, \
             and any firewall in between"
        }
        ErrorCategory::TunnelRefused => {
            "the proxy would not open the tunnel: check its ACL (allowed clients, allowed \
             CONNECT ports) and the target's port"
        }
        ErrorCategory::TargetTls => {
            "the target's certificate was not accepted: for a private CA, pass it with \
             --ca-file <pem>; check the certificate's names and dates"
        }
        ErrorCategory::GeoBlocked => {
            "the exchange refuses this proxy's location: the proxy service should move this \
             exchange to another proxy (without a service, configure another proxy for it)"
        }
        ErrorCategory::RateLimited => {
            "the exchange is rate limiting this proxy's address: the proxy service should \
             move this exchange to another proxy (without a service, configure another one)"
        }
        ErrorCategory::TargetHttp5xx => {
            "the exchange itself failed (HTTP 5xx), not the proxy: try again later"
        }
        ErrorCategory::Timeout => {
            "nothing answered in time: raise --timeout, or check that the proxy and the \
             target are reachable from this host"
        }
        // `other`, and categories added later.
        _ => return None,
    })
}

/// Sends a Close and waits (a little) for the peer's, so that the socket
/// ends cleanly; whatever happens, the socket is closed afterwards.
pub(crate) async fn close_websocket(ws: &mut proxy_delegate_tokio::InjectedWebSocket) {
    use futures_util::{SinkExt as _, StreamExt as _};
    let closing = async {
        if ws.close().await.is_ok() {
            // The peer's Close ends the stream.
            while let Some(Ok(_)) = ws.next().await {}
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
}

/// The target URL of `command` (`connect`, `soak`) and its connection type:
/// from the scheme, which `--type` must agree with.
pub(crate) fn connect_target(
    text: &str,
    given: Option<TypeArg>,
    command: &str,
) -> Result<(reqwest::Url, ConnectionType), Failure> {
    let shown = proxy_delegate_config::redact_text(text);
    let url = reqwest::Url::parse(text)
        .map_err(|e| Failure::Invalid(format!("{shown:?} is not a URL: {e}")))?;
    let shown = redacted_url(&url);
    let from_scheme = match url.scheme() {
        "http" | "https" => ConnectionType::Http,
        "ws" | "wss" => ConnectionType::Websocket,
        other => {
            return Err(Failure::Invalid(format!(
                "{shown}: {command} takes an http://, https://, ws:// or wss:// URL, not {other}://"
            )));
        }
    };
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Failure::Invalid(format!("{shown}: the URL names no host")));
    }
    match given.map(ConnectionType::from) {
        Some(ConnectionType::Websocket) if from_scheme != ConnectionType::Websocket => {
            Err(Failure::Invalid(format!(
                "--type websocket needs a ws:// or wss:// URL, not {shown} (an {}:// URL is \
                 an http connection; leave --type out to take the URL's)",
                url.scheme()
            )))
        }
        Some(ConnectionType::Http) if from_scheme != ConnectionType::Http => {
            Err(Failure::Invalid(format!(
                "--type http needs an http:// or https:// URL, not {shown} (a {}:// URL is a \
                 websocket connection; leave --type out to take the URL's)",
                url.scheme()
            )))
        }
        _ => Ok((url, from_scheme)),
    }
}

/// The URL with its password, if any, as `***`.
pub(crate) fn redacted_url(url: &reqwest::Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    if shown.set_password(Some("***")).is_err() {
        return proxy_delegate_config::redact_text(url.as_str());
    }
    shown.to_string()
}

fn print_connect(r: &ConnectReport<'_>, json: bool, out: &mut impl Write) -> Result<(), Failure> {
    if json {
        let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
        writeln!(out, "{line}")?;
        return Ok(());
    }
    // A failure is the error line on stderr alone.
    let Some(latency_ms) = r.latency_ms.filter(|_| r.ok) else {
        return Ok(());
    };
    let via = match (&r.proxy_url, r.source) {
        (Some(url), Some(source)) => format!("through {url} (source {source})"),
        (None, Some(source)) => format!("direct (source {source})"),
        (_, None) => "through an unknown route".to_owned(),
    };
    write!(
        out,
        "{} {}: connected to {} {via} in {latency_ms:.1} ms",
        r.exchange, r.connection_type, r.url
    )?;
    if let Some(status) = r.status {
        write!(out, ", status {status}")?;
    }
    writeln!(out)?;
    Ok(())
}
