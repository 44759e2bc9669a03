//! The document of one running configuration ([`document_json_for`]):
//! security only where the service enforces it, no 401 or 403 where it
//! cannot answer them, no 429 without a rate limit.
//!
//! [`document_json_for`]: super::document_json_for

use std::collections::BTreeSet;

use utoipa::openapi::RefOr;
use utoipa::openapi::security::SecurityRequirement;

use super::operations_mut;
use crate::{ErrorCode, ServiceConfig};

pub(super) fn tailor(doc: &mut utoipa::openapi::OpenApi, config: &ServiceConfig) {
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
                for code in [ErrorCode::Unauthorized, ErrorCode::Forbidden] {
                    op.responses.responses.remove(code.status().as_str());
                }
            }
            if !limited {
                op.responses
                    .responses
                    .remove(ErrorCode::RateLimited.status().as_str());
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

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::document_json_for;
    use super::super::test_support::{keys, operations};
    use super::*;

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
