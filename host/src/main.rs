//! The `switchboard` command.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use switchboard::{Config, Server};
use tracing_subscriber::EnvFilter;

mod connect;
mod dev;
mod scaffold;

#[derive(Debug, Parser)]
#[command(version, about = "A WebSocket channel server whose channels are WebAssembly plugins")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load the plugins and serve WebSocket channels.
    Serve(ServeArgs),
    /// The plugin author's loop: build the plugin crates, serve them, and
    /// rebuild and hot-reload a plugin whenever its sources change.
    Dev {
        #[command(flatten)]
        serve: ServeArgs,
        /// Folder whose sub-folders are plugin crates.
        #[arg(long, default_value = "plugins")]
        sources: PathBuf,
    },
    /// Create a plugin crate, with a test written with the test kit, that
    /// builds and passes as generated and that `switchboard dev` picks up.
    New {
        /// The plugin's name, also its crate's and folder's: a-z, 0-9, '-', '_'.
        name: String,
        /// What the plugin starts as: `echo` (one route, echoes), `chat` (a
        /// room per path, presence), or `js` (the echo in JavaScript, built
        /// with componentize-js; needs Node.js).
        #[arg(long, default_value = "echo")]
        template: String,
        /// The folder to create it in.
        #[arg(long, default_value = "plugins")]
        dir: PathBuf,
        /// The Switchboard sources the crate depends on (the SDK, the test
        /// kit); by default the ones this binary was built from.
        #[arg(long, value_name = "PATH")]
        switchboard: Option<PathBuf>,
    },
    /// A small WebSocket client: sends each line of stdin, prints what arrives.
    Connect {
        /// e.g. ws://127.0.0.1:4000/chat/lobby
        url: String,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TOML configuration file; the flags below override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:4000 (port 0 picks a free one).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Folder of plugin `.wasm` files.
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9100
    /// (no authentication: keep it private).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Join the nodes sharing this Redis, e.g. redis://127.0.0.1:6379
    /// (`[cluster] redis`).
    #[arg(long, value_name = "URL", env = "SWITCHBOARD_REDIS")]
    redis: Option<String>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Dev { serve: args, sources } => runtime.block_on(dev(args, sources)),
        Command::Connect { url } => runtime.block_on(connect::run(&url)),
        Command::New { name, template, dir, switchboard } => {
            let created = scaffold::create(&scaffold::New { name, template, parent: dir, switchboard })?;
            #[allow(clippy::print_stdout, reason = "telling the user what was made is this command's job")]
            {
                println!("created {}", created.dir.display());
                println!("{}", created.next_step);
                println!("see it live: switchboard dev (scripts/serve) builds and serves every plugin under plugins/");
            }
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    run_server(args.config()?).await
}

async fn dev(args: ServeArgs, sources: PathBuf) -> anyhow::Result<()> {
    let mut config = args.config()?;
    config.watch = true;
    dev::build_all(&sources, &config.plugins).await?;
    let _sources = dev::watch_sources(&sources, &config.plugins)?;
    run_server(config).await
}

impl ServeArgs {
    /// The config file (or the defaults) with the flags applied.
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(plugins) = &self.plugins {
            config.plugins.clone_from(plugins);
        }
        if let Some(metrics) = self.metrics {
            config.metrics.listen = Some(metrics);
        }
        if let Some(redis) = &self.redis {
            config.cluster.redis = Some(redis.clone());
        }
        Ok(config)
    }
}

async fn run_server(config: Config) -> anyhow::Result<()> {
    let server = Server::bind(config).await?;
    let address = server.local_addr().context("cannot read the bound address")?;
    // The one line on stdout: scripts and tests wait for it to learn the port.
    #[allow(clippy::print_stdout)]
    {
        println!("listening on http://{address}");
    }
    server.run(shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!("cannot watch SIGTERM: {error}");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down");
}
