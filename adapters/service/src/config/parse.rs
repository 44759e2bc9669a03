//! Reading the configuration text: the file ([`ServiceConfig::load`]), TOML
//! or YAML ([`ServiceConfig::parse`]) bounded in size before the parser
//! builds anything, errors that name the key and line but never quote the
//! source, and the embedded default.

use std::path::Path;

use super::{ConfigError, RawFile, ServiceConfig, err};

impl ServiceConfig {
    /// Reads and validates a configuration file: YAML when its name ends in
    /// `.yaml` or `.yml`, TOML otherwise.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let in_file = |mut e: ConfigError| {
            e.file = Some(path.to_owned());
            e
        };
        let text =
            proxy_delegate_config::read_bounded_text(path, proxy_delegate_config::MAX_CONFIG_FILE)
                .map_err(|e| in_file(err("", format!("cannot read the file: {e}"))))?;
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        let mut config = Self::parse(&text, yaml).map_err(in_file)?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Parses and validates configuration text (TOML, or YAML with `yaml`).
    pub fn parse(text: &str, yaml: bool) -> Result<Self, ConfigError> {
        let raw: RawFile = if yaml {
            // Bounded before anything is built: the parser's own work (nesting,
            // size as written), then aliases counted as what they repeat.
            proxy_delegate_config::check_yaml_text(text)
                .and_then(|()| proxy_delegate_config::check_yaml_aliases(text))
                .map_err(|e| {
                    let at = match (e.line, e.column) {
                        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
                        (Some(l), None) => format!(" (line {l})"),
                        _ => String::new(),
                    };
                    err(e.path, format!("{}{at}", e.reason))
                })?;
            serde_norway::from_str(text).map_err(|e| yaml_error(&e))?
        } else {
            toml_size(text)?;
            let de = toml::Deserializer::parse(text).map_err(|e| toml_error(text, "", &e))?;
            serde_path_to_error::deserialize(de).map_err(|e| {
                let field = e.path().to_string();
                toml_error(text, &field, e.inner())
            })?
        };
        Self::from_raw(raw)
    }

    /// The configuration `proxy-delegate serve` runs without a file: three
    /// made-up proxies on documentation addresses (TEST-NET), no
    /// authentication, loopback only.
    pub fn embedded_default() -> Self {
        Self::parse(EMBEDDED_DEFAULT, false)
            .unwrap_or_else(|e| unreachable!("the embedded default configuration is valid: {e}"))
    }
}

/// Refuses TOML of more than [`MAX_YAML_NODES`](proxy_delegate_config::MAX_YAML_NODES)
/// keys and values before the parser (which keeps about 150 bytes for each)
/// sees it: every `=`, `,`, `[` and `{` outside strings and comments counts,
/// an upper bound of what the document holds. Linear, allocates nothing.
fn toml_size(text: &str) -> Result<(), ConfigError> {
    enum In {
        Code,
        Comment,
        Basic,
        Literal,
        MultiBasic,
        MultiLiteral,
    }
    let b = text.as_bytes();
    let (mut state, mut count, mut line, mut i) = (In::Code, 0usize, 1usize, 0usize);
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
        }
        match state {
            In::Code => match c {
                b'#' => state = In::Comment,
                b'"' if b[i..].starts_with(b"\"\"\"") => {
                    state = In::MultiBasic;
                    i += 2;
                }
                b'\'' if b[i..].starts_with(b"'''") => {
                    state = In::MultiLiteral;
                    i += 2;
                }
                b'"' => state = In::Basic,
                b'\'' => state = In::Literal,
                b'=' | b',' | b'[' | b'{' => {
                    count += 1;
                    if count > proxy_delegate_config::MAX_YAML_NODES {
                        return Err(err(
                            "",
                            format!(
                                "more than {} keys and values: too large for a configuration \
                                 file (line {line})",
                                proxy_delegate_config::MAX_YAML_NODES
                            ),
                        ));
                    }
                }
                _ => {}
            },
            In::Comment if c == b'\n' => state = In::Code,
            In::Basic if c == b'\\' => i += 1,
            In::Basic | In::Literal if c == b'\n' => state = In::Code,
            In::Basic if c == b'"' => state = In::Code,
            In::Literal if c == b'\'' => state = In::Code,
            In::MultiBasic if c == b'\\' => i += 1,
            In::MultiBasic if b[i..].starts_with(b"\"\"\"") => {
                state = In::Code;
                i += 2;
            }
            In::MultiLiteral if b[i..].starts_with(b"'''") => {
                state = In::Code;
                i += 2;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// A TOML error as the field (serde_path_to_error's path, `.` for the
/// root), the parser's message and the line. Never the parser's `Display`:
/// it quotes the offending source line, which may hold a secret.
fn toml_error(text: &str, field: &str, e: &toml::de::Error) -> ConfigError {
    let span = e
        .span()
        .map(|s| s.start.min(text.len())..s.end.min(text.len()));
    let line = span
        .as_ref()
        .map(|s| format!(" (line {})", text[..s.start].matches('\n').count() + 1))
        .unwrap_or_default();
    // "duplicate key" says which only through its span: name the key when it
    // is fit to quote (a key, not a value, but it costs nothing to check).
    let key = span
        .filter(|_| e.message().starts_with("duplicate key"))
        .and_then(|s| text.get(s))
        .and_then(|k| proxy_delegate_core::quotable(k.trim().trim_matches('"')))
        .map(|k| format!(" `{k}`"))
        .unwrap_or_default();
    // serde_path_to_error's path already ends with an unknown key.
    err(
        if field == "." { "" } else { field },
        proxy_delegate_config::redact_text(&format!("{}{key}{line}", e.message())),
    )
}

/// A YAML error as the field and the message with its line and column.
/// serde_norway's message is `path: reason at line L column C`; the path
/// becomes the field, and the quoted text of a type error is redacted.
fn yaml_error(e: &serde_norway::Error) -> ConfigError {
    let mut message = e.to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    let (field, reason) = match message.split_once(": ") {
        Some((path, reason)) if !path.contains(' ') => (path.to_owned(), reason.to_owned()),
        _ => (String::new(), message),
    };
    // An unknown key is named by its full path, not its parent's.
    let field = proxy_delegate_config::unknown_key_path(&field, &reason).unwrap_or(field);
    let at = e
        .location()
        .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
        .unwrap_or_default();
    err(
        field,
        proxy_delegate_config::redact_text(&format!("{reason}{at}")),
    )
}

/// The embedded default: `proxy-delegate serve` without `--config`.
const EMBEDDED_DEFAULT: &str = r#"
listen = "127.0.0.1:8080"

[pool]
strategy = "least_connections"
ttl_seconds = 300

[exchanges.coinbase]
fallback_policy = "direct_connection"

[[proxies]]
id = "demo-us-1"
url = "socks5://192.0.2.10:1080"
regions = ["us-east-1"]

[[proxies]]
id = "demo-eu-1"
url = "http://198.51.100.20:3128"
regions = ["eu-west-1"]

[[proxies]]
id = "demo-ap-1"
url = "socks5h://203.0.113.30:1080"
regions = ["ap-northeast-1"]
connection_types = ["websocket"]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid_and_open() {
        let c = ServiceConfig::embedded_default();
        assert_eq!(c.proxies.len(), 3);
        assert!(!c.auth.required);
        assert!(c.listen.ip().is_loopback());
    }

    #[test]
    fn unknown_key_names_its_path() {
        let e = ServiceConfig::parse(
            "[[proxies]]\nid = \"a\"\nurl = \"http://h:1\"\ncolour = 1\n",
            false,
        )
        .unwrap_err();
        assert!(e.field.starts_with("proxies[0]"), "{e}");
        assert!(e.message.contains("colour"), "{e}");
    }

    #[test]
    fn syntax_errors_never_quote_the_source() {
        // A parser's own message quotes the offending line; a token on it
        // must not reach the error.
        let toml = "[[clients]]\nname = \"a\"\nbearer_tokens = [\"sup3r-secret\" oops]\n";
        let e = ServiceConfig::parse(toml, false).unwrap_err().to_string();
        assert!(!e.contains("sup3r-secret"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        let toml = "[[clients]]\nname = \"a\"\nbearer_tokens = \"sup3r-secret\"\n";
        let e = ServiceConfig::parse(toml, false).unwrap_err();
        assert_eq!(e.field, "clients[0].bearer_tokens");
        assert!(!e.to_string().contains("sup3r-secret"), "{e}");
        let yaml = "clients:\n  - name: a\n    bearer_tokens: \"sup3r-secret\"\n";
        let e = ServiceConfig::parse(yaml, true).unwrap_err();
        assert_eq!(e.field, "clients[0].bearer_tokens");
        assert!(!e.to_string().contains("sup3r-secret"), "{e}");
        assert!(e.message.contains("line 3, column"), "{e}");
    }

    #[test]
    fn a_duplicate_key_is_named() {
        let e = ServiceConfig::parse(
            "[pool]\nstrategy = \"random\"\nstrategy = \"random\"\n",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("duplicate key `strategy` (line 3)"), "{e}");
    }

    #[test]
    fn yaml_and_toml_agree() {
        let toml = "listen = \"127.0.0.1:9000\"\n[[clients]]\nname = \"a\"\napi_keys = [\"k\"]\n[[proxies]]\nid = \"p\"\nurl = \"http://h:1\"\nregions = [\"eu\"]\n";
        let yaml = "listen: 127.0.0.1:9000\nclients:\n  - name: a\n    api_keys: [k]\nproxies:\n  - id: p\n    url: http://h:1\n    regions: [eu]\n";
        let a = ServiceConfig::parse(toml, false).unwrap();
        let b = ServiceConfig::parse(yaml, true).unwrap();
        assert_eq!(a.listen, b.listen);
        assert_eq!(a.proxies, b.proxies);
        assert!(a.auth.required && b.auth.required);
        assert_eq!(a.clients[0].name, b.clients[0].name);
    }
}
