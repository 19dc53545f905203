//! Coalescing of concurrent calls into batches: many tasks of one process calling
//! [`Consumer::lease`](crate::Consumer::lease) or [`Consumer::complete`](crate::Consumer::complete) at once
//! share one script call instead of paying one round trip and one script run each.
//!
//! A background task takes every request waiting when a batch slot is free, runs them as one
//! batch and hands each caller its own answer. Nothing waits for a batch to fill: a lone call runs
//! at once, and while the slots are busy the next batch gathers (group commit). A few batches may
//! be in flight at once, so one round trip does not idle the connection. Each request in a batch
//! is still handled on its own by the script (its own fencing check, its own answer).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

/// Batches of one kind in flight at once.
const IN_FLIGHT: usize = 2;

use crate::error::{Error, Result};

/// What a batch does with a call whose caller stopped waiting before the batch ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Abandoned {
    /// Leaves it out: nobody is waiting for what it would do (a lease, a submit that the client
    /// already got an error for).
    Skip,
    /// Runs it all the same: what it does matters whoever waits (a finished job's result).
    Run,
}

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
    /// and must answer each, in order. `abandoned` says whether calls whose caller left before
    /// their batch ran are made. `unclaimed` gets every successful answer whose caller stopped
    /// waiting while its batch ran (its future was dropped), so nothing it got is left dangling.
    pub(super) fn spawn<F, Fut, U>(max: usize, run: F, abandoned: Abandoned, unclaimed: U) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<Resp>>> + Send + 'static,
        U: Fn(Resp) + Send + Sync + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Pending<Req, Resp>>();
        let unclaimed = Arc::new(unclaimed);
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            loop {
                // Wait for a free slot first: meanwhile calls gather into the next batch.
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let Some(first) = rx.recv().await else {
                    return;
                };
                let wanted =
                    |p: &Pending<Req, Resp>| abandoned == Abandoned::Run || !p.reply.is_closed();
                let mut batch = Vec::new();
                if wanted(&first) {
                    batch.push(first);
                }
                while batch.len() < max {
                    match rx.try_recv() {
                        Ok(next) if wanted(&next) => batch.push(next),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                if batch.is_empty() {
                    continue;
                }
                let (requests, replies): (Vec<Req>, Vec<_>) =
                    batch.into_iter().map(|p| (p.request, p.reply)).unzip();
                let answers = run(requests);
                let unclaimed = Arc::clone(&unclaimed);
                tokio::spawn(async move {
                    let mut answers = answers.await.into_iter();
                    for reply in replies {
                        let answer = answers.next().unwrap_or_else(|| {
                            Err(Error::Internal(
                                "a batch answered fewer calls than it had".into(),
                            ))
                        });
                        if let Err(Ok(orphan)) = reply.send(answer) {
                            unclaimed(orphan);
                        }
                    }
                    drop(slot);
                });
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
    (0..calls).map(|_| Err(error.duplicate())).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::Notify;

    use super::*;

    /// Runs batches of numbers, recording each; the first two batches wait for `gate`.
    struct Recorder {
        batches: Mutex<Vec<Vec<u32>>>,
        started: Notify,
        gate: Notify,
    }

    async fn batches_run(abandoned: Abandoned) -> Vec<Vec<u32>> {
        let recorder = Arc::new(Recorder {
            batches: Mutex::new(Vec::new()),
            started: Notify::new(),
            gate: Notify::new(),
        });
        let run_recorder = Arc::clone(&recorder);
        let coalescer: Coalescer<u32, u32> = Coalescer::spawn(
            16,
            move |requests: Vec<u32>| {
                let recorder = Arc::clone(&run_recorder);
                async move {
                    let first_two = {
                        let mut batches = recorder.batches.lock().unwrap();
                        batches.push(requests.clone());
                        batches.len() <= 2
                    };
                    if first_two {
                        recorder.started.notify_one();
                        recorder.gate.notified().await;
                    }
                    requests.into_iter().map(Ok).collect()
                }
            },
            abandoned,
            |_| {},
        );
        // Both batch slots busy: what comes next waits for a slot.
        let one = tokio::spawn({
            let c = coalescer.clone();
            async move { c.call(1).await }
        });
        recorder.started.notified().await;
        let two = tokio::spawn({
            let c = coalescer.clone();
            async move { c.call(2).await }
        });
        recorder.started.notified().await;
        let gone = tokio::spawn({
            let c = coalescer.clone();
            async move { c.call(3).await }
        });
        let waiting = tokio::spawn({
            let c = coalescer.clone();
            async move { c.call(4).await }
        });
        // Let both calls reach the channel, then the caller of 3 leaves.
        while recorder.batches.lock().unwrap().len() < 2 {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        gone.abort();
        let _ = gone.await;
        recorder.gate.notify_one();
        recorder.gate.notify_one();
        assert_eq!(one.await.unwrap().unwrap(), 1);
        assert_eq!(two.await.unwrap().unwrap(), 2);
        assert_eq!(waiting.await.unwrap().unwrap(), 4);
        recorder.batches.lock().unwrap().clone()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn calls_whose_caller_left_are_skipped_or_run_as_asked() {
        assert_eq!(
            batches_run(Abandoned::Skip).await,
            vec![vec![1], vec![2], vec![4]]
        );
        assert_eq!(
            batches_run(Abandoned::Run).await,
            vec![vec![1], vec![2], vec![3, 4]]
        );
    }
}
