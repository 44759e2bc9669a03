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
//!   field, with the core's bounds. The unit tests of `messages.rs` compare their field
//!   names with what the core's JSON encoder writes, and their bounds with
//!   the core's `MAX_*` constants, so the two cannot drift apart unnoticed;
//! * the error answers, one reusable response per status, each with the
//!   [`ErrorBody`](crate::ErrorBody) JSON schema, and each operation's list
//!   of them, all made from [`ErrorCode`](crate::ErrorCode) (its codes and
//!   their statuses) and from what each route does;
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
//!
//! Where each part lives:
//!
//! * this file: [`ApiDoc`] (routes, schemas, responses, tags),
//!   [`document_json`], [`document_json_for`] and the description;
//! * `openapi/text.rs`: the text patterns ([`IDENTIFIER_PATTERN`],
//!   [`PRINTABLE_PATTERN`], [`PROXY_URL_PATTERN`]) and [`printable`];
//! * `openapi/messages.rs`: the mirrors of the wire messages
//!   ([`ProxyRequestDoc`], [`ProxyResponseDoc`], [`ProxyFeedbackDoc`],
//!   [`FeedbackBody`], [`PostcardMessage`], the enums);
//! * `openapi/responses.rs`: the error answers, the list of error codes in
//!   the description, and what the document says of each code;
//! * `openapi/finish.rs`: what the derive cannot spell (security schemes,
//!   the error answers of each operation, the correlation header, the
//!   feedback's "`success` or `event`" rule);
//! * `openapi/tailor.rs`: the document of one running configuration.

use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};

use crate::ServiceConfig;

mod finish;
mod messages;
mod responses;
mod tailor;
#[cfg(test)]
mod test_support;
mod text;

use finish::Finish;
pub use messages::{
    ConnectionTypeDoc, ErrorCategoryDoc, FallbackPolicyDoc, FeedbackBody, FeedbackEventDoc,
    PostcardMessage, ProxyFeedbackDoc, ProxyRequestDoc, ProxyResponseDoc, RequestMetadataDoc,
    ResponseMetadataDoc, Topic,
};
use tailor::tailor;
pub use text::{IDENTIFIER_PATTERN, PRINTABLE_PATTERN, PROXY_URL_PATTERN, printable};

/// The correlation header as the document spells it
/// (`contract::CORRELATION_HEADER`, in the usual case).
const CORRELATION_HEADER: &str = "X-Correlation-Id";

/// The OpenMetrics media type `GET /metrics` answers with.
pub use crate::metrics::CONTENT_TYPE as OPENMETRICS;

/// The API's description, up to its list of error codes.
const DESCRIPTION_HEAD: &str = "\
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
(schema `ErrorBody`): ";

/// The API's description, after its list of error codes.
const DESCRIPTION_TAIL: &str = "\
. The 400 `malformed_request` and the 431 close the connection and \
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

/// The API's description: [`DESCRIPTION_HEAD`], the list of error codes
/// with their statuses, [`DESCRIPTION_TAIL`].
fn description() -> String {
    format!(
        "{DESCRIPTION_HEAD}{}{DESCRIPTION_TAIL}",
        responses::summary()
    )
}

/// The OpenAPI description of every route, status and content type.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "proxy-delegate service", description = description()),
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
