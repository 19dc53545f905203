//! What the OpenAPI document states, the server does, and the other way round: one spelling of
//! a job id, a status, a cursor and a year; integers written as JSON may write them (`3.0`);
//! `null` is an absent field; data sets as JSON objects, text or bytes. `scripts/fuzz_api.sh`
//! checks the whole document against the real binary; these are the rules it found, kept here.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, enqueue, get, post_json, post_text, request};

/// Submits `body` to `POST /jobs` and answers the job, which must have been created.
async fn submitted(app: &TestApp, body: Value) -> Value {
    let answer = app.send(post_json("/jobs", body.to_string())).await;
    assert_eq!(
        answer.status,
        StatusCode::CREATED,
        "{body}: {}",
        answer.text()
    );
    answer.json()
}

#[tokio::test]
async fn a_job_id_has_one_spelling_the_hyphenated_one() {
    let app = TestApp::new();
    let job = enqueue(&app.backend, "1990").await;
    let id = job.id.as_uuid();
    for found in [
        id.hyphenated().to_string(),
        id.hyphenated().to_string().to_uppercase(),
    ] {
        assert_eq!(
            app.send(get(&format!("/jobs/{found}"))).await.status,
            StatusCode::OK
        );
        let status = app.send(get(&format!("/jobs_status?job_id={found}"))).await;
        assert_eq!(status.status, StatusCode::OK, "{found}");
    }
    for other in [
        id.simple().to_string(),
        format!("%7B{id}%7D"),
        format!("urn:uuid:{id}"),
    ] {
        for uri in [
            format!("/jobs/{other}"),
            format!("/jobs/{other}/result"),
            format!("/job_status?job_id={other}"),
        ] {
            app.send(get(&uri))
                .await
                .assert_error(400, "invalid_job_id");
        }
    }
}

#[tokio::test]
async fn a_status_filter_is_spelled_as_jobs_show_it() {
    let app = TestApp::new();
    enqueue(&app.backend, "1990").await;
    let submitted = app.send(get("/jobs?status=submitted")).await.json();
    assert_eq!(submitted.as_array().unwrap().len(), 1);
    for other in [
        "in_progress",
        "in-progress",
        "inprogress",
        "COMPLETE",
        "completed",
        "%20complete%20",
        "",
    ] {
        let answer = app.send(get(&format!("/jobs?status={other}"))).await;
        let message = answer.assert_error(400, "invalid_query");
        assert!(message.contains("in progress"), "{other}: {message}");
    }
}

#[tokio::test]
async fn a_cursor_is_written_as_its_digits() {
    let app = TestApp::new();
    for _ in 0..3 {
        enqueue(&app.backend, "1990").await;
    }
    let first = app.send(get("/jobs?limit=1")).await;
    let cursor = first.headers["x-next-cursor"].to_str().unwrap().to_owned();
    let next = app
        .send(get(&format!("/jobs?limit=1&before={cursor}")))
        .await;
    assert_eq!(next.status, StatusCode::OK);
    for other in [
        format!("%2B{cursor}"),
        format!("%20{cursor}"),
        format!("{cursor}.0"),
        "-0".to_owned(),
        "18446744073709551616".to_owned(),
    ] {
        for route in ["/jobs", "/completed_jobs", "/inprogress_jobs"] {
            app.send(get(&format!("{route}?before={other}")))
                .await
                .assert_error(400, "invalid_query");
        }
    }
}

#[tokio::test]
async fn a_year_given_as_a_string_is_its_digits() {
    let app = TestApp::new();
    for (start, shown) in [
        (json!("-5000"), "-5000"),
        (json!("0"), "0"),
        (json!(-42), "-42"),
    ] {
        let job = submitted(&app, json!({"start": start, "end": "9999"})).await;
        assert_eq!(job["start"], shown);
    }
    app.load_sample().await;
    for other in [" 1990", "1990 ", "+1990", "01990", "-0", "1990.0", "1e3"] {
        let body = json!({"start": other, "end": "2000"}).to_string();
        app.send(post_json("/jobs", body.clone()))
            .await
            .assert_error(400, "invalid_params");
        app.send(post_json("/image", body))
            .await
            .assert_error(400, "invalid_params");
    }
}

#[tokio::test]
async fn integers_may_be_written_with_a_zero_fraction_or_an_exponent() {
    let app = TestApp::new();
    let plot = json!({"kind": "categories", "top": 5.0, "width": 8e2, "height": 600.0});
    let job = submitted(
        &app,
        json!({"start": 1990.0, "end": 2e3, "plot": plot, "max_attempts": 3.0, "timeout": 5e0}),
    )
    .await;
    assert_eq!(
        (&job["start"], &job["end"]),
        (&json!("1990"), &json!("2000"))
    );
    assert_eq!(
        (&job["max_attempts"], &job["timeout"]),
        (&json!(3), &json!(5))
    );
    let job = submitted(
        &app,
        json!({"kind": "plot", "params": {"start": 1990, "end": 2000.0},
               "max_attempts": 2.0, "timeout": 1e1}),
    )
    .await;
    assert_eq!(
        (&job["max_attempts"], &job["timeout"]),
        (&json!(2), &json!(10))
    );
    for fraction in [
        json!({"start": 1990.5, "end": 2000}),
        json!({"start": 1990, "end": 2000, "max_attempts": 2.5}),
        json!({"start": 1990, "end": 2000, "plot": {"width": 800.5}}),
        json!({"kind": "plot", "params": {"start": 1990, "end": 2000}, "timeout": 0.5}),
    ] {
        let answer = app.send(post_json("/jobs", fraction.to_string())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{fraction}");
    }
    // Record ids too.
    let landings = json!({"meteorite_landings": [{"id": 5.0, "name": "a"}, {"id": 6e0}]});
    let loaded = app.send(post_json("/data", landings.to_string())).await;
    assert_eq!(loaded.json(), json!({"loaded": 2}), "{}", loaded.text());
    assert_eq!(app.send(get("/genes")).await.json(), json!(["5", "6"]));
    assert_eq!(app.send(get("/data/5")).await.json()["name"], "a");
}

#[tokio::test]
async fn null_is_the_same_as_an_absent_field() {
    let app = TestApp::new();
    let job = submitted(
        &app,
        json!({"start": "1990", "end": "2000", "plot": null, "queue": null,
               "max_attempts": null, "timeout": null}),
    )
    .await;
    assert_eq!(job["queue"], "default");
    assert_eq!(job["max_attempts"], 3);
    assert!(
        job.get("plot").is_none() && job.get("timeout").is_none(),
        "{job}"
    );
    submitted(
        &app,
        json!({"kind": "plot", "params": {"start": "1990", "end": "2000", "plot": null},
               "queue": null, "max_attempts": null, "timeout": null, "unique_key": null}),
    )
    .await;
    // Options of the kind itself may be null too.
    submitted(
        &app,
        json!({"start": "1990", "end": "2000",
               "plot": {"kind": null, "field": null, "width": null, "title": null}}),
    )
    .await;
    app.load_sample().await;
    let image = app
        .send(post_json(
            "/image",
            json!({"start": "1990", "end": "2020", "plot": null}).to_string(),
        ))
        .await;
    assert_eq!(image.status, StatusCode::CREATED, "{}", image.text());
}

#[tokio::test]
async fn an_option_of_another_kind_is_refused_even_as_null() {
    let app = TestApp::new();
    for plot in [
        json!({"x": null}),
        json!({"kind": null, "top": null}),
        json!({"kind": "scatter", "field": null}),
        json!({"kind": "categories", "y": null}),
    ] {
        let body = json!({"start": 1990, "end": 2000, "plot": plot}).to_string();
        let message = app
            .send(post_json("/jobs", body))
            .await
            .assert_error(400, "invalid_params");
        assert!(message.contains("does not apply"), "{plot}: {message}");
    }
}

#[tokio::test]
async fn a_data_set_is_a_json_object_or_text_or_bytes() {
    let app = TestApp::new();
    let array = r#"[{"id": "a", "v": 1}, {"id": "b", "v": 2}]"#;
    let message = app
        .send(post_json("/data", array))
        .await
        .assert_error(400, "invalid_data");
    assert!(
        message.contains("text/tab-separated-values")
            && message.contains("application/octet-stream"),
        "{message}"
    );
    assert_eq!(
        app.plots.data().version().await.unwrap(),
        0,
        "nothing loaded"
    );
    assert_eq!(
        app.send(post_text("/data", array)).await.json()["loaded"],
        2
    );
    let tsv = "hgnc_id\tsymbol\nHGNC:5\tA1BG\nHGNC:6\tA1BG2\nHGNC:7\tA2M\n";
    for (body, loaded) in [(array, 2), (tsv, 3)] {
        let answer = app
            .send(request(
                Method::POST,
                "/data",
                Some("application/octet-stream"),
                body,
            ))
            .await;
        assert_eq!(answer.json(), json!({"loaded": loaded}), "{body}");
    }
}

#[tokio::test]
async fn a_data_set_holding_both_json_layouts_is_refused_in_either_order() {
    let app = TestApp::new();
    for both in [
        r#"{"response": {"docs": [{"hgnc_id": "HGNC:5"}]}, "meteorite_landings": [{"id": 1}]}"#,
        r#"{"meteorite_landings": [{"id": 1}], "response": {"docs": [{"hgnc_id": "HGNC:5"}]}}"#,
        r#"{"response": {"docs": [{"hgnc_id": "HGNC:5"}]}, "meteorite_landings": null}"#,
    ] {
        let message = app
            .send(post_json("/data", both))
            .await
            .assert_error(400, "invalid_data");
        assert!(message.contains("both"), "{both}: {message}");
    }
    // Other fields beside one layout are ignored, as HGNC's own answers carry some.
    let hgnc =
        r#"{"responseHeader": {"status": 0}, "response": {"docs": [{"hgnc_id": "HGNC:5"}]}}"#;
    assert_eq!(app.send(post_json("/data", hgnc)).await.json()["loaded"], 1);
}

#[tokio::test]
async fn an_integer_record_id_is_one_every_json_reader_holds_exactly() {
    let app = TestApp::new();
    let largest = json!({"meteorite_landings": [{"id": 9_007_199_254_740_991_i64},
                                               {"id": -9_007_199_254_740_991_i64}]});
    let loaded = app.send(post_json("/data", largest.to_string())).await;
    assert_eq!(loaded.json()["loaded"], 2, "{}", loaded.text());
    for past in [
        "9007199254740992",
        "-9007199254740992",
        "18446744073709551615",
        "-9223372036854775809",
    ] {
        let body = format!(r#"{{"meteorite_landings": [{{"id": {past}}}]}}"#);
        let message = app
            .send(post_json("/data", body))
            .await
            .assert_error(400, "invalid_data");
        assert!(message.contains("as a string"), "{past}: {message}");
    }
}
