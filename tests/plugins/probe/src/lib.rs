//! A test plugin that shows the tests what the host told it, and misbehaves
//! on request.
//!
//! On connect it sends `{"type":"hello", ...}` with the request's route,
//! path, params, query, headers, remote address and token claims;
//! `?reject=CODE` refuses the connection with that close code instead;
//! `?user=NAME` binds the connection to a user in the presence-tracked room
//! `lobby`, and every presence change is published there as
//! `{"type":"probe_presence",...}`.
//! Messages: `panic` traps, `spin` never returns, `alloc` allocates without
//! end, `huge` tries to send 32 MiB, `foreign` sends to a connection that is
//! not its own, `close` makes the host close the connection with 4000,
//! `count` answers how many messages this instance has seen; anything else
//! is echoed.

use serde_json::json;
use switchboard_sdk::{Conn, ConnectRequest, HostError, Message, Plugin, Reject, Room};

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
            "claims": request.claims,
        }));
        if let Some(user) = request.query("user") {
            conn.set_user(user);
            Room::named("lobby").track_presence();
            conn.join("lobby");
        }
        Ok(())
    }

    fn on_presence(&mut self, room: &str, joins: Vec<String>, leaves: Vec<String>) {
        let told = json!({ "type": "probe_presence", "room": room, "joins": joins, "leaves": leaves });
        Room::named(room).publish_json(&told);
    }

    fn on_message(&mut self, conn: Conn, message: Message) {
        self.seen += 1;
        match message.as_text() {
            Some("panic") => panic!("probe was asked to panic"),
            Some("spin") => spin(),
            Some("alloc") => allocate_forever(),
            Some("huge") => report(conn, conn.try_send(vec![0u8; 32 << 20])),
            Some("foreign") => report(conn, Conn::from_id(u64::MAX).try_send("hello, stranger")),
            Some("close") => conn.close(4000, "closed by probe"),
            Some("count") => conn.send(self.seen.to_string()),
            _ => conn.send(message),
        }
    }
}

/// Tell the client what the host said to a send.
fn report(conn: Conn, outcome: Result<(), HostError>) {
    conn.send(match outcome {
        Ok(()) => "sent".to_owned(),
        Err(error) => format!("refused: {error:?}"),
    });
}

/// Grow memory until the host's limit stops it.
fn allocate_forever() {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

/// Never return; only the host's deadline stops this.
#[allow(clippy::empty_loop)]
fn spin() {
    loop {}
}

switchboard_sdk::export!(Probe);
