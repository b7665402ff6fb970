//! The provider simulator: a real HTTP server on loopback that speaks the provider's create
//! and result endpoints, checks the bearer key, moves each task queued → processing →
//! completed (or failed) on a configurable clock, and serves the MP4 bytes at `video_url`.
//!
//! Tests script tasks through `POST /_sim/tasks` (a [`TaskScript`], answered with the task
//! like a create; `GET /_sim/tasks/{id}` reports when it was queried and downloaded, and the
//! `Range` header of each download), script the next creates through `POST
//! /_sim/create_script` (a [`CreateScript`]), and read what clients did from `GET
//! /_sim/stats`. A script's [`Step`]s inject one-shot faults: a status and body of any shape,
//! headers (a redirect), a delay, a dropped connection, a video cut short or stalled. Unknown
//! routes answer 404 `{"message":"No handler found for <METHOD> <path>"}` like the real
//! gateway.
//!
//! Videos honour a single `Range: bytes=N-`, `bytes=N-M` or `bytes=-N` with `206 Partial
//! Content` and `Content-Range`, or `416` when the range lies past the end; a task scripted
//! with `ignore_range` answers 200 with the whole file instead, like a host without range
//! support.
//!
//! Order of the answers to a status query: the task's `responses` first, one per query;
//! then, within `not_found_for_seconds` of the task's creation, 404; then the clock. A create
//! step that only delays (or adds headers) creates the task at once and answers after the
//! delay: the create that went through although the client timed out.

mod respond;
mod script;
mod stats;

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use respond::Conn;
use script::StepQueue;
pub use script::{CreateScript, MAX_DELAY_MS, Step, StepKind, TaskScript};
pub use stats::Stats;

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

#[derive(Debug)]
struct Task {
    id: String,
    created: u64,
    started: Instant,
    script: TaskScript,
    responses: Mutex<StepQueue>,
    video_responses: Mutex<StepQueue>,
    /// Arrival of each status query and video download, in seconds since creation.
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    queries: Vec<f64>,
    videos: Vec<f64>,
    /// The `Range` header of each video download, `""` when it had none.
    video_ranges: Vec<String>,
}

impl Task {
    fn saw_query(&self) {
        let at = self.started.elapsed().as_secs_f64();
        self.seen.lock().expect("task lock").queries.push(at);
    }

    fn saw_video(&self, range: Option<&str>) {
        let at = self.started.elapsed().as_secs_f64();
        let mut seen = self.seen.lock().expect("task lock");
        seen.videos.push(at);
        seen.video_ranges.push(range.unwrap_or_default().to_owned());
    }

    /// `GET /_sim/tasks/{id}`: what this task saw and what its script has left.
    fn report(&self) -> Value {
        let seen = self.seen.lock().expect("task lock");
        let round = |v: &[f64]| {
            v.iter()
                .map(|t| (t * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>()
        };
        json!({
            "id": self.id,
            "queries": seen.queries.len(),
            "query_times": round(&seen.queries),
            "video_requests": seen.videos.len(),
            "video_times": round(&seen.videos),
            "video_ranges": seen.video_ranges,
            "responses_left": self.responses.lock().expect("task lock").remaining(),
            "video_responses_left": self.video_responses.lock().expect("task lock").remaining(),
        })
    }

    fn next_response(&self) -> Option<Step> {
        self.responses.lock().expect("task lock").next()
    }

    fn next_video_response(&self) -> Option<Step> {
        self.video_responses.lock().expect("task lock").next()
    }
}

/// The queued create faults and the script of tasks created from now on.
#[derive(Debug, Default)]
struct Creates {
    responses: StepQueue,
    task: Option<TaskScript>,
}

struct Shared {
    config: SimulatorConfig,
    base_url: String,
    tasks: Mutex<HashMap<String, Arc<Task>>>,
    creates: Mutex<Creates>,
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
        creates: Mutex::new(Creates::default()),
        stats: Stats::default(),
    });
    let app = Router::new()
        .route("/v1/grok/videos", post(create))
        .route("/v1/result/{id}", get(result))
        .route("/files/{name}", get(file))
        .route("/files/{task}/{name}", get(task_file))
        .route("/_sim/tasks", post(script_task))
        .route("/_sim/tasks/{id}", get(task_report))
        .route("/_sim/create_script", post(script_creates))
        .route("/_sim/stats", get(stats))
        .fallback(no_handler)
        .with_state(shared);
    axum::serve(listener, app.into_make_service_with_connect_info::<Conn>())
        .with_graceful_shutdown(shutdown)
        .await
}

type AppState = State<Arc<Shared>>;
type Client = ConnectInfo<Conn>;

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let expected = format!("Bearer {}", shared.config.api_key);
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    if !ok {
        shared.stats.unauthorized();
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

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"message": message}))).into_response()
}

/// A `/_sim` body: unknown fields and bad values are a 400 that says what is wrong.
fn parse_script<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| format!("bad script: {e}"))
}

fn new_task(shared: &Shared, script: TaskScript) -> Arc<Task> {
    let task = Arc::new(Task {
        id: format!("video_{}", uuid::Uuid::new_v4()),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        started: Instant::now(),
        responses: Mutex::new(StepQueue::new(&script.responses)),
        video_responses: Mutex::new(StepQueue::new(&script.video_responses)),
        seen: Mutex::new(Seen::default()),
        script,
    });
    shared
        .tasks
        .lock()
        .expect("tasks lock")
        .insert(task.id.clone(), task.clone());
    task
}

async fn create(
    State(shared): AppState,
    ConnectInfo(conn): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    shared.stats.create();
    let step = shared
        .creates
        .lock()
        .expect("creates lock")
        .responses
        .next();
    let Some(step) = step else {
        return accept_create(&shared, &body);
    };
    if !step.is_custom() && !step.drop {
        // A slow normal answer: the task exists (and is billed) at once, the answer comes
        // late, like a gateway that times out on a create that went through.
        let response = accept_create(&shared, &body);
        tokio::time::sleep(Duration::from_millis(step.delay_ms)).await;
        return respond::with_headers(&step, response);
    }
    if let Some(done) = respond::before(&step, &conn).await {
        return done;
    }
    respond::custom(&step)
}

/// The normal create: validate, create the task, answer it queued.
fn accept_create(shared: &Shared, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
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
    let mut script = shared
        .creates
        .lock()
        .expect("creates lock")
        .task
        .clone()
        .unwrap_or_default();
    script.model.get_or_insert(model);
    script.video.get_or_insert_with(|| video.to_owned());
    let task = new_task(shared, script);
    shared.stats.create_accepted();
    Json(body_of(shared, &task, "queued")).into_response()
}

async fn script_task(State(shared): AppState, body: Bytes) -> Response {
    let script: TaskScript = match parse_script(&body) {
        Ok(s) => s,
        Err(problem) => return bad_request(problem),
    };
    if let Err(e) = script.validate(&shared.config.videos_dir) {
        return bad_request(e);
    }
    let task = new_task(&shared, script);
    Json(body_of(&shared, &task, "queued")).into_response()
}

async fn task_report(State(shared): AppState, Path(id): Path<String>) -> Response {
    let task = shared.tasks.lock().expect("tasks lock").get(&id).cloned();
    match task {
        Some(task) => Json(task.report()).into_response(),
        None => not_found(&id),
    }
}

async fn script_creates(State(shared): AppState, body: Bytes) -> Response {
    let script: CreateScript = match parse_script(&body) {
        Ok(s) => s,
        Err(problem) => return bad_request(problem),
    };
    if let Err(e) = script.validate(&shared.config.videos_dir) {
        return bad_request(e);
    }
    let queue = StepQueue::new(&script.responses);
    let queued = queue.remaining();
    *shared.creates.lock().expect("creates lock") = Creates {
        responses: queue,
        task: script.task.clone(),
    };
    Json(json!({"queued_responses": queued, "task": script.task})).into_response()
}

async fn result(
    State(shared): AppState,
    ConnectInfo(conn): Client,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    shared.stats.query(&id);
    let task = shared.tasks.lock().expect("tasks lock").get(&id).cloned();
    let Some(task) = task else {
        return not_found(&id);
    };
    task.saw_query();
    let step = task.next_response();
    if let Some(step) = &step {
        if let Some(done) = respond::before(step, &conn).await {
            return done;
        }
        if step.is_custom() {
            return respond::custom(step);
        }
    }
    let response = clock_answer(&shared, &task);
    match &step {
        Some(step) => respond::with_headers(step, response),
        None => response,
    }
}

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"code": 404, "message": format!("task {id} not found")})),
    )
        .into_response()
}

/// The unscripted answer: 404 while the task is "just created", then its clock.
fn clock_answer(shared: &Shared, task: &Task) -> Response {
    let elapsed = task.started.elapsed().as_secs_f64();
    if task
        .script
        .not_found_for_seconds
        .is_some_and(|s| elapsed < s)
    {
        return not_found(&task.id);
    }
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
    Json(body_of(shared, task, status)).into_response()
}

fn video_of(task: &Task) -> String {
    task.script
        .video
        .clone()
        .unwrap_or_else(|| "grok_video3_6s_480p.mp4".to_owned())
}

fn body_of(shared: &Shared, task: &Task, status: &str) -> Value {
    let video = video_of(task);
    let completed = status == "completed";
    json!({
        "id": task.id,
        "object": "video",
        "created": task.created,
        "model": task.script.model.clone().unwrap_or_else(|| "grok_video3".to_owned()),
        "status": status,
        "video_url": completed.then(|| format!("{}/files/{}/{video}", shared.base_url, task.id)),
        "actualDuration": completed.then(|| task.script.actual_duration.unwrap_or(if video.contains("30s") { 30.04 } else { 6.04 })),
        "error": (status == "failed").then(|| task.script.error.clone().unwrap_or_else(|| "generation failed".to_owned())),
    })
}

/// `GET /files/{name}`: the file, with no task's script.
async fn file(
    State(shared): AppState,
    ConnectInfo(conn): Client,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    shared
        .stats
        .video(None, headers.contains_key(header::AUTHORIZATION));
    serve_video(&shared, &conn, &name, None, range_of(&headers), false).await
}

/// The request's `Range` header, if it has one that is text.
fn range_of(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::RANGE).and_then(|v| v.to_str().ok())
}

/// `GET /files/{task}/{name}`: the file of a task, shaped by its `video_responses`.
async fn task_file(
    State(shared): AppState,
    ConnectInfo(conn): Client,
    headers: HeaderMap,
    Path((task_id, name)): Path<(String, String)>,
) -> Response {
    shared
        .stats
        .video(Some(&task_id), headers.contains_key(header::AUTHORIZATION));
    let task = shared
        .tasks
        .lock()
        .expect("tasks lock")
        .get(&task_id)
        .cloned();
    let Some(task) = task else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let range = range_of(&headers);
    task.saw_video(range);
    let step = task.next_video_response();
    let ignore_range = task.script.ignore_range;
    serve_video(&shared, &conn, &name, step, range, ignore_range).await
}

/// A video answer: the step's own, or the file (the part `range` asks for, unless ranges
/// are ignored).
async fn serve_video(
    shared: &Shared,
    conn: &Conn,
    name: &str,
    step: Option<Step>,
    range: Option<&str>,
    ignore_range: bool,
) -> Response {
    if let Some(step) = &step
        && let Some(done) = respond::before(step, conn).await
    {
        return done;
    }
    let step = step.unwrap_or_default();
    let mut status = step.status_code();
    let mut extra = HeaderMap::new();
    let (content_type, len, source) = if step.is_custom() {
        let (content_type, bytes) = respond::step_body(&step);
        let len = bytes.len() as u64;
        let source: futures::stream::BoxStream<'static, std::io::Result<Bytes>> =
            Box::pin(futures::stream::once(async move { Ok(bytes) }));
        (content_type, len, source)
    } else {
        if name.contains('/') || name.contains("..") {
            return StatusCode::NOT_FOUND.into_response();
        }
        let path = shared.config.videos_dir.join(name);
        let Ok(mut file) = tokio::fs::File::open(&path).await else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let total = file.metadata().await.map(|m| m.len()).unwrap_or_default();
        let accepts = if ignore_range { "none" } else { "bytes" };
        extra.insert(header::ACCEPT_RANGES, HeaderValue::from_static(accepts));
        let asked = range.filter(|_| !ignore_range);
        let (first, len) = match asked.map(|r| respond::byte_range(r, total)) {
            None | Some(respond::ByteRange::Whole) => (0, total),
            Some(respond::ByteRange::Part { first, last }) => {
                status = StatusCode::PARTIAL_CONTENT;
                let value = format!("bytes {first}-{last}/{total}");
                extra.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&value).expect("digits"),
                );
                (first, last + 1 - first)
            }
            Some(respond::ByteRange::Unsatisfiable) => {
                let value = format!("bytes */{total}");
                let response = Response::builder()
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, value)
                    .body(Body::empty())
                    .expect("static response parts");
                return respond::with_headers(&step, response);
            }
        };
        if first > 0 {
            use tokio::io::AsyncSeekExt;
            if file.seek(std::io::SeekFrom::Start(first)).await.is_err() {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        }
        use tokio::io::AsyncReadExt;
        let source: futures::stream::BoxStream<'static, std::io::Result<Bytes>> = Box::pin(
            tokio_util::io::ReaderStream::with_capacity(file.take(len), 64 * 1024),
        );
        (Some("video/mp4"), len, source)
    };
    let (announced, body): (Option<u64>, Body) = respond::video_body(&step, len, source);
    let mut response = Response::builder().status(status);
    if let Some(ct) = content_type {
        response = response.header(header::CONTENT_TYPE, ct);
    }
    if let Some(len) = announced {
        response = response.header(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    let mut response = response.body(body).expect("static response parts");
    response.headers_mut().extend(extra);
    respond::with_headers(&step, response)
}

async fn stats(State(shared): AppState) -> Json<Value> {
    Json(shared.stats.to_json())
}

async fn no_handler(method: Method, uri: Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": format!("No handler found for {method} {}", uri.path())})),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
