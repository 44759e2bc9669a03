//! Decodes arbitrary bytes as every message with `codec::postcard`: decoding
//! must never panic, and every value it accepts must round-trip and keep its
//! password out of `Display`/`Debug` (see the oracles in `src/lib.rs`).
//! The input is decoded as is and also used to build and then corrupt the
//! postcard form of the published bodies (`postcard_target`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_delegate_fuzz::postcard_target;

fuzz_target!(|data: &[u8]| postcard_target(data));
