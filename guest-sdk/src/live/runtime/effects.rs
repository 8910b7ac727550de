//! What a callback's [`Ctx`](crate::live::Ctx) asked for, carried out after
//! it returns: subscriptions and presence, room messages (queued, then
//! delivered to `on_info` by `drain`, bounded per host callback), the
//! component's timer, and messages to its page.

use serde_json::json;

use super::{Host, Runtime, tick_timer};
use crate::live::component::{Ctx, Effect, Info};
use crate::live::limits::{MAX_DELIVERIES_PER_CALLBACK, MAX_ROOM_SIZE, MAX_SUBSCRIPTIONS_PER_COMPONENT};
use crate::live::rooms::Target;

impl<H: Host> Runtime<H> {
    /// Carry out a callback's effects.
    pub(super) fn apply(&mut self, target: &Target, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Subscribe { room, label } => self.subscribe(target, room, label),
                Effect::Unsubscribe(room) => {
                    if let Some(mounted) = self.mounted(target) {
                        mounted.rooms.retain(|(name, _)| *name != room);
                    }
                    if self.rooms.borrow_mut().unsubscribe(&room, target) {
                        self.presence_changed(&room);
                    }
                }
                Effect::Broadcast { room, data } => {
                    let members = self.rooms.borrow().members(&room);
                    for member in members {
                        self.enqueue(member, Info::Message { room: room.clone(), data: data.clone() });
                    }
                }
                Effect::Every(period) => {
                    let Some(mounted) = self.mounted(target) else { continue };
                    mounted.tick = period;
                    let name = tick_timer(target);
                    match period {
                        Some(period) => {
                            if let Err(why) = self.host.set_timer(&name, period, true) {
                                self.host.warn(&format!("live component timer refused: {why}"));
                            }
                        }
                        None => self.host.cancel_timer(&name),
                    }
                }
                Effect::Push { name, value } => {
                    self.host.send(target.0, json!({"t": "push", "cid": target.1, "n": name, "v": value}).to_string())
                }
                Effect::Flash { kind, message } => {
                    self.host.send(
                        target.0,
                        json!({"t": "flash", "cid": target.1, "kind": kind, "msg": message}).to_string(),
                    );
                }
                Effect::Redirect(to) => {
                    self.host.send(target.0, json!({"t": "redirect", "cid": target.1, "to": to}).to_string())
                }
            }
        }
    }

    fn subscribe(&mut self, target: &Target, room: String, label: Option<String>) {
        if room.is_empty()
            || room.len() > MAX_ROOM_SIZE
            || label.as_ref().is_some_and(|label| label.len() > MAX_ROOM_SIZE)
        {
            return self.host.warn(&format!(
                "live component subscription refused: rooms and labels are 1 to {MAX_ROOM_SIZE} bytes"
            ));
        }
        let Some(mounted) = self.mounted(target) else { return };
        let full = mounted.rooms.len() >= MAX_SUBSCRIPTIONS_PER_COMPONENT;
        match mounted.rooms.iter_mut().find(|(name, _)| *name == room) {
            Some((_, old)) => old.clone_from(&label),
            None if full => {
                let why = format!(
                    "live component subscription refused: at most {MAX_SUBSCRIPTIONS_PER_COMPONENT} rooms per component"
                );
                return self.host.warn(&why);
            }
            None => mounted.rooms.push((room.clone(), label.clone())),
        }
        let labelled = label.is_some();
        if self.rooms.borrow_mut().subscribe(&room, target, label) {
            self.presence_changed(&room);
        } else if labelled {
            // A second tab of someone present: the room has not changed, but
            // the newcomer needs to know who is there.
            let users = self.rooms.borrow().labels(&room);
            self.enqueue(target.clone(), Info::Presence { room, users });
        }
    }

    pub(super) fn presence_changed(&mut self, room: &str) {
        let users = self.rooms.borrow().labels(room);
        let members = self.rooms.borrow().members(room);
        for member in members {
            self.enqueue(member, Info::Presence { room: room.to_owned(), users: users.clone() });
        }
    }

    pub(super) fn enqueue(&mut self, target: Target, info: Info) {
        if self.delivered + self.queue.len() >= MAX_DELIVERIES_PER_CALLBACK {
            if self.delivered + self.queue.len() == MAX_DELIVERIES_PER_CALLBACK {
                self.host.warn("live components: too many room messages in one callback; the rest are dropped");
                self.delivered += 1;
            }
            return;
        }
        self.queue.push_back((target, info));
    }

    /// Deliver the queued infos (which may queue more).
    pub(super) fn drain(&mut self) {
        while let Some((target, info)) = self.queue.pop_front() {
            self.delivered += 1;
            let Some(mounted) = self.connections.get_mut(&target.0).and_then(|c| c.components.get_mut(&target.1))
            else {
                continue;
            };
            let mut ctx = Ctx::new(&self.rooms);
            mounted.component.on_info(&mut ctx, &info);
            let effects = ctx.effects;
            self.apply(&target, effects);
            self.dirty.insert(target);
        }
    }
}
