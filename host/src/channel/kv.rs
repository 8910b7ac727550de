//! The plugin's key-value calls: answered by the in-memory store, or by
//! the store the nodes share in Redis when clustered.

use crate::channel::store::StoreLimits;
use crate::channel::{CallError, Channel, store_limits};
use crate::cluster::{Write, Written};

impl Channel {
    /// The value under `key` in this node's in-memory store (the test kit's
    /// view; the plugin's calls go through [`Channel::kv_get`]).
    pub(crate) fn stored(&self, key: &str) -> Option<Vec<u8>> {
        self.store.lock().get(key)
    }

    /// The value under `key`: from memory, or from the store the nodes
    /// share when clustered (where a Redis failure reads as absent, logged).
    pub(crate) async fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        let Some(cluster) = &self.cluster else { return self.stored(key) };
        cluster.kv_get(&self.name, key).await.unwrap_or_else(|error| {
            tracing::warn!(plugin = &*self.name, "the shared store cannot be read: {error}");
            None
        })
    }

    pub(crate) async fn kv_set(&self, key: String, value: Vec<u8>) -> Result<(), CallError> {
        if self.cluster.is_none() {
            return self.store.lock().set(key, value);
        }
        match self.shared_write(&key, Write::Set(Some(&value))).await? {
            Written::Done | Written::NotDone => Ok(()),
            refused => Err(self.store_full(refused)),
        }
    }

    pub(crate) async fn kv_delete(&self, key: &str) -> bool {
        if self.cluster.is_none() {
            return self.store.lock().delete(key);
        }
        self.shared_write(key, Write::Set(None)).await == Ok(Written::Done)
    }

    pub(crate) async fn kv_compare_and_swap(
        &self,
        key: String,
        expected: Option<&[u8]>,
        value: Option<Vec<u8>>,
    ) -> Result<bool, CallError> {
        if self.cluster.is_none() {
            return self.store.lock().compare_and_swap(key, expected, value);
        }
        match self.shared_write(&key, Write::CompareAndSwap { expected, value: value.as_deref() }).await? {
            Written::Done => Ok(true),
            Written::NotDone => Ok(false),
            refused => Err(self.store_full(refused)),
        }
    }

    /// One write to the shared store, its sizes checked here and its
    /// counts and bytes by the script, atomically.
    async fn shared_write(&self, key: &str, write: Write<'_>) -> Result<Written, CallError> {
        let Some(cluster) = &self.cluster else { return Ok(Written::NotDone) };
        let value = match write {
            Write::Set(value) | Write::CompareAndSwap { value, .. } => value,
        };
        self.store_limits().check(key, value)?;
        let (max_keys, max_bytes) = (self.limits.kv_max_keys, self.limits.kv_max_bytes);
        cluster.kv_write(&self.name, key, write, max_keys, max_bytes).await.map_err(|error| {
            tracing::warn!(plugin = &*self.name, "the shared store cannot be written: {error}");
            CallError::InvalidArgument(format!("the shared store is unavailable: {error}"))
        })
    }

    fn store_full(&self, refused: Written) -> CallError {
        let (max_keys, max_bytes) = (self.limits.kv_max_keys, self.limits.kv_max_bytes);
        match refused {
            Written::TooManyKeys => CallError::InvalidArgument(format!("store full ({max_keys} keys)")),
            _ => CallError::InvalidArgument(format!("store full ({max_bytes} bytes of keys and values)")),
        }
    }

    fn store_limits(&self) -> StoreLimits {
        store_limits(&self.limits)
    }
}
