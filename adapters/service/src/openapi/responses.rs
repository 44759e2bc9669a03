//! The error answers: one reusable response per status, each with the
//! [`ErrorBody`](crate::ErrorBody) JSON schema and the headers it carries.

use utoipa::ToResponse;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};

use crate::body::JSON;

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
    use super::super::test_support::{document, keys};
    use super::*;

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
}
