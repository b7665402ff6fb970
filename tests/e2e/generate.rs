//! GenerateVideo end to end: validation before anything is sent, one create per workflow,
//! then the same wait and copy as ArchiveVideo.

use std::time::Duration;

use grok_video_proto::v1::{ArchivedVideo, GenerateVideoRequest};
use grok_video_workflows::GenerateVideo;
use serde_json::json;
use sha2::{Digest, Sha256};
use temporalio_client::{
    Client, WorkflowGetResultOptions, WorkflowHandle, WorkflowStartOptions,
    errors::WorkflowGetResultError,
};

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
            request.into(),
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
    crate::workflow::application_failure(err)
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

/// Scripts the next create answers (and the task later creates make).
async fn script_creates(stack: &Stack, script: serde_json::Value) {
    reqwest::Client::new()
        .post(format!("{}/_sim/create_script", stack.sim.url))
        .json(&script)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

#[tokio::test]
async fn no_fault_ever_sends_a_second_create() {
    let stack = Stack::start("create_faults").await;
    let mut cmd = stack.worker_command(Some(API_KEY));
    cmd.env("GROK_API_TIMEOUT_SECONDS", "2");
    let _worker = stack.start_worker("worker", &mut cmd);
    let client = stack.temporal.client().await;
    let posts = || async { stack.sim.stats().await["creates"].as_u64().unwrap() };

    // Ambiguous outcomes: the task may exist, so the workflow stops after exactly one POST.
    let ambiguous = [
        (
            "http_500",
            json!({"status": 500, "json": {"error": {"message": "upstream exploded"}}}),
            "HTTP 500",
        ),
        (
            "gateway_524",
            json!({"status": 524, "body": "<html><h1>A timeout occurred</h1></html>"}),
            "A timeout occurred",
        ),
        ("timeout", json!({"delay_ms": 5000}), "no answer came"),
        ("dropped", json!({"drop": true}), "no answer came"),
        (
            "no_id",
            json!({"json": {"object": "video", "status": "queued"}}),
            "without a task id",
        ),
    ];
    for (name, step, text) in ambiguous {
        let before = posts().await;
        script_creates(&stack, json!({"responses": [step]})).await;
        let err = generate(
            &stack,
            &client,
            &format!("generate-{name}"),
            generate_request(&stack, "grok_video3"),
        )
        .await
        .expect_err("ambiguous create fails");
        let (kind, message) = failure_type(&err);
        assert_eq!(kind, "CreateOutcomeUnknown", "{name}: {message}");
        assert!(message.contains(text), "{name}: {message}");
        assert!(
            message.contains("check the provider's task list"),
            "{name}: {message}"
        );
        assert_eq!(posts().await - before, 1, "{name}: exactly one POST");
    }

    // Definite refusals: nothing was created; the failure keeps its type; one POST.
    for (name, step, kind) in [
        (
            "unauthorized",
            json!({"status": 401, "json": {"msg": "bad key"}}),
            "ProviderAuthRejected",
        ),
        (
            "balance",
            json!({"status": 402, "json": {"code": 402, "message": "insufficient balance"}}),
            "ProviderBalanceExhausted",
        ),
        (
            "invalid",
            json!({"status": 400, "json": {"message": "prompt too long"}}),
            "ProviderRejectedRequest",
        ),
    ] {
        let before = posts().await;
        script_creates(&stack, json!({"responses": [step]})).await;
        let err = generate(
            &stack,
            &client,
            &format!("generate-{name}"),
            generate_request(&stack, "grok_video3"),
        )
        .await
        .expect_err("refused create fails");
        assert_eq!(failure_type(&err).0, kind, "{name}");
        assert_eq!(posts().await - before, 1, "{name}: exactly one POST");
    }

    // 429 is a refusal too: retried after Retry-After, then the one accepted create.
    let before = posts().await;
    let accepted_before = stack.sim.stats().await["creates_accepted"]
        .as_u64()
        .unwrap();
    script_creates(
        &stack,
        json!({"responses": [{"status": 429, "headers": {"Retry-After": "1"}, "json": {"msg": "slow down"}}]}),
    )
    .await;
    let archived = generate(
        &stack,
        &client,
        "generate-rate-limited",
        generate_request(&stack, "grok_video3"),
    )
    .await
    .expect("generated after a 429");
    assert!(!archived.sha256.is_empty());
    assert_eq!(
        posts().await - before,
        2,
        "the refused POST and the accepted one"
    );
    assert_eq!(
        stack.sim.stats().await["creates_accepted"]
            .as_u64()
            .unwrap()
            - accepted_before,
        1,
        "one task created"
    );
}

#[tokio::test]
async fn a_worker_lost_mid_create_never_creates_twice() {
    let stack = Stack::start("create_worker_lost").await;
    let mut worker = stack.worker("worker-1", Some(API_KEY));
    let client = stack.temporal.client().await;
    // The provider takes 20 s to answer the create; the worker dies while waiting.
    script_creates(&stack, json!({"responses": [{"delay_ms": 20_000}]})).await;
    let id = "generate-worker-lost";
    client
        .start_workflow(
            GenerateVideo::run,
            generate_request(&stack, "grok_video3").into(),
            WorkflowStartOptions::new(stack.task_queue.clone(), id.to_owned()).build(),
        )
        .await
        .unwrap();
    crate::stack::eventually("the create POST", Duration::from_secs(30), || async {
        stack.sim.stats().await["creates"].as_u64() == Some(1)
    })
    .await;
    worker.kill();
    let _worker = stack.worker("worker-2", Some(API_KEY));
    let handle: WorkflowHandle<Client, GenerateVideo> = client.get_workflow_handle(id.to_owned());
    let err = tokio::time::timeout(
        RESULT_WITHIN,
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("result within the deadline")
    .expect_err("unknown outcome");
    assert_eq!(failure_type(&err).0, "CreateOutcomeUnknown");
    // Give a would-be retry time to happen: there is none.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.sim.stats().await["creates"], 1, "never a second POST");
}
