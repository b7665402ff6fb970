//! The worker-wide rate cap: hundreds of concurrent workflows polling every second never
//! push the provider past the configured requests per second.

use std::time::Duration;

use futures::future::join_all;
use grok_video_proto::v1::ArchiveVideoRequest;
use grok_video_workflows::{ArchiveVideo, archive_workflow_id};
use serde_json::json;
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowHandle, WorkflowStartOptions};

use crate::stack::{API_KEY, Stack};

const WORKFLOWS: usize = 200;
const CAP: f64 = 10.0;

#[tokio::test]
async fn hundreds_of_workflows_stay_within_the_rate_cap() {
    let stack = Stack::start("rate_cap").await;
    let mut cmd = stack.worker_command(Some(API_KEY));
    cmd.env("GROK_MAX_REQUESTS_PER_SECOND", CAP.to_string());
    let _worker = stack.start_worker("worker", &mut cmd);
    let client = stack.temporal.client().await;
    // Tasks that fail after 6 s: no copies, only status queries.
    let tasks = join_all((0..WORKFLOWS).map(|_| {
        stack
            .sim
            .task(json!({"outcome": "failed", "error": "scripted", "queued_seconds": 0, "processing_seconds": 6}))
    }))
    .await;
    let handles = join_all(tasks.iter().map(|task| {
        let client = client.clone();
        let queue = stack.task_queue.clone();
        let request = ArchiveVideoRequest {
            task_id: task.clone(),
            bucket: stack.bucket.clone(),
            first_poll_delay_seconds: Some(1),
            poll_interval_seconds: Some(1),
            deadline_seconds: Some(600),
            ..Default::default()
        };
        async move {
            let id = archive_workflow_id(&request.task_id);
            client
                .start_workflow(
                    ArchiveVideo::run,
                    request.into(),
                    WorkflowStartOptions::new(queue, id.clone()).build(),
                )
                .await
                .expect("start");
            let handle: WorkflowHandle<Client, ArchiveVideo> = client.get_workflow_handle(id);
            handle
        }
    }))
    .await;
    let results = tokio::time::timeout(
        Duration::from_secs(240),
        join_all(
            handles
                .iter()
                .map(|h| h.get_result(WorkflowGetResultOptions::default())),
        ),
    )
    .await
    .expect("all workflows end within 4 minutes");
    assert!(
        results.iter().all(|r| r.is_err()),
        "every scripted task fails"
    );
    let stats = stack.sim.stats().await;
    let busiest = stats["max_queries_per_second"].as_f64().unwrap();
    let queries = stats["queries"].as_f64().unwrap();
    println!(
        "rate cap {CAP}/s: {WORKFLOWS} workflows, {queries} status queries, busiest second {busiest}"
    );
    assert!(queries >= WORKFLOWS as f64, "every workflow polled");
    // The worker sends them at least 1/CAP s apart; the simulator counts arrivals per
    // wall-clock second, and on a loaded machine one request sent just before a second ends
    // can arrive just after it begins, so one more is tolerated (without the cap, 200
    // workflows polling every second would show about 200).
    assert!(
        busiest <= CAP + 1.0,
        "busiest second had {busiest} queries, cap {CAP} (+1 for delivery jitter)"
    );
}
