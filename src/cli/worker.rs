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
    /// Cap on activity starts per second for the whole task queue, all workers together,
    /// enforced by the Temporal server: this is the provider-request rate cap (a status query
    /// or create is one request per attempt; copies make none). 0 disables it.
    #[arg(long, env = "GROK_MAX_REQUESTS_PER_SECOND", default_value_t = 10.0)]
    max_requests_per_second: f64,
    /// Register the search attributes GrokTaskId, GrokModel and GrokProviderStatus at start
    /// when missing (needs operator rights; turn off where they are registered already).
    #[arg(long, env = "GROK_REGISTER_SEARCH_ATTRIBUTES", default_value_t = true, action = clap::ArgAction::Set)]
    register_search_attributes: bool,
    /// Serve Prometheus metrics (the SDK's and the worker's) at http://ADDRESS/metrics.
    #[arg(long, env = "GROK_METRICS_ADDRESS", value_name = "HOST:PORT")]
    metrics_address: Option<std::net::SocketAddr>,
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
            max_activities_per_second: match self.max_requests_per_second {
                r if r.is_finite() && r > 0.0 => Some(r),
                r if r == 0.0 => None,
                r => anyhow::bail!(
                    "invalid setting --max-requests-per-second / GROK_MAX_REQUESTS_PER_SECOND: {r} (a positive number, or 0 for no cap)"
                ),
            },
        };
        let shutdown = async {
            super::shutdown_signal().await;
            // Running copies get the grace period; a second signal ends the process at once.
            tokio::spawn(async {
                super::shutdown_signal().await;
                tracing::warn!("second signal: exiting without waiting for running activities");
                std::process::exit(130);
            });
        };
        worker::run(settings, shutdown).await?;
        Ok(())
    }
}
