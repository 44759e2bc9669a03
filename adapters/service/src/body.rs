//! Reading request bodies: the 64 KiB limit, gzip, the two wire formats,
//! and the mapping of every decoding failure to its status.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use proxy_delegate_core::codec::{self, DecodeError, Message};

use crate::error::ApiError;

/// Largest request body accepted, before and after gzip decompression.
pub const MAX_BODY: usize = 64 * 1024;

/// The JSON media type.
pub const JSON: &str = "application/json";
/// The postcard media type.
pub const POSTCARD: &str = "application/x-postcard";

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

    /// The answer's format: postcard when `Accept` names it, JSON when it
    /// names JSON, else the request's own format.
    pub(crate) fn of_answer(headers: &HeaderMap, request: Wire) -> Self {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains(POSTCARD) {
            Wire::Postcard
        } else if accept.contains(JSON) {
            Wire::Json
        } else {
            request
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
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase())
    {
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
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(MAX_BODY + 1));
    flate2::read::GzDecoder::new(&raw[..])
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::malformed(format!("gzip body does not inflate: {e}")))?;
    if out.len() > MAX_BODY {
        return Err(too_large());
    }
    Ok(Bytes::from(out))
}

/// The status of a decoding failure: 413 too large, 422 an invalid field,
/// 400 anything not well-formed. `at` prefixes the message (`[3]` for a
/// batch element).
pub(crate) fn decode_error(e: &DecodeError, at: &str) -> ApiError {
    let message = format!("{at}{e}");
    match e {
        DecodeError::TooLarge { .. } => ApiError::too_large(message),
        DecodeError::Invalid(_) => ApiError::invalid(message),
        _ => ApiError::malformed(message),
    }
}

/// Decodes exactly one message.
pub(crate) fn decode_one<M: Message>(wire: Wire, body: &[u8]) -> Result<M, ApiError> {
    let decoded = match wire {
        Wire::Json => codec::json::decode(body),
        Wire::Postcard => codec::postcard::decode(body),
    };
    decoded.map_err(|e| decode_error(&e, ""))
}

/// Decodes one message or a batch: a JSON object or array of objects; in
/// postcard, one or more concatenated messages. Every message is validated
/// before any is returned, so a batch is taken whole or not at all.
pub(crate) fn decode_batch<M: Message>(wire: Wire, body: &[u8]) -> Result<Vec<M>, ApiError> {
    match wire {
        Wire::Json => {
            let start = body.iter().position(|b| !b.is_ascii_whitespace());
            if start.and_then(|i| body.get(i)) != Some(&b'[') {
                return decode_one(wire, body).map(|m| vec![m]);
            }
            let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body)
                .map_err(|e| ApiError::malformed(format!("malformed JSON batch: {e}")))?;
            if items.is_empty() {
                return Err(ApiError::invalid(
                    "empty batch: send one event or a non-empty array",
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, raw)| {
                    codec::json::decode(raw.get().as_bytes())
                        .map_err(|e| decode_error(&e, &format!("[{i}] ")))
                })
                .collect()
        }
        Wire::Postcard => {
            let mut out = Vec::new();
            let mut rest = body;
            if rest.is_empty() {
                return Err(ApiError::malformed("empty postcard body"));
            }
            while !rest.is_empty() {
                let (m, tail) = codec::postcard::take(rest)
                    .map_err(|e| decode_error(&e, &format!("[{}] ", out.len())))?;
                out.push(m);
                rest = tail;
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy_delegate_core::model::ProxyFeedback;

    const FEEDBACK: &str = r#"{"proxy_url":"socks5://user:pass@proxy-server:1080","exchange_id":"binance","connection_type":"websocket","success":true,"latency_ms":45,"error_details":null,"timestamp":"2024-09-23T10:30:00Z","client_id":"cryptofeed-instance-123"}"#;

    #[test]
    fn json_one_or_batch() {
        let one: Vec<ProxyFeedback> = decode_batch(Wire::Json, FEEDBACK.as_bytes()).unwrap();
        assert_eq!(one.len(), 1);
        let batch = format!(" [{FEEDBACK},{FEEDBACK},{FEEDBACK}]");
        let three: Vec<ProxyFeedback> = decode_batch(Wire::Json, batch.as_bytes()).unwrap();
        assert_eq!(three.len(), 3);
        assert_eq!(three[2], one[0]);
        assert!(
            !three[0].proxy_url.as_ref().unwrap().has_credentials(),
            "credentials are dropped on receipt"
        );
    }

    #[test]
    fn postcard_concatenation_is_a_batch() {
        let one: ProxyFeedback = codec::json::decode(FEEDBACK.as_bytes()).unwrap();
        let mut buf = [0u8; 1024];
        let n = codec::postcard::encode(&one, &mut buf).unwrap();
        let mut body = buf[..n].to_vec();
        body.extend_from_slice(&buf[..n]);
        let two: Vec<ProxyFeedback> = decode_batch(Wire::Postcard, &body).unwrap();
        assert_eq!(two, vec![one.clone(), one]);
        body.push(0xff);
        let e = decode_batch::<ProxyFeedback>(Wire::Postcard, &body).unwrap_err();
        assert!(e.message.starts_with("[2] "), "{}", e.message);
    }

    #[test]
    fn batch_error_names_the_element_and_status() {
        let bad = FEEDBACK.replace("binance", "");
        let batch = format!("[{FEEDBACK},{bad}]");
        let e = decode_batch::<ProxyFeedback>(Wire::Json, batch.as_bytes()).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.message.starts_with("[1] exchange_id"), "{}", e.message);
        let e = decode_batch::<ProxyFeedback>(Wire::Json, b"[{").unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        let e = decode_batch::<ProxyFeedback>(Wire::Json, b"[]").unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
    }
}
