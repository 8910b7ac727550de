//! Timers: ask the host for [`Plugin::on_timer`](crate::Plugin::on_timer)
//! later, once or repeatedly. A timer is named by the plugin (e.g.
//! `"turn:lobby"`); setting a name again replaces its timer. Timers belong
//! to the host: they survive a hot reload of the plugin, not a restart of
//! the server.

use std::time::Duration;

use crate::HostError;
use crate::bindings::switchboard::channel::host;

/// Call `on_timer(name)` once, `delay` from now.
pub fn after(name: &str, delay: Duration) -> Result<(), HostError> {
    host::set_timer(name, millis(delay), false)
}

/// Call `on_timer(name)` every `period`, until [`cancel`]led. The host
/// refuses periods under its minimum (10 ms by default).
pub fn every(name: &str, period: Duration) -> Result<(), HostError> {
    host::set_timer(name, millis(period), true)
}

/// Cancel a timer; whether there was one.
pub fn cancel(name: &str) -> bool {
    host::cancel_timer(name)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
