//! The committed OpenAPI document (`docs/openapi.json`) is the one the code
//! generates, and the running service serves that same document at
//! `GET /openapi.json`.
//!
//! When the API changes on purpose, regenerate the file with
//! `UPDATE_OPENAPI=1 cargo test -p proxy-delegate-service --test openapi`.

use std::path::PathBuf;

use proxy_delegate_service::openapi::{document_json, document_json_for};
use proxy_delegate_service::{Service, ServiceConfig};

/// `docs/openapi.json` at the workspace root.
fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/openapi.json")
        .components()
        .collect()
}

/// The generated document with the trailing newline the file keeps.
fn generated() -> String {
    let mut text = document_json();
    text.push('\n');
    text
}

#[test]
fn committed_document_matches_the_code() {
    let path = committed_path();
    let generated = generated();
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&path, &generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; generate it with \
             `UPDATE_OPENAPI=1 cargo test -p proxy-delegate-service --test openapi`",
            path.display()
        )
    });
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "{} differs from the document the code generates (first difference at line {}: \
             file {:?}, code {:?}). If the API change is intended, regenerate it with \
             `UPDATE_OPENAPI=1 cargo test -p proxy-delegate-service --test openapi` and \
             commit the file.",
            path.display(),
            line + 1,
            committed.lines().nth(line).unwrap_or("<end of file>"),
            generated.lines().nth(line).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn document_is_openapi_3_1_with_every_route() {
    let doc: serde_json::Value = serde_json::from_str(&document_json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for route in [
        "/api/v1/proxy/request",
        "/api/v1/proxy/feedback",
        "/api/v1/proxies",
        "/health",
        "/metrics",
        "/openapi.json",
        "/",
    ] {
        assert!(paths.contains(&route), "{route} is not described");
    }
    // Every error status is the JSON error body.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || (status.starts_with('5') && status != "503") {
                    let r = response["$ref"].as_str().unwrap_or_else(|| {
                        panic!("{method} {path} {status} is not a shared error response")
                    });
                    let name = r.rsplit('/').next().unwrap();
                    assert_eq!(
                        doc["components"]["responses"][name]["content"]["application/json"]["schema"]
                            ["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}

/// `GET /openapi.json` serves the document of the running configuration.
#[tokio::test]
async fn service_serves_the_document_of_its_configuration() {
    let config = ServiceConfig::embedded_default();
    let expected = document_json_for(&config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = Service::new(config).unwrap().start(listener).unwrap();
    let url = format!("http://{}/openapi.json", running.local_addr());
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let served = response.text().await.unwrap();
    assert_eq!(served, expected);
    running.shutdown().await;
}

/// Without clients (the no-configuration default), nothing is enforced and
/// the served document declares no security: an OpenAPI fuzzer has nothing
/// to report as "accepts requests without authentication". With clients,
/// every route the document secures refuses a request without credentials,
/// and every route it leaves open takes one.
#[tokio::test]
async fn served_security_is_what_the_service_enforces() {
    for (toml, secured) in [
        (None, 0),
        (
            Some(
                r#"
[auth]
metrics = true

[[clients]]
name = "ops"
bearer_tokens = ["tok-ops"]

[[proxies]]
id = "px-1"
url = "socks5://192.0.2.10:1080"
"#,
            ),
            5,
        ),
    ] {
        let config = match toml {
            None => ServiceConfig::embedded_default(),
            Some(t) => ServiceConfig::parse(t, false).unwrap(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = Service::new(config).unwrap().start(listener).unwrap();
        let base = format!("http://{}", running.local_addr());
        let http = reqwest::Client::new();
        let doc: serde_json::Value = http
            .get(format!("{base}/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut count = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let declared = op.get("security").is_some();
                count += usize::from(declared);
                let request = http.request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{base}{path}"),
                );
                let request = if method == "post" {
                    request
                        .header("content-type", "application/json")
                        .body("{}")
                } else {
                    request
                };
                let status = request.send().await.unwrap().status().as_u16();
                if declared {
                    assert_eq!(status, 401, "{method} {path} is declared secured");
                    assert!(op["responses"]["401"].is_object());
                } else {
                    assert_ne!(status, 401, "{method} {path} is declared open");
                    assert!(op["responses"].get("401").is_none(), "{method} {path}");
                }
            }
        }
        assert_eq!(count, secured, "{toml:?}");
        if secured == 0 {
            assert!(doc["components"].get("securitySchemes").is_none());
        }
        running.shutdown().await;
    }
}

/// The document promises that `/health` and `/metrics` are never rate
/// limited, even when they need credentials (`auth.health`,
/// `auth.metrics`), while routes with a scope are.
#[tokio::test]
async fn health_and_metrics_are_never_rate_limited() {
    let config = ServiceConfig::parse(
        r#"
listen = "127.0.0.1:0"

[auth]
health = true
metrics = true

[rate_limit]
per_second = 1
burst = 1

[[clients]]
name = "ops"
bearer_tokens = ["tok-ops"]

[[proxies]]
id = "px-1"
url = "socks5://192.0.2.10:1080"
"#,
        false,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = Service::new(config).unwrap().start(listener).unwrap();
    let base = format!("http://{}", running.local_addr());
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{base}{path}"))
            .bearer_auth("tok-ops")
            .send()
    };
    for path in ["/health", "/metrics"] {
        for i in 0..10 {
            let r = get(path).await.unwrap();
            assert_eq!(r.status(), 200, "{path} call {i} was refused");
        }
        // They still need the credentials.
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without credentials");
    }
    // A route with a scope is limited: the burst of 1 is spent at once.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = get("/api/v1/proxies").await.unwrap();
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    running.shutdown().await;
}
