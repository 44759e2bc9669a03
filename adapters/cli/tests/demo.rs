//! `proxy-delegate demo`, the real binary: it runs its five phases on
//! 127.0.0.1 (its own exchange, proxies and service, in process) and exits 0.
//! Each run is killed after [`RUN_TIMEOUT`], so a hang fails the test
//! instead of stalling it. Nothing here asserts on speed; the durations are
//! printed.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_proxy-delegate");

/// How long one run may take before it is killed and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The passwords of the demo's proxies (adapters/cli/src/demo/proxies.rs):
/// never to be printed.
const PASSWORDS: [&str; 2] = ["Http-demo-pw.4821", "Socks-demo-pw.7390"];

const HEADERS: [&str; 5] = [
    "Phase 1/5: ",
    "Phase 2/5: ",
    "Phase 3/5: ",
    "Phase 4/5: ",
    "Phase 5/5: ",
];

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn both(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    fn assert_ok(&self) {
        assert_eq!(self.code, Some(0), "the demo failed:\n{}", self.both());
    }

    fn assert_no_password(&self) {
        use base64::Engine as _;
        for password in PASSWORDS {
            // As written, and as a Basic credential.
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("demo:{password}"));
            for secret in [password, basic.as_str()] {
                assert!(
                    !self.stdout.contains(secret) && !self.stderr.contains(secret),
                    "the output holds the proxy password {password:?}:\n{}",
                    self.both()
                );
            }
        }
    }
}

/// Runs `proxy-delegate demo <args>` on a clean environment plus `env`,
/// killing it after [`RUN_TIMEOUT`].
fn demo(args: &[&str], env: &[(&str, &str)]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("demo")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start proxy-delegate demo");
    let mut out = child.stdout.take().expect("stdout is piped");
    let mut err = child.stderr.take().expect("stderr is piped");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the demo") {
            break Some(status);
        }
        if started.elapsed() >= RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        code: status.and_then(|s| s.code()),
        stdout: out.join().expect("the stdout reader"),
        stderr: err.join().expect("the stderr reader"),
    };
    assert!(
        status.is_some(),
        "proxy-delegate demo {args:?} did not exit within {RUN_TIMEOUT:?}:\n{}",
        run.both()
    );
    eprintln!(
        "proxy-delegate demo {args:?} took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    run
}

/// `the service moved binance: <from> -> <to>`: (from, to).
fn moved(text: &str) -> Option<(String, String)> {
    let line = text
        .lines()
        .find(|l| l.contains("the service moved binance: "))?;
    let (_, rest) = line.split_once("the service moved binance: ")?;
    let (from, to) = rest.split_once(" -> ")?;
    Some((from.trim().to_owned(), to.trim().to_owned()))
}

#[test]
fn the_demo_shows_every_phase_and_exits_0() {
    let run = demo(&[], &[]);
    run.assert_ok();
    run.assert_no_password();
    for header in HEADERS {
        assert!(
            run.stdout.lines().any(|l| l.starts_with(header)),
            "no {header:?} header:\n{}",
            run.both()
        );
    }
    // Phase 2: the exchange moves to another proxy of the service.
    let (from, to) = moved(&run.stdout).unwrap_or_else(|| panic!("no move:\n{}", run.both()));
    assert_ne!(from, to, "{}", run.both());
    assert!(
        from.starts_with("demo-") && to.starts_with("demo-"),
        "{from} -> {to}"
    );
    // The proxies are shown, their passwords as ***.
    assert!(
        run.stdout.contains("socks5://demo:***@127.0.0.1:"),
        "{}",
        run.both()
    );
    assert!(
        run.stdout.contains("http://demo:***@127.0.0.1:"),
        "{}",
        run.both()
    );
    // Phases 3 and 4 say what they measured; the summary follows.
    for text in [
        "first fallback answer ",
        "first answer of the service ",
        "every exchange is back on the service's answers",
        "resolutions ",
        "feedback ",
    ] {
        assert!(run.stdout.contains(text), "no {text:?}:\n{}", run.both());
    }
    // Not a terminal: no colour.
    assert!(!run.stdout.contains('\x1b'), "{}", run.both());
}

#[test]
fn the_json_summary_counts_every_source_and_the_feedback() {
    let run = demo(&["--json"], &[]);
    run.assert_ok();
    run.assert_no_password();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line on stdout:\n{}", run.both());
    let summary: Value =
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}:\n{}", run.both()));
    // The progress went to stderr.
    for header in HEADERS {
        assert!(
            run.stderr.contains(header),
            "no {header:?}:\n{}",
            run.both()
        );
    }
    for source in ["service", "cache", "stale", "embedded"] {
        let n = summary["resolutions"][source].as_u64().unwrap_or(0);
        assert!(n > 0, "no resolution from {source}: {summary}");
    }
    assert!(
        summary["feedback"]["sent"].as_u64().unwrap_or(0) > 0,
        "no feedback sent: {summary}"
    );
    let attempts = summary["attempts"].as_u64().unwrap_or(0);
    let successes = summary["successes"].as_u64().unwrap_or(0);
    assert!(attempts > 0 && successes > 0, "{summary}");
    // Phase 2's failed attempt through the stopped proxy is counted.
    assert!(
        summary["failures"]["proxy_connect"].as_u64().unwrap_or(0) >= 1,
        "{summary}"
    );
    let moved = &summary["demo"]["moved"];
    assert_eq!(moved["exchange"], "binance", "{summary}");
    assert!(
        moved["from"].is_string() && moved["to"].is_string(),
        "{summary}"
    );
    assert_ne!(moved["from"], moved["to"], "{summary}");
    for figure in [
        "first_fallback_after_ms",
        "first_delegated_after_ms",
        "all_delegated_after_ms",
        "duration_ms",
    ] {
        assert!(
            summary["demo"][figure].as_f64().is_some(),
            "no {figure}: {summary}"
        );
    }
    for key in ["p50", "p99", "max"] {
        assert!(
            summary["resolve_latency_us"][key].is_u64(),
            "{key}: {summary}"
        );
    }
}

/// Every log line the demo can print, its proxies' libraries included, is
/// free of their passwords (fast-socks5 logs the password it receives at
/// DEBUG: the demo never lets its logs through).
#[test]
fn no_password_reaches_the_logs_even_at_trace() {
    let run = demo(&[], &[("RUST_LOG", "trace")]);
    run.assert_ok();
    assert!(
        run.stderr.contains("TRACE"),
        "RUST_LOG=trace logged nothing:\n{}",
        run.both()
    );
    run.assert_no_password();
}
