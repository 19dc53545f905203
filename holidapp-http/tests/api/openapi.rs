//! The OpenAPI document: it lists exactly the routes the router serves, and its schemas
//! describe exactly what the API sends.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use holidapp_core::plot::PlotParams;
use holidapp_core::{Job, JobStatus, Params, QueueName};
use serde_json::Value;

use crate::support::{TestApp, get, request};

/// Every route of the product's specification.
const SPEC_ROUTES: &[(&str, &str)] = &[
    ("POST", "/jobs"),
    ("GET", "/jobs"),
    ("GET", "/jobs/{id}"),
    ("DELETE", "/jobs/{id}"),
    ("GET", "/jobs/{id}/result"),
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
fn concrete(path: &str) -> String {
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
        ..Job::new(
            "plot",
            QueueName::default_queue(),
            Params::encode(&params).unwrap(),
            3,
            now,
        )
    };
    let mut sent = serde_json::to_value(&job).unwrap();
    sent.as_object_mut()
        .unwrap()
        .insert("result".into(), "/jobs/x/result".into());
    assert_eq!(properties(&doc, "Job"), keys(&sent));
    assert_eq!(
        properties(&doc, "PlotParams"),
        keys(&serde_json::to_value(&params).unwrap())
    );
    let course: BTreeSet<String> = properties(&doc, "PlotSubmit");
    let mut expected = keys(&serde_json::to_value(&params).unwrap());
    expected.extend(["queue".to_owned(), "max_attempts".to_owned()]);
    assert_eq!(course, expected);
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
