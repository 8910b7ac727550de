//! `/chat/:room_id`: a chat room per path, with typing indicators and a user count.
//!
//! Client → server: `{"type":"message","user":U,"content":C}`,
//! `{"type":"typing","user":U,"is_typing":B}`, `{"type":"ping"}`.
//! Server → client: `connected`, `users`, `message`, `typing`, `pong`, `error`.

use serde_json::json;
use switchboard_sdk::{BadMessage, Close, Conn, ConnectRequest, Message, Plugin, Reject, Room, now_rfc3339};

#[derive(Default)]
struct Chat;

impl Plugin for Chat {
    const NAME: &'static str = "chat";
    const ROUTES: &'static [&'static str] = &["/chat/:room_id"];

    fn on_connect(&mut self, conn: Conn, request: &ConnectRequest) -> Result<(), Reject> {
        let room = request.param("room_id").unwrap_or("lobby");
        conn.join(room);
        conn.send_json(&json!({
            "type": "connected",
            "room": room,
            "connection_id": conn.id(),
            "timestamp": now_rfc3339(),
        }));
        announce_user_count(room);
        Ok(())
    }

    fn on_message(&mut self, conn: Conn, message: Message) {
        if let Err(error) = handle(conn, &message) {
            conn.send_error(error);
        }
    }

    fn on_close(&mut self, _conn: Conn, close: &Close) {
        for room in &close.rooms {
            announce_user_count(room);
        }
    }
}

fn handle(conn: Conn, message: &Message) -> Result<(), BadMessage> {
    let message = message.json()?;
    let Some(room) = conn.rooms().pop() else {
        return Err(BadMessage::Other("Not in a room".into()));
    };
    let room = Room::named(&room);
    match message.kind() {
        Some("message") => {
            let (user, content) = (message.str("user")?, message.str("content")?);
            room.publish_json(&json!({
                "type": "message",
                "user": user,
                "content": content,
                "timestamp": now_rfc3339(),
            }));
        }
        Some("typing") => {
            let (user, is_typing) = (message.str("user")?, message.bool("is_typing")?);
            let typing = json!({ "type": "typing", "user": user, "is_typing": is_typing });
            room.publish_json_except(&typing, conn);
        }
        Some("ping") => conn.send_json(&json!({ "type": "pong", "timestamp": now_rfc3339() })),
        _ => return Err(BadMessage::UnknownType),
    }
    Ok(())
}

fn announce_user_count(room: &str) {
    let room = Room::named(room);
    room.publish_json(&json!({ "type": "users", "room": room.name(), "count": room.len() }));
}

switchboard_sdk::export!(Chat);
