//! The wire form of a render (`LIVE-PROTOCOL.md`): a whole tree for a
//! `full` message, and the changes between two renders for a `diff`. Each
//! template's statics are added to `p` the first time a connection needs them.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value, json};

use super::html::{Html, Parsed, Slot};

/// Encodes renders for one connection, which remembers the templates it has
/// been sent.
pub(crate) struct Encoder<'a> {
    /// Ids of the templates the connection already has.
    sent: &'a mut HashSet<u64>,
    /// The templates this message must carry (its `p`).
    pub(crate) templates: Map<String, Value>,
}

impl<'a> Encoder<'a> {
    pub(crate) fn new(sent: &'a mut HashSet<u64>) -> Encoder<'a> {
        Encoder { sent, templates: Map::new() }
    }

    /// The whole tree of `html`.
    pub(crate) fn full(&mut self, html: &Html) -> Value {
        let statics = html.template.statics();
        if self.sent.insert(statics.id) {
            self.templates.insert(statics.id.to_string(), json!(statics.parts));
        }
        let mut node = Map::with_capacity(html.slots.len() + 1);
        node.insert("s".to_owned(), json!(statics.id));
        for (index, slot) in html.slots.iter().enumerate() {
            node.insert(index.to_string(), self.full_slot(slot));
        }
        Value::Object(node)
    }

    fn full_slot(&mut self, slot: &Slot) -> Value {
        match slot {
            Slot::Text(text) => Value::String(text.clone()),
            Slot::Node(node) => self.full(node),
            Slot::List(rows) => {
                let entries =
                    rows.iter().enumerate().map(|(index, (_, row))| (index.to_string(), self.full(row))).collect();
                json!({ "kc": rows.len(), "k": Value::Object(entries) })
            }
        }
    }

    /// What changed from `old` to `new`; `None` when nothing did.
    pub(crate) fn diff(&mut self, old: &Html, new: &Html) -> Option<Value> {
        if old.template != new.template {
            return Some(self.full(new));
        }
        let mut changed = Map::new();
        for (index, (before, after)) in old.slots.iter().zip(&new.slots).enumerate() {
            if let Some(change) = self.diff_slot(before, after) {
                changed.insert(index.to_string(), change);
            }
        }
        (!changed.is_empty()).then_some(Value::Object(changed))
    }

    fn diff_slot(&mut self, old: &Slot, new: &Slot) -> Option<Value> {
        match (old, new) {
            (Slot::Text(before), Slot::Text(after)) => (before != after).then(|| Value::String(after.clone())),
            (Slot::Node(before), Slot::Node(after)) => self.diff(before, after),
            (Slot::List(before), Slot::List(after)) => self.diff_list(before, after),
            (_, new) => Some(self.full_slot(new)),
        }
    }

    /// A list diff: rows in place and unchanged are left out, moved rows
    /// are their old index, changed rows their changed slots.
    fn diff_list(&mut self, old: &[(String, Html)], new: &[(String, Html)]) -> Option<Value> {
        let mut entries = Map::new();
        // The usual case first: rows that stay where they were, compared in
        // place; the rest (moves, insertions) through a map of the old keys.
        let same = old.iter().zip(new).take_while(|((before, _), (after, _))| before == after).count();
        for (index, ((_, before), (_, after))) in old.iter().zip(new).take(same).enumerate() {
            if let Some(change) = self.diff(before, after) {
                entries.insert(index.to_string(), change);
            }
        }
        let mut by_key: HashMap<&str, VecDeque<usize>> = HashMap::with_capacity(old.len() - same);
        for (index, (key, _)) in old.iter().enumerate().skip(same) {
            by_key.entry(key).or_default().push_back(index);
        }
        for (index, (key, row)) in new.iter().enumerate().skip(same) {
            let entry = match by_key.get_mut(key.as_str()).and_then(VecDeque::pop_front) {
                Some(from) => match (from == index, self.diff(&old[from].1, row)) {
                    (true, None) => continue,
                    (true, Some(change)) => change,
                    (false, None) => json!(from),
                    (false, Some(change)) => json!([from, change]),
                },
                None => self.full(row),
            };
            entries.insert(index.to_string(), entry);
        }
        (old.len() != new.len() || !entries.is_empty()).then(|| json!({ "kc": new.len(), "k": Value::Object(entries) }))
    }
}

/// Templates by id, as a `p` dictionary carries them; ids that do not match
/// their statics are left out.
pub(crate) fn templates(p: &Map<String, Value>) -> HashMap<u64, Parsed> {
    p.iter()
        .filter_map(|(id, parts)| {
            let parts: Vec<Box<str>> = serde_json::from_value(parts.clone()).ok()?;
            let parsed = Parsed::new(parts);
            (id.parse() == Ok(parsed.statics().id)).then_some((parsed.statics().id, parsed))
        })
        .collect()
}

/// A render back from its wire form ([`Encoder::full`]): what a page was
/// sent, for the next version of the plugin to diff against.
pub(crate) fn decode(value: &Value, templates: &HashMap<u64, Parsed>) -> Option<Html> {
    let node = value.as_object()?;
    let template = templates.get(&node.get("s")?.as_u64()?)?.clone();
    let holes = template.statics().parts.len() - 1;
    let slots = (0..holes).map(|index| decode_slot(node.get(&index.to_string())?, templates)).collect::<Option<_>>()?;
    Some(Html { template, slots })
}

fn decode_slot(value: &Value, templates: &HashMap<u64, Parsed>) -> Option<Slot> {
    match value {
        Value::String(text) => Some(Slot::Text(text.clone())),
        Value::Object(list) if list.contains_key("kc") => {
            let entries = list.get("k")?.as_object()?;
            let rows = (0..list.get("kc")?.as_u64()?).map(|index| {
                let row = decode(entries.get(&index.to_string())?, templates)?;
                // A keyed row's first slot is its key (see `Html::list`).
                let Some(Slot::Text(key)) = row.slots.first() else { return None };
                Some((key.clone(), row))
            });
            rows.collect::<Option<_>>().map(Slot::List)
        }
        Value::Object(_) => decode(value, templates).map(Slot::Node),
        _ => None,
    }
}
