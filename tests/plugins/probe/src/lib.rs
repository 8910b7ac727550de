//! A test plugin that shows the tests what the host told it, and misbehaves
//! on request.
//!
//! On connect it sends `{"type":"hello", ...}` with the request's route,
//! path, params, query, headers, remote address and token claims;
//! `?reject=CODE` refuses the connection with that close code instead;
//! `?user=NAME` binds the connection to a user in the presence-tracked room
//! `lobby`, and every presence change is published there as
//! `{"type":"probe_presence",...}`.
//! Messages (each command answers the sender with one text message):
//! - `panic` traps, `spin` never returns, `alloc` allocates without end;
//! - `huge` tries to send 32 MiB (`sent` or `refused: {error:?}`);
//! - `close` makes the host close the connection with 4000;
//! - `count` answers how many messages this instance has seen;
//! - `foreign:ID` sends "hello, stranger" to connection ID (perhaps another
//!   plugin's): `sent` or `refused: {error:?}`;
//! - `join:ROOM` joins ROOM: `joined` or `refused: {error:?}`;
//! - `joinmany:N` joins rooms `r0`..`r{N-1}`: `joined K` (how many
//!   succeeded), then `; refused: {error:?}` for the first failure;
//! - `track:ROOM` tracks ROOM's presence: `tracked` or `refused: {error:?}`;
//! - `kvfill:N:SIZE` stores SIZE bytes under each of `k0`..`k{N-1}`,
//!   stopping at the first failure: `stored K`, then `; refused: {error:?}`;
//! - `kvclear:N` deletes `k0`..`k{N-1}`: `cleared`;
//! - `log:N` writes N info lines of about 100 bytes: `logged N`;
//! - `meta:N` sets the sender's metadata keys `m0`..`m{N-1}`: `set K`, then
//!   `; refused: {error:?}` for the first failure;
//! - `flood:ID:N:SIZE` try-sends N binary messages of SIZE bytes to
//!   connection ID, stopping at the first refusal: `sent N` or
//!   `sent K; refused: {error:?}`;
//! - `busy:ROOM` publishes `busy` to ROOM, then never returns: the plugin is
//!   busy until the host's deadline stops it (a trap, 1011 for the sender);
//! - `user:NAME` binds the sender to user NAME: `user set` or
//!   `refused: {error:?}`;
//! - `after:MS` / `every:MS` set a one-shot / repeating timer for the
//!   sender (`timer set` or `refused: {error:?}`); each time it fires the
//!   sender gets `fired once` / `fired every` (`fired every N` with this
//!   instance's count of fires); `cancel` cancels the repeating one
//!   (`cancelled true|false`);
//! - `timers:N` sets N one-hour timers: `set K`, then `; refused: {error:?}`;
//! - `spintimer:MS` sets a timer whose callback sends `spinning` and never
//!   returns;
//!
//! anything else is echoed. A command whose numbers do not parse is echoed
//! too.

use serde_json::json;
use std::time::Duration;

use switchboard_sdk::{Conn, ConnectRequest, HostError, Message, Plugin, Reject, Room, kv, log, timer};

#[derive(Default)]
struct Probe {
    /// Messages seen by this instance: starts again at 0 after a trap.
    seen: u64,
    /// Repeating timer fires seen by this instance.
    fires: u64,
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
            let entered = conn
                .set_user(user)
                .and_then(|()| Room::named("lobby").track_presence())
                .and_then(|()| conn.join("lobby"));
            if let Err(error) = entered {
                log::warn(&format!("probe cannot put {user:?} in the lobby: {error:?}"));
            }
        }
        Ok(())
    }

    fn on_presence(&mut self, room: &str, joins: Vec<String>, leaves: Vec<String>) {
        let told = json!({ "type": "probe_presence", "room": room, "joins": joins, "leaves": leaves });
        Room::named(room).publish_json(&told);
    }

    fn on_timer(&mut self, name: &str) {
        let Some((conn, kind)) = name.split_once(':') else { return };
        let conn = Conn::from_id(conn.parse().unwrap_or(0));
        match kind {
            "after" => conn.send("fired once"),
            "every" => {
                self.fires += 1;
                conn.send(format!("fired every {}", self.fires));
            }
            "spintimer" => {
                conn.send("spinning");
                spin();
            }
            _ => {}
        }
    }

    fn on_message(&mut self, conn: Conn, message: Message) {
        self.seen += 1;
        let Some(text) = message.as_text() else { return conn.send(message) };
        let (command, argument) = text.split_once(':').unwrap_or((text, ""));
        match (command, argument) {
            ("panic", "") => panic!("probe was asked to panic"),
            ("spin", "") => spin(),
            ("alloc", "") => allocate_forever(),
            ("huge", "") => conn.send(outcome("sent", conn.try_send(vec![0u8; 32 << 20]))),
            ("close", "") => {
                if let Err(error) = conn.close(4000, "closed by probe") {
                    conn.send(format!("refused: {error:?}"));
                }
            }
            ("count", "") => conn.send(self.seen.to_string()),
            ("foreign", id) => match id.parse() {
                Ok(id) => conn.send(outcome("sent", Conn::from_id(id).try_send("hello, stranger"))),
                Err(_) => conn.send(message),
            },
            ("join", room) => conn.send(outcome("joined", conn.join(room))),
            ("track", room) => conn.send(outcome("tracked", Room::named(room).track_presence())),
            ("busy", room) => {
                Room::named(room).publish("busy");
                spin();
            }
            ("user", name) => conn.send(outcome("user set", conn.set_user(name))),
            ("cancel", "") => conn.send(format!("cancelled {}", timer::cancel(&format!("{}:every", conn.id())))),
            _ => match numbers(argument).as_deref() {
                Some(&[n]) if command == "joinmany" => {
                    conn.send(count("joined", (0..n).map(|index| conn.join(&format!("r{index}")))))
                }
                Some(&[n, size]) if command == "kvfill" => {
                    let value = vec![b'v'; size];
                    conn.send(count("stored", (0..n).map(|index| kv::set(&format!("k{index}"), &value))));
                }
                Some(&[n]) if command == "kvclear" => {
                    for index in 0..n {
                        kv::delete(&format!("k{index}"));
                    }
                    conn.send("cleared");
                }
                Some(&[n]) if command == "log" => {
                    for index in 0..n {
                        log::info(&format!("probe log line {index:>6} {}", "x".repeat(76)));
                    }
                    conn.send(format!("logged {n}"));
                }
                Some(&[n]) if command == "meta" => {
                    conn.send(count("set", (0..n).map(|index| conn.set_meta(&format!("m{index}"), "value"))))
                }
                Some(&[ms]) if matches!(command, "after" | "every" | "spintimer") => {
                    let name = format!("{}:{command}", conn.id());
                    let delay = Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX));
                    let set = if command == "every" { timer::every(&name, delay) } else { timer::after(&name, delay) };
                    conn.send(outcome("timer set", set));
                }
                Some(&[n]) if command == "timers" => {
                    let hour = Duration::from_secs(3600);
                    conn.send(count("set", (0..n).map(|index| timer::after(&format!("t{index}"), hour))));
                }
                Some(&[id, n, size]) if command == "flood" => {
                    let target = Conn::from_id(u64::try_from(id).unwrap_or(u64::MAX));
                    let payload = vec![0u8; size];
                    conn.send(count("sent", (0..n).map(|_| target.try_send(payload.clone()))));
                }
                _ => conn.send(message),
            },
        }
    }
}

/// `done` when the host agreed, else what it said.
fn outcome(done: &str, result: Result<(), HostError>) -> String {
    match result {
        Ok(()) => done.to_owned(),
        Err(error) => format!("refused: {error:?}"),
    }
}

/// `{what} K` for the K calls that succeeded before the first refusal, and
/// that refusal; the calls after it are not made.
fn count(what: &str, calls: impl Iterator<Item = Result<(), HostError>>) -> String {
    let mut done = 0;
    for call in calls {
        if let Err(error) = call {
            return format!("{what} {done}; refused: {error:?}");
        }
        done += 1;
    }
    format!("{what} {done}")
}

/// The colon-separated numbers of a command's argument, if they all parse.
fn numbers(argument: &str) -> Option<Vec<usize>> {
    argument.split(':').map(|number| number.parse().ok()).collect()
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
