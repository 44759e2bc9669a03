//! The proxies of one exchange (or the default) as written: the connection
//! types ([`RawConn`]), each one's proxy ([`RawProxyConfig`]) and its pool
//! ([`RawPool`], [`RawPoolProxy`]).

use std::fmt;

use proxy_delegate_core::settings::DEFAULT_POOL;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::de::{TextSeed, bounded_list, str_or_map};
use super::leaf::{Flag, Strategy, Timeout, WeightValue};
use super::url::{Url, url_from_str};

/// `ProxyConfig` as written: `{url, timeout_seconds, pool}` or a plain URL.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct RawProxyConfig {
    pub(crate) url: Option<Url>,
    pub(crate) timeout_seconds: Option<Timeout>,
    pub(crate) pool: Option<RawPool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyConfigMap {
    #[serde(default)]
    url: Option<Url>,
    #[serde(default)]
    timeout_seconds: Option<Timeout>,
    #[serde(default)]
    pool: Option<RawPool>,
}

impl<'de> Deserialize<'de> for RawProxyConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_or_map(
            d,
            "a proxy URL or {url, timeout_seconds, pool}",
            |s| {
                Ok(RawProxyConfig {
                    url: Some(url_from_str(s, "url")?),
                    ..RawProxyConfig::default()
                })
            },
            |m: ProxyConfigMap| {
                Ok(RawProxyConfig {
                    url: m.url,
                    timeout_seconds: m.timeout_seconds,
                    pool: m.pool,
                })
            },
        )
    }
}

/// `ProxyPool` as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawPool {
    pub(crate) proxies: Vec<RawPoolProxy>,
    pub(crate) strategy: Option<Strategy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolMap {
    #[serde(default, deserialize_with = "pool_proxies")]
    proxies: Option<Vec<RawPoolProxy>>,
    #[serde(default)]
    strategy: Option<Strategy>,
}

impl<'de> Deserialize<'de> for RawPool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_or_map(
            d,
            "a pool {proxies, strategy}",
            |_| Err("invalid type: text (expected a pool {proxies, strategy})".to_owned()),
            |m: PoolMap| {
                let proxies = m
                    .proxies
                    .ok_or("missing proxies (a pool needs at least one proxy)")?;
                if proxies.is_empty() {
                    return Err(
                        "@proxies: must not be empty (a pool needs at least one proxy)".into(),
                    );
                }
                Ok(RawPool {
                    proxies,
                    strategy: m.strategy,
                })
            },
        )
    }
}

/// `pool.proxies`: null, or a list of at most [`DEFAULT_POOL`] proxies.
fn pool_proxies<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<RawPoolProxy>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Vec<RawPoolProxy>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of proxies")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            bounded_list(seq, DEFAULT_POOL, "").map(Some)
        }
    }
    d.deserialize_option(V)
}

/// A pool member as written: `{url, weight, enabled}` or a plain URL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawPoolProxy {
    pub(crate) url: Url,
    pub(crate) weight: Option<WeightValue>,
    pub(crate) enabled: Option<Flag>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolProxyMap {
    #[serde(default)]
    url: Option<Url>,
    #[serde(default)]
    weight: Option<WeightValue>,
    #[serde(default)]
    enabled: Option<Flag>,
}

impl<'de> Deserialize<'de> for RawPoolProxy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_or_map(
            d,
            "a proxy URL or {url, weight, enabled}",
            |s| {
                Ok(RawPoolProxy {
                    url: url_from_str(s, "url")?,
                    weight: None,
                    enabled: None,
                })
            },
            |m: PoolProxyMap| {
                Ok(RawPoolProxy {
                    url: m.url.ok_or("missing url (every pool proxy needs one)")?,
                    weight: m.weight,
                    enabled: m.enabled,
                })
            },
        )
    }
}

/// `ConnectionProxies` as written: `{http|rest, websocket|ws}` or a plain URL
/// (which sets `http` only). `None` means "not listed".
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct RawConn {
    pub(crate) http: Option<RawProxyConfig>,
    pub(crate) websocket: Option<RawProxyConfig>,
    /// Aliases given beside their canonical key (`rest` beside `http`, `ws`
    /// beside `websocket`) and dropped, as cryptofeed drops them: for a
    /// warning.
    pub(crate) dropped: Vec<&'static str>,
}

/// The keys of a `ConnectionProxies` map: each canonical key, then its alias.
const CONN_KEYS: [(&str, &str); 2] = [("http", "rest"), ("websocket", "ws")];

/// `{http|rest, websocket|ws}`. cryptofeed (pydantic) reads the canonical
/// key when both it and its alias are given, even when its value is null,
/// and drops the alias: so does this. An alias given after its canonical
/// key is skipped unread; one given before it is read, then dropped.
struct ConnMap {
    http: Option<RawProxyConfig>,
    websocket: Option<RawProxyConfig>,
    dropped: Vec<&'static str>,
}

impl<'de> Deserialize<'de> for ConnMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ConnMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map {http, websocket}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ConnMap, A::Error> {
                // Per connection type: the canonical key's value and the
                // alias's, each `Some` once given (the value itself may be
                // null: `Some(None)`).
                let mut given: [[Option<Option<RawProxyConfig>>; 2]; 2] = Default::default();
                let mut dropped = Vec::new();
                while let Some(key) = map.next_key_seed(TextSeed)? {
                    let Some((kind, alias, name)) =
                        CONN_KEYS
                            .iter()
                            .enumerate()
                            .find_map(|(kind, &(canon, alias))| {
                                if key == canon {
                                    Some((kind, 0, canon))
                                } else if key == alias {
                                    Some((kind, 1, alias))
                                } else {
                                    None
                                }
                            })
                    else {
                        return Err(de::Error::unknown_field(
                            &key,
                            &["http", "rest", "websocket", "ws"],
                        ));
                    };
                    if given[kind][alias].is_some() {
                        return Err(de::Error::duplicate_field(name));
                    }
                    if alias == 1 && given[kind][0].is_some() {
                        map.next_value::<de::IgnoredAny>()?;
                        given[kind][1] = Some(None);
                    } else {
                        given[kind][alias] = Some(map.next_value::<Option<RawProxyConfig>>()?);
                    }
                }
                let mut pick = |kind: usize| {
                    let [canonical, alias] = std::mem::take(&mut given[kind]);
                    match (canonical, alias) {
                        (Some(c), Some(_)) => {
                            dropped.push(CONN_KEYS[kind].1);
                            c
                        }
                        (Some(v), None) | (None, Some(v)) => v,
                        (None, None) => None,
                    }
                };
                let http = pick(0);
                let websocket = pick(1);
                Ok(ConnMap {
                    http,
                    websocket,
                    dropped,
                })
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for RawConn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_or_map(
            d,
            "a proxy URL or {http, websocket}",
            |s| {
                Ok(RawConn {
                    http: Some(RawProxyConfig {
                        url: Some(url_from_str(s, "http.url")?),
                        ..RawProxyConfig::default()
                    }),
                    ..RawConn::default()
                })
            },
            |m: ConnMap| {
                Ok(RawConn {
                    http: m.http,
                    websocket: m.websocket,
                    dropped: m.dropped,
                })
            },
        )
    }
}
