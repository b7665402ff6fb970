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

/// Every attribute, as (name, Temporal type) for registration.
pub const ALL: &[(&str, &str)] = &[
    ("GrokTaskId", "Keyword"),
    ("GrokModel", "Keyword"),
    ("GrokProviderStatus", "Keyword"),
];

/// Records task id, model and provider status where they changed since the last upsert, so
/// history grows by one event per change, not per poll.
pub fn record<W: WaitsForVideo>(
    ctx: &mut WorkflowContext<W>,
    task_id: &str,
    model: &str,
    status: &str,
) {
    let current = ctx.search_attributes();
    let mut updates = Vec::new();
    for (key, value) in [
        (&TASK_ID, task_id),
        (&MODEL, model),
        (&PROVIDER_STATUS, status),
    ] {
        if !value.is_empty() && current.get(key).as_deref() != Some(value) {
            updates.push(key.value_set(value.to_owned()));
        }
    }
    if !updates.is_empty() {
        ctx.upsert_search_attributes(updates);
    }
}
