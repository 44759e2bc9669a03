//! # proxy-delegate-config
//!
//! Loads proxy-delegate's embedded configuration the way cryptofeed does: the
//! `proxy:` block of a cryptofeed `config.yaml` and the `CRYPTOFEED_PROXY_*`
//! environment variables, layered (environment over YAML over values given in
//! code), into the core's [`Settings`] (`proxy_delegate_core::settings::ProxySettings`).
//! Shared by the `proxy-delegate` CLI and the tokio adapter.
//!
//! * Every error names the path and the reason, and for a file the line:
//!   `proxy.exchanges.binance.http.url: missing port (config.yaml, line 6, column 14)`.
//! * Secrets (`token`, `api_key`, proxy passwords) may be written as
//!   `${ENV_NAME}` or `${file:/path}` (or `{env: NAME}` / `{file: /path}` for
//!   `token` and `api_key`); they are redacted (`***`) in every output of this
//!   crate: errors, warnings, [`Loaded::provenance`] and [`to_yaml`] with
//!   [`Exposure::Redacted`].
//! * [`Loaded::provenance`] tells, for each effective value, where it came
//!   from: [`Source::File`], [`Source::Environment`], [`Source::Code`] or
//!   [`Source::Default`].
//!
//! ```
//! use proxy_delegate_config::{Loader, Source};
//! use proxy_delegate_core::model::{ConnectionType, ExchangeId};
//!
//! let yaml = "proxy:\n  enabled: true\n  default:\n    http: http://proxy-a:8080\n";
//! let env = [("CRYPTOFEED_PROXY_EXCHANGES__BINANCE__WEBSOCKET__URL", "socks5://user:pw@proxy-b:1080")];
//! let mut loaded = Loader::new().yaml_str("config.yaml", yaml).env(env).load()?;
//! let binance = ExchangeId::new("binance")?;
//! let pick = loaded.settings.resolve(&binance, ConnectionType::Websocket).unwrap();
//! assert_eq!(pick.proxy_url.to_string(), "socks5://user:***@proxy-b:1080");
//! let source = loaded.source_of("proxy.default.http.url");
//! assert_eq!(source, Some(Source::File));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod env;
mod files;
mod raw;
mod tree;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use proxy_delegate_core::model::ProxyUrl;
use proxy_delegate_core::settings::{DEFAULT_EXCHANGES, DEFAULT_POOL, ProxySettings};

pub use env::ENV_PREFIX;
pub use files::{MAX_CONFIG_FILE, read_bounded, read_bounded_text};
use raw::RawSettings;
pub use yaml::{
    MAX_YAML_EXPANDED_TEXT, MAX_YAML_NESTING, MAX_YAML_NODES, YamlLimitError, check_yaml_aliases,
    check_yaml_text, yaml_nesting_too_deep,
};

/// The settings type the loader builds: [`DEFAULT_EXCHANGES`] exchanges, pools
/// of [`DEFAULT_POOL`] proxies.
pub type Settings = ProxySettings<DEFAULT_EXCHANGES, DEFAULT_POOL>;

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Source {
    /// Not set anywhere: the documented default.
    Default,
    /// Given in code ([`Loader::code`]).
    Code,
    /// The YAML file.
    File,
    /// A `CRYPTOFEED_PROXY_*` environment variable.
    Environment,
}

proxy_delegate_core::labels! {
    /// `default`, `code`, `file` or `environment`.
    Source {
        Default => "default",
        Code => "code",
        File => "file",
        Environment => "environment",
    }
}

/// Something worth telling that does not stop loading (an unknown
/// `CRYPTOFEED_PROXY_*` variable). Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The message, e.g. `CRYPTOFEED_PROXY_FOO: unknown setting proxy.foo (ignored)`.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The configuration could not be loaded. Every variant names the path of the
/// value and the reason; none contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    Io {
        /// The file.
        file: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// The YAML file is invalid.
    File {
        /// The file (or the name given to [`Loader::yaml_str`]).
        file: PathBuf,
        /// Dotted path of the value, e.g. `proxy.exchanges.binance.http.url`
        /// (empty for a YAML syntax error).
        path: String,
        /// Why it was rejected.
        reason: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
    },
    /// A `CRYPTOFEED_PROXY_*` variable is invalid.
    Environment {
        /// The variable, when it can be told.
        variable: Option<String>,
        /// Dotted path of the value.
        path: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The layers are valid one by one but not together (too many exchanges).
    Settings {
        /// Dotted path of the value.
        path: String,
        /// Why it was rejected.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { file, message } => {
                write!(f, "cannot read {}: {message}", file.display())
            }
            ConfigError::File {
                file,
                path,
                reason,
                line,
                column,
            } => {
                if path.is_empty() {
                    write!(f, "{}: {reason}", file.display())?;
                } else {
                    write!(f, "{path}: {reason} ({}", file.display())?;
                }
                let open = if path.is_empty() { " (" } else { ", " };
                match (line, column) {
                    (Some(l), Some(c)) => write!(f, "{open}line {l}, column {c})"),
                    (Some(l), None) => write!(f, "{open}line {l})"),
                    _ if path.is_empty() => Ok(()),
                    _ => f.write_str(")"),
                }
            }
            ConfigError::Environment {
                variable,
                path,
                reason,
            } => match variable {
                Some(v) => write!(f, "{path}: {reason} (environment variable {v})"),
                None => write!(f, "{path}: {reason} (environment)"),
            },
            ConfigError::Settings { path, reason } => write!(f, "{path}: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Whether [`to_yaml`] writes secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Passwords, tokens and API keys as `***` (for people and logs).
    Redacted,
    /// Everything, so that the output loads back to the same settings. Keep
    /// the result away from logs.
    Exposed,
}

/// One effective value and where it came from, for `check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// Dotted path, e.g. `proxy.default.http.url` or
    /// `proxy.exchanges.binance.websocket.pool.proxies[0].url`.
    pub path: String,
    /// The value as YAML/JSON text, secrets redacted.
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

/// The loaded settings, the warnings, and where each value came from.
#[derive(Debug)]
pub struct Loaded {
    /// The effective settings.
    pub settings: Box<Settings>,
    /// Warnings: unknown `CRYPTOFEED_PROXY_*` names, and `rest` / `ws` given
    /// beside `http` / `websocket` (ignored).
    pub warnings: Vec<Warning>,
    /// The layers as read, kept for [`Loaded::provenance`].
    layers: Vec<(Source, RawSettings)>,
}

impl Loaded {
    /// Every effective value with its source, sorted by path; secrets
    /// redacted. Computed on demand (loading itself stays cheap).
    pub fn provenance(&self) -> Vec<Provenance> {
        provenance(&self.layers, &self.settings)
    }

    /// The source of the value at `path`, if the settings hold one there.
    pub fn source_of(&self, path: &str) -> Option<Source> {
        self.provenance()
            .into_iter()
            .find(|p| p.path == path)
            .map(|p| p.source)
    }

    /// `url` as the configuration wrote it, with its password as `***`: an
    /// upper-case scheme, a trailing `/` or a port with leading zeros is kept,
    /// where `url`'s own `Display` normalises them. The highest layer that
    /// holds `url` decides (should two entries spell one URL two ways, either
    /// spelling may be shown); a URL given in code, or not in the settings,
    /// is written by its `Display`.
    pub fn written_url(&self, url: &ProxyUrl) -> String {
        self.layers
            .iter()
            .rev()
            .find_map(|(_, layer)| tree::written_in(layer, url))
            .map_or_else(|| url.to_string(), std::borrow::Cow::into_owned)
    }

    /// The client id to send: the configured one or [`default_client_id`].
    pub fn client_id(&self) -> String {
        self.settings
            .external_service
            .client_id
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_else(default_client_id)
    }
}

enum FileInput {
    Path(PathBuf),
    Text(PathBuf, String),
}

/// Builds [`Settings`] from layers: values given in code, then a YAML file,
/// then the environment (each over the one before).
///
/// Layering rules: `enabled` (and `seed`) is overridden only where a later
/// layer sets it; `default` is replaced as a whole; `exchanges` merge per
/// exchange, each exchange's entry replaced as a whole; `external_service`
/// merges field by field (and `auth_credentials` field by field), so a token
/// can come from the environment and the endpoints from the file.
pub struct Loader {
    code: Option<RawSettings>,
    file: Option<FileInput>,
    env: Option<Rc<[(String, String)]>>,
    /// `CRYPTOFEED_PROXY_*` variables of the process whose name or value is
    /// not UTF-8 text (an error at `load`, never skipped silently).
    env_not_text: Vec<String>,
    lookup: Option<Rc<raw::Lookup>>,
}

impl fmt::Debug for Loader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loader").finish_non_exhaustive()
    }
}

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}

impl Loader {
    /// No layers; `${NAME}` references read the process environment.
    pub fn new() -> Self {
        Self {
            code: None,
            file: None,
            env: None,
            env_not_text: Vec::new(),
            lookup: None,
        }
    }

    /// The lowest layer: values given in code. Every value of `settings` counts
    /// as set (so the file and the environment override it as described).
    pub fn code(mut self, settings: &Settings) -> Self {
        self.code = Some(tree::raw_from_settings(settings));
        self
    }

    /// Reads a cryptofeed `config.yaml` (settings under `proxy:`) when
    /// [`load`](Self::load) runs.
    pub fn yaml_file(mut self, path: impl AsRef<Path>) -> Self {
        self.file = Some(FileInput::Path(path.as_ref().to_owned()));
        self
    }

    /// Uses `text` as the `config.yaml`; `name` is used in error messages.
    pub fn yaml_str(mut self, name: impl AsRef<Path>, text: impl Into<String>) -> Self {
        self.file = Some(FileInput::Text(name.as_ref().to_owned(), text.into()));
        self
    }

    /// Uses these variables as the environment, both for `CRYPTOFEED_PROXY_*`
    /// settings and for `${NAME}` references (the process environment is not
    /// read).
    pub fn env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let vars: Rc<[(String, String)]> = vars
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        // References look the variables up where they are (the last of a
        // repeated name wins): a handful of names, no map worth building.
        let names = Rc::clone(&vars);
        self.lookup = Some(Rc::new(move |name: &str| {
            names
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }));
        self.env = Some(vars);
        self
    }

    /// Uses the process environment (what the CLI does).
    pub fn process_env(mut self) -> Self {
        let mut vars = Vec::new();
        for (k, v) in std::env::vars_os() {
            match (k.into_string(), v.into_string()) {
                (Ok(k), Ok(v)) => vars.push((k, v)),
                // Another program's variable that is not text is none of
                // ours; one of ours is an error, not a value to skip.
                (k, _) => {
                    let name = k.unwrap_or_else(|k| k.to_string_lossy().into_owned());
                    let ours = name
                        .get(..ENV_PREFIX.len())
                        .is_some_and(|h| h.eq_ignore_ascii_case(ENV_PREFIX));
                    if ours {
                        self.env_not_text.push(name);
                    }
                }
            }
        }
        self.env = Some(vars.into());
        self.lookup = None;
        self
    }

    /// Loads, layers and validates.
    pub fn load(self) -> Result<Loaded, ConfigError> {
        let lookup: Rc<raw::Lookup> = self
            .lookup
            .unwrap_or_else(|| Rc::new(|name: &str| std::env::var(name).ok()));
        let mut layers: Vec<(Source, RawSettings)> = Vec::new();
        if let Some(code) = self.code {
            layers.push((Source::Code, code));
        }
        let mut warnings = Vec::new();
        if let Some(file) = self.file {
            let (name, text) = match file {
                FileInput::Path(p) => {
                    let text =
                        read_bounded_text(&p, MAX_CONFIG_FILE).map_err(|e| ConfigError::Io {
                            file: p.clone(),
                            message: e.to_string(),
                        })?;
                    (p, text)
                }
                FileInput::Text(name, text) => (name, text),
            };
            if let Some(layer) = raw::with_lookup(lookup.clone(), || parse_yaml(&name, &text))? {
                warnings.extend(dropped_aliases(&layer, &name.display().to_string()));
                layers.push((Source::File, layer));
            }
        }
        if let Some(name) = self.env_not_text.first() {
            return Err(ConfigError::Environment {
                variable: Some(name.clone()),
                path: env::setting_path(name),
                reason: "not UTF-8 text".to_owned(),
            });
        }
        if let Some(vars) = self.env {
            let (layer, w) = raw::with_lookup(lookup, || {
                env::load_env(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            })?;
            warnings.extend(w);
            if let Some(layer) = layer {
                warnings.extend(dropped_aliases(&layer, "environment"));
                layers.push((Source::Environment, layer));
            }
        }
        build(layers, warnings)
    }
}

/// A warning for each alias (`rest`, `ws`) a layer gave beside its
/// canonical key, which was read instead; `source` names the layer.
fn dropped_aliases(layer: &RawSettings, source: &str) -> Vec<Warning> {
    let exchanges = layer.exchanges.iter().flatten();
    let conns = layer
        .default
        .iter()
        .map(|c| ("proxy.default".to_owned(), c))
        .chain(exchanges.map(|(name, c)| (format!("proxy.exchanges.{}", name.0), c)));
    let mut warnings = Vec::new();
    for (path, conn) in conns {
        for alias in &conn.dropped {
            let canonical = if *alias == "rest" {
                "http"
            } else {
                "websocket"
            };
            warnings.push(Warning {
                message: format!(
                    "{path}: both `{canonical}` and its alias `{alias}` are given; `{alias}` is \
                     ignored, as cryptofeed ignores it ({source})"
                ),
            });
        }
    }
    warnings
}

fn parse_yaml(name: &Path, text: &str) -> Result<Option<RawSettings>, ConfigError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    // The parser's own work is bounded first; what the `proxy:` block is
    // read into is bounded as it arrives (every list and map of it refuses
    // its first item past the bound), and the rest of a cryptofeed file is
    // skipped without expanding its aliases.
    if let Err(e) = check_yaml_text(text) {
        return Err(ConfigError::File {
            file: name.to_owned(),
            path: e.path,
            reason: e.reason,
            line: e.line,
            column: e.column,
        });
    }
    match serde_norway::from_str::<Option<raw::ConfigFile>>(text) {
        Ok(file) => Ok(file.and_then(|f| f.proxy)),
        Err(e) => {
            let location = e.location();
            let mut message = e.to_string();
            if let Some(i) = message.rfind(" at line ") {
                message.truncate(i);
            }
            let (path, reason) = match message.split_once(": ") {
                Some((p, r))
                    if p == "proxy" || p.starts_with("proxy.") || p.starts_with("proxy[") =>
                {
                    split_sub_path(p, r)
                }
                _ => split_sub_path("", &message),
            };
            let path = unknown_key_path(&path, &reason).unwrap_or(path);
            Err(ConfigError::File {
                file: name.to_owned(),
                path,
                reason: redact_text(&reason),
                line: location.as_ref().map(|l| l.line()),
                column: location.as_ref().map(|l| l.column()),
            })
        }
    }
}

/// The full path of the key a parser's `unknown field `key`, expected ...`
/// message names under `path` (`proxy.exchanges.binance.http` and `retries`
/// give `proxy.exchanges.binance.http.retries`), when the key is fit to
/// quote (see [`quoted`]); `None` for any other message.
///
/// ```
/// use proxy_delegate_config::unknown_key_path;
///
/// let reason = "unknown field `retries`, expected one of `url`, `timeout_seconds`, `pool`";
/// assert_eq!(
///     unknown_key_path("proxy.default.http", reason).as_deref(),
///     Some("proxy.default.http.retries")
/// );
/// assert_eq!(unknown_key_path("", "unknown field `colour`").as_deref(), Some("colour"));
/// assert_eq!(unknown_key_path("proxy", "missing port"), None);
/// ```
pub fn unknown_key_path(path: &str, reason: &str) -> Option<String> {
    let rest = reason.strip_prefix("unknown field `")?;
    let key = &rest[..rest.find('`')?];
    let key = proxy_delegate_core::quotable(key)?;
    Some(if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    })
}

/// Moves an implied field named in a reason (`@url: missing port`) into the
/// path.
pub(crate) fn split_sub_path(path: &str, reason: &str) -> (String, String) {
    if let Some((sub, rest)) = reason.strip_prefix('@').and_then(|r| r.split_once(": ")) {
        let path = if path.is_empty() {
            format!("proxy.{sub}")
        } else {
            format!("{path}.{sub}")
        };
        return (path, rest.to_owned());
    }
    (path.to_owned(), reason.to_owned())
}

/// Reads only the YAML layer of `text` (no environment, no layering) and
/// builds settings from it. `${NAME}` references read the process environment.
pub fn load_yaml_str(text: &str) -> Result<Box<Settings>, ConfigError> {
    Loader::new()
        .yaml_str("config.yaml", text)
        .load()
        .map(|l| l.settings)
}

/// Reads only the environment layer from `vars` and builds settings from it.
pub fn load_env<I, K, V>(vars: I) -> Result<Loaded, ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    Loader::new().env(vars).load()
}

fn merge(base: &mut RawSettings, top: RawSettings) {
    if top.enabled.is_some() {
        base.enabled = top.enabled;
    }
    if top.seed.is_some() {
        base.seed = top.seed;
    }
    if top.default.is_some() {
        base.default = top.default;
    }
    if let Some(ex) = top.exchanges {
        let into = base.exchanges.get_or_insert_with(BTreeMap::new);
        for (k, v) in ex {
            into.insert(k, v);
        }
    }
    if let Some(top) = top.external_service {
        let b = base.external_service.get_or_insert_with(Default::default);
        macro_rules! take {
            ($($f:ident),*) => { $( if top.$f.is_some() { b.$f = top.$f; } )* };
        }
        raw::external_leaves!(take);
        if let Some(top) = top.auth_credentials {
            let c = b.auth_credentials.get_or_insert_with(Default::default);
            macro_rules! take_c {
                ($($f:ident),*) => { $( if top.$f.is_some() { c.$f = top.$f; } )* };
            }
            raw::credential_fields!(take_c);
        }
    }
}

/// The layering unit a path belongs to: the whole `default`, one exchange, or
/// one field of `external_service`.
fn unit_of(path: &str) -> String {
    let segs: Vec<&str> = path
        .split('.')
        .map(|s| s.split('[').next().unwrap_or(s))
        .collect();
    let n = match segs.get(1).copied() {
        Some("exchanges") => 3,
        Some("external_service") if segs.get(2) == Some(&"auth_credentials") => 4,
        Some("external_service") => 3,
        _ => 2,
    };
    segs[..n.min(segs.len())].join(".")
}

fn build(
    layers: Vec<(Source, RawSettings)>,
    warnings: Vec<Warning>,
) -> Result<Loaded, ConfigError> {
    let settings = match layers.as_slice() {
        [] => Box::default(),
        [(_, only)] => tree::settings_from_raw(only)?,
        [(_, first), rest @ ..] => {
            let mut merged = first.clone();
            for (_, layer) in rest {
                merge(&mut merged, layer.clone());
            }
            tree::settings_from_raw(&merged)?
        }
    };
    Ok(Loaded {
        settings,
        warnings,
        layers,
    })
}

fn provenance(layers: &[(Source, RawSettings)], settings: &Settings) -> Vec<Provenance> {
    let mut winner: BTreeMap<String, Source> = BTreeMap::new();
    let mut explicit: BTreeMap<Source, BTreeSet<String>> = BTreeMap::new();
    for (source, layer) in layers {
        let leaves = tree::flatten(&tree::raw_to_tree(layer, Exposure::Redacted));
        let set = explicit.entry(*source).or_default();
        for (path, _) in leaves {
            winner.insert(unit_of(&path), *source);
            set.insert(path);
        }
    }
    let effective = tree::flatten(&tree::raw_to_tree(
        &tree::raw_from_settings(settings),
        Exposure::Redacted,
    ));
    let mut provenance: Vec<Provenance> = effective
        .into_iter()
        .map(|(path, value)| {
            let source = winner
                .get(&unit_of(&path))
                .copied()
                .filter(|s| explicit.get(s).is_some_and(|set| set.contains(&path)))
                .unwrap_or(Source::Default);
            Provenance {
                path,
                value,
                source,
            }
        })
        .collect();
    if settings.external_service.client_id.is_none() {
        provenance.push(Provenance {
            path: "proxy.external_service.client_id".into(),
            value: serde_json::Value::String(default_client_id()).to_string(),
            source: Source::Default,
        });
    }
    provenance.sort_by(|a, b| a.path.cmp(&b.path));
    provenance
}

/// Writes `settings` as a cryptofeed `config.yaml` (under `proxy:`). With
/// [`Exposure::Exposed`] the output loads back to equal settings.
pub fn to_yaml(settings: &Settings, exposure: Exposure) -> String {
    let tree = tree::raw_to_tree(&tree::raw_from_settings(settings), exposure);
    let mut root = serde_json::Map::new();
    root.insert("proxy".into(), tree);
    serde_norway::to_string(&serde_json::Value::Object(root))
        .unwrap_or_else(|e| format!("# cannot write settings: {e}\n"))
}

/// The default client id, `cryptofeed-<hostname>-<pid>`, with characters a
/// client id does not allow replaced by `-`.
pub fn default_client_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let host: String = host
        .chars()
        .map(|c| if c.is_control() { '-' } else { c })
        .take(96)
        .collect();
    format!("cryptofeed-{host}-{}", std::process::id())
}

/// Expands secret references in `text`, as the settings loader does:
/// `${NAME}` (an environment variable), `${file:/path}` (a regular file's
/// contents without the trailing newline) and `$${` (a literal `${`). With
/// `url_encode`, expanded text is percent-encoded so that it fits in a URL's
/// user name or password. The error names the variable or the file, never a
/// value. Other configuration files (the reference service's) use it so that
/// every file of the project spells secrets the same way.
pub fn expand_references(text: &str, url_encode: bool) -> Result<String, String> {
    raw::expand(text, url_encode)
}

/// ` "value"` for an error message when the value is fit to quote (see
/// [`proxy_delegate_core::quotable`]), else nothing: a value written in the
/// wrong field may be a secret. The one way the loaders and the service
/// quote what they refuse.
///
/// ```
/// use proxy_delegate_config::quoted;
///
/// assert_eq!(format!("invalid boolean{}", quoted("yess")), r#"invalid boolean "yess""#);
/// assert_eq!(format!("invalid boolean{}", quoted("http://u:pw@h:1")), "invalid boolean");
/// ```
pub fn quoted(s: &str) -> String {
    proxy_delegate_core::quotable(s.trim())
        .map(|q| format!(" {q:?}"))
        .unwrap_or_default()
}

/// Masks secrets in free text: the password of any `scheme://user:password@`
/// URL, the text quoted in a parser's `invalid type: string "..."` message
/// (which may be a misplaced token), and the number quoted in its
/// ``integer `...` `` and ``floating point `...` `` messages.
///
/// Text in an error message may be anything a bad input holds: a password
/// with a space, a quote or a raw `/` in it, or a URL cut short. So a URL's
/// user information is taken to run to the last `@` on the line, and its
/// password from the first `:` in it; a URL with no `@` after it whose `:` is
/// not followed by a port may be cut short before it, and is masked from the
/// `:` too. Masking too much is the safe way to be wrong.
///
/// What serde quotes is masked first, while its `\"` escapes are intact:
/// masking a URL inside the quote could drop the backslash before a quote
/// and so end the quoted text early, leaving the rest of it unmasked.
pub fn redact_text(s: &str) -> String {
    let quoted_masked = mask_quoted(s);
    let mut out = String::with_capacity(quoted_masked.len());
    let mut rest = quoted_masked.as_str();
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let line = &tail[..tail.find('\n').unwrap_or(tail.len())];
        let used = match line.rfind('@') {
            Some(at) => {
                let userinfo = &line[..at];
                match userinfo.find(':') {
                    Some(c) => {
                        out.push_str(&userinfo[..c]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                at
            }
            None => {
                let end = line
                    .find(|c: char| c.is_whitespace() || "/\"'`<>,;)}".contains(c))
                    .unwrap_or(line.len());
                let authority = &line[..end];
                // `host:port` and `[v6]:port` are left as they are.
                let from = if authority.starts_with('[') {
                    authority.find(']').unwrap_or(0)
                } else {
                    0
                };
                match authority[from..].find(':').map(|c| from + c) {
                    Some(c) if !authority[c + 1..].bytes().all(|b| b.is_ascii_digit()) => {
                        out.push_str(&authority[..c]);
                        out.push_str(":***");
                    }
                    _ => out.push_str(authority),
                }
                end
            }
        };
        rest = &tail[used..];
    }
    out.push_str(rest);
    out
}

/// Masks what a serde error message quotes after `string "` (up to the
/// closing quote, past `\"` escapes), `integer `` and `floating point ``.
fn mask_quoted(text: &str) -> String {
    const MARKERS: [(&str, char); 6] = [
        ("invalid type: string \"", '"'),
        ("invalid value: string \"", '"'),
        ("invalid type: integer `", '`'),
        ("invalid value: integer `", '`'),
        ("invalid type: floating point `", '`'),
        ("invalid value: floating point `", '`'),
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = MARKERS
            .iter()
            .filter_map(|&(m, close)| rest.find(m).map(|i| (i, m, close)))
            .min_by_key(|&(i, ..)| i);
        let Some((i, marker, close)) = next else {
            out.push_str(rest);
            return out;
        };
        let start = i + marker.len();
        out.push_str(&rest[..start]);
        // The closing mark: the first one not escaped by a backslash.
        let mut end = rest.len();
        let mut escaped = false;
        for (k, c) in rest[start..].char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == close {
                end = start + k;
                break;
            }
        }
        out.push_str("***");
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::redact_text;

    /// Every character a password may hold, and some a bad input may hold,
    /// stays masked, whatever follows the URL.
    #[test]
    fn redact_text_masks_passwords_whatever_they_hold() {
        for password in [
            "se,cret",
            "se)cret",
            "se'cret",
            "s;e=c&r!e$t*+",
            "se%2Fcret",
            "se/cret",
            "se cret",
            "se\"cret",
            "se<cret",
            "se\u{2003}cret",
            "se@cret",
        ] {
            for text in [
                format!("bad url http://alice:{password}@proxy.example:8080 here"),
                format!("(see 'socks5://alice:{password}@proxy.example:1080'), then"),
                format!("\"http://alice:{password}@proxy.example:8080/\""),
                format!("at the end http://alice:{password}@proxy.example:8080"),
            ] {
                let out = redact_text(&text);
                assert!(
                    !out.contains(password),
                    "{password:?} leaked from {text:?}: {out}"
                );
                assert!(out.contains("alice:***@"), "{out}");
            }
        }
    }

    /// A URL cut short before its `@` (an excerpt) is masked from the `:`;
    /// a host and port are not.
    #[test]
    fn redact_text_masks_a_url_cut_short() {
        assert_eq!(
            redact_text("invalid number \"socks5://alice:longpassw\""),
            "invalid number \"socks5://alice:***\""
        );
        for kept in [
            "proxy http://proxy.example:8080/ and (socks5://h:1080), then",
            "socks5h://[::1]:1080 is fine",
            "http://proxy.example and more",
        ] {
            assert_eq!(redact_text(kept), kept);
        }
    }

    /// What serde quotes is masked: strings past escaped quotes, numbers.
    #[test]
    fn redact_text_masks_what_serde_quotes() {
        let cases = [
            (
                r#"token: invalid type: string "tok\"SECRETPART", expected struct X"#,
                r#"token: invalid type: string "***", expected struct X"#,
            ),
            (
                "api_keys[0]: invalid type: integer `123456789012345`, expected a string",
                "api_keys[0]: invalid type: integer `***`, expected a string",
            ),
            (
                "x: invalid type: floating point `1234.5678`, expected a string (line 3)",
                "x: invalid type: floating point `***`, expected a string (line 3)",
            ),
        ];
        for (text, masked) in cases {
            assert_eq!(redact_text(text), masked);
        }
    }

    /// A URL inside what serde quotes, ending at an escaped quote, does not
    /// end the masking early (the fuzzer found a token past such a URL).
    #[test]
    fn redact_text_masks_past_a_url_inside_a_quote() {
        let text = r#"invalid type: string "bear\"socks5h://203.0.113.30:1080\"\ntokens = [\"tok-feed-1\"]", expected struct RawFile (line 1, column 1)"#;
        assert_eq!(
            redact_text(text),
            r#"invalid type: string "***", expected struct RawFile (line 1, column 1)"#
        );
    }
}
