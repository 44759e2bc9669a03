//! Every rejection the service makes: a status and a JSON body
//! `{"error": {"code", "message"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// What was wrong and where, for a person. Never holds a secret.
    #[schema(example = "exchange_id: required field is missing")]
    pub message: String,
}

/// The machine-readable code of an error, one per kind of rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: the body is not well-formed JSON, postcard or gzip.
    MalformedBody,
    /// 401: no credentials, or unknown ones.
    Unauthorized,
    /// 403: a known client without the route's scope.
    Forbidden,
    /// 404: no such route.
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 408: the body did not arrive in time.
    RequestTimeout,
    /// 413: the body is over 64 KiB, before or after inflating.
    PayloadTooLarge,
    /// 415: a content type or encoding the route does not take.
    UnsupportedMediaType,
    /// 422: well-formed, but a field is missing, of the wrong JSON type, or
    /// invalid; the message names the field, never its value.
    InvalidField,
    /// 429: over the client's rate limit.
    RateLimited,
    /// 500: a fault of the service.
    Internal,
}

impl ErrorCode {
    /// The wire spelling, e.g. `invalid_field`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedBody => "malformed_body",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
        }
    }
}

/// At most 64 characters of `s`, marked with `…` when cut: how a message
/// quotes what the client sent (a path, a header) without growing with it.
pub(crate) fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// A rejection: the status, the code and the message.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// Machine-readable code.
    pub(crate) code: ErrorCode,
    /// Human-readable message.
    pub(crate) message: String,
    /// Seconds to wait, for 429 and 503 (`Retry-After`).
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub(crate) fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the body is not well-formed.
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::MalformedBody, message)
    }

    /// 422: well-formed, but a field is invalid.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidField,
            message,
        )
    }

    /// 401: no credentials, or unknown ones.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    /// 403: a known client without the scope for this route.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    /// 404: no such route.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// 405: the route exists, the method does not.
    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            message,
        )
    }

    /// 413: the body is over the limit.
    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            message,
        )
    }

    /// 415: a content type or encoding the route does not take.
    pub(crate) fn unsupported_media(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            message,
        )
    }

    /// 429: the client is over its rate limit.
    pub(crate) fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "too many requests from this client; retry after the Retry-After delay",
            )
        }
    }

    /// 500: a fault of the service; the message is generic, the detail is logged.
    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; see the service log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"proxy-delegate\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_wire_spelling() {
        let all = [
            ErrorCode::MalformedBody,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::RequestTimeout,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::InvalidField,
            ErrorCode::RateLimited,
            ErrorCode::Internal,
        ];
        for code in all {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str(), "{code:?}");
        }
        let body = serde_json::to_value(ErrorBody {
            error: ErrorDetail {
                code: ErrorCode::InvalidField,
                message: "exchange_id: required field is missing".into(),
            },
        })
        .unwrap();
        assert_eq!(body["error"]["code"], "invalid_field");
    }
}
