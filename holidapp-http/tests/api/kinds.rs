//! The API as a general job service: jobs of any registered kind and queue, results with their
//! own content type, unknown kinds, filters and cursors, a router without the plot product, and
//! links that follow the path the router is mounted under.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use holidapp_core::{
    Backends, Context, Jobs, Json, Kinds, MemoryBackend, Outcome, Processor, QueueName,
    QueueSettings, Renderer, Result, async_trait,
};
use holidapp_http::AppState;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::support::{TestApp, get, post_json, send};

/// The parameters of the test kind.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sum {
    numbers: Vec<i64>,
}

/// A kind of the test's own: adds numbers, answers JSON.
struct Adder;

#[async_trait]
impl Renderer for Adder {
    const KIND: &'static str = "sum";
    type Params = Sum;
    type Output = Json<i64>;

    fn validate(&self, params: &Sum) -> Result<()> {
        if params.numbers.is_empty() {
            return Err(holidapp_core::Error::InvalidParams(
                "numbers must not be empty".into(),
            ));
        }
        Ok(())
    }

    async fn render(&self, params: Sum, _ctx: &Context) -> Result<Json<i64>> {
        Ok(Json(params.numbers.iter().sum()))
    }
}

/// A router serving the kind `sum` alone (no plot product, no default kind), its backend, and
/// a processor to run its jobs.
fn sum_service() -> (Router, Arc<MemoryBackend>, Processor) {
    let backend = Arc::new(MemoryBackend::new(QueueSettings::default()));
    let kinds = Kinds::new().with(Adder);
    let backends = Backends::single(backend.clone());
    let state = AppState::new(Jobs::new(&backends, kinds.clone()));
    let processor = Processor::new(backend.clone(), kinds, Duration::from_secs(30))
        .with_queues([QueueName::default_queue(), QueueName::new("maths").unwrap()]);
    (holidapp_http::router(state), backend, processor)
}

fn ids(page: &Value) -> Vec<String> {
    page.as_array()
        .expect("a page of jobs")
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_job_of_any_kind_runs_and_its_result_keeps_its_content_type() {
    let (router, _, processor) = sum_service();
    let body = json!({"kind": "sum", "params": {"numbers": [1, 2, 39]}, "queue": "maths"});
    let answer = send(&router, post_json("/jobs", body.to_string())).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let job = answer.json();
    assert_eq!(job["kind"], "sum");
    assert_eq!(job["queue"], "maths");
    assert_eq!(job["params"], json!({"numbers": [1, 2, 39]}));
    assert_eq!(job["max_attempts"], 3);
    assert!(
        job.get("numbers").is_none(),
        "a kind's parameters stay under params unless it shows them at the top level"
    );
    let id = job["id"].as_str().unwrap();
    assert!(matches!(
        processor.process_one("10.0.0.9").await.unwrap(),
        Outcome::Processed(_)
    ));
    let shown = send(&router, get(&format!("/jobs/{id}"))).await.json();
    assert_eq!(shown["status"], "complete");
    assert_eq!(shown["result_type"], "application/json");
    let result = send(&router, get(&format!("/jobs/{id}/result"))).await;
    assert_eq!(result.status, StatusCode::OK);
    assert_eq!(result.content_type(), "application/json");
    assert_eq!(result.json(), json!(42));
}

#[tokio::test]
async fn bodies_the_kind_refuses_or_of_an_unknown_kind_queue_nothing() {
    let (router, backend, _) = sum_service();
    let cases = [
        (json!({"kind": "thumbnail", "params": {}}), "unknown_kind"),
        (
            json!({"kind": "sum", "params": {"numbers": []}}),
            "invalid_params",
        ),
        (
            json!({"kind": "sum", "params": {"numbers": "1"}}),
            "invalid_body",
        ),
        (json!({"kind": "sum", "params": {"n": [1]}}), "invalid_body"),
        (json!({"kind": "sum"}), "invalid_body"),
        (
            json!({"kind": "sum", "params": {"numbers": [1]}, "queue": "no space"}),
            "invalid_body",
        ),
        (
            json!({"kind": "sum", "params": {"numbers": [1]}, "max_attempts": 0}),
            "invalid_params",
        ),
        (
            json!({"kind": "sum", "params": {"numbers": [1]}, "x": 1}),
            "invalid_body",
        ),
        // No default kind here: a body without one names none.
        (json!({"numbers": [1]}), "invalid_body"),
    ];
    for (body, code) in cases {
        let answer = send(&router, post_json("/jobs", body.to_string())).await;
        let message = answer.assert_error(400, code);
        if code == "unknown_kind" {
            assert!(
                message.contains("thumbnail") && message.contains("sum"),
                "names the kind and the known ones: {message}"
            );
        }
    }
    assert!(
        holidapp_core::JobStore::stats(backend.as_ref())
            .await
            .unwrap()
            .is_empty(),
        "nothing was queued"
    );
}

#[tokio::test]
async fn a_router_without_the_plot_product_serves_no_data_or_image_routes() {
    let (router, _, _) = sum_service();
    for path in ["/data", "/genes", "/image"] {
        send(&router, get(path))
            .await
            .assert_error(404, "route_not_found");
    }
    let doc = send(&router, get("/openapi.json")).await.json();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/jobs") && paths.contains_key("/results/{id}"));
    assert!(
        !paths
            .keys()
            .any(|p| p.starts_with("/data") || p == "/image")
    );
    // Its jobs are of the kind it registers, with parameters this crate knows nothing of, and
    // without a default kind every body names its kind.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["Submit"]["properties"]["kind"]["enum"],
        json!(["sum"])
    );
    assert_eq!(schemas["Submit"]["properties"]["params"]["type"], "object");
    assert_eq!(
        schemas["SubmitBody"]["oneOf"],
        json!([{"$ref": "#/components/schemas/Submit"}])
    );
    assert!(schemas.get("PlotSubmit").is_none());
    let help = send(&router, get("/help")).await.text();
    assert!(!help.contains("/data"), "{help}");
    // No visits log either, unless the embedding program asks for one.
    let welcome = send(&router, get("/")).await;
    assert_eq!(welcome.status, StatusCode::OK);
    assert_eq!(welcome.json()["help"], "/help");
    let visits = send(&router, get("/visits")).await;
    assert_eq!((visits.status, visits.body.len()), (StatusCode::OK, 0));
}

#[tokio::test]
async fn listings_filter_by_queue_and_kind_and_cursors_reach_every_job_once() {
    let app = TestApp::new();
    let mut reports = Vec::new();
    for i in 0..7 {
        let queue = if i % 2 == 0 { "reports" } else { "default" };
        let body = json!({"start": 1990 + i, "end": 2020, "queue": queue});
        let job = app.send(post_json("/jobs", body.to_string())).await.json();
        assert_eq!(job["queue"], queue);
        if queue == "reports" {
            reports.push(job["id"].as_str().unwrap().to_owned());
        }
    }
    reports.reverse();
    assert_eq!(
        ids(&app.send(get("/jobs?queue=reports")).await.json()),
        reports
    );
    assert_eq!(
        ids(&app.send(get("/jobs?kind=plot&limit=1000")).await.json()).len(),
        7
    );
    assert!(ids(&app.send(get("/jobs?kind=sum")).await.json()).is_empty());
    // Two at a time, following the next link until there is none.
    let mut seen = Vec::new();
    let mut uri = "/jobs?limit=2".to_owned();
    loop {
        let answer = app.send(get(&uri)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let page = ids(&answer.json());
        assert!(page.len() <= 2);
        seen.extend(page);
        let Some(link) = answer.headers.get(header::LINK) else {
            assert!(answer.headers.get("x-next-cursor").is_none());
            break;
        };
        let link = link.to_str().unwrap();
        let cursor = answer.headers["x-next-cursor"].to_str().unwrap();
        assert!(link.contains(&format!("before={cursor}")), "{link}");
        uri = link
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_owned();
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7, "each once");
    for bad in [
        "/jobs?before=soon",
        "/jobs?queue=a%20b",
        "/jobs?kind=a%20b",
        "/jobs?offset=10001",
    ] {
        app.send(get(bad)).await.assert_error(400, "invalid_query");
    }
}

#[tokio::test]
async fn links_carry_the_path_the_router_is_mounted_under() {
    let app = TestApp::new();
    let nested = Router::new().nest("/api", app.router.clone());
    app.load_sample().await;
    let answer = send(
        &nested,
        post_json("/api/jobs", r#"{"start": 1990, "end": 2000}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let job = answer.json();
    let id = job["id"].as_str().unwrap();
    assert_eq!(answer.headers[header::LOCATION], format!("/api/jobs/{id}"));
    assert_eq!(job["result"], format!("/api/jobs/{id}/result"));
    send(
        &nested,
        post_json("/api/jobs", r#"{"start": 1991, "end": 2000}"#),
    )
    .await;
    let page = send(&nested, get("/api/jobs?limit=1")).await;
    let link = page.headers[header::LINK].to_str().unwrap();
    assert!(link.starts_with("</api/jobs?before="), "{link}");
    assert_eq!(
        send(&nested, get(&format!("/api/jobs/{id}"))).await.json()["result"],
        format!("/api/jobs/{id}/result")
    );
    let records = send(&nested, get("/api/data?limit=1")).await;
    let link = records.headers[header::LINK].to_str().unwrap();
    assert!(link.starts_with("</api/data?start=1&limit=1>"), "{link}");
    let welcome = send(&nested, get("/api")).await.json();
    assert_eq!(
        (welcome["help"].as_str(), welcome["openapi"].as_str()),
        (Some("/api/help"), Some("/api/openapi.json"))
    );
    // The dashboard's page loads its assets, and calls the API, under the prefix.
    let page = send(&nested, get("/api/ui")).await.text();
    assert!(page.contains(r#"<script src="/api/ui/app.js""#), "{page}");
    assert!(page.contains(r#"content="/api""#), "{page}");
    assert_eq!(
        send(&nested, get("/api/ui/app.js")).await.status,
        StatusCode::OK
    );
    // Not nested: no prefix.
    let direct = app.send(get(&format!("/jobs/{id}"))).await.json();
    assert_eq!(direct["result"], format!("/jobs/{id}/result"));
    assert!(
        app.send(get("/ui"))
            .await
            .text()
            .contains(r#"<script src="/ui/app.js""#)
    );
}
