//! A `redis-server` of the bench's own, for the cluster nodes to share: on a
//! free port, nothing saved, on the servers' core (its CPU time is part of
//! what serving costs), killed when dropped. Spoken to in RESP by hand, for
//! the two commands the bench needs (`PING`, `INFO commandstats`): the
//! `redis` crate would be a new dependency for that.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::servers;

/// A running `redis-server`.
#[derive(Debug)]
pub(crate) struct RedisServer {
    child: Child,
    /// `127.0.0.1:PORT`.
    addr: String,
}

impl RedisServer {
    /// Start one on a free port and wait until it answers.
    pub(crate) async fn start() -> anyhow::Result<RedisServer> {
        // The port is free now; another process could take it before Redis
        // binds it, so a failed start tries another.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            if let Some(server) = RedisServer::start_on(port).await? {
                return Ok(server);
            }
        }
        bail!("redis-server did not start (is it installed? `apt-get install redis-server`)")
    }

    /// `None` if it exited at start (the port was taken).
    async fn start_on(port: u16) -> anyhow::Result<Option<RedisServer>> {
        let port = port.to_string();
        let dir = std::env::temp_dir().display().to_string();
        let args = ["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", &dir];
        let mut command = if servers::pinning() {
            let mut command = Command::new("taskset");
            command.args(["-c", "0", "redis-server"]);
            command
        } else {
            Command::new("redis-server")
        };
        let child = command
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run redis-server (is it installed? `apt-get install redis-server`)")?;
        let mut server = RedisServer { child, addr: format!("127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if server.command(&["PING"]).await.is_ok_and(|reply| reply == "PONG") {
                return Ok(Some(server));
            }
            if server.child.try_wait()?.is_some() {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("redis-server on {} did not answer within 10 s", server.addr)
    }

    /// `redis://ADDR`, for `[cluster] redis`.
    pub(crate) fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// User + system CPU time Redis has used, in seconds.
    pub(crate) fn cpu_seconds(&self) -> anyhow::Result<f64> {
        servers::cpu_seconds(self.child.id())
    }

    /// How many times Redis ran each command so far (`INFO commandstats`).
    pub(crate) async fn calls(&self) -> anyhow::Result<Calls> {
        let info = self.command(&["INFO", "commandstats"]).await?;
        // cmdstat_publish:calls=1000,usec=...
        let calls = info
            .lines()
            .filter_map(|line| line.strip_prefix("cmdstat_")?.split_once(":calls="))
            .map(|(command, rest)| Ok((command.to_owned(), rest.split(',').next().unwrap_or("").parse()?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Calls(calls))
    }

    /// Send one command on a connection of its own; the reply (a status,
    /// an integer or a bulk string) as text.
    async fn command(&self, words: &[&str]) -> anyhow::Result<String> {
        let mut request = format!("*{}\r\n", words.len());
        for word in words {
            request.push_str(&format!("${}\r\n{word}\r\n", word.len()));
        }
        let mut stream = BufReader::new(TcpStream::connect(&self.addr).await?);
        stream.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        stream.read_line(&mut line).await?;
        let line = line.trim_end();
        let kind = line.chars().next().context("no reply from Redis")?;
        let rest = &line[kind.len_utf8()..];
        match kind {
            '+' | ':' => Ok(rest.to_owned()),
            '$' => {
                let len: usize = rest.parse()?;
                let mut body = vec![0; len + 2]; // and its CRLF
                stream.read_exact(&mut body).await?;
                body.truncate(len);
                Ok(String::from_utf8(body)?)
            }
            _ => bail!("Redis answered {line:?} to {words:?}"),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Calls of each command (`publish`, `subscribe`, ...), as Redis counts them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Calls(HashMap<String, u64>);

impl Calls {
    /// Calls of `command` since `before`.
    pub(crate) fn of_since(&self, command: &str, before: &Calls) -> u64 {
        let count = |calls: &Calls| calls.0.get(command).copied().unwrap_or(0);
        count(self).saturating_sub(count(before))
    }

    /// Calls of every command since `before`, but the bench's own `INFO`s.
    pub(crate) fn all_since(&self, before: &Calls) -> u64 {
        self.0.keys().filter(|command| *command != "info").map(|command| self.of_since(command, before)).sum()
    }
}
