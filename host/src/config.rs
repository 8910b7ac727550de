//! Server settings: a TOML file, overridden by command-line flags. Every
//! setting has a default; `switchboard.toml` at the repository root shows
//! them all, and SECURITY.md explains the limits.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its location.
        source: toml::de::Error,
    },
    /// A value is out of its range.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Everything the server needs to know to start.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Folder whose `*.wasm` files are loaded as plugins.
    pub plugins: PathBuf,
    /// Reload plugins when their files change (hot reload).
    pub watch: bool,
    /// Folder served over plain HTTP at `/` (the demo page); nothing is
    /// served when it does not exist.
    pub public: PathBuf,
    /// Where compiled plugins are cached across restarts ("" turns the cache
    /// off). Default: `$XDG_CACHE_HOME/switchboard`, `~/.cache/switchboard`,
    /// or the system's temporary folder.
    pub compile_cache: Option<PathBuf>,
    /// `Origin`s allowed to open WebSocket connections and to read the HTTP
    /// API from a browser; empty allows every origin.
    pub allowed_origins: Vec<String>,
    /// Limits for every connection and plugin.
    pub limits: Limits,
    /// Keep-alive pings.
    pub keepalive: KeepAlive,
    /// permessage-deflate.
    pub compression: Compression,
    /// Token verification.
    pub auth: Auth,
    /// The backend's access to `POST /api/publish`.
    pub api: Api,
    /// Prometheus metrics.
    pub metrics: MetricsSettings,
    /// Where the plugins' key-value stores are kept.
    pub store: StoreSettings,
    /// Several nodes sharing rooms and users through Redis.
    pub cluster: ClusterSettings,
    /// Per-plugin settings, by plugin name: `[plugin.chat]`.
    pub plugin: BTreeMap<String, PluginSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            plugins: PathBuf::from("plugins"),
            watch: true,
            public: PathBuf::from("public"),
            compile_cache: None,
            allowed_origins: Vec::new(),
            limits: Limits::default(),
            keepalive: KeepAlive::default(),
            compression: Compression::default(),
            auth: Auth::default(),
            api: Api::default(),
            metrics: MetricsSettings::default(),
            store: StoreSettings::default(),
            cluster: ClusterSettings::default(),
            plugin: BTreeMap::new(),
        }
    }
}

/// Declares [`Limits`] and [`LimitOverrides`] from one list: each limit
/// once, with its default and its documentation. `plugin` limits can be set
/// for one plugin in `[plugin.NAME.limits]`; `server` limits only globally.
macro_rules! limits {
    (
        plugin { $( $(#[doc = $pdoc:literal])* $pname:ident : $pty:ty = $pdefault:expr $(, with $pwith:literal, $powith:literal)? ; )* }
        server { $( $(#[doc = $sdoc:literal])* $sname:ident : $sty:ty = $sdefault:expr $(, with $swith:literal)? ; )* }
    ) => {
        /// Limits on what clients and plugins may use: every limit of the
        /// server, with its default. SECURITY.md says what each defends
        /// against.
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct Limits {
            $( $(#[doc = $pdoc])* $(#[serde(with = $pwith)])? pub $pname: $pty, )*
            $( $(#[doc = $sdoc])* $(#[serde(with = $swith)])? pub $sname: $sty, )*
        }

        impl Default for Limits {
            fn default() -> Self {
                Limits { $( $pname: $pdefault, )* $( $sname: $sdefault, )* }
            }
        }

        impl Limits {
            /// Every limit's name, as written in the TOML file.
            #[cfg(test)]
            const NAMES: &'static [&'static str] = &[$( stringify!($pname), )* $( stringify!($sname), )*];
        }

        /// Per-plugin overrides of [`Limits`]; unset fields keep the global
        /// value. Each field overrides the [`Limits`] field of its name.
        #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        #[allow(missing_docs, reason = "each field overrides the Limits field of the same name")]
        pub struct LimitOverrides {
            $( $(#[serde(default, with = $powith)])? pub $pname: Option<$pty>, )*
        }

        impl LimitOverrides {
            /// `global` with these overrides applied.
            fn apply(&self, mut global: Limits) -> Limits {
                $( if let Some(value) = &self.$pname { global.$pname = value.clone(); } )*
                global
            }
        }
    };
}

limits! {
    plugin {
        /// Largest message a client may send, in bytes; larger ones close the
        /// connection with 1009.
        max_message_size: usize = 1 << 20;
        /// Outgoing messages queued per connection; a client that lets the
        /// queue fill up (in messages or in bytes), or whose socket stays
        /// blocked for `keepalive.ping_timeout`, is too slow and is
        /// disconnected with 1008.
        send_queue: usize = 1024;
        /// Bytes queued per connection (a broadcast's bytes are shared by its
        /// recipients but counted for each).
        send_queue_bytes: usize = 8 << 20;
        /// Largest message a plugin may send in one call, in bytes; at most
        /// `send_queue_bytes`.
        max_send_size: usize = 4 << 20;
        /// Messages per second a connection may send (token bucket refill rate).
        messages_per_second: u32 = 1000;
        /// Messages a connection may send in a burst above that rate.
        message_burst: u32 = 1000;
        /// Open connections, in total (or, per plugin, to that plugin);
        /// beyond it upgrades get 503. Upgrades in progress count.
        max_connections: usize = 50_000;
        /// Linear memory one plugin instance may grow to, in bytes.
        plugin_memory: usize = 64 << 20;
        /// Longest one plugin callback may run before it is interrupted.
        callback_timeout: Duration = Duration::from_secs(1), with "duration", "optional_duration";
        /// Longest room name, user id, metadata key or store key, in bytes.
        max_name_size: usize = 1024;
        /// Rooms a plugin may have at once (a room exists while it has members).
        max_rooms: usize = 100_000;
        /// Rooms whose presence a plugin may track at once (tracking ends
        /// when a room empties).
        max_tracked_rooms: usize = 10_000;
        /// Presence changes collected during one callback for `on-presence`;
        /// beyond it they are dropped (and counted), clients still get the diffs.
        max_presence_events: usize = 10_000;
        /// Timers a plugin may have set at once (`set-timer`).
        max_timers: usize = 1000;
        /// Shortest period of a repeating timer: a plugin cannot keep
        /// itself busy on a 0 ms tick.
        min_timer_interval: Duration = Duration::from_millis(10), with "duration", "optional_duration";
        /// Metadata keys per connection.
        max_meta_keys: usize = 64;
        /// Largest metadata value, in bytes.
        max_meta_value_size: usize = 64 << 10;
        /// Keys in a plugin's key-value store.
        kv_max_keys: usize = 100_000;
        /// Largest value in the key-value store, in bytes.
        kv_max_value_size: usize = 1 << 20;
        /// Bytes (keys and values) in a plugin's key-value store.
        kv_max_bytes: usize = 64 << 20;
        /// Messages kept per room for clients that come back with
        /// `?recover=` (see README, "History and recovery"); 0 keeps none and
        /// delivers room messages as published. At most `send_queue` / 2: a
        /// recovery queues them at once.
        history_size: usize = 0;
        /// How long a kept message stays recoverable.
        history_ttl: Duration = Duration::from_secs(300), with "duration", "optional_duration";
        /// Bytes of history kept per room; at most `send_queue_bytes` / 2.
        history_room_bytes: usize = 1 << 20;
        /// Rooms whose history a plugin keeps at once; beyond it the least
        /// recently used room's history is dropped (its clients then
        /// recover with `recovered:false`).
        history_rooms: usize = 10_000;
        /// Bytes of history a plugin keeps in all its rooms together.
        history_bytes: usize = 64 << 20;
        /// Messages kept per user who has no connection, for their next
        /// one (`send-to-user`; see README, "Messages for offline users");
        /// 0 keeps none: a message to an offline user is dropped.
        mailbox_size: usize = 0;
        /// Bytes kept per offline user (the oldest messages go first).
        mailbox_bytes: usize = 64 << 10;
        /// Offline users a plugin keeps messages for at once; a message for
        /// one more is dropped (logged).
        mailbox_users: usize = 10_000;
        /// Bytes a plugin keeps for all its offline users together.
        mailbox_total_bytes: usize = 64 << 20;
        /// Log records per second a plugin may write (token bucket refill);
        /// the rest are dropped and counted.
        log_records_per_second: u32 = 100;
        /// Log records a plugin may write in a burst above that rate.
        log_burst: u32 = 1000;
        /// Longest log record, in bytes; longer ones are cut.
        max_log_record: usize = 8 << 10;
    }
    server {
        /// Open connections from one IP address; beyond it upgrades get 429.
        max_connections_per_ip: usize = 20_000;
        /// Each connection's read buffer, in bytes. tungstenite's default
        /// (128 KiB) would cost over a gigabyte for 10k idle connections;
        /// 1 KiB cost 8 KiB of RSS per idle connection in the bench. Larger
        /// messages are assembled elsewhere: this only sets the read size.
        read_buffer_size: usize = 1 << 10;
        /// Outgoing bytes gathered before a write goes to the socket.
        write_buffer_size: usize = 64 << 10;
        /// Largest `POST /api/publish` body, in bytes.
        max_publish_body: usize = 1 << 20;
        /// Largest file served from the public folder, in bytes.
        max_static_file: u64 = 16 << 20;
        /// How long a closing handshake may take before the socket is dropped.
        close_timeout: Duration = Duration::from_secs(5), with "duration";
        /// How long shutdown waits for connections to say goodbye before it
        /// drops them.
        shutdown_grace: Duration = Duration::from_secs(5), with "duration";
    }
}

/// How much history a plugin keeps (its `history_*` limits), for the
/// channel (one node) and the cluster (Redis) alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistoryBounds {
    pub(crate) size: usize,
    pub(crate) ttl: Duration,
    pub(crate) room_bytes: usize,
    pub(crate) rooms: usize,
    pub(crate) bytes: usize,
}

/// How much a plugin keeps for offline users (its `mailbox_*` limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MailboxBounds {
    pub(crate) size: usize,
    pub(crate) bytes: usize,
    pub(crate) users: usize,
    pub(crate) total_bytes: usize,
}

impl Limits {
    pub(crate) fn history(&self) -> HistoryBounds {
        HistoryBounds {
            size: self.history_size,
            ttl: self.history_ttl,
            room_bytes: self.history_room_bytes,
            rooms: self.history_rooms,
            bytes: self.history_bytes,
        }
    }

    pub(crate) fn mailbox(&self) -> MailboxBounds {
        MailboxBounds {
            size: self.mailbox_size,
            bytes: self.mailbox_bytes,
            users: self.mailbox_users,
            total_bytes: self.mailbox_total_bytes,
        }
    }
}

/// Longest plugin name, in characters (`a-z`, `0-9`, `-`, `_`).
pub(crate) const MAX_PLUGIN_NAME: usize = 64;
/// Core instances one plugin instance may create: a component made by
/// `wit-bindgen` or `componentize-js` needs a handful.
pub(crate) const MAX_PLUGIN_CORE_INSTANCES: usize = 16;
/// Longest delay of a plugin's timer: far enough for any turn timeout, near
/// enough that a deadline never overflows the clock.
pub(crate) const MAX_TIMER_DELAY: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Keep-alive: the server pings every `ping_interval`; a peer that sends
/// nothing (not even a pong) for `ping_interval + ping_timeout` is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepAlive {
    /// Time between pings.
    #[serde(with = "duration")]
    pub ping_interval: Duration,
    /// How long after a ping an answer may take.
    #[serde(with = "duration")]
    pub ping_timeout: Duration,
}

impl Default for KeepAlive {
    fn default() -> Self {
        KeepAlive { ping_interval: Duration::from_secs(30), ping_timeout: Duration::from_secs(10) }
    }
}

/// `[compression]`: permessage-deflate (RFC 7692), for the clients that
/// offer it. Without context takeover either way, so it costs no memory
/// per connection; a message sent to many is compressed once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Compression {
    /// Whether to accept a client's offer.
    pub enabled: bool,
    /// Messages shorter than this many bytes are sent as they are: on a
    /// short message, the compressed frame saves too little for its CPU.
    pub min_size: usize,
    /// DEFLATE level, 1 (fastest) to 9 (smallest).
    pub level: u32,
}

impl Default for Compression {
    fn default() -> Self {
        Compression { enabled: true, min_size: 128, level: 1 }
    }
}

/// JSON Web Token (HS256) verification. Tokens come in the `token` query
/// parameter or an `Authorization: Bearer` header; the verified claims reach
/// the plugin's `on-connect`, the secret never does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// The HMAC secret. Prefer `secret_env` outside of tests.
    pub secret: Option<String>,
    /// The environment variable holding the secret.
    pub secret_env: Option<String>,
    /// Whether every plugin requires a valid token (a plugin may override).
    pub required: bool,
}

impl Auth {
    /// The secret from the config or the environment.
    pub fn resolve_secret(&self) -> Result<Option<String>, ConfigError> {
        resolve("auth", "secret", self.secret.as_deref(), self.secret_env.as_deref())
    }
}

/// The HTTP API for backends. Without a key, `POST /api/publish` refuses
/// every request (401).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// The bearer key backends present. Prefer `key_env` outside of tests.
    pub key: Option<String>,
    /// The environment variable holding the key.
    pub key_env: Option<String>,
}

impl Api {
    /// The key from the config or the environment.
    pub fn resolve_key(&self) -> Result<Option<String>, ConfigError> {
        resolve("api", "key", self.key.as_deref(), self.key_env.as_deref())
    }
}

/// A secret given inline or through an environment variable.
fn resolve(
    table: &str,
    name: &str,
    inline: Option<&str>,
    variable: Option<&str>,
) -> Result<Option<String>, ConfigError> {
    match (inline, variable) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid(format!("{table}: set {name} or {name}_env, not both"))),
        (Some(value), None) => Ok(Some(value.to_owned())),
        (None, Some(variable)) => std::env::var(variable)
            .map(Some)
            .map_err(|_| ConfigError::Invalid(format!("{table}: environment variable {variable} is not set"))),
        (None, None) => Ok(None),
    }
}

/// `[store]`: where the plugins' key-value stores (and so offline
/// notifications, game boards) are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// A file that keeps them across restarts (created if missing). Without
    /// one they live in memory only: nothing to set up, nothing on disk, and
    /// lost when the process ends.
    pub path: Option<PathBuf>,
}

/// `[cluster]`: several nodes behind one load balancer, sharing rooms, users
/// and broadcasts through Redis pub/sub.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// The Redis server the nodes share, e.g. `redis://127.0.0.1:6379`
    /// (Redis 6.2 or newer). Absent: a single node, no other service needed.
    pub redis: Option<String>,
    /// Messages waiting for Redis, at most: beyond it (Redis is down or too
    /// slow) a message still reaches this node's clients, not the others'.
    pub publish_queue: usize,
    /// Bytes of messages waiting for Redis, at most.
    pub publish_queue_bytes: usize,
    /// Messages from other nodes waiting to be handed to this node's
    /// clients, at most: beyond it they are dropped and counted, so that a
    /// slow node never slows Redis down for the others.
    pub receive_queue: usize,
    /// Bytes of messages from other nodes waiting, at most (at least 4096;
    /// keep it above the largest `max_send_size` of the nodes: a message
    /// larger than it never arrives).
    pub receive_queue_bytes: usize,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            redis: None,
            publish_queue: 65_536,
            publish_queue_bytes: 64 << 20,
            receive_queue: 65_536,
            receive_queue_bytes: 64 << 20,
        }
    }
}

/// `[metrics]`: Prometheus metrics, on an address of their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Where to serve `GET /metrics`, e.g. `127.0.0.1:9100` (port 0 picks a
    /// free port). Absent: no metrics are served, nor counted. There is no
    /// authentication: keep it on a private address.
    pub listen: Option<SocketAddr>,
}

/// Settings of one plugin: `[plugin.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginSettings {
    /// Whether connections need a valid token (default: `auth.required`).
    pub auth_required: Option<bool>,
    /// Limits that differ from the global ones.
    pub limits: LimitOverrides,
    /// The only file this plugin may be loaded from (a file name in the
    /// plugins folder, e.g. `chat.wasm`): another file that calls itself by
    /// this name is refused, and wins no route against it.
    pub file: Option<PathBuf>,
    /// The only build this plugin may be loaded from: the SHA-256 of the
    /// file, in hex (as `GET /api/plugins` shows it).
    pub sha256: Option<String>,
}

impl Config {
    /// Read a TOML file; settings it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::from_toml(&text).map_err(|error| match error {
            ConfigError::Parse { source, .. } => ConfigError::Parse { path: path.to_owned(), source },
            other => other,
        })
    }

    /// Parse TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|source| ConfigError::Parse { path: PathBuf::from("<text>"), source })?;
        config.validate()?;
        Ok(config)
    }

    /// The compile cache folder, if caching is on.
    pub fn compile_cache_dir(&self) -> Option<PathBuf> {
        match &self.compile_cache {
            Some(folder) if folder.as_os_str().is_empty() => None,
            Some(folder) => Some(folder.clone()),
            None => {
                let xdg = std::env::var_os("XDG_CACHE_HOME").filter(|dir| !dir.is_empty()).map(PathBuf::from);
                let home = std::env::var_os("HOME")
                    .filter(|dir| !dir.is_empty())
                    .map(|home| PathBuf::from(home).join(".cache"));
                Some(xdg.or(home).unwrap_or_else(std::env::temp_dir).join("switchboard"))
            }
        }
    }

    /// The limits that apply to plugin `name`.
    pub fn limits_for(&self, name: &str) -> Limits {
        match self.plugin.get(name) {
            Some(settings) => settings.limits.apply(self.limits.clone()),
            None => self.limits.clone(),
        }
    }

    /// Whether connections to plugin `name` need a valid token.
    pub fn auth_required(&self, name: &str) -> bool {
        self.plugin.get(name).and_then(|settings| settings.auth_required).unwrap_or(self.auth.required)
    }

    /// Check the ranges that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut scopes = vec![("limits".to_owned(), self.limits.clone())];
        scopes.extend(self.plugin.keys().map(|name| (format!("plugin.{name}.limits"), self.limits_for(name))));
        for (at, limits) in scopes {
            let check =
                |ok: bool, what: &str| if ok { Ok(()) } else { Err(ConfigError::Invalid(format!("{at}: {what}"))) };
            check(limits.max_message_size >= 125, "max_message_size must be at least 125 bytes")?;
            check(limits.send_queue >= 1, "send_queue must be at least 1")?;
            check(limits.max_send_size >= 125, "max_send_size must be at least 125 bytes")?;
            check(limits.send_queue_bytes >= limits.max_send_size, "send_queue_bytes must be at least max_send_size")?;
            check(limits.messages_per_second >= 1, "messages_per_second must be at least 1")?;
            check(limits.message_burst >= 1, "message_burst must be at least 1")?;
            check(limits.max_connections >= 1, "max_connections must be at least 1")?;
            check(limits.plugin_memory >= 1 << 20, "plugin_memory must be at least 1 MiB")?;
            check(!limits.callback_timeout.is_zero(), "callback_timeout must be positive")?;
            check(limits.max_name_size >= 1, "max_name_size must be at least 1")?;
            check(limits.log_records_per_second >= 1, "log_records_per_second must be at least 1")?;
            check(limits.log_burst >= 1, "log_burst must be at least 1")?;
            check(limits.max_log_record >= 16, "max_log_record must be at least 16 bytes")?;
            if limits.history_size > 0 {
                check(limits.history_size <= limits.send_queue / 2, "history_size must be at most send_queue / 2")?;
                check(
                    limits.history_room_bytes <= limits.send_queue_bytes / 2,
                    "history_room_bytes must be at most send_queue_bytes / 2",
                )?;
                check(
                    limits.history_room_bytes <= limits.history_bytes,
                    "history_room_bytes must be at most history_bytes",
                )?;
                check(limits.history_rooms >= 1, "history_rooms must be at least 1")?;
                check(!limits.history_ttl.is_zero(), "history_ttl must be positive")?;
            }
        }
        let limits = &self.limits;
        let check =
            |ok: bool, what: &str| if ok { Ok(()) } else { Err(ConfigError::Invalid(format!("limits: {what}"))) };
        check(limits.max_connections_per_ip >= 1, "max_connections_per_ip must be at least 1")?;
        check(limits.read_buffer_size >= 256, "read_buffer_size must be at least 256 bytes")?;
        check(limits.write_buffer_size >= 256, "write_buffer_size must be at least 256 bytes")?;
        check(!limits.close_timeout.is_zero(), "close_timeout must be positive")?;
        let cluster = &self.cluster;
        if cluster.publish_queue == 0 || cluster.receive_queue == 0 {
            return Err(ConfigError::Invalid("cluster: the queues must hold at least 1 message".into()));
        }
        if cluster.publish_queue_bytes < limits.max_send_size {
            return Err(ConfigError::Invalid(
                "cluster: publish_queue_bytes must hold at least one message of max_send_size bytes".into(),
            ));
        }
        // Other nodes may send more than this node's own max_send_size.
        if cluster.receive_queue_bytes < 4096 {
            return Err(ConfigError::Invalid("cluster: receive_queue_bytes must be at least 4096".into()));
        }
        if !(1..=9).contains(&self.compression.level) {
            return Err(ConfigError::Invalid("compression: level must be 1 to 9".into()));
        }
        if self.keepalive.ping_interval.is_zero() || self.keepalive.ping_timeout.is_zero() {
            return Err(ConfigError::Invalid("keepalive: ping_interval and ping_timeout must be positive".into()));
        }
        let needs_secret = self.auth.required || self.plugin.values().any(|plugin| plugin.auth_required == Some(true));
        if needs_secret && self.auth.secret.is_none() && self.auth.secret_env.is_none() {
            return Err(ConfigError::Invalid("auth: a plugin requires tokens but no secret is set".into()));
        }
        Ok(())
    }
}

/// Durations written as `"30s"`, `"250ms"`, `"1m 30s"`.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Like `duration`, for optional settings.
mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map(Some).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn settings_are_read() {
        let config = Config::from_toml(
            r#"
            listen = "0.0.0.0:9000"
            plugins = "wasm"
            allowed_origins = ["https://example.com"]
            [limits]
            send_queue = 8
            callback_timeout = "250ms"
            [keepalive]
            ping_interval = "5s"
            [plugin.chat.limits]
            max_message_size = 4096
            "#,
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.plugins, PathBuf::from("wasm"));
        assert_eq!(config.limits.send_queue, 8);
        assert_eq!(config.limits.callback_timeout, Duration::from_millis(250));
        assert_eq!(config.keepalive.ping_interval, Duration::from_secs(5));
        assert_eq!(config.limits_for("chat").max_message_size, 4096);
        assert_eq!(config.limits_for("chat").send_queue, 8);
        assert_eq!(config.limits_for("echo").max_message_size, 1 << 20);
    }

    #[test]
    fn the_shipped_config_shows_every_limit_at_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../switchboard.toml");
        let shipped = Config::from_file(&path).unwrap();
        assert_eq!(shipped.limits, Limits::default());
        assert_eq!(shipped.keepalive, KeepAlive::default());
        assert_eq!(shipped.compression, Compression::default());
        let text = std::fs::read_to_string(&path).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let mut listed: Vec<&str> = table["limits"].as_table().unwrap().keys().map(String::as_str).collect();
        let mut all = Limits::NAMES.to_vec();
        listed.sort_unstable();
        all.sort_unstable();
        assert_eq!(listed, all, "switchboard.toml lists every limit");
    }

    #[test]
    fn history_must_fit_an_outbox_when_it_is_on() {
        let history = |extra: &str| Config::from_toml(&format!("[plugin.chat.limits]\nhistory_size = 100\n{extra}"));
        assert!(history("").is_ok());
        assert!(matches!(history("send_queue = 100"), Err(ConfigError::Invalid(_))));
        assert!(matches!(history("history_room_bytes = 8388608"), Err(ConfigError::Invalid(_))));
        assert!(matches!(history("history_bytes = 1000"), Err(ConfigError::Invalid(_))));
        // Off, the history settings do not matter.
        assert!(Config::from_toml("[plugin.chat.limits]\nsend_queue = 10\nhistory_bytes = 1").is_ok());
    }

    #[test]
    fn compression_is_on_by_default_and_its_level_is_checked() {
        assert!(Config::default().compression.enabled);
        let config = Config::from_toml("[compression]\nenabled = false\nmin_size = 0\nlevel = 9").unwrap();
        assert_eq!(config.compression, Compression { enabled: false, min_size: 0, level: 9 });
        for level in [0, 10] {
            assert!(Config::from_toml(&format!("[compression]\nlevel = {level}")).is_err(), "level {level}");
        }
    }

    #[test]
    fn metrics_are_off_unless_given_an_address() {
        assert_eq!(Config::default().metrics.listen, None);
        let config = Config::from_toml("[metrics]\nlisten = \"127.0.0.1:9100\"").unwrap();
        assert_eq!(config.metrics.listen, Some(SocketAddr::from(([127, 0, 0, 1], 9100))));
        assert!(matches!(Config::from_toml("[metrics]\nlisten = \"nowhere\""), Err(ConfigError::Parse { .. })));
        assert!(matches!(Config::from_toml("[metrics]\npath = \"/metrics\""), Err(ConfigError::Parse { .. })));
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../switchboard.toml");
        let text = std::fs::read_to_string(shipped).unwrap();
        assert!(text.contains("[metrics]\n"), "switchboard.toml shows the [metrics] section");
    }

    #[test]
    fn per_plugin_overrides_apply_to_that_plugin_only() {
        let config = Config::from_toml("[plugin.chat.limits]\nmax_rooms = 7\ncallback_timeout = \"2s\"").unwrap();
        assert_eq!(config.limits_for("chat").max_rooms, 7);
        assert_eq!(config.limits_for("chat").callback_timeout, Duration::from_secs(2));
        assert_eq!(config.limits_for("echo").max_rooms, Limits::default().max_rooms);
        assert!(Config::from_toml("[plugin.chat.limits]\nmax_connections_per_ip = 1").is_err(), "server-wide only");
        assert!(Config::from_toml("[limits]\nmax_send_size = 100000000").is_err(), "over send_queue_bytes");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(matches!(Config::from_toml("listne = \"x\""), Err(ConfigError::Parse { .. })));
        assert!(matches!(Config::from_toml("[limits]\nsend_queue = 0"), Err(ConfigError::Invalid(_))));
        assert!(matches!(Config::from_toml("[plugin.a.limits]\nsend_queue = 0"), Err(ConfigError::Invalid(_))));
        assert!(matches!(Config::from_toml("listen = 5"), Err(ConfigError::Parse { .. })));
        assert!(matches!(Config::from_toml("[keepalive]\nping_interval = \"soon\""), Err(ConfigError::Parse { .. })));
        assert!(matches!(Config::from_toml("[auth]\nrequired = true"), Err(ConfigError::Invalid(_))));
    }
}
