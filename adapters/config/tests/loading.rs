//! The loader: cryptofeed YAML shapes, the environment, layering, provenance,
//! secrets and errors.

use proxy_delegate_config::{ConfigError, Exposure, Loader, Source, load_env, to_yaml};
use proxy_delegate_core::model::{ConnectionType, ExchangeId};
use proxy_delegate_core::settings::{AuthMethod, PoolStrategy};

const NO_ENV: [(&str, &str); 0] = [];

fn yaml(text: &str) -> Result<proxy_delegate_config::Loaded, ConfigError> {
    Loader::new()
        .yaml_str("config.yaml", text)
        .env(NO_ENV)
        .load()
}

fn id(s: &str) -> ExchangeId {
    ExchangeId::new(s).unwrap()
}

/// The resolved proxy (redacted text) for an exchange connection.
fn pick(l: &mut proxy_delegate_config::Loaded, ex: &str, ct: ConnectionType) -> Option<String> {
    l.settings
        .resolve(&id(ex), ct)
        .map(|p| p.proxy_url.to_string())
}

#[test]
fn full_cryptofeed_config_resolves_like_cryptofeed() {
    let mut l = yaml(
        r#"
log_filename: feedhandler.log
proxy:
  enabled: true
  default:
    http:
      url: "http://proxy-a:8080"
      timeout_seconds: 20
    websocket:
      url: "socks5://proxy-b:1081"
  exchanges:
    Binance:
      http:
        url: "http://proxy-bin:8080"
    coinbase:
      websocket:
        url: "socks5://proxy-cb:1080"
"#,
    )
    .unwrap();
    assert_eq!(
        pick(&mut l, "binance", ConnectionType::Http).as_deref(),
        Some("http://proxy-bin:8080")
    );
    // binance lists no websocket entry: the default's.
    assert_eq!(
        pick(&mut l, "BINANCE", ConnectionType::Websocket).as_deref(),
        Some("socks5://proxy-b:1081")
    );
    assert_eq!(
        pick(&mut l, "coinbase", ConnectionType::Http).as_deref(),
        Some("http://proxy-a:8080")
    );
    assert_eq!(
        pick(&mut l, "kraken", ConnectionType::Http).as_deref(),
        Some("http://proxy-a:8080")
    );
    let p = l
        .settings
        .resolve(&id("kraken"), ConnectionType::Http)
        .unwrap();
    assert_eq!(p.timeout_seconds, 20);
    let p = l
        .settings
        .resolve(&id("kraken"), ConnectionType::Websocket)
        .unwrap();
    assert_eq!(p.timeout_seconds, 30);
}

#[test]
fn block_without_enabled_is_disabled() {
    let mut l = yaml("proxy:\n  default:\n    http: http://proxy-a:8080\n").unwrap();
    assert!(!l.settings.enabled);
    assert_eq!(pick(&mut l, "binance", ConnectionType::Http), None);
}

#[test]
fn url_string_shapes_and_aliases() {
    let mut l = yaml(
        "proxy:\n  enabled: yes\n  default:\n    rest: http://proxy-a:8080\n    ws: socks5://proxy-b:1080\n  exchanges:\n    binance: http://proxy-bin:8080\n",
    )
    .unwrap();
    assert!(l.settings.enabled);
    assert_eq!(
        pick(&mut l, "kraken", ConnectionType::Http).as_deref(),
        Some("http://proxy-a:8080")
    );
    assert_eq!(
        pick(&mut l, "kraken", ConnectionType::Websocket).as_deref(),
        Some("socks5://proxy-b:1080")
    );
    // A plain URL for an exchange sets http only; websocket falls back to the default.
    assert_eq!(
        pick(&mut l, "binance", ConnectionType::Http).as_deref(),
        Some("http://proxy-bin:8080")
    );
    assert_eq!(
        pick(&mut l, "binance", ConnectionType::Websocket).as_deref(),
        Some("socks5://proxy-b:1080")
    );
}

#[test]
fn root_proxy_url_enables_both_types() {
    let mut l = yaml("proxy: \"http://proxy-a:8080\"\n").unwrap();
    assert!(l.settings.enabled);
    assert_eq!(
        pick(&mut l, "x", ConnectionType::Http).as_deref(),
        Some("http://proxy-a:8080")
    );
    assert_eq!(
        pick(&mut l, "x", ConnectionType::Websocket).as_deref(),
        Some("http://proxy-a:8080")
    );
}

#[test]
fn empty_entry_is_direct_and_null_falls_back() {
    let mut l = yaml(
        "proxy:\n  enabled: true\n  default:\n    http: http://proxy-a:8080\n    websocket: socks5://proxy-b:1080\n  exchanges:\n    binance:\n      http: {}\n      websocket: null\n",
    )
    .unwrap();
    assert_eq!(pick(&mut l, "binance", ConnectionType::Http), None);
    assert_eq!(
        pick(&mut l, "binance", ConnectionType::Websocket).as_deref(),
        Some("socks5://proxy-b:1080")
    );
}

#[test]
fn no_websocket_to_http_fallback() {
    let mut l =
        yaml("proxy:\n  enabled: true\n  default:\n    http: http://proxy-a:8080\n").unwrap();
    assert_eq!(pick(&mut l, "binance", ConnectionType::Websocket), None);
}

#[test]
fn pool_wins_over_url_and_round_robins() {
    let mut l = yaml(
        "proxy:\n  enabled: true\n  default:\n    http:\n      url: http://single:8080\n      pool:\n        proxies:\n          - url: http://p1:8080\n          - http://p2:8080\n",
    )
    .unwrap();
    let got: Vec<_> = (0..4)
        .map(|_| pick(&mut l, "x", ConnectionType::Http).unwrap())
        .collect();
    assert_eq!(
        got,
        [
            "http://p1:8080",
            "http://p2:8080",
            "http://p1:8080",
            "http://p2:8080"
        ]
    );
}

#[test]
fn unknown_keys_are_errors_with_path_and_line() {
    let err = yaml("proxy:\n  enabled: true\n  defualt:\n    http: http://a:1\n").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("unknown field `defualt`"), "{text}");
    assert!(text.contains("line 3"), "{text}");
    let err = yaml(
        "proxy:\n  enabled: true\n  default:\n    http:\n      url: http://a:1\n      timeout: 3\n",
    )
    .unwrap_err();
    let text = err.to_string();
    // The unknown key is named by its full path, not its parent's.
    assert!(
        text.starts_with("proxy.default.http.timeout: unknown field `timeout`"),
        "{text}"
    );
    assert!(text.contains("line 6"), "{text}");
    let text = yaml("proxy:\n  enabled: true\n  defualt:\n    http: http://a:1\n")
        .unwrap_err()
        .to_string();
    assert!(text.starts_with("proxy.defualt: unknown field"), "{text}");
    let text = yaml("proxy:\n  exchanges:\n    binance:\n      http:\n        retries: 3\n")
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with("proxy.exchanges.binance.http.retries: unknown field `retries`"),
        "{text}"
    );
    // A key that may be a secret written in the wrong place is not put in
    // the path (and is masked in the reason as before).
    let text = yaml("proxy:\n  default:\n    http:\n      url: http://a:1\n      \"sk_live_0123456789abcdefXYZ\": 1\n")
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with("proxy.default.http: unknown field"),
        "{text}"
    );
}

#[test]
fn errors_name_path_reason_and_line() {
    let err = yaml(
        "proxy:\n  enabled: true\n  exchanges:\n    binance:\n      http:\n        url: http://user:hunter2@proxy-a\n",
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("proxy.exchanges.binance.http.url: missing port"),
        "{text}"
    );
    assert!(text.contains("line 6"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    match err {
        ConfigError::File { line, path, .. } => {
            assert_eq!(line, Some(6));
            assert_eq!(path, "proxy.exchanges.binance.http.url");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn bounds_are_checked() {
    for (text, want) in [
        (
            "proxy:\n  default:\n    http:\n      url: http://a:1\n      timeout_seconds: 0\n",
            "proxy.default.http.timeout_seconds: out of range (expected 1 to 300 seconds)",
        ),
        (
            "proxy:\n  default:\n    http:\n      url: http://a:1\n      timeout_seconds: 301\n",
            "proxy.default.http.timeout_seconds: out of range",
        ),
        (
            "proxy:\n  default:\n    http:\n      pool:\n        proxies:\n          - url: http://a:1\n            weight: 11\n",
            "proxy.default.http.pool.proxies[0].weight: out of range (expected 0.1 to 10)",
        ),
        (
            "proxy:\n  default:\n    http:\n      pool:\n        proxies: []\n",
            "proxy.default.http.pool.proxies: must not be empty",
        ),
        (
            "proxy:\n  default:\n    http:\n      pool:\n        proxies:\n          - http://a:1\n        strategy: fastest\n",
            "proxy.default.http.pool.strategy: unknown value \"fastest\"",
        ),
        (
            "proxy:\n  external_service:\n    timeout_seconds: 61\n",
            "proxy.external_service.timeout_seconds: out of range (expected 1 to 60 seconds)",
        ),
        (
            "proxy:\n  external_service:\n    cache_ttl_seconds: 59\n",
            "proxy.external_service.cache_ttl_seconds: out of range (expected 60 to 3600 seconds)",
        ),
        (
            "proxy:\n  external_service:\n    auth_method: password\n",
            "proxy.external_service.auth_method: unknown value \"password\"",
        ),
    ] {
        let err = yaml(text).unwrap_err().to_string();
        assert!(err.starts_with(want), "{err}\n  wanted: {want}");
    }
}

#[test]
fn defaults_when_unset() {
    let l = yaml("proxy:\n  enabled: true\n").unwrap();
    let x = &l.settings.external_service;
    assert!(!x.enabled);
    assert_eq!(x.timeout_seconds.get(), 10);
    assert_eq!(x.cache_ttl_seconds.get(), 300);
    assert!(x.circuit_breaker_enabled);
    assert!(x.fallback_to_embedded);
    assert!(l.client_id().starts_with("cryptofeed-"));
    assert!(l.client_id().ends_with(&format!("-{}", std::process::id())));
}

#[test]
fn environment_alone_like_pydantic_settings() {
    let mut l = load_env([
        ("CRYPTOFEED_PROXY_ENABLED", "on"),
        ("cryptofeed_proxy_default__http__url", "http://proxy-a:8080"),
        (
            "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__WEBSOCKET__POOL",
            r#"{"proxies":[{"url":"socks5://p1:1080"},{"url":"socks5://p2:1080"}],"strategy":"round_robin"}"#,
        ),
        ("CRYPTOFEED_PROXY_EXCHANGES__KRAKEN__HTTP__POOL__PROXIES", r#"[{"url":"http://k1:8080"}]"#),
        ("CRYPTOFEED_PROXY_EXCHANGES__KRAKEN__HTTP__POOL__PROXIES__1__URL", "http://k2:8080"),
        ("CRYPTOFEED_PROXY_EXCHANGES__KRAKEN__HTTP__TIMEOUT_SECONDS", "7"),
        ("CRYPTOFEED_PROXY_EXTERNAL_SERVICE__ENDPOINTS", r#"["https://a:8080","https://b:8080"]"#),
        ("CRYPTOFEED_PROXY_EXTERNAL_SERVICE__AUTH_METHOD", "bearer_token"),
        ("CRYPTOFEED_PROXY_EXTERNAL_SERVICE__AUTH_CREDENTIALS__TOKEN", "tok-very-secret"),
        ("CRYPTOFEED_PROXY_EXTERNAL_SERVICE__ENABLED", "1"),
        ("UNRELATED", "x"),
    ])
    .unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert!(l.settings.enabled);
    assert_eq!(
        pick(&mut l, "x", ConnectionType::Http).as_deref(),
        Some("http://proxy-a:8080")
    );
    assert_eq!(
        pick(&mut l, "binance", ConnectionType::Websocket).as_deref(),
        Some("socks5://p1:1080")
    );
    assert_eq!(
        pick(&mut l, "binance", ConnectionType::Websocket).as_deref(),
        Some("socks5://p2:1080")
    );
    assert_eq!(
        pick(&mut l, "kraken", ConnectionType::Http).as_deref(),
        Some("http://k1:8080")
    );
    let p = l
        .settings
        .resolve(&id("kraken"), ConnectionType::Http)
        .unwrap();
    assert_eq!(
        (p.proxy_url.to_string().as_str(), p.timeout_seconds),
        ("http://k2:8080", 7)
    );
    let x = &l.settings.external_service;
    assert!(x.enabled);
    let eps: Vec<_> = x.endpoints.iter().map(|e| e.to_string()).collect();
    assert_eq!(eps, ["https://a:8080", "https://b:8080"]);
    assert_eq!(x.auth_method, Some(AuthMethod::BearerToken));
    assert_eq!(
        x.auth_credentials.token.as_ref().unwrap().expose(),
        "tok-very-secret"
    );
    for p in &l.provenance() {
        assert!(!p.value.contains("tok-very-secret"), "{p:?}");
    }
    assert_eq!(
        l.source_of("proxy.external_service.auth_credentials.token"),
        Some(Source::Environment)
    );
}

#[test]
fn indexed_pool_form() {
    let mut l = load_env([
        ("CRYPTOFEED_PROXY_ENABLED", "true"),
        (
            "CRYPTOFEED_PROXY_DEFAULT__HTTP__POOL__PROXIES__0__URL",
            "http://p0:8080",
        ),
        (
            "CRYPTOFEED_PROXY_DEFAULT__HTTP__POOL__PROXIES__1__URL",
            "http://p1:8080",
        ),
        (
            "CRYPTOFEED_PROXY_DEFAULT__HTTP__POOL__PROXIES__1__ENABLED",
            "no",
        ),
        (
            "CRYPTOFEED_PROXY_DEFAULT__HTTP__POOL__STRATEGY",
            "least_connections",
        ),
    ])
    .unwrap();
    let pool = l
        .settings
        .default
        .http
        .as_ref()
        .unwrap()
        .pool
        .as_ref()
        .unwrap();
    assert_eq!(pool.proxies().len(), 2);
    assert!(!pool.proxies()[1].enabled);
    assert_eq!(pool.strategy(), PoolStrategy::LeastConnections);
    assert_eq!(
        pick(&mut l, "x", ConnectionType::Http).as_deref(),
        Some("http://p0:8080")
    );
    assert_eq!(
        pick(&mut l, "x", ConnectionType::Http).as_deref(),
        Some("http://p0:8080")
    );
}

#[test]
fn unknown_environment_names_are_warnings() {
    let l = load_env([
        ("CRYPTOFEED_PROXY_ENABLED", "true"),
        ("CRYPTOFEED_PROXY_DEFUALT__HTTP__URL", "http://a:1"),
        ("CRYPTOFEED_PROXY_DEFAULT__HTTP__URLL", "http://a:1"),
    ])
    .unwrap();
    let w: Vec<String> = l.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w.iter()
            .any(|m| m
                .starts_with("CRYPTOFEED_PROXY_DEFUALT__HTTP__URL: unknown setting proxy.defualt")),
        "{w:?}"
    );
    assert!(
        w.iter().any(|m| m.contains("proxy.default.http.urll")),
        "{w:?}"
    );
    assert!(l.settings.enabled);
}

#[test]
fn unknown_nested_environment_names_get_their_own_paths() {
    let l = load_env([
        ("CRYPTOFEED_PROXY_ENABLED", "true"),
        (
            "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__HTTP__POOL__PROXIES__0__URL",
            "socks5://a:1",
        ),
        (
            "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__HTTP__POOL__PROXIES__0__COLOR",
            "red",
        ),
        (
            "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__HTTP__POOL__PROXIES__1__URL",
            "socks5://b:1",
        ),
        (
            "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__HTTPS__URL",
            "http://c:1",
        ),
        (
            "CRYPTOFEED_PROXY_EXCHANGES__KRAKEN__WS__URL",
            "socks5://d:1",
        ),
    ])
    .unwrap();
    let mut w: Vec<String> = l.warnings.iter().map(|w| w.to_string()).collect();
    w.sort();
    assert_eq!(
        w,
        [
            "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__HTTPS__URL: unknown setting \
             proxy.exchanges.binance.https (ignored)",
            "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__HTTP__POOL__PROXIES__0__COLOR: unknown setting \
             proxy.exchanges.binance.http.pool.proxies.0.color (ignored)",
        ]
    );
    // The known siblings of the unknown names still load.
    let mut s = l.settings;
    let binance = ExchangeId::new("binance").unwrap();
    let picks: Vec<String> = (0..2)
        .map(|_| {
            s.resolve(&binance, ConnectionType::Http)
                .unwrap()
                .proxy_url
                .to_string()
        })
        .collect();
    assert_eq!(picks, ["socks5://a:1", "socks5://b:1"]);
    let kraken = ExchangeId::new("kraken").unwrap();
    assert_eq!(
        s.resolve(&kraken, ConnectionType::Websocket)
            .unwrap()
            .proxy_url
            .to_string(),
        "socks5://d:1"
    );
}

#[test]
fn environment_errors_name_variable_and_path() {
    let err = load_env([(
        "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__HTTP__URL",
        "http://u:hunter2@proxy-a",
    )])
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("proxy.exchanges.binance.http.url: missing port"),
        "{text}"
    );
    assert!(
        text.contains("CRYPTOFEED_PROXY_EXCHANGES__BINANCE__HTTP__URL"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    let err = load_env([("CRYPTOFEED_PROXY_ENABLED", "maybe")])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("proxy.enabled: invalid boolean"), "{err}");
}

#[test]
fn booleans_accept_every_spelling() {
    for (v, want) in [
        ("true", true),
        ("1", true),
        ("yes", true),
        ("ON", true),
        ("false", false),
        ("0", false),
        ("no", false),
        ("Off", false),
    ] {
        let l = load_env([("CRYPTOFEED_PROXY_ENABLED", v)]).unwrap();
        assert_eq!(l.settings.enabled, want, "{v}");
    }
}

#[test]
fn layering_environment_over_yaml_over_code() {
    let mut code = proxy_delegate_config::Settings::default();
    code.enabled = true;
    code.external_service.cache_ttl_seconds =
        proxy_delegate_core::settings::CacheTtlSeconds::new(900).unwrap();
    let yaml_text = "proxy:\n  default:\n    http: http://yaml-default:8080\n    websocket: socks5://yaml-ws:1080\n  exchanges:\n    binance:\n      http: http://yaml-bin:8080\n      websocket: socks5://yaml-bin-ws:1080\n    kraken:\n      http: http://yaml-kraken:8080\n  external_service:\n    endpoints: [\"https://svc:8443\"]\n";
    let mut l = Loader::new()
        .code(&code)
        .yaml_str("config.yaml", yaml_text)
        .env([
            (
                "CRYPTOFEED_PROXY_DEFAULT__HTTP__URL",
                "http://env-default:8080",
            ),
            (
                "CRYPTOFEED_PROXY_EXCHANGES__BINANCE__HTTP__URL",
                "http://env-bin:8080",
            ),
            (
                "CRYPTOFEED_PROXY_EXTERNAL_SERVICE__AUTH_CREDENTIALS__TOKEN",
                "t0ken",
            ),
        ])
        .load()
        .unwrap();
    // enabled: set only in code, kept.
    assert!(l.settings.enabled);
    assert_eq!(l.source_of("proxy.enabled"), Some(Source::Code));
    // default replaced as a whole by the environment: the YAML websocket entry is gone.
    assert_eq!(
        pick(&mut l, "x", ConnectionType::Http).as_deref(),
        Some("http://env-default:8080")
    );
    assert_eq!(pick(&mut l, "x", ConnectionType::Websocket), None);
    // binance replaced as a whole; kraken kept from YAML.
    assert_eq!(
        pick(&mut l, "binance", ConnectionType::Http).as_deref(),
        Some("http://env-bin:8080")
    );
    assert_eq!(pick(&mut l, "binance", ConnectionType::Websocket), None);
    assert_eq!(
        pick(&mut l, "kraken", ConnectionType::Http).as_deref(),
        Some("http://yaml-kraken:8080")
    );
    // external_service merges per field.
    assert_eq!(l.settings.external_service.cache_ttl_seconds.get(), 900);
    assert_eq!(l.settings.external_service.endpoints.len(), 1);
    assert!(l.settings.external_service.auth_credentials.token.is_some());
    assert_eq!(
        l.source_of("proxy.default.http.url"),
        Some(Source::Environment)
    );
    assert_eq!(
        l.source_of("proxy.default.http.timeout_seconds"),
        Some(Source::Default)
    );
    assert_eq!(
        l.source_of("proxy.exchanges.kraken.http.url"),
        Some(Source::File)
    );
    assert_eq!(
        l.source_of("proxy.external_service.endpoints"),
        Some(Source::File)
    );
    assert_eq!(
        l.source_of("proxy.external_service.cache_ttl_seconds"),
        Some(Source::Code)
    );
    assert_eq!(
        l.source_of("proxy.external_service.timeout_seconds"),
        Some(Source::Code)
    );
    // YAML enabled: false overrides code.
    let l = Loader::new()
        .code(&code)
        .yaml_str("c.yaml", "proxy:\n  enabled: false\n")
        .env(NO_ENV)
        .load()
        .unwrap();
    assert!(!l.settings.enabled);
    assert_eq!(l.source_of("proxy.enabled"), Some(Source::File));
}

#[test]
fn secrets_from_env_reference_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "file-token-123\n").unwrap();
    let text = format!(
        "proxy:\n  enabled: true\n  default:\n    http: \"http://alice:${{PROXY_PASS}}@proxy-a:8080\"\n  external_service:\n    auth_credentials:\n      token: \"${{file:{}}}\"\n      api_key: {{env: SVC_KEY}}\n",
        token_file.display()
    );
    let mut l = Loader::new()
        .yaml_str("config.yaml", text)
        .env([("PROXY_PASS", "p@ss:w/rd"), ("SVC_KEY", "key-456")])
        .load()
        .unwrap();
    let c = &l.settings.external_service.auth_credentials;
    assert_eq!(c.token.as_ref().unwrap().expose(), "file-token-123");
    assert_eq!(c.api_key.as_ref().unwrap().expose(), "key-456");
    let p = l.settings.resolve(&id("x"), ConnectionType::Http).unwrap();
    assert_eq!(p.proxy_url.password().unwrap().expose(), "p%40ss%3Aw%2Frd");
    assert_eq!(p.proxy_url.to_string(), "http://alice:***@proxy-a:8080");
    let shown = format!(
        "{:?}\n{}",
        l.provenance(),
        to_yaml(&l.settings, Exposure::Redacted)
    );
    for secret in ["file-token-123", "key-456", "p%40ss", "p@ss"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    // A missing variable is an error naming the variable, not a value.
    let err = Loader::new()
        .yaml_str(
            "config.yaml",
            "proxy:\n  default:\n    http: \"http://a:${NOPE}@p:1\"\n",
        )
        .env(NO_ENV)
        .load()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("environment variable NOPE is not set"),
        "{err}"
    );
}

#[test]
fn misplaced_secrets_are_not_echoed() {
    let err = yaml("proxy:\n  external_service:\n    auth_credentials: supersecret-token\n")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("supersecret-token"), "{err}");
    assert!(
        err.starts_with("proxy.external_service.auth_credentials: invalid type"),
        "{err}"
    );
    let err = yaml("proxy:\n  default:\n    http:\n      pool: \"http://u:pw-secret@p:1\"\n")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("pw-secret"), "{err}");
}

/// Whatever is written in the wrong place, or in the wrong form, in the
/// file or in the environment, the error names the path and never the value.
#[test]
fn misplaced_values_are_never_quoted() {
    let creds =
        |v: &str| format!("proxy:\n  external_service:\n    auth_credentials:\n      token: {v}\n");
    let cases = [
        // A secret written as a number or a boolean.
        (creds("1234.5678"), "1234.5678"),
        (creds("123456789012345678901234567890"), "123456789012345678901234567890"),
        (creds("98765432109876"), "98765432109876"),
        (creds("true"), "true"),
        (
            "proxy:\n  external_service:\n    auth_credentials: 98765432109876\n".to_owned(),
            "98765432109876",
        ),
        // A string holding an escaped quote.
        (
            "proxy:\n  external_service:\n    auth_credentials: 'tok\"SECRETPART'\n".to_owned(),
            "SECRETPART",
        ),
        // A secret written where a variable's name goes.
        (creds("{env: ghp_R3alT0kenValue}"), "R3alT0ken"),
        (creds("abc${s3cr-etpart}def"), "s3cr-etpart"),
        // A URL with its password in a field that is not a URL.
        (
            "proxy:\n  enabled: http://bob:Sup3rS3cretPW@proxy:8080\n".to_owned(),
            "Sup3rS3cretPW",
        ),
        (
            "proxy:\n  default:\n    http:\n      url: http://p:1\n      timeout_seconds: socks5://alice:longpassword@proxy:1080\n".to_owned(),
            "longpassw",
        ),
        (
            "proxy:\n  external_service:\n    auth_method: sk_live_51Habcdef0123456789\n".to_owned(),
            "sk_live",
        ),
    ];
    for (text, secret) in cases {
        let err = yaml(&text).unwrap_err().to_string();
        assert!(!err.contains(secret), "{secret} leaked: {err}");
        assert!(err.starts_with("proxy."), "{err}");
    }
    let env_cases = [
        (
            "CRYPTOFEED_PROXY_EXTERNAL_SERVICE__AUTH_CREDENTIALS",
            r#"{"token": 1234.5678}"#,
            "1234.5678",
        ),
        (
            "CRYPTOFEED_PROXY_DEFAULT__HTTP__TIMEOUT_SECONDS",
            "socks5://alice:pa/ss@proxy:1080",
            "pa/ss",
        ),
    ];
    for (name, value, secret) in env_cases {
        let err = load_env([(name, value)]).unwrap_err().to_string();
        assert!(!err.contains(secret), "{secret} leaked: {err}");
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn yaml_round_trip_exposed() {
    let text = "proxy:\n  enabled: true\n  seed: 42\n  default:\n    http: \"http://alice:pw@proxy-a:8080\"\n  exchanges:\n    binance:\n      http: {}\n      websocket:\n        timeout_seconds: 12\n        pool:\n          strategy: random\n          proxies:\n            - url: socks5://p1:1080\n              weight: 2.5\n            - url: socks5://p2:1080\n              enabled: false\n  external_service:\n    enabled: true\n    endpoints: [\"https://a:8080\"]\n    auth_method: api_key\n    auth_credentials:\n      api_key: k\n    region: us-east-1\n    client_id: me\n    srv_name: _proxy._tcp.example.com\n";
    let l = yaml(text).unwrap();
    let out = to_yaml(&l.settings, Exposure::Exposed);
    let again = yaml(&out).unwrap();
    assert_eq!(*again.settings, *l.settings, "{out}");
    let red = to_yaml(&l.settings, Exposure::Redacted);
    assert!(red.contains("http://alice:***@proxy-a:8080"), "{red}");
    assert!(!red.contains(":pw@"), "{red}");
}

#[test]
fn yaml_syntax_error_has_line() {
    let err = yaml("proxy:\n  enabled: true\n   default: [\n").unwrap_err();
    match &err {
        ConfigError::File { line, .. } => assert!(line.is_some(), "{err}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn missing_file_is_an_io_error() {
    let err = Loader::new()
        .yaml_file("/nonexistent/config.yaml")
        .env(NO_ENV)
        .load()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }), "{err}");
}

#[test]
fn too_many_exchanges_is_an_error() {
    let mut text = String::from("proxy:\n  exchanges:\n");
    for i in 0..17 {
        text.push_str(&format!("    ex{i}: http://p:1\n"));
    }
    let err = yaml(&text).unwrap_err().to_string();
    assert!(
        err.starts_with("proxy.exchanges: too many items: more than 16 (at most 16 exchanges allowed) (config.yaml, line"),
        "{err}"
    );
}
