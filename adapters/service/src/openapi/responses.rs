//! The error answers, made from [`ErrorCode::ALL`] and
//! [`ErrorCode::status`]: one reusable response per status, each with the
//! [`ErrorBody`](crate::ErrorBody) JSON schema and the headers it carries
//! ([`error_responses`]); the list of codes in the document's description
//! ([`summary`]); and the reference each operation gives to the response of
//! a code ([`reference`]). What the document says of each code is in
//! [`doc`], a `match` that a new code cannot miss.

use std::collections::BTreeMap;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};

use crate::ErrorCode;
use crate::body::JSON;

/// What the document says of one error code.
struct CodeDoc {
    /// The name of its status's response, e.g. `BadRequest`: the codes of
    /// one status share it.
    component: &'static str,
    /// What the response's description says of it, after the code.
    detail: &'static str,
    /// What the list of codes in the API's description says of it, after
    /// the code (empty: nothing).
    note: &'static str,
    /// The headers its answers carry: name, description and type.
    headers: &'static [(&'static str, &'static str, Type)],
}

/// What the document says of `code`.
const fn doc(code: ErrorCode) -> CodeDoc {
    const fn plain(component: &'static str, detail: &'static str) -> CodeDoc {
        CodeDoc {
            component,
            detail,
            note: "",
            headers: &[],
        }
    }
    match code {
        ErrorCode::MalformedBody => plain(
            "BadRequest",
            " (routes with a body): the body is not well-formed (JSON with a syntax error, \
             named with its line and column; nesting deeper than 16; postcard that does not \
             decode; gzip that does not inflate, of more than 16 members, or with bytes after \
             its last member that are not a gzip member).",
        ),
        ErrorCode::MalformedRequest => CodeDoc {
            note: " (a request line or header that is not valid HTTP/1.1)",
            ..plain(
                "BadRequest",
                " (any route): the request line or a header is not valid HTTP/1.1 (a \
                 `Content-Length` that is not one number, a control character in a header, \
                 ...); the connection is closed.",
            )
        },
        ErrorCode::Unauthorized => CodeDoc {
            note: " (with `WWW-Authenticate`)",
            headers: &[(
                "WWW-Authenticate",
                "`Bearer realm=\"proxy-delegate\"`.",
                Type::String,
            )],
            ..plain(
                "Unauthorized",
                ": credentials are missing (on a route that needs them) or unknown.",
            )
        },
        ErrorCode::Forbidden => plain(
            "Forbidden",
            ": the client is known but lacks the scope this route needs.",
        ),
        ErrorCode::NotFound => CodeDoc {
            note: " (any path not listed here)",
            ..plain("NotFound", ": no such route.")
        },
        ErrorCode::MethodNotAllowed => CodeDoc {
            note: " (with `Allow`)",
            headers: &[("Allow", "The methods the route takes.", Type::String)],
            ..plain("MethodNotAllowed", ": the route does not take this method.")
        },
        ErrorCode::NotAcceptable => plain(
            "NotAcceptable",
            ": `Accept` refuses both `application/json` and `application/x-postcard` (`q=0`, \
             or `*/*;q=0` with neither named).",
        ),
        ErrorCode::RequestTimeout => {
            plain("RequestTimeout", ": the body did not arrive within 10 s.")
        }
        ErrorCode::PayloadTooLarge => plain(
            "PayloadTooLarge",
            ": the body is over 65536 bytes (before or after gzip), or one message is over \
             16384 bytes.",
        ),
        ErrorCode::UnsupportedMediaType => plain(
            "UnsupportedMediaType",
            ": `Content-Type` is missing or not `application/json` / \
             `application/x-postcard`, or `Content-Encoding` is not gzip (or not visible \
             ASCII).",
        ),
        ErrorCode::InvalidField => CodeDoc {
            note: " (the message names the field, and the batch element as `[i]`, never its \
                   value)",
            ..plain(
                "UnprocessableEntity",
                ": well-formed, but a field is missing, of the wrong JSON type, or invalid; \
                 the message names it (its path, and the batch element, `[i]`) but never \
                 quotes its value, e.g. `exchange_id: required field is missing` or \
                 `metadata.symbols[1]: invalid type: integer, expected a string at line 1 \
                 column 179`.",
            )
        },
        ErrorCode::RateLimited => CodeDoc {
            note: " (with `Retry-After`)",
            headers: &[(
                "Retry-After",
                "Seconds to wait before retrying (at least 1).",
                Type::Integer,
            )],
            ..plain("TooManyRequests", ": the client is over its rate limit.")
        },
        ErrorCode::HeadersTooLarge => CodeDoc {
            note: " (request line and headers over 32768 bytes, or over 100 header fields)",
            ..plain(
                "HeadersTooLarge",
                ": the request line and headers are over 32768 bytes, or hold more than 100 \
                 header fields; the connection is closed. (A request target too long for the \
                 service is 431 too, never 414.)",
            )
        },
        ErrorCode::Internal => plain(
            "InternalError",
            ": a fault of the service; the detail is in its log.",
        ),
    }
}

/// The codes of each status, statuses in the order of [`ErrorCode::ALL`].
fn by_status() -> Vec<Vec<ErrorCode>> {
    let mut groups: Vec<Vec<ErrorCode>> = Vec::new();
    for &code in ErrorCode::ALL {
        match groups.iter_mut().find(|g| g[0].status() == code.status()) {
            Some(group) => group.push(code),
            None => groups.push(vec![code]),
        }
    }
    groups
}

/// The reference to the response of `code`'s status.
pub(super) fn reference(code: ErrorCode) -> RefOr<Response> {
    Ref::from_response_name(doc(code).component).into()
}

/// The response of every status of [`ErrorCode::ALL`], by name: its
/// description says what each of its codes means, and it carries the
/// `ErrorBody` JSON and the headers of its codes.
pub(super) fn error_responses() -> BTreeMap<String, RefOr<Response>> {
    let mut out = BTreeMap::new();
    for codes in by_status() {
        let description = codes
            .iter()
            .map(|&c| format!("`{}`{}", c.as_str(), doc(c).detail))
            .collect::<Vec<_>>()
            .join(" ");
        let mut b = ResponseBuilder::new().description(description).content(
            JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        );
        for (name, text, ty) in codes.iter().flat_map(|&c| doc(c).headers) {
            b = b.header(
                *name,
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(ty.clone()))
                    .description(Some(*text))
                    .build(),
            );
        }
        out.insert(doc(codes[0]).component.to_owned(), b.build().into());
    }
    out
}

/// The list of codes in the API's description: `400 `malformed_body` or
/// `malformed_request` (...), 401 `unauthorized` (...), ..., 500 `internal``.
pub(super) fn summary() -> String {
    by_status()
        .iter()
        .map(|codes| {
            let named = codes
                .iter()
                .map(|&c| format!("`{}`{}", c.as_str(), doc(c).note))
                .collect::<Vec<_>>()
                .join(" or ");
            format!("{} {named}", codes[0].status().as_u16())
        })
        .collect::<Vec<_>>()
        .join(", ")
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

    #[test]
    fn error_answers_are_made_from_every_code() {
        let doc = document();
        // `ErrorCode::ALL` holds every code the schema (derived from the
        // enum itself) lists, once each.
        let listed: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(all, listed);
        // One response per status, named alike by every code of it, and
        // describing each of them.
        let responses = doc["components"]["responses"].as_object().unwrap();
        let mut statuses = std::collections::BTreeSet::new();
        for &code in ErrorCode::ALL {
            statuses.insert(code.status());
            let name = super::doc(code).component;
            for &other in ErrorCode::ALL {
                let same = super::doc(other).component == name;
                assert_eq!(same, other.status() == code.status(), "{code:?} {other:?}");
            }
            let description = responses[name]["description"].as_str().unwrap();
            assert!(
                description.contains(&format!("`{}`", code.as_str())),
                "{name}: {description}"
            );
        }
        assert_eq!(responses.len(), statuses.len());
        // The API's description lists every code with its status.
        let text = doc["info"]["description"].as_str().unwrap();
        assert!(text.contains(&summary()), "{text}");
        for &code in ErrorCode::ALL {
            assert!(
                text.contains(&format!("{} `{}`", code.status().as_u16(), code.as_str()))
                    || text.contains(&format!(" or `{}`", code.as_str())),
                "{code:?}"
            );
        }
    }
}
