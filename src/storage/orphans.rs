//! Multipart uploads that earlier attempts of the same copy left open. An attempt killed
//! before its heartbeat carried the upload id cannot be resumed or aborted through the
//! checkpoint, so every new attempt lists the uploads in progress at its task's keys (the
//! requested key and its `-N` conflict suffixes) and aborts those started before it.

use std::time::SystemTime;

use aws_smithy_types::DateTime;

use super::{CopyJob, Storage, with_suffix};

/// Conflict suffixes (`name-N.ext`) whose open uploads count as this task's.
const MAX_SUFFIX: u32 = 100;

impl Storage {
    /// Aborts the multipart uploads open at `job`'s keys that were initiated before
    /// `started_before`, except `keep` (the upload a checkpoint resumes). Returns how many it
    /// aborted. Best effort: a listing the server refuses is logged and the copy goes on (the
    /// bucket's lifecycle rule is the backstop).
    pub async fn abort_stale_uploads(
        &self,
        job: &CopyJob,
        keep: Option<&str>,
        started_before: SystemTime,
    ) -> usize {
        let Ok((bucket, key)) = self.destination(job) else {
            return 0;
        };
        let ours = |candidate: &str| {
            candidate == key || (1..=MAX_SUFFIX).any(|n| with_suffix(&key, n) == candidate)
        };
        // The suffixed keys share the stem of the requested one.
        let prefix = key
            .rsplit_once('.')
            .filter(|(stem, _)| !stem.is_empty() && !stem.ends_with('/'))
            .map_or(key.as_str(), |(stem, _)| stem)
            .to_owned();
        let cutoff = DateTime::from(started_before);
        let mut stale = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let listed = self
                .s3
                .list_multipart_uploads()
                .bucket(&bucket)
                .prefix(&prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await;
            let page = match listed {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(task_id = %job.task_id, %bucket, %prefix, error = %aws_smithy_types::error::display::DisplayErrorContext(&err),
                        "cannot list open multipart uploads (s3:ListBucketMultipartUploads); uploads of killed attempts are left to the bucket's lifecycle rule");
                    return 0;
                }
            };
            for upload in page.uploads() {
                let (Some(k), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                let older = upload.initiated().is_none_or(|t| *t < cutoff);
                if ours(k) && older && Some(id) != keep {
                    stale.push((k.to_owned(), id.to_owned()));
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                break;
            }
        }
        for (k, id) in &stale {
            tracing::info!(task_id = %job.task_id, %bucket, key = %k, upload_id = %id,
                "aborting a multipart upload an earlier attempt left open");
            super::upload::abort_id(&self.s3, &bucket, k, id).await;
        }
        stale.len()
    }
}
