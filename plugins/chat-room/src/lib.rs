//! A live chat room, the seed's `ChatRoomComponent`: messages and who is
//! online, for every page in the room. Messages go from component to
//! component inside the plugin ([`Ctx::broadcast`]); who is online is the
//! room's presence ([`Ctx::subscribe_as`]). Mounted by
//! `<div data-live="chat-room" data-props='{"room":"lobby","user":"ann"}'>`;
//! with a verified token, the user is its `sub` claim instead.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use switchboard_sdk::html;
use switchboard_sdk::live::{Ctx, Error, Event, Html, Info, LiveComponent, Props};

/// Messages a page shows, and a room keeps for the pages that join it.
const HISTORY: usize = 50;
/// Longest message, in characters.
const MAX_TEXT: usize = 500;
/// Longest user or room name, in bytes.
const MAX_NAME: usize = 32;
/// Rooms whose recent messages the plugin keeps.
const MAX_ROOMS: usize = 100;

#[derive(Serialize, Deserialize, Clone)]
struct Said {
    id: u64,
    user: String,
    text: String,
}

thread_local! {
    /// Each room's recent messages, for the pages that join later, and the
    /// last message id. Plugin memory: a reload starts it afresh (the pages
    /// keep what they show, in their components' state).
    static RECENT: RefCell<(u64, HashMap<String, VecDeque<Said>>)> = RefCell::new((0, HashMap::new()));
}

#[derive(Serialize, Deserialize)]
struct ChatRoom {
    room: String,
    user: String,
    messages: VecDeque<Said>,
    online: Vec<String>,
}

fn name(value: Option<String>, what: &str) -> Result<String, Error> {
    value
        .filter(|name| !name.is_empty() && name.len() <= MAX_NAME && !name.contains(char::is_control))
        .ok_or_else(|| Error(format!("a {what} of 1 to {MAX_NAME} bytes is required")))
}

impl LiveComponent for ChatRoom {
    const NAME: &'static str = "chat-room";

    fn mount(ctx: &mut Ctx, props: &Props) -> Result<Self, Error> {
        let claimed = props.request().claim("sub").and_then(|sub| sub.as_str()).map(str::to_owned);
        let user = name(claimed.or_else(|| props.get("user")), "user")?;
        let room = name(Some(props.get("room").unwrap_or_else(|| "lobby".to_owned())), "room")?;
        ctx.subscribe_as(&room, &user);
        let messages = RECENT.with_borrow(|(_, rooms)| rooms.get(&room).cloned().unwrap_or_default());
        Ok(ChatRoom { room, user, messages, online: Vec::new() })
    }

    fn render(&self) -> Html {
        let online =
            Html::list(self.online.iter().map(|user| {
                (user, html!(r#"<li class="{}">{}</li>"#, if *user == self.user { "me" } else { "" }, user))
            }));
        let messages = Html::list(
            self.messages.iter().map(|said| (said.id, html!(r#"<li><b>{}</b> {}</li>"#, &said.user, &said.text))),
        );
        html!(
            r##"<div class="chat-room"><aside class="online"><h3>Online (<span class="count">{}</span>)</h3><ul>{}</ul></aside>
<section><h3>#{}</h3><ul class="log">{}</ul>
<form class="say" data-on-submit="say"><input class="text" name="text" placeholder="Say something" autocomplete="off" value=""> <button>Send</button></form></section>
<p class="flash" data-live-flash></p></div>"##,
            self.online.len(),
            online,
            &self.room,
            messages
        )
    }

    fn on_event(&mut self, ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
        if event.name != "say" {
            return Err(format!("no event {}", event.name).into());
        }
        let text = event.field("text").unwrap_or_default().trim();
        if text.chars().count() > MAX_TEXT {
            return Err(format!("a message is at most {MAX_TEXT} characters").into());
        }
        if !text.is_empty() {
            let said = RECENT.with_borrow_mut(|(last, rooms)| {
                *last += 1;
                let said = Said { id: *last, user: self.user.clone(), text: text.to_owned() };
                if rooms.len() < MAX_ROOMS || rooms.contains_key(&self.room) {
                    let recent = rooms.entry(self.room.clone()).or_default();
                    recent.push_back(said.clone());
                    if recent.len() > HISTORY {
                        recent.pop_front();
                    }
                }
                said
            });
            ctx.broadcast(&self.room, said);
        }
        Ok(())
    }

    fn on_info(&mut self, _: &mut Ctx, info: &Info) {
        match info {
            Info::Message { data, .. } => {
                if let Ok(said) = serde_json::from_value::<Said>(data.clone()) {
                    self.messages.push_back(said);
                    if self.messages.len() > HISTORY {
                        self.messages.pop_front();
                    }
                }
            }
            Info::Presence { users, .. } => self.online.clone_from(users),
            Info::Publish { data, .. } => {
                if let Some(text) = data.get("text").and_then(|text| text.as_str()) {
                    let id = RECENT.with_borrow_mut(|(last, _)| {
                        *last += 1;
                        *last
                    });
                    self.messages.push_back(Said {
                        id,
                        user: "server".to_owned(),
                        text: text.chars().take(MAX_TEXT).collect(),
                    });
                }
            }
            Info::Tick => {}
        }
    }
}

switchboard_sdk::export_live!("chat-room", ChatRoom);

#[cfg(test)]
mod tests;
