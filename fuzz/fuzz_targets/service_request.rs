//! The service's request path: a body and its headers through exactly the
//! code the handlers of `POST /api/v1/proxy/request` and
//! `POST /api/v1/proxy/feedback` run before they touch the pool
//! (`proxy_delegate_service::fuzzing::decode_request_body`: `Content-Type`,
//! `Accept`, the body limit, `Content-Encoding` with gzip and its member cap,
//! decoding, validation, and the rejection as the handler answers it).
//!
//! Input: byte 0 picks the route and how the body is built (as is, or the
//! published body filled from the input as `json_decode` does, one message
//! or a batch, JSON or postcard); byte 1 the `Content-Type`, byte 2 the
//! `Content-Encoding` (and whether the body is gzipped first, so that valid
//! gzip reaches the decoder), byte 3 the `Accept`; the rest is the body or
//! the template records (see `service_request_target` in `src/lib.rs`).
//!
//! Oracles: nothing panics; the same input gives the same outcome twice;
//! every rejection is a 4xx with `Content-Type: application/json` and the
//! body `{"error":{"code","message"}}`, with the code that belongs to the
//! status; a rejection never quotes the password of the feedback body's
//! `proxy_url`; accepted feedback never keeps credentials; an accepted
//! request's answer is JSON or postcard.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_delegate_fuzz::service_request_target;

fuzz_target!(|data: &[u8]| service_request_target(data));
