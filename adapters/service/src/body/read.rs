//! Reading the whole body: the 64 KiB limit, `Content-Encoding`, and gzip
//! (every member inflated, on a blocking thread).

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};

use super::MAX_BODY;
use crate::error::ApiError;

/// Reads the whole body: refuses more than [`MAX_BODY`] bytes (413), inflates
/// `Content-Encoding: gzip` (refusing more than [`MAX_BODY`] inflated bytes),
/// and refuses any other encoding (415).
pub(crate) async fn read(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::too_large(format!(
            "request body over {MAX_BODY} bytes; send smaller batches"
        ))
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > MAX_BODY as u64
    {
        return Err(too_large());
    }
    let gzip = match content_encoding(headers)? {
        None => false,
        Some(e) if e.is_empty() || e == "identity" => false,
        Some(e) if e == "gzip" || e == "x-gzip" => true,
        Some(e) => {
            return Err(ApiError::unsupported_media(format!(
                "Content-Encoding {:?} is not accepted; send gzip or no encoding",
                crate::error::excerpt(&e)
            )));
        }
    };
    let raw = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        // The only error besides the limit is a broken connection.
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            too_large()
        } else {
            ApiError::malformed(format!("could not read the request body: {e}"))
        }
    })?;
    if !gzip {
        return Ok(raw);
    }
    // Inflating is CPU work of up to MAX_GZIP_MEMBERS decoders and MAX_BODY
    // bytes: on a blocking thread, so that no runtime worker (and no other
    // request waiting for one) waits for it.
    let inflated = tokio::task::spawn_blocking(move || gunzip(&raw))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "inflating a request body failed");
            ApiError::internal()
        })?;
    let out = inflated.map_err(|e| match e {
        Gunzip::TooLarge => too_large(),
        Gunzip::Malformed(message) => ApiError::malformed(message),
    })?;
    Ok(Bytes::from(out))
}

/// Most gzip members a body may hold. Each member costs a decoder of its
/// own (tens of KiB set up and torn down), so a 64 KiB body of 3,000 empty
/// members cost as much as hundreds of ordinary requests; a client sends
/// one member, or a few concatenated.
pub(crate) const MAX_GZIP_MEMBERS: usize = 16;

/// The request's `Content-Encoding`, trimmed and lower-cased: `None` when
/// absent. Several header lines are one list (RFC 9110 §5.3), joined with
/// `, ` so that a list of codings is refused like `gzip, gzip` is. A value
/// that is not visible ASCII is refused (415), never taken for no encoding.
fn content_encoding(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut joined: Option<String> = None;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let Ok(text) = value.to_str() else {
            return Err(ApiError::unsupported_media(
                "Content-Encoding is not visible ASCII text; send gzip or no encoding",
            ));
        };
        let text = text.trim().to_ascii_lowercase();
        joined = Some(match joined {
            None => text,
            Some(before) if before.is_empty() => text,
            Some(before) if text.is_empty() => before,
            Some(before) => format!("{before}, {text}"),
        });
    }
    Ok(joined)
}

/// Why a gzip body was refused.
#[derive(Debug, PartialEq, Eq)]
enum Gunzip {
    /// More than [`MAX_BODY`] bytes inflated.
    TooLarge,
    /// Not gzip, a member cut short or corrupt, or trailing bytes that are
    /// not a gzip member; the message says which and where.
    Malformed(String),
}

/// Inflates every member of a gzip body (RFC 1952 §2.2: a gzip file is a
/// series of members, and `gzip -dc` writes them all, one after the other),
/// refusing more than [`MAX_BODY`] bytes inflated in total, and refusing
/// trailing bytes that are not a gzip member rather than ignoring them.
///
/// Each member is read by `bufread::GzDecoder` over the rest of the slice,
/// which consumes exactly the member's bytes, so the member count and the
/// offset of whatever follows are known for the message.
fn gunzip(raw: &[u8]) -> Result<Vec<u8>, Gunzip> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(MAX_BODY + 1));
    let mut rest = raw;
    let mut member = 0usize;
    #[cfg(test)]
    tests::inflated_on_this_thread();
    loop {
        member += 1;
        let offset = raw.len() - rest.len();
        if member > MAX_GZIP_MEMBERS {
            return Err(Gunzip::Malformed(format!(
                "gzip body has more than {MAX_GZIP_MEMBERS} members (member {member} starts at \
                 byte {offset}); send one member, or at most {MAX_GZIP_MEMBERS}"
            )));
        }
        let budget = (MAX_BODY + 1 - out.len()) as u64;
        let mut decoder = flate2::bufread::GzDecoder::new(rest);
        let read = (&mut decoder).take(budget).read_to_end(&mut out);
        if out.len() > MAX_BODY {
            return Err(Gunzip::TooLarge);
        }
        if let Err(e) = read {
            return Err(Gunzip::Malformed(if member == 1 {
                format!("gzip body does not inflate: {e}")
            } else if rest.len() >= 2 && rest[..2] == [0x1f, 0x8b] {
                format!(
                    "gzip body does not inflate: member {member} (at byte {offset}) is \
                     corrupt or cut short: {e}"
                )
            } else {
                format!(
                    "gzip body has {} bytes after its last member (from byte {offset}) \
                     that are not a gzip member; send only gzip members",
                    rest.len()
                )
            }));
        }
        rest = decoder.into_inner();
        if rest.is_empty() {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::super::test_support::FEEDBACK;
    use super::*;

    std::thread_local! {
        /// Whether this thread inflated a body.
        static INFLATED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Notes that this thread inflates a body.
    pub(super) fn inflated_on_this_thread() {
        INFLATED.with(|i| i.set(true));
    }

    /// The runtime's thread never inflates: a blocking thread does.
    #[tokio::test]
    async fn inflating_leaves_the_runtime_thread_free() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let body = Body::from(gz(FEEDBACK.as_bytes()));
        let out = read(&headers, body).await.unwrap();
        assert_eq!(&out[..], FEEDBACK.as_bytes());
        assert!(
            !INFLATED.with(|i| i.get()),
            "the body was inflated on the runtime's thread"
        );
        // (The check itself works.)
        gunzip(&gz(b"x")).unwrap();
        assert!(INFLATED.with(|i| i.get()));
    }

    #[test]
    fn gzip_members_are_capped() {
        let empty = gz(b"");
        let at_cap = empty.repeat(MAX_GZIP_MEMBERS);
        assert_eq!(gunzip(&at_cap).unwrap(), b"");
        let over = empty.repeat(3_000);
        let Err(Gunzip::Malformed(m)) = gunzip(&over) else {
            panic!("3,000 members are refused");
        };
        assert_eq!(
            m,
            format!(
                "gzip body has more than 16 members (member 17 starts at byte {}); send one \
                 member, or at most 16",
                16 * empty.len()
            )
        );
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gunzip_reads_every_member_and_refuses_the_rest() {
        let mut body = gz(b"one ");
        body.extend(gz(b""));
        body.extend(gz(b"two"));
        assert_eq!(gunzip(&body).unwrap(), b"one two");

        // Exactly the limit over two members is taken; one byte more is not.
        let mut body = gz(&vec![b' '; MAX_BODY - 10]);
        body.extend(gz(&[b' '; 10]));
        assert_eq!(gunzip(&body).unwrap().len(), MAX_BODY);
        body.extend(gz(b" "));
        assert_eq!(gunzip(&body), Err(Gunzip::TooLarge));

        let first = gz(b"one");
        for tail in [&b"\0"[..], b"\x1f", b"junk\n", b"\x1f\x8c rest"] {
            let mut body = first.clone();
            body.extend_from_slice(tail);
            let Err(Gunzip::Malformed(m)) = gunzip(&body) else {
                panic!("{tail:?} after a member is refused");
            };
            assert_eq!(
                m,
                format!(
                    "gzip body has {} bytes after its last member (from byte {}) that are not \
                     a gzip member; send only gzip members",
                    tail.len(),
                    first.len()
                )
            );
        }
        let mut body = first.clone();
        body.extend_from_slice(&first[..12]);
        let Err(Gunzip::Malformed(m)) = gunzip(&body) else {
            panic!("a member cut short is refused");
        };
        assert!(
            m.starts_with(&format!(
                "gzip body does not inflate: member 2 (at byte {})",
                first.len()
            )),
            "{m}"
        );
        let Err(Gunzip::Malformed(m)) = gunzip(b"not gzip") else {
            panic!("not gzip is refused");
        };
        assert!(m.starts_with("gzip body does not inflate: "), "{m}");
    }
}
