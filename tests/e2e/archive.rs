//! ArchiveVideo end to end: real MP4 bytes from the simulator's video host into S3 through
//! a real Temporal workflow, across worker and server restarts, and its failure paths.

use std::time::Duration;

use grok_video_proto::v1::ArchivedVideo;
use grok_video_workflows::{ArchiveVideo, archive_workflow_id};
use serde_json::json;
use temporalio_client::{WorkflowQueryOptions, errors::WorkflowGetResultError};

use crate::{
    stack::{API_KEY, Stack, eventually, fixture},
    workflow::{Handle, application_failure, request, result_within, sha256_hex, start},
};

const RESULT_WITHIN: Duration = Duration::from_secs(120);

async fn result(handle: &Handle) -> Result<ArchivedVideo, WorkflowGetResultError> {
    result_within(handle, RESULT_WITHIN).await
}

/// The failure type and message a caller sees.
fn failure_of(err: &WorkflowGetResultError) -> (String, String) {
    application_failure(err)
}

async fn wait_for_polls(handle: &Handle, polls: u32) {
    eventually(
        "the workflow's first status queries",
        Duration::from_secs(60),
        || async {
            handle
                .query(ArchiveVideo::status, (), WorkflowQueryOptions::default())
                .await
                .is_ok_and(|p| p.polls >= polls && p.phase == "waiting")
        },
    )
    .await;
}

#[tokio::test]
async fn archives_both_sample_videos_byte_exact() {
    let stack = Stack::start("archive_both").await;
    let metrics_port = crate::stack::free_port();
    let mut worker = stack.worker_command(Some(API_KEY));
    worker.env("GROK_METRICS_ADDRESS", format!("127.0.0.1:{metrics_port}"));
    let _worker = stack.start_worker("worker", &mut worker);
    let client = stack.temporal.client().await;
    let small = stack
        .sim
        .task(json!({"video": "grok_video3_6s_480p.mp4", "actual_duration": 6.04}))
        .await;
    let large = stack
        .sim
        .task(json!({"video": "grok_video3_30s_720p.mp4", "model": "grok_video3", "actual_duration": 30.0}))
        .await;
    let h_small = start(&stack, &client, request(&stack, &small)).await;
    let h_large = start(&stack, &client, request(&stack, &large)).await;
    let (r_small, r_large) = tokio::join!(result(&h_small), result(&h_large));

    for (task, file, archived) in [
        (
            &small,
            "grok_video3_6s_480p.mp4",
            r_small.expect("small video archived"),
        ),
        (
            &large,
            "grok_video3_30s_720p.mp4",
            r_large.expect("large video archived"),
        ),
    ] {
        let source = std::fs::read(fixture(file)).unwrap();
        assert_eq!(archived.task_id, *task);
        assert_eq!(archived.bucket, stack.bucket);
        assert_eq!(archived.key, format!("videos/{task}.mp4"));
        assert_eq!(archived.size_bytes, source.len() as i64);
        assert_eq!(archived.sha256, sha256_hex(&source));
        assert_eq!(archived.model, "grok_video3");
        assert_eq!(archived.content_type, "video/mp4");
        assert!(
            archived.polls >= 2,
            "queued for 1 s + processing 2 s needs more than one poll"
        );
        let (stored, meta) = stack.object(&archived.key).await;
        assert!(
            stored == source,
            "stored bytes of {file} differ from the source"
        );
        assert_eq!(meta.get("sha256"), Some(&archived.sha256));
        assert_eq!(meta.get("task-id"), Some(task));
    }
    let stats = stack.sim.stats().await;
    assert_eq!(stats["creates"], 0, "archiving never creates a task");
    assert_eq!(stats["video_requests"], 2);
    assert_eq!(
        stats["video_requests_with_auth"], 0,
        "the API key never goes to the video host"
    );
    assert_eq!(stack.open_uploads().await, 0);

    // The metrics endpoint carries the SDK's metrics and ours, with the same counts.
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let queries = stats["queries"].as_f64().unwrap();
    assert_eq!(
        value("grok_provider_requests_total{endpoint=\"result\",outcome=\"ok\""),
        queries,
        "{text}"
    );
    assert_eq!(value("grok_status_polls_total"), queries);
    let sizes = (std::fs::metadata(fixture("grok_video3_6s_480p.mp4"))
        .unwrap()
        .len()
        + std::fs::metadata(fixture("grok_video3_30s_720p.mp4"))
            .unwrap()
            .len()) as f64;
    assert_eq!(value("grok_bytes_copied_total"), sizes);
    assert_eq!(value("grok_copies_finished_total{result=\"stored\""), 2.0);
    assert!(
        text.contains("temporal_activity_execution_latency"),
        "the SDK's own metrics are served too"
    );
    let health = std::process::Command::new(env!("CARGO_BIN_EXE_grok-video-worker"))
        .args([
            "healthcheck",
            "--metrics-address",
            &format!("0.0.0.0:{metrics_port}"),
        ])
        .output()
        .unwrap();
    assert!(
        health.status.success(),
        "healthcheck: {}",
        String::from_utf8_lossy(&health.stderr)
    );
}

#[tokio::test]
async fn worker_killed_while_waiting_resumes_and_stores_one_object() {
    let stack = Stack::start("worker_restart").await;
    let mut worker = stack.worker("worker-1", Some(API_KEY));
    let client = stack.temporal.client().await;
    let task = stack
        .sim
        .task(json!({"video": "grok_video3_6s_480p.mp4", "queued_seconds": 2, "processing_seconds": 6}))
        .await;
    let handle = start(&stack, &client, request(&stack, &task)).await;
    wait_for_polls(&handle, 1).await;
    worker.kill();
    let _worker = stack.worker("worker-2", Some(API_KEY));
    let archived = result(&handle)
        .await
        .expect("archived after the worker restart");
    let source = std::fs::read(fixture("grok_video3_6s_480p.mp4")).unwrap();
    assert_eq!(archived.sha256, sha256_hex(&source));
    assert_eq!(
        stack.keys().await,
        vec![archived.key.clone()],
        "exactly one object"
    );
    assert_eq!(stack.object(&archived.key).await.0, source);
    assert_eq!(stack.open_uploads().await, 0);
}

#[tokio::test]
async fn temporal_server_restart_while_waiting_completes() {
    let mut stack = Stack::start("server_restart").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let client = stack.temporal.client().await;
    let task = stack
        .sim
        .task(json!({"video": "grok_video3_6s_480p.mp4", "queued_seconds": 2, "processing_seconds": 8}))
        .await;
    let handle = start(&stack, &client, request(&stack, &task)).await;
    wait_for_polls(&handle, 1).await;
    stack.temporal.restart().await;
    // A new client: the old connection went down with the server.
    let client = stack.temporal.client().await;
    let handle: Handle = client.get_workflow_handle(archive_workflow_id(&task));
    let archived = result(&handle)
        .await
        .expect("archived after the server restart");
    let source = std::fs::read(fixture("grok_video3_6s_480p.mp4")).unwrap();
    assert_eq!(archived.size_bytes, source.len() as i64);
    assert_eq!(stack.object(&archived.key).await.0, source);
}

#[tokio::test]
async fn provider_failure_fails_the_workflow_and_writes_nothing() {
    let stack = Stack::start("provider_failed").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let client = stack.temporal.client().await;
    let task = stack
        .sim
        .task(json!({"outcome": "failed", "error": "content policy violation: prompt rejected", "queued_seconds": 0, "processing_seconds": 1}))
        .await;
    let handle = start(&stack, &client, request(&stack, &task)).await;
    let err = result(&handle).await.expect_err("the workflow fails");
    let (kind, message) = failure_of(&err);
    assert_eq!(kind, "VideoGenerationFailed");
    assert!(
        message.contains("content policy violation: prompt rejected"),
        "{message}"
    );
    assert!(stack.keys().await.is_empty(), "nothing written to S3");
    assert_eq!(stack.sim.stats().await["video_requests"], 0);
}

#[tokio::test]
async fn wrong_or_missing_api_key_never_leaks() {
    let stack = Stack::start("api_key").await;

    // No key at all: the worker refuses to start and says which setting is missing.
    let mut keyless = stack.spawn_worker("worker-keyless", None);
    let status = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = keyless.child.try_wait().unwrap() {
                return (status, keyless.log_text());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "a worker without a key must exit"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    assert!(!status.0.success());
    assert!(status.1.contains("GROK_API_KEY"), "{}", status.1);

    // A wrong key: the query fails as a non-retryable auth failure.
    let wrong_key = "sk-wrong-LEAKCHECK-99b7";
    let worker = stack.worker("worker-wrong-key", Some(wrong_key));
    let client = stack.temporal.client().await;
    let task = stack
        .sim
        .task(json!({"queued_seconds": 0, "processing_seconds": 0}))
        .await;
    let handle = start(&stack, &client, request(&stack, &task)).await;
    let err = result(&handle).await.expect_err("the workflow fails");
    let (kind, message) = failure_of(&err);
    assert_eq!(kind, "ProviderAuthRejected");
    assert!(message.contains("Invalid API key"), "{message}");
    assert_eq!(
        stack.sim.stats().await["unauthorized"],
        1,
        "an auth failure is not retried"
    );

    let history = stack.temporal.history_json(&archive_workflow_id(&task));
    assert!(
        history.contains("ProviderAuthRejected"),
        "the exported history is the real one"
    );
    let logs = worker.log_text();
    assert!(
        logs.contains("status query failed"),
        "debug logs were captured"
    );
    for secret in [wrong_key, API_KEY, "LEAKCHECK"] {
        assert!(!history.contains(secret), "history leaks {secret}");
        assert!(!logs.contains(secret), "worker logs leak {secret}");
    }
}

/// `temporal workflow start --type ArchiveVideo --input <json>` on the stack's task queue.
fn cli_start_archive(stack: &Stack, workflow_id: &str, input: &str) {
    let out = stack.temporal.cli(&[
        "workflow",
        "start",
        "--type",
        "ArchiveVideo",
        "--task-queue",
        &stack.task_queue,
        "--workflow-id",
        workflow_id,
        "--input",
        input,
    ]);
    assert!(
        out.status.success(),
        "temporal workflow start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn temporal_cli_starts_archive_with_plain_json() {
    let stack = Stack::start("cli_json").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let task = stack
        .sim
        .task(json!({"video": "grok_video3_6s_480p.mp4"}))
        .await;
    let workflow_id = archive_workflow_id(&task);
    // proto3 JSON names (lowerCamelCase) and proto field names are both accepted.
    let input = json!({"taskId": task, "bucket": stack.bucket, "first_poll_delay_seconds": 1, "pollIntervalSeconds": 1}).to_string();
    cli_start_archive(&stack, &workflow_id, &input);
    let client = stack.temporal.client().await;
    let handle: Handle = client.get_workflow_handle(workflow_id.clone());
    let archived = result(&handle).await.expect("archived");
    let source = std::fs::read(fixture("grok_video3_6s_480p.mp4")).unwrap();
    assert_eq!(archived.sha256, sha256_hex(&source));

    // The result as the CLI shows it uses the proto field names.
    let out = stack.temporal.cli(&[
        "workflow",
        "result",
        "--workflow-id",
        &workflow_id,
        "--output",
        "json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("size_bytes") && text.contains(&archived.sha256),
        "{text}"
    );
}

/// An input that does not decode into the request fails the workflow at once with
/// `InvalidRequest` naming the field, instead of failing workflow tasks forever.
#[tokio::test]
async fn undecodable_input_fails_the_workflow_naming_the_field() {
    let stack = Stack::start("bad_input").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let workflow_id = archive_workflow_id("video_bad_input");
    let input = json!({"task_id": "video_bad_input", "poll_interval_seconds": "soon"}).to_string();
    cli_start_archive(&stack, &workflow_id, &input);
    let client = stack.temporal.client().await;
    let handle: Handle = client.get_workflow_handle(workflow_id);
    let err = result(&handle).await.expect_err("the workflow fails");
    let (kind, message) = application_failure(&err);
    assert_eq!(kind, "InvalidRequest", "{message}");
    assert!(
        message.contains("ArchiveVideoRequest.poll_interval_seconds"),
        "the failure names the field: {message}"
    );
    assert_eq!(
        stack.sim.stats().await["queries"],
        0,
        "a bad request never reaches the provider"
    );
}

#[tokio::test]
async fn archiving_the_same_task_twice_copies_once() {
    let stack = Stack::start("same_task_twice").await;
    let worker = stack.worker("worker", Some(API_KEY));
    let task = stack
        .sim
        .task(json!({"video": "grok_video3_6s_480p.mp4"}))
        .await;
    let archive = || {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_grok-video-worker"));
        cmd.args([
            "archive",
            &task,
            "--bucket",
            &stack.bucket,
            "--first-poll-delay",
            "1",
            "--poll-interval",
            "1",
        ])
        .args(["--wait", "--output", "json"])
        .env("TEMPORAL_ADDRESS", stack.temporal.address())
        .env("GROK_TASK_QUEUE", &stack.task_queue)
        .kill_on_drop(true);
        async move {
            let out = tokio::time::timeout(RESULT_WITHIN, cmd.output())
                .await
                .expect("archive --wait returns")
                .unwrap();
            assert!(
                out.status.success(),
                "archive failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for stream in [&out.stdout, &out.stderr] {
                assert!(
                    !String::from_utf8_lossy(stream).contains(API_KEY),
                    "the CLI output leaks the key"
                );
            }
            serde_json::from_slice::<ArchivedVideo>(&out.stdout)
                .expect("archive --output json prints ArchivedVideo")
        }
    };
    // Two pipelines at once join one workflow; a third, later, reads the finished result.
    let (first, second) = tokio::join!(archive(), archive());
    let third = archive().await;
    assert_eq!(first, second);
    assert_eq!(first, third);
    assert_eq!(
        stack.sim.stats().await["video_requests"],
        1,
        "the video was downloaded once"
    );
    assert_eq!(stack.keys().await.len(), 1);

    // `status` by task id shows the finished workflow and its result.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_grok-video-worker"))
        .args(["status", &task, "--output", "json"])
        .env("TEMPORAL_ADDRESS", stack.temporal.address())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["progress"]["phase"], "done");
    // The model's expected generation time (grok_video3, 10 s default: 2-4 min) and the
    // task's creation time, which `archive --wait` shows against the time it has taken.
    assert_eq!(status["progress"]["expected_min_seconds"], 120);
    assert_eq!(status["progress"]["expected_max_seconds"], 240);
    assert!(status["progress"]["task_created_at"].as_i64().unwrap() > 0);
    assert_eq!(status["result"]["sha256"], first.sha256.as_str());

    // A full successful job, at debug level: the key is nowhere but in the worker's memory.
    let history = stack.temporal.history_json(&archive_workflow_id(&task));
    assert!(
        history.contains("CopyVideoToS3"),
        "the exported history is the real one"
    );
    let logs = worker.log_text();
    assert!(logs.contains("DEBUG"), "debug logs were captured");
    assert!(!history.contains(API_KEY), "history leaks the key");
    assert!(!logs.contains(API_KEY), "worker logs leak the key");
}
