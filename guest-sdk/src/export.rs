//! Glue between the generated `Guest` trait and a [`Plugin`]: what `export!` expands to.

use crate::bindings::Guest;
use crate::bindings::switchboard::channel::types;
use crate::conn::Conn;
use crate::plugin::{Close, Plugin};

/// Implemented by `export!` for the plugin crate: says which type is the
/// plugin and where its single instance lives.
#[doc(hidden)]
pub trait Export {
    /// The plugin type.
    type Plugin: Plugin;
    /// The plugin crate's version, read from its `Cargo.toml`.
    const VERSION: &'static str;
    /// Run `f` on the plugin instance, creating it on first use.
    fn with<R>(f: impl FnOnce(&mut Self::Plugin) -> R) -> R;
}

impl<E: Export> Guest for E {
    fn describe() -> types::PluginInfo {
        types::PluginInfo {
            name: E::Plugin::NAME.to_owned(),
            version: E::VERSION.to_owned(),
            routes: E::Plugin::ROUTES.iter().map(|route| (*route).to_owned()).collect(),
        }
    }

    fn on_connect(request: types::ConnectRequest) -> Result<(), types::Rejection> {
        let conn = Conn::from_id(request.connection);
        let request = request.into();
        E::with(|plugin| plugin.on_connect(conn, &request))
            .map_err(|reject| types::Rejection { code: reject.code, reason: reject.reason })
    }

    fn on_message(connection: types::ConnectionId, message: types::Payload) {
        E::with(|plugin| plugin.on_message(Conn::from_id(connection), message.into()));
    }

    fn on_close(info: types::CloseInfo) {
        let close = Close { code: info.code, reason: info.reason, rooms: info.rooms };
        E::with(|plugin| plugin.on_close(Conn::from_id(info.connection), &close));
    }

    fn on_presence(room: String, joins: Vec<String>, leaves: Vec<String>) {
        E::with(|plugin| plugin.on_presence(&room, joins, leaves));
    }

    fn on_publish(topic: String, payload: String) {
        let payload = serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null);
        E::with(|plugin| plugin.on_publish(&topic, payload));
    }

    fn on_timer(name: String) {
        E::with(|plugin| plugin.on_timer(&name));
    }

    fn snapshot() -> Vec<u8> {
        E::with(|plugin| plugin.snapshot())
    }

    fn restore(state: Vec<u8>) {
        E::with(|plugin| plugin.restore(state));
    }
}

/// Export a [`Plugin`] type as this component's implementation of the
/// `switchboard:channel` world. Use it once, in the plugin crate's root:
///
/// ```ignore
/// switchboard_sdk::export!(Chat);
/// ```
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        #[doc(hidden)]
        struct __SwitchboardExport;

        impl $crate::__private::Export for __SwitchboardExport {
            type Plugin = $plugin;
            const VERSION: &'static str = env!("CARGO_PKG_VERSION");

            fn with<R>(f: impl FnOnce(&mut $plugin) -> R) -> R {
                ::std::thread_local! {
                    static PLUGIN: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                        const { ::std::cell::RefCell::new(::std::option::Option::None) };
                }
                PLUGIN.with_borrow_mut(|slot| f(slot.get_or_insert_with(<$plugin as ::std::default::Default>::default)))
            }
        }

        #[allow(unsafe_code)]
        const _: () = {
            $crate::__private::bindings::export_channel!(
                __SwitchboardExport with_types_in $crate::__private::bindings
            );
        };
    };
}
