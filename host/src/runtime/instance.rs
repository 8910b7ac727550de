//! One live instance of a plugin, and the way back after it traps.

use std::sync::Arc;

use wasmtime::Store;

use super::bindings::{self, PluginInfo as WitPluginInfo};
use super::host_api::HostState;
use super::{Compiled, EPOCH_TICK, LoadError, PluginInfo};
use crate::channel::Channel;

/// A plugin instance and its store. A trap poisons the store for good, so
/// the owner replaces the whole instance (see [`Instance::new`]).
pub(super) struct Instance {
    pub(super) store: Store<HostState>,
    pub(super) exports: bindings::Channel,
}

impl Instance {
    /// Instantiate from the pre-linked component: ~15 µs, cheap enough to do
    /// after every trap.
    pub(super) fn new(compiled: &Compiled, channel: Arc<Channel>) -> wasmtime::Result<Instance> {
        let mut store = Store::new(compiled.pre.engine(), HostState::new(channel, compiled.limits.max_memory));
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_trap();
        arm_deadline(&mut store, compiled);
        let exports = compiled.pre.instantiate(&mut store)?;
        Ok(Instance { store, exports })
    }

    /// Give the next callback its full time budget.
    pub(super) fn arm(&mut self, compiled: &Compiled) {
        arm_deadline(&mut self.store, compiled);
    }
}

fn arm_deadline(store: &mut Store<HostState>, compiled: &Compiled) {
    let ticks = compiled.limits.callback_timeout.as_millis() / EPOCH_TICK.as_millis();
    store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX).max(1));
}

/// Ask a freshly compiled plugin who it is, in a throwaway instance.
pub(super) fn describe(compiled: &Compiled) -> Result<PluginInfo, LoadError> {
    let mut instance = Instance::new(compiled, Arc::new(Channel::new("(loading)")))
        .map_err(|error| LoadError::Start(format!("{error:#}")))?;
    let WitPluginInfo { name, version, routes } = instance
        .exports
        .call_describe(&mut instance.store)
        .map_err(|error| LoadError::Start(format!("describe: {error:#}")))?;
    let valid_name =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(LoadError::Describe(format!("name {name:?} must be 1 to 64 characters of a-z, 0-9, '-' and '_'")));
    }
    if routes.is_empty() {
        return Err(LoadError::Describe(format!("plugin `{name}` declares no routes")));
    }
    Ok(PluginInfo { name, version, routes })
}
