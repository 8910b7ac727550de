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
    /// Token verification.
    pub auth: Auth,
    /// The backend's access to `POST /api/publish`.
    pub api: Api,
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
            auth: Auth::default(),
            api: Api::default(),
            plugin: BTreeMap::new(),
        }
    }
}

/// Limits on what clients and plugins may use. Each one can be set for a
/// single plugin in `[plugin.NAME.limits]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message a client may send, in bytes; larger ones close the
    /// connection with 1009.
    pub max_message_size: usize,
    /// Outgoing messages queued per connection; a client that lets it fill up
    /// (or whose socket stays blocked for `keepalive.ping_timeout`) is too
    /// slow and is disconnected with 1008.
    pub send_queue: usize,
    /// Messages per second a connection may send (token bucket refill rate).
    pub messages_per_second: u32,
    /// Messages a connection may send in a burst above that rate.
    pub message_burst: u32,
    /// Open connections, in total (or, per plugin, to that plugin); beyond it
    /// upgrades get 503.
    pub max_connections: usize,
    /// Open connections from one IP address; beyond it upgrades get 429.
    pub max_connections_per_ip: usize,
    /// Linear memory one plugin instance may grow to, in bytes.
    pub plugin_memory: usize,
    /// Longest one plugin callback may run before it is interrupted.
    #[serde(with = "duration")]
    pub callback_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 1 << 20,
            send_queue: 1024,
            messages_per_second: 1000,
            message_burst: 1000,
            max_connections: 50_000,
            max_connections_per_ip: 20_000,
            plugin_memory: 64 << 20,
            callback_timeout: Duration::from_secs(1),
        }
    }
}

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

/// Settings of one plugin: `[plugin.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginSettings {
    /// Whether connections need a valid token (default: `auth.required`).
    pub auth_required: Option<bool>,
    /// Limits that differ from the global ones.
    pub limits: LimitOverrides,
}

/// Per-plugin overrides of [`Limits`]; unset fields keep the global value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(missing_docs, reason = "each field overrides the Limits field of the same name")]
pub struct LimitOverrides {
    pub max_message_size: Option<usize>,
    pub send_queue: Option<usize>,
    pub messages_per_second: Option<u32>,
    pub message_burst: Option<u32>,
    pub max_connections: Option<usize>,
    pub plugin_memory: Option<usize>,
    #[serde(default, with = "optional_duration")]
    pub callback_timeout: Option<Duration>,
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
        let mut limits = self.limits.clone();
        if let Some(overrides) = self.plugin.get(name).map(|settings| &settings.limits) {
            let LimitOverrides {
                max_message_size,
                send_queue,
                messages_per_second,
                message_burst,
                max_connections,
                plugin_memory,
                callback_timeout,
            } = overrides.clone();
            limits.max_message_size = max_message_size.unwrap_or(limits.max_message_size);
            limits.send_queue = send_queue.unwrap_or(limits.send_queue);
            limits.messages_per_second = messages_per_second.unwrap_or(limits.messages_per_second);
            limits.message_burst = message_burst.unwrap_or(limits.message_burst);
            limits.max_connections = max_connections.unwrap_or(limits.max_connections);
            limits.plugin_memory = plugin_memory.unwrap_or(limits.plugin_memory);
            limits.callback_timeout = callback_timeout.unwrap_or(limits.callback_timeout);
        }
        limits
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
            check(limits.messages_per_second >= 1, "messages_per_second must be at least 1")?;
            check(limits.message_burst >= 1, "message_burst must be at least 1")?;
            check(limits.max_connections >= 1, "max_connections must be at least 1")?;
            check(limits.plugin_memory >= 1 << 20, "plugin_memory must be at least 1 MiB")?;
            check(!limits.callback_timeout.is_zero(), "callback_timeout must be positive")?;
        }
        if self.limits.max_connections_per_ip == 0 {
            return Err(ConfigError::Invalid("limits: max_connections_per_ip must be at least 1".into()));
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
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(matches!(Config::from_toml("listne = \"x\""), Err(ConfigError::Parse { .. })));
        assert!(matches!(Config::from_toml("[limits]\nsend_queue = 0"), Err(ConfigError::Invalid(_))));
        assert!(matches!(Config::from_toml("[plugin.a.limits]\nsend_queue = 0"), Err(ConfigError::Invalid(_))));
        assert!(matches!(Config::from_toml("listen = 5"), Err(ConfigError::Parse { .. })));
        assert!(matches!(Config::from_toml("[keepalive]\nping_interval = \"soon\""), Err(ConfigError::Parse { .. })));
        assert!(matches!(Config::from_toml("[auth]\nrequired = true"), Err(ConfigError::Invalid(_))));
    }
}
