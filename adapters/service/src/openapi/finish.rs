//! What the derive cannot spell: the security schemes, the error answers
//! (one response per status, and each operation's list of them, made from
//! [`ErrorCode`] and from what each route does), the `X-Correlation-Id`
//! header every route takes and echoes, and the feedback's "`success` or
//! `event`" rule.

use utoipa::Modify;
use utoipa::openapi::Required;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Schema};

use super::{CORRELATION_HEADER, operations_mut, responses};
use crate::ErrorCode;

/// What the derive cannot spell: the security schemes, the error answers,
/// the correlation header and the feedback's "`success` or `event`" rule.
pub(super) struct Finish;

impl Modify for Finish {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.responses.extend(responses::error_responses());
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
        // Every route: the correlation header, sent and echoed, and the error
        // answers it can give (the 400 and 431 that hyper answers before any
        // route is chosen among them).
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
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in operations_mut(item) {
                op.parameters
                    .get_or_insert_with(Vec::new)
                    .push(correlation.clone());
                for &code in ErrorCode::ALL {
                    if crate::app::may_answer(path, code) {
                        op.responses
                            .responses
                            .entry(code.status().as_str().into())
                            .or_insert_with(|| responses::reference(code));
                    }
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

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::test_support::{document, operations};
    use super::*;

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
}
