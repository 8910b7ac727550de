use serde_json::{Value, json};
use switchboard_sdk::live::{LiveTest, TestError};

use super::TodoList;

fn texts(live: &LiveTest) -> Result<usize, TestError> {
    live.count(".todo-list li")
}

#[test]
fn add_toggle_filter_delete_and_clear() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<TodoList>(json!({"todos": ["milk"]}))?;
    live.submit("form.add", &[("text", "eggs")])?;
    live.submit("form.add", &[("text", "  ")])?;
    assert_eq!(texts(&live)?, 2, "a blank todo is not added");
    assert_eq!(live.text(".left")?, "2 left");
    live.change(r#"li[data-key="1"] input"#, "on")?;
    assert!(live.has_element(r#"li.completed[data-key="1"] input[checked]"#)?);
    live.click(r#"button[data-val-filter="active"]"#)?;
    assert_eq!(live.text(".todo-list")?.trim(), "eggs ×");
    live.click(r#"button[data-val-filter="all"]"#)?;
    live.click(r#"li[data-key="2"] .delete"#)?;
    live.click("button.clear")?;
    assert_eq!(texts(&live)?, 0);
    assert!(!live.has_element("button.clear")?, "nothing left to clear");
    Ok(())
}

#[test]
fn a_submit_clears_the_draft_and_a_toggle_sends_one_row() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<TodoList>(json!({"todos": ["a", "b", "c"]}))?;
    live.input("input.new", "tea")?;
    assert!(live.has_element(r#"input.new[value="tea"]"#)?, "the draft is state");
    live.submit("form.add", &[])?;
    assert!(live.has_element(r#"input.new[value=""]"#)?);
    assert_eq!(texts(&live)?, 4);
    live.change(r#"li[data-key="2"] input"#, "on")?;
    let diff = &live.received().last().cloned().unwrap_or_default()["d"];
    let rows =
        diff.as_object().and_then(|d| d.values().find(|slot| slot.get("kc").is_some())).cloned().unwrap_or(Value::Null);
    assert_eq!(
        rows["k"].as_object().map(|k| k.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["1".to_owned()]),
        "only row 2 (index 1): {diff}"
    );
    Ok(())
}

#[test]
fn the_list_and_its_todos_are_bounded() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<TodoList>(json!({}))?;
    let long = "x".repeat(201);
    assert!(matches!(live.submit("form.add", &[("text", &long)]), Err(TestError::Component { .. })));
    for index in 0..500 {
        live.submit("form.add", &[("text", &index.to_string())])?;
    }
    assert!(matches!(live.submit("form.add", &[("text", "one more")]), Err(TestError::Component { .. })));
    assert_eq!(texts(&live)?, 500);
    live.input("input.new", &long)?;
    assert!(
        live.has_element(&format!(r#"input.new[value="{}"]"#, "x".repeat(200)))?,
        "the draft is cut at 200 characters"
    );
    Ok(())
}

#[test]
fn a_typed_draft_survives_a_reconnect_and_a_reload() -> Result<(), TestError> {
    let mut live = LiveTest::mount::<TodoList>(json!({"todos": ["milk"]}))?;
    live.input("input.new", "half-typ")?;
    live.reconnect()?;
    assert!(live.has_element(r#"input.new[value="half-typ"]"#)?);
    live.reload()?;
    assert!(live.has_element(r#"input.new[value="half-typ"]"#)?);
    assert_eq!(texts(&live)?, 1);
    Ok(())
}
