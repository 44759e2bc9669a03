//! The `[pool]`, `[exchanges.*]` and `[[proxies]]` sections, checked and
//! turned into the core pool's types ([`PoolConfig`], [`ProxySpec`]).

use embassy_time::Duration;
use proxy_delegate_core::model::{
    ConnectionType, ExchangeId, FallbackPolicy, ProxyId, ProxyUrl, Region, TtlSeconds,
};
use proxy_delegate_core::pool::{
    ConnectionTypes, ExchangePolicy, PoolConfig, ProxySpec, StrategyKind,
};

use super::{ConfigError, RawExchange, RawPool, RawProxy, err};

fn secs(field: &str, v: Option<u64>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(0) => Err(err(field, "must be at least 1 second")),
        Some(s) if s > 365 * 24 * 3600 => Err(err(field, "must be at most a year")),
        Some(s) => Ok(Duration::from_secs(s)),
    }
}

fn strategy(field: &str, s: &str) -> Result<StrategyKind, ConfigError> {
    StrategyKind::parse(s).map_err(|e| err(field, e.reason.to_string()))
}

fn fallback(field: &str, s: &str) -> Result<FallbackPolicy, ConfigError> {
    FallbackPolicy::parse(s).map_err(|e| err(field, e.reason.to_string()))
}

pub(super) fn pool_config(
    raw: RawPool,
    exchanges: std::collections::BTreeMap<String, RawExchange>,
) -> Result<PoolConfig, ConfigError> {
    let d = PoolConfig::default();
    let mut c = PoolConfig {
        seed: raw.seed.unwrap_or(d.seed),
        strategy: match &raw.strategy {
            Some(s) => strategy("pool.strategy", s)?,
            None => d.strategy,
        },
        ttl_seconds: raw.ttl_seconds.unwrap_or(d.ttl_seconds),
        fallback_policy: match &raw.fallback_policy {
            Some(s) => fallback("pool.fallback_policy", s)?,
            None => d.fallback_policy,
        },
        exchange_policies: heapless::Vec::new(),
        sticky_ttl: secs(
            "pool.sticky_ttl_seconds",
            raw.sticky_ttl_seconds,
            d.sticky_ttl,
        )?,
        lease_ttl: secs("pool.lease_ttl_seconds", raw.lease_ttl_seconds, d.lease_ttl)?,
        ewma_alpha: d.ewma_alpha,
        latency_target_ms: raw.latency_target_ms.unwrap_or(d.latency_target_ms),
        eject_consecutive_failures: raw
            .eject_consecutive_failures
            .unwrap_or(d.eject_consecutive_failures),
        eject_success_rate_gap: raw
            .eject_success_rate_gap
            .unwrap_or(d.eject_success_rate_gap),
        eject_min_samples: raw.eject_min_samples.unwrap_or(d.eject_min_samples),
        eject_base: secs(
            "pool.eject_base_seconds",
            raw.eject_base_seconds,
            d.eject_base,
        )?,
        eject_max: secs("pool.eject_max_seconds", raw.eject_max_seconds, d.eject_max)?,
        max_ejected_percent: raw.max_ejected_percent.unwrap_or(d.max_ejected_percent),
        geo_block_cooldown: secs(
            "pool.geo_block_cooldown_seconds",
            raw.geo_block_cooldown_seconds,
            d.geo_block_cooldown,
        )?,
        rate_limit_cooldown: secs(
            "pool.rate_limit_cooldown_seconds",
            raw.rate_limit_cooldown_seconds,
            d.rate_limit_cooldown,
        )?,
        probe_interval: match raw.probe_interval_seconds {
            None => None,
            Some(s) => Some(secs("pool.probe_interval_seconds", Some(s), Duration::MIN)?),
        },
        failure_window: secs(
            "pool.failure_window_seconds",
            raw.failure_window_seconds,
            d.failure_window,
        )?,
    };
    for (name, e) in exchanges {
        let at = |k: &str| format!("exchanges.{name}.{k}");
        let exchange: ExchangeId = name
            .parse()
            .map_err(|e| err(format!("exchanges.{name}"), format!("{e}")))?;
        let mut policy = ExchangePolicy::new(
            exchange,
            match &e.fallback_policy {
                Some(s) => fallback(&at("fallback_policy"), s)?,
                None => c.fallback_policy,
            },
        );
        if let Some(s) = &e.strategy {
            policy.strategy = Some(strategy(&at("strategy"), s)?);
        }
        if let Some(t) = e.ttl_seconds {
            policy.ttl =
                Some(TtlSeconds::new(t).map_err(|e| err(at("ttl_seconds"), e.to_string()))?);
        }
        c.exchange_policies.push(policy).map_err(|_| {
            err(
                "exchanges",
                format!(
                    "more than {} exchanges with their own policy",
                    proxy_delegate_core::pool::MAX_EXCHANGE_POLICIES
                ),
            )
        })?;
    }
    c.validate()
        .map_err(|e| err(format!("pool.{}", e.field), e.reason.to_string()))?;
    Ok(c)
}

pub(super) fn proxy_spec(i: usize, p: RawProxy) -> Result<ProxySpec, ConfigError> {
    let at = |k: &str| format!("proxies[{i}].{k}");
    let id: ProxyId = p.id.parse().map_err(|e| err(at("id"), format!("{e}")))?;
    let url_text =
        proxy_delegate_config::expand_references(&p.url, true).map_err(|m| err(at("url"), m))?;
    let url: ProxyUrl = url_text.parse().map_err(|e| {
        err(
            at("url"),
            proxy_delegate_config::redact_text(&format!("{e}")),
        )
    })?;
    let mut spec = ProxySpec::new(id, url).with_enabled(p.enabled);
    if p.regions.len() > proxy_delegate_core::pool::MAX_PROXY_REGIONS {
        return Err(err(
            at("regions"),
            format!(
                "at most {} regions per proxy",
                proxy_delegate_core::pool::MAX_PROXY_REGIONS
            ),
        ));
    }
    for (j, r) in p.regions.iter().enumerate() {
        let region: Region = r
            .parse()
            .map_err(|e| err(format!("{}[{j}]", at("regions")), format!("{e}")))?;
        spec = spec.with_region(region);
    }
    if let Some(list) = p.exchanges {
        if list.len() > proxy_delegate_core::pool::MAX_ALLOWED_EXCHANGES {
            return Err(err(
                at("exchanges"),
                format!(
                    "at most {} exchanges per proxy (leave the list out to allow all)",
                    proxy_delegate_core::pool::MAX_ALLOWED_EXCHANGES
                ),
            ));
        }
        if list.is_empty() {
            return Err(err(
                at("exchanges"),
                "an empty list allows nothing: leave it out to allow every exchange, or set enabled = false",
            ));
        }
        for (j, x) in list.iter().enumerate() {
            let e: ExchangeId = x
                .parse()
                .map_err(|e| err(format!("{}[{j}]", at("exchanges")), format!("{e}")))?;
            spec = spec.with_exchange(e);
        }
    }
    if let Some(types) = p.connection_types {
        let mut t = ConnectionTypes {
            http: false,
            websocket: false,
        };
        for (j, x) in types.iter().enumerate() {
            match x.parse::<ConnectionType>() {
                Ok(ConnectionType::Http) => t.http = true,
                Ok(ConnectionType::Websocket) => t.websocket = true,
                _ => {
                    return Err(err(
                        format!("{}[{j}]", at("connection_types")),
                        format!(
                            "unknown connection type{} (expected http or websocket)",
                            proxy_delegate_config::quoted(x)
                        ),
                    ));
                }
            }
        }
        if !t.http && !t.websocket {
            return Err(err(
                at("connection_types"),
                "must name http, websocket or both",
            ));
        }
        spec = spec.with_connection_types(t);
    }
    if let Some(w) = p.weight {
        if w == 0 {
            return Err(err(at("weight"), "must be at least 1"));
        }
        spec = spec.with_weight(w);
    }
    if let Some(m) = p.max_connections {
        spec = spec.with_max_connections(m);
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use crate::ServiceConfig;

    #[test]
    fn bad_url_is_named_and_password_hidden() {
        let e = ServiceConfig::parse(
            "[[proxies]]\nid = \"a\"\nurl = \"ftp://u:hunter2@h:1\"\n",
            false,
        )
        .unwrap_err();
        assert_eq!(e.field, "proxies[0].url");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
