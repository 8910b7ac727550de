use serde_json::{Value, json};
use switchboard_tests::{Client, TestServer, plugins};

async fn enter(server: &TestServer, game: &str, player: &str) -> anyhow::Result<(Client, Value)> {
    let mut client = server.connect(&format!("/game/{game}")).await?;
    assert_eq!(client.recv_json().await?["type"], "connected");
    client.send_json(&json!({"action": "join", "player": player})).await?;
    let joined = client.recv_type("joined").await?;
    Ok((client, joined))
}

async fn play(client: &mut Client, position: u64) -> anyhow::Result<()> {
    client.send_json(&json!({"action": "move", "position": position})).await
}

#[tokio::test]
async fn two_players_play_to_a_win_while_a_spectator_watches() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::GAME]).await?;
    let (mut x, joined) = enter(&server, "g1", "ann").await?;
    assert_eq!((joined["role"].as_str(), joined["symbol"].as_str()), (Some("player"), Some("X")));
    let (mut o, joined) = enter(&server, "g1", "bob").await?;
    assert_eq!(joined["symbol"], "O");
    let (mut watcher, joined) = enter(&server, "g1", "cy").await?;
    assert_eq!((joined["role"].as_str(), joined["symbol"].clone()), (Some("spectator"), Value::Null));

    // X takes the diagonal; O answers elsewhere. Each move reaches the others, not the mover.
    for (mover, position) in [("X", 0), ("O", 1), ("X", 4), ("O", 2)] {
        let (player, other) = if mover == "X" { (&mut x, &mut o) } else { (&mut o, &mut x) };
        play(player, position).await?;
        let seen = other.recv_type("move").await?;
        assert_eq!((seen["symbol"].as_str(), seen["position"].as_u64()), (Some(mover), Some(position)));
        assert_eq!(watcher.recv_type("move").await?["position"], position);
    }
    play(&mut x, 8).await?;
    for client in [&mut x, &mut o, &mut watcher] {
        let over = client.recv_type("game_over").await?;
        assert_eq!((over["result"].as_str(), over["line"].clone()), (Some("X"), json!([0, 4, 8])));
    }
    // Nothing moves after the end.
    play(&mut o, 5).await?;
    assert_eq!(o.recv_type("error").await?, json!({"type": "error", "message": "Invalid move"}));
    Ok(())
}

#[tokio::test]
async fn invalid_moves_and_unknown_actions_are_refused() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::GAME]).await?;
    let (mut x, _) = enter(&server, "g2", "ann").await?;
    play(&mut x, 0).await?; // O has not joined yet.
    assert_eq!(x.recv_type("error").await?["message"], "Invalid move");
    let (mut o, _) = enter(&server, "g2", "bob").await?;
    let (mut watcher, _) = enter(&server, "g2", "cy").await?;
    for (client, position) in [(&mut o, 0), (&mut x, 9), (&mut watcher, 3)] {
        play(client, position).await?; // out of turn, out of bounds, not a player
        assert_eq!(client.recv_type("error").await?["message"], "Invalid move");
    }
    play(&mut x, 4).await?;
    o.recv_type("move").await?;
    play(&mut o, 4).await?; // occupied
    assert_eq!(o.recv_type("error").await?["message"], "Invalid move");
    x.send_json(&json!({"action": "dance"})).await?;
    assert_eq!(x.recv_type("error").await?, json!({"type": "error", "message": "Unknown action: dance"}));
    x.send_text("{oops").await?;
    assert_eq!(x.recv_type("error").await?["message"], "Invalid JSON");
    Ok(())
}

#[tokio::test]
async fn a_reconnecting_player_resumes_the_game_from_the_store() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::GAME]).await?;
    let (mut x, _) = enter(&server, "g3", "ann").await?;
    let (mut o, _) = enter(&server, "g3", "bob").await?;
    play(&mut x, 4).await?;
    o.recv_type("move").await?;
    x.close().await?;
    assert_eq!(o.recv_type("player_left").await?["player"], "ann");

    let (mut x, joined) = enter(&server, "g3", "ann").await?;
    assert_eq!(joined["symbol"], "X", "the same player gets the same symbol back");
    assert_eq!(joined["state"]["board"][4], "X");
    assert_eq!(joined["state"]["turn"], "O");
    play(&mut o, 0).await?;
    assert_eq!(x.recv_type("move").await?["position"], 0);
    Ok(())
}

#[tokio::test]
async fn the_mover_gets_move_accepted_and_the_other_player_the_move() -> anyhow::Result<()> {
    let server = TestServer::start(&[plugins::GAME]).await?;
    let (mut x, _) = enter(&server, "g4", "ann").await?;
    let (mut o, _) = enter(&server, "g4", "bob").await?;
    x.recv_type("player_joined").await?;
    for (mover, position, turn) in [("X", 4, "O"), ("O", 0, "X")] {
        let (player, other) = if mover == "X" { (&mut x, &mut o) } else { (&mut o, &mut x) };
        play(player, position).await?;
        // The next message each way: the mover never gets its own `move`.
        let accepted = player.recv_json().await?;
        assert_eq!(
            (&accepted["type"], &accepted["symbol"], &accepted["position"], &accepted["turn"]),
            (&json!("move_accepted"), &json!(mover), &json!(position), &json!(turn)),
            "{accepted}"
        );
        let state = &accepted["state"];
        assert_eq!((&state["board"][usize::try_from(position)?], &state["turn"]), (&json!(mover), &json!(turn)));
        let seen = other.recv_json().await?;
        assert_eq!(seen, json!({"type": "move", "symbol": mover, "position": position, "turn": turn}));
    }
    Ok(())
}
