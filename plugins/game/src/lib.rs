//! `/game/:game_id`: tic-tac-toe. The first two players to `join` play X
//! and O, everyone else watches. The game lives in the host's store, so a
//! reload of the plugin or a reconnecting player (same `player` name)
//! carries on where it was. Every change of a game is one atomic step
//! (`kv::update_json`, a compare-and-swap): two moves at once, even on two
//! nodes sharing a store, cannot both be accepted for one turn.
//!
//! Client → server, routed by `action`: `join` (`player`), `move`
//! (`position` 0–8, row by row), `chat` (`message`), `leave`, `ping`.
//! Server → client, by `type`: `connected`, `joined`, `player_joined`,
//! `move` (to the others), `move_accepted` (to the mover, with the game's
//! `state`), `game_over`, `chat`, `player_left`, `pong`, `error`.

use serde::{Deserialize, Serialize};
use serde_json::json;
use switchboard_sdk::{BadMessage, Conn, ConnectRequest, Json, Message, Plugin, Reject, Room, kv, log, now_rfc3339};

const LINES: [[usize; 3]; 8] = [[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 3, 6], [1, 4, 7], [2, 5, 8], [0, 4, 8], [2, 4, 6]];

/// One game, as kept in the store under `game:<id>`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Game {
    /// Cells row by row: "X", "O" or "".
    board: [String; 9],
    /// Player names; the first plays X, the second O.
    players: Vec<String>,
    /// Whose turn it is: "X" or "O".
    turn: String,
    /// "X", "O", "draw", or none while the game runs.
    result: Option<String>,
}

#[derive(Default)]
struct TicTacToe;

impl Plugin for TicTacToe {
    const NAME: &'static str = "game";
    const ROUTES: &'static [&'static str] = &["/game/:game_id"];

    fn on_connect(&mut self, conn: Conn, request: &ConnectRequest) -> Result<(), Reject> {
        let id = request.param("game_id").unwrap_or("default");
        // Without its game in the metadata and the room, a client would
        // neither play nor see moves: better refused than left waiting.
        if let Err(error) = conn.set_meta("game", id).and_then(|()| conn.join(&room_of(id))) {
            log::debug(&format!("connection {} cannot enter game {id:?}: {}", conn.id(), error.reason()));
            return Err(Reject::policy(format!("cannot enter game: {}", error.reason())));
        }
        conn.send_json(&json!({ "type": "connected", "game_id": id, "state": load(id) }));
        Ok(())
    }

    fn on_message(&mut self, conn: Conn, message: Message) {
        if let Err(error) = message.json().and_then(|message| handle(conn, &message)) {
            conn.send_error(error);
        }
    }

    fn on_close(&mut self, conn: Conn, _close: &switchboard_sdk::Close) {
        if let (Some(id), Some(player)) = (conn.meta("game"), conn.meta("player")) {
            Room::named(&room_of(&id)).publish_json(&json!({ "type": "player_left", "player": player }));
        }
    }
}

fn handle(conn: Conn, message: &Json) -> Result<(), BadMessage> {
    let id = conn.meta("game").unwrap_or_default();
    let room_name = room_of(&id);
    let room = Room::named(&room_name);
    let action = message.optional("action").and_then(|action| action.as_str()).unwrap_or_default();
    match action {
        "join" => {
            let player = message.str("player")?;
            // Before the game counts the player: their moves are checked by this name.
            conn.set_meta("player", player)
                .map_err(|error| BadMessage::Other(format!("cannot join game: {}", error.reason())))?;
            let game = update(&id, |game| {
                if !game.players.iter().any(|known| known == player) && game.players.len() < 2 {
                    game.players.push(player.to_owned());
                }
                Ok(())
            })?;
            let symbol = game.players.iter().position(|known| known == player).map(|index| ["X", "O"][index]);
            let role = if symbol.is_some() { "player" } else { "spectator" };
            conn.send_json(&json!({ "type": "joined", "role": role, "symbol": symbol, "state": game }));
            room.publish_json_except(
                &json!({ "type": "player_joined", "player": player, "role": role, "symbol": symbol }),
                conn,
            );
        }
        "move" => {
            let cell = usize::try_from(message.i64("position")?).ok().filter(|cell| *cell < 9);
            let Some(cell) = cell else { return Err(invalid_move()) };
            let player = conn.meta("player");
            let mut symbol = "";
            let game = update(&id, |game| {
                let index = player.as_ref().and_then(|player| game.players.iter().position(|known| known == player));
                symbol = index.map_or("", |index| ["X", "O"][index]);
                let over = game.result.is_some() || game.players.len() < 2;
                if symbol.is_empty() || over || game.turn != symbol || !game.board[cell].is_empty() {
                    return Err(invalid_move());
                }
                game.board[cell] = symbol.to_owned();
                game.turn = if symbol == "X" { "O" } else { "X" }.to_owned();
                if LINES.iter().any(|line| line.iter().all(|cell| game.board[*cell] == symbol)) {
                    game.result = Some(symbol.to_owned());
                } else if game.board.iter().all(|cell| !cell.is_empty()) {
                    game.result = Some("draw".to_owned());
                }
                Ok(())
            })?;
            let line = LINES.iter().find(|line| line.iter().all(|cell| game.board[*cell] == symbol));
            conn.send_json(&json!({
                "type": "move_accepted",
                "symbol": symbol,
                "position": cell,
                "turn": game.turn,
                "state": game,
            }));
            room.publish_json_except(
                &json!({ "type": "move", "symbol": symbol, "position": cell, "turn": game.turn }),
                conn,
            );
            if let Some(result) = &game.result {
                room.publish_json(&json!({ "type": "game_over", "result": result, "line": line, "state": game }));
            }
        }
        "chat" => {
            let text = message.str("message")?;
            let player = conn.meta("player").unwrap_or_else(|| "spectator".to_owned());
            room.publish_json(
                &json!({ "type": "chat", "player": player, "message": text, "timestamp": now_rfc3339() }),
            );
        }
        "leave" => {
            if let Err(error) = conn.leave(&room_name) {
                log::debug(&format!("connection {} cannot leave {room_name:?}: {}", conn.id(), error.reason()));
            }
            conn.send_json(&json!({ "type": "left", "game_id": id }));
            room.publish_json(&json!({ "type": "player_left", "player": conn.meta("player") }));
        }
        "ping" => conn.send_json(&json!({ "type": "pong", "timestamp": now_rfc3339() })),
        other => return Err(BadMessage::Other(format!("Unknown action: {other}"))),
    }
    Ok(())
}

fn invalid_move() -> BadMessage {
    BadMessage::Other("Invalid move".to_owned())
}

fn room_of(id: &str) -> String {
    format!("game:{id}")
}

fn new_game() -> Game {
    Game { turn: "X".to_owned(), ..Game::default() }
}

fn load(id: &str) -> Game {
    kv::get_json(&room_of(id)).unwrap_or_else(new_game)
}

/// Change game `id` in one atomic step; `change` may run more than once
/// (when someone else changed the game in between) and nothing is stored
/// when it fails.
fn update(id: &str, mut change: impl FnMut(&mut Game) -> Result<(), BadMessage>) -> Result<Game, BadMessage> {
    kv::update_json(&room_of(id), |game: Option<Game>| {
        let mut game = game.unwrap_or_else(new_game);
        change(&mut game)?;
        Ok(game)
    })
    .inspect_err(|error| log::debug(&format!("game {id} unchanged: {error}")))
}

switchboard_sdk::export!(TicTacToe);
