//! What the host counts, for Prometheus: every metric, defined once in
//! [`Metrics`], and [`PluginMetrics`], one plugin's handles to its own
//! series, looked up once (when its channel is made) so that the hot paths
//! (a message in, a fan-out, a callback) record with an atomic add each: no
//! label lookup, no lock.
//!
//! The server owns one [`Metrics`] and hands it to whoever records;
//! `net/metrics.rs` registers it in the server's own
//! `prometheus_client` registry (no global one) and serves it on
//! `[metrics] listen`. Without that setting nothing is counted: every
//! [`PluginMetrics`] is empty and recording is one branch.
//!
//! Labels are bounded: `plugin` (by the plugins folder), `callback` (the
//! exports), `code` (see [`crate::close::metric_label`]), `reason`, `result`
//! and `status`; never a room, a user or a connection.

mod histogram;

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use self::histogram::DurationHistogram;

/// The callbacks timed by `plugin_callback_duration_seconds`, as the
/// `callback` label spells them (the WIT export names).
pub(crate) const CALLBACKS: [&str; 7] =
    ["on-connect", "on-message", "on-close", "on-presence", "on-publish", "on-timer", "snapshot"];

/// Why an upgrade was refused: the `reason` label of `upgrades_refused_total`.
/// A path no plugin serves (404) and a request that is no WebSocket
/// handshake (426) are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 403: the `Origin` is not allowed.
    Origin,
    /// 503: `max_connections` for the whole server.
    ServerFull,
    /// 503: `max_connections` of the plugin.
    ChannelFull,
    /// 429: `max_connections_per_ip`.
    PerIp,
    /// 1008 after the upgrade: the token was missing or invalid.
    Token,
    /// Closed after the upgrade by `on-connect`: the plugin refused the
    /// connection (its own code), could not run (1011), or was being
    /// unloaded or no longer serves the route (1001).
    Plugin,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Origin => "origin",
            Refusal::ServerFull => "server_full",
            Refusal::ChannelFull => "channel_full",
            Refusal::PerIp => "per_ip",
            Refusal::Token => "token",
            Refusal::Plugin => "plugin",
        }
    }
}

/// `{plugin}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct PluginLabel {
    plugin: Arc<str>,
}

/// `{plugin, callback}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct CallbackLabels {
    plugin: Arc<str>,
    callback: &'static str,
}

/// `{plugin, code}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct DisconnectLabels {
    plugin: Arc<str>,
    code: &'static str,
}

/// `{plugin, result}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ReloadLabels {
    plugin: Arc<str>,
    result: &'static str,
}

/// `{reason}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    reason: &'static str,
}

/// `{status}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct StatusLabel {
    status: u16,
}

/// Every metric the host exports, each once, with the `switchboard_` prefix
/// added when registered. Counters get `_total`, units their suffix.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Whether anything is counted (`[metrics] listen` is set).
    enabled: bool,
    /// `switchboard_connections{plugin}` (gauge): open connections, from
    /// `on-connect` accepting them until their `on-close` is called.
    connections: Family<PluginLabel, Gauge>,
    /// `switchboard_connections_accepted_total{plugin}`: connections
    /// `on-connect` accepted.
    connections_accepted: Family<PluginLabel, Counter>,
    /// `switchboard_upgrades_refused_total{reason}`: WebSocket upgrades
    /// refused before or at `on-connect`; `reason` is one of `origin`,
    /// `server_full`, `channel_full`, `per_ip`, `token`, `plugin` (see
    /// [`Refusal`]). 404 and 426 are not counted.
    upgrades_refused: Family<ReasonLabel, Counter>,
    /// `switchboard_disconnects_total{plugin, code}`: accepted connections
    /// that ended, by the close code their `on-close` got. `code` is the
    /// number for 1000 and the host's own codes (1001, 1002, 1005, 1006,
    /// 1007, 1008, 1009, 1011: `close.rs`), `3xxx` and `4xxx` for the
    /// application ranges (a plugin's or a client's own codes), `other` for
    /// anything else a client may send.
    disconnects: Family<DisconnectLabels, Counter>,
    /// `switchboard_slow_client_drops_total{plugin}`: connections dropped
    /// because they did not read (their outbox filled up, or a write stayed
    /// blocked for `keepalive.ping_timeout`); they are in `disconnects`
    /// with 1008 too.
    slow_client_drops: Family<PluginLabel, Counter>,
    /// `switchboard_messages_received_total{plugin}`: text and binary
    /// messages read from clients (those over the rate limit included).
    messages_received: Family<PluginLabel, Counter>,
    /// `switchboard_messages_received_bytes_total{plugin}`: their payload bytes.
    messages_received_bytes: Family<PluginLabel, Counter>,
    /// `switchboard_messages_sent_total{plugin}`: text and binary messages
    /// queued for clients (a broadcast to N connections counts N; presence
    /// frames and the rate-limit notice count, close frames do not).
    messages_sent: Family<PluginLabel, Counter>,
    /// `switchboard_messages_sent_bytes_total{plugin}`: their payload bytes,
    /// once per recipient.
    messages_sent_bytes: Family<PluginLabel, Counter>,
    /// `switchboard_rooms{plugin}` (gauge): rooms with at least one member,
    /// read from each loaded plugin's channel at scrape time.
    rooms: Family<PluginLabel, Gauge>,
    /// `switchboard_plugin_callback_duration_seconds{plugin, callback}`
    /// (histogram): how long each callback ran, from the start of the call
    /// to its return or trap (waiting for the plugin's lock excluded);
    /// `callback` is one of [`CALLBACKS`].
    callback_duration: Family<CallbackLabels, DurationHistogram>,
    /// `switchboard_plugin_traps_total{plugin}`: callbacks that trapped
    /// (a panic, the memory cap, a bad host call), deadline hits excluded.
    plugin_traps: Family<PluginLabel, Counter>,
    /// `switchboard_plugin_timeouts_total{plugin}`: callbacks interrupted at
    /// their deadline (`callback_timeout`).
    plugin_timeouts: Family<PluginLabel, Counter>,
    /// `switchboard_plugin_reloads_total{plugin, result}`: changes of a
    /// plugin file that were applied (`ok`: a new version took over) or
    /// refused (`failed`: the running version, if any, serves on). First
    /// loads are not counted, first loads that fail are, under the file's
    /// name (its stem) when no plugin serves from it.
    plugin_reloads: Family<ReloadLabels, Counter>,
    /// `switchboard_api_publish_requests_total{status}`: `POST /api/publish`
    /// requests, by the HTTP status of the answer.
    api_publish_requests: Family<StatusLabel, Counter>,
    /// The cluster's series (`[cluster] redis`); counted whether metrics
    /// are served or not (a handful of atomic adds per publish), so that the
    /// drop log can say how many.
    pub(crate) cluster: ClusterMetrics,
}

/// The cluster engine's metrics; no label but the drop's `reason`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClusterMetrics {
    /// `switchboard_cluster_redis_up` (gauge): 1 while Redis answers.
    pub(crate) up: Gauge,
    /// `switchboard_cluster_published_total`: messages sent to other nodes
    /// (one per publish, whatever the number of nodes).
    pub(crate) published: Counter,
    /// `switchboard_cluster_received_total`: messages from other nodes
    /// handed to this node's connections.
    pub(crate) received: Counter,
    /// `switchboard_cluster_dropped_total{reason}`: messages between nodes
    /// lost: `publish_queue_full`, `redis_error` (Redis did not take them),
    /// `receive_queue_full` (this node fell behind), `malformed`.
    dropped: Family<ReasonLabel, Counter>,
}

impl ClusterMetrics {
    /// Count `count` dropped messages; true when the total for `reason`
    /// reaches a power of two, so that the caller logs a bounded number of
    /// lines (1, 2, 4, 8, ... drops) however long an outage lasts.
    pub(crate) fn dropped(&self, reason: &'static str, count: u64) -> bool {
        let before = self.dropped.get_or_create(&ReasonLabel { reason }).inc_by(count);
        let after = before + count;
        before == 0 || before.ilog2() != after.ilog2()
    }

    fn register(&self, registry: &mut Registry) {
        registry.register("cluster_redis_up", "1 while Redis answers (clustered nodes only)", self.up.clone());
        registry.register(
            "cluster_published",
            "Messages sent to the other nodes, one per publish",
            self.published.clone(),
        );
        registry.register(
            "cluster_received",
            "Messages from other nodes handed to this node's connections",
            self.received.clone(),
        );
        registry.register(
            "cluster_dropped",
            "Messages between nodes lost (publish_queue_full, redis_error, receive_queue_full, malformed)",
            self.dropped.clone(),
        );
    }
}

impl Metrics {
    /// All metrics at zero; `enabled: false` counts nothing.
    pub(crate) fn new(enabled: bool) -> Metrics {
        Metrics {
            enabled,
            connections: Family::default(),
            connections_accepted: Family::default(),
            upgrades_refused: Family::default(),
            disconnects: Family::default(),
            slow_client_drops: Family::default(),
            messages_received: Family::default(),
            messages_received_bytes: Family::default(),
            messages_sent: Family::default(),
            messages_sent_bytes: Family::default(),
            rooms: Family::default(),
            callback_duration: Family::default(),
            plugin_traps: Family::default(),
            plugin_timeouts: Family::default(),
            plugin_reloads: Family::default(),
            api_publish_requests: Family::default(),
            cluster: ClusterMetrics::default(),
        }
    }

    /// Register every metric in `registry` (which adds the prefix; the
    /// encoder ends each help text with a period).
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register("connections", "Open WebSocket connections", self.connections.clone());
        registry.register(
            "connections_accepted",
            "WebSocket connections accepted by on-connect",
            self.connections_accepted.clone(),
        );
        registry.register(
            "upgrades_refused",
            "WebSocket upgrades refused (origin, server_full, channel_full, per_ip, token, plugin)",
            self.upgrades_refused.clone(),
        );
        registry.register(
            "disconnects",
            "Accepted connections that ended, by the close code on-close got (3xxx, 4xxx: application codes)",
            self.disconnects.clone(),
        );
        registry.register(
            "slow_client_drops",
            "Connections dropped for not reading what they were sent",
            self.slow_client_drops.clone(),
        );
        registry.register(
            "messages_received",
            "Text and binary messages read from clients",
            self.messages_received.clone(),
        );
        registry.register_with_unit(
            "messages_received",
            "Payload bytes of the messages read from clients",
            Unit::Bytes,
            self.messages_received_bytes.clone(),
        );
        registry.register(
            "messages_sent",
            "Text and binary messages queued for clients, one per recipient",
            self.messages_sent.clone(),
        );
        registry.register_with_unit(
            "messages_sent",
            "Payload bytes of the messages queued for clients, once per recipient",
            Unit::Bytes,
            self.messages_sent_bytes.clone(),
        );
        registry.register("rooms", "Rooms with at least one member", self.rooms.clone());
        registry.register_with_unit(
            "plugin_callback_duration",
            "How long plugin callbacks ran",
            Unit::Seconds,
            self.callback_duration.clone(),
        );
        registry.register(
            "plugin_traps",
            "Plugin callbacks that trapped (deadline hits excluded)",
            self.plugin_traps.clone(),
        );
        registry.register(
            "plugin_timeouts",
            "Plugin callbacks interrupted at their deadline",
            self.plugin_timeouts.clone(),
        );
        registry.register(
            "plugin_reloads",
            "Plugin file changes applied (ok) or refused (failed)",
            self.plugin_reloads.clone(),
        );
        registry.register(
            "api_publish_requests",
            "POST /api/publish requests, by HTTP status",
            self.api_publish_requests.clone(),
        );
        self.cluster.register(registry);
    }

    /// The handles of plugin `name`'s own series (created at zero now, so
    /// that they show before anything happens); empty when counting is off.
    pub(crate) fn plugin(&self, name: &str) -> PluginMetrics {
        if !self.enabled {
            return PluginMetrics::default();
        }
        let plugin: Arc<str> = name.into();
        let label = PluginLabel { plugin: Arc::clone(&plugin) };
        let callbacks = CALLBACKS.map(|callback| {
            let labels = CallbackLabels { plugin: Arc::clone(&plugin), callback };
            self.callback_duration.get_or_create(&labels).clone()
        });
        PluginMetrics(Some(Arc::new(PluginSeries {
            connections: self.connections.get_or_create(&label).clone(),
            accepted: self.connections_accepted.get_or_create(&label).clone(),
            refused: self.upgrades_refused.get_or_create(&ReasonLabel { reason: Refusal::Plugin.label() }).clone(),
            disconnects: self.disconnects.clone(),
            slow_drops: self.slow_client_drops.get_or_create(&label).clone(),
            received: self.messages_received.get_or_create(&label).clone(),
            received_bytes: self.messages_received_bytes.get_or_create(&label).clone(),
            sent: self.messages_sent.get_or_create(&label).clone(),
            sent_bytes: self.messages_sent_bytes.get_or_create(&label).clone(),
            traps: self.plugin_traps.get_or_create(&label).clone(),
            timeouts: self.plugin_timeouts.get_or_create(&label).clone(),
            callbacks,
            plugin,
        })))
    }

    /// An upgrade was refused before `on-connect` (see [`Refusal`]).
    pub(crate) fn refused(&self, why: Refusal) {
        if self.enabled {
            self.upgrades_refused.get_or_create(&ReasonLabel { reason: why.label() }).inc();
        }
    }

    /// A change of plugin `plugin`'s file was applied (`ok`) or refused.
    pub(crate) fn reloaded(&self, plugin: &str, ok: bool) {
        if self.enabled {
            let labels = ReloadLabels { plugin: plugin.into(), result: if ok { "ok" } else { "failed" } };
            self.plugin_reloads.get_or_create(&labels).inc();
        }
    }

    /// `POST /api/publish` was answered with `status`.
    pub(crate) fn publish_answered(&self, status: u16) {
        if self.enabled {
            self.api_publish_requests.get_or_create(&StatusLabel { status }).inc();
        }
    }

    /// Set `rooms` to these figures, per plugin name; plugins not given (no
    /// longer loaded) are dropped from it. Called before each scrape.
    pub(crate) fn sample_rooms<'a>(&self, rooms: impl IntoIterator<Item = (&'a Arc<str>, usize)>) {
        self.rooms.clear();
        for (plugin, count) in rooms {
            let label = PluginLabel { plugin: Arc::clone(plugin) };
            self.rooms.get_or_create(&label).set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }
}

/// One plugin's series, cheap to clone and to record through; empty (and
/// recording nothing) when metrics are off or for a throwaway channel.
#[derive(Debug, Clone, Default)]
pub(crate) struct PluginMetrics(Option<Arc<PluginSeries>>);

#[derive(Debug)]
struct PluginSeries {
    plugin: Arc<str>,
    connections: Gauge,
    accepted: Counter,
    /// `upgrades_refused_total{reason="plugin"}`.
    refused: Counter,
    /// Looked up per disconnect: one per connection, not per message.
    disconnects: Family<DisconnectLabels, Counter>,
    slow_drops: Counter,
    received: Counter,
    received_bytes: Counter,
    sent: Counter,
    sent_bytes: Counter,
    traps: Counter,
    timeouts: Counter,
    /// In the order of [`CALLBACKS`].
    callbacks: [DurationHistogram; CALLBACKS.len()],
}

impl PluginMetrics {
    /// `on-connect` accepted a connection.
    pub(crate) fn accepted(&self) {
        if let Some(series) = &self.0 {
            series.accepted.inc();
            series.connections.inc();
        }
    }

    /// `on-connect` refused a connection (or could not run).
    pub(crate) fn refused(&self) {
        if let Some(series) = &self.0 {
            series.refused.inc();
        }
    }

    /// An accepted connection ended with `code`; its `on-close` is next.
    pub(crate) fn closed(&self, code: u16) {
        if let Some(series) = &self.0 {
            series.connections.dec();
            let labels =
                DisconnectLabels { plugin: Arc::clone(&series.plugin), code: crate::close::metric_label(code) };
            series.disconnects.get_or_create(&labels).inc();
        }
    }

    /// A connection was dropped for not reading.
    pub(crate) fn slow_client_dropped(&self) {
        if let Some(series) = &self.0 {
            series.slow_drops.inc();
        }
    }

    /// A client's message of `bytes` payload bytes was read.
    pub(crate) fn received(&self, bytes: usize) {
        if let Some(series) = &self.0 {
            series.received.inc();
            series.received_bytes.inc_by(bytes as u64);
        }
    }

    /// A message of `bytes` payload bytes was queued for `recipients`
    /// connections: one call per fan-out, not per recipient.
    pub(crate) fn sent(&self, recipients: u32, bytes: usize) {
        if let Some(series) = &self.0
            && recipients > 0
        {
            series.sent.inc_by(u64::from(recipients));
            series.sent_bytes.inc_by(u64::from(recipients) * bytes as u64);
        }
    }

    /// `callback` (one of [`CALLBACKS`]) ran from `started` until now.
    pub(crate) fn callback_ran(&self, callback: &str, started: Instant) {
        if let Some(series) = &self.0
            && let Some(index) = CALLBACKS.iter().position(|name| *name == callback)
            && let Some(histogram) = series.callbacks.get(index)
        {
            histogram.observe(started.elapsed());
        }
    }

    /// A callback trapped; `deadline` when it was interrupted at its deadline.
    pub(crate) fn trapped(&self, deadline: bool) {
        if let Some(series) = &self.0 {
            if deadline {
                series.timeouts.inc();
            } else {
                series.traps.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(metrics: &Metrics) -> String {
        let mut registry = Registry::with_prefix("switchboard");
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn cluster_drops_are_logged_at_powers_of_two() {
        let cluster = ClusterMetrics::default();
        let logged: Vec<u64> = (1..=40).filter(|_| cluster.dropped("redis_error", 1)).collect();
        assert_eq!(logged.len(), 6, "1, 2, 4, 8, 16, 32");
        assert!(cluster.dropped("publish_queue_full", 3), "the first drop of another reason");
        assert!(!cluster.dropped("publish_queue_full", 0));
        assert!(cluster.dropped("publish_queue_full", 2), "3 → 5 crosses 4");
    }

    #[test]
    fn a_plugin_records_through_its_own_handles() {
        let metrics = Metrics::new(true);
        let echo = metrics.plugin("echo");
        echo.accepted();
        echo.accepted();
        echo.received(5);
        echo.sent(3, 5);
        echo.closed(1000);
        echo.closed(4321);
        echo.trapped(false);
        echo.trapped(true);
        echo.callback_ran("on-message", Instant::now());
        echo.callback_ran("on-timer", Instant::now());
        metrics.refused(Refusal::Origin);
        metrics.reloaded("echo", true);
        metrics.publish_answered(401);
        let text = scrape(&metrics);
        for line in [
            r#"switchboard_connections{plugin="echo"} 0"#,
            r#"switchboard_connections_accepted_total{plugin="echo"} 2"#,
            r#"switchboard_messages_received_total{plugin="echo"} 1"#,
            r#"switchboard_messages_received_bytes_total{plugin="echo"} 5"#,
            r#"switchboard_messages_sent_total{plugin="echo"} 3"#,
            r#"switchboard_messages_sent_bytes_total{plugin="echo"} 15"#,
            r#"switchboard_disconnects_total{plugin="echo",code="1000"} 1"#,
            r#"switchboard_disconnects_total{plugin="echo",code="4xxx"} 1"#,
            r#"switchboard_plugin_traps_total{plugin="echo"} 1"#,
            r#"switchboard_plugin_timeouts_total{plugin="echo"} 1"#,
            r#"switchboard_plugin_callback_duration_seconds_count{plugin="echo",callback="on-message"} 1"#,
            r#"switchboard_plugin_callback_duration_seconds_bucket{le="+Inf",plugin="echo",callback="on-message"} 1"#,
            r#"switchboard_plugin_callback_duration_seconds_count{plugin="echo",callback="on-close"} 0"#,
            r#"switchboard_plugin_callback_duration_seconds_count{plugin="echo",callback="on-timer"} 1"#,
            r#"switchboard_upgrades_refused_total{reason="origin"} 1"#,
            r#"switchboard_upgrades_refused_total{reason="plugin"} 0"#,
            r#"switchboard_plugin_reloads_total{plugin="echo",result="ok"} 1"#,
            r#"switchboard_api_publish_requests_total{status="401"} 1"#,
        ] {
            assert!(text.lines().any(|scraped| scraped == line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn nothing_is_counted_when_metrics_are_off() {
        let metrics = Metrics::new(false);
        let echo = metrics.plugin("echo");
        echo.accepted();
        echo.received(5);
        metrics.refused(Refusal::Token);
        let text = scrape(&metrics);
        assert!(!text.contains("echo") && !text.contains("token"), "{text}");
    }
}
