//! [Switchboard patch] Inflating permessage-deflate (RFC 7692) messages sent without context
//! takeover: each message is a raw DEFLATE stream of its own, so one decompressor per thread,
//! reset for each message, serves every connection (no per-connection window).

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Decompress, FlushDecompress, Status};

use crate::error::{CapacityError, Error, ProtocolError, Result};

/// What the sender removed from the end of the compressed message (RFC 7692, 7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

thread_local! {
    static INFLATER: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// Inflate one message; more than `max_size` inflated bytes is a capacity error, found
/// before more than `max_size + 1` bytes are held (a small message that inflates to gigabytes
/// costs no more memory than the limit).
pub(crate) fn inflate(compressed: &[u8], max_size: Option<usize>) -> Result<Bytes> {
    let limit = max_size.unwrap_or(usize::MAX);
    INFLATER.with(|inflater| {
        let mut inflater = inflater.borrow_mut();
        inflater.reset(false);
        let mut out = Vec::with_capacity(compressed.len().saturating_mul(2).clamp(64, limit.saturating_add(1)));
        for mut input in [compressed, &TAIL[..]] {
            loop {
                if out.len() == out.capacity() {
                    let room = limit.saturating_add(1) - out.len();
                    out.reserve(out.len().clamp(4096, 1 << 20).min(room.max(1)));
                }
                let (read, written) = (inflater.total_in(), out.len());
                let status = inflater
                    .decompress_vec(input, &mut out, FlushDecompress::None)
                    .map_err(|_| Error::Protocol(ProtocolError::InvalidCompressedData))?;
                if out.len() > limit {
                    return Err(Error::Capacity(CapacityError::MessageTooLong { size: out.len(), max_size: limit }));
                }
                input = &input[(inflater.total_in() - read) as usize..];
                if status == Status::StreamEnd {
                    return Ok(Bytes::from(out));
                }
                if !input.is_empty() && out.len() == written && out.len() < out.capacity() {
                    // Input left, room to write, and no progress: it cannot be inflated.
                    return Err(Error::Protocol(ProtocolError::InvalidCompressedData));
                }
                if input.is_empty() && out.len() < out.capacity() {
                    break;
                }
            }
        }
        Ok(Bytes::from(out))
    })
}

