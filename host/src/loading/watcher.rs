//! Hot reload: watch the plugins folder and reload what changed.
//!
//! Editors and cargo write files in several steps (truncate + write, or
//! write a temporary file + rename), so events are debounced: a file is
//! looked at once it has been quiet for [`DEBOUNCE`], or only [`SETTLE`]
//! after an event that says the file is complete (closed after writing,
//! renamed into place). A half-written file simply fails to compile; the old
//! version keeps serving and the next event tries again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::loading::registry::{Registry, is_plugin_file};

/// How long a file must be quiet before it is (re)loaded.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(100);
/// How long to wait after a file was closed or renamed into place, to catch
/// the rest of a burst (several files saved together).
pub(crate) const SETTLE: Duration = Duration::from_millis(10);

/// Events queued between the watcher thread and the reload task. When the
/// queue is full, events are not queued but the next look is a rescan of the
/// whole folder: nothing is lost, and memory stays bounded whatever the
/// folder's churn.
const QUEUE: usize = 1024;

/// The two ends of the bounded queue from the watcher thread to the reload
/// task.
fn change_queue(capacity: usize) -> (Outgoing, Incoming) {
    let (sender, queue) = mpsc::channel(capacity);
    let overflowed = Arc::new(AtomicBool::new(false));
    (Outgoing { sender, overflowed: Arc::clone(&overflowed) }, Incoming { queue, overflowed })
}

/// The watcher thread's end: queues a change, or notes that one was lost.
struct Outgoing {
    sender: mpsc::Sender<Change>,
    overflowed: Arc<AtomicBool>,
}

impl Outgoing {
    fn send(&self, change: Change) {
        if self.sender.try_send(change).is_err() {
            self.overflowed.store(true, Ordering::SeqCst);
        }
    }
}

/// The reload task's end: the queued changes, and a rescan first whenever
/// some could not be queued.
struct Incoming {
    queue: mpsc::Receiver<Change>,
    overflowed: Arc<AtomicBool>,
}

impl Incoming {
    async fn next(&mut self) -> Option<Change> {
        if self.overflowed.swap(false, Ordering::SeqCst) {
            tracing::warn!("too many plugin folder events at once, rescanning the folder");
            return Some(Change::Rescan);
        }
        self.queue.recv().await
    }
}

/// What the watcher thread tells the reload task.
enum Change {
    /// Something happened to this plugin file; `complete` when the event
    /// says the writer is done with it.
    File { path: PathBuf, complete: bool },
    /// Events were lost (queue overflow): look at the whole folder again.
    Rescan,
}

/// Watches the plugins folder while it lives.
#[derive(Debug)]
pub(crate) struct PluginWatcher {
    /// Dropping it stops the OS watch and, through the channel, the task.
    _watcher: notify::RecommendedWatcher,
}

impl PluginWatcher {
    /// Start watching `dir` (not recursively: plugins are files directly in it).
    pub(crate) fn start(dir: &Path, registry: Arc<Registry>) -> anyhow::Result<PluginWatcher> {
        let (changes, queue) = change_queue(QUEUE);
        let send = move |change: Change| changes.send(change);
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if event.need_rescan() => send(Change::Rescan),
            Ok(event) if is_content_change(&event.kind) => {
                let complete = is_completion(&event.kind);
                for path in event.paths.into_iter().filter(|path| is_plugin_file(path)) {
                    send(Change::File { path, complete });
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!("plugin folder watch error, rescanning: {error}");
                send(Change::Rescan);
            }
        })?;
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch plugins folder {}", dir.display()))?;
        tokio::spawn(reload_loop(dir.to_owned(), registry, queue));
        tracing::info!(folder = %dir.display(), "watching for plugin changes");
        Ok(PluginWatcher { _watcher: watcher })
    }
}

/// Creates, writes, renames and removes change what a folder serves;
/// reads and metadata changes do not.
fn is_content_change(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

/// Events after which the file is whole: the writer closed it, or it was
/// renamed into place (or removed).
fn is_completion(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    matches!(
        kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
            | EventKind::Remove(_)
    )
}

async fn reload_loop(dir: PathBuf, registry: Arc<Registry>, mut queue: Incoming) {
    // File → when its first event of the current burst arrived, and
    // whether its last event said it is complete.
    let mut pending: HashMap<PathBuf, (Instant, bool)> = HashMap::new();
    let mut rescan: Option<Instant> = None;
    while let Some(change) = queue.next().await {
        note(change, &mut pending, &mut rescan);
        // Wait until the folder has been quiet long enough.
        loop {
            let all_complete = rescan.is_none() && pending.values().all(|(_, complete)| *complete);
            let quiet = if all_complete { SETTLE } else { DEBOUNCE };
            match tokio::time::timeout(quiet, queue.next()).await {
                Ok(Some(change)) => note(change, &mut pending, &mut rescan),
                Ok(None) => return,
                Err(_quiet) => break,
            }
        }
        if let Some(since) = rescan.take() {
            pending.clear();
            if let Err(error) = registry.sync_dir(&dir, since).await {
                tracing::error!("rescan failed: {error:#}");
            }
            continue;
        }
        let mut files: Vec<(PathBuf, Instant)> = pending.drain().map(|(file, (since, _))| (file, since)).collect();
        files.sort();
        for (file, since) in files {
            registry.file_changed(&file, since).await;
        }
    }
}

fn note(change: Change, pending: &mut HashMap<PathBuf, (Instant, bool)>, rescan: &mut Option<Instant>) {
    let now = Instant::now();
    match change {
        Change::File { path, complete } => {
            pending.entry(path).or_insert((now, complete)).1 = complete;
        }
        Change::Rescan => {
            rescan.get_or_insert(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> Change {
        Change::File { path: PathBuf::from(name), complete: true }
    }

    #[tokio::test]
    async fn a_full_queue_loses_no_change_it_turns_them_into_a_rescan() {
        let (outgoing, mut incoming) = change_queue(2);
        for name in ["a.wasm", "b.wasm", "c.wasm", "d.wasm"] {
            outgoing.send(file(name));
        }
        assert!(matches!(incoming.next().await, Some(Change::Rescan)), "the lost changes: a rescan, first");
        assert!(matches!(incoming.next().await, Some(Change::File { path, .. }) if path == Path::new("a.wasm")));
        assert!(matches!(incoming.next().await, Some(Change::File { path, .. }) if path == Path::new("b.wasm")));
        drop(outgoing);
        assert!(incoming.next().await.is_none(), "nothing else was queued");
    }
}
