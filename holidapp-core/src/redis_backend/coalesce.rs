//! Coalescing of concurrent calls into batches: many tasks of one process calling
//! [`Queue::lease`](crate::Queue::lease) or [`Queue::complete`](crate::Queue::complete) at once
//! share one script call instead of paying one round trip and one script run each.
//!
//! A background task takes every request waiting when it becomes free, runs them as one batch
//! and hands each caller its own answer. Nothing waits for a batch to fill: a lone call runs at
//! once, and while a batch runs the next one gathers (group commit). Each request in a batch is
//! still handled on its own by the script (its own fencing check, its own answer).

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// One waiting call: its request and where its answer goes.
struct Pending<Req, Resp> {
    request: Req,
    reply: oneshot::Sender<Result<Resp>>,
}

/// Sends requests to the batching task. Dropping every clone ends the task.
pub(super) struct Coalescer<Req, Resp> {
    tx: mpsc::UnboundedSender<Pending<Req, Resp>>,
}

impl<Req, Resp> Clone for Coalescer<Req, Resp> {
    fn clone(&self) -> Self {
        Coalescer {
            tx: self.tx.clone(),
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Coalescer<Req, Resp> {
    /// Starts the batching task on the current tokio runtime. `run` gets up to `max` requests
    /// and must answer each, in order.
    pub(super) fn spawn<F, Fut>(max: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Result<Resp>>> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Pending<Req, Resp>>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < max {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let (requests, replies): (Vec<Req>, Vec<_>) =
                    batch.into_iter().map(|p| (p.request, p.reply)).unzip();
                let mut answers = run(requests).await.into_iter();
                for reply in replies {
                    let answer = answers.next().unwrap_or_else(|| {
                        Err(Error::Internal(
                            "a batch answered fewer calls than it had".into(),
                        ))
                    });
                    // A caller that gave up (timed out) no longer listens; that is fine.
                    let _ = reply.send(answer);
                }
            }
        });
        Coalescer { tx }
    }

    /// Queues `request` for the next batch and waits for its answer.
    pub(super) async fn call(&self, request: Req) -> Result<Resp> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { request, reply })
            .map_err(|_| Error::Internal("the batching task has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Internal("the batching task dropped a call".into()))?
    }
}

/// The same error for every call of a batch that failed as a whole.
pub(super) fn for_each<T>(error: &Error, calls: usize) -> Vec<Result<T>> {
    (0..calls)
        .map(|_| {
            Err(match error {
                Error::Unavailable(message) => Error::Unavailable(message.clone()),
                Error::LeaseLost => Error::LeaseLost,
                other => Error::Internal(other.to_string()),
            })
        })
        .collect()
}
