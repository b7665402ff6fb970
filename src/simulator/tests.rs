//! The simulator's scripted faults, against the real server on loopback.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

const KEY: &str = "sk-sim-unit";

struct Sim {
    url: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Sim {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = SimulatorConfig {
            api_key: KEY.into(),
            videos_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
            queued_for: Duration::from_secs(0),
            processing_for: Duration::from_secs(0),
            public_url: None,
        };
        tokio::spawn(serve(config, listener, async move {
            let _ = stopped.await;
        }));
        Self {
            url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            _stop: stop,
        }
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn task(&self, script: Value) -> String {
        let r = self.post("/_sim/tasks", script).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn query(&self, id: &str) -> reqwest::Result<reqwest::Response> {
        self.http
            .get(format!("{}/v1/result/{id}", self.url))
            .bearer_auth(KEY)
            .send()
            .await
    }

    async fn query_json(&self, id: &str) -> (u16, Value) {
        let r = self.query(id).await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn create(&self) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(format!("{}/v1/grok/videos", self.url))
            .bearer_auth(KEY)
            .json(&json!({"model": "grok_video3", "prompt": "p"}))
            .send()
            .await
    }

    async fn stats(&self) -> Value {
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

#[tokio::test]
async fn result_steps_answer_first_then_the_clock_resumes() {
    let sim = Sim::start().await;
    let id = sim
        .task(json!({"responses": [
            {"status": 502, "body": "<html><body>Bad gateway</body></html>"},
            {"status": 429, "headers": {"Retry-After": "1"}, "json": {"msg": "slow down"}, "repeat": 2},
            {"json": {"id": "x", "status": "In_Progress"}},
            {"headers": {"X-Extra": "yes"}},
        ]}))
        .await;
    let r = sim.query(&id).await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert!(r.text().await.unwrap().contains("Bad gateway"));
    for _ in 0..2 {
        let r = sim.query(&id).await.unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "1");
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"msg": "slow down"})
        );
    }
    assert_eq!(sim.query_json(&id).await.1["status"], "In_Progress");
    let r = sim.query(&id).await.unwrap();
    assert_eq!(r.headers()["x-extra"], "yes");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["status"], "completed",
        "a header-only step keeps the normal answer"
    );
    let url = body["video_url"].as_str().unwrap();
    assert_eq!(
        url,
        format!("{}/files/{id}/grok_video3_6s_480p.mp4", sim.url)
    );
    assert_eq!(sim.query_json(&id).await.1["status"], "completed");
    let report: Value = sim
        .http
        .get(format!("{}/_sim/tasks/{id}", sim.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["queries"], 6);
    assert_eq!(report["query_times"].as_array().unwrap().len(), 6);
    assert_eq!(report["responses_left"], 0);
    let stats = sim.stats().await;
    assert_eq!(stats["queries"], 6);
    assert_eq!(stats["queries_by_task"][&id], 6);
    assert!(stats["max_queries_per_second"].as_u64().unwrap() >= 1);
    assert_eq!(stats["creates"], 0);
}

#[tokio::test]
async fn not_found_window_then_found() {
    let sim = Sim::start().await;
    let id = sim.task(json!({"not_found_for_seconds": 0.5})).await;
    let (status, body) = sim.query_json(&id).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"code": 404, "message": format!("task {id} not found")})
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sim.query_json(&id).await.1["status"], "completed");
    // An id never created is not found either, and still counted.
    assert_eq!(sim.query_json("video_nope").await.0, 404);
    assert_eq!(sim.stats().await["queries_by_task"]["video_nope"], 1);
}

#[tokio::test]
async fn a_slow_answer_trips_the_client_timeout_once() {
    let sim = Sim::start().await;
    let id = sim.task(json!({"responses": [{"delay_ms": 1500}]})).await;
    let started = Instant::now();
    let err = sim
        .http
        .get(format!("{}/v1/result/{id}", sim.url))
        .bearer_auth(KEY)
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(sim.query_json(&id).await.1["status"], "completed");
}

#[tokio::test]
async fn a_dropped_query_closes_the_connection() {
    let sim = Sim::start().await;
    let id = sim.task(json!({"responses": [{"drop": true}]})).await;
    let err = sim.query(&id).await.unwrap_err();
    assert!(!err.is_timeout(), "{err}");
    assert_eq!(sim.query_json(&id).await.1["status"], "completed");
}

#[tokio::test]
async fn create_faults_then_scripted_tasks() {
    let sim = Sim::start().await;
    let r = sim
        .post(
            "/_sim/create_script",
            json!({
                "responses": [
                    {"drop": true},
                    {"status": 402, "json": {"code": 402, "message": "balance exhausted"}},
                    {"status": 524, "body": "<html>A timeout occurred</html>"},
                ],
                "task": {"outcome": "failed", "error": "policy", "queued_seconds": 0, "processing_seconds": 0}
            }),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["queued_responses"], 3);
    assert!(
        sim.create().await.is_err(),
        "the dropped create has no answer"
    );
    let r = sim.create().await.unwrap();
    assert_eq!(r.status(), 402);
    assert_eq!(sim.create().await.unwrap().status(), 524);
    let created: Value = sim.create().await.unwrap().json().await.unwrap();
    assert_eq!(created["status"], "queued");
    assert_eq!(created["model"], "grok_video3");
    let id = created["id"].as_str().unwrap();
    let (_, body) = sim.query_json(id).await;
    assert_eq!(body["status"], "failed");
    assert_eq!(body["error"], "policy");
    // Unauthorized creates are not counted as creates.
    let r = sim
        .http
        .post(format!("{}/v1/grok/videos", sim.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A slow create goes through although the client gave up.
    sim.post(
        "/_sim/create_script",
        json!({"responses": [{"delay_ms": 1000, "headers": {"X-Slow": "1"}}]}),
    )
    .await;
    let err = sim
        .http
        .post(format!("{}/v1/grok/videos", sim.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "grok_video3", "prompt": "p"}))
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        sim.stats().await["creates_accepted"],
        2,
        "created before the answer"
    );
    let r = sim.create().await.unwrap();
    assert!(r.headers().get("x-slow").is_none(), "the script is used up");
    let stats = sim.stats().await;
    assert_eq!(stats["creates"], 6);
    assert_eq!(stats["creates_accepted"], 3);
    assert_eq!(stats["unauthorized"], 1);
}

#[tokio::test]
async fn video_steps_cut_stall_and_replace_the_body() {
    let sim = Sim::start().await;
    let full = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/grok_video3_6s_480p.mp4"),
    )
    .unwrap();
    let id = sim
        .task(json!({"video_responses": [
            {"truncate_at": 100000},
            {"truncate_at": 1000, "no_content_length": true},
            {"truncate_at": 2000, "no_content_length": true, "abort": true},
            {"stall_after": 500, "delay_ms": 700},
            {"status": 200, "body": "<html>login</html>"},
            {"status": 403, "body": "<Error><Code>AccessDenied</Code></Error>", "headers": {"Content-Type": "application/xml"}},
            {"drop": true},
        ]}))
        .await;
    let url = sim.query_json(&id).await.1["video_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let get = || sim.http.get(&url).send();

    let mut r = get().await.unwrap();
    assert_eq!(r.content_length(), Some(full.len() as u64));
    let mut got = Vec::new();
    let err = loop {
        match r.chunk().await {
            Ok(Some(chunk)) => got.extend_from_slice(&chunk),
            Ok(None) => panic!("a body short of its length must fail"),
            Err(e) => break e,
        }
    };
    assert!(err.is_body() || err.is_decode(), "{err}");
    assert_eq!(
        got,
        full[..100_000],
        "exactly the first truncate_at bytes arrive"
    );

    let r = get().await.unwrap();
    assert_eq!(r.content_length(), None);
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    assert_eq!(r.bytes().await.unwrap(), full[..1000]);

    let mut r = get().await.unwrap();
    assert_eq!(r.content_length(), None);
    let mut got = 0;
    let err = loop {
        match r.chunk().await {
            Ok(Some(chunk)) => got += chunk.len(),
            Ok(None) => panic!("an aborted chunked body must fail"),
            Err(e) => break e,
        }
    };
    assert!(err.is_body() || err.is_decode(), "{err}");
    assert_eq!(got, 2000);

    let started = Instant::now();
    let r = get().await.unwrap();
    assert_eq!(r.bytes().await.unwrap(), full[..]);
    assert!(started.elapsed() >= Duration::from_millis(700));

    let r = get().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(r.text().await.unwrap(), "<html>login</html>");

    let r = get().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "application/xml");

    assert!(get().await.is_err());
    assert_eq!(get().await.unwrap().bytes().await.unwrap(), full[..]);
    // The plain path serves the file too, with no script.
    let plain = format!("{}/files/grok_video3_6s_480p.mp4", sim.url);
    assert_eq!(
        sim.http
            .get(plain)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len(),
        full.len()
    );
    let stats = sim.stats().await;
    assert_eq!(stats["video_requests"], 9);
    assert_eq!(stats["video_requests_by_task"][&id], 8);
    assert_eq!(stats["video_requests_with_auth"], 0);
}

#[tokio::test]
async fn unknown_routes_and_bad_scripts_say_what_is_wrong() {
    let sim = Sim::start().await;
    let r = sim.post("/v2/nothing", json!({})).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"message": "No handler found for POST /v2/nothing"})
    );
    for (script, says) in [
        (json!({"responses": [{"delay": 1}]}), "delay"),
        (json!({"video_responses": [{"status": 42}]}), "status"),
        (json!({"video": "missing.mp4"}), "missing.mp4"),
        (
            json!({"not_found_for_seconds": -1}),
            "not_found_for_seconds",
        ),
        (json!({"outcome": "cancelled"}), "outcome"),
    ] {
        let r = sim.post("/_sim/tasks", script.clone()).await;
        assert_eq!(r.status(), 400, "{script}");
        let message = r.json::<Value>().await.unwrap()["message"].to_string();
        assert!(message.contains(says), "{script}: {message}");
    }
    let r = sim
        .post(
            "/_sim/create_script",
            json!({"responses": [{"truncate_at": 1}]}),
        )
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_busiest_second_is_reported() {
    let sim = Sim::start().await;
    let id = sim.task(json!({})).await;
    for _ in 0..5 {
        sim.query(&id).await.unwrap();
    }
    let stats = sim.stats().await;
    let max = stats["max_queries_per_second"].as_u64().unwrap();
    assert!((3..=5).contains(&max), "{max}");
}

#[test]
fn byte_ranges_are_read_like_rfc_9110() {
    use respond::{ByteRange::*, byte_range};
    let part = |first, last| Part { first, last };
    assert_eq!(byte_range("bytes=0-", 10), part(0, 9));
    assert_eq!(byte_range("bytes=4-", 10), part(4, 9));
    assert_eq!(byte_range("bytes=4-6", 10), part(4, 6));
    assert_eq!(byte_range("bytes=4-99", 10), part(4, 9), "cut to the end");
    assert_eq!(byte_range(" Bytes = 9-9 ", 10), part(9, 9));
    assert_eq!(byte_range("bytes=-3", 10), part(7, 9));
    assert_eq!(byte_range("bytes=-30", 10), part(0, 9));
    assert_eq!(byte_range("bytes=10-", 10), Unsatisfiable);
    assert_eq!(byte_range("bytes=12-20", 10), Unsatisfiable);
    assert_eq!(byte_range("bytes=-0", 10), Unsatisfiable);
    assert_eq!(byte_range("bytes=0-", 0), Unsatisfiable);
    for ignored in [
        "bytes=0-1,4-5",
        "items=0-1",
        "bytes=5-3",
        "bytes=x-",
        "bytes=1-x",
        "bytes=-",
        "bytes",
        "",
    ] {
        assert_eq!(byte_range(ignored, 10), Whole, "{ignored:?}");
    }
}

impl Sim {
    async fn get_range(&self, url: &str, range: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(url);
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        request.send().await.unwrap()
    }

    async fn report(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/_sim/tasks/{id}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn small_video() -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/grok_video3_6s_480p.mp4"),
    )
    .unwrap()
}

#[tokio::test]
async fn video_ranges_answer_206_or_416_and_are_reported() {
    let sim = Sim::start().await;
    let full = small_video();
    let total = full.len() as u64;
    let id = sim.task(json!({})).await;
    let url = sim.query_json(&id).await.1["video_url"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = sim.get_range(&url, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert!(r.headers().get("content-range").is_none());
    assert_eq!(r.bytes().await.unwrap(), full[..]);

    let r = sim.get_range(&url, Some("bytes=500000-")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 500000-{}/{total}", total - 1).as_str()
    );
    assert_eq!(r.content_length(), Some(total - 500_000));
    assert_eq!(r.bytes().await.unwrap(), full[500_000..]);

    let r = sim.get_range(&url, Some("bytes=10-19")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 10-19/{total}").as_str()
    );
    assert_eq!(r.content_length(), Some(10));
    assert_eq!(r.bytes().await.unwrap(), full[10..20]);

    let r = sim.get_range(&url, Some("bytes=-100")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), full[full.len() - 100..]);

    let r = sim.get_range(&url, Some(&format!("bytes={total}-"))).await;
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{total}").as_str()
    );

    let r = sim.get_range(&url, Some("bytes=0-1,5-9")).await;
    assert_eq!(r.status(), 200, "several ranges: the whole file");
    assert_eq!(r.bytes().await.unwrap(), full[..]);

    let report = sim.report(&id).await;
    assert_eq!(report["video_requests"], 6);
    assert_eq!(
        report["video_ranges"],
        json!([
            "",
            "bytes=500000-",
            "bytes=10-19",
            "bytes=-100",
            format!("bytes={total}-"),
            "bytes=0-1,5-9"
        ])
    );

    // The plain path honours ranges too.
    let plain = format!("{}/files/grok_video3_6s_480p.mp4", sim.url);
    let r = sim.get_range(&plain, Some("bytes=800000-")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), full[800_000..]);
}

#[tokio::test]
async fn a_task_may_ignore_ranges() {
    let sim = Sim::start().await;
    let full = small_video();
    let id = sim.task(json!({"ignore_range": true})).await;
    let url = sim.query_json(&id).await.1["video_url"]
        .as_str()
        .unwrap()
        .to_owned();
    for range in ["bytes=500000-", "bytes=999999999-"] {
        let r = sim.get_range(&url, Some(range)).await;
        assert_eq!(r.status(), 200, "{range}");
        assert_eq!(r.headers()["accept-ranges"], "none");
        assert!(r.headers().get("content-range").is_none());
        assert_eq!(r.content_length(), Some(full.len() as u64));
        assert_eq!(r.bytes().await.unwrap(), full[..]);
    }
    assert_eq!(
        sim.report(&id).await["video_ranges"],
        json!(["bytes=500000-", "bytes=999999999-"])
    );
}

#[tokio::test]
async fn video_steps_shape_the_partial_body_and_redirect() {
    let sim = Sim::start().await;
    let full = small_video();
    let total = full.len() as u64;
    let plain = format!("{}/files/grok_video3_6s_480p.mp4", sim.url);
    let id = sim
        .task(json!({"video_responses": [
            {"truncate_at": 1000},
            {"stall_after": 1000, "delay_ms": 500},
            {"status": 200, "body": "<html>login</html>"},
            {"status": 302, "headers": {"Location": plain}, "repeat": 2},
        ]}))
        .await;
    let url = sim.query_json(&id).await.1["video_url"]
        .as_str()
        .unwrap()
        .to_owned();

    // Cut after 1000 bytes of the partial body, whose full length is announced.
    let mut r = sim.get_range(&url, Some("bytes=700000-")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.content_length(), Some(total - 700_000));
    let mut got = Vec::new();
    let err = loop {
        match r.chunk().await {
            Ok(Some(chunk)) => got.extend_from_slice(&chunk),
            Ok(None) => panic!("a partial body short of its length must fail"),
            Err(e) => break e,
        }
    };
    assert!(err.is_body() || err.is_decode(), "{err}");
    assert_eq!(got, full[700_000..701_000]);

    let started = Instant::now();
    let r = sim.get_range(&url, Some("bytes=700000-")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), full[700_000..]);
    assert!(started.elapsed() >= Duration::from_millis(500));

    // A scripted body is the answer whatever the range.
    let r = sim.get_range(&url, Some("bytes=10-")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "<html>login</html>");

    // A redirect: the client sees it, and a client that follows gets the file.
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_follow.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], plain.as_str());
    let r = sim.get_range(&url, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().as_str(), plain, "followed");
    assert_eq!(r.bytes().await.unwrap(), full[..]);
    let r = sim.get_range(&url, Some("bytes=800000-")).await;
    assert_eq!(r.status(), 206, "no step left: the normal ranged answer");
    assert_eq!(r.bytes().await.unwrap(), full[800_000..]);
    let stats = sim.stats().await;
    assert_eq!(stats["video_requests_by_task"][&id], 6);
    assert_eq!(stats["video_requests"], 7, "and the redirect's target");
    assert_eq!(stats["video_requests_with_auth"], 0);
}
