//! The worker: its in-memory demo (as a function and as the binary), and serving a real Redis.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use holidapp_core::redis_backend::RedisBackend;
use holidapp_core::testing::RedisServer;
use holidapp_core::{
    Backends, JobOutput, JobStatus, Jobs, Json, QueueSettings, ResultState, Submit,
};
use holidapp_worker::Ending;
use tokio::sync::oneshot;

use example_own_worker::{
    Email, EmailParams, Resize, ResizeParams, Resized, demo, images, kinds, mail, serve,
    wait_until_finished,
};

#[tokio::test]
async fn the_demo_runs_every_job_of_both_kinds_from_its_queue() {
    let finished = demo().await.unwrap();
    assert_eq!(finished.len(), 4);
    for done in &finished {
        assert_eq!(done.job.status, JobStatus::Complete, "{:?}", done.job);
        assert_eq!(done.job.worker.as_deref(), Some("demo-worker"));
        assert_eq!(done.job.attempts, 1);
    }

    // The two `resize` jobs, from `images`, with their JSON results.
    let resized: Vec<Resized> = finished[..2]
        .iter()
        .map(|done| {
            assert_eq!(
                (done.job.kind.as_str(), &done.job.queue),
                ("resize", &images())
            );
            assert_eq!(done.result.content_type(), "application/json");
            Json::<Resized>::from_output(done.result.clone()).unwrap().0
        })
        .collect();
    assert_eq!(
        resized,
        vec![
            Resized {
                image: "cat.jpg".into(),
                thumbnail: "thumbs/64x64/cat.jpg".into(),
                bytes: 64 * 64 * 4,
            },
            Resized {
                image: "dog.png".into(),
                thumbnail: "thumbs/128x96/dog.png".into(),
                bytes: 128 * 96 * 4,
            },
        ]
    );

    // The two `email` jobs, from `mail`, with their text results.
    let sent: Vec<String> = finished[2..]
        .iter()
        .map(|done| {
            assert_eq!(
                (done.job.kind.as_str(), &done.job.queue),
                ("email", &mail())
            );
            assert_eq!(done.result.content_type(), "text/plain; charset=utf-8");
            String::from_output(done.result.clone()).unwrap()
        })
        .collect();
    assert_eq!(
        sent,
        vec![
            "sent to ada@example.com on attempt 1: Your thumbnails are ready",
            "sent to bob@example.com on attempt 1: Welcome",
        ]
    );
}

#[test]
fn the_binary_runs_the_demo_without_redis_and_exits_0() {
    let output = Command::new(env!("CARGO_BIN_EXE_example-own-worker"))
        .arg("--demo")
        .env_remove("REDIS_URL")
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let jobs: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(jobs.len(), 4, "{stdout}");
    for (line, starts) in jobs.iter().zip([
        "images resize complete by demo-worker -> application/json: ",
        "images resize complete by demo-worker -> application/json: ",
        "mail   email  complete by demo-worker -> text/plain; charset=utf-8: sent to ada@",
        "mail   email  complete by demo-worker -> text/plain; charset=utf-8: sent to bob@",
    ]) {
        assert!(
            line.starts_with(starts),
            "{line:?} should start with {starts:?}"
        );
    }
    assert!(
        jobs[0].ends_with(r#""thumbnail":"thumbs/64x64/cat.jpg","bytes":16384}"#),
        "{}",
        jobs[0]
    );
}

#[test]
fn an_unknown_argument_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_example-own-worker"))
        .arg("--bogus")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown argument '--bogus'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_serves_both_queues_of_a_real_redis_until_shut_down() {
    // A real redis-server, and a key prefix of this test's own.
    let config = RedisServer::shared().config("own_worker_serve");

    // Start the worker first: it waits for work in both queues.
    let (stop, stopped) = oneshot::channel::<()>();
    let worker_config = config.clone();
    let worker = tokio::spawn(async move {
        serve(&worker_config, "test-worker", async {
            let _ = stopped.await;
        })
        .await
    });

    // Another program submits jobs of both kinds, each to its queue, through the same Redis.
    let backend = RedisBackend::connect(&config, QueueSettings::default())
        .await
        .unwrap();
    let jobs = Jobs::new(&Backends::single(Arc::new(backend)), kinds());
    let mut resizes = Vec::new();
    let mut emails = Vec::new();
    for n in 1..=3u32 {
        let resize = ResizeParams {
            image: format!("photo-{n}.jpg"),
            width: 10 * n,
            height: 20,
        };
        let job = jobs
            .submit(Submit::of::<Resize>(&resize).unwrap().in_queue(images()))
            .await
            .unwrap();
        resizes.push((job.id, n));
        let email = EmailParams {
            to: format!("user{n}@example.com"),
            subject: format!("message {n}"),
        };
        let job = jobs
            .submit(Submit::of::<Email>(&email).unwrap().in_queue(mail()))
            .await
            .unwrap();
        emails.push((job.id, n));
    }

    let ids: Vec<_> = resizes.iter().chain(&emails).map(|(id, _)| *id).collect();
    wait_until_finished(&jobs, &ids, Duration::from_secs(20))
        .await
        .unwrap();

    // Shut the worker down: with nothing running, it drains at once.
    stop.send(()).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("the worker stops once told to")
        .unwrap()
        .unwrap();
    assert_eq!(report.ending, Ending::Drained);
    assert_eq!((report.stats.completed, report.stats.failed), (6, 0));

    for (id, n) in resizes {
        let job = jobs.get(id).await.unwrap().unwrap();
        assert_eq!((job.status, job.queue), (JobStatus::Complete, images()));
        assert_eq!(job.worker.as_deref(), Some("test-worker"));
        assert_eq!(
            jobs.result_of::<Resize>(id).await.unwrap(),
            Some(ResultState::Ready(Json(Resized {
                image: format!("photo-{n}.jpg"),
                thumbnail: format!("thumbs/{}x20/photo-{n}.jpg", 10 * n),
                bytes: u64::from(10 * n) * 20 * 4,
            })))
        );
    }
    for (id, n) in emails {
        let job = jobs.get(id).await.unwrap().unwrap();
        assert_eq!((job.status, job.queue), (JobStatus::Complete, mail()));
        assert_eq!(
            jobs.result_of::<Email>(id).await.unwrap(),
            Some(ResultState::Ready(format!(
                "sent to user{n}@example.com on attempt 1: message {n}"
            )))
        );
    }
}
