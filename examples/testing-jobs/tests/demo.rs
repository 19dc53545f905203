//! The demo `cargo run -p example-testing-jobs` prints: a job retried after one failure.

#[tokio::test]
async fn the_demo_retries_the_job_once_and_then_completes_it() {
    let mut lines = Vec::new();
    example_testing_jobs::demo(|line| lines.push(line))
        .await
        .unwrap();

    assert_eq!(lines.len(), 8, "{lines:#?}");
    assert!(lines[0].starts_with("submitted job "), "{}", lines[0]);
    assert!(
        lines[2].starts_with("attempt 1: failed, to be retried (")
            && lines[2].contains("connection reset"),
        "{}",
        lines[2]
    );
    assert_eq!(lines[3], "nothing to run yet");
    assert_eq!(lines[4], "the clock moves 10 s");
    assert_eq!(lines[5], "attempt 2: complete");
    assert_eq!(
        lines[6],
        "result: 'Example Domain', 34 bytes, from https://example.com/"
    );
    assert_eq!(lines[7], "the source was called 2 times");
}
