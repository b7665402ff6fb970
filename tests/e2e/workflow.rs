//! What every suite does with a workflow: start an ArchiveVideo on the stack's task queue,
//! wait for its result with a deadline, read the failure a caller sees, hash bytes.

use std::time::Duration;

use grok_video_proto::v1::{ArchiveVideoRequest, ArchivedVideo};
use grok_video_workflows::{ArchiveVideo, archive_workflow_id};
use sha2::{Digest, Sha256};
use temporalio_client::{
    Client, WorkflowGetResultOptions, WorkflowHandle, WorkflowStartOptions,
    errors::WorkflowGetResultError,
};
use temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo;

use crate::stack::Stack;

/// A handle on an ArchiveVideo workflow.
pub type Handle = WorkflowHandle<Client, ArchiveVideo>;

/// A request for the stack's bucket polling every second, as the tests' clocks need.
pub fn request(stack: &Stack, task_id: &str) -> ArchiveVideoRequest {
    ArchiveVideoRequest {
        task_id: task_id.to_owned(),
        bucket: stack.bucket.clone(),
        first_poll_delay_seconds: Some(1),
        poll_interval_seconds: Some(1),
        deadline_seconds: Some(300),
        ..Default::default()
    }
}

/// Starts ArchiveVideo under its `archive-<task_id>` id on the stack's task queue.
pub async fn start(stack: &Stack, client: &Client, request: ArchiveVideoRequest) -> Handle {
    let id = archive_workflow_id(&request.task_id);
    client
        .start_workflow(
            ArchiveVideo::run,
            request.into(),
            WorkflowStartOptions::new(stack.task_queue.clone(), id.clone()).build(),
        )
        .await
        .expect("start ArchiveVideo");
    client.get_workflow_handle(id)
}

/// The workflow's result, which must come within `within`.
pub async fn result_within(
    handle: &Handle,
    within: Duration,
) -> Result<ArchivedVideo, WorkflowGetResultError> {
    tokio::time::timeout(
        within,
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("workflow result within the deadline")
}

/// The application failure type and message a caller sees; panics on any other outcome.
pub fn application_failure(err: &WorkflowGetResultError) -> (String, String) {
    let WorkflowGetResultError::Failed(incoming) = err else {
        panic!("expected a failed workflow, got {err}");
    };
    let failure = incoming.failure();
    match &failure.failure_info {
        Some(FailureInfo::ApplicationFailureInfo(info)) => {
            (info.r#type.clone(), failure.message.clone())
        }
        other => panic!("expected an application failure, got {other:?}"),
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
