//! Where the host keeps what must outlive the process: the lowest layer.
//!
//! - `durable`: [`Durable`], the plugins' key-value stores in one `redb`
//!   file, written behind the in-memory store in batches.
//!
//! Without `[store] path` nothing is written anywhere: the in-memory store
//! of each plugin (`channel/store.rs`) is all there is.

mod durable;

pub(crate) use durable::Durable;
pub use durable::StorageError;
