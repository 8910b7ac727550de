//! A live component for the tests: a count, a `crash` event that traps the
//! plugin, a `flash`, a `push` and a `redirect`, a list of `rows` rows
//! whose `bump` buttons change one, and abuse of the runtime's limits:
//! `subscribe` to many rooms, `echo` room messages back for ever.
//!
//! `live-probe-v2` is the same code with another `BUILD`: a new version
//! of this plugin, for the hot-reload tests.

/// Which build this is, shown as the root's `data-build`.
const BUILD: &str = "v1";

include!("probe.rs");

#[cfg(test)]
mod tests;
