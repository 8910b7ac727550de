//! Random numbers for names that must not repeat across restarts (a node's
//! number, a history's epoch): std's per-process random hasher keys, mixed
//! with the time. Not for secrets; no crate for a handful of calls.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

/// A number no earlier run of this process (or another) is likely to have
/// drawn.
pub(crate) fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.finish()
}
