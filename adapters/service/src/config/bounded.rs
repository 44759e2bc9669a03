//! The lists and maps of the configuration file that have a bound: the
//! inventory, a proxy's regions and exchanges, and the exchanges with their
//! own policy.

use std::fmt;

use serde::Deserialize;

use super::{RawExchange, RawProxy};

/// The lists and maps of the file that have a bound refuse their first item
/// past it as it arrives, before reading it: a list of a million names (or
/// one alias repeated) is never built to be counted afterwards.
fn bounded_list<'de, D, T>(d: D, max: usize, message: &'static str) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
    struct V<T>(usize, &'static str, std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {} items", self.0)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while out.len() < self.0 {
                match seq.next_element()? {
                    Some(v) => out.push(v),
                    None => return Ok(out),
                }
            }
            match seq.next_element::<IgnoredAny>()? {
                Some(_) => Err(de::Error::custom(self.1)),
                None => Ok(out),
            }
        }
    }
    d.deserialize_seq(V(max, message, std::marker::PhantomData))
}

pub(super) fn inventory<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<RawProxy>, D::Error> {
    const _: () = assert!(crate::app::MAX_PROXIES == 4096);
    bounded_list(
        d,
        crate::app::MAX_PROXIES,
        "at most 4096 proxies (MAX_PROXIES)",
    )
}

pub(super) fn proxy_regions<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<String>, D::Error> {
    const _: () = assert!(proxy_delegate_core::pool::MAX_PROXY_REGIONS == 4);
    bounded_list(
        d,
        proxy_delegate_core::pool::MAX_PROXY_REGIONS,
        "at most 4 regions per proxy",
    )
}

pub(super) fn allowed_exchanges<'de, D>(d: D) -> Result<Option<Vec<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    // Null (YAML) is "not given", as for any optional key.
    Option::<AllowedExchanges>::deserialize(d).map(|o| o.map(|list| list.0))
}

/// The `exchanges` of a proxy: at most 16 names.
struct AllowedExchanges(Vec<String>);

impl<'de> Deserialize<'de> for AllowedExchanges {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const _: () = assert!(proxy_delegate_core::pool::MAX_ALLOWED_EXCHANGES == 16);
        bounded_list(
            d,
            proxy_delegate_core::pool::MAX_ALLOWED_EXCHANGES,
            "at most 16 exchanges per proxy (leave the list out to allow all)",
        )
        .map(AllowedExchanges)
    }
}

pub(super) fn exchange_policies<'de, D>(
    d: D,
) -> Result<std::collections::BTreeMap<String, RawExchange>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::{self, MapAccess, Visitor};
    const MAX: usize = proxy_delegate_core::pool::MAX_EXCHANGE_POLICIES;
    const _: () = assert!(MAX == 32);
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = std::collections::BTreeMap<String, RawExchange>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table of exchanges and their policies")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = std::collections::BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                if out.len() == MAX && !out.contains_key(&name) {
                    return Err(de::Error::custom(
                        "more than 32 exchanges with their own policy",
                    ));
                }
                let policy = map.next_value()?;
                out.insert(name, policy);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V)
}
