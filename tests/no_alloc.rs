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

use embassy_time::{Duration, Instant};
use proxy_delegate_core::backoff::{
    Backoff, BackoffConfig, Jitter, RetryBudget, RetryBudgetConfig,
};
use proxy_delegate_core::breaker::{Breaker, BreakerConfig, BreakerState, Outcome};
use proxy_delegate_core::cache::{Cache, CacheConfig, CacheKey, Freshness};
use proxy_delegate_core::codec::{self, DecodeError};
use proxy_delegate_core::embedded::EmbeddedRoutes;
use proxy_delegate_core::endpoints::{EndpointConfig, Endpoints, EndpointsConfig, Health};
use proxy_delegate_core::feedback::{FeedbackConfig, FeedbackQueue};
use proxy_delegate_core::model::{
    ClientId, ConnectionType, ErrorCategory, ErrorDetails, ExchangeId, FallbackPolicy, FeedType,
    FeedbackEvent, HealthScore, ProxyFeedback, ProxyId, ProxyRequest, ProxyResponse, ProxyUrl,
    Region, Strategy, Symbol, Timestamp, TtlSeconds,
};
use proxy_delegate_core::pool::{
    ExchangePolicy, Pool, PoolConfig, ProxySpec, ProxyState, StrategyKind,
};
use proxy_delegate_core::resolver::{
    CorrelationId, MIN_TRANSMIT_BUFFER, Output, Reply, Resolution, Resolver, ResolverConfig,
    TransmitKind,
};
use proxy_delegate_core::settings::{
    ConnectionProxies, PoolProxy, PoolStrategy, ProxyConfig, ProxyPool, ProxySettings,
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

// ---------------------------------------------------------------- the machines
//
// Each test runs a realistic sequence of one machine inside
// `count_allocations` and requires exactly 0 allocations. Values that need a
// `Box` (because they are large) are built before the counted region; the
// machine's own constructor runs inside it whenever the value fits the stack.

/// Runs `exercise` twice on fresh inputs: once to warm up anything std sets
/// up lazily (not the core's doing), once counted; asserts 0 allocations.
fn assert_no_alloc<S>(what: &str, mut make: impl FnMut() -> S, exercise: impl Fn(&mut S) -> usize) {
    let mut warm = make();
    black_box(exercise(&mut warm));
    let mut state = make();
    let (work, allocations) = count_allocations(|| exercise(&mut state));
    assert!(work > 0, "{what}: the exercise did nothing");
    assert_eq!(
        allocations, 0,
        "{what}: the core allocated {allocations} times; it must never allocate"
    );
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Writes Display and Debug of `value` into a stack string (ignoring overflow).
fn log<T: std::fmt::Debug>(value: &T) -> usize {
    let mut out = heapless::String::<4096>::new();
    let _ = write!(out, "{value:?}");
    black_box(out.len()) + 1
}

fn log_display<T: std::fmt::Display>(value: &T) -> usize {
    let mut out = heapless::String::<1024>::new();
    let _ = write!(out, "{value}");
    black_box(out.len()) + 1
}

fn exchange(i: usize) -> ExchangeId {
    let mut name = heapless::String::<16>::new();
    let _ = write!(name, "exchange-{i}");
    ExchangeId::new(&name).expect("valid")
}

fn response(ttl: u64, proxy: usize) -> ProxyResponse {
    let mut r: ProxyResponse = codec::json::decode(RESPONSE_JSON.as_bytes()).expect("valid");
    r.ttl_seconds = TtlSeconds::new(ttl).expect("valid");
    let mut url = heapless::String::<64>::new();
    let _ = write!(url, "socks5://user:pw@proxy-{proxy}:1080");
    r.proxy_url = Some(ProxyUrl::parse(&url).expect("valid"));
    let mut id = heapless::String::<16>::new();
    let _ = write!(id, "proxy-{proxy}");
    r.metadata.proxy_id = Some(ProxyId::new(&id).expect("valid"));
    r
}

fn a_feedback(i: u32, success: bool, category: Option<ErrorCategory>) -> ProxyFeedback {
    let mut f: ProxyFeedback = codec::json::decode(FEEDBACK_JSON.as_bytes()).expect("valid");
    f.latency_ms = Some(i);
    f.success = success;
    f.event = if success {
        FeedbackEvent::Success
    } else {
        FeedbackEvent::Failure
    };
    f.error_category = category;
    f
}

fn exercise_breaker(t0: Instant) -> usize {
    let mut work = 0;
    let config = BreakerConfig {
        failure_threshold: 3,
        open_duration: Duration::from_secs(1),
        max_open_duration: Duration::from_secs(8),
        half_open_probes: 2,
        probe_timeout: Duration::from_secs(1),
        seed: 5,
        ..BreakerConfig::default()
    };
    let mut b = Breaker::new(config).expect("valid");
    let mut other = Breaker::new(BreakerConfig { seed: 6, ..config }).expect("valid");
    let mut now = t0;
    let drain = |b: &mut Breaker| {
        let mut n = 0;
        while let Some(e) = b.poll_event() {
            n += log(&e) + log_display(&e);
        }
        n
    };
    // Closed: successes, slow calls, then consecutive failures trip it.
    for i in 0..12u64 {
        let p = b.try_acquire(now).expect("closed admits");
        work += p.id() as usize;
        let end = now + if i % 4 == 0 { ms(2500) } else { ms(10) };
        b.record(end, p, Outcome::Success).expect("counted");
        now += ms(20);
    }
    for _ in 0..3 {
        let p = b.try_acquire(now).expect("closed admits");
        b.record(now, p, Outcome::Failure).expect("counted");
    }
    assert_eq!(b.state(), BreakerState::Open);
    let rejected = b.try_acquire(now).expect_err("open rejects");
    work += log(&rejected) + log_display(&rejected);
    // Half-open: a failed probe re-opens for longer.
    let at = b.poll_timeout().expect("open until");
    b.handle_timeout(at);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    let probe = b.try_acquire(at).expect("a probe");
    assert!(probe.is_probe());
    b.record(at, probe, Outcome::Failure).expect("counted");
    assert_eq!(b.state(), BreakerState::Open);
    work += b.next_open_duration().as_millis() as usize;
    // A probe that never reports times out.
    let at = b.poll_timeout().expect("open until");
    b.handle_timeout(at);
    let lost = b.try_acquire(at).expect("a probe");
    let deadline = b.poll_timeout().expect("probe deadline");
    b.handle_timeout(deadline);
    assert_eq!(b.state(), BreakerState::Open);
    let stale = b
        .record(deadline, lost, Outcome::Success)
        .expect_err("stale");
    work += log(&stale) + log_display(&stale);
    // Then two good probes close it; an ignored one frees its slot.
    let at = b.poll_timeout().expect("open until");
    b.handle_timeout(at);
    let p1 = b.try_acquire(at).expect("probe 1");
    b.record(at, p1, Outcome::Ignored).expect("counted");
    for _ in 0..2 {
        let p = b.try_acquire(at).expect("probe");
        b.record(at + ms(5), p, Outcome::Success).expect("counted");
    }
    assert_eq!(b.state(), BreakerState::Closed);
    // A permit of another breaker; operator switches.
    let foreign = other.try_acquire(at).expect("closed");
    work += log(&b
        .record(at, foreign, Outcome::Success)
        .expect_err("foreign"));
    b.force_open(at);
    work += log(&b.try_acquire(at).expect_err("forced open"));
    b.disable();
    let p = b.try_acquire(at).expect("disabled admits");
    b.record(at, p, Outcome::Failure).expect("accepted");
    b.enable(at);
    b.reset(at);
    work += drain(&mut b) + drain(&mut other) + b.dropped_events() as usize;
    work += b.probes_in_flight() + log(&b.config());
    work
}

#[test]
fn breaker_never_allocates() {
    let t0 = Instant::from_secs(100);
    assert_no_alloc("breaker", || t0, |t0| exercise_breaker(*t0));
}

fn exercise_backoff(now: &mut Instant) -> usize {
    let mut work = 0;
    for jitter in [
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ] {
        let config = BackoffConfig {
            base: ms(100),
            max_delay: Duration::from_secs(5),
            jitter,
            max_attempts: Some(8),
            max_retry_after: Duration::from_secs(30),
            seed: 11,
        };
        let mut b = Backoff::new(config).expect("valid");
        let mut attempt = 0u32;
        let give_up = loop {
            attempt += 1;
            let hint = attempt.is_multiple_of(3).then(|| Duration::from_secs(2));
            match b.next_delay(hint) {
                Ok(d) => {
                    if let Some(h) = hint {
                        assert!(d >= h, "Retry-After honoured");
                    }
                    work += d.as_millis() as usize + 1;
                }
                Err(e) => break e,
            }
        };
        work += log(&give_up) + log_display(&give_up) + b.failures() as usize;
        b.reset();
        work += b
            .next_delay(Some(Duration::from_secs(600)))
            .expect("fresh")
            .as_millis() as usize;
        // No attempt limit: keeps going at the cap.
        let mut forever = Backoff::new(BackoffConfig {
            max_attempts: None,
            ..config
        })
        .expect("valid");
        for _ in 0..40 {
            work += forever
                .next_delay(None)
                .expect("never gives up")
                .as_millis() as usize;
        }
    }
    work += log(&Backoff::new(BackoffConfig {
        max_attempts: Some(0),
        ..BackoffConfig::default()
    })
    .expect_err("refused"));
    // The retry budget: floor spent, deposits, refill.
    let mut budget = RetryBudget::new(RetryBudgetConfig::default()).expect("valid");
    let mut allowed = 0;
    while budget.try_retry(*now) {
        allowed += 1;
    }
    for _ in 0..25 {
        budget.record_success(*now);
    }
    while budget.try_retry(*now) {
        allowed += 1;
    }
    *now += Duration::from_secs(1);
    work += budget.available(*now) as usize;
    while budget.try_retry(*now) {
        allowed += 1;
    }
    assert_eq!(allowed, 1 + 2 + 1, "floor, deposits (2.5 tokens), refill");
    work += log(&RetryBudget::new(RetryBudgetConfig {
        deposit_per_success_milli: 5000,
        ..RetryBudgetConfig::default()
    })
    .expect_err("refused"));
    work + allowed
}

#[test]
fn backoff_and_retry_budget_never_allocate() {
    assert_no_alloc("backoff", || Instant::from_secs(50), exercise_backoff);
}

fn exercise_cache(parts: &mut (Cache<ProxyResponse, 16>, [ProxyResponse; 4], Instant)) -> usize {
    let (cache, responses, t0) = parts;
    let t0 = *t0;
    let mut work = 0;
    let key = |i: usize| CacheKey::new(exchange(i), ConnectionType::Websocket, None);
    // Insert more keys than fit: the least recently used go.
    for i in 0..20 {
        cache.insert(t0, key(i), responses[i % 4].clone());
    }
    assert_eq!(cache.len(), 16);
    assert!(cache.get(t0, &key(0)).is_none(), "evicted");
    // Hits; from 80% of the TTL (10 s) on a hit schedules one refresh.
    let hit = cache.get(t0 + ms(1000), &key(10)).expect("fresh");
    assert_eq!(hit.freshness, Freshness::Fresh);
    work += hit.value.ttl_seconds.get() as usize;
    assert!(cache.poll_refresh(t0 + ms(1000)).is_none());
    let t8 = t0 + ms(8500);
    assert!(cache.get(t8, &key(10)).is_some());
    let refresh = cache.poll_refresh(t8).expect("refresh due");
    work += log(&refresh) + log_display(&refresh);
    cache.refresh_failed(t8, &refresh);
    assert!(cache.get(t8, &key(11)).is_some());
    let second = cache.poll_refresh(t8).expect("refresh due");
    cache.insert(t8, second, responses[0].clone()); // a refresh's answer
    // Expired: only get_stale, within grace.
    let t12 = t0 + Duration::from_secs(12);
    assert!(cache.get(t12, &key(12)).is_none());
    let stale = cache.get_stale(t12, &key(12)).expect("within grace");
    assert_eq!(stale.freshness, Freshness::Stale);
    work += stale.expires_at.as_millis() as usize;
    // Invalidations.
    assert!(cache.invalidate(&key(13)));
    work += cache.invalidate_exchange(&exchange(14));
    let proxy = responses[1].metadata.proxy_id.clone();
    work += cache.invalidate_proxy(proxy.as_ref(), None);
    let url = responses[2]
        .proxy_url
        .as_ref()
        .map(ProxyUrl::without_credentials);
    work += cache.invalidate_proxy(None, url.as_ref());
    // Warm keys, timers, events.
    work += cache.poll_timeout().map_or(0, |t| t.as_millis() as usize);
    cache.handle_timeout(t12);
    while let Some(k) = cache.poll_refresh(t12) {
        work += log(&k);
        cache.insert(t12, k, responses[3].clone());
    }
    let dead = t0 + Duration::from_secs(10_000);
    assert!(cache.get_stale(dead, &key(15)).is_none(), "dead");
    work += cache.invalidate_all();
    while let Some(e) = cache.poll_event() {
        work += log(&e);
    }
    work += cache.dropped_events() as usize + cache.len();
    work
}

#[test]
fn cache_never_allocates() {
    let make = || {
        let config = CacheConfig {
            stale_grace: Duration::from_secs(60),
            warm_keys: heapless::Vec::from_slice(&[CacheKey::new(
                ExchangeId::new("warm").expect("valid"),
                ConnectionType::Http,
                Some(Region::new("eu-west-1").expect("valid")),
            )])
            .expect("fits"),
            ..CacheConfig::default()
        };
        (
            Cache::<ProxyResponse, 16>::new(config).expect("valid"),
            [
                response(10, 1),
                response(10, 2),
                response(10, 3),
                response(10, 4),
            ],
            Instant::from_secs(500),
        )
    };
    assert_no_alloc("cache", make, exercise_cache);
}

fn exercise_endpoints(parts: &mut ([EndpointConfig; 3], Instant)) -> usize {
    let (list, t0) = parts;
    let mut now = *t0;
    let mut work = 0;
    let config = EndpointsConfig {
        seed: 3,
        ..EndpointsConfig::default()
    };
    let mut e = Endpoints::<4>::new(now, config, &list[..]).expect("valid");
    work += log(&Endpoints::<2>::new(now, config, &list[..]).expect_err("too many"));
    let drain = |e: &mut Endpoints<4>| {
        let mut n = 0;
        while let Some(ev) = e.poll_event() {
            n += log(&ev) + log_display(&ev);
        }
        n
    };
    for i in 0..30 {
        let Some(s) = e.select(now) else {
            now += ms(500);
            e.handle_timeout(now);
            while let Some(check) = e.poll_transmit(now) {
                e.handle_check_result(now, check.id, true).expect("known");
            }
            continue;
        };
        work += s.index() + s.permit().id() as usize;
        let outcome = if i % 5 == 0 {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        if let Some(hedge) = e.next_after(now, s.index()) {
            assert_ne!(hedge.index(), s.index());
            e.record(now, hedge, Outcome::Ignored).expect("recorded");
        }
        let _ = e.record(now + ms(30), s, outcome);
        // Checks: answer some, fail some, let some time out.
        while let Some(check) = e.poll_transmit(now) {
            work += check.index;
            match (i + check.index) % 3 {
                0 => e.handle_check_result(now, check.id, true).expect("known"),
                1 => e.handle_check_result(now, check.id, false).expect("known"),
                _ => {}
            }
        }
        work += drain(&mut e);
        if let Some(t) = e.poll_timeout() {
            now = now.max(t.min(now + Duration::from_secs(3)));
        }
        now += ms(100);
        e.handle_timeout(now);
    }
    work += log(&e
        .handle_check_result(now, 999_999, true)
        .expect_err("unknown"));
    for i in 0..3 {
        e.breaker_mut(i).expect("endpoint").force_open(now);
    }
    assert!(e.select(now).is_none());
    for i in 0..3 {
        work += e.health(i).map_or(0, |h: Health| log_display(&h));
        work += e.breaker_state(i).map_or(0, |s| log_display(&s));
        work += e.endpoint(i).map_or(0, log);
    }
    work + drain(&mut e) + e.dropped_events() as usize
}

#[test]
fn endpoints_never_allocate() {
    let make = || {
        let url = |s: &str| s.parse().expect("valid");
        (
            [
                EndpointConfig::new(url("http://127.0.0.1:18201"), 0),
                EndpointConfig::new(url("http://127.0.0.1:18202/base"), 0),
                EndpointConfig::new(url("https://backup.service.internal"), 1),
            ],
            Instant::from_secs(10),
        )
    };
    assert_no_alloc("endpoints", make, exercise_endpoints);
}

fn exercise_feedback(t0: &mut Instant) -> usize {
    let mut now = *t0;
    let mut work = 0;
    let config = FeedbackConfig {
        batch_size: 8,
        ..FeedbackConfig::default()
    };
    let mut q = FeedbackQueue::<16>::new(config).expect("valid");
    let mut out = [0u8; 8192];
    let drain = |q: &mut FeedbackQueue<16>| {
        let mut n = 0;
        while let Some(e) = q.poll_event() {
            n += log(&e);
        }
        n
    };
    for i in 0..20 {
        q.report(now, a_feedback(i, i % 4 != 0, None)); // 4 dropped
    }
    work += drain(&mut q);
    let t = q.poll_transmit(now, &mut out).expect("a full batch is due");
    assert_eq!(t.count, 8);
    work += t.len + log(&t.id);
    q.handle_send_failed(now, t.id, Some(Duration::from_secs(3)))
        .expect("in flight");
    assert!(q.poll_transmit(now, &mut out).is_none(), "backing off");
    now = q.poll_timeout().expect("retry time");
    q.handle_timeout(now);
    let t = q.poll_transmit(now, &mut out).expect("retry");
    q.handle_sent(now, t.id).expect("in flight");
    work += log(&q.handle_sent(now, t.id).expect_err("twice"));
    // A batch never acknowledged times out and is retried.
    let t = q.poll_transmit(now, &mut out).expect("next batch");
    now = q.poll_timeout().expect("ack deadline");
    q.handle_timeout(now);
    work += t.len;
    now = q.poll_timeout().expect("retry time");
    let t = q.poll_transmit(now, &mut out).expect("retry");
    q.handle_sent(now, t.id).expect("in flight");
    // A buffer too small for one event.
    q.report(
        now,
        a_feedback(99, false, Some(ErrorCategory::ProxyConnect)),
    );
    now += Duration::from_secs(2);
    assert!(q.poll_transmit(now, &mut [0u8; 16]).is_none());
    work += drain(&mut q);
    // Shutdown: everything queued comes out.
    for i in 0..5 {
        q.report(now, a_feedback(i, true, None));
    }
    let mut drained = 0;
    for f in q.drain() {
        work += log(&f);
        drained += 1;
    }
    assert_eq!(drained, 6);
    let stats = q.stats();
    assert!(stats.is_conserved());
    work + drained + log(&stats) + drain(&mut q)
}

#[test]
fn feedback_queue_never_allocates() {
    assert_no_alloc("feedback", || Instant::from_secs(70), exercise_feedback);
}

type TestPool = Pool<64>;

fn pool_config() -> PoolConfig {
    let policy = |name: &str, strategy| ExchangePolicy {
        strategy: Some(strategy),
        ..ExchangePolicy::new(ExchangeId::new(name).expect("valid"), FallbackPolicy::Fail)
    };
    PoolConfig {
        strategy: StrategyKind::RoundRobin,
        eject_consecutive_failures: 2,
        probe_interval: Some(Duration::from_secs(5)),
        exchange_policies: heapless::Vec::from_slice(&[
            policy("kraken", StrategyKind::LeastConnections),
            policy("bybit", StrategyKind::Weighted),
            policy("coinbase", StrategyKind::Sticky),
            policy("okx", StrategyKind::Random),
        ])
        .expect("fits"),
        ..PoolConfig::default()
    }
}

fn inventory(n: usize) -> Vec<ProxySpec> {
    (0..n)
        .map(|i| {
            let spec = ProxySpec::new(
                ProxyId::new(&format!("p{i}")).expect("valid"),
                ProxyUrl::parse(&format!("http://user:pw@10.0.0.{i}:3128")).expect("valid"),
            )
            .with_region(Region::new(if i % 2 == 0 { "us-east-1" } else { "eu-west-1" }).unwrap())
            .with_weight(1 + i as u16 % 3);
            if i == 5 {
                spec.with_max_connections(1)
            } else {
                spec
            }
        })
        .collect()
}

fn exercise_pool(parts: &mut (Box<TestPool>, Vec<ProxySpec>, Vec<ProxySpec>)) -> usize {
    let (pool, full, smaller) = parts;
    let mut now = Instant::from_secs(1_000);
    let mut work = 0;
    let change = pool.replace_inventory(now, full).expect("valid");
    work += log(&change);
    let drain = |pool: &mut TestPool| {
        let mut n = 0;
        while let Some(e) = pool.poll_event() {
            n += log(&e);
        }
        n
    };
    let client = ClientId::new("c1").expect("valid");
    let exchanges = ["binance", "kraken", "bybit", "coinbase", "okx"];
    let mut ejected = 0;
    for round in 0..40 {
        let ex = ExchangeId::new(exchanges[round % 5]).expect("valid");
        let mut req = ProxyRequest::new(ex.clone(), ConnectionType::Websocket, client.clone());
        if round % 3 == 0 {
            req.region = Some(Region::new("eu-west-1").expect("valid"));
        }
        let answer = pool.select(now, &req);
        work += log(&answer);
        let Some(id) = answer.metadata.proxy_id.clone() else {
            continue;
        };
        let mut f = a_feedback(round as u32 * 10, true, None);
        f.exchange_id = ex;
        f.proxy_id = Some(id);
        f.proxy_url = None;
        f.event = FeedbackEvent::ConnectStart;
        pool.handle_feedback(now, &f).expect("known proxy");
        (f.event, f.success, f.error_category) = match round % 6 {
            0 => (
                FeedbackEvent::Failure,
                false,
                Some(ErrorCategory::ProxyConnect),
            ),
            1 => (
                FeedbackEvent::Failure,
                false,
                Some(ErrorCategory::GeoBlocked),
            ),
            2 => (
                FeedbackEvent::Failure,
                false,
                Some(ErrorCategory::RateLimited),
            ),
            3 => (FeedbackEvent::Timeout, false, None),
            4 => (FeedbackEvent::Disconnect, true, None),
            _ => (FeedbackEvent::Success, true, None),
        };
        pool.handle_feedback(now, &f).expect("known proxy");
        ejected = ejected.max(pool.stats().ejected);
        work += drain(pool);
        while let Some(probe) = pool.poll_transmit(now) {
            work += log(&probe);
            work += usize::from(pool.handle_probe_result(now, probe.token, round % 2 == 0));
        }
        now += ms(700);
        pool.handle_timeout(now);
    }
    let unknown = a_feedback(1, false, Some(ErrorCategory::ProxyAuth));
    work += log(&pool
        .handle_feedback(now, &unknown)
        .expect_err("unknown proxy"));
    // The status snapshot.
    for status in pool.proxies(now) {
        work += log(&status) + log_display(&status.state);
        work += status
            .recent_failures
            .iter()
            .map(|(_, n)| n as usize)
            .sum::<usize>();
    }
    let p0 = ProxyId::new("p0").expect("valid");
    work += pool.proxy(now, &p0).map_or(0, |s| log(&s));
    work += log(&pool.stats()) + pool.events_dropped() as usize;
    // A reload with fewer proxies; timers run out.
    work += log(&pool.replace_inventory(now, smaller).expect("valid"));
    while let Some(t) = pool.poll_timeout() {
        if t > now + Duration::from_secs(7200) {
            break;
        }
        now = now.max(t) + ms(1);
        pool.handle_timeout(now);
        work += drain(pool);
    }
    assert!(pool.proxies(now).all(|s| s.state != ProxyState::Disabled));
    assert!(ejected > 0, "the sequence ejected no proxy");
    work + drain(pool)
}

#[test]
fn pool_never_allocates() {
    let make = || {
        (
            Box::new(TestPool::new(pool_config()).expect("valid")),
            inventory(12),
            inventory(6),
        )
    };
    assert_no_alloc("pool", make, exercise_pool);
}

type TestSettings = ProxySettings<8, 4>;

fn settings() -> Box<TestSettings> {
    let url = |s: &str| ProxyUrl::parse(s).expect("valid");
    let pool = |strategy| {
        ProxyConfig::pool(
            ProxyPool::new(
                [
                    PoolProxy::new(url("socks5://u:p@pool-a:1080")),
                    PoolProxy::new(url("socks5://u:p@pool-b:1080")),
                    PoolProxy::new(url("socks5://u:p@pool-c:1080")),
                ],
                strategy,
            )
            .expect("valid"),
        )
    };
    let mut s = Box::new(TestSettings::default());
    s.enabled = true;
    s.set_seed(9);
    s.default.http = Some(ProxyConfig::url(url("http://default:8080")));
    s.default.websocket = Some(pool(PoolStrategy::RoundRobin));
    let entries = [
        ("binance", Some(pool(PoolStrategy::LeastConnections)), None),
        (
            "kraken",
            Some(pool(PoolStrategy::Random)),
            Some(ProxyConfig::default()),
        ),
        (
            "coinbase",
            None,
            Some(ProxyConfig::url(url("http://cb:3128"))),
        ),
    ];
    for (name, websocket, http) in entries {
        s.insert_exchange(
            ExchangeId::new(name).expect("valid"),
            ConnectionProxies { http, websocket },
        )
        .expect("fits");
    }
    s
}

fn exercise_settings(s: &mut Box<TestSettings>) -> usize {
    let mut work = 0;
    let names = ["binance", "KRAKEN", "coinbase", "bybit"];
    let pool_b = ProxyUrl::parse("socks5://pool-b:1080").expect("valid");
    for round in 0..30 {
        let ex = ExchangeId::new(names[round % 4]).expect("valid");
        for ct in [ConnectionType::Websocket, ConnectionType::Http] {
            work += s
                .entry(&ex, ct)
                .map_or(0, |e| usize::from(e.is_direct()) + 1);
            let lease = match s.resolve(&ex, ct) {
                Some(pick) => {
                    work += log_display(pick.proxy_url) + usize::from(pick.timeout_seconds);
                    pick.lease
                }
                None => None,
            };
            if let Some(lease) = lease
                && round % 2 == 0
            {
                s.release(lease);
            }
            work += s.embedded_route(&ex, ct).map_or(0, |r| log(&r));
        }
        if round == 10 {
            work += s.set_health(&pool_b, false);
        }
        if round == 20 {
            work += s.set_health(&pool_b, true);
        }
        let binance = ExchangeId::new("binance").expect("valid");
        work += usize::from(s.release_url(&binance, ConnectionType::Websocket, &pool_b));
    }
    // Filling in place (what the loader does) does not allocate either.
    let bybit = ExchangeId::new("bybit").expect("valid");
    let entry = s.exchange_entry(bybit.clone()).expect("fits");
    let websocket = entry.websocket.get_or_insert_with(ProxyConfig::default);
    work += websocket
        .set_pool([PoolProxy::new(pool_b.clone())], PoolStrategy::RoundRobin)
        .map_or(0, |p| p.proxies().len());
    work += s
        .resolve(&bybit, ConnectionType::Websocket)
        .map_or(0, |p| usize::from(p.proxy_url.port()));
    let binance = ExchangeId::new("binance").expect("valid");
    let leases = s
        .exchange(&binance)
        .and_then(|c| c.websocket.as_ref())
        .and_then(|p| p.pool.as_ref())
        .map_or(0, |p| p.leases().iter().sum::<u32>() as usize);
    work + leases + s.exchanges().count()
}

#[test]
fn settings_resolution_never_allocates() {
    assert_no_alloc("settings", settings, exercise_settings);
}

type TestResolver = Resolver<TestSettings, 16, 4, 64>;

const SERVICE_ANSWER: &[u8] = br#"{"proxy_url":"socks5://user:pw@svc-proxy:1080","strategy":"round_robin","ttl_seconds":5,"fallback_policy":"embedded_fallback","metadata":{"proxy_id":"svc-1"}}"#;

/// Drains every output of the resolver as an adapter would, answering health
/// checks and feedback batches with 200 and resolves as `answer` says.
fn drive(
    r: &mut TestResolver,
    now: Instant,
    out: &mut [u8],
    last: &mut Option<CorrelationId>,
    mut answer: impl FnMut(usize) -> Option<Reply<'static>>,
) -> usize {
    let mut work = 0;
    let mut resolves = 0;
    loop {
        let t = match r.poll_output(now, out) {
            Output::Transmit(t) => t,
            Output::Answer(a) => {
                work += log(&a);
                continue;
            }
            Output::Event(e) => {
                work += log(&e);
                continue;
            }
            Output::Timeout(_) => break,
        };
        work += t.len + log_display(&t.id) + log(&t.kind);
        let reply = match t.kind {
            TransmitKind::Resolve => {
                resolves += 1;
                answer(resolves)
            }
            _ => Some(Reply::Ok(b"{}")),
        };
        if let Some(reply) = reply {
            r.handle_reply(now, t.id, reply).expect("known id");
            *last = Some(t.id);
        }
    }
    work
}

/// Fires every timer due up to `until`, answering resolves with `reply`.
fn run_until(
    r: &mut TestResolver,
    now: &mut Instant,
    until: Instant,
    out: &mut [u8],
    last: &mut Option<CorrelationId>,
    reply: Option<Reply<'static>>,
) -> usize {
    let mut work = 0;
    for _ in 0..100 {
        match r.poll_timeout() {
            Some(t) if t <= until => {
                *now = (*now).max(t);
                r.handle_timeout(*now);
                work += drive(r, *now, out, last, |_| reply);
            }
            _ => break,
        }
    }
    *now = until;
    r.handle_timeout(until);
    work + drive(r, until, out, last, |_| reply)
}

fn exercise_resolver(r: &mut Box<TestResolver>) -> usize {
    let r: &mut TestResolver = r;
    let t0 = Instant::from_secs(10_000);
    let mut now = t0;
    let mut work = 0;
    let mut out = [0u8; MIN_TRANSMIT_BUFFER];
    let mut last = None;
    let client = ClientId::new("c1").expect("valid");
    let binance = ProxyRequest::new(
        ExchangeId::new("binance").expect("valid"),
        ConnectionType::Websocket,
        client.clone(),
    );
    let kraken = ProxyRequest::new(
        ExchangeId::new("kraken").expect("valid"),
        ConnectionType::Websocket,
        client.clone(),
    );
    let coinbase = ProxyRequest::new(
        ExchangeId::new("coinbase").expect("valid"),
        ConnectionType::Http,
        client,
    );
    // A miss, the service's reply, then a hit.
    assert!(matches!(r.resolve(now, &binance), Resolution::Pending(_)));
    assert!(
        matches!(r.resolve(now, &binance), Resolution::Pending(_)),
        "joins"
    );
    work += drive(r, now, &mut out, &mut last, |_| {
        Some(Reply::Ok(SERVICE_ANSWER))
    });
    match r.resolve(now, &binance) {
        Resolution::Ready(route) => work += log(&route),
        other => panic!("expected a hit: {other:?}"),
    }
    // A malformed answer, a 503 and a retry; then a hedge on a slow endpoint.
    assert!(matches!(r.resolve(now, &kraken), Resolution::Pending(_)));
    work += drive(r, now, &mut out, &mut last, |n| match n {
        1 => Some(Reply::Ok(b"{\"proxy_url\": 4")),
        _ => Some(Reply::Status {
            code: 503,
            retry_after: Some(Duration::from_secs(1)),
        }),
    });
    now += Duration::from_secs(2);
    r.handle_timeout(now);
    assert!(matches!(r.resolve(now, &coinbase), Resolution::Pending(_)));
    work += drive(r, now, &mut out, &mut last, |_| None);
    // The deadline passes: the fallback (embedded for coinbase); a hedge goes out.
    work += run_until(
        r,
        &mut now,
        t0 + ms(3_000),
        &mut out,
        &mut last,
        Some(Reply::Failed),
    );
    // Refresh-ahead: 82% into binance's TTL (5 s) a hit also sends a refresh,
    // which gets no answer.
    work += run_until(r, &mut now, t0 + ms(4_100), &mut out, &mut last, None);
    match r.resolve(now, &binance) {
        Resolution::Ready(route) => work += log(&route),
        other => panic!("expected a hit: {other:?}"),
    }
    work += drive(r, now, &mut out, &mut last, |_| None);
    // Expired: the resolve joins the refresh, which times out: stale.
    work += run_until(r, &mut now, t0 + ms(6_000), &mut out, &mut last, None);
    assert!(matches!(r.resolve(now, &binance), Resolution::Pending(_)));
    work += run_until(r, &mut now, t0 + ms(7_000), &mut out, &mut last, None);
    // The next miss is answered by the service.
    let _ = r.resolve(now, &binance);
    work += drive(r, now, &mut out, &mut last, |_| {
        Some(Reply::Ok(SERVICE_ANSWER))
    });
    // Reports: a proxy failure invalidates; feedback goes out in a batch.
    for i in 0..10 {
        let mut f = a_feedback(i, i % 2 == 0, Some(ErrorCategory::ProxyConnect));
        f.proxy_id = Some(ProxyId::new("svc-1").expect("valid"));
        r.report(now, f);
    }
    now += Duration::from_secs(2);
    r.handle_timeout(now);
    work += drive(r, now, &mut out, &mut last, |_| {
        Some(Reply::Ok(SERVICE_ANSWER))
    });
    // Breakers forced open: the fallback is ready at once.
    for i in 0..2 {
        r.breaker_mut(i).expect("endpoint").force_open(now);
    }
    for req in [&binance, &kraken, &coinbase] {
        match r.resolve(now, req) {
            Resolution::Ready(route) => work += log(&route.to_owned()),
            Resolution::Failed(e) => work += log_display(&e),
            Resolution::Pending(_) => panic!("no endpoint can be asked"),
        }
    }
    // An id already answered is unknown and changes nothing.
    let stats = r.stats();
    let answered = last.expect("something was answered");
    let unknown = r
        .handle_reply(now, answered, Reply::Failed)
        .expect_err("unknown");
    assert_eq!(r.stats(), stats);
    work += log(&unknown) + log_display(&unknown);
    // The sequence went through every path it means to.
    let stats = r.stats();
    for (source, count) in ["service", "cache", "stale", "embedded", "direct"]
        .iter()
        .zip(stats.resolved)
    {
        if *source != "direct" {
            assert!(count > 0, "no {source} route in the sequence: {stats:?}");
        }
    }
    assert!(stats.hedges > 0 && stats.retries > 0, "{stats:?}");
    assert!(r.feedback_stats().sent > 0, "{:?}", r.feedback_stats());
    work += log(&stats) + log(&r.feedback_stats()) + r.flights();
    r.report(now, a_feedback(1, true, None));
    for f in r.drain_feedback() {
        work += log(&f);
    }
    assert_eq!(r.feedback_stats().queued, 0);
    work
}

#[test]
fn resolver_never_allocates() {
    // Built on the heap by `new_boxed`, before the counted region: no large
    // stack needed.
    let make = || {
        let mut config = ResolverConfig::new(ClientId::new("no-alloc").expect("valid"));
        config.endpoints.check_jitter_percent = 0;
        // The sequence below is timed for a 2 s request timeout.
        config.request_timeout = embassy_time::Duration::from_secs(2);
        let list = [
            EndpointConfig::new("http://127.0.0.1:18301".parse().expect("valid"), 0),
            EndpointConfig::new("http://127.0.0.1:18302".parse().expect("valid"), 0),
        ];
        TestResolver::new_boxed(Instant::from_secs(10_000), config, &list, *settings())
            .expect("valid")
    };
    assert_no_alloc("resolver", make, exercise_resolver);
}
