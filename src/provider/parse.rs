//! Reading what the provider answers, in every shape public clients have met: statuses in
//! any case and under synonyms, `error` as text or object, numbers as int, float or string,
//! error bodies as JSON of several shapes or as an HTML page from a proxy.

use grok_video_proto::v1::{VideoStatus, VideoTask};
use serde_json::Value;

use super::ProviderError;

/// Longest provider message passed on to users.
const MAX_MESSAGE_CHARS: usize = 300;

/// Parses a `GET /v1/result/{id}` body. `task_id` is what was asked for, used when the body
/// omits the id.
pub fn parse_task(body: &[u8], task_id: &str) -> Result<VideoTask, ProviderError> {
    let invalid = |reason: String| ProviderError::InvalidBody {
        task_id: task_id.to_owned(),
        reason,
    };
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        invalid(format!(
            "not JSON ({e}): {}",
            parse_error_message(body).unwrap_or_default()
        ))
    })?;
    // Some gateways wrap the task: {"code":0,"data":{...}}.
    let task = match (&value.get("status"), value.get("data")) {
        (None, Some(data)) if data.is_object() => data,
        _ => &value,
    };
    let Some(obj) = task.as_object() else {
        return Err(invalid("the JSON is not an object".into()));
    };
    let Some(raw_status) = obj.get("status").and_then(text) else {
        return Err(invalid(format!(
            "no status field{}",
            parse_error_message(body)
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )));
    };
    let status = normalise_status(&raw_status);
    Ok(VideoTask {
        id: obj
            .get("id")
            .and_then(text)
            .unwrap_or_else(|| task_id.to_owned()),
        model: obj.get("model").and_then(text).unwrap_or_default(),
        status: status as i32,
        provider_status: raw_status,
        video_url: ["video_url", "videoUrl", "url"]
            .iter()
            .find_map(|k| obj.get(*k).and_then(text))
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty()),
        actual_duration_seconds: ["actualDuration", "actual_duration", "duration"]
            .iter()
            .find_map(|k| obj.get(*k).and_then(number))
            .filter(|d| d.is_finite() && *d >= 0.0),
        error: obj.get("error").and_then(message_of).map(|m| cut(&m)),
        created: obj
            .get("created")
            .or_else(|| obj.get("created_at"))
            .and_then(number)
            .map(|n| n as i64)
            .unwrap_or_default(),
    })
}

/// Maps the provider's status text, in any case, to the normalised status. Unknown texts
/// become [`VideoStatus::Unknown`], which the poll loop treats as still running.
pub fn normalise_status(raw: &str) -> VideoStatus {
    match raw
        .trim()
        .to_ascii_lowercase()
        .replace(['-', ' '], "_")
        .as_str()
    {
        "queued" | "pending" | "submitted" | "waiting" | "created" => VideoStatus::Queued,
        "processing" | "in_progress" | "running" | "generating" | "started" => {
            VideoStatus::Processing
        }
        "completed" | "complete" | "succeeded" | "success" | "done" | "finished" => {
            VideoStatus::Completed
        }
        "failed" | "failure" | "error" => VideoStatus::Failed,
        "cancelled" | "canceled" => VideoStatus::Cancelled,
        "expired" => VideoStatus::Expired,
        _ => VideoStatus::Unknown,
    }
}

/// The provider's message in an error body: `{"message"}`, `{"msg"}`, `{"error":"..."}`,
/// `{"error":{"message"}}`, `{"detail"}`, or the visible text of an HTML page; cut to a sane
/// length. `None` for an empty body.
pub fn parse_error_message(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        let found = ["error", "message", "msg", "detail", "error_description"]
            .iter()
            .find_map(|k| value.get(*k).and_then(message_of));
        return Some(cut(&found.unwrap_or_else(|| text.to_owned())));
    }
    Some(cut(&visible_text(text)))
}

fn message_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Object(map) => {
            let message = ["message", "msg", "detail"]
                .iter()
                .find_map(|k| map.get(*k).and_then(text));
            let code = map.get("code").or_else(|| map.get("type")).and_then(text);
            match (message, code) {
                (Some(m), Some(c)) => Some(format!("{m} ({c})")),
                (Some(m), None) => Some(m),
                (None, Some(c)) => Some(c),
                (None, None) => None,
            }
        }
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn visible_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len().min(1024));
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cut(message: &str) -> String {
    let message = message.trim();
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message.to_owned();
    }
    let mut out: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_queued_example() {
        let body = br#"{"id":"video_fd35ee52-2a98-44a6-b930-29a88ce9b8fd","object":"video","created":1774836724,"model":"grok_video3","status":"queued","video_url":null,"error":null}"#;
        let task = parse_task(body, "x").unwrap();
        assert_eq!(task.id, "video_fd35ee52-2a98-44a6-b930-29a88ce9b8fd");
        assert_eq!(task.status(), VideoStatus::Queued);
        assert_eq!(task.video_url, None);
        assert_eq!(task.error, None);
        assert_eq!(task.created, 1_774_836_724);
    }

    #[test]
    fn tolerates_synonyms_cases_and_shapes() {
        let body = br#"{"status":"SUCCEEDED","video_url":"https://cdn/x.mp4","actualDuration":"6.04","created":1.7e9,"error":{"message":"none","code":7}}"#;
        let task = parse_task(body, "asked").unwrap();
        assert_eq!(task.id, "asked");
        assert_eq!(task.status(), VideoStatus::Completed);
        assert_eq!(task.provider_status, "SUCCEEDED");
        assert_eq!(task.actual_duration_seconds, Some(6.04));
        assert_eq!(task.error.as_deref(), Some("none (7)"));
        assert_eq!(normalise_status("In_Progress"), VideoStatus::Processing);
        assert_eq!(normalise_status("canceled"), VideoStatus::Cancelled);
        assert_eq!(normalise_status("weird"), VideoStatus::Unknown);
        let wrapped = parse_task(
            br#"{"code":0,"data":{"status":"failed","error":"policy"}}"#,
            "t",
        )
        .unwrap();
        assert_eq!(wrapped.status(), VideoStatus::Failed);
        assert_eq!(wrapped.error.as_deref(), Some("policy"));
    }

    #[test]
    fn error_bodies_of_every_shape_yield_the_message() {
        assert_eq!(
            parse_error_message(br#"{"code":401,"message":"bad key"}"#).unwrap(),
            "bad key"
        );
        assert_eq!(
            parse_error_message(br#"{"msg":"slow down"}"#).unwrap(),
            "slow down"
        );
        assert_eq!(
            parse_error_message(br#"{"error":{"message":"nope","type":"invalid_request"}}"#)
                .unwrap(),
            "nope (invalid_request)"
        );
        assert_eq!(
            parse_error_message(b"<html><head><title>524</title></head><body><h1>A timeout occurred</h1></body></html>").unwrap(),
            "524 A timeout occurred"
        );
        assert_eq!(parse_error_message(b""), None);
        assert!(
            parse_error_message(&[b'x'; 5000]).unwrap().chars().count() <= MAX_MESSAGE_CHARS + 1
        );
        assert!(matches!(
            parse_task(b"<html>oops</html>", "t"),
            Err(ProviderError::InvalidBody { .. })
        ));
    }
}
