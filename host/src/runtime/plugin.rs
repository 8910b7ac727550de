//! A running plugin: one warm instance whose callbacks run one at a time.
//!
//! There is no plugin thread. Whoever causes a callback (a connection's
//! task, the publish API, a reload) takes the plugin's lock and runs the
//! callback as a future on its own task: a message costs no thread hop and
//! no wake-up. The lock is fair (first come, first served), and each
//! connection waits for its callback before reading its next frame, so the
//! callbacks of a connection run in the order its frames came. A long
//! callback yields its worker once it has held it for an epoch tick and is
//! interrupted at its deadline (see `instance.rs`), so a slow plugin delays
//! only its own connections.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use super::Compiled;
use super::bindings::{self, CloseInfo, Payload};
use super::instance::Instance;
use crate::channel::Channel;
use crate::channel::history::Requested;
use crate::channel::peer::{ConnId, Peer};
use crate::close::Close;
use crate::metrics::PluginMetrics;

/// How many rounds of presence changes caused by `on-presence` itself are
/// told: a plugin that reacts to presence by changing it cannot loop forever.
const MAX_PRESENCE_ROUNDS: usize = 4;

/// A callback on its way: boxed, because a wasmtime call's state is large,
/// and inline it would make every connection's task that much larger for
/// its whole life, idle or not.
pub(crate) type Callback<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Run one export: the instance is checked out for the call and put back
/// (or replaced, after a trap) by `checkin`. `None` when the plugin could
/// not run it. A macro, not a function taking a closure: the call borrows
/// the checked-out instance across an await.
macro_rules! call {
    ($plugin:expr, $callback:literal, $instance:ident => $call:expr) => {
        match $plugin.checkout().await {
            Some(mut $instance) => {
                let result = $call.await;
                $plugin.checkin($instance, $callback, result).await
            }
            None => None,
        }
    };
}

/// A WebSocket upgrade, as handed to a plugin's `on-connect`.
#[derive(Debug, Clone)]
pub(crate) struct ConnectRequest {
    pub(crate) route: String,
    pub(crate) path: String,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) remote_addr: String,
    /// Verified token claims, as JSON.
    pub(crate) claims: Option<String>,
}

/// Why a connection was refused: the close frame the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) code: u16,
    pub(crate) reason: String,
}

/// The way to a running plugin. Cheap to clone; the instance is dropped
/// with the last handle.
#[derive(Clone)]
pub(crate) struct PluginHandle {
    plugin: Arc<Mutex<Plugin>>,
    /// The plugin's channel, outside the lock: a connection records its
    /// metrics, and the timer task waits for the next timer, without
    /// waiting for the plugin.
    channel: Arc<Channel>,
    /// Set once the plugin is unloaded: it takes no new connection and
    /// fires no timer. Set under the plugin's lock (so a connection either
    /// ran before it or sees it), read without it by the timer task.
    retired: Arc<AtomicBool>,
}

impl std::fmt::Debug for PluginHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHandle").finish_non_exhaustive()
    }
}

impl PluginHandle {
    /// Start a plugin with a first instance.
    pub(crate) async fn start(compiled: Compiled, channel: Arc<Channel>) -> Result<PluginHandle, String> {
        let instance = Instance::new(&compiled, Arc::clone(&channel))
            .await
            .map_err(|error| format!("cannot instantiate: {}", super::one_line(&error)))?;
        let retired = Arc::new(AtomicBool::new(false));
        let plugin =
            Plugin { compiled, channel: Arc::clone(&channel), instance: Some(instance), retired: Arc::clone(&retired) };
        Ok(PluginHandle { plugin: Arc::new(Mutex::new(plugin)), channel, retired })
    }

    /// The plugin's metrics.
    pub(crate) fn metrics(&self) -> &PluginMetrics {
        &self.channel.metrics
    }

    /// Fire the plugin's timers on time, on a task of their own, until the
    /// plugin is retired or dropped. The test kit fires them itself
    /// ([`PluginHandle::fire_timers`]) on a clock of its own instead.
    pub(crate) fn drive_timers(&self) {
        let weak = Arc::downgrade(&self.plugin);
        let (channel, retired) = (Arc::clone(&self.channel), Arc::clone(&self.retired));
        // The plugin behind `weak`, unless it was dropped or retired.
        let alive = move || {
            let plugin = weak.upgrade().filter(|_| !retired.load(Ordering::SeqCst))?;
            Some(PluginHandle { plugin, channel: Arc::clone(&channel), retired: Arc::clone(&retired) })
        };
        let channel = Arc::clone(&self.channel);
        tokio::spawn(async move {
            while let Some(handle) = alive() {
                // `notify_one` keeps a permit when nobody waits, so a timer
                // set between `next_timer` and the wait still wakes us.
                let changed = channel.timers_changed.notified();
                let remote_presence = channel.presence_from_cluster.notified();
                let next = channel.next_timer();
                drop(handle);
                let sleep = async {
                    match next {
                        Some(due) => tokio::time::sleep_until(due.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = sleep => {}
                    () = changed => continue,
                    () = remote_presence => {
                        if let Some(handle) = alive() {
                            handle.tell_remote_presence().await;
                        }
                        continue;
                    }
                }
                if let Some(handle) = alive() {
                    handle.fire_timers(channel.clock.now()).await;
                }
            }
        });
    }

    /// Hand the presence changes other nodes made to `on-presence`.
    async fn tell_remote_presence(&self) {
        Box::pin(async move {
            let mut plugin = self.plugin.lock().await;
            if !self.retired.load(Ordering::SeqCst) {
                plugin.tell_presence().await;
            }
        })
        .await;
    }

    /// Run `on-timer` for each timer due at `now`, earliest first; returns
    /// how many ran.
    pub(crate) async fn fire_timers(&self, now: Instant) -> usize {
        Box::pin(async move {
            let mut plugin = self.plugin.lock().await;
            if self.retired.load(Ordering::SeqCst) {
                return 0;
            }
            let due = plugin.channel.take_due_timers(now);
            for name in &due {
                call!(plugin, "on-timer", i => i.exports.on_timer(&mut i.store, name));
                plugin.tell_presence().await;
            }
            due.len()
        })
        .await
    }

    /// Register `peer` with the plugin's channel and run `on-connect`. On
    /// `Err` the connection is already forgotten and must be closed with
    /// the rejection. A retired plugin, or one whose current version no
    /// longer serves the connection's route, refuses it with 1001: a
    /// connection routed just before an unload or a reload never ends up
    /// on a version that does not serve it.
    ///
    /// The callback's future is boxed here and in `message` and `closed`
    /// (see [`Callback`]).
    pub(crate) async fn connect(&self, peer: Arc<Peer>, request: ConnectRequest) -> Result<(), Rejection> {
        Box::pin(async move {
            let mut plugin = self.plugin.lock().await;
            let answer = plugin.connect(peer, request).await;
            plugin.tell_presence().await;
            answer
        })
        .await
    }

    /// Hand a client's text or binary message to `on-message`. The future
    /// is the connection's one message in flight: its task keeps writing
    /// while it waits for the plugin.
    pub(crate) fn message(&self, conn: ConnId, message: Message) -> Callback<'_> {
        Box::pin(async move {
            let mut plugin = self.plugin.lock().await;
            plugin.message(conn, message).await;
            plugin.tell_presence().await;
        })
    }

    /// Tell the plugin the connection closed; it leaves its rooms and is forgotten.
    pub(crate) async fn closed(&self, conn: ConnId, code: u16, reason: String) {
        Box::pin(async move {
            let mut plugin = self.plugin.lock().await;
            plugin.closed(conn, code, reason).await;
            plugin.tell_presence().await;
        })
        .await;
    }

    /// Hand a backend event to `on-publish`; returns how many messages the
    /// plugin queued for connections while handling it.
    pub(crate) async fn publish(&self, topic: String, payload: String) -> Result<u64, String> {
        // On a task of its own: an HTTP client that hangs up must not cut
        // the callback short.
        let plugin = Arc::clone(&self.plugin);
        let task = tokio::spawn(async move {
            let mut plugin = plugin.lock().await;
            let delivered = plugin.publish(&topic, &payload).await;
            plugin.tell_presence().await;
            delivered
        });
        task.await.map_err(|error| format!("the plugin task failed: {error}"))?
    }

    /// Replace the running version with `compiled`: callbacks that took the
    /// lock before run on the old version, later ones on the new one. The
    /// old version's `snapshot` is handed to the new one's `restore`. On
    /// `Err` (the new version failed to start or to restore) the old
    /// version keeps serving.
    pub(crate) async fn reload(&self, compiled: Compiled) -> Result<(), String> {
        self.plugin.lock().await.reload(compiled).await
    }

    /// Refuse every later connection (the plugin is being unloaded):
    /// connections admitted before are the caller's to close.
    pub(crate) async fn retire(&self) {
        let plugin = self.plugin.lock().await;
        self.retired.store(true, Ordering::SeqCst);
        drop(plugin);
        self.channel.clear_timers();
    }
}

struct Plugin {
    compiled: Compiled,
    channel: Arc<Channel>,
    /// Taken out for the length of a callback. `None` when even a fresh
    /// instance could not be made, or when a callback was abandoned half-way
    /// (its future dropped): the next callback starts a fresh one.
    instance: Option<Instance>,
    /// The handle's `retired`, read here under the lock.
    retired: Arc<AtomicBool>,
}

impl Plugin {
    async fn connect(&mut self, peer: Arc<Peer>, request: ConnectRequest) -> Result<(), Rejection> {
        let refused = match () {
            () if self.retired.load(Ordering::SeqCst) => Some(Close::PluginRemoved),
            () if !self.compiled.info.routes.contains(&request.route) => Some(Close::RouteRemoved),
            () => None,
        };
        if let Some(why) = refused {
            self.channel.metrics.refused();
            return Err(Rejection { code: why.code(), reason: why.reason().to_owned() });
        }
        let conn = peer.id;
        self.channel.add(peer, Requested::from_query(&request.query));
        let request = bindings::ConnectRequest {
            connection: conn,
            route: request.route,
            path: request.path,
            params: request.params,
            query: request.query,
            headers: request.headers,
            remote_addr: request.remote_addr,
            claims: request.claims,
        };
        let outcome = call!(self, "on-connect", i => i.exports.on_connect(&mut i.store, &request));
        let answer = match outcome {
            Some(answer) => answer,
            None => Err(Rejection { code: Close::PluginError.code(), reason: Close::PluginError.reason().to_owned() }),
        };
        if answer.is_err() {
            self.channel.remove(conn);
            self.channel.metrics.refused();
        } else {
            self.channel.metrics.accepted();
        }
        answer
    }

    async fn message(&mut self, conn: ConnId, message: Message) {
        let payload = match message {
            Message::Text(text) => Payload::Text(text.as_str().to_owned()),
            Message::Binary(bytes) => Payload::Binary(bytes.into()),
            _ => return,
        };
        let handled = call!(self, "on-message", i => i.exports.on_message(&mut i.store, conn, &payload));
        if handled.is_none()
            && let Ok(peer) = self.channel.peer(conn)
        {
            peer.close(Close::PluginError);
        }
    }

    async fn closed(&mut self, conn: ConnId, code: u16, reason: String) {
        self.channel.metrics.closed(code);
        let rooms = self.channel.leave_all(conn);
        let info = CloseInfo { connection: conn, code, reason, rooms };
        call!(self, "on-close", i => i.exports.on_close(&mut i.store, &info));
        self.channel.remove(conn);
    }

    /// Hand the presence changes the last callback caused to `on-presence`.
    /// Its own changes are told too, [`MAX_PRESENCE_ROUNDS`] deep.
    async fn tell_presence(&mut self) {
        // Boxed: presence changes are rare, and the calls' future would
        // otherwise be part of every callback's.
        if self.channel.presence_changed() {
            Box::pin(self.presence_rounds()).await;
        }
    }

    async fn presence_rounds(&mut self) {
        for _round in 0..MAX_PRESENCE_ROUNDS {
            let events = self.channel.take_presence_events();
            if events.is_empty() {
                return;
            }
            for (room, joins, leaves) in events {
                call!(self, "on-presence", i => i.exports.on_presence(&mut i.store, &room, &joins, &leaves));
            }
        }
    }

    async fn publish(&mut self, topic: &str, payload: &str) -> Result<u64, String> {
        let mut instance = self.checkout().await.ok_or("the plugin cannot start")?;
        instance.store.data_mut().delivered = 0;
        let result = instance.exports.on_publish(&mut instance.store, topic, payload).await;
        let delivered = instance.store.data().delivered;
        self.checkin(instance, "on-publish", result)
            .await
            .map(|()| delivered)
            .ok_or_else(|| "the plugin failed while handling the event".to_owned())
    }

    async fn reload(&mut self, compiled: Compiled) -> Result<(), String> {
        let mut fresh = Instance::new(&compiled, Arc::clone(&self.channel))
            .await
            .map_err(|error| format!("cannot instantiate: {}", super::one_line(&error)))?;
        // A snapshot that traps loses the in-memory state, not the reload.
        let state = call!(self, "snapshot", i => i.exports.snapshot(&mut i.store)).unwrap_or_default();
        fresh.arm();
        fresh
            .exports
            .restore(&mut fresh.store, &state)
            .await
            .map_err(|error| format!("restore trapped: {}", super::one_line(&error)))?;
        self.compiled = compiled;
        self.instance = Some(fresh);
        Ok(())
    }

    /// Take the warm instance (or make a fresh one) for one callback, with
    /// its full time budget. Holding it outside `self` is what makes an
    /// abandoned callback safe: its instance goes with it.
    async fn checkout(&mut self) -> Option<Instance> {
        let mut instance = match self.instance.take() {
            Some(instance) => instance,
            // Boxed, here and in `checkin`: instantiating is rare, and its
            // large future would otherwise be part of every callback's.
            None => match Box::pin(Instance::new(&self.compiled, Arc::clone(&self.channel))).await {
                Ok(instance) => instance,
                Err(error) => {
                    tracing::error!(plugin = &*self.channel.name, "cannot instantiate plugin: {error:#}");
                    return None;
                }
            },
        };
        instance.arm();
        Some(instance)
    }

    /// Put the instance back after `callback` returned `result`. A trap is
    /// logged with the plugin's name and the instance is replaced (a trapped
    /// store refuses every later call); the caller gets `None`. Every
    /// callback passes here, so its duration, traps and deadline hits are
    /// counted here.
    async fn checkin<R>(&mut self, instance: Instance, callback: &str, result: wasmtime::Result<R>) -> Option<R> {
        self.channel.metrics.callback_ran(callback, instance.store.data().started);
        match result {
            Ok(value) => {
                self.instance = Some(instance);
                Some(value)
            }
            Err(error) => {
                drop(instance);
                let deadline = matches!(error.downcast_ref::<wasmtime::Trap>(), Some(wasmtime::Trap::Interrupt));
                self.channel.metrics.trapped(deadline);
                let why = if deadline { "exceeded its time limit" } else { "trapped" };
                tracing::error!(plugin = &*self.channel.name, callback, "plugin {why}: {error:?}");
                self.instance = Box::pin(Instance::new(&self.compiled, Arc::clone(&self.channel)))
                    .await
                    .inspect_err(|error| {
                        tracing::error!(plugin = &*self.channel.name, "cannot restart plugin: {error:#}");
                    })
                    .ok();
                None
            }
        }
    }
}
