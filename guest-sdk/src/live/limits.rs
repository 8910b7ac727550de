//! The live runtime's limits: everything a page can make the plugin keep is
//! bounded here, in count and in bytes (SECURITY.md lists them). The host's
//! own limits (message size, timers, rate) apply on top.

use std::time::Duration;

/// Components one connection may have mounted at once.
pub const MAX_COMPONENTS_PER_CONNECTION: usize = 32;
/// Longest component id (`cid`) a page may choose, in bytes.
pub const MAX_CID_SIZE: usize = 32;
/// Rooms one component may be subscribed to.
pub const MAX_SUBSCRIPTIONS_PER_COMPONENT: usize = 16;
/// Longest room name or presence label, in bytes.
pub const MAX_ROOM_SIZE: usize = 256;
/// How long a closed connection's components are kept for the page to
/// resume them when it reconnects.
pub const PARK_FOR: Duration = Duration::from_secs(60);
/// Components kept for resumption at once; the oldest go first.
pub const MAX_PARKED: usize = 1000;
/// Bytes of component state kept for resumption at once (a state larger
/// than this alone is not kept).
pub const MAX_PARKED_BYTES: usize = 8 << 20;
/// Room messages, publishes and presence changes one callback may cause;
/// beyond, they are dropped and logged (a component that broadcasts from
/// `on_info` would otherwise loop for ever).
pub const MAX_DELIVERIES_PER_CALLBACK: usize = 100_000;
/// The shortest time between two server-initiated updates of a component.
pub const BATCH: Duration = Duration::from_millis(16);
