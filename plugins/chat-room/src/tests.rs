use serde_json::json;
use switchboard_sdk::live::{LiveTest, TestError};

use super::ChatRoom;

#[test]
fn a_message_reaches_every_page_in_the_room_and_online_lists_follow() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<ChatRoom>(json!({"room": "lobby", "user": "ann"}))?;
    assert_eq!(live.text(".online ul")?, "ann");
    let bob = live.open_page("chat-room", json!({"room": "lobby", "user": "bob"}))?;
    assert_eq!(live.text(".online ul")?, "annbob");
    live.switch_to(0);
    assert_eq!(live.text(".count")?, "1", "server-initiated updates wait for the batch");
    live.flush()?;
    assert_eq!(live.text(".count")?, "2", "ann sees bob arrive");
    live.submit("form.say", &[("text", "hello <bob>")])?;
    assert_eq!(live.text(".log")?, "ann hello <bob>");
    live.flush()?;
    live.switch_to(bob);
    assert_eq!(live.text(".log")?, "ann hello <bob>", "bob sees ann's message");
    assert!(live.html()?.contains("hello &lt;bob&gt;"), "escaped on the wire");
    Ok(())
}

#[test]
fn another_room_hears_nothing_and_a_leaver_leaves_the_online_list() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<ChatRoom>(json!({"room": "a", "user": "ann"}))?;
    let carl = live.open_page("chat-room", json!({"room": "b", "user": "carl"}))?;
    live.switch_to(0);
    live.submit("form.say", &[("text", "only in a")])?;
    live.switch_to(carl);
    assert_eq!(live.count(".log li")?, 0);
    live.open_page("chat-room", json!({"room": "a", "user": "dora"}))?;
    assert_eq!(live.text(".log")?, "ann only in a", "a newcomer gets the recent messages");
    live.flush()?;
    live.switch_to(0);
    assert_eq!(live.text(".count")?, "2");
    Ok(())
}

#[test]
fn a_second_tab_of_a_user_present_sees_who_is_online() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<ChatRoom>(json!({"room": "tabs", "user": "ann"}))?;
    live.open_page("chat-room", json!({"room": "tabs", "user": "ann"}))?;
    assert_eq!(live.text(".online ul")?, "ann");
    Ok(())
}

#[test]
fn a_backend_publish_on_the_room_is_shown() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<ChatRoom>(json!({"room": "news", "user": "ann"}))?;
    live.publish("news", json!({"text": "deploy done"}))?;
    live.flush()?;
    assert_eq!(live.text(".log")?, "server deploy done");
    Ok(())
}

#[test]
fn a_mount_without_a_user_is_refused() {
    let refused = LiveTest::mount::<ChatRoom>(json!({"room": "lobby"}));
    assert!(matches!(&refused, Err(TestError::Component { code, .. }) if code == "refused"), "{refused:?}");
}

#[test]
fn messages_names_and_the_history_kept_for_newcomers_are_bounded() -> Result<(), TestError> {
    let long = "x".repeat(super::MAX_TEXT + 1);
    let mut live = LiveTest::mount::<ChatRoom>(json!({"room": "bounds", "user": "ann"}))?;
    assert!(matches!(live.submit("form.say", &[("text", &long)]), Err(TestError::Component { .. })));
    for index in 0..super::HISTORY + 5 {
        live.submit("form.say", &[("text", &index.to_string())])?;
    }
    assert_eq!(live.count(".log li")?, super::HISTORY, "a page shows the last 50");
    live.open_page("chat-room", json!({"room": "bounds", "user": "bob"}))?;
    assert_eq!(live.count(".log li")?, super::HISTORY, "a newcomer gets the last 50");
    let too_long = "n".repeat(super::MAX_NAME + 1);
    let refused = live.open_page("chat-room", json!({"room": "bounds", "user": too_long}));
    assert!(matches!(refused, Err(TestError::Component { .. })), "{refused:?}");
    Ok(())
}

#[test]
fn history_is_kept_for_at_most_100_rooms() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<ChatRoom>(json!({"room": "first", "user": "ann"}))?;
    // 101 rooms with a message each (and "first", and any room of another
    // test on this thread): the last is over the limit whatever came before.
    for room in 0..super::MAX_ROOMS + 1 {
        live.open_page("chat-room", json!({"room": format!("many-{room}"), "user": "ann"}))?;
        live.submit("form.say", &[("text", "hi")])?;
    }
    let kept = super::RECENT.with_borrow(|(_, rooms)| rooms.len());
    assert_eq!(kept, super::MAX_ROOMS);
    live.open_page("chat-room", json!({"room": format!("many-{}", super::MAX_ROOMS), "user": "bob"}))?;
    assert_eq!(live.count(".log li")?, 0, "the room over the limit kept no history");
    Ok(())
}
