//! Reading request bodies: the 64 KiB limit, gzip, the two wire formats,
//! and the mapping of every decoding failure to its status.
//!
//! Where each part lives:
//!
//! * `body/wire.rs`: [`Wire`], the format of a request and of its answer;
//! * `body/read.rs`: [`read`], the limit, `Content-Encoding` and gzip;
//! * `body/decode.rs`: [`decode_one`], [`decode_batch`] and the
//!   status and message of every decoding failure;
//! * `body/strict.rs`: the deserializer wrapper that reads structs only
//!   from JSON objects, as the core does.

mod decode;
mod read;
mod strict;
#[cfg(test)]
mod test_support;
mod wire;

/// Largest request body accepted, before and after gzip decompression.
pub use proxy_delegate_core::contract::MAX_BODY;
/// The wire formats' media types.
pub use proxy_delegate_core::contract::{JSON, POSTCARD};

pub(crate) use decode::{decode_batch, decode_one};
pub(crate) use read::read;
pub(crate) use wire::Wire;
