//! The Kubernetes manifests, run as local processes.
//!
//! There is no cluster here, so this test does what the kubelet would do with the rendered base
//! (`kubectl kustomize deploy/k8s/base`): it takes the API and worker containers' command and
//! environment exactly as the manifests give them, on top of the image's own `ENV` lines from
//! `deploy/Dockerfile`, and starts them as processes next to a real `redis-server`. Like the
//! kubelet, it resolves ConfigMap, Secret and downward-API references and expands `$(VAR)` in env
//! values and args (a variable defined before, in the container's `envFrom` or `env`). Only what a
//! cluster provides is translated:
//!
//! * the Redis password Secret is generated from a file that is never committed: the base is
//!   rendered from a copy whose file holds a random password, which `redis-server` requires;
//! * a Service's DNS name becomes `127.0.0.1`, and port numbers become free local ports (Redis's
//!   port, in `REDIS_PORT` and `REDIS_URL`, and the API's listen port);
//! * a volume's mount path becomes a temporary directory of that pod;
//! * `status.podIP` (downward API) becomes a distinct loopback address per pod.
//!
//! Then it loads the bundled data, runs jobs through the two workers, and fetches a PNG. A
//! variable renamed in a binary but not in the manifests, a wrong command, a missing volume for the
//! visits log, a Redis host that is not a Service or a `REDIS_URL` without the Secret's password
//! makes this test fail.
//!
//! Needs `kubectl` (with its built-in kustomize) on `PATH`, or its path in `KUBECTL`;
//! `deploy/check.sh` installs one under the target directory when there is none, and this test
//! finds it there too. Both binaries must be built (`cargo build --workspace --bins`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use holidapp_core::testing::{RedisServer, RedisServerOptions};
use serde_json::{Value, json};

/// How long the processes get to become ready, and the jobs to complete.
const DEADLINE: Duration = Duration::from_secs(60);
/// Pause between two polls of another process's state.
const POLL: Duration = Duration::from_millis(50);
/// How many jobs go through the workers.
const JOBS: usize = 6;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_path_buf()
}

/// The directory holding the workspace's binaries.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_holidapp-api"))
        .parent()
        .expect("a binary sits in a directory")
        .to_path_buf()
}

/// `kubectl`: `$KUBECTL`, else the one on `PATH`, else the one `deploy/check.sh` installs.
fn kubectl() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBECTL") {
        return PathBuf::from(path);
    }
    let on_path = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return PathBuf::from("kubectl");
    }
    let installed = bin_dir()
        .parent()
        .expect("the profile directory sits in the target directory")
        .join("deploy-tools/kubectl");
    assert!(
        installed.exists(),
        "kubectl is needed to render the manifests: install it, set KUBECTL, or run \
         deploy/check.sh (which installs one in {})",
        installed.display()
    );
    installed
}

/// Runs a command with `input` on its standard input and returns its standard output.
fn run(command: &mut Command, input: &[u8]) -> Vec<u8> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input)
        .expect("write to the command's input");
    let out = child.wait_with_output().expect("wait for the command");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Every object of the rendered base, as JSON (an empty merge patch applied offline turns
/// kustomize's YAML into JSON without a YAML parser). The base generates the Redis password and
/// API token Secrets from `redis-password.env` and `api-token.env`, which are never committed:
/// this renders a copy of the base whose files hold `redis_password` and `api_token`.
fn render_base(redis_password: &str, api_token: &str) -> Vec<Value> {
    let kubectl = kubectl();
    let copy = tempfile::tempdir().expect("a temporary directory");
    let base = copy.path();
    let source = repo_root().join("deploy/k8s/base");
    for entry in std::fs::read_dir(&source).expect("read the base") {
        let path = entry.expect("a directory entry").path();
        if path.is_file() {
            let name = path.file_name().expect("a file name");
            std::fs::copy(&path, base.join(name)).expect("copy the base");
        }
    }
    std::fs::write(
        base.join("redis-password.env"),
        format!("REDIS_PASSWORD={redis_password}\n"),
    )
    .expect("write the password file");
    std::fs::write(
        base.join("api-token.env"),
        format!("HOLIDAPP_API_TOKEN={api_token}\n"),
    )
    .expect("write the token file");
    let yaml = run(Command::new(&kubectl).arg("kustomize").arg(base), b"");
    let json = run(
        Command::new(&kubectl).args([
            "patch", "--local", "-f", "-", "--type", "merge", "-p", "{}", "-o", "json",
        ]),
        &yaml,
    );
    serde_json::Deserializer::from_slice(&json)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("kubectl prints JSON objects")
}

/// The `ENV` lines of the Dockerfile's last stage (the runtime image): the environment every
/// container starts from.
fn image_env() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo_root().join("deploy/Dockerfile"))
        .expect("read deploy/Dockerfile");
    let joined = text.replace("\\\n", " ");
    let mut env = BTreeMap::new();
    for line in joined.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            env.clear();
        } else if let Some(rest) = line.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (name, value) = pair.split_once('=').unwrap_or_else(|| {
                    panic!("ENV {pair}: only NAME=VALUE pairs are understood here")
                });
                assert!(
                    !value.contains('"'),
                    "ENV {pair}: quoted values are not understood here"
                );
                env.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    env
}

/// Kubernetes' `$(VAR)` expansion: a variable defined in `vars` is replaced by its value, an
/// undefined one is left as written, and `$$` is a literal `$`.
fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some((name, after)) = rest.strip_prefix('(').and_then(|r| r.split_once(')')) {
            match vars.get(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(&format!("$({name})")),
            }
            rest = after;
        } else {
            out.push('$');
        }
    }
    out.push_str(rest);
    out
}

/// A Secret's `data` value, decoded from standard base64.
fn decode_base64(text: &str) -> String {
    const DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = Vec::new();
    let (mut bits, mut width) = (0_usize, 0_u32);
    for c in text.trim_end_matches('=').bytes() {
        let digit = DIGITS
            .iter()
            .position(|&d| d == c)
            .unwrap_or_else(|| panic!("{text:?} is not base64"));
        bits = ((bits << 6) | digit) & 0xfff;
        width += 6;
        if width >= 8 {
            width -= 8;
            bytes.push((bits >> width) as u8);
        }
    }
    String::from_utf8(bytes).expect("a UTF-8 Secret value")
}

/// The rendered objects, indexed the way the kubelet resolves references.
struct Cluster {
    objects: Vec<Value>,
    /// Every name a pod may reach a Service by.
    service_names: Vec<String>,
}

impl Cluster {
    fn new(objects: Vec<Value>) -> Self {
        let mut service_names = Vec::new();
        for s in objects.iter().filter(|o| o["kind"] == "Service") {
            let name = s["metadata"]["name"]
                .as_str()
                .expect("a Service has a name");
            let ns = s["metadata"]["namespace"].as_str().unwrap_or("default");
            for suffix in ["", ".svc", ".svc.cluster.local"] {
                service_names.push(format!("{name}.{ns}{suffix}"));
            }
            service_names.push(name.to_owned());
        }
        Cluster {
            objects,
            service_names,
        }
    }

    fn find(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("the rendered base has no {kind} {name}"))
    }

    fn configmap(&self, name: &str) -> &serde_json::Map<String, Value> {
        self.find("ConfigMap", name)["data"]
            .as_object()
            .unwrap_or_else(|| panic!("ConfigMap {name} has no data"))
    }

    /// The container of a Deployment: its command (command then args) and its environment
    /// (image, then envFrom, then env), with `status.podIP` given as `pod_ip` and `$(VAR)`
    /// expanded.
    fn container(
        &self,
        deployment: &str,
        pod_ip: &str,
    ) -> (Vec<String>, BTreeMap<String, String>, Vec<String>) {
        let pod = &self.find("Deployment", deployment)["spec"]["template"]["spec"];
        let containers = pod["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 1, "{deployment}: one container expected");
        let c = &containers[0];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| s.as_str().expect("a string").to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut command = strings(&c["command"]);
        command.extend(strings(&c["args"]));
        assert!(
            !command.is_empty(),
            "{deployment}: the manifest must name the binary it runs"
        );

        // What the kubelet sets, in order: an env value's `$(VAR)` refers to a variable defined
        // before it, the command's to any. The image's ENV lines lie beneath, unseen by both.
        let mut defined = BTreeMap::new();
        for from in c["envFrom"].as_array().into_iter().flatten() {
            let name = from["configMapRef"]["name"]
                .as_str()
                .expect("envFrom is a ConfigMap");
            let prefix = from["prefix"].as_str().unwrap_or("");
            for (key, value) in self.configmap(name) {
                defined.insert(
                    format!("{prefix}{key}"),
                    value.as_str().expect("string data").to_owned(),
                );
            }
        }
        for var in c["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().expect("env name").to_owned();
            let value = if let Some(v) = var["value"].as_str() {
                expand(v, &defined)
            } else if let Some(field) = var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                assert_eq!(
                    field, "status.podIP",
                    "{deployment}: {name}: only status.podIP is simulated"
                );
                pod_ip.to_owned()
            } else if let Some(key_ref) = var["valueFrom"]["configMapKeyRef"].as_object() {
                let cm = self.configmap(key_ref["name"].as_str().expect("name"));
                cm[key_ref["key"].as_str().expect("key")]
                    .as_str()
                    .expect("string")
                    .to_owned()
            } else if let Some(key_ref) = var["valueFrom"]["secretKeyRef"].as_object() {
                let secret = self.find("Secret", key_ref["name"].as_str().expect("name"));
                let key = key_ref["key"].as_str().expect("key");
                let encoded = secret["data"][key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{deployment}: {name}: the Secret has no {key}"));
                decode_base64(encoded)
            } else {
                panic!("{deployment}: {name}: unsupported value source {var}");
            };
            defined.insert(name, value);
        }
        let command = command.iter().map(|arg| expand(arg, &defined)).collect();
        let mut env = image_env();
        env.extend(defined);
        let mounts = c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["mountPath"].as_str().expect("mountPath").to_owned())
            .collect();
        (command, env, mounts)
    }
}

/// A process started by this test, killed when dropped; its output goes to a log file that a
/// failing test prints.
struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn log(&self) -> String {
        format!(
            "---- {} ----\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One pod as a local process.
struct Pod<'a> {
    name: &'a str,
    deployment: &'a str,
    pod_ip: &'a str,
}

/// Starts one pod's container: the manifest's command and environment, translated as the module
/// doc says. Returns the process and its final environment.
fn start_pod(
    cluster: &Cluster,
    pod: Pod<'_>,
    redis_port: u16,
    root: &Path,
) -> (Process, BTreeMap<String, String>) {
    let (command, mut env, mounts) = cluster.container(pod.deployment, pod.pod_ip);
    let pod_dir = root.join(pod.name);
    for (name, value) in env.iter_mut() {
        if cluster.service_names.iter().any(|s| s == value) {
            *value = "127.0.0.1".to_owned();
        }
        for mount in &mounts {
            if let Some(rest) = value.strip_prefix(mount.as_str()) {
                let local = pod_dir.join(mount.trim_start_matches('/'));
                std::fs::create_dir_all(&local).expect("create the volume's directory");
                *value = format!("{}{rest}", local.display());
            }
        }
        match name.as_str() {
            "REDIS_PORT" => *value = redis_port.to_string(),
            "HOLIDAPP_BIND" => {
                let (host, _) = value.rsplit_once(':').expect("HOLIDAPP_BIND is HOST:PORT");
                *value = format!("{host}:{}", free_port());
            }
            "REDIS_URL" => {
                // redis://[user:password@]HOST[:PORT][/DB]: HOST must be a Service; it and the
                // port become the local server's.
                let at = value.rfind('@').map_or("redis://".len(), |at| at + 1);
                let (start, rest) = value.split_at(at);
                let (host, db) = rest.split_once('/').unwrap_or((rest, ""));
                let host = host.split_once(':').map_or(host, |(host, _)| host);
                assert!(
                    cluster.service_names.iter().any(|s| s == host),
                    "{}: REDIS_URL's host {host:?} is not a Service",
                    pod.deployment
                );
                *value = format!("{start}127.0.0.1:{redis_port}/{db}");
            }
            _ => {}
        }
    }
    assert!(
        env.contains_key("REDIS_URL"),
        "{}: REDIS_URL is not set, so Redis gets no password",
        pod.deployment
    );
    if !env.contains_key("REDIS_PORT") {
        env.insert("REDIS_PORT".to_owned(), redis_port.to_string());
    }

    // The image's binaries live in /usr/local/bin; here, in the target directory.
    let program = bin_dir().join(Path::new(&command[0]).file_name().expect("a binary name"));
    assert!(
        program.exists(),
        "{} is not built: run `cargo build --workspace --bins` first",
        program.display()
    );
    std::fs::create_dir_all(&pod_dir).expect("create the pod's directory");
    let log = pod_dir.join("output.log");
    let out = File::create(&log).expect("create the log file");
    let child = Command::new(&program)
        .args(&command[1..])
        .env_clear()
        .envs(&env)
        .current_dir(&pod_dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("clone the log file"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let process = Process {
        name: pod.name.to_owned(),
        child,
        log,
    };
    (process, env)
}

/// Polls `check` until it returns `Some`, or panics with the processes' logs at the deadline.
async fn wait_for<T, F, Fut>(what: &str, processes: &[&Process], mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = processes.iter().map(|p| p.log()).collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_base_manifests_run_jobs_through_two_workers() {
    // The password of the base's Secret, which Redis requires as in the cluster.
    let redis_password = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let api_token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let bearer = format!("Bearer {api_token}");
    let cluster = Cluster::new(render_base(&redis_password, &api_token));
    let redis = RedisServer::start_with(RedisServerOptions {
        password: Some(redis_password),
        ..RedisServerOptions::default()
    });
    let root = tempfile::tempdir().expect("a temporary directory");

    let worker_ips = ["127.0.0.2", "127.0.0.3"];
    let (api, api_env) = start_pod(
        &cluster,
        Pod {
            name: "api-0",
            deployment: "holidapp-api",
            pod_ip: "127.0.0.1",
        },
        redis.port(),
        root.path(),
    );
    let mut workers: Vec<Process> = worker_ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let name = format!("worker-{i}");
            start_pod(
                &cluster,
                Pod {
                    name: &name,
                    deployment: "holidapp-worker",
                    pod_ip: ip,
                },
                redis.port(),
                root.path(),
            )
            .0
        })
        .collect();
    let all: Vec<&Process> = std::iter::once(&api).chain(workers.iter()).collect();

    let port = api_env["HOLIDAPP_BIND"]
        .rsplit_once(':')
        .expect("HOST:PORT")
        .1;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");

    // Ready means Redis answered the API: the manifests' Redis host and port reached it.
    wait_for("the API's /readyz", &all, || {
        let request = http.get(format!("{base}/readyz"));
        async move {
            request
                .send()
                .await
                .ok()?
                .status()
                .is_success()
                .then_some(())
        }
    })
    .await;
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    assert!(
        health.status().is_success(),
        "/healthz answered {}",
        health.status()
    );

    // The visits log goes where VISITS_LOG points: the pod's /data volume.
    let visit = http.get(format!("{base}/")).send().await.expect("GET /");
    assert!(
        visit.status().is_success(),
        "GET / answered {}",
        visit.status()
    );
    let visits_log = PathBuf::from(&api_env["VISITS_LOG"]);
    assert!(
        visits_log.starts_with(root.path().join("api-0/data")),
        "VISITS_LOG {} is not on the pod's /data volume",
        visits_log.display()
    );
    let logged = std::fs::read_to_string(&visits_log).expect("the visits log was written");
    assert_eq!(logged.lines().count(), 1, "one visit, one line: {logged:?}");

    // The API takes its token from the Secret: a write without it is refused.
    let refused = http
        .post(format!("{base}/data"))
        .send()
        .await
        .expect("POST /data");
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);

    // Data from the configured source (DATA_SOURCE, else the bundled sample).
    let loaded = http
        .post(format!("{base}/data"))
        .header("authorization", &bearer)
        .send()
        .await
        .expect("POST /data");
    let status = loaded.status();
    let body: Value = loaded.json().await.expect("POST /data answers JSON");
    assert!(status.is_success(), "POST /data answered {status}: {body}");

    let mut ids = Vec::new();
    for _ in 0..JOBS {
        let r = http
            .post(format!("{base}/jobs"))
            .header("authorization", &bearer)
            .json(&json!({"start": 1900, "end": 2025}))
            .send()
            .await
            .expect("POST /jobs");
        let status = r.status();
        let job: Value = r.json().await.expect("a job as JSON");
        assert_eq!(status, reqwest::StatusCode::CREATED, "POST /jobs: {job}");
        ids.push(job["id"].as_str().expect("a job id").to_owned());
    }

    let mut taken_by = BTreeMap::<String, usize>::new();
    for id in &ids {
        let job = wait_for(&format!("job {id} to complete"), &all, || {
            let request = http.get(format!("{base}/jobs/{id}"));
            async move {
                let job: Value = request.send().await.ok()?.json().await.ok()?;
                match job["status"].as_str() {
                    Some("complete") => Some(job),
                    Some("failed") => panic!("job failed: {job}"),
                    _ => None,
                }
            }
        })
        .await;
        let worker = job["worker"]
            .as_str()
            .unwrap_or_else(|| panic!("no worker on {job}"));
        assert!(
            worker_ips.contains(&worker),
            "job {id} was run by {worker:?}, not by one of the worker pods {worker_ips:?}"
        );
        *taken_by.entry(worker.to_owned()).or_default() += 1;
    }
    eprintln!("jobs per worker: {taken_by:?}");

    let result = http
        .get(format!("{base}/jobs/{}/result", ids[0]))
        .send()
        .await
        .expect("GET the result");
    assert_eq!(result.status(), reqwest::StatusCode::OK);
    assert_eq!(
        result
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/png")
    );
    let bytes = result.bytes().await.expect("the PNG");
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()));
    let reader = decoder.read_info().expect("a valid PNG");
    let info = reader.info();
    assert!(
        info.width >= 100 && info.height >= 100,
        "a real plot, not {}x{}",
        info.width,
        info.height
    );
    // The worker registry: both worker pods, by the identity the manifests give them, whose
    // counts add up to the jobs done.
    let all: Vec<&Process> = std::iter::once(&api).chain(workers.iter()).collect();
    let registry = wait_for(
        "both workers in GET /workers with every job counted",
        &all,
        || {
            let request = http.get(format!("{base}/workers"));
            async move {
                let listed: Value = request.send().await.ok()?.json().await.ok()?;
                let entries = listed.as_array()?;
                let done: u64 = entries.iter().filter_map(|w| w["completed"].as_u64()).sum();
                (entries.len() == 2 && done == JOBS as u64).then_some(listed)
            }
        },
    )
    .await;
    let entries = registry.as_array().expect("a list");
    let mut identities: Vec<&str> = entries
        .iter()
        .map(|w| w["identity"].as_str().unwrap())
        .collect();
    identities.sort_unstable();
    assert_eq!(identities, worker_ips, "{registry}");
    for w in entries {
        assert_eq!(w["queues"], json!(["default"]), "{w}");
        assert_eq!(w["concurrency"], 2, "{w}");
        assert_eq!(w["in_flight"], 0, "{w}");
        let ip = w["identity"].as_str().unwrap();
        assert_eq!(
            w["completed"].as_u64().unwrap(),
            taken_by.get(ip).copied().unwrap_or(0) as u64,
            "the registry counts what the jobs say {ip} did: {registry}"
        );
    }
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics");
    assert!(
        metrics.lines().any(|l| l == "holidapp_workers 2"),
        "{metrics}"
    );

    // A worker killed with SIGKILL cannot leave: its entry is gone once it has missed its
    // beats (6 s after the last one, which is at most 2 s before the kill).
    workers[0].child.kill().expect("SIGKILL the first worker");
    workers[0].child.wait().expect("the killed worker");
    let killed = Instant::now();
    let limit = holidapp_core::workers::ENTRY_TTL + holidapp_core::workers::BEAT_INTERVAL;
    loop {
        let listed: Value = http
            .get(format!("{base}/workers"))
            .send()
            .await
            .expect("GET /workers")
            .json()
            .await
            .expect("JSON");
        let left: Vec<&str> = listed
            .as_array()
            .expect("a list")
            .iter()
            .map(|w| w["identity"].as_str().unwrap())
            .collect();
        if left == [worker_ips[1]] {
            break;
        }
        assert!(
            killed.elapsed() < limit + Duration::from_secs(2),
            "the killed worker is still listed {:?} after its kill: {listed}",
            killed.elapsed()
        );
        tokio::time::sleep(POLL).await;
    }
    eprintln!(
        "the killed worker left GET /workers after {:?}",
        killed.elapsed()
    );
}
