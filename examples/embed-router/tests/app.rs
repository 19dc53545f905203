//! The app, driven in process with `tower::ServiceExt::oneshot`: its own routes, the job API
//! under `/api` with links that carry the mount path, jobs run by the embedded worker, and no
//! plot routes.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use example_embed_router::{EmbeddedWorker, Services, app, services};

/// What the app answered.
struct Answer {
    status: StatusCode,
    content_type: String,
    location: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

async fn send(app: &Router, method: Method, uri: &str, body: Option<Value>) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (status, content_type, location) = (
        response.status(),
        header(header::CONTENT_TYPE).unwrap_or_default(),
        header(header::LOCATION),
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        location,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get(app: &Router, uri: &str) -> Answer {
    send(app, Method::GET, uri, None).await
}

async fn post(app: &Router, uri: &str, body: Value) -> Answer {
    send(app, Method::POST, uri, Some(body)).await
}

/// Reads the job at `location` until it is complete, for at most ten seconds.
async fn wait_until_complete(app: &Router, location: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let job = get(app, location).await.json();
        match job["status"].as_str() {
            Some("complete") => return job,
            Some("failed") => panic!("the job failed: {job}"),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the job did not complete in time: {job}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_apps_own_routes_answer_beside_the_api() {
    let Services { jobs, .. } = services();
    let app = app(jobs);

    let home = get(&app, "/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("/api"), "{}", home.body);

    assert_eq!(get(&app, "/hello").await.body, "Hello, world!");
    let hello = get(&app, "/hello?name=Ada").await;
    assert_eq!(
        (hello.status, hello.body.as_str()),
        (StatusCode::OK, "Hello, Ada!")
    );

    // The API answers under its mount path (an empty listing, as JSON).
    let list = get(&app, "/api/jobs").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.json(), json!([]));
}

#[tokio::test]
async fn a_job_submitted_under_api_is_run_by_the_embedded_worker() {
    let Services { jobs, worker } = services();
    let app = app(jobs);
    let worker = EmbeddedWorker::spawn(worker);

    let submitted = post(
        &app,
        "/api/jobs",
        json!({"kind": "reverse", "params": {"text": "stressed"}}),
    )
    .await;
    assert_eq!(submitted.status, StatusCode::CREATED, "{}", submitted.body);
    let job = submitted.json();
    let id = job["id"].as_str().unwrap();
    // The links the API answers carry the path it is mounted under.
    let location = submitted.location.clone().expect("a Location header");
    assert_eq!(location, format!("/api/jobs/{id}"));
    assert_eq!(job["result"], format!("/api/jobs/{id}/result"));
    assert_eq!(job["kind"], "reverse");

    // Nobody but the embedded worker runs jobs here: once it is complete, the worker did it.
    let done = wait_until_complete(&app, &location).await;
    assert_eq!(done["worker"], "embedded");
    assert_eq!(done["result_type"], "text/plain; charset=utf-8");

    let result = get(&app, job["result"].as_str().unwrap()).await;
    assert_eq!(result.status, StatusCode::OK);
    assert_eq!(result.content_type, "text/plain; charset=utf-8");
    assert_eq!(result.body, "desserts");

    let report = tokio::time::timeout(Duration::from_secs(30), worker.stop())
        .await
        .expect("the worker stops once told to")
        .unwrap();
    assert_eq!(report.stats.completed, 1);
}

#[tokio::test]
async fn jobs_the_app_cannot_run_are_refused_with_400() {
    let Services { jobs, .. } = services();
    let app = app(jobs);

    // A kind this app did not register.
    let unknown = post(&app, "/api/jobs", json!({"kind": "plot", "params": {}})).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json()["error"]["code"], "unknown_kind");
    let message = unknown.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("reverse"),
        "names the known kinds: {message}"
    );

    // Parameters `Reverse::validate` refuses.
    let empty = post(
        &app,
        "/api/jobs",
        json!({"kind": "reverse", "params": {"text": ""}}),
    )
    .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(empty.json()["error"]["code"], "invalid_params");

    // Neither was stored.
    assert_eq!(get(&app, "/api/jobs").await.json(), json!([]));
}

#[tokio::test]
async fn the_plot_product_is_not_mounted() {
    let Services { jobs, .. } = services();
    let app = app(jobs);

    for (method, uri) in [
        (Method::GET, "/api/data"),
        (Method::POST, "/api/data"),
        (Method::GET, "/api/genes"),
        (Method::GET, "/api/image"),
    ] {
        let answer = send(&app, method.clone(), uri, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {uri}");
        assert_eq!(
            answer.json()["error"]["code"],
            "route_not_found",
            "{method} {uri}"
        );
    }
    // Outside `/api`, the app's own router answers for unknown paths.
    assert_eq!(get(&app, "/data").await.status, StatusCode::NOT_FOUND);
}
