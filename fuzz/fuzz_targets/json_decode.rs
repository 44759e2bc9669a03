//! Decodes arbitrary bytes as every message with `codec::json`: decoding must
//! never panic, and every value it accepts must round-trip and keep its
//! password out of `Display`/`Debug` (see the oracles in `src/lib.rs`).
//! The input is decoded as is and also spliced into the published bodies
//! (`json_target`), so that valid messages are reached without a corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_delegate_fuzz::json_target;

fuzz_target!(|data: &[u8]| json_target(data));
