//! Chat rooms with typing indicators, a user count and presence.
//! `/chat/:room_id` joins the room in the path; on `/chat` the client picks
//! (and may switch) rooms with `{"type":"join","room_id":R}`. A client that
//! names itself (`?user=NAME`, or a token's `sub`) shows up in the room's
//! presence, once however many tabs it has open. Every arrival and
//! departure announces the room's size (`users`) to the room, up to
//! [`LOUD_ROOM_LIMIT`] members; in a larger room only the newcomer is told.
//! A room the host refuses (a name empty or over its length limit, one room
//! too many for the plugin) gets the client
//! `{"type":"error","message":"cannot join room: <reason>"}` instead of
//! `joined`, and is not announced. A token's `sub`, when there is one, names
//! the user; `?user=` only otherwise. A `typing` indicator ends by itself
//! after [`TYPING_TIMEOUT`] without news from the typist (a host timer), and
//! when the typist sends a message or leaves: the room gets `is_typing:
//! false` once.
//!
//! Client → server: `join`, `leave`, `{"type":"message","user":U,"content":C}`,
//! `{"type":"typing","user":U,"is_typing":B}`, `{"type":"ping"}`.
//! Server → client: `connected`, `joined`, `left`, `users`, `message`,
//! `typing`, `pong`, `error`.

use serde_json::json;
use std::time::Duration;

use switchboard_sdk::{
    BadMessage, Close, Conn, ConnectRequest, Message, Plugin, Reject, Room, log, now_rfc3339, timer,
};

/// Above this many members a room stops announcing every arrival and
/// departure to everyone, as Twitch chat does above 1,000 chatters: filling
/// a room of N would cost N²/2 frames.
const LOUD_ROOM_LIMIT: usize = 1000;

/// How long a typing indicator lasts without news from the typist.
const TYPING_TIMEOUT: Duration = Duration::from_secs(3);

/// The metadata key under which a typing connection keeps `[room, user]`:
/// in the host, so that a reload of the plugin does not lose it.
const TYPING: &str = "typing";

#[derive(Default)]
struct Chat;

impl Plugin for Chat {
    const NAME: &'static str = "chat";
    const ROUTES: &'static [&'static str] = &["/chat", "/chat/:room_id"];

    fn on_connect(&mut self, conn: Conn, request: &ConnectRequest) -> Result<(), Reject> {
        let user = request.claim("sub").and_then(|sub| sub.as_str()).or(request.query("user"));
        if let Some(user) = user
            && let Err(error) = conn.set_user(user)
        {
            // The chat works without presence; the client chose the bad name, hence debug.
            log::debug(&format!("connection {} cannot be user {user:?}: {}", conn.id(), error.reason()));
        }
        let room = request.param("room_id");
        conn.send_json(&json!({
            "type": "connected",
            "room": room,
            "connection_id": conn.id(),
            "timestamp": now_rfc3339(),
        }));
        if let Some(room) = room {
            enter(conn, room, None);
        }
        Ok(())
    }

    fn on_message(&mut self, conn: Conn, message: Message) {
        if let Err(error) = handle(conn, &message) {
            conn.send_error(error);
        }
    }

    fn on_timer(&mut self, name: &str) {
        if let Some(conn) = name.strip_prefix("typing:").and_then(|id| id.parse().ok()) {
            stop_typing(Conn::from_id(conn));
        }
    }

    fn on_close(&mut self, conn: Conn, close: &Close) {
        stop_typing(conn);
        for room in &close.rooms {
            announce_user_count(room, None);
        }
    }
}

fn handle(conn: Conn, message: &Message) -> Result<(), BadMessage> {
    let message = message.json()?;
    let current = conn.rooms().pop();
    match message.kind() {
        Some("join") => {
            let room = message.str("room_id").map_err(|_| BadMessage::Other("room_id required".into()))?;
            leave(conn, current.as_deref());
            enter(conn, room, Some(json!({ "type": "joined", "room": room })));
        }
        Some("leave") => leave(conn, current.as_deref()),
        Some("message") => {
            let room = in_room(&current)?;
            let (user, content) = (message.str("user")?, message.str("content")?);
            stop_typing(conn);
            let timestamp = now_rfc3339();
            room.publish_json(&json!({ "type": "message", "user": user, "content": content, "timestamp": timestamp }));
        }
        Some("typing") => {
            let room = in_room(&current)?;
            let (user, is_typing) = (message.str("user")?, message.bool("is_typing")?);
            if is_typing {
                room.publish_json_except(&typing(user, true), conn);
                start_typing(conn, room.name(), user);
            } else {
                stop_typing(conn);
            }
        }
        Some("ping") => conn.send_json(&json!({ "type": "pong", "timestamp": now_rfc3339() })),
        _ => return Err(BadMessage::UnknownType),
    }
    Ok(())
}

/// `conn` types as `user` in `room`: the indicator ends by itself unless renewed.
fn start_typing(conn: Conn, room: &str, user: &str) {
    let started = conn
        .set_meta(TYPING, &json!([room, user]).to_string())
        .and_then(|()| timer::after(&typing_timer(conn), TYPING_TIMEOUT));
    if let Err(error) = started {
        log::warn(&format!("typing indicator of connection {} will not expire: {}", conn.id(), error.reason()));
    }
}

/// End `conn`'s typing indicator, if it has one: the room is told once.
fn stop_typing(conn: Conn) {
    timer::cancel(&typing_timer(conn));
    let Some(typist) = conn.meta(TYPING).filter(|typist| !typist.is_empty()) else { return };
    // Cleared before the room is told, so that it is told once. A closed
    // connection's metadata cannot change, and needs no clearing.
    let _ = conn.set_meta(TYPING, "");
    if let Ok((room, user)) = serde_json::from_str::<(String, String)>(&typist) {
        Room::named(&room).publish_json_except(&typing(&user, false), conn);
    }
}

fn typing_timer(conn: Conn) -> String {
    format!("typing:{}", conn.id())
}

fn typing(user: &str, is_typing: bool) -> serde_json::Value {
    json!({ "type": "typing", "user": user, "is_typing": is_typing })
}

fn in_room(current: &Option<String>) -> Result<Room<'_>, BadMessage> {
    current.as_deref().map(Room::named).ok_or_else(|| BadMessage::Other("Not in a room".into()))
}

/// Join `room`, and tell the client `joined` (if given) once it is in.
fn enter(conn: Conn, room: &str, joined: Option<serde_json::Value>) {
    // Tracking first, so that the join itself hands the newcomer the room's presence.
    let tracked = Room::named(room).track_presence();
    match conn.join(room) {
        Ok(()) => {
            if let Some(joined) = joined {
                conn.send_json(&joined);
            }
            // A name the join accepted was refused for a limit: the operator's concern.
            if let Err(error) = tracked {
                log::warn(&format!("cannot track presence in {room:?}: {}", error.reason()));
            }
            announce_user_count(room, Some(conn));
        }
        Err(error) => conn.send_error(format!("cannot join room: {}", error.reason())),
    }
}

fn leave(conn: Conn, room: Option<&str>) {
    if let Some(room) = room {
        if let Err(error) = conn.leave(room) {
            // Only a closed connection gets here (the name came from the host): nobody to tell.
            return log::debug(&format!("connection {} cannot leave {room:?}: {}", conn.id(), error.reason()));
        }
        conn.send_json(&json!({ "type": "left", "room": room }));
        announce_user_count(room, None);
    }
}

/// Tell the room its size, or only `newcomer` once the room is large.
fn announce_user_count(room: &str, newcomer: Option<Conn>) {
    let room = Room::named(room);
    let count = room.len();
    let users = json!({ "type": "users", "room": room.name(), "count": count });
    match newcomer {
        _ if count <= LOUD_ROOM_LIMIT => {
            room.publish_json(&users);
        }
        Some(conn) => conn.send_json(&users),
        None => {}
    }
}

switchboard_sdk::export!(Chat);
