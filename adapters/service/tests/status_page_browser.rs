//! The status page (`GET /`) rendered by a real browser: Debian's headless
//! Chromium loads the page from a server on 127.0.0.1, and the test checks the
//! DOM the browser built (not the HTML we wrote), that a strict
//! Content-Security-Policy blocks nothing (the page loads and runs nothing),
//! and that a screenshot comes out.
//!
//! Chromium must be installed at `/usr/bin/chromium` (Debian package
//! `chromium`); `scripts/test.sh` installs it. Without it this test fails, on
//! purpose: it never passes silently.
//!
//! The browser part (`dump_dom`, `screenshot`) takes any URL, so the same
//! checks can run against the real service binary.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header;
use axum::response::Html;
use axum::routing::get;
use proxy_delegate_core::model::ProxyUrl;
use proxy_delegate_service::render_status_page;
use proxy_delegate_service::snapshot::{FailureCount, PoolSummary, ProxyRow, Snapshot};

/// Where Debian's `chromium` package puts the browser.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Chromium is killed after this long, so the test can never hang.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);
/// The policy the test server sends: nothing may load, no script may run;
/// only inline style is allowed.
const STRICT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// The id of a proxy whose id tries to inject markup.
const HOSTILE_ID: &str = "evil<i>x</i>&\"'";

/// What one Chromium run printed.
struct ChromiumOutput {
    stdout: String,
    stderr: String,
}

/// The browser binary, or a failure that says how to get it.
fn chromium() -> &'static Path {
    let path = Path::new(CHROMIUM);
    assert!(
        path.exists(),
        "{CHROMIUM} is missing, so the status page cannot be checked in a browser: \
         run scripts/test.sh (it installs Debian's `chromium` package), \
         or `apt-get install -y chromium`"
    );
    path
}

/// Runs headless Chromium on `url` with `extra` flags and a fresh profile;
/// kills it (its whole process group) after [`CHROMIUM_TIMEOUT`].
///
/// Output goes to files, not pipes, so a browser helper process that
/// outlives the main one can never block the test.
fn run_chromium(url: &str, extra: &[&str]) -> ChromiumOutput {
    let browser = chromium();
    let dir = tempfile::tempdir().expect("create a temporary directory for Chromium");
    let profile = dir.path().join("profile");
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let stdout_file = fs::File::create(&stdout_path).expect("create Chromium's stdout file");
    let stderr_file = fs::File::create(&stderr_path).expect("create Chromium's stderr file");

    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--no-proxy-server",
            // Belt and braces: no name resolves, so nothing can leave 127.0.0.1.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            // Console messages (CSP violations among them) go to stderr.
            "--enable-logging=stderr",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(stdout_file)
        .stderr(stderr_file)
        // Its own process group, so a timeout kills the helpers too.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("start {CHROMIUM}: {e}"));

    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= CHROMIUM_TIMEOUT => {
                // Not reaped yet, so the group id is still ours.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
                panic!(
                    "Chromium did not finish within {CHROMIUM_TIMEOUT:?} on {url}; killed it. \
                     Its stderr ends with:\n{}",
                    tail(&stderr, 40)
                );
            }
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("wait for Chromium: {e}"),
        }
    };
    let stdout = fs::read_to_string(&stdout_path).expect("read Chromium's stdout");
    let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        status.success(),
        "Chromium failed on {url} ({status}); its stderr ends with:\n{}",
        tail(&stderr, 40)
    );
    ChromiumOutput { stdout, stderr }
}

/// The DOM Chromium built from `url` (after load), serialized as HTML, and
/// the messages the page wrote to the browser console (CSP violations
/// included).
fn dump_dom_and_console(url: &str) -> (String, Vec<String>) {
    let out = run_chromium(url, &["--dump-dom"]);
    let console = out
        .stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    (out.stdout, console)
}

/// The DOM Chromium built from `url`, serialized as HTML.
fn dump_dom(url: &str) -> String {
    dump_dom_and_console(url).0
}

/// Takes a 1280×800 screenshot of `url` into `png`.
fn screenshot(url: &str, png: &Path) {
    let out = run_chromium(
        url,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,800",
            "--hide-scrollbars",
        ],
    );
    assert!(
        png.exists(),
        "Chromium wrote no screenshot to {}; its stderr ends with:\n{}",
        png.display(),
        tail(&out.stderr, 40)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Serves `page` at `/` on 127.0.0.1 with a strict CSP; returns the runtime
/// (keep it alive while the browser runs) and the page's URL.
fn serve(page: String) -> (tokio::runtime::Runtime, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("build a tokio runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let app = Router::new().route(
        "/",
        get(move || {
            let page = page.clone();
            async move { ([(header::CONTENT_SECURITY_POLICY, STRICT_CSP)], Html(page)) }
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await });
    (rt, format!("http://{addr}/"))
}

fn proxy(id: &str, url: &str, state: &'static str) -> ProxyRow {
    let url = ProxyUrl::parse(url)
        .unwrap_or_else(|e| panic!("fixture URL {url}: {e}"))
        .without_credentials()
        .to_string();
    ProxyRow {
        id: id.to_owned(),
        url,
        regions: vec!["eu-west".to_owned()],
        state,
        health_score: 0.97,
        success_rate: 0.99,
        latency_ms: Some(42.0),
        open_connections: 0,
        max_connections: None,
        weight: 1,
        ejections: 0,
        ejected_for_seconds: None,
        recent_failures: Vec::new(),
    }
}

/// A pool with one proxy in each state, failures, and a hostile id.
fn fixture() -> Snapshot {
    let mut fra = proxy("fra-1", "http://alice:s3cret-pw@10.1.0.1:3128", "active");
    fra.open_connections = 3;
    fra.max_connections = Some(10);

    let mut ams = proxy("ams-2", "socks5://10.1.0.2:1080", "cooling_down");
    ams.regions = vec!["eu-west".to_owned(), "eu-central".to_owned()];
    ams.health_score = 0.62;
    ams.success_rate = 0.7;
    ams.latency_ms = Some(310.0);
    ams.open_connections = 1;
    ams.recent_failures = vec![
        FailureCount {
            category: "proxy_connect",
            count: 3,
        },
        FailureCount {
            category: "timeout",
            count: 1,
        },
    ];

    let mut nyc = proxy("nyc-3", "http://10.2.0.3:8080", "ejected");
    nyc.regions = vec!["us-east".to_owned()];
    nyc.health_score = 0.18;
    nyc.success_rate = 0.2;
    nyc.latency_ms = Some(1250.0);
    nyc.ejections = 2;
    nyc.ejected_for_seconds = Some(42);
    nyc.recent_failures = vec![
        FailureCount {
            category: "geo_blocked",
            count: 5,
        },
        FailureCount {
            category: "rate_limited",
            count: 2,
        },
    ];

    let mut off = proxy("sgp-4", "https://10.3.0.4:8443", "disabled");
    off.regions = vec!["ap-southeast".to_owned()];
    off.health_score = 0.5;
    off.latency_ms = None;

    let evil = proxy(HOSTILE_ID, "http://10.9.9.9:3128", "active");

    Snapshot {
        summary: PoolSummary {
            proxies: 5,
            available: 2,
            ejected: 1,
            max_ejected: 2,
        },
        proxies: vec![fra, ams, nyc, off, evil],
    }
}

/// Decodes the character references Chromium's serializer writes.
fn decode(text: &str) -> String {
    text.replace("&nbsp;", "\u{a0}")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The text content of serialized `html`: tags dropped, references decoded.
fn text_of(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    decode(&text).replace('\u{a0}', " ").trim().to_owned()
}

/// Every `<tr data-proxy-id="…">` of the dumped DOM: (decoded id, row HTML).
fn rows(dom: &str) -> Vec<(String, &str)> {
    const OPEN: &str = "<tr data-proxy-id=\"";
    let mut found = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find(OPEN) {
        let after = &rest[at + OPEN.len()..];
        let quote = after.find('"').expect("attribute value is closed");
        let end = after.find("</tr>").expect("row is closed");
        found.push((decode(&after[..quote]), &after[quote..end]));
        rest = &after[end..];
    }
    found
}

/// The text of the first element with class `class` (first in its class list) in `html`.
fn cell(html: &str, class: &str) -> String {
    let start = html
        .find(&format!("class=\"{class}"))
        .unwrap_or_else(|| panic!("no element of class {class} in {html}"));
    let tag_start = html[..start].rfind('<').expect("attribute inside a tag");
    let name_end = tag_start
        + 1
        + html[tag_start + 1..]
            .find([' ', '>'])
            .expect("tag name ends");
    let name = &html[tag_start + 1..name_end];
    let body = start + html[start..].find('>').expect("tag closes") + 1;
    let close = body
        + html[body..]
            .find(&format!("</{name}>"))
            .expect("element closes");
    // Cells and spans here hold no nested element of their own kind.
    text_of(&html[body..close])
}

fn by_id(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id}"));
    let body = start + dom[start..].find('>').expect("tag closes") + 1;
    let close = body + dom[body..].find('<').expect("text ends");
    text_of(&dom[body..close])
}

#[test]
fn status_page_reads_right_in_chromium() {
    let snapshot = fixture();
    let (_rt, url) = serve(render_status_page(&snapshot, 30));

    let (dom, console) = dump_dom_and_console(&url);

    // Nothing blocked by the strict CSP, nothing logged: no script, no fetch.
    assert!(
        console.is_empty(),
        "the page wrote to the browser console (a CSP violation?):\n{}",
        console.join("\n")
    );

    // The document frame.
    assert!(
        dom.contains("<title>proxy-delegate service</title>"),
        "title missing in:\n{dom}"
    );
    assert!(dom.contains("http-equiv=\"refresh\" content=\"30\""));
    assert!(!dom.contains("<script"), "a script element in the DOM");

    // The summary line.
    assert_eq!(by_id(&dom, "sum-proxies"), "5");
    assert_eq!(by_id(&dom, "sum-available"), "2");
    assert_eq!(by_id(&dom, "sum-ejected"), "1");
    assert_eq!(by_id(&dom, "sum-max-ejected"), "2");

    // One row per proxy, in inventory order, with the ids as the browser
    // parsed them: the hostile id is text, not markup.
    let rows = rows(&dom);
    let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    let expected: Vec<&str> = snapshot.proxies.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, expected);

    struct Want {
        state: &'static str,
        health: &'static str,
        open: &'static str,
        failures: &'static str,
        url: &'static str,
    }
    let wants = [
        Want {
            state: "active",
            health: "97%",
            open: "3 / 10",
            failures: "none",
            url: "http://10.1.0.1:3128",
        },
        Want {
            state: "cooling down",
            health: "62%",
            open: "1 / ∞",
            failures: "proxy_connect 3 · timeout 1",
            url: "socks5://10.1.0.2:1080",
        },
        Want {
            state: "ejected",
            health: "18%",
            open: "0 / ∞",
            failures: "geo_blocked 5 · rate_limited 2",
            url: "http://10.2.0.3:8080",
        },
        Want {
            state: "disabled",
            health: "50%",
            open: "0 / ∞",
            failures: "none",
            url: "https://10.3.0.4:8443",
        },
        Want {
            state: "active",
            health: "97%",
            open: "0 / ∞",
            failures: "none",
            url: "http://10.9.9.9:3128",
        },
    ];
    for ((id, row), want) in rows.iter().zip(&wants) {
        assert_eq!(cell(row, "badge"), want.state, "{id}: state badge");
        assert_eq!(cell(row, "health"), want.health, "{id}: health");
        assert_eq!(cell(row, "open"), want.open, "{id}: open connections");
        assert_eq!(cell(row, "failures"), want.failures, "{id}: failures");
        assert_eq!(cell(row, "id"), *id, "{id}: id cell");
        assert_eq!(cell(row, "url"), want.url, "{id}: URL cell");
    }
    assert_eq!(cell(rows[2].1, "state"), "ejectedback in 42 s");
    assert_eq!(cell(rows[2].1, "ejections"), "2");

    // The hostile id is shown as the literal text: had it become markup, the
    // browser would have built an <i> element and the text would differ.
    assert_eq!(cell(rows[4].1, "id"), HOSTILE_ID);

    // No credential reaches the page, not even the user name.
    assert!(!dom.contains("s3cret-pw"), "a password in the page");
    assert!(!dom.contains("alice"), "a user name in the page");

    // The screenshot: a real 1280×800 PNG with content.
    let shots = tempfile::tempdir().expect("create a temporary directory");
    let png = shots.path().join("status.png");
    screenshot(&url, &png);
    let bytes = fs::read(&png).expect("read the screenshot");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG"
    );
    let (width, height) = png_size(&bytes);
    assert_eq!((width, height), (1280, 800), "screenshot size");
    assert!(
        bytes.len() > 5 * 1024,
        "the screenshot is only {} bytes: the page rendered (almost) nothing",
        bytes.len()
    );
    // Set STATUS_PAGE_SCREENSHOT=/some/path.png to keep a copy to look at.
    if let Some(keep) = std::env::var_os("STATUS_PAGE_SCREENSHOT") {
        let keep = PathBuf::from(keep);
        fs::copy(&png, &keep).unwrap_or_else(|e| panic!("copy to {}: {e}", keep.display()));
    }
}

#[test]
fn empty_inventory_reads_right_in_chromium() {
    let snapshot = Snapshot {
        summary: PoolSummary {
            proxies: 0,
            available: 0,
            ejected: 0,
            max_ejected: 0,
        },
        proxies: Vec::new(),
    };
    let (_rt, url) = serve(render_status_page(&snapshot, 5));
    let dom = dump_dom(&url);
    assert!(rows(&dom).is_empty(), "proxy rows in an empty inventory");
    let empty = cell(&dom, "empty");
    assert!(
        empty.starts_with("No proxies in the inventory"),
        "empty row reads {empty:?}"
    );
    assert_eq!(by_id(&dom, "sum-proxies"), "0");
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.len() >= 24 && &png[12..16] == b"IHDR", "no IHDR chunk");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

/// A feedback event about `proxy` as the service receives it.
fn feedback(proxy: &str, event: &str, category: Option<&str>) -> String {
    let success = event == "success" || event == "connect_start";
    let category = category.map_or(String::new(), |c| format!(r#","error_category":"{c}""#));
    format!(
        r#"{{"proxy_id":"{proxy}","exchange_id":"binance","connection_type":"websocket","event":"{event}","success":{success}{category},"timestamp":"2026-01-01T00:00:00Z","client_id":"browser-test"}}"#
    )
}

/// The real service, driven into every state by feedback over HTTP, then its
/// `GET /` loaded in Chromium: the page the service serves (with its own
/// headers) reads right and carries no credential.
#[test]
fn the_service_status_page_reads_right_in_chromium() {
    use proxy_delegate_service::{Service, ServiceConfig};
    let config = ServiceConfig::parse(
        r#"
[rate_limit]
enabled = false

[pool]
eject_consecutive_failures = 3
max_ejected_percent = 50

[[proxies]]
id = "live-ok"
url = "socks5://alice:s3cret-pw@192.0.2.10:1080"
regions = ["us-east-1"]

[[proxies]]
id = "live-ejected"
url = "http://bob:hunter2@198.51.100.20:3128"
regions = ["eu-west-1"]

[[proxies]]
id = "live-geo"
url = "socks5h://203.0.113.30:1080"
regions = ["ap-northeast-1"]

[[proxies]]
id = "live-off"
url = "http://203.0.113.40:3128"
enabled = false
"#,
        false,
    )
    .expect("the test configuration is valid");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("build a tokio runtime");
    let running = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        Service::new(config)
            .expect("service builds")
            .start(listener)
            .expect("service starts")
    });
    let base = format!("http://{}", running.local_addr());
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build the HTTP client");
    let events = [
        feedback("live-ok", "connect_start", None),
        feedback("live-ok", "connect_start", None),
        feedback("live-ejected", "failure", Some("proxy_connect")),
        feedback("live-ejected", "failure", Some("proxy_connect")),
        feedback("live-ejected", "failure", Some("timeout")),
        feedback("live-geo", "failure", Some("geo_blocked")),
    ];
    let page_headers = rt.block_on(async {
        let batch = format!("[{}]", events.join(","));
        let r = http
            .post(format!("{base}/api/v1/proxy/feedback"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(batch)
            .send()
            .await
            .expect("POST feedback");
        assert_eq!(r.status(), 200, "feedback accepted");
        let r = http.get(format!("{base}/")).send().await.expect("GET /");
        assert_eq!(r.status(), 200);
        r.headers().clone()
    });
    let csp = page_headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .expect("the service sends a Content-Security-Policy with the page");
    assert!(csp.contains("default-src 'none'"), "{csp}");

    let (dom, console) = dump_dom_and_console(&format!("{base}/"));
    assert!(
        console.is_empty(),
        "the page made the browser complain (a CSP violation?): {console:?}"
    );
    let rows = rows(&dom);
    let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["live-ok", "live-ejected", "live-geo", "live-off"]);
    let row = |id: &str| rows.iter().find(|(i, _)| i == id).expect("row").1;
    assert_eq!(cell(row("live-ok"), "badge"), "active");
    assert_eq!(cell(row("live-ok"), "open"), "2 / ∞");
    assert_eq!(cell(row("live-ok"), "url"), "socks5://192.0.2.10:1080");
    assert_eq!(cell(row("live-ejected"), "badge"), "ejected");
    assert_eq!(
        cell(row("live-ejected"), "failures"),
        "proxy_connect 2 · timeout 1"
    );
    assert_eq!(cell(row("live-geo"), "badge"), "cooling down");
    assert_eq!(cell(row("live-geo"), "failures"), "geo_blocked 1");
    assert_eq!(cell(row("live-off"), "badge"), "disabled");
    assert_eq!(by_id(&dom, "sum-ejected"), "1");
    for secret in ["s3cret-pw", "alice", "hunter2", "bob:"] {
        assert!(!dom.contains(secret), "{secret:?} reached the page");
    }
    rt.block_on(running.shutdown());
}
