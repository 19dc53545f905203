//! Access control: with a token configured, every route that may change state, walked from the
//! route table the router serves and documents, refuses a request without the token or with a
//! wrong one, changes nothing, and lets the right token through; a read token closes the reads
//! but the probes.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use holidapp_http::{Auth, Token};
use serde_json::Value;

use crate::support::{Answer, TestApp, get, post_json, request};

const WRITE: &str = "test-write-token-0123456789";
const READ: &str = "test-read-token-0123456789";

fn with_tokens(read: bool) -> TestApp {
    TestApp::with(|state| {
        let mut auth = Auth::open().with_write_token(Token::new(WRITE).unwrap());
        if read {
            auth = auth.with_read_token(Token::new(READ).unwrap());
        }
        state.with_auth(auth)
    })
}

/// `request` with `Authorization: Bearer <token>` when a token is given.
fn bearer(mut request: Request<Body>, token: Option<&str>) -> Request<Body> {
    if let Some(token) = token {
        request.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
    }
    request
}

/// One operation of the document: its method, its path template and a path to call it on.
#[derive(Debug)]
struct Operation {
    method: Method,
    template: String,
    path: String,
}

/// Submits a job with the write token (any app takes it) and answers its id.
async fn submit_with_token(app: &TestApp) -> String {
    let submitted = app
        .send(bearer(
            post_json("/jobs", r#"{"start": "1990", "end": "2000"}"#),
            Some(WRITE),
        ))
        .await;
    assert_eq!(
        submitted.status,
        StatusCode::CREATED,
        "{}",
        submitted.text()
    );
    submitted.json()["id"].as_str().expect("an id").to_owned()
}

/// Every operation of the document the app serves, path parameters filled in with `id`
/// (a job of the app) and a record id.
async fn operations(app: &TestApp, token: Option<&str>) -> (Value, Vec<Operation>) {
    let doc = app.send(bearer(get("/openapi.json"), token)).await;
    assert_eq!(doc.status, StatusCode::OK, "{}", doc.text());
    let doc = doc.json();
    let id = submit_with_token(app).await;
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            found.push(Operation {
                method,
                template: path.clone(),
                // A followed event stream never ends: ask for the retained events alone.
                path: match path.as_str() {
                    "/events" => "/events?follow=false".to_owned(),
                    _ => path.replace("{id}", &id).replace("{hgnc_id}", "HGNC:5"),
                },
            });
        }
    }
    (doc, found)
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn call(app: &TestApp, method: &Method, path: &str, token: Option<&str>) -> Answer {
    let body = if path == "/jobs" && method == Method::POST {
        r#"{"start": "1990", "end": "2000"}"#
    } else {
        ""
    };
    let request = request(method.clone(), path, Some("application/json"), body);
    app.send(bearer(request, token)).await
}

fn assert_refused(answer: &Answer, what: &str) {
    answer.assert_error(401, "unauthorized");
    assert_eq!(
        answer.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"holidapp\"",
        "{what}"
    );
}

#[tokio::test]
async fn every_write_route_needs_the_token_and_changes_nothing_without_it() {
    let app = with_tokens(false);
    let loaded = app
        .send(bearer(
            request(Method::POST, "/data", None, ""),
            Some(WRITE),
        ))
        .await;
    assert_eq!(loaded.status, StatusCode::OK, "{}", loaded.text());
    let (doc, operations) = operations(&app, None).await;
    let writes: Vec<_> = operations.iter().filter(|o| is_write(&o.method)).collect();
    for expected in [
        "POST /jobs",
        "DELETE /jobs/{id}",
        "POST /jobs/{id}/cancel",
        "POST /jobs/{id}/retry",
        "POST /data",
        "DELETE /data",
        "POST /image",
        "DELETE /image",
    ] {
        assert!(
            writes
                .iter()
                .any(|o| format!("{} {}", o.method, o.template) == expected),
            "{expected} is in the route table walked: {writes:?}"
        );
    }
    let jobs_before = app.send(get("/jobs")).await.json();
    for o in &writes {
        let what = format!("{} {}", o.method, o.path);
        assert_refused(&call(&app, &o.method, &o.path, None).await, &what);
        let wrong = Some("wrong-token-0123456789");
        assert_refused(&call(&app, &o.method, &o.path, wrong).await, &what);
        assert_refused(
            &call(&app, &o.method, &o.path, Some(&WRITE[1..])).await,
            &what,
        );
        // The document says so too.
        let documented = &doc["paths"][&o.template][o.method.as_str().to_lowercase()];
        assert_eq!(
            documented["security"][0]["bearer"],
            serde_json::json!([]),
            "{what}"
        );
        assert!(documented["responses"]["401"].is_object(), "{what}");
    }
    // Nothing changed: the same jobs, the job still waiting, the data set still loaded.
    assert_eq!(app.send(get("/jobs")).await.json(), jobs_before);
    let page = app.send(get("/data?limit=1")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_ne!(page.json(), serde_json::json!([]));
    // With the token, each one does its work (whatever it answers, it is not a 401).
    for o in &writes {
        let answer = call(&app, &o.method, &o.path, Some(WRITE)).await;
        assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{o:?}");
    }
    // Reads stay open.
    for o in operations.iter().filter(|o| !is_write(&o.method)) {
        let answer = call(&app, &o.method, &o.path, None).await;
        assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{o:?}");
    }
}

#[tokio::test]
async fn a_read_token_closes_every_read_but_the_probes() {
    let app = with_tokens(true);
    let (_, operations) = operations(&app, Some(READ)).await;
    let reads: Vec<_> = operations.iter().filter(|o| !is_write(&o.method)).collect();
    assert!(reads.len() > 10, "{reads:?}");
    for Operation { method, path, .. } in reads {
        let open = matches!(path.as_str(), "/healthz" | "/readyz");
        let without = call(&app, method, path, None).await;
        if open {
            assert_ne!(without.status, StatusCode::UNAUTHORIZED, "{path}");
        } else {
            assert_refused(&without, path);
            assert_refused(
                &call(&app, method, path, Some("wrong-token-0123456789")).await,
                path,
            );
        }
        for token in [READ, WRITE] {
            let answer = call(&app, method, path, Some(token)).await;
            assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        }
    }
    // The read token changes nothing.
    let refused = call(&app, &Method::POST, "/jobs", Some(READ)).await;
    assert_refused(&refused, "POST /jobs with the read token");
}

#[tokio::test]
async fn without_a_token_nothing_is_refused_and_the_document_states_no_security() {
    let app = TestApp::new();
    let (doc, operations) = operations(&app, None).await;
    assert!(doc["components"]["securitySchemes"].is_null(), "{doc}");
    for o in &operations {
        let answer = call(&app, &o.method, &o.path, None).await;
        assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{o:?}");
    }
    // POST /data's text/plain body is not offered without a token.
    let content = &doc["paths"]["/data"]["post"]["requestBody"]["content"];
    assert!(content["text/plain"].is_null(), "{content}");
    assert!(
        content["text/tab-separated-values"].is_object(),
        "{content}"
    );
}

/// A text/plain data set: what any web page can post without a CORS preflight.
fn post_plain(token: Option<&str>) -> Request<Body> {
    let tsv = "hgnc_id\tsymbol\tdate_approved_reserved\nHGNC:5\tA1BG\t1989-06-30\n";
    bearer(
        request(Method::POST, "/data", Some("text/plain"), tsv),
        token,
    )
}

#[tokio::test]
async fn post_data_takes_text_plain_only_with_the_token() {
    let open = TestApp::new();
    let refused = open.send(post_plain(None)).await;
    let message = refused.assert_error(415, "unsupported_media_type");
    assert!(message.contains("token"), "{message}");
    // Nothing was loaded.
    assert_eq!(open.send(get("/genes")).await.json(), serde_json::json!([]));
    let tsv = open
        .send(request(
            Method::POST,
            "/data",
            Some("text/tab-separated-values; charset=utf-8"),
            "hgnc_id\tsymbol\nHGNC:5\tA1BG\n",
        ))
        .await;
    assert_eq!(tsv.status, StatusCode::OK, "{}", tsv.text());

    let closed = with_tokens(false);
    assert_refused(
        &closed.send(post_plain(None)).await,
        "text/plain without a token",
    );
    let loaded = closed.send(post_plain(Some(WRITE))).await;
    assert_eq!(loaded.status, StatusCode::OK, "{}", loaded.text());
    assert_eq!(loaded.json()["loaded"], 1);
    let doc = closed.send(get("/openapi.json")).await.json();
    let content = &doc["paths"]["/data"]["post"]["requestBody"]["content"];
    assert!(content["text/plain"].is_object(), "{content}");
    // A JSON submit with the token is answered as usual.
    submit_with_token(&closed).await;
}
