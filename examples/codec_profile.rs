//! Exact instruction counts for one decode, to see where a decode's time goes
//! without the noise a timed bench sees on a shared machine: decodes one of
//! the published bodies `N` times in one format.
//!
//! ```text
//! cargo build --release --example codec_profile
//! valgrind --tool=callgrind target/release/examples/codec_profile postcard response 0
//! valgrind --tool=callgrind target/release/examples/codec_profile postcard response 20000
//! ```
//!
//! (total with 20,000 decodes − total with 0) / 20,000 = instructions per
//! decode. Formats: `json`, `postcard`; messages: `response`, `request`, `feedback`.

// A measuring tool: its one line of output is the count on stdout.
#![allow(clippy::print_stdout)]

use std::hint::black_box;

use proxy_delegate_core::codec::{self, Message};
use proxy_delegate_core::model::{ProxyFeedback, ProxyRequest, ProxyResponse};
use proxy_delegate_tests::{FEEDBACK_JSON, REQUEST_JSON, RESPONSE_JSON};

fn run<M: Message>(
    format: &str,
    json: &str,
    n: usize,
) -> Result<usize, Box<dyn std::error::Error>> {
    let msg: M = codec::json::decode(json.as_bytes())?;
    let mut buf = [0u8; 1024];
    let len = codec::postcard::encode(&msg, &mut buf)?;
    let postcard = &buf[..len];
    let mut ok = 0;
    for _ in 0..n {
        let decoded = match format {
            "json" => codec::json::decode::<M>(black_box(json.as_bytes())).is_ok(),
            "postcard" => codec::postcard::decode::<M>(black_box(postcard)).is_ok(),
            other => return Err(format!("unknown format {other:?}").into()),
        };
        ok += usize::from(black_box(decoded));
    }
    Ok(ok)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let format = args.first().map_or("postcard", String::as_str);
    let message = args.get(1).map_or("response", String::as_str);
    let n: usize = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let ok = match message {
        "response" => run::<ProxyResponse>(format, RESPONSE_JSON, n)?,
        "request" => run::<ProxyRequest>(format, REQUEST_JSON, n)?,
        "feedback" => run::<ProxyFeedback>(format, FEEDBACK_JSON, n)?,
        other => return Err(format!("unknown message {other:?}").into()),
    };
    println!("{ok} of {n} decoded");
    Ok(())
}
