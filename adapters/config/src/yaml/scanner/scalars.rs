//! The scanner's readers of tokens with content, which it skips over:
//! anchors and aliases, tags, and block, quoted and plain scalars. Each
//! follows libyaml's `yaml_parser_scan_*` function of the same name.

use super::{Scanner, Stop, is_alpha};

impl Scanner<'_> {
    pub(super) fn scan_anchor(&mut self) -> Result<(), Stop> {
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

    pub(super) fn scan_tag(&mut self) -> Result<(), Stop> {
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

    pub(super) fn scan_block_scalar(&mut self) -> Result<(), Stop> {
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

    pub(super) fn scan_flow_scalar(&mut self, single: bool) -> Result<(), Stop> {
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

    pub(super) fn scan_plain_scalar(&mut self) -> Result<(), Stop> {
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

#[cfg(test)]
mod tests {
    use crate::yaml::check_yaml_text;

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
}
