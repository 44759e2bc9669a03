//! Parses arbitrary text as a `ProxyUrl`: parsing must never panic; a URL it
//! accepts must parse back from its exposed form and never show its password
//! in `Display`/`Debug`; an error must echo nothing but a scheme.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_delegate_fuzz::parse_url;

// Invalid UTF-8 is replaced rather than skipped, so that every input is used.
fuzz_target!(|data: &[u8]| parse_url(&String::from_utf8_lossy(data)));
