//! [`ProxyInjector`]: HTTP clients and WebSockets to an exchange through its
//! delegated proxy, with every connection reported as feedback.
//!
//! The injector asks the [`ProxyServiceClient`] (or, without one, the
//! embedded configuration alone) for the exchange's route, opens the
//! connection through it — an HTTP CONNECT tunnel (`http`, `https`), a SOCKS
//! tunnel (`socks4`, `socks4a`, `socks5`, `socks5h`) or a direct connection —
//! then TLS to the target for `wss://` and `https://`, and reports how it
//! went without making the caller wait:
//!
//! * `connect_start` when it starts;
//! * `success` with the connect latency, or `failure` / `timeout` with the
//!   category of what happened (see [`ConnectError::category`]);
//! * `disconnect` when the connection ends ([`InjectedWebSocket`] reports
//!   it when it closes or is dropped; [`ProxyInjector::send`] when the
//!   response has arrived).
//!
//! A failure that is the proxy's fault (unreachable, refused credentials or
//! tunnel, geo-block, rate limit, timeout) drops the cached answer naming
//! that proxy and tries once more with a freshly resolved route, within the
//! same timeout; a failure that is the target's (TLS, 5xx) does not.

mod outcome;
mod tunnel;
mod websocket;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use proxy_delegate_core::model::{
    ClientId, ConnectionType, ErrorCategory, ErrorDetails, ExchangeId, FeedbackEvent,
    ProxyFeedback, ProxyUrl, Scheme, Timestamp,
};
use proxy_delegate_core::resolver::{Route, Source, proxy_at_fault};
use proxy_delegate_core::settings::Lease;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::http::Uri;

use crate::client::{Embedded, ProxyServiceClient};
use crate::error::BuildError;

pub use outcome::ConnectError;
pub use tunnel::Tunnel;
pub use websocket::InjectedWebSocket;

use outcome::Failure;

/// How a request sent by [`ProxyInjector::send`] went: in the response's
/// extensions (`response.extensions().get::<Connected>()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// The route it went through (the proxy prints its password as `***`).
    pub route: Route,
    /// From the start of the attempt that succeeded to the response's head.
    pub latency: Duration,
    /// Time spent resolving the route (every attempt's resolve, summed).
    pub resolve_wait: Duration,
}

/// Most reqwest clients kept (one per proxy).
const MAX_HTTP_CLIENTS: usize = 64;

/// How the injector connects.
#[derive(Debug, Clone)]
pub struct InjectorConfig {
    /// The bound of one connection — resolve, tunnel, TLS and handshake,
    /// and the one retry through a fresh proxy. Default 10 s. An attempt
    /// through an embedded entry is also bounded by its `timeout_seconds`.
    pub connect_timeout: Duration,
    /// An extra CA (PEM) trusted for targets and `https://` proxies, besides
    /// the platform's store. Certificates are verified either way.
    pub ca_file: Option<PathBuf>,
    /// Trust the platform's CA store. Default true.
    pub system_roots: bool,
    /// The WebSockets' configuration (message and frame limits, buffer
    /// sizes); `None`: tungstenite's defaults. A smaller
    /// `read_buffer_size` than the default 128 KiB costs less per read for
    /// small messages.
    pub websocket: Option<tokio_tungstenite::tungstenite::protocol::WebSocketConfig>,
}

impl Default for InjectorConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            ca_file: None,
            system_roots: true,
            websocket: None,
        }
    }
}

/// HTTP clients and WebSockets to exchanges through their delegated
/// proxies. Cheap to clone (one shared state).
///
/// Without a [`ProxyServiceClient`] it routes exactly as the embedded
/// configuration does (pools, strategies, leases), and its feedback goes
/// nowhere; with one, routes come from the service, its cache or the
/// fallback the client decides, and feedback goes to the service.
#[derive(Clone)]
pub struct ProxyInjector {
    inner: Arc<Inner>,
}

struct Inner {
    client: Option<ProxyServiceClient>,
    /// The embedded configuration, when there is no client (the client
    /// keeps its own for its fallback).
    embedded: Mutex<Embedded>,
    client_id: ClientId,
    /// TLS to targets and to `https://` proxies (HTTP/1.1: WebSockets).
    tls: TlsConnector,
    /// The same trust, with ALPN for reqwest.
    http_tls: rustls::ClientConfig,
    /// One reqwest client per proxy (the key is the URL with its
    /// credentials, which never leaves this map; "" for direct).
    http_clients: Mutex<HashMap<String, reqwest::Client>>,
    config: InjectorConfig,
}

impl std::fmt::Debug for ProxyInjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyInjector")
            .field("client", &self.inner.client)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl ProxyInjector {
    /// An injector over the loaded settings and, when delegation is on, its
    /// client. Fails when a configured proxy cannot work as written (the
    /// message names the entry and the combination), or when `ca_file`
    /// cannot be read.
    pub fn new(settings: Embedded, client: Option<ProxyServiceClient>) -> Result<Self, BuildError> {
        Self::with_config(settings, client, InjectorConfig::default())
    }

    /// [`new`](Self::new) with the given [`InjectorConfig`].
    pub fn with_config(
        settings: Embedded,
        client: Option<ProxyServiceClient>,
        config: InjectorConfig,
    ) -> Result<Self, BuildError> {
        check_schemes(&settings)?;
        let roots = crate::http::root_store(
            config.system_roots,
            config.ca_file.as_deref(),
            "injector.ca_file",
        )?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BuildError::invalid("tls", format!("cannot set up TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http_tls = tls.clone();
        http_tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let client_id = match &client {
            Some(c) => c.client_id().clone(),
            None => ClientId::new(&proxy_delegate_config::default_client_id())
                .unwrap_or_else(|_| ClientId::new("proxy-delegate").expect("a valid id")),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                embedded: Mutex::new(settings),
                client_id,
                tls: TlsConnector::from(Arc::new(tls)),
                http_tls,
                http_clients: Mutex::new(HashMap::new()),
                config,
            }),
        })
    }

    /// The service client, when there is one.
    pub fn client(&self) -> Option<&ProxyServiceClient> {
        self.inner.client.as_ref()
    }

    /// The route for this exchange connection — from the service, its cache
    /// or the fallback (or the embedded configuration alone, without a
    /// client) — without connecting: a `least_connections` pick is given
    /// back at once.
    pub async fn route(
        &self,
        exchange: &str,
        connection_type: ConnectionType,
    ) -> Result<Route, ConnectError> {
        let exchange = exchange_id(exchange)?;
        let resolved = self.resolve(&exchange, connection_type).await?;
        self.inner.release(&exchange, connection_type, &resolved);
        Ok(resolved.route)
    }

    /// The proxy for this exchange's HTTP connections, or `None` for a
    /// direct connection (see [`route`](Self::route)).
    pub async fn http_proxy_url(&self, exchange: &str) -> Result<Option<ProxyUrl>, ConnectError> {
        Ok(self.route(exchange, ConnectionType::Http).await?.proxy_url)
    }

    /// A reqwest client for this exchange, configured with its resolved
    /// proxy (one client per proxy, reused). Requests made with it are not
    /// reported; [`send`](Self::send) reports each one.
    pub async fn http_client(&self, exchange: &str) -> Result<reqwest::Client, ConnectError> {
        let exchange = exchange_id(exchange)?;
        let resolved = self.resolve(&exchange, ConnectionType::Http).await?;
        self.inner
            .release(&exchange, ConnectionType::Http, &resolved);
        self.client_for(resolved.route.proxy_url.as_ref())
            .map_err(|f| f.into_error(format!("HTTP client for {exchange}"), None))
    }

    /// Sends `request` to the exchange through its delegated proxy and
    /// reports how it went. A response with status 403, 407, 429, 451 or
    /// 5xx is a failure (its category says which); any other response is
    /// the caller's. A proxy failure is retried once through a freshly
    /// resolved proxy when the request can be cloned (no streaming body).
    /// The response's extensions hold its [`Connected`] (route, latency).
    ///
    /// The connection is reqwest's, so a failure is classified from what
    /// reqwest says; when it says only that an HTTP proxy refused `CONNECT`,
    /// the injector asks the proxy once more on a tunnel of its own to learn
    /// the answer (tinyproxy refuses credentials with 401, which is
    /// `proxy_auth`). A plain `http://` request is forwarded by an HTTP proxy
    /// (no tunnel), so the proxy's own error pages read as the target's.
    pub async fn send(
        &self,
        exchange: &str,
        request: reqwest::Request,
    ) -> Result<reqwest::Response, ConnectError> {
        let target = redacted_target(request.url().as_str());
        let retryable = request.try_clone();
        let mut request = Some(request);
        let mut retry = retryable;
        let (mut response, connection) = self
            .connect(exchange, ConnectionType::Http, &target, |proxy| {
                let req = request.take().or_else(|| retry.take());
                let client = self.client_for(proxy.as_ref());
                let tls = self.inner.tls.clone();
                async move {
                    let Some(req) = req else {
                        return Err(Failure::other("the request body cannot be sent twice"));
                    };
                    let client = client?;
                    let host = req.url().host_str().map(str::to_owned);
                    let port = req.url().port_or_known_default();
                    let response = match client.execute(req).await {
                        Ok(response) => response,
                        Err(e) => {
                            let failure = classify_reqwest(&e, proxy.is_some());
                            return Err(match (failure.category, &proxy, host, port) {
                                // reqwest keeps only "unsuccessful" of a
                                // refused CONNECT: ask the proxy again, on a
                                // tunnel of our own, to learn its answer.
                                (ErrorCategory::TunnelRefused, Some(p), Some(host), Some(port))
                                    if matches!(p.scheme(), Scheme::Http | Scheme::Https) =>
                                {
                                    let target = tunnel::Target {
                                        host: &host,
                                        port,
                                        tls: false,
                                    };
                                    match tunnel::open(Some(p), target, &tls).await {
                                        Err(precise) => precise,
                                        Ok(_) => failure,
                                    }
                                }
                                _ => failure,
                            });
                        }
                    };
                    let status = response.status().as_u16();
                    if status == 407 {
                        return Err(Failure::connect_refused(
                            407,
                            "Proxy Authentication Required",
                        ));
                    }
                    if matches!(status, 403 | 429 | 451 | 500..=599) {
                        return Err(Failure::target_status(status));
                    }
                    Ok(response)
                }
            })
            .await?;
        response.extensions_mut().insert(Connected {
            route: connection.route().clone(),
            latency: connection.latency(),
            resolve_wait: connection.resolve_wait(),
        });
        // The exchange answered: this request's connection is done with.
        drop(connection);
        Ok(response)
    }

    /// A WebSocket to `url` (`ws://` or `wss://`) for this exchange,
    /// through its delegated proxy, then TLS for `wss://`; direct when the
    /// route has no proxy.
    pub async fn connect_websocket(
        &self,
        url: &str,
        exchange: &str,
    ) -> Result<InjectedWebSocket, ConnectError> {
        let target_text = redacted_target(url);
        let uri: Uri = url
            .parse()
            .map_err(|e| ConnectError::invalid(format!("{target_text:?} is not a URL: {e}")))?;
        let tls = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            other => {
                return Err(ConnectError::invalid(format!(
                    "{target_text:?}: a WebSocket URL starts with ws:// or wss://, not {}",
                    other.unwrap_or("nothing")
                )));
            }
        };
        let Some(host) = uri.host().map(str::to_owned) else {
            return Err(ConnectError::invalid(format!(
                "{target_text:?} names no host"
            )));
        };
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let connector = self.inner.tls.clone();
        let ws_config = self.inner.config.websocket;
        let (ws, connection) = self
            .connect(exchange, ConnectionType::Websocket, &target_text, |proxy| {
                let host = host.clone();
                let connector = connector.clone();
                let uri = uri.clone();
                async move {
                    let target = tunnel::Target {
                        host: &host,
                        port,
                        tls,
                    };
                    let io = tunnel::open(proxy.as_ref(), target, &connector).await?;
                    let (ws, _response) =
                        tokio_tungstenite::client_async_with_config(uri, io, ws_config)
                            .await
                            .map_err(|e| classify_ws(&e))?;
                    Ok(ws)
                }
            })
            .await?;
        Ok(InjectedWebSocket::new(ws, connection))
    }

    /// Resolves, connects with `attempt` within the timeout, reports, and
    /// retries once through a fresh route when the proxy was at fault.
    async fn connect<T, F, Fut>(
        &self,
        exchange: &str,
        connection_type: ConnectionType,
        target: &str,
        mut attempt: F,
    ) -> Result<(T, Connection), ConnectError>
    where
        F: FnMut(Option<ProxyUrl>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let exchange = exchange_id(exchange)?;
        let bound = self.inner.config.connect_timeout;
        let deadline = Instant::now() + bound;
        let mut tries = 0;
        let mut resolve_wait = Duration::ZERO;
        // The proxy the first attempt failed through, if it was at fault.
        let mut failed: Option<ProxyUrl> = None;
        loop {
            tries += 1;
            let asked = Instant::now();
            let resolved =
                match tokio::time::timeout_at(deadline, self.resolve(&exchange, connection_type))
                    .await
                {
                    Ok(r) => r.map_err(|e| e.with_resolve_wait(resolve_wait + asked.elapsed()))?,
                    Err(_) => {
                        return Err(ConnectError::timeout(bound)
                            .with_resolve_wait(resolve_wait + asked.elapsed()));
                    }
                };
            resolve_wait += asked.elapsed();
            // The service may not know yet (the failure is on its way) and
            // name the same proxy again: then the retry goes through the
            // embedded configuration's proxy, if it has another.
            let resolved = match (&failed, &resolved.route.proxy_url) {
                (Some(bad), Some(url)) if bad.same_proxy(url) => {
                    match self
                        .inner
                        .embedded_instead_of(&exchange, connection_type, bad)
                    {
                        Some(other) => {
                            self.inner.release(&exchange, connection_type, &resolved);
                            other
                        }
                        None => resolved,
                    }
                }
                _ => resolved,
            };
            let started = Instant::now();
            self.inner
                .report(&exchange, connection_type, &resolved.route, Report::Start);
            let (until, bound) = match resolved.timeout {
                Some(t) if started + t < deadline => (started + t, t),
                _ => (deadline, bound),
            };
            let outcome =
                match tokio::time::timeout_at(until, attempt(resolved.route.proxy_url.clone()))
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(_) => Err(Failure::timeout_after(bound)),
                };
            match outcome {
                Ok(value) => {
                    let latency = started.elapsed();
                    self.inner.report(
                        &exchange,
                        connection_type,
                        &resolved.route,
                        Report::Success(latency),
                    );
                    tracing::info!(
                        transport = connection_type.as_str(),
                        exchange = exchange.as_str(),
                        source = resolved.route.source.as_str(),
                        scheme = scheme_of(&resolved.route),
                        proxy = proxy_addr(&resolved.route).as_deref(),
                        latency_ms = latency.as_millis() as u64,
                        "connected to {target}"
                    );
                    let connection = Connection {
                        injector: Some(self.inner.clone()),
                        exchange,
                        connection_type,
                        resolved,
                        latency,
                        resolve_wait,
                    };
                    return Ok((value, connection));
                }
                Err(failure) => {
                    let feedback = self.inner.report(
                        &exchange,
                        connection_type,
                        &resolved.route,
                        Report::Failed(&failure),
                    );
                    self.inner.release(&exchange, connection_type, &resolved);
                    let retry = tries == 1
                        && resolved.route.proxy_url.is_some()
                        && proxy_at_fault(&feedback)
                        && Instant::now() < deadline;
                    tracing::warn!(
                        transport = connection_type.as_str(),
                        exchange = exchange.as_str(),
                        source = resolved.route.source.as_str(),
                        scheme = scheme_of(&resolved.route),
                        proxy = proxy_addr(&resolved.route).as_deref(),
                        category = failure.category.as_str(),
                        retry,
                        "connection to {target} failed: {}",
                        failure.problem
                    );
                    if retry {
                        failed = resolved.route.proxy_url.clone();
                    } else {
                        // Formatted only here: a connection that opens needs none.
                        let context = describe(connection_type, target, &exchange, &resolved.route);
                        return Err(failure
                            .into_error(context, Some(resolved.route.clone()))
                            .with_resolve_wait(resolve_wait));
                    }
                }
            }
        }
    }

    /// The route for this exchange connection, with the embedded lease it
    /// holds (no client) — the client keeps its own.
    async fn resolve(
        &self,
        exchange: &ExchangeId,
        connection_type: ConnectionType,
    ) -> Result<Resolved, ConnectError> {
        if let Some(client) = &self.inner.client {
            let request = client.request(exchange.clone(), connection_type);
            let route = client
                .get_proxy(&request)
                .await
                .map_err(|e| ConnectError::unresolved(&e))?;
            return Ok(Resolved {
                route,
                lease: None,
                timeout: None,
            });
        }
        let mut settings = self
            .inner
            .embedded
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Ok(match settings.resolve(exchange, connection_type) {
            Some(pick) => Resolved {
                route: Route {
                    proxy_url: Some(pick.proxy_url.clone()),
                    proxy_id: None,
                    source: Source::Embedded,
                },
                lease: pick.lease,
                timeout: Some(Duration::from_secs(pick.timeout_seconds.into())),
            },
            None => Resolved {
                route: Route {
                    proxy_url: None,
                    proxy_id: None,
                    source: Source::Direct,
                },
                lease: None,
                timeout: None,
            },
        })
    }

    /// The reqwest client for this proxy, built once.
    fn client_for(&self, proxy: Option<&ProxyUrl>) -> Result<reqwest::Client, Failure> {
        let key = proxy
            .map(|p| p.expose_credentials().to_string())
            .unwrap_or_default();
        let mut clients = self
            .inner
            .http_clients
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        if clients.len() >= MAX_HTTP_CLIENTS {
            // A service handing out ever new proxies must not grow this
            // without bound; clients handed out keep working.
            clients.clear();
        }
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(self.inner.http_tls.clone())
            .connect_timeout(self.inner.config.connect_timeout)
            .tcp_nodelay(true);
        builder = match proxy {
            Some(_) => {
                let proxy = reqwest::Proxy::all(&key).map_err(|e| {
                    Failure::other(format!(
                        "reqwest cannot use this proxy: {}",
                        redact_error(&e)
                    ))
                })?;
                builder.proxy(proxy)
            }
            None => builder.no_proxy(),
        };
        let client = builder
            .build()
            .map_err(|e| Failure::other(format!("cannot build the HTTP client: {e}")))?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// A route and what its pick holds.
#[derive(Debug)]
struct Resolved {
    route: Route,
    lease: Option<Lease>,
    /// The embedded entry's `timeout_seconds`, which bounds an attempt
    /// through it (as cryptofeed's connector does).
    timeout: Option<Duration>,
}

enum Report<'a> {
    Start,
    Success(Duration),
    Failed(&'a Failure),
    Disconnect,
}

impl Inner {
    /// The embedded configuration's route for this connection, when it
    /// names a proxy other than `bad` (its pick is given back otherwise).
    fn embedded_instead_of(
        &self,
        exchange: &ExchangeId,
        connection_type: ConnectionType,
        bad: &ProxyUrl,
    ) -> Option<Resolved> {
        let mut settings = self.embedded.lock().unwrap_or_else(|p| p.into_inner());
        let pick = settings.resolve(exchange, connection_type)?;
        let (url, lease, timeout) = (
            pick.proxy_url.clone(),
            pick.lease,
            Duration::from_secs(pick.timeout_seconds.into()),
        );
        if url.same_proxy(bad) {
            if let Some(lease) = lease {
                settings.release(lease);
            }
            return None;
        }
        Some(Resolved {
            route: Route {
                proxy_url: Some(url),
                proxy_id: None,
                source: Source::Embedded,
            },
            lease,
            timeout: Some(timeout),
        })
    }

    /// Gives back what the route's pick took (an embedded
    /// `least_connections` lease); a service lease ends with the
    /// `disconnect`, `failure` or `timeout` feedback.
    fn release(&self, exchange: &ExchangeId, connection_type: ConnectionType, r: &Resolved) {
        if let Some(lease) = r.lease {
            self.embedded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .release(lease);
        } else if let Some(client) = &self.client {
            client.connection_closed(exchange, connection_type, &r.route);
        }
    }

    /// Builds the feedback and hands it to the client (never waits). Without
    /// a client there is no one to tell; the event is still returned.
    fn report(
        &self,
        exchange: &ExchangeId,
        connection_type: ConnectionType,
        route: &Route,
        report: Report<'_>,
    ) -> ProxyFeedback {
        let (event, success, latency, category, details) = match report {
            Report::Start => (FeedbackEvent::ConnectStart, true, None, None, None),
            Report::Success(l) => (FeedbackEvent::Success, true, Some(l), None, None),
            Report::Failed(f) => (
                if f.timed_out {
                    FeedbackEvent::Timeout
                } else {
                    FeedbackEvent::Failure
                },
                false,
                None,
                Some(f.category),
                Some(ErrorDetails::new(&f.problem)),
            ),
            Report::Disconnect => (FeedbackEvent::Disconnect, true, None, None, None),
        };
        let feedback = ProxyFeedback {
            proxy_id: route.proxy_id.clone(),
            proxy_url: route.proxy_url.as_ref().map(ProxyUrl::without_credentials),
            exchange_id: exchange.clone(),
            connection_type,
            event,
            success,
            latency_ms: latency.map(|l| u32::try_from(l.as_millis()).unwrap_or(u32::MAX)),
            error_category: category,
            error_details: details,
            timestamp: now(),
            client_id: self.client_id.clone(),
        };
        metrics::counter!(
            crate::metrics::CONNECTIONS,
            "transport" => connection_type.as_str(),
            "event" => event.as_str(),
            "category" => category.map_or("none", ErrorCategory::as_str),
        )
        .increment(1);
        if let Some(client) = &self.client {
            client.report_feedback(feedback.clone());
        }
        feedback
    }
}

/// An open connection: reports `disconnect` and gives back its lease once,
/// when closed or dropped.
#[derive(Debug)]
pub(crate) struct Connection {
    injector: Option<Arc<Inner>>,
    exchange: ExchangeId,
    connection_type: ConnectionType,
    resolved: Resolved,
    latency: Duration,
    resolve_wait: Duration,
}

impl Connection {
    pub(crate) fn route(&self) -> &Route {
        &self.resolved.route
    }

    pub(crate) fn latency(&self) -> Duration {
        self.latency
    }

    pub(crate) fn resolve_wait(&self) -> Duration {
        self.resolve_wait
    }

    pub(crate) fn close(&mut self) {
        if let Some(inner) = self.injector.take() {
            inner.report(
                &self.exchange,
                self.connection_type,
                &self.resolved.route,
                Report::Disconnect,
            );
            inner.release(&self.exchange, self.connection_type, &self.resolved);
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").finish_non_exhaustive()
    }
}

fn exchange_id(exchange: &str) -> Result<ExchangeId, ConnectError> {
    ExchangeId::new(exchange)
        .map_err(|e| ConnectError::invalid(format!("exchange {exchange:?}: {}", e.reason)))
}

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_unix_millis(ms)
        .or_else(|| Timestamp::from_unix_millis(0))
        .expect("the epoch is a valid timestamp")
}

/// "websocket to wss://host/path for binance through socks5://host:port".
fn describe(
    connection_type: ConnectionType,
    target: &str,
    exchange: &ExchangeId,
    route: &Route,
) -> String {
    let via = match &route.proxy_url {
        Some(p) => format!("through {} ({})", p.without_credentials(), route.source),
        None => format!("direct ({})", route.source),
    };
    format!("{connection_type} to {target} for {exchange} {via}")
}

fn scheme_of(route: &Route) -> &'static str {
    route
        .proxy_url
        .as_ref()
        .map_or("direct", |p| p.scheme().as_str())
}

fn proxy_addr(route: &Route) -> Option<String> {
    route
        .proxy_url
        .as_ref()
        .map(|p| format!("{}:{}", p.host(), p.port()))
}

/// A target URL without user info, for messages and logs.
fn redacted_target(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s && !url[s + 3..at].contains('/') => {
            format!("{}***@{}", &url[..s + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// reqwest's error text, which may quote the proxy URL, without it.
fn redact_error(e: &reqwest::Error) -> String {
    let _ = e;
    "invalid proxy URL".to_owned()
}

/// A reqwest failure, classified from its chain of causes. reqwest tunnels
/// through hyper-util's CONNECT and SOCKS connectors, whose errors are
/// generic types: they are told apart by their (fixed) messages.
fn classify_reqwest(e: &reqwest::Error, proxied: bool) -> Failure {
    let chain = crate::error::causes(e);
    let text: Vec<String> = chain.iter().map(|c| c.to_string().to_lowercase()).collect();
    let says = |needle: &str| text.iter().any(|t| t.contains(needle));
    let detail = || text.iter().skip(1).cloned().collect::<Vec<_>>().join(": ");
    if e.is_timeout() || says("timed out") {
        return Failure::timeout_after(Duration::ZERO);
    }
    // TLS first: reqwest wraps rustls's error in an io::Error.
    if let Some(tls) = chain.iter().find_map(|c| c.downcast_ref::<rustls::Error>()) {
        return Failure::target_tls(&std::io::Error::other(tls.clone()));
    }
    if says("proxy authorization required") {
        return Failure::connect_refused(407, "Proxy Authentication Required");
    }
    let underlying = says("failed to create underlying connection");
    if says("tunnel error") && !underlying {
        return if says("unsuccessful") {
            Failure::new(
                ErrorCategory::TunnelRefused,
                "the proxy refused the tunnel (a CONNECT answer other than 2xx)",
            )
        } else {
            Failure::new(
                ErrorCategory::ProxyConnect,
                format!("the proxy broke off CONNECT: {}", detail()),
            )
        };
    }
    if says("socks error") && !underlying {
        let auth = [
            "credentials not accepted",
            "user/pass authentication",
            "authentication incorrectly",
            "ident",
        ];
        let refused = [
            "general server failure",
            "connection not allowed",
            "network unreachable",
            "host unreachable",
            "connection refused",
            "ttl expired",
            "server failed to execute command",
        ];
        return if auth.iter().any(|n| says(n)) {
            Failure::new(
                ErrorCategory::ProxyAuth,
                format!(
                    "the SOCKS proxy refused the credentials ({}): check the user name and \
                     password of this proxy",
                    detail()
                ),
            )
        } else if refused.iter().any(|n| says(n)) {
            Failure::new(
                ErrorCategory::TunnelRefused,
                format!("the SOCKS proxy refused the tunnel: {}", detail()),
            )
        } else {
            Failure::new(
                ErrorCategory::ProxyConnect,
                format!("the SOCKS handshake failed: {}", detail()),
            )
        };
    }
    if let Some(io) = chain
        .iter()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .filter(|_| e.is_connect())
    {
        return if proxied {
            Failure::proxy_unreachable("cannot reach the proxy", io)
        } else {
            Failure::target_unreachable(io)
        };
    }
    if e.is_connect() && proxied {
        return Failure::new(
            ErrorCategory::ProxyConnect,
            format!("cannot connect through the proxy: {}", detail()),
        );
    }
    Failure::other(text.join(": "))
}

/// A failed WebSocket handshake, classified.
fn classify_ws(e: &tokio_tungstenite::tungstenite::Error) -> Failure {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Http(response) => Failure::target_status(response.status().as_u16()),
        E::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            Failure::timeout_after(Duration::ZERO)
        }
        E::Io(io) => Failure::other(format!("the WebSocket handshake broke off: {io}")),
        E::Tls(tls) => Failure::target_tls(&std::io::Error::other(tls.to_string())),
        other => Failure::other(format!("the WebSocket handshake failed: {other}")),
    }
}

/// Refuses, at configuration time, a proxy that cannot work as written: a
/// password on a SOCKS4 proxy (SOCKS4 carries a user id, no password).
fn check_schemes(settings: &Embedded) -> Result<(), BuildError> {
    let mut problems = Vec::new();
    let mut check = |at: String, url: &ProxyUrl| {
        if matches!(url.scheme(), Scheme::Socks4 | Scheme::Socks4a) && url.password().is_some() {
            problems.push(format!(
                "{at}: {} proxies carry a user id but no password, so {url} cannot be used; \
                 drop the password or use socks5",
                url.scheme()
            ));
        }
    };
    let entries = std::iter::once(("proxy.default".to_owned(), &settings.default)).chain(
        settings
            .exchanges()
            .map(|(id, proxies)| (format!("proxy.exchanges.{id}"), proxies)),
    );
    for (at, proxies) in entries {
        for ct in [ConnectionType::Http, ConnectionType::Websocket] {
            let Some(entry) = proxies.get(ct) else {
                continue;
            };
            if let Some(url) = &entry.url {
                check(format!("{at}.{ct}"), url);
            }
            if let Some(pool) = &entry.pool {
                for (i, p) in pool.proxies().iter().enumerate() {
                    check(format!("{at}.{ct}.pool[{i}]"), &p.url);
                }
            }
        }
    }
    match problems.into_iter().next() {
        Some(problem) => Err(BuildError::invalid("proxy", problem)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_lose_their_user_info() {
        assert_eq!(
            redacted_target("wss://me:secret@stream.example/ws"),
            "wss://***@stream.example/ws"
        );
        assert_eq!(
            redacted_target("wss://stream.example/a@b"),
            "wss://stream.example/a@b"
        );
    }

    #[test]
    fn a_socks4_password_is_refused_at_configuration_time() {
        let settings = proxy_delegate_config::load_yaml_str(
            "proxy:\n  enabled: true\n  exchanges:\n    binance:\n      websocket: socks4://id:secret@127.0.0.1:1080\n",
        )
        .expect("valid settings");
        let e = ProxyInjector::new(settings, None).expect_err("refused");
        let text = e.to_string();
        assert!(text.contains("proxy.exchanges.binance.websocket"), "{text}");
        assert!(text.contains("socks5"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
