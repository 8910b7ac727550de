//! A private `redis-server` for one test: on a free port, nothing saved,
//! stopped when dropped; restartable on the same port (a Redis outage).

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A `redis-server` process of this test's own.
#[derive(Debug)]
pub struct RedisServer {
    /// Where it listens.
    pub addr: SocketAddr,
    process: Option<Child>,
}

impl RedisServer {
    /// Start one on a free port and wait until it answers.
    pub async fn start() -> anyhow::Result<RedisServer> {
        // The port is free now; another process could take it before Redis
        // binds it, so a failed start tries another.
        for _ in 0..5 {
            let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
            let mut server = RedisServer { addr, process: None };
            if server.restart().await.is_ok() {
                return Ok(server);
            }
        }
        bail!("redis-server did not start (is it installed? `apt-get install redis-server`)")
    }

    /// `redis://ADDR`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Kill it (SIGKILL: an outage, not a shutdown).
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            process.kill()?;
            process.wait()?;
        }
        Ok(())
    }

    /// Start it again on the same port (empty), and wait until it answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        let process = Command::new("redis-server")
            .args(["--port", &self.addr.port().to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run redis-server (is it installed? `apt-get install redis-server`)")?;
        self.process = Some(process);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Ok(_)) = self.client().map(|client| client.get_connection()) {
                return Ok(());
            }
            if let Some(process) = &mut self.process
                && let Some(status) = process.try_wait()?
            {
                bail!("redis-server exited at start: {status}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("redis-server on {} did not answer within 10 s", self.addr)
    }

    /// A client, for the test's own commands (`PUBSUB`, `INFO`).
    pub fn client(&self) -> anyhow::Result<redis::Client> {
        Ok(redis::Client::open(self.url())?)
    }

    /// The channels some node subscribes to.
    pub fn channels(&self) -> anyhow::Result<Vec<String>> {
        let mut connection = self.client()?.get_connection()?;
        let mut channels: Vec<String> = redis::cmd("PUBSUB").arg("CHANNELS").query(&mut connection)?;
        channels.sort();
        Ok(channels)
    }

    /// How many connections subscribe to `channel`.
    pub fn subscribers(&self, channel: &str) -> anyhow::Result<u64> {
        let mut connection = self.client()?.get_connection()?;
        let counts: Vec<(String, u64)> = redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query(&mut connection)?;
        Ok(counts.first().map_or(0, |(_, count)| *count))
    }

    /// Wait until `count` connections subscribe to `channel` (a node
    /// subscribes just after its first local member joins).
    pub async fn wait_for_subscribers(&self, channel: &str, count: u64) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let now = self.subscribers(channel)?;
            if now == count {
                return Ok(());
            }
            if started.elapsed() > crate::TIMEOUT {
                bail!("{channel} has {now} subscribers, not {count}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// How many times Redis ran `command` (from `INFO commandstats`).
    pub fn calls(&self, command: &str) -> anyhow::Result<u64> {
        let mut connection = self.client()?.get_connection()?;
        let info: String = redis::cmd("INFO").arg("commandstats").query(&mut connection)?;
        let prefix = format!("cmdstat_{command}:calls=");
        let calls = info
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map_or(Ok(0), str::parse)?;
        Ok(calls)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
