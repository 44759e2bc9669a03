//! The JSON decoder refuses malformed JSON anywhere in a body, unknown fields
//! included, on every decoding path: the fast reader (plain bodies) and the
//! serde-json-core fallback (bodies with escapes, long escaped strings,
//! surrogate pairs). serde-json-core alone skips an unknown scalar up to the
//! next `,`, `]` or `}`, and so used to accept `"x":tru`.

use proptest::prelude::*;
use proxy_delegate_core::codec::{self, DecodeError, Message, json::MAX_DEPTH};
use proxy_delegate_core::model::{ProxyFeedback, ProxyRequest, ProxyResponse};

/// Malformed values for an unknown field.
const MALFORMED: &[&str] = &[
    "tru",
    "nul",
    "fals",
    "truex",
    "nulll",
    "1.2.3",
    "-",
    "- 1",
    "+1",
    "01",
    "00",
    "-01",
    ".5",
    "-.5",
    "1.",
    "1.e5",
    "1e",
    "1e+",
    "1e5e5",
    "0x10",
    "Infinity",
    "NaN",
    "[1,]",
    "[,1]",
    "[1 2]",
    "[1",
    "{\"a\":1,}",
    "{\"a\" 1}",
    "{1:2}",
    "{\"a\"}",
    "\"a\u{1}b\"",
    "\"a\tb\"",
    "\"a\nb\"",
    "\"\\q\"",
    "\"\\u12\"",
    "\"\\u12G4\"",
    "\"\\ud800\"",
    "\"\\udc00\"",
    "\"\\ud83dx\"",
    "\"\\ud83d\\u0041\"",
    "[tru]",
    "{\"a\":[01]}",
    "'a'",
    "",
];

/// Odd but well-formed values for an unknown field.
const WELL_FORMED: &[&str] = &[
    "true",
    "false",
    "null",
    "0",
    "-0",
    "-0.0",
    "1.5e-3",
    "1E+2",
    "12e0",
    "-1.25E-10",
    "1e400",
    "123456789012345678901234567890",
    "\"\"",
    "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"",
    "\"\\u00e9\\u002D\\uFFFF\"",
    "\"\\ud83d\\ude00\"",
    "\"é😀\"",
    "\"]}\\\",\"",
    "[]",
    "{}",
    "[[],[[]],{}]",
    "{\"a\":[1,{\"b\":null}],\"c\":\"]\",\"a\":2}",
    " [ 1 , \"x\" , { \"k\" : [ true ] } ] ",
    "\n\t\r 5",
];

/// The three messages' bodies with `value` as the unknown field
/// `tok_secret`; with `escaped`, a known field holds `\u002d`, so the body
/// cannot be read by the fast reader and takes the serde-json-core path.
fn bodies(value: &str, escaped: bool) -> [(&'static str, String); 3] {
    let dash = if escaped { r"\u002d" } else { "-" };
    [
        (
            "request",
            format!(
                r#"{{"exchange_id":"binance","connection_type":"websocket","region":"us{dash}east-1","client_id":"c","tok_secret":{value}}}"#
            ),
        ),
        (
            "response",
            format!(
                r#"{{"proxy_url":"socks5://proxy:1080","strategy":"least_connections","tok_secret":{value},"ttl_seconds":300,"metadata":{{"proxy_id":"proxy{dash}123","health_score":0.98}}}}"#
            ),
        ),
        (
            "feedback",
            format!(
                r#"{{"proxy_url":"socks5://proxy:1080","exchange_id":"binance","connection_type":"websocket","success":true,"latency_ms":45,"tok_secret":{value},"error_details":"time{dash}out","timestamp":"2024-09-23T10:30:00Z","client_id":"c"}}"#
            ),
        ),
    ]
}

fn decode_as(kind: &str, body: &[u8]) -> Result<(), DecodeError> {
    fn go<M: Message>(body: &[u8]) -> Result<(), DecodeError> {
        codec::json::decode::<M>(body).map(drop)
    }
    match kind {
        "request" => go::<ProxyRequest>(body),
        "response" => go::<ProxyResponse>(body),
        _ => go::<ProxyFeedback>(body),
    }
}

#[test]
fn malformed_unknown_values_are_refused_on_both_paths() {
    for value in MALFORMED {
        for escaped in [false, true] {
            for (kind, body) in bodies(value, escaped) {
                let result = decode_as(kind, body.as_bytes());
                assert!(
                    matches!(result, Err(DecodeError::Json(_))),
                    "{kind} (escaped: {escaped}) with {value:?}: {result:?}"
                );
                // serde_json agrees that the body is not JSON.
                assert!(serde_json::from_slice::<serde_json::Value>(body.as_bytes()).is_err());
            }
        }
    }
}

#[test]
fn odd_but_well_formed_unknown_values_are_accepted_on_both_paths() {
    for value in WELL_FORMED {
        for escaped in [false, true] {
            for (kind, body) in bodies(value, escaped) {
                let result = decode_as(kind, body.as_bytes());
                assert_eq!(result, Ok(()), "{kind} (escaped: {escaped}) with {value:?}");
            }
        }
    }
}

/// The errors name what is wrong, as serde-json-core names it.
#[test]
fn malformed_unknown_values_get_the_closest_parser_error() {
    use serde_json_core::de::Error as E;
    let cases: &[(&str, E)] = &[
        ("tru", E::ExpectedSomeIdent),
        ("nul", E::ExpectedSomeIdent),
        ("1.2.3", E::InvalidNumber),
        ("-", E::InvalidNumber),
        ("01", E::InvalidNumber),
        ("1.", E::InvalidNumber),
        ("+1", E::ExpectedSomeValue),
        (".5", E::ExpectedSomeValue),
        ("\"a\tb\"", E::InvalidUnicodeCodePoint),
        ("[1 2]", E::ExpectedListCommaOrEnd),
        ("truex", E::ExpectedObjectCommaOrEnd),
    ];
    for (value, want) in cases {
        for escaped in [false, true] {
            let [(_, body), ..] = bodies(value, escaped);
            let err = codec::json::decode::<ProxyRequest>(body.as_bytes()).unwrap_err();
            assert_eq!(err, DecodeError::Json(*want), "{value:?} {escaped}");
            assert!(err.to_string().starts_with("malformed JSON: "), "{err}");
        }
    }
}

/// Malformed numbers and raw control characters in known fields are refused
/// too, on both paths (serde-json-core read `007`, `+1.` and `- 3`).
#[test]
fn malformed_known_values_are_refused() {
    for (from, to) in [
        ("\"ttl_seconds\":300", "\"ttl_seconds\":007"),
        ("\"ttl_seconds\":300", "\"ttl_seconds\":- 3"),
        ("\"health_score\":0.98", "\"health_score\":+1."),
        ("\"health_score\":0.98", "\"health_score\":.5e-0"),
        ("\"health_score\":0.98", "\"health_score\":1."),
        ("\"health_score\":0.98", "\"health_score\":0.9e"),
        (
            "\"strategy\":\"least_connections\"",
            "\"strategy\":\"least\tconnections\"",
        ),
    ] {
        for escaped in [false, true] {
            let [_, (_, body), _] = bodies("1", escaped);
            let body = body.replace(from, to);
            let result = codec::json::decode::<ProxyResponse>(body.as_bytes());
            assert!(
                matches!(result, Err(DecodeError::Json(_))),
                "{body}: {result:?}"
            );
        }
    }
}

/// A malformed body with an invalid field is reported as malformed.
#[test]
fn malformed_json_wins_over_an_invalid_field() {
    for escaped in [false, true] {
        let [_, (_, body), _] = bodies("tru", escaped);
        let body = body.replace("least_connections", "least connections");
        let err = codec::json::decode::<ProxyResponse>(body.as_bytes()).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Json(serde_json_core::de::Error::ExpectedSomeIdent)
        );
        // Well-formed, the same body is refused for its field.
        let body = body.replace("tru", "true");
        let err = codec::json::decode::<ProxyResponse>(body.as_bytes()).unwrap_err();
        assert!(
            matches!(err, DecodeError::Invalid(ref e) if e.field == "strategy"),
            "{err}"
        );
    }
}

/// Long escaped strings and surrogate pairs take their own slower paths;
/// those refuse malformed unknown values too.
#[test]
fn slow_paths_refuse_malformed_unknown_values() {
    let long = "\\u0041".repeat(400);
    for extra in [
        format!(r#""long":"{long}""#),
        r#""emoji":"\ud83d\ude00""#.to_owned(),
    ] {
        for value in ["tru", "01", "\"a\tb\"", "1.", "-"] {
            for (kind, body) in bodies(value, true) {
                let body = body.replacen("{", &format!("{{{extra},"), 1);
                let result = decode_as(kind, body.as_bytes());
                assert!(
                    matches!(result, Err(DecodeError::Json(_))),
                    "{kind} {value}: {result:?}"
                );
                let fixed = body.replace(&format!("\"tok_secret\":{value}"), "\"tok_secret\":true");
                assert_eq!(decode_as(kind, fixed.as_bytes()), Ok(()), "{kind} {fixed}");
            }
        }
    }
}

/// The depth limit is unchanged: `MAX_DEPTH` levels are read, one more is
/// `TooDeep`, on both paths, well-formed or not.
#[test]
fn depth_limit_is_unchanged() {
    // The body itself is one level deep.
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1));
    let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    let deep_malformed = format!("{}tru{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    for escaped in [false, true] {
        for (kind, body) in bodies(&ok, escaped) {
            assert_eq!(decode_as(kind, body.as_bytes()), Ok(()), "{kind} {body}");
        }
        for value in [&deep, &deep_malformed] {
            for (kind, body) in bodies(value, escaped) {
                assert_eq!(
                    decode_as(kind, body.as_bytes()),
                    Err(DecodeError::TooDeep { max: MAX_DEPTH }),
                    "{kind} {body}"
                );
            }
        }
    }
}

/// JSON-ish text: the bytes JSON is made of, and a few it must refuse. No
/// letter of a known field name can be made (so no known key is repeated).
fn json_ish() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop::sample::select(
        &b"[]{}\",: \t\n0123456789.eE+-truefalsnx\\/u0aAdD8\x01\x7f\xc3\xa9"[..],
    );
    prop::collection::vec(byte, 0..24)
}

/// A well-formed JSON value (short keys, so never a known field's name),
/// often with one byte inserted, replaced or removed.
fn mutated_json() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(|x| serde_json::to_string(&x).unwrap_or_default()),
        prop::sample::select(&["-0", "1E+2", "0.5e-3", "-1.0", "10e1"][..]).prop_map(str::to_owned),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        Just(r#""\ud83d\ude00\u00e9\n\/""#.to_owned()),
    ];
    let value = leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-z]{0,3}", inner), 0..4).prop_map(|v| {
                let entries: Vec<String> = v.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
                format!("{{{}}}", entries.join(" ,"))
            }),
        ]
    });
    let byte = prop::sample::select(&b"[]{}\",: \t0123456789.eE+-tfnu\\\x01\xc3"[..]);
    (value, any::<prop::sample::Index>(), byte, 0..4u8).prop_map(|(value, at, byte, op)| {
        let mut bytes = value.into_bytes();
        let i = at.index(bytes.len() + 1);
        match op {
            0 => bytes.insert(i, byte),
            1 if i < bytes.len() => bytes[i] = byte,
            2 if i < bytes.len() => drop(bytes.remove(i)),
            _ => {}
        }
        bytes
    })
}

/// The three bodies with `value` (any bytes) as the unknown field.
fn raw_bodies(value: &[u8], escaped: bool) -> [(&'static str, Vec<u8>); 3] {
    bodies("\u{0}", escaped).map(|(kind, body)| {
        let (before, after) = body.split_once('\u{0}').expect("marker");
        let mut raw = before.as_bytes().to_vec();
        raw.extend_from_slice(value);
        raw.extend_from_slice(after.as_bytes());
        (kind, raw)
    })
}

/// Nesting deeper than `MAX_DEPTH` is refused by design; serde_json reads
/// it. Numbers out of `f64`'s range are refused by serde_json; the grammar
/// allows them.
fn comparable(body: &[u8], core: &Result<(), DecodeError>) -> bool {
    if matches!(core, Err(DecodeError::TooDeep { .. })) {
        return false;
    }
    !matches!(serde_json::from_slice::<serde_json::Value>(body),
        Err(e) if e.to_string().starts_with("number out of range"))
}

/// The core accepts the bodies with `value` as an unknown field's value
/// exactly when serde_json reads them, on both paths; when it refuses, it
/// is with a JSON error.
fn agrees_with_serde_json(value: &[u8], escaped: bool) -> Result<(), TestCaseError> {
    for (kind, body) in raw_bodies(value, escaped) {
        let core = decode_as(kind, &body);
        if !comparable(&body, &core) {
            continue;
        }
        let reference = serde_json::from_slice::<serde_json::Value>(&body);
        prop_assert_eq!(
            core.is_ok(),
            reference.is_ok(),
            "{} {:?}: core {:?}, serde_json {:?}",
            kind,
            String::from_utf8_lossy(&body),
            core,
            reference.map(drop).map_err(|e| e.to_string())
        );
        if let Err(e) = core {
            prop_assert!(matches!(e, DecodeError::Json(_)), "{:?}", e);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Arbitrary JSON-ish bytes as an unknown field's value.
    #[test]
    fn json_ish_values_are_accepted_exactly_when_serde_json_accepts(
        value in json_ish(),
        escaped: bool,
    ) {
        agrees_with_serde_json(&value, escaped)?;
    }

    /// Well-formed values, and the same with one byte changed.
    #[test]
    fn mutated_json_values_are_accepted_exactly_when_serde_json_accepts(
        value in mutated_json(),
        escaped: bool,
    ) {
        agrees_with_serde_json(&value, escaped)?;
    }
}
