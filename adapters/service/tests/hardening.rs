//! The service under abuse: bodies that cost more to read than they weigh,
//! label values that could forge metrics, rejections made below the router,
//! floods of bad credentials, and more connections than it can hold.
//!
//! Every wait is bounded: the HTTP client has a timeout, raw sockets read
//! under `tokio::time::timeout`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use proxy_delegate_service::{Running, Service, ServiceConfig};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use serde_json::Value;

/// How long any single HTTP exchange may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The published feedback body.
const FEEDBACK_JSON: &str = r#"{"proxy_url":"socks5://192.0.2.10:1080","exchange_id":"binance","connection_type":"websocket","success":true,"latency_ms":45,"error_details":null,"timestamp":"2024-09-23T10:30:00Z","client_id":"cryptofeed-instance-123"}"#;

const CONFIG: &str = r#"
[rate_limit]
enabled = false

[[clients]]
name = "feed"
bearer_tokens = ["tok-feed"]

[[proxies]]
id = "px-a"
url = "socks5://192.0.2.10:1080"
regions = ["us-east-1"]
"#;

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

    async fn metrics(&self) -> String {
        let r = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.unwrap()
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

async fn start(toml: &str) -> Harness {
    let config = ServiceConfig::parse(toml, false).expect("the test configuration is valid");
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

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("compress");
    enc.finish().expect("finish gzip")
}

/// A 64 KiB body of empty gzip members (20 bytes each): 3,276 of them.
fn empty_members_body() -> Vec<u8> {
    let empty = gzip(b"");
    let mut body = Vec::with_capacity(64 * 1024);
    while body.len() + empty.len() <= 64 * 1024 {
        body.extend_from_slice(&empty);
    }
    body
}

async fn post_gzip(http: &reqwest::Client, url: &str, body: Vec<u8>) -> reqwest::Response {
    http.post(url)
        .bearer_auth("tok-feed")
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_ENCODING, "gzip")
        .body(body)
        .send()
        .await
        .expect("POST a gzip body")
}

/// Figures, not a check: the cost of a body of empty gzip members against a
/// normal gzip feedback, and `/health` latency while eight clients send such
/// bodies back to back. The clients run on a runtime of their own, the
/// service on the test's two workers.
///
/// `cargo test -p proxy-delegate-service --test hardening -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints figures; run by hand"]
async fn gzip_member_figures() {
    let h = start(CONFIG).await;
    let feedback = h.url("/api/v1/proxy/feedback");
    let health = h.url("/health");
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let normal = gzip(FEEDBACK_JSON.as_bytes());
    let members = empty_members_body();
    let (feedback2, health2) = (feedback.clone(), health.clone());
    let report = clients
        .spawn(async move {
            let http = client();
            let mean = |n: u32, elapsed: Duration| elapsed / n;
            let n = 200;
            // Warm up, then time each kind alone, one request after another.
            for _ in 0..20 {
                post_gzip(&http, &feedback2, normal.clone()).await;
            }
            let t = Instant::now();
            let mut status = 0;
            for _ in 0..n {
                status = post_gzip(&http, &feedback2, normal.clone())
                    .await
                    .status()
                    .as_u16();
            }
            let normal_cost = mean(n, t.elapsed());
            let t = Instant::now();
            let mut member_status = 0;
            for _ in 0..n {
                member_status = post_gzip(&http, &feedback2, members.clone())
                    .await
                    .status()
                    .as_u16();
            }
            let member_cost = mean(n, t.elapsed());
            // /health alone, then under eight attackers.
            let probe = |http: reqwest::Client, url: String| async move {
                let mut lat = Vec::new();
                let end = Instant::now() + Duration::from_secs(3);
                while Instant::now() < end {
                    let t = Instant::now();
                    let _ = http.get(&url).send().await;
                    lat.push(t.elapsed());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                lat.sort();
                (lat[lat.len() / 2], lat[lat.len() * 99 / 100], lat[lat.len() - 1])
            };
            let idle = probe(client(), health2.clone()).await;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let mut attackers = Vec::new();
            for _ in 0..8 {
                let (stop, url, body) = (stop.clone(), feedback2.clone(), members.clone());
                attackers.push(tokio::spawn(async move {
                    let http = client();
                    let mut sent = 0u32;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = http
                            .post(&url)
                            .bearer_auth("tok-feed")
                            .header(CONTENT_TYPE, "application/json")
                            .header(CONTENT_ENCODING, "gzip")
                            .body(body.clone())
                            .send()
                            .await;
                        sent += 1;
                    }
                    sent
                }));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let attacked = probe(client(), health2).await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let mut sent = 0;
            for a in attackers {
                sent += a.await.unwrap();
            }
            format!(
                "normal gzip feedback: {normal_cost:?} per request (status {status})\n\
                 {}-member body: {member_cost:?} per request (status {member_status}), {:.1}x\n\
                 /health alone: p50 {:?} p99 {:?} max {:?}\n\
                 /health under 8 attackers: p50 {:?} p99 {:?} max {:?} ({sent} attack bodies in ~3.3 s)",
                members.len() / 20,
                member_cost.as_secs_f64() / normal_cost.as_secs_f64(),
                idle.0,
                idle.1,
                idle.2,
                attacked.0,
                attacked.1,
                attacked.2,
            )
        })
        .await
        .unwrap();
    eprintln!("{report}");
    clients.shutdown_background();
    h.stop().await;
}

/// The value of the first sample of `name` whose line holds every one of
/// `labels`.
fn metric(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let line = metrics.lines().find(|l| {
        (l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            && labels.iter().all(|needle| l.contains(needle))
    })?;
    line.rsplit(' ').next().and_then(|v| v.parse().ok())
}

/// Asserts the status and the JSON error code of an answer.
async fn expect_error(r: reqwest::Response, status: StatusCode, code: &str) -> String {
    assert_eq!(r.status(), status, "status of {}", r.url());
    let ct = r.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
    let body: Value = r.json().await.expect("the error body is JSON");
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

// ------------------------------------------------------------------ gzip members

/// A body of thousands of empty gzip members is refused after the 16th,
/// and eight clients sending such bodies back to back do not stall
/// `/health` (it took 2.4 s to answer under this attack; now a few ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_member_floods_are_refused_and_health_stays_responsive() {
    let h = start(CONFIG).await;
    let feedback = h.url("/api/v1/proxy/feedback");
    let body = empty_members_body();
    assert!(body.len() / 20 > 3_000);
    let r = post_gzip(&h.http, &feedback, body.clone()).await;
    let m = expect_error(r, StatusCode::BAD_REQUEST, "malformed_body").await;
    assert!(m.starts_with("gzip body has more than 16 members"), "{m}");
    // A few members are still fine.
    let mut few = Vec::new();
    for part in FEEDBACK_JSON.as_bytes().chunks(FEEDBACK_JSON.len() / 15) {
        few.extend(gzip(part));
    }
    let r = post_gzip(&h.http, &feedback, few).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Eight attackers on a runtime of their own; /health probed meanwhile.
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let health = h.url("/health");
    let latencies = clients
        .spawn(async move {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let mut attackers = Vec::new();
            for _ in 0..8 {
                let (stop, url, body) = (stop.clone(), feedback.clone(), body.clone());
                attackers.push(tokio::spawn(async move {
                    let http = client();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = post_gzip(&http, &url, body.clone()).await;
                    }
                }));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let http = client();
            let mut latencies = Vec::new();
            let end = Instant::now() + Duration::from_secs(2);
            while Instant::now() < end {
                let t = Instant::now();
                let r = http.get(&health).send().await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                latencies.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for a in attackers {
                a.await.unwrap();
            }
            latencies.sort();
            latencies
        })
        .await
        .unwrap();
    clients.shutdown_background();
    let median = latencies[latencies.len() / 2];
    assert!(
        median < Duration::from_millis(250),
        "/health took {median:?} (median of {}) under the attack",
        latencies.len()
    );
    h.stop().await;
}

// ------------------------------------------------------------------ metric labels

/// Checks one line of the text exposition format: a comment, or `name`,
/// optional `{label="value",...}` with values escaped (`\\`, `\"`, `\n`
/// only), a space and a value. Returns the metric name of a sample.
fn exposition_line(line: &str) -> Result<Option<String>, String> {
    if line.starts_with("# ") {
        return Ok(None);
    }
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("no metric name".into());
    }
    let mut rest = &line[name_end..];
    if let Some(labels) = rest.strip_prefix('{') {
        rest = labels;
        loop {
            let eq = rest.find("=\"").ok_or("a label without =\"")?;
            if !rest[..eq]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(format!("bad label name {:?}", &rest[..eq]));
            }
            let mut chars = rest[eq + 2..].char_indices();
            let close = loop {
                match chars.next() {
                    None => return Err("unterminated label value".into()),
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\' | '"' | 'n')) => {}
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some((i, '"')) => break eq + 2 + i,
                    Some((_, '\n')) => return Err("raw line feed".into()),
                    Some(_) => {}
                }
            };
            rest = &rest[close + 1..];
            if let Some(more) = rest.strip_prefix(',') {
                rest = more;
            } else if let Some(end) = rest.strip_prefix('}') {
                rest = end;
                break;
            } else {
                return Err(format!("junk after a label value: {rest:?}"));
            }
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    value
        .parse::<f64>()
        .map_err(|_| format!("bad value {value:?}"))?;
    Ok(Some(name.to_owned()))
}

/// Client names and proxy ids holding `"`, `\` or a line feed cannot end a
/// label value early, start a line, or forge a sample: every line of
/// `/metrics` stays well-formed, and no sample but the service's own
/// appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_quotes_backslashes_or_newlines_cannot_forge_metrics() {
    let forged = r#"evil\"} 1\nproxy_delegate_forged_total{x=\"y\"} 7\nz{a=\"\\"#;
    let h = start(&format!(
        r#"
[rate_limit]
enabled = false

[[clients]]
name = "{forged}"
bearer_tokens = ["tok-evil"]

[[proxies]]
id = "px-\"q\\"
url = "socks5://192.0.2.10:1080"
"#
    ))
    .await;
    let r = h
        .http
        .get(h.url("/api/v1/proxies"))
        .bearer_auth("tok-evil")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = h.metrics().await;
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines() {
        match exposition_line(line) {
            Ok(Some(name)) => {
                names.insert(name);
            }
            Ok(None) => {}
            Err(e) => panic!("{e} in {line:?} of\n{text}"),
        }
    }
    assert!(
        names.iter().all(|n| n.starts_with("proxy_delegate_")),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("forged")), "{text}");
    // The names are there, escaped.
    let evil = "evil\\\"} 1\\nproxy_delegate_forged_total{x=\\\"y\\\"} 7\\nz{a=\\\"\\\\";
    assert!(
        text.contains(&format!("client=\"{evil}\"")),
        "{evil} not in\n{text}"
    );
    assert!(text.contains(r#"proxy="px-\"q\\""#), "{text}");
    h.stop().await;
}

// ------------------------------------------------------------------ below the router

/// Sends `request` on a fresh connection and reads until the server closes
/// it: the status, the headers (lower-cased names) and the body.
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading all of it.
    let _ = tokio::time::timeout(HTTP_TIMEOUT, s.write_all(request)).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + HTTP_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no end of the answer within {HTTP_TIMEOUT:?}"),
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    (status, headers, body.as_bytes().to_vec())
}

/// The answers hyper makes before the router sees a request (431 for a
/// head over 32 KiB or over 100 header fields, including a request target
/// too long, and 400 for a bad `Content-Length` or a NUL in a header) carry
/// the same JSON error body as every other rejection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_below_the_router_have_the_json_body() {
    let h = start(CONFIG).await;
    let addr = h.addr();
    let get = |extra: &str| format!("GET /health HTTP/1.1\r\nHost: x\r\n{extra}\r\n").into_bytes();
    let many: String = (0..150).map(|i| format!("X-H-{i}: v\r\n")).collect();
    let long_header = format!("X-Big: {}\r\n", "a".repeat(40 * 1024));
    let long_target = format!(
        "GET /health?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "q".repeat(40 * 1024)
    )
    .into_bytes();
    let post = |cl: &str| {
        format!(
            "POST /api/v1/proxy/feedback HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-feed\r\n\
             Content-Type: application/json\r\n{cl}\r\n{FEEDBACK_JSON}"
        )
        .into_bytes()
    };
    let mut nul = get("");
    let at = nul.len() - 2;
    nul.splice(at..at, b"X-Nul: a\0b\r\n".iter().copied());
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("150 header fields", get(&many), 431, "headers_too_large"),
        (
            "a 40 KiB header",
            get(&long_header),
            431,
            "headers_too_large",
        ),
        (
            "a 40 KiB request target",
            long_target,
            431,
            "headers_too_large",
        ),
        (
            "Content-Length not a number",
            post("Content-Length: abc\r\n"),
            400,
            "malformed_request",
        ),
        (
            "two Content-Lengths",
            post(&format!(
                "Content-Length: {}\r\nContent-Length: 3\r\n",
                FEEDBACK_JSON.len()
            )),
            400,
            "malformed_request",
        ),
        ("a NUL in a header", nul, 400, "malformed_request"),
    ];
    for (what, request, status, code) in cases {
        let (got, headers, body) = raw(addr, &request).await;
        assert_eq!(got, status, "{what}");
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{what}: no {name} in {headers:?}"))
        };
        assert_eq!(header("content-type"), "application/json", "{what}");
        assert_eq!(header("content-length"), body.len().to_string(), "{what}");
        let json: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{what}: {e} in {:?}", String::from_utf8_lossy(&body)));
        assert_eq!(json["error"]["code"], code, "{what}: {json}");
        assert!(
            !json["error"]["message"].as_str().unwrap().is_empty(),
            "{what}"
        );
    }
    // A bad second request on a kept-alive connection: the first is
    // answered as usual, the second with the JSON body.
    let mut two = get("");
    two.extend(post("Content-Length: -1\r\n"));
    let (status, _, body) = raw(addr, &two).await;
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("\"malformed_request\""), "{body}");
    // The service is still there.
    assert_eq!(
        h.http.get(h.url("/health")).send().await.unwrap().status(),
        StatusCode::OK
    );
    h.stop().await;
}

// ------------------------------------------------------------------ Accept

/// `Accept` q-values are honoured: `q=0` refuses a format, and refusing
/// both is 406 `not_acceptable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_q_values_are_honoured() {
    let h = start(CONFIG).await;
    let request = r#"{"exchange_id":"binance","connection_type":"websocket","client_id":"c"}"#;
    let ask = |accept: &'static str| {
        h.http
            .post(h.url("/api/v1/proxy/request"))
            .bearer_auth("tok-feed")
            .header(CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, accept)
            .body(request)
            .send()
    };
    for (accept, media) in [
        ("application/x-postcard;q=0", "application/json"),
        (
            "application/x-postcard;q=0, application/json",
            "application/json",
        ),
        ("application/x-postcard;q=0, */*", "application/json"),
        (
            "application/json;q=0.2, application/x-postcard",
            "application/x-postcard",
        ),
        ("application/json;q=0", "application/x-postcard"),
    ] {
        let r = ask(accept).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{accept}");
        assert_eq!(r.headers()[CONTENT_TYPE], media, "Accept: {accept}");
    }
    for accept in [
        "application/x-postcard;q=0, application/json;q=0",
        "*/*;q=0",
    ] {
        let r = ask(accept).await.unwrap();
        let m = expect_error(r, StatusCode::NOT_ACCEPTABLE, "not_acceptable").await;
        assert!(m.contains("application/x-postcard"), "{m}");
    }
    h.stop().await;
}

// ------------------------------------------------------------------ refused logins

/// An event's fields other than its message: names and values, as text.
type FieldList = Vec<(String, String)>;

/// Every event: its message and its other fields.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(String, FieldList)>>>);

struct Fields(String, FieldList);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            self.1.push((field.name().to_owned(), format!("{value:?}")));
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new(), Vec::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push((fields.0, fields.1));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

impl Capture {
    fn events(&self, message: &str) -> Vec<FieldList> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m.starts_with(message))
            .map(|(_, f)| f.clone())
            .collect()
    }
}

fn field(fields: &[(String, String)], name: &str) -> String {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no field {name} in {fields:?}"))
}

/// 2,000 unknown tokens write at most 20 `request refused` lines a second;
/// the rest are counted in `log_lines_suppressed_total` and summed up in
/// `log lines suppressed` lines, and every refusal is in the metrics.
/// (One thread: the capturing subscriber is this thread's.)
#[tokio::test]
async fn refused_logins_cannot_flood_the_log() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let h = start(CONFIG).await;
    let n = 2_000;
    let started = Instant::now();
    for i in 0..n {
        let r = h
            .http
            .get(h.url("/api/v1/proxies"))
            .bearer_auth(format!("not-a-token-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let seconds = started.elapsed().as_secs_f64();
    // The summary of the last second comes a second after its first
    // suppressed line.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let refused = capture.events("request refused").len();
    let windows = seconds.ceil() as usize + 1;
    assert!(
        refused <= 20 * windows,
        "{refused} `request refused` lines in {seconds:.1} s"
    );
    assert!(refused >= 20, "the first 20 are written: {refused}");
    let summaries = capture.events("log lines suppressed");
    let suppressed: usize = summaries
        .iter()
        .map(|f| {
            assert_eq!(field(f, "event"), "\"request_refused\"");
            field(f, "suppressed").parse::<usize>().unwrap()
        })
        .sum();
    assert_eq!(refused + suppressed, n, "{summaries:?}");
    assert!(summaries.len() <= windows, "{} summaries", summaries.len());
    let metrics = h.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "proxy_delegate_log_lines_suppressed_total",
            &["event=\"request_refused\""]
        ),
        Some(suppressed as f64),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "proxy_delegate_auth_failures_total",
            &["reason=\"unknown_token\""]
        ),
        Some(n as f64)
    );
    h.stop().await;
}

// ------------------------------------------------------------------ max_connections

/// Sends a GET and reads one answer on a kept-alive connection.
async fn get_on(s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(HTTP_TIMEOUT, s.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap_or(0);
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if n == 0 {
            return text.into_owned();
        }
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                return text.into_owned();
            }
        }
    }
}

/// With `max_connections` open, one more is closed at once, unanswered,
/// and counted; when one closes, a new one is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_are_closed() {
    let h = start(&format!("max_connections = 4\n{CONFIG}")).await;
    let addr = h.addr();
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let answer = get_on(&mut s, "/health").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(s);
    }
    let mut fifth = TcpStream::connect(addr).await.unwrap();
    let answer = get_on(&mut fifth, "/health").await;
    assert_eq!(answer, "", "the fifth connection was answered");
    // One closes: its slot is free again (soon: hyper notices the close).
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let answer = get_on(&mut s, "/metrics").await;
        if answer.starts_with("HTTP/1.1 200") {
            break answer;
        }
        assert!(Instant::now() < deadline, "no slot came free");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        metric(&metrics, "proxy_delegate_http_connections", &[]),
        Some(4.0)
    );
    assert_eq!(
        metric(&metrics, "proxy_delegate_http_connections_max", &[]),
        Some(4.0)
    );
    let refused = metric(
        &metrics,
        "proxy_delegate_http_connections_refused_total",
        &[],
    )
    .unwrap();
    assert!(refused >= 1.0, "{metrics}");
    drop(held);
    h.stop().await;
}
