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

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

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

/// Checks `text` for nesting deeper than [`MAX_YAML_NESTING`] and more than
/// [`MAX_YAML_NODES`] nodes as written, in time linear in its length and
/// without building anything. Run it before handing `text` to the YAML
/// parser.
pub fn check_yaml_text(text: &str) -> Result<(), YamlLimitError> {
    let mut scanner = Scanner::new(text);
    match scanner.run() {
        Ok(()) => Ok(()),
        Err(Stop::Limit(e)) => Err(e),
        Err(Stop::Refused) => scanner.rest_as_brackets(),
    }
}

/// The 1-based line at which YAML flow collections (`[`, `{`) first nest
/// deeper than [`MAX_YAML_NESTING`], if they do (see [`check_yaml_text`],
/// which also bounds the size).
pub fn yaml_nesting_too_deep(text: &str) -> Option<usize> {
    let mut scanner = Scanner::new(text);
    scanner.count_nodes = false;
    let result = match scanner.run() {
        Ok(()) => Ok(()),
        Err(Stop::Limit(e)) => Err(e),
        Err(Stop::Refused) => scanner.rest_as_brackets(),
    };
    result.err().and_then(|e| e.line)
}

/// Where the scanner stops: a bound passed, or something libyaml refuses
/// (libyaml stops there too).
enum Stop {
    Limit(YamlLimitError),
    Refused,
}

/// A place a simple key (`key:` without `?`) may start, as libyaml keeps
/// one per flow level.
#[derive(Debug, Clone, Copy, Default)]
struct SimpleKey {
    possible: bool,
    required: bool,
    line: usize,
    index: usize,
    column: usize,
}

/// libyaml's scanner, reduced to what decides where tokens start and end:
/// the flow level, the block indentation, the simple keys and whether one
/// may start. Comments follow libyaml's `yaml_parser_scan_*` and
/// `yaml_parser_fetch_*` functions, by name.
struct Scanner<'a> {
    s: &'a [u8],
    /// Where libyaml's reader stops: the first character it does not allow.
    end: usize,
    pos: usize,
    /// 0-based line and column (in characters), as libyaml's marks.
    line: usize,
    column: usize,
    flow: usize,
    indent: i64,
    indents: Vec<i64>,
    simple_key_allowed: bool,
    /// One per flow level; at most `MAX_YAML_NESTING + 1`.
    keys: Vec<SimpleKey>,
    nodes: usize,
    count_nodes: bool,
}

/// Whether libyaml's reader accepts `c` (it refuses other control
/// characters, surrogates and U+FFFE / U+FFFF).
fn allowed_char(c: char) -> bool {
    matches!(c as u32,
        0x09 | 0x0A | 0x0D | 0x20..=0x7E | 0x85 | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

fn is_alpha(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn width(b: u8) -> usize {
    match b {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        let end = text
            .char_indices()
            .find(|&(_, c)| !allowed_char(c))
            .map_or(text.len(), |(i, _)| i);
        // The reader drops a byte order mark at the start.
        let pos = if text.starts_with('\u{feff}') { 3 } else { 0 };
        Self {
            s: text.as_bytes(),
            end,
            pos: pos.min(end),
            line: 0,
            column: 0,
            flow: 0,
            indent: -1,
            indents: Vec::new(),
            simple_key_allowed: true,
            keys: vec![SimpleKey::default()],
            nodes: 0,
            count_nodes: true,
        }
    }

    // -------------------------------------------------------------- characters

    /// The byte `k` bytes ahead, or 0 at the end (libyaml's buffer ends in NUL).
    fn at(&self, k: usize) -> u8 {
        let i = self.pos + k;
        if i < self.end { self.s[i] } else { 0 }
    }

    fn is_z(&self) -> bool {
        self.pos >= self.end
    }

    fn is_break_at(&self, k: usize) -> bool {
        match self.at(k) {
            b'\r' | b'\n' => true,
            0xC2 => self.at(k + 1) == 0x85,
            0xE2 => self.at(k + 1) == 0x80 && matches!(self.at(k + 2), 0xA8 | 0xA9),
            _ => false,
        }
    }

    fn is_blank_at(&self, k: usize) -> bool {
        matches!(self.at(k), b' ' | b'\t')
    }

    fn is_blankz_at(&self, k: usize) -> bool {
        self.is_blank_at(k) || self.is_break_at(k) || self.pos + k >= self.end
    }

    fn is_breakz(&self) -> bool {
        self.is_break_at(0) || self.is_z()
    }

    fn skip(&mut self) {
        if !self.is_z() {
            self.pos = (self.pos + width(self.s[self.pos])).min(self.end);
            self.column += 1;
        }
    }

    fn skip_line(&mut self) {
        if self.at(0) == b'\r' && self.at(1) == b'\n' {
            self.pos += 2;
        } else if self.is_break_at(0) {
            self.pos += width(self.s[self.pos]);
        } else {
            return;
        }
        self.line += 1;
        self.column = 0;
    }

    /// `---` or `...` at the start of a line, followed by a blank or the end.
    fn at_document_indicator(&self) -> bool {
        self.column == 0
            && ((self.at(0) == b'-' && self.at(1) == b'-' && self.at(2) == b'-')
                || (self.at(0) == b'.' && self.at(1) == b'.' && self.at(2) == b'.'))
            && self.is_blankz_at(3)
    }

    // -------------------------------------------------------------- bounds

    /// Adds `n` to the node count: an upper bound of the parser's events
    /// over two (a `?` may stand for a mapping, an empty key and an empty
    /// value; `- ` for a sequence and an empty entry).
    fn count(&mut self, n: usize) -> Result<(), Stop> {
        self.nodes += n;
        if self.count_nodes && self.nodes > MAX_YAML_NODES {
            return Err(Stop::Limit(size_error(self.line + 1)));
        }
        Ok(())
    }

    /// After libyaml would have stopped: every `[` and `{` left counts as a
    /// level of nesting.
    fn rest_as_brackets(&self) -> Result<(), YamlLimitError> {
        let mut depth = self.flow;
        let mut line = self.line + 1;
        for &b in &self.s[self.pos.min(self.end)..self.end] {
            match b {
                b'\n' => line += 1,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_YAML_NESTING {
                        return Err(nesting_error(line));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    // -------------------------------------------------------------- simple keys and indentation

    fn top_key(&mut self) -> &mut SimpleKey {
        let last = self.keys.len() - 1;
        &mut self.keys[last]
    }

    fn stale_simple_keys(&mut self) -> Result<(), Stop> {
        let (line, pos) = (self.line, self.pos);
        for key in &mut self.keys {
            if key.possible && (key.line < line || key.index + 1024 < pos) {
                if key.required {
                    return Err(Stop::Refused);
                }
                key.possible = false;
            }
        }
        Ok(())
    }

    fn save_simple_key(&mut self) -> Result<(), Stop> {
        let required = self.flow == 0 && self.indent == self.column as i64;
        if self.simple_key_allowed {
            self.remove_simple_key()?;
            let key = SimpleKey {
                possible: true,
                required,
                line: self.line,
                index: self.pos,
                column: self.column,
            };
            *self.top_key() = key;
        }
        Ok(())
    }

    fn remove_simple_key(&mut self) -> Result<(), Stop> {
        let key = self.top_key();
        if key.possible && key.required {
            return Err(Stop::Refused);
        }
        key.possible = false;
        Ok(())
    }

    fn roll_indent(&mut self, column: i64) {
        if self.flow == 0 && self.indent < column {
            self.indents.push(self.indent);
            self.indent = column;
        }
    }

    fn unroll_indent(&mut self, column: i64) {
        if self.flow != 0 {
            return;
        }
        while self.indent > column {
            self.indent = self.indents.pop().unwrap_or(-1);
        }
    }

    // -------------------------------------------------------------- tokens

    fn run(&mut self) -> Result<(), Stop> {
        loop {
            self.scan_to_next_token();
            self.stale_simple_keys()?;
            self.unroll_indent(self.column as i64);
            if self.is_z() {
                // fetch_stream_end
                self.unroll_indent(-1);
                return self.remove_simple_key();
            }
            let c = self.at(0);
            if self.column == 0 && c == b'%' {
                self.fetch_directive()?;
            } else if self.at_document_indicator() {
                self.unroll_indent(-1);
                self.remove_simple_key()?;
                self.simple_key_allowed = false;
                self.skip();
                self.skip();
                self.skip();
            } else if c == b'[' || c == b'{' {
                self.save_simple_key()?;
                self.flow += 1;
                if self.flow > MAX_YAML_NESTING {
                    return Err(Stop::Limit(nesting_error(self.line + 1)));
                }
                self.keys.push(SimpleKey::default());
                self.simple_key_allowed = true;
                self.skip();
                self.count(1)?;
            } else if c == b']' || c == b'}' {
                self.remove_simple_key()?;
                if self.flow != 0 {
                    self.flow -= 1;
                    self.keys.pop();
                }
                self.simple_key_allowed = false;
                self.skip();
            } else if c == b',' {
                self.remove_simple_key()?;
                self.simple_key_allowed = true;
                self.skip();
                self.count(1)?;
            } else if c == b'-' && self.is_blankz_at(1) {
                // fetch_block_entry
                if self.flow == 0 {
                    if !self.simple_key_allowed {
                        return Err(Stop::Refused);
                    }
                    self.roll_indent(self.column as i64);
                }
                self.remove_simple_key()?;
                self.simple_key_allowed = true;
                self.skip();
                self.count(2)?;
            } else if c == b'?' && (self.flow != 0 || self.is_blankz_at(1)) {
                // fetch_key
                if self.flow == 0 {
                    if !self.simple_key_allowed {
                        return Err(Stop::Refused);
                    }
                    self.roll_indent(self.column as i64);
                }
                self.remove_simple_key()?;
                self.simple_key_allowed = self.flow == 0;
                self.skip();
                self.count(3)?;
            } else if c == b':' && (self.flow != 0 || self.is_blankz_at(1)) {
                self.fetch_value()?;
            } else if c == b'*' || c == b'&' {
                self.save_simple_key()?;
                self.simple_key_allowed = false;
                self.scan_anchor()?;
                if c == b'*' {
                    self.count(1)?;
                }
            } else if c == b'!' {
                self.save_simple_key()?;
                self.simple_key_allowed = false;
                self.scan_tag()?;
            } else if (c == b'|' || c == b'>') && self.flow == 0 {
                self.remove_simple_key()?;
                self.simple_key_allowed = true;
                self.scan_block_scalar()?;
                self.count(1)?;
            } else if c == b'\'' || c == b'"' {
                self.save_simple_key()?;
                self.simple_key_allowed = false;
                self.scan_flow_scalar(c == b'\'')?;
                self.count(1)?;
            } else if self.plain_scalar_starts() {
                self.save_simple_key()?;
                self.simple_key_allowed = false;
                self.scan_plain_scalar()?;
                self.count(1)?;
            } else {
                // "found character that cannot start any token"
                return Err(Stop::Refused);
            }
        }
    }

    fn scan_to_next_token(&mut self) {
        loop {
            if self.column == 0 && self.at(0) == 0xEF && self.at(1) == 0xBB && self.at(2) == 0xBF {
                self.skip();
            }
            while self.at(0) == b' '
                || ((self.flow != 0 || !self.simple_key_allowed) && self.at(0) == b'\t')
            {
                self.skip();
            }
            if self.at(0) == b'#' {
                while !self.is_breakz() {
                    self.skip();
                }
            }
            if !self.is_break_at(0) {
                break;
            }
            self.skip_line();
            if self.flow == 0 {
                self.simple_key_allowed = true;
            }
        }
    }

    fn fetch_directive(&mut self) -> Result<(), Stop> {
        self.unroll_indent(-1);
        self.remove_simple_key()?;
        self.simple_key_allowed = false;
        // A directive runs to the end of its line (libyaml refuses one that
        // does not; it holds no collection either way).
        while !self.is_breakz() {
            self.skip();
        }
        self.skip_line();
        Ok(())
    }

    fn fetch_value(&mut self) -> Result<(), Stop> {
        let key = *self.top_key();
        if key.possible {
            self.roll_indent(key.column as i64);
            self.top_key().possible = false;
            self.simple_key_allowed = false;
            self.count(1)?;
        } else {
            if self.flow == 0 {
                if !self.simple_key_allowed {
                    return Err(Stop::Refused);
                }
                self.roll_indent(self.column as i64);
            }
            self.simple_key_allowed = self.flow == 0;
            self.count(3)?;
        }
        self.skip();
        Ok(())
    }

    fn plain_scalar_starts(&self) -> bool {
        let c = self.at(0);
        !(self.is_blankz_at(0) || b"-?:,[]{}#&*!|>'\"%@`".contains(&c))
            || (c == b'-' && !self.is_blank_at(1))
            || (self.flow == 0 && (c == b'?' || c == b':') && !self.is_blankz_at(1))
    }

    fn scan_anchor(&mut self) -> Result<(), Stop> {
        self.skip();
        let mut length = 0;
        while is_alpha(self.at(0)) {
            self.skip();
            length += 1;
        }
        let ends = self.is_blankz_at(0) || b"?:,]}%@`".contains(&self.at(0));
        if length == 0 || !ends {
            return Err(Stop::Refused);
        }
        Ok(())
    }

    fn scan_tag(&mut self) -> Result<(), Stop> {
        if self.at(1) == b'<' {
            self.skip();
            self.skip();
            self.scan_tag_uri(true)?;
            if self.at(0) != b'>' {
                return Err(Stop::Refused);
            }
            self.skip();
        } else {
            // The handle (`!`, `!!` or `!name!`), then the suffix.
            self.skip();
            while is_alpha(self.at(0)) {
                self.skip();
            }
            if self.at(0) == b'!' {
                self.skip();
            }
            self.scan_tag_uri(false)?;
        }
        if !self.is_blankz_at(0) && (self.flow == 0 || self.at(0) != b',') {
            return Err(Stop::Refused);
        }
        Ok(())
    }

    fn scan_tag_uri(&mut self, verbatim: bool) -> Result<(), Stop> {
        loop {
            let c = self.at(0);
            if c == b'%' {
                if !(self.at(1).is_ascii_hexdigit() && self.at(2).is_ascii_hexdigit()) {
                    return Err(Stop::Refused);
                }
                self.skip();
                self.skip();
                self.skip();
            } else if is_alpha(c)
                || b";/?:@&=+$.!~*'()".contains(&c)
                || (verbatim && b",[]".contains(&c))
            {
                self.skip();
            } else {
                return Ok(());
            }
        }
    }

    fn scan_block_scalar(&mut self) -> Result<(), Stop> {
        self.skip();
        let mut increment = 0i64;
        let c = self.at(0);
        if c == b'+' || c == b'-' {
            self.skip();
            if self.at(0).is_ascii_digit() {
                if self.at(0) == b'0' {
                    return Err(Stop::Refused);
                }
                increment = i64::from(self.at(0) - b'0');
                self.skip();
            }
        } else if c.is_ascii_digit() {
            if c == b'0' {
                return Err(Stop::Refused);
            }
            increment = i64::from(c - b'0');
            self.skip();
            if matches!(self.at(0), b'+' | b'-') {
                self.skip();
            }
        }
        while self.is_blank_at(0) {
            self.skip();
        }
        if self.at(0) == b'#' {
            while !self.is_breakz() {
                self.skip();
            }
        }
        if !self.is_breakz() {
            return Err(Stop::Refused);
        }
        self.skip_line();
        let mut indent = 0i64;
        if increment != 0 {
            indent = if self.indent >= 0 {
                self.indent + increment
            } else {
                increment
            };
        }
        self.scan_block_scalar_breaks(&mut indent)?;
        while self.column as i64 == indent && !self.is_z() {
            while !self.is_breakz() {
                self.skip();
            }
            self.skip_line();
            self.scan_block_scalar_breaks(&mut indent)?;
        }
        Ok(())
    }

    fn scan_block_scalar_breaks(&mut self, indent: &mut i64) -> Result<(), Stop> {
        let mut max_indent = 0i64;
        loop {
            while (*indent == 0 || (self.column as i64) < *indent) && self.at(0) == b' ' {
                self.skip();
            }
            max_indent = max_indent.max(self.column as i64);
            if (*indent == 0 || (self.column as i64) < *indent) && self.at(0) == b'\t' {
                return Err(Stop::Refused);
            }
            if !self.is_break_at(0) {
                break;
            }
            self.skip_line();
        }
        if *indent == 0 {
            *indent = max_indent.max(self.indent + 1).max(1);
        }
        Ok(())
    }

    fn scan_flow_scalar(&mut self, single: bool) -> Result<(), Stop> {
        let quote = if single { b'\'' } else { b'"' };
        self.skip();
        loop {
            if self.at_document_indicator() || self.is_z() {
                return Err(Stop::Refused);
            }
            while !self.is_blankz_at(0) {
                let c = self.at(0);
                if single && c == b'\'' && self.at(1) == b'\'' {
                    self.skip();
                    self.skip();
                } else if c == quote {
                    break;
                } else if !single && c == b'\\' && self.is_break_at(1) {
                    self.skip();
                    self.skip_line();
                    break;
                } else if !single && c == b'\\' {
                    let code_length = match self.at(1) {
                        b'0' | b'a' | b'b' | b't' | b'\t' | b'n' | b'v' | b'f' | b'r' | b'e'
                        | b' ' | b'"' | b'/' | b'\\' | b'N' | b'_' | b'L' | b'P' => 0,
                        b'x' => 2,
                        b'u' => 4,
                        b'U' => 8,
                        _ => return Err(Stop::Refused),
                    };
                    self.skip();
                    self.skip();
                    if code_length > 0 {
                        let mut value = 0u32;
                        for k in 0..code_length {
                            let digit = char::from(self.at(k)).to_digit(16).ok_or(Stop::Refused)?;
                            value = (value << 4) | digit;
                        }
                        if (0xD800..=0xDFFF).contains(&value) || value > 0x10FFFF {
                            return Err(Stop::Refused);
                        }
                        for _ in 0..code_length {
                            self.skip();
                        }
                    }
                } else {
                    self.skip();
                }
            }
            if self.at(0) == quote {
                break;
            }
            while self.is_blank_at(0) || self.is_break_at(0) {
                if self.is_blank_at(0) {
                    self.skip();
                } else {
                    self.skip_line();
                }
            }
        }
        self.skip();
        Ok(())
    }

    fn scan_plain_scalar(&mut self) -> Result<(), Stop> {
        let indent = self.indent + 1;
        let mut leading_blanks = false;
        loop {
            if self.at_document_indicator() || self.at(0) == b'#' {
                break;
            }
            while !self.is_blankz_at(0) {
                let c = self.at(0);
                if self.flow != 0 && c == b':' && b",?[]{}".contains(&self.at(1)) {
                    return Err(Stop::Refused);
                }
                if (c == b':' && self.is_blankz_at(1)) || (self.flow != 0 && b",[]{}".contains(&c))
                {
                    break;
                }
                leading_blanks = false;
                self.skip();
            }
            if !(self.is_blank_at(0) || self.is_break_at(0)) {
                break;
            }
            while self.is_blank_at(0) || self.is_break_at(0) {
                if self.is_blank_at(0) {
                    if leading_blanks && (self.column as i64) < indent && self.at(0) == b'\t' {
                        return Err(Stop::Refused);
                    }
                    self.skip();
                } else {
                    self.skip_line();
                    leading_blanks = true;
                }
            }
            if self.flow == 0 && (self.column as i64) < indent {
                break;
            }
        }
        if leading_blanks {
            self.simple_key_allowed = true;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ aliases

/// Checks that the document, its aliases expanded, holds at most
/// [`MAX_YAML_NODES`] nodes and [`MAX_YAML_EXPANDED_TEXT`] bytes of scalar
/// text. It walks the document once with the YAML parser, building nothing,
/// and stops as soon as a bound is passed; a file without `*` has no alias
/// and is not walked. Run it after [`check_yaml_text`] (which bounds the
/// parser's own work) and before deserialising into types that would hold
/// every repetition.
///
/// Only a bound passed is an error: a document the parser refuses is left
/// for the real parse to report.
pub fn check_yaml_aliases(text: &str) -> Result<(), YamlLimitError> {
    if !text.contains('*') {
        return Ok(());
    }
    let budget = Budget::default();
    let result = Count(&budget).deserialize(serde_norway::Deserializer::from_str(text));
    match (result, budget.passed.get()) {
        (Err(e), Some(reason)) => {
            let mut message = e.to_string();
            if let Some(i) = message.rfind(" at line ") {
                message.truncate(i);
            }
            let path = message
                .strip_suffix(reason)
                .and_then(|p| p.strip_suffix(": "))
                .unwrap_or_default()
                .to_owned();
            // No line: the parser places a repeated node where the anchor
            // wrote it, not where the alias repeats it. The path says where.
            Err(YamlLimitError {
                path,
                reason: reason.to_owned(),
                line: None,
                column: None,
            })
        }
        _ => Ok(()),
    }
}

const TOO_MANY_EXPANDED: &str = "more than 250000 YAML nodes once aliases are expanded (an \
     alias counts as every node it repeats)";
const TOO_MUCH_TEXT: &str = "more than 4 MiB of text once aliases are expanded (an alias \
     counts as all the text it repeats)";

#[derive(Default)]
struct Budget {
    nodes: Cell<usize>,
    text: Cell<usize>,
    passed: Cell<Option<&'static str>>,
}

impl Budget {
    fn node<E: de::Error>(&self, text: usize) -> Result<(), E> {
        self.nodes.set(self.nodes.get() + 1);
        self.text.set(self.text.get().saturating_add(text));
        let passed = if self.nodes.get() > MAX_YAML_NODES {
            TOO_MANY_EXPANDED
        } else if self.text.get() > MAX_YAML_EXPANDED_TEXT {
            TOO_MUCH_TEXT
        } else {
            return Ok(());
        };
        self.passed.set(Some(passed));
        Err(E::custom(passed))
    }
}

/// Walks any value, counting it against the budget.
#[derive(Clone, Copy)]
struct Count<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.node(v.len())
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<(), E> {
        self.0.node(v.len())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.0.node(0)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.node(0)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.node(0)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged value (`!tag value`).
        use de::VariantAccess;
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_error(text: &str) -> Option<usize> {
        match check_yaml_text(text) {
            Err(e) if e.reason.starts_with("brackets") => e.line,
            _ => None,
        }
    }

    #[test]
    fn nesting_is_measured_outside_quotes_and_comments() {
        let deep = format!("proxy: {}\n", "[".repeat(MAX_YAML_NESTING + 1));
        assert_eq!(depth_error(&deep), Some(1));
        let ok = format!(
            "proxy: {}{}\n",
            "[".repeat(MAX_YAML_NESTING),
            "]".repeat(MAX_YAML_NESTING)
        );
        assert_eq!(depth_error(&ok), None);
        // Brackets in quotes, comments and plain scalars do not count.
        let quoted = format!(
            "a: \"{b}\"\nb: '{b}'\n# {b}\nc: http://[::1]:80\nd: \"\\\"{b}\"\ne: x{b}\n",
            b = "[".repeat(100)
        );
        assert_eq!(depth_error(&quoted), None);
        let later = format!("a: 1\nb: 2\nc: {}\n", "{".repeat(65));
        assert_eq!(depth_error(&later), Some(3));
        assert_eq!(yaml_nesting_too_deep(&later), Some(3));
    }

    /// A quote inside a block scalar, a plain scalar or a comment starts no
    /// quoted scalar: the brackets after it count.
    #[test]
    fn quotes_that_start_nothing_hide_nothing() {
        let deep = "[".repeat(100_000);
        for head in [
            "x: |\n  \"\ny: ",
            "x: >-\n  it's\n\n  \"\ny: ",
            "x: |2\n   \"\n  '\ny: ",
            "x: a\"b\ny: ",
            "x: a \"b\ny: ",
            "x: a\n  \"b\ny: ",
            "# \"\ny: ",
            "x: 'it''s' # \"\ny: ",
            "x: \"a\\\"\" # '\ny: ",
            "- |\n  \"\n- ",
            "x: !t \"\"\ny: ",
            "x: &a \"\"\ny: ",
        ] {
            let text = format!("{head}{deep}\n");
            let started = std::time::Instant::now();
            let e = check_yaml_text(&text).expect_err(head);
            assert!(e.reason.starts_with("brackets nested"), "{head:?}: {e}");
            assert!(started.elapsed().as_millis() < 500, "{head:?}");
        }
    }

    #[test]
    fn a_block_scalar_ends_where_its_indentation_does() {
        // The brackets are content of the block scalar: not nesting.
        let text = format!("x: |\n  {}\n  \"\ny: 1\n", "[".repeat(200));
        assert_eq!(check_yaml_text(&text), Ok(()));
        let text = format!("- >\n   {}\n- 1\n", "{".repeat(200));
        assert_eq!(check_yaml_text(&text), Ok(()));
    }

    #[test]
    fn size_is_bounded_as_written() {
        let ok = format!("x: [{}]\n", vec!["a"; 100_000].join(","));
        assert_eq!(check_yaml_text(&ok), Ok(()));
        for text in [
            format!("x: [{}]\n", vec!["a"; 200_000].join(",")),
            "?\n".repeat(90_000),
            "-\n".repeat(130_000),
            format!("x: {{{}}}\n", vec!["a"; 130_000].join(",")),
        ] {
            let e = check_yaml_text(&text).unwrap_err();
            assert!(e.reason.contains("more than 250000 YAML nodes"), "{e}");
        }
    }

    #[test]
    fn aliases_are_counted_as_what_they_repeat() {
        let names = vec!["n"; 1000].join(", ");
        let mut text = format!("a: &n [{names}]\nb:\n");
        for _ in 0..300 {
            text.push_str("  - *n\n");
        }
        let e = check_yaml_aliases(&text).unwrap_err();
        assert!(e.reason.contains("once aliases are expanded"), "{e}");
        assert!(e.path.starts_with("b["), "{e:?}");
        // A few aliases are fine; no `*` means no walk.
        let few = format!("a: &n [{names}]\nb: [*n, *n]\n");
        assert_eq!(check_yaml_aliases(&few), Ok(()));
        assert_eq!(check_yaml_aliases("a: [1, 2"), Ok(()));
        // Long text repeated.
        let long = "x".repeat(100_000);
        let mut text = format!("a: &s {long}\nb:\n");
        for _ in 0..50 {
            text.push_str("  - *s\n");
        }
        let e = check_yaml_aliases(&text).unwrap_err();
        assert!(e.reason.contains("MiB of text"), "{e}");
    }
}
