//! Unit tests of a channel: rooms, users, presence and every limit.

use super::*;

use futures_util::FutureExt as _;

fn channel_with(ids: &[ConnId], limits: Limits) -> (Channel, Vec<Arc<Peer>>) {
    let channel = Channel::new("test", limits, None);
    let peers: Vec<_> = ids.iter().map(|id| Arc::new(Peer::new(*id, "/test", &channel, 8, 1 << 20))).collect();
    for peer in &peers {
        channel.add(Arc::clone(peer), Default::default());
    }
    (channel, peers)
}

/// What is queued for `peer`, taken out of its queue.
fn queued(peer: &Peer) -> Vec<Message> {
    let mut batch = std::collections::VecDeque::new();
    peer.outbox().take(&mut batch, peer.queue_bytes()).now_or_never();
    batch.into_iter().map(|frame| frame.into_message(None)).collect()
}

#[test]
fn publish_reaches_room_members_except_one() {
    let (channel, peers) = channel_with(&[1, 2, 3], Limits::default());
    channel.join(1, "a").unwrap();
    channel.join(2, "a").unwrap();
    channel.join(3, "b").unwrap();
    assert_eq!(channel.publish("a", &Message::text("hi"), Some(1)), 1);
    assert!(queued(&peers[0]).is_empty());
    assert_eq!(queued(&peers[1]), [Message::text("hi")]);
    assert!(queued(&peers[2]).is_empty());
    assert_eq!(channel.broadcast(&Message::text("all"), None), 3);
}

#[test]
fn leaving_empties_rooms() {
    let (channel, _peers) = channel_with(&[1, 2], Limits::default());
    channel.join(1, "a").unwrap();
    channel.join(2, "a").unwrap();
    assert_eq!(channel.leave_all(1), vec!["a".to_owned()]);
    assert_eq!(channel.room_members("a"), vec![2]);
    assert_eq!(channel.rooms_of(1).unwrap(), Vec::<String>::new());
    channel.remove(2);
    assert!(channel.room_members("a").is_empty());
    assert_eq!(channel.join(2, "a"), Err(CallError::UnknownConnection));
}

#[test]
fn a_user_is_reached_on_every_connection_while_open() {
    let (channel, peers) = channel_with(&[1, 2, 3], Limits::default());
    channel.set_user(1, "ann").unwrap();
    channel.set_user(2, "ann").unwrap();
    channel.set_user(3, "bob").unwrap();
    assert_eq!(channel.send_to_user("ann", &Message::text("hi ann")), 2);
    assert_eq!(queued(&peers[0]), [Message::text("hi ann")]);
    assert_eq!(queued(&peers[1]), [Message::text("hi ann")]);
    assert!(queued(&peers[2]).is_empty());
    channel.leave_all(1);
    assert_eq!(channel.user_of(1).unwrap().as_deref(), Some("ann"), "still readable until removed");
    assert_eq!(channel.send_to_user("ann", &Message::text("again")), 1);
    channel.set_user(3, "ann").unwrap();
    assert_eq!(channel.send_to_user("bob", &Message::text("gone")), 0);
}

#[tokio::test]
async fn limits_are_enforced() {
    let (channel, _peers) = channel_with(&[1], Limits::default());
    assert!(matches!(channel.join(1, ""), Err(CallError::InvalidArgument(_))));
    let too_long = vec![0; Limits::default().kv_max_value_size + 1];
    assert!(matches!(channel.kv_set("k".into(), too_long).await, Err(CallError::InvalidArgument(_))));
    channel.kv_set("k".into(), b"v".to_vec()).await.unwrap();
    assert_eq!(channel.kv_get("k").await, Some(b"v".to_vec()));
    assert!(channel.kv_delete("k").await);
    assert!(!channel.kv_delete("k").await);
}

#[test]
fn rooms_and_their_presence_are_forgotten_when_they_empty() {
    let (channel, _peers) = channel_with(&[1], Limits::default());
    channel.set_user(1, "ann").unwrap();
    for room in 0..1000 {
        let room = format!("room-{room}");
        channel.track_presence(&room).unwrap();
        channel.join(1, &room).unwrap();
        channel.leave(1, &room).unwrap();
    }
    let stats = channel.stats();
    assert_eq!((stats.rooms, stats.tracked_rooms), (0, 0), "{stats:?}");
}

#[test]
fn rooms_and_tracked_rooms_are_capped() {
    let limits = Limits { max_rooms: 3, max_tracked_rooms: 2, ..Limits::default() };
    let (channel, _peers) = channel_with(&[1, 2], limits);
    for room in ["a", "b", "c"] {
        channel.join(1, room).unwrap();
    }
    let refused = channel.join(2, "d").expect_err("a fourth room");
    assert!(refused.to_string().contains("too many rooms"), "{refused}");
    channel.join(2, "a").expect("an existing room is no new room");
    channel.track_presence("a").unwrap();
    channel.track_presence("b").unwrap();
    assert!(channel.track_presence("c").expect_err("a third tracked room").to_string().contains("tracked"));
    // A room tracked before anyone joined it, and never joined, gives its slot back.
    channel.leave_all(1);
    channel.leave_all(2);
    channel.track_presence("x").unwrap();
    assert_eq!(channel.stats().tracked_rooms, 1);
}

#[test]
fn binding_a_connection_to_its_own_user_again_changes_nothing() {
    let (channel, peers) = channel_with(&[1, 2], Limits::default());
    channel.track_presence("r").unwrap();
    channel.set_user(1, "ann").unwrap();
    channel.join(1, "r").unwrap();
    channel.join(2, "r").unwrap();
    channel.take_presence_events();
    let _ = (queued(&peers[0]), queued(&peers[1]));
    channel.set_user(1, "ann").unwrap();
    assert!(channel.take_presence_events().is_empty());
    assert!(queued(&peers[1]).is_empty(), "no presence_diff with ann in both joins and leaves");
}

#[test]
fn presence_events_of_one_callback_are_bounded() {
    let limits = Limits { max_presence_events: 5, ..Limits::default() };
    let (channel, _peers) = channel_with(&[1], limits);
    channel.track_presence("r").unwrap();
    channel.join(1, "r").unwrap();
    for user in 0..20 {
        channel.set_user(1, &format!("user-{user}")).unwrap();
    }
    assert_eq!(channel.take_presence_events().len(), 5);
    assert_eq!(channel.stats().presence_events_dropped, 15);
}

#[test]
fn metadata_is_bounded_in_keys_and_value_size() {
    let limits = Limits { max_meta_keys: 2, max_meta_value_size: 4, ..Limits::default() };
    let (channel, _peers) = channel_with(&[1], limits);
    channel.set_meta(1, "a".into(), "1234".into()).unwrap();
    assert!(channel.set_meta(1, "b".into(), "12345".into()).is_err());
    channel.set_meta(1, "b".into(), "x".into()).unwrap();
    channel.set_meta(1, "a".into(), "y".into()).expect("replacing a key is no new key");
    assert!(channel.set_meta(1, "c".into(), "z".into()).is_err());
}

#[test]
fn the_connection_cap_counts_admissions() {
    let (channel, _peers) = channel_with(&[], Limits { max_connections: 2, ..Limits::default() });
    assert!(channel.admit());
    assert!(channel.admit());
    assert!(!channel.admit());
    channel.release();
    assert!(channel.admit());
}

#[test]
fn a_plugin_log_flood_is_cut_and_counted() {
    let limits = Limits { log_records_per_second: 1, log_burst: 3, ..Limits::default() };
    let (channel, _peers) = channel_with(&[], limits);
    let verdicts: Vec<LogVerdict> = (0..10).map(|_| channel.log_verdict()).collect();
    assert_eq!(verdicts.iter().filter(|verdict| matches!(verdict, LogVerdict::Write { .. })).count(), 3);
    assert_eq!(channel.stats().log_dropped, 7);
}
