//! What tests script: how a task moves on its clock ([`TaskScript`]), and the one-shot
//! faults ([`Step`]) answered instead of the normal answer of a create, a status query or a
//! video download.

use std::{
    collections::{BTreeMap, VecDeque},
    path::Path,
};

use http::{HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest `delay_ms` a step may ask for: no scripted fault may hang a test for longer.
pub const MAX_DELAY_MS: u64 = 10 * 60 * 1000;

/// How one scripted task behaves. Every field has a default; unknown fields are refused so a
/// typo in a test fails loudly instead of scripting nothing.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskScript {
    /// Provider model reported.
    pub model: Option<String>,
    /// File in the videos directory served when completed.
    pub video: Option<String>,
    /// Seconds queued (overrides the simulator's clock).
    pub queued_seconds: Option<f64>,
    /// Seconds processing.
    pub processing_seconds: Option<f64>,
    /// `completed` (default) or `failed`.
    pub outcome: Option<String>,
    /// The provider's message when the outcome is `failed`.
    pub error: Option<String>,
    /// Seconds of video reported as `actualDuration`.
    pub actual_duration: Option<f64>,
    /// Answers to this task's status queries, one per `GET /v1/result/{id}`, before the
    /// clock-based answer; when they are used up, the clock-based answer resumes.
    pub responses: Vec<Step>,
    /// Answers to downloads of this task's video (`/files/{task_id}/{video}`), one per GET.
    pub video_responses: Vec<Step>,
    /// For this long after its creation the task answers 404 "not found" (the race of a task
    /// id just returned by create).
    pub not_found_for_seconds: Option<f64>,
    /// The video host of this task ignores `Range` requests: every download is answered 200
    /// with the whole file (a host without range support).
    pub ignore_range: bool,
}

/// One scripted answer. With none of `status`, `json` and `body` set, the normal answer is
/// given (after `delay_ms`, with `headers` added, shaped by the video fields).
///
/// The normal answer to a video request with `Range: bytes=N-`, `bytes=N-M` or `bytes=-N` is
/// `206 Partial Content` with those bytes (`416` when none exist), unless the task's script
/// sets `ignore_range`; `truncate_at` and `stall_after` then count the bytes of the partial
/// body. A redirect is a custom step: `{"status": 302, "headers": {"Location": "…"}}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Step {
    /// HTTP status (default 200).
    pub status: Option<u16>,
    /// Extra or replacing response headers.
    pub headers: BTreeMap<String, String>,
    /// A JSON body, sent as `application/json`.
    pub json: Option<Value>,
    /// A raw body (e.g. an HTML page), sent as `text/html` unless `headers` say otherwise.
    pub body: Option<String>,
    /// Milliseconds to wait before answering; with `stall_after`, the length of the stall.
    pub delay_ms: u64,
    /// How many consecutive requests this step answers (default 1).
    pub repeat: Option<u32>,
    /// Read the request, then close the connection without any response.
    pub drop: bool,
    /// Video only: announce the full `Content-Length` but send only this many bytes.
    pub truncate_at: Option<u64>,
    /// Video only: send this many bytes, then stall for `delay_ms`, then go on.
    pub stall_after: Option<u64>,
    /// Video only: no `Content-Length` (a chunked body). Cut by `truncate_at`, it ends
    /// cleanly (the client cannot tell from HTTP alone) unless `abort` is set.
    pub no_content_length: bool,
    /// Video only: after `truncate_at` bytes, break the connection instead of ending the body
    /// (a chunked body then lacks its last chunk).
    pub abort: bool,
}

/// Which endpoint a step answers; decides which fields it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// `POST /v1/grok/videos`.
    Create,
    /// `GET /v1/result/{id}`.
    Result,
    /// `GET /files/{task_id}/{video}`.
    Video,
}

impl StepKind {
    fn name(self) -> &'static str {
        match self {
            Self::Create => "create responses",
            Self::Result => "responses",
            Self::Video => "video_responses",
        }
    }
}

/// `POST /_sim/create_script`: faults for the next create requests, and the script of the
/// tasks that later creates do create. Each call replaces the previous one.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreateScript {
    /// Answers to the next `POST /v1/grok/videos`, one per request, before the normal one.
    pub responses: Vec<Step>,
    /// Script of every task created from now on (model and video default to the request's).
    pub task: Option<TaskScript>,
}

impl Step {
    /// Whether the step gives its own answer rather than the normal one.
    pub fn is_custom(&self) -> bool {
        self.status.is_some() || self.json.is_some() || self.body.is_some()
    }

    /// The status to send.
    pub fn status_code(&self) -> StatusCode {
        self.status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK)
    }

    /// The step's headers, validated by [`Step::validate`].
    pub fn header_pairs(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        self.headers.iter().filter_map(|(k, v)| {
            Some((
                HeaderName::from_bytes(k.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        })
    }

    /// Checks the step for `kind`; the error says which field is wrong.
    pub fn validate(&self, kind: StepKind, index: usize) -> Result<(), String> {
        let at = format!("{}[{index}]", kind.name());
        if let Some(status) = self.status
            && !(200..=599).contains(&status)
        {
            return Err(format!("{at}.status {status} is not in 200-599"));
        }
        if self.json.is_some() && self.body.is_some() {
            return Err(format!("{at}: json and body are exclusive"));
        }
        if self.repeat == Some(0) {
            return Err(format!("{at}.repeat must be at least 1"));
        }
        if self.delay_ms > MAX_DELAY_MS {
            return Err(format!("{at}.delay_ms is above {MAX_DELAY_MS}"));
        }
        for (name, value) in &self.headers {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{at}.headers: {name:?} is not a header name"))?;
            HeaderValue::from_str(value)
                .map_err(|_| format!("{at}.headers.{name}: {value:?} is not a header value"))?;
        }
        if kind != StepKind::Video {
            for (set, field) in [
                (self.truncate_at.is_some(), "truncate_at"),
                (self.stall_after.is_some(), "stall_after"),
                (self.no_content_length, "no_content_length"),
                (self.abort, "abort"),
            ] {
                if set {
                    return Err(format!("{at}.{field} applies to video_responses only"));
                }
            }
        }
        Ok(())
    }
}

impl TaskScript {
    /// Checks the script against the videos the simulator can serve.
    pub fn validate(&self, videos_dir: &Path) -> Result<(), String> {
        if let Some(video) = &self.video
            && (video.contains('/') || video.contains("..") || !videos_dir.join(video).is_file())
        {
            return Err(format!("no video {video} in the videos directory"));
        }
        for (value, field) in [
            (self.queued_seconds, "queued_seconds"),
            (self.processing_seconds, "processing_seconds"),
            (self.not_found_for_seconds, "not_found_for_seconds"),
            (self.actual_duration, "actual_duration"),
        ] {
            if let Some(v) = value
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(format!("{field} must be a number of seconds >= 0"));
            }
        }
        if let Some(outcome) = &self.outcome
            && !matches!(outcome.as_str(), "completed" | "failed")
        {
            return Err(format!(
                "outcome {outcome:?} is not \"completed\" or \"failed\" (script other statuses with responses)"
            ));
        }
        for (i, step) in self.responses.iter().enumerate() {
            step.validate(StepKind::Result, i)?;
        }
        for (i, step) in self.video_responses.iter().enumerate() {
            step.validate(StepKind::Video, i)?;
        }
        Ok(())
    }
}

impl CreateScript {
    /// Checks the create steps and the task script.
    pub fn validate(&self, videos_dir: &Path) -> Result<(), String> {
        for (i, step) in self.responses.iter().enumerate() {
            step.validate(StepKind::Create, i)?;
        }
        if let Some(task) = &self.task {
            task.validate(videos_dir)
                .map_err(|e| format!("task: {e}"))?;
        }
        Ok(())
    }
}

/// Steps waiting to answer, each as many times as its `repeat`.
#[derive(Debug, Default)]
pub struct StepQueue(VecDeque<(Step, u32)>);

impl StepQueue {
    /// The queue of `steps`, in order.
    pub fn new(steps: &[Step]) -> Self {
        Self(
            steps
                .iter()
                .map(|s| (s.clone(), s.repeat.unwrap_or(1).max(1)))
                .collect(),
        )
    }

    /// The step that answers the next request, if any is left.
    pub fn next(&mut self) -> Option<Step> {
        let (step, left) = self.0.front_mut()?;
        let step = step.clone();
        *left -= 1;
        if *left == 0 {
            self.0.pop_front();
        }
        Some(step)
    }

    /// Requests the queue will still answer.
    pub fn remaining(&self) -> u64 {
        self.0.iter().map(|(_, n)| u64::from(*n)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_repeat_then_run_out() {
        let steps: Vec<Step> = serde_json::from_value(serde_json::json!([
            {"status": 500, "repeat": 2},
            {"delay_ms": 10}
        ]))
        .unwrap();
        let mut q = StepQueue::new(&steps);
        assert_eq!(q.remaining(), 3);
        assert_eq!(q.next().unwrap().status, Some(500));
        assert_eq!(q.next().unwrap().status, Some(500));
        let normal = q.next().unwrap();
        assert!(!normal.is_custom());
        assert_eq!(normal.delay_ms, 10);
        assert!(q.next().is_none());
    }

    #[test]
    fn bad_steps_are_refused_with_the_field_named() {
        let bad = |v: serde_json::Value, kind| {
            serde_json::from_value::<Step>(v)
                .map_err(|e| e.to_string())
                .and_then(|s| s.validate(kind, 0))
                .unwrap_err()
        };
        assert!(bad(serde_json::json!({"delay": 5}), StepKind::Result).contains("delay"));
        assert!(
            bad(serde_json::json!({"truncate_at": 5}), StepKind::Result).contains("truncate_at")
        );
        assert!(bad(serde_json::json!({"status": 99}), StepKind::Video).contains("status"));
        assert!(
            bad(
                serde_json::json!({"json": {}, "body": "x"}),
                StepKind::Create
            )
            .contains("exclusive")
        );
        assert!(bad(serde_json::json!({"repeat": 0}), StepKind::Create).contains("repeat"));
        assert!(
            bad(
                serde_json::json!({"headers": {"a b": "x"}}),
                StepKind::Create
            )
            .contains("header")
        );
    }
}
