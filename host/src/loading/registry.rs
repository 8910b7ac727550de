//! The loaded plugins, the route table that leads to them, and how they
//! change: load, replace (hot reload) and unload.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::channel::Channel;
use crate::close::Close;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::loading::contest::{Candidate, contested};
use crate::loading::routes::{RouteError, RoutePattern, RouteTable};
use crate::metrics::Metrics;
use crate::runtime::{Compiled, Linked, LoadError, PluginHandle, PluginInfo, Runtime, Tier};
use crate::storage::Durable;

/// Why a plugin file was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file could not be read.
    #[error("cannot read file: {0}")]
    Read(#[from] std::io::Error),
    /// The file is not a valid plugin.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Another file already provides a plugin of that name.
    #[error("a plugin named `{name}` is already loaded from {}", other.display())]
    NameTaken {
        /// The plugin name.
        name: String,
        /// The file that has it.
        other: PathBuf,
    },
    /// A route is malformed or served by another plugin.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The configuration pins the plugin's name to another file or build
    /// (`[plugin.NAME] file` or `sha256`).
    #[error("the plugin name `{name}` is pinned to {pin} in the configuration")]
    Pinned {
        /// The plugin name.
        name: String,
        /// The file or hash it is pinned to.
        pin: String,
    },
    /// At start-up, other files claim the same name or route, and no pin
    /// settles it: every party is refused, whatever the files' order.
    #[error("{0}")]
    Contested(String),
    /// The plugin could not be started, or the new version refused to take over.
    #[error("cannot start: {0}")]
    Start(String),
}

/// A plugin that serves routes. Replaced by a new value (same channel, same
/// handle) on every reload.
#[derive(Debug)]
pub(crate) struct LoadedPlugin {
    pub(crate) info: PluginInfo,
    /// The file it was loaded from, for the API and logs.
    pub(crate) file: PathBuf,
    /// Hash of the file's bytes: a write that does not change them is no reload.
    pub(crate) sha256: String,
    pub(crate) loaded_at: SystemTime,
    /// Its connections, rooms and store.
    pub(crate) channel: Arc<Channel>,
    /// The way to its instance.
    pub(crate) handle: PluginHandle,
    /// Whether it runs optimised code yet: a changed file first serves a
    /// quick build, and [`Registry::tier_up`] swaps in the optimised one.
    optimised: AtomicBool,
}

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Loaded {
    /// A plugin that was not loaded before now serves.
    New { name: String, version: String },
    /// A new version replaced the running one.
    Replaced { name: String, from: String, to: String },
    /// The file's bytes are those already loaded.
    Unchanged,
}

/// A route lookup's result: who serves the path, and how it matched.
#[derive(Debug)]
pub(crate) struct Routed {
    pub(crate) plugin: Arc<LoadedPlugin>,
    pub(crate) pattern: String,
    pub(crate) params: Vec<(String, String)>,
}

/// All loaded plugins.
#[derive(Debug)]
pub(crate) struct Registry {
    runtime: Runtime,
    /// For each plugin's sandbox limits.
    config: Config,
    /// Read on every upgrade request and replaced whole when plugins change,
    /// so lookups never wait for a load.
    routes: ArcSwap<RouteTable<Arc<LoadedPlugin>>>,
    /// Plugins by name.
    plugins: Mutex<BTreeMap<String, Arc<LoadedPlugin>>>,
    /// Channels by plugin name, kept after an unload so that a plugin that
    /// comes back finds its key-value store.
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    /// Files whose last load failed, and why; shown by the API.
    failures: Mutex<BTreeMap<PathBuf, String>>,
    /// Serialises changes (load, replace, tier-up, unload): each spans an
    /// await on the plugin's lock, and two must not interleave.
    changing: tokio::sync::Mutex<()>,
    /// Where the plugins' key-value stores are kept across restarts, if anywhere.
    durable: Option<Arc<Durable>>,
    /// The server's metrics: each channel gets its plugin's handles, reloads are counted.
    metrics: Arc<Metrics>,
    /// The other nodes, when clustered: every channel shares its rooms and users with them.
    cluster: Option<Arc<Cluster>>,
}

impl Registry {
    pub(crate) fn new(runtime: Runtime, config: Config, durable: Option<Arc<Durable>>) -> Registry {
        Registry {
            runtime,
            config,
            routes: ArcSwap::from_pointee(RouteTable::default()),
            plugins: Mutex::new(BTreeMap::new()),
            channels: Mutex::new(HashMap::new()),
            failures: Mutex::new(BTreeMap::new()),
            changing: tokio::sync::Mutex::new(()),
            durable,
            metrics: Arc::new(Metrics::new(false)),
            cluster: None,
        }
    }

    /// The same registry, its channels shared with the nodes of `cluster`
    /// (before any plugin loads).
    pub(crate) fn with_cluster(mut self, cluster: Option<Arc<Cluster>>) -> Registry {
        self.cluster = cluster;
        self
    }

    /// The same registry, recording to `metrics` (before any plugin loads).
    pub(crate) fn with_metrics(mut self, metrics: Arc<Metrics>) -> Registry {
        self.metrics = metrics;
        self
    }

    /// Make the loaded plugins match the `*.wasm` files of `dir`: load new
    /// and changed files, and unload plugins whose file is gone. Every file
    /// is compiled and described at once (each `describe` under its own
    /// deadline); files that contest a name or a route with each other are
    /// all refused, unless a pin in the configuration settles it, so the
    /// outcome does not depend on their order. Failures are logged and
    /// recorded.
    pub(crate) async fn sync_dir(self: &Arc<Self>, dir: &Path, since: Instant) -> anyhow::Result<usize> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|error| anyhow::anyhow!("cannot read plugins folder {}: {error}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| is_plugin_file(path))
            .collect();
        files.sort();
        for plugin in self.plugins() {
            if !files.contains(&plugin.file) {
                self.unload_file(&plugin.file).await;
            }
        }
        let preparing: Vec<_> = files
            .into_iter()
            .map(|file| {
                let registry = Arc::clone(self);
                let task = tokio::spawn({
                    let file = file.clone();
                    async move { registry.prepare(&file).await }
                });
                (file, task)
            })
            .collect();
        let mut prepared = Vec::new();
        for (file, task) in preparing {
            let outcome =
                task.await.unwrap_or_else(|panic| Err(PluginError::Start(format!("loader panicked: {panic}"))));
            prepared.push((file, outcome));
        }
        let candidates: Vec<Candidate<'_>> = prepared
            .iter()
            .filter_map(|(file, outcome)| match outcome {
                Ok(Some(ready)) => Some(Candidate {
                    file,
                    info: &ready.compiled.info,
                    pinned: self.is_pinned_to(&ready.compiled.info.name, file, &ready.sha256),
                }),
                _ => None,
            })
            .collect();
        let mut contested = contested(&candidates);
        drop(candidates);
        let mut loaded = 0;
        for (file, outcome) in prepared {
            let outcome = match (contested.remove(&file), outcome) {
                (Some(why), _) => Err(PluginError::Contested(why)),
                (None, Ok(Some(ready))) => self.apply_prepared(&file, ready, since).await,
                (None, Ok(None)) => Ok(Loaded::Unchanged),
                (None, Err(error)) => Err(error),
            };
            loaded += usize::from(outcome.is_ok());
            self.report(&file, outcome, since);
        }
        Ok(loaded)
    }

    /// Load, replace or unload the plugin of one file, after it changed.
    pub(crate) async fn file_changed(self: &Arc<Self>, file: &Path, since: Instant) {
        if !file.exists() {
            self.unload_file(file).await;
            self.failures.lock().remove(file);
            return;
        }
        let outcome = match self.prepare(file).await {
            Ok(Some(ready)) => self.apply_prepared(file, ready, since).await,
            Ok(None) => Ok(Loaded::Unchanged),
            Err(error) => Err(error),
        };
        self.report(file, outcome, since);
    }

    /// Compile (on a blocking thread: it is CPU work) and describe a file;
    /// `None` when its bytes are those already loaded.
    async fn prepare(self: &Arc<Self>, file: &Path) -> Result<Option<Prepared>, PluginError> {
        let registry = Arc::clone(self);
        let path = file.to_owned();
        let compiled = tokio::task::spawn_blocking(move || registry.compile_file(&path))
            .await
            .map_err(|panic| PluginError::Start(format!("compiler panicked: {panic}")))??;
        let Some((sha256, linked)) = compiled else { return Ok(None) };
        Ok(Some(Prepared { sha256, compiled: self.introduce(linked).await? }))
    }

    /// Make a prepared plugin serve; a quick build is then followed by the
    /// optimised one.
    async fn apply_prepared(
        self: &Arc<Self>,
        file: &Path,
        ready: Prepared,
        since: Instant,
    ) -> Result<Loaded, PluginError> {
        let loaded = self.apply(file, ready.sha256, ready.compiled, since).await?;
        self.start_tier_up(file);
        Ok(loaded)
    }

    /// If the plugin of `file` serves a quick build, build it optimised in
    /// the background and swap that in (see [`Registry::tier_up`]).
    fn start_tier_up(self: &Arc<Self>, file: &Path) {
        let quick =
            self.plugins().into_iter().find(|plugin| plugin.file == file && !plugin.optimised.load(Ordering::Relaxed));
        let Some(plugin) = quick else { return };
        let registry = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(error) = registry.tier_up(&plugin).await {
                tracing::warn!(
                    plugin = plugin.info.name,
                    "optimised build failed, the quick one keeps serving: {error}"
                );
            }
        });
    }

    /// Compile `plugin`'s file with the optimising compiler and hand the
    /// running version over to it, as a reload (snapshot → restore) that
    /// changes nothing else. Skipped when the file or the serving version
    /// changed meanwhile: the newer change tiers up on its own.
    async fn tier_up(self: &Arc<Self>, plugin: &Arc<LoadedPlugin>) -> Result<(), PluginError> {
        let started = Instant::now();
        let registry = Arc::clone(self);
        let file = plugin.file.clone();
        let (sha256, linked) = tokio::task::spawn_blocking(move || -> Result<_, PluginError> {
            let (bytes, sha256) = read_hashed(&file)?;
            let linked = registry.runtime.compile(&bytes, &sha256, Tier::Optimised)?;
            Ok((sha256, linked))
        })
        .await
        .map_err(|panic| PluginError::Start(format!("compiler panicked: {panic}")))??;
        if sha256 != plugin.sha256 {
            return Ok(());
        }
        let compiled = self.introduce(linked).await?;
        let _changing = self.changing.lock().await;
        if !self.plugin(&plugin.info.name).is_some_and(|serving| Arc::ptr_eq(&serving, plugin)) {
            return Ok(());
        }
        plugin.handle.reload(compiled).await.map_err(PluginError::Start)?;
        plugin.optimised.store(true, Ordering::Relaxed);
        tracing::debug!(plugin = plugin.info.name, elapsed = ?started.elapsed(), "optimised build serving");
        Ok(())
    }

    fn report(&self, file: &Path, outcome: Result<Loaded, PluginError>, since: Instant) {
        let elapsed = since.elapsed();
        match &outcome {
            Ok(Loaded::Replaced { name, .. }) => self.metrics.reloaded(name, true),
            Err(_) => {
                // The plugin serving from the file (it serves on), else the file's name.
                let serving = self.plugins().into_iter().find(|plugin| plugin.file == file);
                let name = serving.map(|plugin| plugin.info.name.clone()).unwrap_or_else(|| {
                    file.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default()
                });
                self.metrics.reloaded(&name, false);
            }
            Ok(Loaded::New { .. } | Loaded::Unchanged) => {}
        }
        match outcome {
            Ok(Loaded::New { name, version }) => {
                let routes =
                    self.plugins.lock().get(&name).map(|plugin| plugin.info.routes.clone()).unwrap_or_default();
                tracing::info!(plugin = name, version, ?routes, file = %file.display(), ?elapsed, "plugin loaded");
            }
            Ok(Loaded::Replaced { name, from, to }) => {
                tracing::info!(plugin = name, file = %file.display(), ?elapsed, "plugin reloaded: {from} → {to}");
            }
            Ok(Loaded::Unchanged) => {
                tracing::debug!(file = %file.display(), "plugin file unchanged");
            }
            Err(error) => {
                tracing::error!(file = %file.display(), "plugin not loaded: {error}");
                self.failures.lock().insert(file.to_owned(), error.to_string());
                return;
            }
        }
        self.failures.lock().remove(file);
    }

    /// Read and compile a file; `None` when its bytes are those already loaded.
    fn compile_file(&self, file: &Path) -> Result<Option<(String, Linked)>, PluginError> {
        let started = Instant::now();
        let (bytes, sha256) = read_hashed(file)?;
        if self.plugins().iter().any(|plugin| plugin.file == file && plugin.sha256 == sha256) {
            return Ok(None);
        }
        let tier = self.runtime.first_tier(&sha256);
        let linked = self.runtime.compile(&bytes, &sha256, tier)?;
        tracing::debug!(file = %file.display(), elapsed = ?started.elapsed(), ?tier, "plugin compiled");
        Ok(Some((sha256, linked)))
    }

    /// Ask a compiled plugin who it is, and give it the limits configured for that name.
    async fn introduce(&self, linked: Linked) -> Result<Compiled, PluginError> {
        let mut compiled = linked.describe(&self.config.limits).await?;
        let limits = self.config.limits_for(&compiled.info.name);
        compiled.set_limits(crate::runtime::Limits::from(&limits));
        Ok(compiled)
    }

    /// Whether the configuration pins plugin `name` to `file` (or this hash).
    fn is_pinned_to(&self, name: &str, file: &Path, sha256: &str) -> bool {
        let pinned = self.config.plugin.get(name).is_some_and(|pin| pin.file.is_some() || pin.sha256.is_some());
        pinned && self.pin_allows(name, file, sha256).is_ok()
    }

    /// Whether the configuration lets plugin `name` load from `file` with
    /// this hash: yes when the name is not pinned.
    fn pin_allows(&self, name: &str, file: &Path, sha256: &str) -> Result<(), PluginError> {
        let Some(settings) = self.config.plugin.get(name) else { return Ok(()) };
        if let Some(pinned) = &settings.file {
            let pinned = self.config.plugins.join(pinned);
            if pinned != file {
                return Err(PluginError::Pinned { name: name.to_owned(), pin: pinned.display().to_string() });
            }
        }
        if let Some(pinned) = &settings.sha256
            && !pinned.eq_ignore_ascii_case(sha256)
        {
            return Err(PluginError::Pinned { name: name.to_owned(), pin: format!("sha256 {pinned}") });
        }
        Ok(())
    }

    /// Make a compiled plugin serve: start it, or hand it to the running
    /// version of the same plugin, then switch the routes over. Nothing
    /// changes unless the new version is up: a file that now holds another
    /// plugin keeps serving the old one if the new one fails.
    async fn apply(
        &self,
        file: &Path,
        sha256: String,
        compiled: Compiled,
        since: Instant,
    ) -> Result<Loaded, PluginError> {
        let _changing = self.changing.lock().await;
        let info = compiled.info.clone();
        let optimised = AtomicBool::new(compiled.tier == Tier::Optimised);
        let name = info.name.clone();
        self.pin_allows(&name, file, &sha256)?;
        let previous = self.plugins().into_iter().find(|plugin| plugin.file == file);
        if let Some(other) = self.plugins.lock().get(&name).filter(|other| other.file != file) {
            return Err(PluginError::NameTaken { name, other: other.file.clone() });
        }
        let patterns = info.routes.iter().map(|route| RoutePattern::parse(route)).collect::<Result<Vec<_>, _>>()?;
        let mut table = self.routes.load().without(&name);
        if let Some(previous) = &previous {
            table = table.without(&previous.info.name);
        }
        for pattern in &patterns {
            table.check(pattern, &name)?;
        }

        let (handle, outcome) = match previous.as_ref().filter(|previous| previous.info.name == name) {
            Some(previous) => {
                previous.handle.reload(compiled).await.map_err(PluginError::Start)?;
                let from = previous.info.version.clone();
                (previous.handle.clone(), Loaded::Replaced { name: name.clone(), from, to: info.version.clone() })
            }
            None => {
                let handle = PluginHandle::start(compiled, self.channel(&name)).await.map_err(PluginError::Start)?;
                handle.drive_timers();
                if let Some(previous) = &previous {
                    // The file now holds another plugin, which is up: the old one goes.
                    self.unload_plugin(previous, Close::PluginReplaced).await;
                }
                (handle, Loaded::New { name: name.clone(), version: info.version.clone() })
            }
        };
        let plugin = Arc::new(LoadedPlugin {
            info,
            file: file.to_owned(),
            sha256,
            loaded_at: SystemTime::now(),
            channel: self.channel(&name),
            handle,
            optimised,
        });
        for pattern in patterns {
            table.insert(pattern, &name, Arc::clone(&plugin))?;
        }
        self.routes.store(Arc::new(table));
        self.plugins.lock().insert(name, Arc::clone(&plugin));
        // Connections on routes the new version no longer serves (later
        // ones are refused by the plugin itself).
        for peer in plugin.channel.peers() {
            if !plugin.info.routes.iter().any(|route| **route == *peer.route) {
                peer.close(Close::RouteRemoved);
            }
        }
        tracing::debug!(plugin = plugin.info.name, elapsed = ?since.elapsed(), "routes switched");
        Ok(outcome)
    }

    /// Unload the plugin loaded from `file`, if any.
    pub(crate) async fn unload_file(&self, file: &Path) {
        let _changing = self.changing.lock().await;
        if let Some(plugin) = self.plugins().into_iter().find(|plugin| plugin.file == file) {
            self.unload_plugin(&plugin, Close::PluginRemoved).await;
            tracing::info!(plugin = plugin.info.name, file = %file.display(), "plugin unloaded");
        }
    }

    /// Stop routing to a plugin, make it refuse connections routed to it
    /// just before, and close its connections with 1001. Its instance is
    /// dropped once the last connection has said goodbye.
    async fn unload_plugin(&self, plugin: &LoadedPlugin, why: Close) {
        self.routes.store(Arc::new(self.routes.load().without(&plugin.info.name)));
        self.plugins.lock().remove(&plugin.info.name);
        plugin.handle.retire().await;
        for peer in plugin.channel.peers() {
            peer.close(why);
        }
    }

    fn channel(&self, name: &str) -> Arc<Channel> {
        let mut channels = self.channels.lock();
        let channel = channels.entry(name.to_owned()).or_insert_with(|| {
            let channel = Channel::new(name, self.config.limits_for(name), self.durable.clone())
                .with_metrics(self.metrics.plugin(name))
                .with_cluster(self.cluster.clone());
            let channel = Arc::new(channel);
            channel.attach();
            channel
        });
        Arc::clone(channel)
    }

    /// The plugin serving `path`, if any.
    pub(crate) fn route(&self, path: &str) -> Option<Routed> {
        let table = self.routes.load();
        let found = table.find(path)?;
        Some(Routed {
            plugin: Arc::clone(found.target),
            pattern: found.pattern.as_str().to_owned(),
            params: found.params,
        })
    }

    /// Write every store change and the rooms' history to disk and close
    /// the store file (on shutdown, once no callback runs).
    pub(crate) fn close_storage(&self) {
        if let Some(durable) = &self.durable {
            let channels: Vec<Arc<Channel>> = self.channels.lock().values().cloned().collect();
            for channel in channels {
                channel.save_history();
            }
            durable.close();
        }
    }

    /// The loaded plugin called `name`.
    pub(crate) fn plugin(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins.lock().get(name).cloned()
    }

    /// Every loaded plugin, by name.
    pub(crate) fn plugins(&self) -> Vec<Arc<LoadedPlugin>> {
        self.plugins.lock().values().cloned().collect()
    }

    /// The state shown by `GET /api/plugins`.
    pub(crate) fn describe(&self) -> Value {
        let failures = self.failures.lock().clone();
        let plugins: Vec<Value> = self
            .plugins()
            .iter()
            .map(|plugin| {
                let stats = plugin.channel.stats();
                json!({
                    "name": plugin.info.name,
                    "version": plugin.info.version,
                    "routes": plugin.info.routes,
                    "file": plugin.file.display().to_string(),
                    "sha256": plugin.sha256,
                    "loaded_at": humantime::format_rfc3339_millis(plugin.loaded_at).to_string(),
                    "connections": stats.connections,
                    "rooms": stats.rooms,
                    "tracked_rooms": stats.tracked_rooms,
                    "kv_keys": stats.kv_keys,
                    "kv_bytes": stats.kv_bytes,
                    "history_rooms": stats.history_rooms,
                    "history_bytes": stats.history_bytes,
                    "mailbox_users": stats.mailbox_users,
                    "mailbox_bytes": stats.mailbox_bytes,
                    "timers": stats.timers,
                    "log_dropped": stats.log_dropped,
                    "presence_events_dropped": stats.presence_events_dropped,
                    "optimised": plugin.optimised.load(Ordering::Relaxed),
                    "last_error": failures.get(&plugin.file),
                })
            })
            .collect();
        let errors: Vec<Value> = failures
            .iter()
            .map(|(file, error)| json!({ "file": file.display().to_string(), "error": error }))
            .collect();
        json!({ "plugins": plugins, "errors": errors })
    }
}

/// A file compiled and described, ready to serve.
struct Prepared {
    sha256: String,
    compiled: Compiled,
}

/// `*.wasm`, and not a hidden file (editors and our own scripts write
/// `.name.wasm.tmp` files first and rename them into place).
pub(crate) fn is_plugin_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|name| name.to_str()).is_none_or(|name| name.starts_with('.'));
    !hidden && path.extension().is_some_and(|ext| ext == "wasm")
}

/// A file's bytes and their SHA-256, in hex.
fn read_hashed(file: &Path) -> std::io::Result<(Vec<u8>, String)> {
    let bytes = std::fs::read(file)?;
    let sha256 = hex(&Sha256::digest(&bytes));
    Ok((bytes, sha256))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}
