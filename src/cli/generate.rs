//! `grok-video-worker generate`: start GenerateVideo (create the provider task once, wait,
//! store), and with `--wait` show its progress until the video is stored.

use clap::Args;
use grok_video_proto::v1::GenerateVideoRequest;
use grok_video_workflows::GenerateVideo;
use temporalio_client::{
    WorkflowGetResultOptions, WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
    WorkflowQueryOptions, WorkflowStartOptions,
};

use super::{OutputFormat, progress};
use crate::{config::TemporalArgs, temporal};

/// Flags of `generate`.
#[derive(Args, Debug)]
pub struct GenerateCmd {
    /// grok_video3, grok_video3_pro, grok_video3_max or grok_video3_stable.
    #[arg(long, env = "GROK_MODEL")]
    model: String,
    /// What the video shows.
    #[arg(long, env = "GROK_PROMPT")]
    prompt: String,
    /// Seconds of video (per-model rules; default the provider's, 10).
    #[arg(long, env = "GROK_DURATION_SECONDS")]
    duration: Option<u32>,
    /// 16:9, 9:16, 1:1, 3:2 or 2:3 (default the provider's, 16:9).
    #[arg(
        long,
        env = "GROK_ASPECT_RATIO",
        default_value = "",
        hide_default_value = true
    )]
    aspect_ratio: String,
    /// 480p or 720p (default the provider's, 720p).
    #[arg(
        long,
        env = "GROK_RESOLUTION",
        default_value = "",
        hide_default_value = true
    )]
    resolution: String,
    /// A reference image URL; repeat for several (in the env var: separated by spaces).
    #[arg(long = "image-url", env = "GROK_IMAGE_URLS", value_delimiter = ' ')]
    image_urls: Vec<String>,
    /// Destination bucket (default: the worker's GROK_S3_BUCKET).
    #[arg(
        long,
        env = "GROK_DEST_BUCKET",
        default_value = "",
        hide_default_value = true
    )]
    bucket: String,
    /// Destination key (default: the worker's key template).
    #[arg(
        long,
        env = "GROK_DEST_KEY",
        default_value = "",
        hide_default_value = true
    )]
    key: String,
    /// Seconds before the first status query (default: the model's expected minimum).
    #[arg(long, env = "GROK_FIRST_POLL_DELAY_SECONDS")]
    first_poll_delay: Option<u32>,
    /// Seconds between status queries (default 30).
    #[arg(long, env = "GROK_POLL_INTERVAL_SECONDS")]
    poll_interval: Option<u32>,
    /// Seconds after which waiting stops (default: from the model's estimate).
    #[arg(long, env = "GROK_DEADLINE_SECONDS")]
    deadline: Option<u32>,
    /// Workflow id (default `generate-<random uuid>`). Starting the same id twice never
    /// creates a second provider task.
    #[arg(long, env = "GROK_WORKFLOW_ID")]
    workflow_id: Option<String>,
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

impl GenerateCmd {
    pub(super) async fn run(self) -> anyhow::Result<()> {
        let request = GenerateVideoRequest {
            model: self.model,
            prompt: self.prompt,
            duration_seconds: self.duration,
            aspect_ratio: self.aspect_ratio,
            resolution: self.resolution,
            image_urls: self.image_urls,
            bucket: self.bucket,
            key: self.key,
            first_poll_delay_seconds: self.first_poll_delay,
            poll_interval_seconds: self.poll_interval,
            deadline_seconds: self.deadline,
            ..Default::default()
        };
        grok_video_workflows::validate::generate_request(&request)
            .map_err(|problem| anyhow::anyhow!("ProviderRejectedRequest: {problem}"))?;
        let client = temporal::connect(&self.temporal, None).await?;
        let workflow_id = self
            .workflow_id
            .unwrap_or_else(|| format!("generate-{}", uuid::Uuid::new_v4()));
        let options =
            WorkflowStartOptions::new(self.temporal.task_queue.clone(), workflow_id.clone())
                // Never a second order under one id: a running one is joined, a closed one is
                // not redone.
                .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
                .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
                .build();
        client
            .start_workflow(GenerateVideo::run, request.into(), options)
            .await
            .map_err(|e| anyhow::anyhow!("start workflow {workflow_id}: {e}"))?;
        eprintln!(
            "workflow {workflow_id} started on task queue {}",
            self.temporal.task_queue
        );
        if !self.wait {
            if self.output == OutputFormat::Json {
                println!("{}", serde_json::json!({"workflow_id": workflow_id}));
            }
            return Ok(());
        }
        let handle = client.get_workflow_handle::<GenerateVideo>(workflow_id.clone());
        let archived = progress::follow(
            &client,
            &workflow_id,
            handle.get_result(WorkflowGetResultOptions::default()),
            || async {
                handle
                    .query(GenerateVideo::status, (), WorkflowQueryOptions::default())
                    .await
                    .ok()
            },
        )
        .await;
        progress::finish(&workflow_id, archived, self.output)
    }
}
