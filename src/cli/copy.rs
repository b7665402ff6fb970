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
    /// Task id recorded in the object's metadata; an object already at the key with this task
    /// id and a sha256 counts as this copy, done. Default: derived from the URL, so re-running
    /// the same copy is idempotent and another source's object is never taken for it.
    #[arg(long, env = "GROK_COPY_TASK_ID")]
    task_id: Option<String>,
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
        if bucket.is_empty() || key.is_empty() {
            anyhow::bail!(
                "destination {:?} is not s3://bucket/key: the bucket or the key is empty",
                self.destination
            );
        }
        let storage = Storage::new(self.storage.resolve()?).await?;
        let task_id = self.task_id.unwrap_or_else(|| {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(self.url.as_bytes());
            format!("copy-{}", &hex::encode(digest)[..16])
        });
        let job = CopyJob {
            task_id,
            video_url: self.url,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            model: String::new(),
            actual_duration_seconds: None,
        };
        // A copy killed earlier (SIGKILL, a lost machine) left its upload open at this key.
        storage
            .abort_stale_uploads(&job, None, std::time::SystemTime::now())
            .await;
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
