//! `proxy-delegate soak`, the real binary, against real things on loopback:
//! microsocks as a child process, the WebSocket echo server in this process
//! (the injector's fixtures, adapters/tokio/tests/common/), and the real
//! `proxy-delegate serve`, killed with SIGKILL in the middle of a run.
//!
//! The binary runs on a blocking thread with a deadline, so a hang fails
//! the test instead of stalling it; the targets run on the test's runtime.

mod common;
#[path = "../../tokio/tests/common/proxies.rs"]
mod proxies;
#[path = "../../tokio/tests/common/targets.rs"]
mod targets;

use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::BIN;
use proxies::Microsocks;
use proxy_delegate_test_support::ServeProcess;
use targets::ws_echo;

/// Credentials of microsocks.
const USER: &str = "desk";
const PASS: &str = "Pw-soak.5521";
/// The client's token at the service.
const TOKEN: &str = "tok-soak-e2e-7e21b9d4";
/// Every secret of these tests: none may be printed.
const SECRETS: [&str; 2] = [PASS, TOKEN];

/// How long one run of the binary may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------ the binary

/// One finished run of the binary.
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

    fn assert_secret_free(&self) {
        for secret in SECRETS {
            assert!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "the output holds the secret {secret:?}:\n{}",
                self.both()
            );
        }
    }

    /// stdout as the one JSON object it must be.
    fn json(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "one JSON line:\n{}", self.both());
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}:\n{}", self.both()))
    }

    /// The status lines on stderr.
    fn status_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("soak "))
            .collect()
    }
}

/// Starts the binary with `args` on a clean environment.
fn spawn(args: &[OsString]) -> Child {
    Command::new(BIN)
        .env_clear()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start proxy-delegate")
}

/// Waits for `child` (killing it after [`RUN_TIMEOUT`]) and collects its
/// output. Blocks the thread.
fn finish(mut child: Child, args: &[OsString]) -> Run {
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
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let run = Run {
        code: status.and_then(|s| s.code()),
        stdout: out.join().expect("the stdout reader"),
        stderr: err.join().expect("the stderr reader"),
    };
    assert!(
        status.is_some(),
        "proxy-delegate {args:?} did not exit within {RUN_TIMEOUT:?}:\n{}",
        run.both()
    );
    run
}

/// Runs the binary with `args` to its end, on a blocking thread.
async fn run<S: Into<OsString>>(args: impl IntoIterator<Item = S>) -> Run {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    tokio::task::spawn_blocking(move || {
        let child = spawn(&args);
        finish(child, &args)
    })
    .await
    .expect("the thread running the binary")
}

// ------------------------------------------------------------ files

fn dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("proxy-delegate-soak-")
        .tempdir()
        .expect("a temporary directory")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// `soak` of `target` over binance and coinbase with `config`, at
/// concurrency 4 for `duration`, `--json`.
fn soak_args(config: &Path, target: &str, duration: &str) -> Vec<OsString> {
    [
        "soak",
        "--config",
        config.to_str().expect("a UTF-8 path"),
        "--exchanges",
        "binance,coinbase",
        "--duration",
        duration,
        "--concurrency",
        "4",
        "--target",
        target,
        "--timeout",
        "5",
        "--json",
    ]
    .into_iter()
    .map(OsString::from)
    .collect()
}

/// A count in the summary's JSON.
fn count(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

// ------------------------------------------------------------ tests

/// Embedded configuration, no service: every attempt goes through
/// microsocks to the echo server (with `--echo`, one message there and
/// back) and succeeds; the status lines are on stderr, the summary alone on
/// stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_through_microsocks_on_the_embedded_configuration() {
    let target = ws_echo(None).await;
    let proxy = Microsocks::start(Some((USER, PASS)));
    let dir = dir();
    let config = write(
        dir.path(),
        "config.yaml",
        &format!(
            "proxy:\n  enabled: true\n  default:\n    websocket: \"{}\"\n",
            proxy.url("socks5h")
        ),
    );
    let mut args = soak_args(&config, &target.url("/"), "2s");
    args.push("--echo".into());
    let started = Instant::now();
    let r = run(args).await;
    let took = started.elapsed();
    assert_eq!(r.code, Some(0), "{}", r.both());
    r.assert_secret_free();
    assert!(took >= Duration::from_secs(2), "ended after {took:?}");
    let v = r.json();
    let attempts = count(&v, "attempts");
    assert!(attempts > 0, "{v}");
    assert_eq!(count(&v, "successes"), attempts, "{v}");
    assert_eq!(v["failures"], serde_json::json!({}), "{v}");
    assert_eq!(
        v["resolutions"],
        serde_json::json!({ "embedded": attempts }),
        "{v}"
    );
    for key in ["p50", "p99", "max"] {
        assert!(v["resolve_latency_us"][key].is_u64(), "{v}");
    }
    assert!(v["max_fallback_wait_ms"].is_number(), "{v}");
    // No service: no feedback goes anywhere.
    assert_eq!(
        v["feedback"],
        serde_json::json!({ "sent": 0, "dropped": 0, "queued": 0 }),
        "{v}"
    );
    // A status line each second, on stderr, and nothing else there.
    let status = r.status_lines();
    assert!(!status.is_empty(), "{}", r.both());
    assert_eq!(status.len(), r.stderr.lines().count(), "{}", r.both());
    assert!(
        status[0].starts_with("soak 1s: ") && status[0].contains("attempts/s"),
        "{}",
        r.both()
    );
    assert!(status[0].contains("sources embedded "), "{}", r.both());
    // Every success was a handshake at the echo server, closed again.
    assert_eq!(target.upgraded() as u64, attempts, "{v}");
    target.wait_closed(target.opened()).await;
    assert_eq!(target.open_now(), 0);
}

/// A real service routes through microsocks, and is killed (SIGKILL) about
/// 1.5 s into a 4 s run: the run goes on without a single failure (the
/// client answers from its cache, then stale answers or the embedded
/// configuration, which names the same proxy), exits 0, and the feedback
/// counts add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_goes_on_when_the_service_is_killed() {
    let target = ws_echo(None).await;
    let proxy = Microsocks::start(Some((USER, PASS)));
    let dir = dir();
    // Answers live 1 s, so that the kill is felt within the run.
    let service_file = write(
        dir.path(),
        "service.toml",
        &format!(
            "[[clients]]\nname = \"feed\"\nbearer_tokens = [\"{TOKEN}\"]\n\n\
             [pool]\nttl_seconds = 1\n\n\
             [[proxies]]\nid = \"ms-1\"\nurl = \"{}\"\n",
            proxy.url("socks5h")
        ),
    );
    let mut service = {
        let file = service_file.to_str().expect("a UTF-8 path").to_owned();
        tokio::task::spawn_blocking(move || {
            ServeProcess::start(
                BIN,
                &["serve", "--config", &file, "--listen", "127.0.0.1:0"],
                &[],
            )
        })
        .await
        .expect("the starting thread")
    };
    let config = write(
        dir.path(),
        "config.yaml",
        &format!(
            "proxy:\n\
             \x20 enabled: true\n\
             \x20 default:\n\
             \x20   websocket: \"{}\"\n\
             \x20 external_service:\n\
             \x20   enabled: true\n\
             \x20   endpoints: [\"{}\"]\n\
             \x20   auth_method: bearer_token\n\
             \x20   auth_credentials:\n\
             \x20     token: \"{TOKEN}\"\n\
             \x20   timeout_seconds: 2\n\
             \x20   resolve_deadline_ms: 300\n\
             \x20   client_id: soak-e2e\n",
            proxy.url("socks5h"),
            service.url()
        ),
    );

    let args = soak_args(&config, &target.url("/"), "4s");
    let child = {
        let args = args.clone();
        tokio::task::spawn_blocking(move || spawn(&args))
            .await
            .expect("the starting thread")
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = target.upgraded();
    service.kill();
    let r = tokio::task::spawn_blocking(move || finish(child, &args))
        .await
        .expect("the thread running the binary");

    assert_eq!(r.code, Some(0), "{}", r.both());
    r.assert_secret_free();
    let v = r.json();
    let attempts = count(&v, "attempts");
    assert!(
        before_kill > 0,
        "nothing connected before the kill: {}",
        r.both()
    );
    assert!(
        (target.upgraded() as u64) > before_kill as u64,
        "nothing connected after the kill: {}",
        r.both()
    );
    assert_eq!(v["failures"], serde_json::json!({}), "{v}");
    assert_eq!(count(&v, "successes"), attempts, "{v}");
    let resolutions = v["resolutions"].as_object().expect("resolutions");
    let by = |source: &str| resolutions.get(source).and_then(Value::as_u64).unwrap_or(0);
    assert!(by("service") + by("cache") > 0, "{v}");
    assert!(by("stale") + by("embedded") > 0, "{v}");
    assert_eq!(
        resolutions.values().filter_map(Value::as_u64).sum::<u64>(),
        attempts,
        "{v}"
    );
    // Feedback: connect_start, success and disconnect for each connection
    // (no failure, so no retry), each sent, dropped or still queued.
    let feedback = &v["feedback"];
    let (sent, dropped, queued) = (
        count(feedback, "sent"),
        count(feedback, "dropped"),
        count(feedback, "queued"),
    );
    assert!(sent > 0, "{v}");
    assert_eq!(sent + dropped + queued, 3 * attempts, "{v}");
    assert!(!r.status_lines().is_empty(), "{}", r.both());
    eprintln!(
        "soak with the service killed: {v}\nstatus lines:\n{}",
        r.stderr
    );
}

/// Bad arguments: exit 2, one `error:` line (and at most one `hint:` line),
/// nothing on stdout, before anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_exit_2_with_one_line() {
    let good = [
        "soak",
        "--exchanges",
        "binance",
        "--duration",
        "1s",
        "--concurrency",
        "1",
        "--target",
        "ws://127.0.0.1:9/",
    ];
    let with = |key: &str, value: &str| -> Vec<String> {
        let mut args: Vec<String> = good.iter().map(|s| (*s).to_owned()).collect();
        let at = args.iter().position(|a| a == key).expect("a known key");
        args[at + 1] = value.to_owned();
        args
    };
    let cases = [
        (with("--concurrency", "0"), "--concurrency"),
        (with("--concurrency", "10001"), "--concurrency"),
        (with("--target", "ftp://127.0.0.1/"), "ftp://"),
        (with("--target", "not a url"), "not a URL"),
        (with("--duration", "3 fortnights"), "--duration"),
        (with("--duration", "0s"), "--duration"),
        (with("--exchanges", "binance,,okx"), "--exchanges"),
        (with("--exchanges", "0"), "--exchanges"),
    ];
    for (args, needle) in cases {
        let r = run(&args).await;
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.both());
        assert_eq!(r.stdout, "", "{args:?}: {}", r.both());
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert!(
            (1..=2).contains(&lines.len()),
            "{args:?}: one error line and at most a hint:\n{}",
            r.both()
        );
        assert!(lines[0].starts_with("error: "), "{args:?}: {}", r.both());
        assert!(lines[0].contains(needle), "{args:?}: {}", r.both());
        if let Some(hint) = lines.get(1) {
            assert!(hint.starts_with("hint: "), "{args:?}: {}", r.both());
        }
    }
    // A missing required argument, too.
    let r = run(["soak", "--exchanges", "binance"]).await;
    assert_eq!(r.code, Some(2), "{}", r.both());
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.both());
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("--duration"),
        "{}",
        r.both()
    );
    assert!(
        lines[1].starts_with("hint: ") && lines[1].contains("soak --help"),
        "{}",
        r.both()
    );
}

/// SIGINT ends a long run early: the summary is still printed (text), and
/// the status is 130.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_ends_the_run_with_the_summary() {
    let target = ws_echo(None).await;
    let proxy = Microsocks::start(None);
    let dir = dir();
    let config = write(
        dir.path(),
        "config.yaml",
        &format!(
            "proxy:\n  enabled: true\n  default:\n    websocket: \"{}\"\n",
            proxy.url("socks5")
        ),
    );
    let mut args = soak_args(&config, &target.url("/"), "1h");
    args.retain(|a| a != "--json");
    let child = {
        let args = args.clone();
        tokio::task::spawn_blocking(move || spawn(&args))
            .await
            .expect("the starting thread")
    };
    // Once it has connected a few times.
    target.wait_until("used", |t| t.upgraded() >= 5).await;
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let r = tokio::task::spawn_blocking(move || finish(child, &args))
        .await
        .expect("the thread running the binary");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?} after SIGINT",
        started.elapsed()
    );
    assert_eq!(r.code, Some(130), "{}", r.both());
    let summary = r
        .stdout
        .lines()
        .find(|l| l.starts_with("connections "))
        .unwrap_or_else(|| panic!("no summary:\n{}", r.both()));
    assert!(summary.contains(" succeeded, 0 failed"), "{}", r.both());
    assert!(r.stdout.contains("resolutions   embedded "), "{}", r.both());
    assert!(r.stderr.is_empty(), "{}", r.both());
}
