//! `example-own-worker`: a worker serving the kinds `resize` (queue `images`) and `email` (queue
//! `mail`).
//!
//! - With `REDIS_URL` set, it serves that Redis until SIGTERM or Ctrl-C, then stops gracefully.
//!   Its identity, written on every job it takes, is `WORKER_IP` (this host's address unless
//!   set); `LOG_LEVEL` sets what it logs (`info` unless set).
//! - Without `REDIS_URL`, or with `--demo`, it runs a demo in memory: submits jobs of both kinds,
//!   runs them, prints each, and exits.
//!
//! The library's documentation explains the worker.

use holidapp_core::redis_backend::RedisConfig;
use holidapp_worker::config::{host_address, init_logging};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut demo = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--demo" => demo = true,
            other => {
                anyhow::bail!("unknown argument '{other}'; usage: example-own-worker [--demo]")
            }
        }
    }
    let redis_url = std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty());

    match redis_url {
        Some(url) if !demo => serve(RedisConfig::new(url)).await,
        _ => run_demo().await,
    }
}

/// Serves Redis until SIGTERM or Ctrl-C.
async fn serve(config: RedisConfig) -> anyhow::Result<()> {
    let filter = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".to_owned());
    init_logging(&filter).map_err(anyhow::Error::msg)?;
    let identity = std::env::var("WORKER_IP").unwrap_or_else(|_| host_address().to_string());
    println!(
        "serving queues images (resize) and mail (email) of {} as {identity}; Ctrl-C to stop",
        config.redacted_url()
    );
    let report = example_own_worker::serve(&config, identity, shutdown_signal()).await?;
    println!(
        "stopped ({:?}): {} jobs completed, {} failed",
        report.ending, report.stats.completed, report.stats.failed
    );
    Ok(())
}

/// Runs the in-memory demo and prints every job.
async fn run_demo() -> anyhow::Result<()> {
    println!("demo: in memory (set REDIS_URL to serve Redis instead)");
    for finished in example_own_worker::demo().await? {
        let job = &finished.job;
        println!(
            "{:<6} {:<6} {} by {} -> {}: {}",
            job.queue.as_str(),
            job.kind,
            job.status,
            job.worker.as_deref().unwrap_or("?"),
            finished.result.content_type(),
            String::from_utf8_lossy(finished.result.bytes())
        );
    }
    Ok(())
}

/// Completes on SIGTERM (what `docker stop` and Kubernetes send) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            // Without a SIGTERM handler, Ctrl-C still works.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
