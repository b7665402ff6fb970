//! Long waits and operations: continue-as-new keeps each run's history bounded, `poll_now`
//! wakes the timer, search attributes find a workflow by provider task, and cancelling a
//! workflow mid-copy aborts its multipart upload.

use std::time::Duration;

use grok_video_proto::v1::ArchiveVideoRequest;
use grok_video_workflows::{ArchiveVideo, archive_workflow_id};
use serde_json::json;
use temporalio_client::{
    Client, WorkflowCancelOptions, WorkflowQueryOptions, WorkflowSignalOptions,
    errors::WorkflowGetResultError,
};

use crate::{
    stack::{API_KEY, Stack, eventually, fixture},
    workflow::{result_within, sha256_hex, start},
};

/// The runs of a workflow id and their history lengths, newest first, from the Temporal CLI.
fn runs(stack: &Stack, workflow_id: &str) -> Vec<(String, u64)> {
    let out = stack.temporal.cli(&[
        "workflow",
        "list",
        "--output",
        "json",
        "--query",
        &format!("WorkflowId='{workflow_id}'"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    list.iter()
        .map(|w| {
            let run = w["execution"]["runId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let len = w["historyLength"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| w["historyLength"].as_u64())
                .unwrap_or_default();
            (run, len)
        })
        .collect()
}

#[tokio::test]
async fn continues_as_new_with_bounded_history_and_the_same_result() {
    let stack = Stack::start("continue_as_new").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let client = stack.temporal.client().await;
    let task = stack
        .sim
        .task(json!({"video": "grok_video3_6s_480p.mp4", "queued_seconds": 2, "processing_seconds": 18}))
        .await;
    let request = ArchiveVideoRequest {
        task_id: task.clone(),
        bucket: stack.bucket.clone(),
        first_poll_delay_seconds: Some(1),
        poll_interval_seconds: Some(1),
        deadline_seconds: Some(300),
        max_polls_per_run: Some(4),
        ..Default::default()
    };
    let handle = start(&stack, &client, request).await;
    let archived = result_within(&handle, Duration::from_secs(120))
        .await
        .expect("archived across runs");
    let source = std::fs::read(fixture("grok_video3_6s_480p.mp4")).unwrap();
    assert_eq!(archived.size_bytes, source.len() as i64);
    assert_eq!(stack.object(&archived.key).await.0, source);
    let runs = runs(&stack, &archive_workflow_id(&task));
    assert!(runs.len() >= 4, "expected several runs, got {runs:?}");
    let queries = stack.sim.stats().await["queries_by_task"][&task]
        .as_u64()
        .unwrap();
    assert_eq!(
        u64::from(archived.polls),
        queries,
        "polls are counted across runs"
    );
    for (run, len) in &runs {
        assert!(
            *len <= 60,
            "run {run} has {len} history events; continue-as-new should bound it"
        );
    }
}

#[tokio::test]
async fn poll_now_wakes_the_timer_and_search_attributes_find_the_task() {
    let stack = Stack::start("poll_now").await;
    let metrics_port = crate::stack::free_port();
    let mut worker = stack.worker_command(Some(API_KEY));
    worker
        .env("GROK_METRICS_ADDRESS", format!("127.0.0.1:{metrics_port}"))
        .env("GROK_PHASE_COUNT_SECONDS", "1");
    let _worker = stack.start_worker("worker", &mut worker);
    let phase_gauge = |phase: &'static str| async move {
        let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with("grok_workflows{") && l.contains(&format!("phase=\"{phase}\"")))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    let client = stack.temporal.client().await;
    let task = stack
        .sim
        .task(json!({"video": "grok_video3_6s_480p.mp4", "queued_seconds": 0, "processing_seconds": 8, "model": "grok_video3"}))
        .await;
    let request = ArchiveVideoRequest {
        task_id: task.clone(),
        bucket: stack.bucket.clone(),
        first_poll_delay_seconds: Some(1),
        poll_interval_seconds: Some(3600),
        ..Default::default()
    };
    let handle = start(&stack, &client, request).await;
    eventually(
        "the first status query",
        Duration::from_secs(30),
        || async {
            handle
                .query(ArchiveVideo::status, (), WorkflowQueryOptions::default())
                .await
                .is_ok_and(|p| p.polls >= 1)
        },
    )
    .await;
    assert!(
        lists(&stack, &format!("GrokTaskId='{task}'"), &task),
        "found by GrokTaskId"
    );
    // Waiting on its timer: GrokPhase says so, and the worker's gauge counts it.
    assert!(
        lists(
            &stack,
            &format!("GrokTaskId='{task}' AND GrokPhase='waiting'"),
            &task
        ),
        "found by GrokPhase"
    );
    eventually(
        "grok_workflows{phase=\"waiting\"} = 1",
        Duration::from_secs(20),
        || async { phase_gauge("waiting").await == Some(1.0) },
    )
    .await;
    // The next timer is an hour away; the task is done eight seconds after its creation:
    // once it is, the signal wakes the workflow.
    tokio::time::sleep(Duration::from_secs(8)).await;
    handle
        .signal(ArchiveVideo::poll_now, (), WorkflowSignalOptions::default())
        .await
        .expect("signal poll_now");
    let archived = result_within(&handle, Duration::from_secs(60))
        .await
        .expect("archived after poll_now");
    assert_eq!(archived.polls, 2);
    eventually(
        "grok_workflows{phase=\"waiting\"} = 0 once it is done",
        Duration::from_secs(20),
        || async { phase_gauge("waiting").await == Some(0.0) },
    )
    .await;
    assert!(lists(
        &stack,
        &format!(
            "GrokTaskId='{task}' AND GrokProviderStatus='completed' AND GrokModel='grok_video3'"
        ),
        &task
    ));
}

/// Whether `temporal workflow list --query QUERY` lists the archive workflow of `task`.
fn lists(stack: &Stack, query: &str, task: &str) -> bool {
    let out = stack.temporal.cli(&["workflow", "list", "--query", query]);
    String::from_utf8_lossy(&out.stdout).contains(&archive_workflow_id(task))
}

#[tokio::test]
async fn cancelling_mid_copy_aborts_the_upload() {
    let stack = Stack::start("cancel_copy").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let client = stack.temporal.client().await;
    // The 15 MB video stalls after 10 MB: the first 8 MiB part is uploaded, the copy hangs.
    let task = stack
        .sim
        .task(json!({
            "video": "grok_video3_30s_720p.mp4", "queued_seconds": 0, "processing_seconds": 0,
            "video_responses": [{"stall_after": 10_000_000, "delay_ms": 50_000}]
        }))
        .await;
    let request = ArchiveVideoRequest {
        task_id: task.clone(),
        bucket: stack.bucket.clone(),
        first_poll_delay_seconds: Some(0),
        poll_interval_seconds: Some(1),
        ..Default::default()
    };
    let handle = start(&stack, &client, request).await;
    eventually(
        "a multipart upload under way",
        Duration::from_secs(60),
        || async { stack.open_uploads().await >= 1 },
    )
    .await;
    handle
        .cancel(
            WorkflowCancelOptions::builder()
                .reason("test".to_owned())
                .build(),
        )
        .await
        .expect("cancel");
    let err = result_within(&handle, Duration::from_secs(60))
        .await
        .expect_err("cancelled");
    assert!(
        matches!(err, WorkflowGetResultError::Cancelled { .. }),
        "{err}"
    );
    assert_eq!(
        stack.open_uploads().await,
        0,
        "the multipart upload was aborted"
    );
    assert!(stack.keys().await.is_empty());
}

/// Starts ArchiveVideo of the 30 s sample, whose download pauses for `pause_ms` after
/// `stall_after` bytes, and returns once the copy is under way.
async fn start_paused_copy(
    stack: &Stack,
    client: &Client,
    stall_after: u64,
    pause_ms: u64,
) -> crate::workflow::Handle {
    let task = stack
        .sim
        .task(json!({
            "video": "grok_video3_30s_720p.mp4", "queued_seconds": 0, "processing_seconds": 0,
            "video_responses": [{"stall_after": stall_after, "delay_ms": pause_ms}]
        }))
        .await;
    let request = ArchiveVideoRequest {
        task_id: task,
        bucket: stack.bucket.clone(),
        first_poll_delay_seconds: Some(0),
        ..Default::default()
    };
    let handle = start(stack, client, request).await;
    eventually("the copy under way", Duration::from_secs(30), || async {
        stack.sim.stats().await["video_requests"].as_u64() == Some(1)
    })
    .await;
    handle
}

#[tokio::test]
async fn sigterm_lets_a_running_copy_finish_then_exits_zero() {
    let stack = Stack::start("sigterm").await;
    let mut cmd = stack.worker_command(Some(API_KEY));
    cmd.env("GROK_SHUTDOWN_GRACE_SECONDS", "30");
    let mut worker = stack.start_worker("worker", &mut cmd);
    let client = stack.temporal.client().await;
    // The copy pauses for 4 s after 1 MB: the signal arrives while it runs.
    let handle = start_paused_copy(&stack, &client, 1_000_000, 4_000).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = worker.terminate(Duration::from_secs(45));
        (status, worker.log_text())
    })
    .await
    .unwrap();
    let (status, log) = status;
    assert!(
        status.is_some_and(|s| s.success()),
        "worker exit {status:?}:\n{log}"
    );
    assert!(log.contains("shutdown requested"), "{log}");
    // The copy finished during the grace period: the video is stored, whoever completes the
    // workflow afterwards.
    let _next = stack.worker("worker-2", Some(API_KEY));
    let archived = result_within(&handle, Duration::from_secs(60))
        .await
        .expect("archived");
    assert_eq!(stack.keys().await, vec![archived.key.clone()]);
    assert!(
        log.contains("video stored"),
        "the copy completed before the worker exited:\n{log}"
    );
}

/// A copy still running when the grace period ends is stopped like a lost worker's: its
/// upload stays open with its checkpoint and the next attempt, on another worker, resumes it
/// from the next byte instead of starting over (nothing aborted, nothing left behind).
#[tokio::test]
async fn sigterm_after_the_grace_period_leaves_the_copy_to_resume() {
    let stack = Stack::start("sigterm_resume").await;
    // moto's ListParts answer needs renaming for the SDK (see `copy::s3_proxy`).
    let s3 = crate::copy::s3_proxy(stack.s3.endpoint.clone()).await;
    let mut cmd = stack.worker_command(Some(API_KEY));
    cmd.env("GROK_SHUTDOWN_GRACE_SECONDS", "2")
        .env("GROK_S3_PART_SIZE_MIB", "5")
        .env("AWS_ENDPOINT_URL", &s3);
    let mut worker = stack.start_worker("worker", &mut cmd);
    let client = stack.temporal.client().await;
    // The download stalls for a minute after 11 MB: two 5 MiB parts are done by then.
    let handle = start_paused_copy(&stack, &client, 11_000_000, 60_000).await;
    // Let the parts land and a heartbeat carry them.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, log) = tokio::task::spawn_blocking(move || {
        let status = worker.terminate(Duration::from_secs(30));
        (status, worker.log_text())
    })
    .await
    .unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "worker exit {status:?}:\n{log}"
    );
    assert!(log.contains("copy stopped"), "{log}");
    assert!(!log.contains("multipart upload aborted"), "{log}");
    let mut next_cmd = stack.worker_command(Some(API_KEY));
    next_cmd
        .env("GROK_S3_PART_SIZE_MIB", "5")
        .env("AWS_ENDPOINT_URL", &s3);
    let next = stack.start_worker("worker-2", &mut next_cmd);
    let archived = result_within(&handle, Duration::from_secs(90))
        .await
        .expect("archived");
    let source = std::fs::read(fixture("grok_video3_30s_720p.mp4")).unwrap();
    let (stored, _) = stack.object(&archived.key).await;
    assert!(stored == source, "stored bytes differ from the source");
    assert_eq!(archived.sha256, sha256_hex(&source));
    let next_log = next.log_text();
    assert!(
        next_log.contains("resuming the earlier upload"),
        "the next attempt resumed:\n{next_log}"
    );
    assert!(!next_log.contains("left behind"), "{next_log}");
    assert_eq!(stack.open_uploads().await, 0);
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let stack = Stack::start("second_signal").await;
    let mut cmd = stack.worker_command(Some(API_KEY));
    cmd.env("GROK_SHUTDOWN_GRACE_SECONDS", "300");
    let mut worker = stack.start_worker("worker", &mut cmd);
    let client = stack.temporal.client().await;
    let _handle = start_paused_copy(&stack, &client, 1_000_000, 120_000).await;
    let pid = worker.child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let status = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = worker.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                worker.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert!(
        status.is_some(),
        "the worker must exit soon after a second signal"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
