//! `example-testing-jobs`: a short demo of a job retried after its source failed once, with a
//! manual clock. The tests in `tests/` are the point of this example; the library's
//! documentation explains them.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    example_testing_jobs::demo(|line| println!("{line}")).await
}
