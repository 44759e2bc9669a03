//! The service's configuration file cannot exhaust memory or time, names
//! what it refuses by its full path, and refuses secrets that could never
//! match and an unauthenticated service on a public address.
//!
//! Hostile files are loaded in a child process (this test binary, run again
//! for one case), which reports its peak memory (`VmHWM`) and how long
//! loading took.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proxy_delegate_service::{Service, ServiceConfig};

/// Peak resident memory of the child that loads a hostile file.
const MAX_PEAK: u64 = 64 << 20;

fn yaml(text: &str) -> Result<ServiceConfig, String> {
    ServiceConfig::parse(text, true).map_err(|e| e.to_string())
}

fn toml(text: &str) -> Result<ServiceConfig, String> {
    ServiceConfig::parse(text, false).map_err(|e| e.to_string())
}

/// The hostile files, by name; each at most 1 MiB.
fn hostile(case: &str) -> String {
    match case {
        // 10,000 names behind one anchor, repeated by 2,000 clients (107
        // KB): took 1.1 GB and 4 s, and loaded.
        "client_names_alias" => {
            let names: Vec<String> = (0..10_000).map(|i| format!("n{i}")).collect();
            let mut t = format!(
                "clients:\n- {{name: c, tls_names: &n [{}]}}\n",
                names.join(",")
            );
            for i in 1..2_000 {
                t.push_str(&format!("- {{name: c{i}, tls_names: *n}}\n"));
            }
            t
        }
        // One proxy repeated 30,000 times: within the alias bound, past
        // the inventory's.
        "inventory_alias" => {
            let mut t = String::from("proxies:\n- &p {id: p, url: 'http://h:1'}\n");
            for _ in 0..30_000 {
                t.push_str("- *p\n");
            }
            t
        }
        // One long secret, repeated.
        "text_alias" => {
            let mut t = format!(
                "clients:\n- {{name: c, bearer_tokens: [&s '{}']}}\n",
                "s".repeat(200_000)
            );
            for i in 1..100 {
                t.push_str(&format!("- {{name: c{i}, bearer_tokens: [*s]}}\n"));
            }
            t
        }
        "block_scalar_quote" => format!("x: |\n  \"\nproxies: {}\n", "[".repeat(500_000)),
        "flat_list" => format!(
            "proxies:\n- id: p\n  url: http://h:1\n  regions: [{}]\n",
            vec!["a"; 450_000].join(",")
        ),
        // The longest list each key bounds, refused at its first item past
        // the bound.
        "regions_flat" => format!(
            "proxies:\n- id: p\n  url: http://h:1\n  regions: [{}]\n",
            vec!["a"; 100_000].join(",")
        ),
        "inventory_flat" => {
            let mut t = String::from("proxies:\n");
            for i in 0..20_000 {
                t.push_str(&format!("- {{id: p{i}, url: 'http://h:1'}}\n"));
            }
            t
        }
        // TOML has no aliases, but its parser keeps ~150 bytes a value.
        "toml_flat" => format!("x = [{}]\n", vec!["1"; 500_000].join(",")),
        other => panic!("no case {other}"),
    }
}

const CASES: [(&str, &str); 8] = [
    (
        "client_names_alias",
        "more than 250000 YAML nodes once aliases are expanded",
    ),
    ("inventory_alias", "proxies: at most 4096 proxies"),
    (
        "text_alias",
        "more than 4 MiB of text once aliases are expanded",
    ),
    (
        "block_scalar_quote",
        "brackets nested deeper than 64 levels",
    ),
    ("flat_list", "more than 250000 YAML nodes"),
    (
        "regions_flat",
        "proxies[0].regions: at most 4 regions per proxy",
    ),
    ("inventory_flat", "proxies: at most 4096 proxies"),
    ("toml_flat", "more than 250000 keys and values"),
];

fn peak_memory() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Run by the parent in a child process, one case (`PD_HOSTILE_CASE`) at a
/// time, from a file (as `serve` and a reload read it); does nothing
/// otherwise.
#[test]
fn hostile_child() {
    let Ok(case) = std::env::var("PD_HOSTILE_CASE") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let name = if case.starts_with("toml_") {
        "service.toml"
    } else {
        "service.yaml"
    };
    let path = dir.path().join(name);
    let text = hostile(&case);
    assert!(text.len() <= 1 << 20, "{case}: {} bytes", text.len());
    std::fs::write(&path, &text).unwrap();
    drop(text);
    let started = Instant::now();
    let result = ServiceConfig::load(&path);
    let took = started.elapsed();
    let outcome = match &result {
        Ok(_) => "loaded".to_owned(),
        Err(e) => format!("refused: {e}"),
    };
    drop(result);
    // Read by the parent from this process's stdout.
    use std::io::Write as _;
    writeln!(
        std::io::stdout(),
        "HOSTILE {} {} {}",
        peak_memory(),
        took.as_millis(),
        outcome.replace('\n', " ")
    )
    .unwrap();
}

/// Every hostile file is refused in bounded memory and time.
#[test]
fn hostile_files_are_refused_within_bounds() {
    let exe = std::env::current_exe().unwrap();
    for (case, expected) in CASES {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "hostile_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PD_HOSTILE_CASE", case)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                child.kill().unwrap();
                panic!("{case}: still loading after 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("HOSTILE ").map(|(_, rest)| rest))
            .unwrap_or_else(|| {
                panic!(
                    "{case}: the child said nothing ({:?}): {stdout}",
                    output.status
                )
            });
        let mut parts = line.splitn(3, ' ');
        let peak: u64 = parts.next().unwrap().parse().unwrap();
        let millis: u64 = parts.next().unwrap().parse().unwrap();
        let outcome = parts.next().unwrap();
        eprintln!("{case}: {} KiB peak, {millis} ms: {outcome}", peak >> 10);
        assert!(
            peak < MAX_PEAK,
            "{case}: {} MiB at the peak: {outcome}",
            peak >> 20
        );
        // Unoptimised, on a busy machine: a generous bound; optimised, each
        // takes well under 0.3 s.
        assert!(millis < 5_000, "{case}: {millis} ms: {outcome}");
        assert!(outcome.contains(expected), "{case}: {outcome}");
    }
}

/// Aliases used as intended (one list of exchanges for many proxies) load.
#[test]
fn aliases_within_the_bounds_load() {
    let mut t = String::from(
        "proxies:\n- {id: p0, url: 'http://h:1', exchanges: &x [binance, okx, kraken]}\n",
    );
    for i in 1..1_000 {
        t.push_str(&format!(
            "- {{id: p{i}, url: 'http://h:1', exchanges: *x}}\n"
        ));
    }
    let c = yaml(&t).unwrap();
    assert_eq!(c.proxies.len(), 1_000);
}

/// A list past its bound is refused at its first item too many, with the
/// path and the line, in TOML as in YAML.
#[test]
fn bounded_lists_are_refused_as_they_arrive() {
    let e = yaml("proxies:\n- id: p\n  url: http://h:1\n  exchanges: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q]\n").unwrap_err();
    assert!(
        e.starts_with("proxies[0].exchanges: at most 16 exchanges per proxy"),
        "{e}"
    );
    assert!(e.contains("line 4"), "{e}");
    let e = toml("[[proxies]]\nid = \"p\"\nurl = \"http://h:1\"\nregions = [\"a\", \"b\", \"c\", \"d\", \"e\"]\n").unwrap_err();
    assert!(
        e.starts_with("proxies[0].regions: at most 4 regions per proxy"),
        "{e}"
    );
    let mut t = String::new();
    for i in 0..33 {
        t.push_str(&format!("[exchanges.ex{i}]\nstrategy = \"random\"\n"));
    }
    let e = toml(&t).unwrap_err();
    assert!(
        e.starts_with("exchanges: more than 32 exchanges with their own policy"),
        "{e}"
    );
    // Null stays "not given".
    let c = yaml("proxies:\n- {id: p, url: 'http://h:1', exchanges: null}\n").unwrap();
    assert_eq!(c.proxies.len(), 1);
}

/// An unknown key is named by its full path, not its parent's.
#[test]
fn unknown_keys_are_named_by_their_full_path() {
    let e = toml("[[proxies]]\nid = \"a\"\nurl = \"http://h:1\"\ncolour = 1\n").unwrap_err();
    assert!(
        e.starts_with("proxies[0].colour: unknown field `colour`"),
        "{e}"
    );
    let e = yaml("proxies:\n- id: a\n  url: http://h:1\n  colour: 1\n").unwrap_err();
    assert!(
        e.starts_with("proxies[0].colour: unknown field `colour`"),
        "{e}"
    );
    let e = yaml("pool:\n  stratgy: random\n").unwrap_err();
    assert!(
        e.starts_with("pool.stratgy: unknown field `stratgy`"),
        "{e}"
    );
    let e = toml("colour = 1\n").unwrap_err();
    assert!(e.starts_with("colour: unknown field `colour`"), "{e}");
}

fn clients_toml(clients: &[(&str, &str, &str)]) -> String {
    let mut t = String::new();
    for (name, key, value) in clients {
        t.push_str(&format!(
            "[[clients]]\nname = \"{name}\"\n{key} = [\"{value}\"]\n"
        ));
    }
    t
}

/// A token or key with whitespace around it could never match (the service
/// trims what a request presents), and one secret held by two clients
/// always goes to the first: both are refused, naming the client, never the
/// secret.
#[test]
fn secrets_that_can_never_match_are_refused() {
    for (key, value) in [
        ("bearer_tokens", " Sekret-token-1"),
        ("bearer_tokens", "Sekret-token-1\\t"),
        ("api_keys", "Sekret-key-1 "),
        ("api_keys", "\\nSekret-key-1"),
    ] {
        let t = clients_toml(&[("alpha", "api_keys", "k0"), ("beta", key, value)]);
        let e = toml(&t).unwrap_err();
        assert!(e.starts_with(&format!("clients[1].{key}[0]: ")), "{e}");
        assert!(e.contains("client \"beta\""), "{e}");
        assert!(e.contains("whitespace"), "{e}");
        assert!(!e.contains("Sekret"), "{e}");
    }
    // From a file too (its last line break is not part of the secret; the
    // space before it is).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "Sekret-from-file \n").unwrap();
    let reference = format!("${{file:{}}}", file.display());
    let e = toml(&clients_toml(&[("alpha", "bearer_tokens", &reference)])).unwrap_err();
    assert!(e.starts_with("clients[0].bearer_tokens[0]: "), "{e}");
    assert!(!e.contains("Sekret"), "{e}");

    for key in ["bearer_tokens", "api_keys"] {
        let t = clients_toml(&[
            ("alpha", key, "Sekret-shared"),
            ("beta", "api_keys", "other"),
            ("gamma", key, "Sekret-shared"),
        ]);
        let e = toml(&t).unwrap_err();
        assert!(e.starts_with(&format!("clients[2].{key}[0]: ")), "{e}");
        assert!(
            e.contains("client \"gamma\"") && e.contains("client \"alpha\""),
            "{e}"
        );
        assert!(e.contains(&format!("clients[0].{key}[0]")), "{e}");
        assert!(!e.contains("Sekret"), "{e}");
    }
    // The same text as a token of one client and a key of another is no
    // clash (different headers), nor is a secret listed twice by one client.
    let t = clients_toml(&[
        ("alpha", "bearer_tokens", "same"),
        ("beta", "api_keys", "same"),
    ]);
    assert!(toml(&t).is_ok());
    let t = "[[clients]]\nname = \"a\"\nbearer_tokens = [\"x\", \"x\"]\n";
    assert!(toml(t).is_ok());
}

/// A file with no client on an address other than loopback must say that
/// it means to run without authentication (`auth.required = false`).
#[test]
fn no_authentication_on_a_public_address_must_be_chosen() {
    let proxy = "[[proxies]]\nid = \"p\"\nurl = \"http://h:1\"\n";
    for listen in ["0.0.0.0:8080", "192.0.2.1:8080", "[::]:8080"] {
        let e = toml(&format!("listen = \"{listen}\"\n{proxy}")).unwrap_err();
        assert!(
            e.starts_with("auth.required: no client is configured"),
            "{e}"
        );
        assert!(e.contains("auth.required = false"), "{e}");
        let c = toml(&format!(
            "listen = \"{listen}\"\n[auth]\nrequired = false\n{proxy}"
        ))
        .unwrap();
        assert!(!c.auth.required && c.auth.unauthenticated_on_purpose);
        assert!(c.check_exposure().is_ok());
        // With a client, authentication is on: any address.
        let c = toml(&format!(
            "listen = \"{listen}\"\n[[clients]]\nname = \"a\"\napi_keys = [\"k\"]\n{proxy}"
        ))
        .unwrap();
        assert!(c.auth.required);
    }
    for listen in ["127.0.0.1:8080", "[::1]:8080"] {
        let c = toml(&format!("listen = \"{listen}\"\n{proxy}")).unwrap();
        assert!(!c.auth.required && !c.auth.unauthenticated_on_purpose);
    }
    // An address given in place of the file's (`serve --listen`) is checked
    // when the service is built.
    let mut c = toml(proxy).unwrap();
    c.listen = "0.0.0.0:0".parse().unwrap();
    let e = Service::new(c).unwrap_err().to_string();
    assert!(e.contains("no client is configured"), "{e}");
    let mut c = ServiceConfig::embedded_default();
    c.listen = "0.0.0.0:0".parse().unwrap();
    assert!(Service::new(c).is_err());
}
