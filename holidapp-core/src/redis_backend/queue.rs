//! [`Producer`], [`Consumer`] and [`Maintenance`] on Redis, plus batch leasing and completing
//! for workers that want throughput.

use std::collections::BTreeMap;
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
use super::keys::QueueKeys;
use super::scripts::SCRIPTS;
use super::{LeaseRequest, MAX_LEASE_BATCH, RedisBackend, is_outage, map_error};
use crate::error::{Error, Result};
use crate::job::{Job, QueueName};
use crate::kind::Output;
use crate::machine::{
    Attempts, Event, FailureKind, JobState, JobStatus, Move, Requeue, decide, expiry_reason,
};
use crate::queue::{Consumer, Lease, LeaseToken, Maintenance, Producer, RequeueReport};

/// Most jobs one enqueue script call stores (Lua's `unpack` has a stack limit).
const ENQUEUE_CHUNK: usize = 1000;

/// Enqueue script calls in flight at once on the shared connection during a bulk enqueue.
const ENQUEUE_IN_FLIGHT: usize = 8;

/// Most delayed retries one lease call makes ready again.
const PROMOTE_LIMIT: usize = 1000;

/// Most expired leases one recovery round handles per queue; `requeue_expired` repeats rounds
/// until a round finds fewer.
const REQUEUE_CHUNK: usize = 500;

/// Most recovery rounds per queue in one `requeue_expired` call; the next call goes on.
const REQUEUE_ROUNDS: usize = 100;

/// Most leases one renew script call checks.
const RENEW_CHUNK: usize = 1000;

/// Most wake-up tokens kept per queue for idle workers. Enough to wake every idle worker of a
/// large deployment at once; stale tokens cost at most this many spurious wake-ups.
const WAKE_CAP: usize = 256;

/// Indexes of `items` grouped by a key, groups in order of first appearance.
fn grouped<T, K: Ord + Clone>(items: &[T], key: impl Fn(&T) -> K) -> Vec<(K, Vec<usize>)> {
    let mut order: Vec<K> = Vec::new();
    let mut groups: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let k = key(item);
        groups
            .entry(k.clone())
            .or_insert_with(|| {
                order.push(k);
                Vec::new()
            })
            .push(i);
    }
    order
        .into_iter()
        .map(|k| {
            let members = groups.remove(&k).unwrap_or_default();
            (k, members)
        })
        .collect()
}

impl RedisBackend {
    /// Leases up to `max` ready jobs of `queue` (at most [`MAX_LEASE_BATCH`]) for `worker` in one
    /// step, oldest first, each as [`Consumer::lease`] would (its own fencing token; one deadline
    /// for the batch). Workers that run many jobs at once can take a batch in one round trip.
    pub async fn lease_many(
        &self,
        queue: &QueueName,
        worker: &str,
        lease_for: Duration,
        max: usize,
    ) -> Result<Vec<Lease>> {
        let max = max.min(MAX_LEASE_BATCH);
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let deadline = after(now, lease_for);
        let k = self.queue_keys(queue);
        let reply: Value = self
            .conn
            .invoke(
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
                    .arg(&LEASE_FIELDS[..]),
            )
            .await?;
        array(reply)?
            .into_iter()
            .map(|item| {
                let mut parts = array(item)?.into_iter();
                let (Some(id), Some(token), Some(values)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(Error::Internal(
                        "lease script answered a short entry".into(),
                    ));
                };
                let token = u64::try_from(int(token)?)
                    .map_err(|_| Error::Internal("negative lease token".into()))?;
                let id = string(id)?
                    .parse()
                    .map_err(|_| Error::Internal("lease script answered a bad job id".into()))?;
                let mut job = job_from_lease_values(id, values, queue)?;
                let mv = decide(machine_state(&job), Event::Lease, &self.settings.retry)?;
                // What the script changed, as it changed it: the lease's move, the worker, the
                // start time.
                apply_to(&mut job, mv);
                job.worker = Some(worker.to_owned());
                job.started_at = Some(now);
                Ok(Lease {
                    job,
                    token: LeaseToken(token),
                    worker: worker.to_owned(),
                    deadline,
                })
            })
            .collect()
    }

    /// Leases for a batch of `lease` calls: one `lease_many` per queue, worker and lease length,
    /// in the order the calls came; calls left without a job get `None`.
    pub(super) async fn lease_batch(
        &self,
        requests: Vec<LeaseRequest>,
    ) -> Vec<Result<Option<Lease>>> {
        let mut answers: Vec<Result<Option<Lease>>> =
            (0..requests.len()).map(|_| Ok(None)).collect();
        let groups = grouped(&requests, |r| {
            (r.queue.clone(), r.worker.clone(), r.lease_for)
        });
        for ((queue, worker, lease_for), members) in groups {
            match self
                .lease_many(&queue, &worker, lease_for, members.len())
                .await
            {
                Ok(leases) => {
                    for (i, lease) in members.into_iter().zip(leases) {
                        answers[i] = Ok(Some(lease));
                    }
                }
                Err(e) => {
                    for i in members {
                        answers[i] = Err(e.duplicate());
                    }
                }
            }
        }
        answers
    }

    /// Completes many leased jobs in one step each and one round trip per queue: each job gets
    /// its result and `complete` as [`Consumer::complete`] would give them, under its own fencing
    /// check. One answer per lease, in order: the finished job, or [`Error::LeaseLost`] for a
    /// lease that is no longer held (which does not stop the others).
    pub async fn complete_many(&self, done: Vec<(Lease, Output)>) -> Result<Vec<Result<Job>>> {
        let mut answers: Vec<Option<Result<Job>>> = (0..done.len()).map(|_| None).collect();
        let groups = grouped(&done, |(lease, _)| lease.job.queue.clone());
        let mut done: Vec<Option<(Lease, Output)>> = done.into_iter().map(Some).collect();
        for (queue, members) in groups {
            let batch: Vec<(Lease, Output)> =
                members.iter().filter_map(|&i| done[i].take()).collect();
            let finished = self.complete_in(&queue, batch).await?;
            for (i, answer) in members.into_iter().zip(finished) {
                answers[i] = Some(answer);
            }
        }
        Ok(answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(Error::Internal("a completion got no answer".into()))))
            .collect())
    }

    /// `complete_many` for the coalescer: a failure of the whole call answers every caller.
    pub(super) async fn complete_batch(&self, done: Vec<(Lease, Output)>) -> Vec<Result<Job>> {
        let calls = done.len();
        self.complete_many(done)
            .await
            .unwrap_or_else(|e| coalesce::for_each(&e, calls))
    }

    /// One complete script call for leases of `queue`.
    async fn complete_in(
        &self,
        queue: &QueueName,
        done: Vec<(Lease, Output)>,
    ) -> Result<Vec<Result<Job>>> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let expires_at = millis(now).saturating_add(duration_millis(self.settings.result_ttl));
        let k = self.queue_keys(queue);
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
            .arg(expires_at);
        let mut leases = Vec::with_capacity(done.len());
        for (lease, output) in done {
            invocation
                .arg(lease.id().to_string())
                .arg(lease.token.0)
                .arg(output.bytes().as_ref())
                .arg(output.content_type());
            leases.push((lease, output.content_type_shared()));
        }
        let changed: Vec<i64> = self
            .conn
            .run_bulk({
                let mut conn = self.conn.manager();
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await?;
        if changed.len() != leases.len() {
            return Err(Error::Internal(format!(
                "complete script answered {} flags for {} leases",
                changed.len(),
                leases.len()
            )));
        }
        Ok(leases
            .into_iter()
            .zip(changed)
            .map(|((lease, content_type), changed)| {
                self.after_fenced_change(&lease, changed, Event::Complete, |job| {
                    job.finished_at = Some(now);
                    job.error = None;
                    job.result_type = Some(content_type);
                })
            })
            .collect())
    }

    /// Runs one enqueue script call for up to [`ENQUEUE_CHUNK`] jobs of one queue, stopping at
    /// the first refused one (as [`Producer::enqueue_many`] does).
    async fn enqueue_chunk(&self, k: &QueueKeys, jobs: &[Job]) -> Result<()> {
        for job in jobs {
            check_new(job)?;
        }
        let reply = self.run_enqueue(k, jobs.iter(), "stop").await?;
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

    /// Enqueues jobs of separate callers in one script call per queue, each refused or stored on
    /// its own.
    pub(super) async fn enqueue_batch(&self, jobs: Vec<Job>) -> Vec<Result<()>> {
        let mut answers: Vec<Result<()>> = jobs.iter().map(check_new).collect();
        let valid: Vec<usize> = (0..jobs.len()).filter(|&i| answers[i].is_ok()).collect();
        if valid.is_empty() {
            return answers;
        }
        if let Err(e) = self.register(valid.iter().map(|&i| &jobs[i].queue)).await {
            for i in valid {
                answers[i] = Err(e.duplicate());
            }
            return answers;
        }
        for (queue, members) in grouped(&valid, |&i| jobs[i].queue.clone()) {
            let positions: Vec<usize> = members.iter().map(|&m| valid[m]).collect();
            let k = self.queue_keys(&queue);
            let refused = self
                .run_enqueue(&k, positions.iter().map(|&i| &jobs[i]), "skip")
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
                            .and_then(|p| positions.get(p).copied());
                        if let Some(i) = i {
                            answers[i] = Err(Error::Conflict(format!(
                                "job {} already exists",
                                jobs[i].id
                            )));
                        }
                    }
                }
                Err(e) => {
                    for i in positions {
                        answers[i] = Err(e.duplicate());
                    }
                }
            }
        }
        answers
    }

    /// One enqueue script call for `jobs` of the queue of `k`, in `mode` `stop` or `skip`.
    async fn run_enqueue<'a>(
        &self,
        k: &QueueKeys,
        jobs: impl ExactSizeIterator<Item = &'a Job>,
        mode: &str,
    ) -> Result<Value> {
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
            .arg(JobStatus::Submitted.as_str())
            .arg(millis(self.clock.now()));
        for job in jobs {
            invocation.arg(enqueue_args(job));
        }
        let mut conn = self.conn.manager();
        let call = async move { invocation.invoke_async(&mut conn).await };
        // One job answers within the default deadline, so a client submitting to a hung Redis
        // gets its 503 in about a second; only real batches get the bulk deadline.
        if single {
            self.conn.run(call).await
        } else {
            self.conn.run_bulk(call).await
        }
    }

    /// The job as a script that passed the fencing check (`changed == 1`) left it: the job as
    /// leased, moved as the status machine decides for `event`, with `update` applied. The check
    /// proves nothing else touched it since the lease (renewals change only the lease deadline),
    /// so there is no need to read it back.
    fn after_fenced_change(
        &self,
        lease: &Lease,
        changed: i64,
        event: Event,
        update: impl FnOnce(&mut Job),
    ) -> Result<Job> {
        if changed != 1 {
            return Err(Error::LeaseLost);
        }
        let mut job = lease.job.clone();
        let mv = decide(machine_state(&job), event, &self.settings.retry)?;
        apply_to(&mut job, mv);
        update(&mut job);
        Ok(job)
    }

    /// Renews `leases` of one queue (one script call) to `deadline`; one flag per lease.
    async fn renew_in(
        &self,
        queue: &QueueName,
        leases: &[&Lease],
        deadline: DateTime<Utc>,
    ) -> Result<Vec<bool>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.queue_keys(queue);
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
        let held: Vec<i64> = self.conn.invoke(&invocation).await?;
        if held.len() != leases.len() {
            return Err(Error::Internal(format!(
                "renew script answered {} flags for {} leases",
                held.len(),
                leases.len()
            )));
        }
        Ok(held.into_iter().map(|h| h == 1).collect())
    }

    /// Renews `leases` to `deadline`: one script call per queue and chunk; one flag per lease,
    /// in order.
    async fn renew_until(&self, leases: &[Lease], deadline: DateTime<Utc>) -> Result<Vec<bool>> {
        let mut held = vec![false; leases.len()];
        for (queue, members) in grouped(leases, |l| l.job.queue.clone()) {
            for chunk in members.chunks(RENEW_CHUNK) {
                let batch: Vec<&Lease> = chunk.iter().map(|&i| &leases[i]).collect();
                let flags = self.renew_in(&queue, &batch, deadline).await?;
                for (&i, flag) in chunk.iter().zip(flags) {
                    held[i] = flag;
                }
            }
        }
        Ok(held)
    }

    /// One recovery round on `queue`: finds up to [`REQUEUE_CHUNK`] expired leases, asks the
    /// status machine what each one's expiry does, and carries the decisions out. Answers the
    /// report and how many expired leases were found.
    async fn requeue_round(&self, queue: &QueueName) -> Result<(RequeueReport, usize)> {
        let now = self.clock.now();
        let k = self.queue_keys(queue);
        let found: Value = self
            .conn
            .invoke(
                SCRIPTS
                    .expired
                    .key(&k.leased)
                    .arg(&k.job_prefix)
                    .arg(millis(now))
                    .arg(REQUEUE_CHUNK),
            )
            .await?;
        let found = array(found)?;
        let examined = found.len();
        if examined == 0 {
            return Ok((RequeueReport::default(), 0));
        }
        let mut invocation = SCRIPTS.expire.prepare_invoke();
        invocation
            .key(&k.leased)
            .key(&k.returned)
            .key(&k.failed)
            .key(&k.expiry)
            .key(&k.wake)
            .arg(&k.job_prefix)
            .arg(millis(now))
            .arg(rfc3339(now))
            .arg(millis(now).saturating_add(duration_millis(self.settings.result_ttl)))
            .arg(JobStatus::InProgress.as_str())
            .arg(JobStatus::Submitted.as_str())
            .arg(JobStatus::Failed.as_str())
            .arg(WAKE_CAP);
        for entry in found {
            let fields: Vec<Option<String>> = array(entry)?
                .into_iter()
                .map(|v| match v {
                    Value::Nil => Ok(None),
                    other => string(other).map(Some),
                })
                .collect::<Result<_>>()?;
            let field = |i: usize| fields.get(i).cloned().flatten();
            let (Some(id), token) = (field(0), field(1).unwrap_or_default()) else {
                continue;
            };
            let number = |i: usize| field(i).and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
            let state = JobState {
                status: field(2)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(JobStatus::InProgress),
                attempts: number(3),
                max_attempts: number(4).max(1),
            };
            // A job no longer `in progress` has no decision to make: the script drops its entry.
            let decision = match decide(state, Event::Expire, &self.settings.retry) {
                Ok(mv) if mv.to == JobStatus::Failed => "fail",
                _ => "requeue",
            };
            invocation
                .arg(id)
                .arg(token)
                .arg(decision)
                .arg(expiry_reason(state.attempts, state.max_attempts));
        }
        let (requeued, failed): (u64, u64) = self.conn.invoke(&invocation).await?;
        Ok((RequeueReport { requeued, failed }, examined))
    }

    async fn wait_for_work_inner(&self, queues: &[QueueName], timeout: Duration) -> Result<()> {
        let keys: Vec<QueueKeys> = queues.iter().map(|q| self.queue_keys(q)).collect();
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.llen(&k.ready)
                .zcard(&k.returned)
                .zrange_withscores(&k.delayed, 0, 0);
        }
        let answers: Vec<Value> = {
            let mut conn = self.conn.manager();
            self.conn.run(pipe.query_async(&mut conn)).await?
        };
        let mut wait = timeout;
        let mut answers = answers.into_iter();
        while let (Some(never_leased), Some(returned), Some(delayed)) =
            (answers.next(), answers.next(), answers.next())
        {
            if int(never_leased)? + int(returned)? > 0 {
                return Ok(());
            }
            let next_delayed: Vec<(String, f64)> = redis::from_redis_value(delayed)
                .map_err(|e| Error::Internal(format!("Redis answered a bad ZRANGE: {e}")))?;
            if let Some((_, due_ms)) = next_delayed.first() {
                let until_due = (*due_ms as i64).saturating_sub(millis(self.clock.now()));
                if until_due <= 0 {
                    return Ok(());
                }
                wait = wait.min(Duration::from_millis(until_due as u64));
            }
        }
        if wait < Duration::from_millis(1) || keys.is_empty() {
            return Ok(());
        }
        let mut blpop = redis::cmd("BLPOP");
        for k in &keys {
            blpop.arg(&k.wake);
        }
        blpop.arg(wait.as_secs_f64());
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

/// The status machine's view of a job.
fn machine_state(job: &Job) -> JobState {
    JobState {
        status: job.status,
        attempts: job.attempts,
        max_attempts: job.max_attempts,
    }
}

/// Applies a move's status and attempt change to a job (the scripts carry out the rest).
fn apply_to(job: &mut Job, mv: Move) {
    job.status = mv.to;
    match mv.attempts {
        Attempts::Count => job.attempts = job.attempts.saturating_add(1),
        Attempts::Uncount => job.attempts = job.attempts.saturating_sub(1),
        Attempts::Keep => {}
    }
}

/// Only new jobs can be enqueued.
fn check_new(job: &Job) -> Result<()> {
    if job.status == JobStatus::Submitted {
        Ok(())
    } else {
        Err(Error::IllegalTransition {
            from: job.status,
            event: "Enqueue".into(),
        })
    }
}

#[async_trait]
impl Producer for RedisBackend {
    /// Concurrent calls from one process (an API under load) are gathered into one script call
    /// per queue, each job still stored or refused on its own.
    async fn enqueue(&self, job: &Job) -> Result<()> {
        match &self.enqueues {
            Some(batch) => {
                let call = batch.call(job.clone());
                self.conn.run(async { Ok(call.await) }).await?
            }
            None => {
                check_new(job)?;
                self.register(std::iter::once(&job.queue)).await?;
                self.enqueue_chunk(&self.queue_keys(&job.queue), std::slice::from_ref(job))
                    .await
            }
        }
    }

    /// Stores the jobs in chunks of up to 1,000 per script call, several calls in flight at
    /// once on the shared connection; each queue's jobs are queued in the order given. On a
    /// refusal, the jobs of the chunks sent before it are stored, and so may be those of chunks
    /// in flight beside it.
    async fn enqueue_many(&self, jobs: &[Job]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        self.register(jobs.iter().map(|j| &j.queue)).await?;
        let mut start = 0;
        while start < jobs.len() {
            // The longest run of jobs of one queue from `start`.
            let queue = &jobs[start].queue;
            let end = jobs[start..]
                .iter()
                .position(|j| j.queue != *queue)
                .map_or(jobs.len(), |n| start + n);
            let k = self.queue_keys(queue);
            let mut chunks = jobs[start..end].chunks(ENQUEUE_CHUNK);
            // The first call alone: it loads the script if the server does not have it yet, so
            // the calls sent together below cannot overtake each other through a reload.
            if let Some(first) = chunks.next() {
                self.enqueue_chunk(&k, first).await?;
            }
            let calls: Vec<_> = chunks.map(|chunk| self.enqueue_chunk(&k, chunk)).collect();
            futures::stream::iter(calls)
                .buffered(ENQUEUE_IN_FLIGHT)
                .try_collect::<()>()
                .await?;
            start = end;
        }
        Ok(())
    }
}

#[async_trait]
impl Consumer for RedisBackend {
    /// Concurrent calls from one process are gathered into one `lease_many` call per queue.
    async fn lease(
        &self,
        queue: &QueueName,
        worker: &str,
        lease_for: Duration,
    ) -> Result<Option<Lease>> {
        match &self.leases {
            Some(batch) => {
                let request = LeaseRequest {
                    queue: queue.clone(),
                    worker: worker.to_owned(),
                    lease_for,
                };
                self.conn
                    .run(async { Ok(batch.call(request).await) })
                    .await?
            }
            None => Ok(self.lease_many(queue, worker, lease_for, 1).await?.pop()),
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
        self.renew_until(leases, deadline).await
    }

    /// Concurrent calls from one process are gathered into one `complete_many` call.
    async fn complete(&self, lease: &Lease, output: Output) -> Result<Job> {
        match &self.completions {
            Some(batch) => {
                let call = batch.call((lease.clone(), output));
                self.conn
                    .run_with(super::BULK_TIMEOUT, async { Ok(call.await) })
                    .await?
            }
            None => {
                let mut done = self.complete_many(vec![(lease.clone(), output)]).await?;
                done.pop()
                    .unwrap_or_else(|| Err(Error::Internal("complete answered nothing".into())))
            }
        }
    }

    async fn fail(&self, lease: &Lease, reason: &str, kind: FailureKind) -> Result<Job> {
        let now = self.clock.now();
        let mv = decide(
            machine_state(&lease.job),
            Event::Fail(kind),
            &self.settings.retry,
        )?;
        let (mode, at) = match mv.requeue {
            Some(Requeue::After(delay)) => ("retry", millis(after(now, delay))),
            Some(Requeue::Now) => ("retry", millis(now)),
            None => (
                "give_up",
                millis(now).saturating_add(duration_millis(self.settings.result_ttl)),
            ),
        };
        let id = lease.id();
        let k = self.queue_keys(&lease.job.queue);
        let changed: i64 = self
            .conn
            .invoke(
                SCRIPTS
                    .fail
                    .key(self.keys.job(id))
                    .key(&k.leased)
                    .key(&k.failed)
                    .key(&k.delayed)
                    .key(&k.expiry)
                    .arg(id.to_string())
                    .arg(lease.token.0)
                    .arg(JobStatus::InProgress.as_str())
                    .arg(mv.to.as_str())
                    .arg(mode)
                    .arg(reason)
                    .arg(at)
                    .arg(rfc3339(now)),
            )
            .await?;
        if changed != 1 {
            return Err(Error::LeaseLost);
        }
        let mut job = lease.job.clone();
        apply_to(&mut job, mv);
        job.error = Some(reason.to_owned());
        if mv.finishes {
            job.finished_at = Some(now);
        }
        Ok(job)
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        let mv = decide(
            machine_state(&lease.job),
            Event::Release,
            &self.settings.retry,
        )?;
        let delta: i64 = match mv.attempts {
            Attempts::Count => 1,
            Attempts::Uncount => -1,
            Attempts::Keep => 0,
        };
        let id = lease.id();
        let k = self.queue_keys(&lease.job.queue);
        let released: i64 = self
            .conn
            .invoke(
                SCRIPTS
                    .release
                    .key(self.keys.job(id))
                    .key(&k.leased)
                    .key(&k.returned)
                    .key(&k.wake)
                    .arg(id.to_string())
                    .arg(lease.token.0)
                    .arg(JobStatus::InProgress.as_str())
                    .arg(mv.to.as_str())
                    .arg(WAKE_CAP)
                    .arg(delta),
            )
            .await?;
        if released == 1 {
            Ok(())
        } else {
            Err(Error::LeaseLost)
        }
    }

    /// Returns at once when a job of one of `queues` is ready or a delayed retry is due;
    /// otherwise blocks on the queues' wake-up lists (`BLPOP`, on a connection of its own) until
    /// a job is enqueued, released or requeued, the next delayed retry is due, or `timeout`
    /// passes. While Redis is unreachable it waits up to one second (or `timeout`, if shorter),
    /// so idle workers do not spin.
    async fn wait_for_work(&self, queues: &[QueueName], timeout: Duration) {
        let backoff = timeout.min(Duration::from_secs(1));
        match self.wait_for_work_inner(queues, timeout).await {
            Ok(()) => {}
            Err(_) => tokio::time::sleep(backoff).await,
        }
    }
}

#[async_trait]
impl Maintenance for RedisBackend {
    async fn requeue_expired(&self) -> Result<RequeueReport> {
        let mut report = RequeueReport::default();
        for queue in self.known_queues().await? {
            for _ in 0..REQUEUE_ROUNDS {
                let (round, examined) = self.requeue_round(&queue).await?;
                report.requeued += round.requeued;
                report.failed += round.failed;
                if examined < REQUEUE_CHUNK {
                    break;
                }
            }
        }
        Ok(report)
    }

    async fn purge_expired(&self) -> Result<u64> {
        let now = millis(self.clock.now());
        let mut purged = 0;
        for queue in self.known_queues().await? {
            let k = self.queue_keys(&queue);
            loop {
                let n: u64 = self
                    .conn
                    .invoke(
                        SCRIPTS
                            .purge_expired
                            .key(&k.expiry)
                            .key(&k.complete)
                            .key(&k.failed)
                            .arg(&k.job_prefix)
                            .arg(&k.result_prefix)
                            .arg(now)
                            .arg(PURGE_CHUNK),
                    )
                    .await?;
                purged += n;
                if n < PURGE_CHUNK as u64 {
                    break;
                }
            }
        }
        Ok(purged)
    }
}

/// Most expired jobs one purge script call removes; `purge_expired` loops until done.
const PURGE_CHUNK: usize = 1000;
