//! `grok-video-worker status <task-id|workflow-id>`: where one workflow is, printed once.

use clap::Args;
use grok_video_proto::v1::ArchivedVideo;
use grok_video_workflows::{ArchiveVideo, archive_workflow_id};
use temporalio_client::{WorkflowGetResultOptions, WorkflowQueryOptions};

use super::{OutputFormat, progress};
use crate::{config::TemporalArgs, temporal};

/// Flags of `status`.
#[derive(Args, Debug)]
pub struct StatusCmd {
    /// A provider task id (its workflow is `archive-<id>`) or a workflow id
    /// (`archive-…`, `generate-…`).
    id: String,
    /// Output format.
    #[arg(long, env = "GROK_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    #[command(flatten)]
    temporal: TemporalArgs,
}

impl StatusCmd {
    pub(super) async fn run(self) -> anyhow::Result<()> {
        let client = temporal::connect(&self.temporal, None).await?;
        let workflow_id = if self.id.starts_with("archive-") || self.id.starts_with("generate-") {
            self.id.clone()
        } else {
            archive_workflow_id(&self.id)
        };
        // Both workflows answer the same `status` query.
        let handle = client.get_workflow_handle::<ArchiveVideo>(workflow_id.clone());
        let progress = handle
            .query(ArchiveVideo::status, (), WorkflowQueryOptions::default())
            .await
            .map_err(|e| anyhow::anyhow!("workflow {workflow_id}: {e}"))?;
        let bytes = if progress.phase == "copying" {
            progress::copy_bytes(&client, &workflow_id).await
        } else {
            None
        };
        let finished: Option<Result<ArchivedVideo, String>> = match progress.phase.as_str() {
            "done" | "failed" => Some(
                handle
                    .get_result(WorkflowGetResultOptions::default())
                    .await
                    .map_err(|e| progress::describe(&e)),
            ),
            _ => None,
        };
        match self.output {
            OutputFormat::Json => {
                let mut out = serde_json::json!({"workflow_id": workflow_id, "progress": progress});
                if let Some((done, total)) = bytes {
                    out["bytes_copied"] = done.into();
                    out["bytes_total"] = total.into();
                }
                match &finished {
                    Some(Ok(archived)) => out["result"] = serde_json::to_value(archived)?,
                    Some(Err(e)) => out["error"] = e.clone().into(),
                    None => {}
                }
                println!("{out}");
            }
            OutputFormat::Text => {
                println!("workflow {workflow_id}");
                println!("  {}", progress::describe_progress(&progress, None));
                if let Some((done, total)) = bytes {
                    println!("  copied {done} of {total} bytes");
                }
                match finished {
                    Some(Ok(archived)) => progress::print_result(&archived, OutputFormat::Text)?,
                    Some(Err(e)) => println!("  {e}"),
                    None => {}
                }
            }
        }
        Ok(())
    }
}
