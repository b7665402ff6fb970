//! Scale: 2,000 concurrent ArchiveVideo workflows on one worker against the simulator with a
//! compressed clock (tasks done 20-40 s after they are ordered, a status query every 5 s, no
//! rate cap). Not part of `make test`: `make scale` (scripts/scale.sh) runs it and it prints
//! what it measured — workflows completed, wall time, the worker's peak RSS and CPU seconds,
//! CPU seconds per 1,000 status queries, and the provider request rate.
//!
//! `GVW_SCALE_WORKFLOWS` changes the count (default 2000), `GVW_SCALE_PROCESSING=A-B` the
//! seconds a task stays processing after 2 s queued (default 18-38): with longer tasks each
//! workflow polls more often, so the CPU per 1,000 polls is less about copies.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use grok_video_proto::v1::{ArchiveVideoRequest, ArchivedVideo};
use grok_video_workflows::{ArchiveVideo, archive_workflow_id};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;
use temporalio_client::{Client, WorkflowCountOptions, WorkflowGetResultOptions, WorkflowHandle};

use crate::stack::{API_KEY, Stack, fixture};
use crate::workflow::sha256_hex;

const SMALL: &str = "grok_video3_6s_480p.mp4";
const LARGE: &str = "grok_video3_30s_720p.mp4";
/// One task in this many gets the 15 MB video (a multipart upload); the rest the 0.8 MB one.
const LARGE_EVERY: usize = 100;
const POLL_INTERVAL: u32 = 5;
/// How long all the workflows get, from the first start to the last completion.
const ALL_WITHIN: Duration = Duration::from_secs(25 * 60);
/// Workflow starts in flight at once.
const STARTS_IN_FLIGHT: usize = 32;

/// What /proc says about a process: (VmRSS kB, VmHWM kB), CPU seconds (user + system).
struct ProcStats {
    rss_kb: u64,
    hwm_kb: u64,
    cpu_seconds: f64,
}

fn clock_ticks() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf CLK_TCK");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK is a number")
}

fn proc_stats(pid: u32, ticks: f64) -> Option<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses; utime and stime
    // are fields 14 and 15 of the whole line, 12 and 13 after the ")".
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(ProcStats {
        rss_kb: kb("VmRSS:"),
        hwm_kb: kb("VmHWM:"),
        cpu_seconds: (utime + stime) / ticks,
    })
}

/// Median, 95th percentile and maximum of some seconds.
struct Spread {
    n: usize,
    median: f64,
    p95: f64,
    max: f64,
}

impl Spread {
    fn of(values: &mut [f64]) -> Self {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            values
                .get(((values.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        Self {
            n: values.len(),
            median: at(0.5),
            p95: at(0.95),
            max: at(1.0),
        }
    }

    fn describe(&self) -> String {
        format!(
            "median {:.1} s, p95 {:.1} s, max {:.1} s after the task was ordered ({} tasks)",
            self.median, self.p95, self.max, self.n
        )
    }
}

/// Workflows still running (a continued-as-new run counts as its new run), from visibility.
async fn running(client: &Client) -> Result<usize, String> {
    client
        .count_workflows("ExecutionStatus='Running'", WorkflowCountOptions::default())
        .await
        .map(|c| c.count())
        .map_err(|e| e.to_string())
}

#[tokio::test]
#[ignore = "scale run (2,000 workflows, several minutes): make scale"]
async fn scale_thousands_of_workflows_on_one_worker() {
    let workflows: usize = std::env::var("GVW_SCALE_WORKFLOWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let (proc_min, proc_max): (f64, f64) = std::env::var("GVW_SCALE_PROCESSING")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once('-')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        })
        .filter(|(a, b)| a < b)
        .unwrap_or((18.0, 38.0));
    let ticks = clock_ticks();
    let stack = Stack::start("scale").await;
    // Info logs: debug lines for every poll of 2,000 workflows would be most of the CPU.
    let worker = stack.worker_with_env(
        "worker",
        Some(API_KEY),
        &[("RUST_LOG", "info"), ("GROK_MAX_REQUESTS_PER_SECOND", "0")],
    );
    let pid = worker.child.id();
    let at_start = proc_stats(pid, ticks).expect("worker /proc stats");
    // The other processes on the two cores, to see which one bounds the throughput.
    let others = [
        ("Temporal dev server", stack.temporal.proc.child.id()),
        ("moto S3", stack.s3._proc.child.id()),
        ("simulator", stack.sim._proc.child.id()),
        ("test process", std::process::id()),
    ];
    let cpu_of = |pid: u32| proc_stats(pid, ticks).map_or(0.0, |s| s.cpu_seconds);
    let others_at_start: Vec<f64> = others.iter().map(|(_, pid)| cpu_of(*pid)).collect();
    let client = stack.temporal.client().await;
    let mut rng = StdRng::seed_from_u64(7);
    let scripts: Vec<(&str, f64)> = (0..workflows)
        .map(|i| {
            let video = if i % LARGE_EVERY == LARGE_EVERY - 1 {
                LARGE
            } else {
                SMALL
            };
            (video, rng.random_range(proc_min..proc_max))
        })
        .collect();

    // Each task is ordered right before its workflow starts, so its clock (queued 2 s, then
    // processing 18-38 s) runs from its own start.
    let t0 = Instant::now();
    let started: Vec<(String, &str)> = stream::iter(scripts)
        .map(|(video, processing)| {
            let client = client.clone();
            let stack = &stack;
            async move {
                let task = stack
                    .sim
                    .scripted(json!({"video": video, "queued_seconds": 2, "processing_seconds": processing}))
                    .await;
                let request = ArchiveVideoRequest {
                    task_id: task.clone(),
                    bucket: stack.bucket.clone(),
                    first_poll_delay_seconds: Some(POLL_INTERVAL),
                    poll_interval_seconds: Some(POLL_INTERVAL),
                    deadline_seconds: Some(3600),
                    ..Default::default()
                };
                crate::workflow::start(stack, &client, request).await;
                (task, video)
            }
        })
        .buffer_unordered(STARTS_IN_FLIGHT)
        .collect()
        .await;
    let start_secs = t0.elapsed().as_secs_f64();
    println!(
        "scale: {workflows} workflows started in {start_secs:.1} s (tasks done {:.0}-{:.0} s after they are ordered, a status query every {POLL_INTERVAL} s)",
        proc_min + 2.0,
        proc_max + 2.0
    );

    // Wait for all of them to close, sampling the worker's memory on the way.
    let mut peak_rss_kb = 0;
    let mut last_report = Instant::now();
    let mut done = 0;
    while t0.elapsed() < ALL_WITHIN {
        if let Some(s) = proc_stats(pid, ticks) {
            peak_rss_kb = peak_rss_kb.max(s.rss_kb);
        }
        match running(&client).await {
            Ok(0) => {
                done = workflows;
                break;
            }
            Ok(n) => done = workflows.saturating_sub(n),
            Err(e) => println!("scale: counting running workflows failed: {e}"),
        }
        if last_report.elapsed() >= Duration::from_secs(30) {
            last_report = Instant::now();
            let stats = stack.sim.stats().await;
            println!(
                "scale: {:6.0} s  {done} closed, {} status queries, {} downloads, worker peak RSS so far {} MiB",
                t0.elapsed().as_secs_f64(),
                stats["queries"],
                stats["video_requests"],
                peak_rss_kb / 1024
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let end = proc_stats(pid, ticks).expect("worker still running");
    peak_rss_kb = peak_rss_kb.max(end.rss_kb);
    let stats = stack.sim.stats().await;
    let others_cpu: Vec<f64> = others
        .iter()
        .zip(&others_at_start)
        .map(|((_, pid), start)| cpu_of(*pid) - start)
        .collect();
    drop(worker);

    // The results: every workflow completed with its video's hash.
    let hashes: BTreeMap<&str, String> = [SMALL, LARGE]
        .into_iter()
        .map(|v| (v, sha256_hex(&std::fs::read(fixture(v)).unwrap())))
        .collect();
    let wait_each = if done >= workflows {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(2)
    };
    let results: Vec<(String, &str, Result<ArchivedVideo, String>)> = stream::iter(started)
        .map(|(task, video)| {
            let client = client.clone();
            async move {
                let handle: WorkflowHandle<Client, ArchiveVideo> =
                    client.get_workflow_handle(archive_workflow_id(&task));
                let result = tokio::time::timeout(
                    wait_each,
                    handle.get_result(WorkflowGetResultOptions::default()),
                )
                .await
                .map_err(|_| "no result".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string()));
                (task, video, result)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut completed = 0;
    let mut problems = Vec::new();
    for (task, video, result) in &results {
        match result {
            Ok(a) if a.sha256 == hashes[video] => completed += 1,
            Ok(a) => problems.push(format!("{task}: sha256 {} for {video}", a.sha256)),
            Err(e) => problems.push(format!("{task}: {e}")),
        }
    }
    let objects = {
        let s3 = stack.s3.client().await;
        let mut pages = s3
            .list_objects_v2()
            .bucket(&stack.bucket)
            .into_paginator()
            .send();
        let mut n = 0;
        while let Some(page) = pages.next().await {
            n += page.expect("list objects").contents().len();
        }
        n
    };
    let open = stack.open_uploads().await;

    // When each task was first queried, counted from its creation (just before its start).
    let mut first_query: Vec<f64> = stream::iter(results.iter().map(|(task, _, _)| task.clone()))
        .map(|task| {
            let stack = &stack;
            async move { stack.sim.task_report(&task).await["query_times"][0].as_f64() }
        })
        .buffer_unordered(32)
        .filter_map(|t| async move { t })
        .collect()
        .await;
    let lateness = Spread::of(&mut first_query);
    let queries = stats["queries"].as_f64().unwrap_or(0.0);
    let busiest = stats["max_queries_per_second"].as_u64().unwrap_or(0);
    let cpu = end.cpu_seconds - at_start.cpu_seconds;
    println!(
        "scale: workflows completed {completed} of {workflows} ({done} closed when the wait ended)"
    );
    println!(
        "scale: wall time {wall:.1} s (starts took {start_secs:.1} s), {:.1} completions/s",
        completed as f64 / wall
    );
    println!(
        "scale: worker peak RSS {:.1} MiB (VmHWM {:.1} MiB, sampled VmRSS {:.1} MiB)",
        end.hwm_kb.max(peak_rss_kb) as f64 / 1024.0,
        end.hwm_kb as f64 / 1024.0,
        peak_rss_kb as f64 / 1024.0
    );
    println!(
        "scale: worker CPU {cpu:.1} s during the run ({:.1} s in all), {:.2} CPU s per 1,000 polls, {:.1} ms per workflow (polls and copies together)",
        end.cpu_seconds,
        cpu / (queries / 1000.0).max(f64::MIN_POSITIVE),
        cpu * 1000.0 / workflows as f64
    );
    println!(
        "scale: provider {queries} status queries ({:.2} per workflow), {} downloads; busiest second {busiest} queries, average {:.1}/s",
        queries / workflows as f64,
        stats["video_requests"],
        queries / wall
    );
    println!(
        "scale: {objects} objects, {open} open uploads, {} creates",
        stats["creates"]
    );
    println!(
        "scale: first status query {} (asked: {POLL_INTERVAL} s after the start)",
        lateness.describe()
    );
    println!(
        "scale: CPU s during the run: worker {cpu:.1}, {} ({:.0}% of 2 cores in all)",
        others
            .iter()
            .zip(&others_cpu)
            .map(|((name, _), c)| format!("{name} {c:.1}"))
            .collect::<Vec<_>>()
            .join(", "),
        (cpu + others_cpu.iter().sum::<f64>()) * 100.0 / (2.0 * wall)
    );
    assert!(
        problems.is_empty(),
        "{} of {workflows} workflows did not complete right (logs in {}):\n  {}",
        problems.len(),
        stack.dir.display(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    assert_eq!(completed, workflows);
    assert_eq!(objects, workflows, "one object per workflow");
    assert_eq!(open, 0, "no multipart upload left open");
    assert_eq!(stats["creates"], 0, "archiving never creates a task");
}
