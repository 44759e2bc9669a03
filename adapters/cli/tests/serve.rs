//! `proxy-delegate serve`, run as the real binary: the demo inventory
//! without a configuration, the refusals (non-loopback without a
//! configuration, a bad file), secrets from the environment, SIGHUP reload
//! and SIGTERM drain.
//!
//! Every server process is owned by a guard that kills it on drop, so a
//! failing test never leaks one; every wait has a deadline.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use common::{BIN, EXIT_TIMEOUT, HTTP_TIMEOUT, http_client, proxy_ids, run_to_end, stderr_with};
use proxy_delegate_test_support::{ServeProcess, write_config};

const REQUEST_JSON: &str = r#"{"exchange_id":"binance","connection_type":"websocket","region":"us-east-1","client_id":"cryptofeed-instance-123"}"#;
const FEEDBACK_JSON: &str = r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","exchange_id":"binance","connection_type":"websocket","success":true,"latency_ms":45,"error_details":null,"timestamp":"2024-09-23T10:30:00Z","client_id":"cryptofeed-instance-123"}"#;

fn config_with(token: &str, proxies: &[(&str, &str)]) -> String {
    let mut s = format!("[[clients]]\nname = \"feed\"\nbearer_tokens = [\"{token}\"]\n");
    for (id, url) in proxies {
        s.push_str(&format!("\n[[proxies]]\nid = \"{id}\"\nurl = \"{url}\"\n"));
    }
    s
}

#[tokio::test]
async fn serve_without_config_serves_the_demo_inventory() {
    let mut server = ServeProcess::start(BIN, &["serve", "--listen", "127.0.0.1:0"], &[]);
    let log = server.stderr_text();
    assert!(
        log.contains("notice: no --config given") && log.contains("WITHOUT authentication"),
        "the notice: {log}"
    );
    assert!(server.addr().ip().is_loopback() && server.addr().port() != 0);
    let http = http_client();
    assert_eq!(
        proxy_ids(&http, &server, None).await,
        ["demo-us-1", "demo-eu-1", "demo-ap-1"]
    );
    let r = http
        .post(server.url_for("/api/v1/proxy/request"))
        .header("content-type", "application/json")
        .body(REQUEST_JSON)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["proxy_url"], "socks5://192.0.2.10:1080", "{answer}");
    assert_eq!(answer["metadata"]["proxy_id"], "demo-us-1");
    let r = http.get(server.url_for("/health")).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);

    // SIGHUP without a file: logged, the service goes on.
    server.signal("HUP");
    let r = http.get(server.url_for("/health")).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK, "alive after SIGHUP");

    server.signal("INT");
    let status = server.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "SIGINT stops cleanly");
}

#[test]
fn serve_refuses_a_non_loopback_address_without_config() {
    let (status, _, stderr) = run_to_end(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("loopback"), "{stderr}");
    assert!(stderr.contains("0.0.0.0:0"), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
}

#[test]
fn serve_on_a_busy_port_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, _, stderr) = run_to_end(&["serve", "--listen", &addr]);
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn serve_with_a_bad_config_exits_2_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service.toml");
    write_config(
        &path,
        "[[proxies]]\nid = \"a\"\nurl = \"http://192.0.2.1:3128\"\ncolour = \"red\"\n",
    );
    let p = path.to_str().unwrap();
    let (status, _, stderr) = run_to_end(&["serve", "--config", p, "--listen", "127.0.0.1:0"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(p), "names the file: {stderr}");
    assert!(
        stderr.contains("proxies[0]") && stderr.contains("colour"),
        "names the key: {stderr}"
    );

    // A bad URL: the key is named, the password is not shown.
    write_config(
        &path,
        "[[proxies]]\nid = \"a\"\nurl = \"ftp://u:hunter2@192.0.2.1:21\"\n",
    );
    let (status, _, stderr) = run_to_end(&["serve", "--config", p, "--listen", "127.0.0.1:0"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("proxies[0].url"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");

    // A file that is not there.
    let gone = dir.path().join("absent.toml");
    let g = gone.to_str().unwrap();
    let (status, _, stderr) = run_to_end(&["serve", "--config", g]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(g), "{stderr}");
}

#[tokio::test]
async fn serve_takes_a_token_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service.toml");
    let var = format!("PD_SERVE_TEST_TOKEN_{}", std::process::id());
    write_config(
        &path,
        &config_with(&format!("${{{var}}}"), &[("px-1", "http://192.0.2.1:3128")]),
    );
    let server = ServeProcess::start(
        BIN,
        &[
            "serve",
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[(&var, "tok-from-env")],
    );
    let http = http_client();
    assert_eq!(
        proxy_ids(&http, &server, Some("tok-from-env")).await,
        ["px-1"]
    );
    let r = http
        .get(server.url_for("/api/v1/proxies"))
        .bearer_auth(format!("${{{var}}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    let r = http
        .get(server.url_for("/api/v1/proxies"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    let r = http
        .get(server.url_for("/api/v1/proxies"))
        .bearer_auth("tok-wrong-guess")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    // The log says what was refused and why, and never a token, good or bad.
    let log = stderr_with(&server, "unknown bearer token").await;
    assert!(log.contains("request refused"), "{log}");
    assert!(log.contains("unknown bearer token"), "{log}");
    assert!(!log.contains("tok-from-env"), "{log}");
    assert!(!log.contains("tok-wrong-guess"), "{log}");

    // Without the variable the file is refused, naming the variable.
    let (status, _, stderr) = run_to_end(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&var), "{stderr}");
    assert!(stderr.contains("clients[0].bearer_tokens[0]"), "{stderr}");
}

#[tokio::test]
async fn sighup_reloads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service.toml");
    write_config(
        &path,
        &config_with(
            "tok-1",
            &[
                ("px-1", "http://192.0.2.1:3128"),
                ("px-2", "http://192.0.2.2:3128"),
            ],
        ),
    );
    let server = ServeProcess::with_config(BIN, &path);
    let http = http_client();
    // Answered: the signal handlers are installed (they are set up before
    // the first connection is served).
    assert_eq!(
        proxy_ids(&http, &server, Some("tok-1")).await,
        ["px-1", "px-2"]
    );

    write_config(
        &path,
        &config_with(
            "tok-2",
            &[
                ("px-2", "http://192.0.2.2:3128"),
                ("px-3", "socks5://192.0.2.3:1080"),
            ],
        ),
    );
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http
            .get(server.url_for("/api/v1/proxies"))
            .bearer_auth("tok-2")
            .send()
            .await
            .unwrap();
        if r.status() == reqwest::StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new token not accepted within 10 s of SIGHUP; stderr:\n{}",
            server.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        proxy_ids(&http, &server, Some("tok-2")).await,
        ["px-2", "px-3"]
    );
    let r = http
        .get(server.url_for("/api/v1/proxies"))
        .bearer_auth("tok-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED, "old token");

    // A broken file on SIGHUP: logged, the running configuration stays.
    write_config(&path, "[[proxies]]\nid = \"\"\n");
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stderr_text().contains("reload failed") {
        assert!(
            Instant::now() < deadline,
            "no `reload failed` log within 10 s; stderr:\n{}",
            server.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        proxy_ids(&http, &server, Some("tok-2")).await,
        ["px-2", "px-3"]
    );
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let mut server = ServeProcess::start(BIN, &["serve", "--listen", "127.0.0.1:0"], &[]);
    let addr = server.addr();
    let http = http_client();
    let r = http.get(server.url_for("/health")).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    drop(http);

    // Half a feedback request: in flight.
    let body = FEEDBACK_JSON.as_bytes();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/proxy/feedback HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    write_all(&mut slow, head.as_bytes()).await;
    write_all(&mut slow, first).await;
    // Let the server read the head: a complete exchange on another
    // connection comes after it in the accept queue.
    let r = http_client()
        .get(server.url_for("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);

    server.signal("TERM");
    // The listener closes: shutdown has begun; the process is still there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the listener stays open 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        server.try_wait().is_none(),
        "the process waits for the request in flight"
    );

    write_all(&mut slow, rest).await;
    let answer = read_to_close(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "in flight: {answer}");
    assert!(answer.contains(r#""received":1"#), "{answer}");

    let status = server.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr_text());
    let log = server.stderr_text();
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
}

async fn write_all(s: &mut TcpStream, bytes: &[u8]) {
    tokio::time::timeout(HTTP_TIMEOUT, s.write_all(bytes))
        .await
        .expect("write within the timeout")
        .expect("write");
}

/// Reads until the server closes the connection (bounded).
async fn read_to_close(s: &mut TcpStream) -> String {
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
