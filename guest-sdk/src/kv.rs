//! The plugin's key-value store, kept by the host.
//!
//! Values survive a hot reload of the plugin (and a fresh instance after a
//! crash), so this is the place for state that must not be lost. Each plugin
//! has its own store.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::switchboard::channel::host;

/// Why the host refused to store a value.
pub use crate::HostError as Error;

/// The bytes stored under `key`.
pub fn get(key: &str) -> Option<Vec<u8>> {
    host::kv_get(key)
}

/// Store `value` under `key`, replacing what was there.
pub fn set(key: &str, value: &[u8]) -> Result<(), Error> {
    host::kv_set(key, value)
}

/// Remove `key`; returns whether it held a value.
pub fn delete(key: &str) -> bool {
    host::kv_delete(key)
}

/// The value stored under `key` as JSON, if there is one and it parses as `T`.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Option<T> {
    get(key).and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

/// Store `value` as JSON under `key`.
pub fn set_json(key: &str, value: &impl Serialize) -> Result<(), Error> {
    let bytes =
        serde_json::to_vec(value).map_err(|error| Error::InvalidArgument(format!("value is not JSON: {error}")))?;
    set(key, &bytes)
}
