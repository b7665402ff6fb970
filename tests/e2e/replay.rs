//! Replay: recorded histories of real runs (completed, failed, cancelled, continued as new,
//! generated) in `tests/histories/` are replayed against the current workflow code, so a
//! change that would break workflows already running fails CI. The `*.v1.json` files were
//! recorded before the `GrokPhase` search attribute (a `patched` branch) and keep the old
//! path covered. `make record-histories`
//! records them anew (after a deliberate, versioned change).

use std::{path::PathBuf, time::Duration};

use grok_video_proto::v1::{ArchiveVideoRequest, GenerateVideoRequest};
use grok_video_workflows::{ArchiveVideo, GenerateVideo, archive_workflow_id};
use serde_json::json;
use temporalio_client::{
    Client, WorkflowCancelOptions, WorkflowGetResultOptions, WorkflowHandle, WorkflowHistory,
    WorkflowQueryOptions, WorkflowStartOptions,
};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

use crate::stack::{API_KEY, Stack, eventually, repo};

fn histories_dir() -> PathBuf {
    repo().join("tests/histories")
}

#[tokio::test]
async fn recorded_histories_replay_against_the_current_code() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(histories_dir())
        .expect("tests/histories exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "archive_completed",
        "archive_failed",
        "archive_cancelled",
        "archive_continued_as_new",
        "generate_completed",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "tests/histories/{expected}.json is missing"
        );
    }
    let replayer = WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .register_workflow::<ArchiveVideo>()
            .unwrap()
            .register_workflow::<GenerateVideo>()
            .unwrap()
            .build(),
    )
    .unwrap();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let history = WorkflowHistory::from_json(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        replayer
            .replay_workflow(history)
            .await
            .unwrap_or_else(|e| panic!("{} no longer replays: {e}", file.display()));
    }
}

/// Records the histories. Run by `make record-histories`, not by `make test`.
#[tokio::test]
#[ignore = "records tests/histories; run with `make record-histories`"]
async fn record_histories() {
    let stack = Stack::start("record_histories").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let client = stack.temporal.client().await;
    let archive = |task_id: &str| ArchiveVideoRequest {
        task_id: task_id.to_owned(),
        bucket: stack.bucket.clone(),
        first_poll_delay_seconds: Some(1),
        poll_interval_seconds: Some(1),
        deadline_seconds: Some(300),
        ..Default::default()
    };
    let start = |request: ArchiveVideoRequest| {
        let client = client.clone();
        let queue = stack.task_queue.clone();
        async move {
            let id = archive_workflow_id(&request.task_id);
            client
                .start_workflow(
                    ArchiveVideo::run,
                    request.into(),
                    WorkflowStartOptions::new(queue, id.clone()).build(),
                )
                .await
                .unwrap();
            let handle: WorkflowHandle<Client, ArchiveVideo> = client.get_workflow_handle(id);
            handle
        }
    };
    let wait = |handle: WorkflowHandle<Client, ArchiveVideo>| async move {
        let _ = tokio::time::timeout(
            Duration::from_secs(120),
            handle.get_result(WorkflowGetResultOptions::default()),
        )
        .await
        .expect("finished");
    };

    let completed = stack
        .sim
        .task(json!({"video": "grok_video3_6s_480p.mp4"}))
        .await;
    wait(start(archive(&completed)).await).await;
    save(
        &client,
        "archive_completed",
        &archive_workflow_id(&completed),
        None,
    )
    .await;

    let failed = stack
        .sim
        .task(json!({"outcome": "failed", "error": "content policy", "processing_seconds": 1}))
        .await;
    wait(start(archive(&failed)).await).await;
    save(
        &client,
        "archive_failed",
        &archive_workflow_id(&failed),
        None,
    )
    .await;

    let cancelled = stack.sim.task(json!({"processing_seconds": 600})).await;
    let handle = start(ArchiveVideoRequest {
        poll_interval_seconds: Some(3600),
        ..archive(&cancelled)
    })
    .await;
    eventually("a first poll", Duration::from_secs(30), || async {
        handle
            .query(ArchiveVideo::status, (), WorkflowQueryOptions::default())
            .await
            .is_ok_and(|p| p.polls >= 1)
    })
    .await;
    handle
        .cancel(WorkflowCancelOptions::default())
        .await
        .unwrap();
    wait(handle).await;
    save(
        &client,
        "archive_cancelled",
        &archive_workflow_id(&cancelled),
        None,
    )
    .await;

    let long = stack
        .sim
        .task(json!({"video": "grok_video3_6s_480p.mp4", "processing_seconds": 6}))
        .await;
    wait(
        start(ArchiveVideoRequest {
            max_polls_per_run: Some(2),
            ..archive(&long)
        })
        .await,
    )
    .await;
    let first_run = first_run_id(&stack, &archive_workflow_id(&long));
    save(
        &client,
        "archive_continued_as_new",
        &archive_workflow_id(&long),
        Some(&first_run),
    )
    .await;

    let generate = GenerateVideoRequest {
        model: "grok_video3".into(),
        prompt: "a lighthouse".into(),
        duration_seconds: Some(6),
        bucket: stack.bucket.clone(),
        first_poll_delay_seconds: Some(1),
        poll_interval_seconds: Some(1),
        ..Default::default()
    };
    client
        .start_workflow(
            GenerateVideo::run,
            generate.into(),
            WorkflowStartOptions::new(stack.task_queue.clone(), "generate-recorded".to_owned())
                .build(),
        )
        .await
        .unwrap();
    let handle: WorkflowHandle<Client, GenerateVideo> =
        client.get_workflow_handle("generate-recorded".to_owned());
    tokio::time::timeout(
        Duration::from_secs(120),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("finished")
    .expect("generated");
    save(&client, "generate_completed", "generate-recorded", None).await;
}

/// The first run of a chain of runs (the one that continued as new).
fn first_run_id(stack: &Stack, workflow_id: &str) -> String {
    let out = stack.temporal.cli(&[
        "workflow",
        "list",
        "--output",
        "json",
        "--query",
        &format!("WorkflowId='{workflow_id}'"),
    ]);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let oldest = list.last().expect("runs listed");
    oldest["execution"]["runId"].as_str().unwrap().to_owned()
}

/// Fetches one run's history with the SDK (its JSON form is what the replayer reads) and
/// writes it to tests/histories/NAME.json.
async fn save(client: &Client, name: &str, workflow_id: &str, run_id: Option<&str>) {
    use temporalio_client::{NamespacedClient, tonic};
    use temporalio_common::protos::temporal::api::{
        common::v1::WorkflowExecution, history::v1::History,
        workflowservice::v1::GetWorkflowExecutionHistoryRequest,
    };
    let mut service = client.connection().workflow_service();
    let mut events = Vec::new();
    let mut next_page_token = Vec::new();
    loop {
        let page = service
            .get_workflow_execution_history(tonic::Request::new(
                GetWorkflowExecutionHistoryRequest {
                    namespace: client.namespace(),
                    execution: Some(WorkflowExecution {
                        workflow_id: workflow_id.to_owned(),
                        run_id: run_id.unwrap_or_default().to_owned(),
                    }),
                    next_page_token: next_page_token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        events.extend(page.history.map(|h| h.events).unwrap_or_default());
        if page.next_page_token.is_empty() {
            break;
        }
        next_page_token = page.next_page_token;
    }
    let text = serde_json::to_string_pretty(&History { events }).unwrap();
    assert!(
        !text.contains(API_KEY),
        "a history must never hold the API key"
    );
    WorkflowHistory::from_json(text.as_bytes()).unwrap();
    std::fs::write(histories_dir().join(format!("{name}.json")), text).unwrap();
}
