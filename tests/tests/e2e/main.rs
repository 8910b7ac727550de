//! End-to-end tests: the real server on `127.0.0.1:0`, real compiled
//! plugins, real WebSocket clients. One test binary, one module per area:

/// Abuse: oversized messages, floods, too many connections, dead peers, slow readers.
mod abuse;
/// Tokens, origins and CORS.
mod auth;
/// The chat plugin: rooms, typing, user counts, error replies, fan-out.
mod chat;
/// What reaches `on-connect`, rejection, and plugin-initiated close.
mod connect;
/// The echo plugin: text and binary round trips.
mod echo;
/// Hostile plugins (trap, endless loop, endless allocation, bad host calls):
/// the connection gets 1011 or the call an error, everyone else carries on.
mod faults;
/// The tic-tac-toe plugin: players, spectators, moves, a game to the end.
mod game;
/// HTTP before the upgrade: 404, 426.
mod http;
/// Loading plugins: invalid files, route conflicts, the plugins API.
mod loading;
/// Events from the backend: POST /api/publish, the notifications plugin.
mod publish;
/// Hot reload: new versions, broken files, removed files, chat under reload.
mod reload;
