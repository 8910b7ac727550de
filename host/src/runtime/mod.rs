//! Running plugins: the only part of the host that names wasmtime.
//!
//! - [`Runtime`] holds the engine and the linker, and compiles a `.wasm`
//!   file into a [`Compiled`] plugin (type-checked against the world, and
//!   described by its own `describe` export);
//! - `instance.rs` keeps one warm instance, gives each callback its time
//!   budget, and replaces the instance after a trap;
//! - `plugin.rs` runs a plugin's callbacks one at a time, on the task of
//!   whoever caused them (a connection, the publish API, a reload), so
//!   callbacks of one connection arrive in order and none needs a thread hop;
//! - `host_api.rs` implements the calls a plugin makes into the host.

mod bindings;
mod host_api;
mod instance;
mod plugin;

use std::path::Path;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, EngineWeak};

pub(crate) use plugin::{ConnectRequest, PluginHandle};

pub(crate) use host_api::HostState;

/// How often the engine's epoch advances: the granularity of callback
/// deadlines, and how long a callback runs before it yields its worker.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why a file could not become a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not a WebAssembly component (a core module, a truncated or garbage file).
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// A component, but not of the `switchboard:channel` world (missing or
    /// mistyped exports, unknown imports).
    #[error("does not implement the switchboard:channel world: {0}")]
    WrongWorld(String),
    /// Instantiating it or calling `describe` trapped.
    #[error("failed to start: {0}")]
    Start(String),
    /// `describe` returned something unusable.
    #[error("invalid self-description: {0}")]
    Describe(String),
}

/// What a plugin says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PluginInfo {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) routes: Vec<String>,
}

/// Per-plugin sandbox limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Most linear memory one instance may grow to, in bytes.
    pub(crate) max_memory: usize,
    /// Longest a single callback may run before it is interrupted.
    pub(crate) callback_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_memory: 64 << 20, callback_timeout: Duration::from_secs(1) }
    }
}

/// A plugin compiled and linked against the world, not yet asked who it is.
pub(crate) struct Linked {
    pre: bindings::ChannelPre<HostState>,
}

impl std::fmt::Debug for Linked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linked").finish_non_exhaustive()
    }
}

impl Linked {
    /// Run the plugin's `describe` in a throwaway instance, under default limits.
    pub(crate) async fn describe(self) -> Result<Compiled, LoadError> {
        let mut compiled = Compiled { pre: self.pre, limits: Limits::default(), info: PluginInfo::default() };
        compiled.info = instance::describe(&compiled).await?;
        Ok(compiled)
    }
}

/// A plugin compiled, linked and described, ready to be instantiated.
pub(crate) struct Compiled {
    pre: bindings::ChannelPre<HostState>,
    limits: Limits,
    pub(crate) info: PluginInfo,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled").field("info", &self.info).finish_non_exhaustive()
    }
}

impl Compiled {
    /// Apply the limits configured for this plugin to its future instances.
    pub(crate) fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }
}

/// The engine and linker shared by all plugins.
pub(crate) struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// `cache`: a folder for compiled code, keyed by wasmtime on the
    /// component's bytes and the engine's settings, so that a restart does
    /// not compile again. It must not be the watched plugins folder.
    pub(crate) fn new(cache: Option<&Path>) -> anyhow::Result<Runtime> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        if let Some(folder) = cache {
            let mut cache_config = wasmtime::CacheConfig::new();
            cache_config.with_directory(folder);
            match wasmtime::Cache::new(cache_config) {
                Ok(cache) => {
                    config.cache(Some(cache));
                }
                // A cache is an optimisation: serve without it.
                Err(error) => tracing::warn!(folder = %folder.display(), "compile cache disabled: {error:#}"),
            }
        }
        let engine = Engine::new(&config).map_err(|error| anyhow::anyhow!("{error:#}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|error| anyhow::anyhow!("{error:#}"))?;
        bindings::Channel::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(|error| anyhow::anyhow!("{error:#}"))?;
        start_epoch_ticker(engine.weak());
        Ok(Runtime { engine, linker })
    }

    /// Compile a plugin and link it against the world; then
    /// [`Linked::describe`]. CPU-heavy (tens of milliseconds): call it off
    /// the async runtime's worker threads.
    pub(crate) fn compile(&self, bytes: &[u8]) -> Result<Linked, LoadError> {
        let component = Component::new(&self.engine, bytes).map_err(|error| LoadError::Invalid(one_line(&error)))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(bindings::ChannelPre::new)
            .map_err(|error| LoadError::WrongWorld(one_line(&error)))?;
        Ok(Linked { pre })
    }
}

/// Advance the engine's epoch every tick while the engine lives, so that
/// callback deadlines (counted in ticks) fire.
fn start_epoch_ticker(engine: EngineWeak) {
    let spawned = std::thread::Builder::new().name("epoch-ticker".into()).spawn(move || {
        while let Some(engine) = engine.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(EPOCH_TICK);
        }
    });
    if let Err(error) = spawned {
        tracing::error!("cannot start the epoch ticker, plugin deadlines are off: {error}");
    }
}

/// An error and its causes on one line, for logs and the API.
pub(crate) fn one_line(error: &wasmtime::Error) -> String {
    format!("{error:#}").split_whitespace().collect::<Vec<_>>().join(" ")
}
