//! `grok-video-worker archive <task-id>`: start (or join) the ArchiveVideo workflow of a
//! task, and with `--wait` show its progress until the video is stored.

use clap::Args;
use grok_video_proto::v1::ArchiveVideoRequest;
use grok_video_workflows::{ArchiveVideo, archive_workflow_id};
use temporalio_client::{
    WorkflowGetResultOptions, WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
    WorkflowQueryOptions, WorkflowStartOptions, errors::WorkflowStartError,
};

use super::{OutputFormat, progress};
use crate::{config::TemporalArgs, temporal};

/// Flags of `archive`.
#[derive(Args, Debug)]
pub struct ArchiveCmd {
    /// The provider's task id.
    task_id: String,
    /// Destination bucket (default: the worker's GROK_S3_BUCKET).
    #[arg(long, env = "GROK_DEST_BUCKET")]
    bucket: Option<String>,
    /// Destination key (default: the worker's key template).
    #[arg(long, env = "GROK_DEST_KEY")]
    key: Option<String>,
    /// Seconds before the first status query (default: query at once, then wait for the
    /// model's expected generation time).
    #[arg(long, env = "GROK_FIRST_POLL_DELAY_SECONDS")]
    first_poll_delay: Option<u32>,
    /// Seconds between status queries (default 30).
    #[arg(long, env = "GROK_POLL_INTERVAL_SECONDS")]
    poll_interval: Option<u32>,
    /// Seconds after which waiting stops (default: from the model's estimate).
    #[arg(long, env = "GROK_DEADLINE_SECONDS")]
    deadline: Option<u32>,
    /// Wait for the result, showing progress on stderr (in the env var: true/1/yes/on, or
    /// false/0/no/off).
    #[arg(long, env = "GROK_WAIT", value_parser = clap::builder::FalseyValueParser::new())]
    wait: bool,
    /// Result format.
    #[arg(long, env = "GROK_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    #[command(flatten)]
    temporal: TemporalArgs,
}

impl ArchiveCmd {
    pub(super) async fn run(self) -> anyhow::Result<()> {
        let client = temporal::connect(&self.temporal, None).await?;
        let request = ArchiveVideoRequest {
            task_id: self.task_id.clone(),
            bucket: self.bucket.clone().unwrap_or_default(),
            key: self.key.clone().unwrap_or_default(),
            first_poll_delay_seconds: self.first_poll_delay,
            poll_interval_seconds: self.poll_interval,
            deadline_seconds: self.deadline,
            ..Default::default()
        };
        let workflow_id = archive_workflow_id(&self.task_id);
        let options =
            WorkflowStartOptions::new(self.temporal.task_queue.clone(), workflow_id.clone())
                // A running archive of the same task is joined, a finished one is not redone.
                .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
                .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicateFailedOnly)
                .build();
        let handle = match client
            .start_workflow(ArchiveVideo::run, request.into(), options)
            .await
        {
            Ok(handle) => {
                eprintln!(
                    "workflow {workflow_id} started on task queue {}",
                    self.temporal.task_queue
                );
                handle
            }
            Err(WorkflowStartError::AlreadyStarted { .. }) => {
                eprintln!(
                    "workflow {workflow_id} already completed for this task; reading its result"
                );
                client.get_workflow_handle(workflow_id.clone())
            }
            Err(e) => return Err(anyhow::anyhow!("start workflow {workflow_id}: {e}")),
        };
        if !self.wait {
            if self.output == OutputFormat::Json {
                println!("{}", serde_json::json!({"workflow_id": workflow_id}));
            }
            return Ok(());
        }

        let archived = progress::follow(
            &client,
            &workflow_id,
            handle.get_result(WorkflowGetResultOptions::default()),
            || async {
                handle
                    .query(ArchiveVideo::status, (), WorkflowQueryOptions::default())
                    .await
                    .ok()
            },
        )
        .await;
        if let Ok(archived) = &archived {
            let asked = |wanted: &Option<String>, got: &str| {
                wanted.as_deref().is_some_and(|w| !w.is_empty() && w != got)
            };
            if asked(&self.key, &archived.key) || asked(&self.bucket, &archived.bucket) {
                eprintln!(
                    "note: task {} is stored at s3://{}/{}, not where this call asked \
                     (an earlier archive of the task, whose result is shown, or the worker's \
                     GROK_S3_ON_CONFLICT=suffix)",
                    self.task_id, archived.bucket, archived.key
                );
            }
        }
        progress::finish(&workflow_id, archived, self.output)
    }
}
