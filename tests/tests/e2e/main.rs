//! End-to-end tests: the real server on `127.0.0.1:0`, real compiled
//! plugins, real WebSocket clients. One test binary, one module per area:

/// The chat plugin: rooms, typing, user counts, error replies, fan-out.
mod chat;
/// What reaches `on-connect`, rejection, and plugin-initiated close.
mod connect;
/// The echo plugin: text and binary round trips.
mod echo;
/// A plugin that traps or hangs: the connection gets 1011, everyone else carries on.
mod faults;
/// HTTP before the upgrade: 404, 426.
mod http;
/// Loading plugins: invalid files, route conflicts, the plugins API.
mod loading;
/// Hot reload: new versions, broken files, removed files, chat under reload.
mod reload;
