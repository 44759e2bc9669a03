//! The `proxy:` block as written ([`RawSettings`]), its `external_service`
//! ([`RawExternal`], [`RawCredentials`]) and the cryptofeed file that holds
//! it ([`ConfigFile`]).

use std::collections::BTreeMap;
use std::fmt;

#[cfg(doc)]
use proxy_delegate_core::settings::{AUTH_CREDENTIALS_FIELDS, EXTERNAL_SERVICE_FIELDS};
use proxy_delegate_core::settings::{DEFAULT_EXCHANGES, MAX_ENDPOINTS};
use serde::Deserialize;
use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::de::{bounded_list, str_or_map, too_many};
use super::leaf::{
    Auth, CacheTtl, ClientIdValue, Deadline, EndpointValue, ExchangeName, FilePathValue, Flag,
    Hedge, RegionValue, Seed, ServiceTimeout, SrvName, StaleGrace,
};
use super::proxy::{RawConn, RawProxyConfig};
use super::secret::SecretValue;
use super::url::url_from_str;

/// Calls `$m!` with the fields of [`RawExternal`] that hold one value: every
/// `external_service` key ([`EXTERNAL_SERVICE_FIELDS`]) but
/// `auth_credentials`. Code that treats those fields alike (layering) uses
/// it, so that a new field is not forgotten there; a test checks it against
/// the struct and the core's list.
macro_rules! external_leaves {
    ($m:ident) => {
        $m!(
            enabled,
            endpoints,
            auth_method,
            timeout_seconds,
            cache_ttl_seconds,
            circuit_breaker_enabled,
            fallback_to_embedded,
            resolve_deadline_ms,
            hedge_delay_ms,
            stale_grace_seconds,
            region,
            client_id,
            srv_name
        )
    };
}
pub(crate) use external_leaves;

/// Calls `$m!` with the fields of [`RawCredentials`]
/// ([`AUTH_CREDENTIALS_FIELDS`]); checked like [`external_leaves`].
macro_rules! credential_fields {
    ($m:ident) => {
        $m!(token, api_key, cert_file, key_file, ca_file)
    };
}
pub(crate) use credential_fields;

/// `auth_credentials` as written.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCredentials {
    #[serde(default)]
    pub(crate) token: Option<SecretValue>,
    #[serde(default)]
    pub(crate) api_key: Option<SecretValue>,
    #[serde(default)]
    pub(crate) cert_file: Option<FilePathValue>,
    #[serde(default)]
    pub(crate) key_file: Option<FilePathValue>,
    #[serde(default)]
    pub(crate) ca_file: Option<FilePathValue>,
}

/// `external_service` as written.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExternal {
    #[serde(default)]
    pub(crate) enabled: Option<Flag>,
    #[serde(default, deserialize_with = "endpoints")]
    pub(crate) endpoints: Option<Vec<EndpointValue>>,
    #[serde(default)]
    pub(crate) auth_method: Option<Auth>,
    #[serde(default)]
    pub(crate) auth_credentials: Option<RawCredentials>,
    #[serde(default)]
    pub(crate) timeout_seconds: Option<ServiceTimeout>,
    #[serde(default)]
    pub(crate) cache_ttl_seconds: Option<CacheTtl>,
    #[serde(default)]
    pub(crate) circuit_breaker_enabled: Option<Flag>,
    #[serde(default)]
    pub(crate) fallback_to_embedded: Option<Flag>,
    #[serde(default)]
    pub(crate) resolve_deadline_ms: Option<Deadline>,
    #[serde(default)]
    pub(crate) hedge_delay_ms: Option<Hedge>,
    #[serde(default)]
    pub(crate) stale_grace_seconds: Option<StaleGrace>,
    #[serde(default)]
    pub(crate) region: Option<RegionValue>,
    #[serde(default)]
    pub(crate) client_id: Option<ClientIdValue>,
    #[serde(default)]
    pub(crate) srv_name: Option<SrvName>,
}

/// Endpoints: a list, or one URL, or comma-separated URLs.
fn endpoints<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<EndpointValue>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Vec<EndpointValue>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of service URLs")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let mut out = Vec::new();
            for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if out.len() == MAX_ENDPOINTS {
                    return Err(E::custom(too_many(MAX_ENDPOINTS, "")));
                }
                out.push(EndpointValue::deserialize(part.into_deserializer())?);
            }
            Ok(Some(out))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            bounded_list(seq, MAX_ENDPOINTS, "").map(Some)
        }
    }
    d.deserialize_option(V)
}

/// Entries `exchanges` may hold, an exchange named twice counted twice
/// (the later entry wins, as in cryptofeed): a bound on the work that
/// repeated names could make.
const MAX_EXCHANGE_ENTRIES: usize = 4 * DEFAULT_EXCHANGES;

/// `exchanges`: null, or a map of at most [`DEFAULT_EXCHANGES`] exchanges,
/// refused at the first exchange past the bound.
fn exchange_map<'de, D>(d: D) -> Result<Option<BTreeMap<ExchangeName, Option<RawConn>>>, D::Error>
where
    D: Deserializer<'de>,
{
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<BTreeMap<ExchangeName, Option<RawConn>>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of exchange names to their proxies")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            let mut entries = 0;
            while let Some(name) = map.next_key::<ExchangeName>()? {
                entries += 1;
                if entries > MAX_EXCHANGE_ENTRIES {
                    return Err(de::Error::custom(format!(
                        "too many entries: more than {MAX_EXCHANGE_ENTRIES} (at most \
                         {DEFAULT_EXCHANGES} exchanges allowed; a name given twice counts twice)"
                    )));
                }
                if out.len() == DEFAULT_EXCHANGES && !out.contains_key(&name) {
                    return Err(de::Error::custom(too_many(DEFAULT_EXCHANGES, " exchanges")));
                }
                let conn = map.next_value::<Option<RawConn>>()?;
                out.insert(name, conn);
            }
            Ok(Some(out))
        }
    }
    d.deserialize_option(V)
}

/// The `proxy:` block as written. A plain URL string means "enabled, with this
/// URL as the default for both connection types".
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct RawSettings {
    pub(crate) enabled: Option<Flag>,
    pub(crate) default: Option<RawConn>,
    pub(crate) exchanges: Option<BTreeMap<ExchangeName, RawConn>>,
    pub(crate) external_service: Option<RawExternal>,
    pub(crate) seed: Option<Seed>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsMap {
    #[serde(default)]
    enabled: Option<Flag>,
    #[serde(default)]
    default: Option<RawConn>,
    #[serde(default, deserialize_with = "exchange_map")]
    exchanges: Option<BTreeMap<ExchangeName, Option<RawConn>>>,
    #[serde(default)]
    external_service: Option<RawExternal>,
    #[serde(default)]
    seed: Option<Seed>,
}

impl<'de> Deserialize<'de> for RawSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_or_map(
            d,
            "a proxy URL or the proxy settings",
            |s| {
                let entry = RawProxyConfig {
                    url: Some(url_from_str(s, "default.http.url")?),
                    ..RawProxyConfig::default()
                };
                Ok(RawSettings {
                    enabled: Some(Flag(true)),
                    default: Some(RawConn {
                        http: Some(entry.clone()),
                        websocket: Some(entry),
                        dropped: Vec::new(),
                    }),
                    ..RawSettings::default()
                })
            },
            |m: SettingsMap| {
                Ok(RawSettings {
                    enabled: m.enabled,
                    default: m.default,
                    exchanges: m.exchanges.map(|map| {
                        map.into_iter()
                            .map(|(k, v)| (k, v.unwrap_or_default()))
                            .collect()
                    }),
                    external_service: m.external_service,
                    seed: m.seed,
                })
            },
        )
    }
}

/// A cryptofeed `config.yaml`: only the `proxy:` key is read; other keys are
/// cryptofeed's own and ignored.
#[derive(Deserialize)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub(crate) proxy: Option<RawSettings>,
}

#[cfg(test)]
mod tests {
    use proxy_delegate_core::settings::{AUTH_CREDENTIALS_FIELDS, EXTERNAL_SERVICE_FIELDS};

    use super::*;

    /// The names given, after checking with a pattern without `..` that they
    /// are all the struct's fields (besides `extra`).
    macro_rules! names {
        ($t:ident, [$($extra:ident),*], $($f:ident),*) => {{
            let $t { $($extra: _,)* $($f: _),* } = $t::default();
            let mut v = vec![$(stringify!($extra),)* $(stringify!($f)),*];
            v.sort_unstable();
            v
        }};
    }

    #[test]
    fn the_field_macros_match_the_structs_and_the_cores_lists() {
        macro_rules! external {
            ($($f:ident),*) => { names!(RawExternal, [auth_credentials], $($f),*) };
        }
        macro_rules! credentials {
            ($($f:ident),*) => { names!(RawCredentials, [], $($f),*) };
        }
        let mut want = EXTERNAL_SERVICE_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(external_leaves!(external), want);
        let mut want = AUTH_CREDENTIALS_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(credential_fields!(credentials), want);
    }
}
