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
