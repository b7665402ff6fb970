//! The provider's HTTP API: a reqwest client for its task endpoints, tolerant parsing of what
//! it answers, and the classification of every HTTP outcome into a typed error that says
//! whether a retry can succeed.

mod error;
mod parse;

use std::time::Duration;

use grok_video_proto::v1::VideoTask;
use reqwest::{StatusCode, header};
use url::Url;

pub use error::ProviderError;
pub use parse::{normalise_status, parse_error_message, parse_task};

use crate::config::ProviderConfig;

/// A client for one provider account. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProviderClient {
    http: reqwest::Client,
    base_url: Url,
    auth: header::HeaderValue,
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
        Ok(Self {
            http,
            base_url: config.base_url.clone(),
            auth,
        })
    }

    /// The API's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// `GET {base}/v1/result/{id}`: the task's current status.
    pub async fn get_task(&self, task_id: &str) -> Result<VideoTask, ProviderError> {
        let url = self.endpoint(&["v1", "result", task_id]);
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
        })
        .unwrap();
        let url = client.endpoint(&["v1", "result", "video_a/b?c#d"]);
        assert_eq!(
            url.as_str(),
            "https://api.example/kyy/v1/result/video_a%2Fb%3Fc%23d"
        );
    }
}
