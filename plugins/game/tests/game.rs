//! The tic-tac-toe plugin, tested with the kit (`switchboard::testing`).

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use serde_json::{Value, json};
use switchboard::testing::{TestChannel, TestClient, build_plugin};

async fn game() -> TestChannel {
    TestChannel::load(build_plugin(env!("CARGO_MANIFEST_DIR")).unwrap()).await.unwrap()
}

async fn player(game: &TestChannel, name: &str) -> TestClient {
    let client = game.connect("/game/g1").await.unwrap();
    client.send_json(&json!({"action": "join", "player": name})).await;
    client
}

async fn play(client: &TestClient, position: u64) -> Value {
    client.frames();
    client.send_json(&json!({"action": "move", "position": position})).await;
    client.next_json().unwrap()
}

#[tokio::test]
async fn two_players_play_to_a_win_and_everyone_sees_every_move() {
    let game = game().await;
    let (x, o) = (player(&game, "xavier").await, player(&game, "olga").await);
    let watcher = player(&game, "wanda").await;
    assert_eq!(watcher.json_frames().iter().find(|m| m["type"] == "joined").unwrap()["role"], "spectator");
    for (mover, position) in [(&x, 0), (&o, 3), (&x, 1), (&o, 4)] {
        assert_eq!(play(mover, position).await["type"], "move_accepted");
    }
    watcher.frames();
    o.frames();
    let winning = play(&x, 2).await;
    assert_eq!((&winning["type"], &winning["state"]["result"]), (&json!("move_accepted"), &json!("X")));
    for seen in [o.json_frames(), watcher.json_frames()] {
        let kinds: Vec<&Value> = seen.iter().map(|message| &message["type"]).collect();
        assert_eq!(kinds, ["move", "game_over"]);
        assert_eq!(seen[1]["line"], json!([0, 1, 2]));
    }
}

#[tokio::test]
async fn out_of_turn_taken_and_spectator_moves_are_refused_and_change_nothing() {
    let game = game().await;
    let (x, o) = (player(&game, "xavier").await, player(&game, "olga").await);
    let watcher = player(&game, "wanda").await;
    assert_eq!(play(&o, 0).await["message"], "Invalid move", "X starts");
    assert_eq!(play(&x, 4).await["type"], "move_accepted");
    assert_eq!(play(&o, 4).await["message"], "Invalid move", "taken");
    assert_eq!(play(&watcher, 0).await["message"], "Invalid move", "a spectator");
    assert_eq!(play(&o, 9).await["message"], "Invalid move", "off the board");
    let stored: Value = serde_json::from_slice(&game.kv_get("game:g1").unwrap()).unwrap();
    assert_eq!(stored["board"], json!(["", "", "", "", "X", "", "", "", ""]));
    assert_eq!(stored["turn"], "O");
}

#[tokio::test]
async fn a_reload_and_a_reconnecting_player_carry_on_with_the_stored_game() {
    let game = game().await;
    let (x, o) = (player(&game, "xavier").await, player(&game, "olga").await);
    play(&x, 4).await;
    game.reload(build_plugin(env!("CARGO_MANIFEST_DIR")).unwrap()).await.unwrap();
    o.close().await;
    let o = player(&game, "olga").await;
    let joined = o.json_frames().into_iter().find(|message| message["type"] == "joined").unwrap();
    assert_eq!((&joined["symbol"], &joined["state"]["board"][4]), (&json!("O"), &json!("X")));
    assert_eq!(play(&o, 0).await["type"], "move_accepted");
}
