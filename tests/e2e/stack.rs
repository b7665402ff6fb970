//! Real servers on loopback for the integration tests: the Temporal dev server, moto's S3
//! server, the provider simulator and the worker, each a child process stopped on drop.

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use aws_sdk_s3::Client as S3;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url, tonic};
use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeNamespaceRequest;

/// The API key the simulator expects in tests: recognisable, so a leak is easy to find.
pub const API_KEY: &str = "sk-test-LEAKCHECK-4f1d2a";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

fn tool(env: &str, name: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".tools/bin").join(name));
    assert!(
        path.exists(),
        "{} not found: run `make test` (or scripts/install-tools.sh) first, or set {env}",
        path.display()
    );
    path
}

/// A port on 127.0.0.1 that is free now and that `bind(:0)` will not hand out again soon
/// (its server side is left in TIME_WAIT), so servers that pick more ports do not take it.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (server, _) = listener.accept().unwrap();
    drop(server);
    drop(client);
    port
}

/// Polls `ready` until it holds or the deadline passes.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !ready().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A child process, killed and reaped on drop.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Self { child, log }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait up to `within` for the exit; SIGKILL after that.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// The Temporal dev server with a SQLite file, so a restart keeps its state.
pub struct Temporal {
    pub proc: Proc,
    pub port: u16,
    pub db: PathBuf,
    dir: PathBuf,
}

impl Temporal {
    pub async fn start(dir: &Path) -> Self {
        let port = free_port();
        let db = dir.join("temporal.db");
        let proc = Self::spawn(dir, port, &db);
        let t = Self {
            proc,
            port,
            db,
            dir: dir.to_owned(),
        };
        t.wait_ready().await;
        t
    }

    fn spawn(dir: &Path, port: u16, db: &Path) -> Proc {
        let metrics = free_port();
        let http = free_port();
        Proc::spawn(
            "temporal",
            Command::new(tool("GVW_TEMPORAL_BIN", "temporal"))
                .args([
                    "server",
                    "start-dev",
                    "--headless",
                    "--ip",
                    "127.0.0.1",
                    "--log-level",
                    "warn",
                ])
                .args(["--port", &port.to_string()])
                .args(["--http-port", &http.to_string()])
                .args(["--metrics-port", &metrics.to_string()])
                .arg("--db-filename")
                .arg(db),
            dir,
        )
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub async fn client(&self) -> Client {
        let url = Url::parse(&format!("http://{}", self.address())).unwrap();
        let connection = Connection::connect(ConnectionOptions::new(url).build())
            .await
            .unwrap();
        Client::new(connection, ClientOptions::new("default").build()).unwrap()
    }

    async fn wait_ready(&self) {
        let url = Url::parse(&format!("http://{}", self.address())).unwrap();
        eventually("the Temporal dev server", Duration::from_secs(60), || {
            let url = url.clone();
            async move {
                // Ready means the `default` namespace answers, not just the port: on a busy
                // machine the dev server accepts connections before it has registered it.
                let Ok(connection) = Connection::connect(ConnectionOptions::new(url).build()).await
                else {
                    return false;
                };
                connection
                    .workflow_service()
                    .describe_namespace(tonic::Request::new(DescribeNamespaceRequest {
                        namespace: "default".into(),
                        ..Default::default()
                    }))
                    .await
                    .is_ok()
            }
        })
        .await;
    }

    /// Stops the server (SIGTERM) and starts it again on the same port and database.
    pub async fn restart(&mut self) {
        self.proc.terminate(Duration::from_secs(20));
        self.proc = Self::spawn(&self.dir, self.port, &self.db);
        self.wait_ready().await;
    }

    /// `temporal workflow show --output json`: the history as the CLI exports it.
    pub fn history_json(&self, workflow_id: &str) -> String {
        let out = Command::new(tool("GVW_TEMPORAL_BIN", "temporal"))
            .args([
                "workflow",
                "show",
                "--output",
                "json",
                "--address",
                &self.address(),
                "--workflow-id",
                workflow_id,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "temporal workflow show: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs the Temporal CLI against this server.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(tool("GVW_TEMPORAL_BIN", "temporal"))
            .args(args)
            .args(["--address", &self.address()])
            .output()
            .unwrap()
    }
}

/// moto's S3 server.
pub struct S3Server {
    pub _proc: Proc,
    pub endpoint: String,
}

impl S3Server {
    pub async fn start(dir: &Path) -> Self {
        let port = free_port();
        let proc = Proc::spawn(
            "s3",
            Command::new(tool("GVW_MOTO_SERVER_BIN", "moto_server")).args([
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ]),
            dir,
        );
        let endpoint = format!("http://127.0.0.1:{port}");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        eventually("the S3 server", Duration::from_secs(30), || async move {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
        .await;
        Self {
            _proc: proc,
            endpoint,
        }
    }

    pub async fn client(&self) -> S3 {
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            // moto answers GetObject of a multipart object with its composite CRC32 (the
            // parts' checksums combined) but without the `-N` suffix that marks it composite, so
            // the SDK would check the body against it as a whole-object CRC32 and fail. Tests
            // compare the stored bytes with the fixture's instead.
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            )
            .build();
        S3::from_conf(conf)
    }
}

/// The provider simulator, a real HTTP server.
pub struct Simulator {
    pub _proc: Proc,
    pub url: String,
    http: reqwest::Client,
}

impl Simulator {
    pub async fn start(dir: &Path) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_grok-video-worker"));
        cmd.args([
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--queued-seconds",
            "1",
            "--processing-seconds",
            "2",
        ])
        .arg("--videos-dir")
        .arg(repo().join("tests/fixtures"))
        .env("GROK_API_KEY", API_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("start simulator");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("simulator printed its address");
        let url = line.rsplit(' ').next().unwrap().to_owned();
        Self {
            _proc: Proc {
                child,
                log: dir.join("simulator.log"),
            },
            url,
            http: reqwest::Client::new(),
        }
    }

    /// Scripts a task; returns its id.
    pub async fn task(&self, script: serde_json::Value) -> String {
        let body: serde_json::Value = self
            .http
            .post(format!("{}/_sim/tasks", self.url))
            .json(&script)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn stats(&self) -> serde_json::Value {
        self.http
            .get(format!("{}/_sim/stats", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Everything one test needs, in its own directory, task queue and bucket.
pub struct Stack {
    pub dir: PathBuf,
    pub temporal: Temporal,
    pub s3: S3Server,
    pub sim: Simulator,
    pub task_queue: String,
    pub bucket: String,
}

impl Stack {
    pub async fn start(test: &str) -> Self {
        let dir = repo().join("target/e2e").join(test);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (temporal, s3, sim) = tokio::join!(
            Temporal::start(&dir),
            S3Server::start(&dir),
            Simulator::start(&dir)
        );
        let bucket = format!("videos-{}", test.replace('_', "-"));
        s3.client()
            .await
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        Self {
            dir,
            temporal,
            s3,
            sim,
            task_queue: format!("tq-{test}"),
            bucket,
        }
    }

    /// The worker command with the stack's settings; `key` is the API key it is given
    /// (`None`: none at all).
    pub fn worker_command(&self, key: Option<&str>) -> Command {
        let mut cmd = self.command("worker");
        cmd.env_remove("GROK_API_KEY");
        if let Some(key) = key {
            cmd.env("GROK_API_KEY", key);
        }
        cmd
    }

    /// `grok-video-worker <subcommand>` with the stack's settings.
    pub fn command(&self, subcommand: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_grok-video-worker"));
        cmd.arg(subcommand)
            .env("RUST_LOG", "debug,h2=info,hyper=info,aws_smithy_runtime=info,aws_sdk_s3=info,rustls=info,tonic=info,tower=info")
            .env("TEMPORAL_ADDRESS", self.temporal.address())
            .env("GROK_TASK_QUEUE", &self.task_queue)
            .env("GROK_API_BASE_URL", &self.sim.url)
            .env("AWS_ENDPOINT_URL", &self.s3.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("GROK_S3_FORCE_PATH_STYLE", "true")
            .env("GROK_ALLOW_HTTP_VIDEO_URLS", "true")
            .env("GROK_ALLOW_PRIVATE_VIDEO_URLS", "true")
            .env("GROK_SHUTDOWN_GRACE_SECONDS", "5")
            .env("GROK_MAX_REQUESTS_PER_SECOND", "0");
        cmd
    }

    /// Starts a worker without waiting for it (for workers expected to refuse to start).
    pub fn spawn_worker(&self, name: &str, key: Option<&str>) -> Proc {
        Proc::spawn(name, &mut self.worker_command(key), &self.dir)
    }

    /// Starts a worker and returns once it polls its task queue, so a test's clock starts
    /// with a worker ready (its start-up time varies with the machine's load).
    pub fn worker(&self, name: &str, key: Option<&str>) -> Proc {
        self.start_worker(name, &mut self.worker_command(key))
    }

    /// Starts `cmd` as a worker and waits for its "worker started" line.
    pub fn start_worker(&self, name: &str, cmd: &mut Command) -> Proc {
        let mut proc = Proc::spawn(name, cmd, &self.dir);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !proc.log_text().contains("worker started") {
            if let Ok(Some(status)) = proc.child.try_wait() {
                panic!("worker {name} exited with {status}:\n{}", proc.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "worker {name} did not start within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        proc
    }

    /// Every key in the test's bucket.
    pub async fn keys(&self) -> Vec<String> {
        let out = self
            .s3
            .client()
            .await
            .list_objects_v2()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }

    /// Multipart uploads left open in the test's bucket.
    pub async fn open_uploads(&self) -> usize {
        let out = self
            .s3
            .client()
            .await
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap();
        out.uploads().len()
    }

    pub async fn object(&self, key: &str) -> (Vec<u8>, std::collections::HashMap<String, String>) {
        let out = self
            .s3
            .client()
            .await
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let meta = out.metadata().cloned().unwrap_or_default();
        let bytes = out.body.collect().await.unwrap().into_bytes().to_vec();
        (bytes, meta)
    }
}

impl Stack {
    /// A worker like [`Stack::worker`] with extra environment variables, e.g. a short
    /// `GROK_API_TIMEOUT_SECONDS` to meet a slow provider.
    pub fn worker_with_env(&self, name: &str, key: Option<&str>, env: &[(&str, &str)]) -> Proc {
        let mut cmd = self.worker_command(key);
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.start_worker(name, &mut cmd)
    }
}

impl Simulator {
    /// Scripts the next creates (`POST /_sim/create_script`); returns the simulator's answer.
    #[allow(dead_code)] // for suites that create tasks
    pub async fn create_script(&self, script: serde_json::Value) -> serde_json::Value {
        let response = self
            .http
            .post(format!("{}/_sim/create_script", self.url))
            .json(&script)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(status.is_success(), "create_script {status}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Scripts a task like [`Simulator::task`], showing the simulator's reason if it refuses.
    pub async fn scripted(&self, script: serde_json::Value) -> String {
        let response = self
            .http
            .post(format!("{}/_sim/tasks", self.url))
            .json(&script)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "script refused ({status}): {body}\n{script}"
        );
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// How many status queries the simulator saw for `task_id`.
    pub async fn queries_of(&self, task_id: &str) -> u64 {
        self.stats().await["queries_by_task"][task_id]
            .as_u64()
            .unwrap_or(0)
    }

    /// `GET /_sim/tasks/{id}`: when the task was queried and downloaded (seconds since its
    /// creation) and how much of its script is left.
    pub async fn task_report(&self, task_id: &str) -> serde_json::Value {
        self.http
            .get(format!("{}/_sim/tasks/{task_id}", self.url))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// How many downloads of `task_id`'s video the simulator saw.
    #[allow(dead_code)]
    pub async fn video_requests_of(&self, task_id: &str) -> u64 {
        self.stats().await["video_requests_by_task"][task_id]
            .as_u64()
            .unwrap_or(0)
    }
}

impl Stack {
    /// Multipart uploads left open in the test's bucket, as (key, upload id).
    #[allow(dead_code)]
    pub async fn open_upload_list(&self) -> Vec<(String, String)> {
        let out = self
            .s3
            .client()
            .await
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap();
        out.uploads()
            .iter()
            .map(|u| {
                (
                    u.key().unwrap_or_default().to_owned(),
                    u.upload_id().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

#[allow(dead_code)]
impl Stack {
    /// GetObject without panicking: the bytes and metadata, or the error (including a
    /// checksum mismatch the SDK found while reading the body).
    pub async fn try_object(
        &self,
        key: &str,
    ) -> Result<(Vec<u8>, std::collections::HashMap<String, String>), String> {
        let out = self
            .s3
            .client()
            .await
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "GetObject {key}: {}",
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                )
            })?;
        let meta = out.metadata().cloned().unwrap_or_default();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| format!("reading {key}: {e:?}"))?
            .into_bytes()
            .to_vec();
        Ok((bytes, meta))
    }

    /// The object's bytes (the test client does no response-checksum validation), and the
    /// checksums S3 reports for it (HeadObject with checksum mode on), for a failure report.
    pub async fn object_with_checksums(&self, key: &str) -> Result<(Vec<u8>, String), String> {
        let s3 = self.s3.client().await;
        let head = s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| format!("HeadObject {key}: {e:?}"))?;
        let checksums = format!(
            "size {:?} etag {:?} crc32 {:?} crc32c {:?} crc64nvme {:?} sha1 {:?} sha256 {:?} type {:?}",
            head.content_length(),
            head.e_tag(),
            head.checksum_crc32(),
            head.checksum_crc32_c(),
            head.checksum_crc64_nvme(),
            head.checksum_sha1(),
            head.checksum_sha256(),
            head.checksum_type(),
        );
        let out = s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| format!("GetObject {key}: {e:?}"))?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| format!("reading {key}: {e:?}"))?
            .into_bytes()
            .to_vec();
        Ok((bytes, checksums))
    }
}

/// A worker of [`Stack::workers_on_queues`]: name, task queue, extra environment.
#[allow(dead_code)]
pub type WorkerSpec<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// Helpers for suites that run several scenarios on one stack, each in a bucket and on a
/// task queue of its own.
#[allow(dead_code)]
impl Stack {
    /// Creates the bucket `<stack bucket>-<name>` and returns its name.
    pub async fn create_bucket(&self, name: &str) -> String {
        let bucket = format!("{}-{name}", self.bucket);
        self.s3
            .client()
            .await
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
        bucket
    }

    /// Every key in `bucket`.
    pub async fn keys_in(&self, bucket: &str) -> Vec<String> {
        let out = self
            .s3
            .client()
            .await
            .list_objects_v2()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }

    /// Multipart uploads left open in `bucket`.
    pub async fn open_uploads_in(&self, bucket: &str) -> usize {
        let out = self
            .s3
            .client()
            .await
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        out.uploads().len()
    }

    /// The bytes and metadata of `bucket/key`.
    pub async fn object_in(
        &self,
        bucket: &str,
        key: &str,
    ) -> (Vec<u8>, std::collections::HashMap<String, String>) {
        let out = self
            .s3
            .client()
            .await
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get s3://{bucket}/{key}: {e:?}"));
        let meta = out.metadata().cloned().unwrap_or_default();
        let bytes = out.body.collect().await.unwrap().into_bytes().to_vec();
        (bytes, meta)
    }

    /// Stores an object directly (not through the worker), e.g. another task's video.
    pub async fn put_object_in(&self, bucket: &str, key: &str, body: &[u8], meta: &[(&str, &str)]) {
        let mut put = self
            .s3
            .client()
            .await
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("video/mp4")
            .body(body.to_vec().into());
        for (k, v) in meta {
            put = put.metadata(*k, *v);
        }
        put.send().await.unwrap();
    }

    /// Starts workers on their own task queues, all at once, and returns once each of them
    /// polls.
    pub fn workers_on_queues(&self, specs: &[WorkerSpec<'_>]) -> Vec<Proc> {
        let mut procs: Vec<Proc> = specs
            .iter()
            .map(|(name, queue, env)| {
                let mut cmd = self.worker_command(Some(API_KEY));
                cmd.env("GROK_TASK_QUEUE", queue);
                for (k, v) in *env {
                    cmd.env(k, v);
                }
                Proc::spawn(name, &mut cmd, &self.dir)
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(90);
        for (proc, (name, ..)) in procs.iter_mut().zip(specs) {
            while !proc.log_text().contains("worker started") {
                if let Ok(Some(status)) = proc.child.try_wait() {
                    panic!("worker {name} exited with {status}:\n{}", proc.log_text());
                }
                assert!(
                    Instant::now() < deadline,
                    "worker {name} did not start within 90 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        procs
    }
}
