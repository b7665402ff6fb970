//! The streaming copy: download `video_url` as a stream, check that it is an MP4, hash it,
//! and upload it to S3 in bounded memory (one PutObject below the part size, multipart
//! above), aborting every multipart upload that does not complete.

mod error;
mod upload;
pub mod url_policy;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use aws_sdk_s3::{Client as S3Client, error::ProvideErrorMetadata};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use grok_video_proto::v1::StoredVideo;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use url::Url;

pub use error::StorageError;
use upload::Upload;
pub use url_policy::{UrlPolicy, display_url};

use crate::config::StorageConfig;

/// Content type of every stored video.
pub const CONTENT_TYPE: &str = "video/mp4";

/// Object metadata names (sent as `x-amz-meta-*`).
pub mod meta {
    /// Lowercase hex SHA-256 of the object's bytes.
    pub const SHA256: &str = "sha256";
    /// The provider task the video belongs to.
    pub const TASK_ID: &str = "task-id";
    /// The provider model.
    pub const MODEL: &str = "model";
    /// Seconds of video, as the provider reported.
    pub const DURATION: &str = "actual-duration-seconds";
}

/// One copy to make.
#[derive(Debug, Clone)]
pub struct CopyJob {
    /// Provider task id.
    pub task_id: String,
    /// Source URL (no credentials ever sent to it).
    pub video_url: String,
    /// Destination bucket; empty means the default bucket.
    pub bucket: String,
    /// Destination key; empty means `<prefix>/<task_id>.mp4`.
    pub key: String,
    /// Provider model, stored as metadata.
    pub model: String,
    /// Seconds of video, stored as metadata.
    pub actual_duration_seconds: Option<f64>,
}

/// The copy engine: an S3 client, an HTTP client for video hosts, and the settings.
#[derive(Clone, Debug)]
pub struct Storage {
    s3: S3Client,
    http: reqwest::Client,
    config: Arc<StorageConfig>,
}

impl Storage {
    /// Builds the S3 client from the standard aws-config chain plus the endpoint and
    /// path-style settings, and an HTTP client for video hosts that never carries credentials.
    pub async fn new(config: StorageConfig) -> Result<Self, StorageError> {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        if shared.region().is_none() {
            return Err(StorageError::NoRegion);
        }
        let mut s3 =
            aws_sdk_s3::config::Builder::from(&shared).force_path_style(config.force_path_style);
        if let Some(endpoint) = &config.endpoint_url {
            s3 = s3.endpoint_url(endpoint);
        }
        let policy = UrlPolicy {
            allow_http: config.allow_http,
            allow_private: config.allow_private,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(config.idle_timeout)
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= url_policy::MAX_REDIRECTS {
                    attempt.error(format!("more than {} redirects", url_policy::MAX_REDIRECTS))
                } else if let Err(reason) = policy.check(attempt.url()) {
                    let shown = display_url(attempt.url());
                    attempt.error(format!("redirect to {shown} refused: {reason}"))
                } else {
                    attempt.follow()
                }
            }))
            .user_agent(concat!("grok-video-worker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(StorageError::Client)?;
        Ok(Self {
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            http,
            config: Arc::new(config),
        })
    }

    /// The S3 client, for tools that inspect what was stored.
    pub fn s3(&self) -> &S3Client {
        &self.s3
    }

    /// The bucket and key a job will be stored at: the job's, or the defaults.
    pub fn destination(&self, job: &CopyJob) -> Result<(String, String), StorageError> {
        let bucket = if job.bucket.is_empty() {
            self.config
                .default_bucket
                .clone()
                .ok_or(StorageError::NoBucket)?
        } else {
            job.bucket.clone()
        };
        let key = if job.key.is_empty() {
            let name = format!("{}.mp4", job.task_id);
            if self.config.key_prefix.is_empty() {
                name
            } else {
                format!("{}/{name}", self.config.key_prefix)
            }
        } else {
            job.key.clone()
        };
        check_key(&key)?;
        Ok((bucket, key))
    }

    /// Copies one video. `copied` counts bytes received so far (for heartbeats and progress);
    /// `cancel` stops the copy and aborts its upload.
    pub async fn copy(
        &self,
        job: &CopyJob,
        copied: &AtomicU64,
        cancel: &CancellationToken,
    ) -> Result<StoredVideo, StorageError> {
        let (bucket, key) = self.destination(job)?;
        let url = Url::parse(&job.video_url).map_err(|e| StorageError::UnsafeUrl {
            url: job.video_url.chars().take(80).collect(),
            reason: format!("not a URL: {e}"),
        })?;
        self.check_source(&url).await?;
        if let Some(existing) = self.existing(job, &bucket, &key).await? {
            tracing::info!(task_id = %job.task_id, %bucket, %key, "object already stored by an earlier attempt");
            return Ok(existing);
        }

        let shown = display_url(&url);
        let response = tokio::select! {
            r = self.http.get(url.clone()).send() => r.map_err(|e| StorageError::Download { url: shown.clone(), source: e.without_url() })?,
            () = cancel.cancelled() => return Err(StorageError::Cancelled),
        };
        let status = response.status();
        if !status.is_success() {
            return Err(StorageError::SourceStatus {
                url: shown,
                status: status.as_u16(),
            });
        }
        let expected = response.content_length();
        if let Some(len) = expected
            && len > self.config.max_video_bytes
        {
            return Err(StorageError::TooLarge {
                url: shown,
                limit: self.config.max_video_bytes,
            });
        }

        let mut stream = response.bytes_stream();
        let mut hasher = Sha256::new();
        let part_size = self.config.part_size;
        let mut buf = BytesMut::with_capacity(part_size);
        let mut total: u64 = 0;
        let mut sniffed = false;
        let mut upload: Option<Upload> = None;
        let result: Result<StoredVideo, StorageError> = async {
            loop {
                let next = tokio::select! {
                    n = tokio::time::timeout(self.config.idle_timeout, stream.next()) => n,
                    () = cancel.cancelled() => return Err(StorageError::Cancelled),
                };
                let chunk: Bytes = match next {
                    Err(_) => {
                        return Err(StorageError::Stalled {
                            url: shown.clone(),
                            after: total,
                            idle: self.config.idle_timeout,
                        });
                    }
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        return Err(StorageError::Download {
                            url: shown.clone(),
                            source: e.without_url(),
                        });
                    }
                    Ok(Some(Ok(chunk))) => chunk,
                };
                total += chunk.len() as u64;
                if total > self.config.max_video_bytes {
                    return Err(StorageError::TooLarge {
                        url: shown.clone(),
                        limit: self.config.max_video_bytes,
                    });
                }
                hasher.update(&chunk);
                buf.extend_from_slice(&chunk);
                copied.store(total, Ordering::Relaxed);
                if !sniffed && buf.len() >= 12 {
                    sniff(&buf, &shown)?;
                    sniffed = true;
                }
                while buf.len() >= part_size {
                    let part = buf.split_to(part_size).freeze();
                    if buf.capacity() < part_size {
                        buf.reserve(part_size - buf.len());
                    }
                    let up = match &mut upload {
                        Some(up) => up,
                        None => upload.insert(
                            Upload::start(
                                &self.s3,
                                &bucket,
                                &key,
                                &metadata(job, None),
                                self.config.parts_in_flight,
                            )
                            .await?,
                        ),
                    };
                    tokio::select! {
                        r = up.push(part) => r?,
                        () = cancel.cancelled() => return Err(StorageError::Cancelled),
                    }
                }
            }
            if !sniffed {
                sniff(&buf, &shown)?;
            }
            if let Some(len) = expected
                && len != total
            {
                return Err(StorageError::ShortBody {
                    url: shown.clone(),
                    expected: len,
                    received: total,
                });
            }
            let sha256 = hex::encode(hasher.finalize_reset());
            let etag = match upload.take() {
                None => {
                    upload::put(
                        &self.s3,
                        &bucket,
                        &key,
                        buf.split().freeze(),
                        &metadata(job, Some(&sha256)),
                    )
                    .await?
                }
                Some(mut up) => {
                    if !buf.is_empty() {
                        up.push(buf.split().freeze()).await?;
                    }
                    let finished = up.complete().await;
                    match finished {
                        Ok(_) => {
                            upload::set_metadata(
                                &self.s3,
                                &bucket,
                                &key,
                                &metadata(job, Some(&sha256)),
                            )
                            .await?
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            Ok(StoredVideo {
                bucket: bucket.clone(),
                key: key.clone(),
                size_bytes: total as i64,
                sha256,
                etag,
                content_type: CONTENT_TYPE.to_owned(),
            })
        }
        .await;
        if result.is_err()
            && let Some(up) = upload
        {
            up.abort().await;
        }
        result
    }

    async fn check_source(&self, url: &Url) -> Result<(), StorageError> {
        let refuse = |reason: String| StorageError::UnsafeUrl {
            url: display_url(url),
            reason,
        };
        self.policy().check(url).map_err(refuse)?;
        if let Some(url::Host::Domain(host)) = url.host()
            && !self.config.allow_private
        {
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs =
                tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|e| StorageError::Resolve {
                        url: display_url(url),
                        source: e,
                    })?;
            for addr in addrs {
                self.policy().check_ip(addr.ip()).map_err(refuse)?;
            }
        }
        Ok(())
    }

    fn policy(&self) -> UrlPolicy {
        UrlPolicy {
            allow_http: self.config.allow_http,
            allow_private: self.config.allow_private,
        }
    }

    /// An object already at the key: ours from an earlier attempt (same task, with its
    /// sha256), or someone else's, which is never overwritten.
    async fn existing(
        &self,
        job: &CopyJob,
        bucket: &str,
        key: &str,
    ) -> Result<Option<StoredVideo>, StorageError> {
        let head = match self.s3.head_object().bucket(bucket).key(key).send().await {
            Ok(head) => head,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {
                return Ok(None);
            }
            Err(err) => return Err(StorageError::s3("HeadObject", bucket, key, err)),
        };
        let metadata = head.metadata().cloned().unwrap_or_default();
        let ours = metadata
            .get(meta::TASK_ID)
            .is_some_and(|t| t == &job.task_id);
        match (ours, metadata.get(meta::SHA256)) {
            (true, Some(sha256)) => Ok(Some(StoredVideo {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                size_bytes: head.content_length().unwrap_or_default(),
                sha256: sha256.clone(),
                etag: head.e_tag().unwrap_or_default().to_owned(),
                content_type: head.content_type().unwrap_or(CONTENT_TYPE).to_owned(),
            })),
            // Ours, but the attempt died between complete and the metadata update: redo it.
            (true, None) => Ok(None),
            (false, _) => Err(StorageError::DestinationExists {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                owner: metadata.get(meta::TASK_ID).cloned(),
            }),
        }
    }
}

/// Metadata stored with the object; the hash once it is known.
fn metadata(job: &CopyJob, sha256: Option<&str>) -> Vec<(String, String)> {
    let mut m = vec![(meta::TASK_ID.to_owned(), job.task_id.clone())];
    if !job.model.is_empty() {
        m.push((meta::MODEL.to_owned(), job.model.clone()));
    }
    if let Some(d) = job.actual_duration_seconds {
        m.push((meta::DURATION.to_owned(), d.to_string()));
    }
    if let Some(sha) = sha256 {
        m.push((meta::SHA256.to_owned(), sha.to_owned()));
    }
    m
}

/// An ISO base media file starts with a box whose type, at bytes 4..8, is `ftyp`.
fn sniff(head: &[u8], url: &str) -> Result<(), StorageError> {
    if head.len() >= 8 && &head[4..8] == b"ftyp" {
        return Ok(());
    }
    let shown: String = String::from_utf8_lossy(&head[..head.len().min(16)])
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    Err(StorageError::NotAVideo {
        url: url.to_owned(),
        start: shown,
    })
}

/// Keys are S3 paths, not filesystem paths: no `..` or empty segments, no control characters.
fn check_key(key: &str) -> Result<(), StorageError> {
    let bad = |reason: &str| StorageError::InvalidKey {
        key: key.chars().take(200).collect(),
        reason: reason.to_owned(),
    };
    if key.is_empty() || key.len() > 1024 {
        return Err(bad("must be 1 to 1024 bytes"));
    }
    if key.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    if key.starts_with('/') || key.split('/').any(|s| s == ".." || s == ".") {
        return Err(bad("must not start with / or contain . or .. segments"));
    }
    Ok(())
}

impl StorageError {
    pub(crate) fn s3<E, R>(
        op: &'static str,
        bucket: &str,
        key: &str,
        err: aws_sdk_s3::error::SdkError<E, R>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_owned);
        let message = err.message().map(str::to_owned);
        let detail = match (&code, &message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
        };
        Self::S3 {
            op,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            code,
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_accepts_mp4_and_names_what_else_came() {
        assert!(sniff(b"\0\0\0\x20ftypisom\0\0", "u").is_ok());
        let err = sniff(b"<!DOCTYPE html><html>", "https://cdn/x.mp4").unwrap_err();
        assert!(err.to_string().contains("<!DOCTYPE html>"), "{err}");
        assert!(sniff(b"", "u").is_err());
    }

    #[test]
    fn keys_are_sanitised() {
        assert!(check_key("videos/video_1.mp4").is_ok());
        for bad in ["../x", "a/../b", "/abs", "a\nb", ""] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }
}
