//! Activity contracts: the names other languages call and the messages they exchange. The
//! implementations live in the worker crate (`src/activities.rs`), which the compiler checks
//! against these definitions.

use grok_video_proto::v1::{CopyVideoRequest, QueryVideoTaskRequest, StoredVideo, VideoTask};
use temporalio_workflow::common::ActivityDefinition;

/// `QueryVideoTask`: one status query, `GET {base}/v1/result/{id}`.
pub struct QueryVideoTask;

impl ActivityDefinition for QueryVideoTask {
    type Input = QueryVideoTaskRequest;
    type Output = VideoTask;

    fn name(&self) -> &str {
        Self::NAME
    }
}

impl QueryVideoTask {
    /// The activity type name.
    pub const NAME: &'static str = "QueryVideoTask";
}

/// `CopyVideoToS3`: stream the finished MP4 from its `video_url` into S3.
pub struct CopyVideoToS3;

impl ActivityDefinition for CopyVideoToS3 {
    type Input = CopyVideoRequest;
    type Output = StoredVideo;

    fn name(&self) -> &str {
        Self::NAME
    }
}

impl CopyVideoToS3 {
    /// The activity type name.
    pub const NAME: &'static str = "CopyVideoToS3";
}

/// `CreateVideoTask`: `POST {base}/v1/grok/videos`, billed. Attempted once: the activity
/// itself retries only what certainly never reached the provider.
pub struct CreateVideoTask;

impl ActivityDefinition for CreateVideoTask {
    type Input = grok_video_proto::v1::CreateVideoTaskRequest;
    type Output = VideoTask;

    fn name(&self) -> &str {
        Self::NAME
    }
}

impl CreateVideoTask {
    /// The activity type name.
    pub const NAME: &'static str = "CreateVideoTask";
}
