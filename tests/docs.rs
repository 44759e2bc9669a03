//! The operator documentation agrees with the code. Each test reads a page
//! of `docs/` and the source it describes, and fails when one of them
//! drifts:
//!
//! * every message quoted in the troubleshooting tables of
//!   `docs/operations.md` occurs in the source (`core/src`,
//!   `adapters/*/src`), as the program prints it;
//! * every metric the Grafana dashboard queries, and every metric in the
//!   alert rules of `docs/operations.md`, is one the code exports;
//! * the monitoring tables of `docs/operations.md` document exactly the
//!   metrics the code exports, with their types;
//! * `docs/api.md` names every operation of `docs/openapi.json` with its
//!   status codes, every error code, and the contract's headers and limits;
//! * the links of the new pages lead to files of the repository;
//! * the embassy-net wiring sample of `docs/gateway.md` is made of lines of
//!   `adapters/embassy/examples/embassy_net.rs`, which is compiled.
//!
//! Metric names are read from the code, not listed here: the client's
//! constants in `adapters/tokio/src/metrics.rs` (with the macro that records
//! each, anywhere in `adapters/tokio/src`), and the service's registrations in
//! `adapters/service/src/metrics.rs` (its registry prefix, each registered
//! name, and the field type that says counter or gauge: prometheus-client
//! writes a counter with `_total`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proxy_delegate_core::contract;

// ------------------------------------------------------------------ files

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// Every `*.rs` file below `dir`, recursively, in a stable order.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The source of the program: `core/src` and every `adapters/*/src`.
fn program_sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&root().join("core/src"), &mut files);
    let mut adapters: Vec<_> = std::fs::read_dir(root().join("adapters"))
        .expect("adapters/")
        .map(|e| e.expect("a directory entry").path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    adapters.sort();
    assert!(adapters.len() >= 4, "adapters/*/src: {adapters:?}");
    for dir in adapters {
        rust_files(&dir, &mut files);
    }
    files
}

/// Rust source as its string literals print: a line continuation (`\`, the
/// line break and the next line's leading whitespace) is removed, `\"` is
/// `"`, and runs of blanks are one space.
fn normalise_source(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
            }
            '\\' if chars.peek() == Some(&'"') => {
                chars.next();
                out.push('"');
            }
            _ => out.push(c),
        }
    }
    collapse_blanks(&out)
}

/// Runs of spaces and tabs as one space (line breaks stay).
fn collapse_blanks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = false;
    for c in text.chars() {
        if c == ' ' || c == '\t' {
            if !blank {
                out.push(' ');
            }
            blank = true;
        } else {
            out.push(c);
            blank = false;
        }
    }
    out
}

// ------------------------------------------------------------------ Markdown

/// The text of the section under the level-2 heading `## {title}`, up to
/// the next level-2 heading (headings inside code fences do not count).
fn section<'a>(doc: &'a str, title: &str) -> &'a str {
    let mut start = None;
    let mut fenced = false;
    let mut offset = 0;
    for line in doc.split_inclusive('\n') {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with("## ") {
            if start.is_some() {
                return &doc[start.unwrap_or(0)..offset];
            }
            if line[3..].trim() == title {
                start = Some(offset + line.len());
            }
        }
        offset += line.len();
    }
    match start {
        Some(s) => &doc[s..],
        None => panic!("no section `## {title}`"),
    }
}

/// One Markdown table: the heading it is under, its header cells and its
/// rows.
#[derive(Debug)]
struct Table {
    heading: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// The index of the first column whose header contains `word` (any case).
    fn column(&self, word: &str) -> Option<usize> {
        self.header
            .iter()
            .position(|h| h.to_lowercase().contains(word))
    }
}

/// The cells of a table line: split at `|` outside code spans.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim();
    let inner = inner.strip_prefix('|').unwrap_or(inner);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut code = false;
    for c in inner.chars() {
        match c {
            '`' => {
                code = !code;
                cell.push(c);
            }
            '|' if !code => cells.push(std::mem::take(&mut cell).trim().to_owned()),
            _ => cell.push(c),
        }
    }
    cells.push(cell.trim().to_owned());
    cells
}

/// Every table of `text` outside code fences.
fn tables(text: &str) -> Vec<Table> {
    let mut out = Vec::new();
    let mut fenced = false;
    let mut current: Option<Table> = None;
    let mut heading = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            heading = line.trim_start_matches('#').trim().to_owned();
        }
        let is_row = !fenced && line.trim_start().starts_with('|');
        match (&mut current, is_row) {
            (Some(table), true) => table.rows.push(cells(line)),
            (None, true) => {
                // A header is followed by its delimiter row.
                let delimiter = lines.peek().is_some_and(|next| {
                    let t = next.trim();
                    t.starts_with('|') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
                });
                assert!(delimiter, "a table without a delimiter row: {line}");
                lines.next();
                current = Some(Table {
                    heading: heading.clone(),
                    header: cells(line),
                    rows: Vec::new(),
                });
            }
            (Some(_), false) => out.extend(current.take()),
            (None, false) => {}
        }
    }
    out.extend(current);
    out
}

/// The code spans (`` `...` ``) of a piece of Markdown.
fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_owned())
        .collect()
}

// ------------------------------------------------------------------ messages

/// Longest run a `{...}` placeholder of a quoted message may stand for in
/// the source (a `{}`, an `{endpoint}`, a `{:?}`), on the same line.
const MAX_PLACEHOLDER: usize = 120;

/// The literal pieces of a quoted message, cut at its `{...}` placeholders.
fn literal_pieces(message: &str) -> Vec<String> {
    let mut pieces = vec![String::new()];
    let mut depth = 0usize;
    for c in message.chars() {
        match c {
            '{' => {
                if depth == 0 {
                    pieces.push(String::new());
                }
                depth += 1;
            }
            '}' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            _ => pieces.last_mut().expect("one piece at least").push(c),
        }
    }
    pieces.retain(|p| !p.is_empty());
    pieces
}

/// Whether `pieces` follow one another from the start of `haystack`, each
/// after a placeholder of at most [`MAX_PLACEHOLDER`] characters on the same
/// line.
fn pieces_follow(haystack: &str, pieces: &[String]) -> bool {
    let Some((piece, rest)) = pieces.split_first() else {
        return true;
    };
    let limit = haystack
        .char_indices()
        .take_while(|(_, c)| *c != '\n')
        .nth(MAX_PLACEHOLDER)
        .map_or_else(|| haystack.find('\n').unwrap_or(haystack.len()), |(i, _)| i);
    haystack
        .match_indices(piece.as_str())
        .take_while(|(i, _)| *i <= limit)
        .any(|(i, _)| pieces_follow(&haystack[i + piece.len()..], rest))
}

/// Whether `message` (with `{...}` as wildcards) occurs in `source`.
fn occurs(source: &str, message: &str) -> bool {
    let pieces = literal_pieces(&collapse_blanks(message));
    let Some((first, rest)) = pieces.split_first() else {
        return false;
    };
    source
        .match_indices(first.as_str())
        .any(|(i, _)| pieces_follow(&source[i + first.len()..], rest))
}

/// The messages of the troubleshooting tables: the code spans of every
/// column whose header says `message`.
fn troubleshooting_messages() -> Vec<String> {
    let doc = read("docs/operations.md");
    let mut messages = Vec::new();
    for table in tables(section(&doc, "Troubleshooting")) {
        let column = table.column("message").unwrap_or_else(|| {
            panic!("a troubleshooting table without a message column: {table:?}")
        });
        for row in &table.rows {
            let spans = code_spans(row.get(column).map_or("", String::as_str));
            assert!(
                !spans.is_empty(),
                "a troubleshooting row quotes no message: {row:?}"
            );
            messages.extend(spans);
        }
    }
    messages
}

#[test]
fn troubleshooting_messages_occur_in_the_source() {
    let messages = troubleshooting_messages();
    assert!(
        messages.len() >= 40,
        "the troubleshooting tables quote only {} messages",
        messages.len()
    );
    let sources: Vec<(PathBuf, String)> = program_sources()
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("a source file");
            (p, normalise_source(&text))
        })
        .collect();
    let mut missing = Vec::new();
    for m in &messages {
        let literal: usize = literal_pieces(m).iter().map(|p| p.chars().count()).sum();
        assert!(
            literal >= 20,
            "`{m}` is too short to identify a message: quote at least ~25 characters"
        );
        if !sources.iter().any(|(_, text)| occurs(text, m)) {
            missing.push(m.as_str());
        }
    }
    assert!(
        missing.is_empty(),
        "docs/operations.md quotes messages the program does not print (not in core/src or \
         adapters/*/src):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn message_matching_is_exact_but_for_placeholders() {
    let source = normalise_source(
        "format!(\"proxy service {ep} failed (HTTP {status}, a server error){after}: the \\\n             service is failing\")\nlet x = \"say \\\"fail\\\": not\";",
    );
    assert!(occurs(&source, "failed (HTTP {status}, a server error)"));
    assert!(occurs(
        &source,
        "failed (HTTP {}, a server error){}: the service is failing"
    ));
    assert!(occurs(&source, "say \"fail\": not"));
    assert!(!occurs(&source, "failed (HTTP 503, a server error)"));
    assert!(!occurs(&source, "failed (HTTP {status}, a client error)"));
    // A placeholder does not reach across lines.
    assert!(!occurs(&source, "is failing{x}say"));
}

// ------------------------------------------------------------------ metrics

/// A kind of metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The first string literal of `text`, and the text after it.
fn first_literal(text: &str) -> Option<(&str, &str)> {
    let start = text.find('"')? + 1;
    let len = text[start..].find('"')?;
    Some((&text[start..start + len], &text[start + len + 1..]))
}

/// An identifier (or path, `a::b::C`) at the start of `text`, after blanks.
fn leading_path(text: &str) -> &str {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The client's metrics: the `pub const NAME: &str = "..."` of its
/// metrics module, each with the kind of the macro that records it.
fn client_metrics() -> BTreeMap<String, Kind> {
    let module = read("adapters/tokio/src/metrics.rs");
    let mut consts = BTreeMap::new();
    for line in module.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else {
            continue;
        };
        let Some((name, value)) = rest.split_once(": &str =") else {
            continue;
        };
        let (value, _) = first_literal(value).expect("a string constant");
        consts.insert(name.trim().to_owned(), value.to_owned());
    }
    assert!(consts.len() >= 5, "client metric constants: {consts:?}");

    let mut files = Vec::new();
    rust_files(&root().join("adapters/tokio/src"), &mut files);
    let mut kinds: BTreeMap<String, Kind> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a source file");
        for (kind, mac) in [
            (Kind::Counter, "counter!("),
            (Kind::Gauge, "gauge!("),
            (Kind::Histogram, "histogram!("),
        ] {
            for (i, _) in text.match_indices(mac) {
                let path = leading_path(&text[i + mac.len()..]);
                let name = path.rsplit("::").next().unwrap_or(path);
                if let Some(value) = consts.get(name) {
                    let before = kinds.insert(value.clone(), kind);
                    assert!(
                        before.is_none_or(|k| k == kind),
                        "{value} is recorded as two kinds"
                    );
                }
            }
        }
    }
    for (name, value) in &consts {
        assert!(
            kinds.contains_key(value),
            "the client's metric {name} ({value}) is recorded nowhere in adapters/tokio/src"
        );
    }
    kinds
}

/// The service's metrics as exported: the registry's prefix, `_`, the
/// registered name, and `_total` for counters.
fn service_metrics() -> BTreeMap<String, Kind> {
    let module = read("adapters/service/src/metrics.rs");
    let prefix_at = module
        .find("Registry::with_prefix(")
        .expect("the service's registry has a prefix");
    let (prefix, _) = first_literal(&module[prefix_at..]).expect("the prefix literal");

    // The fields of `struct Metrics` and their types.
    let body_at = module
        .find("pub(crate) struct Metrics {")
        .expect("struct Metrics");
    let body = &module[body_at..];
    let body = &body[body.find('{').expect("{") + 1..body.find("\n}").expect("}")];
    let mut fields = BTreeMap::new();
    for line in body.lines() {
        let line = line.trim().trim_start_matches("pub(crate) ");
        if let Some((name, ty)) = line.split_once(':') {
            fields.insert(
                name.trim().to_owned(),
                ty.trim().trim_end_matches(',').to_owned(),
            );
        }
    }

    let mut out = BTreeMap::new();
    let mut registered = BTreeSet::new();
    for (i, _) in module.match_indices(".register(") {
        let call = &module[i..];
        let call = &call[..call.find(");").expect("the end of register(...)")];
        let (name, _) = first_literal(call).expect("a registered name");
        let field_at = call
            .find("m.")
            .expect("the registered field, `m.<field>.clone()`");
        let field = leading_path(&call[field_at + 2..]);
        let ty = fields
            .get(field)
            .unwrap_or_else(|| panic!("register(\"{name}\") names an unknown field {field}"));
        let kind = if ty.contains("Counter") {
            Kind::Counter
        } else if ty.contains("Histogram") {
            Kind::Histogram
        } else if ty.contains("Gauge") {
            Kind::Gauge
        } else {
            panic!("the field {field} of type {ty} is no metric this test knows")
        };
        let exported = match kind {
            Kind::Counter => format!("{prefix}_{name}_total"),
            _ => format!("{prefix}_{name}"),
        };
        out.insert(exported, kind);
        registered.insert(field.to_owned());
    }
    let unregistered: Vec<_> = fields
        .keys()
        .filter(|f| *f != "registry" && !registered.contains(*f))
        .collect();
    assert!(
        unregistered.is_empty(),
        "metric fields this test did not see registered: {unregistered:?}"
    );
    assert!(out.len() >= 5, "service metrics: {out:?}");
    out
}

/// Every metric name either side exports, with its kind. Both sides export
/// `proxy_delegate_feedback_total` (a counter on both).
fn exported_metrics() -> BTreeMap<String, Kind> {
    let mut all = client_metrics();
    for (name, kind) in service_metrics() {
        if let Some(k) = all.insert(name.clone(), kind) {
            assert_eq!(
                k,
                kind,
                "{name} is a {} on one side, a {} on the other",
                k.as_str(),
                kind.as_str()
            );
        }
    }
    all
}

/// Series Prometheus makes itself, which may appear in queries.
const PROMETHEUS_SERIES: [&str; 1] = ["up"];

/// The metric names of a PromQL expression: identifiers outside label
/// matchers, ranges, strings and grouping lists, that are neither functions
/// nor keywords nor aggregation operators.
fn promql_metrics(expr: &str) -> Vec<String> {
    const WORDS: [&str; 28] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
        "limitk",
        "limit_ratio",
        "atan2",
    ];
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let skip_to = |from: usize, close: char| -> usize {
        let mut i = from;
        let mut quote: Option<char> = None;
        while i < chars.len() {
            match (quote, chars[i]) {
                (Some(_), '\\') => i += 1,
                (Some(q), c) if c == q => quote = None,
                (None, c @ ('"' | '\'' | '`')) => quote = Some(c),
                (None, c) if c == close => return i + 1,
                _ => {}
            }
            i += 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c {
                if chars[j] == '\\' {
                    j += 1;
                }
                j += 1;
            }
            i = j + 1;
        } else if c == '{' {
            i = skip_to(i + 1, '}');
        } else if c == '[' {
            i = skip_to(i + 1, ']');
        } else if c == '$' {
            // A Grafana variable: `$__rate_interval`, `${name}`.
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = skip_to(i + 1, '}');
            } else {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number or a duration: 0.95, 1e3, 5m.
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_')
            {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let call = chars.get(next) == Some(&'(');
            if GROUPING.contains(&word.as_str()) && call {
                i = skip_to(next + 1, ')');
            } else if !(call || WORDS.contains(&word.as_str())) {
                out.push(word);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Whether a queried name is exported: a name as it is, or a histogram's
/// `_bucket`, `_sum` or `_count` series.
fn is_exported(name: &str, exported: &BTreeMap<String, Kind>) -> bool {
    if exported.contains_key(name) || PROMETHEUS_SERIES.contains(&name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|base| exported.get(base) == Some(&Kind::Histogram))
    })
}

#[test]
fn promql_names_are_found() {
    let names = promql_metrics(
        r#"histogram_quantile(0.95, sum by (le, kind) (rate(a_bucket{x="b c", y=~"d|e"}[$__rate_interval]))) / ignoring(z) sum without (q) (b_total offset 5m) > bool 1e3 and on(w) max(c) or up"#,
    );
    assert_eq!(names, ["a_bucket", "b_total", "c", "up"]);
}

/// Every `expr` string of a Grafana dashboard, at any depth.
fn dashboard_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read("docs/dashboards/proxy-delegate.json"))
        .expect("docs/dashboards/proxy-delegate.json is JSON")
}

#[test]
fn dashboard_queries_exported_metrics() {
    let exported = exported_metrics();
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard(), &mut exprs);
    assert!(
        exprs.len() >= 10,
        "the dashboard has {} queries",
        exprs.len()
    );
    let mut queried = BTreeSet::new();
    let mut unknown = Vec::new();
    for expr in &exprs {
        let names = promql_metrics(expr);
        assert!(
            !names.is_empty(),
            "a dashboard query names no metric: {expr}"
        );
        for name in names {
            if !is_exported(&name, &exported) {
                unknown.push(format!("{name} (in {expr})"));
            }
            queried.insert(name);
        }
    }
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics the code does not export:\n  {}",
        unknown.join("\n  ")
    );
    // What the dashboard is for: each of these must have a panel.
    for needed in [
        "proxy_delegate_resolutions_total",
        "proxy_delegate_fallbacks_total",
        "proxy_delegate_breaker_state",
        "proxy_delegate_service_request_seconds_bucket",
        "proxy_delegate_proxy_health_score",
        "proxy_delegate_ejections_total",
        "proxy_delegate_feedback_ignored_total",
        "proxy_delegate_connections_total",
    ] {
        assert!(
            queried.contains(needed),
            "the dashboard has no panel over {needed}"
        );
    }
}

#[test]
fn dashboard_is_importable() {
    let d = dashboard();
    let inputs = d["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS"
            && i["type"] == "datasource"
            && i["pluginId"] == "prometheus"),
        "no DS_PROMETHEUS data source input: {inputs:?}"
    );
    let version = d["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&version), "schemaVersion {version}");
    assert!(d["title"].is_string() && d["uid"].is_string());
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        let id = p["id"].as_u64().expect("a panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        for key in ["h", "w", "x", "y"] {
            assert!(
                p["gridPos"][key].is_u64(),
                "panel {id} has no gridPos.{key}"
            );
        }
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel {id}'s data source"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} has no query");
        for t in targets {
            assert_eq!(
                t["datasource"]["uid"], "${DS_PROMETHEUS}",
                "panel {id}'s query data source"
            );
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "panel {id}: empty expr"
            );
        }
    }
}

/// The metrics of the monitoring tables of docs/operations.md (tables whose
/// first column is `metric`) under the heading that names `side`
/// (`client`, `service`), with the type each row gives.
fn documented_metrics(side: &str) -> Vec<(String, String)> {
    let doc = read("docs/operations.md");
    let mut out = Vec::new();
    let mut tables_seen = 0;
    for table in tables(section(&doc, "Monitoring")) {
        if table
            .header
            .first()
            .is_none_or(|h| h.to_lowercase() != "metric")
        {
            continue;
        }
        let heading = table.heading.to_lowercase();
        assert!(
            heading.contains("client") || heading.contains("service"),
            "a metric table under `{}`: say whose metrics (client or service)",
            table.heading
        );
        if !heading.contains(side) {
            continue;
        }
        tables_seen += 1;
        let kind = table.column("type").expect("a type column");
        for row in &table.rows {
            let names = code_spans(&row[0]);
            assert_eq!(names.len(), 1, "one metric per row: {row:?}");
            out.push((names[0].clone(), row.get(kind).cloned().unwrap_or_default()));
        }
    }
    assert!(
        tables_seen > 0,
        "no table of {side} metrics in `## Monitoring`"
    );
    out
}

/// What is wrong between the documented metrics of one side and its code.
fn metric_table_problems(
    side: &str,
    documented: &[(String, String)],
    exported: &BTreeMap<String, Kind>,
) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for (name, kind) in documented {
        match exported.get(name) {
            None => problems.push(format!(
                "{name} is in the {side} table but the {side} does not export it"
            )),
            Some(k) if k.as_str() != kind.trim() => problems.push(format!(
                "{name} is documented as a {kind}, the {side} exports a {}",
                k.as_str()
            )),
            Some(_) => {}
        }
        if !seen.insert(name.clone()) {
            problems.push(format!("{name} is in the {side} table twice"));
        }
    }
    for name in exported.keys() {
        if !seen.contains(name) {
            problems.push(format!(
                "the {side} exports {name}, which the {side} table does not document"
            ));
        }
    }
    problems
}

#[test]
fn monitoring_tables_document_exactly_the_exported_metrics() {
    let mut problems =
        metric_table_problems("client", &documented_metrics("client"), &client_metrics());
    problems.extend(metric_table_problems(
        "service",
        &documented_metrics("service"),
        &service_metrics(),
    ));
    assert!(
        problems.is_empty(),
        "docs/operations.md's monitoring tables and the code disagree:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn alert_rules_use_exported_metrics() {
    let exported = exported_metrics();
    let doc = read("docs/operations.md");
    let exprs: Vec<&str> = section(&doc, "Alerting")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .collect();
    assert!(
        exprs.len() >= 5,
        "the alerting section has {} rules",
        exprs.len()
    );
    let unknown: Vec<String> = exprs
        .iter()
        .flat_map(|e| promql_metrics(e).into_iter().map(move |n| (n, *e)))
        .filter(|(n, _)| !is_exported(n, &exported))
        .map(|(n, e)| format!("{n} (in {e})"))
        .collect();
    assert!(
        unknown.is_empty(),
        "the alert rules of docs/operations.md use metrics the code does not export:\n  {}",
        unknown.join("\n  ")
    );
}

// ------------------------------------------------------------------ the API

fn openapi() -> serde_json::Value {
    serde_json::from_str(&read("docs/openapi.json")).expect("docs/openapi.json is JSON")
}

/// The section of api.md under the heading `` ## `{operation}` ``
/// (`METHOD /path`), to the next level-2 heading.
fn api_section<'a>(doc: &'a str, operation: &str) -> Option<&'a str> {
    let heading = format!("\n## `{operation}`\n");
    let start = doc.find(&heading)? + 1;
    let body = &doc[start + heading.len() - 1..];
    let end = body
        .find("\n## ")
        .map_or(doc.len(), |e| start + heading.len() - 1 + e);
    Some(&doc[start..end])
}

#[test]
fn api_doc_names_every_operation_and_its_statuses() {
    let doc = read("docs/api.md");
    let spec = openapi();
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.len() >= 5, "openapi.json has {} paths", paths.len());
    let mut problems = Vec::new();
    for (path, item) in paths {
        if !doc.contains(&format!("`{path}`")) && !doc.contains(&format!(" {path}`")) {
            problems.push(format!("path {path} is not named"));
        }
        for (method, op) in item.as_object().expect("a path item") {
            let operation = format!("{} {path}", method.to_uppercase());
            let Some(text) = api_section(&doc, &operation) else {
                problems.push(format!("no section `## `{operation}``"));
                continue;
            };
            let numbers: BTreeSet<&str> = text
                .split(|c: char| !c.is_ascii_digit())
                .filter(|w| w.len() == 3)
                .collect();
            for status in op["responses"].as_object().expect("responses").keys() {
                if !numbers.contains(status.as_str()) {
                    problems.push(format!("{operation}: status {status} is not named"));
                }
            }
        }
    }
    // The error table names exactly the codes of the `ErrorCode` schema.
    let codes: BTreeSet<String> = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("the ErrorCode enum")
        .iter()
        .map(|c| c.as_str().expect("a code").to_owned())
        .collect();
    let mut tabled = BTreeSet::new();
    for table in tables(section(&doc, "Errors")) {
        let Some(column) = table.column("code") else {
            continue;
        };
        for row in &table.rows {
            tabled.extend(code_spans(row.get(column).map_or("", String::as_str)));
        }
    }
    for code in codes.difference(&tabled) {
        problems.push(format!(
            "error code {code} is not in the table of `## Errors`"
        ));
    }
    for code in tabled.difference(&codes) {
        problems.push(format!("`## Errors` lists {code}, which is no ErrorCode"));
    }
    assert!(
        problems.is_empty(),
        "docs/api.md and docs/openapi.json disagree:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn api_doc_follows_the_contract() {
    let doc = read("docs/api.md");
    let lower = doc.to_lowercase();
    for path in [
        contract::REQUEST_PATH,
        contract::FEEDBACK_PATH,
        contract::PROXIES_PATH,
        contract::HEALTH_PATH,
    ] {
        assert!(doc.contains(path), "docs/api.md does not name {path}");
    }
    for header in [contract::CORRELATION_HEADER, contract::API_KEY_HEADER] {
        assert!(
            lower.contains(&format!("`{header}`")),
            "docs/api.md does not name the header {header}"
        );
    }
    for media in [contract::JSON, contract::POSTCARD] {
        assert!(
            doc.contains(&format!("`{media}`")),
            "docs/api.md does not name {media}"
        );
    }
    let kib = format!("{} KiB", contract::MAX_BODY / 1024);
    assert!(
        doc.contains(&kib),
        "docs/api.md does not give the body limit as {kib}"
    );
    assert!(doc.contains("`gzip`") || doc.contains("Content-Encoding: gzip"));
    assert!(
        doc.contains(r#"{"error": {"code""#),
        "docs/api.md does not show the error body"
    );
}

// ------------------------------------------------------------------ links

/// The relative link targets of a Markdown page (no scheme, no bare anchor).
fn relative_links(doc: &str) -> Vec<String> {
    doc.match_indices("](")
        .filter_map(|(i, _)| {
            let rest = &doc[i + 2..];
            let target = &rest[..rest.find(')')?];
            let target = target.split('#').next().unwrap_or("");
            (!target.is_empty() && !target.contains("://")).then(|| target.to_owned())
        })
        .collect()
}

#[test]
fn links_lead_to_files_of_the_repository() {
    let docs = root().join("docs");
    for page in ["docs/operations.md", "docs/api.md", "docs/gateway.md"] {
        for target in relative_links(&read(page)) {
            let file = docs.join(&target);
            assert!(
                file.is_file(),
                "{page} links to {target}, which is not a file"
            );
            let file = file.canonicalize().expect("an existing file");
            assert!(
                file.starts_with(root().canonicalize().expect("the root")),
                "{page} links outside the repository: {target}"
            );
        }
    }
    let readme = read("README.md");
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `docs/`"))
        .expect("README's docs row");
    for page in ["docs/operations.md", "docs/api.md", "docs/gateway.md"] {
        assert!(
            row.contains(&format!("]({page})")),
            "README's docs row does not link {page}"
        );
    }
    assert!(
        read("docs/service.md").contains("](operations.md"),
        "docs/service.md does not link operations.md"
    );
}

// ------------------------------------------------------------------ samples

/// The code of the first fenced block of `section` that opens with
/// `fence` (e.g. "```rust"), line by line.
fn fenced_block<'a>(section: &'a str, fence: &str) -> Vec<&'a str> {
    let mut lines = section.lines().skip_while(|l| l.trim_end() != fence);
    assert!(lines.next().is_some(), "no {fence} block");
    lines.take_while(|l| !l.starts_with("```")).collect()
}

#[test]
fn gateway_wiring_sample_is_the_compiled_example() {
    let doc = read("docs/gateway.md");
    let sample = fenced_block(section(&doc, "Wiring the embassy adapter"), "```rust");
    let example = read("adapters/embassy/examples/embassy_net.rs");
    let lines: BTreeSet<&str> = example.lines().map(str::trim).collect();
    let code: Vec<&str> = sample
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert!(code.len() >= 20, "the sample is {} lines", code.len());
    for line in code {
        assert!(
            lines.contains(line),
            "docs/gateway.md's wiring sample has a line that is not in \
             adapters/embassy/examples/embassy_net.rs (the compiled example): {line}"
        );
    }
}
