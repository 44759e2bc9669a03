//! Parses arbitrary text as the service's configuration file with
//! `proxy_delegate_service::ServiceConfig::parse`: the first byte chooses
//! TOML (even) or YAML (odd), the rest is the text.
//!
//! Oracles (see `service_config_target` in `src/lib.rs`): parsing never
//! panics or hangs; parsing the same text again gives the same outcome (an
//! equal error, or a configuration with the same `Debug`); an accepted
//! configuration's pool settings pass `PoolConfig::validate`, and its
//! `Debug` shows no secret; an error (field and message) never contains a
//! token-like bearer token, API key or URL password of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_delegate_fuzz::service_config_target;

fuzz_target!(|data: &[u8]| service_config_target(data));
