//! grok-video-worker: a Temporal worker that waits for Grok video tasks on durable timers
//! and copies each finished MP4 into S3 before its link expires.
//!
//! - [`config`]: typed settings from flags and `GROK_*` environment variables.
//! - [`provider`]: the provider's HTTP API: client, tolerant parsing, error classes.
//! - [`storage`]: the streaming copy from `video_url` into S3, with URL safety checks.
//! - [`payloads`]: the payload converter: json/plain, json/protobuf and binary/protobuf in.
//! - [`activities`]: the activity implementations; where errors get their retry class.
//! - [`metrics`]: Prometheus metrics, the SDK's and the worker's.
//! - [`temporal`]: connecting to Temporal through its envconfig.
//! - [`worker`]: the worker process: registration, run, graceful shutdown.
//! - [`simulator`]: the provider simulator used by tests, the demo and benchmarks.
//! - [`cli`]: the command line.
//!
//! The workflows themselves live in the `grok-video-workflows` crate (deterministic code
//! only) and the wire schema in `grok-video-proto`.

pub mod activities;
pub mod cli;
pub mod config;
pub mod metrics;
pub mod payloads;
pub mod provider;
pub mod simulator;
pub mod storage;
pub mod temporal;
pub mod worker;

pub use grok_video_proto as proto;
pub use grok_video_workflows as workflows;
