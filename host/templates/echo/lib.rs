//! `/{{name}}`: sends every message back to its sender. Edit `on_message`.

use switchboard_sdk::{Conn, Message, Plugin};

#[derive(Default)]
struct {{type}};

impl Plugin for {{type}} {
    const NAME: &'static str = "{{name}}";
    const ROUTES: &'static [&'static str] = &["/{{name}}"];

    fn on_message(&mut self, conn: Conn, message: Message) {
        conn.send(message);
    }
}

switchboard_sdk::export!({{type}});
