//! One live instance of a plugin, its time budget, and the way back after it traps.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Store, UpdateDeadline};

use super::bindings::PluginInfo as WitPluginInfo;
use super::exports::Exports;
use super::host_api::HostState;
use super::{Compiled, EPOCH_TICK, LoadError, PluginInfo};
use crate::channel::Channel;
use crate::config::MAX_PLUGIN_NAME;

/// A plugin instance and its store. A trap poisons the store for good, so
/// the owner replaces the whole instance (see [`Instance::new`]).
pub(super) struct Instance {
    pub(super) store: Store<HostState>,
    pub(super) exports: Exports,
}

impl Instance {
    /// Instantiate from the pre-linked component: ~15 µs, cheap enough to do
    /// after every trap.
    pub(super) async fn new(compiled: &Compiled, channel: Arc<Channel>) -> wasmtime::Result<Instance> {
        let state = HostState::new(channel, compiled.limits.max_memory, compiled.limits.callback_timeout);
        let mut store = Store::new(compiled.pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_callback(|mut store| Ok(at_epoch_tick(store.data_mut())));
        let mut instance = Instance { exports: compiled.pre.instantiate(&mut store).await?, store };
        instance.arm();
        Ok(instance)
    }

    /// Give the next callback its full time budget.
    pub(super) fn arm(&mut self) {
        let state = self.store.data_mut();
        let now = Instant::now();
        state.deadline = now + state.callback_timeout;
        state.running_since = now;
        state.started = now;
        self.store.set_epoch_deadline(1);
    }
}

/// What a running callback does at each epoch tick: past its deadline it is
/// interrupted (a trap); once it has held its worker for a tick, it yields
/// to the executor, so a long callback shares its worker thread with the
/// other connections.
fn at_epoch_tick(state: &mut HostState) -> UpdateDeadline {
    let now = Instant::now();
    if now >= state.deadline {
        UpdateDeadline::Interrupt
    } else if now.duration_since(state.running_since) >= EPOCH_TICK {
        state.running_since = now;
        UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
    } else {
        UpdateDeadline::Continue(1)
    }
}

/// Ask a freshly compiled plugin who it is, in a throwaway instance.
pub(super) async fn describe(compiled: &Compiled, limits: &crate::config::Limits) -> Result<PluginInfo, LoadError> {
    let mut instance = Instance::new(compiled, Arc::new(Channel::new("(loading)", limits.clone(), None)))
        .await
        .map_err(|error| LoadError::Start(format!("{error:#}")))?;
    let WitPluginInfo { name, version, routes } = instance
        .exports
        .describe(&mut instance.store)
        .await
        .map_err(|error| LoadError::Start(format!("describe: {error:#}")))?;
    let valid_name = !name.is_empty()
        && name.len() <= MAX_PLUGIN_NAME
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(LoadError::Describe(format!(
            "name {name:?} must be 1 to {MAX_PLUGIN_NAME} characters of a-z, 0-9, '-' and '_'"
        )));
    }
    if routes.is_empty() {
        return Err(LoadError::Describe(format!("plugin `{name}` declares no routes")));
    }
    Ok(PluginInfo { name, version, routes })
}
