//! Writes the seed corpora, `corpus/<target>/seed-<name>`, from the real
//! examples of the repository: the JSON bodies, YAML and TOML files of the
//! docs (fenced blocks) and of the tests (raw string literals), the bench
//! fixture's cryptofeed configuration and environment, the proxy URLs the
//! docs and tests name, the postcard encodings of the messages among them,
//! and scripted operation sequences for the `*_ops` targets.
//!
//!     cd fuzz && cargo run --example make_corpus
//!
//! Deterministic: the same repository gives the same files. Every
//! `seed-*` file of a target is rewritten; other files (what
//! `scripts/fuzz.sh` minimised into the corpus) are left alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proxy_delegate_core::codec;
use proxy_delegate_core::model::{ProxyFeedback, ProxyRequest, ProxyResponse};

mod fixture {
    #![allow(dead_code)]
    include!("../../benches/fixtures/cryptofeed_config.rs");
    pub(super) fn yaml() -> &'static str {
        YAML
    }
    pub(super) fn env() -> &'static [(&'static str, &'static str)] {
        &ENV
    }
}

/// Seeds by target, then by name.
#[derive(Default)]
struct Corpora(BTreeMap<&'static str, BTreeMap<String, Vec<u8>>>);

impl Corpora {
    /// Adds a seed unless the target already has one with the same bytes.
    fn add(&mut self, target: &'static str, name: &str, bytes: impl Into<Vec<u8>>) {
        let bytes = bytes.into();
        let seeds = self.0.entry(target).or_default();
        if seeds.values().any(|b| *b == bytes) {
            return;
        }
        let mut name = sanitize(name);
        if seeds.contains_key(&name) {
            let mut n = 2;
            while seeds.contains_key(&format!("{name}-{n}")) {
                n += 1;
            }
            name = format!("{name}-{n}");
        }
        seeds.insert(name, bytes);
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

fn read(root: &Path, relative: &str) -> String {
    std::fs::read_to_string(root.join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The fenced code blocks of a Markdown text whose info string starts with `lang`.
fn fenced(md: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            Some(block) if trimmed.starts_with("```") => {
                out.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {
                if let Some(info) = trimmed.strip_prefix("```")
                    && info.split([',', ' ']).next() == Some(lang)
                {
                    current = Some(String::new());
                }
            }
        }
    }
    out
}

/// The `r#"..."#` literals of a Rust source, except format strings (`{{`).
fn raw_strings(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("r#\"") {
        let after = &rest[i + 3..];
        let Some(end) = after.find("\"#") else { break };
        let literal = &after[..end];
        if !literal.contains("{{") {
            out.push(literal.to_owned());
        }
        rest = &after[end + 2..];
    }
    out
}

/// Every `scheme://...` of a text, as far as a delimiter.
fn urls(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find("://").map(|i| i + from) {
        let mut start = i;
        while start > 0
            && (bytes[start - 1].is_ascii_alphanumeric() || b"+.-".contains(&bytes[start - 1]))
        {
            start -= 1;
        }
        let end = text[i + 3..]
            .find(|c: char| c.is_whitespace() || "\"'`()<>,]}\\|*".contains(c))
            .map_or(text.len(), |e| e + i + 3);
        if start < i && end > i + 3 {
            out.push(text[start..end].trim_end_matches(['.', ':']).to_owned());
        }
        from = end.max(i + 3);
    }
    out
}

fn postcard<M: codec::Message>(msg: &M) -> Vec<u8> {
    let mut buf = vec![0u8; 4 * codec::MAX_INPUT_LEN];
    let n = codec::postcard::encode(msg, &mut buf).expect("a decoded message encodes");
    buf.truncate(n);
    buf
}

/// What a JSON text holds, by the core's decoders.
enum Body {
    Request(ProxyRequest),
    Response(ProxyResponse),
    Feedback(ProxyFeedback),
    Batch(Vec<ProxyFeedback>),
    Other,
}

fn classify(json: &str) -> Body {
    let b = json.as_bytes();
    if let Ok(m) = codec::json::decode::<ProxyRequest>(b) {
        return Body::Request(m);
    }
    if let Ok(m) = codec::json::decode::<ProxyResponse>(b) {
        return Body::Response(m);
    }
    if let Ok(m) = codec::json::decode::<ProxyFeedback>(b) {
        return Body::Feedback(m);
    }
    if let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(json) {
        let events: Option<Vec<ProxyFeedback>> = items
            .iter()
            .map(|v| codec::json::decode(v.to_string().as_bytes()).ok())
            .collect();
        if let Some(events) = events.filter(|e| !e.is_empty()) {
            return Body::Batch(events);
        }
    }
    Body::Other
}

/// A JSON value as block-style YAML (strings double-quoted as JSON quotes them).
fn to_yaml(v: &serde_json::Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match v {
                    serde_json::Value::Object(m) if !m.is_empty() => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        to_yaml(v, indent + 2, out);
                    }
                    serde_json::Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        to_yaml(v, indent, out);
                    }
                    _ => out.push_str(&format!("{pad}{k}: {v}\n")),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                match item {
                    serde_json::Value::Object(m) if !m.is_empty() => {
                        let mut inner = String::new();
                        to_yaml(item, indent + 2, &mut inner);
                        out.push_str(&format!("{pad}- {}", &inner[indent + 2..]));
                    }
                    _ => out.push_str(&format!("{pad}- {item}\n")),
                }
            }
        }
        other => out.push_str(&format!("{pad}{other}\n")),
    }
}

/// A small deterministic generator (splitmix64) for the random sequences.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

fn main() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = fuzz.parent().expect("the repository").to_owned();
    let mut c = Corpora::default();

    // ---------------------------------------------------------- JSON bodies
    let mut bodies: Vec<(String, String)> = Vec::new();
    for (i, block) in fenced(&read(&root, "docs/api.md"), "json")
        .into_iter()
        .enumerate()
    {
        bodies.push((format!("api-md-{}", i + 1), block));
    }
    for file in [
        "adapters/service/tests/api.rs",
        "adapters/service/tests/hardening.rs",
    ] {
        let stem = Path::new(file)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for (i, s) in raw_strings(&read(&root, file)).into_iter().enumerate() {
            let t = s.trim_start();
            if t.starts_with('{') || t.starts_with('[') {
                bodies.push((format!("{stem}-rs-{}", i + 1), s));
            }
        }
    }
    for (name, json) in &bodies {
        c.add("json_decode", name, json.as_bytes());
        let body = classify(json);
        match &body {
            Body::Request(m) => c.add("postcard_decode", name, postcard(m)),
            Body::Response(m) => c.add("postcard_decode", name, postcard(m)),
            Body::Feedback(m) => c.add("postcard_decode", name, postcard(m)),
            Body::Batch(events) => {
                c.add("postcard_decode", name, postcard(&events[0]));
            }
            Body::Other => {}
        }
        // The service's request path: [route/shape, content type, encoding, accept] + body.
        let (shape, pc) = match &body {
            Body::Request(m) => (0u8, Some(postcard(m))),
            Body::Feedback(m) => (1, Some(postcard(m))),
            Body::Batch(events) => (2, Some(events.iter().flat_map(postcard).collect())),
            // Bodies the core refuses still exercise the errors: as feedback.
            Body::Response(_) | Body::Other => (1, None),
        };
        let mut seed = vec![shape, 1, 0, 0];
        seed.extend_from_slice(json.as_bytes());
        c.add("service_request", &format!("{name}-json"), seed);
        if let Some(pc) = pc {
            let mut seed = vec![shape, 2, 0, 1];
            seed.extend_from_slice(&pc);
            c.add("service_request", &format!("{name}-postcard"), seed);
            let mut seed = vec![shape, 1, 1, 5];
            seed.extend_from_slice(json.as_bytes());
            c.add("service_request", &format!("{name}-json-gzip"), seed);
        }
    }
    // The published bodies, filled from records (`json_target`, `postcard_target`,
    // `service_request_target`): hole 0 of the request is the exchange, 1 the type.
    c.add(
        "json_decode",
        "template-request",
        b"\x00bybit\xff\x01rest".to_vec(),
    );
    c.add(
        "json_decode",
        "template-feedback-timeout",
        b"\x04timeout\xff\x05false".to_vec(),
    );
    c.add(
        "postcard_decode",
        "template-edits",
        b"\x00okx\xfe\x03\x00\x05\xff".to_vec(),
    );
    for (name, seed) in [
        ("template-request", vec![4u8, 1, 0, 0]),
        ("template-request-postcard-accept-json", vec![4, 2, 0, 2]),
        ("template-feedback", vec![5, 1, 0, 0]),
        ("template-feedback-gzip-two-members", vec![5, 1, 9, 0]),
        ("template-batch-postcard", vec![6, 2, 0, 0, 0xFE]),
        ("template-batch-json-x-gzip", vec![6, 3, 2, 0, 0xFE, 0xFE]),
        ("no-content-type", vec![0, 0, 0, 0, b'{', b'}']),
        ("br-encoding", vec![1, 1, 7, 0, b'{', b'}']),
        ("gzip-not-compressed", vec![1, 1, 3, 0, 0x1f, 0x8b, 8, 0]),
        ("accept-refuses-both", vec![4, 1, 0, 4]),
    ] {
        c.add("service_request", name, seed);
    }

    // ---------------------------------------------------------- URLs
    let mut all_urls: Vec<String> = Vec::new();
    for file in [
        "docs/api.md",
        "docs/client.md",
        "docs/configuration.md",
        "docs/injector.md",
        "docs/migration-from-cryptofeed.md",
        "docs/operations.md",
        "docs/service.md",
        "adapters/service/tests/api.rs",
        "adapters/config/tests/loading.rs",
        "benches/fixtures/cryptofeed_config.rs",
    ] {
        all_urls.extend(urls(&read(&root, file)));
    }
    all_urls.sort();
    all_urls.dedup();
    let step = all_urls.len().div_ceil(40).max(1);
    for (i, u) in all_urls.iter().step_by(step).enumerate() {
        c.add("url_parse", &format!("url-{i:02}"), u.as_bytes());
    }

    // ---------------------------------------------------------- cryptofeed configuration
    let mut yamls: Vec<(String, String)> = Vec::new();
    for file in [
        "docs/configuration.md",
        "docs/migration-from-cryptofeed.md",
        "docs/operations.md",
    ] {
        let stem = Path::new(file)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for (i, block) in fenced(&read(&root, file), "yaml").into_iter().enumerate() {
            if block.contains("proxy:") || block.contains("external_service:") {
                yamls.push((format!("{stem}-md-{}", i + 1), block));
            }
        }
    }
    for (i, s) in raw_strings(&read(&root, "adapters/config/tests/loading.rs"))
        .into_iter()
        .enumerate()
    {
        if s.contains("proxy:") {
            yamls.push((format!("loading-rs-{}", i + 1), s));
        }
    }
    yamls.push(("bench-fixture".into(), fixture::yaml().to_owned()));
    let env_lines = |pairs: &[(&str, &str)]| -> String {
        pairs
            .iter()
            .map(|(k, v)| format!("{}={v}\n", k.trim_start_matches("CRYPTOFEED_PROXY_")))
            .collect()
    };
    for (name, y) in &yamls {
        let mut seed = vec![0u8];
        seed.extend_from_slice(y.as_bytes());
        c.add("config_load", &format!("yaml-{name}"), seed);
    }
    let env = env_lines(fixture::env());
    c.add(
        "config_load",
        "env-bench-fixture",
        [&[1u8][..], env.as_bytes()].concat(),
    );
    c.add(
        "config_load",
        "env-docs-pool-json",
        [
            &[1u8][..],
            br#"ENABLED=true
EXCHANGES__BINANCE__WEBSOCKET__POOL={"proxies":[{"url":"socks5://p1:1080"}],"strategy":"round_robin"}
EXTERNAL_SERVICE__ENABLED=true
EXTERNAL_SERVICE__ENDPOINTS=["https://a:8080","https://b:8080"]
EXTERNAL_SERVICE__AUTH_CREDENTIALS__TOKEN=${SERVICE_TOKEN}
!SERVICE_TOKEN=tok-1234abcd
"#,
        ]
        .concat(),
    );
    c.add(
        "config_load",
        "yaml-and-env-bench-fixture",
        [
            &[2u8][..],
            fixture::yaml().as_bytes(),
            b"\0",
            b"EXCHANGES__BINANCE__HTTP__URL=http://u:p@h:1\n",
        ]
        .concat(),
    );

    // ---------------------------------------------------------- service configuration
    let mut tomls: Vec<(String, String)> = Vec::new();
    for file in ["docs/service.md", "docs/operations.md"] {
        let stem = Path::new(file)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for (i, block) in fenced(&read(&root, file), "toml").into_iter().enumerate() {
            tomls.push((format!("{stem}-md-{}", i + 1), block));
        }
    }
    let api = raw_strings(&read(&root, "adapters/service/tests/api.rs"));
    let toml_literals: Vec<&String> = api
        .iter()
        .filter(|s| s.contains("[[proxies]]") || s.contains("[[clients]]"))
        .collect();
    tomls.push((
        "api-rs-clients-and-proxies".into(),
        toml_literals.iter().map(|s| s.as_str()).collect(),
    ));
    for (i, s) in raw_strings(&read(&root, "adapters/service/tests/hardening.rs"))
        .into_iter()
        .enumerate()
    {
        if s.contains("[[proxies]]") || s.contains("[[clients]]") {
            tomls.push((format!("hardening-rs-{}", i + 1), s));
        }
    }
    for s in raw_strings(&read(&root, "adapters/service/src/config.rs")) {
        if s.contains("[[proxies]]") {
            tomls.push(("embedded-default".into(), s));
        }
    }
    for (name, t) in &tomls {
        c.add(
            "service_config",
            &format!("toml-{name}"),
            [&[0u8][..], t.as_bytes()].concat(),
        );
        // The same file as YAML (block style), as `.yaml` files are read.
        if let Ok(value) = toml::from_str::<serde_json::Value>(t) {
            let mut y = String::new();
            to_yaml(&value, 0, &mut y);
            c.add(
                "service_config",
                &format!("yaml-{name}"),
                [&[1u8][..], y.as_bytes()].concat(),
            );
        }
    }

    // ---------------------------------------------------------- Resolver operations
    // Encoding: see fuzz_targets/resolver_ops.rs (`step`).
    let resolver: [(&str, Vec<u8>); 6] = [
        // Resolve binance/websocket, answer with a proxy, resolve again (cache).
        (
            "resolve-answer-cached",
            vec![1, 0, 1, 200, 3, 0, 60, 0, 1, 1, 0, 1, 200, 8],
        ),
        // Two resolves, transport failure, breaker forced open, time runs.
        (
            "failure-breaker-open",
            vec![
                1, 1, 0, 100, 2, 2, 1, 100, 7, 0, 10, 0, 0, 0, 255, 8, 8, 1, 1, 0, 50, 8,
            ],
        ),
        // Error statuses with and without Retry-After, then garbage.
        (
            "status-retry-after-garbage",
            vec![
                1, 0, 0, 250, 6, 0, 200, 0, 30, 1, 0, 0, 250, 6, 0, 152, 1, 8, 1, 2, 1, 250, 5, 0,
                6, b'{', b'"', b'p', b'r', b'o', b'x', 8,
            ],
        ),
        // A burst of feedback, some sent, time runs.
        (
            "feedback-burst",
            [vec![9, 0, 9, 1].repeat(20), vec![0, 100, 8, 0, 200, 8]].concat(),
        ),
        // A caller goes away; an unknown correlation id answers.
        (
            "cancel-unknown-reply",
            vec![1, 0, 1, 100, 11, 0, 12, 77, 1, 2, 0, 100, 4, 0, 5, 2, 0, 8],
        ),
        // Fallback policies: answers with no proxy.
        (
            "no-proxy-policies",
            vec![
                1, 0, 1, 200, 3, 0, 10, 1, 0, 1, 1, 1, 200, 3, 0, 10, 2, 0, 0, 255, 8,
            ],
        ),
    ];
    for (name, seed) in resolver {
        c.add("resolver_ops", name, seed);
    }
    for s in 0..4u64 {
        c.add(
            "resolver_ops",
            &format!("random-{s}"),
            random_bytes(s + 1, 256),
        );
    }

    // ---------------------------------------------------------- pool operations
    // Encoding: see fuzz_targets/pool_ops.rs: 3 configuration bytes, 10 × 2
    // spec bytes, the initial inventory's size, then operations.
    let pool_seed = |config: [u8; 3], specs: [(u8, u8); 10], first: u8, ops: &[u8]| -> Vec<u8> {
        let mut v = config.to_vec();
        for (f, m) in specs {
            v.extend([f, m]);
        }
        v.push(first);
        v.extend_from_slice(ops);
        v
    };
    let plain = [(0u8, 0u8); 10];
    // Failure (proxy_connect) of p0 by id: op 4, who 0, how 2 (failure, category 0).
    let fail_p0 = [4u8, 0, 2, 0];
    c.add(
        "pool_ops",
        "eject-probe-restore",
        pool_seed(
            [2, 0, 48],
            plain,
            2,
            &[&fail_p0[..], &[1, 0, 0, 9, 1, 0, 60, 1, 1, 0, 0]].concat(),
        ),
    );
    c.add(
        "pool_ops",
        "eject-expire",
        pool_seed(
            [0, 4, 16],
            plain,
            4,
            &[4, 0, 2, 0, 4, 0, 2, 0, 1, 0, 0, 0, 0, 3, 1, 0, 0],
        ),
    );
    // Leases: max_connections 1; connect_start (how 0), select, disconnect (how 4), lease expiry.
    c.add(
        "pool_ops",
        "leases-limit-expiry",
        pool_seed(
            [2, 0, 0],
            [(0, 1); 10],
            2,
            &[
                4, 0, 0, 0, 1, 0, 0, 4, 1, 0, 0, 1, 0, 0, 0, 10, 1, 1, 0, 0, 4, 0, 4, 0,
            ],
        ),
    );
    // Geo-block (category 5: how 2 | 5 << 3) of a single-region proxy, then a request for its region.
    c.add(
        "pool_ops",
        "geo-block-region",
        pool_seed(
            [0, 0, 16],
            [(1, 0); 10],
            3,
            &[4, 0, 42, 0, 1, 0, 0x10, 1, 0, 0x30, 0, 255, 2, 1, 0, 0x10],
        ),
    );
    // Rate limit named only by error_details ("HTTP 429"): no category (how 2 | 9 << 3), details 4.
    c.add(
        "pool_ops",
        "rate-limited-by-details",
        pool_seed(
            [1, 0, 0],
            plain,
            2,
            &[4, 0x20, 74, 12, 1, 0, 0, 1, 0, 0, 0, 61, 1, 1, 0, 0],
        ),
    );
    // Reloads: six proxies, one disabled, three, refused (ten), sticky selections.
    c.add(
        "pool_ops",
        "reloads-sticky",
        pool_seed(
            [4, 0, 16],
            plain,
            3,
            &[
                7, 0x3F, 0, 1, 0, 0, 8, 2, 0xC0, 0, 7, 0x3F, 0, 1, 0, 1, 7, 0x07, 0, 1, 1, 2, 7,
                0xFF, 0x03, 1, 0, 0,
            ],
        ),
    );
    // Weighted, allow-lists, connection types and regions varied.
    c.add(
        "pool_ops",
        "weighted-filters",
        pool_seed(
            [3, 0, 0],
            [
                (0, 4),
                (1, 8),
                (0x14, 12),
                (0x25, 0),
                (0x06, 4),
                (0x0B, 8),
                (0, 0),
                (0x12, 4),
                (0x21, 0),
                (0, 0),
            ],
            8,
            &[
                1, 0, 0, 1, 1, 0x10, 1, 0x82, 0x30, 2, 3, 0x50, 3, 4, 0xF0, 1, 0x81, 1, 5, 1, 17, 0,
            ],
        ),
    );
    for s in 0..4u64 {
        c.add(
            "pool_ops",
            &format!("random-{s}"),
            random_bytes(s + 100, 300),
        );
    }

    // ---------------------------------------------------------- write
    for (target, seeds) in &c.0 {
        let dir = fuzz.join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("corpus directory");
        for entry in std::fs::read_dir(&dir).expect("corpus directory") {
            let path = entry.expect("an entry").path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
            {
                std::fs::remove_file(&path).expect("an old seed");
            }
        }
        for (name, bytes) in seeds {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("a seed");
        }
        println!("{target}: {} seeds", seeds.len());
    }
}
