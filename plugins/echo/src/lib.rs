//! `/echo`: sends every message, text or binary, back to its sender unchanged.

use switchboard_sdk::{Conn, Message, Plugin};

#[derive(Default)]
struct Echo;

impl Plugin for Echo {
    const NAME: &'static str = "echo";
    const ROUTES: &'static [&'static str] = &["/echo"];

    fn on_message(&mut self, conn: Conn, message: Message) {
        conn.send(message);
    }
}

switchboard_sdk::export!(Echo);
