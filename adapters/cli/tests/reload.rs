//! Configuration files and the real binary: a hostile file on SIGHUP cannot
//! hurt the running service (it is refused, the service says why, keeps its
//! configuration and still stops at once on SIGTERM); a service with no
//! client on a public address must be chosen; `check-config` warns about an
//! alias dropped beside its canonical key.
//!
//! Every server process is owned by a guard that kills it on drop; every
//! wait has a deadline.

mod common;

use std::time::{Duration, Instant};

use common::{BIN, EXIT_TIMEOUT, http_client, proxy_ids, run_to_end};
use proxy_delegate_test_support::{ServeProcess, write_config};

/// The service's log once it holds `n` lines containing `needle`, waiting
/// at most 10 s.
async fn nth_line_with(server: &ServeProcess, needle: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.stderr_text();
        let found: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
        if found.len() >= n {
            return found[n - 1].to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no {n}th `{needle}` line within 10 s; stderr:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 10,000 names behind one anchor, repeated by 2,000 clients (107 KB): a
/// reload took 1.1 GB and 4 s, on the signal loop.
fn alias_bomb() -> String {
    let names: Vec<String> = (0..10_000).map(|i| format!("n{i}")).collect();
    let mut t = format!(
        "listen: 127.0.0.1:0\nclients:\n- {{name: c, tls_names: &n [{}]}}\n",
        names.join(",")
    );
    for i in 1..2_000 {
        t.push_str(&format!("- {{name: c{i}, tls_names: *n}}\n"));
    }
    t
}

/// A quote in a block scalar hid 100,000 `[` from the nesting check: a
/// reload took 35 s, on the signal loop, and SIGTERM waited for it.
fn deep_nesting() -> String {
    format!("x: |\n  \"\nproxies: {}\n", "[".repeat(100_000))
}

#[tokio::test]
async fn a_hostile_file_on_sighup_is_refused_and_sigterm_still_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service.yaml");
    let good = "clients:\n- {name: feed, bearer_tokens: [tok-1]}\nproxies:\n- {id: px-1, url: 'http://192.0.2.1:3128'}\n";
    write_config(&path, good);
    let mut server = ServeProcess::with_config(BIN, &path);
    let http = http_client();
    assert_eq!(proxy_ids(&http, &server, Some("tok-1")).await, ["px-1"]);

    for (n, (text, why)) in [
        (alias_bomb(), "once aliases are expanded"),
        (deep_nesting(), "brackets nested deeper than 64 levels"),
    ]
    .into_iter()
    .enumerate()
    {
        write_config(&path, &text);
        let sent = Instant::now();
        server.signal("HUP");
        let line = nth_line_with(&server, "reload failed", n + 1).await;
        let took = sent.elapsed();
        assert!(line.contains(why), "says why: {line}");
        assert!(
            took < Duration::from_secs(5),
            "refused in {took:?} (each took seconds before): {line}"
        );
        // The previous configuration stays, and the service answers.
        assert_eq!(proxy_ids(&http, &server, Some("tok-1")).await, ["px-1"]);
    }

    // SIGTERM right after SIGHUP: the reload does not hold the signal loop.
    write_config(&path, &deep_nesting());
    server.signal("HUP");
    let sent = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", server.stderr_text());
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "stopped {:?} after SIGTERM; stderr:\n{}",
        sent.elapsed(),
        server.stderr_text()
    );
}

/// A setting read only at start-up, changed in the file, is named in a
/// warning on reload, and only such a setting (`--listen` overriding the
/// file is not a change); the inventory still follows the file.
#[tokio::test]
async fn a_restart_only_change_is_named_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service.yaml");
    let file = |max: u32, proxy: &str| {
        format!(
            "max_connections: {max}\nclients:\n- {{name: feed, bearer_tokens: [tok-1]}}\n\
             proxies:\n- {{id: {proxy}, url: 'http://192.0.2.1:3128'}}\n"
        )
    };
    write_config(&path, &file(100, "px-1"));
    let server = ServeProcess::with_config(BIN, &path);
    let http = http_client();
    assert_eq!(proxy_ids(&http, &server, Some("tok-1")).await, ["px-1"]);

    write_config(&path, &file(200, "px-2"));
    server.signal("HUP");
    let line = nth_line_with(&server, "takes effect at restart", 1).await;
    assert!(
        line.contains("max_connections"),
        "names the setting: {line}"
    );
    assert_eq!(proxy_ids(&http, &server, Some("tok-1")).await, ["px-2"]);
    // `--listen` overrides the file's default: that is no change to warn of.
    let warnings = server.stderr_text();
    let warnings: Vec<&str> = warnings
        .lines()
        .filter(|l| l.contains("takes effect at restart"))
        .collect();
    assert_eq!(warnings.len(), 1, "only max_connections: {warnings:?}");
}

#[tokio::test]
async fn no_authentication_on_a_public_address_must_be_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service.toml");
    let p = path.to_str().unwrap();
    let proxies = "[[proxies]]\nid = \"px-1\"\nurl = \"http://192.0.2.1:3128\"\n";

    // No client, a public address from the file or from --listen: refused.
    write_config(&path, &format!("listen = \"0.0.0.0:0\"\n{proxies}"));
    let (status, _, stderr) = run_to_end(&["serve", "--config", p]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no client is configured"), "{stderr}");
    assert!(stderr.contains("auth.required = false"), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
    write_config(&path, proxies);
    let (status, _, stderr) = run_to_end(&["serve", "--config", p, "--listen", "0.0.0.0:0"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no client is configured"), "{stderr}");

    // On loopback it runs, and says that authentication is off.
    let mut server = ServeProcess::with_config(BIN, &path);
    let log = server.stderr_text();
    assert!(log.contains("authentication is off"), "{log}");
    server.signal("TERM");
    assert_eq!(server.wait_exit(EXIT_TIMEOUT).code(), Some(0));
}

#[test]
fn check_config_warns_about_an_alias_beside_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    write_config(
        &path,
        "proxy:\n  enabled: true\n  exchanges:\n    binance:\n      rest: http://alias.example:8080\n      http: http://canonical.example:8080\n",
    );
    let (status, stdout, stderr) = run_to_end(&["check-config", path.to_str().unwrap()]);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "warning: proxy.exchanges.binance: both `http` and its alias `rest` are given; `rest` is ignored"
        ),
        "{stderr}"
    );
    assert!(stdout.contains("http://canonical.example:8080"), "{stdout}");
    assert!(!stdout.contains("alias.example"), "{stdout}");
}
