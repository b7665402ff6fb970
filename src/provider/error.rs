//! What can go wrong talking to the provider, and whether a retry can fix it.

use std::time::{Duration, SystemTime};

use grok_video_workflows::failures;
use reqwest::{StatusCode, header::HeaderMap};

use super::parse::parse_error_message;

/// A failed provider call. Messages name the task and carry the provider's own words; they
/// never contain the API key (the key is only ever in a sensitive header).
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// 401/403: the key is wrong or revoked.
    #[error("provider rejected the API key (HTTP {status}) for task {task_id}: {message}")]
    Auth {
        /// The task asked about.
        task_id: String,
        /// 401 or 403.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// 402: the account's balance is exhausted.
    #[error("provider account balance exhausted (HTTP 402) for task {task_id}: {message}")]
    Balance {
        /// The task asked about.
        task_id: String,
        /// The provider's message.
        message: String,
    },
    /// 400/422: the request is invalid.
    #[error("provider rejected the request (HTTP {status}) for task {task_id}: {message}")]
    Rejected {
        /// The task asked about.
        task_id: String,
        /// 400 or 422.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// 404: unknown task id (or, briefly, one just created).
    #[error("provider does not know task {task_id} (HTTP 404): {message}")]
    NotFound {
        /// The task asked about.
        task_id: String,
        /// The provider's message.
        message: String,
    },
    /// 429: too many requests.
    #[error("provider rate-limited the query for task {task_id} (HTTP 429): {message}")]
    RateLimited {
        /// The task asked about.
        task_id: String,
        /// What `Retry-After` asked for.
        retry_after: Option<Duration>,
        /// The provider's message.
        message: String,
    },
    /// 5xx, 524 or any other unexpected status: the gateway or the provider is in trouble.
    #[error("provider answered HTTP {status} for task {task_id}: {message}")]
    Server {
        /// The task asked about.
        task_id: String,
        /// The status code.
        status: u16,
        /// The provider's message, or the start of its page.
        message: String,
    },
    /// The request did not complete: connection refused or reset, timeout, DNS.
    #[error("provider request for task {task_id} failed: {source}")]
    Transport {
        /// The task asked about.
        task_id: String,
        /// The connection was never made, so the request certainly never reached the provider.
        never_sent: bool,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// A 200 whose body is not a task.
    #[error("provider answered an unusable body for task {task_id}: {reason}")]
    InvalidBody {
        /// The task asked about.
        task_id: String,
        /// Why it is unusable.
        reason: String,
    },
    /// A create whose outcome is unknown: it may have created (and billed) a task.
    #[error(
        "create request outcome unknown: {reason}; it is not sent again: check the provider's task list before ordering again"
    )]
    CreateOutcomeUnknown {
        /// What happened.
        reason: String,
    },
    /// The key cannot be sent as a header.
    #[error("the API key contains characters that cannot be sent in an HTTP header")]
    InvalidKey,
    /// The HTTP client could not be built.
    #[error("cannot build the provider HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

impl ProviderError {
    pub(crate) fn transport(task_id: &str, source: reqwest::Error) -> Self {
        Self::Transport {
            task_id: task_id.to_owned(),
            never_sent: source.is_connect(),
            source: source.without_url(),
        }
    }

    pub(crate) fn from_status(
        task_id: &str,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Self {
        let task_id = task_id.to_owned();
        let message = parse_error_message(body)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("no message").to_owned());
        let code = status.as_u16();
        match code {
            401 | 403 => Self::Auth {
                task_id,
                status: code,
                message,
            },
            402 => Self::Balance { task_id, message },
            400 | 422 => Self::Rejected {
                task_id,
                status: code,
                message,
            },
            404 => Self::NotFound { task_id, message },
            429 => Self::RateLimited {
                task_id,
                retry_after,
                message,
            },
            _ => Self::Server {
                task_id,
                status: code,
                message,
            },
        }
    }

    /// Whether the same request can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Transport { .. }
                | Self::InvalidBody { .. }
        )
    }

    /// The stable failure type name callers match on.
    pub fn failure_type(&self) -> &'static str {
        match self {
            Self::Auth { .. } | Self::InvalidKey => failures::PROVIDER_AUTH_REJECTED,
            Self::Balance { .. } => failures::PROVIDER_BALANCE_EXHAUSTED,
            Self::Rejected { .. } => failures::PROVIDER_REJECTED_REQUEST,
            Self::NotFound { .. } => failures::VIDEO_TASK_NOT_FOUND,
            Self::RateLimited { .. } => "ProviderRateLimited",
            Self::Server { .. } => "ProviderUnavailable",
            Self::Transport { .. } | Self::Client(_) => "ProviderUnreachable",
            Self::InvalidBody { .. } => "ProviderInvalidResponse",
            Self::CreateOutcomeUnknown { .. } => failures::CREATE_OUTCOME_UNKNOWN,
        }
    }

    /// How long the provider asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// `Retry-After` as seconds or as an HTTP date, capped at ten minutes.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_rfc3339_weak(value)
            .ok()
            .or_else(|| httpdate(value))?
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    };
    Some(delay.min(Duration::from_secs(600)))
}

fn httpdate(value: &str) -> Option<SystemTime> {
    // IMF-fixdate, e.g. "Wed, 21 Oct 2015 07:28:00 GMT".
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)?
        + 1;
    let text = format!("{year}-{month:02}-{day:0>2}T{time}Z");
    humantime::parse_rfc3339(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    #[test]
    fn statuses_map_to_stable_classes() {
        let e = ProviderError::from_status(
            "t",
            StatusCode::UNAUTHORIZED,
            None,
            br#"{"msg":"bad key"}"#,
        );
        assert_eq!(e.failure_type(), "ProviderAuthRejected");
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("bad key"));
        let e = ProviderError::from_status(
            "t",
            StatusCode::from_u16(524).unwrap(),
            None,
            b"<html><body>timeout</body></html>",
        );
        assert!(e.is_retryable());
        assert_eq!(
            ProviderError::from_status("t", StatusCode::PAYMENT_REQUIRED, None, b"").failure_type(),
            "ProviderBalanceExhausted"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        assert!(httpdate("Wed, 21 Oct 2015 07:28:00 GMT").is_some());
    }
}
