//! The plugins' key-value stores on disk: one `redb` file, one table keyed
//! by (plugin, key).
//!
//! Reads never come here: each plugin's store is held in memory
//! (`channel/store.rs`) and loaded from the file once, when the plugin's
//! channel is made. Writes are written behind: a `kv-set` queues its change
//! and returns, and a writer thread commits whatever is queued in one
//! transaction (fsynced), so a callback never waits for the disk and a burst
//! of writes costs one commit. The queue keeps only the latest change of a
//! key, so it is bounded by the stores' own limits (keys and bytes).
//!
//! What a graceful stop has queued is written before the server exits
//! ([`Durable::close`]); a crash (`kill -9`) loses at most the changes of
//! the commit in progress and those queued behind it (a few milliseconds).
//!
//! The rooms' history (`channel/history.rs`) is saved too, but only by a
//! graceful stop, and taken (read and deleted) at the next start: after a
//! crash there is none, and the rooms start new epochs, rather than old
//! offsets being handed out again for other messages.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use redb::{Database, ReadableDatabase, TableDefinition};

/// Every plugin's entries: (plugin name, key) → value.
const KV: TableDefinition<'static, (&str, &str), &[u8]> = TableDefinition::new("kv");

/// Messages kept for offline users: (plugin name, user) → the mailbox, as
/// `channel/mailbox.rs` encodes it.
const MAILBOX: TableDefinition<'static, (&str, &str), &[u8]> = TableDefinition::new("mailbox");

/// Which table a queued change is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Table {
    Kv,
    Mailbox,
}

/// The rooms' history saved by a graceful stop: (plugin, room) → the ring,
/// as `channel/history.rs` encodes it.
const HISTORY: TableDefinition<'static, (&str, &str), &[u8]> = TableDefinition::new("history");

/// How long the writer waits before it tries a failed commit again.
const RETRY: Duration = Duration::from_millis(200);

/// Why the store file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The file could not be opened or created (a bad path, another process
    /// holds it, not a redb file).
    #[error("cannot open the store {}: {reason}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file could not be read.
    #[error("cannot read the store: {0}")]
    Read(String),
}

/// The store file and its writer thread.
pub(crate) struct Durable {
    shared: Arc<Shared>,
    /// Joined on drop, after it has written what is queued.
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable").finish_non_exhaustive()
    }
}

struct Shared {
    /// Taken out (and so closed, releasing the file's lock) by `close`.
    db: Mutex<Option<Database>>,
    queue: Mutex<Queue>,
    /// Wakes the writer: changes were queued, or it should stop.
    queued: Condvar,
}

/// Changes by (table, plugin, key); `None` deletes.
type Changes = HashMap<(Table, Arc<str>, String), Option<Vec<u8>>>;

#[derive(Default)]
struct Queue {
    /// The latest change of each key not yet committed; `None` deletes.
    changes: Changes,
    /// Set by `close`: write what is queued, then end.
    stop: bool,
}

impl Durable {
    /// Open (or create) the store file and start its writer.
    pub(crate) fn open(path: &Path) -> Result<Durable, StorageError> {
        let open_error = |reason: String| StorageError::Open { path: path.to_owned(), reason };
        if let Some(folder) = path.parent().filter(|folder| !folder.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(|error| open_error(error.to_string()))?;
        }
        let db = Database::create(path).map_err(|error| open_error(error.to_string()))?;
        let shared =
            Arc::new(Shared { db: Mutex::new(Some(db)), queue: Mutex::new(Queue::default()), queued: Condvar::new() });
        let writing = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_behind(&writing))
            .map_err(|error| open_error(format!("cannot start the writer thread: {error}")))?;
        Ok(Durable { shared, writer: Mutex::new(Some(writer)) })
    }

    /// Everything stored for `plugin`.
    pub(crate) fn load(&self, plugin: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.load_table(KV, plugin)
    }

    /// The mailboxes kept for `plugin`'s users.
    pub(crate) fn load_mailboxes(&self, plugin: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.load_table(MAILBOX, plugin)
    }

    fn load_table(
        &self,
        definition: TableDefinition<'static, (&str, &str), &[u8]>,
        plugin: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let read = |error: &dyn std::fmt::Display| StorageError::Read(error.to_string());
        let db = self.shared.db.lock();
        let db = db.as_ref().ok_or_else(|| StorageError::Read("the store is closed".into()))?;
        let transaction = db.begin_read().map_err(|error| read(&error))?;
        let table = match transaction.open_table(definition) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(error) => return Err(read(&error)),
        };
        let mut entries = Vec::new();
        for entry in table.range((plugin, "")..).map_err(|error| read(&error))? {
            let (key, value) = entry.map_err(|error| read(&error))?;
            let (owner, key) = key.value();
            if owner != plugin {
                break;
            }
            entries.push((key.to_owned(), value.value().to_vec()));
        }
        Ok(entries)
    }

    /// Take the history `plugin` saved: read and deleted in one
    /// transaction, so that a run that ends without saving leaves nothing
    /// to be taken for current.
    pub(crate) fn take_history(&self, plugin: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let failed = |error: &dyn std::fmt::Display| StorageError::Read(error.to_string());
        let db = self.shared.db.lock();
        let db = db.as_ref().ok_or_else(|| StorageError::Read("the store is closed".into()))?;
        let transaction = db.begin_write().map_err(|error| failed(&error))?;
        let mut rooms = Vec::new();
        {
            let mut table = transaction.open_table(HISTORY).map_err(|error| failed(&error))?;
            let taken = table.extract_from_if((plugin, "").., |(owner, _), _| owner == plugin);
            for entry in taken.map_err(|error| failed(&error))? {
                let (key, value) = entry.map_err(|error| failed(&error))?;
                rooms.push((key.value().1.to_owned(), value.value().to_vec()));
            }
        }
        transaction.commit().map_err(|error| failed(&error))?;
        Ok(rooms)
    }

    /// Save `plugin`'s history, room by room (a graceful stop).
    pub(crate) fn save_history(&self, plugin: &str, rooms: &[(String, Vec<u8>)]) -> Result<(), StorageError> {
        let failed = |error: &dyn std::fmt::Display| StorageError::Read(error.to_string());
        let db = self.shared.db.lock();
        let db = db.as_ref().ok_or_else(|| StorageError::Read("the store is closed".into()))?;
        let transaction = db.begin_write().map_err(|error| failed(&error))?;
        {
            let mut table = transaction.open_table(HISTORY).map_err(|error| failed(&error))?;
            for (room, ring) in rooms {
                table.insert((plugin, room.as_str()), ring.as_slice()).map_err(|error| failed(&error))?;
            }
        }
        transaction.commit().map_err(|error| failed(&error))
    }

    /// Queue a change of `plugin`'s `key` (`None` deletes it).
    pub(crate) fn write(&self, plugin: &Arc<str>, key: &str, value: Option<&[u8]>) {
        self.queue(Table::Kv, plugin, key, value);
    }

    /// Queue a change of `plugin`'s mailbox for `user` (`None` deletes it).
    pub(crate) fn write_mailbox(&self, plugin: &Arc<str>, user: &str, mailbox: Option<&[u8]>) {
        self.queue(Table::Mailbox, plugin, user, mailbox);
    }

    fn queue(&self, table: Table, plugin: &Arc<str>, key: &str, value: Option<&[u8]>) {
        let mut queue = self.shared.queue.lock();
        if !queue.stop {
            queue.changes.insert((table, Arc::clone(plugin), key.to_owned()), value.map(<[u8]>::to_vec));
            self.shared.queued.notify_one();
        }
    }
}

impl Durable {
    /// Write what is queued and close the file, so that another process
    /// (or a new server in this one) can open it. Changes queued after
    /// this are not written.
    pub(crate) fn close(&self) {
        self.shared.queue.lock().stop = true;
        self.shared.queued.notify_one();
        if let Some(writer) = self.writer.lock().take()
            && writer.join().is_err()
        {
            tracing::error!("the store's writer thread panicked");
        }
        drop(self.shared.db.lock().take());
    }
}

impl Drop for Durable {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread: commit what is queued, one transaction per round,
/// until stopped with nothing left to write.
fn write_behind(shared: &Shared) {
    let mut queue = shared.queue.lock();
    loop {
        while queue.changes.is_empty() && !queue.stop {
            shared.queued.wait(&mut queue);
        }
        if queue.changes.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut queue.changes);
        drop(queue);
        let outcome = match &*shared.db.lock() {
            Some(db) => commit(db, &batch),
            None => return,
        };
        queue = shared.queue.lock();
        if let Err(error) = outcome {
            tracing::error!(changes = batch.len(), "cannot write the store, retrying: {error}");
            // Put the batch back under what was queued since: newer changes win.
            for (key, value) in batch {
                queue.changes.entry(key).or_insert(value);
            }
            if queue.stop {
                return;
            }
            shared.queued.wait_for(&mut queue, RETRY);
        }
    }
}

fn commit(db: &Database, batch: &Changes) -> Result<(), redb::Error> {
    let transaction = db.begin_write()?;
    {
        let mut kv = transaction.open_table(KV)?;
        let mut mailboxes = transaction.open_table(MAILBOX)?;
        for ((which, plugin, key), value) in batch {
            let table = match which {
                Table::Kv => &mut kv,
                Table::Mailbox => &mut mailboxes,
            };
            match value {
                Some(value) => {
                    table.insert((&**plugin, key.as_str()), value.as_slice())?;
                }
                None => {
                    table.remove((&**plugin, key.as_str()))?;
                }
            }
        }
    }
    transaction.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_is_there_after_a_reopen_and_plugins_do_not_mix() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("nested/store.redb");
        let (chat, game): (Arc<str>, Arc<str>) = ("chat".into(), "game".into());
        {
            let store = Durable::open(&path).unwrap();
            store.write(&chat, "a", Some(b"1"));
            store.write(&chat, "b", Some(b"2"));
            store.write(&chat, "b", None);
            store.write(&chat, "c", Some(b"3"));
            store.write(&game, "a", Some(b"board"));
            store.write(&chat, "d", Some(b"written on close"));
            store.close();
            assert!(Durable::open(&path).is_ok(), "closed: the file can be opened again");
            store.write(&chat, "e", Some(b"after close: not written"));
        }
        let store = Durable::open(&path).unwrap();
        let mut entries = store.load("chat").unwrap();
        entries.sort();
        let expected = [("a", &b"1"[..]), ("c", b"3"), ("d", b"written on close")]
            .map(|(key, value)| (key.to_owned(), value.to_vec()));
        assert_eq!(entries, expected);
        assert_eq!(store.load("game").unwrap(), [("a".to_owned(), b"board".to_vec())]);
        assert!(store.load("ch").unwrap().is_empty(), "a prefix of a name is another plugin");
    }

    #[test]
    fn the_queue_keeps_one_change_per_key_however_many_writes() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("store.redb");
        let store = Durable::open(&path).unwrap();
        let chat: Arc<str> = "chat".into();
        {
            // Hold the file: the writer takes what is queued and waits for it.
            let _held = store.shared.db.lock();
            store.write(&chat, "first", Some(b"taken or queued"));
            for n in 0..10_000u32 {
                store.write(&chat, "counter", Some(&n.to_le_bytes()));
            }
            let queued = store.shared.queue.lock().changes.len();
            assert!(queued <= 2, "{queued} changes queued for two keys");
        }
        store.close();
        let entries: HashMap<String, Vec<u8>> =
            Durable::open(&path).unwrap().load("chat").unwrap().into_iter().collect();
        assert_eq!(entries.get("counter"), Some(&9_999u32.to_le_bytes().to_vec()), "the last write won");
    }

    #[test]
    fn mailboxes_are_kept_apart_from_the_key_value_store() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("store.redb");
        let chat: Arc<str> = "chat".into();
        {
            let store = Durable::open(&path).unwrap();
            store.write(&chat, "ann", Some(b"a value"));
            store.write_mailbox(&chat, "ann", Some(b"kept"));
            store.write_mailbox(&chat, "bob", Some(b"taken"));
            store.write_mailbox(&chat, "bob", None);
            store.close();
        }
        let store = Durable::open(&path).unwrap();
        assert_eq!(store.load("chat").unwrap(), [("ann".to_owned(), b"a value".to_vec())]);
        assert_eq!(store.load_mailboxes("chat").unwrap(), [("ann".to_owned(), b"kept".to_vec())]);
    }

    #[test]
    fn saved_history_is_taken_once_and_plugins_do_not_mix() {
        let folder = tempfile::tempdir().unwrap();
        let store = Durable::open(&folder.path().join("store.redb")).unwrap();
        assert!(store.take_history("chat").unwrap().is_empty());
        let rooms = vec![("lobby".to_owned(), b"ring".to_vec()), ("x".to_owned(), b"other".to_vec())];
        store.save_history("chat", &rooms).unwrap();
        store.save_history("chatty", &[("lobby".to_owned(), b"not chat's".to_vec())]).unwrap();
        assert_eq!(store.take_history("chat").unwrap(), rooms);
        assert!(store.take_history("chat").unwrap().is_empty(), "taken: a crash after this leaves none");
        assert_eq!(store.take_history("chatty").unwrap().len(), 1);
    }

    #[test]
    fn a_path_that_cannot_be_a_store_is_a_clear_error() {
        let folder = tempfile::tempdir().unwrap();
        let not_a_store = folder.path().join("junk");
        std::fs::write(&not_a_store, b"this is not a redb file, not at all").unwrap();
        let error = Durable::open(&not_a_store).unwrap_err();
        assert!(error.to_string().contains("cannot open the store"), "{error}");
    }
}
