//! Helpers of the unit tests: the document of every configuration as JSON,
//! and ways into it.

use std::collections::BTreeSet;

use serde_json::Value;

use super::document_json;

pub(super) fn document() -> Value {
    serde_json::from_str(&document_json()).unwrap()
}

pub(super) fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let s = &doc["components"]["schemas"][name];
    assert!(s.is_object(), "no schema {name}");
    s
}

/// The object of a schema, through the `allOf` the feedback uses.
pub(super) fn object<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let s = schema(doc, name);
    s.get("allOf").map_or(s, |all| &all[0])
}

pub(super) fn properties(doc: &Value, name: &str) -> BTreeSet<String> {
    object(doc, name)["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{name} has no properties"))
        .keys()
        .cloned()
        .collect()
}

pub(super) fn required(doc: &Value, name: &str) -> BTreeSet<String> {
    object(doc, name)["required"]
        .as_array()
        .map(|r| r.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

pub(super) fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// `(path, method, operation)` of every operation.
pub(super) fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((path.clone(), method.clone(), op.clone()));
        }
    }
    out
}
