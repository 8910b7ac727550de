//! The live runtime's limits, through the test kit.

use serde_json::json;
use switchboard_sdk::live::limits::{MAX_DELIVERIES_PER_CALLBACK, MAX_ROOM_SIZE, MAX_SUBSCRIPTIONS_PER_COMPONENT};
use switchboard_sdk::live::{LiveTest, TestError};

use super::Probe;

#[test]
fn a_component_subscribes_to_at_most_16_rooms() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<Probe>(json!({}))?;
    live.send_event("subscribe", &[("rooms", &(MAX_SUBSCRIPTIONS_PER_COMPONENT + 1).to_string())])?;
    let refused: Vec<_> = live.warnings().iter().filter(|warning| warning.contains("subscription refused")).collect();
    assert_eq!(refused.len(), 1, "{:?}", live.warnings());
    Ok(())
}

#[test]
fn room_messages_that_cause_room_messages_stop_at_the_limit() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<Probe>(json!({}))?;
    live.send_event("echo", &[])?;
    assert!(live.warnings().iter().any(|warning| warning.contains("too many room messages")), "{:?}", live.warnings());
    live.flush()?;
    let count: usize = live.text("output")?.parse().unwrap_or_default();
    assert_eq!(count, MAX_DELIVERIES_PER_CALLBACK, "every delivery up to the limit ran, none beyond");
    live.click("button.inc")?;
    Ok(())
}

#[test]
fn flashes_pushes_and_redirects_reach_the_page() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<Probe>(json!({"count": 4}))?;
    live.send_event("flash", &[])?;
    live.send_event("push", &[])?;
    live.send_event("redirect", &[])?;
    let flash = live.received_of("flash");
    assert_eq!(flash.first().map(|m| (m["kind"].clone(), m["msg"].clone())), Some((json!("info"), json!("flashed"))));
    let push = live.received_of("push");
    assert_eq!(push.first().map(|m| (m["n"].clone(), m["v"].clone())), Some((json!("poked"), json!(4))));
    assert_eq!(live.received_of("redirect").first().map(|m| m["to"].clone()), Some(json!("/elsewhere")));
    Ok(())
}

#[test]
fn a_room_name_over_256_bytes_is_refused() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<Probe>(json!({}))?;
    let long = "r".repeat(MAX_ROOM_SIZE);
    live.send_event("subscribe", &[("rooms", "1"), ("prefix", &long)])?;
    assert!(
        live.warnings().iter().any(|warning| warning.contains("rooms and labels are 1 to 256 bytes")),
        "{:?}",
        live.warnings()
    );
    live.send_event("subscribe", &[("rooms", "1"), ("prefix", &long[1..])])?;
    assert_eq!(live.warnings().len(), 1, "a name of 256 bytes is fine: {:?}", live.warnings());
    Ok(())
}

#[test]
fn keydown_is_sent_only_for_its_filtered_key() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<Probe>(json!({}))?;
    live.keydown("input.key", "a")?;
    assert_eq!(live.text("output")?, "0");
    live.keydown("input.key", "Enter")?;
    assert_eq!(live.text("output")?, "1");
    Ok(())
}
