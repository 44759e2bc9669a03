//! Deserialising helpers shared by the layer's types: any scalar read as
//! text and converted inside the parser's call, a value written as a string
//! or a map, and lists refused as soon as they pass their bound.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// Reads any scalar (string, number, boolean) as text and converts it with
/// `f` inside the parser's call, so that a conversion error gets the value's
/// own path and line.
struct Scalar<F>(F);

impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for Scalar<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a single value (text or number)")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        (self.0)(&v.to_string()).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        (self.0)(&v.to_string()).map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        (self.0)(&v.to_string()).map_err(E::custom)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        (self.0)(if v { "true" } else { "false" }).map_err(E::custom)
    }
}

pub(super) fn scalar<'de, D, T, F>(d: D, f: F) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(&str) -> Result<T, String>,
{
    d.deserialize_any(Scalar(f))
}

fn scalar_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    scalar(d, |s| Ok(s.to_owned()))
}

pub(super) struct TextSeed;
impl<'de> de::DeserializeSeed<'de> for TextSeed {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        scalar_text(d)
    }
}

/// Deserialises `U` from a string (through `from_str`) or a map (through
/// `M`'s derived impl, then `from_map`), both inside the parser's call so that
/// errors carry the value's path and line.
pub(super) fn str_or_map<'de, D, M, U, S, F>(
    d: D,
    what: &'static str,
    from_str: S,
    from_map: F,
) -> Result<U, D::Error>
where
    D: Deserializer<'de>,
    M: Deserialize<'de>,
    S: FnOnce(&str) -> Result<U, String>,
    F: FnOnce(M) -> Result<U, String>,
{
    struct V<M, S, F>(&'static str, S, F, std::marker::PhantomData<M>);
    impl<'de, M, U, S, F> Visitor<'de> for V<M, S, F>
    where
        M: Deserialize<'de>,
        S: FnOnce(&str) -> Result<U, String>,
        F: FnOnce(M) -> Result<U, String>,
    {
        type Value = U;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<U, E> {
            (self.1)(v).map_err(E::custom)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<U, A::Error> {
            let m = M::deserialize(de::value::MapAccessDeserializer::new(map))?;
            (self.2)(m).map_err(de::Error::custom)
        }
    }
    d.deserialize_any(V(what, from_str, from_map, std::marker::PhantomData))
}
/// Reads the rest of a list, refusing it as soon as it holds more than
/// `max` items: the item past the bound is skipped unread (its aliases not
/// expanded), nothing after it is looked at. `what` names the items in the
/// message (`" exchanges"`, or empty).
pub(super) fn bounded_list<'de, A, T>(
    mut seq: A,
    max: usize,
    what: &str,
) -> Result<Vec<T>, A::Error>
where
    A: SeqAccess<'de>,
    T: Deserialize<'de>,
{
    let mut out = Vec::new();
    while out.len() < max {
        match seq.next_element()? {
            Some(v) => out.push(v),
            None => return Ok(out),
        }
    }
    match seq.next_element::<de::IgnoredAny>()? {
        Some(_) => Err(de::Error::custom(too_many(max, what))),
        None => Ok(out),
    }
}

pub(super) fn too_many(max: usize, what: &str) -> String {
    format!("too many items: more than {max} (at most {max}{what} allowed)")
}
