//! A [`LiveComponent`] behind a trait object, so that one plugin can serve
//! several component types, found by name.

use serde_json::Value;

use super::component::{Ctx, Error, Event, Info, LiveComponent, Props};
use super::html::Html;

/// The callbacks of some component type.
pub(crate) trait Erased {
    fn render(&self) -> Html;
    fn on_event(&mut self, ctx: &mut Ctx, event: &Event) -> Result<(), Error>;
    fn on_info(&mut self, ctx: &mut Ctx, info: &Info);
    fn unmount(&mut self, ctx: &mut Ctx);
    fn state(&self) -> Value;
}

impl<C: LiveComponent> Erased for C {
    fn render(&self) -> Html {
        LiveComponent::render(self)
    }

    fn on_event(&mut self, ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
        LiveComponent::on_event(self, ctx, event)
    }

    fn on_info(&mut self, ctx: &mut Ctx, info: &Info) {
        LiveComponent::on_info(self, ctx, info);
    }

    fn unmount(&mut self, ctx: &mut Ctx) {
        LiveComponent::unmount(self, ctx);
    }

    fn state(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Mounting a component: `LiveComponent::mount`, boxed.
type Mount = fn(&mut Ctx, &Props) -> Result<Box<dyn Erased>, Error>;

/// How to make a component of one type: by mounting it, or from its state.
pub struct Entry {
    pub(crate) name: &'static str,
    pub(crate) mount: Mount,
    pub(crate) restore: fn(Value) -> Option<Box<dyn Erased>>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Entry {
    /// The entry of component type `C`; what `export_live!` lists.
    pub const fn of<C: LiveComponent>() -> Entry {
        Entry { name: C::NAME, mount: mount::<C>, restore: restore::<C> }
    }
}

fn mount<C: LiveComponent>(ctx: &mut Ctx, props: &Props) -> Result<Box<dyn Erased>, Error> {
    Ok(Box::new(C::mount(ctx, props)?))
}

fn restore<C: LiveComponent>(state: Value) -> Option<Box<dyn Erased>> {
    Some(Box::new(serde_json::from_value::<C>(state).ok()?))
}
