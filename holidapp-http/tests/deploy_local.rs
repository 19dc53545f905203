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
//! Then it loads the bundled data, runs jobs through the two workers, and fetches a PNG. A second
//! test does the same with the `redis-cluster` overlay, on six `redis-server` nodes started with
//! its StatefulSet's arguments and formed into a cluster by its Job's script. A
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

/// Copies the folder `from` into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a folder");
    for entry in std::fs::read_dir(from).expect("read a folder") {
        let path = entry.expect("a directory entry").path();
        let target = to.join(path.file_name().expect("a file name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy a file");
        }
    }
}

/// Every object of the rendered `variant` of `deploy/k8s` (`base`, `overlays/redis-cluster`), as
/// JSON (an empty merge patch applied offline turns kustomize's YAML into JSON without a YAML
/// parser). The base generates the Redis password and API token Secrets from
/// `redis-password.env` and `api-token.env`, which are never committed: this renders a copy of
/// `deploy/k8s` whose files hold `redis_password` and `api_token`.
fn render(variant: &str, redis_password: &str, api_token: &str) -> Vec<Value> {
    let kubectl = kubectl();
    let copy = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&repo_root().join("deploy/k8s"), copy.path());
    let base = copy.path().join("base");
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
    let yaml = run(
        Command::new(&kubectl)
            .arg("kustomize")
            .arg(copy.path().join(variant)),
        b"",
    );
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
    /// Every name a pod may reach a Service by, or a StatefulSet's pod through its headless
    /// Service (`NAME-0.SERVICE`).
    service_names: Vec<String>,
}

impl Cluster {
    fn new(objects: Vec<Value>) -> Self {
        let mut service_names = Vec::new();
        let mut add = |name: String, ns: &str| {
            for suffix in ["", ".svc", ".svc.cluster.local"] {
                service_names.push(format!("{name}.{ns}{suffix}"));
            }
            service_names.push(name);
        };
        for o in &objects {
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            let ns = o["metadata"]["namespace"].as_str().unwrap_or("default");
            if o["kind"] == "Service" {
                add(name.to_owned(), ns);
            } else if let ("StatefulSet", Some(service)) = (
                o["kind"].as_str().unwrap_or_default(),
                o["spec"]["serviceName"].as_str(),
            ) {
                for i in 0..o["spec"]["replicas"].as_u64().unwrap_or(1) {
                    add(format!("{name}-{i}.{service}"), ns);
                }
            }
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
            .unwrap_or_else(|| panic!("the rendered manifests have no {kind} {name}"))
    }

    fn configmap(&self, name: &str) -> &serde_json::Map<String, Value> {
        self.find("ConfigMap", name)["data"]
            .as_object()
            .unwrap_or_else(|| panic!("ConfigMap {name} has no data"))
    }

    /// The container of a workload (`kind` and name): its command (command then args) and its
    /// environment (image, then envFrom, then env), with the downward API's fields taken from
    /// `fields` (`status.podIP`, `metadata.name`) and `$(VAR)` expanded.
    fn container(
        &self,
        kind: &str,
        deployment: &str,
        fields: &[(&str, &str)],
    ) -> (Vec<String>, BTreeMap<String, String>, Vec<String>) {
        let pod = &self.find(kind, deployment)["spec"]["template"]["spec"];
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
                let (_, value) = fields
                    .iter()
                    .find(|(f, _)| *f == field)
                    .unwrap_or_else(|| panic!("{deployment}: {name}: {field} is not simulated"));
                (*value).to_owned()
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

/// Where the pods' Redis runs here: one server's port, or each cluster node's port by the name
/// of its pod.
enum LocalRedis<'a> {
    Server(u16),
    Nodes(&'a BTreeMap<String, u16>),
}

impl LocalRedis<'_> {
    /// The local port of the Redis a manifest names by `host`, a Service or a node's DNS name.
    fn port(&self, host: &str) -> u16 {
        match self {
            LocalRedis::Server(port) => *port,
            LocalRedis::Nodes(ports) => ports
                .iter()
                .find(|(pod, _)| host == pod.as_str() || host.starts_with(&format!("{pod}.")))
                .map(|(_, port)| *port)
                .unwrap_or_else(|| panic!("{host} is no node of the Redis Cluster")),
        }
    }
}

/// `redis://[user:password@]HOST[:PORT][/DB]` pointed at the local Redis: HOST must be a Service
/// (or a StatefulSet pod behind one), and becomes `127.0.0.1` with the local port.
fn local_url(cluster: &Cluster, redis: &LocalRedis<'_>, url: &str, deployment: &str) -> String {
    let at = url.rfind('@').map_or("redis://".len(), |at| at + 1);
    let (start, rest) = url.split_at(at);
    let (host, db) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.split_once(':').map_or(host, |(host, _)| host);
    assert!(
        cluster.service_names.iter().any(|s| s == host),
        "{deployment}: the Redis host {host:?} of {url:?} is not a Service"
    );
    format!("{start}127.0.0.1:{}/{db}", redis.port(host))
}

/// Starts one pod's container: the manifest's command and environment, translated as the module
/// doc says. Returns the process and its final environment.
fn start_pod(
    cluster: &Cluster,
    pod: Pod<'_>,
    redis: &LocalRedis<'_>,
    root: &Path,
) -> (Process, BTreeMap<String, String>) {
    let (command, mut env, mounts) = cluster.container(
        "Deployment",
        pod.deployment,
        &[("status.podIP", pod.pod_ip)],
    );
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
            "REDIS_PORT" => *value = redis.port("").to_string(),
            "HOLIDAPP_BIND" => {
                let (host, _) = value.rsplit_once(':').expect("HOLIDAPP_BIND is HOST:PORT");
                *value = format!("{host}:{}", free_port());
            }
            "REDIS_URL" => *value = local_url(cluster, redis, value, pod.deployment),
            "REDIS_CLUSTER_URLS" => {
                let urls: Vec<String> = value
                    .split(',')
                    .map(|url| local_url(cluster, redis, url.trim(), pod.deployment))
                    .collect();
                *value = urls.join(",");
            }
            _ => {}
        }
    }
    assert!(
        env.contains_key("REDIS_URL") || env.contains_key("REDIS_CLUSTER_URLS"),
        "{}: neither REDIS_URL nor REDIS_CLUSTER_URLS is set, so Redis gets no password",
        pod.deployment
    );

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

/// The API of a pod started by [`start_pod`], with the token the manifests give it.
struct Api {
    http: reqwest::Client,
    base: String,
    bearer: String,
}

impl Api {
    /// The API listening where `HOLIDAPP_BIND` of `env` says.
    fn new(env: &BTreeMap<String, String>) -> Self {
        let port = env["HOLIDAPP_BIND"].rsplit_once(':').expect("HOST:PORT").1;
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            base: format!("http://127.0.0.1:{port}"),
            bearer: format!("Bearer {}", env["HOLIDAPP_API_TOKEN"]),
        }
    }

    /// Waits for `/readyz`: Redis answered the API, so the manifests' Redis settings reached it.
    async fn ready(&self, all: &[&Process]) {
        wait_for("the API's /readyz", all, || {
            let request = self.http.get(format!("{}/readyz", self.base));
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
    }

    /// Loads the data from the configured source (DATA_SOURCE, else the bundled sample).
    async fn load_data(&self) {
        let loaded = self
            .http
            .post(format!("{}/data", self.base))
            .header("authorization", &self.bearer)
            .send()
            .await
            .expect("POST /data");
        let status = loaded.status();
        let body: Value = loaded.json().await.expect("POST /data answers JSON");
        assert!(status.is_success(), "POST /data answered {status}: {body}");
    }

    /// Submits a plot job; answers its id.
    async fn submit(&self, start: &str, end: &str) -> String {
        let r = self
            .http
            .post(format!("{}/jobs", self.base))
            .header("authorization", &self.bearer)
            .json(&json!({"start": start, "end": end}))
            .send()
            .await
            .expect("POST /jobs");
        let status = r.status();
        let job: Value = r.json().await.expect("a job as JSON");
        assert_eq!(status, reqwest::StatusCode::CREATED, "POST /jobs: {job}");
        job["id"].as_str().expect("a job id").to_owned()
    }

    /// Waits until job `id` is complete; answers it.
    async fn complete(&self, id: &str, all: &[&Process]) -> Value {
        wait_for(&format!("job {id} to complete"), all, || {
            let request = self.http.get(format!("{}/jobs/{id}", self.base));
            async move {
                let job: Value = request.send().await.ok()?.json().await.ok()?;
                match job["status"].as_str() {
                    Some("complete") => Some(job),
                    Some("failed") => panic!("job failed: {job}"),
                    _ => None,
                }
            }
        })
        .await
    }

    /// Job `id`'s result, checked to be served as a PNG: its width and height.
    async fn png_size(&self, id: &str) -> (u32, u32) {
        let result = self
            .http
            .get(format!("{}/jobs/{id}/result", self.base))
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
        (reader.info().width, reader.info().height)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_base_manifests_run_jobs_through_two_workers() {
    // The password of the base's Secret, which Redis requires as in the cluster.
    let redis_password = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let api_token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let cluster = Cluster::new(render("base", &redis_password, &api_token));
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
        &LocalRedis::Server(redis.port()),
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
                &LocalRedis::Server(redis.port()),
                root.path(),
            )
            .0
        })
        .collect();
    let all: Vec<&Process> = std::iter::once(&api).chain(workers.iter()).collect();

    let api_client = Api::new(&api_env);
    let (http, base) = (&api_client.http, &api_client.base);
    api_client.ready(&all).await;
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

    api_client.load_data().await;
    let mut ids = Vec::new();
    for _ in 0..JOBS {
        ids.push(api_client.submit("1900", "2025").await);
    }

    let mut taken_by = BTreeMap::<String, usize>::new();
    for id in &ids {
        let job = api_client.complete(id, &all).await;
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

    let (width, height) = api_client.png_size(&ids[0]).await;
    assert!(
        width >= 100 && height >= 100,
        "a real plot, not {width}x{height}"
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

/// One command's answer from the local Redis on `port`, through `redis-cli`.
fn redis_cli(port: u16, password: &str, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .env("REDISCLI_AUTH", password)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn free_node_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// The `redis-cluster` overlay: the StatefulSet's six Redis nodes as local `redis-server`
/// processes (each with the manifest's arguments, `/data` in a folder of its own, its own free
/// port, and `localhost` as the name it announces instead of its pod's DNS name), formed into a
/// cluster by the creation Job's own script (run twice: a re-applied Job leaves the cluster as
/// it is), then the API and a worker with the environment the overlay gives them, their seed
/// URLs pointing at the nodes: plot jobs complete with a PNG, and their partitions spread over
/// the three masters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_cluster_overlay_forms_a_cluster_and_runs_jobs_on_it() {
    let redis_password = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let api_token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let cluster = Cluster::new(render(
        "overlays/redis-cluster",
        &redis_password,
        &api_token,
    ));
    let root = tempfile::tempdir().expect("a temporary directory");
    let statefulset = cluster.find("StatefulSet", "holidapp-redis-cluster");
    let service = statefulset["spec"]["serviceName"]
        .as_str()
        .expect("the StatefulSet's headless Service");
    let replicas = statefulset["spec"]["replicas"].as_u64().expect("replicas");
    assert_eq!(replicas, 6, "three masters with a replica each");

    // The six nodes.
    let mut ports = BTreeMap::new();
    let mut nodes = Vec::new();
    for i in 0..replicas {
        let pod = format!("holidapp-redis-cluster-{i}");
        let (command, env, mounts) = cluster.container(
            "StatefulSet",
            "holidapp-redis-cluster",
            &[("metadata.name", &pod)],
        );
        assert_eq!(env["REDIS_PASSWORD"], redis_password);
        let data = root.path().join(&pod);
        std::fs::create_dir_all(&data).expect("the node's volume");
        let mut args: Vec<String> = command
            .iter()
            .map(
                |arg| match mounts.iter().find(|m| arg.starts_with(m.as_str())) {
                    Some(mount) => format!("{}{}", data.display(), &arg[mount.len()..]),
                    None => arg.clone(),
                },
            )
            .collect();
        let announced = args
            .iter()
            .position(|a| a == "--cluster-announce-hostname")
            .expect("each node announces its name")
            + 1;
        assert_eq!(args[announced], format!("{pod}.{service}"));
        args[announced] = "localhost".to_owned();
        let port = free_node_port();
        args.extend(["--port", &port.to_string(), "--bind", "127.0.0.1", "-::1"].map(String::from));
        let log = data.join("output.log");
        let out = File::create(&log).expect("create the log file");
        let child = Command::new(&args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone the log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", args[0]));
        nodes.push(Process {
            name: pod.clone(),
            child,
            log,
        });
        ports.insert(pod, port);
    }
    let node_refs: Vec<&Process> = nodes.iter().collect();
    for &port in ports.values() {
        wait_for(&format!("the node on port {port}"), &node_refs, || {
            let pong = redis_cli(port, &redis_password, &["PING"]);
            async move { (pong.trim() == "PONG").then_some(()) }
        })
        .await;
    }

    // The creation Job's script, with its environment; NODES names the local nodes.
    let (script, mut job_env, _) = cluster.container("Job", "holidapp-redis-cluster-create", &[]);
    let nodes_list: Vec<String> = ports.values().map(|p| format!("localhost:{p}")).collect();
    job_env.insert("NODES".to_owned(), nodes_list.join(" "));
    for run in 1..=2 {
        let output = Command::new(&script[0])
            .args(&script[1..])
            .envs(&job_env)
            .stdin(Stdio::null())
            .output()
            .expect("the Job's script runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "the creation Job failed (run {run}):\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        if run == 2 {
            assert!(
                stdout.contains("already form a cluster of 6"),
                "run again, the Job did not find the cluster formed:\n{stdout}"
            );
        }
        // Three masters serving every slot, each followed by its replica, which authenticated
        // to it; every node announcing its name.
        let first = *ports.values().next().expect("a node");
        wait_for("3 masters, each followed by a replica", &node_refs, || {
            let view = redis_cli(first, &redis_password, &["CLUSTER", "NODES"]);
            let following = ports
                .values()
                .filter(|&&p| {
                    let info = redis_cli(p, &redis_password, &["INFO", "replication"]);
                    info.contains("role:slave") && info.contains("master_link_status:up")
                })
                .count();
            let ok = ports.values().all(|&p| {
                redis_cli(p, &redis_password, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
            let masters = view.lines().filter(|l| l.contains("master")).count();
            let named = view.lines().all(|l| l.contains(",localhost "));
            async move { (ok && masters == 3 && following == 3 && named).then_some(()) }
        })
        .await;
    }

    // The API and a worker, with the overlay's environment.
    let redis = LocalRedis::Nodes(&ports);
    let (api, api_env) = start_pod(
        &cluster,
        Pod {
            name: "api-0",
            deployment: "holidapp-api",
            pod_ip: "127.0.0.1",
        },
        &redis,
        root.path(),
    );
    assert_eq!(
        api_env["REDIS_CLUSTER_URLS"].split(',').count(),
        6,
        "every node is a seed"
    );
    let (worker, _) = start_pod(
        &cluster,
        Pod {
            name: "worker-0",
            deployment: "holidapp-worker",
            pod_ip: "127.0.0.2",
        },
        &redis,
        root.path(),
    );
    let all: Vec<&Process> = [&api, &worker].into_iter().chain(nodes.iter()).collect();
    let api_client = Api::new(&api_env);
    api_client.ready(&all).await;
    api_client.load_data().await;
    let mut ids = Vec::new();
    for start in 1990..2002 {
        ids.push(api_client.submit(&start.to_string(), "2020").await);
    }
    for id in &ids {
        api_client.complete(id, &all).await;
        assert_eq!(api_client.png_size(id).await, (800, 600), "job {id}");
    }

    // A job id's first byte is its partition's tag, `{xx}` in the partition's keys: the six
    // partitions of HOLIDAPP_QUEUE_PARTITIONS put the jobs on all three masters.
    let masters: Vec<u16> = ports
        .values()
        .copied()
        .filter(|&p| {
            redis_cli(p, &redis_password, &["INFO", "replication"]).contains("role:master")
        })
        .collect();
    let first = masters[0];
    let mut holding = std::collections::BTreeSet::new();
    for tag in ids
        .iter()
        .map(|id| &id[..2])
        .collect::<std::collections::BTreeSet<_>>()
    {
        let slot = redis_cli(
            first,
            &redis_password,
            &["CLUSTER", "KEYSLOT", &format!("{{{tag}}}")],
        );
        for &m in &masters {
            let keys = redis_cli(
                m,
                &redis_password,
                &["CLUSTER", "COUNTKEYSINSLOT", slot.trim()],
            );
            if keys.trim().parse::<u64>().unwrap_or(0) > 0 {
                holding.insert(m);
            }
        }
    }
    assert_eq!(
        holding.len(),
        3,
        "the jobs sit on {} of the 3 masters",
        holding.len()
    );
}
