//! The OpenAPI 3.1 document of the service, generated from the code.
//!
//! The handlers in `app.rs` carry `#[utoipa::path]` attributes (route,
//! request body, every status with its content type, security); this module
//! gathers them into [`ApiDoc`] and adds what the handlers cannot say
//! themselves:
//!
//! * the schemas of the wire messages. The messages live in the `no_std`
//!   core, which does not depend on utoipa, so the types here
//!   ([`ProxyRequestDoc`], [`ProxyResponseDoc`], [`ProxyFeedbackDoc`] and
//!   their parts) mirror the JSON the core reads and writes, field for
//!   field, with the core's bounds. The unit tests below compare their field
//!   names with what the core's JSON encoder writes, and their bounds with
//!   the core's `MAX_*` constants, so the two cannot drift apart unnoticed;
//! * the error answers, one reusable response per status, each with the
//!   [`ErrorBody`](crate::ErrorBody) JSON schema;
//! * the security schemes: bearer token, `X-API-Key`, mutual TLS;
//! * what every route has in common: the `X-Correlation-Id` header (sent,
//!   and echoed), and the 400 and 431 that come before routing.
//!
//! [`document_json`] describes every configuration at once (the security of
//! a service with clients, `/health` and `/metrics` open or not); it is
//! `docs/openapi.json`, and `tests/openapi.rs` fails when they differ (run
//! it with `UPDATE_OPENAPI=1` to rewrite the file). `GET /openapi.json`
//! serves [`document_json_for`] the running configuration: security only
//! where the service enforces it, no 401 or 403 where it cannot answer them,
//! no 429 without a rate limit.
//!
//! Text bounds in the core are in bytes of UTF-8. JSON Schema counts
//! characters, so `maxLength` here is the byte bound: text of that many ASCII
//! characters always fits, and text with more characters never does; the
//! descriptions say "bytes" where it matters.

use std::borrow::Cow;

use std::collections::BTreeSet;

use utoipa::openapi::Required;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder,
    SchemaFormat, Type,
};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToResponse, ToSchema};

use crate::ServiceConfig;
use crate::body::{JSON, POSTCARD};

/// The correlation header as the document spells it
/// (`contract::CORRELATION_HEADER`, in the usual case).
const CORRELATION_HEADER: &str = "X-Correlation-Id";

/// The text of an identifier field (`exchange_id`, `region`, `strategy`):
/// ASCII letters, digits, `_`, `-` and `.`.
pub const IDENTIFIER_PATTERN: &str = "^[A-Za-z0-9_.-]+$";
/// The text of a free-text id (`client_id`, `proxy_id`, feed types,
/// symbols): any character but control characters (Unicode category Cc).
/// Such text is bounded in bytes of UTF-8, which JSON Schema cannot count;
/// [`printable`] spells the bound as four alternatives by the widest
/// character used.
pub const PRINTABLE_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$";
/// Printable ASCII: one byte per character.
const ASCII_PATTERN: &str = "^[\\u0020-\\u007E]+$";
/// Printable text of characters up to U+07FF: at most two bytes each.
const TWO_BYTE_PATTERN: &str = "^[\\u0020-\\u007E\\u00A0-\\u07FF]+$";
/// Printable text of the Basic Multilingual Plane: at most three bytes each.
const THREE_BYTE_PATTERN: &str = "^[\\u0020-\\u007E\\u00A0-\\uD7FF\\uE000-\\uFFFF]+$";
/// A proxy URL, `scheme://[user[:password]@]host:port[/]`, as the pattern
/// describes it: a DNS name of up to four labels or an IPv4 address as host,
/// lower-case scheme,
/// port 1–65535 without leading zeros. The service also accepts the scheme
/// in any case, leading zeros in the port and a bracketed IPv6 host.
pub const PROXY_URL_PATTERN: &str = "^(https?|socks4a?|socks5h?)://\
((?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}){1,42}\
(:(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}){0,42})?@)?\
[A-Za-z0-9_-]{1,63}(\\.[A-Za-z0-9_-]{1,62}){0,3}\\.?\
:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])/?$";

/// The OpenMetrics media type `GET /metrics` answers with.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Printable text (no control characters) of 1 to `max_bytes` bytes of
/// UTF-8, as JSON Schema can say it: `anyOf` ASCII text of up to
/// `max_bytes` characters, text of characters up to U+07FF of up to half
/// as many, text of the Basic Multilingual Plane of up to a third, and any
/// printable text of up to a quarter. Every string the alternatives allow
/// fits the bound; the service also takes mixed text that fits in bytes but
/// in no alternative (e.g. 31 ASCII characters and one `é` for 32 bytes).
/// `nullable` adds `null` (read as absent).
pub fn printable(max_bytes: usize, nullable: bool, description: &str) -> Schema {
    let text = |max_chars: usize, pattern: &str, what: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(max_chars))
            .pattern(Some(pattern))
            .description(Some(what))
    };
    let mut any = AnyOfBuilder::new()
        .item(text(max_bytes, ASCII_PATTERN, "Printable ASCII."))
        .item(text(
            max_bytes / 2,
            TWO_BYTE_PATTERN,
            "Characters up to U+07FF (two bytes each at most).",
        ))
        .item(text(
            max_bytes / 3,
            THREE_BYTE_PATTERN,
            "Characters of the Basic Multilingual Plane (three bytes each at most).",
        ))
        .item(text(
            max_bytes / 4,
            PRINTABLE_PATTERN,
            "Any characters but control characters (four bytes each at most).",
        ));
    if nullable {
        any = any.item(ObjectBuilder::new().schema_type(Type::Null));
    }
    Schema::AnyOf(any.description(Some(description)).build())
}

fn client_id_schema() -> Schema {
    printable(
        proxy_delegate_core::model::MAX_CLIENT_ID_LEN,
        false,
        "Who is asking or reporting, e.g. `cryptofeed-instance-123`: no control characters, \
         1 to 128 bytes of UTF-8.",
    )
}

fn proxy_id_schema() -> Schema {
    printable(
        proxy_delegate_core::model::MAX_PROXY_ID_LEN,
        true,
        "The service's id of the proxy (`metadata.proxy_id` of an answer), e.g. `proxy-123`: \
         no control characters, 1 to 64 bytes of UTF-8.",
    )
}

const DESCRIPTION: &str = "\
The reference proxy service of proxy-delegate. A client asks which proxy to use for one \
exchange connection (`POST /api/v1/proxy/request`), caches the answer for `ttl_seconds`, \
and reports how the connection went (`POST /api/v1/proxy/feedback`).

**Wire formats.** Requests and answers are JSON (`application/json`) or postcard \
(`application/x-postcard`, the compact binary form of the same messages). The answer to \
`POST /api/v1/proxy/request` is postcard when `Accept` names `application/x-postcard`, \
JSON when it names `application/json`, else the request's own format. A request body may \
be sent with `Content-Encoding: gzip`. Bodies are limited to 65536 bytes, before and after \
decompression; one message to 16384 bytes.

**Errors.** Every rejection is a JSON body `{\"error\": {\"code\", \"message\"}}` \
(schema `ErrorBody`): 400 `malformed_body` or `malformed_request` (a request line or header \
that is not valid HTTP/1.1), 401 `unauthorized` (with `WWW-Authenticate`), 403 \
`forbidden`, 404 `not_found` (any path not listed here), 405 `method_not_allowed` (with \
`Allow`), 406 `not_acceptable`, 408 `request_timeout`, 413 `payload_too_large`, 415 \
`unsupported_media_type`, 422 `invalid_field` (the message names the field, and the batch \
element as `[i]`, never its value), 429 `rate_limited` (with `Retry-After`), 431 \
`headers_too_large` (request line and headers over 32768 bytes, or over 100 header \
fields), 500 `internal`. The 400 `malformed_request` and the 431 close the connection and \
carry no `X-Correlation-Id`. `GET /health` answers 503 with its usual body while the service \
shuts down.

**Correlation.** A request may carry `X-Correlation-Id`: 16 hex digits identifying the \
call. The service logs it and echoes it in the answer; a value of any other shape is \
ignored and not echoed.

**Authentication.** When clients are configured, every route but `/health`, `/metrics` and \
`/openapi.json` needs one of: `Authorization: Bearer <token>`, `X-API-Key: <key>`, or a \
client certificate (mutual TLS). A client is limited to its scopes (`request`, `feedback`, \
`read`; 403 otherwise). `/health` and `/metrics` need the `read` scope when the \
configuration says so (`auth.health`, `auth.metrics`); otherwise they, like \
`/openapi.json` and unknown paths, ignore credentials, even unknown ones. Routes that need a \
scope are rate limited per client (429); `/health`, `/metrics` and `/openapi.json` never are. \
`GET /openapi.json` serves the document of the running configuration: the security of each \
operation is what that service enforces (none at all without clients), and statuses it \
cannot answer (401 and 403 where nothing is enforced, 429 without a rate limit) are left out.";

/// The OpenAPI description of every route, status and content type.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "proxy-delegate service", description = DESCRIPTION),
    paths(
        crate::app::proxy_request,
        crate::app::proxy_feedback,
        crate::app::proxies,
        crate::app::status_page,
        crate::app::health,
        crate::app::metrics,
        crate::app::openapi,
    ),
    components(
        schemas(
            crate::ErrorBody,
            crate::ErrorDetail,
            ProxyRequestDoc,
            RequestMetadataDoc,
            ProxyResponseDoc,
            ResponseMetadataDoc,
            ProxyFeedbackDoc,
            FeedbackBody,
            PostcardMessage,
            ConnectionTypeDoc,
            FallbackPolicyDoc,
            FeedbackEventDoc,
            ErrorCategoryDoc,
            Topic,
            crate::FeedbackAck,
            crate::Health,
            crate::snapshot::Snapshot,
            crate::snapshot::PoolSummary,
            crate::snapshot::ProxyRow,
            crate::snapshot::FailureCount,
        ),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            NotAcceptable,
            RequestTimeout,
            PayloadTooLarge,
            UnsupportedMediaType,
            UnprocessableEntity,
            TooManyRequests,
            HeadersTooLarge,
            InternalError,
        ),
    ),
    modifiers(&Finish),
    tags(
        (name = "proxy", description = "Which proxy to use, and how it went."),
        (name = "pool", description = "The inventory with health and state, no credentials."),
        (name = "operations", description = "Health, metrics and this document."),
    ),
)]
pub struct ApiDoc;

/// The document of every configuration, as pretty-printed JSON (what
/// `docs/openapi.json` holds).
pub fn document_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The document of a service running `config`, as pretty-printed JSON (what
/// its `GET /openapi.json` serves): each operation's security is what the
/// service enforces on it, the bearer token and the API key, and client
/// certificates when `tls.client_ca_file` is set, or none; without it, no
/// 401 or 403; without a rate limit on it, no 429. Schemes and responses no
/// operation uses are left out.
pub fn document_json_for(config: &ServiceConfig) -> String {
    let mut doc = ApiDoc::openapi();
    tailor(&mut doc, config);
    doc.to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Every operation of a path.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn tailor(doc: &mut utoipa::openapi::OpenApi, config: &ServiceConfig) {
    let mutual_tls = config
        .tls
        .as_ref()
        .is_some_and(|t| t.client_ca_file.is_some());
    let schemes: Vec<&str> = ["bearer", "api_key"]
        .into_iter()
        .chain(mutual_tls.then_some("mutual_tls"))
        .collect();
    let mut secured = Vec::new();
    let mut used = BTreeSet::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        let (auth, limited) = crate::app::route_policy(path, config);
        for op in operations_mut(item) {
            if auth {
                op.security = Some(
                    schemes
                        .iter()
                        .map(|s| SecurityRequirement::new(*s, Vec::<String>::new()))
                        .collect(),
                );
                secured.push(path.clone());
            } else {
                op.security = None;
                op.responses.responses.remove("401");
                op.responses.responses.remove("403");
            }
            if !limited {
                op.responses.responses.remove("429");
            }
            for r in op.responses.responses.values() {
                if let RefOr::Ref(r) = r {
                    used.insert(r.ref_location.rsplit('/').next().unwrap_or("").to_owned());
                }
            }
        }
    }
    if let Some(components) = doc.components.as_mut() {
        components.responses.retain(|name, _| used.contains(name));
        if secured.is_empty() {
            components.security_schemes.clear();
        } else if !mutual_tls {
            components.security_schemes.remove("mutual_tls");
        }
    }
    let open = |path: &str| {
        if secured.iter().any(|p| p == path) {
            "needs the `read` scope"
        } else {
            "is open"
        }
    };
    let this = if secured.is_empty() {
        "**This service.** Authentication is off: no operation needs credentials, and \
         credentials sent are ignored."
            .to_owned()
    } else {
        format!(
            "**This service.** Operations with `security` need a known client ({}); \
             `/health` {}, `/metrics` {}.",
            if mutual_tls {
                "a bearer token, an API key or a client certificate"
            } else {
                "a bearer token or an API key; client certificates are not configured"
            },
            open(proxy_delegate_core::contract::HEALTH_PATH),
            open("/metrics"),
        )
    };
    let limit = if config.rate_limit.is_some() {
        " Operations that need a scope are rate limited (429)."
    } else {
        " No operation is rate limited."
    };
    let description = doc.info.description.get_or_insert_with(String::new);
    description.push_str("\n\n");
    description.push_str(&this);
    description.push_str(limit);
}

/// What the derive cannot spell: the security schemes and the feedback's
/// "`success` or `event`" rule.
struct Finish;

impl Modify for Finish {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <token>`, a token of `clients[].bearer_tokens`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "`X-API-Key: <key>`, a key of `clients[].api_keys`.",
            ))),
        );
        components.add_security_scheme(
            "mutual_tls",
            SecurityScheme::MutualTls {
                description: Some(
                    "A client certificate signed by `tls.client_ca_file`, whose subject \
                     common name or a DNS name is one of `clients[].tls_names`. Used when \
                     no `Authorization` or `X-API-Key` header is sent."
                        .into(),
                ),
                extensions: None,
            },
        );
        // Every route: the correlation header, sent and echoed, and the 400
        // and 431 that hyper answers before any route is chosen.
        let echoed = || -> Header {
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some("^[0-9A-Fa-f]{16}$")),
                )
                .description(Some(
                    "The request's `X-Correlation-Id`, when it had one of 16 hex digits.",
                ))
                .build()
        };
        let correlation = ParameterBuilder::new()
            .name(CORRELATION_HEADER)
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .description(Some(
                "16 hex digits identifying this call (e.g. `0123456789abcdef`): logged as \
                 `correlation_id` and echoed in the answer. A value of any other shape is \
                 ignored and not echoed.",
            ))
            .build();
        for item in openapi.paths.paths.values_mut() {
            for op in operations_mut(item) {
                op.parameters
                    .get_or_insert_with(Vec::new)
                    .push(correlation.clone());
                for status in ["400", "431"] {
                    let name = if status == "400" {
                        "BadRequest"
                    } else {
                        "HeadersTooLarge"
                    };
                    op.responses
                        .responses
                        .entry(status.into())
                        .or_insert_with(|| Ref::from_response_name(name).into());
                }
                for r in op.responses.responses.values_mut() {
                    if let RefOr::T(r) = r {
                        r.headers.insert(CORRELATION_HEADER.into(), echoed());
                    }
                }
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        for r in components.responses.values_mut() {
            if let RefOr::T(r) = r {
                r.headers.insert(CORRELATION_HEADER.into(), echoed());
            }
        }
        // A feedback without `event` needs `success` (and the reverse):
        // the derived object cannot say so, an `anyOf` beside it can.
        if let Some(fields) = components.schemas.remove("ProxyFeedback") {
            let needs = |field: &str, schema: RefOr<Schema>| {
                ObjectBuilder::new()
                    .property(field, schema)
                    .required(field)
                    .build()
            };
            let either = AnyOfBuilder::new()
                .item(needs(
                    "success",
                    ObjectBuilder::new().schema_type(Type::Boolean).into(),
                ))
                .item(needs(
                    "event",
                    Ref::from_schema_name("FeedbackEvent").into(),
                ))
                .build();
            let whole = AllOfBuilder::new()
                .item(fields)
                .item(Schema::AnyOf(either))
                .description(Some(
                    "How a connection through a proxy went, reported by the client. \
                     `success` or `event` is required (either is derived from the other). \
                     Credentials in `proxy_url` are dropped on receipt: send the URL \
                     without them. Unknown fields are ignored.",
                ))
                .examples([feedback_example()])
                .build();
            components
                .schemas
                .insert("ProxyFeedback".into(), RefOr::T(Schema::AllOf(whole)));
        }
    }
}

fn feedback_example() -> serde_json::Value {
    serde_json::json!({
        "proxy_url": "socks5://user:pass@proxy-server:1080",
        "exchange_id": "binance",
        "connection_type": "websocket",
        "success": true,
        "latency_ms": 45,
        "error_details": null,
        "timestamp": "2024-09-23T10:30:00Z",
        "client_id": "cryptofeed-instance-123"
    })
}

// ------------------------------------------------------------ the messages

/// The body of `POST /api/v1/proxy/request`: which proxy for this exchange
/// connection. Unknown fields are ignored; `null` reads as absent.
#[derive(Debug, ToSchema)]
#[schema(
    as = ProxyRequest,
    examples(json!({
        "exchange_id": "binance",
        "connection_type": "websocket",
        "region": "us-east-1",
        "client_id": "cryptofeed-instance-123",
        "metadata": {"feed_types": ["trades", "book"], "symbols": ["BTC-USD", "ETH-USD"]}
    }))
)]
pub struct ProxyRequestDoc {
    /// The exchange, e.g. `binance`: ASCII letters, digits, `_`, `-`, `.`,
    /// at most 64 bytes; case-folded to lower case.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.-]+$")]
    pub exchange_id: String,
    /// HTTP or WebSocket.
    pub connection_type: ConnectionTypeDoc,
    /// The region the client would like its proxy in, e.g. `us-east-1`:
    /// ASCII letters, digits, `_`, `-`, `.`, at most 64 bytes.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.-]+$")]
    pub region: Option<String>,
    /// Who is asking, e.g. `cryptofeed-instance-123`: no control
    /// characters, at most 128 bytes.
    #[schema(schema_with = client_id_schema)]
    pub client_id: String,
    /// What the connection will carry; informational.
    pub metadata: Option<RequestMetadataDoc>,
}

/// What a requested connection will carry.
#[derive(Debug, ToSchema)]
#[schema(as = RequestMetadata)]
pub struct RequestMetadataDoc {
    /// Feed types, e.g. `trades`, `book`: at most 16.
    #[schema(max_items = 16)]
    pub feed_types: Option<Vec<Topic>>,
    /// Symbols, e.g. `BTC-USD`: at most 64.
    #[schema(max_items = 64)]
    pub symbols: Option<Vec<Topic>>,
}

/// A feed type or symbol: no control characters, at most 32 bytes.
#[derive(Debug)]
pub struct Topic;

impl PartialSchema for Topic {
    fn schema() -> RefOr<Schema> {
        printable(
            proxy_delegate_core::model::MAX_TOPIC_LEN,
            false,
            "A feed type or symbol, e.g. `trades`, `BTC-USD`: no control characters, \
             1 to 32 bytes of UTF-8.",
        )
        .into()
    }
}

impl ToSchema for Topic {}

/// The answer to `POST /api/v1/proxy/request` (in JSON; the same fields in
/// postcard). Every field is written; clients ignore fields they do not know.
#[derive(Debug, ToSchema)]
#[schema(
    as = ProxyResponse,
    examples(json!({
        "proxy_url": "socks5://user:pass@proxy-server:1080",
        "strategy": "least_connections",
        "ttl_seconds": 300,
        "fallback_policy": "direct_connection",
        "metadata": {"proxy_id": "proxy-123", "region": "us-east-1", "health_score": 0.98}
    }))
)]
pub struct ProxyResponseDoc {
    /// The proxy to use, with its credentials;
    /// `scheme://[user[:password]@]host:port`, scheme `http`, `https`,
    /// `socks4`, `socks4a`, `socks5` or `socks5h`, at most 512 bytes.
    /// `null`: connect directly.
    #[schema(
        min_length = 1,
        max_length = 512,
        pattern = "^(https?|socks4a?|socks5h?)://((?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}){1,42}(:(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}){0,42})?@)?[A-Za-z0-9_-]{1,63}(\\.[A-Za-z0-9_-]{1,62}){0,3}\\.?:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])/?$"
    )]
    pub proxy_url: Option<String>,
    /// The selection strategy used, e.g. `least_connections` (open-ended):
    /// ASCII letters, digits, `_`, `-`, `.`, at most 32 bytes.
    #[schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_.-]+$")]
    pub strategy: String,
    /// How long the answer may be cached, in seconds.
    #[schema(value_type = i64, minimum = 1, maximum = 86400)]
    pub ttl_seconds: u32,
    /// What to do when the service cannot answer next time.
    pub fallback_policy: FallbackPolicyDoc,
    /// About the chosen proxy.
    pub metadata: ResponseMetadataDoc,
}

/// About the proxy an answer names (`null` fields: no proxy).
#[derive(Debug, ToSchema)]
#[schema(as = ResponseMetadata)]
pub struct ResponseMetadataDoc {
    /// The service's id of the proxy: no control characters, at most 64 bytes.
    #[schema(schema_with = proxy_id_schema)]
    pub proxy_id: Option<String>,
    /// The proxy's region.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.-]+$")]
    pub region: Option<String>,
    /// The proxy's health score, 0 (dead) to 1 (perfect).
    #[schema(minimum = 0, maximum = 1)]
    pub health_score: Option<f32>,
}

/// One feedback event (see the `ProxyFeedback` schema, which adds the rule
/// that `success` or `event` must be given).
#[derive(Debug, ToSchema)]
#[schema(as = ProxyFeedback)]
pub struct ProxyFeedbackDoc {
    /// The service's id of the proxy (`metadata.proxy_id` of the answer),
    /// if known: no control characters, at most 64 bytes.
    #[schema(schema_with = proxy_id_schema)]
    pub proxy_id: Option<String>,
    /// The proxy, preferably without credentials (they are dropped on
    /// receipt); `null` for a direct connection. At most 512 bytes.
    #[schema(
        min_length = 1,
        max_length = 512,
        pattern = "^(https?|socks4a?|socks5h?)://((?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}){1,42}(:(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}){0,42})?@)?[A-Za-z0-9_-]{1,63}(\\.[A-Za-z0-9_-]{1,62}){0,3}\\.?:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])/?$"
    )]
    pub proxy_url: Option<String>,
    /// The exchange: ASCII letters, digits, `_`, `-`, `.`, at most 64 bytes.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.-]+$")]
    pub exchange_id: String,
    /// HTTP or WebSocket.
    pub connection_type: ConnectionTypeDoc,
    /// What happened; derived from `success` when absent.
    pub event: Option<FeedbackEventDoc>,
    /// Whether it went well; derived from `event` when absent.
    pub success: Option<bool>,
    /// How long connecting took, in milliseconds.
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub latency_ms: Option<u32>,
    /// Why it failed, when it did.
    pub error_category: Option<ErrorCategoryDoc>,
    /// Free-text details; text over 512 bytes is cut, never refused.
    pub error_details: Option<String>,
    /// When it happened: RFC 3339, e.g. `2024-09-23T10:30:00Z` (fractional
    /// seconds and numeric offsets accepted), years 0000–9999.
    #[schema(format = DateTime, min_length = 20, max_length = 40)]
    pub timestamp: String,
    /// Who reports: no control characters, at most 128 bytes.
    #[schema(schema_with = client_id_schema)]
    pub client_id: String,
}

/// The body of `POST /api/v1/proxy/feedback`: one event, or a non-empty
/// array of them (a batch is taken whole or refused whole).
#[derive(Debug)]
pub struct FeedbackBody;

impl PartialSchema for FeedbackBody {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(Ref::from_schema_name("ProxyFeedback"))
            .item(
                ArrayBuilder::new()
                    .items(Ref::from_schema_name("ProxyFeedback"))
                    .min_items(Some(1)),
            )
            .description(Some(
                "One feedback event, or a non-empty array of them. A batch is taken whole \
                 or refused whole; an error names the element as `[i]`.",
            ))
            .into()
    }
}

impl ToSchema for FeedbackBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("FeedbackBody")
    }
}

/// A message in postcard, the compact binary form of the JSON message.
#[derive(Debug)]
pub struct PostcardMessage;

impl PartialSchema for PostcardMessage {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .content_media_type(POSTCARD)
            .description(Some(
                "The message in postcard (serde's compact binary format), fields in the \
                 order of the JSON schema; for feedback, one or more messages back to back.",
            ))
            .into()
    }
}

impl ToSchema for PostcardMessage {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("PostcardMessage")
    }
}

/// The kind of exchange connection: `http` (alias `rest`) or `websocket`
/// (alias `ws`), matched without regard to case.
#[derive(Debug, ToSchema)]
#[schema(as = ConnectionType, rename_all = "snake_case")]
pub enum ConnectionTypeDoc {
    /// REST and other HTTP(S) requests.
    Http,
    /// WebSocket streams.
    Websocket,
    /// Alias of `http`.
    Rest,
    /// Alias of `websocket`.
    Ws,
}

/// What the client does when the service cannot give it a proxy:
/// `direct_connection`, `embedded_fallback` (the default) or `fail`.
#[derive(Debug, ToSchema)]
#[schema(as = FallbackPolicy, rename_all = "snake_case")]
pub enum FallbackPolicyDoc {
    /// Connect without a proxy.
    DirectConnection,
    /// Use the embedded configuration, then connect directly.
    EmbeddedFallback,
    /// Do not connect.
    Fail,
}

/// What happened on a connection (matched without regard to case).
#[derive(Debug, ToSchema)]
#[schema(as = FeedbackEvent, rename_all = "snake_case")]
pub enum FeedbackEventDoc {
    /// Started connecting through the proxy.
    ConnectStart,
    /// Connected.
    Success,
    /// Failed.
    Failure,
    /// Timed out.
    Timeout,
    /// An established connection ended.
    Disconnect,
}

/// Why a connection failed (matched without regard to case). Only some
/// categories count against the proxy.
#[derive(Debug, ToSchema)]
#[schema(as = ErrorCategory, rename_all = "snake_case")]
pub enum ErrorCategoryDoc {
    /// The proxy could not be reached.
    ProxyConnect,
    /// The proxy refused the credentials.
    ProxyAuth,
    /// The proxy refused the tunnel.
    TunnelRefused,
    /// TLS with the target failed.
    TargetTls,
    /// The target answered 5xx.
    #[schema(rename = "target_http_5xx")]
    TargetHttp5xx,
    /// The target refused the proxy's location (HTTP 451 and the like).
    GeoBlocked,
    /// The target rate-limited the proxy's address.
    RateLimited,
    /// A timeout.
    Timeout,
    /// Anything else.
    Other,
}

// ------------------------------------------------------- the error answers

/// An error answer: `description`, the `ErrorBody` JSON, and `headers`.
fn error_response(description: &str, headers: &[(&str, &str, Type)]) -> Response {
    let mut b = ResponseBuilder::new().description(description).content(
        JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
    for (name, text, ty) in headers {
        b = b.header(
            *name,
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(ty.clone()))
                .description(Some(*text))
                .build(),
        );
    }
    b.build()
}

macro_rules! error_responses {
    ($( $(#[$doc:meta])* $name:ident => $description:literal $([$($h:expr),*])? ;)+) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (
                    stringify!($name),
                    error_response($description, &[$($($h),*)?]).into(),
                )
            }
        }
    )+};
}

error_responses! {
    /// 400.
    BadRequest => "`malformed_body` (routes with a body): the body is not well-formed (JSON \
        with a syntax error, named with its line and column; nesting deeper than 16; postcard \
        that does not decode; gzip that does not inflate, of more than 16 members, or with \
        bytes after its last member that are not a gzip member). `malformed_request` (any \
        route): the request line or a header is not valid HTTP/1.1 (a `Content-Length` that \
        is not one number, a control character in a header, ...); the connection is closed.";
    /// 401.
    Unauthorized => "`unauthorized`: credentials are missing (on a route that needs them) \
        or unknown."
        [("WWW-Authenticate", "`Bearer realm=\"proxy-delegate\"`.", Type::String)];
    /// 403.
    Forbidden => "`forbidden`: the client is known but lacks the scope this route needs.";
    /// 404.
    NotFound => "`not_found`: no such route.";
    /// 405.
    MethodNotAllowed => "`method_not_allowed`: the route does not take this method."
        [("Allow", "The methods the route takes.", Type::String)];
    /// 406.
    NotAcceptable => "`not_acceptable`: `Accept` refuses both `application/json` and \
        `application/x-postcard` (`q=0`, or `*/*;q=0` with neither named).";
    /// 408.
    RequestTimeout => "`request_timeout`: the body did not arrive within 10 s.";
    /// 413.
    PayloadTooLarge => "`payload_too_large`: the body is over 65536 bytes (before or after \
        gzip), or one message is over 16384 bytes.";
    /// 415.
    UnsupportedMediaType => "`unsupported_media_type`: `Content-Type` is missing or not \
        `application/json` / `application/x-postcard`, or `Content-Encoding` is not gzip \
        (or not visible ASCII).";
    /// 422.
    UnprocessableEntity => "`invalid_field`: well-formed, but a field is missing, of the \
        wrong JSON type, or invalid; the message names it (its path, and the batch element, \
        `[i]`) but never quotes its value, e.g. `exchange_id: required field is missing` or \
        `metadata.symbols[1]: invalid type: integer, expected a string at line 1 column 179`.";
    /// 429.
    TooManyRequests => "`rate_limited`: the client is over its rate limit."
        [("Retry-After", "Seconds to wait before retrying (at least 1).", Type::Integer)];
    /// 431.
    HeadersTooLarge => "`headers_too_large`: the request line and headers are over 32768 \
        bytes, or hold more than 100 header fields; the connection is closed. (A request \
        target too long for the service is 431 too, never 414.)";
    /// 500.
    InternalError => "`internal`: a fault of the service; the detail is in its log.";
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proxy_delegate_core::codec;
    use proxy_delegate_core::model::{self as m, ProxyFeedback, ProxyRequest, ProxyResponse};
    use serde_json::Value;

    use super::*;

    /// The published example bodies (the root crate's fixtures).
    const REQUEST_JSON: &str = r#"{"exchange_id":"binance","connection_type":"websocket","region":"us-east-1","client_id":"cryptofeed-instance-123","metadata":{"feed_types":["trades","book"],"symbols":["BTC-USD","ETH-USD"]}}"#;
    const RESPONSE_JSON: &str = r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","strategy":"least_connections","ttl_seconds":300,"fallback_policy":"direct_connection","metadata":{"proxy_id":"proxy-123","region":"us-east-1","health_score":0.98}}"#;
    const FEEDBACK_JSON: &str = r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","exchange_id":"binance","connection_type":"websocket","success":true,"latency_ms":45,"error_details":null,"timestamp":"2024-09-23T10:30:00Z","client_id":"cryptofeed-instance-123"}"#;

    fn document() -> Value {
        serde_json::from_str(&document_json()).unwrap()
    }

    fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
        let s = &doc["components"]["schemas"][name];
        assert!(s.is_object(), "no schema {name}");
        s
    }

    /// The object of a schema, through the `allOf` the feedback uses.
    fn object<'a>(doc: &'a Value, name: &str) -> &'a Value {
        let s = schema(doc, name);
        s.get("allOf").map_or(s, |all| &all[0])
    }

    fn properties(doc: &Value, name: &str) -> BTreeSet<String> {
        object(doc, name)["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has no properties"))
            .keys()
            .cloned()
            .collect()
    }

    fn required(doc: &Value, name: &str) -> BTreeSet<String> {
        object(doc, name)["required"]
            .as_array()
            .map(|r| r.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }

    fn keys(v: &Value) -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    /// What the core's JSON encoder writes for `msg`, as a JSON value.
    fn encoded<M: codec::Message>(msg: &M) -> Value {
        let mut buf = [0u8; 4096];
        let n = codec::json::encode(msg, &mut buf).unwrap();
        serde_json::from_slice(&buf[..n]).unwrap()
    }

    fn full_request() -> ProxyRequest {
        let r: ProxyRequest = codec::json::decode(REQUEST_JSON.as_bytes()).unwrap();
        assert!(r.region.is_some() && !r.metadata.feed_types.is_empty());
        r
    }

    fn full_response() -> ProxyResponse {
        codec::json::decode(RESPONSE_JSON.as_bytes()).unwrap()
    }

    fn full_feedback() -> ProxyFeedback {
        let mut f: ProxyFeedback = codec::json::decode(FEEDBACK_JSON.as_bytes()).unwrap();
        f.proxy_id = Some("proxy-123".parse().unwrap());
        f.error_category = Some(m::ErrorCategory::Timeout);
        f.error_details = Some(m::ErrorDetails::new("connect timed out"));
        f.event = m::FeedbackEvent::Timeout;
        f
    }

    #[test]
    fn mirror_fields_are_what_the_core_writes() {
        let doc = document();
        let req = encoded(&full_request());
        assert_eq!(properties(&doc, "ProxyRequest"), keys(&req));
        assert_eq!(properties(&doc, "RequestMetadata"), keys(&req["metadata"]));
        let resp = encoded(&full_response());
        assert_eq!(properties(&doc, "ProxyResponse"), keys(&resp));
        assert_eq!(
            properties(&doc, "ResponseMetadata"),
            keys(&resp["metadata"])
        );
        let fb = encoded(&full_feedback());
        // Every field is populated, so every field the encoder knows is here.
        assert!(fb.as_object().unwrap().values().all(|v| !v.is_null()));
        assert_eq!(properties(&doc, "ProxyFeedback"), keys(&fb));
    }

    #[test]
    fn required_fields_are_the_ones_the_core_requires() {
        let doc = document();
        for (name, body) in [
            ("ProxyRequest", REQUEST_JSON),
            ("ProxyFeedback", FEEDBACK_JSON),
        ] {
            let full: Value = serde_json::from_str(body).unwrap();
            for field in keys(&full) {
                if name == "ProxyFeedback" && field == "success" {
                    // Required only without `event`: checked below.
                    continue;
                }
                let mut without = full.clone();
                without.as_object_mut().unwrap().remove(&field);
                let text = serde_json::to_vec(&without).unwrap();
                let refused = if name == "ProxyRequest" {
                    codec::json::decode::<ProxyRequest>(&text).is_err()
                } else {
                    codec::json::decode::<ProxyFeedback>(&text).is_err()
                };
                assert_eq!(
                    refused,
                    required(&doc, name).contains(&field),
                    "{name}.{field}: the core and the schema disagree on whether it is required"
                );
            }
        }
        // `success` is required only without `event`: the anyOf says so.
        let any_of = &schema(&doc, "ProxyFeedback")["allOf"][1]["anyOf"];
        let alternatives: BTreeSet<_> = any_of
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["required"][0].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(alternatives, ["event", "success"].map(String::from).into());
        let mut no_success: Value = serde_json::from_str(FEEDBACK_JSON).unwrap();
        no_success.as_object_mut().unwrap().remove("success");
        let text = serde_json::to_vec(&no_success).unwrap();
        assert!(codec::json::decode::<ProxyFeedback>(&text).is_err());
        no_success["event"] = "success".into();
        let text = serde_json::to_vec(&no_success).unwrap();
        assert!(codec::json::decode::<ProxyFeedback>(&text).is_ok());
        // The response's required fields are the ones the core requires.
        let resp = required(&doc, "ProxyResponse");
        for field in ["strategy", "ttl_seconds"] {
            assert!(resp.contains(field), "{field}");
        }
    }

    #[test]
    fn bounds_are_the_cores() {
        let doc = document();
        let max = |name: &str, field: &str| {
            object(&doc, name)["properties"][field]["maxLength"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}.{field} has no maxLength")) as usize
        };
        // Printable text: the byte bound, split by the widest character.
        let printable_max = |s: &Value| -> usize {
            let any = s["anyOf"].as_array().expect("printable text is an anyOf");
            let max = |i: usize| any[i]["maxLength"].as_u64().unwrap() as usize;
            let bytes = max(0);
            assert_eq!(
                (max(1), max(2), max(3)),
                (bytes / 2, bytes / 3, bytes / 4),
                "{s}"
            );
            assert_eq!(any[3]["pattern"], PRINTABLE_PATTERN);
            bytes
        };
        let field = |name: &str, field: &str| object(&doc, name)["properties"][field].clone();
        assert_eq!(max("ProxyRequest", "exchange_id"), m::MAX_EXCHANGE_ID_LEN);
        assert_eq!(max("ProxyRequest", "region"), m::MAX_REGION_LEN);
        assert_eq!(
            printable_max(&field("ProxyRequest", "client_id")),
            m::MAX_CLIENT_ID_LEN
        );
        assert_eq!(max("ProxyResponse", "proxy_url"), m::MAX_URL_LEN);
        assert_eq!(max("ProxyResponse", "strategy"), m::MAX_STRATEGY_LEN);
        assert_eq!(
            printable_max(&field("ResponseMetadata", "proxy_id")),
            m::MAX_PROXY_ID_LEN
        );
        assert_eq!(max("ResponseMetadata", "region"), m::MAX_REGION_LEN);
        assert_eq!(
            printable_max(&field("ProxyFeedback", "proxy_id")),
            m::MAX_PROXY_ID_LEN
        );
        assert_eq!(max("ProxyFeedback", "proxy_url"), m::MAX_URL_LEN);
        assert_eq!(max("ProxyFeedback", "exchange_id"), m::MAX_EXCHANGE_ID_LEN);
        assert_eq!(
            printable_max(&field("ProxyFeedback", "client_id")),
            m::MAX_CLIENT_ID_LEN
        );
        assert_eq!(max("ProxyFeedback", "timestamp"), m::MAX_TIMESTAMP_LEN);
        assert_eq!(printable_max(schema(&doc, "Topic")), m::MAX_TOPIC_LEN);
        let meta = &object(&doc, "RequestMetadata")["properties"];
        assert_eq!(
            meta["feed_types"]["maxItems"].as_u64(),
            Some(m::MAX_FEED_TYPES as u64)
        );
        assert_eq!(
            meta["symbols"]["maxItems"].as_u64(),
            Some(m::MAX_SYMBOLS as u64)
        );
        let ttl = &object(&doc, "ProxyResponse")["properties"]["ttl_seconds"];
        assert_eq!(ttl["minimum"].as_u64(), Some(u64::from(m::TtlSeconds::MIN)));
        assert_eq!(ttl["maximum"].as_u64(), Some(u64::from(m::TtlSeconds::MAX)));
        let latency = &object(&doc, "ProxyFeedback")["properties"]["latency_ms"];
        assert_eq!(latency["maximum"].as_u64(), Some(u64::from(u32::MAX)));
        // The patterns are the module's constants.
        let p = |name: &str, field: &str| {
            object(&doc, name)["properties"][field]["pattern"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(p("ProxyRequest", "exchange_id"), IDENTIFIER_PATTERN);
        assert_eq!(p("ProxyFeedback", "exchange_id"), IDENTIFIER_PATTERN);
        assert_eq!(p("ProxyRequest", "region"), IDENTIFIER_PATTERN);
        assert_eq!(p("ProxyResponse", "strategy"), IDENTIFIER_PATTERN);
        assert_eq!(p("ProxyResponse", "proxy_url"), PROXY_URL_PATTERN);
        assert_eq!(p("ProxyFeedback", "proxy_url"), PROXY_URL_PATTERN);
    }

    #[test]
    fn enums_are_the_cores_spellings() {
        let doc = document();
        let values = |name: &str| -> BTreeSet<String> {
            schema(&doc, name)["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        let spell = |all: &[&str]| all.iter().map(|s| (*s).to_owned()).collect();
        let core: BTreeSet<String> = m::ConnectionType::ALL
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        let doc_ct = values("ConnectionType");
        assert!(core.is_subset(&doc_ct));
        for alias in doc_ct.difference(&core) {
            assert!(m::ConnectionType::parse(alias).is_ok(), "{alias}");
        }
        assert_eq!(
            values("FallbackPolicy"),
            spell(
                &m::FallbackPolicy::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
            )
        );
        assert_eq!(
            values("FeedbackEvent"),
            spell(
                &m::FeedbackEvent::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
            )
        );
        assert_eq!(
            values("ErrorCategory"),
            spell(
                &m::ErrorCategory::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
            )
        );
    }

    #[test]
    fn published_examples_are_the_fixtures_and_fit_the_schemas() {
        let doc = document();
        for (name, body) in [
            ("ProxyRequest", REQUEST_JSON),
            ("ProxyResponse", RESPONSE_JSON),
            ("ProxyFeedback", FEEDBACK_JSON),
        ] {
            let fixture: Value = serde_json::from_str(body).unwrap();
            assert_eq!(schema(&doc, name)["examples"][0], fixture, "{name}");
            // Every field of the example is a property, and every required
            // property is in the example.
            assert!(keys(&fixture).is_subset(&properties(&doc, name)), "{name}");
            assert!(required(&doc, name).is_subset(&keys(&fixture)), "{name}");
        }
        // And the core takes them.
        assert!(codec::json::decode::<ProxyRequest>(REQUEST_JSON.as_bytes()).is_ok());
        assert!(codec::json::decode::<ProxyResponse>(RESPONSE_JSON.as_bytes()).is_ok());
        assert!(codec::json::decode::<ProxyFeedback>(FEEDBACK_JSON.as_bytes()).is_ok());
    }

    #[test]
    fn every_error_status_has_the_error_body() {
        let doc = document();
        let responses = doc["components"]["responses"].as_object().unwrap();
        assert_eq!(responses.len(), 13);
        for (name, r) in responses {
            assert_eq!(
                r["content"][JSON]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                "{name}"
            );
        }
        assert!(
            responses["TooManyRequests"]["headers"]["Retry-After"].is_object(),
            "429 names Retry-After"
        );
        assert!(responses["MethodNotAllowed"]["headers"]["Allow"].is_object());
        let schemes = keys(&doc["components"]["securitySchemes"]);
        assert_eq!(
            schemes,
            ["api_key", "bearer", "mutual_tls"].map(String::from).into()
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["mutual_tls"]["type"],
            "mutualTLS"
        );
    }

    /// `(path, method, operation)` of every operation.
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
        out
    }

    #[test]
    fn every_operation_takes_and_echoes_the_correlation_id() {
        assert!(
            CORRELATION_HEADER
                .eq_ignore_ascii_case(proxy_delegate_core::contract::CORRELATION_HEADER)
        );
        let doc = document();
        let echoed = |r: &Value| {
            let header = &r["headers"][CORRELATION_HEADER];
            assert_eq!(header["schema"]["pattern"], "^[0-9A-Fa-f]{16}$", "{r}");
        };
        for (path, method, op) in operations(&doc) {
            let params = op["parameters"].as_array().unwrap();
            let p = params
                .iter()
                .find(|p| p["name"] == CORRELATION_HEADER)
                .unwrap_or_else(|| panic!("{method} {path} has no {CORRELATION_HEADER}"));
            assert_eq!(p["in"], "header");
            assert_eq!(p["required"], false);
            // Any text: a value of another shape is ignored, not refused.
            assert_eq!(p["schema"], serde_json::json!({"type": "string"}));
            for (status, r) in op["responses"].as_object().unwrap() {
                if r.get("$ref").is_none() {
                    echoed(r);
                }
                let _ = status;
            }
            // Before routing, any request can be 400 or 431.
            for status in ["400", "431"] {
                assert!(
                    op["responses"][status].is_object(),
                    "{method} {path} {status}"
                );
            }
        }
        for r in doc["components"]["responses"].as_object().unwrap().values() {
            echoed(r);
        }
    }

    fn served(toml: &str) -> Value {
        let config = ServiceConfig::parse(toml, false).unwrap();
        serde_json::from_str(&document_json_for(&config)).unwrap()
    }

    const PROXY: &str = "[[proxies]]\nid = \"p\"\nurl = \"socks5://192.0.2.1:1080\"\n";

    #[test]
    fn served_document_follows_the_configuration() {
        // No clients: no security anywhere, no 401 or 403, no schemes.
        let doc =
            serde_json::from_str::<Value>(&document_json_for(&ServiceConfig::embedded_default()))
                .unwrap();
        for (path, method, op) in operations(&doc) {
            assert!(op.get("security").is_none(), "{method} {path}: {op}");
            for status in ["401", "403"] {
                assert!(
                    op["responses"].get(status).is_none(),
                    "{method} {path} {status}"
                );
            }
        }
        assert!(doc["components"].get("securitySchemes").is_none());
        let responses = doc["components"]["responses"].as_object().unwrap();
        assert!(!responses.contains_key("Unauthorized") && !responses.contains_key("Forbidden"));
        // The embedded default keeps its rate limit, per address.
        assert!(doc["paths"]["/api/v1/proxy/request"]["post"]["responses"]["429"].is_object());
        assert!(
            doc["paths"]["/health"]["get"]["responses"]
                .get("429")
                .is_none()
        );
        assert!(
            doc["info"]["description"]
                .as_str()
                .unwrap()
                .contains("Authentication is off")
        );

        // Clients, /health behind auth, /metrics open, no rate limit, no mutual TLS.
        let doc = served(&format!(
            "[auth]\nhealth = true\n[rate_limit]\nenabled = false\n\
             [[clients]]\nname = \"c\"\nbearer_tokens = [\"t\"]\n{PROXY}"
        ));
        let security = |path: &str, method: &str| doc["paths"][path][method]["security"].clone();
        let both = serde_json::json!([{"bearer": []}, {"api_key": []}]);
        for (path, method) in [
            ("/api/v1/proxy/request", "post"),
            ("/api/v1/proxy/feedback", "post"),
            ("/api/v1/proxies", "get"),
            ("/", "get"),
            ("/health", "get"),
        ] {
            assert_eq!(security(path, method), both, "{method} {path}");
            assert!(doc["paths"][path][method]["responses"]["401"].is_object());
            assert!(doc["paths"][path][method]["responses"].get("429").is_none());
        }
        for path in ["/metrics", "/openapi.json"] {
            assert!(security(path, "get").is_null(), "{path}");
            assert!(doc["paths"][path]["get"]["responses"].get("401").is_none());
        }
        let schemes = keys(&doc["components"]["securitySchemes"]);
        assert_eq!(schemes, ["api_key", "bearer"].map(String::from).into());
        assert!(
            doc["components"]["responses"]
                .get("TooManyRequests")
                .is_none()
        );
    }
}
