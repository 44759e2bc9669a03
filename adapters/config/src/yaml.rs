//! Bounds on a YAML configuration file, checked before the YAML parser builds
//! anything: a file of at most [`MAX_CONFIG_FILE`](crate::MAX_CONFIG_FILE)
//! bytes is refused or loaded in well under a second and a few tens of MiB,
//! whatever it holds.
//!
//! Three things make YAML costly, and each has its bound:
//!
//! * **Nesting.** The parser (libyaml) spends time proportional to the depth
//!   of `[` / `{` collections on every token, so deep nesting takes time
//!   that grows with its square: at most [`MAX_YAML_NESTING`] levels.
//! * **Size.** The parser keeps every event of the document (about 100 bytes
//!   each) until it is read: at most [`MAX_YAML_NODES`] nodes.
//! * **Aliases.** `*name` repeats what `&name` marked, and one small file can
//!   repeat a long list thousands of times: counting each alias as every
//!   node it repeats, at most [`MAX_YAML_NODES`] nodes and
//!   [`MAX_YAML_EXPANDED_TEXT`] bytes of text ([`check_yaml_aliases`]).
//!
//! [`check_yaml_text`] finds the first two with a scanner that splits the
//! text into tokens the way libyaml's scanner does (block scalars, quoted
//! scalars, comments, plain scalars over several lines, indentation), in one
//! pass and without allocating per token. Where it meets something libyaml
//! refuses, libyaml stops there; the scanner then counts every `[` and `{`
//! that follows as a level of nesting, so that nothing it may have misread
//! can hide a deep collection.
//!
//! Where each part lives:
//!
//! * this file: the bounds ([`MAX_YAML_NESTING`], [`MAX_YAML_NODES`],
//!   [`MAX_YAML_EXPANDED_TEXT`]) and the error ([`YamlLimitError`]);
//! * `yaml/scanner.rs`: [`check_yaml_text`] and [`yaml_nesting_too_deep`],
//!   the scanner's state, characters, simple keys, indentation and the
//!   token loop; `yaml/scanner/scalars.rs`: the tokens with content it
//!   skips over (anchors, tags, block, quoted and plain scalars);
//! * `yaml/aliases.rs`: [`check_yaml_aliases`], the walk that counts
//!   aliases as what they repeat.

use std::fmt;

mod aliases;
mod scanner;

pub use aliases::check_yaml_aliases;
pub use scanner::{check_yaml_text, yaml_nesting_too_deep};

/// Deepest nesting of YAML flow collections (`[`, `{`) accepted: parsing
/// deeper nesting takes time that grows with the square of the depth.
pub const MAX_YAML_NESTING: usize = 64;

/// Most nodes (keys, values, list entries) a YAML configuration file may
/// hold, aliases counted as every node they repeat. A 4,096-proxy inventory
/// holds about 100,000.
pub const MAX_YAML_NODES: usize = 250_000;

/// Most text (the bytes of every scalar) a YAML configuration file may hold
/// once aliases are expanded: four times the largest file.
pub const MAX_YAML_EXPANDED_TEXT: usize = 4 << 20;

/// A YAML file over one of the bounds. Never holds a value from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlLimitError {
    /// Dotted path of the value where the bound was passed, when known
    /// (`clients[3].tls_names[17]`); empty otherwise.
    pub path: String,
    /// Which bound, e.g. `brackets nested deeper than 64 levels (`[` or `{`)`.
    pub reason: String,
    /// 1-based line where the bound was passed.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
}

impl fmt::Display for YamlLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.reason)?;
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, " (line {l}, column {c})"),
            (Some(l), None) => write!(f, " (line {l})"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for YamlLimitError {}

fn nesting_error(line: usize) -> YamlLimitError {
    YamlLimitError {
        path: String::new(),
        reason: format!("brackets nested deeper than {MAX_YAML_NESTING} levels (`[` or `{{`)"),
        line: Some(line),
        column: None,
    }
}

fn size_error(line: usize) -> YamlLimitError {
    YamlLimitError {
        path: String::new(),
        reason: format!(
            "more than {MAX_YAML_NODES} YAML nodes (keys, values and list entries): too large \
             for a configuration file"
        ),
        line: Some(line),
        column: None,
    }
}
