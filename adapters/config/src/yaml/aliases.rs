//! [`check_yaml_aliases`]: the document walked once with the YAML parser,
//! each alias counted as every node and all the text it repeats.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{MAX_YAML_EXPANDED_TEXT, MAX_YAML_NODES, YamlLimitError};

/// Checks that the document, its aliases expanded, holds at most
/// [`MAX_YAML_NODES`] nodes and [`MAX_YAML_EXPANDED_TEXT`] bytes of scalar
/// text. It walks the document once with the YAML parser, building nothing,
/// and stops as soon as a bound is passed; a file without `*` has no alias
/// and is not walked. Run it after
/// [`check_yaml_text`](super::check_yaml_text) (which bounds the parser's
/// own work) and before deserialising into types that would hold every
/// repetition.
///
/// Only a bound passed is an error: a document the parser refuses is left
/// for the real parse to report.
pub fn check_yaml_aliases(text: &str) -> Result<(), YamlLimitError> {
    if !text.contains('*') {
        return Ok(());
    }
    let budget = Budget::default();
    let result = Count(&budget).deserialize(serde_norway::Deserializer::from_str(text));
    match (result, budget.passed.get()) {
        (Err(e), Some(reason)) => {
            let mut message = e.to_string();
            if let Some(i) = message.rfind(" at line ") {
                message.truncate(i);
            }
            let path = message
                .strip_suffix(reason)
                .and_then(|p| p.strip_suffix(": "))
                .unwrap_or_default()
                .to_owned();
            // No line: the parser places a repeated node where the anchor
            // wrote it, not where the alias repeats it. The path says where.
            Err(YamlLimitError {
                path,
                reason: reason.to_owned(),
                line: None,
                column: None,
            })
        }
        _ => Ok(()),
    }
}

const TOO_MANY_EXPANDED: &str = "more than 250000 YAML nodes once aliases are expanded (an \
     alias counts as every node it repeats)";
const TOO_MUCH_TEXT: &str = "more than 4 MiB of text once aliases are expanded (an alias \
     counts as all the text it repeats)";

#[derive(Default)]
struct Budget {
    nodes: Cell<usize>,
    text: Cell<usize>,
    passed: Cell<Option<&'static str>>,
}

impl Budget {
    fn node<E: de::Error>(&self, text: usize) -> Result<(), E> {
        self.nodes.set(self.nodes.get() + 1);
        self.text.set(self.text.get().saturating_add(text));
        let passed = if self.nodes.get() > MAX_YAML_NODES {
            TOO_MANY_EXPANDED
        } else if self.text.get() > MAX_YAML_EXPANDED_TEXT {
            TOO_MUCH_TEXT
        } else {
            return Ok(());
        };
        self.passed.set(Some(passed));
        Err(E::custom(passed))
    }
}

/// Walks any value, counting it against the budget.
#[derive(Clone, Copy)]
struct Count<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.node(v.len())
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<(), E> {
        self.0.node(v.len())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.node(0)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.node(0)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged value (`!tag value`).
        use de::VariantAccess;
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_counted_as_what_they_repeat() {
        let names = vec!["n"; 1000].join(", ");
        let mut text = format!("a: &n [{names}]\nb:\n");
        for _ in 0..300 {
            text.push_str("  - *n\n");
        }
        let e = check_yaml_aliases(&text).unwrap_err();
        assert!(e.reason.contains("once aliases are expanded"), "{e}");
        assert!(e.path.starts_with("b["), "{e:?}");
        // A few aliases are fine; no `*` means no walk.
        let few = format!("a: &n [{names}]\nb: [*n, *n]\n");
        assert_eq!(check_yaml_aliases(&few), Ok(()));
        assert_eq!(check_yaml_aliases("a: [1, 2"), Ok(()));
        // Long text repeated.
        let long = "x".repeat(100_000);
        let mut text = format!("a: &s {long}\nb:\n");
        for _ in 0..50 {
            text.push_str("  - *s\n");
        }
        let e = check_yaml_aliases(&text).unwrap_err();
        assert!(e.reason.contains("MiB of text"), "{e}");
    }
}
