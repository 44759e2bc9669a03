//! The Resolver's rules (`support/resolver_rules.rs`) again, with its cached
//! routes, queued feedback and requests in flight kept packed
//! (`keep::Compact`), and what only a packed Resolver does: a route too
//! large for its slot is used but not cached, a feedback event too large
//! loses the end of its details, a request too large loses its metadata.

use embassy_time::Duration;
use proxy_delegate_core::keep::{Keep, Packed};
use proxy_delegate_core::model::{
    ErrorDetails, FeedbackEvent, ProxyFeedback, ProxyRequest, Symbol,
};
use proxy_delegate_core::resolver::{Event, Reply, Source, TransmitKind};

/// Slots of 256 bytes: every message of the rules fits; the long ones below
/// do not.
type Keeping = proxy_delegate_core::keep::Compact<256, 256, 256>;

#[path = "support/resolver_rules.rs"]
mod rules;

use rules::{H, Res, body, config, feedback, ready, request, run, url};

#[test]
fn a_packed_route_is_lent_whole_credentials_and_all() {
    run(|| {
        let mut h = H::new(config(), 1);
        let req = request("binance");
        let proxy = "socks5://user:p%40ss-word@proxy-a.example:1080";
        let first = h.fill(&req, &body(Some(proxy), "pa", 300, "direct_connection"));
        let hit = ready(h.resolve(&req));
        assert_eq!(hit.source, Source::Cache);
        assert_eq!(hit.proxy_url, Some(url(proxy)));
        assert_eq!(hit.proxy_url, first.proxy_url);
        assert_eq!(hit.proxy_id, first.proxy_id);
        // The Resolver's Debug output shows the packed slots' lengths only.
        let debug = format!("{:?}", h.r);
        assert!(!debug.contains("p%40ss-word"), "{debug}");
        assert!(!debug.contains("ss-word"), "{debug}");
    });
}

#[test]
fn a_route_too_large_for_its_slot_is_used_but_not_cached() {
    run(|| {
        let mut h = H::new(config(), 1);
        let req = request("binance");
        let host = "h".repeat(240);
        let proxy = format!("socks5://{host}:1080");
        let route = h.fill(&req, &body(Some(&proxy), "pa", 300, "direct_connection"));
        assert_eq!(route.source, Source::Service);
        assert_eq!(
            route.proxy_url,
            Some(url(&proxy)),
            "the caller still gets it"
        );
        assert!(
            h.take_events().iter().any(
                |e| matches!(e, Event::NotCached { key } if key.exchange_id.as_str() == "binance")
            ),
            "the event says why the next resolve asks again"
        );
        assert!(matches!(h.resolve(&req), Res::Pending(_)), "not cached");
        assert_eq!(h.take_resolves().len(), 1);
    });
}

#[test]
fn a_feedback_event_too_large_loses_the_end_of_its_details_only() {
    run(|| {
        let mut h = H::new(config(), 1);
        let details = "connection reset by peer; ".repeat(19);
        let mut long = feedback("binance", Some("pa"), None, FeedbackEvent::Failure, None);
        long.error_details = Some(ErrorDetails::new(&details));
        let mut short = feedback("kraken", Some("pb"), None, FeedbackEvent::Failure, None);
        short.error_details = Some(ErrorDetails::new("timed out"));
        h.report(long);
        h.report(short);
        h.advance(Duration::from_secs(1));
        let sent = h.take_sent();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(matches!(sent[0].kind, TransmitKind::Feedback(_)));
        let v: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
        let items = v.as_array().expect("a JSON array");
        assert_eq!(items.len(), 2, "nothing dropped: {v}");
        let cut = items[0]["error_details"].as_str().expect("details kept");
        assert!(!cut.is_empty() && cut.len() < details.len(), "{cut}");
        assert!(details.starts_with(cut), "a prefix: {cut}");
        // The longest prefix that fits: one byte more would not.
        let with = |n: usize| {
            let mut f = feedback("binance", Some("pa"), None, FeedbackEvent::Failure, None);
            f.error_details = Some(ErrorDetails::new(&details[..n]));
            <Packed<ProxyFeedback, 256> as Keep<ProxyFeedback>>::keep(f).is_ok()
        };
        assert!(with(cut.len()));
        assert!(!with(cut.len() + 1), "{} bytes kept, more fit", cut.len());
        assert_eq!(items[0]["exchange_id"], "binance");
        assert_eq!(
            items[1]["error_details"], "timed out",
            "a short one is whole"
        );
        h.reply(sent[0].id, Reply::Ok(b"{}")).unwrap();
        let stats = h.r.feedback_stats();
        assert_eq!((stats.sent, stats.dropped), (2, 0));
    });
}

#[test]
fn a_request_too_large_for_its_slot_is_sent_without_its_metadata() {
    run(|| {
        let mut h = H::new(config(), 1);
        let mut small = request("binance");
        small
            .metadata
            .symbols
            .push(Symbol::new("BTC-USD").unwrap())
            .unwrap();
        let _ = h.resolve(&small);
        let sent = h.one_resolve();
        let v: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(
            v["metadata"]["symbols"][0], "BTC-USD",
            "metadata that fits is kept: {v}"
        );

        let mut large: ProxyRequest = request("kraken");
        for i in 0..16 {
            let symbol = Symbol::new(&format!("SYMBOL-{i:02}-USDT-PERP")).unwrap();
            large.metadata.symbols.push(symbol).unwrap();
        }
        let Res::Pending(_) = h.resolve(&large) else {
            panic!("a miss asks the service")
        };
        let sent = h.one_resolve();
        let v: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(v["exchange_id"], "kraken");
        let symbols = v["metadata"]["symbols"].as_array().map_or(0, Vec::len);
        assert_eq!(symbols, 0, "sent without its metadata: {v}");
    });
}
