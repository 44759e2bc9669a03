//! `docs/configuration.md` documents the service's configuration file as it
//! is: its example loads with the real loader, and every key the loader
//! accepts is named in it. Either test fails when a key is renamed, added or
//! dropped without the page following.

use std::path::Path;

use proxy_delegate_service::ServiceConfig;

const TITLE: &str = "## The service (`serve --config`)";

fn service_section() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let doc = std::fs::read_to_string(&path).expect("docs/configuration.md");
    let start = doc
        .find(TITLE)
        .unwrap_or_else(|| panic!("docs/configuration.md has no section {TITLE:?}"));
    let rest = &doc[start + TITLE.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// The section's one TOML example.
fn example() -> String {
    let section = service_section();
    let start = section
        .find("```toml\n")
        .expect("a ```toml example in the service section")
        + "```toml\n".len();
    let end = section[start..].find("```").expect("the example's end") + start;
    section[start..end].to_owned()
}

/// Replaces each `${...}` with a distinct literal secret: the loader refuses
/// a secret shared by two clients, and the test sets no environment.
fn with_literal_secrets(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    let mut n = 0;
    while let Some(at) = rest.find("${") {
        let close = rest[at..].find('}').expect("a closed ${...}") + at;
        out.push_str(&rest[..at]);
        n += 1;
        out.push_str(&format!("documented-secret-{n}"));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Drops the `[tls]` table: its files do not exist here.
fn without_tls(text: &str) -> String {
    let mut out = String::new();
    let mut in_tls = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_tls = line.starts_with("[tls]");
        }
        if !in_tls {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn the_documented_example_loads() {
    let text = without_tls(&with_literal_secrets(&example()));
    let config = ServiceConfig::parse(&text, false)
        .unwrap_or_else(|e| panic!("the example in docs/configuration.md is refused: {e}"));
    assert_eq!(config.listen.to_string(), "0.0.0.0:8443");
    assert_eq!(config.max_connections, 512);
    assert_eq!(config.clients.len(), 2);
    assert_eq!(config.proxies.len(), 1);
}

/// Field names of the loader's `Raw*` structs, read from its source.
fn accepted_keys() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config.rs");
    let source = std::fs::read_to_string(path).expect("src/config.rs");
    let mut keys = Vec::new();
    let mut in_raw = false;
    for line in source.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("struct Raw") && trimmed.ends_with('{') {
            in_raw = true;
            continue;
        }
        if in_raw && trimmed == "}" {
            in_raw = false;
            continue;
        }
        if in_raw
            && !trimmed.starts_with("//")
            && !trimmed.starts_with('#')
            && let Some((name, _)) = trimmed.split_once(':')
        {
            keys.push(name.trim_start_matches("pub ").to_owned());
        }
    }
    keys
}

#[test]
fn every_accepted_key_is_documented() {
    let keys = accepted_keys();
    // The loader's structs, not an empty scan, are what is compared.
    for known in [
        "listen",
        "max_connections",
        "bearer_tokens",
        "probe_interval_seconds",
    ] {
        assert!(
            keys.iter().any(|k| k == known),
            "the scan of src/config.rs missed {known}: {keys:?}"
        );
    }
    let example = example();
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| {
            !example.lines().any(|line| {
                let line = line.trim_start();
                line.starts_with(&format!("{k} ="))
                    || line.starts_with(&format!("# {k} ="))
                    || line.starts_with(&format!("[{k}"))
                    || line.starts_with(&format!("[[{k}"))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys the service accepts but docs/configuration.md does not show: {missing:?}"
    );
}
