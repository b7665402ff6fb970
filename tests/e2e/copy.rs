//! The copy engine under faults, end to end: a worker killed mid-copy whose successor resumes
//! the multipart upload with an HTTP Range request (or, when the host ignores ranges, aborts
//! it and starts over), bodies cut short, HTML instead of a video, videos over the size limit,
//! expired links, destination conflicts, redirects and S3 without the newer checksums.
//!
//! Every scenario runs at once on one stack, each in a bucket of its own, its workers on
//! task queues of their own (one per worker setting), and asserts that no multipart upload is
//! left and that the bucket holds nothing or exactly the right object. The crash scenario
//! sets the pace (the dead worker's attempt ends with the 30 s heartbeat timeout): about 70 s.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use grok_video_proto::v1::{ArchiveVideoRequest, ArchivedVideo, CopyCheckpoint};
use grok_video_workflows::{ArchiveVideo, activities::CopyVideoToS3, archive_workflow_id};
use serde_json::{Value, json};
use temporalio_client::{
    Client, NamespacedClient, WorkflowGetResultOptions, WorkflowHandle, WorkflowStartOptions,
    errors::WorkflowGetResultError, tonic,
};
use temporalio_common::protos::temporal::api::{
    common::v1::WorkflowExecution, failure::v1::failure::FailureInfo,
    workflowservice::v1::DescribeWorkflowExecutionRequest,
};

use crate::stack::{Proc, Stack, eventually, fixture};
use crate::workflow::sha256_hex;

const SMALL: &str = "grok_video3_6s_480p.mp4";
const LARGE: &str = "grok_video3_30s_720p.mp4";
const MIB: u64 = 1024 * 1024;
const RESULT_WITHIN: Duration = Duration::from_secs(150);

/// Task queues, one per worker setting.
const MAIN: &str = "tq-copy-main";
const CRASH: &str = "tq-copy-crash";
const LIMIT: &str = "tq-copy-limit";
const SUFFIX: &str = "tq-copy-suffix";
const CHECKSUM: &str = "tq-copy-checksum";

/// Buckets whose ListParts answers the proxy passes on as moto sends them.
const RAW_LIST: &str = "rawlist";
/// Buckets whose second part the S3 proxy fails once per upload.
const PART_FAIL: &str = "partfail";

type Handle = WorkflowHandle<Client, ArchiveVideo>;
type Outcome = Result<ArchivedVideo, WorkflowGetResultError>;

struct Env {
    stack: Stack,
    client: Client,
    /// The crash scenario's worker, killed mid-copy, and its settings.
    crash_worker: std::sync::Mutex<Option<Proc>>,
    crash_env: Vec<(String, String)>,
    /// The others, the main one first.
    workers: Vec<Proc>,
}

fn source(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

/// A task that is complete at its first status query, with `extra` script fields.
async fn task(env: &Env, video: &str, extra: Value) -> String {
    let mut script = json!({"video": video, "queued_seconds": 0, "processing_seconds": 0});
    script
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    env.stack.sim.scripted(script).await
}

/// Starts `ArchiveVideo` for `task_id` on `queue` under `workflow_id` (default
/// `archive-<task_id>`).
async fn archive(
    env: &Env,
    queue: &str,
    task_id: &str,
    bucket: &str,
    workflow_id: Option<String>,
) -> Handle {
    let request = ArchiveVideoRequest {
        task_id: task_id.to_owned(),
        bucket: bucket.to_owned(),
        first_poll_delay_seconds: Some(0),
        poll_interval_seconds: Some(1),
        deadline_seconds: Some(600),
        ..Default::default()
    };
    let id = workflow_id.unwrap_or_else(|| archive_workflow_id(task_id));
    env.client
        .start_workflow(
            ArchiveVideo::run,
            request.into(),
            WorkflowStartOptions::new(queue.to_owned(), id.clone()).build(),
        )
        .await
        .expect("start ArchiveVideo");
    env.client.get_workflow_handle(id)
}

async fn outcome(handle: &Handle) -> Outcome {
    tokio::time::timeout(
        RESULT_WITHIN,
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("workflow result within the deadline")
}

/// The failure type and message a caller sees; panics when the workflow succeeded.
fn failure_of(outcome: &Outcome, what: &str) -> (String, String) {
    let err = match outcome {
        Ok(archived) => panic!("{what}: expected a failed workflow, got {archived:?}"),
        Err(err) => err,
    };
    let WorkflowGetResultError::Failed(incoming) = err else {
        panic!("{what}: expected a failed workflow, got {err}");
    };
    let failure = incoming.failure();
    let kind = match &failure.failure_info {
        Some(FailureInfo::ApplicationFailureInfo(info)) => info.r#type.clone(),
        other => panic!("{what}: expected an application failure, got {other:?}"),
    };
    (kind, failure.message.clone())
}

/// Asserts a failure of type `kind` whose message contains `text`.
fn assert_failed(outcome: &Outcome, kind: &str, text: &str, what: &str) {
    let (got, message) = failure_of(outcome, what);
    assert_eq!(got, kind, "{what}: {message}");
    assert!(
        message.contains(text),
        "{what}: message {message:?} lacks {text:?}"
    );
}

/// Asserts the archive stored exactly `video` at `key`, with its hash in the result and the
/// metadata, and that `bucket` holds `keys` and no open multipart upload.
async fn assert_stored(
    env: &Env,
    outcome: &Outcome,
    bucket: &str,
    key: &str,
    video: &str,
    keys: &[&str],
    what: &str,
) -> ArchivedVideo {
    let archived = match outcome {
        Ok(a) => a.clone(),
        Err(e) => panic!("{what}: expected an archive, got {e}"),
    };
    let bytes = source(video);
    let sha = sha256_hex(&bytes);
    assert_eq!(archived.bucket, bucket, "{what}");
    assert_eq!(archived.key, key, "{what}");
    assert_eq!(archived.size_bytes, bytes.len() as i64, "{what}");
    assert_eq!(archived.sha256, sha, "{what}");
    let (stored, meta) = env.stack.object_in(bucket, key).await;
    assert!(
        stored == bytes,
        "{what}: the stored object ({} bytes) differs from the source ({} bytes)",
        stored.len(),
        bytes.len()
    );
    assert_eq!(meta.get("sha256"), Some(&sha), "{what}: sha256 metadata");
    assert_eq!(
        meta.get("task-id"),
        Some(&archived.task_id),
        "{what}: task-id metadata"
    );
    let mut want: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    want.sort();
    let mut got = env.stack.keys_in(bucket).await;
    got.sort();
    assert_eq!(got, want, "{what}: keys in the bucket");
    assert_eq!(
        env.stack.open_uploads_in(bucket).await,
        0,
        "{what}: open uploads"
    );
    archived
}

/// Asserts `bucket` holds exactly `keys` (usually none) and no open multipart upload.
async fn assert_nothing_stored(env: &Env, bucket: &str, keys: &[&str], what: &str) {
    let mut got = env.stack.keys_in(bucket).await;
    got.sort();
    assert_eq!(got, keys, "{what}: keys in the bucket");
    assert_eq!(
        env.stack.open_uploads_in(bucket).await,
        0,
        "{what}: open uploads"
    );
}

/// The simulator's report of a task: queries, video requests and their Range headers.
async fn report(env: &Env, task_id: &str) -> Value {
    env.stack.sim.task_report(task_id).await
}

/// The running copy's attempt and the checkpoint its last heartbeat sent to the server.
async fn heartbeat_checkpoint(env: &Env, workflow_id: &str) -> Option<(i32, CopyCheckpoint)> {
    let described = env
        .client
        .connection()
        .workflow_service()
        .describe_workflow_execution(tonic::Request::new(DescribeWorkflowExecutionRequest {
            namespace: env.client.namespace(),
            execution: Some(WorkflowExecution {
                workflow_id: workflow_id.to_owned(),
                run_id: String::new(),
            }),
        }))
        .await
        .ok()?
        .into_inner();
    let activity = described.pending_activities.iter().find(|a| {
        a.activity_type
            .as_ref()
            .is_some_and(|t| t.name == CopyVideoToS3::NAME)
    })?;
    let payload = activity.heartbeat_details.as_ref()?.payloads.last()?;
    let checkpoint = serde_json::from_slice(&payload.data).ok()?;
    Some((activity.attempt, checkpoint))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_engine_under_faults() {
    let started = Instant::now();
    let stack = Stack::start("copy").await;
    // The crash scenario's workers: 5 MiB parts, so the 15 MB video has three; S3 through the
    // proxy that gives moto's ListParts answer the root element S3 gives it.
    let proxy = s3_proxy(stack.s3.endpoint.clone()).await;
    let crash_env = vec![
        ("GROK_S3_PART_SIZE_MIB".to_owned(), "5".to_owned()),
        ("AWS_ENDPOINT_URL".to_owned(), proxy),
    ];
    let crash_env_ref: Vec<(&str, &str)> = crash_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let workers = stack.workers_on_queues(&[
        ("worker-main", MAIN, &[]),
        ("worker-limit", LIMIT, &[("GROK_MAX_VIDEO_MIB", "1")]),
        (
            "worker-suffix",
            SUFFIX,
            &[("GROK_S3_ON_CONFLICT", "suffix")],
        ),
        (
            "worker-checksum",
            CHECKSUM,
            &[
                ("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required"),
                ("GROK_S3_PART_SIZE_MIB", "5"),
            ],
        ),
        ("worker-crash", CRASH, &crash_env_ref),
    ]);
    let mut workers = workers;
    let crash_worker = workers.pop();
    let client = stack.temporal.client().await;
    let env = Arc::new(Env {
        stack,
        client,
        crash_worker: std::sync::Mutex::new(crash_worker),
        crash_env,
        workers,
    });
    eprintln!("stack and workers up after {:?}", started.elapsed());

    type Scenario = fn(Arc<Env>) -> futures::future::BoxFuture<'static, ()>;
    let scenarios: [(&str, Scenario); 8] = [
        ("resume after a crash", |e| Box::pin(resume_after_crash(e))),
        ("short body", |e| Box::pin(short_body(e))),
        ("not a video", |e| Box::pin(not_a_video(e))),
        ("too large", |e| Box::pin(too_large(e))),
        ("expired url", |e| Box::pin(expired_url(e))),
        ("destination conflicts", |e| Box::pin(conflicts(e))),
        ("redirects", |e| Box::pin(redirects(e))),
        ("checksums when_required", |e| Box::pin(checksum(e))),
    ];
    let handles: Vec<_> = scenarios
        .iter()
        .map(|(name, run)| {
            let env = env.clone();
            let run = *run;
            let name = *name;
            tokio::spawn(async move {
                let t = Instant::now();
                run(env).await;
                eprintln!("scenario {name:?} passed after {:?}", t.elapsed());
            })
        })
        .collect();
    let mut problems = Vec::new();
    for ((name, _), handle) in scenarios.iter().zip(handles) {
        if let Err(err) = handle.await {
            let why = match err.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panicked".to_owned()),
                Err(err) => err.to_string(),
            };
            problems.push(format!("{name}: {why}"));
        }
    }
    let stats = env.stack.sim.stats().await;
    assert_eq!(
        stats["video_requests_with_auth"], 0,
        "no video request (redirects included) carried an Authorization header"
    );
    assert_eq!(stats["creates"], 0, "archiving never creates a task");
    eprintln!("all scenarios done after {:?}", started.elapsed());
    assert!(
        problems.is_empty(),
        "{} of {} scenarios failed (logs in {}):\n{}",
        problems.len(),
        scenarios.len(),
        env.stack.dir.display(),
        problems.join("\n")
    );
}

/// A worker dies while the 15 MB video stalls after 12 MB: parts 1-2 (5 MiB each) are
/// uploaded and their checkpoint heartbeated. The next attempt, on a new worker after the
/// heartbeat timeout, continues the same upload from `Range: bytes=10485760-`; with a host
/// that ignores ranges, or when S3's list of the parts cannot be read (moto's own ListParts
/// answer), it aborts the old upload and starts over. All end byte-exact with no upload left.
async fn resume_after_crash(env: Arc<Env>) {
    let bucket = env.stack.create_bucket("resume").await;
    let raw_bucket = env.stack.create_bucket(RAW_LIST).await;
    // The stall outlasts the test; the worker is killed during it.
    let stall = json!([{"stall_after": 12_000_000, "delay_ms": 300_000}]);
    let resumed = task(&env, LARGE, json!({"video_responses": stall.clone()})).await;
    let restarted = task(
        &env,
        LARGE,
        json!({"video_responses": stall.clone(), "ignore_range": true}),
    )
    .await;
    let unlisted = task(&env, LARGE, json!({"video_responses": stall})).await;
    let cases = [
        (&resumed, &bucket),
        (&restarted, &bucket),
        (&unlisted, &raw_bucket),
    ];
    let mut handles = Vec::new();
    for (id, bucket) in cases {
        handles.push(archive(&env, CRASH, id, bucket, None).await);
    }
    // Heartbeats reach the server at most every 24 s (0.8 × the 30 s heartbeat timeout):
    // wait until each copy's checkpoint with both parts is there.
    let committed = 2 * 5 * MIB;
    let deadline = Instant::now() + Duration::from_secs(75);
    for (id, _) in cases {
        let workflow_id = archive_workflow_id(id);
        let mut last = None;
        let checkpoint = loop {
            let seen = heartbeat_checkpoint(&env, &workflow_id).await;
            if let Some((1, cp)) = &seen
                && cp.committed_bytes == committed as i64
            {
                break cp.clone();
            }
            last = seen.or(last);
            assert!(
                Instant::now() < deadline,
                "no heartbeat with {committed} committed bytes for {workflow_id} in time; last: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert_eq!(checkpoint.parts.len(), 2, "{checkpoint:?}");
        assert!(!checkpoint.upload_id.is_empty());
        assert_eq!(checkpoint.total_bytes, source(LARGE).len() as i64);
    }
    let dead = env.crash_worker.lock().unwrap().take();
    let mut dead = dead.expect("the crash worker");
    dead.kill();
    assert_eq!(
        env.stack.open_uploads_in(&bucket).await,
        2,
        "the dead worker's uploads are open"
    );
    assert_eq!(env.stack.open_uploads_in(&raw_bucket).await, 1);
    let env2 = env.clone();
    let next_worker = tokio::task::spawn_blocking(move || {
        let mut settings: Vec<(&str, &str)> = vec![("GROK_TASK_QUEUE", CRASH)];
        settings.extend(env2.crash_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        env2.stack
            .worker_with_env("worker-crash-2", Some(crate::stack::API_KEY), &settings)
    })
    .await
    .unwrap();
    let outcomes = futures::future::join_all(handles.iter().map(outcome)).await;

    let key = |id: &str| format!("videos/{id}.mp4");
    let (k1, k2, k3) = (key(&resumed), key(&restarted), key(&unlisted));
    let both = [k1.as_str(), k2.as_str()];
    assert_stored(&env, &outcomes[0], &bucket, &k1, LARGE, &both, "resumed").await;
    assert_stored(&env, &outcomes[1], &bucket, &k2, LARGE, &both, "restarted").await;
    assert_stored(
        &env,
        &outcomes[2],
        &raw_bucket,
        &k3,
        LARGE,
        &[&k3],
        "unlisted",
    )
    .await;
    let range = format!("bytes={committed}-");
    let r = report(&env, &resumed).await;
    assert_eq!(r["video_ranges"], json!(["", range]), "resumed: {r}");
    let r = report(&env, &restarted).await;
    assert_eq!(
        r["video_ranges"],
        json!(["", range, ""]),
        "restarted: the ignored range, then the whole video: {r}"
    );
    let r = report(&env, &unlisted).await;
    assert_eq!(
        r["video_ranges"],
        json!(["", ""]),
        "unlisted: the whole video again: {r}"
    );
    let log = next_worker.log_text();
    let said = |text: &str, id: &str| log.lines().any(|l| l.contains(text) && l.contains(id));
    assert!(
        said("resuming the earlier upload", &resumed),
        "the new worker says it resumed {resumed}"
    );
    for id in [&restarted, &unlisted] {
        assert!(
            said("starting over", id),
            "the new worker says it started {id} over"
        );
    }
    assert!(
        log.contains("cannot list the earlier upload's parts"),
        "the new worker says why {unlisted} starts over"
    );
    for (id, _) in cases {
        assert!(
            !said("copy failed", id),
            "{id}: one attempt after the crash"
        );
    }
}

/// Whether the request `target` (an UploadPart) is the first with its upload id and part
/// number: the one the proxy fails.
fn failed_once(target: &str) -> bool {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap();
    if seen.iter().any(|t| t == target) {
        return false;
    }
    seen.push(target.to_owned());
    true
}

/// moto (5.2) names the root element of its ListParts answer `ListPartsResponse`; S3 and
/// MinIO name it `ListPartsResult`, the only name the Rust SDK reads. The crash scenario's
/// workers reach moto through this proxy, which renames it (except in buckets ending in
/// `-rawlist`, whose answers it passes on unchanged); it forwards everything else as it is,
/// except that in buckets ending in `-partfail` it fails the first UploadPart of part 2 of
/// each upload with a 500.
pub(crate) async fn s3_proxy(upstream: String) -> String {
    use axum::{body::Body, extract::Request, http::header, response::IntoResponse};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let http = reqwest::Client::new();
    let forward = move |request: Request| {
        let (http, upstream) = (http.clone(), upstream.clone());
        async move {
            let (parts, body) = request.into_parts();
            let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
                return axum::http::StatusCode::BAD_REQUEST.into_response();
            };
            let target = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let bucket = parts.uri.path().split('/').nth(1).unwrap_or_default();
            if bucket.ends_with(&format!("-{PART_FAIL}"))
                && parts.method == axum::http::Method::PUT
                && target.contains("partNumber=2&")
                && failed_once(&target)
            {
                let error = "<Error><Code>InternalError</Code>\
                    <Message>scripted part failure</Message></Error>";
                return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, error).into_response();
            }
            let mut headers = parts.headers;
            for hop in [
                header::HOST,
                header::CONTENT_LENGTH,
                header::TRANSFER_ENCODING,
                header::CONNECTION,
                header::EXPECT,
            ] {
                headers.remove(hop);
            }
            let sent = http
                .request(parts.method.clone(), format!("{upstream}{target}"))
                .headers(headers)
                .body(body)
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    return (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response();
                }
            };
            let status = response.status();
            let mut headers = response.headers().clone();
            let Ok(mut bytes) = response.bytes().await else {
                return axum::http::StatusCode::BAD_GATEWAY.into_response();
            };
            let raw = bucket.ends_with(&format!("-{RAW_LIST}"));
            if target.contains("x-id=ListParts") && !raw {
                let text = String::from_utf8_lossy(&bytes)
                    .replace("<ListPartsResponse", "<ListPartsResult")
                    .replace("</ListPartsResponse>", "</ListPartsResult>");
                bytes = text.into_bytes().into();
            }
            for hop in [header::TRANSFER_ENCODING, header::CONNECTION] {
                headers.remove(hop);
            }
            if parts.method != axum::http::Method::HEAD {
                headers.remove(header::CONTENT_LENGTH);
            }
            let mut out = Body::from(bytes).into_response();
            *out.status_mut() = status;
            out.headers_mut().extend(headers);
            out
        }
    };
    let app = axum::Router::new().fallback(forward);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A 15 MB body cut at 12 MB of its announced length (one 8 MiB part uploaded): the failed
/// attempt aborts its upload (checked while the next attempt stalls), the retry stores the
/// whole video.
async fn short_body(env: Arc<Env>) {
    let bucket = env.stack.create_bucket("short").await;
    let id = task(
        &env,
        LARGE,
        json!({"video_responses": [
            {"stall_after": 9_000_000, "delay_ms": 4000, "truncate_at": 12_000_000},
            // Stalled before its first byte, so this attempt has not opened an upload yet.
            {"stall_after": 0, "delay_ms": 6000},
        ]}),
    )
    .await;
    let handle = archive(&env, MAIN, &id, &bucket, None).await;
    eventually(
        "the first attempt's multipart upload",
        Duration::from_secs(60),
        || async { env.stack.open_uploads_in(&bucket).await == 1 },
    )
    .await;
    eventually("the second download", Duration::from_secs(60), || async {
        report(&env, &id).await["video_requests"] == 2
    })
    .await;
    assert_nothing_stored(&env, &bucket, &[], "after the cut attempt").await;
    let result = outcome(&handle).await;
    let key = format!("videos/{id}.mp4");
    assert_stored(&env, &result, &bucket, &key, LARGE, &[&key], "short body").await;
    assert_eq!(report(&env, &id).await["video_requests"], 2);
}

/// A 200 HTML page every time: `NotAVideo` after three attempts, nothing stored.
async fn not_a_video(env: Arc<Env>) {
    let bucket = env.stack.create_bucket("html").await;
    let id = task(
        &env,
        SMALL,
        json!({"video_responses": [
            {"status": 200, "body": "<!DOCTYPE html><html><body>Please sign in</body></html>", "repeat": 10}
        ]}),
    )
    .await;
    let result = outcome(&archive(&env, MAIN, &id, &bucket, None).await).await;
    assert_failed(&result, "NotAVideo", "<!DOCTYPE html>", "html");
    assert_eq!(report(&env, &id).await["video_requests"], 3);
    assert_nothing_stored(&env, &bucket, &[], "html").await;
}

/// Over `GROK_MAX_VIDEO_MIB=1`: `VideoTooLarge` from the Content-Length before any byte is
/// stored, and from the count of a chunked body; never retried, nothing stored.
async fn too_large(env: Arc<Env>) {
    let bucket = env.stack.create_bucket("large").await;
    let announced = task(&env, LARGE, json!({})).await;
    let chunked = task(
        &env,
        LARGE,
        json!({"video_responses": [{"no_content_length": true}]}),
    )
    .await;
    let h1 = archive(&env, LIMIT, &announced, &bucket, None).await;
    let h2 = archive(&env, LIMIT, &chunked, &bucket, None).await;
    let (r1, r2) = futures::join!(outcome(&h1), outcome(&h2));
    assert_failed(
        &r1,
        "VideoTooLarge",
        "GROK_MAX_VIDEO_MIB",
        "with Content-Length",
    );
    assert_failed(&r2, "VideoTooLarge", "GROK_MAX_VIDEO_MIB", "chunked");
    for id in [&announced, &chunked] {
        assert_eq!(report(&env, id).await["video_requests"], 1, "{id}");
    }
    assert_nothing_stored(&env, &bucket, &[], "too large").await;
}

/// A link that answers 410 every time: two fresh URLs asked of the provider (status
/// queries), then `VideoUrlExpired`; a 403 once is followed by an archive.
async fn expired_url(env: Arc<Env>) {
    let bucket = env.stack.create_bucket("expired").await;
    let gone = task(
        &env,
        SMALL,
        json!({"video_responses": [{"status": 410, "body": "gone", "repeat": 10}]}),
    )
    .await;
    let once = task(
        &env,
        SMALL,
        json!({"video_responses": [{"status": 403, "body": "<Error><Code>AccessDenied</Code></Error>", "headers": {"Content-Type": "application/xml"}}]}),
    )
    .await;
    let h1 = archive(&env, MAIN, &gone, &bucket, None).await;
    let h2 = archive(&env, MAIN, &once, &bucket, None).await;
    let (r1, r2) = futures::join!(outcome(&h1), outcome(&h2));
    assert_failed(&r1, "VideoUrlExpired", "HTTP 410", "410 every time");
    let r = report(&env, &gone).await;
    assert_eq!(r["queries"], 3, "one poll and two re-queries: {r}");
    assert_eq!(r["video_requests"], 3, "{r}");
    let key = format!("videos/{once}.mp4");
    assert_stored(&env, &r2, &bucket, &key, SMALL, &[&key], "403 once").await;
    let r = report(&env, &once).await;
    assert_eq!(r["queries"], 2, "one poll and one re-query: {r}");
    assert_eq!(r["video_requests"], 2, "{r}");
}

/// Another task's object at the key: `DestinationExists` by default, `<key>-2.mp4` with the
/// suffix policy, the other object untouched either way; archiving the same task again (a
/// new workflow id) finds its own object and downloads nothing.
async fn conflicts(env: Arc<Env>) {
    let bucket = env.stack.create_bucket("conflict").await;
    let theirs = b"another task's video";
    let other_meta = [("task-id", "video_someone_else"), ("sha256", "0000")];
    let refused = task(&env, SMALL, json!({})).await;
    let suffixed = task(&env, SMALL, json!({})).await;
    let again = task(&env, SMALL, json!({})).await;
    let key = |id: &str| format!("videos/{id}.mp4");
    for id in [&refused, &suffixed] {
        env.stack
            .put_object_in(&bucket, &key(id), theirs, &other_meta)
            .await;
    }
    let h1 = archive(&env, MAIN, &refused, &bucket, None).await;
    let h2 = archive(&env, SUFFIX, &suffixed, &bucket, None).await;
    let h3 = archive(&env, MAIN, &again, &bucket, None).await;
    let (r1, r2, r3) = futures::join!(outcome(&h1), outcome(&h2), outcome(&h3));

    assert_failed(
        &r1,
        "DestinationExists",
        "video_someone_else",
        "default policy",
    );
    assert_eq!(report(&env, &refused).await["video_requests"], 0);
    let suffix_key = format!("videos/{suffixed}-2.mp4");
    let all = [
        key(&refused),
        key(&suffixed),
        suffix_key.clone(),
        key(&again),
    ];
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let first = assert_stored(&env, &r2, &bucket, &suffix_key, SMALL, &all, "suffix").await;
    let own = assert_stored(&env, &r3, &bucket, &key(&again), SMALL, &all, "plain").await;
    for id in [&refused, &suffixed] {
        let (bytes, meta) = env.stack.object_in(&bucket, &key(id)).await;
        assert_eq!(bytes, theirs, "the other task's object is unchanged");
        assert_eq!(
            meta.get("task-id").map(String::as_str),
            Some("video_someone_else")
        );
        assert_eq!(meta.get("sha256").map(String::as_str), Some("0000"));
    }

    // The same tasks again under new workflow ids: their own objects, no download.
    let h4 = archive(
        &env,
        SUFFIX,
        &suffixed,
        &bucket,
        Some(format!("again-{suffixed}")),
    )
    .await;
    let h5 = archive(&env, MAIN, &again, &bucket, Some(format!("again-{again}"))).await;
    let (r4, r5) = futures::join!(outcome(&h4), outcome(&h5));
    let second = assert_stored(&env, &r4, &bucket, &suffix_key, SMALL, &all, "suffix again").await;
    let own_again = assert_stored(&env, &r5, &bucket, &key(&again), SMALL, &all, "again").await;
    assert_eq!(second.etag, first.etag, "the same object");
    assert_eq!(own_again.etag, own.etag, "the same object");
    for id in [&suffixed, &again] {
        assert_eq!(
            report(&env, id).await["video_requests"],
            1,
            "{id}: downloaded once"
        );
    }
}

/// A redirect to another path is followed, five in a chain too; a sixth is refused
/// (`UnsafeVideoUrl`, never retried) and nothing is stored.
async fn redirects(env: Arc<Env>) {
    let bucket = env.stack.create_bucket("redirect").await;
    let elsewhere = format!("{}/files/{SMALL}", env.stack.sim.url);
    let one = task(
        &env,
        SMALL,
        json!({"video_responses": [{"status": 302, "headers": {"Location": elsewhere}}]}),
    )
    .await;
    // Relative Locations back to the task's own path, each hop a different URL.
    let chain = |n: usize| -> Value {
        (1..=n)
            .map(
                |hop| json!({"status": 302, "headers": {"Location": format!("{SMALL}?hop={hop}")}}),
            )
            .collect()
    };
    let five = task(&env, SMALL, json!({"video_responses": chain(5)})).await;
    let six = task(&env, SMALL, json!({"video_responses": chain(6)})).await;
    let handles = [
        archive(&env, MAIN, &one, &bucket, None).await,
        archive(&env, MAIN, &five, &bucket, None).await,
        archive(&env, MAIN, &six, &bucket, None).await,
    ];
    let outcomes = futures::future::join_all(handles.iter().map(outcome)).await;
    assert_failed(
        &outcomes[2],
        "UnsafeVideoUrl",
        "more than 5 redirects",
        "six redirects",
    );
    assert_eq!(
        report(&env, &six).await["video_requests"],
        6,
        "the first request and five redirects followed"
    );
    let keys = [format!("videos/{one}.mp4"), format!("videos/{five}.mp4")];
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_stored(
        &env,
        &outcomes[0],
        &bucket,
        keys[0],
        SMALL,
        &keys,
        "one redirect",
    )
    .await;
    assert_stored(
        &env,
        &outcomes[1],
        &bucket,
        keys[1],
        SMALL,
        &keys,
        "five redirects",
    )
    .await;
    assert_eq!(report(&env, &one).await["video_requests"], 1);
    assert_eq!(report(&env, &five).await["video_requests"], 6);
    let log = env.workers[0].log_text();
    assert!(
        !log.lines()
            .any(|l| l.contains("copy failed") && l.contains(&five)),
        "five redirects are followed in one attempt"
    );
}

/// `AWS_REQUEST_CHECKSUM_CALCULATION=when_required` (servers without S3's newer checksums):
/// a multipart archive is byte-exact.
async fn checksum(env: Arc<Env>) {
    let bucket = env.stack.create_bucket("checksum").await;
    let id = task(&env, LARGE, json!({})).await;
    let result = outcome(&archive(&env, CHECKSUM, &id, &bucket, None).await).await;
    let key = format!("videos/{id}.mp4");
    assert_stored(
        &env,
        &result,
        &bucket,
        &key,
        LARGE,
        &[&key],
        "when_required",
    )
    .await;
}

/// `grok-video-worker copy` from a shell: re-running it is idempotent, another source at the
/// same key is refused (the default task id comes from the URL), an empty key is an error, and
/// an upload a killed copy left open at the key is aborted.
#[tokio::test]
async fn the_copy_command_is_idempotent_and_cleans_up() {
    let stack = Stack::start("copy_cli").await;
    let bucket = stack.create_bucket("cli").await;
    let url = |video: &str| format!("{}/files/{video}", stack.sim.url);
    let copy = |source: String, destination: String| {
        let mut cmd = stack.command("copy");
        cmd.arg(source).arg(destination).args(["--output", "json"]);
        async move {
            let out = tokio::task::spawn_blocking(move || cmd.output().expect("run copy"))
                .await
                .unwrap();
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (out.status.success(), text(&out.stdout), text(&out.stderr))
        }
    };
    let large = std::fs::read(fixture(LARGE)).unwrap();
    let dest = format!("s3://{bucket}/cli/a.mp4");

    let (ok, stdout, stderr) = copy(url(LARGE), dest.clone()).await;
    assert!(ok, "{stderr}");
    let stored: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(stored["sha256"], sha256_hex(&large));
    let (bytes, _) = stack.object_in(&bucket, "cli/a.mp4").await;
    assert!(bytes == large, "stored bytes differ from the source");

    let (ok, _, stderr) = copy(url(LARGE), dest.clone()).await;
    assert!(ok && stderr.contains("already stored"), "{stderr}");

    let (ok, _, stderr) = copy(url(SMALL), dest.clone()).await;
    assert!(!ok && stderr.contains("different object"), "{stderr}");

    let (ok, _, stderr) = copy(url(SMALL), format!("s3://{bucket}/")).await;
    assert!(
        !ok && stderr.contains("the bucket or the key is empty"),
        "{stderr}"
    );

    // What a copy killed mid-upload leaves behind.
    stack
        .s3
        .client()
        .await
        .create_multipart_upload()
        .bucket(&bucket)
        .key("cli/b.mp4")
        .send()
        .await
        .unwrap();
    let (ok, _, stderr) = copy(url(LARGE), format!("s3://{bucket}/cli/b.mp4")).await;
    assert!(ok, "{stderr}");
    assert_eq!(stack.open_uploads_in(&bucket).await, 0, "{stderr}");
    let mut keys = stack.keys_in(&bucket).await;
    keys.sort();
    assert_eq!(keys, ["cli/a.mp4", "cli/b.mp4"]);
}

/// S3 fails a streamed part (after taking its body): the copy goes on from the part S3 holds
/// with a Range request for the rest, and stores one byte-exact object, no upload left open.
#[tokio::test]
async fn a_failed_part_goes_on_from_the_parts_s3_holds() {
    let stack = Stack::start("part_fail").await;
    let bucket = stack.create_bucket(PART_FAIL).await;
    let proxy = s3_proxy(stack.s3.endpoint.clone()).await;
    let mut cmd = stack.command("copy");
    cmd.env("AWS_ENDPOINT_URL", &proxy)
        .env("GROK_S3_PART_SIZE_MIB", "5")
        .arg(format!("{}/files/{LARGE}", stack.sim.url))
        .arg(format!("s3://{bucket}/a.mp4"));
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run copy"))
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("a part failed; going on from the parts S3 holds"),
        "{log}"
    );
    assert!(log.contains("resuming the earlier upload"), "{log}");
    let large = std::fs::read(fixture(LARGE)).unwrap();
    let (bytes, meta) = stack.object_in(&bucket, "a.mp4").await;
    assert!(bytes == large, "stored bytes differ from the source");
    assert_eq!(meta["sha256"], sha256_hex(&large));
    assert_eq!(stack.open_uploads_in(&bucket).await, 0);
}
