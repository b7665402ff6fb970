//! The worker against a misbehaving provider: each fault class scripted in the simulator
//! (`responses`, `video_responses`, `not_found_for_seconds`), run through the real stack, with
//! the failure type, the provider's text in the message and the exact number of queries the
//! simulator saw for each task. Several tasks share one stack; assertions stay per task.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grok_video_proto::v1::{ArchiveVideoRequest, ArchivedVideo, GenerateVideoRequest};
use grok_video_workflows::GenerateVideo;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use temporalio_client::{
    Client, WorkflowGetResultOptions, WorkflowHandle, WorkflowStartOptions,
    errors::WorkflowGetResultError,
};

use crate::{
    stack::{API_KEY, Stack, fixture},
    workflow::{Handle, application_failure, request, result_within, start},
};

const RESULT_WITHIN: Duration = Duration::from_secs(150);
const SMALL: &str = "grok_video3_6s_480p.mp4";

async fn result(handle: &Handle) -> Result<ArchivedVideo, WorkflowGetResultError> {
    result_within(handle, RESULT_WITHIN).await
}

/// The failure type and message a caller sees; panics when the workflow succeeded.
fn failure_of(outcome: &Result<ArchivedVideo, WorkflowGetResultError>) -> (String, String) {
    match outcome {
        Ok(archived) => panic!("expected a failed workflow, got {archived:?}"),
        Err(err) => application_failure(err),
    }
}

/// One scripted task and what the test expects of it.
struct Case {
    name: &'static str,
    task_id: String,
    expect: Expect,
    /// Status queries the simulator must have seen for the task.
    queries: u64,
}

enum Expect {
    /// Archived, byte-exact.
    Archived,
    /// Failed with this type, the message containing this text.
    Failed(&'static str, &'static str),
}

/// Starts every case's workflow at once, waits for all, and checks each.
async fn run_cases(stack: &Stack, cases: &[Case], adjust: impl Fn(&mut ArchiveVideoRequest)) {
    let client = stack.temporal.client().await;
    let mut handles = Vec::new();
    for case in cases {
        let mut req = request(stack, &case.task_id);
        adjust(&mut req);
        handles.push(start(stack, &client, req).await);
    }
    let outcomes = futures::future::join_all(handles.iter().map(result)).await;
    let source = std::fs::read(fixture(SMALL)).unwrap();
    let stats = stack.sim.stats().await;
    let mut problems = Vec::new();
    for (case, outcome) in cases.iter().zip(&outcomes) {
        let queries = stats["queries_by_task"][&case.task_id]
            .as_u64()
            .unwrap_or(0);
        if let Err(why) = check(case, outcome, queries, &source) {
            problems.push(format!("{}: {why}", case.name));
        }
    }
    assert_eq!(stats["creates"], 0, "archiving never creates a task");
    assert!(
        problems.is_empty(),
        "{} of {} cases wrong:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

/// What is wrong with one case's outcome, if anything.
fn check(
    case: &Case,
    outcome: &Result<ArchivedVideo, WorkflowGetResultError>,
    queries: u64,
    source: &[u8],
) -> Result<(), String> {
    match (&case.expect, outcome) {
        (Expect::Archived, Ok(archived)) => {
            if archived.size_bytes != source.len() as i64
                || archived.sha256 != hex::encode(Sha256::digest(source))
            {
                return Err(format!(
                    "archived bytes differ from the source: {archived:?}"
                ));
            }
        }
        (Expect::Archived, Err(e)) => return Err(format!("expected an archive, got {e}")),
        (Expect::Failed(kind, _), Ok(archived)) => {
            return Err(format!("expected {kind}, got an archive: {archived:?}"));
        }
        (Expect::Failed(kind, text), Err(_)) => {
            let (got_kind, message) = failure_of(outcome);
            if got_kind != *kind {
                return Err(format!("expected {kind}, got {got_kind}: {message}"));
            }
            if !message.contains(text) {
                return Err(format!("message {message:?} lacks {text:?}"));
            }
        }
    }
    if queries != case.queries {
        return Err(format!(
            "the simulator saw {queries} status queries, expected {}",
            case.queries
        ));
    }
    Ok(())
}

/// A task whose status queries first get `steps`, then the clock: completed at once.
async fn task_with(stack: &Stack, steps: Value) -> String {
    stack
        .sim
        .scripted(json!({
            "video": SMALL,
            "queued_seconds": 0,
            "processing_seconds": 0,
            "responses": steps,
        }))
        .await
}

fn plain_video_url(stack: &Stack) -> String {
    format!("{}/files/{SMALL}", stack.sim.url)
}

/// An IMF-fixdate (`Retry-After` as an HTTP date) `secs` from now.
fn http_date_in(secs: u64) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs;
    let (days, rem) = (t / 86_400, t % 86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn http_dates_are_imf_fixdates() {
    let d = http_date_in(0);
    assert_eq!(d.len(), "Wed, 21 Oct 2015 07:28:00 GMT".len(), "{d}");
    assert!(d.ends_with(" GMT"));
}

/// 401/403/402/400/422 end the workflow at the first answer, whatever the error body's shape,
/// with the provider's words in the message.
#[tokio::test]
async fn final_http_errors_fail_at_once_with_the_providers_message() {
    let stack = Stack::start("provider_final_errors").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let once = |status: u16, body: Value| json!([{"status": status, "json": body}]);
    let html = |status: u16, page: &str| json!([{"status": status, "body": page}]);
    let cases = [
        (
            "401 {code,message}",
            once(
                401,
                json!({"code": 401, "message": "token has been revoked"}),
            ),
            Expect::Failed("ProviderAuthRejected", "token has been revoked"),
        ),
        (
            "403 {error:{message,type}}",
            once(
                403,
                json!({"error": {"message": "key not allowed for this model", "type": "permission_error"}}),
            ),
            Expect::Failed("ProviderAuthRejected", "key not allowed for this model"),
        ),
        (
            "401 {msg}",
            once(401, json!({"msg": "unauthorized: bad token"})),
            Expect::Failed("ProviderAuthRejected", "unauthorized: bad token"),
        ),
        (
            "402 {msg}",
            once(402, json!({"msg": "insufficient balance, please top up"})),
            Expect::Failed(
                "ProviderBalanceExhausted",
                "insufficient balance, please top up",
            ),
        ),
        (
            "402 HTML",
            html(
                402,
                "<html><head><title>402</title></head><body><h1>Payment Required</h1><p>quota used up</p></body></html>",
            ),
            Expect::Failed("ProviderBalanceExhausted", "quota used up"),
        ),
        (
            "401 {error:{message,type,code}}",
            once(
                401,
                json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}),
            ),
            Expect::Failed("ProviderAuthRejected", "Incorrect API key provided"),
        ),
        (
            "400 {code,message}",
            once(
                400,
                json!({"code": 400, "message": "invalid task id format"}),
            ),
            Expect::Failed("ProviderRejectedRequest", "invalid task id format"),
        ),
        (
            "422 {error:{message,type}}",
            once(
                422,
                json!({"error": {"message": "id must start with video_", "type": "validation_error"}}),
            ),
            Expect::Failed("ProviderRejectedRequest", "id must start with video_"),
        ),
    ];
    let mut scripted = Vec::new();
    for (name, steps, expect) in cases {
        scripted.push(Case {
            name,
            task_id: task_with(&stack, steps).await,
            expect,
            queries: 1,
        });
    }
    run_cases(&stack, &scripted, |_| {}).await;
}

/// 404: retried during the grace window (attempts 1-3), final at the 4th; a task that is
/// found within the window is archived.
#[tokio::test]
async fn not_found_is_retried_through_the_grace_window() {
    let stack = Stack::start("provider_not_found").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let never = stack
        .sim
        .scripted(json!({"not_found_for_seconds": 3600}))
        .await;
    let not_found = json!({"status": 404, "json": {"code": 404, "message": "task not found"}});
    let mut found_late = not_found.clone();
    found_late["repeat"] = json!(2);
    // Query attempts land at about 1 s, then after retry delays of ~1, ~2, ~4 s (each ±20 %):
    // the 3rd attempt by ~4.6 s plus latency, the 4th not before 6.6 s. A window of 6.3 s
    // therefore answers exactly three 404s.
    let window = stack
        .sim
        .scripted(json!({"video": SMALL, "not_found_for_seconds": 6.3, "queued_seconds": 0, "processing_seconds": 0}))
        .await;
    let cases = [
        Case {
            name: "not found for an hour",
            task_id: never,
            expect: Expect::Failed("VideoTaskNotFound", "not found"),
            queries: 4,
        },
        Case {
            name: "an id the provider never issued",
            task_id: "video_00000000-0000-4000-8000-000000000000".into(),
            expect: Expect::Failed("VideoTaskNotFound", "not found"),
            queries: 4,
        },
        Case {
            name: "two 404 answers, then found",
            task_id: task_with(&stack, json!([found_late])).await,
            expect: Expect::Archived,
            queries: 3,
        },
        Case {
            name: "not_found_for_seconds 6.3",
            task_id: window,
            expect: Expect::Archived,
            queries: 4,
        },
    ];
    run_cases(&stack, &cases, |_| {}).await;
}

/// 429 (with `Retry-After` in seconds or as a date), 5xx and 524 pages, a 200 that is not a
/// task, a dropped connection: each retried, then the task archives.
#[tokio::test]
async fn transient_http_faults_are_retried_then_archive() {
    let stack = Stack::start("provider_transient").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let cloudflare_524 = "<!DOCTYPE html><html><head><title>zcbservice.aizfw.cn | 524: A timeout occurred</title></head><body><h1>A timeout occurred</h1><p>Cloudflare Ray ID: 8f1c</p></body></html>";
    let steps = [
        (
            "429 Retry-After: 1",
            json!([{"status": 429, "headers": {"Retry-After": "1"}, "json": {"code": 429, "message": "rate limited"}}]),
        ),
        (
            "429 Retry-After: 3",
            json!([{"status": 429, "headers": {"Retry-After": "3"}, "json": {"msg": "rate limit exceeded"}}]),
        ),
        (
            "429 Retry-After: <HTTP date>",
            json!([{"status": 429, "headers": {"Retry-After": http_date_in(5)}, "json": {"msg": "too many requests"}}]),
        ),
        (
            "500 HTML",
            json!([{"status": 500, "body": "<html><body><h1>500 Internal Server Error</h1></body></html>"}]),
        ),
        (
            "502 HTML",
            json!([{"status": 502, "body": "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"}]),
        ),
        ("524 HTML", json!([{"status": 524, "body": cloudflare_524}])),
        (
            "200 HTML instead of JSON",
            json!([{"status": 200, "body": "<html><body>Service under maintenance</body></html>"}]),
        ),
        (
            "200 JSON without a status",
            json!([{"json": {"code": 500, "msg": "internal error, retry later"}}]),
        ),
        ("connection dropped", json!([{"drop": true}])),
        (
            "503, then 429 Retry-After: 1",
            json!([
                {"status": 503, "body": "<html>Service Unavailable</html>"},
                {"status": 429, "headers": {"Retry-After": "1"}, "json": {"msg": "slow down"}}
            ]),
        ),
    ];
    let mut cases = Vec::new();
    for (name, steps) in steps {
        let queries = steps.as_array().unwrap().len() as u64 + 1;
        cases.push(Case {
            name,
            task_id: task_with(&stack, steps).await,
            expect: Expect::Archived,
            queries,
        });
    }
    run_cases(&stack, &cases, |_| {}).await;
    // Retry-After is honoured: longer than the ~1 s default backoff of a first retry.
    let times = |report: &Value| -> Vec<f64> {
        report["query_times"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_f64().unwrap())
            .collect()
    };
    let of = |name: &str| &cases.iter().find(|c| c.name == name).unwrap().task_id;
    let t = times(&stack.sim.task_report(of("429 Retry-After: 3")).await);
    assert!(
        t[1] - t[0] >= 2.95,
        "Retry-After: 3 waited {:.2} s",
        t[1] - t[0]
    );
    // The date is at least 4 s after the task's creation (5 s, cut to whole seconds).
    let t = times(
        &stack
            .sim
            .task_report(of("429 Retry-After: <HTTP date>"))
            .await,
    );
    assert!(
        t[1] >= 3.95,
        "the date retry came {:.2} s after creation",
        t[1]
    );
    let stats = stack.sim.stats().await;
    assert_eq!(stats["unauthorized"], 0);
    assert_eq!(stats["video_requests_with_auth"], 0);
}

/// Statuses in other cases and under synonyms, terminal ones, `error` as an object,
/// `completed` without a `video_url`, and an unknown status until the deadline.
#[tokio::test]
async fn provider_statuses_in_every_shape() {
    let stack = Stack::start("provider_statuses").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let url = plain_video_url(&stack);
    let st = |status: &str| json!({"json": {"object": "video", "model": "grok_video3", "status": status, "video_url": null, "error": null}});
    let done = |status: &str| json!({"json": {"object": "video", "model": "grok_video3", "status": status, "video_url": url, "actualDuration": 6.04, "error": null}});
    let mut no_url = st("completed");
    no_url["repeat"] = json!(10);
    let cases = [
        (
            "Pending, In_Progress, SUCCEEDED",
            json!([st("Pending"), st("In_Progress"), done("SUCCEEDED")]),
            Expect::Archived,
            3,
        ),
        ("done", json!([done("done")]), Expect::Archived, 1),
        (
            "wrapped in {code, data}",
            json!([{"json": {"code": 0, "msg": "ok", "data": {"status": "Processing"}}}, {"json": {"code": 0, "data": {"status": "completed", "video_url": url}}}]),
            Expect::Archived,
            2,
        ),
        (
            "RUNNING, success",
            json!([st("RUNNING"), done("success")]),
            Expect::Archived,
            2,
        ),
        (
            "cancelled",
            json!([st("queued"), st("cancelled")]),
            Expect::Failed("VideoTaskCancelled", "cancelled"),
            2,
        ),
        (
            "canceled",
            json!([st("canceled")]),
            Expect::Failed("VideoTaskCancelled", "cancelled"),
            1,
        ),
        (
            "expired",
            json!([st("EXPIRED")]),
            Expect::Failed("VideoTaskExpired", "expired"),
            1,
        ),
        (
            "failed with error as an object",
            json!([{"json": {"status": "failed", "video_url": null, "error": {"message": "Generated content violates the moderation policy", "code": "content_policy_violation"}}}]),
            Expect::Failed(
                "VideoGenerationFailed",
                "Generated content violates the moderation policy",
            ),
            1,
        ),
        (
            "completed without video_url, always",
            json!([no_url]),
            Expect::Failed("VideoUrlMissing", "video_url"),
            4,
        ),
        (
            "completed without video_url once, then with it",
            json!([{"json": {"status": "completed"}}]),
            Expect::Archived,
            2,
        ),
    ];
    let mut scripted = Vec::new();
    for (name, steps, expect, queries) in cases {
        scripted.push(Case {
            name,
            task_id: task_with(&stack, steps).await,
            expect,
            queries,
        });
    }
    run_cases(&stack, &scripted, |_| {}).await;
}

/// A status the worker does not know is treated as still running until the deadline; the
/// failure names the last status and how many queries were made, which is what the
/// simulator saw.
#[tokio::test]
async fn unknown_status_until_the_deadline_times_out() {
    let stack = Stack::start("provider_unknown_status").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let client = stack.temporal.client().await;
    let task = task_with(
        &stack,
        json!([{"json": {"status": "moderating", "video_url": null}, "repeat": 1000}]),
    )
    .await;
    let mut req = request(&stack, &task);
    req.deadline_seconds = Some(5);
    let handle = start(&stack, &client, req).await;
    let outcome = result(&handle).await;
    let (kind, message) = failure_of(&outcome);
    assert_eq!(kind, "VideoTaskTimedOut", "{message}");
    assert!(message.contains("moderating"), "{message}");
    let queries = stack.sim.queries_of(&task).await;
    assert!(
        (3..=7).contains(&queries),
        "about one query a second for 5 s: {queries}"
    );
    assert!(
        message.contains(&format!("after {queries} status queries")),
        "the message counts the {queries} queries the provider saw: {message}"
    );
    assert_eq!(stack.sim.stats().await["creates"], 0);
}

/// A provider slower than the worker's API timeout, and video downloads that are cut short,
/// stall, come without a length, are HTML or an expired link: retried (an expired link after
/// asking the provider for a fresh one), then archived; refused for good when the host keeps
/// answering HTML or 403.
#[tokio::test]
async fn slow_provider_and_broken_downloads_are_retried() {
    let stack = Stack::start("provider_slow").await;
    let _worker = stack.worker_with_env(
        "worker",
        Some(API_KEY),
        &[
            ("GROK_API_TIMEOUT_SECONDS", "1"),
            ("GROK_DOWNLOAD_IDLE_TIMEOUT_SECONDS", "1"),
        ],
    );
    let quick = |extra: Value| {
        let mut script = json!({"video": SMALL, "queued_seconds": 0, "processing_seconds": 0});
        script
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        script
    };
    let html_page = json!({"status": 200, "body": "<html><body>Please sign in</body></html>"});
    let expired_link = json!({"status": 403, "body": "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", "headers": {"Content-Type": "application/xml"}});
    let mut always_expired = expired_link.clone();
    always_expired["repeat"] = json!(10);
    let mut always_html = html_page.clone();
    always_html["repeat"] = json!(10);
    let scripts = [
        (
            "query slower than the API timeout",
            json!({"responses": [{"delay_ms": 3000}]}),
            2,
            None,
        ),
        (
            "video cut short of its Content-Length",
            json!({"video_responses": [{"truncate_at": 100_000}]}),
            1,
            Some(2),
        ),
        (
            "video stalls longer than the idle timeout",
            json!({"video_responses": [{"stall_after": 65_536, "delay_ms": 3000}]}),
            1,
            Some(2),
        ),
        (
            "chunked video broken off mid-body",
            json!({"video_responses": [{"truncate_at": 400_000, "no_content_length": true, "abort": true}]}),
            1,
            Some(2),
        ),
        (
            "video served as application/octet-stream",
            json!({"video_responses": [{"headers": {"Content-Type": "application/octet-stream"}}]}),
            1,
            Some(1),
        ),
        (
            "video without Content-Length",
            json!({"video_responses": [{"no_content_length": true}]}),
            1,
            Some(1),
        ),
        (
            "video link answers 403 once",
            json!({"video_responses": [expired_link.clone()]}),
            2,
            Some(2),
        ),
        (
            "video link answers an HTML page once",
            json!({"video_responses": [html_page]}),
            1,
            Some(2),
        ),
        (
            "video connection dropped",
            json!({"video_responses": [{"drop": true}]}),
            1,
            Some(2),
        ),
    ];
    let mut cases = Vec::new();
    let mut videos = Vec::new();
    for (name, extra, queries, video_requests) in scripts {
        let task_id = stack.sim.scripted(quick(extra)).await;
        videos.push((name, task_id.clone(), video_requests));
        cases.push(Case {
            name,
            task_id,
            expect: Expect::Archived,
            queries,
        });
    }
    let html = stack
        .sim
        .scripted(quick(json!({"video_responses": [always_html]})))
        .await;
    videos.push(("video link always answers HTML", html.clone(), Some(3)));
    cases.push(Case {
        name: "video link always answers HTML",
        task_id: html,
        expect: Expect::Failed("NotAVideo", "not an MP4"),
        queries: 1,
    });
    // An expired link makes the worker ask the provider for a fresh one (a status query), at
    // most twice, then the failure is final.
    let gone = stack
        .sim
        .scripted(quick(json!({"video_responses": [always_expired]})))
        .await;
    videos.push(("video link always 403", gone.clone(), Some(3)));
    cases.push(Case {
        name: "video link always 403",
        task_id: gone,
        expect: Expect::Failed("VideoUrlExpired", "HTTP 403"),
        queries: 3,
    });
    run_cases(&stack, &cases, |_| {}).await;
    let stats = stack.sim.stats().await;
    for (name, task_id, expected) in videos {
        if let Some(expected) = expected {
            assert_eq!(
                stats["video_requests_by_task"][&task_id], expected,
                "{name}: video requests"
            );
        }
    }
    assert_eq!(stats["video_requests_with_auth"], 0);
    assert_eq!(stack.open_uploads().await, 0);
}

/// A `Retry-After` that asks for no wait at all (`0`, or a date already past) is still a
/// transient 429: retried, then archived.
#[tokio::test]
async fn zero_retry_after_is_still_retried() {
    let stack = Stack::start("provider_retry_after_zero").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let mut cases = Vec::new();
    for (name, value) in [
        ("Retry-After: 0", "0".to_owned()),
        (
            "Retry-After: a past date",
            "Wed, 21 Oct 2015 07:28:00 GMT".to_owned(),
        ),
        ("Retry-After: this second", http_date_in(0)),
    ] {
        let steps = json!([{"status": 429, "headers": {"Retry-After": value}, "json": {"msg": "too many requests"}}]);
        cases.push(Case {
            name,
            task_id: task_with(&stack, steps).await,
            expect: Expect::Archived,
            queries: 2,
        });
    }
    run_cases(&stack, &cases, |_| {}).await;
}

/// What one scripted create must lead to.
struct CreateCase {
    name: &'static str,
    /// `POST /_sim/create_script` body.
    script: Value,
    /// `None`: archived; else the failure type and a text of its message.
    failure: Option<(&'static str, &'static str)>,
    /// Create requests the simulator must see, and tasks it must have created.
    creates: u64,
    accepted: u64,
}

/// GenerateVideo against create faults: a create is sent again only after a refused
/// connection or a 429; a 5xx, a dropped connection, a 200 without an id or an answer slower
/// than the API timeout may have billed a task and end with `CreateOutcomeUnknown`; 4xx keep
/// their types and the provider's words. The cases run one after another, since create
/// scripts are global to the simulator.
#[tokio::test]
async fn create_faults_never_send_a_create_twice() {
    let stack = Stack::start("provider_create_faults").await;
    let _worker = stack.worker_with_env(
        "worker",
        Some(API_KEY),
        &[("GROK_API_TIMEOUT_SECONDS", "2")],
    );
    let client = stack.temporal.client().await;
    let quick = json!({"queued_seconds": 0, "processing_seconds": 1});
    let unknown = Some(("CreateOutcomeUnknown", "check the provider's task list"));
    let one = |step: Value| json!({"responses": [step], "task": quick});
    let cases = [
        CreateCase {
            name: "500 HTML",
            script: one(
                json!({"status": 500, "body": "<html><body><h1>500 Internal Server Error</h1></body></html>"}),
            ),
            failure: unknown,
            creates: 1,
            accepted: 0,
        },
        CreateCase {
            name: "524 from the gateway",
            script: one(
                json!({"status": 524, "body": "<html><head><title>524: A timeout occurred</title></head></html>"}),
            ),
            failure: Some(("CreateOutcomeUnknown", "A timeout occurred")),
            creates: 1,
            accepted: 0,
        },
        CreateCase {
            name: "connection closed after the request",
            script: one(json!({"drop": true})),
            failure: unknown,
            creates: 1,
            accepted: 0,
        },
        CreateCase {
            name: "200 without a task id",
            script: one(json!({"json": {"code": 0, "msg": "submitted"}})),
            failure: Some(("CreateOutcomeUnknown", "without a task id")),
            creates: 1,
            accepted: 0,
        },
        CreateCase {
            name: "402 balance",
            script: one(
                json!({"status": 402, "json": {"code": 402, "message": "insufficient balance"}}),
            ),
            failure: Some(("ProviderBalanceExhausted", "insufficient balance")),
            creates: 1,
            accepted: 0,
        },
        CreateCase {
            name: "400 with the provider's validation text",
            script: one(
                json!({"status": 400, "json": {"code": 400, "message": "prompt contains forbidden words"}}),
            ),
            failure: Some(("ProviderRejectedRequest", "prompt contains forbidden words")),
            creates: 1,
            accepted: 0,
        },
        CreateCase {
            name: "401",
            script: one(
                json!({"status": 401, "json": {"error": {"message": "Invalid token", "type": "auth_error"}}}),
            ),
            failure: Some(("ProviderAuthRejected", "Invalid token")),
            creates: 1,
            accepted: 0,
        },
        CreateCase {
            name: "429 Retry-After: 1, then created",
            script: one(
                json!({"status": 429, "headers": {"Retry-After": "1"}, "json": {"msg": "too many requests"}}),
            ),
            failure: None,
            creates: 2,
            accepted: 1,
        },
        CreateCase {
            name: "created task fails at the provider",
            script: json!({"task": {"queued_seconds": 0, "processing_seconds": 1, "outcome": "failed", "error": "prompt violates the content policy"}}),
            failure: Some((
                "VideoGenerationFailed",
                "prompt violates the content policy",
            )),
            creates: 1,
            accepted: 1,
        },
        // Last: the simulator creates the task at once and answers after 4 s, past the
        // worker's 2 s timeout: billed, and the workflow must say so rather than order again.
        CreateCase {
            name: "answer slower than the API timeout",
            script: one(json!({"delay_ms": 4000})),
            failure: unknown,
            creates: 1,
            accepted: 1,
        },
    ];
    let source = std::fs::read(fixture(SMALL)).unwrap();
    let mut problems = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let before = stack.sim.stats().await;
        stack.sim.create_script(case.script.clone()).await;
        let request = GenerateVideoRequest {
            model: "grok_video3".into(),
            prompt: "a lighthouse at dawn".into(),
            duration_seconds: Some(6),
            resolution: "480p".into(),
            bucket: stack.bucket.clone(),
            first_poll_delay_seconds: Some(1),
            poll_interval_seconds: Some(1),
            deadline_seconds: Some(300),
            ..Default::default()
        };
        let id = format!("generate-fault-{i}");
        client
            .start_workflow(
                GenerateVideo::run,
                request.into(),
                WorkflowStartOptions::new(stack.task_queue.clone(), id.clone()).build(),
            )
            .await
            .expect("start GenerateVideo");
        let handle: WorkflowHandle<Client, GenerateVideo> = client.get_workflow_handle(id);
        let outcome = tokio::time::timeout(
            RESULT_WITHIN,
            handle.get_result(WorkflowGetResultOptions::default()),
        )
        .await
        .expect("workflow result within the deadline");
        let wrong = match (case.failure, &outcome) {
            (None, Ok(archived)) if archived.sha256 == hex::encode(Sha256::digest(&source)) => None,
            (None, Ok(archived)) => Some(format!("stored bytes differ: {archived:?}")),
            (None, Err(e)) => Some(format!("expected an archive, got {e}")),
            (Some((kind, _)), Ok(_)) => Some(format!("expected {kind}, got an archive")),
            (Some((kind, text)), Err(_)) => {
                let (got, message) = failure_of(&outcome);
                (got != kind || !message.contains(text))
                    .then(|| format!("expected {kind} with {text:?}, got {got}: {message}"))
            }
        };
        if let Some(wrong) = wrong {
            problems.push(format!("{}: {wrong}", case.name));
        }
        // A slow create is billed only when its answer is due: wait for it, bounded.
        let counts = |stats: &Value, before: &Value| {
            let n = |s: &Value, k: &str| s[k].as_u64().unwrap_or(0);
            (
                n(stats, "creates") - n(before, "creates"),
                n(stats, "creates_accepted") - n(before, "creates_accepted"),
            )
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (creates, accepted) = loop {
            let got = counts(&stack.sim.stats().await, &before);
            if got == (case.creates, case.accepted) || std::time::Instant::now() > deadline {
                break got;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if (creates, accepted) != (case.creates, case.accepted) {
            problems.push(format!(
                "{}: {creates} creates, {accepted} accepted; expected {}, {}",
                case.name, case.creates, case.accepted
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} cases wrong:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

/// A chunked video body that ends cleanly but early (an origin serving a partial object) is
/// stored as if complete: HTTP alone cannot tell, the MP4 structure can (the boxes announce
/// more bytes than arrived).
#[tokio::test]
async fn a_short_chunked_video_is_not_stored_as_complete() {
    let stack = Stack::start("provider_short_chunked").await;
    let _worker = stack.worker("worker", Some(API_KEY));
    let task = stack
        .sim
        .scripted(json!({
            "video": SMALL,
            "queued_seconds": 0,
            "processing_seconds": 0,
            "video_responses": [{"truncate_at": 400_000, "no_content_length": true}],
        }))
        .await;
    let cases = [Case {
        name: "chunked body cut at 400000 of 800781 bytes, once",
        task_id: task.clone(),
        expect: Expect::Archived,
        queries: 1,
    }];
    // run_cases checks the stored size and hash against the whole source video.
    run_cases(&stack, &cases, |_| {}).await;
    assert_eq!(stack.sim.video_requests_of(&task).await, 2, "retried once");
}
