//! Regression tests for inputs found by (or written while building) the fuzz
//! targets in `fuzz/`. Each test names the failure it guards against.

use proxy_delegate_core::codec::{self, DecodeError, MAX_INPUT_LEN, json::MAX_DEPTH};
use proxy_delegate_core::model::{ProxyFeedback, ProxyRequest, ProxyResponse};

/// A valid response with `extra` spliced in as one more (unknown) field.
fn response_with(extra: &str) -> String {
    format!(
        r#"{{"proxy_url":"socks5://user:pass@proxy-server:1080","strategy":"least_connections","ttl_seconds":300,{extra},"metadata":{{"proxy_id":"proxy-123"}}}}"#
    )
}

/// `depth` nested arrays around `inner`.
fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}

fn too_deep<M: codec::Message + core::fmt::Debug>(body: &[u8]) {
    let err = codec::json::decode::<M>(body).expect_err("too deep");
    assert_eq!(err, DecodeError::TooDeep { max: MAX_DEPTH }, "{err}");
}

/// Found while fuzzing `json_decode`: serde-json-core skips an unknown field's
/// value recursively, so 16 KiB of `[` (or `{"a":`) overflowed the test
/// thread's 2 MiB stack and aborted the process. It is now a typed error.
#[test]
fn deeply_nested_unknown_field_is_an_error_not_a_stack_overflow() {
    for open in ["[", "{\"a\":"] {
        let mut body = br#"{"unknown":"#.to_vec();
        while body.len() + open.len() <= MAX_INPUT_LEN {
            body.extend_from_slice(open.as_bytes());
        }
        too_deep::<ProxyResponse>(&body);
        too_deep::<ProxyRequest>(&body);
        too_deep::<ProxyFeedback>(&body);
    }
}

#[test]
fn unknown_fields_may_nest_up_to_the_limit() {
    // The message's own object is one level; the unknown field gets the rest.
    let ok = response_with(&format!(r#""extra":{}"#, nested(MAX_DEPTH - 1, "1")));
    let response: ProxyResponse = codec::json::decode(ok.as_bytes()).expect("within the limit");
    assert_eq!(response.ttl_seconds.get(), 300);
    assert_eq!(response.metadata.proxy_id.unwrap().as_str(), "proxy-123");

    let deep = response_with(&format!(r#""extra":{}"#, nested(MAX_DEPTH, "1")));
    too_deep::<ProxyResponse>(deep.as_bytes());
    let err = codec::json::decode::<ProxyResponse>(deep.as_bytes()).unwrap_err();
    assert!(
        err.to_string().starts_with("JSON nested more than 16"),
        "{err}"
    );
}

#[test]
fn brackets_inside_strings_do_not_count() {
    let brackets = "[{".repeat(4 * MAX_DEPTH);
    let body = response_with(&format!(r#""note":"{brackets}\"[[[[""#));
    let response: ProxyResponse = codec::json::decode(body.as_bytes()).expect("brackets in text");
    assert_eq!(response.strategy.as_str(), "least_connections");

    let feedback = format!(
        r#"{{"exchange_id":"binance","connection_type":"ws","success":false,"error_details":"{brackets}","timestamp":"2024-09-23T10:30:00Z","client_id":"c1"}}"#
    );
    let decoded: ProxyFeedback = codec::json::decode(feedback.as_bytes()).expect("decodes");
    assert_eq!(decoded.error_details.unwrap().as_str(), brackets);
}

/// serde-json-core skips an unknown scalar up to the next `,`, `]` or `}`,
/// quotes included. A depth scan that took the quote in `x"` for the start of
/// a string would stop counting and let the nesting that follows through.
#[test]
fn a_quote_inside_a_skipped_scalar_does_not_hide_nesting() {
    for scalar in [r#"x""#, r#"x:""#, r#":""#] {
        let body = response_with(&format!(
            r#""extra":[{scalar},{}"#,
            nested(4 * MAX_DEPTH, "1")
        ));
        let result = codec::json::decode::<ProxyResponse>(body.as_bytes());
        assert!(
            matches!(result, Err(DecodeError::TooDeep { .. })),
            "{scalar}: {result:?}"
        );
    }
}
