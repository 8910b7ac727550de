//! A plugin's exports, whichever contract version it was built for.
//!
//! The rest of the runtime calls [`Exports`] with the current version's
//! types; a 0.1.0 plugin's calls are converted here (it has no `on-timer`,
//! and no way to set a timer, so that call does nothing).

use wasmtime::component::InstancePre;
use wasmtime::{AsContextMut, Engine};

use super::bindings::{self, CloseInfo, ConnectRequest, Payload, PluginInfo, v0_1};
use super::host_api::HostState;
use super::plugin::Rejection;

/// A compiled plugin, linked and checked against one contract version.
pub(super) enum Pre {
    Current(bindings::ChannelPre<HostState>),
    V0_1(v0_1::ChannelPre<HostState>),
}

impl Pre {
    /// Check the component's exports against the current contract, then
    /// against 0.1.0. The error is the current contract's: that is what a
    /// plugin author builds for.
    pub(super) fn new(pre: InstancePre<HostState>) -> wasmtime::Result<Pre> {
        match bindings::ChannelPre::new(pre.clone()) {
            Ok(current) => Ok(Pre::Current(current)),
            Err(error) => v0_1::ChannelPre::new(pre).map(Pre::V0_1).map_err(|_| error),
        }
    }

    pub(super) fn engine(&self) -> &Engine {
        match self {
            Pre::Current(pre) => pre.engine(),
            Pre::V0_1(pre) => pre.engine(),
        }
    }

    pub(super) async fn instantiate(&self, store: impl AsContextMut<Data = HostState>) -> wasmtime::Result<Exports> {
        Ok(match self {
            Pre::Current(pre) => Exports::Current(pre.instantiate_async(store).await?),
            Pre::V0_1(pre) => Exports::V0_1(pre.instantiate_async(store).await?),
        })
    }
}

/// An instance's exports.
pub(super) enum Exports {
    Current(bindings::Channel),
    V0_1(v0_1::Channel),
}

/// Store access for the calls below.
type Store<'a> = &'a mut wasmtime::Store<HostState>;

impl Exports {
    pub(super) async fn describe(&self, store: Store<'_>) -> wasmtime::Result<PluginInfo> {
        match self {
            Exports::Current(exports) => exports.call_describe(store).await,
            Exports::V0_1(exports) => {
                let v0_1::PluginInfo { name, version, routes } = exports.call_describe(store).await?;
                Ok(PluginInfo { name, version, routes })
            }
        }
    }

    pub(super) async fn on_connect(
        &self,
        store: Store<'_>,
        request: &ConnectRequest,
    ) -> wasmtime::Result<Result<(), Rejection>> {
        let answer = match self {
            Exports::Current(exports) => exports
                .call_on_connect(store, request)
                .await?
                .map_err(|rejection| Rejection { code: rejection.code, reason: rejection.reason }),
            Exports::V0_1(exports) => {
                let request = v0_1::ConnectRequest {
                    connection: request.connection,
                    route: request.route.clone(),
                    path: request.path.clone(),
                    params: request.params.clone(),
                    query: request.query.clone(),
                    headers: request.headers.clone(),
                    remote_addr: request.remote_addr.clone(),
                    claims: request.claims.clone(),
                };
                exports
                    .call_on_connect(store, &request)
                    .await?
                    .map_err(|rejection| Rejection { code: rejection.code, reason: rejection.reason })
            }
        };
        Ok(answer)
    }

    pub(super) async fn on_message(&self, store: Store<'_>, conn: u64, payload: &Payload) -> wasmtime::Result<()> {
        match self {
            Exports::Current(exports) => exports.call_on_message(store, conn, payload).await,
            Exports::V0_1(exports) => {
                let payload = match payload {
                    Payload::Text(text) => v0_1::Payload::Text(text.clone()),
                    Payload::Binary(bytes) => v0_1::Payload::Binary(bytes.clone()),
                };
                exports.call_on_message(store, conn, &payload).await
            }
        }
    }

    pub(super) async fn on_close(&self, store: Store<'_>, info: &CloseInfo) -> wasmtime::Result<()> {
        match self {
            Exports::Current(exports) => exports.call_on_close(store, info).await,
            Exports::V0_1(exports) => {
                let info = v0_1::CloseInfo {
                    connection: info.connection,
                    code: info.code,
                    reason: info.reason.clone(),
                    rooms: info.rooms.clone(),
                };
                exports.call_on_close(store, &info).await
            }
        }
    }

    pub(super) async fn on_presence(
        &self,
        store: Store<'_>,
        room: &str,
        joins: &[String],
        leaves: &[String],
    ) -> wasmtime::Result<()> {
        match self {
            Exports::Current(exports) => exports.call_on_presence(store, room, joins, leaves).await,
            Exports::V0_1(exports) => exports.call_on_presence(store, room, joins, leaves).await,
        }
    }

    pub(super) async fn on_publish(&self, store: Store<'_>, topic: &str, payload: &str) -> wasmtime::Result<()> {
        match self {
            Exports::Current(exports) => exports.call_on_publish(store, topic, payload).await,
            Exports::V0_1(exports) => exports.call_on_publish(store, topic, payload).await,
        }
    }

    pub(super) async fn on_timer(&self, store: Store<'_>, name: &str) -> wasmtime::Result<()> {
        match self {
            Exports::Current(exports) => exports.call_on_timer(store, name).await,
            Exports::V0_1(_) => Ok(()),
        }
    }

    pub(super) async fn snapshot(&self, store: Store<'_>) -> wasmtime::Result<Vec<u8>> {
        match self {
            Exports::Current(exports) => exports.call_snapshot(store).await,
            Exports::V0_1(exports) => exports.call_snapshot(store).await,
        }
    }

    pub(super) async fn restore(&self, store: Store<'_>, state: &[u8]) -> wasmtime::Result<()> {
        match self {
            Exports::Current(exports) => exports.call_restore(store, state).await,
            Exports::V0_1(exports) => exports.call_restore(store, state).await,
        }
    }
}
