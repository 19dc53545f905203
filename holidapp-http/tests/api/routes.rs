//! Every route: its success answers and each of its error answers, on the in-memory backend.

use axum::http::{Method, StatusCode, header};
use holidapp_core::{Consumer, FailureKind, JobStatus, JobStore, Output};
use serde_json::{Value, json};

use crate::support::{TestApp, delete, enqueue, get, post_json, request};

/// The 1x1 PNG the testing renderers store.
fn blank_png() -> Output {
    Output::new("image/png", holidapp_worker::BLANK_PNG)
}

/// The same state, its plot product loading `source` when `POST /data` comes without a body.
fn with_source(state: holidapp_http::AppState, source: &str) -> holidapp_http::AppState {
    let plots = state.plots.clone().expect("the plot product");
    state.with_plots(plots.with_source(source))
}

#[tokio::test]
async fn post_jobs_queues_a_job_and_answers_it_with_its_location() {
    let app = TestApp::new();
    let answer = app
        .send(post_json("/jobs", r#"{"start": 1990, "end": "2000"}"#))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let job = answer.json();
    let id = job["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    assert_eq!(job["status"], "submitted");
    assert_eq!(job["start"], "1990");
    assert_eq!(job["end"], "2000");
    assert_eq!(job["attempts"], 0);
    assert_eq!(job["result"], format!("/jobs/{id}/result"));
    assert!(job["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(job.get("worker").is_none() && job.get("error").is_none());
    assert_eq!(answer.headers[header::LOCATION], format!("/jobs/{id}"));
    assert_eq!(app.backend.stats().await.unwrap()[0].ready, 1);
    assert_eq!(app.state.metrics.jobs_submitted(), 1);

    let shown = app.send(get(&format!("/jobs/{id}"))).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.json(), job);
}

#[tokio::test]
async fn post_jobs_keeps_plot_options() {
    let app = TestApp::new();
    let body = json!({"start": "1990", "end": "2000",
                      "plot": {"kind": "categories", "field": "locus_group"}});
    let answer = app.send(post_json("/jobs", body.to_string())).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    assert_eq!(answer.json()["plot"]["kind"], "categories");
}

#[tokio::test]
async fn post_jobs_refuses_what_the_renderer_refuses_and_queues_nothing() {
    let app = TestApp::new();
    for body in [
        r#"{"start": "abc", "end": "2000"}"#,
        r#"{"start": 2000, "end": 1990}"#,
        r#"{"start": 1990, "end": 2000, "plot": {"kind": "pie"}}"#,
        r#"{"start": 1990, "end": 2000, "plot": {"width": 5}}"#,
    ] {
        let answer = app.send(post_json("/jobs", body)).await;
        let message = answer.assert_error(400, "invalid_params");
        assert!(
            message.len() > 20,
            "the message says what is wrong: {message}"
        );
    }
    assert!(
        app.backend.stats().await.unwrap().is_empty(),
        "nothing queued"
    );
    assert_eq!(app.state.metrics.jobs_submitted(), 0);
}

#[tokio::test]
async fn post_jobs_body_errors() {
    let app = TestApp::new();
    app.send(post_json("/jobs", "{\"start\": "))
        .await
        .assert_error(400, "malformed_json");
    let message = app
        .send(post_json("/jobs", r#"{"start": 1990}"#))
        .await
        .assert_error(400, "invalid_body");
    assert!(message.contains("end"), "{message}");
    let message = app
        .send(post_json("/jobs", r#"{"start": 1, "end": 2, "strat": 3}"#))
        .await
        .assert_error(400, "invalid_body");
    assert!(message.contains("strat"), "{message}");
    app.send(request(
        Method::POST,
        "/jobs",
        None,
        r#"{"start":1,"end":2}"#,
    ))
    .await
    .assert_error(415, "unsupported_media_type");
    let huge = format!(r#"{{"start": "{}", "end": "2000"}}"#, "1".repeat(1_100_000));
    app.send(post_json("/jobs", huge))
        .await
        .assert_error(413, "payload_too_large");
}

#[tokio::test]
async fn get_jobs_lists_newest_first_with_status_filter_and_bounded_pages() {
    let app = TestApp::new();
    let first = enqueue(&app.backend, "1990").await;
    let second = enqueue(&app.backend, "1991").await;
    let third = enqueue(&app.backend, "1992").await;
    let lease = app.lease().await;
    assert_eq!(lease.id(), first.id);

    let all = app.send(get("/jobs")).await.json();
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            third.id.to_string(),
            second.id.to_string(),
            first.id.to_string()
        ]
    );
    assert_eq!(all[0]["result"], format!("/jobs/{}/result", third.id));

    let page = app.send(get("/jobs?offset=1&limit=1")).await.json();
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["id"], second.id.to_string());

    for query in ["in%20progress", "in+progress"] {
        let running = app.send(get(&format!("/jobs?status={query}"))).await.json();
        assert_eq!(running.as_array().unwrap().len(), 1, "{query}");
        assert_eq!(running[0]["id"], first.id.to_string());
        assert_eq!(running[0]["status"], "in progress");
        assert_eq!(running[0]["worker"], "10.0.0.7");
    }
    let complete = app.send(get("/jobs?status=complete")).await.json();
    assert_eq!(complete, json!([]));

    app.send(get("/jobs?status=running"))
        .await
        .assert_error(400, "invalid_query");
    app.send(get("/jobs?limit=0"))
        .await
        .assert_error(400, "invalid_query");
    app.send(get("/jobs?limit=1001"))
        .await
        .assert_error(400, "invalid_query");
    app.send(get("/jobs?offset=-1"))
        .await
        .assert_error(400, "invalid_query");
    app.send(get("/jobs?page=2"))
        .await
        .assert_error(400, "invalid_query");
}

#[tokio::test]
async fn get_job_errors() {
    let app = TestApp::new();
    let message = app
        .send(get("/jobs/not-a-uuid"))
        .await
        .assert_error(400, "invalid_job_id");
    assert!(message.contains("not-a-uuid"), "{message}");
    let unknown = uuid::Uuid::new_v4();
    let message = app
        .send(get(&format!("/jobs/{unknown}")))
        .await
        .assert_error(404, "not_found");
    assert!(message.contains(&unknown.to_string()), "{message}");
}

#[tokio::test]
async fn delete_job_removes_it_refuses_a_running_one_and_404s_an_unknown_one() {
    let app = TestApp::new();
    let running = enqueue(&app.backend, "1990").await;
    let waiting = enqueue(&app.backend, "1991").await;
    app.lease().await;

    let answer = app.send(delete(&format!("/jobs/{}", waiting.id))).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(answer.body.is_empty());
    app.send(get(&format!("/jobs/{}", waiting.id)))
        .await
        .assert_error(404, "not_found");
    app.send(delete(&format!("/jobs/{}", waiting.id)))
        .await
        .assert_error(404, "not_found");
    app.send(delete(&format!("/jobs/{}", running.id)))
        .await
        .assert_error(409, "conflict");
    app.send(delete("/jobs/42"))
        .await
        .assert_error(400, "invalid_job_id");
}

#[tokio::test]
async fn a_batch_submits_each_job_on_its_own_and_answers_each_in_order() {
    let app = TestApp::new();
    let body = json!([
        {"start": 1990, "end": 2000},
        {"kind": "plot", "params": {"start": 1991, "end": 2000}, "unique_key": "k-1", "priority": 2},
        {"start": 2000, "end": 1990},
        {"kind": "thumbnail", "params": {}},
        "not a job",
        {"kind": "plot", "params": {"start": 1992, "end": 2000}, "unique_key": "k-1"},
        {"start": 1993, "end": 2000, "delay": 30}
    ]);
    let answer = app.send(post_json("/jobs", body.to_string())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let entries = answer.json();
    let entries = entries.as_array().expect("one entry per job");
    let statuses: Vec<u64> = entries
        .iter()
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![201, 201, 400, 400, 400, 200, 201]);
    assert_eq!(entries[0]["job"]["start"], "1990");
    assert_eq!(entries[1]["job"]["priority"], 2);
    assert_eq!(entries[2]["error"]["code"], "invalid_params");
    assert_eq!(entries[3]["error"]["code"], "unknown_kind");
    assert_eq!(entries[4]["error"]["code"], "invalid_body");
    assert_eq!(
        entries[5]["job"]["id"], entries[1]["job"]["id"],
        "the unique key's holder, stored by the same batch"
    );
    assert!(entries[6]["job"]["run_at"].is_string());
    for stored in [0, 1, 6] {
        let id = entries[stored]["job"]["id"].as_str().unwrap();
        let shown = app.send(get(&format!("/jobs/{id}"))).await.json();
        assert_eq!(shown, entries[stored]["job"]);
    }
    let stats = holidapp_core::store::total_counts(&app.backend.stats().await.unwrap());
    assert_eq!(stats.submitted, 3, "refused jobs stored nothing");

    app.send(post_json("/jobs", "[]"))
        .await
        .assert_error(400, "invalid_body");
    let too_many = serde_json::Value::Array(vec![json!({"start": 1990, "end": 2000}); 1001]);
    app.send(post_json("/jobs", too_many.to_string()))
        .await
        .assert_error(400, "invalid_body");
    let mut keyed = post_json("/jobs", r#"[{"start": 1990, "end": 2000}]"#);
    keyed
        .headers_mut()
        .insert("idempotency-key", "k".parse().unwrap());
    app.send(keyed).await.assert_error(400, "invalid_body");
    let full = serde_json::Value::Array(vec![json!({"start": 1990, "end": 2000}); 1000]);
    let answer = app.send(post_json("/jobs", full.to_string())).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer
            .json()
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["status"] == 201),
        "a batch of 1,000 fits the body limit"
    );
}

#[tokio::test]
async fn a_unique_key_held_while_active_is_free_once_its_job_finished() {
    let app = TestApp::new();
    let body = r#"{"kind": "plot", "params": {"start": 1990, "end": 2000},
                   "unique_key": "nightly", "unique_scope": "active"}"#;
    let first = app.send(post_json("/jobs", body)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert_eq!(first.json()["unique_scope"], "active");
    let again = app.send(post_json("/jobs", body)).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["id"], first.json()["id"]);
    let lease = app.lease().await;
    app.backend.complete(&lease, blank_png()).await.unwrap();
    let next = app.send(post_json("/jobs", body)).await;
    assert_eq!(next.status, StatusCode::CREATED);
    assert_ne!(next.json()["id"], first.json()["id"]);

    let timed = app
        .send(post_json(
            "/jobs",
            r#"{"kind": "plot", "params": {"start": 1990, "end": 2000},
                "unique_key": "r", "unique_scope": {"for": 60.0}}"#,
        ))
        .await;
    assert_eq!(timed.status, StatusCode::CREATED, "{}", timed.text());
    assert_eq!(timed.json()["unique_scope"], json!({"for": 60}));
    for bad in [
        r#"{"kind": "plot", "params": {"start": 1990, "end": 2000}, "unique_key": "x", "unique_scope": "forever"}"#,
        r#"{"kind": "plot", "params": {"start": 1990, "end": 2000}, "unique_key": "x", "unique_scope": {"for": 1.5}}"#,
    ] {
        app.send(post_json("/jobs", bad))
            .await
            .assert_error(400, "invalid_body");
    }
    app.send(post_json(
        "/jobs",
        r#"{"kind": "plot", "params": {"start": 1990, "end": 2000}, "unique_key": "x", "unique_scope": {"for": 0}}"#,
    ))
    .await
    .assert_error(400, "invalid_params");
    let keyless = app
        .send(post_json(
            "/jobs",
            r#"{"kind": "plot", "params": {"start": 1990, "end": 2000}, "unique_scope": "active"}"#,
        ))
        .await;
    assert_eq!(
        keyless.status,
        StatusCode::CREATED,
        "a scope without a key is ignored"
    );
    assert!(keyless.json().get("unique_scope").is_none());
}

#[tokio::test]
async fn submits_take_a_priority_and_a_delay_or_a_time() {
    let app = TestApp::new();
    let answer = app
        .send(post_json(
            "/jobs",
            r#"{"kind": "plot", "params": {"start": 1990, "end": 2000}, "priority": 5, "delay": 60}"#,
        ))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let job = answer.json();
    assert_eq!(job["priority"], 5);
    let created =
        chrono::DateTime::parse_from_rfc3339(job["created_at"].as_str().unwrap()).unwrap();
    let run_at = chrono::DateTime::parse_from_rfc3339(job["run_at"].as_str().unwrap()).unwrap();
    assert_eq!(run_at - created, chrono::Duration::seconds(60));
    let stats = holidapp_core::store::total_counts(&app.backend.stats().await.unwrap());
    assert_eq!(stats.submitted, 1);
    assert!(
        app.backend
            .lease(
                &holidapp_core::QueueName::default_queue(),
                "w",
                std::time::Duration::from_secs(30)
            )
            .await
            .unwrap()
            .is_none(),
        "not leased before its time"
    );

    let course = app
        .send(post_json(
            "/jobs",
            r#"{"start": 1990, "end": 2000, "priority": -3, "run_at": "2000-01-01T00:00:00Z"}"#,
        ))
        .await;
    assert_eq!(course.status, StatusCode::CREATED, "{}", course.text());
    assert_eq!(course.json()["priority"], -3);
    assert!(
        course.json().get("run_at").is_none(),
        "a time past is no delay"
    );
    assert_eq!(app.lease().await.id().to_string(), course.json()["id"]);

    for (body, code) in [
        (
            r#"{"start": 1990, "end": 2000, "delay": 5, "run_at": "2030-01-01T00:00:00Z"}"#,
            "invalid_params",
        ),
        (
            r#"{"start": 1990, "end": 2000, "delay": -1}"#,
            "invalid_params",
        ),
        (
            r#"{"start": 1990, "end": 2000, "delay": 1e12}"#,
            "invalid_params",
        ),
        (
            r#"{"start": 1990, "end": 2000, "run_at": "2999-01-01T00:00:00Z"}"#,
            "invalid_params",
        ),
        (
            r#"{"start": 1990, "end": 2000, "priority": 1001}"#,
            "invalid_params",
        ),
        (
            r#"{"start": 1990, "end": 2000, "priority": 1.5}"#,
            "invalid_body",
        ),
        (
            r#"{"start": 1990, "end": 2000, "run_at": "tomorrow"}"#,
            "invalid_body",
        ),
        (
            r#"{"kind": "plot", "params": {"start": 1990, "end": 2000}, "delay": "soon"}"#,
            "invalid_body",
        ),
    ] {
        app.send(post_json("/jobs", body))
            .await
            .assert_error(400, code);
    }
}

#[tokio::test]
async fn cancel_stops_waiting_and_running_jobs_and_refuses_finished_ones() {
    let app = TestApp::new();
    let running = enqueue(&app.backend, "1990").await;
    let waiting = enqueue(&app.backend, "1991").await;
    let lease = app.lease().await;
    assert_eq!(lease.id(), running.id);
    for job in [&waiting, &running] {
        let uri = format!("/jobs/{}/cancel", job.id);
        let answer = app.send(post_json(&uri, "")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let shown = answer.json();
        assert_eq!(shown["id"], job.id.to_string());
        assert_eq!(shown["status"], "cancelled");
        assert!(shown["finished_at"].is_string());
        assert_eq!(
            app.send(get(&format!("/jobs/{}", job.id))).await.json(),
            shown
        );
        let again = app.send(post_json(&uri, "")).await;
        assert_eq!((again.status, again.json()), (StatusCode::OK, shown));
        app.send(get(&format!("/jobs/{}/result", job.id)))
            .await
            .assert_error(409, "job_cancelled");
    }
    assert!(app.backend.complete(&lease, blank_png()).await.is_err());
    let listed = app.send(get("/jobs?status=cancelled")).await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");

    let done = enqueue(&app.backend, "1992").await;
    let lease = app.lease().await;
    app.backend.complete(&lease, blank_png()).await.unwrap();
    app.send(post_json(&format!("/jobs/{}/cancel", done.id), ""))
        .await
        .assert_error(409, "conflict");
    app.send(post_json(
        &format!("/jobs/{}/cancel", uuid::Uuid::new_v4()),
        "",
    ))
    .await
    .assert_error(404, "not_found");
    app.send(post_json("/jobs/nope/cancel", ""))
        .await
        .assert_error(400, "invalid_job_id");
}

#[tokio::test]
async fn retry_runs_a_failed_job_again_and_refuses_others() {
    let app = TestApp::new();
    let failed = enqueue(&app.backend, "1990").await;
    let lease = app.lease().await;
    app.backend
        .fail(&lease, "no data", FailureKind::Permanent)
        .await
        .unwrap();
    let uri = format!("/jobs/{}/retry", failed.id);
    let answer = app.send(post_json(&uri, "")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let shown = answer.json();
    assert_eq!(
        (&shown["id"], &shown["status"], &shown["attempts"]),
        (
            &json!(failed.id.to_string()),
            &json!("submitted"),
            &json!(0)
        )
    );
    assert!(shown.get("error").is_none_or(|e| e.is_null()), "{shown}");
    assert_eq!(
        app.send(get(&format!("/jobs/{}", failed.id))).await.json(),
        shown
    );
    assert_eq!(app.lease().await.id(), failed.id, "leasable again");
    app.send(post_json(&uri, ""))
        .await
        .assert_error(409, "conflict");
    app.send(post_json(
        &format!("/jobs/{}/retry", uuid::Uuid::new_v4()),
        "",
    ))
    .await
    .assert_error(404, "not_found");
    app.send(post_json("/jobs/nope/retry", ""))
        .await
        .assert_error(400, "invalid_job_id");
}

#[tokio::test]
async fn job_result_is_the_png_once_complete_and_a_clear_409_before_or_on_failure() {
    let app = TestApp::new();
    let job = enqueue(&app.backend, "1990").await;
    let uri = format!("/jobs/{}/result", job.id);

    let message = app
        .send(get(&uri))
        .await
        .assert_error(409, "job_not_finished");
    assert!(message.contains("submitted"), "{message}");
    let lease = app.lease().await;
    let message = app
        .send(get(&uri))
        .await
        .assert_error(409, "job_not_finished");
    assert!(message.contains("in progress"), "{message}");

    app.backend.complete(&lease, blank_png()).await.unwrap();
    for route in ["jobs/{id}/result", "results/{id}", "download/{id}"] {
        let uri = format!("/{}", route.replace("{id}", &job.id.to_string()));
        let answer = app.send(get(&uri)).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}");
        assert_eq!(answer.content_type(), "image/png");
        assert_eq!(answer.body.as_ref(), holidapp_worker::BLANK_PNG);
    }

    let failing = enqueue(&app.backend, "1991").await;
    let lease = app.lease().await;
    app.backend
        .fail(
            &lease,
            "no records between 1991 and 2000",
            FailureKind::Permanent,
        )
        .await
        .unwrap();
    let message = app
        .send(get(&format!("/results/{}", failing.id)))
        .await
        .assert_error(409, "job_failed");
    assert!(
        message.contains("no records between 1991 and 2000"),
        "{message}"
    );

    app.send(get(&format!("/download/{}", uuid::Uuid::new_v4())))
        .await
        .assert_error(404, "not_found");
    app.send(get("/results/xyz"))
        .await
        .assert_error(400, "invalid_job_id");
}

#[tokio::test]
async fn course_status_aliases_show_one_job() {
    let app = TestApp::new();
    let job = enqueue(&app.backend, "1990").await;
    let direct = app.send(get(&format!("/jobs/{}", job.id))).await.json();
    for route in ["/jobs_status", "/job_status"] {
        let answer = app.send(get(&format!("{route}?job_id={}", job.id))).await;
        assert_eq!(answer.status, StatusCode::OK, "{route}");
        assert_eq!(answer.json(), direct);
        app.send(get(route))
            .await
            .assert_error(400, "invalid_query");
        app.send(get(&format!("{route}?job_id=nope")))
            .await
            .assert_error(400, "invalid_job_id");
        app.send(get(&format!("{route}?job_id={}", uuid::Uuid::new_v4())))
            .await
            .assert_error(404, "not_found");
    }
}

#[tokio::test]
async fn course_list_aliases_filter_by_status() {
    let app = TestApp::new();
    let done = enqueue(&app.backend, "1990").await;
    let running = enqueue(&app.backend, "1991").await;
    let waiting = enqueue(&app.backend, "1992").await;
    let lease = app.lease().await;
    app.backend.complete(&lease, blank_png()).await.unwrap();
    app.lease().await;

    let ids = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let completed = app.send(get("/completed_jobs")).await.json();
    assert_eq!(ids(completed), [done.id.to_string()]);
    let in_progress = app.send(get("/inprogress_jobs")).await.json();
    assert_eq!(ids(in_progress), [running.id.to_string()]);
    let incomplete = app.send(get("/incomplete_jobs")).await.json();
    assert_eq!(
        ids(incomplete),
        [waiting.id.to_string(), running.id.to_string()]
    );
    let first = app.send(get("/incomplete_jobs?limit=1")).await.json();
    assert_eq!(ids(first), [waiting.id.to_string()]);

    app.send(get("/completed_jobs?limit=-1"))
        .await
        .assert_error(400, "invalid_query");
    app.send(get("/inprogress_jobs?status=complete"))
        .await
        .assert_error(400, "invalid_query");
    app.send(get("/incomplete_jobs?offset=1"))
        .await
        .assert_error(400, "invalid_query");
}

#[tokio::test]
async fn post_data_without_body_loads_the_configured_source() {
    let app = TestApp::new();
    let answer = app.send(request(Method::POST, "/data", None, "")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json(), json!({"loaded": 266}));
    assert_eq!(app.plots.data().len().await.unwrap(), 266);

    let meteorites = TestApp::with(|s| with_source(s, "bundled:meteorites"));
    let answer = meteorites
        .send(request(Method::POST, "/data", None, ""))
        .await;
    assert_eq!(answer.json(), json!({"loaded": 300}));
}

#[tokio::test]
async fn post_data_from_a_file_source_and_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set.json");
    std::fs::write(&path, r#"[{"id": "a", "year": "2001"}, {"id": "b"}]"#).unwrap();
    let app = TestApp::with(|s| with_source(s, &path.display().to_string()));
    let answer = app.send(request(Method::POST, "/data", None, "")).await;
    assert_eq!(answer.json(), json!({"loaded": 2}));

    let missing = dir.path().join("missing.json").display().to_string();
    let broken = TestApp::with(|s| with_source(s, &missing));
    broken
        .send(request(Method::POST, "/data", None, ""))
        .await
        .assert_error(502, "data_source_failed");
}

#[tokio::test]
async fn post_data_reads_json_and_tsv_bodies() {
    let app = TestApp::new();
    let hgnc = json!({"response": {"docs": [
        {"hgnc_id": "HGNC:5", "symbol": "A1BG", "locus_group": "protein-coding gene",
         "date_approved_reserved": "1989-06-30"},
        {"hgnc_id": "HGNC:37133", "symbol": "A1BG-AS1", "locus_group": "non-coding RNA",
         "date_approved_reserved": "2009-07-20"},
    ]}});
    let answer = app.send(post_json("/data", hgnc.to_string())).await;
    assert_eq!(answer.json(), json!({"loaded": 2}), "{}", answer.text());
    assert_eq!(
        app.send(get("/genes")).await.json(),
        json!(["HGNC:5", "HGNC:37133"])
    );

    let tsv = "hgnc_id\tsymbol\nHGNC:5\tA1BG\nHGNC:6\tA1BG2\nHGNC:7\tA2M\n";
    for content_type in [
        "text/tab-separated-values",
        "Text/Tab-Separated-Values; charset=utf-8",
        "application/octet-stream",
    ] {
        let answer = app
            .send(request(Method::POST, "/data", Some(content_type), tsv))
            .await;
        assert_eq!(answer.json(), json!({"loaded": 3}), "{content_type}");
    }
    let record = app.send(get("/genes/HGNC:7")).await.json();
    assert_eq!(record, json!({"hgnc_id": "HGNC:7", "symbol": "A2M"}));
}

#[tokio::test]
async fn post_data_errors() {
    let app = TestApp::new();
    app.send(post_json("/data", "{\"response\": "))
        .await
        .assert_error(400, "malformed_json");
    app.send(post_json("/data", r#"{"something": []}"#))
        .await
        .assert_error(400, "invalid_data");
    app.send(request(
        Method::POST,
        "/data",
        Some("text/tab-separated-values"),
        "just words",
    ))
    .await
    .assert_error(400, "invalid_data");
    app.send(request(
        Method::POST,
        "/data",
        Some("application/xml"),
        "<a/>",
    ))
    .await
    .assert_error(415, "unsupported_media_type");
    app.send(request(Method::POST, "/data", None, "[{\"id\": 1}]"))
        .await
        .assert_error(415, "unsupported_media_type");
    let small = TestApp::with(|s| s.with_limits(crate::support::small_limits()));
    let big = format!("[{}{{\"id\": 0}}]", "{\"id\": 1},".repeat(10_000));
    small
        .send(post_json("/data", big))
        .await
        .assert_error(413, "payload_too_large");
    // A failed load leaves nothing loaded.
    assert_eq!(app.plots.data().version().await.unwrap(), 0);
}

#[tokio::test]
async fn get_data_pages_in_load_order_with_total_and_next_link() {
    let app = TestApp::new();
    let empty = app.send(get("/data")).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json(), json!([]));
    assert_eq!(empty.headers["x-total-count"], "0");

    app.load_sample().await;
    let all_ids = app.send(get("/genes")).await.json();
    let first = app.send(get("/data?limit=2")).await;
    assert_eq!(first.headers["x-total-count"], "266");
    assert_eq!(
        first.headers[header::LINK],
        "</data?start=2&limit=2>; rel=\"next\""
    );
    let records = first.json();
    assert_eq!(records.as_array().unwrap().len(), 2);
    assert_eq!(records[0]["hgnc_id"], all_ids[0]);
    assert_eq!(records[1]["hgnc_id"], all_ids[1]);

    let skipped = app.send(get("/data?start=264")).await;
    let records = skipped.json();
    assert_eq!(records.as_array().unwrap().len(), 2);
    assert_eq!(records[1]["hgnc_id"], all_ids[265]);
    assert!(skipped.headers.get(header::LINK).is_none());
    let default_page = app.send(get("/data")).await.json();
    assert_eq!(default_page.as_array().unwrap().len(), 266);
    let beyond = app.send(get(&format!("/data?start={}", u64::MAX))).await;
    assert_eq!(beyond.json(), json!([]));

    for query in ["start=-1", "limit=0", "limit=10001", "limit=ten", "skip=1"] {
        app.send(get(&format!("/data?{query}")))
            .await
            .assert_error(400, "invalid_query");
    }
}

#[tokio::test]
async fn get_record_and_gene_by_id() {
    let app = TestApp::new();
    app.send(get("/data/HGNC:5"))
        .await
        .assert_error(404, "not_found");
    app.load_sample().await;
    let ids = app.send(get("/genes")).await.json();
    let ids = ids.as_array().unwrap();
    assert_eq!(ids.len(), 266);
    let id = ids[10].as_str().unwrap();
    let by_data = app.send(get(&format!("/data/{id}"))).await;
    assert_eq!(by_data.status, StatusCode::OK);
    assert_eq!(by_data.json()["hgnc_id"], id);
    let by_gene = app.send(get(&format!("/genes/{id}"))).await;
    assert_eq!(by_gene.json(), by_data.json());
    let message = app
        .send(get("/genes/HGNC:0"))
        .await
        .assert_error(404, "not_found");
    assert!(message.contains("HGNC:0"), "{message}");
    app.send(get("/data/%FF"))
        .await
        .assert_error(400, "invalid_path");
}

#[tokio::test]
async fn delete_data_clears_it_once() {
    let app = TestApp::new();
    app.send(delete("/data"))
        .await
        .assert_error(404, "not_found");
    app.load_sample().await;
    let answer = app.send(delete("/data")).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(app.send(get("/genes")).await.json(), json!([]));
    app.send(delete("/data"))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn image_before_data_and_without_an_image_are_clear_4xx() {
    let app = TestApp::new();
    let message = app
        .send(request(Method::POST, "/image", None, ""))
        .await
        .assert_error(409, "no_data");
    assert!(message.contains("POST /data"), "{message}");
    let message = app.send(get("/image")).await.assert_error(404, "not_found");
    assert!(message.contains("POST /image"), "{message}");
    app.send(delete("/image"))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn image_is_rendered_stored_fetched_and_deleted() {
    let app = TestApp::new();
    app.load_sample().await;
    let created = app.send(request(Method::POST, "/image", None, "")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let size = created.json()["bytes"].as_u64().unwrap();
    assert_eq!(created.json()["image"], "/image");

    let image = app.send(get("/image")).await;
    assert_eq!(image.status, StatusCode::OK);
    assert_eq!(image.content_type(), "image/png");
    assert_eq!(image.body.len() as u64, size);
    let decoder = png::Decoder::new(std::io::Cursor::new(image.body.to_vec()));
    let info = decoder.read_info().expect("a PNG").info().clone();
    assert_eq!((info.width, info.height), (800, 600));

    let params = json!({"start": 1990, "end": 2020,
                        "plot": {"kind": "categories", "width": 300, "height": 200}});
    let answer = app.send(post_json("/image", params.to_string())).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let image = app.send(get("/image")).await;
    let decoder = png::Decoder::new(std::io::Cursor::new(image.body.to_vec()));
    let info = decoder.read_info().expect("a PNG").info().clone();
    assert_eq!((info.width, info.height), (300, 200));

    let deleted = app.send(delete("/image")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    app.send(get("/image")).await.assert_error(404, "not_found");
}

#[tokio::test]
async fn image_parameter_errors() {
    let app = TestApp::new();
    app.load_sample().await;
    app.send(post_json("/image", r#"{"start": "abc", "end": 2000}"#))
        .await
        .assert_error(400, "invalid_params");
    app.send(post_json("/image", r#"{"start": 1990"#))
        .await
        .assert_error(400, "malformed_json");
    app.send(post_json(
        "/image",
        r#"{"start": 1990, "end": 2000, "x": 1}"#,
    ))
    .await
    .assert_error(400, "invalid_body");
    app.send(request(Method::POST, "/image", Some("text/plain"), "1990"))
        .await
        .assert_error(415, "unsupported_media_type");
    let message = app
        .send(post_json("/image", r#"{"start": -5000, "end": -4000}"#))
        .await
        .assert_error(422, "render_failed");
    assert!(message.contains("-5000"), "{message}");
    app.send(get("/image")).await.assert_error(404, "not_found");
}

#[tokio::test]
async fn index_records_visits_that_visits_returns() {
    let app = TestApp::new();
    let visits = app.send(get("/visits")).await;
    assert_eq!(visits.status, StatusCode::OK);
    assert!(visits.body.is_empty());
    for _ in 0..3 {
        let answer = app.send(get("/")).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["help"], "/help");
    }
    let visits = app.send(get("/visits")).await;
    assert!(visits.content_type().starts_with("text/plain"));
    let lines: Vec<String> = visits.text().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3);
    for line in lines {
        chrono::DateTime::parse_from_rfc3339(&line)
            .unwrap_or_else(|e| panic!("'{line}' is not RFC 3339: {e}"));
    }
}

#[tokio::test]
async fn an_unwritable_visits_log_is_a_generic_500() {
    let app = TestApp::new();
    let app = TestApp::with(|s| s.with_visits_log(app.dir.path().join("no/such/dir/visits.log")));
    let message = app.send(get("/")).await.assert_error(500, "internal");
    assert!(!message.contains("no/such/dir"), "{message}");
}

#[tokio::test]
async fn concurrent_visits_are_whole_lines() {
    let app = TestApp::new();
    let visits = (0..50).map(|_| app.send(get("/")));
    for answer in futures::future::join_all(visits).await {
        assert_eq!(answer.status, StatusCode::OK);
    }
    let log = app.send(get("/visits")).await.text();
    assert_eq!(log.lines().count(), 50);
    assert!(
        log.lines()
            .all(|l| chrono::DateTime::parse_from_rfc3339(l).is_ok())
    );
}

#[tokio::test]
async fn health_readiness_and_help() {
    let app = TestApp::new();
    let health = app.send(get("/healthz")).await;
    assert_eq!(health.json(), json!({"status": "ok"}));
    let ready = app.send(get("/readyz")).await;
    assert_eq!(ready.json(), json!({"status": "ready"}));
    let help = app.send(get("/help")).await;
    assert!(help.content_type().starts_with("text/plain"));
    let text = help.text();
    for line in [
        "POST    /jobs ",
        "GET     /jobs/{id}/result ",
        "GET     /download/{id} ",
        "DELETE  /image ",
        "GET     /visits ",
    ] {
        assert!(text.contains(line), "help lacks '{line}':\n{text}");
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_read_jobs_from_the_store() {
    let app = TestApp::new();
    app.submit("1990", "2000").await;
    app.submit("1991", "2000").await;
    app.send(get("/jobs/nope")).await;
    app.send(get("/no/such/route")).await;
    let lease = app.lease().await;
    app.backend.complete(&lease, blank_png()).await.unwrap();

    let answer = app.send(get("/metrics")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer
            .content_type()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = answer.text();
    for line in [
        "holidapp_http_requests_total{route=\"/jobs\",method=\"POST\",status=\"201\"} 2",
        "holidapp_http_requests_total{route=\"/jobs/{id}\",method=\"GET\",status=\"400\"} 1",
        "holidapp_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
        "holidapp_jobs_submitted_total{kind=\"plot\"} 2",
        "holidapp_jobs{queue=\"default\",status=\"complete\"} 1",
        "holidapp_jobs{queue=\"default\",status=\"submitted\"} 1",
        "holidapp_jobs{queue=\"default\",status=\"in_progress\"} 0",
        "holidapp_queue_depth{queue=\"default\",state=\"ready\"} 1",
        "holidapp_queue_depth{queue=\"default\",state=\"delayed\"} 0",
        "holidapp_queue_finished_total{queue=\"default\",outcome=\"completed\"} 1",
        "holidapp_queue_finished_total{queue=\"default\",outcome=\"failed\"} 0",
        "holidapp_backend_up 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "metrics lack '{line}':\n{text}"
        );
    }
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = TestApp::new();
    let mut request = get("/healthz");
    request
        .headers_mut()
        .insert("x-request-id", "abc-123".parse().unwrap());
    let answer = app.send(request).await;
    assert_eq!(answer.headers["x-request-id"], "abc-123");

    let first = app.send(get("/healthz")).await;
    let second = app.send(get("/no/such/route")).await;
    let (a, b) = (
        &first.headers["x-request-id"],
        &second.headers["x-request-id"],
    );
    assert!(!a.is_empty() && !b.is_empty());
    assert_ne!(a, b);

    let mut request = get("/healthz");
    request
        .headers_mut()
        .insert("x-request-id", "x".repeat(500).parse().unwrap());
    let answer = app.send(request).await;
    assert!(answer.headers["x-request-id"].len() < 100);
}

#[tokio::test]
async fn a_job_runs_through_the_processing_step_and_its_png_is_served() {
    let app = TestApp::new();
    app.load_sample().await;
    let id = app.submit("1980", "2020").await;
    let processor = holidapp_core::Processor::new(
        app.backend.clone(),
        app.state.jobs.kinds().clone(),
        std::time::Duration::from_secs(30),
    );
    let outcome = processor.process_one("10.0.0.7").await.unwrap();
    assert!(matches!(outcome, holidapp_core::Outcome::Processed(_)));
    let job = app.send(get(&format!("/jobs/{id}"))).await.json();
    assert_eq!(job["status"], JobStatus::Complete.as_str());
    assert_eq!(job["worker"], "10.0.0.7");
    assert_eq!(job["attempts"], 1);
    assert!(job["finished_at"].is_string());
    let png = app.send(get(&format!("/jobs/{id}/result"))).await;
    assert_eq!(png.status, StatusCode::OK);
    let decoder = png::Decoder::new(std::io::Cursor::new(png.body.to_vec()));
    decoder.read_info().expect("a decodable PNG");
}

#[tokio::test]
async fn get_queues_answers_counts_and_the_finished_counters() {
    let app = TestApp::new();
    assert_eq!(app.send(get("/queues")).await.json(), json!([]));
    for start in ["1990", "1991", "1992"] {
        enqueue(&app.backend, start).await;
    }
    let done = app.lease().await;
    app.backend.complete(&done, blank_png()).await.unwrap();
    let failed = app.lease().await;
    app.backend
        .fail(&failed, "no", FailureKind::Permanent)
        .await
        .unwrap();
    let answer = app.send(get("/queues")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let queues = answer.json();
    assert_eq!(
        queues,
        json!([{
            "queue": "default",
            "counts": {"submitted": 1, "in progress": 0, "complete": 1, "failed": 1,
                       "cancelled": 0},
            "ready": 1,
            "delayed": 0,
            "completed_total": 1,
            "failed_total": 1,
            "throughput": [],
        }])
    );
}

#[tokio::test]
async fn get_workers_lists_the_live_workers_and_metrics_export_them() {
    use holidapp_core::{WorkerInfo, WorkerRegistry};
    let app = TestApp::new();
    assert_eq!(app.send(get("/workers")).await.json(), json!([]));
    let worker = WorkerInfo {
        id: "10.0.0.7/0000beef".to_owned(),
        identity: "10.0.0.7".to_owned(),
        queues: vec![holidapp_core::QueueName::default_queue()],
        concurrency: 2,
        in_flight: 1,
        leased: 12,
        completed: 10,
        failed: 1,
        retried: 0,
        started_at: chrono::DateTime::UNIX_EPOCH,
        last_seen: chrono::DateTime::UNIX_EPOCH,
    };
    app.backend
        .beat(&worker, std::time::Duration::from_secs(6))
        .await
        .unwrap();
    let answer = app.send(get("/workers")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let listed = answer.json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let w = &listed[0];
    assert_eq!(w["id"], "10.0.0.7/0000beef");
    assert_eq!(w["identity"], "10.0.0.7");
    assert_eq!(w["queues"], json!(["default"]));
    assert_eq!(
        (w["completed"].as_u64(), w["in_flight"].as_u64()),
        (Some(10), Some(1))
    );
    assert_eq!(w["started_at"], "1970-01-01T00:00:00Z");
    assert_ne!(w["last_seen"], w["started_at"], "the registry's time");

    let text = app.send(get("/metrics")).await.text();
    for line in [
        "holidapp_workers 1",
        "holidapp_worker_in_flight{worker=\"10.0.0.7/0000beef\",identity=\"10.0.0.7\"} 1",
        "holidapp_worker_jobs_total{worker=\"10.0.0.7/0000beef\",identity=\"10.0.0.7\",outcome=\"completed\"} 10",
        "holidapp_worker_jobs_total{worker=\"10.0.0.7/0000beef\",identity=\"10.0.0.7\",outcome=\"failed\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "metrics lack '{line}':\n{text}"
        );
    }
    app.backend.leave(&worker.id).await.unwrap();
    assert_eq!(app.send(get("/workers")).await.json(), json!([]));
}
