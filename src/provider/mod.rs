//! The provider's HTTP API: a reqwest client for its task endpoints, tolerant parsing of what
//! it answers, and the classification of every HTTP outcome into a typed error that says
//! whether a retry can succeed.

mod error;
mod parse;

use std::{sync::Arc, time::Duration};

use grok_video_proto::v1::{CreateVideoTaskRequest, VideoTask};
use reqwest::{StatusCode, header};
use url::Url;

pub use error::ProviderError;
pub use parse::{normalise_status, parse_error_message, parse_task};

use crate::config::ProviderConfig;

/// A client for one provider account. Cheap to clone; clones share the rate limit.
#[derive(Clone, Debug)]
pub struct ProviderClient {
    http: reqwest::Client,
    base_url: Url,
    auth: header::HeaderValue,
    limiter: Option<Arc<RateLimiter>>,
}

/// Spaces requests at least `1 / rate` apart, so no second ever sees more than `rate` of
/// them leave the worker, however many workflows poll at once.
#[derive(Debug)]
struct RateLimiter {
    spacing: Duration,
    /// When the next request may go; waiters queue on the lock in turn.
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl RateLimiter {
    async fn acquire(&self) {
        // The turn is held while waiting and the next one counts from the moment this one
        // actually goes: a worker starved of CPU for a while then sends one request, not the
        // backlog of every turn that fell due meanwhile.
        let mut next = self.next.lock().await;
        tokio::time::sleep_until(*next).await;
        *next = tokio::time::Instant::now() + self.spacing;
    }
}

impl ProviderClient {
    /// Builds the client. Redirects are not followed: the API has no reason to redirect, and a
    /// redirect must never carry the key to another host.
    pub fn new(config: &ProviderConfig) -> Result<Self, ProviderError> {
        let mut auth =
            header::HeaderValue::from_str(&format!("Bearer {}", config.api_key.expose()))
                .map_err(|_| ProviderError::InvalidKey)?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("grok-video-worker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ProviderError::Client)?;
        let limiter = config.max_requests_per_second.map(|rate| {
            Arc::new(RateLimiter {
                spacing: Duration::from_secs_f64(1.0 / rate),
                next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
            })
        });
        Ok(Self {
            http,
            base_url: config.base_url.clone(),
            auth,
            limiter,
        })
    }

    async fn wait_turn(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
    }

    /// The API's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// `GET {base}/v1/result/{id}`: the task's current status.
    pub async fn get_task(&self, task_id: &str) -> Result<VideoTask, ProviderError> {
        let url = self.endpoint(&["v1", "result", task_id]);
        self.wait_turn().await;
        let response = self
            .http
            .get(url)
            .header(header::AUTHORIZATION, self.auth.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| ProviderError::transport(task_id, e))?;
        let status = response.status();
        let retry_after = error::retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| ProviderError::transport(task_id, e))?;
        if status != StatusCode::OK {
            return Err(ProviderError::from_status(
                task_id,
                status,
                retry_after,
                &body,
            ));
        }
        parse_task(&body, task_id)
    }

    /// `POST {base}/v1/grok/videos`: one create request, billed by the provider.
    ///
    /// The error says whether the request certainly created nothing (refused connection,
    /// 4xx, 429) or may have: a timeout after sending, a 5xx or a 200 without a task id come
    /// back as [`ProviderError::CreateOutcomeUnknown`], never to be retried.
    pub async fn create_task(
        &self,
        request: &CreateVideoTaskRequest,
    ) -> Result<VideoTask, ProviderError> {
        const WHAT: &str = "(create)";
        let mut body = serde_json::json!({"model": request.model, "prompt": request.prompt});
        if let Some(d) = request.duration_seconds {
            body["duration"] = d.into();
        }
        if !request.aspect_ratio.is_empty() {
            body["aspect_ratio"] = request.aspect_ratio.clone().into();
        }
        if !request.resolution.is_empty() {
            body["resolution"] = request.resolution.clone().into();
        }
        if !request.image_urls.is_empty() {
            body["image_urls"] = request.image_urls.clone().into();
        }
        self.wait_turn().await;
        let response = match self
            .http
            .post(self.endpoint(&["v1", "grok", "videos"]))
            .header(header::AUTHORIZATION, self.auth.clone())
            .json(&body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) if e.is_connect() => return Err(ProviderError::transport(WHAT, e)),
            Err(e) => {
                return Err(ProviderError::CreateOutcomeUnknown {
                    reason: format!(
                        "the request was sent but no answer came: {}",
                        e.without_url()
                    ),
                });
            }
        };
        let status = response.status();
        let retry_after = error::retry_after(response.headers());
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => {
                return Err(ProviderError::CreateOutcomeUnknown {
                    reason: format!(
                        "HTTP {status} but the body was cut off: {}",
                        e.without_url()
                    ),
                });
            }
        };
        match status.as_u16() {
            200..=299 => {
                let task = parse_task(&bytes, "").ok().or_else(|| {
                    // Created, with no status yet: an id is all a create must say.
                    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
                    let id = value.get("id")?.as_str()?.to_owned();
                    Some(VideoTask {
                        id,
                        status: grok_video_proto::v1::VideoStatus::Queued as i32,
                        provider_status: "queued".into(),
                        ..Default::default()
                    })
                });
                let task = task.filter(|t| !t.id.is_empty());
                task.ok_or_else(|| ProviderError::CreateOutcomeUnknown {
                    reason: format!(
                        "HTTP {status} without a task id: {}",
                        parse_error_message(&bytes).unwrap_or_else(|| "empty body".into())
                    ),
                })
            }
            400..=499 => Err(ProviderError::from_status(
                WHAT,
                status,
                retry_after,
                &bytes,
            )),
            _ => Err(ProviderError::CreateOutcomeUnknown {
                reason: format!(
                    "HTTP {status}: {}",
                    parse_error_message(&bytes).unwrap_or_else(|| "no message".into())
                ),
            }),
        }
    }

    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .expect("base URL validated as http(s) at start-up")
            .pop_if_empty()
            .extend(segments);
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKey;

    #[test]
    fn task_ids_are_encoded_as_one_path_segment() {
        let client = ProviderClient::new(&ProviderConfig {
            base_url: Url::parse("https://api.example/kyy").unwrap(),
            api_key: ApiKey::new("k"),
            timeout: Duration::from_secs(1),
            max_requests_per_second: None,
        })
        .unwrap();
        let url = client.endpoint(&["v1", "result", "video_a/b?c#d"]);
        assert_eq!(
            url.as_str(),
            "https://api.example/kyy/v1/result/video_a%2Fb%3Fc%23d"
        );
    }
}
