//! The command line: `worker`, `archive`, `copy` and `simulate`, each a thin layer over the
//! library; user-facing output goes to stdout, logs to stderr.

mod archive;
mod copy;
mod generate;
mod healthcheck;
mod progress;
mod simulate;
mod status;
mod worker;

use clap::{Parser, Subcommand, ValueEnum};

/// Durable Temporal worker that archives Grok videos into S3.
#[derive(Parser, Debug)]
#[command(name = "grok-video-worker", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, env = "GROK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain, global = true)]
    pub log_format: LogFormat,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Result format of commands that print one.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Readable lines.
    Text,
    /// One JSON object, for scripts.
    Json,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the worker: poll the task queue and execute workflows and activities.
    Worker(worker::WorkerCmd),
    /// Start ArchiveVideo for an existing provider task (and wait for it with --wait).
    Archive(archive::ArchiveCmd),
    /// Order a video (GenerateVideo: create once, wait, store; --wait to follow it).
    Generate(generate::GenerateCmd),
    /// Copy one video URL into S3 with the worker's copy engine.
    Copy(copy::CopyCmd),
    /// Exit 0 when a worker's metrics endpoint answers (container health checks).
    Healthcheck(healthcheck::HealthcheckCmd),
    /// Show where one workflow is (by provider task id or workflow id), once.
    Status(status::StatusCmd),
    /// Serve the provider simulator on loopback (for tests, the demo and benchmarks).
    Simulate(simulate::SimulateCmd),
}

impl Cli {
    /// Runs the chosen command; the error is what `main` prints.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Worker(cmd) => cmd.run().await,
            Command::Archive(cmd) => cmd.run().await,
            Command::Copy(cmd) => cmd.run().await,
            Command::Generate(cmd) => cmd.run().await,
            Command::Simulate(cmd) => cmd.run().await,
            Command::Status(cmd) => cmd.run().await,
            Command::Healthcheck(cmd) => cmd.run().await,
        }
    }
}

/// Listens for SIGINT and SIGTERM from the moment it is called (so none is missed while the
/// caller is busy): the returned future resolves on the first, and a second exits the
/// process at once with status 130.
pub fn shutdown_signals() -> impl std::future::Future<Output = ()> {
    let (first, received) = tokio::sync::oneshot::channel::<()>();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            let _ = first.send(());
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            tracing::warn!("second signal: exiting without waiting for running activities");
            std::process::exit(130);
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = first.send(());
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(130);
    });
    async move {
        let _ = received.await;
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag of every subcommand can also be set from the environment, and its `--help`
    /// line says which variable.
    #[test]
    fn every_flag_has_an_env_var() {
        let mut missing = Vec::new();
        let mut cli = super::Cli::command();
        cli.build();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_positional() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_env().is_none() {
                    missing.push(format!(
                        "{} --{}",
                        sub.get_name(),
                        arg.get_long().unwrap_or(id)
                    ));
                }
            }
        }
        assert!(missing.is_empty(), "flags without an env var: {missing:?}");
    }
}
