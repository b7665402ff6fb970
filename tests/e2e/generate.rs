//! GenerateVideo end to end: validation before anything is sent, one create per workflow,
//! then the same wait and copy as ArchiveVideo.

use std::time::Duration;

use grok_video_proto::v1::{ArchivedVideo, GenerateVideoRequest};
use grok_video_workflows::GenerateVideo;
use sha2::{Digest, Sha256};
use temporalio_client::{
    Client, WorkflowGetResultOptions, WorkflowHandle, WorkflowStartOptions,
    errors::WorkflowGetResultError,
};
use temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo;

use crate::stack::{API_KEY, Stack, fixture};

const RESULT_WITHIN: Duration = Duration::from_secs(120);

pub(crate) fn generate_request(stack: &Stack, model: &str) -> GenerateVideoRequest {
    GenerateVideoRequest {
        model: model.to_owned(),
        prompt: "a lighthouse at dawn".to_owned(),
        bucket: stack.bucket.clone(),
        first_poll_delay_seconds: Some(1),
        poll_interval_seconds: Some(1),
        deadline_seconds: Some(300),
        ..Default::default()
    }
}

pub(crate) async fn generate(
    stack: &Stack,
    client: &Client,
    id: &str,
    request: GenerateVideoRequest,
) -> Result<ArchivedVideo, WorkflowGetResultError> {
    client
        .start_workflow(
            GenerateVideo::run,
            request,
            WorkflowStartOptions::new(stack.task_queue.clone(), id.to_owned()).build(),
        )
        .await
        .expect("start GenerateVideo");
    let handle: WorkflowHandle<Client, GenerateVideo> = client.get_workflow_handle(id.to_owned());
    tokio::time::timeout(
        RESULT_WITHIN,
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("workflow result within the deadline")
}

pub(crate) fn failure_type(err: &WorkflowGetResultError) -> (String, String) {
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

#[tokio::test]
async fn generate_creates_once_and_stores_the_video() {
    let stack = Stack::start("generate_ok").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let client = stack.temporal.client().await;
    let mut request = generate_request(&stack, "grok_video3");
    request.duration_seconds = Some(6);
    request.resolution = "480p".into();
    let archived = generate(&stack, &client, "generate-ok", request)
        .await
        .expect("generated and stored");
    let source = std::fs::read(fixture("grok_video3_6s_480p.mp4")).unwrap();
    assert!(
        archived.task_id.starts_with("video_"),
        "the result names the provider task"
    );
    assert_eq!(archived.key, format!("videos/{}.mp4", archived.task_id));
    assert_eq!(archived.sha256, hex::encode(Sha256::digest(&source)));
    assert_eq!(stack.object(&archived.key).await.0, source);
    let stats = stack.sim.stats().await;
    assert_eq!(stats["creates"], 1);
}

#[tokio::test]
async fn invalid_requests_fail_before_anything_is_sent() {
    let stack = Stack::start("generate_invalid").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let client = stack.temporal.client().await;
    let cases = [
        (
            "grok_video3_pro",
            Some(12),
            "",
            "GenerateVideoRequest.duration_seconds",
        ),
        ("grok_video4", None, "", "GenerateVideoRequest.model"),
        (
            "grok_video3_max",
            None,
            "3:2",
            "GenerateVideoRequest.aspect_ratio",
        ),
    ];
    for (i, (model, duration, aspect, field)) in cases.into_iter().enumerate() {
        let mut request = generate_request(&stack, model);
        request.duration_seconds = duration;
        request.aspect_ratio = aspect.into();
        let err = generate(&stack, &client, &format!("generate-invalid-{i}"), request)
            .await
            .expect_err("invalid request fails");
        let (kind, message) = failure_type(&err);
        assert_eq!(kind, "ProviderRejectedRequest");
        assert!(message.contains(field), "{message}");
    }
    assert_eq!(
        stack.sim.stats().await["creates"],
        0,
        "nothing was sent to the provider"
    );
}
