//! The activity implementations behind the contracts in `workflows/src/activities.rs`. This
//! is the one place where typed errors from `provider/` and `storage/` become Temporal
//! failures: retryable, or non-retryable with a stable type name.

// The activity macros generate items (definition markers) that carry no docs.
#![allow(missing_docs)]

use std::{
    collections::HashSet,
    sync::{Arc, LazyLock, Mutex, atomic::AtomicU64},
    time::Duration,
};

use grok_video_proto::v1::{
    CopyVideoRequest, CreateVideoTaskRequest, QueryVideoTaskRequest, StoredVideo, VideoStatus,
    VideoTask,
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
    provider::{ProviderClient, ProviderError},
    storage::{CopyJob, Storage, StorageError},
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
/// How often a running copy heartbeats its progress.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// The worker's activities, sharing one provider client and one copy engine.
pub struct VideoActivities {
    provider: ProviderClient,
    storage: Storage,
}

impl VideoActivities {
    /// Wraps the clients.
    pub fn new(provider: ProviderClient, storage: Storage) -> Self {
        Self { provider, storage }
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
                let in_grace = matches!(err, ProviderError::NotFound { .. })
                    && attempt < NOT_FOUND_GRACE_ATTEMPTS;
                let retryable = err.is_retryable() || in_grace;
                let delay = err
                    .retry_after()
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
                    return Ok(task);
                }
                Err(err) => {
                    let safe = match &err {
                        ProviderError::Transport { never_sent, .. } => *never_sent,
                        ProviderError::RateLimited { .. } => true,
                        _ => false,
                    };
                    tracing::warn!(%workflow_id, attempt, error = %err, retry = safe && attempt < CREATE_ATTEMPTS, "create failed");
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
        let job = CopyJob {
            task_id: input.task_id,
            video_url: input.video_url,
            bucket: input.bucket,
            key: input.key,
            model: input.model,
            actual_duration_seconds: input.actual_duration_seconds,
        };
        let copied = AtomicU64::new(0);
        let cancel = CancellationToken::new();
        let started = std::time::Instant::now();
        let copy = self.storage.copy(&job, &copied, &cancel);
        tokio::pin!(copy);
        let mut ticker = tokio::time::interval(HEARTBEAT_EVERY);
        let result = loop {
            tokio::select! {
                result = &mut copy => break result,
                _ = ticker.tick() => {
                    let bytes = copied.load(std::sync::atomic::Ordering::Relaxed);
                    let _ = ctx.record_heartbeat(bytes).await;
                }
                () = ctx.cancelled(), if !cancel.is_cancelled() => cancel.cancel(),
            }
        };
        match result {
            Ok(stored) => {
                tracing::info!(task_id = %job.task_id, %workflow_id, bucket = %stored.bucket, key = %stored.key,
                    size_bytes = stored.size_bytes, seconds = started.elapsed().as_secs_f64(), "video stored");
                Ok(stored)
            }
            Err(StorageError::Cancelled) => Err(ActivityError::cancelled()),
            Err(err) => {
                tracing::warn!(task_id = %job.task_id, %workflow_id, attempt, error = %err, "copy failed");
                let retryable = match err {
                    StorageError::NotAVideo { .. } => attempt < NOT_A_VIDEO_ATTEMPTS,
                    _ => err.is_retryable(),
                };
                Err(failure(
                    err.failure_type(),
                    err.to_string(),
                    retryable,
                    None,
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
