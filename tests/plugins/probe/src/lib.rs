//! A test plugin that shows the tests what the host told it, and misbehaves
//! on request.
//!
//! On connect it sends `{"type":"hello", ...}` with the request's route,
//! path, params, query, headers and remote address; `?reject=CODE` refuses
//! the connection with that close code instead. Messages: `panic` traps,
//! `spin` never returns, `close` makes the host close the connection with
//! 4000, `count` answers how many messages this instance has seen; anything
//! else is echoed.

use serde_json::json;
use switchboard_sdk::{Conn, ConnectRequest, Message, Plugin, Reject};

#[derive(Default)]
struct Probe {
    /// Messages seen by this instance: starts again at 0 after a trap.
    seen: u64,
}

impl Plugin for Probe {
    const NAME: &'static str = "probe";
    const ROUTES: &'static [&'static str] = &["/probe/:mode"];

    fn on_connect(&mut self, conn: Conn, request: &ConnectRequest) -> Result<(), Reject> {
        if let Some(code) = request.query("reject").and_then(|code| code.parse().ok()) {
            conn.send("you will be rejected");
            return Err(Reject::new(code, "rejected by probe"));
        }
        conn.send_json(&json!({
            "type": "hello",
            "connection_id": conn.id(),
            "route": request.route,
            "path": request.path,
            "params": request.params,
            "query": request.query,
            "headers": request.headers,
            "remote_addr": request.remote_addr,
        }));
        Ok(())
    }

    fn on_message(&mut self, conn: Conn, message: Message) {
        self.seen += 1;
        match message.as_text() {
            Some("panic") => panic!("probe was asked to panic"),
            Some("spin") => spin(),
            Some("close") => conn.close(4000, "closed by probe"),
            Some("count") => conn.send(self.seen.to_string()),
            _ => conn.send(message),
        }
    }
}

/// Never return; only the host's deadline stops this.
#[allow(clippy::empty_loop)]
fn spin() {
    loop {}
}

switchboard_sdk::export!(Probe);
