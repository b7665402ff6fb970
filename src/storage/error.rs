//! What can go wrong in a copy, and whether a retry can fix it.

use std::time::Duration;

use grok_video_workflows::failures;

/// A failed copy. Messages name the source URL (without its query, which in pre-signed
/// links holds signatures) or the destination.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The aws-config chain found no region.
    #[error(
        "invalid setting AWS_REGION: no AWS region configured (set AWS_REGION or a profile's region)"
    )]
    NoRegion,
    /// Neither the request nor the worker names a bucket.
    #[error("no bucket: the request names none and GROK_S3_BUCKET is not set")]
    NoBucket,
    /// The destination key is unusable.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The URL breaks the safety rules.
    #[error("video URL {url} refused: {reason}")]
    UnsafeUrl {
        /// The URL, shown without query.
        url: String,
        /// Why.
        reason: String,
    },
    /// The host name did not resolve.
    #[error("cannot resolve the host of {url}: {source}")]
    Resolve {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The download failed (connection, TLS, reset).
    #[error("download {url}: {source}")]
    Download {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The video host answered an error status.
    #[error("download {url}: the video host answered HTTP {status}")]
    SourceStatus {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// No bytes arrived for the idle timeout.
    #[error("download {url}: stalled after {after} bytes, nothing received for {idle:?}")]
    Stalled {
        /// The URL.
        url: String,
        /// Bytes received before the stall.
        after: u64,
        /// The idle timeout.
        idle: Duration,
    },
    /// Fewer (or more) bytes than Content-Length announced.
    #[error("download {url}: received {received} bytes, Content-Length announced {expected}")]
    ShortBody {
        /// The URL.
        url: String,
        /// Content-Length.
        expected: u64,
        /// Bytes received.
        received: u64,
    },
    /// The MP4's boxes do not add up to the bytes received: the body was cut short.
    #[error("download {url}: truncated MP4: {detail}")]
    Truncated {
        /// The URL.
        url: String,
        /// Which box and where.
        detail: String,
    },
    /// The body is not an ISO base media file.
    #[error("download {url}: not an MP4 (no ftyp box), it starts with {start:?}")]
    NotAVideo {
        /// The URL.
        url: String,
        /// The first bytes, printable.
        start: String,
    },
    /// The video is larger than allowed.
    #[error("download {url}: larger than the limit of {limit} bytes (GROK_MAX_VIDEO_MIB)")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// Another object is already at the key.
    #[error("s3://{bucket}/{key} already holds a different object{}; not overwritten", owner.as_ref().map(|o| format!(" (of task {o})")).unwrap_or_default())]
    DestinationExists {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The task it belongs to, if it says.
        owner: Option<String>,
    },
    /// An S3 call failed.
    #[error("S3 {op} s3://{bucket}/{key}: {detail}{}", checksum_hint(code.as_deref(), detail))]
    S3 {
        /// The operation.
        op: &'static str,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The S3 error code.
        code: Option<String>,
        /// Code and message, or the SDK's description.
        detail: String,
    },
    /// The copy was cancelled; its upload was aborted.
    #[error("copy cancelled")]
    Cancelled,
    /// The HTTP client could not be built.
    #[error("cannot build the video HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

fn checksum_hint(code: Option<&str>, detail: &str) -> &'static str {
    let text = format!("{} {detail}", code.unwrap_or_default()).to_ascii_lowercase();
    if text.contains("checksum") || text.contains("x-amz-content-sha256") || text.contains("crc") {
        " (this server may not support S3's newer checksums: set AWS_REQUEST_CHECKSUM_CALCULATION=when_required)"
    } else {
        ""
    }
}

impl StorageError {
    /// Whether the same copy can succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Download { .. }
            | Self::Resolve { .. }
            | Self::Stalled { .. }
            | Self::ShortBody { .. }
            | Self::Truncated { .. }
            | Self::NotAVideo { .. }
            | Self::SourceStatus { .. } => true,
            Self::S3 { code, .. } => !matches!(
                code.as_deref(),
                Some(
                    "AccessDenied"
                        | "NoSuchBucket"
                        | "InvalidAccessKeyId"
                        | "SignatureDoesNotMatch"
                        | "InvalidBucketName"
                )
            ),
            _ => false,
        }
    }

    /// The stable failure type name callers match on.
    pub fn failure_type(&self) -> &'static str {
        match self {
            Self::NoBucket | Self::NoRegion | Self::InvalidKey { .. } => failures::INVALID_REQUEST,
            Self::UnsafeUrl { .. } => failures::UNSAFE_VIDEO_URL,
            Self::SourceStatus {
                status: 403 | 404 | 410,
                ..
            } => "VideoUrlExpired",
            Self::NotAVideo { .. } => failures::NOT_A_VIDEO,
            Self::TooLarge { .. } => failures::VIDEO_TOO_LARGE,
            Self::DestinationExists { .. } => failures::DESTINATION_EXISTS,
            Self::S3 { .. } if !self.is_retryable() => failures::STORAGE_REJECTED,
            Self::S3 { .. } => "StorageUnavailable",
            Self::Cancelled => "CopyCancelled",
            _ => "DownloadFailed",
        }
    }
}
