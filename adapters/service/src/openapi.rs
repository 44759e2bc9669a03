//! The OpenAPI document of the service, generated from the code.

use utoipa::OpenApi;

/// The OpenAPI description of every route, status and content type.
#[derive(Debug, OpenApi)]
#[openapi(info(title = "proxy-delegate service"))]
pub struct ApiDoc;

/// The document as pretty-printed JSON (what `GET /openapi.json` serves and
/// `docs/openapi.json` holds).
pub fn document_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
