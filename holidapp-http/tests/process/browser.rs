//! The dashboard in a real headless Chromium, driven over WebDriver (`chromedriver`), against the
//! real `holidapp-api` binary with an API token. Screenshots go to
//! `target/tmp/dashboard/` (the test's output folder).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::{Api, POLL_INTERVAL, client, json_of, submit_body};

const TOKEN: &str = "dashboard-test-token-0123456789";

/// How long the page may take to show what the test waits for.
const SHOW_TIMEOUT: Duration = Duration::from_secs(60);

/// A `chromedriver` process on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new(binary("chromedriver"))
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let started = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.contains("started successfully"));
        assert!(started, "chromedriver reports that it started");
        // Keep reading its output so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of a program the test needs, with a message saying how to get it when it is missing.
fn binary(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} is needed by the browser test: install Debian's chromium and \
             chromium-driver packages (scripts/test.sh does)"
        )
    })
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": binary("chromium"),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session in Chromium")
}

fn output_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(page: &Client, name: &str) {
    let png = page.screenshot().await.expect("a screenshot");
    std::fs::write(output_dir().join(format!("{name}.png")), png).unwrap();
}

/// Waits until the text of the first element matching `css` is `expected`.
async fn wait_for_text(page: &Client, css: &str, expected: &str) {
    let deadline = Instant::now() + SHOW_TIMEOUT;
    loop {
        let text = match page.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "'{css}' shows '{text}', not '{expected}'"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until the page's message contains `needle`, and answers it.
async fn wait_for_message(page: &Client, needle: &str) -> String {
    let deadline = Instant::now() + SHOW_TIMEOUT;
    loop {
        let text = page
            .find(Locator::Css("#message"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the message is '{text}', without '{needle}'"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn submit(http: &reqwest::Client, api: &Api, body: Value) -> String {
    submit_body(http, api, &body, Some(TOKEN)).await
}

async fn job(http: &reqwest::Client, api: &Api, id: &str) -> Value {
    json_of(
        http.get(api.url(&format!("/jobs/{id}")))
            .send()
            .await
            .unwrap(),
    )
    .await
    .1
}

async fn open_job(page: &Client, id: &str) {
    page.find(Locator::Css(&format!("a[href=\"#/jobs/{id}\"]")))
        .await
        .expect("the job is listed")
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(SHOW_TIMEOUT)
        .for_element(Locator::Css(&format!("#job[data-job=\"{id}\"] dd")))
        .await
        .expect("the job page shows");
}

#[tokio::test]
async fn the_dashboard_follows_jobs_live_and_steers_them_with_the_token() {
    let api = Api::start(&[
        ("HOLIDAPP_API_TOKEN", TOKEN),
        ("HOLIDAPP_WORKER_CONCURRENCY", "2"),
    ]);
    let http = client(Duration::from_secs(30));
    let (status, _) = json_of(
        http.post(api.url("/data"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let driver = Driver::start();
    let page = browser(&driver).await;

    // The overview: queues (none yet) and the embedded workers.
    page.goto(&api.url("/ui")).await.unwrap();
    page.wait()
        .at_most(SHOW_TIMEOUT)
        .for_element(Locator::Css("#workers tr[data-worker]"))
        .await
        .expect("the overview lists the embedded worker pool");
    screenshot(&page, "1-overview-empty").await;

    // The job list, open while jobs are submitted through the API: they appear and finish live.
    page.goto(&api.url("/ui#/jobs")).await.unwrap();
    page.wait()
        .at_most(SHOW_TIMEOUT)
        .for_element(Locator::Css("#jobs tbody tr"))
        .await
        .unwrap();
    page.execute("window.notReloaded = true;", vec![])
        .await
        .unwrap();
    let done = submit(&http, &api, json!({"start": 1990, "end": 2000})).await;
    let failing = submit(&http, &api, json!({"start": 1800, "end": 1810})).await;
    let waiting = submit(
        &http,
        &api,
        json!({"start": 1990, "end": 2000, "delay": 3600}),
    )
    .await;
    wait_for_text(
        &page,
        &format!("#jobs tr[data-job=\"{done}\"] .status"),
        "complete",
    )
    .await;
    wait_for_text(
        &page,
        &format!("#jobs tr[data-job=\"{failing}\"] .status"),
        "failed",
    )
    .await;
    wait_for_text(
        &page,
        &format!("#jobs tr[data-job=\"{waiting}\"] .status"),
        "submitted",
    )
    .await;
    assert_eq!(
        page.execute("return window.notReloaded === true;", vec![])
            .await
            .unwrap(),
        json!(true),
        "the page was updated in place, not reloaded"
    );
    screenshot(&page, "2-jobs-live").await;

    // Retrying without the token is refused, and asks for it; the job stays failed.
    open_job(&page, &failing).await;
    let failed_at = job(&http, &api, &failing).await["finished_at"].clone();
    page.find(Locator::Css("#retry"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let refused = wait_for_message(&page, "refused").await;
    assert!(refused.contains("unauthorized"), "{refused}");
    assert!(
        page.find(Locator::Css("#token-form"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap(),
        "the token is asked for"
    );
    let still = job(&http, &api, &failing).await;
    assert_eq!(
        (&still["status"], &still["finished_at"]),
        (&json!("failed"), &failed_at)
    );
    screenshot(&page, "3-retry-refused-without-token").await;

    // With the token, the retry goes through: the job runs again (and fails again, later).
    page.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    page.find(Locator::Css("#token-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(SHOW_TIMEOUT)
        .for_element(Locator::Css("#retry"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_message(&page, "Retry done").await;
    let deadline = Instant::now() + SHOW_TIMEOUT;
    loop {
        let now = job(&http, &api, &failing).await;
        if now["status"] == "failed" && now["finished_at"] != failed_at {
            break;
        }
        assert!(Instant::now() < deadline, "the retried job ran: {now}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    wait_for_text(&page, "[data-field=status]", "failed").await;
    screenshot(&page, "4-retried-with-token").await;

    // Cancelling the waiting job.
    page.goto(&api.url("/ui#/jobs")).await.unwrap();
    page.wait()
        .at_most(SHOW_TIMEOUT)
        .for_element(Locator::Css(&format!("tr[data-job=\"{waiting}\"]")))
        .await
        .unwrap();
    open_job(&page, &waiting).await;
    page.find(Locator::Css("#cancel"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&page, "[data-field=status]", "cancelled").await;
    assert_eq!(job(&http, &api, &waiting).await["status"], "cancelled");
    screenshot(&page, "5-cancelled").await;

    // The complete job's page shows its PNG.
    page.goto(&api.url("/ui#/jobs")).await.unwrap();
    page.wait()
        .at_most(SHOW_TIMEOUT)
        .for_element(Locator::Css(&format!("tr[data-job=\"{done}\"]")))
        .await
        .unwrap();
    open_job(&page, &done).await;
    page.wait()
        .at_most(SHOW_TIMEOUT)
        .for_element(Locator::Css("#result-image"))
        .await
        .expect("the result is shown");
    let deadline = Instant::now() + SHOW_TIMEOUT;
    let size = loop {
        let size = page
            .execute(
                "const i = document.getElementById('result-image'); \
                 return i.complete ? [i.naturalWidth, i.naturalHeight] : null;",
                vec![],
            )
            .await
            .unwrap();
        if !size.is_null() {
            break size;
        }
        assert!(Instant::now() < deadline, "the PNG loads");
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    assert_eq!(size, json!([800, 600]), "the plot, decoded by the browser");
    screenshot(&page, "6-job-with-png").await;

    // The overview counts what happened.
    page.goto(&api.url("/ui#/")).await.unwrap();
    wait_for_text(
        &page,
        "#queues tr[data-queue=default] [data-status=complete]",
        "1",
    )
    .await;
    wait_for_text(
        &page,
        "#queues tr[data-queue=default] [data-status=cancelled]",
        "1",
    )
    .await;
    screenshot(&page, "7-overview").await;
    page.close().await.unwrap();
}
