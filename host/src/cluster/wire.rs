//! How a message looks on Redis: the pub/sub channel it goes to (which
//! plugin, which room, user or the whole plugin) and its payload (which node
//! sent it, text or binary, the frame's bytes).
//!
//! Channel names are `sb:<kind>:<plugin length>:<plugin><name>`: the length
//! makes every (plugin, name) pair its own channel whatever bytes the names
//! hold, without escaping; [`CONTROL`] carries what concerns whole nodes.
//! A payload is a 10-byte header (a version, the origin node, its kind)
//! and then: a frame's payload as the client gets it (so that a publish is
//! encoded once and decoded once per node), or a presence report (sequence
//! number, connections, user), or nothing (the node is leaving).
//!
//! Presence is also kept in Redis, for the nodes that start tracking a
//! room later: a hash per room ([`presence_key`]) whose fields are
//! `<node>:<user>` and values `<connections>:<sequence number>`, and the
//! sorted set [`ALIVE`] of nodes by the time (ms) they count as dead.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;

/// Who a message is for, within one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topic<'a> {
    /// The members of a room.
    Room(&'a str),
    /// Every connection of a user (`send-to-user`).
    User(&'a str),
    /// Every connection of the plugin (`broadcast`).
    All,
}

/// The version of the payload layout; a node ignores (and counts) others.
const VERSION: u8 = 1;
/// Version, origin node (u64, little-endian), kind.
const HEADER: usize = 10;
const TEXT: u8 = 0;
const BINARY: u8 = 1;
const PRESENCE: u8 = 2;
const GONE: u8 = 3;
/// A numbered message of a history room, as the publish script sends it:
/// the header, `<epoch> <offset> <except>\n`, the text.
const HISTORY: u8 = 4;

/// The channel every node subscribes to, for news about nodes.
pub(crate) const CONTROL: &str = "sb:ctl";
/// The sorted set of live nodes, scored by when they expire (ms since the epoch).
pub(crate) const ALIVE: &str = "sb:alive";

/// What a payload carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Payload {
    /// A message for connections.
    Frame(Message),
    /// The origin now has `count` connections of `user` in the room (its
    /// report number `seq`).
    Presence { seq: u64, count: u32, user: String },
    /// The origin is leaving: its connections are gone.
    Gone,
    /// A numbered message of a history room (`except`: the connection left
    /// out, 0 for none).
    History { epoch: String, offset: u64, except: u64, text: Utf8Bytes },
}

/// The Redis hash of `room`'s presence in `plugin`.
pub(crate) fn presence_key(plugin: &str, room: &str) -> String {
    format!("sb:p:{}:{plugin}{room}", plugin.len())
}

/// The hash field of `user` on `node`.
pub(crate) fn presence_field(node: u64, user: &str) -> String {
    format!("{node}:{user}")
}

/// A presence hash entry: (node, user, connections, sequence number).
pub(crate) fn parse_presence_entry<'a>(field: &'a str, value: &str) -> Option<(u64, &'a str, u32, u64)> {
    let (node, user) = field.split_once(':')?;
    let (count, seq) = value.split_once(':')?;
    Some((node.parse().ok()?, user, count.parse().ok()?, seq.parse().ok()?))
}

/// A presence report of `origin`.
pub(crate) fn encode_presence(origin: u64, seq: u64, count: u32, user: &str) -> Bytes {
    let mut payload = header(origin, PRESENCE, 12 + user.len());
    payload.put_u64_le(seq);
    payload.put_u32_le(count);
    payload.put_slice(user.as_bytes());
    payload.freeze()
}

/// `origin` is leaving.
pub(crate) fn encode_gone(origin: u64) -> Bytes {
    header(origin, GONE, 0).freeze()
}

fn header(origin: u64, kind: u8, rest: usize) -> BytesMut {
    let mut payload = BytesMut::with_capacity(HEADER + rest);
    payload.put_u8(VERSION);
    payload.put_u64_le(origin);
    payload.put_u8(kind);
    payload
}

/// The Redis channel of `topic` in `plugin`.
pub(crate) fn channel_name(plugin: &str, topic: Topic<'_>) -> String {
    let (kind, name) = match topic {
        Topic::Room(room) => ('r', room),
        Topic::User(user) => ('u', user),
        Topic::All => ('a', ""),
    };
    format!("sb:{kind}:{}:{plugin}{name}", plugin.len())
}

/// The plugin and topic a Redis channel name stands for; `None` for a name
/// this module did not make.
pub(crate) fn parse_channel_name(name: &str) -> Option<(&str, Topic<'_>)> {
    let rest = name.strip_prefix("sb:")?;
    let (kind, rest) = rest.split_once(':')?;
    let (length, rest) = rest.split_once(':')?;
    let length: usize = length.parse().ok()?;
    let plugin = rest.get(..length)?;
    let name = rest.get(length..)?;
    let topic = match kind {
        "r" => Topic::Room(name),
        "u" => Topic::User(name),
        "a" if name.is_empty() => Topic::All,
        _ => return None,
    };
    Some((plugin, topic))
}

/// The payload carrying `frame` (a text or binary message) from node `origin`.
pub(crate) fn encode(origin: u64, frame: &Message) -> Option<Bytes> {
    let (kind, data): (u8, &[u8]) = match frame {
        Message::Text(text) => (TEXT, text.as_bytes()),
        Message::Binary(bytes) => (BINARY, bytes),
        _ => return None,
    };
    let mut payload = header(origin, kind, data.len());
    payload.put_slice(data);
    Some(payload.freeze())
}

/// The header of a history message from `origin`, which the publish
/// script completes with the position and the text.
pub(crate) fn history_header(origin: u64) -> Bytes {
    header(origin, HISTORY, 0).freeze()
}

/// The node a payload came from, read without decoding the rest (to drop a
/// node's own messages as they come back).
pub(crate) fn origin(payload: &[u8]) -> Option<u64> {
    let bytes = payload.get(1..9)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Whether the origin delivers this payload when Redis hands it back: a
/// history message is delivered only then, once numbered.
pub(crate) fn delivered_by_origin_too(payload: &[u8]) -> bool {
    payload.get(9) == Some(&HISTORY)
}

/// What a payload carries; `None` for a payload of another version or
/// kind, cut short, or text that is not UTF-8.
pub(crate) fn decode(payload: Bytes) -> Option<Payload> {
    if payload.len() < HEADER || payload[0] != VERSION {
        return None;
    }
    let kind = payload[9];
    let data = payload.slice(HEADER..);
    match kind {
        TEXT => Utf8Bytes::try_from(data).ok().map(|text| Payload::Frame(Message::Text(text))),
        BINARY => Some(Payload::Frame(Message::Binary(data))),
        PRESENCE => {
            let seq = u64::from_le_bytes(data.get(..8)?.try_into().ok()?);
            let count = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
            let user = String::from_utf8(data.get(12..)?.to_vec()).ok()?;
            Some(Payload::Presence { seq, count, user })
        }
        GONE => Some(Payload::Gone),
        HISTORY => {
            let end = data.iter().position(|byte| *byte == b'\n')?;
            let position = std::str::from_utf8(&data[..end]).ok()?;
            let mut fields = position.split(' ');
            let epoch = fields.next()?.to_owned();
            let offset = fields.next()?.parse().ok()?;
            let except = fields.next()?.parse().ok()?;
            let text = Utf8Bytes::try_from(data.slice(end + 1..)).ok()?;
            Some(Payload::History { epoch, offset, except, text })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip_whatever_the_names_hold() {
        let cases = [
            ("chat", Topic::Room("lobby")),
            ("chat", Topic::Room("")),
            ("a:b", Topic::Room("3:c")),
            ("chat", Topic::User("sb:r:4:chatx")),
            ("game", Topic::All),
            ("ünï", Topic::User("ü")),
        ];
        for (plugin, topic) in cases {
            let name = channel_name(plugin, topic);
            assert_eq!(parse_channel_name(&name), Some((plugin, topic)), "{name}");
        }
        // Plugin "ab" with room "c" and plugin "a" with room "bc" differ.
        assert_ne!(channel_name("ab", Topic::Room("c")), channel_name("a", Topic::Room("bc")));
    }

    #[test]
    fn foreign_channel_names_are_refused() {
        for name in ["", "sb:", "sb:r:", "sb:r:9:chat", "sb:x:4:chatroom", "sb:a:4:chatroom", "xx:r:4:chat", "sb:r:-1:"]
        {
            assert_eq!(parse_channel_name(name), None, "{name}");
        }
    }

    #[test]
    fn payloads_carry_text_binary_and_their_origin() {
        let text = Message::text("héllo");
        let payload = encode(42, &text).expect("text is carried");
        assert_eq!(origin(&payload), Some(42));
        assert_eq!(decode(payload), Some(Payload::Frame(text)));
        let binary = Message::binary(vec![0, 255, 7]);
        let payload = encode(u64::MAX, &binary).expect("binary is carried");
        assert_eq!(origin(&payload), Some(u64::MAX));
        assert_eq!(decode(payload), Some(Payload::Frame(binary)));
        assert_eq!(encode(1, &Message::Ping(Bytes::new())), None);
    }

    #[test]
    fn presence_reports_and_departures_round_trip() {
        let payload = encode_presence(3, 99, 2, "zoë");
        assert_eq!(origin(&payload), Some(3));
        assert_eq!(decode(payload), Some(Payload::Presence { seq: 99, count: 2, user: "zoë".into() }));
        assert_eq!(decode(encode_gone(3)), Some(Payload::Gone));
        let short = encode_presence(3, 99, 2, "x").slice(..15);
        assert_eq!(decode(short), None);
        let field = presence_field(3, "a:b");
        assert_eq!(parse_presence_entry(&field, "2:99"), Some((3, "a:b", 2, 99)));
        assert_eq!(parse_presence_entry("x:a", "2:99"), None);
        assert_eq!(parse_presence_entry(&field, "2"), None);
    }

    #[test]
    fn history_messages_carry_their_position() {
        let mut payload = history_header(5).to_vec();
        payload.extend_from_slice(b"00ff 42 7\n{\"a\":1}");
        assert_eq!(origin(&payload), Some(5));
        assert!(delivered_by_origin_too(&payload));
        assert!(!delivered_by_origin_too(&encode(5, &Message::text("x")).expect("encodes")));
        let expected = Payload::History { epoch: "00ff".into(), offset: 42, except: 7, text: "{\"a\":1}".into() };
        assert_eq!(decode(Bytes::from(payload)), Some(expected));
        for broken in [&b"00ff 42\nx"[..], b"00ff x 7\nx", b"00ff 42 7"] {
            let mut payload = history_header(5).to_vec();
            payload.extend_from_slice(broken);
            assert_eq!(decode(Bytes::from(payload)), None);
        }
    }

    #[test]
    fn broken_payloads_are_refused() {
        let mut bad_utf8 = encode(1, &Message::binary(vec![0xff])).expect("encodes").to_vec();
        bad_utf8[9] = TEXT;
        let mut other_version = encode(1, &Message::text("x")).expect("encodes").to_vec();
        other_version[0] = 2;
        for payload in [vec![], vec![VERSION; 9], bad_utf8, other_version] {
            assert_eq!(decode(Bytes::from(payload)), None);
        }
    }
}
