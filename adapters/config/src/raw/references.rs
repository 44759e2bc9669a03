//! `${NAME}` (an environment variable) and `${file:/path}` (a file's
//! contents) references in configuration values, and the lookup they use
//! while a layer is read.

use std::cell::RefCell;

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
