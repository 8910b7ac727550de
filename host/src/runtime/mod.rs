//! Running plugins: the only part of the host that names wasmtime.
//!
//! - [`Runtime`] holds the engines and linkers, and compiles a `.wasm`
//!   file (with Winch, [`Tier::Quick`], or Cranelift, [`Tier::Optimised`])
//!   into a [`Linked`] plugin, type-checked against the world, and then a
//!   [`Compiled`] one, described by its own `describe` export;
//! - `instance.rs` keeps one warm instance, gives each callback its time
//!   budget, and replaces the instance after a trap;
//! - `plugin.rs` runs a plugin's callbacks one at a time, on the task of
//!   whoever caused them (a connection, the publish API, a reload), so
//!   callbacks of one connection arrive in order and none needs a thread hop;
//! - `host_api.rs` implements the calls a plugin makes into the host;
//! - `bindings.rs` generates the bindings of each contract version the host
//!   links, `exports.rs` calls a plugin of either, `legacy.rs` serves the
//!   0.1.0 `host` interface with the current one.

mod bindings;
mod exports;
mod host_api;
mod instance;
mod legacy;
mod plugin;

use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, EngineWeak};

pub(crate) use plugin::{Callback, ConnectRequest, PluginHandle};

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

impl From<&crate::config::Limits> for Limits {
    fn from(limits: &crate::config::Limits) -> Self {
        Limits { max_memory: limits.plugin_memory, callback_timeout: limits.callback_timeout }
    }
}

/// Which code generator compiles a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    /// Winch: compiles several times faster than Cranelift, into slower
    /// code. A changed file serves from it until its optimised build is ready.
    Quick,
    /// Cranelift: optimised code, kept in the compile cache.
    Optimised,
}

/// A plugin compiled and linked against the world, not yet asked who it is.
pub(crate) struct Linked {
    pre: exports::Pre,
    tier: Tier,
}

impl std::fmt::Debug for Linked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linked").field("tier", &self.tier).finish_non_exhaustive()
    }
}

impl Linked {
    /// Run the plugin's `describe` in a throwaway instance, under `limits`
    /// (the global ones: the plugin's name, and so its own, is not known yet).
    pub(crate) async fn describe(self, limits: &crate::config::Limits) -> Result<Compiled, LoadError> {
        let mut compiled =
            Compiled { pre: self.pre, tier: self.tier, limits: Limits::from(limits), info: PluginInfo::default() };
        compiled.info = instance::describe(&compiled, limits).await?;
        Ok(compiled)
    }
}

/// A plugin compiled, linked and described, ready to be instantiated.
pub(crate) struct Compiled {
    pre: exports::Pre,
    /// The code generator that compiled it.
    pub(crate) tier: Tier,
    limits: Limits,
    pub(crate) info: PluginInfo,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled").field("info", &self.info).field("tier", &self.tier).finish_non_exhaustive()
    }
}

impl Compiled {
    /// Apply the limits configured for this plugin to its future instances.
    pub(crate) fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }
}

/// An engine and the linker of the world's imports for it.
struct Backend {
    engine: Engine,
    linker: Linker<HostState>,
}

impl Backend {
    fn new(config: &wasmtime::Config) -> wasmtime::Result<Backend> {
        let engine = Engine::new(config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::Channel::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |state| state)?;
        bindings::v0_1::Channel::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |state| state)?;
        Ok(Backend { engine, linker })
    }
}

/// The engines and linkers shared by all plugins.
pub(crate) struct Runtime {
    optimised: Backend,
    /// `None` where Winch is not available: then every tier is optimised.
    quick: Option<Backend>,
    /// Where a marker file per component says that the compile cache holds
    /// its optimised code; `None` without a cache.
    markers: Option<PathBuf>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("quick", &self.quick.is_some()).finish_non_exhaustive()
    }
}

impl Runtime {
    /// `cache`: a folder for optimised code, keyed by wasmtime on the
    /// component's bytes and the engine's settings, so that a restart does
    /// not compile again. It must not be the watched plugins folder.
    pub(crate) fn new(cache: Option<&Path>) -> anyhow::Result<Runtime> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let mut quick_config = config.clone();
        quick_config.strategy(wasmtime::Strategy::Winch);
        let mut markers = None;
        if let Some(folder) = cache {
            let mut cache_config = wasmtime::CacheConfig::new();
            cache_config.with_directory(folder);
            match wasmtime::Cache::new(cache_config) {
                Ok(cache) => {
                    config.cache(Some(cache));
                    markers = Some(folder.join("switchboard-optimised"));
                }
                // A cache is an optimisation: serve without it.
                Err(error) => tracing::warn!(folder = %folder.display(), "compile cache disabled: {error:#}"),
            }
        }
        let optimised = Backend::new(&config).map_err(|error| anyhow::anyhow!("{error:#}"))?;
        let quick = Backend::new(&quick_config)
            .inspect_err(|error| tracing::warn!("no quick compiler, plugins load optimised: {error:#}"))
            .ok();
        // Markers are per engine build and settings: another version's
        // cache entries are not ours.
        let mut engine_hash = std::hash::DefaultHasher::new();
        optimised.engine.precompile_compatibility_hash().hash(&mut engine_hash);
        let markers = markers.map(|folder| folder.join(format!("{:016x}", engine_hash.finish())));
        start_epoch_ticker([&optimised].into_iter().chain(&quick).map(|backend| backend.engine.weak()).collect());
        Ok(Runtime { optimised, quick, markers })
    }

    /// The tier to load a component first: optimised when the compile cache
    /// holds its optimised code (loading that takes milliseconds), quick
    /// otherwise (to be followed by the optimised build).
    pub(crate) fn first_tier(&self, sha256: &str) -> Tier {
        let cached = self.markers.as_ref().is_some_and(|folder| folder.join(sha256).exists());
        if cached || self.quick.is_none() { Tier::Optimised } else { Tier::Quick }
    }

    /// Compile a plugin with `tier`'s code generator (optimised if there is
    /// no quick one) and link it against the world; then
    /// [`Linked::describe`]. CPU-heavy (milliseconds to a few hundred): call
    /// it off the async runtime's worker threads.
    pub(crate) fn compile(&self, bytes: &[u8], sha256: &str, tier: Tier) -> Result<Linked, LoadError> {
        let (backend, tier) = match (tier, &self.quick) {
            (Tier::Quick, Some(quick)) => (quick, Tier::Quick),
            _ => (&self.optimised, Tier::Optimised),
        };
        let component = Component::new(&backend.engine, bytes).map_err(|error| LoadError::Invalid(one_line(&error)))?;
        let pre = backend
            .linker
            .instantiate_pre(&component)
            .and_then(exports::Pre::new)
            .map_err(|error| LoadError::WrongWorld(one_line(&error)))?;
        if let (Tier::Optimised, Some(folder)) = (tier, &self.markers) {
            // Only an optimisation: a missing marker costs a quick build first.
            let marked = std::fs::create_dir_all(folder).and_then(|()| std::fs::write(folder.join(sha256), b""));
            if let Err(error) = marked {
                tracing::debug!(folder = %folder.display(), "cannot mark the compile cache: {error}");
            }
        }
        Ok(Linked { pre, tier })
    }
}

/// Advance the engines' epochs every tick while they live, so that
/// callbacks yield and their deadlines are checked. One thread for all.
fn start_epoch_ticker(mut engines: Vec<EngineWeak>) {
    let spawned = std::thread::Builder::new().name("epoch-ticker".into()).spawn(move || {
        while !engines.is_empty() {
            engines.retain(|engine| engine.upgrade().inspect(Engine::increment_epoch).is_some());
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
