//! Each plugin runs on its own thread, fed by a queue of events.
//!
//! One warm instance handles the events one at a time, in queue order, so
//! the callbacks of a connection arrive in the order its frames did, and a
//! plugin that is slow (or stuck until its deadline) delays only itself.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use super::Compiled;
use super::bindings::{self, CloseInfo, Payload};
use super::instance::Instance;
use crate::channel::Channel;
use crate::peer::{ConnId, Peer};

/// Events waiting for a plugin; bounded, so a plugin that falls behind slows
/// down the readers of its own connections instead of growing memory.
const EVENT_QUEUE: usize = 4096;

/// How many rounds of presence changes caused by `on-presence` itself are told.
const MAX_PRESENCE_ROUNDS: usize = 4;

/// Close code for a connection whose plugin failed.
const CLOSE_PLUGIN_ERROR: u16 = 1011;

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

enum Event {
    Connect { peer: Arc<Peer>, request: ConnectRequest, reply: oneshot::Sender<Result<(), Rejection>> },
    Message { conn: ConnId, message: Message },
    Closed { conn: ConnId, code: u16, reason: String },
    Reload { compiled: Box<Compiled>, reply: oneshot::Sender<Result<(), String>> },
    Publish { topic: String, payload: String, reply: oneshot::Sender<Result<u64, String>> },
}

/// The way to a running plugin. Cheap to clone; the plugin's thread ends
/// when the last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct PluginHandle {
    events: mpsc::Sender<Event>,
}

/// The plugin's thread is gone (it was unloaded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("plugin is not running")]
pub(crate) struct Gone;

impl PluginHandle {
    /// Register `peer` with the plugin's channel and run `on-connect`. On
    /// `Err` the connection is already forgotten and must be closed with
    /// the rejection.
    pub(crate) async fn connect(&self, peer: Arc<Peer>, request: ConnectRequest) -> Result<(), Rejection> {
        let (reply, answer) = oneshot::channel();
        let gone = || Rejection { code: 1001, reason: "channel unavailable".into() };
        self.events.send(Event::Connect { peer, request, reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Hand a client's text or binary message to `on-message`.
    pub(crate) async fn message(&self, conn: ConnId, message: Message) -> Result<(), Gone> {
        self.events.send(Event::Message { conn, message }).await.map_err(|_| Gone)
    }

    /// Tell the plugin the connection closed; it leaves its rooms and is forgotten.
    pub(crate) async fn closed(&self, conn: ConnId, code: u16, reason: String) {
        // A plugin that is gone has forgotten its connections already.
        let _gone = self.events.send(Event::Closed { conn, code, reason }).await;
    }

    /// Hand a backend event to `on-publish`; returns how many messages the
    /// plugin queued for connections while handling it.
    pub(crate) async fn publish(&self, topic: String, payload: String) -> Result<u64, String> {
        let (reply, answer) = oneshot::channel();
        let gone = "plugin is not running".to_owned();
        self.events.send(Event::Publish { topic, payload, reply }).await.map_err(|_| gone.clone())?;
        answer.await.map_err(|_| gone)?
    }

    /// Replace the running version with `compiled`, in queue order: events
    /// queued before are handled by the old version, events after by the
    /// new one. The old version's `snapshot` is handed to the new one's
    /// `restore`. On `Err` (the new version failed to start or to restore)
    /// the old version keeps serving.
    pub(crate) async fn reload(&self, compiled: Compiled) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        let gone = |_| "plugin is not running".to_owned();
        self.events.send(Event::Reload { compiled: Box::new(compiled), reply }).await.map_err(gone)?;
        answer.await.map_err(|_| "plugin is not running".to_owned())?
    }
}

/// Start a plugin's thread with a first instance.
pub(crate) fn spawn(compiled: Compiled, channel: Arc<Channel>) -> anyhow::Result<PluginHandle> {
    let instance = Instance::new(&compiled, Arc::clone(&channel)).map_err(|error| anyhow::anyhow!("{error:#}"))?;
    let (events, queue) = mpsc::channel(EVENT_QUEUE);
    let actor = Actor { compiled, channel, instance: Some(instance) };
    std::thread::Builder::new().name(format!("plugin-{}", actor.channel.name)).spawn(move || actor.run(queue))?;
    Ok(PluginHandle { events })
}

struct Actor {
    compiled: Compiled,
    channel: Arc<Channel>,
    /// `None` only when even a fresh instance could not be made; the next
    /// event tries again.
    instance: Option<Instance>,
}

impl Actor {
    fn run(mut self, mut queue: mpsc::Receiver<Event>) {
        while let Some(event) = queue.blocking_recv() {
            match event {
                Event::Connect { peer, request, reply } => {
                    let answer = self.connect(peer, request);
                    // The client may have gone while we decided; nothing to do then.
                    let _gone = reply.send(answer);
                }
                Event::Message { conn, message } => self.message(conn, message),
                Event::Closed { conn, code, reason } => self.closed(conn, code, reason),
                Event::Reload { compiled, reply } => {
                    let _gone = reply.send(self.reload(*compiled));
                }
                Event::Publish { topic, payload, reply } => {
                    let _gone = reply.send(self.publish(&topic, &payload));
                }
            }
            self.tell_presence();
        }
        tracing::debug!(plugin = &*self.channel.name, "plugin stopped");
    }

    fn connect(&mut self, peer: Arc<Peer>, request: ConnectRequest) -> Result<(), Rejection> {
        let conn = peer.id;
        self.channel.add(peer);
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
        let answer = match self.call("on-connect", |exports, store| exports.call_on_connect(store, &request)) {
            Some(Ok(())) => Ok(()),
            Some(Err(rejection)) => Err(Rejection { code: rejection.code, reason: rejection.reason }),
            None => Err(Rejection { code: CLOSE_PLUGIN_ERROR, reason: "plugin error".into() }),
        };
        if answer.is_err() {
            self.channel.remove(conn);
        }
        answer
    }

    fn message(&mut self, conn: ConnId, message: Message) {
        let payload = match message {
            Message::Text(text) => Payload::Text(text.as_str().to_owned()),
            Message::Binary(bytes) => Payload::Binary(bytes.to_vec()),
            _ => return,
        };
        if self.call("on-message", |exports, store| exports.call_on_message(store, conn, &payload)).is_none()
            && let Ok(peer) = self.channel.peer(conn)
        {
            peer.close(CLOSE_PLUGIN_ERROR, "plugin error");
        }
    }

    fn closed(&mut self, conn: ConnId, code: u16, reason: String) {
        let rooms = self.channel.leave_all(conn);
        let info = CloseInfo { connection: conn, code, reason, rooms };
        self.call("on-close", |exports, store| exports.call_on_close(store, &info));
        self.channel.remove(conn);
    }

    /// Hand the presence changes the last callback caused to `on-presence`.
    /// Its own changes are told too, a bounded number of rounds deep, so a
    /// plugin that reacts to presence by changing it cannot loop forever.
    fn tell_presence(&mut self) {
        for _round in 0..MAX_PRESENCE_ROUNDS {
            let events = self.channel.take_presence_events();
            if events.is_empty() {
                return;
            }
            for (room, joins, leaves) in events {
                self.call("on-presence", |exports, store| exports.call_on_presence(store, &room, &joins, &leaves));
            }
        }
    }

    fn publish(&mut self, topic: &str, payload: &str) -> Result<u64, String> {
        self.call("on-publish", |exports, store| {
            store.data_mut().delivered = 0;
            exports.call_on_publish(&mut *store, topic, payload)?;
            Ok(store.data().delivered)
        })
        .ok_or_else(|| "the plugin failed while handling the event".to_owned())
    }

    fn reload(&mut self, compiled: Compiled) -> Result<(), String> {
        let mut fresh = Instance::new(&compiled, Arc::clone(&self.channel))
            .map_err(|error| format!("cannot instantiate: {}", super::one_line(&error)))?;
        // A snapshot that traps loses the in-memory state, not the reload.
        let state = self.call("snapshot", |exports, store| exports.call_snapshot(store)).unwrap_or_default();
        fresh.arm(&compiled);
        fresh
            .exports
            .call_restore(&mut fresh.store, &state)
            .map_err(|error| format!("restore trapped: {}", super::one_line(&error)))?;
        self.compiled = compiled;
        self.instance = Some(fresh);
        Ok(())
    }

    /// Run one callback on the warm instance. A trap is logged with the
    /// plugin's name and the instance is replaced; the caller gets `None`.
    fn call<R>(
        &mut self,
        callback: &str,
        f: impl FnOnce(&bindings::Channel, &mut wasmtime::Store<super::HostState>) -> wasmtime::Result<R>,
    ) -> Option<R> {
        let mut instance = match self.instance.take() {
            Some(instance) => instance,
            None => match Instance::new(&self.compiled, Arc::clone(&self.channel)) {
                Ok(instance) => instance,
                Err(error) => {
                    tracing::error!(plugin = &*self.channel.name, "cannot instantiate plugin: {error:#}");
                    return None;
                }
            },
        };
        instance.arm(&self.compiled);
        match f(&instance.exports, &mut instance.store) {
            Ok(value) => {
                self.instance = Some(instance);
                Some(value)
            }
            Err(error) => {
                let why = match error.downcast_ref::<wasmtime::Trap>() {
                    Some(wasmtime::Trap::Interrupt) => "exceeded its time limit",
                    _ => "trapped",
                };
                tracing::error!(plugin = &*self.channel.name, callback, "plugin {why}: {error:?}");
                // The trapped store refuses every later call: start afresh.
                self.instance = Instance::new(&self.compiled, Arc::clone(&self.channel))
                    .inspect_err(|error| {
                        tracing::error!(plugin = &*self.channel.name, "cannot restart plugin: {error:#}");
                    })
                    .ok();
                None
            }
        }
    }
}
