//! The `proxy-delegate` binary, run as a real process on real files.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use common::BIN;
use proxy_delegate_test_support::ServeProcess;

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// Runs the binary with a clean environment plus `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.env_clear().args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// `resolve --json` lines, parsed.
fn resolve_json(
    config: Option<&Path>,
    exchange: &str,
    ty: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Vec<Value> {
    let mut args = vec!["resolve", "--exchange", exchange, "--type", ty, "--json"];
    let c;
    if let Some(p) = config {
        c = p.to_str().unwrap().to_owned();
        args.extend(["--config", c.as_str()]);
    }
    args.extend(extra);
    let o = run(&args, env);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

const CONFIG: &str = r#"
log_filename: feedhandler.log
exchanges: {}
proxy:
  enabled: true
  default:
    http:
      url: "http://alice:hunter2@proxy-default:8080"
      timeout_seconds: 25
    websocket: "socks5://proxy-ws:1080"
  exchanges:
    binance:
      http: "http://proxy-binance:8080"
      websocket:
        pool:
          strategy: round_robin
          proxies:
            - url: socks5://p1:1080
            - url: socks5://p2:1080
    coinbase:
      rest: {}
      ws: null
    kraken: "http://proxy-kraken:8080"
"#;

#[test]
fn json_output_is_exactly_the_contract() {
    let d = Dir::new();
    let cfg = d.file("config.yaml", CONFIG);
    let o = run(
        &[
            "resolve",
            "--exchange",
            "BINANCE",
            "--type",
            "http",
            "--config",
            cfg.to_str().unwrap(),
            "--json",
            "--embedded-only",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let line = stdout(&o);
    let v: Value = serde_json::from_str(line.trim()).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["exchange", "proxy_url", "source", "timeout_seconds", "type"]
    );
    assert_eq!(v["exchange"], "BINANCE");
    assert_eq!(v["type"], "http");
    assert_eq!(v["proxy_url"], "http://proxy-binance:8080");
    assert_eq!(v["source"], "embedded");
    assert_eq!(v["timeout_seconds"], 30);
    assert_eq!(line.lines().count(), 1);
}

/// `proxy_url` is the configured URL verbatim, password as `***`: the
/// spellings a parsed URL normalises (scheme case, a trailing `/`, leading
/// zeros in the port, an empty password) are printed as written, from the
/// file, from the environment and from a pool.
#[test]
fn proxy_url_is_printed_as_configured() {
    let d = Dir::new();
    let cfg = d.file(
        "config.yaml",
        r#"
proxy:
  enabled: true
  default:
    http: "HTTP://alice:s3,cr)et@Proxy-A.example:08080/"
    websocket:
      pool:
        proxies:
          - url: "SOCKS5h://bob:@proxy-b:1080/"
  exchanges:
    kraken:
      http: "https://proxy-k:8443"
"#,
    );
    let http = resolve_json(Some(&cfg), "binance", "http", &[], &[]);
    assert_eq!(
        http[0]["proxy_url"],
        "HTTP://alice:***@Proxy-A.example:08080/"
    );
    let ws = resolve_json(Some(&cfg), "binance", "websocket", &[], &[]);
    assert_eq!(ws[0]["proxy_url"], "SOCKS5h://bob:@proxy-b:1080/");
    let kraken = resolve_json(Some(&cfg), "kraken", "http", &[], &[]);
    assert_eq!(kraken[0]["proxy_url"], "https://proxy-k:8443");

    // The environment's spelling, over the file's.
    let env = [(
        "CRYPTOFEED_PROXY_EXCHANGES__KRAKEN__HTTP__URL",
        "Https://carol:pw@PROXY-K:8443/",
    )];
    let kraken = resolve_json(Some(&cfg), "kraken", "http", &[], &env);
    assert_eq!(kraken[0]["proxy_url"], "Https://carol:***@PROXY-K:8443/");

    // The human form prints the same text, and no password anywhere.
    let o = run(
        &[
            "resolve",
            "--exchange",
            "binance",
            "--type",
            "http",
            "--config",
        ]
        .into_iter()
        .chain([cfg.to_str().unwrap()])
        .collect::<Vec<_>>(),
        &[],
    );
    let out = stdout(&o);
    assert!(
        out.contains("HTTP://alice:***@Proxy-A.example:08080/"),
        "{out}"
    );
    assert!(!out.contains("s3,cr)et") && !stderr(&o).contains("s3,cr)et"));
}

#[test]
fn cryptofeed_rules_through_the_binary() {
    let d = Dir::new();
    let cfg = d.file("config.yaml", CONFIG);
    let c = Some(cfg.as_path());
    let one = |ex: &str, ty: &str| resolve_json(c, ex, ty, &["--embedded-only"], &[]).remove(0);
    // Exchange override.
    assert_eq!(
        one("binance", "http")["proxy_url"],
        "http://proxy-binance:8080"
    );
    // Not listed: the default's entry, with its timeout; password redacted.
    let v = one("bitmex", "http");
    assert_eq!(v["proxy_url"], "http://alice:***@proxy-default:8080");
    assert_eq!(v["timeout_seconds"], 25);
    assert_eq!(v["source"], "embedded");
    assert_eq!(
        one("bitmex", "websocket")["proxy_url"],
        "socks5://proxy-ws:1080"
    );
    // `rest: {}` is direct (no fall back); `ws: null` falls back to the default.
    let v = one("coinbase", "http");
    assert_eq!(v["proxy_url"], Value::Null);
    assert_eq!(v["source"], "direct");
    assert_eq!(v["timeout_seconds"], Value::Null);
    assert_eq!(
        one("coinbase", "websocket")["proxy_url"],
        "socks5://proxy-ws:1080"
    );
    // A plain URL for an exchange sets http only.
    assert_eq!(
        one("Kraken", "http")["proxy_url"],
        "http://proxy-kraken:8080"
    );
    assert_eq!(
        one("Kraken", "websocket")["proxy_url"],
        "socks5://proxy-ws:1080"
    );
}

#[test]
fn no_websocket_to_http_fallback_and_disabled() {
    let d = Dir::new();
    let cfg = d.file(
        "c.yaml",
        "proxy:\n  enabled: true\n  default:\n    http: http://proxy-a:8080\n",
    );
    let v = resolve_json(Some(&cfg), "binance", "websocket", &[], &[]).remove(0);
    assert_eq!(v["source"], "direct");
    // No `enabled`: disabled.
    let cfg = d.file(
        "d.yaml",
        "proxy:\n  default:\n    http: http://proxy-a:8080\n",
    );
    let v = resolve_json(Some(&cfg), "binance", "http", &[], &[]).remove(0);
    assert_eq!(v["source"], "direct");
    // No configuration at all.
    let v = resolve_json(None, "binance", "http", &[], &[]).remove(0);
    assert_eq!(v["source"], "direct");
}

#[test]
fn root_url_shape() {
    let d = Dir::new();
    let cfg = d.file("c.yaml", "proxy: socks5://proxy-all:1080\n");
    for ty in ["http", "websocket"] {
        let v = resolve_json(Some(&cfg), "okx", ty, &[], &[]).remove(0);
        assert_eq!(v["proxy_url"], "socks5://proxy-all:1080");
    }
}

#[test]
fn repeat_advances_round_robin() {
    let d = Dir::new();
    let cfg = d.file("config.yaml", CONFIG);
    let got: Vec<String> =
        resolve_json(Some(&cfg), "binance", "websocket", &["--repeat", "5"], &[])
            .into_iter()
            .map(|v| v["proxy_url"].as_str().unwrap().to_owned())
            .collect();
    assert_eq!(
        got,
        [
            "socks5://p1:1080",
            "socks5://p2:1080",
            "socks5://p1:1080",
            "socks5://p2:1080",
            "socks5://p1:1080"
        ]
    );
}

#[test]
fn environment_applies_on_top_of_the_file() {
    let d = Dir::new();
    let cfg = d.file("config.yaml", CONFIG);
    let env = [
        (
            "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__HTTP__URL",
            "http://env-binance:3128",
        ),
        (
            "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__HTTP__TIMEOUT_SECONDS",
            "9",
        ),
    ];
    let v = resolve_json(Some(&cfg), "binance", "http", &[], &env).remove(0);
    assert_eq!(v["proxy_url"], "http://env-binance:3128");
    assert_eq!(v["timeout_seconds"], 9);
    // binance replaced as a whole: its websocket pool is gone, the default's applies.
    let v = resolve_json(Some(&cfg), "binance", "websocket", &[], &env).remove(0);
    assert_eq!(v["proxy_url"], "socks5://proxy-ws:1080");
    // Environment alone, JSON pool value.
    let env = [
        ("CRYPTOFEED_PROXY_ENABLED", "yes"),
        (
            "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__WEBSOCKET__POOL",
            r#"{"proxies":[{"url":"socks5://e1:1080"},{"url":"socks5://e2:1080"}],"strategy":"round_robin"}"#,
        ),
    ];
    let got: Vec<Value> = resolve_json(None, "binance", "websocket", &["--repeat", "3"], &env);
    let urls: Vec<&str> = got
        .iter()
        .map(|v| v["proxy_url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        ["socks5://e1:1080", "socks5://e2:1080", "socks5://e1:1080"]
    );
}

#[test]
fn human_output() {
    let d = Dir::new();
    let cfg = d.file("config.yaml", CONFIG);
    let o = run(
        &[
            "resolve",
            "--exchange",
            "bitmex",
            "--type",
            "http",
            "--config",
            cfg.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.contains("http://alice:***@proxy-default:8080"), "{out}");
    assert!(out.contains("embedded"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    let o = run(
        &[
            "resolve",
            "--exchange",
            "coinbase",
            "--type",
            "http",
            "--config",
            cfg.to_str().unwrap(),
        ],
        &[],
    );
    assert!(stdout(&o).contains("direct"), "{}", stdout(&o));
}

#[test]
fn invalid_configuration_exits_2_with_path_and_reason() {
    let d = Dir::new();
    let cfg = d.file(
        "config.yaml",
        "proxy:\n  enabled: true\n  exchanges:\n    binance:\n      http:\n        url: http://bob:topsecret@proxy-a\n",
    );
    for args in [
        vec![
            "resolve",
            "--exchange",
            "binance",
            "--type",
            "http",
            "--config",
            cfg.to_str().unwrap(),
        ],
        vec!["check-config", cfg.to_str().unwrap()],
    ] {
        let o = run(&args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(
            err.contains("proxy.exchanges.binance.http.url: missing port"),
            "{err}"
        );
        assert!(err.contains("line 6"), "{err}");
        assert!(!err.contains("topsecret"), "{err}");
        assert!(stdout(&o).is_empty());
    }
    // Unknown key.
    let cfg = d.file("u.yaml", "proxy:\n  enabled: true\n  exchanges:\n    binance:\n      http:\n        urll: http://a:1\n");
    let o = run(&["check-config", cfg.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("proxy.exchanges.binance.http.urll: unknown field `urll`"),
        "{}",
        stderr(&o)
    );
    // Invalid environment value.
    let o = run(
        &["resolve", "--exchange", "binance", "--type", "http"],
        &[("CRYPTOFEED_PROXY_DEFAULT__HTTP__TIMEOUT_SECONDS", "0")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("proxy.default.http.timeout_seconds: out of range"),
        "{}",
        stderr(&o)
    );
    // Missing file.
    let o = run(&["check-config", "/nonexistent/config.yaml"], &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn check_config_shows_provenance_and_redacts() {
    let d = Dir::new();
    let cfg = d.file(
        "config.yaml",
        "proxy:\n  enabled: true\n  default:\n    http: \"http://alice:hunter2@proxy-a:8080\"\n  external_service:\n    enabled: true\n    endpoints: [\"https://svc:8443\"]\n    auth_method: bearer_token\n    auth_credentials:\n      token: ${SVC_TOKEN}\n",
    );
    let o = run(
        &["check-config", cfg.to_str().unwrap()],
        &[
            ("SVC_TOKEN", "tok-abcdef-123"),
            ("CRYPTOFEED_PROXY_EXTERNAL_SERVICE__API_KEYS", "x"),
            ("CRYPTOFEED_PROXY_EXTERNAL_SERVICE__TIMEOUT_SECONDS", "5"),
            (
                "CRYPTOFEED_PROXY_EXTERNAL_SERVICE__AUTH_CREDENTIALS__API_KEY",
                "key-zyxw-987",
            ),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let line = |path: &str| -> String {
        out.lines()
            .find(|l| l.starts_with(&format!("{path} = ")))
            .unwrap_or_else(|| panic!("no {path} in\n{out}"))
            .to_owned()
    };
    assert!(line("proxy.enabled").ends_with("(file)"), "{out}");
    assert!(line("proxy.default.http.url").contains("\"http://alice:***@proxy-a:8080\""));
    assert!(line("proxy.default.http.url").ends_with("(file)"));
    assert!(line("proxy.default.http.timeout_seconds").ends_with("(default)"));
    assert!(line("proxy.external_service.timeout_seconds").contains("= 5 "));
    assert!(line("proxy.external_service.timeout_seconds").ends_with("(environment)"));
    assert!(line("proxy.external_service.cache_ttl_seconds").ends_with("(default)"));
    assert!(line("proxy.external_service.auth_credentials.token").contains("\"***\""));
    assert!(line("proxy.external_service.auth_credentials.api_key").ends_with("(environment)"));
    assert!(line("proxy.external_service.client_id").contains("cryptofeed-"));
    for secret in ["hunter2", "tok-abcdef-123", "key-zyxw-987"] {
        assert!(!out.contains(secret), "{secret} in {out}");
        assert!(!stderr(&o).contains(secret), "{secret} in stderr");
    }
    // The unknown variable is a warning on stderr, not an error.
    assert!(
        stderr(&o).contains("CRYPTOFEED_PROXY_EXTERNAL_SERVICE__API_KEYS: unknown setting"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn resolve_asks_the_service_and_falls_back_when_it_is_down() {
    let d = Dir::new();
    let config = |endpoint: &str| {
        format!(
            "proxy:\n  enabled: true\n  default:\n    http: http://alice:hunter2@proxy-a:8080\n  external_service:\n    enabled: true\n    endpoints: [\"{endpoint}\"]\n"
        )
    };
    let args = |cfg: &Path| -> Vec<String> {
        [
            "resolve",
            "--exchange",
            "binance",
            "--type",
            "http",
            "--json",
            "--repeat",
            "2",
            "--config",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([cfg.to_str().unwrap().to_owned()])
        .collect()
    };
    let sources = |o: &Output| -> Vec<String> {
        stdout(o)
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["source"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    // Nothing listens on the discard port: the embedded configuration answers.
    let down = d.file("down.yaml", &config("http://127.0.0.1:9"));
    let a = args(&down);
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sources(&o), ["embedded", "embedded"]);
    assert!(
        stdout(&o).contains("http://alice:***@proxy-a:8080"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("hunter2") && !stderr(&o).contains("hunter2"));
    // The real service answers, then the cache (the real service binary on
    // a free loopback port, killed on drop).
    let serve = ServeProcess::start(BIN, &["serve", "--listen", "127.0.0.1:0"], &[]);
    let up = d.file("up.yaml", &config(&serve.url()));
    let a = args(&up);
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sources(&o), ["service", "cache"]);
    let v: Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    assert!(
        v["proxy_url"]
            .as_str()
            .unwrap()
            .starts_with("socks5://192.0.2."),
        "{v}"
    );
    // --embedded-only never asks.
    let mut a = args(&up);
    a.push("--embedded-only".into());
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(o.status.success());
    assert_eq!(sources(&o), ["embedded", "embedded"]);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

/// A configuration path that names a device, a pipe, a huge file or
/// pathologically nested YAML is refused at once with status 2: no hang, no
/// memory growth, no parser running for minutes.
#[test]
fn unreadable_or_pathological_files_exit_2_at_once() {
    let d = Dir::new();
    let fifo = d.0.path().join("fifo.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let huge = d.file("huge.yaml", &format!("# {}\n", "x".repeat(2 << 20)));
    let deep = d.file("deep.yaml", &format!("proxy: {}\n", "[".repeat(100_000)));
    let deep_service = d.file("deep.yml", &format!("clients: {}\n", "{".repeat(100_000)));
    let cases: [(&[&str], &str); 6] = [
        (&["check-config", "/dev/zero"], "not a regular file"),
        (
            &["check-config", fifo.to_str().unwrap()],
            "not a regular file",
        ),
        (&["check-config", huge.to_str().unwrap()], "larger than"),
        (
            &["check-config", deep.to_str().unwrap()],
            "nested deeper than 64",
        ),
        (&["serve", "--config", "/dev/zero"], "not a regular file"),
        (
            &["serve", "--config", deep_service.to_str().unwrap()],
            "nested deeper than 64",
        ),
    ];
    for (args, reason) in cases {
        let o = run(args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(reason), "{args:?}: {}", stderr(&o));
    }
}

/// A `CRYPTOFEED_PROXY_*` value that is not text is an error naming the
/// variable, not a setting skipped in silence; a name with thousands of `__`
/// is a warning, not a stack overflow.
#[test]
fn odd_environment_variables() {
    use std::os::unix::ffi::OsStrExt;
    let o = Command::new(BIN)
        .env_clear()
        .env(
            "CRYPTOFEED_PROXY_ENABLED",
            std::ffi::OsStr::from_bytes(b"\xff"),
        )
        .env("CRYPTOFEED_PROXY_DEFAULT__HTTP__URL", "http://h:1")
        .args(["resolve", "--exchange", "binance", "--type", "http"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "proxy.enabled: not UTF-8 text (environment variable CRYPTOFEED_PROXY_ENABLED)"
        ),
        "{}",
        stderr(&o)
    );

    let deep = format!("CRYPTOFEED_PROXY_{}URL", "A__".repeat(30_000));
    let o = run(
        &["resolve", "--exchange", "binance", "--type", "http"],
        &[(deep.as_str(), "x")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("more than 16 keys"), "{}", stderr(&o));
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        vec!["resolve", "--exchange", "binance", "--type", "ftp"],
        vec!["resolve", "--exchange", "bin ance", "--type", "http"],
        vec!["resolve", "--type", "http"],
        vec![
            "resolve",
            "--exchange",
            "binance",
            "--type",
            "http",
            "--repeat",
            "0",
        ],
    ] {
        let o = run(&args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
    // An argument clap refuses is quoted in its message: never a password.
    let url = "socks5://alice:hunter2@proxy:1080";
    for args in [
        vec!["resolve", "--exchange", "binance", "--type", "http", url],
        vec!["resolve", "--exchange", "binance", "--type", url],
        vec![
            "resolve",
            "--exchange",
            "binance",
            "--type",
            "http",
            "--repeat",
            url,
        ],
        vec!["serve", "--listen", url],
    ] {
        let o = run(&args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains("alice:***@proxy"), "{args:?}: {err}");
        assert!(
            !err.contains("hunter2") && !stdout(&o).contains("hunter2"),
            "{err}"
        );
    }
    // Help is still help, on stdout with status 0.
    let o = run(&["--help"], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("resolve"));
}

/// The subcommands `proxy-delegate --help` lists (without `help`).
fn subcommands() -> Vec<String> {
    let o = run(&["--help"], &[]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    let listed: Vec<String> = out
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect();
    for expected in ["resolve", "connect", "check-config", "serve", "soak"] {
        assert!(listed.iter().any(|n| n == expected), "{expected} in\n{out}");
    }
    listed
}

/// `--help` of the tool and of every subcommand ends with examples (and
/// `-h` shows them too), on stdout with status 0.
#[test]
fn every_help_shows_an_example() {
    let mut commands: Vec<Vec<String>> = vec![vec![]];
    commands.extend(subcommands().into_iter().map(|c| vec![c]));
    for command in commands {
        for flag in ["--help", "-h"] {
            let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
            args.push(flag);
            let o = run(&args, &[]);
            assert_eq!(o.status.code(), Some(0), "{args:?}");
            let out = stdout(&o);
            let examples = out
                .lines()
                .position(|l| l.starts_with("Example"))
                .unwrap_or_else(|| panic!("{args:?}: no Examples section:\n{out}"));
            let first = out.lines().nth(examples + 1).unwrap_or_default();
            let first = if first.trim_start().starts_with('#') {
                out.lines().nth(examples + 2).unwrap_or_default()
            } else {
                first
            };
            assert!(
                first.trim_start().starts_with("proxy-delegate "),
                "{args:?}: the example is a command line:\n{out}"
            );
            if let Some(sub) = command.first() {
                assert!(
                    out.contains(&format!("proxy-delegate {sub} ")),
                    "{args:?}: an example of {sub}:\n{out}"
                );
            }
            assert!(stderr(&o).is_empty(), "{args:?}: {}", stderr(&o));
            // Not a terminal: no colour.
            assert!(!out.contains('\u{1b}'), "{args:?}: escape codes in\n{out}");
        }
    }
}

/// An invalid configuration: exit 2, the `error:` line naming the path and
/// the reason, then a `hint:` line saying what to run or read.
#[test]
fn an_invalid_configuration_gives_an_error_and_a_hint() {
    let d = Dir::new();
    let cfg = d.file(
        "config.yaml",
        "proxy:\n  enabled: true\n  default:\n    http: http://bob:topsecret@proxy-a\n",
    );
    let path = cfg.to_str().unwrap();
    let cases: [(Vec<&str>, &str); 3] = [
        (
            vec![
                "resolve",
                "--exchange",
                "binance",
                "--type",
                "http",
                "--config",
                path,
            ],
            "proxy-delegate check-config",
        ),
        (
            vec![
                "connect",
                "http://127.0.0.1:9/",
                "--exchange",
                "binance",
                "--config",
                path,
            ],
            "proxy-delegate check-config",
        ),
        (vec!["check-config", path], "docs/configuration.md"),
    ];
    for (args, hint) in cases {
        let o = run(&args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{args:?}: an error and a hint:\n{err}");
        assert!(
            lines[0].starts_with("error: ")
                && lines[0].contains("proxy.default.http.url: missing port"),
            "{args:?}: {err}"
        );
        assert!(
            lines[1].starts_with("hint: ") && lines[1].contains(hint),
            "{args:?}: {err}"
        );
        assert!(!err.contains("topsecret"), "{err}");
        assert!(stdout(&o).is_empty(), "{args:?}");
    }
}

/// Arguments clap refuses: one `error:` line (clap's continuation lines
/// joined to it, no usage block), one `hint:` line, status 2.
#[test]
fn argument_errors_are_one_line_and_a_hint() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["resolve", "--exchange", "binance", "--type", "ftp"],
            "possible values: http, websocket",
        ),
        (&["resolve", "--type", "http"], "--exchange <EXCHANGE>"),
        (&["serve", "--listen", "nowhere"], "--listen"),
    ];
    for (args, needle) in cases {
        let o = run(args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{args:?}:\n{err}");
        assert!(lines[0].starts_with("error: "), "{args:?}:\n{err}");
        assert!(lines[0].contains(needle), "{args:?}:\n{err}");
        assert!(lines[1].starts_with("hint: "), "{args:?}:\n{err}");
        assert!(
            lines[1].contains(&format!("proxy-delegate {} --help", args[0])),
            "{args:?}:\n{err}"
        );
    }
}

/// `check-config --json`: one object with every effective value by its
/// path, its source, and no secret.
#[test]
fn check_config_json_has_values_sources_and_no_secret() {
    let d = Dir::new();
    let cfg = d.file(
        "config.yaml",
        "proxy:\n  enabled: true\n  default:\n    http: \"http://alice:hunter2@proxy-a:8080\"\n  external_service:\n    enabled: true\n    endpoints: [\"https://svc:8443\"]\n    auth_method: bearer_token\n    auth_credentials:\n      token: ${SVC_TOKEN}\n",
    );
    let o = run(
        &["check-config", cfg.to_str().unwrap(), "--json"],
        &[
            ("SVC_TOKEN", "tok-abcdef-123"),
            ("CRYPTOFEED_PROXY_EXTERNAL_SERVICE__TIMEOUT_SECONDS", "5"),
            ("CRYPTOFEED_PROXY_BOGUS", "1"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["config"], cfg.to_str().unwrap());
    let s = &v["settings"];
    assert_eq!(s["proxy.enabled"]["value"], true, "{v}");
    assert_eq!(s["proxy.enabled"]["source"], "file", "{v}");
    assert_eq!(
        s["proxy.default.http.url"]["value"], "http://alice:***@proxy-a:8080",
        "{v}"
    );
    assert_eq!(s["proxy.default.http.timeout_seconds"]["source"], "default");
    assert_eq!(s["proxy.external_service.timeout_seconds"]["value"], 5);
    assert_eq!(
        s["proxy.external_service.timeout_seconds"]["source"],
        "environment"
    );
    assert_eq!(
        s["proxy.external_service.auth_credentials.token"]["value"],
        "***"
    );
    let warnings = v["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("CRYPTOFEED_PROXY_BOGUS")),
        "{v}"
    );
    for secret in ["hunter2", "tok-abcdef-123"] {
        assert!(!out.contains(secret) && !stderr(&o).contains(secret));
    }
}
