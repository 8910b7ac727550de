//! The servers under test, each in its own process (pinned to core 0 when
//! `taskset` exists), and what `/proc` says about them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, bail};

/// A running server process; killed when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
    /// Kept so that the temporary plugins folder lives as long as the server.
    pub(crate) folder: Option<PathBuf>,
}

impl Server {
    /// Start `program args...` under `ulimit -n 20000` (and on core 0), and
    /// wait for its `listening on http://ADDR` line.
    pub(crate) fn start(program: &Path, args: &[&str], folder: Option<PathBuf>) -> anyhow::Result<Server> {
        let pin = if pinning() { "taskset -c 0 " } else { "" };
        let quoted: Vec<String> = args.iter().map(|arg| format!("'{arg}'")).collect();
        let script = format!("ulimit -n 20000 2>/dev/null; exec {pin}'{}' {}", program.display(), quoted.join(" "));
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("listening on http://") else {
            bail!("{} did not start: {line:?}", program.display());
        };
        Ok(Server { addr: addr.to_owned(), child, folder })
    }

    /// User + system CPU time the server has used, in seconds.
    pub(crate) fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the command name (which may hold spaces) start at field 3.
        let fields: Vec<&str> = stat.rsplit_once(')').context("odd /proc stat")?.1.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        Ok(ticks / clock_ticks())
    }

    /// Resident memory, in KiB.
    pub(crate) fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).context("no VmRSS")?;
        Ok(line.split_whitespace().nth(1).context("odd VmRSS")?.parse()?)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(folder) = &self.folder {
            let _ = std::fs::remove_dir_all(folder);
        }
    }
}

/// Whether servers and this client are pinned to separate cores.
pub(crate) fn pinning() -> bool {
    Command::new("taskset").arg("-V").output().is_ok_and(|output| output.status.success())
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}
