//! Chaos: 20 ArchiveVideo workflows (both sample videos, multipart with 5 MiB parts) while
//! the worker is SIGKILLed at seeded random moments — while workflows wait on timers, in the
//! middle of a download, while a multipart upload is open, right after an object lands — and
//! restarted each time, with one Temporal server restart in between (the worker must
//! reconnect by itself). Every workflow must complete and every video end up stored once,
//! byte-exact, with its sha256 metadata, and no task may ever be created at the provider;
//! the run prints one summary line.
//!
//! No multipart upload may be left open either: a copy killed before its heartbeat carried
//! its upload id is cleaned up by the next attempt, which aborts the uploads earlier attempts
//! left at the task's key.
//!
//! The seed is printed; `GVW_CHAOS_SEED=<n>` replays a run's schedule (the timing of the
//! machine still varies). Logs: target/e2e/chaos/ (worker-N.log per restart).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use grok_video_proto::v1::ArchiveVideoRequest;
use grok_video_workflows::{ArchiveVideo, archive_workflow_id};
use rand::{
    Rng, SeedableRng,
    rngs::StdRng,
    seq::{IndexedRandom, SliceRandom},
};
use serde_json::json;
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowHandle};

use crate::stack::{API_KEY, Proc, Stack, fixture};
use crate::workflow::sha256_hex;

const TRIALS: usize = 20;
const SMALL: &str = "grok_video3_6s_480p.mp4";
const LARGE: &str = "grok_video3_30s_720p.mp4";
/// Worker settings of the run: 5 MiB parts, so the 15 MB video is a three-part upload.
const WORKER_ENV: &[(&str, &str)] = &[("GROK_S3_PART_SIZE_MIB", "5")];
/// How long a trigger may take to fire before the kill happens anyway.
const TRIGGER_WITHIN: Duration = Duration::from_secs(12);
/// No fault is armed after this long into the run, so the test ends in time.
const FAULTS_WITHIN: Duration = Duration::from_secs(95);
/// After the last fault, how long the workflows get to finish: a copy killed mid-flight is
/// only retried once its 30 s heartbeat timeout passes, a status query once its 30 s
/// start-to-close timeout passes.
const FINISH_WITHIN: Duration = Duration::from_secs(150);

type Handle = WorkflowHandle<Client, ArchiveVideo>;

/// One scripted task and what it is there for.
struct Trial {
    task: String,
    video: &'static str,
    kind: &'static str,
    /// Milliseconds its scripted downloads stall for (0: no stall).
    stall_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// A random moment: most workflows are sleeping on a timer or querying.
    Waiting,
    /// Inside a scripted stall of a download that just started.
    MidDownload,
    /// Just after a new multipart upload opened (a part landed or is landing).
    MidPart,
    /// Just after a new object appeared (between complete, the metadata copy and the
    /// activity's completion).
    AroundComplete,
    /// The Temporal dev server restarted (SIGTERM, same port and database).
    ServerRestart,
}

/// Scripts the 20 tasks: quick small ones, small and large ones whose downloads stall (the
/// first two downloads of each; a third attempt runs clean), and ones that stay processing
/// long enough for kills to find them waiting.
async fn script_trials(stack: &Stack, rng: &mut StdRng) -> Vec<Trial> {
    let mut trials = Vec::new();
    let mut add = |task, video, kind, stall_ms| {
        trials.push(Trial {
            task,
            video,
            kind,
            stall_ms,
        })
    };
    for _ in 0..4 {
        let processing = rng.random_range(2.0..6.0);
        let task = stack
            .sim
            .scripted(json!({"video": SMALL, "queued_seconds": 1, "processing_seconds": processing, "actual_duration": 6.04}))
            .await;
        add(task, SMALL, "quick", 0);
    }
    for processing in [3.0, 12.0, 24.0] {
        let stall_ms = rng.random_range(3000..6000);
        let task = stack
            .sim
            .scripted(json!({
                "video": SMALL, "queued_seconds": 1, "processing_seconds": processing + rng.random_range(0.0..4.0),
                "video_responses": [{"stall_after": rng.random_range(100_000..700_000), "delay_ms": stall_ms, "repeat": 2}]
            }))
            .await;
        add(task, SMALL, "slow-download", stall_ms);
    }
    // Large videos done one after another through the run, each download stalling before the
    // first part is full, after it, or after the second.
    for done_at in [4.0, 10.0, 18.0, 28.0, 38.0, 50.0] {
        let stall_after = *[2_000_000u64, 6_000_000, 11_000_000].choose(rng).unwrap();
        let stall_ms = rng.random_range(5000..9000);
        let task = stack
            .sim
            .scripted(json!({
                "video": LARGE, "model": "grok_video3", "queued_seconds": 1,
                "processing_seconds": done_at + rng.random_range(0.0..4.0), "actual_duration": 30.0,
                "video_responses": [{"stall_after": stall_after, "delay_ms": stall_ms, "repeat": 2}]
            }))
            .await;
        add(task, LARGE, "slow-multipart", stall_ms);
    }
    // Long processing: polled every second through most of the run.
    for (i, done_at) in [20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0]
        .into_iter()
        .enumerate()
    {
        let video = if i % 2 == 0 { SMALL } else { LARGE };
        let task = stack
            .sim
            .scripted(json!({"video": video, "queued_seconds": 2, "processing_seconds": done_at + rng.random_range(0.0..6.0)}))
            .await;
        add(task, video, "long-wait", 0);
    }
    assert_eq!(trials.len(), TRIALS);
    trials
}

async fn start_all(stack: &Stack, client: &Client, trials: &[Trial]) {
    for trial in trials {
        let request = ArchiveVideoRequest {
            task_id: trial.task.clone(),
            bucket: stack.bucket.clone(),
            first_poll_delay_seconds: Some(1),
            poll_interval_seconds: Some(1),
            deadline_seconds: Some(900),
            ..Default::default()
        };
        crate::workflow::start(stack, client, request).await;
    }
}

/// Downloads per task so far.
async fn downloads(stack: &Stack) -> BTreeMap<String, u64> {
    let stats = stack.sim.stats().await;
    stats["video_requests_by_task"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits for `fault`'s trigger (at most [`TRIGGER_WITHIN`]) and the random delay after it;
/// returns what it saw.
async fn trigger(stack: &Stack, fault: Fault, trials: &[Trial], rng: &mut StdRng) -> String {
    let deadline = Instant::now() + TRIGGER_WITHIN;
    let tick = Duration::from_millis(100);
    match fault {
        Fault::Waiting | Fault::ServerRestart => {
            let ms = rng.random_range(500..4000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            format!("at a random moment (+{ms} ms)")
        }
        Fault::MidDownload => {
            let before = downloads(stack).await;
            let jitter: f64 = rng.random_range(0.1..0.8);
            while Instant::now() < deadline {
                let now = downloads(stack).await;
                let started = trials.iter().find(|t| {
                    t.stall_ms > 0
                        && now.get(&t.task).copied().unwrap_or(0)
                            > before.get(&t.task).copied().unwrap_or(0)
                });
                if let Some(t) = started {
                    // Into the stall, which starts a few hundred kB to 11 MB in.
                    let ms = 300 + (t.stall_ms as f64 * jitter) as u64;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    return format!(
                        "{} ms into download #{} of {} ({}, {} ms stall)",
                        ms, now[&t.task], t.task, t.kind, t.stall_ms
                    );
                }
                tokio::time::sleep(tick).await;
            }
            "no download started; killed anyway".to_owned()
        }
        Fault::MidPart => {
            let before: BTreeSet<String> = stack
                .open_upload_list()
                .await
                .into_iter()
                .map(|(_, id)| id)
                .collect();
            let ms = rng.random_range(0..1500);
            while Instant::now() < deadline {
                let now = stack.open_upload_list().await;
                if let Some((key, _)) = now.iter().find(|(_, id)| !before.contains(id)) {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    return format!("{ms} ms after a multipart upload of {key} opened");
                }
                tokio::time::sleep(tick).await;
            }
            "no multipart upload opened; killed anyway".to_owned()
        }
        Fault::AroundComplete => {
            let before: BTreeSet<String> = stack.keys().await.into_iter().collect();
            let ms = rng.random_range(0..200);
            while Instant::now() < deadline {
                let now = stack.keys().await;
                if let Some(key) = now.iter().find(|k| !before.contains(*k)) {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    return format!("{ms} ms after {key} appeared");
                }
                tokio::time::sleep(tick).await;
            }
            "no new object appeared; killed anyway".to_owned()
        }
    }
}

/// The fault schedule: each kill kind at least once, 6-8 kills in all, in a random order,
/// and one server restart somewhere after the first two kills.
fn schedule(rng: &mut StdRng) -> Vec<Fault> {
    let kinds = [
        Fault::Waiting,
        Fault::MidDownload,
        Fault::MidPart,
        Fault::AroundComplete,
    ];
    let mut faults = kinds.to_vec();
    for _ in 0..rng.random_range(2..=4) {
        faults.push(*kinds.choose(rng).unwrap());
    }
    faults.shuffle(rng);
    let at = rng.random_range(2..=faults.len() - 2);
    faults.insert(at, Fault::ServerRestart);
    faults
}

/// What one chaos run found.
struct Report {
    seed: u64,
    kills: usize,
    restarts: usize,
    losses: usize,
    /// Multipart uploads left open, as (key, upload id).
    open: Vec<(String, String)>,
    /// Everything else that went wrong: lost or wrong videos, failed or stuck workflows,
    /// creates at the provider.
    problems: Vec<String>,
    worker_reconnected: bool,
    dir: std::path::PathBuf,
}

impl Report {
    fn summary(&self) -> String {
        format!(
            "chaos: {TRIALS} trials, {} kills, {} server restart{}, {} losses, {} open uploads, seed {}{}",
            self.kills,
            self.restarts,
            if self.restarts == 1 { "" } else { "s" },
            self.losses,
            self.open.len(),
            self.seed,
            if self.worker_reconnected {
                ""
            } else {
                " (worker restarted after the server restart)"
            }
        )
    }
}

/// One chaos run on a stack of its own named `test`: the trials, the faults, then the
/// checks of every workflow and object.
async fn run_chaos(test: &str) -> Report {
    let seed: u64 = std::env::var("GVW_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("chaos: seed {seed} (replay with GVW_CHAOS_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut stack = Stack::start(test).await;
    let mut workers = 0;
    let mut next_worker = |stack: &Stack| {
        workers += 1;
        let name = format!("worker-{workers}");
        (
            stack.worker_with_env(&name, Some(API_KEY), WORKER_ENV),
            name,
        )
    };
    let (mut worker, mut worker_name): (Proc, String) = next_worker(&stack);
    let client = stack.temporal.client().await;
    let trials = script_trials(&stack, &mut rng).await;
    let faults = schedule(&mut rng);
    for t in &trials {
        println!(
            "chaos: task {} {} {} stall {} ms",
            t.task, t.kind, t.video, t.stall_ms
        );
    }
    println!("chaos: schedule {faults:?}");
    let t0 = Instant::now();
    start_all(&stack, &client, &trials).await;
    drop(client);

    let mut kills = 0;
    let mut restarts = 0;
    let mut worker_reconnected = true;
    for fault in &faults {
        if t0.elapsed() > FAULTS_WITHIN {
            println!(
                "chaos: {:6.1} s  {fault:?} skipped: the fault phase is over",
                t0.elapsed().as_secs_f64()
            );
            continue;
        }
        // A moment for the new worker to pick work up before the next fault is armed.
        tokio::time::sleep(Duration::from_millis(rng.random_range(1500..4500))).await;
        let saw = trigger(&stack, *fault, &trials, &mut rng).await;
        let at = t0.elapsed().as_secs_f64();
        if *fault == Fault::ServerRestart {
            stack.temporal.restart().await;
            restarts += 1;
            println!("chaos: {at:6.1} s  Temporal server restarted ({saw})");
            // The worker must reconnect by itself: status queries resume with no new worker.
            let queries = stack.sim.stats().await["queries"].as_u64().unwrap_or(0);
            let deadline = Instant::now() + Duration::from_secs(45);
            let mut resumed = false;
            while Instant::now() < deadline {
                assert!(
                    worker.child.try_wait().unwrap().is_none(),
                    "{worker_name} exited after the server restart:\n{}",
                    worker.log_text()
                );
                if stack.sim.stats().await["queries"].as_u64().unwrap_or(0) >= queries + 3 {
                    resumed = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if resumed {
                println!(
                    "chaos: {:6.1} s  {worker_name} reconnected by itself (status queries resumed)",
                    t0.elapsed().as_secs_f64()
                );
            } else {
                worker_reconnected = false;
                println!(
                    "chaos: {:6.1} s  {worker_name} did NOT resume within 45 s of the server restart; restarting it",
                    t0.elapsed().as_secs_f64()
                );
                worker.kill();
                (worker, worker_name) = next_worker(&stack);
            }
            continue;
        }
        worker.kill();
        kills += 1;
        println!("chaos: {at:6.1} s  SIGKILL {worker_name} {fault:?}: {saw}");
        (worker, worker_name) = next_worker(&stack);
    }
    println!(
        "chaos: {:6.1} s  faults done; waiting for the workflows",
        t0.elapsed().as_secs_f64()
    );

    // Every workflow's result, from a client of the restarted server.
    let client = stack.temporal.client().await;
    let finish_by = Instant::now() + FINISH_WITHIN;
    let mut problems = Vec::new();
    let mut completed = 0;
    let mut results = BTreeMap::new();
    for trial in &trials {
        let handle: Handle = client.get_workflow_handle(archive_workflow_id(&trial.task));
        let left = finish_by.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, handle.get_result(WorkflowGetResultOptions::default()))
            .await
        {
            Ok(Ok(archived)) => {
                completed += 1;
                results.insert(trial.task.clone(), archived);
            }
            Ok(Err(err)) => problems.push(format!("{} ({}) failed: {err}", trial.task, trial.kind)),
            Err(_) => problems.push(format!(
                "{} ({}) not finished {FINISH_WITHIN:?} after the last fault",
                trial.task, trial.kind
            )),
        }
    }
    println!(
        "chaos: {:6.1} s  {completed} of {TRIALS} workflows completed",
        t0.elapsed().as_secs_f64()
    );

    // The objects: one per task, byte-exact, with the right hash in their metadata.
    let keys: BTreeSet<String> = stack.keys().await.into_iter().collect();
    let sources: BTreeMap<&str, (Vec<u8>, String)> = [SMALL, LARGE]
        .into_iter()
        .map(|v| {
            let bytes = std::fs::read(fixture(v)).unwrap();
            let sha = sha256_hex(&bytes);
            (v, (bytes, sha))
        })
        .collect();
    let mut losses = TRIALS - completed;
    for trial in &trials {
        let key = format!("videos/{}.mp4", trial.task);
        if !keys.contains(&key) {
            problems.push(format!("{key} ({}) missing from the bucket", trial.kind));
            if results.contains_key(&trial.task) {
                losses += 1;
            }
            continue;
        }
        let (source, want) = &sources[trial.video];
        let (stored, meta) = match stack.try_object(&key).await {
            Ok(found) => found,
            Err(err) => {
                // Read it again, with the checksums S3 reports, for the report.
                let detail = match stack.object_with_checksums(&key).await {
                    Ok((bytes, checksums)) => format!(
                        "the bytes read again {} the fixture ({} bytes, sha256 {}); S3 reports {checksums}",
                        if bytes == *source {
                            "equal"
                        } else {
                            "differ from"
                        },
                        bytes.len(),
                        sha256_hex(&bytes)
                    ),
                    Err(e) => e,
                };
                problems.push(format!("{key} ({}): {err}; {detail}", trial.kind));
                if results.contains_key(&trial.task) {
                    losses += 1;
                }
                continue;
            }
        };
        let mut bad = false;
        if stored != *source {
            problems.push(format!(
                "{key} ({}): {} bytes stored differ from the {} bytes of {}",
                trial.kind,
                stored.len(),
                source.len(),
                trial.video
            ));
            bad = true;
        }
        if meta.get("sha256") != Some(want) {
            problems.push(format!(
                "{key} ({}): sha256 metadata {:?}, want {want}",
                trial.kind,
                meta.get("sha256")
            ));
            bad = true;
        }
        if let Some(archived) = results.get(&trial.task)
            && (archived.sha256 != *want || archived.key != key)
        {
            problems.push(format!(
                "{key}: the workflow reported {} / {}",
                archived.key, archived.sha256
            ));
            bad = true;
        }
        if bad && results.contains_key(&trial.task) {
            losses += 1;
        }
    }
    if keys.len() != TRIALS {
        problems.push(format!(
            "{} objects in the bucket, want {TRIALS}: {keys:?}",
            keys.len()
        ));
    }
    let open = stack.open_upload_list().await;
    let stats = stack.sim.stats().await;
    if stats["creates"] != 0 {
        problems.push(format!("{} creates at the provider", stats["creates"]));
    }
    println!(
        "chaos: {} downloads, {} status queries, {} workers started",
        stats["video_requests"], stats["queries"], workers
    );
    for (key, id) in &open {
        println!("chaos: multipart upload {id} of {key} left open");
    }
    drop(worker);
    let report = Report {
        seed,
        kills,
        restarts,
        losses,
        open,
        problems,
        worker_reconnected,
        dir: stack.dir.clone(),
    };
    println!("{}", report.summary());
    report
}

/// The run in `make test`: nothing lost, every object byte-exact with its hash, no create,
/// and no multipart upload left open by the killed copies.
#[tokio::test]
async fn chaos_kills_and_restarts_lose_nothing() {
    let report = run_chaos("chaos").await;
    assert!(
        report.problems.is_empty(),
        "chaos run with seed {} (logs in {}):\n  {}",
        report.seed,
        report.dir.display(),
        report.problems.join("\n  ")
    );
    assert!(
        report.worker_reconnected,
        "the worker did not reconnect after the server restart"
    );
    assert!(
        report.open.is_empty(),
        "seed {}: {} multipart uploads left open (logs in {}): {:?}",
        report.seed,
        report.open.len(),
        report.dir.display(),
        report.open
    );
}
