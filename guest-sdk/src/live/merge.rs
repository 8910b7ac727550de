//! The browser's side of `LIVE-PROTOCOL.md` in Rust: merge `full` and `diff`
//! messages into a tree and turn it into HTML, as `public/js/live.js` does.
//! The test kit shows a component through it, so a kit test checks what a
//! browser would show; the property tests and the shared fixtures check
//! that the two sides agree.

use std::collections::HashMap;

use serde_json::Value;

/// What a browser holds for one component: its tree and the connection's
/// templates.
#[derive(Debug, Default, Clone)]
pub struct Mirror {
    templates: HashMap<u64, Vec<String>>,
    tree: Option<Node>,
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    template: u64,
    slots: Vec<Slot>,
}

#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Text(String),
    Node(Node),
    List(Vec<Node>),
}

/// A message the mirror could not apply: the two sides disagree.
#[derive(Debug, thiserror::Error)]
#[error("cannot apply live message: {0}")]
pub struct MergeError(String);

#[cfg(feature = "testing")]
impl MergeError {
    pub(crate) fn from_json(error: &serde_json::Error) -> MergeError {
        MergeError(format!("not JSON: {error}"))
    }
}

fn bad(why: impl Into<String>) -> MergeError {
    MergeError(why.into())
}

impl Mirror {
    /// Apply a `full` or `diff` message (other messages change nothing).
    pub fn apply(&mut self, message: &Value) -> Result<(), MergeError> {
        if let Some(templates) = message.get("p").and_then(Value::as_object) {
            for (id, statics) in templates {
                let id = id.parse().map_err(|_| bad(format!("template id {id}")))?;
                let statics = serde_json::from_value(statics.clone()).map_err(|error| bad(error.to_string()))?;
                self.templates.insert(id, statics);
            }
        }
        match message.get("t").and_then(Value::as_str) {
            Some("full") => self.tree = Some(node(message.get("r").ok_or_else(|| bad("full without r"))?)?),
            Some("diff") => {
                if let Some(diff) = message.get("d") {
                    let tree = self.tree.as_mut().ok_or_else(|| bad("diff before full"))?;
                    merge_node(tree, diff)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The HTML the browser shows.
    pub fn html(&self) -> Result<String, MergeError> {
        let mut out = String::new();
        if let Some(tree) = &self.tree {
            self.write(tree, &mut out)?;
        }
        Ok(out)
    }

    fn write(&self, node: &Node, out: &mut String) -> Result<(), MergeError> {
        let statics =
            self.templates.get(&node.template).ok_or_else(|| bad(format!("unknown template {}", node.template)))?;
        if statics.len() != node.slots.len() + 1 {
            return Err(bad(format!(
                "template {} has {} holes, node {} slots",
                node.template,
                statics.len() - 1,
                node.slots.len()
            )));
        }
        for (index, part) in statics.iter().enumerate() {
            out.push_str(part);
            match node.slots.get(index) {
                Some(Slot::Text(text)) => out.push_str(text),
                Some(Slot::Node(child)) => self.write(child, out)?,
                Some(Slot::List(rows)) => rows.iter().try_for_each(|row| self.write(row, out))?,
                None => {}
            }
        }
        Ok(())
    }
}

/// A whole node (`{"s":id,"0":…}`).
fn node(value: &Value) -> Result<Node, MergeError> {
    let object = value.as_object().ok_or_else(|| bad("a node is not an object"))?;
    let template = object.get("s").and_then(Value::as_u64).ok_or_else(|| bad("a node without s"))?;
    let mut slots = Vec::new();
    while let Some(slot) = object.get(&slots.len().to_string()) {
        slots.push(full_slot(slot, None)?);
    }
    Ok(Node { template, slots })
}

/// A slot's new value, given its old one (for a list diff).
fn full_slot(value: &Value, old: Option<Slot>) -> Result<Slot, MergeError> {
    match value {
        Value::String(text) => Ok(Slot::Text(text.clone())),
        Value::Object(object) if object.contains_key("s") => Ok(Slot::Node(node(value)?)),
        Value::Object(object) if object.contains_key("kc") => {
            let old = match old {
                Some(Slot::List(rows)) => rows,
                _ => Vec::new(),
            };
            Ok(Slot::List(merge_list(old, value)?))
        }
        _ => Err(bad(format!("a slot of unknown shape: {value}"))),
    }
}

fn merge_node(old: &mut Node, diff: &Value) -> Result<(), MergeError> {
    if diff.get("s").is_some() {
        *old = node(diff)?;
        return Ok(());
    }
    let object = diff.as_object().ok_or_else(|| bad("a diff is not an object"))?;
    for (index, change) in object {
        let index: usize = index.parse().map_err(|_| bad(format!("slot {index}")))?;
        let slot = old.slots.get_mut(index).ok_or_else(|| bad(format!("no slot {index}")))?;
        *slot = match (std::mem::replace(slot, Slot::Text(String::new())), change) {
            (Slot::Node(mut child), Value::Object(object))
                if !object.contains_key("s") && !object.contains_key("kc") =>
            {
                merge_node(&mut child, change)?;
                Slot::Node(child)
            }
            (before, change) => full_slot(change, Some(before))?,
        };
    }
    Ok(())
}

fn merge_list(old: Vec<Node>, diff: &Value) -> Result<Vec<Node>, MergeError> {
    let count = diff.get("kc").and_then(Value::as_u64).ok_or_else(|| bad("a list without kc"))?;
    let entries = diff.get("k").and_then(Value::as_object);
    let old_row = |index: u64| {
        old.get(usize::try_from(index).unwrap_or(usize::MAX)).cloned().ok_or_else(|| bad(format!("no old row {index}")))
    };
    let mut rows = Vec::new();
    for index in 0..count {
        let row = match entries.and_then(|entries| entries.get(&index.to_string())) {
            None => old_row(index)?,
            Some(Value::Number(from)) => old_row(from.as_u64().ok_or_else(|| bad("a row index"))?)?,
            Some(Value::Array(pair)) => match pair.as_slice() {
                [Value::Number(from), change] => {
                    let mut row = old_row(from.as_u64().ok_or_else(|| bad("a row index"))?)?;
                    merge_node(&mut row, change)?;
                    row
                }
                _ => return Err(bad("a moved row is not [index, diff]")),
            },
            Some(change) if change.get("s").is_some() => node(change)?,
            Some(change) => {
                let mut row = old_row(index)?;
                merge_node(&mut row, change)?;
                row
            }
        };
        rows.push(row);
    }
    Ok(rows)
}
