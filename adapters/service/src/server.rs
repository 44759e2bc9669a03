//! Serving: the accept loop (plain TCP or TLS, with client certificates for
//! mutual TLS), graceful shutdown, configuration reload, and the task that
//! drives the pool's timers and probes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use proxy_delegate_core::pool::{EjectReason, Event};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::StartError;
use crate::app::{AppState, router};
use crate::auth::{Clients, TlsIdentity};
use crate::config::{ConfigError, ServiceConfig, TlsConfig};
use crate::error::{JsonRejections, MAX_HEAD_BYTES, MAX_HEADER_FIELDS};
use crate::metrics::{EjectionLabels, ProxyLabels, ReloadLabels};

/// How long a client has to send its request head, and to finish a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an active probe's TCP connect may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// The driver wakes at least this often (to trim rate-limit buckets).
const DRIVER_TICK: Duration = Duration::from_secs(30);

/// What a reload changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadReport {
    /// Proxies new in the inventory.
    pub added: usize,
    /// Proxies kept, with their health and state.
    pub kept: usize,
    /// Proxies removed.
    pub removed: usize,
    /// Clients configured after the reload.
    pub clients: usize,
}

/// A configured service, not yet listening.
pub struct Service {
    state: Arc<AppState>,
    tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("state", &self.state)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Service {
    /// Builds the pool from `config` and loads the TLS material it names.
    pub fn new(config: ServiceConfig) -> Result<Self, StartError> {
        // Again here: the address may have been given in place of the file's.
        config
            .check_exposure()
            .map_err(|e| StartError::Config(e.to_string()))?;
        let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
        Ok(Self {
            state: Arc::new(AppState::new(config)?),
            tls,
        })
    }

    /// The router alone (no TLS, no timers): for embedding the service in
    /// another axum application.
    pub fn router(&self) -> axum::Router {
        router(self.state.clone())
    }

    /// Starts serving on `listener` and driving the pool; returns at once.
    pub fn start(self, listener: TcpListener) -> Result<Running, StartError> {
        let local_addr = listener.local_addr().map_err(StartError::Io)?;
        let required = (self.state.config.read())
            .unwrap_or_else(|p| p.into_inner())
            .auth
            .required;
        if !required {
            // Said at every start, on purpose or not.
            tracing::warn!(
                listen = %local_addr,
                "authentication is off: anyone who reaches this address may use the API"
            );
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let driver = tokio::spawn(drive_pool(self.state.clone(), stop_rx.clone()));
        let server = tokio::spawn(accept_loop(
            listener,
            self.tls,
            router(self.state.clone()),
            self.state.clone(),
            stop_rx,
        ));
        Ok(Running {
            local_addr,
            state: self.state,
            stop: stop_tx,
            server,
            driver,
        })
    }
}

/// A service that is listening.
#[derive(Debug)]
pub struct Running {
    local_addr: SocketAddr,
    state: Arc<AppState>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    driver: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Reads the configuration file again and replaces the inventory
    /// (proxies that remain keep their health, leases, cool-downs and
    /// ejections) and the clients. Listen address, TLS, authentication
    /// switches, rate limit, pool settings and `max_connections` take effect
    /// at restart; a change to them is logged. On error nothing changes.
    pub fn reload(&self) -> Result<ReloadReport, ConfigError> {
        let result = reload(&self.state);
        self.count_reload(&result);
        result
    }

    /// [`reload`](Self::reload), with the file read and checked on a thread
    /// of its own: the task awaiting this (the signal loop of
    /// [`run_until_signal`]) stays free, and dropping the future leaves the
    /// read to finish unseen. The same bounds as at start-up hold (at most
    /// 1 MiB, YAML nesting, size and aliases), so a hostile file is refused
    /// in well under a second and a few tens of MiB; on error nothing
    /// changes.
    pub async fn reload_in_background(&self) -> Result<ReloadReport, ConfigError> {
        let result = match source_of(&self.state) {
            Err(e) => Err(e),
            Ok(path) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let file = path.clone();
                let spawned = std::thread::Builder::new()
                    .name("config-reload".into())
                    .spawn(move || {
                        // The receiver may be gone (shutting down): nothing to tell.
                        let _ = tx.send(ServiceConfig::load(&file));
                    });
                let failed = |message: String| ConfigError {
                    file: Some(path.clone()),
                    field: String::new(),
                    message,
                };
                match spawned {
                    Err(e) => Err(failed(format!("cannot start reading the file: {e}"))),
                    Ok(_) => match rx.await {
                        Ok(Ok(new)) => apply_reload(&self.state, &path, new),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(failed("reading the file stopped unexpectedly".into())),
                    },
                }
            }
        };
        self.count_reload(&result);
        result
    }

    fn count_reload(&self, result: &Result<ReloadReport, ConfigError>) {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.state
            .metrics
            .reloads
            .get_or_create(&ReloadLabels { outcome })
            .inc();
    }

    /// Answers 503 on `/health` from now on; after the configured
    /// `unready_seconds` (default 0: at once; set it so that load balancers
    /// see the 503 and stop sending traffic) stops accepting, lets requests
    /// in flight finish (up to 10 s), then returns.
    pub async fn shutdown(self) {
        self.state.set_ready(false);
        let unready = self.state.unready_period();
        if !unready.is_zero() {
            tracing::info!(
                seconds = unready.as_secs(),
                "not ready: still accepting while load balancers notice"
            );
            tokio::time::sleep(unready).await;
        }
        let _ = self.stop.send(true);
        let _ = self.server.await;
        let _ = self.driver.await;
    }
}

/// The file the service was started from.
fn source_of(state: &AppState) -> Result<std::path::PathBuf, ConfigError> {
    state.source.clone().ok_or_else(|| ConfigError {
        file: None,
        field: String::new(),
        message:
            "the service runs on the embedded default configuration; there is no file to reload"
                .into(),
    })
}

fn reload(state: &AppState) -> Result<ReloadReport, ConfigError> {
    let path = source_of(state)?;
    let new = ServiceConfig::load(&path)?;
    apply_reload(state, &path, new)
}

/// Puts a loaded configuration in place (see [`Running::reload`]).
fn apply_reload(
    state: &AppState,
    path: &std::path::Path,
    new: ServiceConfig,
) -> Result<ReloadReport, ConfigError> {
    let (change, events) = {
        let now = state.now();
        let mut pool = state.pool();
        // Drained first: the cool-downs a reload ends need room for their
        // events (the pool never drops a timer's, but selections leave them).
        let mut events: Vec<Event> = std::iter::from_fn(|| pool.poll_event()).collect();
        let change = pool.replace_inventory(now, &new.proxies);
        events.extend(std::iter::from_fn(|| pool.poll_event()));
        (change, events)
    };
    for e in events {
        record_event(state, e);
    }
    state.wake.notify_one();
    let change = change.map_err(|e| ConfigError {
        file: Some(path.to_owned()),
        field: "proxies".into(),
        message: e.to_string(),
    })?;
    *state.clients.write().unwrap_or_else(|p| p.into_inner()) =
        Arc::new(Clients::new(&new.clients));
    let mut current = state.config.write().unwrap_or_else(|p| p.into_inner());
    let restart_only = [
        (
            "listen",
            !current.listen_overridden && current.listen != new.listen,
        ),
        ("tls", current.tls != new.tls),
        ("auth", current.auth != new.auth),
        ("rate_limit", current.rate_limit != new.rate_limit),
        ("pool / exchanges", current.pool != new.pool),
        (
            "max_connections",
            current.max_connections != new.max_connections,
        ),
    ];
    for (what, changed) in restart_only {
        if changed {
            tracing::warn!(
                setting = what,
                "changed in the file; takes effect at restart"
            );
        }
    }
    let report = ReloadReport {
        added: change.added,
        kept: change.kept,
        removed: change.removed,
        clients: new.clients.len(),
    };
    current.proxies = new.proxies;
    current.clients = new.clients;
    state.wake.notify_one();
    tracing::info!(
        added = report.added,
        kept = report.kept,
        removed = report.removed,
        clients = report.clients,
        "configuration reloaded"
    );
    Ok(report)
}

/// Runs the service until SIGINT or SIGTERM (then shuts down gracefully),
/// reloading the configuration file on SIGHUP. `on_ready` is called once the
/// signal handlers are in place and the service is listening: a signal sent
/// after it can no longer kill the process by its default action.
///
/// A reload reads the file on a thread of its own
/// ([`Running::reload_in_background`]): SIGTERM and SIGINT are heard while
/// it runs, and stop the service at once. A SIGHUP during a reload is
/// answered by one more reload when it ends. A file that fails is refused,
/// with the reason logged, and the previous configuration stays.
pub async fn run_until_signal(
    service: Service,
    listener: TcpListener,
    on_ready: impl FnOnce(&Running),
) -> Result<(), StartError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).map_err(StartError::Io)?;
    let mut term = signal(SignalKind::terminate()).map_err(StartError::Io)?;
    let mut int = signal(SignalKind::interrupt()).map_err(StartError::Io)?;
    let running = service.start(listener)?;
    on_ready(&running);
    type Reload<'a> =
        std::pin::Pin<Box<dyn Future<Output = Result<ReloadReport, ConfigError>> + Send + 'a>>;
    let mut reloading: Option<Reload<'_>> = None;
    let mut again = false;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                if reloading.is_some() {
                    again = true;
                } else {
                    reloading = Some(Box::pin(running.reload_in_background()));
                }
            }
            result = async { reloading.as_mut().expect("polled only while reloading").await },
                if reloading.is_some() =>
            {
                reloading = None;
                if let Err(e) = result {
                    tracing::error!(error = %e, "reload failed; the previous configuration stays");
                }
                if std::mem::take(&mut again) {
                    reloading = Some(Box::pin(running.reload_in_background()));
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    // A reload still reading the file is left to finish unseen.
    drop(reloading);
    tracing::info!("shutting down: draining requests in flight");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

// ------------------------------------------------------------------ TLS

fn tls_acceptor(c: &TlsConfig) -> Result<TlsAcceptor, StartError> {
    let tls_err = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        StartError::Tls(format!("{what} {}: {e}", path.display()))
    };
    // A certificate chain or a key is a few kilobytes; 1 MiB is plenty.
    let read = |path: &std::path::Path| {
        proxy_delegate_config::read_bounded(path, proxy_delegate_config::MAX_CONFIG_FILE)
            .map_err(|e| tls_err("cannot read", path, &e))
    };
    // The PEM parser's errors quote the offending line, which in a key file
    // (or a key given as a certificate by mistake) is the key itself: they are
    // replaced, never shown.
    let bad_pem = |what: &str, path: &std::path::Path| {
        tls_err(
            what,
            path,
            &"not valid PEM (each item a -----BEGIN ...----- block, one base64 line after another)",
        )
    };
    let certs: Vec<_> = rustls_pemfile::certs(&mut &read(&c.cert_file)?[..])
        .collect::<Result<_, _>>()
        .map_err(|_| bad_pem("bad certificate PEM in", &c.cert_file))?;
    if certs.is_empty() {
        return Err(tls_err("no certificate in", &c.cert_file, &"empty"));
    }
    let key = rustls_pemfile::private_key(&mut &read(&c.key_file)?[..])
        .map_err(|_| bad_pem("bad key PEM in", &c.key_file))?
        .ok_or_else(|| tls_err("no private key in", &c.key_file, &"empty"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls(e.to_string()))?;
    let builder = match &c.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut &read(ca)?[..]) {
                let cert = cert.map_err(|_| bad_pem("bad CA PEM in", ca))?;
                roots
                    .add(cert)
                    .map_err(|e| tls_err("unusable CA certificate in", ca, &e))?;
            }
            // A connection without a certificate is let through TLS and
            // answered 401 by the gate (unless it sends a token or a key);
            // a certificate that does not chain to the CA fails the handshake.
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| tls_err("cannot use the CA in", ca, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| tls_err("certificate and key do not match in", &c.cert_file, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The subject's common name and DNS names of a client certificate.
fn certificate_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push((*d).to_owned());
            }
        }
    }
    names
}

// ------------------------------------------------------------------ accept loop

/// One open client connection: counted in `http_connections` while it
/// lives.
struct Slot(prometheus_client::metrics::gauge::Gauge);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: axum::Router,
    state: Arc<AppState>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    // `max_connections` (restart only). Only this loop adds connections, so
    // the gauge it tests cannot pass the cap between the test and the add.
    let max_connections = i64::from(
        state
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .max_connections,
    );
    let open = state.metrics.connections.clone();
    state.metrics.connections_max.set(max_connections);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        if open.get() >= max_connections {
            // Closed at once: the descriptor is back before the next accept,
            // and the client learns now, not at a timeout, to go elsewhere.
            drop(stream);
            state.metrics.connections_refused.inc();
            if state.connection_log.admit(&state.metrics) {
                tracing::warn!(
                    %peer,
                    max_connections,
                    "connection refused: max_connections are open"
                );
            }
            continue;
        }
        open.inc();
        let slot = Slot(open.clone());
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => serve_connection(stream, peer, None, app, watcher).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    match handshake {
                        Ok(Ok(tls_stream)) => {
                            let identity = tls_stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| TlsIdentity(certificate_names(c)));
                            serve_connection(tls_stream, peer, identity, app, watcher).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("requests still in flight after the drain timeout; closing them");
        }
    }
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    identity: Option<TlsIdentity>,
    app: axum::Router,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = tower::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        if let Some(id) = &identity {
            request.extensions_mut().insert(id.clone());
        }
        app.clone().oneshot(request.map(axum::body::Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADER_FIELDS)
        .keep_alive(true);
    // hyper's own 400 and 431 get the JSON error body.
    let io = TokioIo::new(JsonRejections::new(stream));
    let connection = builder.serve_connection(io, TowerToHyperService::new(service));
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

// ------------------------------------------------------------------ the pool's timers and probes

async fn drive_pool(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let mut last_trim = tokio::time::Instant::now();
    loop {
        let (events, probes, next) = {
            let now = state.now();
            let mut pool = state.pool();
            let mut probes = Vec::new();
            let mut events = Vec::new();
            // Timers whose events find the pool's queue full stay due: drain
            // and go again until none is, so no event is lost.
            loop {
                pool.handle_timeout(now);
                while let Some(p) = pool.poll_transmit(now) {
                    probes.push(p);
                }
                while let Some(e) = pool.poll_event() {
                    events.push(e);
                }
                if pool.poll_timeout().is_none_or(|t| t > now) {
                    break;
                }
            }
            (events, probes, pool.poll_timeout())
        };
        for e in events {
            record_event(&state, e);
        }
        for probe in probes {
            let state = state.clone();
            tokio::spawn(async move {
                let target = probe.target;
                let reachable = tokio::time::timeout(
                    PROBE_TIMEOUT,
                    TcpStream::connect((target.host(), target.port())),
                )
                .await
                .is_ok_and(|r| r.is_ok());
                let now = state.now();
                let changed = state
                    .pool()
                    .handle_probe_result(now, probe.token, reachable);
                tracing::debug!(proxy = %target, reachable, changed, "probe");
                state.wake.notify_one();
            });
        }
        if last_trim.elapsed() >= DRIVER_TICK {
            state.trim_rate_limits();
            last_trim = tokio::time::Instant::now();
        }
        let sleep = next
            .map(|at| {
                let now = state.now();
                Duration::from_micros(at.checked_duration_since(now).map_or(0, |d| d.as_micros()))
            })
            .unwrap_or(DRIVER_TICK)
            .min(DRIVER_TICK);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = state.wake.notified() => {}
            _ = stop.changed() => break,
        }
    }
}

/// Logs and counts one pool event. Every drain of the pool's events (the
/// driver here, the feedback handler) goes through this.
pub(crate) fn record_event(state: &AppState, e: Event) {
    match e {
        Event::Ejected {
            proxy,
            reason,
            ejections,
            ..
        } => {
            let reason = match reason {
                EjectReason::ConsecutiveFailures => "consecutive_failures",
                EjectReason::LowSuccessRate => "low_success_rate",
                _ => "other",
            };
            tracing::warn!(proxy = %proxy, reason, ejections, "proxy ejected");
            state
                .metrics
                .ejections
                .get_or_create(&EjectionLabels {
                    proxy: proxy.to_string(),
                    reason,
                })
                .inc();
        }
        Event::Restored { proxy, cause } => {
            tracing::info!(proxy = %proxy, cause = ?cause, "proxy restored");
            state
                .metrics
                .restorations
                .get_or_create(&ProxyLabels {
                    proxy: proxy.to_string(),
                })
                .inc();
        }
        other => tracing::info!(event = ?other, "pool event"),
    }
}
