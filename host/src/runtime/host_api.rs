//! The host side of the `host` interface: what a plugin's calls do.
//!
//! Every call acts on the calling plugin's own [`Channel`] only, so a plugin
//! cannot touch another plugin's connections, rooms or store. Arguments a
//! plugin controls are checked and refused with a `host-error`; nothing here
//! panics or traps on a plugin's input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Message;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{HostError, HostImports, HostTypes, LogLevel, Payload};
use crate::channel::peer::{ConnId, Sent};
use crate::channel::{CallError, Channel, LogVerdict};
use crate::config::MAX_PLUGIN_CORE_INSTANCES;

/// What a plugin's store holds: its channel, and an empty WASI context.
pub(crate) struct HostState {
    /// The plugin's connections, rooms and key-value store.
    pub(crate) channel: Arc<Channel>,
    /// WASI without files, network or environment: only clocks and randomness.
    wasi: WasiCtx,
    /// Resources handed to the guest by WASI (streams, pollables).
    table: ResourceTable,
    /// Caps the guest's memories and tables.
    pub(crate) limits: wasmtime::StoreLimits,
    /// Messages queued by the current callback, so that `POST /api/publish`
    /// can say how many connections its event reached.
    pub(crate) delivered: u64,
    /// Longest one callback may run; see `deadline`.
    pub(crate) callback_timeout: Duration,
    /// When the running callback is interrupted: checked at each epoch tick.
    pub(crate) deadline: Instant,
    /// Since when the running callback has held its worker: it yields once
    /// that is a whole tick ago, not at every tick it happens to straddle
    /// (a 3 ms broadcast to 10k connections would yield a third of the
    /// time, and every yield lets the recipients run with smaller batches).
    pub(crate) running_since: Instant,
    /// When the running callback started, for its duration in the metrics.
    pub(crate) started: Instant,
}

impl HostState {
    pub(crate) fn new(channel: Arc<Channel>, max_memory: usize, callback_timeout: Duration) -> HostState {
        HostState {
            channel,
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: wasmtime::StoreLimitsBuilder::new()
                .memory_size(max_memory)
                .instances(MAX_PLUGIN_CORE_INSTANCES)
                .build(),
            delivered: 0,
            callback_timeout,
            deadline: Instant::now() + callback_timeout,
            running_since: Instant::now(),
            started: Instant::now(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl From<CallError> for HostError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::UnknownConnection => HostError::UnknownConnection,
            CallError::InvalidArgument(why) => HostError::InvalidArgument(why),
        }
    }
}

/// Turn a plugin's payload into a frame, checking its size against `max`.
fn frame(payload: Payload, max: usize) -> Result<Message, HostError> {
    let len = match &payload {
        Payload::Text(text) => text.len(),
        Payload::Binary(bytes) => bytes.len(),
    };
    if len > max {
        return Err(HostError::InvalidArgument(format!("message longer than {max} bytes")));
    }
    Ok(match payload {
        Payload::Text(text) => Message::Text(text.into()),
        Payload::Binary(bytes) => Message::Binary(Bytes::from(bytes)),
    })
}

impl HostTypes for HostState {}

impl HostImports for HostState {
    fn send(&mut self, connection: ConnId, message: Payload) -> Result<(), HostError> {
        let peer = self.channel.peer(connection)?;
        let frame = self.frame(message)?;
        let bytes = frame.len();
        match peer.send(frame) {
            Sent::Queued => {
                self.delivered += 1;
                self.channel.metrics.sent(1, bytes);
            }
            Sent::Full => return Err(HostError::QueueFull),
            // Closing: the plugin hears of it in on-close; what it sends until then goes nowhere.
            Sent::Closed => {}
        }
        Ok(())
    }

    fn broadcast(&mut self, message: Payload, except: Option<ConnId>) -> u32 {
        match self.frame(message) {
            Ok(frame) => self.count(self.channel.broadcast(&frame, except)),
            Err(error) => self.refused("broadcast", &error),
        }
    }

    fn join(&mut self, connection: ConnId, room: String) -> Result<(), HostError> {
        Ok(self.channel.join(connection, &room)?)
    }

    fn leave(&mut self, connection: ConnId, room: String) -> Result<(), HostError> {
        Ok(self.channel.leave(connection, &room)?)
    }

    fn publish(&mut self, room: String, message: Payload, except: Option<ConnId>) -> u32 {
        match self.frame(message) {
            Ok(frame) => self.count(self.channel.publish(&room, &frame, except)),
            Err(error) => self.refused("publish", &error),
        }
    }

    fn room_members(&mut self, room: String) -> Vec<ConnId> {
        self.channel.room_members(&room)
    }

    fn room_size(&mut self, room: String) -> u32 {
        u32::try_from(self.channel.room_size(&room)).unwrap_or(u32::MAX)
    }

    fn rooms_of(&mut self, connection: ConnId) -> Result<Vec<String>, HostError> {
        Ok(self.channel.rooms_of(connection)?)
    }

    fn close(&mut self, connection: ConnId, code: u16, reason: String) -> Result<(), HostError> {
        if !crate::close::is_sendable(code) {
            return Err(HostError::InvalidArgument(format!("{code} is not a close code a server may send")));
        }
        self.channel.peer(connection)?.close_with(code, &reason);
        Ok(())
    }

    fn set_meta(&mut self, connection: ConnId, key: String, value: String) -> Result<(), HostError> {
        Ok(self.channel.set_meta(connection, key, value)?)
    }

    fn get_meta(&mut self, connection: ConnId, key: String) -> Result<Option<String>, HostError> {
        Ok(self.channel.peer(connection)?.meta(&key))
    }

    fn set_user(&mut self, connection: ConnId, user: String) -> Result<(), HostError> {
        Ok(self.channel.set_user(connection, &user)?)
    }

    fn user_of(&mut self, connection: ConnId) -> Result<Option<String>, HostError> {
        Ok(self.channel.user_of(connection)?)
    }

    fn send_to_user(&mut self, user: String, message: Payload) -> u32 {
        match self.frame(message) {
            Ok(frame) => self.count(self.channel.send_to_user(&user, &frame)),
            Err(error) => self.refused("send-to-user", &error),
        }
    }

    fn track_presence(&mut self, room: String) -> Result<(), HostError> {
        Ok(self.channel.track_presence(&room)?)
    }

    fn presence(&mut self, room: String) -> Vec<(String, u32)> {
        self.channel.presence(&room)
    }

    async fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        self.channel.kv_get(&key).await
    }

    async fn kv_set(&mut self, key: String, value: Vec<u8>) -> Result<(), HostError> {
        Ok(self.channel.kv_set(key, value).await?)
    }

    async fn kv_delete(&mut self, key: String) -> bool {
        self.channel.kv_delete(&key).await
    }

    async fn kv_compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
    ) -> Result<bool, HostError> {
        Ok(self.channel.kv_compare_and_swap(key, expected.as_deref(), value).await?)
    }

    fn set_timer(&mut self, name: String, after_ms: u64, repeat: bool) -> Result<(), HostError> {
        Ok(self.channel.set_timer(name, Duration::from_millis(after_ms), repeat)?)
    }

    fn cancel_timer(&mut self, name: String) -> bool {
        self.channel.cancel_timer(&name)
    }

    fn log(&mut self, level: LogLevel, message: String, fields: Vec<(String, String)>) {
        let plugin = &*self.channel.name;
        match self.channel.log_verdict() {
            LogVerdict::Drop => return,
            LogVerdict::Write { dropped: 0 } => {}
            LogVerdict::Write { dropped } => {
                tracing::warn!(target: "plugin", plugin, dropped, "plugin log over its rate: records dropped");
            }
        }
        let max = self.channel.limits.max_log_record;
        let mut record = message;
        for (key, value) in fields {
            if record.len() > max {
                break;
            }
            record.push_str(&format!(" {key}={value:?}"));
        }
        if record.len() > max {
            let mut end = max;
            while !record.is_char_boundary(end) {
                end -= 1;
            }
            record.truncate(end);
            record.push('…');
        }
        match level {
            LogLevel::Trace => tracing::trace!(target: "plugin", plugin, "{record}"),
            LogLevel::Debug => tracing::debug!(target: "plugin", plugin, "{record}"),
            LogLevel::Info => tracing::info!(target: "plugin", plugin, "{record}"),
            LogLevel::Warn => tracing::warn!(target: "plugin", plugin, "{record}"),
            LogLevel::Error => tracing::error!(target: "plugin", plugin, "{record}"),
        }
    }
}

impl HostState {
    fn frame(&self, payload: Payload) -> Result<Message, HostError> {
        frame(payload, self.channel.limits.max_send_size)
    }

    fn count(&mut self, reached: u32) -> u32 {
        self.delivered += u64::from(reached);
        reached
    }

    fn refused(&self, call: &str, error: &HostError) -> u32 {
        tracing::warn!(plugin = &*self.channel.name, "{call} refused: {error:?}");
        0
    }
}
