//! Writing to the server's log. Records are tagged with the plugin's name.

use crate::bindings::switchboard::channel::host;
pub use crate::bindings::switchboard::channel::types::LogLevel as Level;

/// Write a record with structured `fields` (key, value).
pub fn write(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> =
        fields.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
    host::log(level, message, &fields);
}

/// Write a debug record.
pub fn debug(message: &str) {
    write(Level::Debug, message, &[]);
}

/// Write an info record.
pub fn info(message: &str) {
    write(Level::Info, message, &[]);
}

/// Write a warning.
pub fn warn(message: &str) {
    write(Level::Warn, message, &[]);
}

/// Write an error record.
pub fn error(message: &str) {
    write(Level::Error, message, &[]);
}
