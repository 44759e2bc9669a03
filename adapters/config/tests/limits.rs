//! A cryptofeed `config.yaml` cannot exhaust memory or time: each hostile
//! file is loaded in a child process (this test binary, run again for one
//! case), which reports its peak memory (`VmHWM`) and how long loading took.
//! Also: `rest` / `ws` beside `http` / `websocket`, as cryptofeed reads them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proxy_delegate_config::{ConfigError, Loader};
use proxy_delegate_core::model::{ConnectionType, ExchangeId};

const NO_ENV: [(&str, &str); 0] = [];

fn yaml(text: &str) -> Result<proxy_delegate_config::Loaded, ConfigError> {
    Loader::new()
        .yaml_str("config.yaml", text)
        .env(NO_ENV)
        .load()
}

/// Peak resident memory of the child that loads a hostile file, whatever it
/// holds: the parser's own events for up to 250,000 nodes, and what the
/// `proxy:` block is read into, bounded as items arrive.
const MAX_PEAK: u64 = 64 << 20;

/// Names in base 36 (`x0`, `x1`, ... `xzz`), distinct and short.
fn name(mut i: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(DIGITS[i % 36]);
        i /= 36;
        if i == 0 {
            break;
        }
    }
    s.reverse();
    format!("x{}", String::from_utf8(s).unwrap())
}

/// The hostile files, by name. Each is at most 1 MiB.
fn hostile(case: &str) -> String {
    match case {
        // 80,000 exchanges, each an alias of one default (890 KB).
        "exchanges_alias" => {
            let mut t = String::from(
                "proxy:\n exchanges:\n  e: &d {http: 'http://proxy.example:8080', websocket: 'socks5://proxy.example:1080'}\n",
            );
            for i in 1..80_000 {
                t.push_str(&format!("  {}: *d\n", name(i)));
            }
            t
        }
        // A pool of 40,000 proxies, through an alias.
        "pool_alias" => {
            let urls = vec!["http://p.example:1"; 40_000].join(",");
            format!(
                "x: &u [{urls}]\nproxy:\n  default:\n    http:\n      pool:\n        proxies: *u\n"
            )
        }
        // Elsewhere in the file (cryptofeed's own keys): never expanded.
        "ignored_alias" => {
            let names = vec!["BTC-USD"; 20_000].join(", ");
            let mut t = format!("symbols: &s [{names}]\nfeeds:\n");
            for _ in 0..50_000 {
                t.push_str("  - *s\n");
            }
            t.push_str("proxy: {enabled: true, default: 'http://p.example:1'}\n");
            t
        }
        // A quote in a block scalar hid the brackets after it.
        "block_scalar_quote" => format!("x: |\n  \"\nproxy: {}\n", "[".repeat(500_000)),
        "plain_scalar_quote" => format!("x: a\"b\nproxy: {}\n", "{".repeat(500_000)),
        // The most nodes a megabyte holds.
        "flat_list" => format!("x: [{}]\n", vec!["a"; 500_000].join(",")),
        "empty_keys" => "?\n".repeat(500_000),
        // Just under the size bound: loaded (or refused) within the bounds.
        "near_the_bound" => format!(
            "x: [{}]\nproxy: {{enabled: true}}\n",
            vec!["a"; 120_000].join(",")
        ),
        "near_the_bound_map" => format!("x: {{{}}}\n", vec!["a"; 124_000].join(",")),
        other => panic!("no case {other}"),
    }
}

const CASES: [&str; 9] = [
    "exchanges_alias",
    "pool_alias",
    "ignored_alias",
    "block_scalar_quote",
    "plain_scalar_quote",
    "flat_list",
    "empty_keys",
    "near_the_bound",
    "near_the_bound_map",
];

/// Peak resident memory of this process, in bytes.
fn peak_memory() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Run by the parent in a child process, one case (`PD_HOSTILE_CASE`) at
/// a time; does nothing otherwise.
#[test]
fn hostile_child() {
    let Ok(case) = std::env::var("PD_HOSTILE_CASE") else {
        return;
    };
    let text = hostile(&case);
    assert!(text.len() <= 1 << 20, "{case}: {} bytes", text.len());
    let started = Instant::now();
    let result = yaml(&text);
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

/// Every hostile file is refused (or loaded) in well under the time and
/// memory it took before: 80,000 aliased exchanges took 1.8 GB and 2 s, a
/// quote in a block scalar let 500,000 `[` run for minutes.
#[test]
fn hostile_files_are_refused_within_bounds() {
    let exe = std::env::current_exe().unwrap();
    for case in CASES {
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
        // Before the fix some took minutes: give up long before that.
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
            .unwrap_or_else(|| panic!("{case}: the child said nothing: {stdout}"));
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
        // Unoptimised, on a busy machine: the bound is generous; optimised,
        // each takes well under 0.3 s.
        assert!(millis < 5_000, "{case}: {millis} ms: {outcome}");
        let expected = match case {
            "exchanges_alias" => "proxy.exchanges: too many items: more than 16",
            "pool_alias" => "proxy.default.http.pool.proxies: too many items: more than 16",
            "ignored_alias" | "near_the_bound" | "near_the_bound_map" => "loaded",
            "block_scalar_quote" | "plain_scalar_quote" => "brackets nested deeper than 64",
            _ => "more than 250000 YAML nodes",
        };
        assert!(outcome.contains(expected), "{case}: {outcome}");
    }
}

fn url(l: &mut proxy_delegate_config::Loaded, ex: &str, ct: ConnectionType) -> Option<String> {
    l.settings
        .resolve(&ExchangeId::new(ex).unwrap(), ct)
        .map(|p| p.proxy_url.to_string())
}

/// cryptofeed reads `http` when `rest` is given too (and `websocket` over
/// `ws`), even when the canonical key is null, and drops the alias: so does
/// the loader, with a warning naming both. It was refused as a duplicate.
#[test]
fn an_alias_beside_its_canonical_key_is_dropped() {
    for text in [
        // Canonical first: the alias is not even read (its value may be
        // anything).
        "proxy:\n  enabled: true\n  exchanges:\n    binance:\n      http: http://canon:1\n      rest: {nonsense: 1}\n      websocket: socks5://canon-ws:1\n      ws: socks5://alias-ws:1\n",
        // Alias first: read, then dropped.
        "proxy:\n  enabled: true\n  exchanges:\n    binance:\n      rest: http://alias:1\n      http: http://canon:1\n      ws: socks5://alias-ws:1\n      websocket: socks5://canon-ws:1\n",
    ] {
        let mut l = yaml(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            url(&mut l, "binance", ConnectionType::Http).as_deref(),
            Some("http://canon:1")
        );
        assert_eq!(
            url(&mut l, "binance", ConnectionType::Websocket).as_deref(),
            Some("socks5://canon-ws:1")
        );
        let warnings: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with(
                "proxy.exchanges.binance: both `http` and its alias `rest` are given; `rest` is ignored"
            ),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains("`websocket` and its alias `ws`"),
            "{warnings:?}"
        );
    }
    // The canonical key wins even when null: `http: null` is "not listed",
    // so binance falls back to the default.
    let mut l = yaml(
        "proxy:\n  enabled: true\n  default: http://default:1\n  exchanges:\n    binance:\n      rest: http://alias:1\n      http: null\n",
    )
    .unwrap();
    assert_eq!(
        url(&mut l, "binance", ConnectionType::Http).as_deref(),
        Some("http://default:1")
    );
    assert_eq!(l.warnings.len(), 1);
    // In `default` too; the alias alone still works, with no warning.
    let mut l = yaml(
        "proxy:\n  enabled: true\n  default:\n    ws: socks5://alias:1\n    websocket: socks5://canon:1\n    rest: http://alone:1\n",
    )
    .unwrap();
    assert_eq!(
        url(&mut l, "kraken", ConnectionType::Websocket).as_deref(),
        Some("socks5://canon:1")
    );
    assert_eq!(
        url(&mut l, "kraken", ConnectionType::Http).as_deref(),
        Some("http://alone:1")
    );
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert!(l.warnings[0].message.starts_with("proxy.default: "));
    // A key given twice is still an error.
    let e = yaml("proxy:\n  default:\n    http: http://a:1\n    http: http://b:1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("duplicate field `http`"), "{e}");
}

/// The same in the environment.
#[test]
fn an_alias_beside_its_canonical_key_in_the_environment() {
    let mut l = Loader::new()
        .env([
            ("CRYPTOFEED_PROXY_ENABLED", "true"),
            (
                "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__REST__URL",
                "http://alias:1",
            ),
            (
                "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__HTTP__URL",
                "http://canon:1",
            ),
        ])
        .load()
        .unwrap();
    assert_eq!(
        url(&mut l, "binance", ConnectionType::Http).as_deref(),
        Some("http://canon:1")
    );
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert!(
        l.warnings[0].message.ends_with("(environment)"),
        "{:?}",
        l.warnings
    );
}
