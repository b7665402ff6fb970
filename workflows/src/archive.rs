//! `ArchiveVideo`: wait for an existing provider task with durable timers, then copy its MP4
//! into S3 and return where it is.

// The workflow macros generate items (definition markers) that carry no docs.
#![allow(missing_docs)]

use std::time::Duration;

use grok_video_proto::v1::{ArchiveVideoRequest, ArchivedVideo, CopyVideoRequest, VideoProgress};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_workflow::{
    ActivityOptions, RetryPolicy, WorkflowContext, WorkflowContextView, WorkflowResult,
    common::error::ApplicationFailure,
};

use crate::{
    activities::CopyVideoToS3,
    failures,
    poll::{self, PollPlan, WaitsForVideo},
    schedule::{self, TaskShape},
};

/// The workflow type `ArchiveVideo`.
#[workflow]
pub struct ArchiveVideo {
    request: ArchiveVideoRequest,
    progress: VideoProgress,
}

impl WaitsForVideo for ArchiveVideo {
    fn progress(&mut self) -> &mut VideoProgress {
        &mut self.progress
    }
}

#[workflow_methods]
impl ArchiveVideo {
    /// Takes the request; validation happens in `run` so a bad request fails visibly.
    #[init]
    pub fn new(_ctx: &WorkflowContextView, request: ArchiveVideoRequest) -> Self {
        let progress = VideoProgress {
            task_id: request.task_id.clone(),
            phase: "waiting".into(),
            ..Default::default()
        };
        Self { request, progress }
    }

    /// Polls until the task is completed, then copies the video.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<ArchivedVideo> {
        let request = ctx.state(|s| s.request.clone());
        if request.task_id.trim().is_empty() {
            return Err(ApplicationFailure::builder(
                "ArchiveVideoRequest.task_id is empty".to_owned(),
            )
            .type_name(failures::INVALID_REQUEST.to_owned())
            .non_retryable(true)
            .build()
            .into());
        }
        let plan = PollPlan {
            task_id: request.task_id.clone(),
            first_poll_delay: request
                .first_poll_delay_seconds
                .map(|s| Duration::from_secs(u64::from(s))),
            interval: schedule::interval(request.poll_interval_seconds),
            deadline: request
                .deadline_seconds
                .map(|s| Duration::from_secs(u64::from(s))),
            shape: TaskShape::default_for("grok_video3"),
        };
        wait_and_copy(ctx, &plan, &request.bucket, &request.key).await
    }

    /// Where the workflow is: phase, last provider status, polls, last and next poll times.
    #[query]
    pub fn status(&self, _ctx: &WorkflowContextView) -> VideoProgress {
        self.progress.clone()
    }
}

/// The shared second half of every workflow: wait for the task with the poll loop, then copy
/// its video and say where it is.
pub async fn wait_and_copy<W: WaitsForVideo>(
    ctx: &mut WorkflowContext<W>,
    plan: &PollPlan,
    bucket: &str,
    key: &str,
) -> WorkflowResult<ArchivedVideo> {
    let task = poll::wait_for_video(ctx, plan).await?;
    ctx.state_mut(|s| s.progress().phase = "copying".into());
    let copy = CopyVideoRequest {
        task_id: task.id.clone(),
        video_url: task.video_url.clone().unwrap_or_default(),
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        model: task.model.clone(),
        actual_duration_seconds: task.actual_duration_seconds,
    };
    let stored = match ctx
        .execute_activity(CopyVideoToS3, copy, copy_options())
        .await
    {
        Ok(stored) => stored,
        Err(err) => return Err(poll::surface(ctx, err)),
    };
    let polls = ctx.state_mut(|s| {
        let progress = s.progress();
        progress.phase = "done".into();
        progress.polls
    });
    Ok(ArchivedVideo {
        task_id: plan.task_id.clone(),
        model: task.model,
        bucket: stored.bucket,
        key: stored.key,
        size_bytes: stored.size_bytes,
        sha256: stored.sha256,
        actual_duration_seconds: task.actual_duration_seconds,
        polls,
        etag: stored.etag,
        content_type: stored.content_type,
    })
}

/// Options of the copy: long attempts kept alive by heartbeats, so a dead worker is noticed
/// within the heartbeat timeout and the copy resumes elsewhere.
pub fn copy_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(2 * 60 * 60))
        .heartbeat_timeout(Duration::from_secs(30))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(60))
                .maximum_attempts(10)
                .non_retryable_error_types(failures::NON_RETRYABLE.iter().copied())
                .build(),
        )
        .build()
}
