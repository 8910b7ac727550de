//! Version 2 of the `prefix` test plugin (see `../../prefix.rs`).

const TAG: &str = "v2";
const ONLY_ROUTE: &str = "/prefix/v2-only";

include!("../../prefix.rs");
