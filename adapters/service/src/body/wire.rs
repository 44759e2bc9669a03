//! The wire formats: which one a request is in (`Content-Type`), which one
//! its answer is in (`Accept` and its q-values), and the answer's encoding.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use proxy_delegate_core::codec::{self, Message};

use super::{JSON, POSTCARD};
use crate::error::ApiError;

/// A wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    Json,
    Postcard,
}

impl Wire {
    /// The request's format, from `Content-Type` (parameters such as
    /// `charset=utf-8` are ignored).
    pub(crate) fn of_request(headers: &HeaderMap) -> Result<Self, ApiError> {
        let Some(value) = headers.get(header::CONTENT_TYPE) else {
            return Err(ApiError::unsupported_media(format!(
                "Content-Type is missing; send {JSON} or {POSTCARD}"
            )));
        };
        let essence = value
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        match essence.as_str() {
            JSON => Ok(Wire::Json),
            POSTCARD => Ok(Wire::Postcard),
            _ => Err(ApiError::unsupported_media(format!(
                "Content-Type {:?} is not accepted; send {JSON} or {POSTCARD}",
                crate::error::excerpt(value.to_str().unwrap_or("(not text)"))
            ))),
        }
    }

    /// The answer's format, from `Accept` and its q-values (RFC 9110
    /// §12.5.1): of the two formats, the one `Accept` prefers (the higher
    /// q; at equal q, one named outright over one matched by `*/*` or
    /// `application/*`; then the request's own format). A format is refused
    /// when the range that names it most precisely has `q=0`. When `Accept`
    /// gives neither a q above 0 (it is absent, or names only other types),
    /// the request's format, unless refused, else the other one unless
    /// refused; both refused: 406.
    pub(crate) fn of_answer(headers: &HeaderMap, request: Wire) -> Result<Self, ApiError> {
        let mut accept = String::new();
        for value in headers.get_all(header::ACCEPT) {
            // A value that is not text says nothing usable: ignored.
            if let Ok(text) = value.to_str() {
                if !accept.is_empty() {
                    accept.push(',');
                }
                accept.push_str(text);
            }
        }
        let other = match request {
            Wire::Json => Wire::Postcard,
            Wire::Postcard => Wire::Json,
        };
        let (mine, theirs) = (
            preference(&accept, request.media()),
            preference(&accept, other.media()),
        );
        let acceptable = |p: Option<Preference>| p.is_some_and(|p| p.q > 0);
        if acceptable(mine) || acceptable(theirs) {
            let key = |p: Option<Preference>| p.filter(|p| p.q > 0).map(|p| (p.q, p.specificity));
            return Ok(if key(theirs) > key(mine) {
                other
            } else {
                request
            });
        }
        // No q above 0: a format Accept does not name is still fine.
        match (mine, theirs) {
            (None, _) => Ok(request),
            (Some(_), None) => Ok(other),
            (Some(_), Some(_)) => Err(ApiError::not_acceptable(format!(
                "Accept refuses both {JSON} and {POSTCARD} (q=0); accept one of them"
            ))),
        }
    }

    pub(crate) fn media(self) -> &'static str {
        match self {
            Wire::Json => JSON,
            Wire::Postcard => POSTCARD,
        }
    }

    /// Encodes `msg` as an answer with status 200 in this format. JSON goes
    /// through serde_json (the std side may allocate; it is the faster
    /// writer), postcard through the core's encoder.
    pub(crate) fn answer<M: Message>(self, msg: &M) -> Response {
        let (encoded, media) = match self {
            Wire::Json => (serde_json::to_vec(msg).map_err(|e| e.to_string()), JSON),
            Wire::Postcard => (encode_postcard(msg).map_err(|e| e.to_string()), POSTCARD),
        };
        match encoded {
            Ok(bytes) => (
                [(header::CONTENT_TYPE, HeaderValue::from_static(media))],
                Bytes::from(bytes),
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "encoding an answer failed");
                ApiError::internal().into_response()
            }
        }
    }
}

/// What `Accept` says of one media type: the q-value, in thousandths, of the
/// range that matches it most precisely, and how precisely (3: named, 2:
/// `application/*`, 1: `*/*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Preference {
    q: u16,
    specificity: u8,
}

/// The preference `accept` (a comma-separated list of media ranges) gives
/// `media`; `None` when no range matches it. A range with a q-value that is
/// not one (RFC 9110 §12.4.2: `0` to `1` with at most three decimals) is
/// ignored; other parameters are.
fn preference(accept: &str, media: &str) -> Option<Preference> {
    let mut best: Option<Preference> = None;
    for element in accept.split(',') {
        let mut parts = element.split(';');
        let range = parts.next().unwrap_or("").trim();
        let specificity = if range.eq_ignore_ascii_case(media) {
            3
        } else if range.eq_ignore_ascii_case("application/*") {
            2
        } else if range == "*/*" {
            1
        } else {
            continue;
        };
        let mut q = Some(1000);
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("q") {
                q = qvalue(value.trim());
            }
        }
        let Some(q) = q else {
            continue;
        };
        let this = Preference { q, specificity };
        best = match best {
            Some(b) if b.specificity > specificity => Some(b),
            Some(b) if b.specificity == specificity && b.q >= q => Some(b),
            _ => Some(this),
        };
    }
    best
}

/// A q-value in thousandths: `0`, `0.5`, `1`, `1.000`; `None` otherwise.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// postcard bytes of `msg`, in a buffer that grows until it fits.
fn encode_postcard<M: Message>(msg: &M) -> Result<Vec<u8>, codec::EncodeError> {
    let mut buf = vec![0u8; 1024];
    loop {
        match codec::postcard::encode(msg, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(codec::EncodeError::BufferTooSmall { .. }) if buf.len() < codec::MAX_INPUT_LEN => {
                buf.resize(buf.len() * 4, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(accept: &[&'static str], request: Wire) -> Result<Wire, u16> {
        let mut headers = HeaderMap::new();
        for a in accept {
            headers.append(header::ACCEPT, HeaderValue::from_static(a));
        }
        Wire::of_answer(&headers, request).map_err(|e| e.status().as_u16())
    }

    #[test]
    fn accept_q_values_are_honoured() {
        use Wire::{Json as J, Postcard as P};
        for (accept, request, expected) in [
            (&[][..], J, Ok(J)),
            (&[][..], P, Ok(P)),
            (&["application/x-postcard"], J, Ok(P)),
            (&["application/json"], P, Ok(J)),
            // q=0 refuses: the other format, even when not named.
            (&["application/x-postcard;q=0"], P, Ok(J)),
            (&["application/x-postcard; q=0, application/json"], P, Ok(J)),
            (&["application/json;q=0"], J, Ok(P)),
            (&["application/x-postcard;q=0.0, */*"], P, Ok(J)),
            (&["*/*;q=0.1, application/x-postcard;q=0"], P, Ok(J)),
            // The higher q wins; at equal q, named over wildcard, then the request's.
            (
                &["application/json;q=0.5, application/x-postcard;q=0.9"],
                J,
                Ok(P),
            ),
            (
                &["application/json;q=1, application/x-postcard;q=0.999"],
                P,
                Ok(J),
            ),
            (&["application/x-postcard, */*"], J, Ok(P)),
            (&["application/*, application/json"], P, Ok(J)),
            (&["application/x-postcard, application/json"], J, Ok(J)),
            (&["application/x-postcard, application/json"], P, Ok(P)),
            (&["APPLICATION/X-POSTCARD;Q=1.000"], J, Ok(P)),
            // Several header lines are one list.
            (&["text/html", "application/x-postcard;q=0.3"], J, Ok(P)),
            // Other types only: no preference, the request's format.
            (&["text/html"], P, Ok(P)),
            // A q that is not one: the range is ignored.
            (&["application/x-postcard;q=2"], J, Ok(J)),
            (&["application/x-postcard;q=0.1234"], J, Ok(J)),
            // Both refused: 406.
            (
                &["application/x-postcard;q=0, application/json;q=0"],
                P,
                Err(406),
            ),
            (&["*/*;q=0"], J, Err(406)),
            (&["text/html, application/*;q=0"], J, Err(406)),
        ] {
            assert_eq!(
                answer(accept, request),
                expected,
                "Accept {accept:?}, {request:?}"
            );
        }
    }
}
