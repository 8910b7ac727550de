//! The servers under test, each in its own process (pinned to core 0 when
//! `taskset` exists), what `/proc` says about them, and what they log.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

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
        Server::spawn(program, args, folder, None)
    }

    /// [`Server::start`] with `RUST_LOG=filter`, its log written to
    /// `server.log` in `folder` (a file, not a pipe: nobody has to drain it
    /// while the server runs); read it with [`Server::wait_for_log`].
    pub(crate) fn start_logging(
        program: &Path,
        args: &[&str],
        folder: PathBuf,
        filter: &str,
    ) -> anyhow::Result<Server> {
        Server::spawn(program, args, Some(folder), Some(filter))
    }

    fn spawn(program: &Path, args: &[&str], folder: Option<PathBuf>, filter: Option<&str>) -> anyhow::Result<Server> {
        let pin = if pinning() { "taskset -c 0 " } else { "" };
        let quoted: Vec<String> = args.iter().map(|arg| format!("'{arg}'")).collect();
        let script = format!("ulimit -n 20000 2>/dev/null; exec {pin}'{}' {}", program.display(), quoted.join(" "));
        let stderr = match (filter, &folder) {
            (Some(_), Some(folder)) => Stdio::from(
                std::fs::File::create(folder.join(LOG))
                    .with_context(|| format!("cannot create the log in {}", folder.display()))?,
            ),
            _ => Stdio::null(),
        };
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .env("RUST_LOG", filter.unwrap_or("warn"))
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(stderr)
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

    /// The first line of the server's log (see [`Server::start_logging`])
    /// that contains every one of `words`, waiting up to `timeout` for it:
    /// a line about an event may be written just after the event shows
    /// through the API.
    pub(crate) async fn wait_for_log(&self, words: &[&str], timeout: Duration) -> anyhow::Result<String> {
        let folder = self.folder.as_ref().context("the server has no folder, so no log")?;
        let deadline = Instant::now() + timeout;
        loop {
            let log = std::fs::read_to_string(folder.join(LOG)).context("no server log")?;
            let found = log.lines().map(strip_colours).find(|line| words.iter().all(|word| line.contains(word)));
            if let Some(line) = found {
                return Ok(line);
            }
            ensure!(Instant::now() < deadline, "no log line with {words:?} after {timeout:?}:\n{log}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// User + system CPU time the server has used, in seconds.
    pub(crate) fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(self.child.id())
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

/// The server's log file, in its folder.
const LOG: &str = "server.log";

/// A log line without its terminal colour codes (`ESC [ ... m`), which
/// tracing writes to files too unless it honours `NO_COLOR`.
fn strip_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find('\u{1b}') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        rest = rest.find('m').map_or("", |end| &rest[end + 1..]);
    }
    out.push_str(rest);
    out
}

/// The `elapsed=...` field of a log line, a `Duration` as `{:?}` prints it
/// (`381.6ms`, `2.11s`, `950µs`, `120ns`), in milliseconds.
pub(crate) fn elapsed_ms(line: &str) -> anyhow::Result<f64> {
    let field = line.split_whitespace().find_map(|word| word.strip_prefix("elapsed=")).context("no elapsed field")?;
    let units = [("ns", 1e-6), ("µs", 1e-3), ("us", 1e-3), ("ms", 1.0), ("s", 1000.0)];
    let (number, scale) = units
        .iter()
        .find_map(|(unit, scale)| field.strip_suffix(unit).map(|number| (number, scale)))
        .with_context(|| format!("odd duration {field:?}"))?;
    Ok(number.parse::<f64>().with_context(|| format!("odd duration {field:?}"))? * scale)
}

/// User + system CPU time process `pid` has used, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let fields: Vec<&str> = stat.rsplit_once(')').context("odd /proc stat")?.1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / clock_ticks())
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
