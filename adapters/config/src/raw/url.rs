//! [`Url`]: a proxy URL read from configuration, with the text it was
//! written as (password redacted) when that differs from how it prints.

use proxy_delegate_core::model::ProxyUrl;
use serde::{Deserialize, Deserializer};

use super::de::scalar;
use super::leaf::reason;
use super::references::expand;

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

/// A URL given where an object is expected. An error names the implied
/// field as `@<sub path>: <reason>`; [`crate::split_sub_path`] moves it into
/// the path.
pub(super) fn url_from_str(s: &str, sub: &str) -> Result<Url, String> {
    Url::parse(s).map_err(|r| format!("@{sub}: {r}"))
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
