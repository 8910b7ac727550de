//! A live-component plugin: [`LivePlugin`] is the [`Plugin`] that
//! `export_live!` exports; it hands every callback to the runtime, which
//! talks to the real host through [`WitHost`].

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use super::erased::Entry;
use super::runtime::{Host, Runtime};
use crate::bindings::switchboard::channel::host;
use crate::{Close, Conn, ConnectRequest, Message, Plugin, Reject};

/// What `export_live!` says about the plugin.
#[doc(hidden)]
pub trait Spec: 'static {
    /// The plugin's name.
    const NAME: &'static str;
    /// Its route: `/live/<name>`.
    const ROUTES: &'static [&'static str];
    /// Its component types.
    const COMPONENTS: &'static [Entry];
}

/// The plugin of a set of live components.
#[doc(hidden)]
pub struct LivePlugin<S: Spec> {
    runtime: Runtime<WitHost>,
    spec: PhantomData<S>,
}

impl<S: Spec> std::fmt::Debug for LivePlugin<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LivePlugin").field("name", &S::NAME).finish_non_exhaustive()
    }
}

impl<S: Spec> Default for LivePlugin<S> {
    fn default() -> Self {
        LivePlugin { runtime: Runtime::new(WitHost { started: Instant::now() }, S::COMPONENTS), spec: PhantomData }
    }
}

/// The metadata key of a connection's upgrade request (see `Host::save_request`).
const REQUEST_META: &str = "live:request";

/// The host, through the plugin's imports.
pub(crate) struct WitHost {
    started: Instant,
}

impl Host for WitHost {
    fn send(&mut self, conn: u64, message: String) {
        Conn::from_id(conn).send(Message::Text(message));
    }

    fn set_timer(&mut self, name: &str, after: Duration, repeat: bool) -> Result<(), String> {
        let millis = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        host::set_timer(name, millis, repeat).map_err(|error| error.reason().to_owned())
    }

    fn cancel_timer(&mut self, name: &str) {
        host::cancel_timer(name);
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn warn(&mut self, message: &str) {
        crate::log::warn(message);
    }

    fn save_request(&mut self, conn: u64, request: &str) {
        let _ = host::set_meta(conn, REQUEST_META, request);
    }

    fn load_request(&mut self, conn: u64) -> Option<String> {
        host::get_meta(conn, REQUEST_META).ok().flatten()
    }
}

impl<S: Spec> Plugin for LivePlugin<S> {
    const NAME: &'static str = S::NAME;
    const ROUTES: &'static [&'static str] = S::ROUTES;

    fn on_connect(&mut self, conn: Conn, request: &ConnectRequest) -> Result<(), Reject> {
        self.runtime.connect(conn.id(), request.clone());
        Ok(())
    }

    fn on_message(&mut self, conn: Conn, message: Message) {
        match message {
            Message::Text(text) => self.runtime.message(conn.id(), &text),
            Message::Binary(_) => {
                let _ = conn.close(1003, "live components speak JSON text");
            }
        }
    }

    fn on_close(&mut self, conn: Conn, _close: &Close) {
        self.runtime.close(conn.id());
    }

    fn on_publish(&mut self, topic: &str, payload: serde_json::Value) {
        self.runtime.publish(topic, &payload);
    }

    fn on_timer(&mut self, name: &str) {
        self.runtime.timer(name);
    }

    fn snapshot(&mut self) -> Vec<u8> {
        self.runtime.snapshot()
    }

    fn restore(&mut self, state: Vec<u8>) {
        self.runtime.restore(&state);
    }
}

/// Export live components as this crate's plugin, named `name` and served
/// on the route `/live/<name>`. A page mounts them by their
/// [`LiveComponent::NAME`](crate::live::LiveComponent::NAME):
///
/// ```ignore
/// switchboard_sdk::export_live!("counter", Counter);
/// ```
#[macro_export]
macro_rules! export_live {
    ($name:literal, $($component:ty),+ $(,)?) => {
        #[doc(hidden)]
        struct __LiveSpec;

        impl $crate::live::__private::Spec for __LiveSpec {
            const NAME: &'static str = $name;
            const ROUTES: &'static [&'static str] = &[::core::concat!("/live/", $name)];
            const COMPONENTS: &'static [$crate::live::__private::Entry] =
                &[$($crate::live::__private::Entry::of::<$component>()),+];
        }

        $crate::export!($crate::live::__private::LivePlugin<__LiveSpec>);
    };
}
