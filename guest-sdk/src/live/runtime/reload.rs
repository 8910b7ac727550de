//! Hot reload: the runtime's components handed to the next version of the
//! plugin (`snapshot`), with what each page shows, and taken over by it
//! (`restore`), which sends every page what its render by the new code
//! changes: nothing when the code renders the same (as when the host's
//! optimised build of the same file takes over).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Connection, Host, Mounted, RELOAD_TIMER, Runtime};
use crate::live::component::{Ctx, Effect, Props};
use crate::live::diff::{self, Encoder};
use crate::live::html::Html;
use crate::live::parked::Saved;
use crate::live::rooms::Target;
use crate::plugin::ConnectRequest;

impl<H: Host> Runtime<H> {
    /// Hot reload: every component's state, for the next version.
    pub(crate) fn snapshot(&self) -> Vec<u8> {
        let now = self.host.now();
        let connections: Vec<SavedConnection> = self
            .connections
            .iter()
            .map(|(id, connection)| {
                // What each page shows, with the templates it was sent in.
                let mut sent = HashSet::new();
                let mut encoder = Encoder::new(&mut sent);
                let renders = connection
                    .components
                    .iter()
                    .map(|(cid, mounted)| (cid.clone(), encoder.full(&mounted.last)))
                    .collect();
                SavedConnection {
                    id: *id,
                    request: connection.request.clone(),
                    components: connection
                        .components
                        .iter()
                        .map(|(cid, mounted)| (cid.clone(), mounted.saved()))
                        .collect(),
                    renders,
                    templates: encoder.templates,
                }
            })
            .collect();
        serde_json::to_vec(&Snapshot { connections, parked: self.parked.snapshot(now) }).unwrap_or_default()
    }

    /// Hot reload: take over the previous version's components, and send
    /// every page what the new code's render changes (as soon as the host
    /// runs the reload timer).
    pub(crate) fn restore(&mut self, state: &[u8]) {
        let Ok(snapshot) = serde_json::from_slice::<Snapshot>(state) else {
            return self.host.warn("live components: the previous version's state is unreadable; pages re-join afresh");
        };
        let now = self.host.now();
        self.parked.restore(snapshot.parked, now);
        for saved in snapshot.connections {
            let templates = diff::templates(&saved.templates);
            let sent = templates.keys().copied().collect();
            self.connections.insert(saved.id, Connection { request: saved.request, sent, components: HashMap::new() });
            let mut renders: HashMap<String, Value> = saved.renders.into_iter().collect();
            for (cid, component) in saved.components {
                let shown = renders.remove(&cid).and_then(|tree| diff::decode(&tree, &templates));
                self.revive((saved.id, cid), component, shown);
            }
        }
        self.drain();
        if let Err(why) = self.host.set_timer(RELOAD_TIMER, Duration::ZERO, false) {
            self.host.warn(&format!("live components: reload timer refused: {why}"));
        }
    }

    /// Bring back a component saved by the previous version: from its state,
    /// or mounted again from its props when this version cannot read it.
    /// `shown` is what its page shows, to diff the new version's render
    /// against.
    fn revive(&mut self, target: Target, saved: Saved, shown: Option<Html>) {
        let Some(entry) = self.entries.iter().find(|entry| entry.name == saved.name) else { return };
        let Some(connection) = self.connections.get_mut(&target.0) else { return };
        let mut effects: Vec<Effect> = Vec::new();
        let component = match (entry.restore)(saved.state) {
            Some(component) => {
                effects.extend(saved.rooms.into_iter().map(|(room, label)| Effect::Subscribe { room, label }));
                component
            }
            None => {
                let mut ctx = Ctx::new(&self.rooms);
                let Ok(component) =
                    (entry.mount)(&mut ctx, &Props { value: saved.props.clone(), request: connection.request.clone() })
                else {
                    return;
                };
                effects = ctx.effects;
                component
            }
        };
        let tick = saved.tick_ms.map(Duration::from_millis);
        let mounted = Mounted {
            entry,
            component,
            props: saved.props,
            token: saved.token,
            last: shown.unwrap_or_else(Html::empty),
            last_sent: None,
            rooms: Vec::new(),
            tick,
        };
        connection.components.insert(target.1.clone(), mounted);
        self.apply(&target, effects);
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    connections: Vec<SavedConnection>,
    parked: Vec<(u64, Saved)>,
}

#[derive(Serialize, Deserialize)]
struct SavedConnection {
    id: u64,
    request: ConnectRequest,
    components: Vec<(String, Saved)>,
    /// Each component's last render, in its wire form (by cid).
    #[serde(default)]
    renders: Vec<(String, Value)>,
    /// The templates of those renders, which the page has.
    #[serde(default)]
    templates: Map<String, Value>,
}
