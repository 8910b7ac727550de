//! Server settings: a TOML file, overridden by command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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

/// Everything the server needs to know to start. See `switchboard.toml` at
/// the repository root for a commented example.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Folder whose `*.wasm` files are loaded as plugins.
    pub plugins: PathBuf,
    /// Reload plugins when their files change (hot reload).
    pub watch: bool,
    /// Largest WebSocket message a client may send, in bytes; larger ones
    /// close the connection with 1009.
    pub max_message_size: usize,
    /// Outgoing messages queued per connection before the client counts as
    /// too slow and is disconnected (close 1008).
    pub send_queue: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            plugins: PathBuf::from("plugins"),
            watch: true,
            max_message_size: 1 << 20,
            send_queue: 1024,
        }
    }
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

    /// Check the ranges that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_message_size < 125 {
            return Err(ConfigError::Invalid("max_message_size must be at least 125 bytes".into()));
        }
        if self.send_queue == 0 {
            return Err(ConfigError::Invalid("send_queue must be at least 1".into()));
        }
        Ok(())
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
        let config = Config::from_toml("listen = \"0.0.0.0:9000\"\nplugins = \"wasm\"\nsend_queue = 8\n").unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.plugins, PathBuf::from("wasm"));
        assert_eq!(config.send_queue, 8);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(matches!(Config::from_toml("listne = \"x\""), Err(ConfigError::Parse { .. })));
        assert!(matches!(Config::from_toml("send_queue = 0"), Err(ConfigError::Invalid(_))));
        assert!(matches!(Config::from_toml("listen = 5"), Err(ConfigError::Parse { .. })));
    }
}
