//! The activity implementations behind the contracts in `workflows/src/activities.rs`. This
//! is the one place where typed errors from `provider/` and `storage/` become Temporal
//! failures: retryable, or non-retryable with a stable type name.

// The activity macros generate items (definition markers) that carry no docs.
#![allow(missing_docs)]

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use grok_video_proto::v1::{CopyVideoRequest, QueryVideoTaskRequest, StoredVideo, VideoTask};
use grok_video_workflows::{activities as contract, failures};
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
                Ok(task)
            }
            Err(err) => {
                tracing::warn!(task_id = %input.task_id, %workflow_id, attempt, error = %err, "status query failed");
                let in_grace = matches!(err, ProviderError::NotFound { .. })
                    && attempt < NOT_FOUND_GRACE_ATTEMPTS;
                Err(failure(
                    err.failure_type(),
                    err.to_string(),
                    err.is_retryable() || in_grace,
                    err.retry_after(),
                ))
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
