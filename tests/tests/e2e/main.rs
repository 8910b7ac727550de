//! End-to-end tests: the real server on `127.0.0.1:0`, real compiled
//! plugins, real WebSocket clients. One test binary, one module per area:

#![forbid(unsafe_code)]
#![allow(clippy::expect_used, reason = "a test fails by panicking, with the reason")]

/// Abuse: oversized messages, floods, too many connections, dead peers, slow readers.
mod abuse;
/// Tokens, origins and CORS.
mod auth;
/// The chat plugin: rooms, typing, user counts, error replies, fan-out.
mod chat;
/// Several nodes through one Redis: rooms, users, broadcasts, outages.
mod cluster;
/// History rooms over several nodes: one numbering, recovery on any node,
/// gaps filled from the stream, a lost history told.
mod cluster_history;
/// Messages for users offline on every node: kept in Redis, handed once.
mod cluster_offline;
/// permessage-deflate: negotiation, both directions, a broadcast to
/// compressing and plain clients, the inflate cap, protocol errors.
mod compression;
/// What reaches `on-connect`, rejection, and plugin-initiated close.
mod connect;
/// Contract versions: a plugin built for 0.1.0 loads and runs unchanged.
mod contract;
/// The echo plugin: text and binary round trips.
mod echo;
/// Hostile plugins (trap, endless loop, endless allocation, bad host calls):
/// the connection gets 1011 or the call an error, everyone else carries on.
mod faults;
/// The tic-tac-toe plugin: players, spectators, moves, a game to the end.
mod game;
/// History and recovery: a client that comes back gets what it missed, or
/// `recovered:false`; the history's bounds.
mod history;
/// HTTP before the upgrade: 404, 426.
mod http;
/// A plugin written in JavaScript (componentize-js), served by the unchanged host.
mod javascript;
/// Races in a connection's and a plugin's life: unloads and reloads against
/// upgrades, the connection cap, a busy plugin, shutdown, start-up conflicts.
mod lifecycle;
/// Every limit on what a client or a plugin can make the server hold: rooms,
/// tracked rooms, metadata, the store, the log, the outbox in bytes.
mod limits;
/// Live components over a real socket: mount, events and their replies,
/// per-connection ids, resumption, hot reload, traps, batching, bad input.
mod live;
/// Loading plugins: invalid files, route conflicts, the plugins API.
mod loading;
/// Prometheus metrics: a scrape during real traffic (messages, refusals,
/// traps, closes, reloads, the publish API) and what `/metrics` serves.
mod metrics;
/// Events from the backend: POST /api/publish, the notifications plugin.
mod publish;
/// Hot reload: new versions, broken files, removed files, chat under reload.
mod reload;
/// Restarts: what a durable store (`[store] path`) keeps, and what the
/// in-memory default does not.
mod restart;
/// Timers: one-shot and repeating, cancelled, kept across a reload, bounded,
/// and under the callback deadline.
mod timers;
