//! Malformed and hostile requests: each gets its intended 4xx with the JSON error shape, and
//! the app keeps answering.

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};

use crate::support::{TestApp, post_json, small_limits};

/// One hostile request and the error it must get.
struct Case {
    method: Method,
    uri: String,
    content_type: Option<&'static [u8]>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn case(method: Method, uri: impl Into<String>, status: u16, code: &'static str) -> Case {
    Case {
        method,
        uri: uri.into(),
        content_type: None,
        body: Vec::new(),
        status,
        code,
    }
}

fn json_case(uri: &str, body: impl Into<Vec<u8>>, status: u16, code: &'static str) -> Case {
    Case {
        content_type: Some(b"application/json"),
        body: body.into(),
        ..case(Method::POST, uri, status, code)
    }
}

fn typed_case(
    uri: &str,
    content_type: &'static [u8],
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        content_type: Some(content_type),
        body: body.into(),
        ..case(Method::POST, uri, status, code)
    }
}

fn cases() -> Vec<Case> {
    use Method as M;
    let unknown = uuid::Uuid::new_v4();
    let nested = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    vec![
        // Bodies of POST /jobs.
        json_case("/jobs", "", 400, "malformed_json"),
        json_case("/jobs", "{", 400, "malformed_json"),
        json_case("/jobs", "{\"start\": 1990,}", 400, "malformed_json"),
        json_case("/jobs", "{'start': 1990}", 400, "malformed_json"),
        json_case(
            "/jobs",
            b"{\"start\": \"\xff\xfe\", \"end\": 1}".to_vec(),
            400,
            "malformed_json",
        ),
        json_case("/jobs", nested, 400, "malformed_json"),
        json_case(
            "/jobs",
            "{\"start\": 1e999, \"end\": 1}",
            400,
            "malformed_json",
        ),
        json_case("/jobs", "null", 400, "invalid_body"),
        json_case("/jobs", "[]", 400, "invalid_body"),
        json_case("/jobs", "\"1990\"", 400, "invalid_body"),
        json_case("/jobs", "{}", 400, "invalid_body"),
        json_case("/jobs", "{\"start\": 1990}", 400, "invalid_body"),
        json_case(
            "/jobs",
            "{\"start\": true, \"end\": 2000}",
            400,
            "invalid_body",
        ),
        json_case(
            "/jobs",
            "{\"start\": 1.5, \"end\": 2000}",
            400,
            "invalid_body",
        ),
        json_case(
            "/jobs",
            "{\"start\": [1990], \"end\": 2000}",
            400,
            "invalid_body",
        ),
        json_case(
            "/jobs",
            "{\"start\": 1, \"end\": 2, \"admin\": true}",
            400,
            "invalid_body",
        ),
        json_case(
            "/jobs",
            "{\"start\": 1, \"end\": 2, \"plot\": 7}",
            400,
            "invalid_body",
        ),
        json_case(
            "/jobs",
            "{\"start\": \"abc\", \"end\": \"2000\"}",
            400,
            "invalid_params",
        ),
        json_case(
            "/jobs",
            "{\"start\": 2000, \"end\": 1990}",
            400,
            "invalid_params",
        ),
        json_case(
            "/jobs",
            "{\"start\": -99999999, \"end\": 2000}",
            400,
            "invalid_params",
        ),
        json_case(
            "/jobs",
            "{\"start\": \"\\u0000\", \"end\": \"2000\"}",
            400,
            "invalid_params",
        ),
        json_case(
            "/jobs",
            "{\"start\": 1990, \"end\": 2000, \"plot\": {\"kind\": \"pie\"}}",
            400,
            "invalid_params",
        ),
        json_case(
            "/jobs",
            "{\"start\": 1990, \"end\": 2000, \"plot\": {\"width\": 1000000}}",
            400,
            "invalid_params",
        ),
        json_case(
            "/jobs",
            format!("{{\"start\": \"{}\", \"end\": 1}}", "9".repeat(1_100_000)),
            413,
            "payload_too_large",
        ),
        typed_case(
            "/jobs",
            b"text/plain",
            "{\"start\":1,\"end\":2}",
            415,
            "unsupported_media_type",
        ),
        typed_case(
            "/jobs",
            b"application/xml",
            "<job/>",
            415,
            "unsupported_media_type",
        ),
        typed_case(
            "/jobs",
            b"\xff\xfe",
            "{\"start\":1,\"end\":2}",
            415,
            "unsupported_media_type",
        ),
        Case {
            body: b"{\"start\":1,\"end\":2}".to_vec(),
            ..case(M::POST, "/jobs", 415, "unsupported_media_type")
        },
        // Bodies of POST /data and POST /image.
        json_case("/data", "{\"response\": {\"docs\": ", 400, "malformed_json"),
        json_case(
            "/data",
            "{\"response\": {\"docs\": 5}}",
            400,
            "invalid_data",
        ),
        json_case("/data", "[]", 400, "invalid_data"),
        json_case("/data", "[1, 2, 3]", 400, "invalid_data"),
        json_case("/data", "\"text\"", 400, "invalid_data"),
        typed_case(
            "/data",
            b"text/tab-separated-values",
            b"\xff\xfe\x00garbage".to_vec(),
            400,
            "invalid_data",
        ),
        typed_case(
            "/data",
            b"text/tab-separated-values",
            "no tabs here\nnor here",
            400,
            "invalid_data",
        ),
        typed_case(
            "/data",
            b"image/png",
            "\u{89}PNG",
            415,
            "unsupported_media_type",
        ),
        json_case(
            "/data",
            format!("[{}{{}}]", "{},".repeat(40_000)),
            413,
            "payload_too_large",
        ),
        json_case("/image", "{\"start\": ", 400, "malformed_json"),
        json_case(
            "/image",
            "{\"start\": 1990, \"end\": 2000, \"z\": 0}",
            400,
            "invalid_body",
        ),
        json_case(
            "/image",
            "{\"start\": \"x\", \"end\": 2000}",
            400,
            "invalid_params",
        ),
        json_case("/image", "{\"start\": 1990, \"end\": 2000}", 409, "no_data"),
        json_case("/image", "1".repeat(70_000), 413, "payload_too_large"),
        typed_case("/image", b"text/csv", "a,b", 415, "unsupported_media_type"),
        // Paths.
        case(M::GET, "/jobs/not-a-uuid", 400, "invalid_job_id"),
        case(M::GET, "/jobs/..", 400, "invalid_job_id"),
        case(M::GET, "/jobs/%2e%2e", 400, "invalid_job_id"),
        case(M::GET, "/jobs/%00", 400, "invalid_job_id"),
        case(M::GET, "/jobs/%FF%FE", 400, "invalid_path"),
        case(M::GET, "/jobs/%E2%80%AE", 400, "invalid_job_id"),
        case(M::GET, format!("/jobs/{unknown}"), 404, "not_found"),
        case(M::GET, format!("/jobs/{unknown}/result"), 404, "not_found"),
        // A job id has one spelling: the hyphenated one.
        case(
            M::GET,
            format!("/jobs/{}", unknown.simple()),
            400,
            "invalid_job_id",
        ),
        case(
            M::GET,
            format!("/jobs/%7B{unknown}%7D"),
            400,
            "invalid_job_id",
        ),
        case(
            M::GET,
            format!("/jobs/urn:uuid:{unknown}"),
            400,
            "invalid_job_id",
        ),
        case(
            M::GET,
            format!("/jobs/{}", unknown.to_string().to_uppercase()),
            404,
            "not_found",
        ),
        case(M::GET, format!("/jobs/{unknown}x"), 400, "invalid_job_id"),
        case(M::DELETE, "/jobs/'%20OR%201=1", 400, "invalid_job_id"),
        case(M::GET, "/jobs/../data", 404, "route_not_found"),
        case(
            M::GET,
            format!("/jobs/{unknown}/result/extra"),
            404,
            "route_not_found",
        ),
        case(M::GET, "/jobs/", 404, "route_not_found"),
        case(M::GET, "//jobs", 404, "route_not_found"),
        case(M::GET, "/JOBS", 404, "route_not_found"),
        case(M::GET, "/data/", 404, "route_not_found"),
        case(M::GET, "/data/%FF", 400, "invalid_path"),
        case(M::GET, "/genes/%C0%AF", 400, "invalid_path"),
        case(M::GET, "/genes/HGNC%3A1", 404, "not_found"),
        case(M::GET, "/data/%00", 404, "not_found"),
        case(
            M::GET,
            format!("/{}", "a".repeat(10_000)),
            404,
            "route_not_found",
        ),
        case(
            M::GET,
            "/results/..%2F..%2Fetc%2Fpasswd",
            400,
            "invalid_job_id",
        ),
        case(M::GET, "/download/%25", 400, "invalid_job_id"),
        // Query strings.
        case(M::GET, "/jobs?limit=-1", 400, "invalid_query"),
        case(M::GET, "/jobs?limit=0", 400, "invalid_query"),
        case(M::GET, "/jobs?limit=1001", 400, "invalid_query"),
        case(
            M::GET,
            "/jobs?limit=99999999999999999999999",
            400,
            "invalid_query",
        ),
        case(M::GET, "/jobs?offset=-5", 400, "invalid_query"),
        case(M::GET, "/jobs?offset=1.5", 400, "invalid_query"),
        case(M::GET, "/jobs?status=running", 400, "invalid_query"),
        case(M::GET, "/jobs?status=%FF", 400, "invalid_query"),
        case(M::GET, "/jobs?statuss=complete", 400, "invalid_query"),
        case(M::GET, "/jobs?limit=1&limit=2", 400, "invalid_query"),
        case(M::GET, "/data?start=-1", 400, "invalid_query"),
        case(
            M::GET,
            "/data?start=18446744073709551616",
            400,
            "invalid_query",
        ),
        case(M::GET, "/data?start=1e3", 400, "invalid_query"),
        case(M::GET, "/data?limit=10001", 400, "invalid_query"),
        case(M::GET, "/data?limit=", 400, "invalid_query"),
        case(M::GET, "/jobs_status", 400, "invalid_query"),
        case(M::GET, "/jobs_status?job_id=", 400, "invalid_job_id"),
        case(M::GET, "/job_status?job_id=%00", 400, "invalid_job_id"),
        case(
            M::GET,
            format!("/job_status?job_id={unknown}"),
            404,
            "not_found",
        ),
        case(M::GET, "/completed_jobs?limit=abc", 400, "invalid_query"),
        case(M::GET, "/incomplete_jobs?limit=-1", 400, "invalid_query"),
        case(M::GET, "/inprogress_jobs?x=1", 400, "invalid_query"),
        // Methods.
        case(M::PUT, "/jobs", 405, "method_not_allowed"),
        case(
            M::PATCH,
            format!("/jobs/{unknown}"),
            405,
            "method_not_allowed",
        ),
        case(
            M::POST,
            format!("/jobs/{unknown}"),
            405,
            "method_not_allowed",
        ),
        case(
            M::DELETE,
            format!("/jobs/{unknown}/result"),
            405,
            "method_not_allowed",
        ),
        case(M::POST, "/jobs_status", 405, "method_not_allowed"),
        case(M::DELETE, "/genes", 405, "method_not_allowed"),
        case(M::PUT, "/data", 405, "method_not_allowed"),
        case(M::PUT, "/image", 405, "method_not_allowed"),
        case(M::POST, "/healthz", 405, "method_not_allowed"),
        case(M::DELETE, "/metrics", 405, "method_not_allowed"),
        case(M::POST, "/visits", 405, "method_not_allowed"),
        case(M::OPTIONS, "/jobs", 405, "method_not_allowed"),
        case(M::TRACE, "/", 405, "method_not_allowed"),
        case(
            Method::from_bytes(b"BREW").unwrap(),
            "/jobs",
            405,
            "method_not_allowed",
        ),
        case(M::PUT, "/no/such/route", 404, "route_not_found"),
        // Nothing to delete or fetch.
        case(M::GET, "/image", 404, "not_found"),
        case(M::DELETE, "/image", 404, "not_found"),
        case(M::DELETE, "/data", 404, "not_found"),
        case(M::DELETE, format!("/jobs/{unknown}"), 404, "not_found"),
    ]
}

#[tokio::test]
async fn every_hostile_request_gets_its_4xx_and_the_app_keeps_answering() {
    let app = TestApp::with(|s| s.with_limits(small_limits()));
    let cases = cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    for case in cases {
        let mut request = Request::builder()
            .method(case.method.clone())
            .uri(&case.uri)
            .body(Body::from(case.body))
            .expect("a valid request");
        if let Some(content_type) = case.content_type {
            request.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_bytes(content_type).expect("a header value"),
            );
        }
        let label = format!(
            "{} {}",
            case.method,
            case.uri.chars().take(80).collect::<String>()
        );
        let answer = app.send(request).await;
        assert_eq!(
            answer.status.as_u16(),
            case.status,
            "{label}: {}",
            answer.text()
        );
        let message = answer.assert_error(case.status, case.code);
        assert!(message.chars().count() <= 301, "{label}: bounded message");
        assert!(!answer.headers["x-request-id"].is_empty(), "{label}");

        let health = app.send(crate::support::get("/healthz")).await;
        assert_eq!(health.status, StatusCode::OK, "after {label}");
    }
    // Still fully working: a job is accepted and shown.
    let answer = app
        .send(post_json("/jobs", r#"{"start": 1990, "end": 2000}"#))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let stats = holidapp_core::JobStore::stats(app.backend.as_ref())
        .await
        .unwrap();
    assert_eq!(stats[0].ready, 1, "no hostile request queued a job");
}

#[tokio::test]
async fn method_not_allowed_names_the_allowed_methods() {
    let app = TestApp::new();
    let answer = app
        .send(crate::support::request(Method::PUT, "/jobs", None, ""))
        .await;
    answer.assert_error(405, "method_not_allowed");
    let allow = answer.headers[header::ALLOW].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}
