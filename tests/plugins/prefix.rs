// The `prefix` test plugin, shared by its two versions (`prefix-v1`,
// `prefix-v2`), which define `TAG` and `ONLY_ROUTE`.
//
// Replies to every text message with `TAG:N:text`, where N counts the
// messages seen: the counter lives in the instance's memory and is carried
// to the next version by `snapshot`/`restore`. Besides `/prefix`, each
// version serves a route of its own, which the other does not.

use switchboard_sdk::{Conn, Message, Plugin};

#[derive(Default)]
struct Prefix {
    count: u64,
}

impl Plugin for Prefix {
    const NAME: &'static str = "prefix";
    const ROUTES: &'static [&'static str] = &["/prefix", ONLY_ROUTE];

    fn on_message(&mut self, conn: Conn, message: Message) {
        self.count += 1;
        conn.send(format!("{TAG}:{}:{}", self.count, message.as_text().unwrap_or("<binary>")));
    }

    fn snapshot(&mut self) -> Vec<u8> {
        self.count.to_le_bytes().to_vec()
    }

    fn restore(&mut self, state: Vec<u8>) {
        if let Ok(bytes) = <[u8; 8]>::try_from(state) {
            self.count = u64::from_le_bytes(bytes);
        }
    }
}

switchboard_sdk::export!(Prefix);
