//! `ArchiveVideo`: wait for an existing provider task with durable timers, then copy its MP4
//! into S3 and return where it is.

// The workflow macros generate items (definition markers) that carry no docs.
#![allow(missing_docs)]

use std::time::Duration;

use grok_video_proto::v1::{
    ArchiveVideoRequest, ArchivedVideo, Continuation, CopyVideoRequest, VideoProgress,
};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_workflow::{
    ActivityCancellationType, ActivityOptions, ContinueAsNewOptions, RetryPolicy,
    SyncWorkflowContext, WorkflowContext, WorkflowContextView, WorkflowResult,
};

use crate::{
    Input,
    activities::CopyVideoToS3,
    failures,
    poll::{self, PollPlan, Waited, WaitsForVideo},
    schedule::TaskShape,
    search,
};

/// The workflow type `ArchiveVideo`.
#[workflow]
pub struct ArchiveVideo {
    request: ArchiveVideoRequest,
    /// Why the input payload did not decode, if it did not: the run fails at once.
    invalid_input: Option<String>,
    progress: VideoProgress,
    wakeups: u64,
}

impl WaitsForVideo for ArchiveVideo {
    fn progress(&mut self) -> &mut VideoProgress {
        &mut self.progress
    }

    fn wakeups(&self) -> u64 {
        self.wakeups
    }
}

#[workflow_methods]
impl ArchiveVideo {
    /// Takes the request; validation happens in `run` so a bad request fails visibly.
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: Input<ArchiveVideoRequest>) -> Self {
        let (request, invalid_input) = match input.into_result() {
            Ok(request) => (request, None),
            Err(problem) => (Default::default(), Some(problem)),
        };
        let progress = VideoProgress {
            task_id: request.task_id.clone(),
            phase: "waiting".into(),
            ..Default::default()
        };
        Self {
            request,
            invalid_input,
            progress,
            wakeups: 0,
        }
    }

    /// Polls until the task is completed, then copies the video.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<ArchivedVideo> {
        if let Some(problem) = ctx.state(|s| s.invalid_input.clone()) {
            return Err(poll::fail(ctx, failures::INVALID_REQUEST, problem));
        }
        let request = ctx.state(|s| s.request.clone());
        if request.task_id.trim().is_empty() {
            return Err(poll::fail(
                ctx,
                failures::INVALID_REQUEST,
                "ArchiveVideoRequest.task_id is empty".to_owned(),
            ));
        }
        let plan = PollPlan::new(
            &request.task_id,
            request.first_poll_delay_seconds,
            request.poll_interval_seconds,
            request.deadline_seconds,
            request.max_polls_per_run,
            TaskShape::default_for("grok_video3"),
            request.continuation.clone(),
        );
        match wait_and_copy(ctx, &plan, &request.bucket, &request.key).await? {
            Outcome::Stored(archived) => Ok(archived),
            Outcome::ContinueAsNew(carried) => {
                let next = ArchiveVideoRequest {
                    continuation: Some(carried),
                    ..request
                };
                ctx.continue_as_new(Input::from(next), ContinueAsNewOptions::default())?;
                unreachable!("continue_as_new always returns Err")
            }
        }
    }

    /// Wakes the poll loop now instead of at the next timer (what a provider webhook or an
    /// impatient operator sends).
    #[signal]
    pub fn poll_now(&mut self, _ctx: &mut SyncWorkflowContext<Self>) {
        self.wakeups += 1;
    }

    /// Where the workflow is: phase, last provider status, polls, last and next poll times.
    #[query]
    pub fn status(&self, _ctx: &WorkflowContextView) -> VideoProgress {
        self.progress.clone()
    }
}

/// How the shared wait-and-copy ended without a failure.
#[derive(Debug)]
pub enum Outcome {
    /// The video is stored.
    Stored(ArchivedVideo),
    /// Still waiting; the run's history is long enough: continue as new with this.
    ContinueAsNew(Continuation),
}

/// The shared second half of every workflow: wait for the task with the poll loop, then copy
/// its video and say where it is.
pub async fn wait_and_copy<W: WaitsForVideo>(
    ctx: &mut WorkflowContext<W>,
    plan: &PollPlan,
    bucket: &str,
    key: &str,
) -> WorkflowResult<Outcome> {
    let task = match poll::wait_for_video(ctx, plan).await? {
        Waited::Ready(task) => task,
        Waited::ContinueAsNew(carried) => return Ok(Outcome::ContinueAsNew(carried)),
    };
    ctx.state_mut(|s| s.progress().phase = "copying".into());
    search::record(ctx, "", "", "", "copying");
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
    Ok(Outcome::Stored(ArchivedVideo {
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
    }))
}

/// Options of the copy: long attempts kept alive by heartbeats, so a dead worker is noticed
/// within the heartbeat timeout and the copy resumes elsewhere. A cancelled workflow waits
/// for the copy to abort its multipart upload before it ends.
pub fn copy_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(2 * 60 * 60))
        .heartbeat_timeout(Duration::from_secs(30))
        .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
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
