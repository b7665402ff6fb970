//! `grok-video-worker copy <url> s3://bucket/key`: the worker's copy path, from a shell.

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::{
    config::StorageArgs,
    storage::{CopyJob, CopyProgress, Storage},
};

use super::OutputFormat;

/// Flags of `copy`.
#[derive(Args, Debug)]
pub struct CopyCmd {
    /// Source URL.
    url: String,
    /// Destination, `s3://bucket/key`.
    destination: String,
    /// Task id recorded in the object's metadata.
    #[arg(long, env = "GROK_COPY_TASK_ID", default_value = "manual-copy")]
    task_id: String,
    /// Result format.
    #[arg(long, env = "GROK_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    #[command(flatten)]
    storage: StorageArgs,
}

impl CopyCmd {
    pub(super) async fn run(self) -> anyhow::Result<()> {
        let Some((bucket, key)) = self
            .destination
            .strip_prefix("s3://")
            .and_then(|d| d.split_once('/'))
        else {
            anyhow::bail!("destination {:?} is not s3://bucket/key", self.destination);
        };
        let storage = Storage::new(self.storage.resolve()?).await?;
        let job = CopyJob {
            task_id: self.task_id,
            video_url: self.url,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            model: String::new(),
            actual_duration_seconds: None,
        };
        let cancel = CancellationToken::new();
        let progress = CopyProgress::default();
        let copy = storage.copy(&job, &progress, None, &cancel);
        tokio::pin!(copy);
        let stored = tokio::select! {
            r = &mut copy => r?,
            () = super::shutdown_signal() => {
                // Let the copy see the cancellation and abort its multipart upload.
                cancel.cancel();
                let _ = copy.await;
                anyhow::bail!("interrupted; the partial upload was aborted");
            }
        };
        match self.output {
            OutputFormat::Json => println!("{}", serde_json::to_string(&stored)?),
            OutputFormat::Text => println!(
                "stored s3://{}/{} ({} bytes, sha256 {})",
                stored.bucket, stored.key, stored.size_bytes, stored.sha256
            ),
        }
        Ok(())
    }
}
