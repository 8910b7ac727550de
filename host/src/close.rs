//! Every WebSocket close code the host sends or reports, in one place, with
//! what it means here. Plugins choose their own codes (`close`, a
//! rejection); the host's own decisions are these.

use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Why the host ends a connection: each has its close code and the reason
/// the client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// 1001: the server is shutting down.
    Shutdown,
    /// 1001: the connection's plugin was unloaded (its file removed).
    PluginRemoved,
    /// 1001: the connection's plugin file now holds another plugin.
    PluginReplaced,
    /// 1001: a new version of the plugin no longer serves the connection's route.
    RouteRemoved,
    /// 1002: the client broke the WebSocket protocol.
    Protocol,
    /// 1005: reported to `on-close` when the client's close frame had no code.
    NoStatus,
    /// 1006: reported to `on-close` when the socket ended without a close frame.
    Abnormal,
    /// 1006: reported to `on-close` when a peer stopped answering pings.
    PingTimeout,
    /// 1007: a text frame was not UTF-8.
    InvalidUtf8,
    /// 1008: the token was missing or invalid (the reason says which).
    TokenRefused,
    /// 1008: the client kept sending over its rate limit.
    RateLimited,
    /// 1008: the client did not read what it was sent (its outbox filled up,
    /// or a write stayed blocked).
    TooSlow,
    /// 1009: a message or frame over `max_message_size`.
    MessageTooBig,
    /// 1011: the plugin trapped, ran out of time, or could not start.
    PluginError,
}

impl Close {
    /// The close code on the wire.
    pub(crate) const fn code(self) -> u16 {
        match self {
            Close::Shutdown | Close::PluginRemoved | Close::PluginReplaced | Close::RouteRemoved => 1001,
            Close::Protocol => 1002,
            Close::NoStatus => 1005,
            Close::Abnormal | Close::PingTimeout => 1006,
            Close::InvalidUtf8 => 1007,
            Close::TokenRefused | Close::RateLimited | Close::TooSlow => 1008,
            Close::MessageTooBig => 1009,
            Close::PluginError => 1011,
        }
    }

    /// The reason the client reads (and `on-close` gets).
    pub(crate) const fn reason(self) -> &'static str {
        match self {
            Close::Shutdown => "server shutting down",
            Close::PluginRemoved => "plugin removed",
            Close::PluginReplaced => "plugin replaced",
            Close::RouteRemoved => "route removed",
            Close::Protocol => "protocol error",
            Close::NoStatus | Close::Abnormal => "",
            Close::PingTimeout => "ping timeout",
            Close::InvalidUtf8 => "invalid UTF-8",
            Close::TokenRefused => "token refused",
            Close::RateLimited => "rate limit exceeded",
            Close::TooSlow => "client too slow",
            Close::MessageTooBig => "message too big",
            Close::PluginError => "plugin error",
        }
    }

    /// Code and reason, as reported to `on-close`.
    pub(crate) fn parts(self) -> (u16, String) {
        (self.code(), self.reason().to_owned())
    }

    /// The close frame for this reason.
    pub(crate) fn frame(self) -> CloseFrame {
        close_frame(self.code(), self.reason())
    }
}

/// A close frame; the reason is cut to the 123 bytes a control frame allows,
/// on a character boundary.
pub(crate) fn close_frame(code: u16, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame { code: CloseCode::from(code), reason: reason[..end].to_owned().into() }
}

/// Codes a server may put in a close frame (RFC 6455 §7.4): the defined
/// ones except those reserved for "no frame", and the application range.
pub(crate) fn is_sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 1012..=1014 | 3000..=4999)
}

/// The `code` label of a disconnect in the metrics: 1000 and the host's own
/// codes (those of [`Close`]) as they are, the application ranges (a
/// plugin's or a client's own codes) as `3xxx` and `4xxx`, and anything else
/// a client may send as `other`, so that the label stays bounded.
pub(crate) fn metric_label(code: u16) -> &'static str {
    match code {
        1000 => "1000",
        1001 => "1001",
        1002 => "1002",
        1005 => "1005",
        1006 => "1006",
        1007 => "1007",
        1008 => "1008",
        1009 => "1009",
        1011 => "1011",
        3000..=3999 => "3xxx",
        4000..=4999 => "4xxx",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Close; 14] = [
        Close::Shutdown,
        Close::PluginRemoved,
        Close::PluginReplaced,
        Close::RouteRemoved,
        Close::Protocol,
        Close::NoStatus,
        Close::Abnormal,
        Close::PingTimeout,
        Close::InvalidUtf8,
        Close::TokenRefused,
        Close::RateLimited,
        Close::TooSlow,
        Close::MessageTooBig,
        Close::PluginError,
    ];

    #[test]
    fn reasons_fit_a_control_frame_and_codes_are_sendable_or_reported_only() {
        for close in ALL {
            assert!(close.reason().len() <= 123);
            let reported_only = matches!(close, Close::NoStatus | Close::Abnormal | Close::PingTimeout);
            assert_eq!(is_sendable(close.code()), !reported_only, "{close:?}");
        }
    }

    #[test]
    fn the_hosts_own_codes_are_their_own_metric_label_and_the_rest_are_bucketed() {
        for close in ALL {
            assert_eq!(metric_label(close.code()), close.code().to_string());
        }
        assert_eq!(metric_label(1000), "1000");
        assert_eq!(metric_label(3001), "3xxx");
        assert_eq!(metric_label(4999), "4xxx");
        for code in [0, 999, 1003, 1010, 1012, 2000, 5000, u16::MAX] {
            assert_eq!(metric_label(code), "other");
        }
    }

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        let frame = close_frame(4000, &"é".repeat(100));
        assert!(frame.reason.len() <= 123);
        assert!(frame.reason.as_str().chars().all(|c| c == 'é'));
    }
}
