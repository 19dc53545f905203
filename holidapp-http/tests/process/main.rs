//! The real `holidapp-api` binary: the README quick start with no Redis (embedded workers),
//! Redis outages with the API left running, and the dashboard in a real browser (`browser`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use holidapp_core::testing::{RedisServer, unique_prefix};
use serde_json::{Value, json};
use tempfile::TempDir;

mod browser;

/// How long the binary may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Pause between two polls of a condition another process is working towards.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A running `holidapp-api` process, killed on drop.
struct Api {
    child: Child,
    base: String,
    logs: mpsc::Receiver<String>,
    _dir: TempDir,
}

impl Api {
    /// Starts the binary on port 0 with `env` on top of a clean configuration, and waits for the
    /// address it logs.
    fn start(env: &[(&str, &str)]) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_holidapp-api"));
        for variable in [
            "REDIS_URL",
            "REDIS_IP",
            "REDIS_PORT",
            "REDIS_DB",
            "HOLIDAPP_PREFIX",
            "DATA_SOURCE",
            "HOLIDAPP_RENDERER",
            "WORKER_IP",
            "HOLIDAPP_API_TOKEN",
            "HOLIDAPP_READ_TOKEN",
        ] {
            command.env_remove(variable);
        }
        command
            .env("HOLIDAPP_BIND", "127.0.0.1:0")
            .env("VISITS_LOG", dir.path().join("visits.log"))
            .env("LOG_LEVEL", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("holidapp-api starts");
        let stderr = child.stderr.take().unwrap();
        let (lines, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("[holidapp-api] {line}");
                }
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut api = Api {
            child,
            base: String::new(),
            logs,
            _dir: dir,
        };
        let line = api
            .wait_for_log("listening on http://", START_TIMEOUT)
            .expect("holidapp-api logs its address");
        let address = line
            .split("listening on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("an address after 'listening on'");
        api.base = format!("http://{address}");
        api
    }

    /// Waits until a log line contains `needle` and returns it.
    fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited with 0.
    fn terminate(&mut self, timeout: Duration) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "SIGTERM sent");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "holidapp-api did not stop");
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that gives up on any answer slower than `timeout`.
fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, value)
}

#[tokio::test]
async fn the_readme_quick_start_runs_on_the_binary_without_redis() {
    let mut api = Api::start(&[("HOLIDAPP_WORKER_CONCURRENCY", "2")]);
    let http = client(Duration::from_secs(30));

    let (status, loaded) = json_of(http.post(api.url("/data")).send().await.unwrap()).await;
    assert_eq!((status, loaded), (200, json!({"loaded": 266})));

    let requests = [
        (json!({"start": 1990, "end": 2000}), (800, 600)),
        (
            json!({"start": "1970", "end": "2020", "plot": {"kind": "categories"}}),
            (800, 600),
        ),
        (
            json!({"start": 2000, "end": 2010, "plot": {"width": 400, "height": 300}}),
            (400, 300),
        ),
    ];
    let mut jobs = Vec::new();
    for (params, size) in requests {
        let response = http
            .post(api.url("/jobs"))
            .json(&params)
            .send()
            .await
            .unwrap();
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let (status, job) = json_of(response).await;
        assert_eq!(status, 201, "{job}");
        assert_eq!(location, format!("/jobs/{}", job["id"].as_str().unwrap()));
        jobs.push((job, size));
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    for (job, (width, height)) in &jobs {
        let id = job["id"].as_str().unwrap();
        let finished = loop {
            let (_, now) = json_of(
                http.get(api.url(&format!("/jobs/{id}")))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            match now["status"].as_str().unwrap() {
                "complete" | "failed" => break now,
                _ => {
                    assert!(Instant::now() < deadline, "job {id} did not finish: {now}");
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            }
        };
        assert_eq!(finished["status"], "complete", "{finished}");
        assert_eq!(finished["attempts"], 1);
        assert!(finished["worker"].is_string());

        let response = http
            .get(api.url(finished["result"].as_str().unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "image/png");
        let bytes = response.bytes().await.unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()));
        let mut reader = decoder.read_info().expect("a PNG header");
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut pixels).expect("PNG pixels");
        assert_eq!((frame.width, frame.height), (*width, *height));
    }

    let (_, complete) = json_of(http.get(api.url("/completed_jobs")).send().await.unwrap()).await;
    assert_eq!(complete.as_array().unwrap().len(), 3);
    let metrics = http
        .get(api.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "holidapp_jobs_submitted_total{kind=\"plot\"} 3",
        "holidapp_jobs{queue=\"default\",status=\"complete\"} 3",
        "holidapp_embedded_worker_jobs_total{outcome=\"completed\"} 3",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }

    assert!(api.terminate(Duration::from_secs(30)), "a clean exit");
}

/// A stand-in renderer for the embedded workers changes how jobs run, never what the API
/// accepts or how it shows a plot job.
#[tokio::test]
async fn a_stand_in_renderer_keeps_the_product_checks_and_job_shape() {
    let mut api = Api::start(&[("HOLIDAPP_RENDERER", "noop")]);
    let http = client(Duration::from_secs(30));
    let submit = |body: Value| http.post(api.url("/jobs")).json(&body).send();

    let (status, refused) = json_of(
        submit(json!({"start": "2000", "end": "1990"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    let (status, refused) = json_of(submit(json!({"start": "1990"})).await.unwrap()).await;
    assert_eq!(status, 400, "{refused}");

    let (status, job) = json_of(submit(json!({"start": 1990, "end": "2000"})).await.unwrap()).await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(
        (job["start"].clone(), job["end"].clone()),
        (json!("1990"), json!("2000"))
    );
    assert_eq!(job["kind"], "plot");
    assert!(api.terminate(Duration::from_secs(30)), "a clean exit");
}

#[tokio::test]
async fn the_api_answers_503_while_redis_is_down_and_recovers_by_itself() {
    let mut redis = RedisServer::start_with_aof();
    let prefix = unique_prefix("http_redis_outage");
    let api = Api::start(&[("REDIS_URL", &redis.url()), ("HOLIDAPP_PREFIX", &prefix)]);
    // Every answer must come within 2 s, outage or not.
    let http = client(Duration::from_secs(2));

    let ready = http.get(api.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let (status, job) = json_of(
        http.post(api.url("/jobs"))
            .json(&json!({"start": 1990, "end": 2000}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    let job_url = api.url(&format!("/jobs/{}", job["id"].as_str().unwrap()));
    let (status, loaded) = json_of(http.post(api.url("/data")).send().await.unwrap()).await;
    assert_eq!((status, loaded), (200, json!({"loaded": 266})));

    redis.stop();
    assert_outage_answers(&http, &api, &job_url).await;
    redis.restart();
    assert_recovers(&http, &api, &job_url).await;
    // A second outage is handled the same way.
    redis.stop();
    assert_outage_answers(&http, &api, &job_url).await;
    redis.restart();
    assert_recovers(&http, &api, &job_url).await;
}

async fn assert_outage_answers(http: &reqwest::Client, api: &Api, job_url: &str) {
    let requests = [
        http.get(job_url),
        http.get(api.url("/jobs")),
        http.post(api.url("/jobs"))
            .json(&json!({"start": 1990, "end": 2000})),
        http.get(api.url("/genes")),
        http.get(api.url("/readyz")),
    ];
    for request in requests {
        let response = request.send().await.expect("an answer within 2 s");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "backend_unavailable", "{body}");
    }
    let health = http.get(api.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "alive while the backend is down");
}

async fn assert_recovers(http: &reqwest::Client, api: &Api, job_url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match http.get(api.url("/readyz")).send().await {
            Ok(response) if response.status() == 200 => break,
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "the API did not become ready again"
                );
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    }
    let (status, job) = json_of(http.get(job_url).send().await.unwrap()).await;
    assert_eq!(status, 200, "the job survived: {job}");
    let (status, genes) = json_of(http.get(api.url("/genes")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(genes.as_array().unwrap().len(), 266);
    let response = http
        .post(api.url("/jobs"))
        .json(&json!({"start": 1990, "end": 2000}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[test]
fn help_never_shows_the_redis_password() {
    {
        let binary = env!("CARGO_BIN_EXE_holidapp-api");
        let output = Command::new(binary)
            .arg("--help")
            .env("REDIS_URL", "redis://:s3cret-Pa55@redis.internal:6379/0")
            .output()
            .unwrap();
        assert!(output.status.success());
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(help.contains("REDIS_URL"), "{binary}: {help}");
        assert!(
            !help.contains("s3cret"),
            "{binary} shows the password:\n{help}"
        );
        assert!(
            !help.contains("redis.internal"),
            "{binary} shows the URL:\n{help}"
        );
    }
}

#[test]
fn help_lists_every_variable_of_the_configuration_table() {
    let output = Command::new(env!("CARGO_BIN_EXE_holidapp-api"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for variable in [
        "HOLIDAPP_BIND",
        "REDIS_IP",
        "REDIS_PORT",
        "REDIS_DB",
        "HOLIDAPP_PREFIX",
        "REDIS_IMAGE_DB",
        "HOLIDAPP_REDIS_WAIT_REPLICAS",
        "HOLIDAPP_REDIS_WAIT_TIMEOUT_MS",
        "HOLIDAPP_QUEUE_PARTITIONS",
        "HOLIDAPP_QUEUES",
        "WORKER_IP",
        "HOLIDAPP_WORKER_CONCURRENCY",
        "HOLIDAPP_LEASE_SECONDS",
        "HOLIDAPP_MAX_ATTEMPTS",
        "HOLIDAPP_RESULT_TTL_SECONDS",
        "HOLIDAPP_SHUTDOWN_GRACE_SECONDS",
        "HOLIDAPP_UNIQUE_TTL_SECONDS",
        "HOLIDAPP_QUEUE_MAX_WAITING",
        "HOLIDAPP_QUEUE_MAX_RESULT_BYTES",
        "HOLIDAPP_JOB_TIMEOUT_SECONDS",
        "HOLIDAPP_DATA_MAX_BYTES",
        "HOLIDAPP_DATA_MAX_RECORDS",
        "HOLIDAPP_DATA_MAX_MEMORY",
        "HOLIDAPP_HEADER_TIMEOUT_SECONDS",
        "HOLIDAPP_MAX_CONNECTIONS",
        "DATA_SOURCE",
        "VISITS_LOG",
        "LOG_LEVEL",
    ] {
        assert!(
            help.contains(&format!("[env: {variable}=")),
            "--help lacks {variable}"
        );
    }
    // REDIS_URL and the tokens are listed, without their values: they are secrets.
    for secret in [
        "REDIS_URL",
        "REDIS_CLUSTER_URLS",
        "HOLIDAPP_API_TOKEN",
        "HOLIDAPP_READ_TOKEN",
    ] {
        assert!(
            help.contains(&format!("[env: {secret}]")),
            "--help lacks {secret}"
        );
    }
    assert!(help.contains("[default: 127.0.0.1:5000]"));
    assert!(help.contains("[default: bundled:hgnc]"));
}

#[test]
fn a_bad_setting_stops_the_binary_with_a_message_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_holidapp-api"))
        .env("HOLIDAPP_BIND", "not-an-address")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not-an-address"), "{stderr}");
}

#[test]
fn a_bad_token_stops_the_binary_with_a_message_naming_it() {
    for (env, needle) in [
        (vec![("HOLIDAPP_API_TOKEN", "short")], "HOLIDAPP_API_TOKEN"),
        (
            vec![("HOLIDAPP_READ_TOKEN", "read-token-0123456789")],
            "HOLIDAPP_READ_TOKEN needs HOLIDAPP_API_TOKEN",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_holidapp-api"))
            .env("HOLIDAPP_BIND", "127.0.0.1:0")
            .env_remove("REDIS_URL")
            .env_remove("REDIS_IP")
            .env_remove("HOLIDAPP_API_TOKEN")
            .env_remove("HOLIDAPP_READ_TOKEN")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{env:?}");
        let logged = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(logged.contains(needle), "{env:?}: {logged}");
        assert!(
            !logged.contains("read-token-0123456789"),
            "the token is never logged: {logged}"
        );
    }
}

#[tokio::test]
async fn the_binary_asks_for_the_token_it_is_given() {
    let token = "process-test-token-0123456789";
    let api = Api::start(&[("HOLIDAPP_API_TOKEN", token)]);
    let http = client(Duration::from_secs(10));
    let submit = |auth: Option<&str>| {
        let mut request = http
            .post(api.url("/jobs"))
            .json(&serde_json::json!({"start": "1990", "end": "2000"}));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };
    let (status, body) = json_of(submit(None).await.unwrap()).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = json_of(submit(Some("Bearer wrong-token-0123456789")).await.unwrap()).await;
    assert_eq!(status, 401);
    let (status, body) = json_of(submit(Some(&format!("Bearer {token}"))).await.unwrap()).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = json_of(http.get(api.url("/jobs")).send().await.unwrap()).await;
    assert_eq!(status, 200, "reads stay open");
}

/// Peak resident memory of a process so far (`VmHWM`), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kib / 1024.0
}

/// The manifests give the API pod 512 MiB. Data sets as large as the default limits accept, and
/// hostile ones built to cost the most memory per byte, are loaded (or refused) by a real
/// `holidapp-api` whose peak memory stays well under that.
#[tokio::test]
async fn the_largest_data_sets_fit_the_pods_memory() {
    let limit = 32 * 1024 * 1024;
    // 100,000 records (the record limit) of one 300-byte field: accepted.
    let accepted = {
        let filler = "x".repeat(300);
        let records: Vec<String> = (0..100_000)
            .map(|i| format!(r#"{{"id":{i},"f":"{filler}"}}"#))
            .collect();
        format!("[{}]", records.join(","))
    };
    // Millions of tiny records (the issue's 8 MB of {"id":N}, grown to the size limit).
    let tiny = {
        let mut body = String::from("[");
        let mut i = 0u64;
        while body.len() < limit - 32 {
            body.push_str(&format!(r#"{{"id":{i}}},"#));
            i += 1;
        }
        body.pop();
        body.push(']');
        body
    };
    // A few records holding arrays of single digits: the most values per byte.
    let digits = {
        let per_record = (limit - 1024) / 16;
        let array = "1,".repeat(per_record);
        let records: Vec<String> = (0..8)
            .map(|i| format!(r#"{{"id":{i},"a":[{array}1]}}"#))
            .collect();
        format!("[{}]", records.join(","))
    };
    let http = client(Duration::from_secs(120));
    let mut peaks = Vec::new();
    for (name, body, expected) in [
        ("100,000 records of 300 bytes", accepted, 200),
        ("tiny records", tiny, 413),
        ("arrays of digits", digits, 413),
    ] {
        assert!(body.len() <= limit, "{name}: {} bytes", body.len());
        let mut api = Api::start(&[]);
        // Plain arrays of records are sent as bytes (as JSON, a data set is an object).
        let response = http
            .post(api.url("/data"))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{name}");
        let peak = peak_rss_mib(api.child.id());
        eprintln!("peak RSS of holidapp-api loading {name}: {peak:.0} MiB");
        peaks.push((name, peak));
        assert!(api.terminate(Duration::from_secs(30)));
    }
    for (name, peak) in peaks {
        assert!(
            peak < 384.0,
            "{name}: peak RSS {peak:.0} MiB, the pod has 512 MiB"
        );
    }
}

/// Sends `bytes` on a new connection to the API.
async fn connect_and_send(api: &Api, bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let address = api.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads until the server closes the connection; answers what it sent.
async fn read_to_close(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_disconnected() {
    let mut api = Api::start(&[("HOLIDAPP_HEADER_TIMEOUT_SECONDS", "1")]);
    let mut slow = connect_and_send(&api, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    let closed = tokio::time::timeout(Duration::from_secs(30), read_to_close(&mut slow)).await;
    assert!(closed.is_ok(), "the server kept a half-sent request open");
    // Others are served all along.
    let http = client(Duration::from_secs(10));
    assert_eq!(
        http.get(api.url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert!(api.terminate(Duration::from_secs(30)));
}

#[tokio::test]
async fn a_slow_client_does_not_hold_up_a_shutdown() {
    let mut api = Api::start(&[("HOLIDAPP_HEADER_TIMEOUT_SECONDS", "600")]);
    let _slow = connect_and_send(&api, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    let http = client(Duration::from_secs(10));
    assert_eq!(
        http.get(api.url("/healthz")).send().await.unwrap().status(),
        200
    );
    // The shutdown grace (10 s) bounds it; the header timeout (10 minutes) does not.
    assert!(api.terminate(Duration::from_secs(30)), "a clean exit");
}

#[tokio::test]
async fn an_open_event_stream_ends_when_the_server_shuts_down() {
    let mut api = Api::start(&[]);
    let http = client(Duration::from_secs(60));
    let mut stream = http.get(api.url("/events")).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let first = stream.chunk().await.unwrap().expect("a first message");
    assert!(
        String::from_utf8_lossy(&first).contains("event: ping"),
        "{first:?}"
    );
    assert!(api.terminate(Duration::from_secs(30)), "a clean exit");
    // The stream ended with the shutdown: the grace period had no connection left to drop.
    let mut logs = Vec::new();
    while let Ok(line) = api.logs.recv_timeout(Duration::from_secs(30)) {
        let last = line.ends_with("stopped");
        logs.push(line);
        if last {
            break;
        }
    }
    assert!(
        logs.iter().any(|l| l.ends_with("stopped")),
        "the server logs its stop: {logs:?}"
    );
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("after the shutdown grace period")),
        "{logs:?}"
    );
    while let Ok(Some(_)) = stream.chunk().await {}
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let api = Api::start(&[("HOLIDAPP_MAX_CONNECTIONS", "1")]);
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut first = connect_and_send(&api, request).await;
    let mut buf = [0u8; 512];
    let n = tokio::io::AsyncReadExt::read(&mut first, &mut buf)
        .await
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // The first connection stays open (keep-alive): the second waits in the listen queue.
    let mut second = connect_and_send(&api, request).await;
    let mut early = [0u8; 64];
    let waited = tokio::time::timeout(
        Duration::from_millis(300),
        tokio::io::AsyncReadExt::read(&mut second, &mut early),
    )
    .await;
    assert!(waited.is_err(), "a connection past the cap was served");
    drop(first);
    let n = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::AsyncReadExt::read(&mut second, &mut buf),
    )
    .await
    .expect("served once the first closed")
    .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
}

/// One Server-Sent Event as a client sees it.
#[derive(Debug, Clone)]
struct Sse {
    id: String,
    event: String,
    data: Value,
}

/// An open `GET /events` stream.
struct EventStream {
    events: std::pin::Pin<
        Box<
            dyn futures::Stream<
                    Item = Result<
                        eventsource_stream::Event,
                        eventsource_stream::EventStreamError<reqwest::Error>,
                    >,
                > + Send,
        >,
    >,
    /// The id of the last message received, as a browser keeps it for `Last-Event-ID`.
    last_id: String,
}

impl EventStream {
    async fn open(api: &Api, query: &str, last_event_id: Option<&str>) -> EventStream {
        use eventsource_stream::Eventsource;
        let mut request = reqwest::Client::new().get(api.url(&format!("/events{query}")));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("GET /events");
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let mut stream = EventStream {
            events: Box::pin(response.bytes_stream().eventsource()),
            last_id: String::new(),
        };
        // The first message is the resume point, as a ping.
        let first = stream.message().await.expect("a first message");
        assert_eq!(first.event, "ping", "{first:?}");
        stream
    }

    /// The next message (an event, or a resume point alone), within 10 s.
    async fn message(&mut self) -> Option<Sse> {
        use futures::StreamExt;
        let next = tokio::time::timeout(Duration::from_secs(10), self.events.next())
            .await
            .expect("a message within 10 s")?;
        let event = next.expect("a well-formed message");
        if !event.id.is_empty() {
            self.last_id = event.id.clone();
        }
        let kind = if event.event == "message" {
            String::new()
        } else {
            event.event
        };
        Some(Sse {
            id: event.id,
            event: kind,
            data: serde_json::from_str(&event.data).unwrap_or(Value::Null),
        })
    }

    /// The next `n` job events.
    async fn jobs(&mut self, n: usize) -> Vec<Sse> {
        let mut got = Vec::new();
        while got.len() < n {
            let message = self.message().await.expect("the stream goes on");
            if message.event == "job" {
                got.push(message);
            }
        }
        got
    }
}

/// Submits `body` to `POST /jobs`, with `token` as a bearer token when given, and answers the
/// new job's id.
async fn submit_body(
    http: &reqwest::Client,
    api: &Api,
    body: &Value,
    token: Option<&str>,
) -> String {
    let mut request = http.post(api.url("/jobs")).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let (status, job) = json_of(request.send().await.unwrap()).await;
    assert_eq!(status, 201, "{job}");
    job["id"].as_str().unwrap().to_owned()
}

/// Submits a plot job to `queue` through the API and answers its id.
async fn submit_to(http: &reqwest::Client, api: &Api, queue: &str) -> String {
    let body = json!({"kind": "plot", "params": {"start": 1990, "end": 2000}, "queue": queue});
    submit_body(http, api, &body, None).await
}

/// Follows the events, disconnects mid-stream, and resumes with `Last-Event-ID`: every event
/// of the time away arrives once, none seen before arrives again, and the stream goes on live.
async fn events_resume_after_a_disconnect(api: &Api) {
    let http = client(Duration::from_secs(10));
    // A queue no worker serves: the jobs' only events are the ones this test makes.
    let queue = "held";
    let mut stream = EventStream::open(api, &format!("?queue={queue}"), None).await;
    let mut first = Vec::new();
    for _ in 0..5 {
        first.push(submit_to(&http, api, queue).await);
    }
    let seen = stream.jobs(5).await;
    let seen_jobs: Vec<&str> = seen
        .iter()
        .map(|e| e.data["job"].as_str().unwrap())
        .collect();
    assert_eq!(
        seen_jobs,
        first.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for e in &seen {
        assert!(
            !e.id.is_empty(),
            "each event carries its resume point: {e:?}"
        );
        assert_eq!(e.data["status"], "submitted");
        assert_eq!(e.data["queue"], queue);
        assert_eq!(e.data["kind"], "plot");
    }
    let resume = stream.last_id.clone();
    drop(stream);

    // While away: five more jobs, two of the first cancelled, and a job of another queue the
    // filter leaves out.
    let mut away = Vec::new();
    for _ in 0..5 {
        let id = submit_to(&http, api, queue).await;
        away.push((id, "submitted"));
    }
    for id in &first[..2] {
        let r = http
            .post(api.url(&format!("/jobs/{id}/cancel")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        away.push((id.clone(), "cancelled"));
    }
    submit_to(&http, api, "other").await;

    let mut stream = EventStream::open(api, &format!("?queue={queue}"), Some(&resume)).await;
    let got = stream.jobs(away.len()).await;
    let got: Vec<(String, String)> = got
        .iter()
        .map(|e| {
            (
                e.data["job"].as_str().unwrap().to_owned(),
                e.data["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = away
        .iter()
        .map(|(id, s)| (id.clone(), (*s).to_owned()))
        .collect();
    assert_eq!(
        got, expected,
        "every event of the time away, once, in order"
    );
    // Nothing else is pending, and the stream is live again.
    let live = submit_to(&http, api, queue).await;
    let next = stream.jobs(1).await;
    assert_eq!(
        next[0].data["job"],
        live.as_str(),
        "no repeat before the live event"
    );

    // The same resume point read without following answers the same events and ends.
    let text = http
        .get(api.url(&format!("/events?queue={queue}&follow=false")))
        .header("last-event-id", &resume)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text.matches("event: job").count(), away.len() + 1, "{text}");
    // A resume point that is not one is refused.
    let bad = http
        .get(api.url("/events"))
        .header("last-event-id", "default:1-2")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn events_resume_after_a_disconnect_in_memory() {
    let api = Api::start(&[]);
    events_resume_after_a_disconnect(&api).await;
}

#[tokio::test]
async fn events_resume_after_a_disconnect_on_redis() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("http_events_resume");
    let api = Api::start(&[("REDIS_URL", &redis.url()), ("HOLIDAPP_PREFIX", &prefix)]);
    events_resume_after_a_disconnect(&api).await;
}
