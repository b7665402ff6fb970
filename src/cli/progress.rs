//! Following a running workflow from the terminal: its `status` query shown as a live line
//! on a terminal (plain lines otherwise), then the result as text or JSON.

use std::{
    future::Future,
    io::{IsTerminal, Write},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use grok_video_proto::v1::{ArchivedVideo, CopyCheckpoint, VideoProgress};
use temporalio_client::{Client, errors::WorkflowGetResultError};
use temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo;

use super::OutputFormat;

/// Bytes copied so far and the video's size (0 if unknown), from the running copy
/// activity's last heartbeat.
pub(super) async fn copy_bytes(client: &Client, workflow_id: &str) -> Option<(u64, u64)> {
    use temporalio_client::{NamespacedClient, tonic};
    use temporalio_common::protos::temporal::api::{
        common::v1::WorkflowExecution, workflowservice::v1::DescribeWorkflowExecutionRequest,
    };
    let described = client
        .connection()
        .workflow_service()
        .describe_workflow_execution(tonic::Request::new(DescribeWorkflowExecutionRequest {
            namespace: client.namespace(),
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
            .is_some_and(|t| t.name == grok_video_workflows::activities::CopyVideoToS3::NAME)
    })?;
    let payload = activity.heartbeat_details.as_ref()?.payloads.last()?;
    let checkpoint: CopyCheckpoint = serde_json::from_slice(&payload.data).ok()?;
    Some((
        checkpoint.bytes_copied.max(0) as u64,
        checkpoint.total_bytes.max(0) as u64,
    ))
}

/// Waits for `result`, showing what `status` reports every two seconds on stderr, with a
/// bar of the bytes copied once the copy runs.
pub(super) async fn follow<R, Q, QF>(
    client: &Client,
    workflow_id: &str,
    result: impl Future<Output = Result<R, WorkflowGetResultError>>,
    status: Q,
) -> anyhow::Result<R>
where
    Q: Fn() -> QF,
    QF: Future<Output = Option<VideoProgress>>,
{
    tokio::pin!(result);
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    let mut last_line = String::new();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let outcome = loop {
        tokio::select! {
            r = &mut result => break r,
            _ = &mut interrupted => {
                if terminal && !last_line.is_empty() {
                    eprintln!();
                }
                eprintln!(
                    "stopped following; workflow {workflow_id} keeps running on the worker \
                     (follow it with `grok-video-worker status {workflow_id}`, cancel it with \
                     `temporal workflow cancel --workflow-id {workflow_id}`)"
                );
                std::process::exit(130);
            }
            _ = ticker.tick() => {
                let Some(p) = status().await else { continue };
                let mut line = describe_progress(&p, Some(started.elapsed()));
                if p.phase == "copying"
                    && let Some((done, total)) = copy_bytes(client, workflow_id).await
                {
                    line.push_str(&bytes_bar(done, total));
                }
                if terminal {
                    eprint!("\r\x1b[2K{line}");
                    let _ = std::io::stderr().flush();
                } else if without_clock(&line) != without_clock(&last_line) {
                    eprintln!("{line}");
                }
                last_line = line;
            }
        }
    };
    if terminal && !last_line.is_empty() {
        eprintln!();
    }
    outcome.map_err(|e| anyhow::anyhow!("workflow {workflow_id} failed: {}", describe(&e)))
}

/// A progress line without its `[  12s]` prefix: plain output prints only lines that say
/// something new.
fn without_clock(line: &str) -> &str {
    line.split_once("] ").map_or(line, |(_, rest)| rest)
}

fn bytes_bar(done: u64, total: u64) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    if total == 0 {
        return format!(", copied {:.1} MiB", mib(done));
    }
    let filled = ((done.min(total) as f64 / total as f64) * 20.0).round() as usize;
    format!(
        ", copying [{}{}] {:.1}/{:.1} MiB",
        "#".repeat(filled),
        "-".repeat(20 - filled),
        mib(done),
        mib(total)
    )
}

/// One line of where a workflow is: phase, provider status, how long the task has been
/// generating against the model's expected time, polls and the next poll. `elapsed` is how
/// long the caller has been following (shown as a `[  12s]` prefix), `None` for a one-off.
pub(super) fn describe_progress(p: &VideoProgress, elapsed: Option<Duration>) -> String {
    describe_progress_at(p, elapsed, unix_now())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn describe_progress_at(p: &VideoProgress, elapsed: Option<Duration>, now: i64) -> String {
    let prefix = elapsed
        .map(|e| format!("[{:>4}s] ", e.as_secs()))
        .unwrap_or_default();
    let task = if p.task_id.is_empty() {
        String::new()
    } else {
        format!(" {}", p.task_id)
    };
    let status = if p.provider_status.is_empty() {
        "-"
    } else {
        p.provider_status.as_str()
    };
    let generating = if p.phase == "waiting" && p.task_created_at > 0 {
        format!(
            ", generating for {}",
            clock((now - p.task_created_at).max(0) as u64)
        )
    } else {
        String::new()
    };
    let expected = if p.phase == "waiting" && p.expected_max_seconds > 0 {
        let model = if p.model.is_empty() {
            String::new()
        } else {
            format!(" for {}", p.model)
        };
        format!(
            " (expected {}-{}{model})",
            clock(u64::from(p.expected_min_seconds)),
            clock(u64::from(p.expected_max_seconds))
        )
    } else {
        String::new()
    };
    let next = if p.next_poll_at > 0 {
        format!(", next poll in {}s", (p.next_poll_at - now).max(0))
    } else {
        String::new()
    };
    let polls = if p.polls == 1 { "poll" } else { "polls" };
    format!(
        "{prefix}{}{task}: provider status {status}{generating}{expected}, {} {polls}{next}",
        p.phase, p.polls
    )
}

/// `2m05s`, or `45s` under a minute.
fn clock(seconds: u64) -> String {
    if seconds < 60 {
        format!("{seconds}s")
    } else {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    }
}

/// Prints the result, or with `--output json` the failure as `{"workflow_id", "error"}` on
/// stdout too, so scripts read one JSON object either way.
pub(super) fn finish(
    workflow_id: &str,
    outcome: anyhow::Result<ArchivedVideo>,
    output: OutputFormat,
) -> anyhow::Result<()> {
    match outcome {
        Ok(archived) => print_result(&archived, output),
        Err(e) => {
            if output == OutputFormat::Json {
                println!(
                    "{}",
                    serde_json::json!({"workflow_id": workflow_id, "error": format!("{e:#}")})
                );
            }
            Err(e)
        }
    }
}

/// Prints where the video is.
pub(super) fn print_result(archived: &ArchivedVideo, output: OutputFormat) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string(archived)?),
        OutputFormat::Text => println!(
            "stored s3://{}/{}\n  task    {}\n  size    {} bytes\n  sha256  {}\n  model   {}\n  polls   {}",
            archived.bucket,
            archived.key,
            archived.task_id,
            archived.size_bytes,
            archived.sha256,
            archived.model,
            archived.polls
        ),
    }
    Ok(())
}

/// One readable line: the failure type and message, from the innermost cause.
pub(super) fn describe(err: &WorkflowGetResultError) -> String {
    use WorkflowGetResultError as E;
    match err {
        E::Failed(incoming) => {
            let failure = incoming.failure();
            let kind = match &failure.failure_info {
                Some(FailureInfo::ApplicationFailureInfo(info)) => info.r#type.clone(),
                _ => String::new(),
            };
            if kind.is_empty() {
                failure.message.clone()
            } else {
                let hint = hint(&kind).map(|h| format!(" ({h})")).unwrap_or_default();
                format!("{kind}: {}{hint}", failure.message)
            }
        }
        other => other.to_string(),
    }
}

/// What to do about a failure type, for the one line a person reads.
fn hint(kind: &str) -> Option<&'static str> {
    use grok_video_workflows::failures;
    Some(match kind {
        failures::PROVIDER_AUTH_REJECTED => "check GROK_API_KEY on the worker",
        failures::PROVIDER_BALANCE_EXHAUSTED => "top up the provider account, then start again",
        failures::PROVIDER_REJECTED_REQUEST => "fix the named field and start again",
        failures::VIDEO_TASK_NOT_FOUND => "check the task id; it is unknown to the provider",
        failures::VIDEO_GENERATION_FAILED => {
            "the provider refused or failed the video; change the prompt or order again"
        }
        failures::VIDEO_TASK_TIMED_OUT => {
            "the provider is slow; archive the task again with a larger --deadline"
        }
        failures::VIDEO_URL_EXPIRED => {
            "the 24 h link expired before the copy; the video cannot be fetched any more"
        }
        failures::CREATE_OUTCOME_UNKNOWN => {
            "look for the task at the provider and `archive` it by id instead of ordering again"
        }
        failures::DESTINATION_EXISTS => {
            "choose another --key or set GROK_S3_ON_CONFLICT=suffix on the worker"
        }
        failures::STORAGE_REJECTED => {
            "check the bucket, credentials and IAM permissions of the worker"
        }
        failures::NOT_A_VIDEO => "the link serves no MP4; ask the provider",
        failures::VIDEO_TOO_LARGE => "raise GROK_MAX_VIDEO_MIB on the worker",
        failures::UNSAFE_VIDEO_URL => {
            "the link is plain http or on a private address; only a local stack should allow that"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_line_shows_generation_time_against_the_models_expected_time() {
        let p = VideoProgress {
            task_id: "video_1".into(),
            phase: "waiting".into(),
            model: "grok_video3".into(),
            provider_status: "processing".into(),
            polls: 2,
            next_poll_at: 1_000_030,
            task_created_at: 1_000_000 - 65,
            expected_min_seconds: 120,
            expected_max_seconds: 240,
            ..Default::default()
        };
        assert_eq!(
            describe_progress_at(&p, Some(Duration::from_secs(12)), 1_000_000),
            "[  12s] waiting video_1: provider status processing, generating for 1m05s \
             (expected 2m00s-4m00s for grok_video3), 2 polls, next poll in 30s"
        );
        let unknown = VideoProgress {
            phase: "waiting".into(),
            ..Default::default()
        };
        assert_eq!(
            describe_progress_at(&unknown, None, 1_000_000),
            "waiting: provider status -, 0 polls"
        );
        let copying = VideoProgress {
            phase: "copying".into(),
            ..p
        };
        assert_eq!(
            describe_progress_at(&copying, None, 1_000_000),
            "copying video_1: provider status processing, 2 polls, next poll in 30s"
        );
    }
}
