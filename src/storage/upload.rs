//! S3 writes: one PutObject for small videos, a multipart upload with a bounded number of
//! parts in flight for large ones, and the in-place metadata update that records the hash.

use aws_sdk_s3::{
    Client,
    config::RequestChecksumCalculation,
    primitives::ByteStream,
    types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, MetadataDirective},
};
use bytes::Bytes;
use futures::{StreamExt, stream::FuturesUnordered};
use grok_video_proto::v1::UploadedPart;
use tokio::task::JoinHandle;

use super::{
    CONTENT_TYPE, StorageError,
    parts::{self, PartWriter},
};

type PartResult = Result<UploadedPart, StorageError>;

/// A multipart upload under way.
pub(super) struct Upload {
    s3: Client,
    bucket: String,
    key: String,
    upload_id: String,
    next_part: i32,
    in_flight: FuturesUnordered<JoinHandle<PartResult>>,
    max_in_flight: usize,
    done: Vec<UploadedPart>,
}

impl Upload {
    pub(super) async fn start(
        s3: &Client,
        bucket: &str,
        key: &str,
        metadata: &[(String, String)],
        max_in_flight: usize,
    ) -> Result<Self, StorageError> {
        let mut req = s3
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(CONTENT_TYPE)
            .set_checksum_algorithm(part_checksum(s3));
        for (k, v) in metadata {
            req = req.metadata(k, v);
        }
        let out = req
            .send()
            .await
            .map_err(|e| StorageError::s3("CreateMultipartUpload", bucket, key, e))?;
        let upload_id = out.upload_id().unwrap_or_default().to_owned();
        tracing::debug!(%bucket, %key, %upload_id, "multipart upload started");
        Ok(Self {
            s3: s3.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id,
            next_part: 1,
            in_flight: FuturesUnordered::new(),
            max_in_flight,
            done: Vec::new(),
        })
    }

    /// Continues an upload of an earlier attempt whose parts 1..n are `parts`.
    pub(super) fn resumed(
        s3: &Client,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<UploadedPart>,
        max_in_flight: usize,
    ) -> Self {
        Self {
            s3: s3.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            next_part: parts.len() as i32 + 1,
            in_flight: FuturesUnordered::new(),
            max_in_flight,
            done: parts,
        }
    }

    /// The upload id.
    pub(super) fn id(&self) -> &str {
        &self.upload_id
    }

    /// The finished parts 1..n without a gap, and the bytes they cover.
    pub(super) fn committed(&mut self) -> (Vec<UploadedPart>, u64) {
        self.done.sort_by_key(|p| p.number);
        let prefix: Vec<UploadedPart> = self
            .done
            .iter()
            .enumerate()
            .take_while(|(i, p)| p.number == *i as i32 + 1)
            .map(|(_, p)| p.clone())
            .collect();
        let bytes = prefix.iter().map(|p| p.size as u64).sum();
        (prefix, bytes)
    }

    /// Collects parts that finished meanwhile, without waiting.
    pub(super) async fn collect_finished(&mut self) -> Result<(), StorageError> {
        use futures::FutureExt;
        while let Some(Some(joined)) = self.in_flight.next().now_or_never() {
            self.done.push(self.joined(joined)?);
        }
        Ok(())
    }

    fn joined(&self, joined: Result<PartResult, tokio::task::JoinError>) -> PartResult {
        joined.map_err(|e| StorageError::S3 {
            op: "UploadPart",
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            code: None,
            detail: format!("upload task failed: {e}"),
        })?
    }

    /// Sends the next part from memory; waits first while the maximum number of parts is in
    /// flight, so memory stays bounded by `(max_in_flight + 1) × part size`.
    pub(super) async fn push(&mut self, body: Bytes) -> Result<(), StorageError> {
        self.wait_for_room().await?;
        let size = body.len() as i64;
        self.send_part(size, ByteStream::from(body));
        Ok(())
    }

    /// Starts the next part, of `len` bytes, streaming from the returned writer; waits first
    /// while the maximum number of parts is in flight.
    pub(super) async fn push_streamed(&mut self, len: u64) -> Result<PartWriter, StorageError> {
        self.wait_for_room().await?;
        let (writer, body) = parts::streamed(len);
        self.send_part(len as i64, ByteStream::from_body_1_x(body));
        Ok(writer)
    }

    /// Why a streamed part's request ended before taking all its bytes: the first failed part.
    pub(super) async fn failure(&mut self) -> StorageError {
        while let Some(joined) = self.in_flight.next().await {
            match self.joined(joined) {
                Ok(part) => self.done.push(part),
                Err(e) => return e,
            }
        }
        StorageError::S3 {
            op: "UploadPart",
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            code: None,
            detail: "the part's request ended before its body was sent".to_owned(),
        }
    }

    async fn wait_for_room(&mut self) -> Result<(), StorageError> {
        while self.in_flight.len() >= self.max_in_flight {
            self.finish_one().await?;
        }
        Ok(())
    }

    fn send_part(&mut self, size: i64, body: ByteStream) {
        let number = self.next_part;
        self.next_part += 1;
        let (s3, bucket, key, upload_id) = (
            self.s3.clone(),
            self.bucket.clone(),
            self.key.clone(),
            self.upload_id.clone(),
        );
        self.in_flight.push(tokio::spawn(async move {
            let unsigned = checksummed(&s3);
            let req = s3
                .upload_part()
                .bucket(&bucket)
                .key(&key)
                .upload_id(&upload_id)
                .part_number(number)
                .content_length(size)
                .set_checksum_algorithm(part_checksum(&s3))
                .body(body)
                .customize();
            let req = if unsigned {
                req.disable_payload_signing()
            } else {
                req
            };
            let out = req
                .send()
                .await
                .map_err(|e| StorageError::s3("UploadPart", &bucket, &key, e))?;
            let text = |v: Option<&str>| v.unwrap_or_default().to_owned();
            Ok(UploadedPart {
                number,
                etag: text(out.e_tag()),
                size,
                checksum_crc32: text(out.checksum_crc32()),
                checksum_crc32c: text(out.checksum_crc32_c()),
                checksum_crc64nvme: text(out.checksum_crc64_nvme()),
                checksum_sha1: text(out.checksum_sha1()),
                checksum_sha256: text(out.checksum_sha256()),
            })
        }));
    }

    /// Whether parts are still being uploaded.
    pub(super) fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Waits for one part in flight to land (none: returns at once).
    pub(super) async fn finish_one(&mut self) -> Result<(), StorageError> {
        if let Some(joined) = self.in_flight.next().await {
            let part = self.joined(joined)?;
            self.done.push(part);
        }
        Ok(())
    }

    /// Waits for the remaining parts and completes the upload; returns the ETag.
    pub(super) async fn complete(&mut self) -> Result<String, StorageError> {
        while !self.in_flight.is_empty() {
            self.finish_one().await?;
        }
        self.done.sort_by_key(|p| p.number);
        let some = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        let parts: Vec<CompletedPart> = std::mem::take(&mut self.done)
            .into_iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.number)
                    .set_e_tag(some(&p.etag))
                    .set_checksum_crc32(some(&p.checksum_crc32))
                    .set_checksum_crc32_c(some(&p.checksum_crc32c))
                    .set_checksum_crc64_nvme(some(&p.checksum_crc64nvme))
                    .set_checksum_sha1(some(&p.checksum_sha1))
                    .set_checksum_sha256(some(&p.checksum_sha256))
                    .build()
            })
            .collect();
        let out = self
            .s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| StorageError::s3("CompleteMultipartUpload", &self.bucket, &self.key, e))?;
        self.upload_id.clear();
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    /// Stops the parts in flight and leaves the upload open, for the copy to go on from.
    pub(super) fn detach(self) {
        for handle in self.in_flight.iter() {
            handle.abort();
        }
    }

    /// Aborts the upload so no parts are left behind; retried a few times, then logged.
    pub(super) async fn abort(mut self) {
        for handle in self.in_flight.iter() {
            handle.abort();
        }
        while self.in_flight.next().await.is_some() {}
        if self.upload_id.is_empty() {
            return;
        }
        for attempt in 1..=3 {
            match self
                .s3
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&self.upload_id)
                .send()
                .await
            {
                Ok(_) => {
                    tracing::info!(bucket = %self.bucket, key = %self.key, upload_id = %self.upload_id, "multipart upload aborted");
                    return;
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.meta().code() == Some("NoSuchUpload")) =>
                {
                    // Completed or aborted already (by an earlier attempt or a lifecycle rule).
                    tracing::info!(bucket = %self.bucket, key = %self.key, upload_id = %self.upload_id, "multipart upload already gone");
                    return;
                }
                Err(e) => {
                    let err = StorageError::s3("AbortMultipartUpload", &self.bucket, &self.key, e);
                    tracing::warn!(attempt, error = %err, "abort failed");
                    tokio::time::sleep(std::time::Duration::from_millis(500 * attempt)).await;
                }
            }
        }
        tracing::error!(bucket = %self.bucket, key = %self.key, upload_id = %self.upload_id,
            "multipart upload left behind; a bucket lifecycle rule for incomplete uploads removes it");
    }
}

/// The parts S3 holds for an upload: `None` when the upload no longer exists.
pub(super) async fn list_parts(
    s3: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<Option<Vec<(i32, String, i64)>>, StorageError> {
    let mut parts = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = match s3
            .list_parts()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .set_part_number_marker(marker.clone())
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .map(|s| s.meta().code() == Some("NoSuchUpload"))
                    .unwrap_or(false) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(StorageError::s3("ListParts", bucket, key, e)),
        };
        for p in out.parts() {
            parts.push((
                p.part_number().unwrap_or_default(),
                p.e_tag().unwrap_or_default().to_owned(),
                p.size().unwrap_or_default(),
            ));
        }
        if out.is_truncated() == Some(true) {
            marker = out.next_part_number_marker().map(str::to_owned);
        } else {
            return Ok(Some(parts));
        }
    }
}

/// Aborts an upload that is not ours to continue; a vanished one is fine.
pub(super) async fn abort_id(s3: &Client, bucket: &str, key: &str, upload_id: &str) {
    let mut upload = Upload::resumed(s3, bucket, key, upload_id, Vec::new(), 1);
    upload.done.clear();
    upload.abort().await;
}

/// One PutObject for a video smaller than a part; returns the ETag.
pub(super) async fn put(
    s3: &Client,
    bucket: &str,
    key: &str,
    body: Bytes,
    metadata: &[(String, String)],
) -> Result<String, StorageError> {
    let mut req = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(CONTENT_TYPE)
        .content_length(body.len() as i64)
        .body(ByteStream::from(body));
    for (k, v) in metadata {
        req = req.metadata(k, v);
    }
    let req = req.customize();
    let req = if checksummed(s3) {
        req.disable_payload_signing()
    } else {
        req
    };
    let out = req
        .send()
        .await
        .map_err(|e| StorageError::s3("PutObject", bucket, key, e))?;
    Ok(out.e_tag().unwrap_or_default().to_owned())
}

/// The checksum of every part, declared when the upload is created so that S3 expects it in
/// each UploadPart and in the part list of CompleteMultipartUpload (a composite CRC32 of the
/// object): CRC32, the SDK's default for request bodies; none with `when_required`.
fn part_checksum(s3: &Client) -> Option<ChecksumAlgorithm> {
    checksummed(s3).then_some(ChecksumAlgorithm::Crc32)
}

/// Whether request bodies go out with a CRC checksum header, which S3 verifies (the default,
/// `when_supported`). Then the signature leaves the payload out (`UNSIGNED-PAYLOAD`): hashing
/// it for SigV4 would read every byte a second time for no further protection. With
/// `when_required` bodies carry no checksum, and the signed payload hash stays their check.
pub(super) fn checksummed(s3: &Client) -> bool {
    checksums_on(s3.config().request_checksum_calculation().copied())
}

/// Whether a `request_checksum_calculation` setting puts checksums on request bodies.
pub(super) fn checksums_on(setting: Option<RequestChecksumCalculation>) -> bool {
    !matches!(setting, Some(RequestChecksumCalculation::WhenRequired))
}

/// Records the final metadata (with the hash, known only at the end of a multipart upload)
/// by a server-side copy of the object onto itself; returns the new ETag.
pub(super) async fn set_metadata(
    s3: &Client,
    bucket: &str,
    key: &str,
    metadata: &[(String, String)],
) -> Result<String, StorageError> {
    let source = format!("{bucket}/{}", urlencode_key(key));
    let mut req = s3
        .copy_object()
        .bucket(bucket)
        .key(key)
        .copy_source(source)
        .content_type(CONTENT_TYPE)
        .metadata_directive(MetadataDirective::Replace);
    for (k, v) in metadata {
        req = req.metadata(k, v);
    }
    let out = req
        .send()
        .await
        .map_err(|e| StorageError::s3("CopyObject", bucket, key, e))?;
    Ok(out
        .copy_object_result()
        .and_then(|r| r.e_tag())
        .unwrap_or_default()
        .to_owned())
}

fn urlencode_key(key: &str) -> String {
    key.split('/')
        .map(|segment| {
            url::form_urlencoded::byte_serialize(segment.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/")
}
