//! examples/python/pipeline.py, the Temporal Python SDK pipeline, against the stack: a dict
//! (json/plain), a generated ArchiveVideoRequest (json/protobuf), the same message through a
//! binary-protobuf-first converter (binary/protobuf), and GenerateVideo with a dict. The
//! pipeline prints one JSON line per step, with the payloads as the server stored them.

use std::{collections::HashMap, path::PathBuf, process::Stdio, time::Duration};

use grok_video_proto::v1::ArchiveVideoRequest;
use prost::Message;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::stack::{API_KEY, Proc, Stack, fixture, repo};

/// The whole pipeline: four workflows at once, each a few seconds on the simulator's clock.
const PIPELINE_WITHIN: Duration = Duration::from_secs(150);
/// One workflow's result; a payload the worker cannot decode fails its workflow task over
/// and over, so this is where an unsupported encoding shows.
const RESULT_WITHIN_SECONDS: &str = "90";
const VIDEO: &str = "grok_video3_6s_480p.mp4";

fn python() -> PathBuf {
    let path = std::env::var_os("GVW_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".tools/venv/bin/python"));
    assert!(
        path.exists(),
        "{} not found: run `make test` (or scripts/install-tools.sh) first, or set GVW_PYTHON",
        path.display()
    );
    path
}

/// Standard base64 with padding, as the Temporal CLI prints payload bytes.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The pipeline's lines by step name.
fn lines_by_step(stdout: &str) -> HashMap<String, Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("pipeline printed a line that is not JSON ({e}): {l}"));
            (v["step"].as_str().expect("a step name").to_owned(), v)
        })
        .collect()
}

/// The input payload of a workflow as the Temporal CLI exports its history: metadata values
/// and data in base64.
fn started_input(stack: &Stack, workflow_id: &str) -> Value {
    let history: Value = serde_json::from_str(&stack.temporal.history_json(workflow_id)).unwrap();
    history["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0].clone()
}

/// The payload the pipeline says it sent is the one the server holds, with this encoding
/// and message type.
fn assert_sent(stack: &Stack, line: &Value, encoding: &str, message_type: Option<&str>) -> Vec<u8> {
    let step = &line["step"];
    let sent = &line["sent"][0];
    assert_eq!(sent["metadata"]["encoding"], encoding, "{step}: {sent}");
    match message_type {
        Some(t) => assert_eq!(sent["metadata"]["messageType"], t, "{step}: {sent}"),
        None => assert!(
            sent["metadata"].get("messageType").is_none(),
            "{step}: {sent}"
        ),
    }
    let stored = started_input(stack, line["workflow_id"].as_str().unwrap());
    assert_eq!(
        stored["metadata"]["encoding"],
        base64(encoding.as_bytes()),
        "{step}: the server's copy"
    );
    assert_eq!(
        stored["data"], sent["data_base64"],
        "{step}: the server's copy"
    );
    match (sent.get("data"), sent.get("data_hex")) {
        (Some(text), _) => text.as_str().unwrap().as_bytes().to_vec(),
        (None, Some(hex)) => hex::decode(hex.as_str().unwrap()).unwrap(),
        _ => panic!("{step}: no data in {sent}"),
    }
}

/// A successful step's result is the fixture stored under the task's key, as json/plain with
/// proto field names and the size as a number; ParseDict took it into ArchivedVideo.
fn assert_archived(stack: &Stack, line: &Value, task_id: Option<&str>) -> String {
    let step = &line["step"];
    assert_eq!(line["ok"], true, "{step} failed: {line}");
    let source = std::fs::read(fixture(VIDEO)).unwrap();
    let result = &line["result"];
    let task = result["task_id"].as_str().unwrap().to_owned();
    match task_id {
        Some(id) => assert_eq!(task, id, "{step}"),
        None => assert!(task.starts_with("video_"), "{step}: {result}"),
    }
    assert_eq!(result["bucket"], stack.bucket.as_str(), "{step}");
    assert_eq!(result["key"], format!("videos/{task}.mp4"), "{step}");
    assert_eq!(
        result["sha256"],
        hex::encode(Sha256::digest(&source)),
        "{step}"
    );
    assert_eq!(
        result["size_bytes"],
        json!(source.len()),
        "{step}: a number"
    );
    assert_eq!(result["model"], "grok_video3", "{step}");
    assert_eq!(result["content_type"], "video/mp4", "{step}");
    // MessageToDict writes int64 as a string: the value went through the proto class.
    assert_eq!(
        line["as_proto"]["size_bytes"],
        source.len().to_string(),
        "{step}"
    );
    assert_eq!(line["as_proto"]["sha256"], result["sha256"], "{step}");
    let received = &line["received"][0];
    assert_eq!(received["metadata"]["encoding"], "json/plain", "{step}");
    task
}

/// One run of pipeline.py against the stack and what it printed.
struct Run {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
    lines: HashMap<String, Value>,
}

impl Run {
    fn line(&self, step: &str) -> &Value {
        self.lines.get(step).unwrap_or_else(|| {
            panic!(
                "no {step} line; status {}\nstdout:\n{}\nstderr:\n{}",
                self.status, self.stdout, self.stderr
            )
        })
    }
}

/// Runs pipeline.py with the stack's address, task queue, bucket and fast polling, plus
/// `args`; kills it after [`PIPELINE_WITHIN`].
async fn run_pipeline(stack: &Stack, worker: &Proc, name: &str, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(repo().join("examples/python/pipeline.py"))
        .args(args)
        .args(["--bucket", &stack.bucket])
        .args(["--first-poll-delay-seconds", "1"])
        .args(["--poll-interval-seconds", "1"])
        .args(["--deadline-seconds", "300"])
        .args(["--result-timeout-seconds", RESULT_WITHIN_SECONDS])
        .arg("--proto-out")
        .arg(stack.dir.join(format!("python-pb2-{name}")))
        .env("TEMPORAL_ADDRESS", stack.temporal.address())
        .env("GROK_TASK_QUEUE", &stack.task_queue)
        .env_remove("TEMPORAL_NAMESPACE")
        .env_remove("TEMPORAL_API_KEY")
        .env_remove("TEMPORAL_PROFILE")
        .env_remove("TEMPORAL_CONFIG_FILE")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&stack.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // On timeout the future is dropped and kill_on_drop ends the child.
    let out = tokio::time::timeout(PIPELINE_WITHIN, cmd.output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "pipeline.py ({name}) did not finish within {PIPELINE_WITHIN:?}; worker log:\n{}",
                worker.log_text()
            )
        })
        .expect("run pipeline.py");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    std::fs::write(stack.dir.join(format!("pipeline-{name}.stdout")), &stdout).unwrap();
    std::fs::write(stack.dir.join(format!("pipeline-{name}.stderr")), &stderr).unwrap();
    Run {
        status: out.status,
        lines: lines_by_step(&stdout),
        stdout,
        stderr,
    }
}

#[tokio::test]
async fn python_pipeline_dict_proto_and_generate() {
    python();
    let stack = Stack::start("python_pipeline").await;
    let worker = stack.worker("worker", Some(API_KEY));
    let script = json!({"video": VIDEO, "model": "grok_video3", "actual_duration": 6.04});
    let dict_task = stack.sim.task(script.clone()).await;
    let json_task = stack.sim.task(script.clone()).await;
    let binary_task = stack.sim.task(script).await;

    let first = run_pipeline(
        &stack,
        &worker,
        "first",
        &[
            "--task-id",
            &dict_task,
            "--json-proto-task-id",
            &json_task,
            "--binary-proto-task-id",
            &binary_task,
            "--generate-prompt",
            "a lighthouse at dawn",
            "--generate-workflow-id",
            "generate-python",
            "--model",
            "grok_video3",
            "--duration-seconds",
            "6",
            "--show-payloads",
            "--concurrent",
        ],
    )
    .await;
    let line = |step: &str| first.line(step);

    // 1. A dict: json/plain in, json/plain out.
    let dict = line("archive_dict");
    let sent = assert_sent(&stack, dict, "json/plain", None);
    assert_eq!(
        serde_json::from_slice::<Value>(&sent).unwrap(),
        json!({"task_id": dict_task, "bucket": stack.bucket, "first_poll_delay_seconds": 1,
               "poll_interval_seconds": 1, "deadline_seconds": 300})
    );
    assert_archived(&stack, dict, Some(&dict_task));
    let source = std::fs::read(fixture(VIDEO)).unwrap();
    assert_eq!(
        stack.object(&format!("videos/{dict_task}.mp4")).await.0,
        source
    );

    // 4. GenerateVideo with a dict: one provider task created, its video stored.
    let generated = line("generate_dict");
    assert_eq!(generated["workflow_id"], "generate-python");
    assert_sent(&stack, generated, "json/plain", None);
    let created = assert_archived(&stack, generated, None);
    assert_eq!(
        stack.object(&format!("videos/{created}.mp4")).await.0,
        source
    );
    assert_eq!(stack.sim.stats().await["creates"], 1);

    // Run again under the same workflow ids, one step after the other: the closed workflows'
    // results are read; nothing is downloaded, stored or ordered twice.
    let downloads = stack.sim.video_requests_of(&dict_task).await;
    let objects = stack.keys().await.len();
    let again = run_pipeline(
        &stack,
        &worker,
        "again",
        &[
            "--task-id",
            &dict_task,
            "--generate-prompt",
            "a lighthouse at dawn",
            "--generate-workflow-id",
            "generate-python",
        ],
    )
    .await;
    for step in ["archive_dict", "generate_dict"] {
        let line = again.line(step);
        assert_eq!(line["ok"], true, "{step} again: {line}");
        assert_eq!(
            line["existing"], true,
            "{step} again read the closed workflow"
        );
        assert_eq!(line["result"], first.line(step)["result"], "{step} again");
    }
    assert!(again.status.success(), "{}", again.stderr);
    assert_eq!(stack.sim.stats().await["creates"], 1, "no second order");
    assert_eq!(stack.sim.video_requests_of(&dict_task).await, downloads);
    assert_eq!(stack.keys().await.len(), objects);

    // 2. The generated class through the default converter: json/protobuf, lowerCamelCase
    //    JSON, messageType metadata. The worker's types read that JSON as it is.
    let json_proto = line("archive_json_proto");
    assert_eq!(json_proto["input_type"], "grokvideo.v1.ArchiveVideoRequest");
    let sent = assert_sent(
        &stack,
        json_proto,
        "json/protobuf",
        Some("grokvideo.v1.ArchiveVideoRequest"),
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&sent).unwrap(),
        json!({"taskId": json_task, "bucket": stack.bucket, "firstPollDelaySeconds": 1,
               "pollIntervalSeconds": 1, "deadlineSeconds": 300})
    );
    let expected = |task_id: &str| crate::workflow::request(&stack, task_id);
    assert_eq!(
        serde_json::from_slice::<ArchiveVideoRequest>(&sent).unwrap(),
        expected(&json_task)
    );

    // 2b. The binary-first converter: binary/protobuf, the message's wire bytes.
    let binary = line("archive_binary_proto");
    let sent = assert_sent(
        &stack,
        binary,
        "binary/protobuf",
        Some("grokvideo.v1.ArchiveVideoRequest"),
    );
    assert_eq!(
        ArchiveVideoRequest::decode(sent.as_slice()).unwrap(),
        expected(&binary_task)
    );

    // The worker took both protobuf encodings: the results.
    assert_archived(&stack, json_proto, Some(&json_task));
    assert_archived(&stack, binary, Some(&binary_task));
    assert!(
        first.status.success(),
        "pipeline.py exited with {}\nstderr:\n{}",
        first.status,
        first.stderr
    );
}
