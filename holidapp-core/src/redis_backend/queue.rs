//! [`Queue`] on Redis, plus batch leasing for workers that want throughput.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use redis::Value;

use super::coalesce;
use super::codec::{
    LEASE_FIELDS, after, array, duration_millis, enqueue_args, int, job_from_lease_values, millis,
    rfc3339, string, tagged,
};
use super::scripts::SCRIPTS;
use super::{BULK_TIMEOUT, LeaseRequest, MAX_LEASE_BATCH, RedisBackend, is_outage, map_error};
use crate::error::{Error, Result};
use crate::job::{Job, JobStatus};
use crate::queue::{
    FailureKind, Lease, LeaseToken, Queue, QueueDepth, RequeueReport, RetryDecision,
};

/// Most jobs one enqueue script call stores (Lua's `unpack` has a stack limit).
const ENQUEUE_CHUNK: usize = 1000;

/// Enqueue script calls in flight at once on the shared connection during a bulk enqueue.
const ENQUEUE_IN_FLIGHT: usize = 8;

/// Most delayed retries one lease call makes ready again.
const PROMOTE_LIMIT: usize = 1000;

/// Most expired leases one requeue script call handles; `requeue_expired` loops until done.
const REQUEUE_CHUNK: usize = 500;

/// Most leases one renew script call checks.
const RENEW_CHUNK: usize = 1000;

/// Most wake-up tokens kept for idle workers. Enough to wake every idle worker of a large
/// deployment at once; stale tokens cost at most this many spurious wake-ups.
const WAKE_CAP: usize = 256;

impl RedisBackend {
    /// Leases up to `max` ready jobs (at most [`MAX_LEASE_BATCH`]) for `worker` in one step, oldest
    /// first, each as [`Queue::lease`] would (its own fencing token; one deadline for the batch).
    /// Workers that run many jobs at once can take a batch in one round trip with it.
    pub async fn lease_many(
        &self,
        worker: &str,
        lease_for: Duration,
        max: usize,
    ) -> Result<Vec<Lease>> {
        let max = max.min(MAX_LEASE_BATCH);
        if max == 0 {
            return Ok(Vec::new());
        }
        JobStatus::Submitted.transition(JobStatus::InProgress)?;
        let now = self.clock.now();
        let deadline = after(now, lease_for);
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let reply: Value = self
            .run(
                SCRIPTS
                    .lease
                    .key(&k.ready)
                    .key(&k.returned)
                    .key(&k.delayed)
                    .key(&k.leased)
                    .key(&k.token)
                    .key(&k.wake)
                    .arg(&k.job_prefix)
                    .arg(millis(now))
                    .arg(millis(deadline))
                    .arg(worker)
                    .arg(rfc3339(now))
                    .arg(rfc3339(deadline))
                    .arg(max)
                    .arg(JobStatus::Submitted.as_str())
                    .arg(JobStatus::InProgress.as_str())
                    .arg(PROMOTE_LIMIT)
                    .arg(&LEASE_FIELDS[..])
                    .invoke_async(&mut conn),
            )
            .await?;
        array(reply)?
            .into_iter()
            .map(|item| {
                let mut parts = array(item)?.into_iter();
                let (Some(_id), Some(token), Some(values)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(Error::Internal(
                        "lease script answered a short entry".into(),
                    ));
                };
                let token = u64::try_from(int(token)?)
                    .map_err(|_| Error::Internal("negative lease token".into()))?;
                let mut job = job_from_lease_values(values)?;
                // What the script changed, as it changed it.
                job.status = JobStatus::InProgress;
                job.worker = Some(worker.to_owned());
                job.started_at = Some(now);
                job.attempts = job.attempts.saturating_add(1);
                Ok(Lease {
                    job,
                    token: LeaseToken(token),
                    worker: worker.to_owned(),
                    deadline,
                })
            })
            .collect()
    }

    /// Completes many leased jobs in one step each and one round trip for all: each job gets its
    /// result and `complete` as [`Queue::complete`] would give them, under its own fencing check.
    /// One answer per lease, in order: the finished job, or [`Error::LeaseLost`] for a lease
    /// that is no longer held (which does not stop the others).
    pub async fn complete_many(&self, done: Vec<(Lease, Vec<u8>)>) -> Result<Vec<Result<Job>>> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        JobStatus::InProgress.transition(JobStatus::Complete)?;
        let now = self.clock.now();
        let ttl = self.settings.result_ttl;
        let k = &self.keys;
        let mut invocation = SCRIPTS.complete.prepare_invoke();
        invocation
            .key(&k.leased)
            .key(&k.complete)
            .key(&k.expiry)
            .arg(&k.job_prefix)
            .arg(&k.result_prefix)
            .arg(JobStatus::InProgress.as_str())
            .arg(JobStatus::Complete.as_str())
            .arg(rfc3339(now))
            .arg(millis(now).saturating_add(duration_millis(ttl)));
        let mut leases = Vec::with_capacity(done.len());
        for (lease, result) in done {
            invocation
                .arg(lease.id().to_string())
                .arg(lease.token.0)
                .arg(result);
            leases.push(lease);
        }
        let mut conn = self.conn.clone();
        let changed: Vec<i64> = self.run_bulk(invocation.invoke_async(&mut conn)).await?;
        if changed.len() != leases.len() {
            return Err(Error::Internal(format!(
                "complete script answered {} flags for {} leases",
                changed.len(),
                leases.len()
            )));
        }
        Ok(leases
            .iter()
            .zip(changed)
            .map(|(lease, changed)| {
                Self::after_fenced_change(lease, changed, |job| {
                    job.status = JobStatus::Complete;
                    job.finished_at = Some(now);
                    job.error = None;
                })
            })
            .collect())
    }

    /// Runs one enqueue script call for up to [`ENQUEUE_CHUNK`] jobs, stopping at the first
    /// refused one (as [`Queue::enqueue_many`] does).
    async fn enqueue_chunk(&self, jobs: &[Job]) -> Result<()> {
        for job in jobs {
            check_submitted(job)?;
        }
        let reply = self.run_enqueue(jobs.iter(), "stop").await?;
        match tagged(reply)? {
            (tag, _) if tag == "ok" => Ok(()),
            (tag, rest) if tag == "exists" => {
                let id = rest
                    .into_iter()
                    .next()
                    .map(string)
                    .transpose()?
                    .unwrap_or_default();
                Err(Error::Conflict(format!("job {id} already exists")))
            }
            (tag, _) => Err(Error::Internal(format!("enqueue script answered '{tag}'"))),
        }
    }

    /// Enqueues jobs of separate callers in one script call, each refused or stored on its own.
    pub(super) async fn enqueue_batch(&self, jobs: Vec<Job>) -> Vec<Result<()>> {
        let mut answers: Vec<Result<()>> = jobs.iter().map(check_submitted).collect();
        let valid: Vec<usize> = (0..jobs.len()).filter(|&i| answers[i].is_ok()).collect();
        if valid.is_empty() {
            return answers;
        }
        let refused = self
            .run_enqueue(valid.iter().map(|&i| &jobs[i]), "skip")
            .await
            .and_then(tagged)
            .and_then(|(tag, rest)| match tag.as_str() {
                "ok" => rest.into_iter().map(int).collect::<Result<Vec<i64>>>(),
                _ => Err(Error::Internal(format!("enqueue script answered '{tag}'"))),
            });
        match refused {
            Ok(refused) => {
                for position in refused {
                    let i = usize::try_from(position - 1)
                        .ok()
                        .and_then(|p| valid.get(p).copied());
                    if let Some(i) = i {
                        answers[i] = Err(Error::Conflict(format!(
                            "job {} already exists",
                            jobs[i].id
                        )));
                    }
                }
            }
            Err(e) => {
                for (&i, answer) in valid.iter().zip(coalesce::for_each(&e, valid.len())) {
                    answers[i] = answer;
                }
            }
        }
        answers
    }

    /// One enqueue script call for `jobs`, in `mode` `stop` or `skip`.
    async fn run_enqueue<'a>(
        &self,
        jobs: impl ExactSizeIterator<Item = &'a Job>,
        mode: &str,
    ) -> Result<Value> {
        let k = &self.keys;
        let single = jobs.len() <= 1;
        let mut invocation = SCRIPTS.enqueue.prepare_invoke();
        invocation
            .key(&k.seq)
            .key(&k.ready)
            .key(&k.wake)
            .arg(&k.job_prefix)
            .arg(WAKE_CAP)
            .arg(jobs.len())
            .arg(mode)
            .arg(JobStatus::Submitted.as_str());
        for job in jobs {
            invocation.arg(enqueue_args(job));
        }
        let mut conn = self.conn.clone();
        // One job answers within the default deadline, so a client submitting to a hung Redis
        // gets its 503 in about a second; only real batches get the bulk deadline.
        if single {
            self.run(invocation.invoke_async(&mut conn)).await
        } else {
            self.run_bulk(invocation.invoke_async(&mut conn)).await
        }
    }

    /// The job as a script that passed the fencing check (`changed == 1`) left it: the job as
    /// leased with `update` applied. The check proves nothing else touched it since the lease
    /// (renewals change only the lease deadline), so there is no need to read it back.
    fn after_fenced_change(
        lease: &Lease,
        changed: i64,
        update: impl FnOnce(&mut Job),
    ) -> Result<Job> {
        if changed != 1 {
            return Err(Error::LeaseLost);
        }
        let mut job = lease.job.clone();
        update(&mut job);
        Ok(job)
    }
}

impl RedisBackend {
    /// Adds to `pipe` the sizes of the four places of the queue, in the order [`queue_depth`]
    /// takes them: never leased, back from a lease, waiting for a retry, leased.
    pub(super) fn read_queue_places(&self, pipe: &mut redis::Pipeline) {
        let k = &self.keys;
        pipe.llen(&k.ready)
            .zcard(&k.returned)
            .zcard(&k.delayed)
            .zcard(&k.leased);
    }
}

/// The queue's depth from the sizes [`RedisBackend::read_queue_places`] reads: jobs never leased
/// and jobs back from a lease are both ready.
pub(super) fn queue_depth(
    (never_leased, returned, delayed, leased): (u64, u64, u64, u64),
) -> QueueDepth {
    QueueDepth {
        ready: never_leased + returned,
        delayed,
        leased,
    }
}

/// Only new jobs can be enqueued.
fn check_submitted(job: &Job) -> Result<()> {
    if job.status == JobStatus::Submitted {
        Ok(())
    } else {
        Err(Error::IllegalTransition {
            from: job.status,
            to: JobStatus::Submitted,
        })
    }
}

#[async_trait]
impl Queue for RedisBackend {
    /// Concurrent calls from one process (an API under load) are gathered into one script call,
    /// each job still stored or refused on its own.
    async fn enqueue(&self, job: &Job) -> Result<()> {
        match &self.enqueues {
            Some(batch) => {
                let call = batch.call(job.clone());
                self.run(async { Ok(call.await) }).await?
            }
            None => self.enqueue_chunk(std::slice::from_ref(job)).await,
        }
    }

    /// Stores the jobs in chunks of up to 1,000 per script call, several calls in flight at
    /// once on the shared connection; they are queued in the order given.
    async fn enqueue_many(&self, jobs: &[Job]) -> Result<()> {
        let mut chunks = jobs.chunks(ENQUEUE_CHUNK);
        // The first call alone: it loads the script if the server does not have it yet, so
        // the calls sent together below cannot overtake each other through a reload.
        match chunks.next() {
            Some(first) => self.enqueue_chunk(first).await?,
            None => return Ok(()),
        }
        let mut calls = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            calls.push(self.enqueue_chunk(chunk));
        }
        futures::stream::iter(calls)
            .buffered(ENQUEUE_IN_FLIGHT)
            .try_collect::<()>()
            .await
    }

    /// Concurrent calls from one process are gathered into one `lease_many` call.
    async fn lease(&self, worker: &str, lease_for: Duration) -> Result<Option<Lease>> {
        match &self.leases {
            Some(batch) => {
                let request = LeaseRequest {
                    worker: worker.to_owned(),
                    lease_for,
                };
                self.run(async { Ok(batch.call(request).await) }).await?
            }
            None => Ok(self.lease_many(worker, lease_for, 1).await?.pop()),
        }
    }

    async fn renew(&self, lease: &Lease, lease_for: Duration) -> Result<DateTime<Utc>> {
        let deadline = after(self.clock.now(), lease_for);
        match self
            .renew_until(std::slice::from_ref(lease), deadline)
            .await?[..]
        {
            [true] => Ok(deadline),
            _ => Err(Error::LeaseLost),
        }
    }

    async fn renew_many(&self, leases: &[Lease], lease_for: Duration) -> Result<Vec<bool>> {
        let deadline = after(self.clock.now(), lease_for);
        let mut held = Vec::with_capacity(leases.len());
        for chunk in leases.chunks(RENEW_CHUNK) {
            held.extend(self.renew_until(chunk, deadline).await?);
        }
        Ok(held)
    }

    /// Concurrent calls from one process are gathered into one `complete_many` call.
    async fn complete(&self, lease: &Lease, result: Vec<u8>) -> Result<Job> {
        match &self.completions {
            Some(batch) => {
                let call = batch.call((lease.clone(), result));
                self.run_with(BULK_TIMEOUT, async { Ok(call.await) })
                    .await?
            }
            None => {
                let mut done = self.complete_many(vec![(lease.clone(), result)]).await?;
                done.pop()
                    .unwrap_or_else(|| Err(Error::Internal("complete answered nothing".into())))
            }
        }
    }

    async fn fail(&self, lease: &Lease, reason: &str, kind: FailureKind) -> Result<Job> {
        let now = self.clock.now();
        let ttl = self.settings.result_ttl;
        let decision = self.settings.retry.decide(lease.attempt(), kind);
        let (to, mode, at) = match decision {
            RetryDecision::RetryAfter(delay) => {
                (JobStatus::Submitted, "retry", millis(after(now, delay)))
            }
            RetryDecision::GiveUp => (
                JobStatus::Failed,
                "give_up",
                millis(now).saturating_add(duration_millis(ttl)),
            ),
        };
        JobStatus::InProgress.transition(to)?;
        let id = lease.id();
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let changed: i64 = self
            .run(
                SCRIPTS
                    .fail
                    .key(k.job(id))
                    .key(&k.leased)
                    .key(&k.failed)
                    .key(&k.delayed)
                    .key(&k.expiry)
                    .arg(id.to_string())
                    .arg(lease.token.0)
                    .arg(JobStatus::InProgress.as_str())
                    .arg(to.as_str())
                    .arg(mode)
                    .arg(reason)
                    .arg(at)
                    .arg(rfc3339(now))
                    .invoke_async(&mut conn),
            )
            .await?;
        Self::after_fenced_change(lease, changed, |job| {
            job.status = to;
            job.error = Some(reason.to_owned());
            if to == JobStatus::Failed {
                job.finished_at = Some(now);
            }
        })
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        JobStatus::InProgress.transition(JobStatus::Submitted)?;
        let id = lease.id();
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let released: i64 = self
            .run(
                SCRIPTS
                    .release
                    .key(k.job(id))
                    .key(&k.leased)
                    .key(&k.returned)
                    .key(&k.wake)
                    .arg(id.to_string())
                    .arg(lease.token.0)
                    .arg(JobStatus::InProgress.as_str())
                    .arg(JobStatus::Submitted.as_str())
                    .arg(WAKE_CAP)
                    .invoke_async(&mut conn),
            )
            .await?;
        if released == 1 {
            Ok(())
        } else {
            Err(Error::LeaseLost)
        }
    }

    async fn requeue_expired(&self) -> Result<RequeueReport> {
        JobStatus::InProgress.transition(JobStatus::Submitted)?;
        JobStatus::InProgress.transition(JobStatus::Failed)?;
        let now = self.clock.now();
        let ttl = self.settings.result_ttl;
        let k = &self.keys;
        let mut report = RequeueReport::default();
        loop {
            let mut conn = self.conn.clone();
            let (requeued, failed, examined): (u64, u64, usize) = self
                .run(
                    SCRIPTS
                        .requeue_expired
                        .key(&k.leased)
                        .key(&k.returned)
                        .key(&k.failed)
                        .key(&k.expiry)
                        .key(&k.wake)
                        .arg(&k.job_prefix)
                        .arg(millis(now))
                        .arg(self.settings.retry.max_attempts.max(1))
                        .arg(REQUEUE_CHUNK)
                        .arg(rfc3339(now))
                        .arg(millis(now).saturating_add(duration_millis(ttl)))
                        .arg(JobStatus::InProgress.as_str())
                        .arg(JobStatus::Submitted.as_str())
                        .arg(JobStatus::Failed.as_str())
                        .arg(WAKE_CAP)
                        .invoke_async(&mut conn),
                )
                .await?;
            report.requeued += requeued;
            report.failed += failed;
            if examined < REQUEUE_CHUNK {
                return Ok(report);
            }
        }
    }

    async fn depth(&self) -> Result<QueueDepth> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.read_queue_places(&mut pipe);
        let places = self.run(pipe.query_async(&mut conn)).await?;
        Ok(queue_depth(places))
    }

    /// Returns at once when a job is ready or a delayed retry is due; otherwise blocks on the
    /// wake-up list (`BLPOP`, on a connection of its own) until a job is enqueued, released or
    /// requeued, the next delayed retry is due, or `timeout` passes. While Redis is unreachable it
    /// waits up to one second (or `timeout`, if shorter), so idle workers do not spin.
    async fn wait_for_work(&self, timeout: Duration) {
        let backoff = timeout.min(Duration::from_secs(1));
        match self.wait_for_work_inner(timeout).await {
            Ok(()) => {}
            Err(_) => tokio::time::sleep(backoff).await,
        }
    }
}

impl RedisBackend {
    /// Renews `leases` (one script call) to `deadline`; one flag per lease.
    async fn renew_until(&self, leases: &[Lease], deadline: DateTime<Utc>) -> Result<Vec<bool>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let k = &self.keys;
        let mut invocation = SCRIPTS.renew.prepare_invoke();
        invocation
            .key(&k.leased)
            .arg(&k.job_prefix)
            .arg(millis(deadline))
            .arg(rfc3339(deadline))
            .arg(JobStatus::InProgress.as_str());
        for lease in leases {
            invocation.arg(lease.id().to_string()).arg(lease.token.0);
        }
        let mut conn = self.conn.clone();
        let held: Vec<i64> = self.run(invocation.invoke_async(&mut conn)).await?;
        if held.len() != leases.len() {
            return Err(Error::Internal(format!(
                "renew script answered {} flags for {} leases",
                held.len(),
                leases.len()
            )));
        }
        Ok(held.into_iter().map(|h| h == 1).collect())
    }

    async fn wait_for_work_inner(&self, timeout: Duration) -> Result<()> {
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let (never_leased, returned, next_delayed): (u64, u64, Vec<(String, f64)>) = self
            .run(
                redis::pipe()
                    .llen(&k.ready)
                    .zcard(&k.returned)
                    .zrange_withscores(&k.delayed, 0, 0)
                    .query_async(&mut conn),
            )
            .await?;
        if never_leased + returned > 0 {
            return Ok(());
        }
        let mut wait = timeout;
        if let Some((_, due_ms)) = next_delayed.first() {
            let until_due = (*due_ms as i64).saturating_sub(millis(self.clock.now()));
            if until_due <= 0 {
                return Ok(());
            }
            wait = wait.min(Duration::from_millis(until_due as u64));
        }
        if wait < Duration::from_millis(1) {
            return Ok(());
        }
        let mut blpop = redis::cmd("BLPOP");
        blpop.arg(&k.wake).arg(wait.as_secs_f64());
        let mut reuse = true;
        loop {
            let (mut blocking, reused) = self.blocking_connection(reuse).await?;
            let command = blpop.query_async::<Value>(&mut blocking);
            // The server ends the BLPOP at `wait`; the extra second covers a server that cannot.
            match tokio::time::timeout(wait + Duration::from_secs(1), command).await {
                Ok(Ok(_)) => {
                    self.return_blocking_connection(blocking);
                    return Ok(());
                }
                // An idle connection may have died with a server restart: try a new one once.
                Ok(Err(e)) if reused && is_outage(&e) => reuse = false,
                Ok(Err(e)) => return Err(map_error(e)),
                Err(_) => {
                    return Err(Error::Unavailable(
                        "Redis did not end a blocking wait".into(),
                    ));
                }
            }
        }
    }
}
