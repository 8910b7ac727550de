//! The server binary in a process of its own, for what an in-process server
//! cannot show: being killed with SIGKILL.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, bail};

/// A `switchboard serve` process; killed when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    process: Child,
    /// Its plugins folder.
    _plugins: tempfile::TempDir,
}

/// The `switchboard` binary next to this test binary (`cargo test
/// --workspace` builds it for the host's own tests).
fn binary() -> anyhow::Result<PathBuf> {
    let test = std::env::current_exe()?;
    let folder = test.parent().and_then(|deps| deps.parent()).context("the test binary is in target/*/deps")?;
    let binary = folder.join("switchboard");
    anyhow::ensure!(binary.is_file(), "{} is missing: build it (cargo build --release --workspace)", binary.display());
    Ok(binary)
}

impl NodeProcess {
    /// Start `switchboard serve --redis URL` with copies of `plugins`, and
    /// wait until it listens.
    pub fn start(plugins: &[&str], redis: &str) -> anyhow::Result<NodeProcess> {
        NodeProcess::start_with(plugins, redis, "")
    }

    /// [`NodeProcess::start`] with `settings` (TOML) as its configuration.
    pub fn start_with(plugins: &[&str], redis: &str, settings: &str) -> anyhow::Result<NodeProcess> {
        let folder = tempfile::tempdir()?;
        let config = folder.path().join("switchboard.toml");
        std::fs::write(&config, settings)?;
        let plugins_folder = folder.path().join("plugins");
        std::fs::create_dir(&plugins_folder)?;
        for plugin in plugins {
            crate::copy_plugin(plugin, &plugins_folder)?;
        }
        let mut process = Command::new(binary()?)
            .args(["serve", "--listen", "127.0.0.1:0", "--redis", redis, "--config"])
            .arg(&config)
            .arg("--plugins")
            .arg(&plugins_folder)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut line = String::new();
        let stdout = process.stdout.take().context("stdout is piped")?;
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("listening on http://") else {
            let _ = process.kill();
            bail!("the server did not start: {line:?}");
        };
        Ok(NodeProcess { addr: addr.parse()?, process, _plugins: folder })
    }

    /// `ws://ADDR/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// SIGKILL: no goodbye to anyone.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.process.kill()?;
        self.process.wait()?;
        Ok(())
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
