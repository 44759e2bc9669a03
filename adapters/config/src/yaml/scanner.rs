//! The scanner behind [`check_yaml_text`]: libyaml's scanner reduced to
//! what decides where tokens start and end, counting nesting and nodes as it
//! goes. The tokens with content (scalars, anchors, tags) are read in
//! `scalars.rs`.

use super::{MAX_YAML_NESTING, MAX_YAML_NODES, YamlLimitError, nesting_error, size_error};

mod scalars;

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
}
