//! The loaded plugins and the route table that leads to them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::channel::Channel;
use crate::routes::{RouteError, RoutePattern, RouteTable};
use crate::runtime::{Compiled, LoadError, PluginHandle, PluginInfo, Runtime};

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
    /// The plugin could not be started.
    #[error("cannot start: {0}")]
    Start(String),
}

/// A plugin that serves routes.
#[derive(Debug)]
pub(crate) struct LoadedPlugin {
    pub(crate) info: PluginInfo,
    /// The file it was loaded from, for the API and logs.
    pub(crate) file: PathBuf,
    pub(crate) loaded_at: SystemTime,
    /// Its connections, rooms and store.
    pub(crate) channel: Arc<Channel>,
    /// The queue into its thread.
    pub(crate) handle: PluginHandle,
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
    /// Read on every upgrade request, replaced whole when plugins change, so
    /// lookups never wait for a load.
    routes: ArcSwap<RouteTable<Arc<LoadedPlugin>>>,
    /// Plugins by name; also serialises changes to `routes`.
    plugins: Mutex<BTreeMap<String, Arc<LoadedPlugin>>>,
    /// Files that failed to load, and why; shown by the API.
    failures: Mutex<BTreeMap<PathBuf, String>>,
}

impl Registry {
    pub(crate) fn new(runtime: Runtime) -> Registry {
        Registry {
            runtime,
            routes: ArcSwap::from_pointee(RouteTable::default()),
            plugins: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(BTreeMap::new()),
        }
    }

    /// Load every `*.wasm` file of `dir`, in name order. Files are compiled
    /// in parallel on blocking threads; a file that fails is logged and
    /// skipped. Returns how many plugins loaded.
    pub(crate) async fn load_dir(self: &Arc<Self>, dir: &Path) -> anyhow::Result<usize> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|error| anyhow::anyhow!("cannot read plugins folder {}: {error}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| is_plugin_file(path))
            .collect();
        files.sort();
        let compiling: Vec<_> = files
            .into_iter()
            .map(|file| {
                let registry = Arc::clone(self);
                let path = file.clone();
                (file, tokio::task::spawn_blocking(move || registry.compile_file(&path)))
            })
            .collect();
        let mut loaded = 0;
        for (file, compiled) in compiling {
            let outcome = match compiled.await {
                Ok(Ok(compiled)) => self.install(&file, compiled),
                Ok(Err(error)) => Err(error),
                Err(panic) => Err(PluginError::Start(format!("compiler panicked: {panic}"))),
            };
            match outcome {
                Ok(plugin) => {
                    loaded += 1;
                    tracing::info!(
                        plugin = plugin.info.name,
                        version = plugin.info.version,
                        routes = ?plugin.info.routes,
                        file = %file.display(),
                        "plugin loaded"
                    );
                }
                Err(error) => self.record_failure(&file, &error),
            }
        }
        Ok(loaded)
    }

    fn compile_file(&self, file: &Path) -> Result<Compiled, PluginError> {
        let started = Instant::now();
        let bytes = std::fs::read(file)?;
        let compiled = self.runtime.compile(&bytes)?;
        tracing::debug!(file = %file.display(), elapsed = ?started.elapsed(), "plugin compiled");
        Ok(compiled)
    }

    /// Make a compiled plugin serve its routes.
    fn install(&self, file: &Path, compiled: Compiled) -> Result<Arc<LoadedPlugin>, PluginError> {
        let mut plugins = self.plugins.lock();
        let name = compiled.info.name.clone();
        if let Some(other) = plugins.get(&name) {
            return Err(PluginError::NameTaken { name, other: other.file.clone() });
        }
        let patterns =
            compiled.info.routes.iter().map(|route| RoutePattern::parse(route)).collect::<Result<Vec<_>, _>>()?;
        let current = self.routes.load();
        for pattern in &patterns {
            current.check(pattern, &name)?;
        }
        let channel = Arc::new(Channel::new(&name));
        let info = compiled.info.clone();
        let handle = crate::runtime::spawn(compiled, Arc::clone(&channel))
            .map_err(|error| PluginError::Start(format!("{error:#}")))?;
        let plugin =
            Arc::new(LoadedPlugin { info, file: file.to_owned(), loaded_at: SystemTime::now(), channel, handle });
        let mut table = current.without(&name);
        for pattern in patterns {
            table.insert(pattern, &name, Arc::clone(&plugin))?;
        }
        self.routes.store(Arc::new(table));
        plugins.insert(name, Arc::clone(&plugin));
        self.failures.lock().remove(file);
        Ok(plugin)
    }

    fn record_failure(&self, file: &Path, error: &PluginError) {
        tracing::error!(file = %file.display(), "plugin not loaded: {error}");
        self.failures.lock().insert(file.to_owned(), error.to_string());
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

    /// Every loaded plugin.
    pub(crate) fn plugins(&self) -> Vec<Arc<LoadedPlugin>> {
        self.plugins.lock().values().cloned().collect()
    }

    /// The state shown by `GET /api/plugins`.
    pub(crate) fn describe(&self) -> Value {
        let plugins: Vec<Value> = self
            .plugins()
            .iter()
            .map(|plugin| {
                json!({
                    "name": plugin.info.name,
                    "version": plugin.info.version,
                    "routes": plugin.info.routes,
                    "file": plugin.file.display().to_string(),
                    "loaded_at": humantime::format_rfc3339_millis(plugin.loaded_at).to_string(),
                    "connections": plugin.channel.connection_count(),
                    "last_error": self.failures.lock().get(&plugin.file),
                })
            })
            .collect();
        let errors: Vec<Value> = self
            .failures
            .lock()
            .iter()
            .map(|(file, error)| json!({ "file": file.display().to_string(), "error": error }))
            .collect();
        json!({ "plugins": plugins, "errors": errors })
    }
}

/// `*.wasm`, and not a hidden or temporary file.
fn is_plugin_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|name| name.to_str()).is_none_or(|name| name.starts_with('.'));
    !hidden && path.extension().is_some_and(|ext| ext == "wasm") && path.is_file()
}
