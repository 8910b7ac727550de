//! A plugin's timers (`set-timer`), and the clock they run on.
//!
//! Timers live in the host, beside the plugin's rooms and store, so they
//! survive a reload of the plugin. This file only keeps them: what is due
//! when. Firing them (calling `on-timer` under the plugin's lock) is the
//! runtime's job; the server does it on a task that sleeps until the next
//! one is due, the test kit when a test advances its manual clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::channel::CallError;
use crate::config::MAX_TIMER_DELAY;

/// The time timers are set and fired by: the real one, or one a test moves
/// by hand so that a 30 s turn timeout takes no time to test.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clock {
    /// `None`: the real clock.
    manual: Option<Arc<Mutex<Instant>>>,
}

impl Clock {
    /// A clock that stands still until [`Clock::set`] moves it.
    pub(crate) fn manual() -> Clock {
        Clock { manual: Some(Arc::new(Mutex::new(Instant::now()))) }
    }

    pub(crate) fn now(&self) -> Instant {
        self.manual.as_ref().map_or_else(Instant::now, |now| *now.lock())
    }

    /// Move a manual clock to `now` (never back); the real one ignores it.
    pub(crate) fn set(&self, now: Instant) {
        if let Some(manual) = &self.manual {
            let mut current = manual.lock();
            *current = (*current).max(now);
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Timer {
    due: Instant,
    /// The period of a repeating timer.
    every: Option<Duration>,
}

/// A plugin's timers by name. At most `max` of them, so the linear scans
/// below stay short (the default limit is 1000).
#[derive(Debug)]
pub(crate) struct Timers {
    timers: HashMap<String, Timer>,
    max: usize,
    min_interval: Duration,
}

impl Timers {
    pub(crate) fn new(max: usize, min_interval: Duration) -> Timers {
        Timers { timers: HashMap::new(), max, min_interval }
    }

    /// Set (or replace) timer `name`, due `after` from `now`.
    pub(crate) fn set(&mut self, name: String, after: Duration, repeat: bool, now: Instant) -> Result<(), CallError> {
        if after > MAX_TIMER_DELAY {
            let days = MAX_TIMER_DELAY.as_secs() / 86_400;
            return Err(CallError::InvalidArgument(format!("a timer may be at most {days} days away")));
        }
        if repeat && after < self.min_interval {
            let min = self.min_interval.as_millis();
            return Err(CallError::InvalidArgument(format!("a repeating timer's period must be at least {min} ms")));
        }
        if !self.timers.contains_key(&name) && self.timers.len() >= self.max {
            return Err(CallError::InvalidArgument(format!("too many timers (the limit is {})", self.max)));
        }
        self.timers.insert(name, Timer { due: now + after, every: repeat.then_some(after) });
        Ok(())
    }

    pub(crate) fn cancel(&mut self, name: &str) -> bool {
        self.timers.remove(name).is_some()
    }

    /// When the next timer is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.timers.values().map(|timer| timer.due).min()
    }

    /// The timers due at `now`, earliest first: one-shot ones are removed,
    /// repeating ones move one period on (past `now`, so a timer that fell
    /// behind fires once, not once per missed period).
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<String> {
        let mut due: Vec<(Instant, String)> = Vec::new();
        self.timers.retain(|name, timer| {
            if timer.due > now {
                return true;
            }
            due.push((timer.due, name.clone()));
            match timer.every {
                Some(every) => {
                    timer.due += every;
                    if timer.due <= now {
                        timer.due = now + every;
                    }
                    true
                }
                None => false,
            }
        });
        due.sort();
        due.into_iter().map(|(_, name)| name).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.timers.len()
    }

    pub(crate) fn clear(&mut self) {
        self.timers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn one_shot_timers_fire_once_in_order_and_repeating_ones_keep_their_period() {
        let start = Instant::now();
        let mut timers = Timers::new(10, 10 * MS);
        timers.set("late".into(), 30 * MS, false, start).unwrap();
        timers.set("early".into(), 10 * MS, false, start).unwrap();
        timers.set("tick".into(), 20 * MS, true, start).unwrap();
        assert_eq!(timers.next_due(), Some(start + 10 * MS));
        assert!(timers.take_due(start + 9 * MS).is_empty());
        assert_eq!(timers.take_due(start + 30 * MS), ["early", "tick", "late"]);
        assert_eq!(timers.len(), 1, "only the repeating timer is left");
        assert_eq!(timers.next_due(), Some(start + 40 * MS));
        // Far behind: it fires once and is due a period after now.
        assert_eq!(timers.take_due(start + 1000 * MS), ["tick"]);
        assert_eq!(timers.next_due(), Some(start + 1020 * MS));
        assert!(timers.cancel("tick"));
        assert!(!timers.cancel("tick"));
        assert_eq!(timers.next_due(), None);
    }

    #[test]
    fn limits_are_enforced_and_replacing_a_timer_takes_no_new_slot() {
        let now = Instant::now();
        let mut timers = Timers::new(2, 10 * MS);
        assert!(timers.set("fast".into(), 9 * MS, true, now).is_err(), "under the minimum period");
        timers.set("zero".into(), Duration::ZERO, false, now).unwrap();
        assert!(timers.set("far".into(), MAX_TIMER_DELAY + MS, false, now).is_err());
        timers.set("b".into(), MS, false, now).unwrap();
        assert!(timers.set("c".into(), MS, false, now).is_err(), "a third timer");
        timers.set("b".into(), 5 * MS, false, now).unwrap();
        assert_eq!(timers.next_due(), Some(now));
    }

    #[test]
    fn a_manual_clock_moves_only_forward_and_only_when_told() {
        let clock = Clock::manual();
        let start = clock.now();
        clock.set(start + MS);
        clock.set(start);
        assert_eq!(clock.now(), start + MS);
    }
}
