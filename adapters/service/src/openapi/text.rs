//! The text patterns of the document and [`printable`]: text bounded in
//! bytes of UTF-8, as JSON Schema (which counts characters) can say it.

use utoipa::openapi::Schema;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};

/// The text of an identifier field (`exchange_id`, `region`, `strategy`):
/// ASCII letters, digits, `_`, `-` and `.`.
pub const IDENTIFIER_PATTERN: &str = "^[A-Za-z0-9_.-]+$";
/// The text of a free-text id (`client_id`, `proxy_id`, feed types,
/// symbols): any character but control characters (Unicode category Cc).
/// Such text is bounded in bytes of UTF-8, which JSON Schema cannot count;
/// [`printable`] spells the bound as four alternatives by the widest
/// character used.
pub const PRINTABLE_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$";
/// Printable ASCII: one byte per character.
const ASCII_PATTERN: &str = "^[\\u0020-\\u007E]+$";
/// Printable text of characters up to U+07FF: at most two bytes each.
const TWO_BYTE_PATTERN: &str = "^[\\u0020-\\u007E\\u00A0-\\u07FF]+$";
/// Printable text of the Basic Multilingual Plane: at most three bytes each.
const THREE_BYTE_PATTERN: &str = "^[\\u0020-\\u007E\\u00A0-\\uD7FF\\uE000-\\uFFFF]+$";
/// A proxy URL, `scheme://[user[:password]@]host:port[/]`, as the pattern
/// describes it: a DNS name of up to four labels or an IPv4 address as host,
/// lower-case scheme,
/// port 1–65535 without leading zeros. The service also accepts the scheme
/// in any case, leading zeros in the port and a bracketed IPv6 host.
pub const PROXY_URL_PATTERN: &str = "^(https?|socks4a?|socks5h?)://\
((?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}){1,42}\
(:(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}){0,42})?@)?\
[A-Za-z0-9_-]{1,63}(\\.[A-Za-z0-9_-]{1,62}){0,3}\\.?\
:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])/?$";

/// Printable text (no control characters) of 1 to `max_bytes` bytes of
/// UTF-8, as JSON Schema can say it: `anyOf` ASCII text of up to
/// `max_bytes` characters, text of characters up to U+07FF of up to half
/// as many, text of the Basic Multilingual Plane of up to a third, and any
/// printable text of up to a quarter. Every string the alternatives allow
/// fits the bound; the service also takes mixed text that fits in bytes but
/// in no alternative (e.g. 31 ASCII characters and one `é` for 32 bytes).
/// `nullable` adds `null` (read as absent).
pub fn printable(max_bytes: usize, nullable: bool, description: &str) -> Schema {
    let text = |max_chars: usize, pattern: &str, what: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(max_chars))
            .pattern(Some(pattern))
            .description(Some(what))
    };
    let mut any = AnyOfBuilder::new()
        .item(text(max_bytes, ASCII_PATTERN, "Printable ASCII."))
        .item(text(
            max_bytes / 2,
            TWO_BYTE_PATTERN,
            "Characters up to U+07FF (two bytes each at most).",
        ))
        .item(text(
            max_bytes / 3,
            THREE_BYTE_PATTERN,
            "Characters of the Basic Multilingual Plane (three bytes each at most).",
        ))
        .item(text(
            max_bytes / 4,
            PRINTABLE_PATTERN,
            "Any characters but control characters (four bytes each at most).",
        ));
    if nullable {
        any = any.item(ObjectBuilder::new().schema_type(Type::Null));
    }
    Schema::AnyOf(any.description(Some(description)).build())
}
