//! Search attributes that make a waiting workflow findable by its provider task in the
//! Temporal UI and `temporal workflow list --query "GrokTaskId='video_…'"`. The worker
//! registers them at start-up (`temporal::ensure_search_attributes`); the local stack's dev
//! server is started with them.

use temporalio_workflow::{WorkflowContext, common::search_attributes::SearchAttributeKey};

use crate::poll::WaitsForVideo;

/// The provider's task id.
pub const TASK_ID: SearchAttributeKey<String> = SearchAttributeKey::keyword("GrokTaskId");
/// The provider model.
pub const MODEL: SearchAttributeKey<String> = SearchAttributeKey::keyword("GrokModel");
/// The provider's last status text.
pub const PROVIDER_STATUS: SearchAttributeKey<String> =
    SearchAttributeKey::keyword("GrokProviderStatus");

/// Where a running workflow is: `waiting` or `copying` (closed ones have their execution
/// status). The worker's `grok_workflows{phase}` gauge counts running workflows by it.
pub const PHASE: SearchAttributeKey<String> = SearchAttributeKey::keyword("GrokPhase");

/// The values of [`PHASE`] a running workflow has.
pub const RUNNING_PHASES: &[&str] = &["waiting", "copying"];

/// Every attribute, as (name, Temporal type) for registration.
pub const ALL: &[(&str, &str)] = &[
    ("GrokTaskId", "Keyword"),
    ("GrokModel", "Keyword"),
    ("GrokProviderStatus", "Keyword"),
    ("GrokPhase", "Keyword"),
];

/// The patch that introduced [`PHASE`]: histories recorded before it replay without the
/// upserts.
const PHASE_PATCH: &str = "grok-phase-search-attribute";

/// Records task id, model, provider status and phase where they changed since the last
/// upsert, so history grows by one event per change, not per poll. Empty values are left
/// as they are.
pub fn record<W: WaitsForVideo>(
    ctx: &mut WorkflowContext<W>,
    task_id: &str,
    model: &str,
    status: &str,
    phase: &str,
) {
    let phase = if !phase.is_empty() && ctx.patched(PHASE_PATCH) {
        phase
    } else {
        ""
    };
    let current = ctx.search_attributes();
    let mut updates = Vec::new();
    for (key, value) in [
        (&TASK_ID, task_id),
        (&MODEL, model),
        (&PROVIDER_STATUS, status),
        (&PHASE, phase),
    ] {
        if !value.is_empty() && current.get(key).as_deref() != Some(value) {
            updates.push(key.value_set(value.to_owned()));
        }
    }
    if !updates.is_empty() {
        ctx.upsert_search_attributes(updates);
    }
}
