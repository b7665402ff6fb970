//! `grok-video-worker archive <task-id>`: start (or join) the ArchiveVideo workflow of a
//! task, and with `--wait` show its progress until the video is stored.

use std::{
    io::{IsTerminal, Write},
    time::{Duration, Instant},
};

use clap::Args;
use grok_video_proto::v1::{ArchiveVideoRequest, ArchivedVideo};
use grok_video_workflows::{ArchiveVideo, archive_workflow_id};
use temporalio_client::{
    WorkflowGetResultOptions, WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
    WorkflowQueryOptions, WorkflowStartOptions, errors::WorkflowStartError,
};

use super::OutputFormat;
use crate::{config::TemporalArgs, temporal};

/// Flags of `archive`.
#[derive(Args, Debug)]
pub struct ArchiveCmd {
    /// The provider's task id.
    task_id: String,
    /// Destination bucket (default: the worker's GROK_S3_BUCKET).
    #[arg(long)]
    bucket: Option<String>,
    /// Destination key (default: the worker's `<prefix>/<task_id>.mp4`).
    #[arg(long)]
    key: Option<String>,
    /// Seconds before the first status query (default: query at once, then wait for the
    /// model's expected generation time).
    #[arg(long)]
    first_poll_delay: Option<u32>,
    /// Seconds between status queries (default 30).
    #[arg(long)]
    poll_interval: Option<u32>,
    /// Seconds after which waiting stops (default: from the model's estimate).
    #[arg(long)]
    deadline: Option<u32>,
    /// Wait for the result, showing progress on stderr.
    #[arg(long)]
    wait: bool,
    /// Result format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
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
        };
        let workflow_id = archive_workflow_id(&self.task_id);
        let options =
            WorkflowStartOptions::new(self.temporal.task_queue.clone(), workflow_id.clone())
                // A running archive of the same task is joined, a finished one is not redone.
                .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
                .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicateFailedOnly)
                .build();
        let handle = match client
            .start_workflow(ArchiveVideo::run, request, options)
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

        let result = handle.get_result(WorkflowGetResultOptions::default());
        tokio::pin!(result);
        let started = Instant::now();
        let terminal = std::io::stderr().is_terminal();
        let mut ticker = tokio::time::interval(Duration::from_secs(2));
        let mut last_line = String::new();
        let archived: ArchivedVideo = loop {
            tokio::select! {
                r = &mut result => break r.map_err(|e| anyhow::anyhow!("workflow {workflow_id}: {}", describe(&e)))?,
                _ = ticker.tick() => {
                    if let Ok(p) = handle.query(ArchiveVideo::status, (), WorkflowQueryOptions::default()).await {
                        let next = if p.next_poll_at > 0 {
                            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default();
                            format!(", next poll in {}s", (p.next_poll_at - now).max(0))
                        } else {
                            String::new()
                        };
                        let status = if p.provider_status.is_empty() { "-" } else { p.provider_status.as_str() };
                        let line = format!("[{:>4}s] {}: provider status {status}, {} polls{next}", started.elapsed().as_secs(), p.phase, p.polls);
                        if terminal {
                            eprint!("\r\x1b[2K{line}");
                            let _ = std::io::stderr().flush();
                        } else if line != last_line {
                            eprintln!("{line}");
                        }
                        last_line = line;
                    }
                }
            }
        };
        if terminal {
            eprintln!();
        }
        match self.output {
            OutputFormat::Json => println!("{}", serde_json::to_string(&archived)?),
            OutputFormat::Text => println!(
                "stored s3://{}/{}\n  size    {} bytes\n  sha256  {}\n  model   {}\n  polls   {}",
                archived.bucket,
                archived.key,
                archived.size_bytes,
                archived.sha256,
                archived.model,
                archived.polls
            ),
        }
        Ok(())
    }
}

/// One readable line: the failure type and message, from the innermost cause.
fn describe(err: &temporalio_client::errors::WorkflowGetResultError) -> String {
    use temporalio_client::errors::WorkflowGetResultError as E;
    match err {
        E::Failed(incoming) => {
            let failure = incoming.failure();
            let kind = match &failure.failure_info {
                Some(temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo::ApplicationFailureInfo(info)) => info.r#type.clone(),
                _ => String::new(),
            };
            if kind.is_empty() {
                failure.message.clone()
            } else {
                format!("{kind}: {}", failure.message)
            }
        }
        other => other.to_string(),
    }
}
