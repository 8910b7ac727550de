//! Live components: server-rendered UI whose state lives in the plugin and
//! whose changes reach the browser as minimal diffs, in the manner of
//! Phoenix LiveView. A component implements [`LiveComponent`], renders with
//! [`html!`](crate::html), and is exported with
//! [`export_live!`](crate::export_live); the page loads `/js/live.js` and
//! marks where it goes:
//!
//! ```html
//! <div data-live="counter" data-props='{"count":10}'></div>
//! ```
//!
//! ```ignore
//! use serde::{Deserialize, Serialize};
//! use switchboard_sdk::html;
//! use switchboard_sdk::live::{Ctx, Error, Event, Html, LiveComponent, Props};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Counter { count: i64 }
//!
//! impl LiveComponent for Counter {
//!     const NAME: &'static str = "counter";
//!     fn mount(_: &mut Ctx, props: &Props) -> Result<Self, Error> {
//!         Ok(Counter { count: props.get("count").unwrap_or(0) })
//!     }
//!     fn render(&self) -> Html {
//!         html!("<button data-on-click=\"inc\">{}</button>", self.count)
//!     }
//!     fn on_event(&mut self, _: &mut Ctx, event: &Event) -> Result<(), Error> {
//!         if event.name == "inc" { self.count += 1 }
//!         Ok(())
//!     }
//! }
//!
//! switchboard_sdk::export_live!("counter", Counter);
//! ```
//!
//! The wire protocol is `guest-sdk/LIVE-PROTOCOL.md`. The modules:
//! - `html`: [`Html`], [`Template`], escaping, keyed lists;
//! - `component`: the trait and what its callbacks get;
//! - `diff`: a render's wire form, and the diff of two renders;
//! - `merge`: the browser's side, in Rust ([`Mirror`]), for tests;
//! - `runtime`: components per connection, batching, resumption, reload;
//! - `rooms`, `parked`, `limits`, `erased`, `export`: its parts.

mod component;
mod diff;
mod erased;
mod export;
mod html;
pub mod limits;
mod merge;
mod parked;
mod rooms;
mod runtime;
#[cfg(feature = "testing")]
mod testing;
#[cfg(test)]
mod tests;

pub use component::{Ctx, Error, Event, Info, LiveComponent, Props};
pub use html::{Html, IntoSlot, Raw, Slot, Template, escape, raw};
pub use merge::{MergeError, Mirror};
#[cfg(feature = "testing")]
pub use testing::{LiveTest, TestError};

/// What `export_live!` needs; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use super::erased::Entry;
    pub use super::export::{LivePlugin, Spec};
}
