//! Property tests for the data model: every message round-trips through both
//! wire formats, every valid proxy URL round-trips through its string form,
//! every kind of invalid URL is rejected with the right reason, and no
//! password ever reaches Display, Debug or an error message.

use std::fmt::Debug;
use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use proxy_delegate_core::codec::{self, DecodeError, Message};
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ErrorCategory, ErrorDetails, ExchangeId, FallbackPolicy, FeedType,
    FeedbackEvent, HealthScore, MAX_CLIENT_ID_LEN, MAX_ERROR_DETAILS_LEN, MAX_EXCHANGE_ID_LEN,
    MAX_FEED_TYPES, MAX_HOST_LEN, MAX_PROXY_ID_LEN, MAX_REGION_LEN, MAX_STRATEGY_LEN, MAX_SYMBOLS,
    MAX_TOPIC_LEN, MAX_URL_LEN, MAX_USERINFO_LEN, ProxyFeedback, ProxyId, ProxyRequest,
    ProxyResponse, ProxyUrl, Region, RequestMetadata, ResponseMetadata, Scheme,
    Strategy as StrategyName, Symbol, Timestamp, TtlSeconds,
};
use proxy_delegate_core::{Reason, ValidationError};

/// First millisecond of year 0000 and last millisecond of year 9999.
const MIN_MS: i64 = -62_167_219_200_000;
const MAX_MS: i64 = 253_402_300_799_999;

/// Characters a user name or password may hold without escaping.
const USERINFO_CHARS: &str =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=";
const IDENT_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.";

// ------------------------------------------------------------------ strategies

/// Text of 1..=`max` bytes drawn from `chars` (all ASCII).
fn ascii_text(chars: &'static str, max: usize) -> impl Strategy<Value = String> {
    let pool: Vec<char> = chars.chars().collect();
    prop::collection::vec(prop::sample::select(pool), 1..=max).prop_map(|v| v.into_iter().collect())
}

/// Identifier text (ASCII letters, digits, `_`, `-`, `.`) of 1..=`max` bytes;
/// one case in four is exactly `max` bytes long.
fn identifier(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => ascii_text(IDENT_CHARS, max),
        1 => ascii_text(IDENT_CHARS, max).prop_map(move |s| s.repeat(max).chars().take(max).collect()),
    ]
}

/// Printable text (no control characters, any Unicode otherwise, JSON
/// specials `"` and `\` included) of 1..=`max_bytes` bytes.
fn printable(max_bytes: usize) -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => any::<char>().prop_filter("printable", |c| !c.is_control()),
        1 => prop::sample::select(vec!['"', '\\', '/', 'é', '€', '😀', ' ']),
        2 => prop::char::range('a', 'z'),
    ];
    prop::collection::vec(ch, 1..=max_bytes).prop_map(move |chars| {
        let mut s = String::new();
        for c in chars {
            if s.len() + c.len_utf8() > max_bytes {
                break;
            }
            s.push(c);
        }
        s
    })
}

/// Any text at all (control characters included), up to `max_chars` chars.
fn free_text(max_chars: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..=max_chars).prop_map(|v| v.into_iter().collect())
}

fn exchange_id() -> impl Strategy<Value = ExchangeId> {
    identifier(MAX_EXCHANGE_ID_LEN).prop_map(|s| ExchangeId::new(&s).unwrap())
}
fn region() -> impl Strategy<Value = Region> {
    identifier(MAX_REGION_LEN).prop_map(|s| Region::new(&s).unwrap())
}
fn strategy_name() -> impl Strategy<Value = StrategyName> {
    identifier(MAX_STRATEGY_LEN).prop_map(|s| StrategyName::new(&s).unwrap())
}
fn client_id() -> impl Strategy<Value = ClientId> {
    printable(MAX_CLIENT_ID_LEN).prop_map(|s| ClientId::new(&s).unwrap())
}
fn proxy_id() -> impl Strategy<Value = ProxyId> {
    printable(MAX_PROXY_ID_LEN).prop_map(|s| ProxyId::new(&s).unwrap())
}
fn feed_type() -> impl Strategy<Value = FeedType> {
    printable(MAX_TOPIC_LEN).prop_map(|s| FeedType::new(&s).unwrap())
}
fn symbol() -> impl Strategy<Value = Symbol> {
    printable(MAX_TOPIC_LEN).prop_map(|s| Symbol::new(&s).unwrap())
}
fn connection_type() -> impl Strategy<Value = ConnectionType> {
    prop::sample::select(ConnectionType::ALL)
}
fn fallback_policy() -> impl Strategy<Value = FallbackPolicy> {
    prop::sample::select(FallbackPolicy::ALL)
}
fn feedback_event() -> impl Strategy<Value = FeedbackEvent> {
    prop::sample::select(FeedbackEvent::ALL)
}
fn error_category() -> impl Strategy<Value = ErrorCategory> {
    prop::sample::select(ErrorCategory::ALL)
}
fn ttl() -> impl Strategy<Value = TtlSeconds> {
    prop_oneof![
        Just(TtlSeconds::MIN),
        Just(TtlSeconds::MAX),
        TtlSeconds::MIN..=TtlSeconds::MAX
    ]
    .prop_map(|s| TtlSeconds::new(u64::from(s)).unwrap())
}
fn health_score() -> impl Strategy<Value = HealthScore> {
    prop_oneof![
        Just(0.0f32),
        Just(-0.0f32),
        Just(1.0f32),
        Just(f32::MIN_POSITIVE),
        Just(1e-45f32), // the smallest subnormal
        0.0f32..=1.0f32,
        any::<u32>().prop_map(|b| f32::from_bits(b & 0x3f7f_ffff)), // any bits below 1.0
    ]
    .prop_map(|f| HealthScore::new(f).unwrap())
}
fn timestamp() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        Just(MIN_MS),
        Just(MAX_MS),
        MIN_MS..=MAX_MS,
        (MIN_MS / 1000..=MAX_MS / 1000).prop_map(|s| s * 1000),
    ]
    .prop_map(|ms| Timestamp::from_unix_millis(ms).unwrap())
}
fn error_details() -> impl Strategy<Value = ErrorDetails> {
    // Up to 600 chars, so that some need cutting to MAX_ERROR_DETAILS_LEN bytes.
    prop_oneof![free_text(40), free_text(600)].prop_map(|s| ErrorDetails::new(&s))
}

/// One user name or password as written in a URL: unreserved characters,
/// sub-delimiters and percent escapes, 1..=`max` bytes.
fn userinfo(max: usize) -> impl Strategy<Value = String> {
    let pool: Vec<char> = USERINFO_CHARS.chars().collect();
    let token = prop_oneof![
        4 => prop::sample::select(pool).prop_map(String::from),
        1 => "%[0-9A-Fa-f]{2}",
    ];
    prop::collection::vec(token, 1..=48).prop_map(move |tokens| {
        let mut s = String::new();
        for t in tokens {
            if s.len() + t.len() > max {
                break;
            }
            s.push_str(&t);
        }
        s
    })
}

/// A DNS-style host name: labels of letters, digits, `-`, `_` joined by dots,
/// sometimes with a trailing dot, sometimes as long as allowed.
fn dns_host() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (prop::collection::vec("[A-Za-z0-9_-]{1,20}", 1..=6), any::<bool>())
            .prop_map(|(labels, dot)| {
                let mut h = labels.join(".");
                if dot {
                    h.push('.');
                }
                h
            }),
        1 => "[a-z0-9]{1,63}\\.[a-z0-9]{1,63}\\.[a-z0-9]{1,63}\\.[a-z0-9]{1,61}",
        1 => Just("a".repeat(MAX_HOST_LEN)),
    ]
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => dns_host(),
        1 => any::<Ipv4Addr>().prop_map(|a| a.to_string()),
        1 => any::<Ipv6Addr>().prop_map(|a| format!("[{a}]")),
        1 => Just("localhost".to_owned()),
    ]
}

/// The parts of a valid proxy URL, as a user might type it.
#[derive(Debug, Clone)]
struct UrlParts {
    scheme: Scheme,
    /// The scheme as typed (any case).
    scheme_text: String,
    user: Option<String>,
    /// `Some("")` writes `user:@host`, which means "no password".
    pass: Option<String>,
    host: String,
    port: u16,
    trailing_slash: bool,
}

impl UrlParts {
    fn authority_prefix(&self) -> String {
        match (&self.user, &self.pass) {
            (Some(u), Some(p)) => format!("{u}:{p}@"),
            (Some(u), None) => format!("{u}@"),
            _ => String::new(),
        }
    }

    fn text(&self) -> String {
        format!(
            "{}://{}{}:{}{}",
            self.scheme_text,
            self.authority_prefix(),
            self.host,
            self.port,
            if self.trailing_slash { "/" } else { "" }
        )
    }

    /// The text with the scheme's canonical (lower-case) spelling and no trailing slash.
    fn canonical(&self) -> String {
        let pass = self.pass.as_deref().filter(|p| !p.is_empty());
        let userinfo = match (&self.user, pass) {
            (Some(u), Some(p)) => format!("{u}:{p}@"),
            (Some(u), None) => format!("{u}@"),
            _ => String::new(),
        };
        format!(
            "{}://{userinfo}{}:{}",
            self.scheme.as_str(),
            self.host,
            self.port
        )
    }
}

fn scheme_text() -> impl Strategy<Value = (Scheme, String)> {
    (
        prop::sample::select(Scheme::ALL.to_vec()),
        prop::collection::vec(any::<bool>(), 7),
    )
        .prop_map(|(scheme, upper)| {
            let text = scheme
                .as_str()
                .chars()
                .zip(upper)
                .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            (scheme, text)
        })
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![Just(1u16), Just(u16::MAX), Just(1080u16), 1..=u16::MAX]
}

fn url_parts_with(credentials: bool) -> impl Strategy<Value = UrlParts> {
    let creds = if credentials {
        prop::option::of((
            userinfo(MAX_USERINFO_LEN),
            prop::option::of(prop_oneof![
                6 => userinfo(MAX_USERINFO_LEN),
                1 => Just(String::new()),
            ]),
        ))
        .boxed()
    } else {
        Just(None).boxed()
    };
    (scheme_text(), creds, host(), port(), any::<bool>())
        .prop_map(
            |((scheme, scheme_text), creds, host, port, trailing_slash)| {
                let (user, pass) = match creds {
                    Some((u, p)) => (Some(u), p),
                    None => (None, None),
                };
                UrlParts {
                    scheme,
                    scheme_text,
                    user,
                    pass,
                    host,
                    port,
                    trailing_slash,
                }
            },
        )
        .prop_filter("fits in MAX_URL_LEN", |p| p.text().len() <= MAX_URL_LEN)
}

fn url_parts() -> impl Strategy<Value = UrlParts> {
    url_parts_with(true)
}

fn proxy_url() -> impl Strategy<Value = ProxyUrl> {
    url_parts().prop_map(|p| ProxyUrl::parse(&p.text()).unwrap())
}

fn proxy_url_without_credentials() -> impl Strategy<Value = ProxyUrl> {
    url_parts_with(false).prop_map(|p| ProxyUrl::parse(&p.text()).unwrap())
}

fn request() -> impl Strategy<Value = ProxyRequest> {
    (
        exchange_id(),
        connection_type(),
        prop::option::of(region()),
        client_id(),
        prop::collection::vec(feed_type(), 0..=MAX_FEED_TYPES),
        prop::collection::vec(symbol(), 0..=MAX_SYMBOLS),
    )
        .prop_map(
            |(exchange_id, connection_type, region, client_id, feeds, symbols)| ProxyRequest {
                exchange_id,
                connection_type,
                region,
                client_id,
                metadata: RequestMetadata {
                    feed_types: feeds.into_iter().collect(),
                    symbols: symbols.into_iter().collect(),
                },
            },
        )
}

fn response() -> impl Strategy<Value = ProxyResponse> {
    (
        prop::option::of(proxy_url()),
        strategy_name(),
        ttl(),
        fallback_policy(),
        prop::option::of(proxy_id()),
        prop::option::of(region()),
        prop::option::of(health_score()),
    )
        .prop_map(
            |(
                proxy_url,
                strategy,
                ttl_seconds,
                fallback_policy,
                proxy_id,
                region,
                health_score,
            )| {
                ProxyResponse {
                    proxy_url,
                    strategy,
                    ttl_seconds,
                    fallback_policy,
                    metadata: ResponseMetadata {
                        proxy_id,
                        region,
                        health_score,
                    },
                }
            },
        )
}

fn feedback() -> impl Strategy<Value = ProxyFeedback> {
    (
        (
            prop::option::of(proxy_id()),
            prop::option::of(proxy_url_without_credentials()),
            exchange_id(),
            connection_type(),
            feedback_event(),
            any::<bool>(),
        ),
        (
            prop::option::of(any::<u32>()),
            prop::option::of(error_category()),
            prop::option::of(error_details()),
            timestamp(),
            client_id(),
        ),
    )
        .prop_map(
            |(
                (proxy_id, proxy_url, exchange_id, connection_type, event, success),
                (latency_ms, error_category, error_details, timestamp, client_id),
            )| ProxyFeedback {
                proxy_id,
                proxy_url,
                exchange_id,
                connection_type,
                event,
                success,
                latency_ms,
                error_category,
                error_details,
                timestamp,
                client_id,
            },
        )
}

// ------------------------------------------------------------------ helpers

fn json_round_trip<M: Message + PartialEq + Debug>(msg: &M) -> Result<(), TestCaseError> {
    let mut buf = [0u8; codec::MAX_INPUT_LEN];
    let n = codec::json::encode(msg, &mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: M = codec::json::decode(&buf[..n]).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, msg);
    // The encoding is valid JSON to a strict parser too.
    let _: serde_json::Value =
        serde_json::from_slice(&buf[..n]).map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(())
}

fn postcard_round_trip<M: Message + PartialEq + Debug>(msg: &M) -> Result<(), TestCaseError> {
    let mut buf = [0u8; codec::MAX_INPUT_LEN];
    let n =
        codec::postcard::encode(msg, &mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: M =
        codec::postcard::decode(&buf[..n]).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, msg);
    Ok(())
}

/// Through serde_json with the model's own serde impls (what a std server uses).
fn serde_json_round_trip<M>(msg: &M) -> Result<(), TestCaseError>
where
    M: Message + serde::de::DeserializeOwned + PartialEq + Debug,
{
    let text = serde_json::to_string(msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: M = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, msg);
    Ok(())
}

fn parse_err(text: &str) -> Result<ValidationError, TestCaseError> {
    match ProxyUrl::parse(text) {
        Ok(url) => Err(TestCaseError::fail(format!(
            "{text:?} was accepted as {url:?}"
        ))),
        Err(e) => Ok(e),
    }
}

fn malformed(expected: &'static str) -> Reason {
    Reason::Malformed { expected }
}

// ------------------------------------------------------------------ round trips

proptest! {
    #[test]
    fn request_round_trips(msg in request()) {
        json_round_trip(&msg)?;
        postcard_round_trip(&msg)?;
        serde_json_round_trip(&msg)?;
    }

    #[test]
    fn response_round_trips(msg in response()) {
        json_round_trip(&msg)?;
        postcard_round_trip(&msg)?;
        serde_json_round_trip(&msg)?;
    }

    #[test]
    fn feedback_round_trips(msg in feedback()) {
        json_round_trip(&msg)?;
        postcard_round_trip(&msg)?;
        serde_json_round_trip(&msg)?;
    }

    /// A batch encodes as a JSON array that a strict parser reads back as the
    /// same messages.
    #[test]
    fn feedback_batches_encode_as_arrays(batch in prop::collection::vec(feedback(), 0..4)) {
        let mut buf = [0u8; 4 * codec::MAX_INPUT_LEN];
        let n = codec::json::encode_batch(&batch, &mut buf).unwrap();
        let back: Vec<ProxyFeedback> = serde_json::from_slice(&buf[..n]).unwrap();
        prop_assert_eq!(back, batch);
    }

    /// `ProxyUrl` has no `Serialize` on purpose (the password is written only
    /// through `expose_credentials`); it decodes from its string form in both
    /// formats and round-trips inside a response, credentials included.
    #[test]
    fn proxy_url_round_trips_through_json_and_postcard(url in proxy_url()) {
        let text = url.expose_credentials().to_string();
        let json = serde_json::to_string(&text).unwrap();
        prop_assert_eq!(&serde_json::from_str::<ProxyUrl>(&json).unwrap(), &url);
        let mut scratch = [0u8; 1024];
        let (core_json, _) =
            serde_json_core::from_str_escaped::<ProxyUrl>(&json, &mut scratch).unwrap();
        prop_assert_eq!(&core_json, &url);
        let mut buf = [0u8; 1024];
        let bytes = postcard::to_slice(text.as_str(), &mut buf).unwrap();
        prop_assert_eq!(&postcard::from_bytes::<ProxyUrl>(bytes).unwrap(), &url);

        let response = ProxyResponse {
            proxy_url: Some(url.clone()),
            strategy: StrategyName::new("round_robin").unwrap(),
            ttl_seconds: TtlSeconds::new(60).unwrap(),
            fallback_policy: FallbackPolicy::default(),
            metadata: ResponseMetadata::default(),
        };
        json_round_trip(&response)?;
        postcard_round_trip(&response)?;
    }

    #[test]
    fn valid_urls_parse_to_their_parts_and_round_trip(parts in url_parts()) {
        let url = ProxyUrl::parse(&parts.text()).unwrap();
        prop_assert_eq!(url.scheme(), parts.scheme);
        prop_assert_eq!(url.host(), parts.host.as_str());
        prop_assert_eq!(url.port(), parts.port);
        prop_assert_eq!(url.username(), parts.user.as_deref());
        let pass = parts.pass.as_deref().filter(|p| !p.is_empty());
        prop_assert_eq!(url.password().map(|p| p.expose()), pass);
        prop_assert_eq!(url.has_credentials(), parts.user.is_some());

        let exposed = url.expose_credentials().to_string();
        prop_assert_eq!(&exposed, &parts.canonical());
        prop_assert_eq!(&ProxyUrl::parse(&exposed).unwrap(), &url);

        let bare = url.without_credentials();
        prop_assert!(!bare.has_credentials());
        prop_assert_eq!(bare.to_string(), format!("{}://{}:{}", parts.scheme, parts.host, parts.port));
        prop_assert_eq!(&ProxyUrl::parse(&bare.to_string()).unwrap(), &bare);
    }

    #[test]
    fn timestamps_round_trip_through_text(ts in timestamp()) {
        let text = ts.to_string();
        prop_assert!(text.ends_with('Z'));
        prop_assert_eq!(text.parse::<Timestamp>().unwrap(), ts);
        // The same instant written with a numeric offset parses to the same value
        // (when the shifted local time stays within years 0000-9999).
        let shifted = Timestamp::from_unix_millis(ts.unix_millis() + 2 * 3_600_000 + 30 * 60_000);
        if let Some(local) = shifted {
            let local = local.to_string();
            let with_offset = format!("{}+02:30", local.trim_end_matches('Z'));
            prop_assert_eq!(with_offset.parse::<Timestamp>().unwrap(), ts);
        }
    }

    #[test]
    fn error_details_keep_a_char_boundary_prefix(text in free_text(700)) {
        let details = ErrorDetails::new(&text);
        prop_assert!(details.as_str().len() <= MAX_ERROR_DETAILS_LEN);
        prop_assert!(text.starts_with(details.as_str()));
        if text.len() <= MAX_ERROR_DETAILS_LEN {
            prop_assert_eq!(details.as_str(), text.as_str());
        } else {
            // The longest prefix that fits: adding the next char would overflow.
            let next = text[details.as_str().len()..].chars().next().unwrap();
            prop_assert!(details.as_str().len() + next.len_utf8() > MAX_ERROR_DETAILS_LEN);
        }
    }
}

// ------------------------------------------------------------------ invalid URLs

proptest! {
    #[test]
    fn unsupported_schemes_are_named(
        scheme in "[a-zA-Z][a-zA-Z0-9+.-]{0,15}",
        parts in url_parts(),
    ) {
        prop_assume!(!Scheme::ALL.iter().any(|s| s.as_str().eq_ignore_ascii_case(&scheme)));
        let text = format!("{scheme}://{}{}:{}", parts.authority_prefix(), parts.host, parts.port);
        let err = parse_err(&text)?;
        prop_assert_eq!(err.field, "proxy_url");
        prop_assert_eq!(
            &err.reason,
            &Reason::UnsupportedScheme { got: scheme.as_str().try_into().unwrap() }
        );
        prop_assert_eq!(
            err.to_string(),
            format!("proxy_url: unsupported scheme {scheme:?} (expected one of http, https, socks4, socks4a, socks5, socks5h)")
        );
    }

    #[test]
    fn a_missing_host_is_reported(parts in url_parts()) {
        let text = format!("{}://{}:{}", parts.scheme_text, parts.authority_prefix(), parts.port);
        prop_assert_eq!(parse_err(&text)?.reason, Reason::MissingPart { part: "host" });
    }

    #[test]
    fn a_missing_port_is_reported(parts in url_parts(), colon in any::<bool>()) {
        let text = format!(
            "{}://{}{}{}",
            parts.scheme_text,
            parts.authority_prefix(),
            parts.host,
            if colon { ":" } else { "" }
        );
        prop_assert_eq!(parse_err(&text)?.reason, Reason::MissingPart { part: "port" });
    }

    #[test]
    fn out_of_range_ports_are_reported(
        parts in url_parts(),
        port in prop_oneof![Just("0".to_owned()), Just("65536".to_owned()), Just("000".to_owned()),
                            (65_536u64..).prop_map(|p| p.to_string()), "[1-9][0-9]{20,30}"],
    ) {
        let text = format!("{}://{}{}:{port}", parts.scheme_text, parts.authority_prefix(), parts.host);
        prop_assert_eq!(
            parse_err(&text)?.reason,
            Reason::OutOfRange { expected: "port 1 to 65535" }
        );
    }

    #[test]
    fn non_numeric_ports_are_reported(
        parts in url_parts(),
        port in "[0-9]{0,3}[a-zA-Z+_.~-][a-zA-Z0-9]{0,3}",
    ) {
        let text = format!("{}://{}{}:{port}", parts.scheme_text, parts.authority_prefix(), parts.host);
        prop_assert_eq!(parse_err(&text)?.reason, malformed("a numeric port"));
    }

    #[test]
    fn bad_percent_escapes_in_userinfo_are_reported(
        parts in url_parts_with(false),
        user in userinfo(40),
        bad in prop_oneof![
            Just("%".to_owned()),
            "%[0-9A-Fa-f]",
            "%[g-zG-Z._~!$&'()*+,;=-][0-9A-Fa-f]?",
            "%[0-9A-Fa-f][g-zG-Z._~!$&'()*+,;=-]",
        ],
        in_password in any::<bool>(),
    ) {
        let userinfo = if in_password {
            format!("{user}:{user}{bad}")
        } else {
            format!("{user}{bad}:{user}")
        };
        let text = format!("{}://{userinfo}@{}:{}", parts.scheme_text, parts.host, parts.port);
        prop_assert_eq!(
            parse_err(&text)?.reason,
            malformed("a valid percent escape (%XX) in the user name or password")
        );
    }

    #[test]
    fn invalid_host_characters_are_reported(
        parts in url_parts(),
        bad in prop_oneof![
            prop::sample::select(vec!['!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', '%',
                                      ' ', '"', '<', '>', '\\', '^', '`', '{', '|', '}', '~', ']',
                                      'é', 'ß', '中', '😀', '\u{0}', '\t'])
                .prop_map(String::from),
            Just("..".to_owned()),
        ],
        at in any::<prop::sample::Index>(),
    ) {
        let host = if parts.host.starts_with('[') { "proxy.example".to_owned() } else { parts.host.clone() };
        let cut = (0..=host.len()).filter(|i| host.is_char_boundary(*i)).collect::<Vec<_>>();
        let i = cut[at.index(cut.len())];
        let bad_host = format!("{}{bad}{}", &host[..i], &host[i..]);
        let text = format!("{}://{}{bad_host}:{}", parts.scheme_text, parts.authority_prefix(), parts.port);
        prop_assume!(text.len() <= MAX_URL_LEN && bad_host.len() <= MAX_HOST_LEN);
        prop_assert_eq!(
            parse_err(&text)?.reason,
            Reason::InvalidCharacter {
                expected: "a host name (letters, digits, '-', '_', '.') or an IP address"
            }
        );
    }

    #[test]
    fn paths_queries_and_fragments_are_reported(
        parts in url_parts(),
        tail in prop_oneof!["/[a-z0-9/]{1,10}", "\\?[a-z0-9=&]{0,10}", "#[a-z0-9]{0,10}", "//", "/\\?"],
    ) {
        let text = format!(
            "{}://{}{}:{}{tail}",
            parts.scheme_text,
            parts.authority_prefix(),
            parts.host,
            parts.port
        );
        prop_assume!(text.len() <= MAX_URL_LEN);
        prop_assert_eq!(
            parse_err(&text)?.reason,
            malformed("no path, query or fragment after host:port")
        );
    }

    #[test]
    fn too_long_urls_are_reported_never_cut(parts in url_parts(), extra in 0usize..1500) {
        // Pad the host (any content: the length is checked first) so that the
        // URL is 513 bytes and up.
        let base = format!("{}://{}{}:{}", parts.scheme_text, parts.authority_prefix(), parts.host, parts.port);
        let pad = "h".repeat(MAX_URL_LEN + 1 - base.len() + extra);
        let text = format!(
            "{}://{}{pad}{}:{}",
            parts.scheme_text,
            parts.authority_prefix(),
            parts.host,
            parts.port
        );
        let err = parse_err(&text)?;
        prop_assert_eq!(&err.reason, &Reason::TooLong { len: text.len(), max: MAX_URL_LEN });
        prop_assert_eq!(
            err.to_string(),
            format!("proxy_url: too long: {} bytes (at most {MAX_URL_LEN} allowed)", text.len())
        );
    }

    #[test]
    fn urls_without_scheme_separator_are_reported(
        parts in url_parts(),
        sep in prop_oneof![Just(""), Just(":"), Just(":/"), Just("//"), Just(":\\\\"), Just("/")],
    ) {
        let text = format!(
            "{}{sep}{}{}:{}",
            parts.scheme_text,
            parts.authority_prefix(),
            parts.host,
            parts.port
        );
        prop_assert_eq!(
            parse_err(&text)?.reason,
            malformed("scheme://[user[:password]@]host:port")
        );
    }
}

// ------------------------------------------------------------------ secrets

/// Everything a URL, a response holding it, or a failed parse of it could print.
fn printed_forms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    match ProxyUrl::parse(text) {
        Ok(url) => {
            out.push(url.to_string());
            out.push(format!("{url:?}"));
            out.push(format!("{url:#?}"));
            out.push(format!("{:?}", url.expose_credentials()));
            out.push(format!("{:?}", url.password()));
            out.push(url.without_credentials().to_string());
            if let Some(p) = url.password() {
                out.push(p.to_string());
            }
            let response = ProxyResponse {
                proxy_url: Some(url.clone()),
                strategy: StrategyName::new("least_connections").unwrap(),
                ttl_seconds: TtlSeconds::new(300).unwrap(),
                fallback_policy: FallbackPolicy::DirectConnection,
                metadata: ResponseMetadata::default(),
            };
            out.push(format!("{response:?}"));
            out.push(format!("{response:#?}"));
            let feedback = ProxyFeedback {
                proxy_id: None,
                proxy_url: Some(url.clone()),
                exchange_id: ExchangeId::new("binance").unwrap(),
                connection_type: ConnectionType::Websocket,
                event: FeedbackEvent::Failure,
                success: false,
                latency_ms: None,
                error_category: Some(ErrorCategory::ProxyAuth),
                error_details: None,
                timestamp: "2024-09-23T10:30:00Z".parse().unwrap(),
                client_id: ClientId::new("c1").unwrap(),
            };
            out.push(format!("{feedback:?}"));
            // Feedback never carries credentials on the wire.
            let mut buf = [0u8; 2048];
            let n = codec::json::encode(&feedback, &mut buf).unwrap();
            out.push(String::from_utf8(buf[..n].to_vec()).unwrap());
            let n = codec::postcard::encode(&feedback, &mut buf).unwrap();
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            out.push(serde_json::to_string(&feedback).unwrap());
        }
        Err(e) => {
            out.push(e.to_string());
            out.push(format!("{e:?}"));
        }
    }
    // The same URL inside a response body, through both JSON decoders.
    let body = format!(
        r#"{{"proxy_url":{},"strategy":"x","ttl_seconds":300}}"#,
        serde_json::to_string(text).unwrap()
    );
    match codec::json::decode::<ProxyResponse>(body.as_bytes()) {
        Ok(r) => out.push(format!("{r:?}")),
        Err(e) => {
            out.push(e.to_string());
            out.push(format!("{e:?}"));
        }
    }
    match serde_json::from_str::<ProxyResponse>(&body) {
        Ok(r) => out.push(format!("{r:?}")),
        Err(e) => {
            out.push(e.to_string());
            out.push(format!("{e:?}"));
        }
    }
    // And inside a feedback body, whose decoder strips credentials.
    let body = format!(
        r#"{{"proxy_url":{},"exchange_id":"binance","connection_type":"ws","success":false,"timestamp":"2024-09-23T10:30:00Z","client_id":"c1"}}"#,
        serde_json::to_string(text).unwrap()
    );
    match codec::json::decode::<ProxyFeedback>(body.as_bytes()) {
        Ok(f) => {
            out.push(format!("{f:?}"));
            let mut buf = [0u8; 2048];
            let n = codec::json::encode(&f, &mut buf).unwrap();
            out.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
        Err(e) => {
            out.push(e.to_string());
            out.push(format!("{e:?}"));
        }
    }
    out
}

/// Passwords that cannot plausibly occur by chance in fixed message text.
fn secret() -> impl Strategy<Value = String> {
    prop_oneof![
        // Valid as written.
        2 => userinfo(MAX_USERINFO_LEN),
        // Anything at all: invalid characters, '@', ':', '/', unicode, controls.
        1 => "\\PC{6,40}",
        1 => prop::collection::vec(any::<char>(), 6..40).prop_map(|v| v.into_iter().collect()),
    ]
    .prop_filter("long enough to be distinctive", |p| p.chars().count() >= 6)
}

proptest! {
    #[test]
    fn passwords_never_printed(
        password in secret(),
        parts in url_parts_with(false),
        user in userinfo(16),
        breakage in 0usize..6,
    ) {
        // The password must not be a substring of the other parts or of "***".
        prop_assume!(!parts.text().contains(&password) && !user.contains(&password));
        prop_assume!(!password.contains("***"));
        let base = format!("{}://{user}:{password}@{}", parts.scheme_text, parts.host);
        // Valid, and broken in every other place a parse can fail after the password.
        let text = match breakage {
            0 => format!("{base}:{}", parts.port),
            1 => format!("{base}:0"),
            2 => format!("{base}:x{}", parts.port),
            3 => base.clone(),
            4 => format!("{base}:{}/path", parts.port),
            _ => format!("ftp{}", &base[parts.scheme_text.len()..]),
        };
        for printed in printed_forms(&text) {
            prop_assert!(
                !printed.contains(&password),
                "password leaked in {printed:?}"
            );
        }
    }
}

/// A check on the check: with a valid password, the one deliberate exposure
/// does contain it, so the test above is not vacuous.
#[test]
fn expose_credentials_is_the_one_place_the_password_appears() {
    let url = ProxyUrl::parse("socks5://alice:s3cr%2Ft-Pa55@proxy.example:1080").unwrap();
    assert!(
        url.expose_credentials()
            .to_string()
            .contains("s3cr%2Ft-Pa55")
    );
    assert_eq!(url.password().unwrap().expose(), "s3cr%2Ft-Pa55");
    assert!(
        !printed_forms("socks5://alice:s3cr%2Ft-Pa55@proxy.example:1080")
            .iter()
            .any(|p| p.contains("s3cr%2Ft-Pa55"))
    );
    // The response encoder writes it (the client needs it to connect).
    let body = br#"{"proxy_url":"socks5://alice:s3cr%2Ft-Pa55@proxy.example:1080","strategy":"x","ttl_seconds":1}"#;
    let response: ProxyResponse = codec::json::decode(body).unwrap();
    let mut buf = [0u8; 512];
    let n = codec::json::encode(&response, &mut buf).unwrap();
    assert!(
        std::str::from_utf8(&buf[..n])
            .unwrap()
            .contains("s3cr%2Ft-Pa55")
    );
}

/// Decode errors never echo input bytes, whichever field is wrong.
#[test]
fn decode_errors_name_the_field_not_the_value() {
    let body = br#"{"proxy_url":"socks5://u:Hunter2Secret@proxy.example:99999","strategy":"x","ttl_seconds":1}"#;
    let err = codec::json::decode::<ProxyResponse>(body).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Invalid(ValidationError {
            field: "proxy_url",
            reason: Reason::OutOfRange {
                expected: "port 1 to 65535"
            }
        })
    );
    assert!(!err.to_string().contains("Hunter2Secret"));
    assert!(!format!("{err:?}").contains("Hunter2Secret"));
}
