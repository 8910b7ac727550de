//! The `live-probe` test plugin, built as another version: the same code
//! with `BUILD = "v2"`, for the hot-reload tests (a new version's render,
//! the old version's state).

/// Which build this is, shown as the root's `data-build`.
const BUILD: &str = "v2";

include!("../../live-probe/src/probe.rs");
