//! Proof that the core never allocates: a counting global allocator, switched
//! on for the current thread only, wraps the work and the count must be zero.
//!
//! To check new core code, wrap it in [`count_allocations`] and assert the
//! count is 0 (see `model_and_codecs_never_allocate`). The counter sees only
//! allocations made on the calling thread while the closure runs, so the test
//! harness, other tests running in parallel, and setup done before the closure
//! do not count.

// `GlobalAlloc` is an `unsafe trait` and its methods are `unsafe fn`: there is
// no safe way to install a counting allocator. The impl only forwards to
// `System` after bumping a thread-local counter.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;
use std::hint::black_box;

use proxy_delegate_core::codec::{self, DecodeError};
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ErrorCategory, ErrorDetails, ExchangeId, FallbackPolicy, FeedType,
    FeedbackEvent, HealthScore, ProxyFeedback, ProxyId, ProxyRequest, ProxyResponse, ProxyUrl,
    Region, Strategy, Symbol, Timestamp, TtlSeconds,
};
use proxy_delegate_tests::{FEEDBACK_JSON, REQUEST_JSON, RESPONSE_JSON};

/// Forwards to the system allocator and counts, per thread, the calls made
/// while counting is switched on.
struct CountingAllocator;

thread_local! {
    // `const` initialisers: no lazy registration, no destructor, so touching
    // these from inside the allocator never allocates itself.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: during thread teardown the slots may be gone; then we are
    // not counting anyway.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the `GlobalAlloc` contract; the counting touches only `Cell`s in
// const-initialised thread-locals and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` with allocation counting on for this thread and returns its
/// result with the number of allocations (`alloc`, `alloc_zeroed`, `realloc`)
/// it made. Counting stops even if `f` panics.
fn count_allocations<R>(f: impl FnOnce() -> R) -> (R, usize) {
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            COUNTING.with(|on| on.set(false));
        }
    }
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    let stop = Stop;
    let result = f();
    drop(stop);
    (result, ALLOCATIONS.with(Cell::get))
}

/// Formats `value` with Display and Debug into a stack string, as a no_std
/// logger would.
fn format_both<T: std::fmt::Display + std::fmt::Debug>(value: &T) -> usize {
    let mut out = heapless::String::<2048>::new();
    write!(out, "{value} {value:?} {value:#?}").expect("fits");
    black_box(out.len())
}

fn format_debug<T: std::fmt::Debug>(value: &T) -> usize {
    let mut out = heapless::String::<4096>::new();
    write!(out, "{value:?}").expect("fits");
    black_box(out.len())
}

/// Encodes in both formats and decodes back; returns the bytes written.
fn round_trip<M>(msg: &M) -> usize
where
    M: codec::Message + PartialEq + std::fmt::Debug,
{
    let mut json = [0u8; 2048];
    let n = codec::json::encode(msg, &mut json).unwrap();
    assert_eq!(&codec::json::decode::<M>(&json[..n]).unwrap(), msg);
    let mut pc = [0u8; 1024];
    let m = codec::postcard::encode(msg, &mut pc).unwrap();
    assert_eq!(&codec::postcard::decode::<M>(&pc[..m]).unwrap(), msg);
    n + m
}

fn exercise_model_and_codecs() -> usize {
    let mut work = 0;

    // URLs, valid and not, and their printed forms.
    for text in [
        "socks5://user:pass@proxy-server:1080",
        "HTTP://proxy.example:3128/",
        "socks5h://[2001:db8::1]:1080",
        "socks4a://u%40x:p%3Aw@10.0.0.1:1",
    ] {
        let url = ProxyUrl::parse(text).unwrap();
        work += format_both(&url);
        work += format_both(&url.expose_credentials());
        work += format_both(&url.without_credentials());
        work += url.host().len() + usize::from(url.port());
    }
    for bad in [
        "ftp://proxy:21",
        "socks5://proxy",
        "socks5://proxy:0",
        "socks5://us%zz:pw@proxy:1",
        "socks5://pro xy:1",
        "socks5://proxy:1/path",
        "proxy:1080",
    ] {
        let err = ProxyUrl::parse(bad).unwrap_err();
        work += format_both(&err);
    }

    // Every id type, valid and invalid.
    work += format_both(&ExchangeId::new("BINANCE").unwrap());
    work += format_both(&ExchangeId::new("bin ance").unwrap_err());
    work += format_both(&ClientId::new("cryptofeed-instance-123").unwrap());
    work += format_both(&ClientId::new("").unwrap_err());
    work += format_both(&Region::new("us-east-1").unwrap());
    work += format_both(&ProxyId::new("proxy-123").unwrap());
    work += format_both(&Strategy::new("least_connections").unwrap());
    work += format_both(&FeedType::new("trades").unwrap());
    work += format_both(&Symbol::new("BTC-USD").unwrap());
    work += format_both(&Symbol::new("").unwrap_err());
    work += format_both(&ErrorDetails::new("tunnel refused: 403 \"Forbidden\" ü"));
    work += format_both(&ConnectionType::parse("ws").unwrap());
    work += format_both(&ConnectionType::parse("carrier-pigeon").unwrap_err());
    work += format_both(&FallbackPolicy::parse("direct_connection").unwrap());
    work += format_both(&FeedbackEvent::parse("timeout").unwrap());
    work += format_both(&ErrorCategory::parse("geo_blocked").unwrap());
    work += format_debug(&TtlSeconds::new(300).unwrap());
    work += format_both(&TtlSeconds::new(0).unwrap_err());
    work += format_debug(&HealthScore::new(0.98).unwrap());
    work += format_both(&HealthScore::new(f32::NAN).unwrap_err());
    work += format_both(
        &"2024-09-23T12:30:00.250+02:00"
            .parse::<Timestamp>()
            .unwrap(),
    );
    work += format_both(&"2024-02-30T00:00:00Z".parse::<Timestamp>().unwrap_err());

    // The three published messages, decoded, printed and round-tripped.
    let request: ProxyRequest = codec::json::decode(REQUEST_JSON.as_bytes()).unwrap();
    let response: ProxyResponse = codec::json::decode(RESPONSE_JSON.as_bytes()).unwrap();
    let feedback: ProxyFeedback = codec::json::decode(FEEDBACK_JSON.as_bytes()).unwrap();
    work += format_debug(&request) + format_debug(&response) + format_debug(&feedback);
    work += round_trip(&request) + round_trip(&response) + round_trip(&feedback);
    let mut batch = [0u8; 2048];
    work += codec::json::encode_batch(&[feedback.clone(), feedback], &mut batch).unwrap();

    // Escapes, including the slow paths (surrogate pairs, long escaped text).
    let escaped = br#"{"exchange_id":"\u0062inance","connection_type":"ws","client_id":"caf\u00e9 \"x\" \ud83d\ude00"}"#;
    let request: ProxyRequest = codec::json::decode(escaped).unwrap();
    work += request.client_id.as_str().len();
    let mut long = heapless::String::<4096>::new();
    long.push_str(r#"{"exchange_id":"binance","connection_type":"ws","success":false,"timestamp":"2024-09-23T10:30:00Z","client_id":"c","error_details":""#).unwrap();
    while long.len() < 3000 {
        long.push_str(r#"line \"q\"\n"#).unwrap();
    }
    long.push_str(r#""}"#).unwrap();
    let feedback: ProxyFeedback = codec::json::decode(long.as_bytes()).unwrap();
    work += feedback.error_details.map_or(0, |d| d.as_str().len());

    // Errors: validation, malformed JSON, bad postcard, too large, too small.
    let errors: [DecodeError; 5] = [
        codec::json::decode::<ProxyRequest>(br#"{"exchange_id":"binance","connection_type":"ws"}"#)
            .unwrap_err(),
        codec::json::decode::<ProxyResponse>(b"{\"strategy\":").unwrap_err(),
        codec::postcard::decode::<ProxyFeedback>(&[0xff, 0xff, 0xff]).unwrap_err(),
        codec::json::decode::<ProxyRequest>(&[b' '; codec::MAX_INPUT_LEN + 1]).unwrap_err(),
        codec::json::decode::<ProxyResponse>(
            br#"{"proxy_url":"socks5://u:secret@h:0","strategy":"x","ttl_seconds":1}"#,
        )
        .unwrap_err(),
    ];
    for err in &errors {
        work += format_both(err);
    }
    let too_small = codec::json::encode(&request, &mut [0u8; 8]).unwrap_err();
    work += format_both(&too_small);
    work
}

#[test]
fn model_and_codecs_never_allocate() {
    // Warm-up outside the counted region: anything std initialises lazily on
    // first use (none is expected) is not the core's doing.
    black_box(exercise_model_and_codecs());
    let (work, allocations) = count_allocations(exercise_model_and_codecs);
    assert!(work > 0, "the exercise did nothing");
    assert_eq!(
        allocations, 0,
        "the core allocated {allocations} times; it must never allocate"
    );
}

#[test]
fn the_counter_sees_allocations() {
    let ((), none) = count_allocations(|| {
        black_box(1 + 1);
    });
    assert_eq!(none, 0);
    let (boxed, one) = count_allocations(|| black_box(Box::new(42u64)));
    assert_eq!(*boxed, 42);
    assert_eq!(one, 1, "a Box::new inside the counted region must be seen");
    let (text, some) = count_allocations(|| {
        let mut s = String::new();
        for _ in 0..100 {
            s.push_str("grow");
        }
        s
    });
    assert_eq!(text.len(), 400);
    assert!(some >= 2, "String growth reallocates: saw {some}");
    // Allocations outside the region are not counted.
    let outside = black_box(vec![0u8; 64]);
    let ((), zero) = count_allocations(|| {
        black_box(outside.len());
    });
    assert_eq!(zero, 0);
}
