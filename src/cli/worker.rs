//! `grok-video-worker worker`.

use std::time::Duration;

use clap::Args;

use crate::{
    config::{ProviderArgs, StorageArgs, TemporalArgs},
    worker::{self, WorkerSettings},
};

/// Flags of `worker`.
#[derive(Args, Debug)]
pub struct WorkerCmd {
    #[command(flatten)]
    temporal: TemporalArgs,
    #[command(flatten)]
    provider: ProviderArgs,
    #[command(flatten)]
    storage: StorageArgs,
    /// Seconds running activities get to finish after SIGTERM/SIGINT.
    #[arg(long, env = "GROK_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    shutdown_grace_seconds: u64,
    /// Register the search attributes GrokTaskId, GrokModel, GrokProviderStatus and GrokPhase at start
    /// when missing (needs operator rights; turn off where they are registered already).
    #[arg(long, env = "GROK_REGISTER_SEARCH_ATTRIBUTES", default_value_t = true, action = clap::ArgAction::Set)]
    register_search_attributes: bool,
    /// Serve Prometheus metrics (the SDK's and the worker's) at http://ADDRESS/metrics.
    #[arg(long, env = "GROK_METRICS_ADDRESS", value_name = "HOST:PORT")]
    metrics_address: Option<std::net::SocketAddr>,
    /// Seconds between counts of running workflows by phase (the `grok_workflows` gauge,
    /// from Temporal's visibility store; only with a metrics address).
    #[arg(long, env = "GROK_PHASE_COUNT_SECONDS", default_value_t = 30)]
    phase_count_seconds: u64,
}

impl WorkerCmd {
    pub(super) async fn run(self) -> anyhow::Result<()> {
        let settings = WorkerSettings {
            provider: self.provider.resolve()?,
            storage: self.storage.resolve()?,
            temporal: self.temporal,
            grace_period: Duration::from_secs(self.shutdown_grace_seconds),
            register_search_attributes: self.register_search_attributes,
            metrics_address: self.metrics_address,
            phase_count_every: Duration::from_secs(self.phase_count_seconds.max(1)),
        };
        // Running copies get the grace period; a second signal ends the process at once.
        let shutdown = super::shutdown_signals();
        worker::run(settings, shutdown).await?;
        Ok(())
    }
}
