//! The activity implementations behind the contracts in `workflows/src/activities.rs`. This
//! is the one place where typed errors from `provider/` and `storage/` become Temporal
//! failures: retryable, or non-retryable with a stable type name.

// The activity macros generate items (definition markers) that carry no docs.
#![allow(missing_docs)]

use std::{
    collections::HashSet,
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use grok_video_proto::v1::{
    CopyCheckpoint, CopyVideoRequest, CreateVideoTaskRequest, QueryVideoTaskRequest, StoredVideo,
    VideoStatus, VideoTask,
};
use grok_video_workflows::{activities as contract, failures};
use rand::Rng;
use temporalio_macros::activities;
use temporalio_sdk::{
    ApplicationFailure,
    activities::{ActivityContext, ActivityError},
};
use tokio_util::sync::CancellationToken;

use crate::{
    metrics::Metrics,
    provider::{ProviderClient, ProviderError},
    storage::{CopyJob, CopyProgress, Storage, StorageError},
};

/// Attempts during which a 404 for a task is retried: a task id just returned by create can
/// briefly answer "not found".
const NOT_FOUND_GRACE_ATTEMPTS: u32 = 4;
/// Attempts after which a body that is not an MP4 is final.
const NOT_A_VIDEO_ATTEMPTS: u32 = 3;
/// Create attempts for outcomes that certainly created nothing (refused connection, 429).
const CREATE_ATTEMPTS: u32 = 5;
/// Provider status texts already reported as unknown, so each is logged once per process.
static UNKNOWN_STATUSES: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);
/// Fresh `video_url`s asked of the provider when the video host refuses the current one.
const URL_REQUERIES: u32 = 2;
/// How often a running copy heartbeats its progress.
pub(crate) const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// The worker's activities, sharing one provider client and one copy engine.
pub struct VideoActivities {
    provider: ProviderClient,
    storage: Storage,
    metrics: Metrics,
    /// Cancelled when the worker starts shutting down: a copy cancelled after that keeps its
    /// upload for the next attempt to resume instead of aborting it.
    stopping: CancellationToken,
}

impl VideoActivities {
    /// Wraps the clients; `stopping` is cancelled when the worker begins to shut down.
    pub fn new(
        provider: ProviderClient,
        storage: Storage,
        metrics: Metrics,
        stopping: CancellationToken,
    ) -> Self {
        Self {
            provider,
            storage,
            metrics,
            stopping,
        }
    }
}

#[activities]
impl VideoActivities {
    /// `QueryVideoTask`: one status query. Never creates anything, so retrying it is safe.
    #[activity(definition = contract::QueryVideoTask)]
    pub async fn query_video_task(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: QueryVideoTaskRequest,
    ) -> Result<VideoTask, ActivityError> {
        let attempt = ctx.info().attempt;
        let workflow_id = ctx.info().workflow_id.clone().unwrap_or_default();
        if input.task_id.trim().is_empty() {
            return Err(permanent(
                failures::INVALID_REQUEST,
                "QueryVideoTaskRequest.task_id is empty".into(),
            ));
        }
        match self.provider.get_task(&input.task_id).await {
            Ok(task) => {
                tracing::info!(task_id = %input.task_id, %workflow_id, status = %task.provider_status, attempt, "status queried");
                self.metrics.provider_request("result", "ok");
                self.metrics.poll(task.status().as_str_name());
                if task.status() == VideoStatus::Unknown
                    && UNKNOWN_STATUSES
                        .lock()
                        .is_ok_and(|mut seen| seen.insert(task.provider_status.clone()))
                {
                    tracing::warn!(task_id = %input.task_id, %workflow_id, status = %task.provider_status,
                        "unknown provider status; treated as still running until the deadline");
                }
                Ok(task)
            }
            Err(err) => {
                tracing::warn!(task_id = %input.task_id, %workflow_id, attempt, error = %err, "status query failed");
                self.metrics.provider_request("result", err.failure_type());
                self.metrics.failure("QueryVideoTask", err.failure_type());
                let in_grace = matches!(err, ProviderError::NotFound { .. })
                    && attempt < NOT_FOUND_GRACE_ATTEMPTS;
                let retryable = err.is_retryable() || in_grace;
                // Temporal reads a zero delay as "no retry": wait at least a second.
                let delay = err
                    .retry_after()
                    .map(|d| d.max(Duration::from_secs(1)))
                    .or_else(|| retryable.then(|| backoff(attempt)));
                Err(failure(
                    err.failure_type(),
                    err.to_string(),
                    retryable,
                    delay,
                ))
            }
        }
    }

    /// `CreateVideoTask`: one billed create. Scheduled with a single attempt; it retries here
    /// only what certainly created nothing (refused connection, DNS failure, 429), and turns
    /// every ambiguous outcome into a non-retryable `CreateOutcomeUnknown`.
    #[activity(definition = contract::CreateVideoTask)]
    pub async fn create_video_task(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: CreateVideoTaskRequest,
    ) -> Result<VideoTask, ActivityError> {
        let workflow_id = ctx.info().workflow_id.clone().unwrap_or_default();
        let mut attempt = 1;
        loop {
            // Heartbeat while the request is out, so a lost worker is noticed within the
            // heartbeat timeout (and reported as an unknown outcome, never re-sent).
            let create = self.provider.create_task(&input);
            tokio::pin!(create);
            let mut ticker = tokio::time::interval(Duration::from_secs(2));
            let outcome = loop {
                tokio::select! {
                    outcome = &mut create => break outcome,
                    _ = ticker.tick() => { let _ = ctx.record_heartbeat(attempt).await; }
                }
            };
            match outcome {
                Ok(task) => {
                    tracing::info!(task_id = %task.id, %workflow_id, model = %input.model, "video task created");
                    self.metrics.provider_request("create", "ok");
                    return Ok(task);
                }
                Err(err) => {
                    let safe = match &err {
                        ProviderError::Transport { never_sent, .. } => *never_sent,
                        ProviderError::RateLimited { .. } => true,
                        _ => false,
                    };
                    tracing::warn!(%workflow_id, attempt, error = %err, retry = safe && attempt < CREATE_ATTEMPTS, "create failed");
                    self.metrics.provider_request("create", err.failure_type());
                    if !safe || attempt >= CREATE_ATTEMPTS {
                        self.metrics.failure("CreateVideoTask", err.failure_type());
                    }
                    if !safe || attempt >= CREATE_ATTEMPTS {
                        return Err(failure(err.failure_type(), err.to_string(), false, None));
                    }
                    let wait = err
                        .retry_after()
                        .unwrap_or_else(|| backoff(attempt))
                        .min(Duration::from_secs(20));
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = ctx.cancelled() => return Err(ActivityError::cancelled()),
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// `CopyVideoToS3`: streams the video into S3, heartbeating the bytes copied; a cancelled
    /// activity aborts its upload.
    #[activity(definition = contract::CopyVideoToS3)]
    pub async fn copy_video_to_s3(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: CopyVideoRequest,
    ) -> Result<StoredVideo, ActivityError> {
        let attempt = ctx.info().attempt;
        let workflow_id = ctx.info().workflow_id.clone().unwrap_or_default();
        let mut job = CopyJob {
            task_id: input.task_id,
            video_url: input.video_url,
            bucket: input.bucket,
            key: input.key,
            model: input.model,
            actual_duration_seconds: input.actual_duration_seconds,
        };
        // The last heartbeat of a lost attempt says where its upload stands.
        let resume: Option<CopyCheckpoint> = ctx.heartbeat_details().deserialize().ok().flatten();
        // An attempt killed before its heartbeat carried its upload id left that upload open
        // where no checkpoint points: abort what earlier attempts left at this task's keys.
        let keep = resume
            .as_ref()
            .map(|cp| cp.upload_id.as_str())
            .filter(|id| !id.is_empty());
        self.storage
            .abort_stale_uploads(&job, keep, std::time::SystemTime::now())
            .await;
        let started = std::time::Instant::now();
        let mut requeries = 0;
        self.metrics.copy_started();
        let result = loop {
            let progress = CopyProgress::default();
            let cancel = CancellationToken::new();
            let result = {
                let copy = self.storage.copy(&job, &progress, resume.clone(), &cancel);
                tokio::pin!(copy);
                let mut ticker = tokio::time::interval(HEARTBEAT_EVERY);
                // Until this attempt has an upload of its own, keep reporting the earlier one,
                // so a second crash does not lose (and leak) it.
                let checkpoint = || {
                    let mut snapshot = progress.snapshot();
                    if snapshot.upload_id.is_empty()
                        && let Some(earlier) = &resume
                    {
                        let bytes = snapshot.bytes_copied;
                        snapshot = earlier.clone();
                        snapshot.bytes_copied = bytes;
                    }
                    snapshot
                };
                loop {
                    tokio::select! {
                        result = &mut copy => break result,
                        _ = ticker.tick() => {
                            let _ = ctx.record_heartbeat(checkpoint()).await;
                        }
                        () = ctx.cancelled(), if !cancel.is_cancelled() => {
                            if self.stopping.is_cancelled() {
                                // The worker is shutting down (the grace period is over): stop
                                // as a lost worker would, leaving the upload and its checkpoint
                                // for the next attempt to resume, not to redo.
                                let _ = ctx.record_heartbeat(checkpoint()).await;
                                self.metrics.copy_finished("interrupted", None);
                                tracing::info!(task_id = %job.task_id, %workflow_id, "worker shutting down: copy stopped; the next attempt resumes its upload");
                                return Err(failure(
                                    "WorkerShutdown",
                                    format!("the worker shut down while copying task {}; the next attempt resumes the upload", job.task_id),
                                    true,
                                    None,
                                ));
                            }
                            cancel.cancel();
                        }
                    }
                }
            };
            // An expired link: ask the provider for a fresh one (a status query, never a new
            // video), a bounded number of times.
            match result {
                Err(StorageError::SourceStatus {
                    status: 403 | 404 | 410,
                    ..
                }) if requeries < URL_REQUERIES => {
                    requeries += 1;
                    match self.provider.get_task(&job.task_id).await {
                        Ok(task) if task.video_url.as_deref().is_some_and(|u| !u.is_empty()) => {
                            tracing::info!(task_id = %job.task_id, %workflow_id, requeries, "video URL refused; retrying with the provider's current URL");
                            job.video_url = task.video_url.unwrap_or_default();
                        }
                        Ok(_) => break result,
                        Err(err) => {
                            tracing::warn!(task_id = %job.task_id, error = %err, "re-query for a fresh video URL failed");
                            break result;
                        }
                    }
                }
                other => break other,
            }
        };
        match result {
            Ok(stored) => {
                self.metrics.copy_finished(
                    "stored",
                    Some((stored.size_bytes as u64, started.elapsed())),
                );
                tracing::info!(task_id = %job.task_id, %workflow_id, bucket = %stored.bucket, key = %stored.key,
                    size_bytes = stored.size_bytes, seconds = started.elapsed().as_secs_f64(), "video stored");
                Ok(stored)
            }
            Err(StorageError::Cancelled) => Err(ActivityError::cancelled()),
            Err(StorageError::SourceStatus {
                status: status @ (403 | 404 | 410),
                url,
            }) => {
                let message = format!(
                    "video URL {url} of task {} is gone (HTTP {status}) and the provider offers no working one after {requeries} re-queries; the video cannot be fetched any more",
                    job.task_id
                );
                tracing::warn!(task_id = %job.task_id, %workflow_id, %message, "copy failed");
                Err(permanent(failures::VIDEO_URL_EXPIRED, message))
            }
            Err(err) => {
                self.metrics.copy_finished("failed", None);
                self.metrics.failure("CopyVideoToS3", err.failure_type());
                tracing::warn!(task_id = %job.task_id, %workflow_id, attempt, error = %err, "copy failed");
                let retryable = match err {
                    StorageError::NotAVideo { .. } => attempt < NOT_A_VIDEO_ATTEMPTS,
                    _ => err.is_retryable(),
                };
                let delay = retryable.then(|| backoff(attempt));
                Err(failure(
                    err.failure_type(),
                    err.to_string(),
                    retryable,
                    delay,
                ))
            }
        }
    }
}

/// Exponential backoff with jitter: about 1, 2, 4 … seconds, at most a minute, each scaled by
/// a random factor in [0.8, 1.2) so many workflows do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let base =
        Duration::from_secs(1 << attempt.saturating_sub(1).min(6)).min(Duration::from_secs(60));
    base.mul_f64(rand::rng().random_range(0.8..1.2))
}

fn permanent(type_name: &str, message: String) -> ActivityError {
    failure(type_name, message, false, None)
}

fn failure(
    type_name: &str,
    message: String,
    retryable: bool,
    next_retry_delay: Option<Duration>,
) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(message)
            .type_name(type_name.to_owned())
            .non_retryable(!retryable)
            .maybe_next_retry_delay(next_retry_delay)
            .build(),
    )
}
