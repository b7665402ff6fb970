//! The streaming copy: download `video_url` as a stream, check that it is an MP4, hash it,
//! and upload it to S3 in bounded memory (one PutObject below the part size, multipart
//! above), aborting every multipart upload that does not complete.

mod error;
mod hash;
mod mp4;
mod orphans;
mod parts;
mod signing;
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
use bytes::{Buf, Bytes};
use futures::StreamExt;
use grok_video_proto::v1::{CopyCheckpoint, StoredVideo};
use tokio_util::sync::CancellationToken;
use url::Url;

pub use error::StorageError;
use hash::ResumableSha256;
use parts::{PartBuffer, PartBuffers, PartWriter};
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
        // A streamed part's body waits on the download, so the SDK's stalled-upload check
        // (by default: no byte for 5 s fails the request) must allow what the download's own
        // idle timeout allows.
        let stalls = aws_sdk_s3::config::StalledStreamProtectionConfig::enabled()
            .grace_period(config.idle_timeout)
            .build();
        let mut s3 = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.force_path_style)
            .stalled_stream_protection(stalls);
        if let Some(endpoint) = &config.endpoint_url {
            s3 = s3.endpoint_url(endpoint);
        }
        if upload::checksums_on(shared.request_checksum_calculation()) {
            s3 = s3.interceptor(signing::UnsignedStreamingOverHttp);
        }
        let policy = UrlPolicy {
            allow_http: config.allow_http,
            allow_private: config.allow_private,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(config.idle_timeout)
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                // `previous()` holds every URL requested so far, the first one included: after
                // N redirects it has N URLs, so this follows MAX_REDIRECTS and refuses the next.
                if attempt.previous().len() > url_policy::MAX_REDIRECTS {
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

    /// The bucket and key a job asks for: its own, or the defaults and the key template.
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
            render_key(&self.config.key_template, &self.config.key_prefix, job)
        } else {
            job.key.clone()
        };
        check_key(&key)?;
        Ok((bucket, key))
    }

    /// Where the copy goes: the requested key, or with the `suffix` conflict policy the first
    /// `name-N.ext` that is free or ours; or the object an earlier attempt already stored.
    async fn place(&self, job: &CopyJob) -> Result<Placement, StorageError> {
        let (bucket, base) = self.destination(job)?;
        for n in 1..=MAX_SUFFIX {
            let key = if n == 1 {
                base.clone()
            } else {
                with_suffix(&base, n)
            };
            match self.existing(job, &bucket, &key).await? {
                Existing::Free | Existing::OursUnfinished => {
                    return Ok(Placement::Free { bucket, key });
                }
                Existing::Ours(stored) => return Ok(Placement::Stored(stored)),
                Existing::Other(owner)
                    if self.config.on_conflict == ConflictPolicy::Fail || n == MAX_SUFFIX =>
                {
                    return Err(StorageError::DestinationExists { bucket, key, owner });
                }
                Existing::Other(_) => {}
            }
        }
        unreachable!("the loop returns at MAX_SUFFIX")
    }

    /// Copies one video. `progress` receives the bytes received and, as parts complete, the
    /// checkpoint a later attempt resumes from (`resume`, from the last heartbeat); `cancel`
    /// stops the copy and aborts its upload.
    ///
    /// A streamed part cannot be sent again from memory, so when S3 fails one the copy goes
    /// on as a new attempt would: from the parts S3 holds, with a Range request (or from the
    /// start when the host ignores ranges), up to [`PART_RETRIES`] times.
    pub async fn copy(
        &self,
        job: &CopyJob,
        progress: &CopyProgress,
        resume: Option<CopyCheckpoint>,
        cancel: &CancellationToken,
    ) -> Result<StoredVideo, StorageError> {
        let mut resume = resume;
        let mut retries = 0;
        loop {
            let keep = retries < PART_RETRIES;
            match self
                .copy_once(job, progress, resume.take(), cancel, keep)
                .await
            {
                Ok(stored) => return Ok(stored),
                Err(Failed { error, kept: true }) => {
                    retries += 1;
                    let checkpoint = progress.snapshot();
                    tracing::warn!(task_id = %job.task_id, %error, retry = retries,
                        from_byte = checkpoint.committed_bytes, "a part failed; going on from the parts S3 holds");
                    resume = Some(checkpoint);
                }
                Err(Failed { error, .. }) => {
                    // An attempt that failed before it took over the kept upload (a refused
                    // HeadObject, say) left it open: abort it (gone already is fine).
                    let checkpoint = progress.snapshot();
                    if retries > 0 && !checkpoint.upload_id.is_empty() {
                        upload::abort_id(
                            &self.s3,
                            &checkpoint.bucket,
                            &checkpoint.key,
                            &checkpoint.upload_id,
                        )
                        .await;
                    }
                    return Err(error);
                }
            }
        }
    }

    async fn copy_once(
        &self,
        job: &CopyJob,
        progress: &CopyProgress,
        resume: Option<CopyCheckpoint>,
        cancel: &CancellationToken,
        keep_on_part_failure: bool,
    ) -> Result<StoredVideo, Failed> {
        let url = Url::parse(&job.video_url).map_err(|e| StorageError::UnsafeUrl {
            url: job.video_url.chars().take(80).collect(),
            reason: format!("not a URL: {e}"),
        })?;
        self.check_source(&url).await?;
        let (bucket, key) = match self.place(job).await? {
            Placement::Stored(existing) => {
                tracing::info!(task_id = %job.task_id, bucket = %existing.bucket, key = %existing.key, "object already stored by an earlier attempt");
                return Ok(existing);
            }
            Placement::Free { bucket, key } => (bucket, key),
        };
        let shown = display_url(&url);
        let part_size = self.config.part_size;

        // A killed attempt left a multipart upload: continue it from the next byte when the
        // host honours ranges, otherwise abort it and start over.
        let mut start = None;
        if let Some(cp) = resume.filter(|cp| !cp.upload_id.is_empty()) {
            if cp.bucket == bucket && cp.key == key && cp.part_size == part_size as i64 {
                start = self.resume(&url, &cp, cancel).await?;
            }
            if start.is_none() {
                tracing::info!(task_id = %job.task_id, upload_id = %cp.upload_id, "cannot resume the earlier upload; starting over");
                upload::abort_id(&self.s3, &cp.bucket, &cp.key, &cp.upload_id).await;
            } else {
                tracing::info!(task_id = %job.task_id, upload_id = %cp.upload_id, from_byte = cp.committed_bytes, "resuming the earlier upload");
            }
        }
        let (response, upload, hasher, mut total, expected, sniffed) = match start {
            Some(r) => r,
            None => {
                let response = tokio::select! {
                    r = self.http.get(url.clone()).send() => r.map_err(|e| request_error(&shown, e))?,
                    () = cancel.cancelled() => return Err(StorageError::Cancelled.into()),
                };
                let status = response.status();
                if !status.is_success() {
                    return Err(StorageError::SourceStatus {
                        url: shown,
                        status: status.as_u16(),
                    }
                    .into());
                }
                let expected = response.content_length();
                (
                    response,
                    None,
                    ResumableSha256::default(),
                    0u64,
                    expected,
                    false,
                )
            }
        };
        progress
            .total
            .store(expected.unwrap_or_default(), Ordering::Relaxed);
        let mut stream = response.bytes_stream();
        // Parts stream from the download when their sizes are known and S3 checks each one
        // against a checksum trailer; otherwise (no Content-Length, or `when_required`, where
        // the signed payload hash is the check) they are buffered. A video smaller than a part
        // is one PutObject from memory.
        let parts = if upload::checksummed(&self.s3)
            && expected.is_some_and(|len| len > part_size as u64)
        {
            Parts::Streamed(None)
        } else {
            // One buffer fills while up to `parts_in_flight` parts upload.
            let mut pool = PartBuffers::new(part_size, self.config.parts_in_flight + 1);
            let buf = pool.take().await;
            Parts::Buffered { pool, buf }
        };
        // A resumed copy starts mid-file, where box boundaries are unknown; its length is
        // checked against Content-Range instead.
        let mut boxes = (total == 0).then(mp4::BoxWalker::default);
        // Every heartbeat carries the upload (and the parts that cover the bytes so far) from
        // the moment it exists, so a worker lost at any point leaves a checkpoint that the next
        // attempt resumes from or aborts: the state at the start is remembered here, a resumed
        // upload is checkpointed at once, a new one as soon as it is created.
        if let Some((state, at)) = hasher.checkpoint() {
            progress.remember(at, state);
        }
        let mut sink = Sink {
            storage: self,
            job,
            shown: &shown,
            bucket: &bucket,
            key: &key,
            progress,
            cancel,
            expected,
            upload,
            hasher,
            parts,
        };
        sink.record();
        // The first bytes, held until they show an MP4 (nothing is uploaded before); none for
        // a resumed copy, whose start was sniffed by the attempt that began it.
        let mut head = (!sniffed).then(Vec::new);
        let result: Result<StoredVideo, StorageError> = async {
            if let Some(len) = expected
                && len > self.config.max_video_bytes
            {
                return Err(StorageError::TooLarge {
                    url: shown.clone(),
                    limit: self.config.max_video_bytes,
                });
            }
            loop {
                // While waiting for the next bytes, parts in flight may land: record each in
                // the checkpoint at once. (A stalled download would otherwise heartbeat only the
                // parts collected at the last push, so a worker killed during the stall resumes
                // from further back, or, with no part collected yet, leaves its upload open.)
                let idle = tokio::time::sleep(self.config.idle_timeout);
                tokio::pin!(idle);
                let next = loop {
                    let landing = sink.upload.as_ref().is_some_and(Upload::has_in_flight);
                    tokio::select! {
                        n = stream.next() => break Some(n),
                        () = &mut idle => break None,
                        r = sink.land_one(), if landing => r?,
                        () = cancel.cancelled() => return Err(StorageError::Cancelled),
                    }
                };
                let chunk: Bytes = match next {
                    None => {
                        return Err(StorageError::Stalled {
                            url: shown.clone(),
                            after: total,
                            idle: self.config.idle_timeout,
                        });
                    }
                    Some(None) => break,
                    Some(Some(Err(e))) => {
                        // A body that breaks off before its Content-Length is a short body:
                        // say how much came.
                        if let Some(len) = expected
                            && total < len
                        {
                            tracing::debug!(url = %shown, error = %e, "the download broke off");
                            return Err(StorageError::ShortBody {
                                url: shown.clone(),
                                expected: len,
                                received: total,
                            });
                        }
                        return Err(StorageError::Download {
                            url: shown.clone(),
                            source: e.without_url(),
                        });
                    }
                    Some(Some(Ok(chunk))) => chunk,
                };
                if let Some(walker) = &mut boxes {
                    walker
                        .feed(total, &chunk)
                        .map_err(|detail| StorageError::Truncated {
                            url: shown.clone(),
                            detail,
                        })?;
                }
                total += chunk.len() as u64;
                if total > self.config.max_video_bytes {
                    return Err(StorageError::TooLarge {
                        url: shown.clone(),
                        limit: self.config.max_video_bytes,
                    });
                }
                progress.bytes.store(total, Ordering::Relaxed);
                match &mut head {
                    None => sink.write(chunk).await?,
                    Some(held) => {
                        held.push(chunk);
                        if held.iter().map(Bytes::len).sum::<usize>() >= SNIFF_BYTES {
                            sink.write_head(head.take()).await?;
                        }
                    }
                }
            }
            sink.write_head(head.take()).await?;
            if let Some(len) = expected
                && len != total
            {
                return Err(StorageError::ShortBody {
                    url: shown.clone(),
                    expected: len,
                    received: total,
                });
            }
            if let Some(walker) = &boxes {
                walker
                    .finish(total)
                    .map_err(|detail| StorageError::Truncated {
                        url: shown.clone(),
                        detail,
                    })?;
            }
            let sha256 = sink.hasher.clone().finish_hex();
            // The bytes of the last buffered part (a streamed one has been sent).
            let last = match &mut sink.parts {
                Parts::Buffered { buf, .. } => buf.freeze(),
                Parts::Streamed(_) => Bytes::new(),
            };
            let etag = match sink.upload.take() {
                None => {
                    upload::put(&self.s3, &bucket, &key, last, &metadata(job, Some(&sha256)))
                        .await?
                }
                Some(mut up) => {
                    let finished = async {
                        if !last.is_empty() {
                            up.push(last).await?;
                        }
                        up.complete().await
                    }
                    .await;
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
                        Err(e) => {
                            sink.upload = Some(up);
                            return Err(e);
                        }
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
        let error = match result {
            Ok(stored) => return Ok(stored),
            Err(error) => error,
        };
        if let Some(up) = sink.upload.take() {
            let part_failed = matches!(
                error,
                StorageError::S3 {
                    op: "UploadPart",
                    ..
                }
            );
            if keep_on_part_failure && part_failed && error.is_retryable() {
                up.detach();
                return Err(Failed { error, kept: true });
            }
            up.abort().await;
        }
        Err(error.into())
    }

    /// Checks an earlier attempt's upload against S3 and asks the host for the rest of the
    /// video; `None` when either cannot be trusted.
    async fn resume(
        &self,
        url: &Url,
        cp: &CopyCheckpoint,
        cancel: &CancellationToken,
    ) -> Result<Option<Resumed>, StorageError> {
        // A failed check is no reason to fail the attempt: that would drop the checkpoint (the
        // next attempt heartbeats its own) and leave the upload open for good. Start over and
        // abort it instead.
        let listed = match upload::list_parts(&self.s3, &cp.bucket, &cp.key, &cp.upload_id).await {
            Ok(Some(listed)) => listed,
            Ok(None) => return Ok(None),
            Err(err) => {
                tracing::warn!(upload_id = %cp.upload_id, error = %err, "cannot list the earlier upload's parts");
                return Ok(None);
            }
        };
        let intact = cp.parts.iter().all(|p| {
            listed
                .iter()
                .any(|(n, etag, size)| *n == p.number && *etag == p.etag && *size == p.size)
        });
        let covered: i64 = cp.parts.iter().map(|p| p.size).sum();
        let Ok(state) = <[u32; 8]>::try_from(cp.sha256_state.as_slice()) else {
            return Ok(None);
        };
        let Some(hasher) = ResumableSha256::resume(state, cp.committed_bytes as u64) else {
            return Ok(None);
        };
        if !intact || covered != cp.committed_bytes || cp.parts.is_empty() {
            return Ok(None);
        }
        let request = self.http.get(url.clone()).header(
            reqwest::header::RANGE,
            format!("bytes={}-", cp.committed_bytes),
        );
        let response = tokio::select! {
            r = request.send() => match r { Ok(r) => r, Err(_) => return Ok(None) },
            () = cancel.cancelled() => return Err(StorageError::Cancelled),
        };
        let range_ok = response.status() == reqwest::StatusCode::PARTIAL_CONTENT
            && response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range)
                .is_some_and(|(first, total)| {
                    first == cp.committed_bytes as u64
                        && (cp.total_bytes == 0 || total == Some(cp.total_bytes as u64))
                });
        if !range_ok {
            return Ok(None);
        }
        let expected = response
            .content_length()
            .map(|rest| rest + cp.committed_bytes as u64);
        let up = Upload::resumed(
            &self.s3,
            &cp.bucket,
            &cp.key,
            &cp.upload_id,
            cp.parts.clone(),
            self.config.parts_in_flight,
        );
        Ok(Some((
            response,
            Some(up),
            hasher,
            cp.committed_bytes as u64,
            expected,
            true,
        )))
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

    /// What is at the key already.
    async fn existing(
        &self,
        job: &CopyJob,
        bucket: &str,
        key: &str,
    ) -> Result<Existing, StorageError> {
        let head = match self.s3.head_object().bucket(bucket).key(key).send().await {
            Ok(head) => head,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {
                return Ok(Existing::Free);
            }
            Err(err) => return Err(StorageError::s3("HeadObject", bucket, key, err)),
        };
        let metadata = head.metadata().cloned().unwrap_or_default();
        let ours = metadata
            .get(meta::TASK_ID)
            .is_some_and(|t| t == &job.task_id);
        Ok(match (ours, metadata.get(meta::SHA256)) {
            (true, Some(sha256)) => Existing::Ours(StoredVideo {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                size_bytes: head.content_length().unwrap_or_default(),
                sha256: sha256.clone(),
                etag: head.e_tag().unwrap_or_default().to_owned(),
                content_type: head.content_type().unwrap_or(CONTENT_TYPE).to_owned(),
            }),
            // Ours, but the attempt died between complete and the metadata update: redo it.
            (true, None) => Existing::OursUnfinished,
            (false, _) => Existing::Other(metadata.get(meta::TASK_ID).cloned()),
        })
    }
}

/// Times a copy goes on after a failed part before it fails.
pub const PART_RETRIES: u32 = 3;

/// A failed attempt of [`Storage::copy`]; `kept`: its upload is left open to go on from.
struct Failed {
    error: StorageError,
    kept: bool,
}

impl From<StorageError> for Failed {
    fn from(error: StorageError) -> Self {
        Self { error, kept: false }
    }
}

/// Keys tried with the `suffix` conflict policy: `name.mp4`, `name-2.mp4` … `name-20.mp4`.
const MAX_SUFFIX: u32 = 20;

enum Placement {
    Stored(StoredVideo),
    Free { bucket: String, key: String },
}

enum Existing {
    Free,
    Ours(StoredVideo),
    OursUnfinished,
    Other(Option<String>),
}

/// What to do when another object is at the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConflictPolicy {
    /// Fail with `DestinationExists`; nothing is overwritten.
    Fail,
    /// Store at `name-2.ext`, `name-3.ext` … instead.
    Suffix,
}

/// The key template with `{prefix}`, `{task_id}` and `{model}` filled in; values cannot add
/// path segments.
fn render_key(template: &str, prefix: &str, job: &CopyJob) -> String {
    let clean = |v: &str| {
        v.replace(['/', '\\'], "_")
            .chars()
            .filter(|c| !c.is_control())
            .collect::<String>()
    };
    let model = if job.model.is_empty() {
        "unknown-model".to_owned()
    } else {
        clean(&job.model)
    };
    let key = template
        .replace("{prefix}", prefix)
        .replace("{task_id}", &clean(&job.task_id))
        .replace("{model}", &model);
    key.trim_start_matches('/').replace("//", "/")
}

fn with_suffix(key: &str, n: u32) -> String {
    let (dir, name) = key
        .rsplit_once('/')
        .map(|(d, n)| (format!("{d}/"), n))
        .unwrap_or((String::new(), key));
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{dir}{stem}-{n}.{ext}"),
        _ => format!("{dir}{name}-{n}"),
    }
}

/// Bytes sniffed before anything is uploaded.
const SNIFF_BYTES: usize = 12;

/// Where a copy's bytes go: hashed, then into parts.
struct Sink<'a> {
    storage: &'a Storage,
    job: &'a CopyJob,
    shown: &'a str,
    bucket: &'a str,
    key: &'a str,
    progress: &'a CopyProgress,
    cancel: &'a CancellationToken,
    expected: Option<u64>,
    upload: Option<Upload>,
    hasher: ResumableSha256,
    parts: Parts,
}

/// How parts are made.
enum Parts {
    /// Each part streams to S3 as its bytes arrive: the one being sent, if any.
    Streamed(Option<PartWriter>),
    /// Each part is gathered in a buffer, then sent.
    Buffered { pool: PartBuffers, buf: PartBuffer },
}

impl Sink<'_> {
    /// Sniffs the held first bytes (if still held) and writes them.
    async fn write_head(&mut self, head: Option<Vec<Bytes>>) -> Result<(), StorageError> {
        let Some(head) = head else {
            return Ok(());
        };
        let start: Vec<u8> = head
            .iter()
            .flat_map(|b| b.iter().copied())
            .take(16)
            .collect();
        sniff(&start, self.shown)?;
        for chunk in head {
            self.write(chunk).await?;
        }
        Ok(())
    }

    /// Hashes `chunk` and adds it to the parts, sending each part as it fills (streamed: as
    /// the bytes come).
    async fn write(&mut self, mut chunk: Bytes) -> Result<(), StorageError> {
        let part_size = self.storage.config.part_size;
        let cancel = self.cancel;
        while !chunk.is_empty() {
            if matches!(self.parts, Parts::Streamed(None)) {
                let at = self.hasher.len();
                let expected = self.expected.unwrap_or_default();
                let len = expected.saturating_sub(at).min(part_size as u64);
                if len == 0 {
                    return Err(StorageError::ShortBody {
                        url: self.shown.to_owned(),
                        expected,
                        received: at + chunk.len() as u64,
                    });
                }
                let up = self.started().await?;
                let writer = tokio::select! {
                    r = up.push_streamed(len) => r?,
                    () = cancel.cancelled() => return Err(StorageError::Cancelled),
                };
                self.parts = Parts::Streamed(Some(writer));
            }
            match &mut self.parts {
                Parts::Streamed(current) => {
                    let writer = current.as_mut().expect("a part was started");
                    let piece = chunk.split_to(chunk.len().min(writer.remaining() as usize));
                    self.hasher.update(&piece);
                    let sent = tokio::select! {
                        r = writer.send(piece) => r,
                        () = cancel.cancelled() => return Err(StorageError::Cancelled),
                    };
                    if sent.is_err() {
                        let up = self.upload.as_mut().expect("a part is in flight");
                        return Err(up.failure().await);
                    }
                    if writer.remaining() == 0 {
                        *current = None;
                        self.part_sent().await?;
                    }
                }
                Parts::Buffered { buf, .. } => {
                    // Each byte is copied once, into its part, and hashed on the way while it
                    // is still in cache.
                    let n = buf.fill(&chunk);
                    self.hasher.update(&chunk[..n]);
                    chunk.advance(n);
                    if !buf.is_full() {
                        continue;
                    }
                    let part = buf.freeze();
                    let up = self.started().await?;
                    tokio::select! {
                        r = up.push(part) => r?,
                        () = cancel.cancelled() => return Err(StorageError::Cancelled),
                    }
                    self.part_sent().await?;
                    // `push` returned once fewer than `parts_in_flight` parts are in flight, so
                    // a landed part's buffer is free.
                    let Parts::Buffered { pool, buf } = &mut self.parts else {
                        unreachable!("the parts are buffered")
                    };
                    tokio::select! {
                        () = pool.refill(buf) => {}
                        () = cancel.cancelled() => return Err(StorageError::Cancelled),
                    }
                }
            }
        }
        Ok(())
    }

    /// The multipart upload, created (and checkpointed at once) on first use.
    async fn started(&mut self) -> Result<&mut Upload, StorageError> {
        if self.upload.is_none() {
            let up = Upload::start(
                &self.storage.s3,
                self.bucket,
                self.key,
                &metadata(self.job, None),
                self.storage.config.parts_in_flight,
            )
            .await?;
            self.upload = Some(up);
            self.record();
        }
        Ok(self.upload.as_mut().expect("just started"))
    }

    /// A part's bytes are all sent: remember the hash state at its end for the checkpoint
    /// once it lands, and record the parts landed meanwhile.
    async fn part_sent(&mut self) -> Result<(), StorageError> {
        if let Some((state, at)) = self.hasher.checkpoint() {
            self.progress.remember(at, state);
        }
        let up = self.upload.as_mut().expect("a part was sent");
        up.collect_finished().await?;
        self.record();
        Ok(())
    }

    /// Waits for a part in flight to land, and records it in the checkpoint.
    async fn land_one(&mut self) -> Result<(), StorageError> {
        let up = self.upload.as_mut().expect("parts in flight");
        up.finish_one().await?;
        self.record();
        Ok(())
    }

    /// Records the upload and the parts landed without a gap in the checkpoint.
    fn record(&mut self) {
        if let Some(up) = &mut self.upload {
            let part_size = self.storage.config.part_size;
            self.progress
                .checkpoint(self.bucket, self.key, up, self.expected, part_size);
        }
    }
}

/// What a resumed attempt starts from: the rest of the body, the upload, the hash state, the
/// bytes already stored, the expected total and whether the start was sniffed.
type Resumed = (
    reqwest::Response,
    Option<Upload>,
    ResumableSha256,
    u64,
    Option<u64>,
    bool,
);

/// Progress of one copy, shared with whoever heartbeats it.
#[derive(Debug, Default)]
pub struct CopyProgress {
    /// Bytes received so far.
    pub bytes: AtomicU64,
    /// The video's size, when the host announced it (0 otherwise).
    pub total: AtomicU64,
    checkpoint: std::sync::Mutex<Option<CopyCheckpoint>>,
    boundaries: std::sync::Mutex<std::collections::HashMap<u64, [u32; 8]>>,
}

impl CopyProgress {
    /// What to heartbeat now: bytes received, and the resumable state if there is one.
    pub fn snapshot(&self) -> CopyCheckpoint {
        let mut cp = self
            .checkpoint
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
            .unwrap_or_default();
        cp.bytes_copied = self.bytes.load(Ordering::Relaxed) as i64;
        cp
    }

    fn remember(&self, offset: u64, state: [u32; 8]) {
        if let Ok(mut b) = self.boundaries.lock() {
            b.insert(offset, state);
        }
    }

    /// Records the checkpoint of the parts landed without a gap so far.
    fn checkpoint(
        &self,
        bucket: &str,
        key: &str,
        upload: &mut Upload,
        total: Option<u64>,
        part_size: usize,
    ) {
        let (parts, committed) = upload.committed();
        let Ok(mut boundaries) = self.boundaries.lock() else {
            return;
        };
        let Some(state) = boundaries.get(&committed).copied() else {
            return;
        };
        boundaries.retain(|offset, _| *offset >= committed);
        if let Ok(mut cp) = self.checkpoint.lock() {
            *cp = Some(CopyCheckpoint {
                bytes_copied: 0,
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                upload_id: upload.id().to_owned(),
                parts,
                committed_bytes: committed as i64,
                sha256_state: state.to_vec(),
                total_bytes: total.unwrap_or_default() as i64,
                part_size: part_size as i64,
            });
        }
    }
}

/// A failed video request. A redirect refused by the URL rules (more than
/// [`url_policy::MAX_REDIRECTS`], or to a URL they refuse) is [`StorageError::UnsafeUrl`],
/// final like the same URL given directly, with the policy's reason; anything else is a
/// download error, retried.
fn request_error(url: &str, err: reqwest::Error) -> StorageError {
    if err.is_redirect() {
        let reason = std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_else(|| "redirect refused".to_owned());
        return StorageError::UnsafeUrl {
            url: url.to_owned(),
            reason,
        };
    }
    StorageError::Download {
        url: url.to_owned(),
        source: err.without_url(),
    }
}

/// `Content-Range: bytes FIRST-LAST/TOTAL` (TOTAL may be `*`).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, _) = range.split_once('-')?;
    Some((first.trim().parse().ok()?, total.trim().parse().ok()))
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
    fn keys_come_from_the_template_and_suffixes_keep_the_extension() {
        let job = CopyJob {
            task_id: "video_a/b".into(),
            video_url: String::new(),
            bucket: String::new(),
            key: String::new(),
            model: "grok_video3".into(),
            actual_duration_seconds: None,
        };
        assert_eq!(
            render_key("{prefix}/{task_id}.mp4", "videos", &job),
            "videos/video_a_b.mp4"
        );
        assert_eq!(
            render_key("{prefix}/{model}/{task_id}.mp4", "", &job),
            "grok_video3/video_a_b.mp4"
        );
        assert_eq!(with_suffix("videos/x.mp4", 2), "videos/x-2.mp4");
        assert_eq!(with_suffix("x", 3), "x-3");
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
    }

    #[test]
    fn keys_are_sanitised() {
        assert!(check_key("videos/video_1.mp4").is_ok());
        for bad in ["../x", "a/../b", "/abs", "a\nb", ""] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }
}
