//! The `CRYPTOFEED_PROXY_*` environment layer: names case-insensitive, `__`
//! between nested keys, JSON values parsed as JSON, list items by index
//! (`...__PROXIES__0__URL`), unknown names reported as warnings.

use proxy_delegate_core::settings::{AUTH_CREDENTIALS_FIELDS, EXTERNAL_SERVICE_FIELDS};
use serde_json::{Map, Value};

use crate::raw::RawSettings;
use crate::{ConfigError, Warning, redact_text};

/// The prefix of every setting variable, matched case-insensitively.
pub const ENV_PREFIX: &str = "CRYPTOFEED_PROXY_";

/// Where in the settings a node sits, for the unknown-key check.
#[derive(Clone, Copy)]
enum Kind {
    Root,
    Exchanges,
    Conn,
    ProxyConfig,
    Pool,
    Proxies,
    PoolProxy,
    External,
    Endpoints,
    Credentials,
    Leaf,
}

fn child(kind: Kind, key: &str) -> Option<Kind> {
    use Kind::*;
    Some(match (kind, key) {
        (Root, "enabled" | "seed") => Leaf,
        (Root, "default") => Conn,
        (Root, "exchanges") => Exchanges,
        (Root, "external_service") => External,
        (Exchanges, _) => Conn,
        (Conn, "http" | "rest" | "websocket" | "ws") => ProxyConfig,
        (ProxyConfig, "url" | "timeout_seconds") => Leaf,
        (ProxyConfig, "pool") => Pool,
        (Pool, "proxies") => Proxies,
        (Pool, "strategy") => Leaf,
        (Proxies, _) => PoolProxy,
        (PoolProxy, "url" | "weight" | "enabled") => Leaf,
        (External, "endpoints") => Endpoints,
        (External, "auth_credentials") => Credentials,
        (External, k) if EXTERNAL_SERVICE_FIELDS.contains(&k) => Leaf,
        (Endpoints, _) => Leaf,
        (Credentials, k) if AUTH_CREDENTIALS_FIELDS.contains(&k) => Leaf,
        _ => return None,
    })
}

/// A value that looks like JSON (`{`, `[` or `"` first) is parsed as JSON;
/// anything else stays text.
fn parse_value(raw: &str) -> Value {
    let t = raw.trim_start();
    if t.starts_with(['{', '[', '"'])
        && let Ok(v) = serde_json::from_str(raw)
    {
        return v;
    }
    Value::String(raw.to_owned())
}

fn is_index(seg: &str) -> Option<usize> {
    if !seg.is_empty() && seg.len() <= 4 && seg.bytes().all(|b| b.is_ascii_digit()) {
        seg.parse().ok()
    } else {
        None
    }
}

/// Puts `value` at `path` in `root`, creating objects (or extending arrays for
/// numeric segments) on the way; a later variable replaces an earlier scalar.
fn insert(node: &mut Value, path: &[String], value: Value) {
    let Some((seg, rest)) = path.split_first() else {
        match (node, value) {
            // An indexed or nested variable may have filled parts already: merge.
            (Value::Object(existing), Value::Object(new)) => existing.extend(new),
            (slot, value) => *slot = value,
        }
        return;
    };
    if let (Value::Array(items), Some(i)) = (&mut *node, is_index(seg)) {
        while items.len() <= i {
            items.push(Value::Object(Map::new()));
        }
        return insert(&mut items[i], rest, value);
    }
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    if let Value::Object(map) = node {
        let child = map
            .entry(seg.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        insert(child, rest, value);
    }
}

/// Removes unknown keys (reporting each as a warning) and turns objects with
/// numeric keys into lists where a list is expected. `path` is the node's
/// dotted path; it is extended for the children and restored on return (one
/// buffer for the whole walk).
fn prune(
    node: &mut Value,
    kind: Kind,
    path: &mut String,
    found: &Found,
    warnings: &mut Vec<Warning>,
) {
    let list_kind = matches!(kind, Kind::Proxies | Kind::Endpoints);
    if list_kind
        && let Value::Object(map) = node
        && !map.is_empty()
        && map.keys().all(|k| is_index(k).is_some())
    {
        let mut items: Vec<(usize, Value)> = std::mem::take(map)
            .into_iter()
            .filter_map(|(k, v)| is_index(&k).map(|i| (i, v)))
            .collect();
        items.sort_by_key(|(i, _)| *i);
        *node = Value::Array(items.into_iter().map(|(_, v)| v).collect());
    }
    let len = path.len();
    match node {
        Value::Object(map) if !matches!(kind, Kind::Leaf) => {
            let mut unknown = Vec::new();
            for (key, v) in map.iter_mut() {
                path.push('.');
                path.push_str(key);
                match child(kind, key) {
                    Some(k) => prune(v, k, path, found, warnings),
                    None => {
                        warnings.push(unknown_warning(path, found));
                        unknown.push(key.clone());
                    }
                }
                path.truncate(len);
            }
            for key in unknown {
                map.remove(&key);
            }
        }
        Value::Array(items) if list_kind => {
            let item_kind = if matches!(kind, Kind::Proxies) {
                Kind::PoolProxy
            } else {
                Kind::Leaf
            };
            for (i, item) in items.iter_mut().enumerate() {
                use std::fmt::Write;
                // Writing to a String cannot fail.
                let _ = write!(path, ".{i}");
                prune(item, item_kind, path, found, warnings);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The parts of a variable name between `__` separators, as `split("__")`
/// gives them. A byte scan: a two-byte `str` pattern sets up a substring
/// searcher per name, a tenth of the environment load.
fn key_segments(name: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(name);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.as_bytes().windows(2).position(|w| w == b"__") {
            Some(i) => {
                rest = Some(&s[i + 2..]);
                Some(&s[..i])
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    })
}

/// Most keys a variable name may hold between `__` separators (the deepest
/// setting, `EXCHANGES__X__WEBSOCKET__POOL__PROXIES__0__URL`, holds 7).
const MAX_SEGMENTS: usize = 16;

/// A variable's name for a message: at most 120 characters of it.
fn short_name(name: &str) -> String {
    let mut out: String = name.chars().take(120).collect();
    if out.len() < name.len() {
        out.push('…');
    }
    out
}

/// The dotted settings path a variable name stands for
/// (`CRYPTOFEED_PROXY_DEFAULT__HTTP__URL` → `proxy.default.http.url`), for a
/// message about a variable that could not be read at all.
pub(crate) fn setting_path(name: &str) -> String {
    let rest = name.get(ENV_PREFIX.len()..).unwrap_or("");
    let mut path = String::from("proxy");
    for seg in key_segments(rest).take(MAX_SEGMENTS) {
        path.push('.');
        path.push_str(&seg.to_ascii_lowercase());
    }
    path
}

/// The variables read: (lower-case segments, name, value).
type Found = [(Vec<String>, String, String)];

/// Each variable's dotted settings path (`proxy.default.http.url`) and name,
/// for naming a variable in a warning or an error (built only then).
fn var_paths(found: &Found) -> Vec<(String, &str)> {
    found
        .iter()
        .map(|(segs, name, _)| (format!("proxy.{}", segs.join(".")), name.as_str()))
        .collect()
}

/// The warning for the unknown setting at `sub`, naming the variables that
/// set it.
fn unknown_warning(sub: &str, found: &Found) -> Warning {
    let vars = var_paths(found);
    let names: Vec<&str> = vars
        .iter()
        .filter(|(p, _)| {
            p == sub
                || p.strip_prefix(sub)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
        .map(|(_, n)| *n)
        .collect();
    Warning {
        message: format!(
            "{}: unknown setting {sub} (ignored)",
            if names.is_empty() {
                "environment".to_owned()
            } else {
                names.join(", ")
            }
        ),
    }
}

/// Reads the settings layer from `vars` (name, value pairs; only names that
/// start with [`ENV_PREFIX`], in any case, are read). Returns `None` when no
/// such variable is set.
pub(crate) fn load_env<I, K, V>(vars: I) -> Result<(Option<RawSettings>, Vec<Warning>), ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut found: Vec<(Vec<String>, String, String)> = Vec::new();
    let mut warnings = Vec::new();
    for (name, value) in vars {
        let name = name.as_ref();
        let Some(head) = name.get(..ENV_PREFIX.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(ENV_PREFIX) {
            continue;
        }
        let rest = &name[ENV_PREFIX.len()..];
        // The deepest setting is 7 keys down; a name with hundreds of `__`
        // would only build a tree as deep as itself (and recurse as deep).
        if key_segments(rest).nth(MAX_SEGMENTS).is_some() {
            warnings.push(Warning {
                message: format!(
                    "{}: more than {MAX_SEGMENTS} keys between '__' separators (ignored)",
                    short_name(name)
                ),
            });
            continue;
        }
        let segs: Vec<String> = key_segments(rest).map(|s| s.to_ascii_lowercase()).collect();
        if segs.iter().any(String::is_empty) {
            warnings.push(Warning {
                message: format!("{name}: empty key between '__' separators (ignored)"),
            });
            continue;
        }
        found.push((segs, name.to_owned(), value.as_ref().to_owned()));
    }
    if found.is_empty() {
        return Ok((None, warnings));
    }
    // Whole values first, then the variables that fill parts of them.
    found.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.1.cmp(&b.1)));
    let mut root = Value::Object(Map::new());
    for (segs, _, value) in &found {
        insert(&mut root, segs, parse_value(value));
    }
    prune(
        &mut root,
        Kind::Root,
        &mut String::from("proxy"),
        &found,
        &mut warnings,
    );

    // Tracking the path costs an allocation per key: do it only to explain
    // a failure (deserializing the same tree again fails the same way).
    if let Ok(raw) = <RawSettings as serde::Deserialize>::deserialize(&root) {
        return Ok((Some(raw), warnings));
    }
    let raw = serde_path_to_error::deserialize::<_, RawSettings>(&root).map_err(|e| {
        let path = format!("proxy.{}", e.path())
            .replace('[', ".")
            .replace(']', "");
        let path = path.trim_end_matches('.').to_owned();
        let variable = var_paths(&found)
            .into_iter()
            .filter(|(p, _)| {
                *p == path
                    || p.starts_with(&format!("{path}."))
                    || path.starts_with(&format!("{p}."))
            })
            .map(|(_, n)| n.to_owned())
            .next();
        let (path, reason) = crate::split_sub_path(
            &display_path(&path),
            &redact_text(&e.into_inner().to_string()),
        );
        ConfigError::Environment {
            variable,
            path,
            reason,
        }
    })?;
    Ok((Some(raw), warnings))
}

/// `proxy.a.proxies.0.url` → `proxy.a.proxies[0].url`.
fn display_path(p: &str) -> String {
    let mut out = String::new();
    for seg in p.split('.') {
        if is_index(seg).is_some() && !out.is_empty() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::key_segments;

    /// The same parts as `str::split("__")`, edge cases included.
    #[test]
    fn key_segments_split_like_str_split() {
        for name in [
            "",
            "A",
            "A__B",
            "A___B",
            "A____B",
            "__A",
            "A__",
            "____",
            "_",
            "DEFAULT__HTTP__URL",
        ] {
            let ours: Vec<&str> = key_segments(name).collect();
            let std: Vec<&str> = name.split("__").collect();
            assert_eq!(ours, std, "{name:?}");
        }
    }
}
