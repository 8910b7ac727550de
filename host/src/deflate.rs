//! permessage-deflate (RFC 7692) as the server speaks it: accepted when a
//! client offers it, with no context takeover either way.
//!
//! Without context takeover each message is a DEFLATE stream of its own: no
//! connection keeps a compression window (zlib's would be ≈256 KiB each, 50
//! times what an idle connection costs), one compressor per thread serves
//! them all, and a message sent to many can be compressed once and the same
//! bytes written to every recipient that speaks deflate
//! ([`crate::channel::outbox::Outgoing`]). What clients send is inflated by
//! the patched tungstenite (`vendor/tungstenite/PATCH.md`), capped at the
//! plugin's `max_message_size` (1009 beyond).

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, FlushCompress};
use hyper::HeaderMap;
use hyper::header::{HeaderValue, SEC_WEBSOCKET_EXTENSIONS};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::config::Compression;

/// The answer to an accepted offer. `client_no_context_takeover` is ours to
/// ask (RFC 7692 7.1.1.2) even when the client did not offer it, as
/// uWebSockets does: browsers comply.
pub(crate) const ACCEPTED: HeaderValue =
    HeaderValue::from_static("permessage-deflate; server_no_context_takeover; client_no_context_takeover");

/// What a sync flush ends with; the sender drops it, the receiver adds it back.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// How one connection's messages are compressed (`None`: not at all).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deflate {
    min_size: usize,
    level: u32,
}

impl Deflate {
    /// Whether to speak deflate with the client that sent `headers`.
    pub(crate) fn negotiate(settings: &Compression, headers: &HeaderMap) -> Option<Deflate> {
        let offered = headers
            .get_all(SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(acceptable);
        (settings.enabled && offered).then(|| Deflate::new(settings))
    }

    /// Compression as `settings` ask, whether or not a client offered it.
    pub(crate) fn new(settings: &Compression) -> Deflate {
        Deflate { min_size: settings.min_size, level: settings.level }
    }

    /// `message` as this connection receives it: compressed when it is a
    /// data message long enough and compression makes it shorter.
    pub(crate) fn frame(self, message: &Message) -> Message {
        let (payload, opcode) = match message {
            Message::Text(text) => (text.as_bytes(), Data::Text),
            Message::Binary(bytes) => (&bytes[..], Data::Binary),
            _ => return message.clone(),
        };
        if payload.len() < self.min_size {
            return message.clone();
        }
        match compress(payload, self.level) {
            Some(compressed) if compressed.len() < payload.len() => {
                let mut frame = Frame::message(compressed, OpCode::Data(opcode), true);
                frame.header_mut().rsv1 = true;
                Message::Frame(frame)
            }
            _ => message.clone(),
        }
    }
}

/// Whether one offer (`permessage-deflate; param; param=value`) is one we
/// can take: any `client_max_window_bits` (we inflate with the largest
/// window), but a `server_max_window_bits` below 15 would need a compressor
/// of that window, which we do not keep; unknown parameters void an offer.
fn acceptable(offer: &str) -> bool {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next().is_some_and(|name| name.eq_ignore_ascii_case("permessage-deflate")) {
        return false;
    }
    parts.all(|parameter| {
        let (name, value) = match parameter.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (parameter, None),
        };
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" | "client_no_context_takeover" => value.is_none(),
            "client_max_window_bits" => {
                value.is_none_or(|bits| bits.parse::<u8>().is_ok_and(|b| (8..=15).contains(&b)))
            }
            "server_max_window_bits" => value == Some("15"),
            _ => false,
        }
    })
}

thread_local! {
    /// One compressor per thread, reset for each message (no context
    /// takeover), and its level.
    static COMPRESSOR: RefCell<Option<(Compress, u32)>> = const { RefCell::new(None) };
}

/// Raw DEFLATE of `payload`, sync-flushed, without the flush's tail.
fn compress(payload: &[u8], level: u32) -> Option<Bytes> {
    COMPRESSOR.with(|compressor| {
        let mut compressor = compressor.borrow_mut();
        let compressor = match &mut *compressor {
            Some((compress, made_for)) if *made_for == level => {
                compress.reset();
                compress
            }
            slot => &mut slot.insert((Compress::new(flate2::Compression::new(level), false), level)).0,
        };
        // Stored blocks cost 5 bytes per 64 KiB: this always suffices.
        let mut out = Vec::with_capacity(payload.len() + payload.len() / 8192 + 64);
        let mut input = payload;
        loop {
            let read = compressor.total_in();
            compressor.compress_vec(input, &mut out, FlushCompress::Sync).ok()?;
            input = &input[usize::try_from(compressor.total_in() - read).ok()?..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity());
        }
        out.ends_with(&TAIL).then(|| {
            out.truncate(out.len() - TAIL.len());
            Bytes::from(out)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(SEC_WEBSOCKET_EXTENSIONS, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn takes_what_browsers_offer_and_refuses_what_it_cannot_honour() {
        let on = Compression::default();
        for accepted in [
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate",
            "x-webkit-deflate-frame, permessage-deflate; client_no_context_takeover; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=10, permessage-deflate",
        ] {
            assert!(Deflate::negotiate(&on, &offer(accepted)).is_some(), "{accepted}");
        }
        for refused in [
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; unknown",
            "permessage-deflate; client_max_window_bits=16",
            "x-webkit-deflate-frame",
        ] {
            assert!(Deflate::negotiate(&on, &offer(refused)).is_none(), "{refused}");
        }
        assert!(Deflate::negotiate(&on, &HeaderMap::new()).is_none());
        let off = Compression { enabled: false, ..Compression::default() };
        assert!(Deflate::negotiate(&off, &offer("permessage-deflate")).is_none());
    }

    #[test]
    fn compresses_long_messages_only_and_the_result_inflates() {
        let deflate = Deflate::new(&Compression::default());
        let long = format!(r#"{{"type":"message","text":"{}"}}"#, "hello ".repeat(50));
        let Message::Frame(frame) = deflate.frame(&Message::text(long.clone())) else { panic!("not compressed") };
        assert!(frame.header().rsv1);
        assert!(frame.payload().len() < long.len() / 4, "{} bytes", frame.payload().len());
        let mut inflater = flate2::Decompress::new(false);
        let mut inflated = Vec::with_capacity(long.len() + 16);
        let input = [frame.payload(), &TAIL[..]].concat();
        inflater.decompress_vec(&input, &mut inflated, flate2::FlushDecompress::Sync).expect("inflates");
        assert_eq!(inflated, long.as_bytes());
        let short = Message::text(r#"{"type":"message","text":"hi"}"#);
        assert_eq!(deflate.frame(&short), short);
        // Incompressible bytes are sent as they are.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        assert_eq!(deflate.frame(&Message::binary(noise.clone())), Message::binary(noise));
    }
}
