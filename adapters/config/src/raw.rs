//! One layer of settings as written (a YAML file, the environment, code): every
//! field optional, every leaf already validated. Validation happens while
//! deserialising, so the YAML parser attaches the path and the line to every
//! error.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use crate::quoted;
use proxy_delegate_core::endpoints::ServiceUrl;
use proxy_delegate_core::model::{ClientId, ExchangeId, ProxyUrl, Region};
use proxy_delegate_core::settings::{
    AuthMethod, CacheTtlSeconds, DEFAULT_EXCHANGES, DEFAULT_POOL, HedgeDelayMs, MAX_ENDPOINTS,
    MAX_SRV_NAME_LEN, PoolStrategy, ResolveDeadlineMs, Secret, ServiceTimeoutSeconds,
    StaleGraceSeconds, TimeoutSeconds, Weight,
};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, de::IntoDeserializer};

/// Looks up `${NAME}` references while a layer is being read.
pub(crate) type Lookup = dyn Fn(&str) -> Option<String>;

thread_local! {
    static LOOKUP: RefCell<Option<std::rc::Rc<Lookup>>> = const { RefCell::new(None) };
}

/// Installs `lookup` for `${NAME}` references for the duration of `f`.
pub(crate) fn with_lookup<T>(lookup: std::rc::Rc<Lookup>, f: impl FnOnce() -> T) -> T {
    struct Reset(Option<std::rc::Rc<Lookup>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let prev = self.0.take();
            LOOKUP.with(|l| *l.borrow_mut() = prev);
        }
    }
    let prev = LOOKUP.with(|l| l.borrow_mut().replace(lookup));
    let _reset = Reset(prev);
    f()
}

fn lookup_env(name: &str) -> Option<String> {
    LOOKUP.with(|l| match &*l.borrow() {
        Some(f) => f(name),
        None => std::env::var(name).ok(),
    })
}

/// Expands `${NAME}` (an environment variable) and `${file:/path}` (a file's
/// contents, without the trailing newline) in `s`; `$${` is a literal `${`. With `encode`, expanded text
/// is percent-encoded so that it fits in a URL's user name or password.
/// Errors name the variable or the file, never the value.
pub(crate) fn expand(s: &str, encode: bool) -> Result<String, String> {
    if !s.contains("${") {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        // `$${` is a literal `${` (see `escape`).
        if rest[..start].ends_with('$') {
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            "unterminated ${...} reference (expected ${NAME} or ${file:/path})".to_owned()
        })?;
        let name = &after[..end];
        let value = if let Some(path) = name.strip_prefix("file:") {
            read_secret_file(path)?
        } else {
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            // The text between `${` and `}` is not shown unless it looks
            // like a variable's name: a secret written in place of the name
            // would be.
            if !valid {
                return Err(
                    "invalid ${...} reference (expected ${NAME} with letters, digits \
                     and '_', or ${file:/path}; the text is not shown)"
                        .to_owned(),
                );
            }
            lookup_env(name).ok_or_else(|| {
                if shown_name(name) {
                    format!("environment variable {name} is not set (referenced as ${{{name}}})")
                } else {
                    "the environment variable a ${...} reference names is not set (the name is \
                     not shown: a name not in upper case may be a secret written in its place)"
                        .to_owned()
                }
            })?
        };
        if encode {
            for b in value.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        } else {
            out.push_str(&value);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether a variable name is fit for a message: upper-case letters, digits
/// and `_`, as environment variables are named (at most 64 bytes).
fn shown_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Writes `s` so that [`expand`] gives it back unchanged: `${` becomes `$${`.
pub(crate) fn escape(s: &str) -> String {
    s.replace("${", "$${")
}

/// Longest secret file read, in bytes.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Reads a secret from a regular file (never a device or a pipe, which could
/// block), without its trailing newline.
fn read_secret_file(path: &str) -> Result<String, String> {
    crate::read_bounded_text(std::path::Path::new(path), MAX_SECRET_FILE)
        .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
        .map_err(|e| format!("cannot read secret file {path:?}: {e}"))
}

/// Reads any scalar (string, number, boolean) as text and converts it with
/// `f` inside the parser's call, so that a conversion error gets the value's
/// own path and line.
struct Scalar<F>(F);

impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for Scalar<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a single value (text or number)")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        (self.0)(&v.to_string()).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        (self.0)(&v.to_string()).map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        (self.0)(&v.to_string()).map_err(E::custom)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        (self.0)(if v { "true" } else { "false" }).map_err(E::custom)
    }
}

fn scalar<'de, D, T, F>(d: D, f: F) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(&str) -> Result<T, String>,
{
    d.deserialize_any(Scalar(f))
}

fn scalar_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    scalar(d, |s| Ok(s.to_owned()))
}

/// A boolean: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flag(pub(crate) bool);

/// Parses the boolean spellings cryptofeed (pydantic) accepts.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["true", "1", "yes", "on"];
    const FALSE: [&str; 4] = ["false", "0", "no", "off"];
    let s = s.trim();
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(s)) {
        Some(true)
    } else if FALSE.iter().any(|t| t.eq_ignore_ascii_case(s)) {
        Some(false)
    } else {
        None
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, |s| {
            parse_bool(s).map(Flag).ok_or_else(|| {
                format!(
                    "invalid boolean{} (expected true/false, 1/0, yes/no, on/off)",
                    quoted(s)
                )
            })
        })
    }
}

fn number(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("invalid number{}", quoted(s)))
}

/// A whole, non-negative number, from a number or numeric text.
fn whole(s: &str) -> Result<u64, String> {
    if let Ok(v) = s.trim().parse::<u64>() {
        return Ok(v);
    }
    let v = number(s)?;
    if v.fract() != 0.0 || !(0.0..=u64::MAX as f64).contains(&v) {
        return Err(format!(
            "invalid value{} (expected a whole, non-negative number)",
            quoted(s)
        ));
    }
    Ok(v as u64)
}

macro_rules! leaf {
    ($name:ident($inner:ty), |$s:ident| $parse:expr) => {
        #[doc = concat!("A validated `", stringify!($inner), "` read from configuration.")]
        #[derive(Debug, Clone, PartialEq)]
        pub(crate) struct $name(pub(crate) $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                scalar(d, |$s: &str| -> Result<$name, String> { $parse.map($name) })
            }
        }
    };
}

fn reason(e: proxy_delegate_core::ValidationError) -> String {
    e.reason.to_string()
}

/// A proxy URL read from configuration, and the text it was written as with
/// its password as `***`: `resolve` prints the configured spelling (an upper-case
/// scheme, a trailing `/`), which the parsed URL normalises away.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Url {
    pub(crate) url: ProxyUrl,
    /// How it was written, when that is not how `url` prints; `None` too for
    /// a URL given in code.
    written: Option<Box<str>>,
}

impl Url {
    /// A URL that was not written anywhere (the code layer).
    pub(crate) fn given(url: ProxyUrl) -> Self {
        Self { url, written: None }
    }

    /// Expands `${...}` references in `s` and parses the result.
    fn parse(s: &str) -> Result<Self, String> {
        let text = expand(s, true)?;
        let url = ProxyUrl::parse(&text).map_err(reason)?;
        // Kept only when it differs from what `url` prints (seldom).
        let written =
            (!is_canonical(&text, &url)).then(|| redact_written(text, &url).into_boxed_str());
        Ok(Self { url, written })
    }

    /// How the URL was written (password as `***`), or, when it was written
    /// the way it prints or given in code, how it prints.
    pub(crate) fn written(&self) -> std::borrow::Cow<'_, str> {
        match &self.written {
            Some(w) => std::borrow::Cow::Borrowed(w),
            None => std::borrow::Cow::Owned(self.url.to_string()),
        }
    }
}

/// Whether `text` is exactly how `url` writes itself with its credentials
/// (`scheme://[user[:password]@]host:port`, lower-case scheme, no leading
/// zeros): piece by piece, without formatting.
fn is_canonical(text: &str, url: &ProxyUrl) -> bool {
    let port = || {
        let mut r = text
            .strip_prefix(url.scheme().as_str())?
            .strip_prefix("://")?;
        if let Some(user) = url.username() {
            r = r.strip_prefix(user)?;
            if let Some(password) = url.password() {
                r = r.strip_prefix(':')?.strip_prefix(password.expose())?;
            }
            r = r.strip_prefix('@')?;
        }
        r.strip_prefix(url.host())?.strip_prefix(':')
    };
    port().is_some_and(|p| !p.starts_with('0') && p.parse() == Ok(url.port()))
}

/// `text`, which parsed as `url`, with the password written as `***`. A
/// parsed URL is `scheme://user[:password]@host:port[/]`, and neither the
/// user name nor the host holds a `:` or an `@`: the password runs from the
/// first `:` after `://` to the last `@`.
fn redact_written(text: String, url: &ProxyUrl) -> String {
    if url.password().is_none() {
        return text;
    }
    let start = text.find("://").map_or(0, |i| i + 3);
    match (text[start..].find(':').map(|i| start + i), text.rfind('@')) {
        (Some(colon), Some(at)) if colon < at => {
            let mut out = String::with_capacity(colon + 4 + (text.len() - at));
            out.push_str(&text[..=colon]);
            out.push_str("***");
            out.push_str(&text[at..]);
            out
        }
        // Not reached for a parsed URL; the normalised form is as good.
        _ => url.to_string(),
    }
}

impl<'de> Deserialize<'de> for Url {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, Url::parse)
    }
}
leaf!(Timeout(TimeoutSeconds), |s| TimeoutSeconds::new(whole(s)?)
    .map_err(reason));
leaf!(ServiceTimeout(ServiceTimeoutSeconds), |s| {
    ServiceTimeoutSeconds::new(whole(s)?).map_err(reason)
});
leaf!(CacheTtl(CacheTtlSeconds), |s| CacheTtlSeconds::new(whole(
    s
)?)
.map_err(reason));
leaf!(Deadline(ResolveDeadlineMs), |s| ResolveDeadlineMs::new(
    whole(s)?
)
.map_err(reason));
leaf!(Hedge(HedgeDelayMs), |s| HedgeDelayMs::new(whole(s)?)
    .map_err(reason));
leaf!(StaleGrace(StaleGraceSeconds), |s| StaleGraceSeconds::new(
    whole(s)?
)
.map_err(reason));
leaf!(Seed(u64), |s| whole(s));
leaf!(WeightValue(Weight), |s| Weight::new(number(s)?)
    .map_err(reason));
leaf!(Strategy(PoolStrategy), |s| PoolStrategy::parse(s)
    .map_err(reason));
leaf!(Auth(AuthMethod), |s| AuthMethod::parse(s).map_err(reason));
leaf!(EndpointValue(ServiceUrl), |s| {
    expand(s, false).and_then(|s| ServiceUrl::parse(&s).map_err(reason))
});
leaf!(RegionValue(Region), |s| Region::new(s).map_err(reason));
leaf!(ClientIdValue(ClientId), |s| ClientId::new(s)
    .map_err(reason));
leaf!(SrvName(heapless::String<MAX_SRV_NAME_LEN>), |s| {
    if s.is_empty() {
        Err("must not be empty".to_owned())
    } else if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        Err("invalid character (expected a DNS name such as _proxy._tcp.example.com)".to_owned())
    } else {
        heapless::String::try_from(s).map_err(|_| {
            format!(
                "too long: {} bytes (at most {MAX_SRV_NAME_LEN} allowed)",
                s.len()
            )
        })
    }
});
leaf!(
    FilePathValue(proxy_delegate_core::settings::FilePath),
    |s| {
        expand(s, false).and_then(|s| {
            if s.is_empty() {
                Err("must not be empty".to_owned())
            } else {
                proxy_delegate_core::settings::FilePath::try_from(s.as_str())
                    .map_err(|_| format!("too long: {} bytes (at most 256 allowed)", s.len()))
            }
        })
    }
);

/// A secret written literally, as `${NAME}`, or as `${file:/path}`; also
/// accepted as a map `{file: /path}` or `{env: NAME}`.
#[derive(Clone, PartialEq)]
pub(crate) struct SecretValue(pub(crate) Secret);

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a secret written as a number or a boolean is refused (without its value).
const UNQUOTED_SECRET: &str =
    "a secret must be text: write it in quotes (the value given is not shown)";

fn secret(s: &str) -> Result<SecretValue, String> {
    Secret::new(s).map(SecretValue).map_err(reason)
}

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret: text, ${NAME}, ${file:/path}, {file: /path} or {env: NAME}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretValue, E> {
                expand(v, false).and_then(|s| secret(&s)).map_err(E::custom)
            }
            // A number or a boolean is refused, not turned into text: the
            // parser has already changed it (`0123` read as 123), and serde's
            // own "invalid type" message would quote it.
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretValue, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretValue, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretValue, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<SecretValue, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<SecretValue, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretValue, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretValue, A::Error> {
                let mut out = None;
                while let Some(key) = map.next_key::<String>()? {
                    let val: String = map.next_value_seed(TextSeed)?;
                    if out.is_some() {
                        return Err(de::Error::custom(
                            "a secret reference has exactly one key, file or env",
                        ));
                    }
                    out = Some(
                        match key.as_str() {
                            "file" => expand(&format!("${{file:{val}}}"), false),
                            "env" => expand(&format!("${{{val}}}"), false),
                            other => {
                                return Err(de::Error::unknown_field(other, &["file", "env"]));
                            }
                        }
                        .map_err(de::Error::custom)?,
                    );
                }
                let s = out.ok_or_else(|| {
                    de::Error::custom(
                        "empty secret reference (expected {file: /path} or {env: NAME})",
                    )
                })?;
                secret(&s).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

struct TextSeed;
impl<'de> de::DeserializeSeed<'de> for TextSeed {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        scalar_text(d)
    }
}

/// Deserialises `U` from a string (through `from_str`) or a map (through
/// `M`'s derived impl, then `from_map`), both inside the parser's call so that
/// errors carry the value's path and line.
fn str_or_map<'de, D, M, U, S, F>(
    d: D,
    what: &'static str,
    from_str: S,
    from_map: F,
) -> Result<U, D::Error>
where
    D: Deserializer<'de>,
    M: Deserialize<'de>,
    S: FnOnce(&str) -> Result<U, String>,
    F: FnOnce(M) -> Result<U, String>,
{
    struct V<M, S, F>(&'static str, S, F, std::marker::PhantomData<M>);
    impl<'de, M, U, S, F> Visitor<'de> for V<M, S, F>
    where
        M: Deserialize<'de>,
        S: FnOnce(&str) -> Result<U, String>,
        F: FnOnce(M) -> Result<U, String>,
    {
        type Value = U;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<U, E> {
            (self.1)(v).map_err(E::custom)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<U, A::Error> {
            let m = M::deserialize(de::value::MapAccessDeserializer::new(map))?;
            (self.2)(m).map_err(de::Error::custom)
        }
    }
    d.deserialize_any(V(what, from_str, from_map, std::marker::PhantomData))
}

/// A URL given where an object is expected. An error names the implied
/// field as `@<sub path>: <reason>`; [`crate::split_sub_path`] moves it into
/// the path.
fn url_from_str(s: &str, sub: &str) -> Result<Url, String> {
    Url::parse(s).map_err(|r| format!("@{sub}: {r}"))
}

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

/// Reads the rest of a list, refusing it as soon as it holds more than
/// `max` items: the item past the bound is skipped unread (its aliases not
/// expanded), nothing after it is looked at. `what` names the items in the
/// message (`" exchanges"`, or empty).
fn bounded_list<'de, A, T>(mut seq: A, max: usize, what: &str) -> Result<Vec<T>, A::Error>
where
    A: SeqAccess<'de>,
    T: Deserialize<'de>,
{
    let mut out = Vec::new();
    while out.len() < max {
        match seq.next_element()? {
            Some(v) => out.push(v),
            None => return Ok(out),
        }
    }
    match seq.next_element::<de::IgnoredAny>()? {
        Some(_) => Err(de::Error::custom(too_many(max, what))),
        None => Ok(out),
    }
}

fn too_many(max: usize, what: &str) -> String {
    format!("too many items: more than {max} (at most {max}{what} allowed)")
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

/// An exchange name from configuration, validated and case-folded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ExchangeName(pub(crate) String);

impl<'de> Deserialize<'de> for ExchangeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, |s| {
            ExchangeId::new(s)
                .map(|id| ExchangeName(id.as_str().to_owned()))
                .map_err(|e| format!("exchange name{}: {}", quoted(s), e.reason))
        })
    }
}

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
    use proxy_delegate_core::model::ProxyUrl;

    use super::Url;

    /// A URL written the way it prints keeps no copy of its text; any other
    /// spelling is kept, password redacted.
    #[test]
    fn written_form_is_kept_only_when_it_differs() {
        for text in [
            "http://proxy.example:8080",
            "socks5://alice:s3cret@proxy.example:1080",
            "socks5h://bob@[::1]:1080",
            "https://10.0.0.1:1",
        ] {
            let u = Url::parse(text).unwrap();
            assert_eq!(u.written, None, "{text}");
            let url: ProxyUrl = text.parse().unwrap();
            assert_eq!(u.written(), url.to_string());
        }
        for (text, written) in [
            ("HTTP://proxy.example:8080", "HTTP://proxy.example:8080"),
            ("http://proxy.example:8080/", "http://proxy.example:8080/"),
            ("http://proxy.example:08080", "http://proxy.example:08080"),
            (
                "http://alice:@proxy.example:8080",
                "http://alice:@proxy.example:8080",
            ),
            (
                "Socks5://alice:s3,cr)et@p:1080/",
                "Socks5://alice:***@p:1080/",
            ),
        ] {
            let u = Url::parse(text).unwrap();
            assert_eq!(u.written.as_deref(), Some(written), "{text}");
            assert_eq!(u.written(), written);
        }
    }
}
