//! The provider simulator: a real HTTP server on loopback that speaks the provider's create
//! and result endpoints, checks the bearer key, moves each task queued → processing →
//! completed (or failed) on a configurable clock, and serves the MP4 bytes at `video_url`.
//! Tests script tasks through `/_sim/tasks` and read what clients did from `/_sim/stats`.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Settings of one simulator.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// The key clients must send as `Authorization: Bearer`.
    pub api_key: String,
    /// Directory of the MP4 files it serves.
    pub videos_dir: PathBuf,
    /// Seconds a new task stays queued.
    pub queued_for: Duration,
    /// Seconds it then stays processing.
    pub processing_for: Duration,
    /// Base URL put in `video_url`; `None`: the address it listens on.
    pub public_url: Option<String>,
}

/// How one scripted task behaves. Every field has a default.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct TaskScript {
    /// Provider model reported.
    pub model: Option<String>,
    /// File in the videos directory served when completed.
    pub video: Option<String>,
    /// Seconds queued (overrides the simulator's clock).
    pub queued_seconds: Option<f64>,
    /// Seconds processing.
    pub processing_seconds: Option<f64>,
    /// `completed` (default) or `failed`.
    pub outcome: Option<String>,
    /// The provider's message when the outcome is `failed`.
    pub error: Option<String>,
    /// Seconds of video reported as `actualDuration`.
    pub actual_duration: Option<f64>,
}

#[derive(Debug)]
struct Task {
    id: String,
    created: u64,
    started: Instant,
    script: TaskScript,
}

/// What clients did, for tests to assert on.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    creates: AtomicU64,
    queries: AtomicU64,
    unauthorized: AtomicU64,
    video_requests: AtomicU64,
    video_requests_with_auth: AtomicU64,
}

struct Shared {
    config: SimulatorConfig,
    base_url: String,
    tasks: Mutex<HashMap<String, Arc<Task>>>,
    stats: Stats,
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    config: SimulatorConfig,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    let base_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_owned();
    let shared = Arc::new(Shared {
        config,
        base_url,
        tasks: Mutex::new(HashMap::new()),
        stats: Stats::default(),
    });
    let app = Router::new()
        .route("/v1/grok/videos", post(create))
        .route("/v1/result/{id}", get(result))
        .route("/files/{name}", get(file))
        .route("/_sim/tasks", post(script_task))
        .route("/_sim/stats", get(stats))
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

type AppState = State<Arc<Shared>>;

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let expected = format!("Bearer {}", shared.config.api_key);
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    if !ok {
        shared.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
    }
    ok
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": {"message": "Invalid API key", "type": "invalid_request_error", "code": "invalid_api_key"}})),
    )
        .into_response()
}

fn new_task(shared: &Shared, script: TaskScript) -> Arc<Task> {
    let task = Arc::new(Task {
        id: format!("video_{}", uuid::Uuid::new_v4()),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        started: Instant::now(),
        script,
    });
    shared
        .tasks
        .lock()
        .expect("tasks lock")
        .insert(task.id.clone(), task.clone());
    task
}

async fn create(State(shared): AppState, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    shared.stats.creates.fetch_add(1, Ordering::Relaxed);
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": 400, "message": "body is not JSON"})),
        )
            .into_response();
    };
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if ![
        "grok_video3",
        "grok_video3_pro",
        "grok_video3_max",
        "grok_video3_stable",
    ]
    .contains(&model.as_str())
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": 400, "message": format!("unsupported model: {model}")})),
        )
            .into_response();
    }
    let duration = request
        .get("duration")
        .and_then(Value::as_f64)
        .unwrap_or(10.0);
    let video = if duration > 10.0 {
        "grok_video3_30s_720p.mp4"
    } else {
        "grok_video3_6s_480p.mp4"
    };
    let task = new_task(
        &shared,
        TaskScript {
            model: Some(model),
            video: Some(video.to_owned()),
            ..Default::default()
        },
    );
    Json(body_of(&shared, &task, "queued")).into_response()
}

async fn script_task(State(shared): AppState, Json(script): Json<TaskScript>) -> Response {
    if let Some(video) = &script.video
        && !shared.config.videos_dir.join(video).is_file()
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": format!("no video {video} in the videos directory")})),
        )
            .into_response();
    }
    let task = new_task(&shared, script);
    Json(body_of(&shared, &task, "queued")).into_response()
}

async fn result(State(shared): AppState, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    shared.stats.queries.fetch_add(1, Ordering::Relaxed);
    let task = shared.tasks.lock().expect("tasks lock").get(&id).cloned();
    let Some(task) = task else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"code": 404, "message": format!("task {id} not found")})),
        )
            .into_response();
    };
    let elapsed = task.started.elapsed().as_secs_f64();
    let queued = task
        .script
        .queued_seconds
        .unwrap_or(shared.config.queued_for.as_secs_f64());
    let processing = task
        .script
        .processing_seconds
        .unwrap_or(shared.config.processing_for.as_secs_f64());
    let status = if elapsed < queued {
        "queued"
    } else if elapsed < queued + processing {
        "processing"
    } else if task.script.outcome.as_deref() == Some("failed") {
        "failed"
    } else {
        "completed"
    };
    Json(body_of(&shared, &task, status)).into_response()
}

fn body_of(shared: &Shared, task: &Task, status: &str) -> Value {
    let video = task
        .script
        .video
        .clone()
        .unwrap_or_else(|| "grok_video3_6s_480p.mp4".to_owned());
    let completed = status == "completed";
    json!({
        "id": task.id,
        "object": "video",
        "created": task.created,
        "model": task.script.model.clone().unwrap_or_else(|| "grok_video3".to_owned()),
        "status": status,
        "video_url": completed.then(|| format!("{}/files/{video}", shared.base_url)),
        "actualDuration": completed.then(|| task.script.actual_duration.unwrap_or(if video.contains("30s") { 30.04 } else { 6.04 })),
        "error": (status == "failed").then(|| task.script.error.clone().unwrap_or_else(|| "generation failed".to_owned())),
    })
}

async fn file(State(shared): AppState, headers: HeaderMap, Path(name): Path<String>) -> Response {
    shared.stats.video_requests.fetch_add(1, Ordering::Relaxed);
    if headers.contains_key(header::AUTHORIZATION) {
        shared
            .stats
            .video_requests_with_auth
            .fetch_add(1, Ordering::Relaxed);
    }
    if name.contains('/') || name.contains("..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = shared.config.videos_dir.join(&name);
    let Ok(file) = tokio::fs::File::open(&path).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or_default();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
    Response::builder()
        .header(header::CONTENT_TYPE, "video/mp4")
        .header(header::CONTENT_LENGTH, len)
        .body(Body::from_stream(stream))
        .expect("static response parts")
}

async fn stats(State(shared): AppState) -> Json<Value> {
    let s = &shared.stats;
    Json(json!({
        "creates": s.creates.load(Ordering::Relaxed),
        "queries": s.queries.load(Ordering::Relaxed),
        "unauthorized": s.unauthorized.load(Ordering::Relaxed),
        "video_requests": s.video_requests.load(Ordering::Relaxed),
        "video_requests_with_auth": s.video_requests_with_auth.load(Ordering::Relaxed),
    }))
}
