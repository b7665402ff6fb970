//! One typed configuration per command, from flags and environment variables, validated at
//! start-up with an error that names the bad setting. Temporal's own settings (TEMPORAL_*,
//! temporal.toml) and AWS's (AWS_*, profiles) are loaded by their SDKs; the flags here only
//! override them.

use std::{fmt, time::Duration};

use clap::Args;
use url::Url;

/// The provider's documented base URL.
pub const DEFAULT_API_BASE_URL: &str = "https://zcbservice.aizfw.cn/kyyReactApiServer";

/// A bad setting: which one, and why.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {reason}")]
pub struct ConfigError {
    /// The flag and its environment variable, e.g. `--api-key / GROK_API_KEY`.
    pub setting: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }
}

/// The provider API key. Never printed: `Debug` and `Display` show a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for the Authorization header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where Temporal is; everything not given here comes from Temporal's envconfig.
#[derive(Args, Debug, Clone)]
pub struct TemporalArgs {
    /// Temporal frontend address (host:port). Unset: envconfig (TEMPORAL_ADDRESS, temporal.toml
    /// profile), else localhost:7233.
    #[arg(
        long = "temporal-address",
        env = "TEMPORAL_ADDRESS",
        value_name = "HOST:PORT"
    )]
    pub address: Option<String>,
    /// Temporal namespace. Unset: envconfig, else `default`.
    #[arg(long = "temporal-namespace", env = "TEMPORAL_NAMESPACE")]
    pub namespace: Option<String>,
    /// Task queue the worker polls and workflows are started on.
    #[arg(long, env = "GROK_TASK_QUEUE", default_value = grok_video_workflows::DEFAULT_TASK_QUEUE)]
    pub task_queue: String,
}

/// How to reach the provider's API.
#[derive(Args, Debug, Clone)]
pub struct ProviderArgs {
    /// Base URL of the provider's API.
    #[arg(long, env = "GROK_API_BASE_URL", default_value = DEFAULT_API_BASE_URL)]
    pub api_base_url: String,
    /// API key, sent as `Authorization: Bearer` to the API host only. Required by the worker.
    #[arg(long, env = "GROK_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Timeout of one API request, in seconds.
    #[arg(long, env = "GROK_API_TIMEOUT_SECONDS", default_value_t = 30)]
    pub api_timeout_seconds: u64,
    /// Cap on provider API requests per second from this worker, all workflows together
    /// (requests are spaced 1/N s apart). 0 disables it.
    #[arg(long, env = "GROK_MAX_REQUESTS_PER_SECOND", default_value_t = 10.0)]
    pub max_requests_per_second: f64,
}

/// The provider settings, validated.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Base URL, without a trailing slash.
    pub base_url: Url,
    /// The key.
    pub api_key: ApiKey,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Requests per second from this process, if capped.
    pub max_requests_per_second: Option<f64>,
}

impl ProviderArgs {
    /// Validates the settings; the key is required.
    pub fn resolve(&self) -> Result<ProviderConfig, ConfigError> {
        const BASE: &str = "--api-base-url / GROK_API_BASE_URL";
        const KEY: &str = "--api-key / GROK_API_KEY";
        let base_url = Url::parse(self.api_base_url.trim_end_matches('/')).map_err(|e| {
            ConfigError::new(BASE, format!("{:?} is not a URL: {e}", self.api_base_url))
        })?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(ConfigError::new(
                BASE,
                format!("{:?} is not an http(s) URL", self.api_base_url),
            ));
        }
        let key = self.api_key.as_deref().map(str::trim).unwrap_or_default();
        if key.is_empty() {
            return Err(ConfigError::new(
                KEY,
                "not set: the worker needs the provider API key",
            ));
        }
        if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ConfigError::new(
                KEY,
                "contains whitespace or control characters",
            ));
        }
        if self.api_timeout_seconds == 0 {
            return Err(ConfigError::new(
                "--api-timeout-seconds / GROK_API_TIMEOUT_SECONDS",
                "must be at least 1",
            ));
        }
        let rate = self.max_requests_per_second;
        if !rate.is_finite() || rate < 0.0 {
            return Err(ConfigError::new(
                "--max-requests-per-second / GROK_MAX_REQUESTS_PER_SECOND",
                format!("{rate} is not a positive number (or 0 for no cap)"),
            ));
        }
        Ok(ProviderConfig {
            base_url,
            api_key: ApiKey::new(key),
            timeout: Duration::from_secs(self.api_timeout_seconds),
            max_requests_per_second: (rate > 0.0).then_some(rate),
        })
    }
}

/// Where and how videos are stored, and which video URLs are acceptable.
#[derive(Args, Debug, Clone)]
pub struct StorageArgs {
    /// Bucket used when a request names none.
    #[arg(long, env = "GROK_S3_BUCKET")]
    pub default_bucket: Option<String>,
    /// Prefix of the default key `<prefix>/<task_id>.mp4`.
    #[arg(long, env = "GROK_S3_KEY_PREFIX", default_value = "videos")]
    pub key_prefix: String,
    /// Key of a video when the request names none; `{prefix}`, `{task_id}` and `{model}` are
    /// filled in.
    #[arg(
        long,
        env = "GROK_S3_KEY_TEMPLATE",
        default_value = "{prefix}/{task_id}.mp4"
    )]
    pub key_template: String,
    /// When another object is at the key: `fail` (DestinationExists) or `suffix` (name-2.mp4 …).
    #[arg(long, env = "GROK_S3_ON_CONFLICT", value_enum, default_value_t = crate::storage::ConflictPolicy::Fail)]
    pub on_conflict: crate::storage::ConflictPolicy,
    /// S3 endpoint for S3-compatible servers. Unset: the aws-config chain (AWS_ENDPOINT_URL).
    #[arg(long, env = "GROK_S3_ENDPOINT_URL")]
    pub s3_endpoint_url: Option<String>,
    /// Path-style addressing (http://host/bucket/key), needed by most S3-compatible servers.
    #[arg(long, env = "GROK_S3_FORCE_PATH_STYLE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub s3_force_path_style: bool,
    /// Multipart part size in MiB (5 to 512); smaller videos use one PutObject.
    #[arg(long, env = "GROK_S3_PART_SIZE_MIB", default_value_t = 8)]
    pub part_size_mib: u64,
    /// Parts uploaded at the same time.
    #[arg(long, env = "GROK_S3_PARTS_IN_FLIGHT", default_value_t = 2)]
    pub parts_in_flight: usize,
    /// Largest video accepted, in MiB (at most 5120).
    #[arg(long, env = "GROK_MAX_VIDEO_MIB", default_value_t = 4096)]
    pub max_video_mib: u64,
    /// Seconds without a byte from the video host before the download counts as stalled.
    #[arg(long, env = "GROK_DOWNLOAD_IDLE_TIMEOUT_SECONDS", default_value_t = 60)]
    pub download_idle_timeout_seconds: u64,
    /// Accept plain-http video URLs (the local stack uses this).
    #[arg(long, env = "GROK_ALLOW_HTTP_VIDEO_URLS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_http_video_urls: bool,
    /// Accept video URLs on loopback, private and link-local addresses (the local stack uses this).
    #[arg(long, env = "GROK_ALLOW_PRIVATE_VIDEO_URLS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_private_video_urls: bool,
}

/// The storage settings, validated.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Bucket used when a request names none.
    pub default_bucket: Option<String>,
    /// Prefix of default keys, without slashes at either end.
    pub key_prefix: String,
    /// Template of default keys.
    pub key_template: String,
    /// What to do when another object is at the key.
    pub on_conflict: crate::storage::ConflictPolicy,
    /// Endpoint override.
    pub endpoint_url: Option<String>,
    /// Path-style addressing.
    pub force_path_style: bool,
    /// Bytes per multipart part.
    pub part_size: usize,
    /// Parts in flight.
    pub parts_in_flight: usize,
    /// Largest accepted video in bytes.
    pub max_video_bytes: u64,
    /// Stall detection per read.
    pub idle_timeout: Duration,
    /// Plain http allowed for video URLs.
    pub allow_http: bool,
    /// Loopback/private addresses allowed for video URLs.
    pub allow_private: bool,
}

impl StorageArgs {
    /// Validates the settings.
    pub fn resolve(&self) -> Result<StorageConfig, ConfigError> {
        if !(5..=512).contains(&self.part_size_mib) {
            return Err(ConfigError::new(
                "--part-size-mib / GROK_S3_PART_SIZE_MIB",
                format!(
                    "{} is outside 5..=512 (S3 parts are at least 5 MiB)",
                    self.part_size_mib
                ),
            ));
        }
        if !(1..=16).contains(&self.parts_in_flight) {
            return Err(ConfigError::new(
                "--parts-in-flight / GROK_S3_PARTS_IN_FLIGHT",
                "must be 1 to 16",
            ));
        }
        if !(1..=MAX_VIDEO_MIB_LIMIT).contains(&self.max_video_mib) {
            return Err(ConfigError::new(
                "--max-video-mib / GROK_MAX_VIDEO_MIB",
                "must be 1 to 5120: the sha256 metadata of a multipart object is recorded by \
                 a CopyObject onto itself, which S3 limits to 5 GiB",
            ));
        }
        // Read by aws-config, which only warns about a value it does not know and goes on with
        // the default.
        if let Ok(value) = std::env::var("AWS_REQUEST_CHECKSUM_CALCULATION")
            && !["when_supported", "when_required"].contains(&value.to_ascii_lowercase().as_str())
        {
            return Err(ConfigError::new(
                "AWS_REQUEST_CHECKSUM_CALCULATION",
                "must be when_supported or when_required",
            ));
        }
        if self.download_idle_timeout_seconds == 0 {
            return Err(ConfigError::new(
                "--download-idle-timeout-seconds / GROK_DOWNLOAD_IDLE_TIMEOUT_SECONDS",
                "must be at least 1",
            ));
        }
        if let Some(endpoint) = &self.s3_endpoint_url {
            Url::parse(endpoint).map_err(|e| {
                ConfigError::new(
                    "--s3-endpoint-url / GROK_S3_ENDPOINT_URL",
                    format!("{endpoint:?}: {e}"),
                )
            })?;
        }
        let key_prefix = self.key_prefix.trim_matches('/').to_owned();
        if key_prefix.split('/').any(|s| s == "..") || key_prefix.chars().any(char::is_control) {
            return Err(ConfigError::new(
                "--key-prefix / GROK_S3_KEY_PREFIX",
                "must not contain `..` segments or control characters",
            ));
        }
        if !self.key_template.contains("{task_id}") {
            return Err(ConfigError::new(
                "--key-template / GROK_S3_KEY_TEMPLATE",
                format!(
                    "{:?} lacks {{task_id}}: keys must differ per task",
                    self.key_template
                ),
            ));
        }
        Ok(StorageConfig {
            default_bucket: self.default_bucket.clone().filter(|b| !b.is_empty()),
            key_prefix,
            key_template: self.key_template.clone(),
            on_conflict: self.on_conflict,
            endpoint_url: self.s3_endpoint_url.clone(),
            force_path_style: self.s3_force_path_style,
            part_size: (self.part_size_mib * 1024 * 1024) as usize,
            parts_in_flight: self.parts_in_flight,
            max_video_bytes: self.max_video_mib * 1024 * 1024,
            idle_timeout: Duration::from_secs(self.download_idle_timeout_seconds),
            allow_http: self.allow_http_video_urls,
            allow_private: self.allow_private_video_urls,
        })
    }
}

/// The largest `--max-video-mib`: S3's CopyObject limit of 5 GiB.
const MAX_VIDEO_MIB_LIMIT: u64 = 5 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(key: Option<&str>, base: &str) -> ProviderArgs {
        ProviderArgs {
            api_base_url: base.into(),
            api_key: key.map(Into::into),
            api_timeout_seconds: 30,
            max_requests_per_second: 5.0,
        }
    }

    #[test]
    fn a_missing_key_names_the_setting() {
        let err = provider(None, DEFAULT_API_BASE_URL).resolve().unwrap_err();
        assert_eq!(err.setting, "--api-key / GROK_API_KEY");
        assert!(err.to_string().contains("GROK_API_KEY"));
    }

    #[test]
    fn a_bad_base_url_names_the_setting_and_the_key_never_prints() {
        let err = provider(Some("sk-secret"), "ftp://x")
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("GROK_API_BASE_URL"));
        let ok = provider(Some("sk-secret"), "http://127.0.0.1:1/base/")
            .resolve()
            .unwrap();
        assert_eq!(ok.base_url.as_str(), "http://127.0.0.1:1/base");
        assert!(!format!("{ok:?}").contains("sk-secret"));
    }
}
