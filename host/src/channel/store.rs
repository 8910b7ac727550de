//! A plugin's key-value store, bounded in keys and in bytes. It lives in the
//! host, not in the plugin, so it survives reloads and crashes; with a
//! durable store configured (`[store] path`), every change is also written to
//! disk behind it, so it survives a restart too.

use std::collections::HashMap;
use std::sync::Arc;

use crate::channel::CallError;
use crate::storage::Durable;

/// The limits of one store (from the plugin's `Limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreLimits {
    pub(crate) max_keys: usize,
    pub(crate) max_key_size: usize,
    pub(crate) max_value_size: usize,
    /// Keys and values together: what the store costs the host's memory.
    pub(crate) max_bytes: usize,
}

impl StoreLimits {
    /// Refuse a key or a value of the wrong size.
    pub(crate) fn check(&self, key: &str, value: Option<&[u8]>) -> Result<(), CallError> {
        let StoreLimits { max_key_size, max_value_size, .. } = *self;
        if key.is_empty() || key.len() > max_key_size {
            return Err(CallError::InvalidArgument(format!("key must be 1 to {max_key_size} bytes")));
        }
        if value.is_some_and(|value| value.len() > max_value_size) {
            return Err(CallError::InvalidArgument(format!("value longer than {max_value_size} bytes")));
        }
        Ok(())
    }
}

/// Keys and their values, with the bytes they hold.
#[derive(Debug)]
pub(crate) struct Store {
    values: HashMap<String, Vec<u8>>,
    /// Sum of every key's and value's length, kept up to date so that a
    /// `set` checks the byte budget without a walk.
    bytes: usize,
    limits: StoreLimits,
    /// Where changes are written behind, and the plugin's name there.
    durable: Option<(Arc<Durable>, Arc<str>)>,
}

impl Store {
    /// An empty store, in memory only.
    pub(crate) fn new(limits: StoreLimits) -> Store {
        Store { values: HashMap::new(), bytes: 0, limits, durable: None }
    }

    /// The store of `plugin` as `durable` keeps it; changes are written back.
    /// Entries beyond today's limits (the limits were lowered) are kept:
    /// the limits bound what is added.
    pub(crate) fn load(limits: StoreLimits, durable: Arc<Durable>, plugin: Arc<str>) -> Store {
        let entries = match durable.load(&plugin) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::error!(plugin = &*plugin, "the plugin's stored values cannot be read: {error}");
                Vec::new()
            }
        };
        let bytes = entries.iter().map(|(key, value)| key.len() + value.len()).sum();
        if bytes > limits.max_bytes || entries.len() > limits.max_keys {
            tracing::warn!(plugin = &*plugin, bytes, keys = entries.len(), "stored values exceed the store's limits");
        }
        Store { values: entries.into_iter().collect(), bytes, limits, durable: Some((durable, plugin)) }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.values.get(key).cloned()
    }

    /// Store `value` under `key`, unless a limit says no.
    pub(crate) fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), CallError> {
        self.limits.check(&key, Some(&value))?;
        let StoreLimits { max_keys, max_bytes, .. } = self.limits;
        let replaced = self.values.get(&key).map(|old| key.len() + old.len());
        if replaced.is_none() && self.values.len() >= max_keys {
            return Err(CallError::InvalidArgument(format!("store full ({max_keys} keys)")));
        }
        let bytes = self.bytes - replaced.unwrap_or(0) + key.len() + value.len();
        if bytes > max_bytes {
            return Err(CallError::InvalidArgument(format!("store full ({max_bytes} bytes of keys and values)")));
        }
        self.bytes = bytes;
        if let Some((durable, plugin)) = &self.durable {
            durable.write(plugin, &key, Some(&value));
        }
        self.values.insert(key, value);
        Ok(())
    }

    /// Remove `key`; whether it was there.
    pub(crate) fn delete(&mut self, key: &str) -> bool {
        match self.values.remove_entry(key) {
            Some((key, value)) => {
                self.bytes -= key.len() + value.len();
                if let Some((durable, plugin)) = &self.durable {
                    durable.write(plugin, &key, None);
                }
                true
            }
            None => false,
        }
    }

    /// Replace `key`'s value with `value` (`None`: delete) if it is
    /// `expected` now (`None`: absent); whether it did. One step under the
    /// store's lock, so no other call interleaves.
    pub(crate) fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<&[u8]>,
        value: Option<Vec<u8>>,
    ) -> Result<bool, CallError> {
        if self.values.get(&key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        match value {
            Some(value) => self.set(key, value)?,
            None => {
                self.delete(&key);
            }
        }
        Ok(true)
    }

    /// Keys and values held, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new(StoreLimits { max_keys: 3, max_key_size: 4, max_value_size: 10, max_bytes: 20 })
    }

    #[test]
    fn every_limit_is_enforced_with_a_reason() {
        let mut store = store();
        let refused = |result: Result<(), CallError>| match result {
            Err(CallError::InvalidArgument(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(refused(store.set(String::new(), vec![])).contains("key"));
        assert!(refused(store.set("long!".into(), vec![])).contains("key"));
        assert!(refused(store.set("k".into(), vec![0; 11])).contains("value"));
        store.set("a".into(), vec![0; 8]).unwrap();
        store.set("b".into(), vec![0; 8]).unwrap();
        assert!(refused(store.set("c".into(), vec![0; 2])).contains("bytes"), "1+8 + 1+8 + 1+2 > 20");
        store.set("c".into(), vec![]).unwrap();
        assert!(refused(store.set("d".into(), vec![])).contains("keys"));
        assert_eq!(store.bytes(), 19);
    }

    #[test]
    fn replacing_and_deleting_give_bytes_back() {
        let mut store = store();
        store.set("a".into(), vec![0; 10]).unwrap();
        store.set("a".into(), vec![0; 2]).unwrap();
        assert_eq!(store.bytes(), 3);
        store.set("b".into(), vec![0; 10]).unwrap();
        assert!(store.delete("a"));
        assert!(!store.delete("a"));
        assert_eq!((store.bytes(), store.len()), (11, 1));
        assert_eq!(store.get("b"), Some(vec![0; 10]));
    }

    #[test]
    fn compare_and_swap_swaps_only_what_it_expects() {
        let mut store = store();
        assert_eq!(store.compare_and_swap("a".into(), Some(b"x"), Some(b"y".to_vec())), Ok(false), "absent ≠ x");
        assert_eq!(store.compare_and_swap("a".into(), None, Some(b"x".to_vec())), Ok(true));
        assert_eq!(store.compare_and_swap("a".into(), None, Some(b"z".to_vec())), Ok(false), "present ≠ absent");
        assert_eq!(store.compare_and_swap("a".into(), Some(b"x"), Some(b"y".to_vec())), Ok(true));
        assert_eq!(store.get("a"), Some(b"y".to_vec()));
        assert!(store.compare_and_swap("a".into(), Some(b"y"), Some(vec![0; 11])).is_err(), "limits still apply");
        assert_eq!(store.compare_and_swap("a".into(), Some(b"y"), None), Ok(true));
        assert_eq!((store.get("a"), store.bytes()), (None, 0));
    }
}
