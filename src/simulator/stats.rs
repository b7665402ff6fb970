//! What clients did, for tests to assert on (`GET /_sim/stats`).

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};

/// Counters of one simulator.
#[derive(Debug, Default)]
pub struct Stats {
    /// Create requests that passed the key check, whatever they were answered.
    pub(super) creates: AtomicU64,
    /// Create requests that created a task.
    pub(super) creates_accepted: AtomicU64,
    /// Status queries that passed the key check.
    pub(super) queries: AtomicU64,
    /// Requests refused for their key.
    pub(super) unauthorized: AtomicU64,
    /// Video downloads.
    pub(super) video_requests: AtomicU64,
    /// Video downloads that carried an Authorization header (never should).
    pub(super) video_requests_with_auth: AtomicU64,
    by_task: Mutex<ByTask>,
    rate: Mutex<Rate>,
}

#[derive(Debug, Default)]
struct ByTask {
    queries: BTreeMap<String, u64>,
    videos: BTreeMap<String, u64>,
}

/// Status queries per wall-clock second: the current second and the busiest one so far.
#[derive(Debug, Default)]
struct Rate {
    second: u64,
    count: u64,
    max: u64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    pub(super) fn create(&self) {
        bump(&self.creates);
    }

    pub(super) fn create_accepted(&self) {
        bump(&self.creates_accepted);
    }

    pub(super) fn unauthorized(&self) {
        bump(&self.unauthorized);
    }

    /// One status query of `task_id` (known to the simulator or not).
    pub(super) fn query(&self, task_id: &str) {
        bump(&self.queries);
        *self
            .by_task
            .lock()
            .expect("stats lock")
            .queries
            .entry(task_id.to_owned())
            .or_default() += 1;
        let mut rate = self.rate.lock().expect("stats lock");
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        if second != rate.second {
            rate.second = second;
            rate.count = 0;
        }
        rate.count += 1;
        rate.max = rate.max.max(rate.count);
    }

    /// One video download; `task_id` when it came through a task's own path.
    pub(super) fn video(&self, task_id: Option<&str>, with_auth: bool) {
        bump(&self.video_requests);
        if with_auth {
            bump(&self.video_requests_with_auth);
        }
        if let Some(task_id) = task_id {
            *self
                .by_task
                .lock()
                .expect("stats lock")
                .videos
                .entry(task_id.to_owned())
                .or_default() += 1;
        }
    }

    /// The JSON of `GET /_sim/stats`.
    pub(super) fn to_json(&self) -> Value {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let by_task = self.by_task.lock().expect("stats lock");
        json!({
            "creates": load(&self.creates),
            "creates_accepted": load(&self.creates_accepted),
            "queries": load(&self.queries),
            "queries_by_task": by_task.queries,
            "max_queries_per_second": self.rate.lock().expect("stats lock").max,
            "unauthorized": load(&self.unauthorized),
            "video_requests": load(&self.video_requests),
            "video_requests_by_task": by_task.videos,
            "video_requests_with_auth": load(&self.video_requests_with_auth),
        })
    }
}
