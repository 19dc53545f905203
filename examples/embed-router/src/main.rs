//! `example-embed-router`: an axum app with the Holidapp job API under `/api`.
//!
//! Listens on `127.0.0.1:3000` (or the port in `PORT`) until Ctrl-C, then stops the server and
//! the embedded worker. The library's documentation explains the app.

use example_embed_router::{EmbeddedWorker, Services, app, services};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port.parse()?,
        Err(_) => 3000,
    };

    let Services { jobs, worker } = services();
    // The worker runs beside the server, on the same in-memory backend.
    let worker = EmbeddedWorker::spawn(worker);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let address = listener.local_addr()?;
    println!("listening on http://{address} (Ctrl-C to stop)");
    println!("  curl -s http://{address}/hello?name=Ada");
    println!(
        "  curl -s -X POST http://{address}/api/jobs -H 'content-type: application/json' \
         -d '{{\"kind\": \"reverse\", \"params\": {{\"text\": \"stressed\"}}}}'"
    );

    // Serve until Ctrl-C; requests in flight then finish.
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    holidapp_http::serve(listener, app(jobs), ctrl_c).await?;

    // Then stop the worker: no more jobs can arrive.
    let report = worker.stop().await?;
    println!(
        "stopped; the worker completed {} jobs",
        report.stats.completed
    );
    Ok(())
}
