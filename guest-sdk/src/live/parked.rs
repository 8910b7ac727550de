//! Components of closed connections, kept for [`PARK_FOR`] so that a page
//! that reconnects gets its state back (its `join` carries the resume
//! token). Bounded in count and in bytes; the oldest go first.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::limits::{MAX_PARKED, MAX_PARKED_BYTES, PARK_FOR};

/// A component outside the plugin's memory: parked, or in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Saved {
    pub(crate) name: String,
    pub(crate) props: Value,
    pub(crate) token: String,
    pub(crate) state: Value,
    pub(crate) rooms: Vec<(String, Option<String>)>,
    pub(crate) tick_ms: Option<u64>,
    /// The `sub` claim of the connection that parked it: only a connection
    /// of the same user (or, without tokens, any) takes it back.
    #[serde(default)]
    pub(crate) user: Option<String>,
}

impl Saved {
    fn size(&self) -> usize {
        self.state.to_string().len()
            + self.props.to_string().len()
            + self.rooms.iter().map(|(room, label)| room.len() + label.as_ref().map_or(0, String::len)).sum::<usize>()
    }
}

/// Parked components, oldest first, with when each was parked and its size.
#[derive(Debug, Default)]
pub(crate) struct Parked {
    entries: VecDeque<(Duration, Saved, usize)>,
    bytes: usize,
}

impl Parked {
    pub(crate) fn park(&mut self, saved: Saved, now: Duration) {
        let size = saved.size();
        if size > MAX_PARKED_BYTES {
            return;
        }
        self.expire(now);
        while self.entries.len() >= MAX_PARKED || self.bytes + size > MAX_PARKED_BYTES {
            self.pop_oldest();
        }
        self.bytes += size;
        self.entries.push_back((now, saved, size));
    }

    /// The component parked under `token` by `user`, taken out. A token
    /// presented by someone else leaves it where it is.
    pub(crate) fn take(&mut self, token: &str, user: Option<&str>, now: Duration) -> Option<Saved> {
        self.expire(now);
        let index =
            self.entries.iter().position(|(_, saved, _)| saved.token == token && saved.user.as_deref() == user)?;
        let (_, saved, size) = self.entries.remove(index)?;
        self.bytes -= size;
        Some(saved)
    }

    fn expire(&mut self, now: Duration) {
        while self.entries.front().is_some_and(|(at, _, _)| *at + PARK_FOR <= now) {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((_, _, size)) = self.entries.pop_front() {
            self.bytes -= size;
        }
    }

    /// For a snapshot: each entry with its age in milliseconds.
    pub(crate) fn snapshot(&self, now: Duration) -> Vec<(u64, Saved)> {
        self.entries
            .iter()
            .map(|(at, saved, _)| {
                (u64::try_from(now.saturating_sub(*at).as_millis()).unwrap_or(u64::MAX), saved.clone())
            })
            .collect()
    }

    /// After a reload: the previous version's entries, with their ages.
    pub(crate) fn restore(&mut self, entries: Vec<(u64, Saved)>, now: Duration) {
        for (age, saved) in entries {
            let at = now.saturating_sub(Duration::from_millis(age));
            let size = saved.size();
            self.bytes += size;
            self.entries.push_back((at, saved, size));
        }
        while self.entries.len() > MAX_PARKED || self.bytes > MAX_PARKED_BYTES {
            self.pop_oldest();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(token: &str, state: Value) -> Saved {
        Saved {
            name: "counter".into(),
            props: Value::Null,
            token: token.into(),
            state,
            rooms: Vec::new(),
            tick_ms: None,
            user: None,
        }
    }

    #[test]
    fn a_parked_component_is_taken_once_and_only_before_it_expires() {
        let mut parked = Parked::default();
        parked.park(saved("a", Value::from(1)), Duration::ZERO);
        parked.park(saved("b", Value::from(2)), Duration::from_secs(1));
        assert_eq!(parked.take("a", None, Duration::from_secs(2)).map(|s| s.state), Some(Value::from(1)));
        assert!(parked.take("a", None, Duration::from_secs(2)).is_none(), "a token resumes once");
        parked.park(Saved { user: Some("ann".into()), ..saved("c", Value::from(3)) }, Duration::from_secs(2));
        assert!(parked.take("c", Some("bob"), Duration::from_secs(2)).is_none(), "another user's token");
        assert!(parked.take("c", None, Duration::from_secs(2)).is_none(), "no user");
        assert_eq!(
            parked.take("c", Some("ann"), Duration::from_secs(2)).map(|s| s.state),
            Some(Value::from(3)),
            "still there for ann"
        );
        assert!(parked.take("b", None, Duration::from_secs(1) + PARK_FOR).is_none(), "expired");
        assert_eq!(parked.bytes, 0);
    }

    #[test]
    fn parking_is_bounded_in_count_and_in_bytes() {
        let mut parked = Parked::default();
        for index in 0..MAX_PARKED + 10 {
            parked.park(saved(&index.to_string(), Value::from(index)), Duration::ZERO);
        }
        assert_eq!(parked.entries.len(), MAX_PARKED);
        assert!(parked.take("0", None, Duration::ZERO).is_none(), "the oldest went first");
        let big = Value::String("x".repeat(MAX_PARKED_BYTES / 3));
        for index in 0..4 {
            parked.park(saved(&format!("big{index}"), big.clone()), Duration::ZERO);
        }
        assert!(parked.bytes <= MAX_PARKED_BYTES, "{} bytes kept", parked.bytes);
        assert!(parked.take("big3", None, Duration::ZERO).is_some());
        parked.park(saved("huge", Value::String("x".repeat(MAX_PARKED_BYTES + 1))), Duration::ZERO);
        assert!(parked.take("huge", None, Duration::ZERO).is_none(), "a state over the whole budget is not kept");
    }
}
