//! `GenerateVideo`: validate the request, create the provider task once (never twice: it is
//! billed and the API has no idempotency key), then wait and copy exactly as `ArchiveVideo`.

// The workflow macros generate items (definition markers) that carry no docs.
#![allow(missing_docs)]

use std::time::Duration;

use grok_video_proto::v1::{
    ArchivedVideo, CreateVideoTaskRequest, GenerateVideoRequest, VideoProgress,
};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_workflow::{
    ActivityExecutionError, ActivityOptions, RetryPolicy, WorkflowContext, WorkflowContextView,
    WorkflowResult, WorkflowTermination, common::error::IncomingError,
};

use crate::{
    activities::CreateVideoTask,
    archive, failures,
    poll::{self, PollPlan, WaitsForVideo},
    schedule::{self, TaskShape},
    validate,
};

/// The workflow type `GenerateVideo`.
#[workflow]
pub struct GenerateVideo {
    request: GenerateVideoRequest,
    progress: VideoProgress,
}

impl WaitsForVideo for GenerateVideo {
    fn progress(&mut self) -> &mut VideoProgress {
        &mut self.progress
    }
}

#[workflow_methods]
impl GenerateVideo {
    /// Takes the request.
    #[init]
    pub fn new(_ctx: &WorkflowContextView, request: GenerateVideoRequest) -> Self {
        let progress = VideoProgress {
            phase: "creating".into(),
            model: request.model.clone(),
            ..Default::default()
        };
        Self { request, progress }
    }

    /// Creates the task, waits for it, stores the video.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<ArchivedVideo> {
        let request = ctx.state(|s| s.request.clone());
        if let Err(problem) = validate::generate_request(&request) {
            return Err(poll::fail(
                ctx,
                failures::PROVIDER_REJECTED_REQUEST,
                problem,
            ));
        }
        let create = CreateVideoTaskRequest {
            model: request.model.clone(),
            prompt: request.prompt.clone(),
            duration_seconds: request.duration_seconds,
            aspect_ratio: request.aspect_ratio.clone(),
            resolution: request.resolution.clone(),
            image_urls: request.image_urls.clone(),
        };
        let task = match ctx
            .execute_activity(CreateVideoTask, create, create_options())
            .await
        {
            Ok(task) => task,
            Err(err) => return Err(create_failure(ctx, err)),
        };
        ctx.state_mut(|s| {
            s.progress.task_id = task.id.clone();
            s.progress.provider_status = task.provider_status.clone();
            if !task.model.is_empty() {
                s.progress.model = task.model.clone();
            }
        });

        let shape = TaskShape {
            model: request.model.clone(),
            duration_seconds: request.duration_seconds.unwrap_or(10),
            resolution: if request.resolution.is_empty() {
                "720p".into()
            } else {
                request.resolution.clone()
            },
            image_count: request.image_urls.len() as u32,
        };
        let estimate = schedule::estimate(&shape);
        let plan = PollPlan {
            task_id: task.id.clone(),
            // Nothing is worth asking before the expected minimum generation time.
            first_poll_delay: Some(
                request
                    .first_poll_delay_seconds
                    .map(|s| Duration::from_secs(u64::from(s)))
                    .unwrap_or(estimate.min),
            ),
            interval: schedule::interval(request.poll_interval_seconds),
            deadline: request
                .deadline_seconds
                .map(|s| Duration::from_secs(u64::from(s))),
            shape,
        };
        archive::wait_and_copy(ctx, &plan, &request.bucket, &request.key).await
    }

    /// Where the workflow is: phase (creating, waiting, copying, done, failed), provider task
    /// id once created, last provider status, polls.
    #[query]
    pub fn status(&self, _ctx: &WorkflowContextView) -> VideoProgress {
        self.progress.clone()
    }
}

/// Options of the create: one attempt only. Retrying is the activity's own business, for the
/// outcomes that certainly created nothing; a lost worker or a timeout is never retried.
pub fn create_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(120))
        .heartbeat_timeout(Duration::from_secs(10))
        .retry_policy(RetryPolicy::builder().maximum_attempts(1).build())
        .build()
}

/// A create that failed with a definite answer keeps its type; anything else (timeout, lost
/// worker) may have created a billed task and becomes `CreateOutcomeUnknown`.
fn create_failure(
    ctx: &mut WorkflowContext<GenerateVideo>,
    err: ActivityExecutionError,
) -> WorkflowTermination {
    if let ActivityExecutionError::Cancelled(_) = err {
        return WorkflowTermination::cancelled();
    }
    if let Some(IncomingError::Application(app)) = err.cause()
        && app.type_name().is_some()
    {
        return poll::surface(ctx, err);
    }
    let reason = err
        .cause()
        .map(|c| c.failure().message.clone())
        .unwrap_or_else(|| err.to_string());
    poll::fail(
        ctx,
        failures::CREATE_OUTCOME_UNKNOWN,
        format!(
            "the create request may have reached the provider ({reason}); it is not sent again: \
             check the provider's task list for a new task before ordering again"
        ),
    )
}
