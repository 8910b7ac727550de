//! The server side of `LIVE-PROTOCOL.md`: the components of every
//! connection, keyed by (connection, cid), their last render, the templates
//! each connection has, the 16 ms batching of server-initiated updates, and
//! the state kept for a page that reconnects or for the next version of the
//! plugin. It talks to the host through [`Host`], so that the test kit runs
//! this same code without a host. `effects.rs` carries out what callbacks
//! ask of their `Ctx`; `reload.rs` is the hand-over to a new version.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::component::{Ctx, Effect, Event, Info, Props};
use super::diff::Encoder;
use super::erased::{Entry, Erased};
use super::html::Html;
use super::limits::{BATCH, MAX_CID_SIZE, MAX_COMPONENTS_PER_CONNECTION};
use super::parked::{Parked, Saved};
use super::rooms::{Rooms, Target};
use crate::plugin::ConnectRequest;

mod effects;
mod reload;

/// What the runtime needs from the host (the real one, or the test kit's).
pub(crate) trait Host {
    /// Queue a text message for a connection (errors are the host's to log:
    /// a closing connection, a full queue).
    fn send(&mut self, conn: u64, message: String);
    /// Ask for `Runtime::timer(name)` after `after`, once or repeatedly.
    fn set_timer(&mut self, name: &str, after: Duration, repeat: bool) -> Result<(), String>;
    /// Cancel a timer.
    fn cancel_timer(&mut self, name: &str);
    /// Monotonic time since the plugin instance started.
    fn now(&self) -> Duration;
    /// Log a warning.
    fn warn(&mut self, message: &str);
    /// Keep a connection's upgrade request where a restarted plugin finds it.
    fn save_request(&mut self, conn: u64, request: &str);
    /// What `save_request` kept.
    fn load_request(&mut self, conn: u64) -> Option<String>;
}

const FLUSH_TIMER: &str = "live:flush";
const RELOAD_TIMER: &str = "live:reload";
const TICK_TIMER: &str = "live:tick:";

/// A message from the page.
#[derive(Deserialize)]
#[serde(tag = "t")]
enum Request {
    #[serde(rename = "join")]
    Join {
        cid: String,
        c: String,
        #[serde(default)]
        p: Value,
        #[serde(default)]
        resume: Option<String>,
    },
    #[serde(rename = "ev")]
    Event {
        cid: String,
        #[serde(rename = "ref")]
        reference: u64,
        n: String,
        #[serde(default)]
        k: String,
        #[serde(default)]
        v: Value,
        #[serde(default)]
        f: Value,
    },
    #[serde(rename = "leave")]
    Leave { cid: String },
}

/// One page connection.
struct Connection {
    /// Its upgrade request, for `mount`'s props.
    request: ConnectRequest,
    /// The templates it has been sent (reset when the plugin reloads: the
    /// next version sends its `full` renders with their templates).
    sent: HashSet<u64>,
    /// Its components by cid.
    components: HashMap<String, Mounted>,
}

impl Connection {
    /// The user its verified token names (`sub`), if it has one.
    fn user(&self) -> Option<&str> {
        self.request.claim("sub").and_then(Value::as_str)
    }
}

/// A mounted component.
struct Mounted {
    entry: &'static Entry,
    component: Box<dyn Erased>,
    /// What the page mounted it with: to mount it afresh when the next
    /// version of the plugin cannot read its state.
    props: Value,
    /// The resume token the page holds.
    token: String,
    /// The render the page has.
    last: Html,
    /// When the last update was sent, for the batching.
    last_sent: Option<Duration>,
    /// Its subscriptions, kept to restore them with the component.
    rooms: Vec<(String, Option<String>)>,
    /// Its timer's period.
    tick: Option<Duration>,
}

impl Mounted {
    fn saved(&self) -> Saved {
        Saved {
            name: self.entry.name.to_owned(),
            props: self.props.clone(),
            token: self.token.clone(),
            state: self.component.state(),
            rooms: self.rooms.clone(),
            tick_ms: self.tick.map(|tick| u64::try_from(tick.as_millis()).unwrap_or(u64::MAX)),
            user: None,
        }
    }
}

/// Every live component of the plugin.
pub(crate) struct Runtime<H> {
    pub(crate) host: H,
    entries: &'static [Entry],
    connections: HashMap<u64, Connection>,
    rooms: Rc<RefCell<Rooms>>,
    parked: Parked,
    /// Components changed by the server, not yet sent.
    dirty: BTreeSet<Target>,
    /// When the flush timer is due, if set.
    flush_due: Option<Duration>,
    /// Infos not yet delivered, and how many this callback delivered.
    queue: VecDeque<(Target, Info)>,
    delivered: usize,
}

impl<H: Host> Runtime<H> {
    pub(crate) fn new(host: H, entries: &'static [Entry]) -> Runtime<H> {
        Runtime {
            host,
            entries,
            connections: HashMap::new(),
            rooms: Rc::default(),
            parked: Parked::default(),
            dirty: BTreeSet::new(),
            flush_due: None,
            queue: VecDeque::new(),
            delivered: 0,
        }
    }

    /// A page connected.
    pub(crate) fn connect(&mut self, conn: u64, request: ConnectRequest) {
        let kept = ConnectRequest { headers: Vec::new(), ..request.clone() };
        if let Ok(text) = serde_json::to_string(&kept) {
            self.host.save_request(conn, &text);
        }
        self.connections.insert(conn, Connection { request, sent: HashSet::new(), components: HashMap::new() });
    }

    /// A message from a page.
    pub(crate) fn message(&mut self, conn: u64, text: &str) {
        self.delivered = 0;
        if !self.connections.contains_key(&conn) {
            // The plugin restarted after a trap: the connection is older than it.
            let request =
                self.host.load_request(conn).and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default();
            self.connections.insert(conn, Connection { request, sent: HashSet::new(), components: HashMap::new() });
        }
        match serde_json::from_str(text) {
            Ok(Request::Join { cid, c, p, resume }) => self.join((conn, cid), &c, p, resume),
            Ok(Request::Event { cid, reference, n, k, v, f }) => {
                self.event((conn, cid), reference, Event { name: n, kind: k, values: v, form: f });
            }
            Ok(Request::Leave { cid }) => self.unmount(&(conn, cid), false),
            Err(error) => {
                let cid = serde_json::from_str::<Value>(text).ok().and_then(|value| value.get("cid").cloned());
                self.host.send(
                    conn,
                    json!({"t": "err", "cid": cid, "code": "bad_request", "msg": error.to_string()}).to_string(),
                );
            }
        }
        self.settle();
    }

    /// A page's connection closed: its components are unmounted and kept
    /// for a while, for the page to resume them.
    pub(crate) fn close(&mut self, conn: u64) {
        self.delivered = 0;
        let cids: Vec<String> =
            self.connections.get(&conn).map(|c| c.components.keys().cloned().collect()).unwrap_or_default();
        for cid in cids {
            self.unmount(&(conn, cid), true);
        }
        self.connections.remove(&conn);
        self.settle();
    }

    /// The backend published on `topic`.
    pub(crate) fn publish(&mut self, topic: &str, data: &Value) {
        self.delivered = 0;
        let members = self.rooms.borrow().members(topic);
        for member in members {
            self.enqueue(member, Info::Publish { topic: topic.to_owned(), data: data.clone() });
        }
        self.settle();
    }

    /// One of the runtime's timers is due.
    pub(crate) fn timer(&mut self, name: &str) {
        self.delivered = 0;
        if name == FLUSH_TIMER {
            self.flush_due = None;
        } else if name == RELOAD_TIMER {
            let targets: Vec<Target> = self.targets().collect();
            for target in targets {
                // A page whose render did not come over gets the whole of it.
                match self.mounted(&target) {
                    Some(mounted) if mounted.last == Html::empty() => self.send_full(&target),
                    _ => self.send_diff(&target, None),
                }
            }
        } else if let Some((conn, cid)) = name.strip_prefix(TICK_TIMER).and_then(|rest| rest.split_once(':')) {
            match conn.parse() {
                Ok(conn) if self.mounted(&(conn, cid.to_owned())).is_some() => {
                    self.enqueue((conn, cid.to_owned()), Info::Tick)
                }
                _ => self.host.cancel_timer(name),
            }
        }
        self.settle();
    }

    fn targets(&self) -> impl Iterator<Item = Target> + '_ {
        self.connections.iter().flat_map(|(conn, c)| c.components.keys().map(|cid| (*conn, cid.clone())))
    }

    fn mounted(&mut self, (conn, cid): &Target) -> Option<&mut Mounted> {
        self.connections.get_mut(conn)?.components.get_mut(cid)
    }

    fn error(&mut self, (conn, cid): &Target, code: &str, message: &str, ack: Option<u64>) {
        let mut reply = json!({"t": "err", "cid": cid, "code": code, "msg": message});
        if let Some(ack) = ack {
            reply["ack"] = json!(ack);
        }
        self.host.send(*conn, reply.to_string());
    }

    fn join(&mut self, target: Target, name: &str, props: Value, resume: Option<String>) {
        if target.1.is_empty() || target.1.len() > MAX_CID_SIZE {
            return self.error(&target, "bad_request", &format!("a cid is 1 to {MAX_CID_SIZE} bytes"), None);
        }
        self.unmount(&target, false);
        let Some(entry) = self.entries.iter().find(|entry| entry.name == name) else {
            return self.error(&target, "bad_request", &format!("no component named {name:?}"), None);
        };
        let Some(connection) = self.connections.get_mut(&target.0) else { return };
        if connection.components.len() >= MAX_COMPONENTS_PER_CONNECTION {
            return self.error(
                &target,
                "bad_request",
                &format!("at most {MAX_COMPONENTS_PER_CONNECTION} components per connection"),
                None,
            );
        }
        let now = self.host.now();
        let user = connection.user();
        let resumed = resume
            .and_then(|token| self.parked.take(&token, user, now))
            .filter(|saved| saved.name == name)
            .and_then(|saved| Some(((entry.restore)(saved.state.clone())?, saved)));
        let (component, token, props, effects) = match resumed {
            Some((component, saved)) => {
                let mut effects: Vec<Effect> =
                    saved.rooms.into_iter().map(|(room, label)| Effect::Subscribe { room, label }).collect();
                effects.extend(saved.tick_ms.map(|ms| Effect::Every(Some(Duration::from_millis(ms)))));
                (component, saved.token, saved.props, effects)
            }
            None => {
                let mut ctx = Ctx::new(&self.rooms);
                match (entry.mount)(&mut ctx, &Props { value: props.clone(), request: connection.request.clone() }) {
                    Ok(component) => (component, new_token(), props, ctx.effects),
                    Err(error) => return self.error(&target, "refused", &error.0, None),
                }
            }
        };
        let mounted = Mounted {
            entry,
            component,
            props,
            token,
            last: Html::empty(),
            last_sent: None,
            rooms: Vec::new(),
            tick: None,
        };
        connection.components.insert(target.1.clone(), mounted);
        self.apply(&target, effects);
        self.drain();
        self.send_full(&target);
    }

    fn event(&mut self, target: Target, reference: u64, event: Event) {
        let Some(mounted) = self.connections.get_mut(&target.0).and_then(|c| c.components.get_mut(&target.1)) else {
            return self.error(&target, "unknown", "no such component on this connection", Some(reference));
        };
        let mut ctx = Ctx::new(&self.rooms);
        let result = mounted.component.on_event(&mut ctx, &event);
        let effects = ctx.effects;
        self.apply(&target, effects);
        self.drain();
        match result {
            Ok(()) => self.send_diff(&target, Some(reference)),
            Err(error) => {
                self.send_diff(&target, None);
                self.error(&target, "failed", &error.0, Some(reference));
            }
        }
    }

    /// Remove a component, after its `unmount`; `park` keeps its state for
    /// a page that comes back.
    fn unmount(&mut self, target: &Target, park: bool) {
        let Some(mut mounted) = self.connections.get_mut(&target.0).and_then(|c| c.components.remove(&target.1)) else {
            return;
        };
        let mut ctx = Ctx::new(&self.rooms);
        mounted.component.unmount(&mut ctx);
        let effects = ctx.effects;
        self.apply(target, effects);
        for (room, _) in &mounted.rooms {
            if self.rooms.borrow_mut().unsubscribe(room, target) {
                self.presence_changed(room);
            }
        }
        if mounted.tick.is_some() {
            self.host.cancel_timer(&tick_timer(target));
        }
        self.dirty.remove(target);
        if park {
            let now = self.host.now();
            let user = self.connections.get(&target.0).and_then(|connection| connection.user().map(str::to_owned));
            self.parked.park(Saved { user, ..mounted.saved() }, now);
        }
    }

    /// Deliver what is queued, then send the changed components their
    /// updates, at most one per component per [`BATCH`]; the rest wait for
    /// the flush timer.
    fn settle(&mut self) {
        self.drain();
        let now = self.host.now();
        let mut next_due: Option<Duration> = None;
        for target in std::mem::take(&mut self.dirty) {
            let Some(mounted) = self.mounted(&target) else { continue };
            match mounted.last_sent {
                Some(sent) if now < sent + BATCH => {
                    next_due = Some(next_due.map_or(sent + BATCH, |due| due.min(sent + BATCH)));
                    self.dirty.insert(target);
                }
                _ => self.send_diff(&target, None),
            }
        }
        if let Some(due) = next_due
            && self.flush_due.is_none_or(|pending| due < pending)
        {
            match self.host.set_timer(FLUSH_TIMER, due.saturating_sub(now), false) {
                Ok(()) => self.flush_due = Some(due),
                Err(why) => self.host.warn(&format!("live components: flush timer refused: {why}")),
            }
        }
    }

    fn send_full(&mut self, target: &Target) {
        let now = self.host.now();
        let Some(connection) = self.connections.get_mut(&target.0) else { return };
        let Some(mounted) = connection.components.get_mut(&target.1) else { return };
        let html = mounted.component.render();
        let mut encoder = Encoder::new(&mut connection.sent);
        let tree = encoder.full(&html);
        let message = json!({"t": "full", "cid": target.1, "resume": mounted.token, "p": encoder.templates, "r": tree});
        mounted.last = html;
        mounted.last_sent = Some(now);
        self.dirty.remove(target);
        self.host.send(target.0, message.to_string());
    }

    /// Send what changed since the last update: with `ack`, the reply to
    /// that event (sent even when nothing changed).
    fn send_diff(&mut self, target: &Target, ack: Option<u64>) {
        let now = self.host.now();
        let Some(connection) = self.connections.get_mut(&target.0) else { return };
        let Some(mounted) = connection.components.get_mut(&target.1) else { return };
        let html = mounted.component.render();
        let mut encoder = Encoder::new(&mut connection.sent);
        let diff = encoder.diff(&mounted.last, &html);
        self.dirty.remove(target);
        if diff.is_none() && ack.is_none() {
            return;
        }
        let mut message = json!({"t": "diff", "cid": target.1});
        if let Some(ack) = ack {
            message["ack"] = json!(ack);
        }
        if !encoder.templates.is_empty() {
            message["p"] = Value::Object(encoder.templates);
        }
        if let Some(diff) = diff {
            message["d"] = diff;
            mounted.last = html;
            mounted.last_sent = Some(now);
        }
        self.host.send(target.0, message.to_string());
    }
}

fn tick_timer((conn, cid): &Target) -> String {
    format!("{TICK_TIMER}{conn}:{cid}")
}

/// A resume token: 128 unpredictable bits (std's per-thread random hash
/// keys, seeded from the host's random source).
fn new_token() -> String {
    use std::hash::BuildHasher;
    let half = || std::collections::hash_map::RandomState::new().hash_one(0_u8);
    format!("{:016x}{:016x}", half(), half())
}
