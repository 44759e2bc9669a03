//! The request path of the two API routes, callable without a server: the
//! entry point of the fuzz target `service_request` (see `docs/fuzzing.md`).
//! Not part of the supported API: it may change with the fuzz targets.
//!
//! [`decode_request_body`] runs exactly the code the handlers of
//! `POST /api/v1/proxy/request` and `POST /api/v1/proxy/feedback` run before
//! they touch the pool — `Content-Type`, `Accept`, the body limit,
//! `Content-Encoding` (gzip, its member cap), decoding and validation — and
//! turns a rejection into the response the handlers send (status, headers,
//! JSON error body).

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use proxy_delegate_core::model::{ProxyFeedback, ProxyRequest};

/// Which route's request path to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /api/v1/proxy/request`: one request message.
    Request,
    /// `POST /api/v1/proxy/feedback`: one feedback event or a batch.
    Feedback,
}

/// What the route decoded: what its handler would hand to the pool.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// The request, and the media type the answer would be written in.
    Request {
        /// The validated request (boxed: it is large).
        request: Box<ProxyRequest>,
        /// `application/json` or `application/x-postcard`, as `Accept` decides.
        answer: &'static str,
    },
    /// The validated events, in order.
    Feedback(Vec<ProxyFeedback>),
}

/// A refused request, as the handler answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status.
    pub status: u16,
    /// The answer's `Content-Type`, if it has one.
    pub content_type: Option<String>,
    /// The answer's body (the JSON error body).
    pub body: Vec<u8>,
}

/// Runs `route`'s request path on `headers` (name and value; several with
/// the same name are several header lines) and `body`, as the handler does
/// before it asks the pool. A header whose name or value HTTP does not allow
/// is left out: hyper refuses such a request before any handler sees it.
///
/// Runs on a current-thread tokio runtime of its own, made at the first
/// call (gzip bodies are inflated on its blocking pool, as in the service).
pub fn decode_request_body(
    route: Route,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Result<Decoded, Rejection> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    let body = Body::from(body.to_vec());
    runtime().block_on(async {
        let result = match route {
            Route::Request => {
                crate::app::read_proxy_request(&map, body)
                    .await
                    .map(|(request, wire)| Decoded::Request {
                        request: Box::new(request),
                        answer: wire.media(),
                    })
            }
            Route::Feedback => crate::app::read_feedback(&map, body)
                .await
                .map(Decoded::Feedback),
        };
        match result {
            Ok(decoded) => Ok(decoded),
            Err(e) => {
                let response = e.into_response();
                let status = response.status().as_u16();
                let content_type = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                Err(Rejection {
                    status,
                    content_type,
                    body,
                })
            }
        }
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread tokio runtime")
    })
}
