//! [`Producer`], [`Consumer`] and [`Maintenance`] on Redis, plus batch leasing and completing
//! for workers that want throughput.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use redis::Value;

use super::coalesce;
use super::codec::{
    LEASE_FIELDS, Leased, TOMBSTONE, array, duration_millis, enqueue_args, from_millis, int,
    progress_from_json, progress_json, read_lease_answer, string,
};
use super::keys::QueueKeys;
use super::scripts::SCRIPTS;
use super::{LeaseRequest, MAX_LEASE_BATCH, Partition, RedisBackend};
use crate::error::{Error, Result};
use crate::job::{Job, JobId, Name, Progress, QueueName};
use crate::kind::Output;
use crate::machine::{
    Attempts, Event, FailureKind, JobState, JobStatus, Move, Requeue, decide, expiry_reason,
};
use crate::queue::{
    Consumer, Enqueued, Lease, LeaseToken, Maintenance, Producer, Quota, Renewal, RequeueReport,
};

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
pub(super) const WAKE_CAP: usize = 256;

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

/// The size from which a result goes to Redis apart from the completion script (see
/// `complete.lua`). Below it, the Lua string a result costs is cheaper than the extra commands
/// (a SET, and a RENAME and a PERSIST in the script).
pub(super) const STAGE_FROM: usize = 2048;

/// How long a result uploaded for a completion waits for the completion script that renames it
/// into place (it runs right after, in the same round trip): only a worker or connection lost in
/// between leaves one behind, and this frees its memory.
const STAGING_TTL: Duration = Duration::from_secs(300);

impl RedisBackend {
    /// [`Consumer::lease_many`]: up to `max` ready jobs of `queue` (at most [`MAX_LEASE_BATCH`])
    /// in one script call, oldest first, each with its own fencing token and one deadline for the
    /// batch.
    async fn lease_in(
        &self,
        partition: &Partition,
        worker: &str,
        lease_for: Duration,
        max: usize,
    ) -> Result<Vec<Lease>> {
        let max = max.min(MAX_LEASE_BATCH);
        if max == 0 {
            return Ok(Vec::new());
        }
        let queue = &partition.queue;
        let k = self.partition_keys(partition);
        let lease_ms = duration_millis(lease_for);
        let reply: Value = self
            .conn
            .invoke(
                SCRIPTS
                    .lease
                    .key(&k.levels)
                    .key(&k.scheduled)
                    .key(&k.delayed)
                    .key(&k.leased)
                    .key(&k.token)
                    .key(&k.wake)
                    .key(&k.counters)
                    .arg(&k.job_prefix)
                    .arg(self.time.arg())
                    .arg(lease_ms)
                    .arg(worker)
                    .arg(max)
                    .arg(JobStatus::Submitted.as_str())
                    .arg(JobStatus::InProgress.as_str())
                    .arg(PROMOTE_LIMIT)
                    .arg(TOMBSTONE)
                    .arg(JobStatus::Cancelled.as_str())
                    .arg(&k.queue_prefix)
                    .arg(&LEASE_FIELDS[..]),
            )
            .await?;
        let Value::BulkString(answer) = reply else {
            return Err(Error::Internal(
                "lease script answered no MessagePack string".into(),
            ));
        };
        let (now_ms, leased) = read_lease_answer(&answer, queue)?;
        let now = from_millis(now_ms)?;
        let deadline = from_millis(now_ms.saturating_add(lease_ms))?;
        let worker = Name::from(worker);
        leased
            .into_iter()
            .map(|Leased { token, mut job }| {
                let mv = decide(machine_state(&job), Event::Lease, &self.settings.retry)?;
                // What the script changed, as it changed it: the lease's move, the worker, the
                // start time.
                apply_to(&mut job, mv);
                job.worker = Some(worker.clone());
                job.started_at = Some(now);
                Ok(Lease {
                    job,
                    token: LeaseToken(token),
                    worker: worker.clone(),
                    deadline,
                })
            })
            .collect()
    }

    /// [`Consumer::lease_many`] on every partition of `queue`: from each in turn until `max`
    /// jobs are leased or every partition was asked. The partition asked first turns with each
    /// call, so when workers take fewer jobs than are ready, no partition waits behind another:
    /// each is first once in every round of as many calls as there are partitions.
    async fn lease_from(
        &self,
        queue: &QueueName,
        worker: &str,
        lease_for: Duration,
        max: usize,
    ) -> Result<Vec<Lease>> {
        let partitions = self.partitions_of(queue).await?;
        let [only] = &partitions[..] else {
            let first = self.turn.fetch_add(1, Ordering::Relaxed) % partitions.len();
            let mut leases = Vec::new();
            for i in 0..partitions.len() {
                let want = max.min(MAX_LEASE_BATCH).saturating_sub(leases.len());
                if want == 0 {
                    break;
                }
                let partition = &partitions[(first + i) % partitions.len()];
                leases.extend(self.lease_in(partition, worker, lease_for, want).await?);
            }
            return Ok(leases);
        };
        self.lease_in(only, worker, lease_for, max).await
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
                .lease_from(&queue, &worker, lease_for, members.len())
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
        let groups = grouped(&done, |(lease, _)| {
            Partition::of(&lease.job.queue, lease.id())
        });
        let mut done: Vec<Option<(Lease, Output)>> = done.into_iter().map(Some).collect();
        for (partition, members) in groups {
            let batch: Vec<(Lease, Output)> =
                members.iter().filter_map(|&i| done[i].take()).collect();
            let finished = self.complete_in(&partition, batch).await?;
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

    /// One complete script call for leases of one partition.
    async fn complete_in(
        &self,
        partition: &Partition,
        done: Vec<(Lease, Output)>,
    ) -> Result<Vec<Result<Job>>> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.partition_keys(partition);
        let mut invocation = SCRIPTS.complete.prepare_invoke();
        invocation
            .key(&k.leased)
            .key(&k.complete)
            .key(&k.expiry)
            .key(&k.counters)
            .key(&k.events)
            .arg(&k.job_prefix)
            .arg(&k.result_prefix)
            .arg(JobStatus::InProgress.as_str())
            .arg(JobStatus::Complete.as_str())
            .arg(self.time.arg())
            .arg(duration_millis(self.settings.result_ttl));
        // A large result goes up as a plain SET to a staging key of its lease, in the same round
        // trip before the script, which renames it into place under the fencing check: passed
        // through the script, it would cost Redis a Lua string as large as itself.
        let mut uploads = redis::pipe();
        let mut uploaded = std::collections::HashSet::new();
        let mut leases = Vec::with_capacity(done.len());
        for (lease, output) in done {
            let bytes = output.bytes();
            let staged = bytes.len() >= STAGE_FROM;
            // A lease given twice completes with its first result: the second is not uploaded.
            if staged && uploaded.insert((lease.id(), lease.token)) {
                uploads
                    .cmd("SET")
                    .arg(format!(
                        "{}{}:{}",
                        k.result_prefix,
                        lease.id(),
                        lease.token.0
                    ))
                    .arg(bytes.as_ref())
                    .arg("PX")
                    .arg(duration_millis(STAGING_TTL))
                    .ignore();
            }
            let (inline, staged_size): (&[u8], usize) = if staged {
                (b"", bytes.len())
            } else {
                (bytes.as_ref(), 0)
            };
            invocation
                .arg(lease.id().to_string())
                .arg(lease.token.0)
                .arg(inline)
                .arg(staged_size)
                .arg(output.content_type())
                .arg(lease.job.kind.as_str())
                .arg(lease.worker.as_str())
                .arg(if lease.job.error.is_some() { "e" } else { "" });
            leases.push((lease, output.content_type_shared()));
        }
        let answer: Vec<Value> = self
            .conn
            .invoke_after(&uploads, &invocation, self.replica_acks)
            .await?;
        let mut answer = answer.into_iter();
        let now = from_millis(int(answer
            .next()
            .ok_or_else(|| Error::Internal("complete script answered no time".into()))?)?)?;
        if answer.len() != leases.len() {
            return Err(Error::Internal(format!(
                "complete script answered {} flags for {} leases",
                answer.len(),
                leases.len()
            )));
        }
        leases
            .into_iter()
            .zip(answer)
            .map(|((lease, content_type), done)| {
                // 1: completed; a text: completed, with this last progress report; 0: lost;
                // -1: its result's staging key was gone, nothing changed.
                let (changed, progress) = match done {
                    Value::Int(-1) => {
                        return Ok(Err(Error::Unavailable(
                            "the result's upload expired before its completion ran".into(),
                        )));
                    }
                    Value::Int(flag) => (flag, None),
                    text => (1, Some(progress_from_json(&string(text)?)?)),
                };
                Ok(
                    self.after_fenced_change(lease, changed, Event::Complete, |job| {
                        job.finished_at = Some(now);
                        job.error = None;
                        job.result_type = Some(content_type);
                        if progress.is_some() {
                            job.progress = progress;
                        }
                    }),
                )
            })
            .collect()
    }

    /// Runs one enqueue script call for up to [`ENQUEUE_CHUNK`] jobs of one partition: one
    /// answer per job.
    async fn enqueue_chunk(
        &self,
        partition: &Partition,
        jobs: &[Job],
    ) -> Result<Vec<Result<Enqueued>>> {
        let mut answers: Vec<Result<Enqueued>> = jobs
            .iter()
            .map(|job| check_new(job).map(|()| Enqueued::Stored))
            .collect();
        let valid: Vec<usize> = (0..jobs.len()).filter(|&i| answers[i].is_ok()).collect();
        if valid.is_empty() {
            return Ok(answers);
        }
        let stored = self
            .run_enqueue(partition, valid.iter().map(|&i| &jobs[i]))
            .await?;
        for (i, answer) in valid.into_iter().zip(stored) {
            answers[i] = answer;
        }
        Ok(answers)
    }

    /// Enqueues jobs of separate callers in one script call per partition, each refused or
    /// stored on its own.
    pub(super) async fn enqueue_batch(&self, jobs: Vec<Job>) -> Vec<Result<Enqueued>> {
        if let Err(e) = self.register(jobs.iter().map(partition_of)).await {
            return coalesce::for_each(&e, jobs.len());
        }
        let mut answers: Vec<Result<Enqueued>> =
            jobs.iter().map(|_| Ok(Enqueued::Stored)).collect();
        for (partition, members) in grouped(&jobs, partition_of) {
            let group: Vec<Job> = members.iter().map(|&i| jobs[i].clone()).collect();
            match self.enqueue_chunk(&partition, &group).await {
                Ok(stored) => {
                    for (i, answer) in members.into_iter().zip(stored) {
                        answers[i] = answer;
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

    /// One enqueue script call for `jobs` of one partition: one answer per job, in order.
    async fn run_enqueue<'a>(
        &self,
        partition: &Partition,
        jobs: impl ExactSizeIterator<Item = &'a Job>,
    ) -> Result<Vec<Result<Enqueued>>> {
        let queue = &partition.queue;
        let k = self.partition_keys(partition);
        let quotas = self.settings.quotas;
        let single = jobs.len() <= 1;
        let mut invocation = SCRIPTS.enqueue.prepare_invoke();
        invocation
            .key(&k.seq)
            .key(&k.levels)
            .key(&k.wake)
            .key(&k.scheduled)
            .key(&k.delayed)
            .key(&k.counters)
            .arg(&k.job_prefix)
            .arg(WAKE_CAP)
            .arg(jobs.len())
            .arg(JobStatus::Submitted.as_str())
            .arg(self.time.arg())
            .arg(quotas.max_waiting.unwrap_or(0))
            .arg(quotas.max_result_bytes.unwrap_or(0))
            .arg(&k.unique_prefix)
            .arg(duration_millis(self.settings.unique_ttl))
            .arg(TOMBSTONE)
            .arg(&k.queue_prefix)
            .arg(JobStatus::InProgress.as_str());
        let ids: Vec<JobId> = jobs
            .map(|job| {
                invocation.arg(enqueue_args(job, self.settings.unique_ttl));
                job.id
            })
            .collect();
        // One job answers within the default deadline, so a client submitting to a hung Redis
        // gets its 503 in about a second; only real batches get the bulk deadline.
        let answers: Vec<String> = if let Some((replicas, wait)) = self.replica_acks {
            let conn = if single {
                self.conn.clone()
            } else {
                self.conn.clone().with_timeout(super::BULK_TIMEOUT)
            };
            conn.invoke_acked(&invocation, replicas, wait).await?
        } else {
            let mut conn = self.conn.link();
            let call = async move { invocation.invoke_async::<Vec<String>>(&mut conn).await };
            if single {
                self.conn.run(call).await?
            } else {
                self.conn.run_bulk(call).await?
            }
        };
        if answers.len() != ids.len() {
            return Err(Error::Internal(format!(
                "enqueue script answered {} times for {} jobs",
                answers.len(),
                ids.len()
            )));
        }
        Ok(ids
            .into_iter()
            .zip(answers)
            .map(|(id, answer)| match answer.as_str() {
                "ok" => Ok(Enqueued::Stored),
                "exists" => Err(Error::Conflict(format!("job {id} already exists"))),
                "full:waiting" => Err(quotas.refusal(queue, Quota::Waiting)),
                "full:results" => Err(quotas.refusal(queue, Quota::ResultBytes)),
                holder => holder
                    .parse()
                    .map(Enqueued::Duplicate)
                    .map_err(|_| Error::Internal(format!("enqueue script answered '{holder}'"))),
            })
            .collect())
    }

    /// The job as a script that passed the fencing check (`changed == 1`) left it: the job as
    /// leased (taken from the spent `lease`, not copied), moved as the status machine decides for
    /// `event`, with `update` applied. The check proves nothing else touched it since the lease
    /// (renewals change only the lease deadline), so there is no need to read it back.
    fn after_fenced_change(
        &self,
        lease: Lease,
        changed: i64,
        event: Event,
        update: impl FnOnce(&mut Job),
    ) -> Result<Job> {
        if changed != 1 {
            return Err(Error::LeaseLost);
        }
        let mut job = lease.job;
        let mv = decide(machine_state(&job), event, &self.settings.retry)?;
        apply_to(&mut job, mv);
        update(&mut job);
        Ok(job)
    }

    /// Renews `leases` of one partition (one script call) for `lease_for` from now; the new
    /// deadline, and one flag per lease.
    async fn renew_in(
        &self,
        partition: &Partition,
        leases: &[&Lease],
        lease_for: Duration,
    ) -> Result<(DateTime<Utc>, Vec<Renewal>)> {
        let k = self.partition_keys(partition);
        let mut invocation = SCRIPTS.renew.prepare_invoke();
        invocation
            .key(&k.leased)
            .arg(&k.job_prefix)
            .arg(self.time.arg())
            .arg(duration_millis(lease_for))
            .arg(JobStatus::InProgress.as_str())
            .arg(JobStatus::Cancelled.as_str());
        for lease in leases {
            invocation.arg(lease.id().to_string()).arg(lease.token.0);
        }
        let answer: Vec<i64> = self.conn.invoke(&invocation).await?;
        let Some((&deadline, held)) = answer.split_first() else {
            return Err(Error::Internal("renew script answered no deadline".into()));
        };
        if held.len() != leases.len() {
            return Err(Error::Internal(format!(
                "renew script answered {} flags for {} leases",
                held.len(),
                leases.len()
            )));
        }
        Ok((
            from_millis(deadline)?,
            held.iter()
                .map(|&h| match h {
                    1 => Renewal::Held,
                    2 => Renewal::Cancelled,
                    _ => Renewal::Lost,
                })
                .collect(),
        ))
    }

    /// Renews `leases` for `lease_for`: one script call per queue and chunk; one answer per
    /// lease, in order.
    async fn renew_for(&self, leases: &[Lease], lease_for: Duration) -> Result<Vec<Renewal>> {
        let mut held = vec![Renewal::Lost; leases.len()];
        for (partition, members) in grouped(leases, |l| Partition::of(&l.job.queue, l.id())) {
            for chunk in members.chunks(RENEW_CHUNK) {
                let batch: Vec<&Lease> = chunk.iter().map(|&i| &leases[i]).collect();
                let (_, flags) = self.renew_in(&partition, &batch, lease_for).await?;
                for (&i, flag) in chunk.iter().zip(flags) {
                    held[i] = flag;
                }
            }
        }
        Ok(held)
    }

    /// One recovery round on one partition: finds up to [`REQUEUE_CHUNK`] expired leases, asks the
    /// status machine what each one's expiry does, and carries the decisions out. Answers the
    /// report and how many expired leases were found.
    async fn requeue_round(&self, partition: &Partition) -> Result<(RequeueReport, usize)> {
        let k = self.partition_keys(partition);
        let found: Value = self
            .conn
            .invoke(
                SCRIPTS
                    .expired
                    .key(&k.leased)
                    .arg(&k.job_prefix)
                    .arg(self.time.arg())
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
            .key(&k.levels)
            .key(&k.failed)
            .key(&k.expiry)
            .key(&k.wake)
            .arg(&k.job_prefix)
            .arg(self.time.arg())
            .arg(duration_millis(self.settings.result_ttl))
            .arg(JobStatus::InProgress.as_str())
            .arg(JobStatus::Submitted.as_str())
            .arg(JobStatus::Failed.as_str())
            .arg(WAKE_CAP)
            .arg(&k.queue_prefix);
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
        let partitions = self.partitions_of_all(queues).await?;
        let keys: Vec<QueueKeys> = partitions.iter().map(|p| self.partition_keys(p)).collect();
        let mut reads = Vec::with_capacity(keys.len() * 5);
        for (partition, k) in partitions.iter().zip(&keys) {
            let tag = partition.tag;
            reads.push((tag, redis::Cmd::llen(&k.ready)));
            reads.push((tag, redis::Cmd::zcard(&k.returned)));
            reads.push((tag, redis::Cmd::zrange_withscores(&k.delayed, 0, 0)));
            reads.push((tag, redis::Cmd::hget(&k.counters, "deleted")));
            reads.push((tag, redis::Cmd::zcard(&k.levels)));
        }
        let (answers, now) = self.query_by_tag(reads, false).await?;
        let mut wait = timeout;
        let mut answers = answers.into_iter();
        while let (Some(never_leased), Some(returned), Some(delayed), Some(deleted), Some(levels)) = (
            answers.next(),
            answers.next(),
            answers.next(),
            answers.next(),
            answers.next(),
        ) {
            let deleted = match deleted {
                Value::Nil => 0,
                other => int(other)?,
            };
            // Jobs of priority 0, or a level of another priority that may hold some (a lease
            // that finds it empty takes it out of the set).
            if int(never_leased)? + int(returned)? - deleted > 0 || int(levels)? > 0 {
                return Ok(());
            }
            let next_delayed: Vec<(String, f64)> = redis::from_redis_value(delayed)
                .map_err(|e| Error::Internal(format!("Redis answered a bad ZRANGE: {e}")))?;
            if let Some((_, due_ms)) = next_delayed.first() {
                let until_due = (*due_ms as i64).saturating_sub(now);
                if until_due <= 0 {
                    return Ok(());
                }
                wait = wait.min(Duration::from_millis(until_due as u64));
            }
        }
        if wait < Duration::from_millis(1) || keys.is_empty() {
            return Ok(());
        }
        // One BLPOP on every wake-up list on one Redis; on a cluster, one per slot tag.
        let mut groups: Vec<(u8, redis::Cmd)> = Vec::new();
        for (partition, k) in partitions.iter().zip(&keys) {
            let tag = if self.conn.is_cluster() {
                partition.tag
            } else {
                0
            };
            match groups.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, blpop)) => {
                    blpop.arg(&k.wake);
                }
                None => {
                    let mut blpop = redis::cmd("BLPOP");
                    blpop.arg(&k.wake);
                    groups.push((tag, blpop));
                }
            }
        }
        let commands = groups
            .into_iter()
            .map(|(_, mut blpop)| {
                blpop.arg(wait.as_secs_f64());
                blpop
            })
            .collect();
        self.block_on_any(commands, wait).await
    }
}

/// The partition that holds `job`: the one its id names.
fn partition_of(job: &Job) -> Partition {
    Partition::of(&job.queue, job.id)
}

/// The status machine's view of a job.
pub(super) fn machine_state(job: &Job) -> JobState {
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
        Attempts::Reset => job.attempts = 0,
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
    /// In the queue's next partition in turn when it is split (see
    /// [`RedisBackend::with_partitions`]).
    fn new_id(&self, queue: &QueueName) -> JobId {
        self.new_job_id(queue)
    }

    /// Concurrent calls from one process (an API under load) are gathered into one script call
    /// per queue, each job still stored or refused on its own.
    async fn enqueue(&self, job: &Job) -> Result<Enqueued> {
        match &self.enqueues {
            Some(batch) => {
                let call = batch.call(job.clone());
                self.conn.run(async { Ok(call.await) }).await?
            }
            None => {
                check_new(job)?;
                let partition = partition_of(job);
                self.register(std::iter::once(partition.clone())).await?;
                self.run_enqueue(&partition, std::iter::once(job))
                    .await?
                    .pop()
                    .unwrap_or_else(|| Err(Error::Internal("enqueue answered nothing".into())))
            }
        }
    }

    /// Stores the jobs in chunks of up to 1,000 per script call, several calls in flight at
    /// once on the shared connection; each queue's jobs are queued in the order given. An outer
    /// error (Redis went away part way) leaves the jobs of chunks answered before it stored.
    async fn enqueue_many(&self, jobs: &[Job]) -> Result<Vec<Result<Enqueued>>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.register(jobs.iter().map(partition_of)).await?;
        let mut answers = Vec::with_capacity(jobs.len());
        let mut start = 0;
        while start < jobs.len() {
            // The longest run of jobs of one partition from `start`.
            let partition = partition_of(&jobs[start]);
            let end = jobs[start..]
                .iter()
                .position(|j| partition_of(j) != partition)
                .map_or(jobs.len(), |n| start + n);
            let mut chunks = jobs[start..end].chunks(ENQUEUE_CHUNK);
            // The first call alone: it loads the script if the server does not have it yet, so
            // the calls sent together below cannot overtake each other through a reload.
            if let Some(first) = chunks.next() {
                answers.extend(self.enqueue_chunk(&partition, first).await?);
            }
            let calls: Vec<_> = chunks
                .map(|chunk| self.enqueue_chunk(&partition, chunk))
                .collect();
            let rest: Vec<Vec<Result<Enqueued>>> = futures::stream::iter(calls)
                .buffered(ENQUEUE_IN_FLIGHT)
                .try_collect()
                .await?;
            answers.extend(rest.into_iter().flatten());
            start = end;
        }
        Ok(answers)
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
            None => Ok(self.lease_from(queue, worker, lease_for, 1).await?.pop()),
        }
    }

    /// One script call, not gathered with other calls: the caller asks for a batch already.
    async fn lease_many(
        &self,
        queue: &QueueName,
        worker: &str,
        lease_for: Duration,
        max: usize,
    ) -> Result<Vec<Lease>> {
        self.lease_from(queue, worker, lease_for, max).await
    }

    async fn renew(&self, lease: &Lease, lease_for: Duration) -> Result<DateTime<Utc>> {
        match self
            .renew_in(
                &Partition::of(&lease.job.queue, lease.id()),
                &[lease],
                lease_for,
            )
            .await?
        {
            (deadline, held) if held == [Renewal::Held] => Ok(deadline),
            _ => Err(Error::LeaseLost),
        }
    }

    async fn renew_many(&self, leases: &[Lease], lease_for: Duration) -> Result<Vec<Renewal>> {
        self.renew_for(leases, lease_for).await
    }

    async fn progress(&self, lease: &Lease, progress: &Progress) -> Result<()> {
        let held: i64 = self
            .conn
            .invoke(
                SCRIPTS
                    .progress
                    .key(self.keys.job(lease.id()))
                    .arg(lease.token.0)
                    .arg(JobStatus::InProgress.as_str())
                    .arg(progress_json(progress)),
            )
            .await?;
        if held == 1 {
            Ok(())
        } else {
            Err(Error::LeaseLost)
        }
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
        let mv = decide(
            machine_state(&lease.job),
            Event::Fail(kind),
            &self.settings.retry,
        )?;
        let (mode, wait) = match mv.requeue {
            Some(Requeue::After(delay)) => ("retry", duration_millis(delay)),
            Some(Requeue::Now) => ("retry", 0),
            None => ("give_up", duration_millis(self.settings.result_ttl)),
        };
        let id = lease.id();
        let k = self.partition_keys(&Partition::of(&lease.job.queue, lease.id()));
        let changed: Vec<Value> = self
            .conn
            .invoke(
                SCRIPTS
                    .fail
                    .key(self.keys.job(id))
                    .key(&k.leased)
                    .key(&k.failed)
                    .key(&k.delayed)
                    .key(&k.expiry)
                    .key(&k.scheduled)
                    .key(&k.events)
                    .key(&k.counters)
                    .arg(id.to_string())
                    .arg(lease.token.0)
                    .arg(JobStatus::InProgress.as_str())
                    .arg(mv.to.as_str())
                    .arg(mode)
                    .arg(reason)
                    .arg(wait)
                    .arg(self.time.arg()),
            )
            .await?;
        let mut changed = changed.into_iter();
        if !matches!(changed.next(), Some(Value::Int(1))) {
            return Err(Error::LeaseLost);
        }
        let now = from_millis(int(changed.next().unwrap_or(Value::Nil))?)?;
        let progress = match changed.next() {
            None | Some(Value::Nil) => None,
            Some(text) => Some(progress_from_json(&string(text)?)?),
        };
        let mut job = lease.job.clone();
        apply_to(&mut job, mv);
        job.error = Some(reason.to_owned());
        if progress.is_some() {
            job.progress = progress;
        }
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
            Attempts::Reset => -i64::from(lease.job.attempts),
        };
        let id = lease.id();
        let k = self.partition_keys(&Partition::of(&lease.job.queue, lease.id()));
        let released: i64 = self
            .conn
            .invoke(
                SCRIPTS
                    .release
                    .key(self.keys.job(id))
                    .key(&k.leased)
                    .key(&k.levels)
                    .key(&k.wake)
                    .arg(id.to_string())
                    .arg(lease.token.0)
                    .arg(JobStatus::InProgress.as_str())
                    .arg(mv.to.as_str())
                    .arg(WAKE_CAP)
                    .arg(delta)
                    .arg(&k.queue_prefix),
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
        for partition in self.known_partitions().await?.iter() {
            for _ in 0..REQUEUE_ROUNDS {
                let (round, examined) = self.requeue_round(partition).await?;
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
        let now = self.time.arg();
        let mut purged = 0;
        for partition in self.known_partitions().await?.iter() {
            let k = self.partition_keys(partition);
            loop {
                let n: u64 = self
                    .conn
                    .invoke(
                        SCRIPTS
                            .purge_expired
                            .key(&k.expiry)
                            .key(&k.complete)
                            .key(&k.failed)
                            .key(&k.cancelled)
                            .key(&k.counters)
                            .arg(&k.job_prefix)
                            .arg(&k.result_prefix)
                            .arg(&now)
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
