//! The poll loop: query the provider's task status, sleep on a durable workflow timer, repeat
//! until the task is finished or the deadline passes. Shared by every workflow that waits.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grok_video_proto::v1::{
    Continuation, QueryVideoTaskRequest, VideoProgress, VideoStatus, VideoTask,
};
use temporalio_workflow::{
    ActivityExecutionError, ActivityOptions, RetryPolicy, TimerResult, WorkflowContext,
    WorkflowResult, WorkflowTermination,
    common::error::{ApplicationFailure, IncomingError},
};

use crate::{
    activities::QueryVideoTask,
    failures,
    schedule::{self, Estimate, TaskShape},
    search,
};

/// Workflows that wait for a task keep their [`VideoProgress`] in their state.
pub trait WaitsForVideo: Sized + 'static {
    /// The progress record the poll loop updates and the `status` query reports.
    fn progress(&mut self) -> &mut VideoProgress;
    /// How many `poll_now` signals arrived; a change wakes the loop's timer early.
    fn wakeups(&self) -> u64;
}

/// How one workflow waits: resolved from its request before the loop starts.
#[derive(Debug, Clone)]
pub struct PollPlan {
    /// The provider's task id.
    pub task_id: String,
    /// An explicit wait before the first query; `None` queries at once, then waits for the
    /// expected generation time counted from the task's creation.
    pub first_poll_delay: Option<Duration>,
    /// Time between queries of an unfinished task.
    pub interval: Duration,
    /// Time after the first run's start at which waiting stops; `None` derives it from the
    /// model's estimate.
    pub deadline: Option<Duration>,
    /// What the task is expected to be, before the provider says otherwise.
    pub shape: TaskShape,
    /// Queries in one run before continuing as new.
    pub max_polls_per_run: u32,
    /// What earlier runs carried over, if this run continues one.
    pub carried: Option<Continuation>,
}

/// Status queries per run before continuing as new, unless the request says otherwise.
pub const DEFAULT_MAX_POLLS_PER_RUN: u32 = 200;

impl PollPlan {
    /// The plan's fields from a request's optional poll settings; a continued run starts by
    /// waiting one interval, since the previous run has just queried.
    pub fn new(
        task_id: &str,
        first_poll_delay_seconds: Option<u32>,
        poll_interval_seconds: Option<u32>,
        deadline_seconds: Option<u32>,
        max_polls_per_run: Option<u32>,
        shape: TaskShape,
        carried: Option<Continuation>,
    ) -> Self {
        let secs = |s: u32| Duration::from_secs(u64::from(s));
        let interval = schedule::interval(poll_interval_seconds);
        Self {
            task_id: task_id.to_owned(),
            first_poll_delay: if carried.is_some() {
                Some(interval)
            } else {
                first_poll_delay_seconds.map(secs)
            },
            interval,
            deadline: deadline_seconds.map(secs),
            shape,
            max_polls_per_run: max_polls_per_run
                .unwrap_or(DEFAULT_MAX_POLLS_PER_RUN)
                .max(1),
            carried,
        }
    }
}

/// How the wait ended without a failure.
#[derive(Debug)]
pub enum Waited {
    /// The task is completed with a `video_url`.
    Ready(VideoTask),
    /// This run's history is long enough: continue as new with this.
    ContinueAsNew(Continuation),
}

/// Runs the loop until the task is `completed` with a `video_url`, or until this run should
/// continue as new. Provider outcomes other than completion end the workflow with their
/// stable failure type.
pub async fn wait_for_video<W: WaitsForVideo>(
    ctx: &mut WorkflowContext<W>,
    plan: &PollPlan,
) -> WorkflowResult<Waited> {
    let carried = plan.carried.clone().unwrap_or_default();
    let started = match plan.carried {
        Some(ref c) => UNIX_EPOCH + Duration::from_secs(c.started_at.unsigned_abs()),
        None => ctx.info().start_time().unwrap_or(UNIX_EPOCH),
    };
    let mut shape = plan.shape.clone();
    if !carried.model.is_empty() {
        shape.model = carried.model.clone();
    }
    let mut estimate = schedule::estimate(&shape);
    let mut completed_without_url = carried.completed_without_url;
    let mut polls_this_run = 0;
    set_progress(ctx, |p| {
        p.phase = "waiting".into();
        p.polls = carried.polls;
        if !carried.model.is_empty() {
            p.model = carried.model.clone();
        }
        show_estimate(p, estimate);
    });

    search::record(ctx, &plan.task_id, &carried.model, "", "waiting");
    if let Some(delay) = plan.first_poll_delay.filter(|d| !d.is_zero()) {
        let next = unix_seconds(ctx.workflow_time()) + delay.as_secs() as i64;
        set_progress(ctx, |p| p.next_poll_at = next);
        sleep(ctx, delay).await?;
    }
    loop {
        let task = query(ctx, &plan.task_id).await?;
        polls_this_run += 1;
        let now = unix_seconds(ctx.workflow_time());
        set_progress(ctx, |p| {
            p.polls += 1;
            p.last_poll_at = now;
            p.next_poll_at = 0;
            p.provider_status = task.provider_status.clone();
            if !task.model.is_empty() {
                p.model = task.model.clone();
            }
            if task.created > 0 {
                p.task_created_at = task.created;
            }
        });
        let model = ctx.state_mut(|s| s.progress().model.clone());
        search::record(ctx, &plan.task_id, &model, &task.provider_status, "");
        if !task.model.is_empty() && task.model != shape.model {
            shape.model = task.model.clone();
            estimate = schedule::estimate(&shape);
            set_progress(ctx, |p| show_estimate(p, estimate));
        }
        match task.status() {
            VideoStatus::Completed if task.video_url.as_deref().is_some_and(|u| !u.is_empty()) => {
                return Ok(Waited::Ready(task));
            }
            VideoStatus::Completed => {
                completed_without_url += 1;
                if completed_without_url > schedule::MAX_COMPLETED_WITHOUT_URL {
                    return Err(fail(
                        ctx,
                        failures::VIDEO_URL_MISSING,
                        format!(
                            "task {} is completed but the provider gave no video_url in {} answers",
                            plan.task_id, completed_without_url
                        ),
                    ));
                }
            }
            VideoStatus::Failed => {
                let reason = task
                    .error
                    .clone()
                    .unwrap_or_else(|| "no reason given".into());
                return Err(fail(
                    ctx,
                    failures::VIDEO_GENERATION_FAILED,
                    format!(
                        "video task {} failed at the provider: {reason}",
                        plan.task_id
                    ),
                ));
            }
            VideoStatus::Cancelled => {
                return Err(fail(
                    ctx,
                    failures::VIDEO_TASK_CANCELLED,
                    format!("video task {} was cancelled at the provider", plan.task_id),
                ));
            }
            VideoStatus::Expired => {
                return Err(fail(
                    ctx,
                    failures::VIDEO_TASK_EXPIRED,
                    format!("video task {} expired at the provider", plan.task_id),
                ));
            }
            _ => {}
        }

        let deadline = plan
            .deadline
            .unwrap_or_else(|| schedule::default_deadline(estimate));
        let elapsed = since(ctx.workflow_time(), started);
        let since_created = (task.created > 0).then(|| {
            let created = UNIX_EPOCH + Duration::from_secs(task.created.unsigned_abs());
            since(ctx.workflow_time(), created)
        });
        let delay = if plan.first_poll_delay.is_some() {
            plan.interval
        } else {
            schedule::next_delay(plan.interval, since_created, estimate)
        };
        let delay = schedule::jitter(delay, ctx.random::<f64>());
        let Some(delay) = schedule::bounded(delay, deadline.saturating_sub(elapsed)) else {
            let polls = ctx.state_mut(|s| s.progress().polls);
            return Err(fail(
                ctx,
                failures::VIDEO_TASK_TIMED_OUT,
                format!(
                    "video task {} not completed within {} s: last provider status {:?} after {polls} status queries",
                    plan.task_id,
                    deadline.as_secs(),
                    task.provider_status
                ),
            ));
        };
        if polls_this_run >= plan.max_polls_per_run || ctx.continue_as_new_suggested() {
            let (polls, model) =
                ctx.state_mut(|s| (s.progress().polls, s.progress().model.clone()));
            return Ok(Waited::ContinueAsNew(Continuation {
                started_at: unix_seconds(Some(started)),
                polls,
                completed_without_url,
                model,
                runs: carried.runs + 1,
            }));
        }
        let next = now + delay.as_secs() as i64;
        set_progress(ctx, |p| p.next_poll_at = next);
        sleep(ctx, delay).await?;
    }
}

/// Options of the status query: short attempts, retried with backoff for transient faults
/// (429, 5xx, timeouts); the activity marks permanent ones non-retryable.
pub fn query_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .schedule_to_start_timeout(Duration::from_secs(10 * 60))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(2))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(60))
                .maximum_attempts(20)
                .non_retryable_error_types(failures::NON_RETRYABLE.iter().copied())
                .build(),
        )
        .build()
}

async fn query<W: WaitsForVideo>(
    ctx: &mut WorkflowContext<W>,
    task_id: &str,
) -> WorkflowResult<VideoTask> {
    let input = QueryVideoTaskRequest {
        task_id: task_id.to_owned(),
    };
    match ctx
        .execute_activity(QueryVideoTask, input, query_options())
        .await
    {
        Ok(task) => Ok(task),
        Err(err) => Err(surface(ctx, err)),
    }
}

/// Sleeps on a durable timer; a `poll_now` signal ends the sleep early.
async fn sleep<W: WaitsForVideo>(
    ctx: &mut WorkflowContext<W>,
    delay: Duration,
) -> WorkflowResult<()> {
    let wakeups = ctx.state(|s| s.wakeups());
    temporalio_workflow::workflows::select! {
        fired = ctx.timer(delay) => match fired {
            TimerResult::Fired => Ok(()),
            TimerResult::Cancelled => Err(WorkflowTermination::cancelled()),
        },
        woken = ctx.wait_condition(move |s: &W| s.wakeups() != wakeups) => match woken {
            Ok(()) => Ok(()),
            Err(_) => Err(WorkflowTermination::cancelled()),
        },
    }
}

fn show_estimate(progress: &mut VideoProgress, estimate: Estimate) {
    progress.expected_min_seconds = estimate.min.as_secs().try_into().unwrap_or(u32::MAX);
    progress.expected_max_seconds = estimate.max.as_secs().try_into().unwrap_or(u32::MAX);
}

fn set_progress<W: WaitsForVideo>(
    ctx: &mut WorkflowContext<W>,
    f: impl FnOnce(&mut VideoProgress),
) {
    ctx.state_mut(|s| f(s.progress()));
}

/// Ends the workflow with a non-retryable application failure of a stable type.
pub fn fail<W: WaitsForVideo>(
    ctx: &mut WorkflowContext<W>,
    type_name: &str,
    message: String,
) -> WorkflowTermination {
    set_progress(ctx, |p| p.phase = "failed".into());
    ApplicationFailure::builder(message)
        .type_name(type_name.to_owned())
        .non_retryable(true)
        .build()
        .into()
}

/// An activity's permanent failure becomes the workflow's failure with the same type name
/// and message, so callers match one type whichever layer decided it; cancellation stays
/// cancellation.
pub fn surface<W: WaitsForVideo>(
    ctx: &mut WorkflowContext<W>,
    err: ActivityExecutionError,
) -> WorkflowTermination {
    if let ActivityExecutionError::Cancelled(_) = err {
        return WorkflowTermination::cancelled();
    }
    if let Some(IncomingError::Application(app)) = err.cause()
        && let Some(type_name) = app.type_name()
    {
        let message = app
            .failure()
            .map(|f| f.message.clone())
            .unwrap_or_else(|| app.source_error().to_string());
        return fail(ctx, type_name, message);
    }
    set_progress(ctx, |p| p.phase = "failed".into());
    err.into()
}

fn since(now: Option<SystemTime>, then: SystemTime) -> Duration {
    now.and_then(|n| n.duration_since(then).ok())
        .unwrap_or_default()
}

fn unix_seconds(t: Option<SystemTime>) -> i64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The estimate for a shape, for callers that show expected times.
pub fn expected(shape: &TaskShape) -> Estimate {
    schedule::estimate(shape)
}
