//! Version 1 of the `prefix` test plugin (see `../../prefix.rs`).

const TAG: &str = "v1";
const ONLY_ROUTE: &str = "/prefix/v1-only";

include!("../../prefix.rs");
