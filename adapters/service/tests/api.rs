//! The reference service's API over real HTTP: the in-process service
//! (`Service::start` on a listener bound to 127.0.0.1:0) driven by reqwest.
//!
//! Covered: the published request / feedback bodies in JSON, postcard and
//! gzip; that no answer ever shows a proxy's password; feedback driving the
//! pool to an ejection; every error status with its JSON `code`; the three
//! forms of authentication (bearer, `X-API-Key`, mutual TLS); secrets read
//! from files; reload keeping pool state; graceful shutdown (503 on
//! `/health` while draining, the request in flight finishing, the port
//! closed afterwards).
//!
//! Every wait is bounded: the HTTP client has a timeout, raw sockets read
//! under `tokio::time::timeout`, polls have a deadline.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use proxy_delegate_core::codec;
use proxy_delegate_core::model::{ProxyFeedback, ProxyRequest, ProxyResponse};
use proxy_delegate_service::{Running, Service, ServiceConfig};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The published request body (root `src/lib.rs` `REQUEST_JSON`).
const REQUEST_JSON: &str = r#"{"exchange_id":"binance","connection_type":"websocket","region":"us-east-1","client_id":"cryptofeed-instance-123","metadata":{"feed_types":["trades","book"],"symbols":["BTC-USD","ETH-USD"]}}"#;

/// The published feedback body (root `src/lib.rs` `FEEDBACK_JSON`), about
/// proxy A: its host and port, with its real credentials in the URL.
const FEEDBACK_JSON: &str = r#"{"proxy_url":"socks5://feeduser:Pw-7f3kq9@192.0.2.10:1080","exchange_id":"binance","connection_type":"websocket","success":true,"latency_ms":45,"error_details":null,"timestamp":"2024-09-23T10:30:00Z","client_id":"cryptofeed-instance-123"}"#;

/// Proxy A's password: must never come back from any read-only route.
const PASSWORD: &str = "Pw-7f3kq9";

/// How long any single HTTP exchange may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Three proxies: A (the only one in `us-east-1`, with credentials), B, C.
const PROXIES: &str = r#"
[[proxies]]
id = "px-a"
url = "socks5://feeduser:Pw-7f3kq9@192.0.2.10:1080"
regions = ["us-east-1"]

[[proxies]]
id = "px-b"
url = "http://198.51.100.20:3128"
regions = ["eu-west-1"]

[[proxies]]
id = "px-c"
url = "socks5h://203.0.113.30:1080"
regions = ["ap-northeast-1"]
"#;

/// Two clients with all scopes (several tokens each, one also with an API
/// key) and a read-only client.
const CLIENTS: &str = r#"
[[clients]]
name = "feed"
bearer_tokens = ["tok-feed-1", "tok-feed-2"]

[[clients]]
name = "ops"
bearer_tokens = ["tok-ops-1", "tok-ops-2"]
api_keys = ["key-ops"]

[[clients]]
name = "reader"
bearer_tokens = ["tok-reader"]
scopes = ["read"]
"#;

/// The usual test configuration: clients, no rate limit, round robin, A/B/C.
fn base_config() -> String {
    format!(
        "[rate_limit]\nenabled = false\n\n[pool]\nstrategy = \"round_robin\"\n{CLIENTS}{PROXIES}"
    )
}

/// A service under test and the client that talks to it.
struct Harness {
    running: Running,
    base: String,
    http: reqwest::Client,
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn addr(&self) -> SocketAddr {
        self.running.local_addr()
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    async fn get_text(&self, path: &str, token: &str) -> String {
        let r = self.get(path, token).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.text().await.expect("read the body")
    }

    /// GET without credentials; asserts 200.
    async fn get_open(&self, path: &str) -> String {
        let r = self
            .http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.text().await.expect("read the body")
    }

    async fn post_json(&self, path: &str, token: &str, body: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    async fn proxies(&self) -> Value {
        let text = self.get_text("/api/v1/proxies", "tok-ops-1").await;
        serde_json::from_str(&text).expect("/api/v1/proxies is JSON")
    }

    /// The proxy `id` as `GET /api/v1/proxies` lists it.
    async fn proxy(&self, id: &str) -> Option<serde_json::Value> {
        let v = self.proxies().await;
        v["proxies"]
            .as_array()
            .expect("proxies is an array")
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
    }

    async fn state_of(&self, id: &str) -> Option<String> {
        self.proxy(id)
            .await
            .map(|p| p["state"].as_str().expect("state is text").to_owned())
    }

    async fn proxy_ids(&self) -> Vec<String> {
        let v = self.proxies().await;
        v["proxies"]
            .as_array()
            .expect("proxies is an array")
            .iter()
            .map(|p| p["id"].as_str().expect("id is text").to_owned())
            .collect()
    }

    async fn stop(self) {
        tokio::time::timeout(Duration::from_secs(20), self.running.shutdown())
            .await
            .expect("shutdown finishes within 20 s");
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(HTTP_TIMEOUT)
        .build()
        .expect("build the HTTP client")
}

async fn start_config(config: ServiceConfig) -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let running = Service::new(config)
        .expect("service builds")
        .start(listener)
        .expect("service starts");
    let base = format!("http://{}", running.local_addr());
    Harness {
        running,
        base,
        http: client(),
    }
}

async fn start(toml: &str) -> Harness {
    start_config(ServiceConfig::parse(toml, false).expect("the test configuration is valid")).await
}

/// Asserts the status and the JSON error body's `code`; returns the message.
async fn expect_error(r: reqwest::Response, status: StatusCode, code: &str) -> String {
    assert_eq!(r.status(), status, "status of {}", r.url());
    let ct = r
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        ct.starts_with("application/json"),
        "error bodies are JSON, got {ct:?}"
    );
    let body: Value = r.json().await.expect("the error body is JSON");
    assert_eq!(body["error"]["code"], code, "error body {body}");
    let message = body["error"]["message"]
        .as_str()
        .expect("error.message is text")
        .to_owned();
    assert!(!message.is_empty(), "the message says what is wrong");
    message
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("compress");
    enc.finish().expect("finish gzip")
}

fn postcard<M: codec::Message>(msg: &M) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    let n = codec::postcard::encode(msg, &mut buf).expect("postcard encodes");
    buf[..n].to_vec()
}

fn feedback_for(id: &str, success: bool, category: Option<&str>) -> String {
    let category = category.map_or(String::new(), |c| format!(r#","error_category":"{c}""#));
    format!(
        r#"{{"proxy_id":"{id}","exchange_id":"binance","connection_type":"websocket","success":{success}{category},"timestamp":"2024-09-23T10:30:00Z","client_id":"api-test"}}"#
    )
}

/// Polls `check` every 50 ms until it holds or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the first sample of metric `name` whose labels include all
/// of `labels`, if there is one.
fn metric(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let line = metrics.lines().find(|l| {
        l.starts_with(&format!("{name}{{")) && labels.iter().all(|needle| l.contains(needle))
    })?;
    let value = line.rsplit(' ').next().and_then(|v| v.parse().ok());
    Some(value.unwrap_or_else(|| panic!("no value on metric line {line:?}")))
}

// ------------------------------------------------------------------ happy paths

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_request_gets_a_proxy_with_its_credentials() {
    let h = start(&base_config()).await;
    let r = h
        .post_json("/api/v1/proxy/request", "tok-feed-1", REQUEST_JSON)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let bytes = r.bytes().await.unwrap();
    let answer: ProxyResponse = codec::json::decode(&bytes).expect("a valid ProxyResponse");
    let url = answer.proxy_url.expect("a proxy is chosen");
    assert_eq!(url.host(), "192.0.2.10", "the only us-east-1 proxy");
    assert_eq!(url.port(), 1080);
    assert_eq!(url.username(), Some("feeduser"));
    assert_eq!(
        url.password().map(|p| p.expose()),
        Some(PASSWORD),
        "the client needs the proxy's password"
    );
    assert_eq!(
        answer.metadata.proxy_id.as_ref().map(|p| p.as_str()),
        Some("px-a")
    );
    assert_eq!(answer.strategy.as_str(), "round_robin");

    // The same request in postcard, answered in postcard.
    let ask: ProxyRequest = codec::json::decode(REQUEST_JSON.as_bytes()).unwrap();
    let r = h
        .http
        .post(h.url("/api/v1/proxy/request"))
        .bearer_auth("tok-feed-2")
        .header(CONTENT_TYPE, "application/x-postcard")
        .header(reqwest::header::ACCEPT, "application/x-postcard")
        .body(postcard(&ask))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CONTENT_TYPE], "application/x-postcard");
    let bytes = r.bytes().await.unwrap();
    let answer: ProxyResponse = codec::postcard::decode(&bytes).expect("a postcard ProxyResponse");
    let url = answer.proxy_url.expect("a proxy is chosen");
    assert_eq!(url.password().map(|p| p.expose()), Some(PASSWORD));

    // JSON request, `Accept: application/x-postcard`: postcard answer.
    let r = h
        .http
        .post(h.url("/api/v1/proxy/request"))
        .bearer_auth("tok-feed-1")
        .header(CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, "application/x-postcard")
        .body(REQUEST_JSON)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CONTENT_TYPE], "application/x-postcard");
    let answer: ProxyResponse = codec::postcard::decode(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(
        answer.metadata.proxy_id.as_ref().map(|p| p.as_str()),
        Some("px-a")
    );

    // A gzip-compressed JSON request.
    let r = h
        .http
        .post(h.url("/api/v1/proxy/request"))
        .bearer_auth("tok-feed-1")
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .header(CONTENT_ENCODING, "gzip")
        .body(gzip(REQUEST_JSON.as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let answer: ProxyResponse = codec::json::decode(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(
        answer.metadata.proxy_id.as_ref().map(|p| p.as_str()),
        Some("px-a")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_in_every_form_is_applied() {
    let h = start(&base_config()).await;
    let ack = |v: &Value| {
        (
            v["received"].as_u64().unwrap(),
            v["applied"].as_u64().unwrap(),
            v["unknown_proxy"].as_u64().unwrap(),
            v["no_proxy"].as_u64().unwrap(),
        )
    };

    // JSON, one event (credentials in proxy_url are accepted and dropped).
    let r = h
        .post_json("/api/v1/proxy/feedback", "tok-feed-1", FEEDBACK_JSON)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(ack(&r.json().await.unwrap()), (1, 1, 0, 0));

    // JSON batch: A by URL, B by id, an unknown proxy, a direct connection.
    let unknown = feedback_for("px-nowhere", true, None);
    let direct = r#"{"exchange_id":"binance","connection_type":"http","success":true,"timestamp":"2024-09-23T10:30:00Z","client_id":"api-test"}"#;
    let batch = format!(
        "[{FEEDBACK_JSON}, {}, {unknown}, {direct}]",
        feedback_for("px-b", true, None)
    );
    let r = h
        .post_json("/api/v1/proxy/feedback", "tok-feed-2", &batch)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(ack(&r.json().await.unwrap()), (4, 2, 1, 1));

    // Postcard, one event.
    let one: ProxyFeedback = codec::json::decode(FEEDBACK_JSON.as_bytes()).unwrap();
    let post_pc = |body: Vec<u8>| {
        h.http
            .post(h.url("/api/v1/proxy/feedback"))
            .bearer_auth("tok-ops-1")
            .header(CONTENT_TYPE, "application/x-postcard")
            .body(body)
            .send()
    };
    let r = post_pc(postcard(&one)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(ack(&r.json().await.unwrap()), (1, 1, 0, 0));

    // Postcard batch: concatenated messages.
    let b: ProxyFeedback =
        codec::json::decode(feedback_for("px-c", true, None).as_bytes()).unwrap();
    let mut body = postcard(&one);
    body.extend(postcard(&b));
    body.extend(postcard(&one));
    let r = post_pc(body).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(ack(&r.json().await.unwrap()), (3, 3, 0, 0));

    // Gzip-compressed JSON batch.
    let r = h
        .http
        .post(h.url("/api/v1/proxy/feedback"))
        .bearer_auth("tok-feed-1")
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_ENCODING, "gzip")
        .body(gzip(
            format!("[{FEEDBACK_JSON},{FEEDBACK_JSON}]").as_bytes(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(ack(&r.json().await.unwrap()), (2, 2, 0, 0));

    // The successes with a latency are in A's row.
    let a = h.proxy("px-a").await.unwrap();
    assert_eq!(a["state"], "active");
    assert!(a["latency_ms"].as_f64().is_some(), "latency recorded: {a}");
    assert_eq!(a["url"], "socks5://192.0.2.10:1080", "no credentials: {a}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_route_ever_shows_a_password() {
    let h = start(&base_config()).await;
    // Feedback carrying the password, a request handing it out, a failure.
    let r = h
        .post_json("/api/v1/proxy/feedback", "tok-feed-1", FEEDBACK_JSON)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = h
        .post_json("/api/v1/proxy/request", "tok-feed-1", REQUEST_JSON)
        .await;
    assert!(
        r.text().await.unwrap().contains(PASSWORD),
        "the answer has it"
    );
    let failing = FEEDBACK_JSON.replace(
        r#""success":true"#,
        r#""success":false,"error_category":"proxy_auth""#,
    );
    let r = h
        .post_json("/api/v1/proxy/feedback", "tok-feed-1", &failing)
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    for path in [
        "/api/v1/proxies",
        "/",
        "/metrics",
        "/health",
        "/openapi.json",
    ] {
        let body = h.get_text(path, "tok-ops-2").await;
        assert!(
            !body.contains(PASSWORD),
            "{path} shows the password: {body}"
        );
        assert!(!body.contains("feeduser:"), "{path} shows the user info");
    }
    let page = h.get_text("/", "tok-reader").await;
    assert!(page.contains("px-a"), "the status page lists the proxies");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_connect_failures_eject_the_proxy() {
    let h = start(&base_config()).await;
    let one = feedback_for("px-a", false, Some("proxy_connect"));
    for i in 0..4 {
        let r = h
            .post_json("/api/v1/proxy/feedback", "tok-feed-1", &one)
            .await;
        assert_eq!(r.status(), StatusCode::OK, "failure {i}");
    }
    assert_eq!(h.state_of("px-a").await.as_deref(), Some("active"));
    let r = h
        .post_json("/api/v1/proxy/feedback", "tok-feed-1", &one)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(h.state_of("px-a").await.as_deref(), Some("ejected"));
    let v = h.proxies().await;
    assert_eq!(v["summary"]["ejected"], 1);
    assert_eq!(v["summary"]["available"], 2);

    // The ejection is counted for that proxy (the driver task records it).
    let counted = eventually(Duration::from_secs(5), || async {
        let m = h.get_text("/metrics", "tok-ops-1").await;
        metric(
            &m,
            "proxy_delegate_ejections_total",
            &["proxy=\"px-a\"", "reason=\"consecutive_failures\""],
        ) == Some(1.0)
    })
    .await;
    assert!(counted, "metrics show one ejection of px-a");

    // Requests no longer get A, even those asking for its region.
    for _ in 0..6 {
        let r = h
            .post_json("/api/v1/proxy/request", "tok-feed-1", REQUEST_JSON)
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let answer: ProxyResponse = codec::json::decode(&r.bytes().await.unwrap()).unwrap();
        let id = answer.metadata.proxy_id.expect("a proxy");
        assert_ne!(id.as_str(), "px-a", "an ejected proxy is never handed out");
    }
    h.stop().await;
}

// ------------------------------------------------------------------ errors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_invalid_bodies() {
    let h = start(&base_config()).await;
    let r = h
        .post_json("/api/v1/proxy/request", "tok-feed-1", r#"{"exchange_id":"#)
        .await;
    expect_error(r, StatusCode::BAD_REQUEST, "malformed_body").await;
    let r = h
        .post_json("/api/v1/proxy/feedback", "tok-feed-1", "[{")
        .await;
    expect_error(r, StatusCode::BAD_REQUEST, "malformed_body").await;

    // Not gzip at all, and a truncated gzip stream.
    let r = h
        .http
        .post(h.url("/api/v1/proxy/request"))
        .bearer_auth("tok-feed-1")
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_ENCODING, "gzip")
        .body(REQUEST_JSON)
        .send()
        .await
        .unwrap();
    let m = expect_error(r, StatusCode::BAD_REQUEST, "malformed_body").await;
    assert!(m.contains("gzip"), "{m}");
    let mut cut = gzip(REQUEST_JSON.as_bytes());
    cut.truncate(cut.len() / 2);
    let r = h
        .http
        .post(h.url("/api/v1/proxy/request"))
        .bearer_auth("tok-feed-1")
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_ENCODING, "gzip")
        .body(cut)
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "malformed_body").await;

    // 422: a bad field, named.
    let bad_type = REQUEST_JSON.replace("websocket", "carrier-pigeon");
    let r = h
        .post_json("/api/v1/proxy/request", "tok-feed-1", &bad_type)
        .await;
    let m = expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert!(m.contains("connection_type"), "{m}");
    let no_exchange = REQUEST_JSON.replace(r#""binance""#, r#""""#);
    let r = h
        .post_json("/api/v1/proxy/request", "tok-feed-1", &no_exchange)
        .await;
    let m = expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert!(m.contains("exchange_id"), "{m}");
    let r = h
        .post_json("/api/v1/proxy/feedback", "tok-feed-1", "[]")
        .await;
    let m = expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert!(m.contains("empty batch"), "{m}");
    // A batch is taken whole or not at all: the bad element is named.
    let bad = FEEDBACK_JSON.replace(r#""binance""#, r#""""#);
    let r = h
        .post_json(
            "/api/v1/proxy/feedback",
            "tok-feed-1",
            &format!("[{FEEDBACK_JSON},{bad}]"),
        )
        .await;
    let m = expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert!(m.starts_with("[1] exchange_id"), "{m}");
    let a = h.proxy("px-a").await.unwrap();
    assert!(
        a["latency_ms"].is_null(),
        "nothing of the batch applied: {a}"
    );

    // Postcard garbage.
    let r = h
        .http
        .post(h.url("/api/v1/proxy/feedback"))
        .bearer_auth("tok-feed-1")
        .header(CONTENT_TYPE, "application/x-postcard")
        .body(vec![0xffu8; 7])
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
        "postcard garbage is refused, got {status}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_bodies_and_gzip_bombs() {
    let h = start(&base_config()).await;
    let big = vec![b' '; 64 * 1024 + 1];
    // With Content-Length.
    let r = h
        .http
        .post(h.url("/api/v1/proxy/feedback"))
        .bearer_auth("tok-feed-1")
        .header(CONTENT_TYPE, "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let m = expect_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert!(m.contains("65536"), "{m}");

    // Chunked (no Content-Length): counted while reading.
    let r = raw_chunked_post(h.addr(), "/api/v1/proxy/feedback", "tok-feed-1", &big).await;
    assert!(
        r.starts_with("HTTP/1.1 413"),
        "chunked oversize body: {}",
        r.lines().next().unwrap_or("")
    );
    assert!(r.contains("payload_too_large"), "{r}");

    // 1 MiB of JSON whitespace in ~1 KiB of gzip: refused after 64 KiB inflated.
    let bomb = gzip(&vec![b' '; 1024 * 1024]);
    assert!(bomb.len() < 8 * 1024);
    let r = h
        .http
        .post(h.url("/api/v1/proxy/feedback"))
        .bearer_auth("tok-feed-1")
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_ENCODING, "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    // A batch of exactly 64 KiB, inflated, is taken whole.
    let events = 200;
    let mut at_limit = format!("[{}]", vec![FEEDBACK_JSON; events].join(",")).into_bytes();
    assert!(at_limit.len() < 64 * 1024);
    at_limit.resize(64 * 1024, b' ');
    let r = h
        .http
        .post(h.url("/api/v1/proxy/feedback"))
        .bearer_auth("tok-feed-1")
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_ENCODING, "gzip")
        .body(gzip(&at_limit))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ack: Value = r.json().await.unwrap();
    assert_eq!(ack["applied"], events);
    h.stop().await;
}

/// A POST with `Transfer-Encoding: chunked` over a raw socket; returns the
/// whole response text.
async fn raw_chunked_post(addr: SocketAddr, path: &str, token: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(8 * 1024) {
        req.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend(chunk);
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    // The server may answer and close before taking the whole body.
    let _ = tokio::time::timeout(HTTP_TIMEOUT, s.write_all(&req)).await;
    read_response(&mut s).await
}

/// Reads until the server closes the connection (bounded); the text read.
async fn read_response(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + HTTP_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "no end of response within {HTTP_TIMEOUT:?}; got {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_media_types() {
    let h = start(&base_config()).await;
    let r = h
        .http
        .post(h.url("/api/v1/proxy/request"))
        .bearer_auth("tok-feed-1")
        .header(CONTENT_TYPE, "text/plain")
        .body(REQUEST_JSON)
        .send()
        .await
        .unwrap();
    let m = expect_error(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert!(
        m.contains("text/plain") && m.contains("application/json"),
        "{m}"
    );

    let r = h
        .http
        .post(h.url("/api/v1/proxy/feedback"))
        .bearer_auth("tok-feed-1")
        .body(FEEDBACK_JSON)
        .send()
        .await
        .unwrap();
    let m = expect_error(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert!(m.contains("Content-Type is missing"), "{m}");

    let r = h
        .http
        .post(h.url("/api/v1/proxy/request"))
        .bearer_auth("tok-feed-1")
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_ENCODING, "br")
        .body(REQUEST_JSON)
        .send()
        .await
        .unwrap();
    let m = expect_error(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert!(m.contains("br") && m.contains("gzip"), "{m}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_answer_json() {
    let h = start(&base_config()).await;
    let r = h.get("/api/v1/nothing-here", "tok-feed-1").await;
    let m = expect_error(r, StatusCode::NOT_FOUND, "not_found").await;
    assert!(m.contains("/api/v1/nothing-here"), "{m}");
    // 404 needs no credentials.
    let r = h.http.get(h.url("/nope")).send().await.unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "not_found").await;

    let r = h.get("/api/v1/proxy/request", "tok-feed-1").await;
    let m = expect_error(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    assert!(
        m.contains("GET") && m.contains("/api/v1/proxy/request"),
        "{m}"
    );
    let r = h.http.delete(h.url("/health")).send().await.unwrap();
    expect_error(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    h.stop().await;
}

// ------------------------------------------------------------------ authentication

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_401_with_a_challenge() {
    let h = start(&base_config()).await;
    let send = |auth: Option<(&'static str, &'static str)>| {
        let mut b = h
            .http
            .post(h.url("/api/v1/proxy/request"))
            .header(CONTENT_TYPE, "application/json")
            .body(REQUEST_JSON);
        if let Some((k, v)) = auth {
            b = b.header(k, v);
        }
        b.send()
    };
    let cases: [(Option<(&str, &str)>, &str); 5] = [
        (None, "credentials required"),
        (
            Some(("authorization", "Bearer tok-wrong")),
            "unknown bearer token",
        ),
        (Some(("x-api-key", "key-wrong")), "unknown API key"),
        (Some(("x-api-key", "tok-feed-1")), "unknown API key"),
        (
            Some(("authorization", "Basic ZmVlZDp0b2stZmVlZC0x")),
            "Bearer <token>",
        ),
    ];
    for (auth, says) in cases {
        let r = send(auth).await.unwrap();
        assert!(
            r.headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Bearer")),
            "WWW-Authenticate for {auth:?}"
        );
        let m = expect_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
        assert!(m.contains(says), "{auth:?}: {m}");
        assert!(!m.contains("tok-wrong") && !m.contains("key-wrong"), "{m}");
    }
    // Read routes need credentials too; /health and /metrics do not by default.
    for path in ["/api/v1/proxies", "/"] {
        let r = h.http.get(h.url(path)).send().await.unwrap();
        expect_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    for path in ["/health", "/metrics", "/openapi.json"] {
        let r = h.http.get(h.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path} is open");
    }
    let m = h.get_open("/metrics").await;
    let failures = |reason: &str| {
        metric(
            &m,
            "proxy_delegate_auth_failures_total",
            &[&format!("reason=\"{reason}\"")],
        )
    };
    assert_eq!(failures("unknown_token"), Some(1.0));
    assert_eq!(failures("unknown_api_key"), Some(2.0));
    assert_eq!(failures("unsupported_scheme"), Some(1.0));
    assert_eq!(failures("missing"), Some(3.0));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_the_scope_is_403() {
    let h = start(&base_config()).await;
    let r = h
        .post_json("/api/v1/proxy/request", "tok-reader", REQUEST_JSON)
        .await;
    let m = expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(m.contains("reader") && m.contains("request"), "{m}");
    let r = h
        .post_json("/api/v1/proxy/feedback", "tok-reader", FEEDBACK_JSON)
        .await;
    let m = expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(m.contains("feedback"), "{m}");
    // What it may do, it may do.
    let r = h.get("/api/v1/proxies", "tok-reader").await;
    assert_eq!(r.status(), StatusCode::OK);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_and_api_keys_name_their_clients_in_metrics() {
    let h = start(&base_config()).await;
    for token in ["tok-feed-1", "tok-feed-2", "tok-ops-1", "tok-ops-2"] {
        let r = h
            .post_json("/api/v1/proxy/request", token, REQUEST_JSON)
            .await;
        assert_eq!(r.status(), StatusCode::OK, "token {token}");
    }
    let r = h
        .http
        .post(h.url("/api/v1/proxy/request"))
        .header("x-api-key", "key-ops")
        .header(CONTENT_TYPE, "application/json")
        .body(REQUEST_JSON)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "API key");
    let m = h.get_open("/metrics").await;
    let served = |client: &str| {
        metric(
            &m,
            "proxy_delegate_proxy_requests_total",
            &[&format!("client=\"{client}\""), "outcome=\"proxy\""],
        )
    };
    assert_eq!(served("feed"), Some(2.0), "{m}");
    assert_eq!(served("ops"), Some(3.0), "{m}");
    let http = metric(
        &m,
        "proxy_delegate_http_requests_total",
        &[
            "client=\"ops\"",
            "route=\"/api/v1/proxy/request\"",
            "status=\"200\"",
        ],
    );
    assert_eq!(http, Some(3.0), "per-client HTTP counter: {m}");
    for secret in ["tok-feed-1", "tok-ops-1", "key-ops"] {
        assert!(!m.contains(secret), "metrics show a credential");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after() {
    let toml = format!("[rate_limit]\nper_second = 1\nburst = 1\n{CLIENTS}{PROXIES}");
    let h = start(&toml).await;
    let r = h
        .post_json("/api/v1/proxy/request", "tok-feed-1", REQUEST_JSON)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // One token a second, burst one: of the next few back-to-back requests
    // (both tokens are client `feed`), one is refused however slow the
    // machine is, unless each takes over a second.
    let mut refused = None;
    for token in ["tok-feed-2", "tok-feed-1", "tok-feed-2", "tok-feed-1"] {
        let r = h
            .post_json("/api/v1/proxy/request", token, REQUEST_JSON)
            .await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = refused.expect("a 429 among back-to-back requests over the limit");
    let retry: u64 = r
        .headers()
        .get(RETRY_AFTER)
        .expect("Retry-After on 429")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    expect_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Another client has its own bucket; health checks are never limited.
    let r = h
        .post_json("/api/v1/proxy/request", "tok-ops-1", REQUEST_JSON)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    for _ in 0..3 {
        let r = h.http.get(h.url("/health")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secrets_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok-from-file\n").unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "key-from-file").unwrap();
    let toml = format!(
        "[rate_limit]\nenabled = false\n[[clients]]\nname = \"filed\"\n\
         bearer_tokens = [\"${{file:{}}}\"]\napi_keys = [\"${{file:{}}}\"]\n{PROXIES}",
        token_file.display(),
        key_file.display()
    );
    let h = start(&toml).await;
    let r = h
        .post_json("/api/v1/proxy/request", "tok-from-file", REQUEST_JSON)
        .await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the file's token, newline dropped"
    );
    let r = h
        .http
        .get(h.url("/api/v1/proxies"))
        .header("x-api-key", "key-from-file")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let literal = format!("${{file:{}}}", token_file.display());
    let r = h
        .post_json("/api/v1/proxy/request", &literal, REQUEST_JSON)
        .await;
    expect_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // A reference to a missing file is a configuration error naming the key.
    let missing = format!(
        "[[clients]]\nname = \"x\"\nbearer_tokens = [\"${{file:{}}}\"]\n",
        dir.path().join("absent").display()
    );
    let e = ServiceConfig::parse(&missing, false).unwrap_err();
    assert_eq!(e.field, "clients[0].bearer_tokens[0]", "{e}");
    h.stop().await;
}

// ------------------------------------------------------------------ mutual TLS

/// PEM files for a CA, a server certificate for 127.0.0.1 / localhost, a
/// client certificate the CA signed, and one from another CA.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    good_identity: String,
    stranger_identity: String,
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
    }
    fn leaf(
        issuer: &CertifiedIssuer<'static, KeyPair>,
        sans: &[&str],
        cn: &str,
        usage: ExtendedKeyUsagePurpose,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![usage];
        let cert = p.signed_by(&key, &**issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
    let ca_a = ca("proxy-delegate test CA");
    let ca_b = ca("some other CA");
    let (server_cert, server_key) = leaf(
        &ca_a,
        &["127.0.0.1", "localhost"],
        "localhost",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (good_cert, good_key) = leaf(
        &ca_a,
        &[],
        "desk.client",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let (bad_cert, bad_key) = leaf(
        &ca_b,
        &[],
        "desk.client",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_a.pem()).unwrap();
    std::fs::write(dir.path().join("server.pem"), &server_cert).unwrap();
    std::fs::write(dir.path().join("server.key"), &server_key).unwrap();
    Pki {
        ca_pem: ca_a.pem(),
        good_identity: format!("{good_cert}{good_key}"),
        stranger_identity: format!("{bad_cert}{bad_key}"),
        dir,
    }
}

fn tls_client(ca_pem: &str, identity: Option<&str>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(HTTP_TIMEOUT)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap());
    if let Some(pem) = identity {
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn tls_config(dir: &Path) -> String {
    format!(
        "[tls]\ncert_file = \"{d}/server.pem\"\nkey_file = \"{d}/server.key\"\n\
         client_ca_file = \"{d}/ca.pem\"\n\n[auth]\nhealth = false\nmetrics = true\n\n\
         [rate_limit]\nenabled = false\n\n\
         [[clients]]\nname = \"desk\"\ntls_names = [\"desk.client\"]\n\n\
         [[clients]]\nname = \"feed\"\nbearer_tokens = [\"tok-feed-1\"]\n{PROXIES}",
        d = dir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_names_the_client() {
    let pki = pki();
    let h = start(&tls_config(pki.dir.path())).await;
    let base = format!("https://localhost:{}", h.addr().port());

    let good = tls_client(&pki.ca_pem, Some(&pki.good_identity));
    let r = good
        .post(format!("{base}/api/v1/proxy/request"))
        .header(CONTENT_TYPE, "application/json")
        .body(REQUEST_JSON)
        .send()
        .await
        .expect("mutual TLS with a certificate the CA signed");
    assert_eq!(r.status(), StatusCode::OK);
    let answer: ProxyResponse = codec::json::decode(&r.bytes().await.unwrap()).unwrap();
    assert!(answer.proxy_url.is_some());

    // Also by IP address (the server certificate names 127.0.0.1).
    let r = good
        .get(format!(
            "https://127.0.0.1:{}/api/v1/proxies",
            h.addr().port()
        ))
        .send()
        .await
        .expect("TLS to 127.0.0.1");
    assert_eq!(r.status(), StatusCode::OK);

    // /metrics needs credentials here (auth.metrics = true); the certificate is one.
    let m = good
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let served = metric(
        &m,
        "proxy_delegate_proxy_requests_total",
        &["client=\"desk\""],
    );
    assert_eq!(
        served,
        Some(1.0),
        "the mTLS client is named in metrics: {m}"
    );

    // No certificate: TLS works, the API answers 401; /health stays open.
    let anonymous = tls_client(&pki.ca_pem, None);
    let r = anonymous
        .post(format!("{base}/api/v1/proxy/request"))
        .header(CONTENT_TYPE, "application/json")
        .body(REQUEST_JSON)
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = anonymous
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = anonymous
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "auth.health = false");
    let health: Value = r.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    // ... and a bearer token over TLS still works.
    let r = anonymous
        .get(format!("{base}/metrics"))
        .bearer_auth("tok-feed-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A certificate from another CA: the handshake fails.
    let stranger = tls_client(&pki.ca_pem, Some(&pki.stranger_identity));
    let e = stranger
        .get(format!("{base}/health"))
        .send()
        .await
        .expect_err("a client certificate from another CA is refused");
    assert!(!e.is_status(), "a transport error, not an HTTP answer: {e}");

    // Plain HTTP to the TLS port gets nothing useful either.
    let plain = h
        .http
        .get(format!("http://127.0.0.1:{}/health", h.addr().port()))
        .send()
        .await;
    assert!(
        !matches!(&plain, Ok(r) if r.status().is_success()),
        "plain HTTP on the TLS port"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_tls_material_is_a_start_error() {
    let pki = pki();
    let mut config = ServiceConfig::parse(&tls_config(pki.dir.path()), false).unwrap();
    let tls = config.tls.as_mut().unwrap();
    tls.key_file = pki.dir.path().join("missing.key");
    let e = Service::new(config).expect_err("a missing key file");
    let text = e.to_string();
    assert!(text.contains("missing.key"), "{text}");

    // A key flattened onto one line (as it comes from an environment
    // variable or a JSON secret) is refused without quoting it, given as the
    // key or, by mistake, as the certificate.
    let key_pem = std::fs::read_to_string(pki.dir.path().join("server.key")).unwrap();
    let body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let one_line = pki.dir.path().join("one-line.key");
    for flat in [key_pem.replace('\n', "\\n"), key_pem.replace('\n', " ")] {
        std::fs::write(&one_line, &flat).unwrap();
        for as_cert in [false, true] {
            let mut config = ServiceConfig::parse(&tls_config(pki.dir.path()), false).unwrap();
            let tls = config.tls.as_mut().unwrap();
            if as_cert {
                tls.cert_file = one_line.clone();
            } else {
                tls.key_file = one_line.clone();
            }
            let text = Service::new(config)
                .expect_err("a one-line key")
                .to_string();
            assert!(text.contains("one-line.key"), "{text}");
            assert!(text.contains("not valid PEM"), "{text}");
            assert!(!text.contains(&body[..24]), "the key leaked: {text}");
            assert!(!text.contains("BEGIN PRIVATE"), "{text}");
        }
    }
}

// ------------------------------------------------------------------ reload

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_state_and_swaps_inventory_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service.toml");
    std::fs::write(&path, base_config()).unwrap();
    let h = start_config(ServiceConfig::load(&path).unwrap()).await;

    // Eject A.
    let fail = feedback_for("px-a", false, Some("proxy_connect"));
    let batch = format!("[{fail},{fail},{fail},{fail},{fail}]");
    let r = h
        .post_json("/api/v1/proxy/feedback", "tok-feed-1", &batch)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(h.state_of("px-a").await.as_deref(), Some("ejected"));

    // Remove C, add D (first in the file), give `feed` a new token.
    let kept = PROXIES
        .split("[[proxies]]")
        .filter(|p| !p.contains("px-c"))
        .collect::<Vec<_>>()
        .join("[[proxies]]");
    let new_proxies = format!(
        "\n[[proxies]]\nid = \"px-d\"\nurl = \"socks5://203.0.113.40:1080\"\nregions = [\"eu-west-1\"]\n{kept}"
    );
    assert!(!new_proxies.contains("px-c") && new_proxies.contains("px-b"));
    let new_clients = CLIENTS.replace("\"tok-feed-1\", \"tok-feed-2\"", "\"tok-feed-new\"");
    assert_ne!(new_clients, CLIENTS);
    let new_text = format!(
        "[rate_limit]\nenabled = false\n\n[pool]\nstrategy = \"round_robin\"\n{new_clients}{new_proxies}"
    );
    std::fs::write(&path, &new_text).unwrap();
    let report = h.running.reload().expect("the new file is valid");
    assert_eq!(
        (report.added, report.kept, report.removed, report.clients),
        (1, 2, 1, 3),
        "{report:?}"
    );
    assert_eq!(h.proxy_ids().await, ["px-d", "px-a", "px-b"]);
    assert_eq!(
        h.state_of("px-a").await.as_deref(),
        Some("ejected"),
        "state is kept"
    );
    assert_eq!(h.state_of("px-d").await.as_deref(), Some("active"));
    let r = h
        .post_json("/api/v1/proxy/request", "tok-feed-1", REQUEST_JSON)
        .await;
    expect_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = h
        .post_json("/api/v1/proxy/request", "tok-feed-new", REQUEST_JSON)
        .await;
    assert_eq!(r.status(), StatusCode::OK, "the new token");

    // A broken file: an error naming file and key, and nothing changes.
    std::fs::write(
        &path,
        format!("{new_text}\n[[proxies]]\nid = \"px-e\"\nurl = \"ftp://u:hunter2@h:1\"\n"),
    )
    .unwrap();
    let e = h.running.reload().expect_err("a broken file is refused");
    assert_eq!(e.field, "proxies[3].url", "{e}");
    assert_eq!(e.file.as_deref(), Some(path.as_path()));
    assert!(!e.to_string().contains("hunter2"), "{e}");
    std::fs::write(&path, "listen = [").unwrap();
    let e = h.running.reload().expect_err("a file that does not parse");
    assert_eq!(e.file.as_deref(), Some(path.as_path()), "{e}");
    assert_eq!(h.proxy_ids().await, ["px-d", "px-a", "px-b"]);
    assert_eq!(h.state_of("px-a").await.as_deref(), Some("ejected"));
    let r = h
        .post_json("/api/v1/proxy/request", "tok-feed-new", REQUEST_JSON)
        .await;
    assert_eq!(r.status(), StatusCode::OK, "the clients are unchanged");

    let m = h.get_open("/metrics").await;
    let reloads = |outcome: &str| {
        metric(
            &m,
            "proxy_delegate_config_reloads_total",
            &[&format!("outcome=\"{outcome}\"")],
        )
    };
    assert_eq!(reloads("ok"), Some(1.0));
    assert_eq!(reloads("error"), Some(2.0));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_without_a_file_is_an_error() {
    let h = start_config(ServiceConfig::embedded_default()).await;
    let e = h.running.reload().expect_err("nothing to reload");
    assert!(e.message.contains("embedded default"), "{e}");
    h.stop().await;
}

// ------------------------------------------------------------------ shutdown

/// Writes `bytes` on `s`, bounded.
async fn send(s: &mut TcpStream, bytes: &[u8]) {
    tokio::time::timeout(HTTP_TIMEOUT, s.write_all(bytes))
        .await
        .expect("write within the timeout")
        .expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests_and_reports_draining() {
    let h = start(&base_config()).await;
    let addr = h.addr();

    // A feedback request whose body is only half sent: in flight.
    let body = FEEDBACK_JSON.as_bytes();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut slow = TcpStream::connect(addr).await.unwrap();
    send(
        &mut slow,
        format!(
            "POST /api/v1/proxy/feedback HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer tok-feed-1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    send(&mut slow, first).await;

    // A fresh connection that has not sent its request yet. hyper lets a
    // connection that has not finished its first request do so during a
    // graceful shutdown, so it sees the draining service.
    let mut fresh = TcpStream::connect(addr).await.unwrap();
    send(&mut fresh, b"GET /health HTTP/1.1\r\n").await;

    // A complete exchange on a third connection: the accept queue is FIFO,
    // so once it is answered, both connections above are being served.
    let r = h.http.get(h.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let health: Value = r.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["ready"], true);

    let Harness { running, .. } = h;
    let stopping = tokio::spawn(running.shutdown());

    // Wait (bounded) until the listener is closed: shutdown has begun.
    let closed = eventually(Duration::from_secs(10), || async {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(closed, "the listener closes on shutdown");
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the request in flight"
    );

    // The fresh connection's request is answered 503, draining.
    send(&mut fresh, format!("Host: {addr}\r\n\r\n").as_bytes()).await;
    let answer = read_response(&mut fresh).await;
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "503 while draining: {answer}"
    );
    assert!(answer.contains(r#""status":"draining""#), "{answer}");
    assert!(answer.contains(r#""ready":false"#), "{answer}");

    // The request in flight completes normally.
    send(&mut slow, rest).await;
    let answer = read_response(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "in flight: {answer}");
    assert!(answer.contains(r#""applied":1"#), "{answer}");

    tokio::time::timeout(Duration::from_secs(15), stopping)
        .await
        .expect("shutdown returns once the requests in flight are done")
        .expect("the shutdown task does not panic");
    let e = TcpStream::connect(addr)
        .await
        .expect_err("nothing listens after shutdown");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_routes_ignore_stale_credentials() {
    let h = start(&base_config()).await;
    for path in ["/health", "/metrics", "/openapi.json"] {
        let r = h.get(path, "tok-revoked").await;
        assert_eq!(r.status(), StatusCode::OK, "{path} with a stale token");
    }
    // The refusal is still counted.
    let m = h.get_open("/metrics").await;
    let refused = metric(
        &m,
        "proxy_delegate_auth_failures_total",
        &["reason=\"unknown_token\""],
    )
    .expect("auth failures are counted on open routes too");
    assert!(refused >= 3.0, "{refused}");
    // A route with a scope still refuses it.
    let r = h.get("/api/v1/proxies", "tok-revoked").await;
    expect_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unready_period_shows_503_to_new_connections_before_draining() {
    let h = start(&format!("unready_seconds = 2\n{}", base_config())).await;
    let addr = h.addr();
    let Harness {
        running,
        http,
        base,
    } = h;
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(running.shutdown());
    // New connections are still accepted and told the service is draining.
    let seen_503 = eventually(Duration::from_secs(2), || async {
        let fresh = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(HTTP_TIMEOUT)
            .build()
            .expect("build the HTTP client");
        fresh
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;
    assert!(
        seen_503,
        "a new connection gets 503 during the unready period"
    );
    drop(http);
    tokio::time::timeout(Duration::from_secs(20), stopping)
        .await
        .expect("shutdown returns")
        .expect("the shutdown task does not panic");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the listener stays open for unready_seconds"
    );
    let e = TcpStream::connect(addr)
        .await
        .expect_err("nothing listens after shutdown");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
}

// ------------------------------------------------------------------ pool events and the exchange table

/// The value of the unlabelled metric `name`, if it is there.
fn plain_metric(metrics: &str, name: &str) -> Option<f64> {
    let line = metrics.lines().find(|l| {
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(' '))
    })?;
    Some(
        line.rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no value on metric line {line:?}")),
    )
}

/// One batch ejecting a proxy and then producing more events than the
/// pool's event queue holds (64): the ejection is still logged and counted,
/// and the pool's dropped-events counter is exported (and stays 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_feedback_batch_loses_no_ejection() {
    let h = start(&base_config()).await;
    let fail = feedback_for("px-a", false, Some("proxy_connect"));
    let limited = feedback_for("px-a", false, Some("rate_limited"));
    let mut batch = vec![fail.as_str(); 6];
    batch.extend(std::iter::repeat_n(limited.as_str(), 70));
    let body = format!("[{}]", batch.join(","));
    let r = h
        .post_json("/api/v1/proxy/feedback", "tok-feed-1", &body)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let ack: Value = r.json().await.expect("the answer is JSON");
    assert_eq!(ack["received"], 76, "{ack}");
    assert_eq!(ack["applied"], 76, "{ack}");
    assert_eq!(h.state_of("px-a").await.as_deref(), Some("ejected"));

    // The handler records the batch's events itself before it answers: no
    // waiting for the driver task.
    let m = h.get_text("/metrics", "tok-ops-1").await;
    assert_eq!(
        metric(
            &m,
            "proxy_delegate_ejections_total",
            &["proxy=\"px-a\"", "reason=\"consecutive_failures\""],
        ),
        Some(1.0),
        "the ejection is counted:\n{m}"
    );
    assert_eq!(
        plain_metric(&m, "proxy_delegate_pool_events_dropped_total"),
        Some(0.0),
        "the dropped-events counter is exported and nothing was lost:\n{m}"
    );
    h.stop().await;
}

// ------------------------------------------- body handling: gzip members, encodings, JSON errors

/// POSTs `body` to `path` as `content_type` with this `Content-Encoding`, if
/// any (the body is sent as given: the caller compresses it).
async fn post_raw(
    h: &Harness,
    path: &str,
    content_type: &str,
    encoding: Option<reqwest::header::HeaderValue>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = h
        .http
        .post(h.url(path))
        .bearer_auth("tok-feed-1")
        .header(CONTENT_TYPE, content_type);
    if let Some(encoding) = encoding {
        request = request.header(CONTENT_ENCODING, encoding);
    }
    request
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// `Content-Encoding: gzip`.
fn gzip_encoding() -> Option<reqwest::header::HeaderValue> {
    Some(reqwest::header::HeaderValue::from_static("gzip"))
}

/// RFC 1952 allows a gzip body of several members (`gzip -dc` writes them
/// all): every member is inflated, in JSON and in postcard, and the 64 KiB
/// limit holds for the inflated total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bodies_of_several_members_are_read_whole() {
    let h = start(&base_config()).await;
    let feedback = "/api/v1/proxy/feedback";
    let received = |v: &Value| v["received"].as_u64().expect("received is a count");

    // JSON: a batch of 3 in one member, then a batch of 5 in the next, is
    // two arrays back to back: refused whole (400), never read as 3.
    let batch = |n: usize| format!("[{}]", vec![FEEDBACK_JSON; n].join(","));
    let mut body = gzip(batch(3).as_bytes());
    body.extend(gzip(batch(5).as_bytes()));
    let r = post_raw(&h, feedback, "application/json", gzip_encoding(), body).await;
    let m = expect_error(r, StatusCode::BAD_REQUEST, "malformed_body").await;
    assert!(m.contains("trailing characters"), "{m}");

    // One array of 8 cut across two members is one batch of 8.
    let text = batch(8);
    let (first, second) = text.split_at(text.len() / 2);
    let mut body = gzip(first.as_bytes());
    body.extend(gzip(second.as_bytes()));
    let r = post_raw(&h, feedback, "application/json", gzip_encoding(), body).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(received(&r.json().await.unwrap()), 8);

    // Postcard: 3 events in one member, 5 in the next.
    let one: ProxyFeedback = codec::json::decode(FEEDBACK_JSON.as_bytes()).unwrap();
    let events = |n: usize| postcard(&one).repeat(n);
    let mut body = gzip(&events(3));
    body.extend(gzip(&events(5)));
    let r = post_raw(
        &h,
        feedback,
        "application/x-postcard",
        gzip_encoding(),
        body,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(received(&r.json().await.unwrap()), 8);

    // One request message split across three members (one of them empty).
    let (first, second) = REQUEST_JSON.split_at(20);
    let mut body = gzip(first.as_bytes());
    body.extend(gzip(b""));
    body.extend(gzip(second.as_bytes()));
    let r = post_raw(
        &h,
        "/api/v1/proxy/request",
        "application/json",
        gzip_encoding(),
        body,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);

    // Two members of 40 KiB each: under the limit alone, over it together.
    let half = vec![b' '; 40 * 1024];
    let mut body = gzip(&half);
    body.extend(gzip(&half));
    let r = post_raw(&h, feedback, "application/json", gzip_encoding(), body).await;
    let m = expect_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert!(m.contains("65536"), "{m}");
    h.stop().await;
}

/// Bytes after the last gzip member that are not a member are refused, not
/// ignored; so is a second member cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_trailing_bytes_are_refused() {
    let h = start(&base_config()).await;
    let feedback = "/api/v1/proxy/feedback";
    let member = gzip(FEEDBACK_JSON.as_bytes());

    let mut body = member.clone();
    body.extend_from_slice(b"junk\n");
    let r = post_raw(&h, feedback, "application/json", gzip_encoding(), body).await;
    let m = expect_error(r, StatusCode::BAD_REQUEST, "malformed_body").await;
    assert!(
        m.contains("5 bytes after its last member")
            && m.contains(&format!("from byte {}", member.len()))
            && m.contains("not a gzip member"),
        "{m}"
    );

    // The same after a postcard body.
    let one: ProxyFeedback = codec::json::decode(FEEDBACK_JSON.as_bytes()).unwrap();
    let mut body = gzip(&postcard(&one));
    body.push(0);
    let r = post_raw(
        &h,
        feedback,
        "application/x-postcard",
        gzip_encoding(),
        body,
    )
    .await;
    let m = expect_error(r, StatusCode::BAD_REQUEST, "malformed_body").await;
    assert!(m.contains("not a gzip member"), "{m}");

    // A second member cut short.
    let mut body = member.clone();
    let second = gzip(FEEDBACK_JSON.as_bytes());
    body.extend_from_slice(&second[..second.len() - 4]);
    let r = post_raw(&h, feedback, "application/json", gzip_encoding(), body).await;
    let m = expect_error(r, StatusCode::BAD_REQUEST, "malformed_body").await;
    assert!(m.contains("member 2"), "{m}");

    // Nothing of the refused bodies was applied.
    let a = h.proxy("px-a").await.unwrap();
    assert!(a["latency_ms"].is_null(), "nothing applied: {a}");
    h.stop().await;
}

/// A `Content-Encoding` that is not visible ASCII is an unsupported encoding
/// (415), not "no encoding"; several header lines are one list of codings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_encoding_not_text_or_several_is_415() {
    let h = start(&base_config()).await;
    let not_text = reqwest::header::HeaderValue::from_bytes(b"gz\xffip").expect("a header value");
    let r = post_raw(
        &h,
        "/api/v1/proxy/request",
        "application/json",
        Some(not_text),
        REQUEST_JSON.as_bytes().to_vec(),
    )
    .await;
    let m = expect_error(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert!(m.contains("Content-Encoding") && m.contains("gzip"), "{m}");

    // `identity` then `gzip` on two lines is `identity, gzip`: refused, not
    // read as the first line alone.
    let r = h
        .http
        .post(h.url("/api/v1/proxy/request"))
        .bearer_auth("tok-feed-1")
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_ENCODING, "identity")
        .header(CONTENT_ENCODING, "gzip")
        .body(gzip(REQUEST_JSON.as_bytes()))
        .send()
        .await
        .unwrap();
    let m = expect_error(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert!(m.contains("identity, gzip"), "{m}");
    h.stop().await;
}

/// A feedback event with `field` set to the raw JSON `value`.
fn feedback_with(field: &str, value: &str) -> String {
    let mut event: serde_json::Map<String, Value> =
        serde_json::from_str(&feedback_for("px-b", true, None)).unwrap();
    event.insert(field.to_owned(), serde_json::from_str(value).unwrap());
    serde_json::to_string(&event).unwrap()
}

/// A value of the wrong JSON type is 422 `invalid_field`, naming the
/// field's path and position, never the value (it may be a secret).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_type_errors_name_the_field_not_the_value() {
    let h = start(&base_config()).await;
    let request = "/api/v1/proxy/request";
    let feedback = "/api/v1/proxy/feedback";
    let cases: Vec<(&str, String, &str, &[&str])> = vec![
        (
            request,
            r#"{"exchange_id":5,"connection_type":"websocket","client_id":"c"}"#.into(),
            "exchange_id: invalid type: integer, expected a string at line 1 column 16",
            &[],
        ),
        (
            request,
            r#"{"exchange_id":{"x":"tok-SECRET"},"connection_type":"websocket","client_id":"c"}"#
                .into(),
            "exchange_id: invalid type: map, expected a string at line 1 column 15",
            &["tok-SECRET"],
        ),
        (
            request,
            r#"{"exchange_id":"binance","connection_type":"websocket","client_id":987654321}"#
                .into(),
            "client_id: invalid type: integer, expected a string at line 1 column 76",
            &["987654321"],
        ),
        (
            request,
            REQUEST_JSON.replace(r#""ETH-USD""#, "-12.5e3"),
            "metadata.symbols[1]: invalid type: floating point, expected a string",
            &["12.5", "12500"],
        ),
        (
            request,
            REQUEST_JSON.replace(
                r#"{"feed_types":["trades","book"],"symbols":["BTC-USD","ETH-USD"]}"#,
                r#"["tok-SECRET"]"#,
            ),
            "metadata: invalid type: sequence, expected a JSON object",
            &["tok-SECRET"],
        ),
        (
            request,
            r#""tok-SECRET""#.into(),
            "invalid type: string, expected a JSON object at line 1 column 12",
            &["tok-SECRET"],
        ),
        (
            feedback,
            feedback_with("timestamp", "1727085000"),
            "timestamp: invalid type: integer, expected a string",
            &["1727085000"],
        ),
        (
            feedback,
            feedback_with("success", r#""yes-tok-SECRET""#),
            "success: invalid type: string, expected a boolean",
            &["tok-SECRET"],
        ),
        (
            feedback,
            feedback_with("latency_ms", r#""tok-SECRET""#),
            "latency_ms: invalid type: string, expected a number",
            &["tok-SECRET"],
        ),
        (
            feedback,
            feedback_with("proxy_url", r#"["http://u:tok-SECRET@192.0.2.10:8080"]"#),
            "proxy_url: invalid type: sequence, expected a string",
            &["tok-SECRET"],
        ),
        (
            // A batch: the element, then the field; the position is the
            // body's (line 2).
            feedback,
            format!(
                "[{},\n {}]",
                feedback_for("px-b", true, None),
                feedback_with("success", r#""tok-SECRET""#)
            ),
            "[1] success: invalid type: string, expected a boolean at line 2 column",
            &["tok-SECRET"],
        ),
    ];
    for (path, body, expected, secrets) in cases {
        let r = h.post_json(path, "tok-feed-1", &body).await;
        let m = expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
        assert!(
            m.starts_with(expected),
            "{body}\n  gave {m:?}\n  not {expected:?}"
        );
        assert!(m.contains(" at line "), "{body}: {m}");
        for secret in secrets {
            assert!(!m.contains(secret), "{body}: {secret} echoed in {m:?}");
        }
    }

    // A duplicate key names the field, with its position.
    let r = h
        .post_json(
            request,
            "tok-feed-1",
            r#"{"exchange_id":"binance","exchange_id":"okx","connection_type":"websocket","client_id":"c"}"#,
        )
        .await;
    let m = expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert!(
        m.starts_with("duplicate field `exchange_id` at line 1 column"),
        "{m}"
    );

    // A value the core would quote (short and plain, like a mistyped enum)
    // is never quoted back either: it may be a secret in the wrong field.
    for (field, value) in [
        ("connection_type", r#""Pw-7f3kq9.x""#),
        ("proxy_url", r#""Pw-7f3kq9.x://192.0.2.10:1080""#),
        ("event", r#""Pw-7f3kq9""#),
        ("error_category", r#""Pw-7f3kq9""#),
    ] {
        let body = feedback_with(field, value);
        let r = h.post_json(feedback, "tok-feed-1", &body).await;
        let m = expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
        assert!(m.starts_with(field), "{m}");
        assert!(
            !m.to_lowercase().contains("pw-7f3kq9"),
            "{body}: quoted in {m:?}"
        );
    }

    // The core's own validation errors stand, without the value it quotes.
    let bad_element = feedback_with("exchange_id", r#""""#);
    let cases = [
        (
            request,
            REQUEST_JSON.replace("websocket", "carrier-pigeon"),
            codec::json::decode::<ProxyRequest>(
                REQUEST_JSON
                    .replace("websocket", "carrier-pigeon")
                    .as_bytes(),
            )
            .map(drop),
            "",
        ),
        (
            feedback,
            feedback_with("latency_ms", "99999999999"),
            codec::json::decode::<ProxyFeedback>(
                feedback_with("latency_ms", "99999999999").as_bytes(),
            )
            .map(drop),
            "",
        ),
        (
            feedback,
            format!("[{FEEDBACK_JSON},{bad_element}]"),
            codec::json::decode::<ProxyFeedback>(bad_element.as_bytes()).map(drop),
            "[1] ",
        ),
    ];
    for (path, body, core, at) in cases {
        let core = format!("{at}{}", core.expect_err("the core refuses it"))
            .replace(" \"carrier-pigeon\"", "");
        let r = h.post_json(path, "tok-feed-1", &body).await;
        let m = expect_error(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
        assert_eq!(m, core, "{body}");
    }
    h.stop().await;
}

/// JSON that is not well-formed is 400 `malformed_body` with the line and
/// column of the fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_syntax_errors_give_line_and_column() {
    let h = start(&base_config()).await;
    let request = "/api/v1/proxy/request";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("\u{feff}{REQUEST_JSON}"),
            "malformed JSON at line 1 column 1: the body starts with a UTF-8 byte order mark",
        ),
        (
            "{\"exchange_id\":\"binance\",\n\"connection_type\":\"websocket\",\"client_id\":\"c\",}"
                .into(),
            "malformed JSON at line 2 column 47: trailing comma",
        ),
        (
            r#"{"exchange_id":"binance","connection_type":"websocket","client_id":"c""#.into(),
            "malformed JSON at line 1 column 70: EOF while parsing an object",
        ),
        (
            format!("{REQUEST_JSON} tok-SECRET"),
            "malformed JSON at line 1 column",
        ),
        (
            r#"{"exchange_id":"binance","connection_type":websocket,"client_id":"c"}"#.into(),
            "malformed JSON at line 1 column 44: expected value",
        ),
        (
            // A syntax error inside an unknown field does not echo its name.
            r#"{"exchange_id":"binance","connection_type":"websocket","client_id":"c","tok_secret":"a"#
                .into(),
            "malformed JSON at line 1 column",
        ),
    ];
    for (body, expected) in cases {
        let r = h.post_json(request, "tok-feed-1", &body).await;
        let m = expect_error(r, StatusCode::BAD_REQUEST, "malformed_body").await;
        assert!(
            m.starts_with(expected),
            "{body:?}\n  gave {m:?}\n  not {expected:?}"
        );
        assert!(!m.to_lowercase().contains("secret"), "{m}");
    }
    h.stop().await;
}

/// `n` proxies `q0..q{n-1}` without allow-lists, in TOML.
fn plain_proxies(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "\n[[proxies]]\nid = \"q{i}\"\nurl = \"http://198.51.100.{}:3128\"\n",
                i + 1
            )
        })
        .collect()
}

fn rate_limited_for(proxy: &str, exchange: &str) -> String {
    format!(
        r#"{{"proxy_id":"{proxy}","exchange_id":"{exchange}","connection_type":"websocket","success":false,"error_category":"rate_limited","timestamp":"2024-09-23T10:30:00Z","client_id":"api-test"}}"#
    )
}

/// Feedback naming junk exchanges cannot fill the pool's exchange table for
/// good: a cool-down that cannot be recorded is reported as such (not as
/// applied), and a reload whose allow-lists need entries still succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_exchanges_in_feedback_never_block_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service.toml");
    let head = format!("[rate_limit]\nenabled = false\n{CLIENTS}");
    std::fs::write(&path, format!("{head}{}", plain_proxies(17))).unwrap();
    let h = start_config(ServiceConfig::load(&path).unwrap()).await;
    let post = |body: String| {
        let h = &h;
        async move {
            let r = h
                .post_json("/api/v1/proxy/feedback", "tok-feed-1", &body)
                .await;
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.expect("the answer is JSON")
        }
    };

    // The audit's sequence: 63 junk exchanges on one proxy, then binance.
    let junk: Vec<String> = (0..63)
        .map(|j| rate_limited_for("q1", &format!("junk{j}")))
        .collect();
    let ack = post(format!("[{}]", junk.join(","))).await;
    assert_eq!(ack["applied"], 63, "{ack}");
    let ack = post(rate_limited_for("q1", "binance")).await;
    assert_eq!(
        (&ack["applied"], &ack["cool_down_dropped"]),
        (&Value::from(1), &Value::from(0)),
        "a proxy holds four cool-downs: the other junk entries are free again: {ack}"
    );

    // Now live cool-downs on every entry: four junk exchanges on each of
    // q0..q15 (63 in all). A cool-down for okx cannot be recorded, and the
    // answer says so.
    let junk: Vec<String> = (0..63)
        .map(|j| rate_limited_for(&format!("q{}", j / 4), &format!("filler{j}")))
        .collect();
    let ack = post(format!("[{}]", junk.join(","))).await;
    assert_eq!(ack["applied"], 63, "{ack}");
    let ack = post(rate_limited_for("q16", "okx")).await;
    assert_eq!(ack["received"], 1, "{ack}");
    assert_eq!(ack["applied"], 0, "{ack}");
    assert_eq!(ack["cool_down_dropped"], 1, "{ack}");
    let m = h.get_open("/metrics").await;
    assert_eq!(
        metric(
            &m,
            "proxy_delegate_feedback_ignored_total",
            &["reason=\"cool_down_dropped\""]
        ),
        Some(1.0),
        "{m}"
    );

    // A reload adding a proxy allowed for binance and okx succeeds: junk
    // cool-downs give way to allow-lists.
    std::fs::write(
        &path,
        format!(
            "{head}{}\n[[proxies]]\nid = \"only-binance\"\nurl = \"http://203.0.113.7:3128\"\n\
             exchanges = [\"binance\", \"okx\"]\n",
            plain_proxies(17)
        ),
    )
    .unwrap();
    let report = h
        .running
        .reload()
        .expect("junk cool-downs never block a reload");
    assert_eq!((report.added, report.kept), (1, 17), "{report:?}");
    assert!(h.proxy_ids().await.contains(&"only-binance".to_owned()));
    // okx is tracked now: its cool-downs are recorded again.
    let ack = post(rate_limited_for("q16", "okx")).await;
    assert_eq!(
        (&ack["applied"], &ack["cool_down_dropped"]),
        (&Value::from(1), &Value::from(0)),
        "{ack}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_well_formed_correlation_id_is_echoed_and_nothing_else() {
    let h = start(&base_config()).await;
    let send = |id: &'static str| {
        h.http
            .post(h.url("/api/v1/proxy/request"))
            .bearer_auth("tok-feed-1")
            .header(CONTENT_TYPE, "application/json")
            .header("x-correlation-id", id)
            .body(REQUEST_JSON)
            .send()
    };
    let r = send("00ff00ff00ff00ff").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-correlation-id"], "00ff00ff00ff00ff");
    // Refused requests echo it too (the client logs the refusal with it).
    let r = h
        .http
        .post(h.url("/api/v1/proxy/request"))
        .bearer_auth("wrong-token")
        .header("x-correlation-id", "0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["x-correlation-id"], "0123456789abcdef");
    // Anything but 16 hex digits is not taken.
    for odd in ["not-an-id", "0123456789abcdef0", "tok-feed-1 secret"] {
        let r = send(odd).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get("x-correlation-id").is_none(), "{odd}");
    }
}
