//! The worker process: connects to Temporal, registers the workflows and activities on the
//! task queue, and runs until its shutdown signal, then drains within a grace period.

use std::{future::Future, time::Duration};

use grok_video_workflows::{ArchiveVideo, GenerateVideo};
use temporalio_common::telemetry::TelemetryOptions;
use temporalio_sdk::{Runtime, Worker, WorkerOptions, runtime::RuntimeOptions};

use crate::{
    activities::VideoActivities,
    config::{ProviderConfig, StorageConfig, TemporalArgs},
    metrics::Metrics,
    provider::{ProviderClient, ProviderError},
    storage::{Storage, StorageError},
    temporal::{self, TemporalError},
};

/// How long the worker retries an unreachable Temporal server at start before giving up.
const CONNECT_RETRY_FOR: Duration = Duration::from_secs(300);

/// Everything the worker needs, validated.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Temporal connection and task queue.
    pub temporal: TemporalArgs,
    /// Provider API.
    pub provider: ProviderConfig,
    /// Copy engine.
    pub storage: StorageConfig,
    /// Time running activities get to finish after a shutdown signal.
    pub grace_period: Duration,
    /// Register the workflows' search attributes at start-up when missing.
    pub register_search_attributes: bool,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_address: Option<std::net::SocketAddr>,
    /// How often the `grok_workflows{phase}` gauge is refreshed.
    pub phase_count_every: Duration,
}

/// Why the worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Temporal unreachable or misconfigured.
    #[error(transparent)]
    Temporal(#[from] TemporalError),
    /// The provider client could not be built.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The copy engine could not be built.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The SDK refused the worker or stopped it.
    #[error("Temporal worker: {0}")]
    Sdk(String),
}

/// Runs the worker until `shutdown` resolves, then shuts down gracefully.
pub async fn run(
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let (metrics, telemetry) = match settings.metrics_address {
        Some(addr) => {
            let (metrics, meter, bound) = Metrics::serve(addr).map_err(WorkerError::Sdk)?;
            tracing::info!(address = %bound, "metrics served at /metrics");
            (metrics, TelemetryOptions::builder().metrics(meter).build())
        }
        None => (Metrics::disabled(), TelemetryOptions::builder().build()),
    };
    let provider = ProviderClient::new(&settings.provider)?;
    let storage = Storage::new(settings.storage.clone()).await?;
    tokio::pin!(shutdown);
    // An unreachable server is retried (and reported) until it answers; a signal meanwhile
    // ends the worker at once.
    let client = tokio::select! {
        client = temporal::connect(&settings.temporal, Some(CONNECT_RETRY_FOR)) => client?,
        () = &mut shutdown => {
            tracing::info!("shutdown requested before Temporal was reachable");
            return Ok(());
        }
    };
    if settings.register_search_attributes {
        temporal::ensure_search_attributes(&client).await?;
    }
    let runtime_options = RuntimeOptions::builder()
        .telemetry_options(telemetry)
        .build()
        .map_err(|e| WorkerError::Sdk(e.to_string()))?;
    let runtime = Runtime::from_current_tokio(runtime_options)
        .map_err(|e| WorkerError::Sdk(e.to_string()))?;
    let stopping = tokio_util::sync::CancellationToken::new();
    let options = WorkerOptions::new(settings.temporal.task_queue.clone())
        .register_workflow::<ArchiveVideo>()
        .map_err(|e| WorkerError::Sdk(e.to_string()))?
        .register_workflow::<GenerateVideo>()
        .map_err(|e| WorkerError::Sdk(e.to_string()))?
        .register_activities(VideoActivities::new(
            provider,
            storage,
            metrics.clone(),
            stopping.clone(),
        ))
        .graceful_shutdown_period(settings.grace_period)
        // Copy checkpoints (upload id, parts done) reach the server within one heartbeat
        // period instead of the SDK's default 0.8 x heartbeat timeout, so a killed copy
        // resumes from nearly where it stopped.
        .max_heartbeat_throttle_interval(crate::activities::HEARTBEAT_EVERY)
        .default_heartbeat_throttle_interval(crate::activities::HEARTBEAT_EVERY)
        .build();
    // Stopped when the worker returns.
    let _phase_counts = metrics.enabled().then(|| {
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(count_phases(
            client.clone(),
            settings.temporal.task_queue.clone(),
            metrics.clone(),
            settings.phase_count_every,
        )))
    });
    let mut worker =
        Worker::new(&runtime, client, options).map_err(|e| WorkerError::Sdk(e.to_string()))?;
    let stop = worker.shutdown_handle();
    tracing::info!(task_queue = %settings.temporal.task_queue, api = %settings.provider.base_url, "worker started");
    let run = worker.run();
    tokio::pin!(run);
    tokio::select! {
        result = &mut run => return result.map_err(|e| WorkerError::Sdk(e.to_string())),
        () = &mut shutdown => {
            tracing::info!(grace_period = ?settings.grace_period, "shutdown requested: finishing running activities");
            stopping.cancel();
            stop();
        }
    }
    run.await.map_err(|e| WorkerError::Sdk(e.to_string()))?;
    tracing::info!("worker stopped");
    Ok(())
}

/// Keeps the `grok_workflows{phase}` gauge current: running workflows of this task queue by
/// their `GrokPhase` search attribute, counted by Temporal's visibility store (so every worker
/// reports the same numbers for the whole queue, whichever worker runs them).
async fn count_phases(
    client: temporalio_client::Client,
    task_queue: String,
    metrics: Metrics,
    every: Duration,
) {
    use temporalio_client::{NamespacedClient, tonic};
    use temporalio_common::protos::temporal::api::workflowservice::v1::CountWorkflowExecutionsRequest;
    let mut warned = false;
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        for phase in grok_video_workflows::search::RUNNING_PHASES {
            let query = format!(
                "TaskQueue = '{}' AND ExecutionStatus = 'Running' AND GrokPhase = '{phase}'",
                task_queue.replace('\'', "")
            );
            let counted = client
                .connection()
                .workflow_service()
                .count_workflow_executions(tonic::Request::new(CountWorkflowExecutionsRequest {
                    namespace: client.namespace(),
                    query,
                }))
                .await;
            match counted {
                Ok(answer) => {
                    warned = false;
                    metrics.workflows_in_phase(phase, answer.into_inner().count.max(0) as u64);
                }
                Err(status) if !warned => {
                    warned = true;
                    tracing::warn!(error = %status.message(), "cannot count workflows by phase for the grok_workflows gauge");
                }
                Err(_) => {}
            }
        }
    }
}
