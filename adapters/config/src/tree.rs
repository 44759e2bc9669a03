//! Conversions between the written layers, the core settings and a value tree
//! (for YAML output and for provenance).

use std::collections::BTreeMap;

use proxy_delegate_core::model::{ExchangeId, ProxyUrl};
use proxy_delegate_core::settings::{
    AuthCredentials, ConnectionProxies, DEFAULT_EXCHANGES, DEFAULT_POOL, ExternalService,
    PoolProxy, ProxyConfig, TimeoutSeconds,
};
use serde_json::{Map, Value, json};

use crate::raw::*;
use crate::{ConfigError, Exposure, Settings};

fn url_text(u: &ProxyUrl, exposure: Exposure) -> Value {
    Value::String(match exposure {
        Exposure::Redacted => u.to_string(),
        Exposure::Exposed => u.expose_credentials().to_string(),
    })
}

fn proxy_config_tree(c: &RawProxyConfig, x: Exposure) -> Value {
    let mut m = Map::new();
    if let Some(u) = &c.url {
        m.insert("url".into(), url_text(&u.url, x));
    }
    if let Some(t) = &c.timeout_seconds {
        m.insert("timeout_seconds".into(), json!(t.0.get()));
    }
    if let Some(p) = &c.pool {
        let proxies: Vec<Value> = p
            .proxies
            .iter()
            .map(|pp| {
                let mut o = Map::new();
                o.insert("url".into(), url_text(&pp.url.url, x));
                if let Some(w) = &pp.weight {
                    o.insert("weight".into(), json!(w.0.get()));
                }
                if let Some(e) = &pp.enabled {
                    o.insert("enabled".into(), json!(e.0));
                }
                Value::Object(o)
            })
            .collect();
        let mut pm = Map::new();
        pm.insert("proxies".into(), Value::Array(proxies));
        if let Some(s) = &p.strategy {
            pm.insert("strategy".into(), json!(s.0.as_str()));
        }
        m.insert("pool".into(), Value::Object(pm));
    }
    Value::Object(m)
}

fn conn_tree(c: &RawConn, x: Exposure) -> Value {
    let mut m = Map::new();
    if let Some(h) = &c.http {
        m.insert("http".into(), proxy_config_tree(h, x));
    }
    if let Some(w) = &c.websocket {
        m.insert("websocket".into(), proxy_config_tree(w, x));
    }
    Value::Object(m)
}

fn secret_tree(s: &SecretValue, x: Exposure) -> Value {
    Value::String(match x {
        Exposure::Redacted => "***".into(),
        Exposure::Exposed => escape(s.0.expose()),
    })
}

/// The layer as a tree of the values it sets (normalised: full object form).
pub(crate) fn raw_to_tree(r: &RawSettings, x: Exposure) -> Value {
    let mut m = Map::new();
    if let Some(e) = &r.enabled {
        m.insert("enabled".into(), json!(e.0));
    }
    if let Some(s) = &r.seed {
        m.insert("seed".into(), json!(s.0));
    }
    if let Some(d) = &r.default {
        m.insert("default".into(), conn_tree(d, x));
    }
    if let Some(ex) = &r.exchanges {
        let em: Map<String, Value> = ex
            .iter()
            .map(|(k, v)| (k.0.clone(), conn_tree(v, x)))
            .collect();
        m.insert("exchanges".into(), Value::Object(em));
    }
    if let Some(e) = &r.external_service {
        let mut o = Map::new();
        macro_rules! put {
            ($f:ident, $v:expr) => {
                if let Some(v) = &e.$f {
                    o.insert(stringify!($f).into(), $v(v));
                }
            };
        }
        put!(enabled, |v: &Flag| json!(v.0));
        put!(endpoints, |v: &Vec<EndpointValue>| json!(
            v.iter()
                .map(|e| escape(&e.0.to_string()))
                .collect::<Vec<_>>()
        ));
        put!(auth_method, |v: &Auth| json!(v.0.as_str()));
        put!(timeout_seconds, |v: &ServiceTimeout| json!(v.0.get()));
        put!(cache_ttl_seconds, |v: &CacheTtl| json!(v.0.get()));
        put!(circuit_breaker_enabled, |v: &Flag| json!(v.0));
        put!(fallback_to_embedded, |v: &Flag| json!(v.0));
        put!(resolve_deadline_ms, |v: &Deadline| json!(v.0.get()));
        put!(hedge_delay_ms, |v: &Hedge| json!(v.0.get()));
        put!(stale_grace_seconds, |v: &StaleGrace| json!(v.0.get()));
        put!(region, |v: &RegionValue| json!(v.0.as_str()));
        put!(client_id, |v: &ClientIdValue| json!(v.0.as_str()));
        put!(srv_name, |v: &SrvName| json!(v.0.as_str()));
        if let Some(c) = &e.auth_credentials {
            let mut cm = Map::new();
            if let Some(t) = &c.token {
                cm.insert("token".into(), secret_tree(t, x));
            }
            if let Some(t) = &c.api_key {
                cm.insert("api_key".into(), secret_tree(t, x));
            }
            for (k, v) in [
                ("cert_file", &c.cert_file),
                ("key_file", &c.key_file),
                ("ca_file", &c.ca_file),
            ] {
                if let Some(v) = v {
                    cm.insert(k.into(), json!(escape(v.0.as_str())));
                }
            }
            o.insert("auth_credentials".into(), Value::Object(cm));
        }
        m.insert("external_service".into(), Value::Object(o));
    }
    Value::Object(m)
}

/// Leaves of `tree` under `proxy`, as (`proxy.a.b[0].c`, value text). An empty
/// object or list is a leaf.
pub(crate) fn flatten(tree: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, path: String, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    walk(v, format!("{path}.{k}"), out);
                }
            }
            Value::Array(a) if !a.is_empty() && a.iter().any(Value::is_object) => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, format!("{path}[{i}]"), out);
                }
            }
            other => out.push((path, other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk(tree, "proxy".into(), &mut out);
    out
}

fn raw_proxy_config(c: &ProxyConfig<DEFAULT_POOL>) -> RawProxyConfig {
    let timeout = (!(c.is_direct() && c.timeout_seconds == TimeoutSeconds::DEFAULT))
        .then_some(Timeout(c.timeout_seconds));
    RawProxyConfig {
        url: c.url.clone().map(Url::given),
        timeout_seconds: timeout,
        pool: c.pool.as_ref().map(|p| RawPool {
            proxies: p
                .proxies()
                .iter()
                .map(|pp| RawPoolProxy {
                    url: Url::given(pp.url.clone()),
                    weight: Some(WeightValue(pp.weight)),
                    enabled: Some(Flag(pp.enabled)),
                })
                .collect(),
            strategy: Some(Strategy(p.strategy())),
        }),
    }
}

fn raw_conn(c: &ConnectionProxies<DEFAULT_POOL>) -> RawConn {
    RawConn {
        http: c.http.as_ref().map(raw_proxy_config),
        websocket: c.websocket.as_ref().map(raw_proxy_config),
        dropped: Vec::new(),
    }
}

/// Every value of `s` as a layer (for code values, YAML output, provenance).
pub(crate) fn raw_from_settings(s: &Settings) -> RawSettings {
    let e = &s.external_service;
    let c = &e.auth_credentials;
    let any_cred = c.token.is_some()
        || c.api_key.is_some()
        || c.cert_file.is_some()
        || c.key_file.is_some()
        || c.ca_file.is_some();
    let default = raw_conn(&s.default);
    let exchanges: BTreeMap<ExchangeName, RawConn> = s
        .exchanges()
        .map(|(k, v)| (ExchangeName(k.as_str().to_owned()), raw_conn(v)))
        .collect();
    RawSettings {
        enabled: Some(Flag(s.enabled)),
        seed: Some(Seed(s.seed())),
        default: (default != RawConn::default()).then_some(default),
        exchanges: (!exchanges.is_empty()).then_some(exchanges),
        external_service: Some(RawExternal {
            enabled: Some(Flag(e.enabled)),
            endpoints: Some(e.endpoints.iter().cloned().map(EndpointValue).collect()),
            auth_method: e.auth_method.map(Auth),
            auth_credentials: any_cred.then(|| RawCredentials {
                token: c.token.clone().map(SecretValue),
                api_key: c.api_key.clone().map(SecretValue),
                cert_file: c.cert_file.clone().map(FilePathValue),
                key_file: c.key_file.clone().map(FilePathValue),
                ca_file: c.ca_file.clone().map(FilePathValue),
            }),
            timeout_seconds: Some(ServiceTimeout(e.timeout_seconds)),
            cache_ttl_seconds: Some(CacheTtl(e.cache_ttl_seconds)),
            circuit_breaker_enabled: Some(Flag(e.circuit_breaker_enabled)),
            fallback_to_embedded: Some(Flag(e.fallback_to_embedded)),
            resolve_deadline_ms: Some(Deadline(e.resolve_deadline_ms)),
            hedge_delay_ms: Some(Hedge(e.hedge_delay_ms)),
            stale_grace_seconds: Some(StaleGrace(e.stale_grace_seconds)),
            region: e.region.clone().map(RegionValue),
            client_id: e.client_id.clone().map(ClientIdValue),
            srv_name: e.srv_name.clone().map(SrvName),
        }),
    }
}

fn settings_error(path: &str, reason: impl ToString) -> ConfigError {
    ConfigError::Settings {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Fills `into` (an empty entry) from `c` in place: a pool is `DEFAULT_POOL`
/// proxies wide, so it is built where it lives rather than moved there.
fn fill_proxy_config(
    into: &mut ProxyConfig<DEFAULT_POOL>,
    c: &RawProxyConfig,
    path: &str,
) -> Result<(), ConfigError> {
    into.url = c.url.as_ref().map(|u| u.url.clone());
    into.timeout_seconds = c.timeout_seconds.as_ref().map(|t| t.0).unwrap_or_default();
    if let Some(p) = &c.pool {
        into.set_pool(
            p.proxies.iter().map(|pp| PoolProxy {
                url: pp.url.url.clone(),
                weight: pp.weight.as_ref().map(|w| w.0).unwrap_or_default(),
                enabled: pp.enabled.is_none_or(|e| e.0),
            }),
            p.strategy.as_ref().map(|s| s.0).unwrap_or_default(),
        )
        .map_err(|e| settings_error(&format!("{path}.pool.proxies"), e.reason))?;
    }
    Ok(())
}

/// Fills `into` (nothing listed) from `c` in place.
fn fill_conn(
    into: &mut ConnectionProxies<DEFAULT_POOL>,
    c: &RawConn,
    path: &str,
) -> Result<(), ConfigError> {
    if let Some(h) = &c.http {
        let entry = into.http.get_or_insert_with(ProxyConfig::default);
        fill_proxy_config(entry, h, &format!("{path}.http"))?;
    }
    if let Some(w) = &c.websocket {
        let entry = into.websocket.get_or_insert_with(ProxyConfig::default);
        fill_proxy_config(entry, w, &format!("{path}.websocket"))?;
    }
    Ok(())
}

/// Builds the core settings from the merged layers.
pub(crate) fn settings_from_raw(r: &RawSettings) -> Result<Box<Settings>, ConfigError> {
    let mut s: Box<Settings> = Box::default();
    s.enabled = r.enabled.is_some_and(|e| e.0);
    if let Some(seed) = &r.seed {
        s.set_seed(seed.0);
    }
    if let Some(d) = &r.default {
        fill_conn(&mut s.default, d, "proxy.default")?;
    }
    if let Some(ex) = &r.exchanges {
        if ex.len() > DEFAULT_EXCHANGES {
            return Err(settings_error(
                "proxy.exchanges",
                format!(
                    "too many items: {} (at most {DEFAULT_EXCHANGES} exchanges allowed)",
                    ex.len()
                ),
            ));
        }
        for (name, conn) in ex {
            let path = format!("proxy.exchanges.{}", name.0);
            let id = ExchangeId::new(&name.0).map_err(|e| settings_error(&path, e.reason))?;
            let entry = s
                .exchange_entry(id)
                .map_err(|e| settings_error(&path, e.reason))?;
            fill_conn(entry, conn, &path)?;
        }
    }
    if let Some(e) = &r.external_service {
        let x: &mut ExternalService = &mut s.external_service;
        if let Some(v) = &e.enabled {
            x.enabled = v.0;
        }
        if let Some(v) = &e.endpoints {
            x.endpoints.clear();
            for ep in v {
                x.endpoints.push(ep.0.clone()).map_err(|_| {
                    settings_error("proxy.external_service.endpoints", "too many items")
                })?;
            }
        }
        x.auth_method = e.auth_method.as_ref().map(|a| a.0);
        if let Some(c) = &e.auth_credentials {
            x.auth_credentials = AuthCredentials {
                token: c.token.as_ref().map(|t| t.0.clone()),
                api_key: c.api_key.as_ref().map(|t| t.0.clone()),
                cert_file: c.cert_file.as_ref().map(|t| t.0.clone()),
                key_file: c.key_file.as_ref().map(|t| t.0.clone()),
                ca_file: c.ca_file.as_ref().map(|t| t.0.clone()),
            };
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = &e.$f { x.$f = v.0; } )* };
        }
        set!(
            timeout_seconds,
            cache_ttl_seconds,
            circuit_breaker_enabled,
            fallback_to_embedded,
            resolve_deadline_ms,
            hedge_delay_ms,
            stale_grace_seconds
        );
        x.region = e.region.as_ref().map(|v| v.0.clone());
        x.client_id = e.client_id.as_ref().map(|v| v.0.clone());
        x.srv_name = e.srv_name.as_ref().map(|v| v.0.clone());
    }
    Ok(s)
}

/// How `layer` wrote `url` (password redacted), if it holds it.
pub(crate) fn written_in<'a>(
    layer: &'a RawSettings,
    url: &ProxyUrl,
) -> Option<std::borrow::Cow<'a, str>> {
    let in_config = |c: &'a RawProxyConfig| {
        let pool = c
            .pool
            .iter()
            .flat_map(|p| p.proxies.iter().map(|pp| &pp.url));
        c.url.iter().chain(pool)
    };
    let in_conn = |c: &'a RawConn| c.http.iter().chain(&c.websocket).flat_map(in_config);
    layer
        .default
        .iter()
        .flat_map(in_conn)
        .chain(
            layer
                .exchanges
                .iter()
                .flat_map(|m| m.values().flat_map(in_conn)),
        )
        .find(|u| u.url == *url)
        .map(Url::written)
}

#[cfg(test)]
mod tests {
    use proxy_delegate_core::settings::{AUTH_CREDENTIALS_FIELDS, EXTERNAL_SERVICE_FIELDS};

    use super::*;

    /// Settings with every `external_service` key set, written out as a tree
    /// and read back: no key is forgotten on the way.
    #[test]
    fn every_external_service_key_is_written_and_read_back() {
        let text = "proxy:\n  external_service:\n    enabled: true\n    endpoints: [\"https://a:8080\"]\n    auth_method: api_key\n    auth_credentials:\n      token: t0k3n\n      api_key: k3y\n      cert_file: /etc/c.pem\n      key_file: /etc/k.pem\n      ca_file: /etc/ca.pem\n    timeout_seconds: 11\n    cache_ttl_seconds: 301\n    circuit_breaker_enabled: false\n    fallback_to_embedded: false\n    resolve_deadline_ms: 501\n    hedge_delay_ms: 101\n    stale_grace_seconds: 601\n    region: us-east-1\n    client_id: me\n    srv_name: _proxy._tcp.example.com\n";
        let settings = crate::load_yaml_str(text).expect("valid settings");
        let tree = raw_to_tree(&raw_from_settings(&settings), Exposure::Exposed);
        let external = tree["external_service"].as_object().expect("a map");
        let mut keys: Vec<&str> = external.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = EXTERNAL_SERVICE_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
        let credentials = external["auth_credentials"].as_object().expect("a map");
        let mut keys: Vec<&str> = credentials.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = AUTH_CREDENTIALS_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
        // Read back: the same settings.
        let yaml = crate::to_yaml(&settings, Exposure::Exposed);
        let again = crate::load_yaml_str(&yaml).expect("loads back");
        assert_eq!(again.external_service, settings.external_service);
    }
}
