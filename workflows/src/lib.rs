//! Deterministic workflow code of grok-video-worker, and the contracts of the activities it
//! calls. Nothing here does I/O or reads a clock: time, timers and randomness come from the
//! workflow context, so every workflow replays identically from its history.
//!
//! - [`archive`]: `ArchiveVideo`, wait for a provider task with durable timers, then copy.
//! - [`generate`]: `GenerateVideo`, create the provider task once, then the same wait and copy.
//! - [`input`]: a workflow input that fails the workflow, not its task, when it does not decode.
//! - [`validate`]: what the provider documents as certain about a create request.
//! - [`poll`]: the poll loop itself, shared by every workflow that waits for a task.
//! - [`schedule`]: pure functions for first-poll delay, interval, jitter and deadline.
//! - [`search`]: the search attributes that make workflows findable by provider task.
//! - [`activities`]: activity names and their input/output messages.
//! - [`failures`]: the stable failure type names callers match on.

pub mod activities;
pub mod archive;
pub mod failures;
pub mod generate;
pub mod input;
pub mod poll;
pub mod schedule;
pub mod search;
pub mod validate;

pub use archive::ArchiveVideo;
pub use generate::GenerateVideo;
pub use input::Input;

/// The task queue the worker listens on unless configured otherwise.
pub const DEFAULT_TASK_QUEUE: &str = "grok-video";

/// The workflow id for archiving one provider task: starting it twice never copies twice.
pub fn archive_workflow_id(task_id: &str) -> String {
    format!("archive-{task_id}")
}
