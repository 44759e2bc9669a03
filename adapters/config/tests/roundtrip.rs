//! Property tests: any settings value survives serialise → load unchanged, and
//! the loaders never panic on arbitrary input.

use proptest::prelude::*;
use proxy_delegate_config::{Exposure, Loader, Settings, to_yaml};
use proxy_delegate_core::endpoints::ServiceUrl;
use proxy_delegate_core::model::{ClientId, ExchangeId, ProxyUrl, Region};
use proxy_delegate_core::settings::*;

const NO_ENV: [(&str, &str); 0] = [];

fn arb_url() -> impl Strategy<Value = ProxyUrl> {
    (
        prop::sample::select(vec![
            "http", "https", "socks4", "socks4a", "socks5", "socks5h",
        ]),
        prop::option::of((
            "[a-z][a-z0-9]{0,6}",
            prop::option::of("[A-Za-z0-9._~%21-]{1,10}"),
        )),
        prop::sample::select(vec!["proxy-a", "10.0.0.1", "[::1]", "p.example.com"]),
        1u16..,
    )
        .prop_filter_map("valid url", |(scheme, cred, host, port)| {
            let auth = match cred {
                None => String::new(),
                Some((u, None)) => format!("{u}@"),
                Some((u, Some(p))) => format!("{u}:{p}@"),
            };
            format!("{scheme}://{auth}{host}:{port}").parse().ok()
        })
}

fn arb_pool() -> impl Strategy<Value = ProxyPool<DEFAULT_POOL>> {
    (
        prop::collection::vec((arb_url(), 0.1f64..=10.0, any::<bool>()), 1..=DEFAULT_POOL),
        prop::sample::select(PoolStrategy::ALL.to_vec()),
    )
        .prop_map(|(members, strategy)| {
            let proxies = members.into_iter().map(|(url, w, enabled)| PoolProxy {
                url,
                weight: Weight::new(w).unwrap(),
                enabled,
            });
            ProxyPool::new(proxies, strategy).unwrap()
        })
}

fn arb_config() -> impl Strategy<Value = Option<ProxyConfig<DEFAULT_POOL>>> {
    prop::option::of(
        (
            prop::option::of(arb_url()),
            1u64..=300,
            prop::option::of(arb_pool()),
        )
            .prop_map(|(url, t, pool)| ProxyConfig {
                url,
                timeout_seconds: TimeoutSeconds::new(t).unwrap(),
                pool,
            }),
    )
}

fn arb_conn() -> impl Strategy<Value = ConnectionProxies<DEFAULT_POOL>> {
    (arb_config(), arb_config()).prop_map(|(http, websocket)| ConnectionProxies { http, websocket })
}

fn arb_external() -> impl Strategy<Value = ExternalService> {
    (
        (
            any::<bool>(),
            // Ports 1 to 9999 (a service URL refuses port 0).
            prop::collection::vec("https?://[a-z]{1,8}(:[1-9][0-9]{0,3})?", 0..=3),
        ),
        (
            prop::option::of(prop::sample::select(AuthMethod::ALL.to_vec())),
            prop::option::of("[ -~]{0,8}(\\$\\{[A-Z]{0,3}\\}?)?[ -~]{0,8}"),
            prop::option::of("[A-Za-z0-9]{1,20}"),
            prop::option::of("/[a-z/]{1,20}"),
        ),
        (1u64..=60, 60u64..=3600, any::<bool>(), any::<bool>()),
        (10u64..=60_000, 0u64..=10_000, 0u64..=86_400),
        (
            prop::option::of("[a-z]{2}-[a-z]{2,5}-[0-9]"),
            prop::option::of("[a-zA-Z0-9-]{1,20}"),
            prop::option::of("_[a-z]{1,5}\\._tcp\\.[a-z]{1,8}\\.com"),
        ),
    )
        .prop_map(
            |(
                (enabled, eps),
                (auth, token, key, file),
                (t, ttl, cb, fb),
                (dl, hd, sg),
                (region, client, srv),
            )| {
                let mut x = ExternalService {
                    enabled,
                    ..ExternalService::default()
                };
                for e in eps {
                    x.endpoints.push(ServiceUrl::parse(&e).unwrap()).unwrap();
                }
                x.auth_method = auth;
                // Tokens may contain `${` (written back escaped as `$${`); YAML trims
                // surrounding spaces of plain scalars, so the generator avoids them.
                x.auth_credentials.token = token
                    .filter(|t| t.trim() == t)
                    .and_then(|t| Secret::new(&t).ok());
                x.auth_credentials.api_key = key.map(|k| Secret::new(&k).unwrap());
                x.auth_credentials.ca_file = file.map(|f| f.as_str().try_into().unwrap());
                x.timeout_seconds = ServiceTimeoutSeconds::new(t).unwrap();
                x.cache_ttl_seconds = CacheTtlSeconds::new(ttl).unwrap();
                x.circuit_breaker_enabled = cb;
                x.fallback_to_embedded = fb;
                x.resolve_deadline_ms = ResolveDeadlineMs::new(dl).unwrap();
                x.hedge_delay_ms = HedgeDelayMs::new(hd).unwrap();
                x.stale_grace_seconds = StaleGraceSeconds::new(sg).unwrap();
                x.region = region.map(|r| Region::new(&r).unwrap());
                x.client_id = client.map(|c| ClientId::new(&c).unwrap());
                x.srv_name = srv.map(|s| s.as_str().try_into().unwrap());
                x
            },
        )
}

fn arb_settings() -> impl Strategy<Value = Box<Settings>> {
    (
        any::<bool>(),
        arb_conn(),
        prop::collection::vec(("[a-z][a-z0-9_.-]{0,10}", arb_conn()), 0..=4),
        arb_external(),
        any::<u64>(),
    )
        .prop_map(|(enabled, default, exchanges, external, seed)| {
            let mut s: Box<Settings> = Box::default();
            s.enabled = enabled;
            s.default = default;
            for (name, c) in exchanges {
                s.insert_exchange(ExchangeId::new(&name).unwrap(), c)
                    .unwrap();
            }
            s.external_service = external;
            s.set_seed(seed);
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn serialise_then_load_is_unchanged(s in arb_settings()) {
        let text = to_yaml(&s, Exposure::Exposed);
        let loaded = Loader::new().yaml_str("roundtrip.yaml", text.clone()).env(NO_ENV).load();
        let loaded = loaded.map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert!(*loaded.settings == *s, "{}", text);
        // And the redacted form never shows a password or a secret.
        let red = to_yaml(&s, Exposure::Redacted);
        let red: serde_json::Value = serde_norway::from_str(&red).unwrap();
        let creds = &red["proxy"]["external_service"]["auth_credentials"];
        for (field, secret) in [
            ("token", &s.external_service.auth_credentials.token),
            ("api_key", &s.external_service.auth_credentials.api_key),
        ] {
            if secret.is_some() {
                prop_assert_eq!(&creds[field], "***");
            }
        }
    }

    #[test]
    fn yaml_loader_never_panics(text in "[ -~\n]{0,200}") {
        let _ = Loader::new().yaml_str("fuzz.yaml", text).env(NO_ENV).load();
    }

    #[test]
    fn yaml_loader_never_panics_on_proxy_shapes(
        body in prop::collection::vec(
            prop::sample::select(vec!["enabled: ", "default:", "exchanges:", "  binance:", "    http: ", "    ws: ",
                "url: ", "pool:", "proxies:", "- ", "http://a:1", "{}", "null", "[", "]", "  ", "weight: 0", "strategy: random",
                "external_service:", "endpoints: ", "${X}", "timeout_seconds: 999"]),
            0..30,
        )
    ) {
        let text = format!("proxy:\n  {}", body.join("\n  "));
        let _ = Loader::new().yaml_str("fuzz.yaml", text).env(NO_ENV).load();
    }

    #[test]
    fn env_loader_never_panics(
        vars in prop::collection::vec(
            (
                prop::collection::vec(prop::sample::select(vec!["ENABLED", "DEFAULT", "EXCHANGES", "BINANCE", "HTTP", "WS",
                    "POOL", "PROXIES", "0", "1", "9999", "URL", "WEIGHT", "", "EXTERNAL_SERVICE", "ENDPOINTS", "TOKEN",
                    "AUTH_CREDENTIALS", "X"]), 0..6),
                "[ -~]{0,40}",
            ),
            0..8,
        )
    ) {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .map(|(segs, v)| (format!("CRYPTOFEED_PROXY_{}", segs.join("__")), v))
            .collect();
        let _ = Loader::new().env(vars).load();
    }
}
