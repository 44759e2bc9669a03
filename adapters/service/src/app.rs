//! The shared state and the axum router: routes, the authentication and
//! rate-limit gate, and the handlers. Handlers hold the pool's lock only for
//! the pool call itself, never across an `.await`.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use proxy_delegate_core::contract;
use proxy_delegate_core::model::{ProxyFeedback, ProxyRequest};
use proxy_delegate_core::pool::{Event, FeedbackError, Pool, StrategyKind};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Caller, Clients, TlsIdentity};
use crate::body::{self, Wire};
use crate::config::{AuthConfig, Scope, ServiceConfig};
use crate::error::{ApiError, ErrorCode};
use crate::metrics::{
    ClientLabel, FeedbackLabels, Metrics, OutcomeLabels, ReasonLabels, RequestLabels,
};
use crate::snapshot::{PoolSummary, ProxyRow, Snapshot};

/// Most proxies in the service's inventory.
pub const MAX_PROXIES: usize = 4096;
/// Sticky (client, exchange) choices remembered at once.
pub const MAX_STICKY: usize = 4096;

/// The pool the service drives, its slots on the heap.
pub(crate) type ServicePool = Pool<MAX_PROXIES, MAX_STICKY, proxy_delegate_core::storage::Boxed>;

/// How long a client may take to send a request body.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct AppState {
    pool: Mutex<Box<ServicePool>>,
    origin: std::time::Instant,
    pub(crate) clients: RwLock<Arc<Clients>>,
    auth: AuthConfig,
    limiter: Option<DefaultKeyedRateLimiter<RateKey>>,
    /// The caller of open routes and of every route without authentication.
    anonymous: Caller,
    pub(crate) metrics: Metrics,
    refresh_seconds: u32,
    ready: AtomicBool,
    /// Woken when feedback may have moved the pool's next timer.
    pub(crate) wake: tokio::sync::Notify,
    pub(crate) source: Option<PathBuf>,
    pub(crate) config: RwLock<ServiceConfig>,
    /// `GET /openapi.json`: the document of this configuration.
    openapi: String,
    /// The budget of `request refused` log lines.
    refusal_log: Arc<LogBudget>,
    /// The budget of `connection refused` log lines.
    pub(crate) connection_log: Arc<LogBudget>,
}

impl AppState {
    /// Builds the pool (on the heap: its slots alone are several MiB) and
    /// loads the inventory.
    pub(crate) fn new(config: ServiceConfig) -> Result<Self, crate::StartError> {
        let mut built = ServicePool::new_boxed(config.pool.clone())
            .map_err(|e| crate::StartError::Config(e.to_string()))?;
        built
            .replace_inventory(embassy_time::Instant::from_ticks(0), &config.proxies)
            .map_err(|e| crate::StartError::Config(format!("proxies: {e}")))?;
        let limiter = config.rate_limit.map(|r| {
            let per_second = NonZeroU32::new(r.per_second).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(r.burst.max(r.per_second)).unwrap_or(per_second);
            RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
        });
        Ok(Self {
            pool: Mutex::new(built),
            origin: std::time::Instant::now(),
            clients: RwLock::new(Arc::new(Clients::new(&config.clients))),
            auth: config.auth,
            limiter,
            anonymous: Caller::anonymous(),
            metrics: Metrics::new(),
            refresh_seconds: config.status_refresh_seconds,
            ready: AtomicBool::new(true),
            wake: tokio::sync::Notify::new(),
            source: config.source.clone(),
            openapi: crate::openapi::document_json_for(&config),
            refusal_log: Arc::new(LogBudget::new("request_refused")),
            connection_log: Arc::new(LogBudget::new("connection_refused")),
            config: RwLock::new(config),
        })
    }

    /// The pool's clock: time since the service started.
    pub(crate) fn now(&self) -> embassy_time::Instant {
        let micros = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        embassy_time::Instant::from_micros(micros)
    }

    /// The pool, locked. A panic while it was held cannot leave it
    /// half-updated in a way that matters more than stopping the service
    /// would, so a poisoned lock is taken over.
    pub(crate) fn pool(&self) -> MutexGuard<'_, Box<ServicePool>> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long shutdown keeps accepting while `/health` answers 503.
    pub(crate) fn unready_period(&self) -> std::time::Duration {
        let config = self.config.read().unwrap_or_else(|p| p.into_inner());
        std::time::Duration::from_secs(u64::from(config.unready_seconds))
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let now = self.now();
        let pool = self.pool();
        Snapshot {
            summary: PoolSummary::from(pool.stats()),
            proxies: pool
                .proxies(now)
                .map(|s| ProxyRow::from_status(&s, now))
                .collect(),
        }
    }

    /// Forgets rate-limit buckets of clients that have gone quiet.
    pub(crate) fn trim_rate_limits(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
        }
    }
}

/// Log lines of one kind written per [`LOG_WINDOW`]; the rest are counted
/// (`log_lines_suppressed_total`) and summed up in one line.
pub(crate) const LOG_BUDGET: u32 = 20;
/// The window of [`LOG_BUDGET`].
pub(crate) const LOG_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// A budget of log lines of one kind (`request refused`, `connection
/// refused`): [`LOG_BUDGET`] a second. Past it, lines are not written but
/// counted, and one line says how many were left out: written at the end of
/// the second in which the first was (by a timer task), so a flood that
/// stops is still reported.
#[derive(Debug)]
pub(crate) struct LogBudget {
    /// The lines' kind, as `log_lines_suppressed_total` labels it.
    event: &'static str,
    state: Mutex<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    /// When the current window began (`None`: no line yet).
    window: Option<std::time::Instant>,
    /// Lines written in it.
    written: u32,
    /// Lines left out since the last summary.
    suppressed: u64,
    /// Whether a summary is due at the end of the current window.
    summary_due: bool,
}

/// What [`LogBudget::decide`] says about one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    /// Write it.
    Write,
    /// Leave it out; `first`: the first left out in this window (a summary
    /// must be arranged for its end).
    Suppress { first: bool },
}

impl LogBudget {
    pub(crate) fn new(event: &'static str) -> Self {
        Self {
            event,
            state: Mutex::new(BudgetState {
                window: None,
                written: 0,
                suppressed: 0,
                summary_due: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BudgetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a line at `now` is written.
    pub(crate) fn decide(&self, now: std::time::Instant) -> Budget {
        let mut s = self.lock();
        let fresh = s
            .window
            .is_none_or(|start| now.saturating_duration_since(start) >= LOG_WINDOW);
        if fresh {
            s.window = Some(now);
            s.written = 0;
            s.summary_due = false;
        }
        if s.written < LOG_BUDGET {
            s.written += 1;
            return Budget::Write;
        }
        s.suppressed += 1;
        let first = !s.summary_due;
        s.summary_due = true;
        Budget::Suppress { first }
    }

    /// The lines left out since the last call.
    pub(crate) fn take_suppressed(&self) -> u64 {
        std::mem::take(&mut self.lock().suppressed)
    }

    /// Whether to write a line of `event` now. When not, counts it in
    /// `log_lines_suppressed_total{event}` and, for the first one of its
    /// window, spawns the task that writes the summary a window later.
    pub(crate) fn admit(self: &Arc<Self>, metrics: &Metrics) -> bool {
        let Budget::Suppress { first } = self.decide(std::time::Instant::now()) else {
            return true;
        };
        metrics
            .logs_suppressed
            .get_or_create(&crate::metrics::LogLabels { event: self.event })
            .inc();
        if first && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let budget = self.clone();
            runtime.spawn(async move {
                tokio::time::sleep(LOG_WINDOW).await;
                let suppressed = budget.take_suppressed();
                if suppressed > 0 {
                    tracing::warn!(
                        event = budget.event,
                        suppressed,
                        "log lines suppressed: more than {LOG_BUDGET} a second"
                    );
                }
            });
        }
        false
    }
}

/// What the gate needs to know about the route a path belongs to.
#[derive(Debug, Clone, Copy)]
struct Route {
    /// The metric label.
    label: &'static str,
    /// The scope it needs (`None`: open to anyone).
    scope: Option<Scope>,
    /// Whether calls count against the caller's rate limit. Health checks
    /// and scrapes never do, even when they need authentication.
    limited: bool,
}

fn route_of(path: &str, auth: &AuthConfig) -> Route {
    let (label, scope, limited) = match path {
        contract::REQUEST_PATH => (contract::REQUEST_PATH, Some(Scope::Request), true),
        contract::FEEDBACK_PATH => (contract::FEEDBACK_PATH, Some(Scope::Feedback), true),
        contract::PROXIES_PATH => (contract::PROXIES_PATH, Some(Scope::Read), true),
        "/" => ("/", Some(Scope::Read), true),
        "/metrics" => ("/metrics", auth.metrics.then_some(Scope::Read), false),
        contract::HEALTH_PATH => (
            contract::HEALTH_PATH,
            auth.health.then_some(Scope::Read),
            false,
        ),
        "/openapi.json" => ("/openapi.json", None, false),
        _ => ("other", None, false),
    };
    Route {
        label,
        scope,
        limited,
    }
}

/// What the gate enforces on `path` under this configuration: whether it
/// needs a known client, and whether calls count against a rate limit. The
/// served OpenAPI document (`openapi::document_json_for`) says the same.
pub(crate) fn route_policy(path: &str, config: &ServiceConfig) -> (bool, bool) {
    let route = route_of(path, &config.auth);
    (
        config.auth.required && route.scope.is_some(),
        config.rate_limit.is_some() && route.limited,
    )
}

/// Whether the route of `path` can answer with `code` in some configuration:
/// the error answers the OpenAPI document lists for it. The gate's follow
/// from [`route_of`] (a scope: 401 and 403; a rate limit: 429), the
/// handlers' from what they do: the two `POST` routes read a body, and
/// `POST /api/v1/proxy/request` answers in the format `Accept` chooses,
/// encoding the answer itself.
pub(crate) fn may_answer(path: &str, code: ErrorCode) -> bool {
    let every = AuthConfig {
        required: true,
        health: true,
        metrics: true,
        unauthenticated_on_purpose: false,
    };
    let route = route_of(path, &every);
    let reads_body = path == contract::REQUEST_PATH || path == contract::FEEDBACK_PATH;
    let negotiates = path == contract::REQUEST_PATH;
    match code {
        // Before routing, and for a method the route does not take.
        ErrorCode::MalformedRequest | ErrorCode::HeadersTooLarge => true,
        ErrorCode::MethodNotAllowed => true,
        // Only paths the document does not list.
        ErrorCode::NotFound => false,
        ErrorCode::Unauthorized | ErrorCode::Forbidden => route.scope.is_some(),
        ErrorCode::RateLimited => route.limited,
        ErrorCode::MalformedBody
        | ErrorCode::RequestTimeout
        | ErrorCode::PayloadTooLarge
        | ErrorCode::UnsupportedMediaType
        | ErrorCode::InvalidField => reads_body,
        ErrorCode::NotAcceptable | ErrorCode::Internal => negotiates,
    }
}

/// Authenticates, authorises and rate-limits every request, and counts it.
async fn gate(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let route = route_of(request.uri().path(), &state.auth);
    // The client's correlation id, logged and echoed; only its own shape
    // (16 hex digits) is taken, so no other text reaches the logs.
    let correlation = request
        .headers()
        .get(contract::CORRELATION_HEADER)
        .filter(|v| v.len() == 16 && v.as_bytes().iter().all(u8::is_ascii_hexdigit))
        .cloned();
    let correlation_text = correlation
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let outcome = admit(&state, &mut request, route, peer);
    let (client, response) = match outcome {
        Ok(caller) => {
            let name = caller.name.clone();
            request.extensions_mut().insert(caller);
            (name, next.run(request).await)
        }
        Err((name, e)) => {
            // Which rule refused whom; the message never holds a secret.
            // At most LOG_BUDGET such lines a second: a flood of bad
            // credentials is counted (auth_failures, http_requests), and
            // its lines are summed up in one.
            if state.refusal_log.admit(&state.metrics) {
                tracing::info!(
                    client = %name,
                    correlation_id = %correlation_text,
                    peer = ?peer,
                    route = route.label,
                    status = e.status().as_u16(),
                    code = e.code.as_str(),
                    reason = %e.message,
                    "request refused"
                );
            }
            (name, e.into_response())
        }
    };
    tracing::debug!(
        client = %client,
        correlation_id = %correlation_text,
        route = route.label,
        status = response.status().as_u16(),
        "request"
    );
    let mut response = response;
    if let Some(id) = correlation {
        response
            .headers_mut()
            .insert(contract::CORRELATION_HEADER, id);
    }
    state
        .metrics
        .http_requests
        .get_or_create(&RequestLabels {
            route: route.label,
            status: response.status().as_u16(),
            client: ClientLabel(client),
        })
        .inc();
    response
}

type Refused = (Arc<str>, ApiError);

/// Whom a rate limit counts: a named client, or, without authentication,
/// a remote address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum RateKey {
    Client(Arc<str>),
    Address(std::net::IpAddr),
}

fn admit(
    state: &AppState,
    request: &mut Request,
    route: Route,
    peer: Option<SocketAddr>,
) -> Result<Caller, Refused> {
    let scope = route.scope;
    let anonymous = || state.anonymous.name.clone();
    let caller = if !state.auth.required {
        state.anonymous.clone()
    } else {
        let clients = state
            .clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match clients.identify(request.headers(), request.extensions().get::<TlsIdentity>()) {
            Ok(Some(caller)) => caller,
            Ok(None) if scope.is_none() => state.anonymous.clone(),
            Ok(None) => {
                state
                    .metrics
                    .auth_failures
                    .get_or_create(&ReasonLabels { reason: "missing" })
                    .inc();
                return Err((
                    anonymous(),
                    ApiError::unauthorized(
                        "credentials required: send Authorization: Bearer <token>, X-API-Key, \
                         or a client certificate",
                    ),
                ));
            }
            Err((reason, e)) => {
                state
                    .metrics
                    .auth_failures
                    .get_or_create(&ReasonLabels { reason })
                    .inc();
                // An open route (a health probe with a stale token, say)
                // answers as it would without credentials.
                if scope.is_none() {
                    state.anonymous.clone()
                } else {
                    return Err((anonymous(), e));
                }
            }
        }
    };
    if let Some(scope) = scope {
        caller
            .require(scope)
            .map_err(|e| (caller.name.clone(), e))?;
    }
    if let (Some(limiter), true) = (&state.limiter, route.limited) {
        let key = match (state.auth.required, peer) {
            (false, Some(peer)) => RateKey::Address(peer.ip()),
            _ => RateKey::Client(caller.name.clone()),
        };
        if let Err(not_until) = limiter.check_key(&key) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err((caller.name.clone(), ApiError::rate_limited(secs)));
        }
    }
    Ok(caller)
}

/// The router with every route, the gate, the JSON 404 and 405 answers.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(contract::REQUEST_PATH, post(proxy_request))
        .route(contract::FEEDBACK_PATH, post(proxy_feedback))
        .route(contract::PROXIES_PATH, get(proxies))
        .route(contract::HEALTH_PATH, get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/", get(status_page))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {}; see GET /openapi.json",
        crate::error::excerpt(request.uri().path())
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::method_not_allowed(format!(
        "{} is not allowed on {}; see GET /openapi.json",
        request.method(),
        crate::error::excerpt(request.uri().path())
    ))
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, ApiError> {
    tokio::time::timeout(BODY_TIMEOUT, body::read(headers, body))
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            )
        })?
}

/// What `POST /api/v1/proxy/request` reads before it asks the pool: the
/// request's format (`Content-Type`), the answer's (`Accept`; checked first,
/// so that a 406 takes no lease), the body (size limit, `Content-Encoding`)
/// and the one message in it, validated. Also what the fuzz target
/// `service_request` drives ([`crate::fuzzing`]).
pub(crate) async fn read_proxy_request(
    headers: &HeaderMap,
    body: Body,
) -> Result<(ProxyRequest, Wire), ApiError> {
    let wire = Wire::of_request(headers)?;
    let answer_wire = Wire::of_answer(headers, wire)?;
    let bytes = read_body(headers, body).await?;
    let ask: ProxyRequest = body::decode_one(wire, &bytes)?;
    Ok((ask, answer_wire))
}

/// What `POST /api/v1/proxy/feedback` reads before it applies anything: the
/// format (`Content-Type`), the body (size limit, `Content-Encoding`) and
/// every event in it, validated (a batch is taken whole or refused whole).
/// Credentials in `proxy_url` are dropped by the decoder itself. Also what
/// the fuzz target `service_request` drives ([`crate::fuzzing`]).
pub(crate) async fn read_feedback(
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<ProxyFeedback>, ApiError> {
    let wire = Wire::of_request(headers)?;
    let bytes = read_body(headers, body).await?;
    body::decode_batch(wire, &bytes)
}

fn caller_name(request: &axum::http::Extensions) -> ClientLabel {
    ClientLabel(
        request
            .get::<Caller>()
            .map_or_else(|| Arc::from("anonymous"), |c| c.name.clone()),
    )
}

/// `POST /api/v1/proxy/request`: which proxy for this exchange connection.
#[utoipa::path(
    post,
    path = "/api/v1/proxy/request",
    tag = "proxy",
    operation_id = "request_proxy",
    request_body(
        description = "The exchange connection to find a proxy for: JSON, or the same message in postcard. May be gzip-compressed (`Content-Encoding: gzip`).",
        content(
            (crate::openapi::ProxyRequestDoc = "application/json"),
            (crate::openapi::PostcardMessage = "application/x-postcard"),
        ),
    ),
    responses(
        (status = 200, description = "The proxy to use (`proxy_url` null: connect directly), for how long, and the fallback policy. In the format `Accept` prefers (q-values honoured; at equal q, a type named outright over one matched by a wildcard, then the request's format); without a preference, the request's format.", content(
            (crate::openapi::ProxyResponseDoc = "application/json"),
            (crate::openapi::PostcardMessage = "application/x-postcard"),
        )),
    ),
    security(("bearer" = []), ("api_key" = []), ("mutual_tls" = [])),
)]
pub(crate) async fn proxy_request(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let (ask, answer_wire) = read_proxy_request(&parts.headers, body).await?;
    let answer = {
        let now = state.now();
        state.pool().select(now, &ask)
    };
    let client = caller_name(&parts.extensions);
    let outcome = if answer.proxy_url.is_some() {
        if let Ok(kind) = StrategyKind::parse(answer.strategy.as_str()) {
            state
                .metrics
                .selections
                .get_or_create(&crate::metrics::StrategyLabels {
                    strategy: kind.as_str(),
                })
                .inc();
        }
        "proxy"
    } else {
        "no_proxy"
    };
    state
        .metrics
        .proxy_requests
        .get_or_create(&OutcomeLabels { outcome, client })
        .inc();
    Ok(answer_wire.answer(&answer))
}

/// The answer to `POST /api/v1/proxy/feedback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct FeedbackAck {
    /// Events received (all of them were valid).
    pub received: usize,
    /// Events applied in full to a proxy's health and state.
    pub applied: usize,
    /// Events naming no proxy of the inventory (removed by a reload, or
    /// from another service): accepted, not applied.
    pub unknown_proxy: usize,
    /// Events about direct connections (no `proxy_id`, no `proxy_url`):
    /// accepted, nothing to score.
    pub no_proxy: usize,
    /// `rate_limited` or `geo_blocked` events whose cool-down could not be
    /// recorded, because the pool already tracks its largest number of
    /// exchanges with live cool-downs and allow-lists (63): the failure
    /// shows in the proxy's recent failures, but the proxy is not barred for
    /// that exchange. Not counted in `applied`.
    pub cool_down_dropped: usize,
}

/// How far one feedback event the pool accepted took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// Everything the event asks for.
    Fully,
    /// Its cool-down could not be recorded (the pool's exchange table is
    /// full of live entries).
    CoolDownDropped,
}

/// `POST /api/v1/proxy/feedback`: one event or a batch.
#[utoipa::path(
    post,
    path = "/api/v1/proxy/feedback",
    tag = "proxy",
    operation_id = "report_feedback",
    request_body(
        description = "One feedback event or a non-empty array of them (JSON), or one or more postcard messages back to back. May be gzip-compressed (`Content-Encoding: gzip`). A batch is taken whole or refused whole.",
        content(
            (crate::openapi::FeedbackBody = "application/json"),
            (crate::openapi::PostcardMessage = "application/x-postcard"),
        ),
    ),
    responses(
        (status = 200, description = "Every event was valid and has been taken; the counts say what each did.", body = crate::FeedbackAck, content_type = "application/json"),
    ),
    security(("bearer" = []), ("api_key" = []), ("mutual_tls" = [])),
)]
pub(crate) async fn proxy_feedback(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<axum::Json<FeedbackAck>, ApiError> {
    let (parts, body) = request.into_parts();
    let events = read_feedback(&parts.headers, body).await?;
    let mut ack = FeedbackAck {
        received: events.len(),
        applied: 0,
        unknown_proxy: 0,
        no_proxy: 0,
        cool_down_dropped: 0,
    };
    // The pool keeps only its newest 64 events: drain them after every
    // event applied, so a batch of any size loses none (an ejection early in
    // a long batch would otherwise be pushed out before the driver runs).
    let mut pool_events = Vec::new();
    let results: Vec<Result<Applied, FeedbackError>> = {
        let now = state.now();
        let mut pool = state.pool();
        events
            .iter()
            .map(|e| {
                let result = pool.handle_feedback(now, e);
                let mut cool_down_dropped = false;
                while let Some(event) = pool.poll_event() {
                    cool_down_dropped |= matches!(event, Event::CoolDownDropped { .. });
                    pool_events.push(event);
                }
                result.map(|()| {
                    if cool_down_dropped {
                        Applied::CoolDownDropped
                    } else {
                        Applied::Fully
                    }
                })
            })
            .collect()
    };
    for event in pool_events {
        crate::server::record_event(&state, event);
    }
    state.wake.notify_one();
    let client = caller_name(&parts.extensions);
    for (e, r) in events.iter().zip(results) {
        match r {
            Ok(Applied::Fully) => {
                ack.applied += 1;
                state
                    .metrics
                    .feedback
                    .get_or_create(&FeedbackLabels {
                        event: e.event.as_str(),
                        category: e.error_category.map_or("none", |c| c.as_str()),
                        client: client.clone(),
                    })
                    .inc();
            }
            Ok(Applied::CoolDownDropped) => {
                ack.cool_down_dropped += 1;
                state
                    .metrics
                    .feedback_ignored
                    .get_or_create(&ReasonLabels {
                        reason: "cool_down_dropped",
                    })
                    .inc();
            }
            Err(err) => {
                let reason = match err {
                    FeedbackError::NoProxy => {
                        ack.no_proxy += 1;
                        "no_proxy"
                    }
                    _ => {
                        ack.unknown_proxy += 1;
                        "unknown_proxy"
                    }
                };
                state
                    .metrics
                    .feedback_ignored
                    .get_or_create(&ReasonLabels { reason })
                    .inc();
            }
        }
    }
    Ok(axum::Json(ack))
}

/// `GET /api/v1/proxies`: the inventory with health and state, no credentials.
#[utoipa::path(
    get,
    path = "/api/v1/proxies",
    tag = "pool",
    operation_id = "list_proxies",
    responses(
        (status = 200, description = "Every proxy of the inventory, in the configuration's order, with its health and state; no credentials.", body = crate::snapshot::Snapshot, content_type = "application/json"),
    ),
    security(("bearer" = []), ("api_key" = []), ("mutual_tls" = [])),
)]
pub(crate) async fn proxies(State(state): State<Arc<AppState>>) -> axum::Json<Snapshot> {
    axum::Json(state.snapshot())
}

/// Whether the service takes requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Ready (200).
    Ok,
    /// Shutting down (503).
    Draining,
}

/// The body of `GET /health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `draining` while the service shuts down.
    pub status: HealthStatus,
    /// Always true while the process answers (liveness).
    pub live: bool,
    /// Whether the service takes requests (readiness): false while it
    /// shuts down.
    pub ready: bool,
    /// Proxies in the inventory.
    pub proxies: u32,
    /// Proxies a request may get now.
    pub available: u32,
}

/// `GET /health`: 200 when ready, 503 while shutting down.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    operation_id = "health",
    description = "Liveness and readiness. Open to anyone unless the configuration sets `auth.health` (then the `read` scope is needed; otherwise credentials are ignored); never rate limited.",
    responses(
        (status = 200, description = "Ready: the service takes requests.", body = crate::Health, content_type = "application/json"),
        (status = 503, description = "Shutting down (`status` is `draining`, `ready` is false).", body = crate::Health, content_type = "application/json"),
    ),
    security((), ("bearer" = []), ("api_key" = []), ("mutual_tls" = [])),
)]
pub(crate) async fn health(State(state): State<Arc<AppState>>) -> Response {
    let stats = state.pool().stats();
    let ready = state.ready.load(Ordering::SeqCst);
    let body = Health {
        status: if ready {
            HealthStatus::Ok
        } else {
            HealthStatus::Draining
        },
        live: true,
        ready,
        proxies: stats.proxies,
        available: stats.available,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// `GET /metrics`: Prometheus (OpenMetrics) text.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    description = "Prometheus metrics in the OpenMetrics text format. Open to anyone unless the configuration sets `auth.metrics` (then the `read` scope is needed; otherwise credentials are ignored); never rate limited.",
    responses(
        (status = 200, description = "The metrics.", body = String, content_type = crate::metrics::CONTENT_TYPE),
    ),
    security((), ("bearer" = []), ("api_key" = []), ("mutual_tls" = [])),
)]
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let events_dropped = state.pool().events_dropped();
    let text = state.metrics.render(&state.snapshot(), events_dropped);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response()
}

/// `GET /openapi.json`: the API description.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    description = "This document. Open to anyone; credentials are not needed and are ignored.",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document.", body = Object, content_type = "application/json"),
    ),
    security(()),
)]
pub(crate) async fn openapi(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.openapi.clone(),
    )
        .into_response()
}

/// `GET /`: the status page. It loads nothing and runs nothing; the
/// headers let a browser enforce that.
#[utoipa::path(
    get,
    path = "/",
    tag = "pool",
    operation_id = "status_page",
    responses(
        (status = 200, description = "The status page: the pool's proxies with health and state, refreshing itself.", body = String, content_type = "text/html; charset=utf-8"),
    ),
    security(("bearer" = []), ("api_key" = []), ("mutual_tls" = [])),
)]
pub(crate) async fn status_page(State(state): State<Arc<AppState>>) -> Response {
    let page = Html(crate::status_page::render(
        &state.snapshot(),
        state.refresh_seconds,
    ));
    (
        [
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
                     form-action 'none'; frame-ancestors 'none'",
                ),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        page,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_budget_writes_twenty_a_second_and_counts_the_rest() {
        let budget = LogBudget::new("request_refused");
        let t0 = std::time::Instant::now();
        let ms = |n: u64| t0 + std::time::Duration::from_millis(n);
        for i in 0..LOG_BUDGET {
            assert_eq!(budget.decide(ms(u64::from(i))), Budget::Write, "line {i}");
        }
        assert_eq!(budget.decide(ms(500)), Budget::Suppress { first: true });
        for _ in 0..99 {
            assert_eq!(budget.decide(ms(900)), Budget::Suppress { first: false });
        }
        // A new window: the budget is back, and the count waits for its summary.
        assert_eq!(budget.decide(ms(1000)), Budget::Write);
        assert_eq!(budget.take_suppressed(), 100);
        assert_eq!(budget.take_suppressed(), 0);
        for _ in 1..LOG_BUDGET {
            assert_eq!(budget.decide(ms(1500)), Budget::Write);
        }
        assert_eq!(budget.decide(ms(1999)), Budget::Suppress { first: true });
        assert_eq!(budget.take_suppressed(), 1);
    }
}
