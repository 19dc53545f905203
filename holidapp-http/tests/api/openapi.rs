//! The OpenAPI document: it lists exactly the routes the router serves, and its schemas
//! describe exactly what the API sends.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use holidapp_core::plot::PlotParams;
use holidapp_core::{Job, JobStatus, Params, QueueName};
use serde_json::{Value, json};

use crate::support::{TestApp, get, request};

/// Every route of the product's specification.
const SPEC_ROUTES: &[(&str, &str)] = &[
    ("POST", "/jobs"),
    ("GET", "/jobs"),
    ("GET", "/jobs/{id}"),
    ("DELETE", "/jobs/{id}"),
    ("GET", "/jobs/{id}/result"),
    ("POST", "/jobs/{id}/cancel"),
    ("POST", "/jobs/{id}/retry"),
    ("GET", "/queues"),
    ("GET", "/jobs_status"),
    ("GET", "/job_status"),
    ("GET", "/completed_jobs"),
    ("GET", "/incomplete_jobs"),
    ("GET", "/inprogress_jobs"),
    ("GET", "/results/{id}"),
    ("GET", "/download/{id}"),
    ("POST", "/data"),
    ("GET", "/data"),
    ("DELETE", "/data"),
    ("GET", "/data/{id}"),
    ("GET", "/genes"),
    ("GET", "/genes/{hgnc_id}"),
    ("POST", "/image"),
    ("GET", "/image"),
    ("DELETE", "/image"),
    ("GET", "/help"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/workers"),
    ("GET", "/events"),
    ("GET", "/"),
    ("GET", "/visits"),
    ("GET", "/openapi.json"),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn document() -> Value {
    serde_json::to_value(holidapp_http::openapi()).unwrap()
}

/// The (method, path) pairs the document lists.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

/// A concrete URI for a documented path.
/// A path to call the documented `path` on (a followed event stream never ends: the retained
/// events alone are asked for).
fn concrete(path: &str) -> String {
    if path == "/events" {
        return "/events?follow=false".to_owned();
    }
    path.replace("{id}", &uuid::Uuid::new_v4().to_string())
        .replace("{hgnc_id}", "HGNC:5")
}

#[test]
fn the_document_lists_exactly_the_specified_routes() {
    let expected: BTreeSet<(String, String)> = SPEC_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented(&document()), expected);
}

#[tokio::test]
async fn every_documented_operation_is_served_and_no_other_method_is() {
    let app = TestApp::new();
    let doc = document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let uri = concrete(path);
            let http_method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let answer = app.send(request(http_method, &uri, None, "")).await;
            if item.get(method).is_some() {
                assert_ne!(
                    answer.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                if answer.status == StatusCode::NOT_FOUND {
                    assert_ne!(
                        answer.json()["error"]["code"],
                        "route_not_found",
                        "{method} {path} is documented but not routed"
                    );
                }
            } else {
                answer.assert_error(405, "method_not_allowed");
            }
        }
    }
}

#[tokio::test]
async fn the_served_document_is_the_generated_one() {
    let app = TestApp::new();
    let answer = app.send(get("/openapi.json")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type(), "application/json");
    let served = answer.json();
    assert_eq!(served, document());
    assert!(served["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(served["info"]["title"], "Holidapp API");
}

/// The property names of a schema of the document.
fn properties(doc: &Value, schema: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {schema} has properties"))
        .keys()
        .cloned()
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn the_job_schemas_describe_every_field_the_api_sends() {
    let doc = document();
    let params = PlotParams::new("1990", "2000").with_option("kind", "histogram");
    let now = chrono::Utc::now();
    let job = Job {
        status: JobStatus::Failed,
        worker: Some("10.0.0.7".into()),
        started_at: Some(now),
        finished_at: Some(now),
        attempts: 3,
        error: Some("no records".into()),
        result_type: Some("image/png".into()),
        unique_key: Some("order-7".into()),
        unique_scope: Some(holidapp_core::UniqueScope::For(60)),
        timeout: Some(30),
        progress: Some(holidapp_core::Progress::new(40.0, "drawing")),
        priority: 5,
        run_at: Some(now),
        ..Job::new(
            "plot",
            QueueName::default_queue(),
            Params::encode(&params).unwrap(),
            3,
            now,
        )
    };
    let mut sent = serde_json::to_value(&job).unwrap();
    let fields = sent.as_object_mut().unwrap();
    fields.insert("result".into(), "/jobs/x/result".into());
    // A plot job shows its parameters at the top level too.
    fields.extend(
        serde_json::to_value(&params)
            .unwrap()
            .as_object()
            .unwrap()
            .clone(),
    );
    assert_eq!(properties(&doc, "Job"), keys(&sent));
    assert_eq!(
        properties(&doc, "PlotParams"),
        keys(&serde_json::to_value(&params).unwrap())
    );
    let course: BTreeSet<String> = properties(&doc, "PlotSubmit");
    let mut expected = keys(&serde_json::to_value(&params).unwrap());
    expected.extend(
        [
            "queue",
            "max_attempts",
            "timeout",
            "priority",
            "delay",
            "run_at",
        ]
        .map(str::to_owned),
    );
    assert_eq!(course, expected);
    let general: BTreeSet<String> = properties(&doc, "Submit");
    let expected: BTreeSet<String> = [
        "kind",
        "params",
        "queue",
        "max_attempts",
        "timeout",
        "unique_key",
        "unique_scope",
        "priority",
        "delay",
        "run_at",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(general, expected);
    let statuses: BTreeSet<String> = doc["components"]["schemas"]["JobStatus"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    let wire: BTreeSet<String> = JobStatus::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    assert_eq!(statuses, wire);
    let error = &doc["components"]["schemas"]["ErrorInfo"]["properties"];
    assert!(
        error["status"].is_object() && error["code"].is_object() && error["message"].is_object()
    );
}

#[test]
fn every_operation_has_a_summary_and_documents_its_errors() {
    let doc = document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let summary = operation["summary"].as_str().unwrap_or("");
            assert!(!summary.is_empty(), "{method} {path} has no summary");
            assert!(
                operation["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .any(|s| s.starts_with('2')),
                "{method} {path} documents no success"
            );
        }
    }
}

#[tokio::test]
async fn the_document_states_the_configured_page_size_and_the_registered_kinds() {
    let limits = holidapp_http::Limits {
        data_page_default: 7,
        data_page_max: 50,
        ..holidapp_http::Limits::default()
    };
    let app = TestApp::with(|state| state.with_limits(limits));
    let doc = app.send(get("/openapi.json")).await.json();
    let parameters = doc["paths"]["/data"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let limit = parameters.iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["schema"]["minimum"], 1, "{limit}");
    assert_eq!(limit["schema"]["maximum"], 50, "{limit}");
    assert_eq!(limit["schema"]["default"], 7, "{limit}");
    app.send(get("/data?limit=50")).await;
    app.send(get("/data?limit=51"))
        .await
        .assert_error(400, "invalid_query");

    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["Submit"]["properties"]["kind"]["enum"],
        json!(["plot"])
    );
    assert_eq!(
        schemas["Submit"]["properties"]["params"]["$ref"],
        "#/components/schemas/PlotParams"
    );
    let bodies: Vec<&str> = schemas["SubmitBody"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["$ref"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "#/components/schemas/Submit",
            "#/components/schemas/PlotSubmit",
            "#/components/schemas/Batch"
        ]
    );
}

#[test]
fn the_hand_written_year_pattern_covers_the_core_range() {
    // The pattern of `Year` spells out this range: a change of the range must change it.
    assert_eq!(
        (holidapp_core::plot::YEAR_MIN, holidapp_core::plot::YEAR_MAX),
        (-5000, 9999)
    );
    let doc = document();
    let year = &doc["components"]["schemas"]["Year"]["oneOf"];
    assert_eq!(year[0]["minimum"], -5000);
    assert_eq!(year[0]["maximum"], 9999);
    assert!(year[1]["pattern"].as_str().unwrap().ends_with("|-5000)$"));
}

#[test]
fn optional_bodies_are_not_required_and_results_are_bytes() {
    let doc = document();
    for path in ["/data", "/image"] {
        let body = &doc["paths"][path]["post"]["requestBody"];
        assert_eq!(body["required"], false, "{path}");
    }
    let data = &doc["paths"]["/data"]["post"]["requestBody"]["content"];
    assert_eq!(
        keys(data),
        [
            "application/json",
            "application/octet-stream",
            "text/tab-separated-values"
        ]
        .map(str::to_owned)
        .into()
    );
    for path in [
        "/jobs/{id}/result",
        "/results/{id}",
        "/download/{id}",
        "/image",
    ] {
        let content = &doc["paths"][path]["get"]["responses"]["200"]["content"];
        for media_type in ["image/png", "application/octet-stream"] {
            assert_eq!(
                content[media_type]["schema"],
                json!({"type": "string", "format": "binary"}),
                "{path} {media_type}"
            );
        }
    }
    let links = &doc["paths"]["/jobs"]["post"]["responses"]["201"]["links"];
    assert_eq!(links["GetJob"]["operationId"], "get_job");
    assert_eq!(links["Results"]["operationId"], "results_id");
    assert_eq!(links["Results"]["parameters"]["id"], "$response.body#/id");
}
