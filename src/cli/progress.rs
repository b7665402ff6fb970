//! Following a running workflow from the terminal: its `status` query shown as a live line
//! on a terminal (plain lines otherwise), then the result as text or JSON.

use std::{
    future::Future,
    io::{IsTerminal, Write},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use grok_video_proto::v1::{ArchivedVideo, VideoProgress};
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo;

use super::OutputFormat;

/// Waits for `result`, showing what `status` reports every two seconds on stderr.
pub(super) async fn follow<R, Q, QF>(
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
    let outcome = loop {
        tokio::select! {
            r = &mut result => break r,
            _ = ticker.tick() => {
                let Some(p) = status().await else { continue };
                let line = describe_progress(&p, started.elapsed());
                if terminal {
                    eprint!("\r\x1b[2K{line}");
                    let _ = std::io::stderr().flush();
                } else if line != last_line {
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

fn describe_progress(p: &VideoProgress, elapsed: Duration) -> String {
    let next = if p.next_poll_at > 0 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        format!(", next poll in {}s", (p.next_poll_at - now).max(0))
    } else {
        String::new()
    };
    let status = if p.provider_status.is_empty() {
        "-"
    } else {
        p.provider_status.as_str()
    };
    let task = if p.task_id.is_empty() {
        String::new()
    } else {
        format!(" {}", p.task_id)
    };
    format!(
        "[{:>4}s] {}{task}: provider status {status}, {} polls{next}",
        elapsed.as_secs(),
        p.phase,
        p.polls
    )
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
fn describe(err: &WorkflowGetResultError) -> String {
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
                format!("{kind}: {}", failure.message)
            }
        }
        other => other.to_string(),
    }
}
