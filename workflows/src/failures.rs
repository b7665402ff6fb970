//! Stable application failure type names. Callers in any language match on these strings,
//! so they never change once published.

/// The request itself is unusable (empty task id, no bucket): fix the input.
pub const INVALID_REQUEST: &str = "InvalidRequest";
/// The provider answered `failed`; the message is the provider's.
pub const VIDEO_GENERATION_FAILED: &str = "VideoGenerationFailed";
/// The provider cancelled the task.
pub const VIDEO_TASK_CANCELLED: &str = "VideoTaskCancelled";
/// The provider expired the task.
pub const VIDEO_TASK_EXPIRED: &str = "VideoTaskExpired";
/// The deadline passed before the task completed.
pub const VIDEO_TASK_TIMED_OUT: &str = "VideoTaskTimedOut";
/// The provider said `completed` but kept giving no usable `video_url`.
pub const VIDEO_URL_MISSING: &str = "VideoUrlMissing";
/// The provider rejected the API key (401/403).
pub const PROVIDER_AUTH_REJECTED: &str = "ProviderAuthRejected";
/// The provider account has no balance left (402).
pub const PROVIDER_BALANCE_EXHAUSTED: &str = "ProviderBalanceExhausted";
/// The provider rejected the request as invalid (400/422).
pub const PROVIDER_REJECTED_REQUEST: &str = "ProviderRejectedRequest";
/// The provider does not know the task id (404 after the grace window).
pub const VIDEO_TASK_NOT_FOUND: &str = "VideoTaskNotFound";
/// The video host refuses `video_url` (403/404/410) and the provider offers no working one.
pub const VIDEO_URL_EXPIRED: &str = "VideoUrlExpired";
/// The body at `video_url` is not an MP4 (an HTML or JSON page served with 200).
pub const NOT_A_VIDEO: &str = "NotAVideo";
/// The video is larger than the worker's maximum size setting.
pub const VIDEO_TOO_LARGE: &str = "VideoTooLarge";
/// The `video_url` is refused by the worker's URL safety rules.
pub const UNSAFE_VIDEO_URL: &str = "UnsafeVideoUrl";
/// A different object already exists at the destination key.
pub const DESTINATION_EXISTS: &str = "DestinationExists";
/// S3 refused the upload for a reason retrying will not fix (access denied, no such bucket).
pub const STORAGE_REJECTED: &str = "StorageRejected";

/// A create request may or may not have created (and billed) a task: the worker never
/// sends it again; check the provider's task list before ordering again.
pub const CREATE_OUTCOME_UNKNOWN: &str = "CreateOutcomeUnknown";

/// Failure types that no retry can fix; activities mark them non-retryable too.
/// (`VideoTaskNotFound` is not here: during the grace window after create it is retried.)
pub const NON_RETRYABLE: &[&str] = &[
    INVALID_REQUEST,
    PROVIDER_AUTH_REJECTED,
    PROVIDER_BALANCE_EXHAUSTED,
    PROVIDER_REJECTED_REQUEST,
    VIDEO_TOO_LARGE,
    UNSAFE_VIDEO_URL,
    DESTINATION_EXISTS,
    STORAGE_REJECTED,
    CREATE_OUTCOME_UNKNOWN,
    VIDEO_URL_EXPIRED,
];
