//! What the firmware costs: the sizes of the core's types for the gateway
//! profile (checked at compile time against their budgets), and the stack's
//! high-water mark (measured by painting the free stack at boot).

use core::mem::size_of;

use cortex_m_semihosting::hprintln;
use proxy_delegate_core::model::{ProxyFeedback, ProxyRequest, ProxyResponse, ProxyUrl};

use proxy_delegate_core::resolver::Resolver;

use crate::{GatewayResolver, Keeping, ProfileResolver, Settings};
use proxy_delegate_core::storage::Inline;

// ---------------------------------------------------------------- budgets
//
// A ratchet: each budget is today's size on thumbv7em-none-eabihf, so that a
// type that grows fails the build here. Lower a budget when the type
// shrinks. Issue 16's target is the gateway-profile Resolver in at most
// 32 KiB (32,768 B) of RAM: met since the Resolver keeps its messages packed
// (`keep::Compact`), and held by an assertion of its own below.

/// Budget of the gateway-profile Resolver (no embedded configuration).
pub const PROFILE_RESOLVER_BUDGET: usize = 32_512;
/// Budget of the firmware's Resolver (the profile, with the embedded
/// configuration lent by a pointer).
pub const GATEWAY_RESOLVER_BUDGET: usize = 32_520;
/// Budget of the embedded configuration (2 exchanges, pools of 2).
pub const SETTINGS_BUDGET: usize = 15_704;
/// Budget of a `ProxyRequest`.
pub const PROXY_REQUEST_BUDGET: usize = 3_164;
/// Budget of a `ProxyResponse`.
pub const PROXY_RESPONSE_BUDGET: usize = 732;
/// Budget of a `ProxyFeedback`.
pub const PROXY_FEEDBACK_BUDGET: usize = 1_352;
/// Budget of a `ProxyUrl`.
pub const PROXY_URL_BUDGET: usize = 536;
/// Issue 16's target for the gateway-profile Resolver.
pub const PROFILE_RESOLVER_TARGET: usize = 32 * 1024;

/// What one more unit of each capacity costs in RAM, measured as the
/// difference between two Resolvers (docs/gateway.md's table).
const COSTS: [(&str, usize); 6] = [
    (
        "cached route (CACHE)",
        (size_of::<Profile<64, 2, 32, 4, 8>>() - size_of::<Base>()) / 32,
    ),
    (
        "endpoint (ENDPOINTS)",
        size_of::<Profile<32, 3, 32, 4, 8>>() - size_of::<Base>(),
    ),
    (
        "feedback event (FEEDBACK)",
        (size_of::<Profile<32, 2, 64, 4, 8>>() - size_of::<Base>()) / 32,
    ),
    (
        "request in flight (FLIGHTS)",
        (size_of::<Profile<32, 2, 32, 8, 8>>() - size_of::<Base>()) / 4,
    ),
    (
        "waiting resolve (WAITERS)",
        (size_of::<Profile<32, 2, 32, 4, 16>>() - size_of::<Base>()) / 8,
    ),
    (
        "event not yet taken (EVENTS)",
        (size_of::<Profile<32, 2, 32, 4, 8, 16>>() - size_of::<Base>()) / 8,
    ),
];

/// The gateway profile, spelled out: the base of [`COSTS`].
type Base = Profile<32, 2, 32, 4, 8>;

/// A Resolver of the gateway's kind with other capacities.
type Profile<
    const CACHE: usize,
    const ENDPOINTS: usize,
    const FEEDBACK: usize,
    const FLIGHTS: usize,
    const WAITERS: usize,
    const EVENTS: usize = { crate::EVENTS },
> = Resolver<(), CACHE, ENDPOINTS, FEEDBACK, FLIGHTS, WAITERS, Inline, Keeping, EVENTS>;

/// One checked size: (name, size, budget).
const SIZES: [(&str, usize, usize); 7] = [
    (
        "the gateway-profile Resolver",
        size_of::<ProfileResolver>(),
        PROFILE_RESOLVER_BUDGET,
    ),
    (
        "the firmware's Resolver",
        size_of::<GatewayResolver>(),
        GATEWAY_RESOLVER_BUDGET,
    ),
    (
        "ProxySettings<2, 2>",
        size_of::<Settings>(),
        SETTINGS_BUDGET,
    ),
    (
        "ProxyRequest",
        size_of::<ProxyRequest>(),
        PROXY_REQUEST_BUDGET,
    ),
    (
        "ProxyResponse",
        size_of::<ProxyResponse>(),
        PROXY_RESPONSE_BUDGET,
    ),
    (
        "ProxyFeedback",
        size_of::<ProxyFeedback>(),
        PROXY_FEEDBACK_BUDGET,
    ),
    ("ProxyUrl", size_of::<ProxyUrl>(), PROXY_URL_BUDGET),
];

// The build fails when a type grows past its budget, or the gateway-profile
// Resolver past the target.
const _: () = assert!(
    size_of::<ProfileResolver>() <= PROFILE_RESOLVER_TARGET,
    "the gateway-profile Resolver needs more than 32 KiB of RAM (footprint.rs)"
);
const _: () = assert!(
    size_of::<ProfileResolver>() <= PROFILE_RESOLVER_BUDGET,
    "the gateway-profile Resolver grew past its budget (footprint.rs)"
);
const _: () = assert!(
    size_of::<GatewayResolver>() <= GATEWAY_RESOLVER_BUDGET,
    "the firmware's Resolver grew past its budget (footprint.rs)"
);
const _: () = assert!(
    size_of::<Settings>() <= SETTINGS_BUDGET,
    "ProxySettings<2, 2> grew past its budget (footprint.rs)"
);
const _: () = assert!(
    size_of::<ProxyRequest>() <= PROXY_REQUEST_BUDGET,
    "ProxyRequest grew past its budget (footprint.rs)"
);
const _: () = assert!(
    size_of::<ProxyResponse>() <= PROXY_RESPONSE_BUDGET,
    "ProxyResponse grew past its budget (footprint.rs)"
);
const _: () = assert!(
    size_of::<ProxyFeedback>() <= PROXY_FEEDBACK_BUDGET,
    "ProxyFeedback grew past its budget (footprint.rs)"
);
const _: () = assert!(
    size_of::<ProxyUrl>() <= PROXY_URL_BUDGET,
    "ProxyUrl grew past its budget (footprint.rs)"
);

// ---------------------------------------------------------------- the stack

/// The pattern the free stack is painted with.
const PAINT: u32 = 0xC0DE_57AC;
/// Bytes left unpainted below the stack pointer at the time of painting.
const MARGIN: usize = 256;

unsafe extern "C" {
    /// Top of the stack (cortex-m-rt's link.x: the end of RAM).
    static _stack_start: u32;
    /// Lowest address the stack may reach (the end of the statics).
    static _stack_end: u32;
    /// The stack room memory.x reserves (an absolute symbol: its address is
    /// the number of bytes).
    static _stack_reserve: u32;
}

fn stack_bounds() -> (usize, usize) {
    (
        &raw const _stack_end as usize,
        &raw const _stack_start as usize,
    )
}

/// Paints the free stack, from its lowest address up to just below the
/// current stack pointer, so that [`report`] can find how deep it went.
pub fn paint_stack() {
    let (bottom, _) = stack_bounds();
    let sp = cortex_m::register::msp::read() as usize;
    let mut p = bottom;
    while p + 4 <= sp.saturating_sub(MARGIN) {
        // SAFETY: [bottom, sp - MARGIN) is RAM between the statics and the
        // live stack frames, unused by anything (no interrupts run).
        #[allow(unsafe_code)]
        unsafe {
            core::ptr::write_volatile(p as *mut u32, PAINT);
        }
        p += 4;
    }
}

/// Deepest the stack has gone since [`paint_stack`], in bytes.
pub fn stack_high_water() -> usize {
    let (bottom, top) = stack_bounds();
    let mut p = bottom;
    // SAFETY: reads RAM inside the stack region painted at boot.
    #[allow(unsafe_code)]
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    top - p
}

/// Whether a stack high-water mark fits in what memory.x reserves for the
/// stack (and in the free RAM). Past it the stack has run into the
/// statics (the embedded configuration lies next to it): checked right
/// after setup, so that an overflow is reported as one and not as the
/// wrong answer of a later step.
pub fn within_reserve(high_water: usize) -> bool {
    let (bottom, top) = stack_bounds();
    let reserve = &raw const _stack_reserve as usize;
    high_water <= reserve && high_water < top - bottom
}

/// Prints every size with its budget, the statics and the stack; `false`
/// when the stack went deeper than memory.x reserves for it (or through all
/// of the free RAM).
pub fn report(setup_stack: usize, driving_stack: usize) -> bool {
    for (name, size, budget) in SIZES {
        hprintln!("size {}: {} B (budget {} B)", name, size, budget);
    }
    for (name, cost) in COSTS {
        hprintln!("cost of one more {}: {} B", name, cost);
    }
    let (bottom, top) = stack_bounds();
    hprintln!(
        "ram: statics end at {:#010x}; stack high-water {} B while building, {} B while driving, of {} B free; issue target for the Resolver {} B",
        bottom,
        setup_stack,
        driving_stack,
        top - bottom,
        PROFILE_RESOLVER_TARGET
    );
    let reserve = &raw const _stack_reserve as usize;
    let deepest = setup_stack.max(driving_stack);
    if !within_reserve(deepest) {
        hprintln!(
            "FAILED: the stack went {} B deep, past the {} B memory.x reserves (_stack_reserve)",
            deepest,
            reserve
        );
        return false;
    }
    true
}
