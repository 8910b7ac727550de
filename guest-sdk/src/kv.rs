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

/// Replace `key`'s value with `value` (`None`: delete it) only if it is
/// `expected` now (`None`: absent), in one step that nothing else can
/// interleave with, on any node. `Ok(false)`: it was something else; read
/// it again and retry (see [`update_json`]).
pub fn compare_and_swap(key: &str, expected: Option<&[u8]>, value: Option<&[u8]>) -> Result<bool, Error> {
    host::kv_compare_and_swap(key, expected, value)
}

/// Update the JSON value under `key` atomically: `change` gets the current
/// value (`None` when absent or not a `T`) and returns the new one, or an
/// error that leaves the value as it was. Retried while someone else
/// changed the value in between, so `change` may run more than once.
pub fn update_json<T, E>(key: &str, mut change: impl FnMut(Option<T>) -> Result<T, E>) -> Result<T, E>
where
    T: Serialize + DeserializeOwned,
    E: From<Error>,
{
    loop {
        let current = get(key);
        let parsed = current.as_deref().and_then(|bytes| serde_json::from_slice(bytes).ok());
        let next = change(parsed)?;
        let bytes =
            serde_json::to_vec(&next).map_err(|error| Error::InvalidArgument(format!("value is not JSON: {error}")))?;
        if compare_and_swap(key, current.as_deref(), Some(&bytes))? {
            return Ok(next);
        }
    }
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
