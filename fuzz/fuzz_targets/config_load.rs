//! Feeds arbitrary input to the configuration loaders of
//! `proxy-delegate-config`: the first byte chooses the YAML loader, the
//! environment loader, or both layered. Loading may fail; it must never panic
//! or hang. When it succeeds:
//!
//! * round trip: the settings written out with `Exposure::Exposed` load back
//!   to equal settings;
//! * redaction: the redacted YAML loads back with every password and secret
//!   equal to `***`; the provenance and the `Debug` of the settings never contains a
//!   password or secret of four or more characters;
//! * resolving any exchange / connection type never panics.
//!
//! The environment is always given explicitly (never the process's), so
//! `${NAME}` references resolve only against the fuzzed variables.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_delegate_config::{Exposure, Loader, to_yaml};
use proxy_delegate_core::model::{ConnectionType, ExchangeId};

/// Fuzzed bytes as `NAME=VALUE` lines; names get the `CRYPTOFEED_PROXY_`
/// prefix unless a line starts with `!` (a plain variable for `${NAME}`).
fn env_vars(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once('=')?;
            Some(match name.strip_prefix('!') {
                Some(plain) => (plain.to_owned(), value.to_owned()),
                None => (format!("CRYPTOFEED_PROXY_{name}"), value.to_owned()),
            })
        })
        .collect()
}

fn check(loader: Loader) {
    let Ok(loaded) = loader.load() else {
        return;
    };
    let provenance = format!("{:?}", loaded.provenance());
    let mut settings = loaded.settings;

    // Round trip.
    let exposed = to_yaml(&settings, Exposure::Exposed);
    let again = Loader::new()
        .yaml_str("again.yaml", exposed.as_str())
        .env(std::iter::empty::<(&str, &str)>())
        .load()
        .unwrap_or_else(|e| panic!("written settings do not load back: {e}\n{exposed}"));
    assert!(
        *again.settings == *settings,
        "round trip changed the settings:\n{exposed}"
    );

    // Redaction.
    let mut secrets: Vec<String> = Vec::new();
    let creds = &settings.external_service.auth_credentials;
    secrets.extend(creds.token.iter().map(|s| s.expose().to_owned()));
    secrets.extend(creds.api_key.iter().map(|s| s.expose().to_owned()));
    let mut urls = Vec::new();
    for c in std::iter::once(&settings.default).chain(settings.exchanges().map(|(_, c)| c)) {
        for e in [c.http.as_ref(), c.websocket.as_ref()]
            .into_iter()
            .flatten()
        {
            urls.extend(e.url.iter().cloned());
            if let Some(p) = &e.pool {
                urls.extend(p.proxies().iter().map(|m| m.url.clone()));
            }
        }
    }
    secrets.extend(
        urls.iter()
            .filter_map(|u| u.password())
            .map(|p| p.expose().to_owned()),
    );
    // The redacted form loads back with every secret and password equal to `***`.
    let redacted = to_yaml(&settings, Exposure::Redacted);
    let shown = Loader::new()
        .yaml_str("redacted.yaml", redacted.as_str())
        .env(std::iter::empty::<(&str, &str)>())
        .load()
        .unwrap_or_else(|e| panic!("redacted settings do not load: {e}\n{redacted}"));
    let creds = &shown.settings.external_service.auth_credentials;
    for s in [&creds.token, &creds.api_key].into_iter().flatten() {
        assert_eq!(s.expose(), "***", "secret not redacted");
    }
    for c in
        std::iter::once(&shown.settings.default).chain(shown.settings.exchanges().map(|(_, c)| c))
    {
        for e in [c.http.as_ref(), c.websocket.as_ref()]
            .into_iter()
            .flatten()
        {
            let pool = e
                .pool
                .iter()
                .flat_map(|p| p.proxies().iter().map(|m| &m.url));
            for u in e.url.iter().chain(pool) {
                assert!(
                    u.password().is_none_or(|p| p.expose() == "***"),
                    "password not redacted"
                );
            }
        }
    }
    let debug = format!("{settings:?}");
    for s in secrets
        .iter()
        .filter(|s| s.len() >= 4 && !"***".contains(s.as_str()))
    {
        let marker = format!(":{s}@");
        assert!(!redacted.contains(&marker), "password in redacted YAML");
        assert!(!debug.contains(&marker), "password in Debug");
        assert!(!provenance.contains(&marker), "password in provenance");
    }

    // Resolution.
    for name in ["binance", "coinbase", "x"] {
        let id = ExchangeId::new(name).expect("valid id");
        for ct in [ConnectionType::Http, ConnectionType::Websocket] {
            for _ in 0..3 {
                if let Some(pick) = settings.resolve(&id, ct) {
                    if let Some(lease) = pick.lease {
                        settings.release(lease);
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 3 {
        0 => check(
            Loader::new()
                .yaml_str("fuzz.yaml", text.as_ref())
                .env(std::iter::empty::<(&str, &str)>()),
        ),
        1 => check(Loader::new().env(env_vars(&text))),
        _ => {
            // YAML, then a NUL byte, then environment lines.
            let (yaml, env) = text.split_once('\0').unwrap_or((text.as_ref(), ""));
            check(Loader::new().yaml_str("fuzz.yaml", yaml).env(env_vars(env)));
        }
    }
});
