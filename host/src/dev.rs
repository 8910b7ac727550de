//! `switchboard dev`: the plugin author's loop in one command.
//!
//! It builds every plugin under the sources folder — a Rust crate (a
//! `Cargo.toml`) for `wasm32-wasip2`, or a JavaScript one (a `package.json`
//! whose `build` script takes the output file as its argument, as
//! `plugins/echo-js` does) — puts the `.wasm` files into the plugins folder,
//! serves them, and rebuilds a plugin whenever one of its files changes; the
//! server's own watcher then hot-reloads the new file. A failed build prints
//! its errors and leaves the running version alone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use notify::{RecursiveMode, Watcher as _};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

/// Source edits come in bursts (save-all, formatters): wait for quiet.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Changed crates queued between the watcher thread and the build task;
/// past it, the next round rebuilds every crate instead (nothing is lost,
/// memory stays bounded).
const QUEUE: usize = 256;

/// The plugins' source folders: those directly under `sources` with a
/// `Cargo.toml` or a `package.json`.
pub(crate) fn plugin_crates(sources: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut crates: Vec<PathBuf> = std::fs::read_dir(sources)
        .with_context(|| format!("cannot read plugin sources folder {}", sources.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|dir| is_plugin(dir))
        .collect();
    crates.sort();
    Ok(crates)
}

fn is_plugin(dir: &Path) -> bool {
    dir.join("Cargo.toml").is_file() || dir.join("package.json").is_file()
}

/// Build one plugin crate and install its `.wasm` into `plugins` as
/// `<folder name>.wasm` (written beside it, then renamed into place, so the
/// server never sees half a file).
pub(crate) async fn build_and_install(crate_dir: &Path, plugins: &Path) -> anyhow::Result<PathBuf> {
    let started = Instant::now();
    // cargo names crates by absolute manifest path in its messages.
    let crate_dir =
        &std::fs::canonicalize(crate_dir).with_context(|| format!("cannot find {}", crate_dir.display()))?;
    let name = crate_dir.file_name().and_then(|name| name.to_str()).context("plugin folder has no name")?;
    // Absolute: a JavaScript build runs in the plugin's folder.
    let plugins = &std::fs::canonicalize(plugins).with_context(|| format!("cannot find {}", plugins.display()))?;
    let target = plugins.join(format!("{name}.wasm"));
    let temporary = plugins.join(format!(".{name}.wasm.tmp"));
    if !crate_dir.join("Cargo.toml").is_file() {
        build_javascript(crate_dir, &temporary).await?;
        return install(name, &temporary, &target, started);
    }
    let mut child = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--profile", "plugin", "--target", "wasm32-wasip2", "--message-format=json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run cargo")?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut wasm = None;
    while let Some(line) = lines.next_line().await? {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if message["reason"] == "compiler-artifact"
            && message["manifest_path"] == crate_dir.join("Cargo.toml").display().to_string()
        {
            let files = message["filenames"].as_array().into_iter().flatten().filter_map(|file| file.as_str());
            wasm = files.filter(|file| file.ends_with(".wasm")).map(PathBuf::from).next_back().or(wasm);
        }
    }
    if !child.wait().await?.success() {
        bail!("cargo build of {name} failed (errors above); the running version keeps serving");
    }
    let wasm = wasm.with_context(|| format!("cargo built {name} but produced no .wasm (is it a cdylib?)"))?;
    std::fs::copy(&wasm, &temporary).with_context(|| format!("cannot copy {}", wasm.display()))?;
    install(name, &temporary, &target, started)
}

/// `npm run build -- OUTPUT` (after `npm ci` when its packages are missing).
async fn build_javascript(dir: &Path, output: &Path) -> anyhow::Result<()> {
    let name = dir.display();
    if !dir.join("node_modules").is_dir() {
        // `npm ci` installs exactly the lock file; a new plugin has none yet.
        let install = if dir.join("package-lock.json").is_file() { "ci" } else { "install" };
        let installed = npm(dir).args([install, "--no-audit", "--no-fund"]).status().await;
        if !installed.with_context(|| format!("cannot run npm for {name}: is Node.js installed?"))?.success() {
            bail!("npm {install} in {name} failed (errors above)");
        }
    }
    let built = npm(dir).args(["run", "--silent", "build", "--"]).arg(output).status();
    if !built.await.with_context(|| format!("cannot run npm for {name}: is Node.js installed?"))?.success() {
        bail!("npm run build in {name} failed (errors above); the running version keeps serving");
    }
    Ok(())
}

/// npm in `dir`, its output on stderr: stdout is the server's, which
/// prints one line there (the address it listens on).
fn npm(dir: &Path) -> Command {
    let mut npm = Command::new("npm");
    npm.current_dir(dir).stdout(Stdio::from(std::io::stderr()));
    npm
}

/// Move a built plugin into place: renamed, so the server never sees half a file.
fn install(name: &str, temporary: &Path, target: &Path, started: Instant) -> anyhow::Result<PathBuf> {
    std::fs::rename(temporary, target).with_context(|| format!("cannot install {}", target.display()))?;
    tracing::info!(plugin = name, elapsed = ?started.elapsed(), file = %target.display(), "plugin built");
    Ok(target.to_owned())
}

/// Build every crate once (failures are reported, the others go on).
pub(crate) async fn build_all(sources: &Path, plugins: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(plugins).with_context(|| format!("cannot create {}", plugins.display()))?;
    for crate_dir in plugin_crates(sources)? {
        if let Err(error) = build_and_install(&crate_dir, plugins).await {
            tracing::error!("{error:#}");
        }
    }
    Ok(())
}

/// Rebuild crates as their sources change, until the returned guard drops.
pub(crate) fn watch_sources(sources: &Path, plugins: &Path) -> anyhow::Result<notify::RecommendedWatcher> {
    let sources = std::fs::canonicalize(sources).with_context(|| format!("cannot find {}", sources.display()))?;
    let (changed, mut queue) = changed_crates(QUEUE);
    let root = sources.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        for path in event.paths {
            if let Some(crate_dir) = crate_of(&root, &path) {
                changed.send(crate_dir);
            }
        }
    })?;
    watcher.watch(&sources, RecursiveMode::Recursive).with_context(|| format!("cannot watch {}", sources.display()))?;
    let plugins = plugins.to_owned();
    let root = sources.clone();
    tokio::spawn(async move {
        while let Some(first) = queue.recv().await {
            let mut crates = BTreeSet::from([first]);
            while let Ok(Some(next)) = tokio::time::timeout(DEBOUNCE, queue.recv()).await {
                crates.insert(next);
            }
            if queue.lost_some() {
                crates.extend(plugin_crates(&root).unwrap_or_default());
            }
            for crate_dir in crates {
                tracing::info!(plugin = %crate_dir.display(), "sources changed, rebuilding");
                if let Err(error) = build_and_install(&crate_dir, &plugins).await {
                    tracing::error!("{error:#}");
                }
            }
        }
    });
    tracing::info!(folder = %sources.display(), "watching plugin sources");
    Ok(watcher)
}

/// The two ends of the bounded queue of changed crates, from the watcher
/// thread to the build task.
fn changed_crates(capacity: usize) -> (Changed, Queue) {
    let (sender, receiver) = mpsc::channel(capacity);
    let overflowed = Arc::new(AtomicBool::new(false));
    (Changed { sender, overflowed: Arc::clone(&overflowed) }, Queue { receiver, overflowed })
}

/// The watcher's end: queues a crate, or notes that one was lost.
struct Changed {
    sender: mpsc::Sender<PathBuf>,
    overflowed: Arc<AtomicBool>,
}

impl Changed {
    fn send(&self, crate_dir: PathBuf) {
        if self.sender.try_send(crate_dir).is_err() {
            self.overflowed.store(true, Ordering::SeqCst);
        }
    }
}

/// The build task's end.
struct Queue {
    receiver: mpsc::Receiver<PathBuf>,
    overflowed: Arc<AtomicBool>,
}

impl Queue {
    async fn recv(&mut self) -> Option<PathBuf> {
        self.receiver.recv().await
    }

    /// Whether changes were lost since the last call: then every crate is rebuilt.
    fn lost_some(&self) -> bool {
        self.overflowed.swap(false, Ordering::SeqCst)
    }
}

/// The plugin folder a changed path belongs to: `sources/<plugin>/...`,
/// except build output, installed packages and hidden files.
fn crate_of(sources: &Path, path: &Path) -> Option<PathBuf> {
    let relative = path.strip_prefix(sources).ok()?;
    let mut parts = relative.components().map(|part| part.as_os_str().to_string_lossy());
    let crate_name = parts.next()?;
    let rest: Vec<_> = parts.collect();
    let ignored = rest.is_empty()
        || rest.first().is_some_and(|first| ["target", "node_modules", "dist"].contains(&&**first))
        || rest.iter().any(|part| part.starts_with('.') || part.ends_with('~'));
    let crate_dir = sources.join(&*crate_name);
    (!ignored && is_plugin(&crate_dir)).then_some(crate_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_inside_a_crate_count() {
        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("plugins");
        let sources = std::fs::canonicalize(sources).unwrap();
        let chat = sources.join("chat");
        assert_eq!(crate_of(&sources, &chat.join("src/lib.rs")), Some(chat.clone()));
        assert_eq!(crate_of(&sources, &chat.join("Cargo.toml")), Some(chat.clone()));
        assert_eq!(crate_of(&sources, &chat.join("target/x.wasm")), None);
        assert_eq!(crate_of(&sources, &chat.join("src/.lib.rs.swp")), None);
        assert_eq!(crate_of(&sources, &chat), None);
        assert_eq!(crate_of(&sources, Path::new("/elsewhere/chat/src/lib.rs")), None);
        let js = sources.join("echo-js");
        assert_eq!(crate_of(&sources, &js.join("echo.js")), Some(js.clone()));
        assert_eq!(crate_of(&sources, &js.join("node_modules/x/index.js")), None);
        assert_eq!(crate_of(&sources, &js.join("dist/echo_js.wasm")), None);
    }

    #[tokio::test]
    async fn a_full_queue_of_changed_crates_means_rebuild_them_all() {
        let (changed, mut queue) = changed_crates(2);
        for name in ["a", "b", "c"] {
            changed.send(PathBuf::from(name));
        }
        assert!(queue.lost_some(), "the third was not queued");
        assert!(!queue.lost_some(), "said once");
        assert_eq!(queue.recv().await, Some(PathBuf::from("a")));
        assert_eq!(queue.recv().await, Some(PathBuf::from("b")));
        drop(changed);
        assert_eq!(queue.recv().await, None);
    }
}
