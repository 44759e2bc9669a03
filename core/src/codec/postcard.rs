//! postcard, the compact binary form (`application/x-postcard`).

use super::{DecodeError, EncodeError, Format, Message, check_len};

/// Decodes and validates one message. Trailing bytes are an error.
pub fn decode<M: Message>(input: &[u8]) -> Result<M, DecodeError> {
    check_len(Format::Postcard, input)?;
    // postcard strings are always borrowed from the input.
    let mut wire = M::Wire::default();
    let mut de = ::postcard::Deserializer::from_bytes(input);
    M::read_wire(&mut de, &mut wire).map_err(DecodeError::Postcard)?;
    let rest = de.finalize().map_err(DecodeError::Postcard)?;
    if !rest.is_empty() {
        return Err(DecodeError::Postcard(
            ::postcard::Error::DeserializeBadEncoding,
        ));
    }
    M::from_wire(&wire)
}

/// Decodes and validates the message at the start of `input` and returns
/// it with the bytes after it: a stream of concatenated messages (the
/// feedback endpoint's postcard batch) is read by calling it until the
/// rest is empty. No length limit applies to `input` as a whole; each
/// message is bounded by the model's own bounds.
pub fn take<M: Message>(input: &[u8]) -> Result<(M, &[u8]), DecodeError> {
    let mut wire = M::Wire::default();
    let mut de = ::postcard::Deserializer::from_bytes(input);
    M::read_wire(&mut de, &mut wire).map_err(DecodeError::Postcard)?;
    let rest = de.finalize().map_err(DecodeError::Postcard)?;
    Ok((M::from_wire(&wire)?, rest))
}

/// Encodes one message into `out`, returning the length written.
pub fn encode<M: Message>(msg: &M, out: &mut [u8]) -> Result<usize, EncodeError> {
    let capacity = out.len();
    ::postcard::to_slice(msg, out)
        .map(|written| written.len())
        .map_err(|e| match e {
            ::postcard::Error::SerializeBufferFull => EncodeError::BufferTooSmall {
                format: Format::Postcard,
                capacity,
            },
            _ => EncodeError::Other {
                format: Format::Postcard,
            },
        })
}

/// Encodes as many of `msgs` as fit into `out`, one after another (the
/// feedback endpoint's postcard batch), returning how many were written
/// and their length; an error when not even the first fits.
pub fn encode_prefix<M: Message>(
    msgs: &[M],
    out: &mut [u8],
) -> Result<(usize, usize), EncodeError> {
    encode_prefix_with(msgs, out, encode)
}

/// [`encode_prefix`] with each item's own encoder (a packed message copies
/// its bytes).
pub(crate) fn encode_prefix_with<T>(
    items: &[T],
    out: &mut [u8],
    encode: impl Fn(&T, &mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(usize, usize), EncodeError> {
    let mut len = 0;
    for (i, item) in items.iter().enumerate() {
        match encode(item, &mut out[len..]) {
            Ok(n) => len += n,
            Err(e) if i == 0 => {
                return Err(match e {
                    EncodeError::BufferTooSmall { format, .. } => EncodeError::BufferTooSmall {
                        format,
                        capacity: out.len(),
                    },
                    other => other,
                });
            }
            Err(_) => return Ok((i, len)),
        }
    }
    Ok((items.len(), len))
}

#[cfg(test)]
mod tests {
    use crate::codec::json;
    use crate::codec::postcard;
    use crate::codec::samples::RESPONSE;
    use crate::model::ProxyResponse;

    /// postcard text is borrowed from the input, and round-trips.
    #[test]
    fn postcard_round_trip_borrows() {
        let msg: ProxyResponse = json::decode(RESPONSE.as_bytes()).unwrap();
        let mut buf = [0u8; 512];
        let n = postcard::encode(&msg, &mut buf).unwrap();
        assert_eq!(postcard::decode::<ProxyResponse>(&buf[..n]).unwrap(), msg);
    }
}
