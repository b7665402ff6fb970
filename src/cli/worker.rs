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
}

impl WorkerCmd {
    pub(super) async fn run(self) -> anyhow::Result<()> {
        let settings = WorkerSettings {
            provider: self.provider.resolve()?,
            storage: self.storage.resolve()?,
            temporal: self.temporal,
            grace_period: Duration::from_secs(self.shutdown_grace_seconds),
        };
        worker::run(settings, super::shutdown_signal()).await?;
        Ok(())
    }
}
