//! Reading the files a configuration names, boundedly: a configuration file,
//! a secret file, a TLS file. A path may name a device (`/dev/zero` never
//! ends), a pipe (reading blocks until a writer comes) or a huge file; none
//! of them may hang the program or fill its memory.

use std::io::{self, Read};
use std::path::Path;

/// Longest configuration file read (the client's `config.yaml`, the
/// service's file), in bytes.
pub const MAX_CONFIG_FILE: u64 = 1 << 20;

/// Deepest nesting of YAML flow collections (`[`, `{`) accepted: parsing
/// deeper nesting takes time that grows with the square of the depth.
pub const MAX_YAML_NESTING: usize = 64;

/// Reads a regular file of at most `max` bytes. Anything else (a directory, a
/// device, a pipe, a longer file) is an error of kind `InvalidInput` that says
/// which, and the file is not read.
pub fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let too_long = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("larger than {max} bytes"),
        )
    };
    if meta.len() > max {
        return Err(too_long());
    }
    // The file may grow between the check and the read.
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_long());
    }
    Ok(bytes)
}

/// [`read_bounded`] for a text file: invalid UTF-8 is an `InvalidData` error.
pub fn read_bounded_text(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_bounded(path, max)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// The 1-based line at which YAML flow collections (`[`, `{`) first nest
/// deeper than [`MAX_YAML_NESTING`], if they do. Quoted scalars and comments
/// are skipped; brackets in plain scalars count, which can only make a file
/// with more than 64 unclosed brackets fail here instead of in the parser.
pub fn yaml_nesting_too_deep(text: &str) -> Option<usize> {
    // Fewer opening brackets than the limit cannot nest deeper than it: the
    // usual file is settled by one quick count. (`[` is 0x5b and `{` 0x7b:
    // setting bit 0x20 maps both, and only them, to `{`; a byte counter per
    // 255 bytes lets the compiler count 16 bytes at a time.)
    let opening: usize = text
        .as_bytes()
        .chunks(255)
        .map(|c| usize::from(c.iter().fold(0u8, |n, &b| n + u8::from((b | 0x20) == b'{'))))
        .sum();
    if opening <= MAX_YAML_NESTING {
        return None;
    }
    let mut depth = 0usize;
    let mut line = 1;
    let mut chars = text.chars().peekable();
    let mut prev = '\n';
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' if prev.is_whitespace() => {
                // A comment runs to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
                prev = '\n';
                continue;
            }
            '"' | '\'' if !prev.is_alphanumeric() => {
                // A quoted scalar: `\` escapes in double quotes, `''` in single.
                let quote = c;
                while let Some(c) = chars.next() {
                    match c {
                        '\n' => line += 1,
                        '\\' if quote == '"' => {
                            chars.next();
                        }
                        '\'' if quote == '\'' && chars.peek() == Some(&'\'') => {
                            chars.next();
                        }
                        c if c == quote => break,
                        _ => {}
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_YAML_NESTING {
                    return Some(line);
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_quotes_and_comments() {
        let deep = format!("proxy: {}\n", "[".repeat(MAX_YAML_NESTING + 1));
        assert_eq!(yaml_nesting_too_deep(&deep), Some(1));
        let ok = format!(
            "proxy: {}{}\n",
            "[".repeat(MAX_YAML_NESTING),
            "]".repeat(MAX_YAML_NESTING)
        );
        assert_eq!(yaml_nesting_too_deep(&ok), None);
        // Brackets in quotes and comments do not count; balanced ones in a
        // plain scalar (an IPv6 host) cannot add up.
        let quoted = format!(
            "a: \"{b}\"\nb: '{b}'\n# {b}\nc: http://[::1]:80\nd: \"\\\"{b}\"\n",
            b = "[".repeat(100)
        );
        assert_eq!(yaml_nesting_too_deep(&quoted), None);
        let later = format!("a: 1\nb: 2\nc: {}\n", "{".repeat(65));
        assert_eq!(yaml_nesting_too_deep(&later), Some(3));
    }

    #[test]
    fn only_regular_files_within_the_bound_are_read() {
        let dir = std::env::temp_dir().join(format!("pd-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small.yaml");
        std::fs::write(&small, "proxy: {}\n").unwrap();
        assert_eq!(read_bounded_text(&small, 64).unwrap(), "proxy: {}\n");
        let e = read_bounded(&small, 4).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("larger than 4 bytes"), "{e}");
        for not_a_file in [Path::new("/dev/zero"), dir.as_path()] {
            let e = read_bounded(not_a_file, 1 << 20).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        std::fs::write(&small, [0xff, 0xfe]).unwrap();
        assert_eq!(
            read_bounded_text(&small, 64).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
