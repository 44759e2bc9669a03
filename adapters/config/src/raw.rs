//! One layer of settings as written (a YAML file, the environment, code): every
//! field optional, every leaf already validated. Validation happens while
//! deserialising, so the YAML parser attaches the path and the line to every
//! error.
//!
//! Where each part lives:
//!
//! * `raw/references.rs`: `${NAME}` and `${file:/path}` references
//!   ([`expand`], [`escape`], [`with_lookup`]);
//! * `raw/de.rs`: the deserialising helpers every type here uses (any
//!   scalar read as text, a value written as a string or a map, bounded
//!   lists);
//! * `raw/leaf.rs`: the validated single values ([`Flag`], timeouts,
//!   strategy, endpoints, region, exchange names, ...);
//! * `raw/url.rs`: [`Url`], a proxy URL and how it was written;
//! * `raw/secret.rs`: [`SecretValue`], a secret written literally or as a
//!   reference;
//! * `raw/proxy.rs`: the proxies of one exchange or the default
//!   ([`RawConn`], [`RawProxyConfig`], [`RawPool`], [`RawPoolProxy`]);
//! * `raw/settings.rs`: the `proxy:` block ([`RawSettings`]),
//!   `external_service` ([`RawExternal`], [`RawCredentials`]) and the file
//!   ([`ConfigFile`]).

mod de;
mod leaf;
mod proxy;
mod references;
mod secret;
mod settings;
mod url;

pub(crate) use leaf::{
    Auth, CacheTtl, ClientIdValue, Deadline, EndpointValue, ExchangeName, FilePathValue, Flag,
    Hedge, RegionValue, Seed, ServiceTimeout, SrvName, StaleGrace, Strategy, Timeout, WeightValue,
};
pub(crate) use proxy::{RawConn, RawPool, RawPoolProxy, RawProxyConfig};
pub(crate) use references::{Lookup, escape, expand, with_lookup};
pub(crate) use secret::SecretValue;
pub(crate) use settings::{
    ConfigFile, RawCredentials, RawExternal, RawSettings, credential_fields, external_leaves,
};
pub(crate) use url::Url;
