//! What protects the service and its users from retries, floods and hostile data: idempotent
//! submits, queue quotas, data set limits, one load at a time, and data source errors that name
//! nothing of the server's network.

use axum::http::{Method, StatusCode};
use holidapp_core::plot::parse::DataLimits;
use holidapp_core::{QueueSettings, Quotas};
use tokio::net::TcpListener;

use crate::support::{TestApp, get, post_json, post_text, request};

fn keyed_submit(key: &str) -> axum::http::Request<axum::body::Body> {
    let mut submit = post_json("/jobs", r#"{"start": "1990", "end": "2000"}"#);
    submit
        .headers_mut()
        .insert("idempotency-key", key.parse().unwrap());
    submit
}

#[tokio::test]
async fn a_retried_submit_with_its_idempotency_key_finds_the_first_job() {
    let app = TestApp::new();
    let first = app.send(keyed_submit("checkout-7")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    let again = app.send(keyed_submit("checkout-7")).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json()["id"], first.json()["id"]);
    assert_eq!(again.headers["location"], first.headers["location"]);
    let other = app.send(keyed_submit("checkout-8")).await;
    assert_eq!(other.status, StatusCode::CREATED);

    let listed = app.send(get("/jobs")).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let metrics = app.send(get("/metrics")).await.text();
    assert!(
        metrics
            .lines()
            .any(|l| l == "holidapp_jobs_submitted_total{kind=\"plot\"} 2"),
        "{metrics}"
    );
    // Keys are bounded and printable.
    let long = "k".repeat(257);
    app.send(keyed_submit(&long))
        .await
        .assert_error(400, "invalid_params");
}

#[tokio::test]
async fn a_full_queue_answers_429_and_stores_nothing() {
    let settings = QueueSettings {
        quotas: Quotas {
            max_waiting: Some(1),
            max_result_bytes: None,
        },
        ..QueueSettings::default()
    };
    let app = TestApp::with_settings(settings, |state| state);
    app.submit("1990", "2000").await;
    let refused = app
        .send(post_json("/jobs", r#"{"start": "1991", "end": "2000"}"#))
        .await;
    let message = refused.assert_error(429, "quota_exceeded");
    assert!(message.contains("waiting"), "{message}");
    let listed = app.send(get("/jobs")).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test]
async fn data_sets_past_the_limits_answer_413() {
    let limits = DataLimits {
        max_records: 2,
        ..DataLimits::default()
    };
    let app = TestApp::with(|state| {
        let plots = state.plots.clone().expect("plots").with_limits(limits);
        state.with_plots(plots)
    });
    let three = r#"{"meteorite_landings": [{"id": 1}, {"id": 2}, {"id": 3}]}"#;
    let refused = app.send(post_json("/data", three)).await;
    let message = refused.assert_error(413, "data_too_large");
    assert!(message.contains("more than 2 records"), "{message}");
    let three = "id\tv\n1\ta\n2\tb\n3\tc\n";
    let refused = app.send(post_text("/data", three)).await;
    refused.assert_error(413, "data_too_large");
    let two = r#"[{"id": 1}, {"id": 2}]"#;
    assert_eq!(app.send(post_text("/data", two)).await.json()["loaded"], 2);
}

#[tokio::test]
async fn one_data_set_loads_at_a_time() {
    // A source that accepts the connection and never answers holds the first load.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = format!("http://{}/data.json", listener.local_addr().unwrap());
    let app = TestApp::with(|state| {
        let plots = state.plots.clone().expect("plots").with_source(source);
        state.with_plots(plots)
    });
    let router = app.router.clone();
    let first = tokio::spawn(async move {
        crate::support::send(&router, request(Method::POST, "/data", None, "")).await
    });
    let (_held, _) = listener.accept().await.unwrap();
    let second = app.send(post_text("/data", r#"[{"id": 1}]"#)).await;
    second.assert_error(409, "conflict");
    first.abort();
    let _ = first.await;
    // Once the first has gone, loads go on.
    assert_eq!(
        app.send(post_text("/data", r#"[{"id": 1}]"#)).await.json()["loaded"],
        1
    );
}

#[tokio::test]
async fn a_failing_data_source_is_not_described_to_clients() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = format!("http://{}/internal/data.json", closed.local_addr().unwrap());
    drop(closed);
    let app = TestApp::with(|state| {
        let plots = state.plots.clone().expect("plots").with_source(source);
        state.with_plots(plots)
    });
    let answer = app.send(request(Method::POST, "/data", None, "")).await;
    let message = answer.assert_error(502, "data_source_failed");
    assert!(!message.contains("127.0.0.1"), "{message}");
    assert!(!message.contains("internal"), "{message}");
    assert!(message.contains("x-request-id"), "{message}");
}
