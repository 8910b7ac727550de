//! `/{{name}}/:room`: a chat room per path. Every text message goes to
//! everyone in the room; `?user=NAME` shows up in the room's presence.

use switchboard_sdk::{Conn, ConnectRequest, Message, Plugin, Reject, Room};

#[derive(Default)]
struct {{type}};

impl Plugin for {{type}} {
    const NAME: &'static str = "{{name}}";
    const ROUTES: &'static [&'static str] = &["/{{name}}/:room"];

    fn on_connect(&mut self, conn: Conn, request: &ConnectRequest) -> Result<(), Reject> {
        let room = request.param("room").unwrap_or("lobby");
        if let Some(user) = request.query("user") {
            conn.set_user(user).map_err(|error| Reject::policy(error.reason()))?;
        }
        Room::named(room).track_presence().map_err(|error| Reject::policy(error.reason()))?;
        conn.join(room).map_err(|error| Reject::policy(error.reason()))
    }

    fn on_message(&mut self, conn: Conn, message: Message) {
        for room in conn.rooms() {
            Room::named(&room).publish(message.clone());
        }
    }
}

switchboard_sdk::export!({{type}});
