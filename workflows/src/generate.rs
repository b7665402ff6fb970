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
    ActivityExecutionError, ActivityOptions, ContinueAsNewOptions, RetryPolicy,
    SyncWorkflowContext, WorkflowContext, WorkflowContextView, WorkflowResult, WorkflowTermination,
    common::error::IncomingError,
};

use crate::{
    Input,
    activities::CreateVideoTask,
    archive::{self, Outcome},
    failures,
    poll::{self, PollPlan, WaitsForVideo},
    schedule::{self, TaskShape},
    validate,
};

/// The workflow type `GenerateVideo`.
#[workflow]
pub struct GenerateVideo {
    request: GenerateVideoRequest,
    /// Why the input payload did not decode, if it did not: the run fails at once.
    invalid_input: Option<String>,
    progress: VideoProgress,
    wakeups: u64,
}

impl WaitsForVideo for GenerateVideo {
    fn progress(&mut self) -> &mut VideoProgress {
        &mut self.progress
    }

    fn wakeups(&self) -> u64 {
        self.wakeups
    }
}

#[workflow_methods]
impl GenerateVideo {
    /// Takes the request.
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: Input<GenerateVideoRequest>) -> Self {
        let (request, invalid_input) = match input.into_result() {
            Ok(request) => (request, None),
            Err(problem) => (Default::default(), Some(problem)),
        };
        let progress = VideoProgress {
            phase: "creating".into(),
            model: request.model.clone(),
            ..Default::default()
        };
        Self {
            request,
            invalid_input,
            progress,
            wakeups: 0,
        }
    }

    /// Creates the task, waits for it, stores the video.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<ArchivedVideo> {
        if let Some(problem) = ctx.state(|s| s.invalid_input.clone()) {
            return Err(poll::fail(ctx, failures::INVALID_REQUEST, problem));
        }
        let request = ctx.state(|s| s.request.clone());
        if let Err(problem) = validate::generate_request(&request) {
            return Err(poll::fail(
                ctx,
                failures::PROVIDER_REJECTED_REQUEST,
                problem,
            ));
        }
        let task_id = if request.created_task_id.is_empty() {
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
                s.progress.provider_status = task.provider_status.clone();
                if !task.model.is_empty() {
                    s.progress.model = task.model.clone();
                }
            });
            task.id
        } else {
            // A continued run: the task exists already and is never created again.
            request.created_task_id.clone()
        };
        ctx.state_mut(|s| s.progress.task_id = task_id.clone());

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
        // Nothing is worth asking before the expected minimum generation time.
        let first_poll_delay = request
            .first_poll_delay_seconds
            .unwrap_or(schedule::estimate(&shape).min.as_secs() as u32);
        let plan = PollPlan::new(
            &task_id,
            Some(first_poll_delay),
            request.poll_interval_seconds,
            request.deadline_seconds,
            request.max_polls_per_run,
            shape,
            request.continuation.clone(),
        );
        match archive::wait_and_copy(ctx, &plan, &request.bucket, &request.key).await? {
            Outcome::Stored(archived) => Ok(archived),
            Outcome::ContinueAsNew(carried) => {
                let next = GenerateVideoRequest {
                    created_task_id: task_id,
                    continuation: Some(carried),
                    ..request
                };
                ctx.continue_as_new(Input::from(next), ContinueAsNewOptions::default())?;
                unreachable!("continue_as_new always returns Err")
            }
        }
    }

    /// Wakes the poll loop now instead of at the next timer.
    #[signal]
    pub fn poll_now(&mut self, _ctx: &mut SyncWorkflowContext<Self>) {
        self.wakeups += 1;
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
