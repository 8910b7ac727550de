use std::time::Duration;

use serde_json::json;
use switchboard_sdk::live::limits::BATCH;
use switchboard_sdk::live::{LiveTest, TestError};

use super::Counter;

#[test]
fn clicks_count_by_the_step_and_reset() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<Counter>(json!({"count": 10}))?;
    assert_eq!(live.text("output")?, "10");
    live.click("button.inc")?;
    assert_eq!(live.text("output")?, "11");
    live.change("input.step", "5")?;
    live.click("button.dec")?;
    assert_eq!(live.text("output")?, "6");
    live.click("button.reset")?;
    assert_eq!(live.text("output")?, "0");
    Ok(())
}

#[test]
fn after_the_first_render_only_the_changed_value_crosses_the_wire() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<Counter>(json!({}))?;
    live.click("button.inc")?;
    let diff = live.received().last().cloned().unwrap_or_default();
    assert_eq!(diff, json!({"t": "diff", "cid": "c1", "ack": 1, "d": {"0": "1"}}));
    Ok(())
}

#[test]
fn a_bad_step_is_an_error_and_changes_nothing() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<Counter>(json!({}))?;
    let refused = live.change("input.step", "lots");
    assert!(matches!(&refused, Err(TestError::Component { code, .. }) if code == "failed"), "{refused:?}");
    live.click("button.inc")?;
    assert_eq!(live.text("output")?, "1");
    Ok(())
}

#[test]
fn an_element_without_the_binding_is_an_error() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<Counter>(json!({}))?;
    assert!(matches!(live.click("output"), Err(TestError::NoBinding { .. })));
    assert!(matches!(live.click("button.nothing"), Err(TestError::NotOne { count: 0, .. })));
    assert!(matches!(live.click("button"), Err(TestError::NotOne { count: 4, .. })));
    Ok(())
}

#[test]
fn server_ticks_are_batched_to_one_update_per_16_ms() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<Counter>(json!({"tick_ms": 1}))?;
    live.click("button.run")?;
    let before = live.received_of("diff").len();
    live.advance(Duration::from_millis(100))?;
    let updates = live.received_of("diff").len() - before;
    assert!((6..=7).contains(&updates), "{updates} updates for 100 ticks in 100 ms");
    live.advance(BATCH)?;
    assert_eq!(live.text("output")?, "100", "the last ticks arrive with the next batch");
    assert_eq!(live.text("button.run")?, "Run 100 ticks", "the run is over");
    Ok(())
}

#[test]
fn a_page_that_reconnects_gets_its_count_back() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<Counter>(json!({"count": 3}))?;
    live.click("button.inc")?;
    live.reconnect()?;
    assert_eq!(live.text("output")?, "4");
    live.click("button.inc")?;
    assert_eq!(live.text("output")?, "5");
    Ok(())
}

#[test]
fn a_hot_reload_keeps_the_count_and_sends_nothing_while_the_render_is_the_same() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<Counter>(json!({"count": 7}))?;
    live.click("button.inc")?;
    let before = live.received().len();
    live.reload()?;
    assert_eq!(live.received().len(), before, "the new version renders what the page shows");
    live.click("button.inc")?;
    assert_eq!(live.received().last().map(|message| message["d"].clone()), Some(json!({"0": "9"})));
    assert_eq!(live.text("output")?, "9");
    Ok(())
}

#[test]
fn two_pages_have_two_counters() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<Counter>(json!({}))?;
    let second = live.open_page("counter", json!({}))?;
    live.click("button.inc")?;
    live.switch_to(0);
    assert_eq!(live.text("output")?, "0", "the other page's count");
    live.switch_to(second);
    assert_eq!(live.text("output")?, "1");
    Ok(())
}
