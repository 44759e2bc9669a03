//! [`SecretValue`]: a secret written literally, as `${NAME}` or
//! `${file:/path}`, or as a map `{file: /path}` / `{env: NAME}`; never
//! printed.

use std::fmt;

use proxy_delegate_core::settings::Secret;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::de::TextSeed;
use super::leaf::reason;
use super::references::expand;

/// A secret written literally, as `${NAME}`, or as `${file:/path}`; also
/// accepted as a map `{file: /path}` or `{env: NAME}`.
#[derive(Clone, PartialEq)]
pub(crate) struct SecretValue(pub(crate) Secret);

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a secret written as a number or a boolean is refused (without its value).
const UNQUOTED_SECRET: &str =
    "a secret must be text: write it in quotes (the value given is not shown)";

fn secret(s: &str) -> Result<SecretValue, String> {
    Secret::new(s).map(SecretValue).map_err(reason)
}

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret: text, ${NAME}, ${file:/path}, {file: /path} or {env: NAME}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretValue, E> {
                expand(v, false).and_then(|s| secret(&s)).map_err(E::custom)
            }
            // A number or a boolean is refused, not turned into text: the
            // parser has already changed it (`0123` read as 123), and serde's
            // own "invalid type" message would quote it.
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretValue, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretValue, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretValue, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<SecretValue, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<SecretValue, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretValue, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretValue, A::Error> {
                let mut out = None;
                while let Some(key) = map.next_key::<String>()? {
                    let val: String = map.next_value_seed(TextSeed)?;
                    if out.is_some() {
                        return Err(de::Error::custom(
                            "a secret reference has exactly one key, file or env",
                        ));
                    }
                    out = Some(
                        match key.as_str() {
                            "file" => expand(&format!("${{file:{val}}}"), false),
                            "env" => expand(&format!("${{{val}}}"), false),
                            other => {
                                return Err(de::Error::unknown_field(other, &["file", "env"]));
                            }
                        }
                        .map_err(de::Error::custom)?,
                    );
                }
                let s = out.ok_or_else(|| {
                    de::Error::custom(
                        "empty secret reference (expected {file: /path} or {env: NAME})",
                    )
                })?;
                secret(&s).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}
