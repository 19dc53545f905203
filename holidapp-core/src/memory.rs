//! The in-memory backend: the embedded default when no Redis is configured.
//!
//! [`MemoryBackend`] implements every capability with exactly the semantics of the Redis backend
//! (it runs the same contract suite): leases expire by the backend's [`Clock`], tokens fence,
//! attempts count, finished jobs expire. It is not a test fake; it is what `holidapp-api` runs on
//! a laptop. It lives and dies with its process, so it cannot be shared between processes: a
//! separate worker process needs Redis.
//!
//! All state sits behind one `std::sync::Mutex`. Every operation is a few map and set updates
//! that never await while holding the lock, so a blocking mutex is both correct and the fastest
//! choice (see tokio's guidance on `std::sync::Mutex` vs `tokio::sync::Mutex`); one lock also makes
//! every method trivially atomic, which is the contract.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rustc_hash::FxBuildHasher;
use tokio::sync::Notify;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::events::{
    EventCursor, EventLog, JobEvent, MEMORY_RETAINED, MEMORY_STREAM, MEMORY_STREAM_NAME, Position,
};
use crate::job::{Job, JobId, Name, Progress, QueueName, UniqueScope};
use crate::kind::Output;
use crate::machine::{
    Attempts, Event, FailureKind, JobState, JobStatus, Move, Requeue, decide, expiry_reason,
};
use crate::queue::{
    Consumer, Enqueued, Lease, LeaseToken, Maintenance, Producer, QueueSettings, Quota, Renewal,
    RequeueReport,
};
use crate::store::{
    Cursor, JobStore, ListQuery, Page, QueueStats, ResultState, StatusCounts, cancel_refused,
    retry_refused,
};
use crate::workers::{MAX_WORKERS, WorkerInfo, WorkerRegistry};

/// Jobs and their queues held in this process's memory.
#[derive(Debug)]
pub struct MemoryBackend {
    settings: QueueSettings,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    // Wakes idle workers blocked in `wait_for_work` when a job becomes ready.
    work: Notify,
    /// The worker registry: each live worker's last beat and when its entry dies. Apart from the
    /// jobs' lock, so heartbeats never wait for job traffic.
    workers: Mutex<HashMap<String, (WorkerInfo, DateTime<Utc>)>>,
    /// Wakes readers of the event log waiting in `EventLog::wait`.
    events_added: Notify,
    /// Readers waiting in `EventLog::wait`: with none, an event wakes nobody (no notify).
    event_readers: AtomicUsize,
}

/// One stored job and its queue bookkeeping.
#[derive(Debug)]
struct Entry {
    job: Job,
    /// Submission order: listings sort by it.
    seq: u64,
    /// The current lease, while `in progress`.
    lease: Option<(LeaseToken, DateTime<Utc>)>,
    /// When it becomes ready, while it waits for its time (a delayed submit, a retry's backoff).
    ready_at: Option<DateTime<Utc>>,
    result: Option<Output>,
    /// When a finished job stops existing.
    expires_at: Option<DateTime<Utc>>,
}

impl Entry {
    fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    fn cursor(&self) -> Cursor {
        Cursor::at(self.seq, self.job.id.tag())
    }
}

/// One queue's waiting jobs and counts.
#[derive(Debug, Default)]
struct QueueState {
    /// Jobs leasable now, by priority level: the highest level is leased first.
    levels: BTreeMap<i32, Level>,
    /// Entries of the levels' `fresh` lines whose job was deleted or cancelled before a lease
    /// popped it (its number no longer that of a `submitted` job), so a delete costs no scan.
    stale: u64,
    /// Entries in every level's `fresh` line, stale ones included.
    fresh: u64,
    /// Entries in every level's `returned` set.
    returned: u64,
    /// Jobs waiting for their time (a delayed submit or a retry's backoff), by that time.
    delayed: BTreeSet<(DateTime<Utc>, u64, JobId)>,
    /// Jobs per status (index = `status_slot`).
    counts: [u64; STATUSES],
    /// The bytes of the results the queue holds.
    result_bytes: u64,
    /// Jobs ever completed and ever failed for good (counters for throughput).
    completed_total: u64,
    failed_total: u64,
    /// Unique keys, each with the job holding it, when it stops holding it, and whether it
    /// holds only while the job waits or runs.
    unique: HashMap<String, (JobId, DateTime<Utc>, bool)>,
}

/// The jobs of one priority level leasable now, leased in submission order.
#[derive(Debug, Default)]
struct Level {
    /// Jobs never leased nor delayed, in submission order, with their submission numbers.
    fresh: VecDeque<(u64, JobId)>,
    /// Other leasable jobs (back from a lease, or due after a delay), by submission number.
    returned: BTreeSet<(u64, JobId)>,
}

impl QueueState {
    fn has_ready(&self) -> bool {
        self.ready_count() > 0
    }

    /// Jobs ready to lease (not counting stale entries).
    fn ready_count(&self) -> u64 {
        self.fresh - self.stale + self.returned
    }

    /// Makes `id` (number `seq`, priority `priority`) leasable again, ahead of the jobs of its
    /// level submitted after it.
    fn make_ready(&mut self, priority: i32, seq: u64, id: JobId) {
        if self
            .levels
            .entry(priority)
            .or_default()
            .returned
            .insert((seq, id))
        {
            self.returned += 1;
        }
    }

    /// Takes `id` out of its level's returned set, if it is there.
    fn take_returned(&mut self, priority: i32, seq: u64, id: JobId) -> bool {
        let Some(level) = self.levels.get_mut(&priority) else {
            return false;
        };
        let taken = level.returned.remove(&(seq, id));
        if taken {
            self.returned -= 1;
            if level.fresh.is_empty() && level.returned.is_empty() {
                self.levels.remove(&priority);
            }
        }
        taken
    }
}

#[derive(Debug, Default)]
struct State {
    /// Boxed, so that growing the map moves pointers, not whole jobs: with hundreds of thousands
    /// of jobs kept for their retention period, a rehash of inline entries would hold the lock
    /// for tens of milliseconds.
    ///
    /// Hashed with FxHash rather than SipHash: ids are random UUIDs the engine makes itself, so
    /// no client can choose keys that collide, and hashing was a sixth of a job's cost.
    jobs: HashMap<JobId, Box<Entry>, FxBuildHasher>,
    next_seq: u64,
    next_token: u64,
    queues: BTreeMap<QueueName, QueueState>,
    /// Leased jobs by deadline.
    leased: BTreeSet<(DateTime<Utc>, JobId)>,
    /// Submission sequence numbers per status (index = `status_slot`), for listing.
    by_status: [BTreeSet<(u64, JobId)>; STATUSES],
    /// Finished jobs by expiry time.
    expiries: BTreeSet<(DateTime<Utc>, JobId)>,
    /// The event log.
    log: Log,
    /// The kind of the last job stored and the worker that took the last job: a run of jobs of
    /// one kind (a bulk submit) shares one copy of its name, as does a run of leases by one
    /// worker (a drain), instead of a copy per job.
    last_kind: Option<Name>,
    last_worker: Option<Name>,
}

/// The event log: the last [`MEMORY_RETAINED`] status changes, oldest first.
#[derive(Debug, Default)]
struct Log {
    events: VecDeque<Recorded>,
    /// The sequence number of the last event appended (the first is 1).
    last: u64,
}

impl Log {
    /// Appends the event of `job`'s change to its current status, with the worker that made it
    /// when `by_worker`.
    fn record(&mut self, job: &Job, now: DateTime<Utc>, by_worker: bool) {
        self.last += 1;
        let event = Recorded {
            seq: self.last,
            job: job.id,
            kind: job.kind.clone(),
            queue: job.queue.clone(),
            status: job.status,
            worker: job.worker.as_ref().filter(|_| by_worker).cloned(),
            at: now,
        };
        if self.events.len() == MEMORY_RETAINED {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

/// One event as the log keeps it: what [`JobEvent`] holds but its stream and position.
#[derive(Debug)]
struct Recorded {
    seq: u64,
    job: JobId,
    kind: Name,
    queue: QueueName,
    status: JobStatus,
    worker: Option<Name>,
    at: DateTime<Utc>,
}

impl Recorded {
    fn event(&self) -> JobEvent {
        JobEvent {
            stream: Arc::clone(&MEMORY_STREAM_NAME),
            position: Position {
                ms: 0,
                seq: self.seq,
                index: 0,
            },
            job: self.job,
            kind: self.kind.clone(),
            queue: self.queue.clone(),
            status: self.status,
            worker: self.worker.clone(),
            at: self.at,
        }
    }
}

/// `name` as a [`Name`]: the one in `last` when it is the same text, else a new one, kept in
/// `last` for the next call.
fn same_as_last(last: &mut Option<Name>, name: &str) -> Name {
    match last {
        Some(kept) if **kept == *name => kept.clone(),
        _ => last.insert(Name::from(name)).clone(),
    }
}

/// How many statuses there are.
const STATUSES: usize = JobStatus::ALL.len();

fn status_slot(status: JobStatus) -> usize {
    match status {
        JobStatus::Submitted => 0,
        JobStatus::InProgress => 1,
        JobStatus::Complete => 2,
        JobStatus::Failed => 3,
        JobStatus::Cancelled => 4,
    }
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl State {
    fn queue(&mut self, queue: &QueueName) -> &mut QueueState {
        self.queues.entry(queue.clone()).or_default()
    }

    /// The entry of a job whose lease `lease` still is the current one.
    fn current_lease(&mut self, lease: &Lease) -> Result<&mut Entry> {
        match self.jobs.get_mut(&lease.id()) {
            Some(entry)
                if entry.job.status == JobStatus::InProgress
                    && entry.lease.is_some_and(|(token, _)| token == lease.token) =>
            {
                Ok(entry)
            }
            _ => Err(Error::LeaseLost),
        }
    }

    /// Asks the status machine what `event` does to job `id` and carries out its move, keeping
    /// every index in step, then makes the caller's `change` to the job and records the event
    /// (with the job's worker when `by_worker`), all with one lookup of the job. Answers the
    /// job's state before the move, the move, and the job's entry; changes nothing when the
    /// machine refuses.
    fn transition(
        &mut self,
        id: JobId,
        event: Event,
        settings: &QueueSettings,
        now: DateTime<Utc>,
        by_worker: bool,
        change: impl FnOnce(&mut Entry),
    ) -> Result<(JobState, Move, &mut Entry)> {
        let entry = self.jobs.get_mut(&id).ok_or(Error::LeaseLost)?;
        let before = JobState {
            status: entry.job.status,
            attempts: entry.job.attempts,
            max_attempts: entry.job.max_attempts,
        };
        let mv = decide(before, event, &settings.retry)?;
        let from = before.status;
        let (seq, queue, priority) = (entry.seq, entry.job.queue.clone(), entry.job.priority);
        entry.job.status = mv.to;
        match mv.attempts {
            Attempts::Count => entry.job.attempts += 1,
            Attempts::Uncount => entry.job.attempts = entry.job.attempts.saturating_sub(1),
            Attempts::Keep => {}
            Attempts::Reset => entry.job.attempts = 0,
        }
        // A finished job moving on (a failed job retried) is no longer finished.
        if from.is_finished() && !mv.finishes {
            entry.job.finished_at = None;
            entry.job.error = None;
            entry.job.progress = None;
            if let Some(at) = entry.expires_at.take() {
                self.expiries.remove(&(at, id));
            }
        }
        let old_lease = if from == JobStatus::InProgress {
            entry.lease.take()
        } else {
            None
        };
        // A waiting job leaving `submitted` other than by a lease (which took it off its queue
        // already) leaves its place: a delayed one its delay, one back from a lease the
        // returned set; one never leased stays in `ready` for the lease that pops it.
        let waited = (from == JobStatus::Submitted && mv.to != JobStatus::InProgress)
            .then(|| entry.ready_at.take());
        let mut ready_at = None;
        if let Some(Requeue::After(delay)) = mv.requeue {
            ready_at = Some(after(now, delay));
            entry.ready_at = ready_at;
        }
        if mv.finishes {
            let expires_at = after(now, settings.result_ttl);
            entry.job.finished_at = Some(now);
            entry.expires_at = Some(expires_at);
            self.expiries.insert((expires_at, id));
        }
        if let Some((_, deadline)) = old_lease {
            self.leased.remove(&(deadline, id));
        }
        self.by_status[status_slot(from)].remove(&(seq, id));
        self.by_status[status_slot(mv.to)].insert((seq, id));
        let q = self.queues.entry(queue).or_default();
        q.counts[status_slot(from)] -= 1;
        q.counts[status_slot(mv.to)] += 1;
        match mv.to {
            JobStatus::Complete => q.completed_total += 1,
            JobStatus::Failed => q.failed_total += 1,
            _ => {}
        }
        match waited {
            Some(Some(at)) => {
                q.delayed.remove(&(at, seq, id));
            }
            Some(None) if !q.take_returned(priority, seq, id) => q.stale += 1,
            _ => {}
        }
        match (mv.requeue, ready_at) {
            (Some(Requeue::Now), _) => q.make_ready(priority, seq, id),
            (Some(Requeue::After(_)), Some(at)) => {
                q.delayed.insert((at, seq, id));
            }
            _ => {}
        }
        change(entry);
        self.log.record(&entry.job, now, by_worker);
        Ok((before, mv, entry))
    }

    /// Makes jobs of `queue` whose time has come (delayed submits, retries after their backoff)
    /// ready.
    fn promote_delayed(&mut self, queue: &QueueName, now: DateTime<Utc>) {
        let Some(q) = self.queues.get_mut(queue) else {
            return;
        };
        while let Some(&(at, seq, id)) = q.delayed.first() {
            if at > now {
                break;
            }
            q.delayed.remove(&(at, seq, id));
            if let Some(entry) = self.jobs.get_mut(&id) {
                entry.ready_at = None;
                q.make_ready(entry.job.priority, seq, id);
            }
        }
    }

    /// The next ready job of `queue`: of the highest priority level that has one, the oldest
    /// submission.
    fn next_ready(&mut self, queue: &QueueName) -> Option<JobId> {
        let q = self.queues.get_mut(queue)?;
        loop {
            let mut level = q.levels.last_entry()?;
            let lines = level.get_mut();
            let back = lines.returned.first().copied();
            let fresh = lines.fresh.front().copied();
            let taken = match (back, fresh) {
                (Some(back), Some(fresh)) if fresh.0 < back.0 => None,
                (Some(back), _) => Some(back),
                (None, _) => None,
            };
            let found = match taken {
                Some(back) => {
                    lines.returned.remove(&back);
                    q.returned -= 1;
                    Some(back.1)
                }
                None => match lines.fresh.pop_front() {
                    None => None,
                    Some((seq, id)) => {
                        q.fresh -= 1;
                        match self.jobs.get(&id) {
                            Some(entry)
                                if entry.seq == seq && entry.job.status == JobStatus::Submitted =>
                            {
                                Some(id)
                            }
                            // What a delete or a cancel left behind.
                            _ => {
                                q.stale = q.stale.saturating_sub(1);
                                None
                            }
                        }
                    }
                },
            };
            if lines.fresh.is_empty() && lines.returned.is_empty() {
                level.remove();
            }
            if found.is_some() {
                return found;
            }
        }
    }

    /// A job that exists and has not outlived its retention.
    fn live(&self, id: JobId, now: DateTime<Utc>) -> Option<&Entry> {
        self.jobs
            .get(&id)
            .map(Box::as_ref)
            .filter(|e| !e.expired(now))
    }

    fn remove(&mut self, id: JobId) -> Option<Box<Entry>> {
        let entry = self.jobs.remove(&id)?;
        let status = entry.job.status;
        self.by_status[status_slot(status)].remove(&(entry.seq, id));
        if let Some((_, deadline)) = entry.lease {
            self.leased.remove(&(deadline, id));
        }
        if let Some(at) = entry.expires_at {
            self.expiries.remove(&(at, id));
        }
        let q = self.queue(&entry.job.queue);
        q.counts[status_slot(status)] -= 1;
        if let Some(at) = entry.ready_at {
            q.delayed.remove(&(at, entry.seq, id));
        } else if status == JobStatus::Submitted
            && !q.take_returned(entry.job.priority, entry.seq, id)
        {
            // Left in its fresh line for the lease that pops it.
            q.stale += 1;
        }
        if let Some(result) = &entry.result {
            q.result_bytes = q.result_bytes.saturating_sub(result.bytes().len() as u64);
        }
        if let Some(key) = &entry.job.unique_key
            && q.unique
                .get(key)
                .is_some_and(|(holder, _, _)| *holder == id)
        {
            q.unique.remove(key);
        }
        Some(entry)
    }

    /// Stores and queues a new job, or answers why not (as the Redis enqueue script does, in
    /// the same order: a taken id, a held unique key, a full quota).
    fn insert(
        &mut self,
        job: &Job,
        now: DateTime<Utc>,
        settings: &QueueSettings,
    ) -> Result<Enqueued> {
        if job.status != JobStatus::Submitted {
            return Err(Error::IllegalTransition {
                from: job.status,
                event: "Enqueue".into(),
            });
        }
        if self.jobs.contains_key(&job.id) {
            return Err(Error::Conflict(format!("job {} already exists", job.id)));
        }
        let holder = self
            .queues
            .get(&job.queue)
            .zip(job.unique_key.as_ref())
            .and_then(|(q, key)| q.unique.get(key))
            .filter(|(holder, until, active)| {
                *until > now
                    && self.live(*holder, now).is_some_and(|e| {
                        !active
                            || matches!(e.job.status, JobStatus::Submitted | JobStatus::InProgress)
                    })
            })
            .map(|(holder, _, _)| *holder);
        if let Some(holder) = holder {
            return Ok(Enqueued::Duplicate(holder));
        }
        let quotas = settings.quotas;
        let q = self.queue(&job.queue);
        if quotas
            .max_result_bytes
            .is_some_and(|max| q.result_bytes >= max)
        {
            return Err(quotas.refusal(&job.queue, Quota::ResultBytes));
        }
        if quotas
            .max_waiting
            .is_some_and(|max| q.counts[status_slot(JobStatus::Submitted)] >= max)
        {
            return Err(quotas.refusal(&job.queue, Quota::Waiting));
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let q = self.queue(&job.queue);
        let ready_at = job.run_at.filter(|at| *at > now);
        match ready_at {
            Some(at) => {
                q.delayed.insert((at, seq, job.id));
            }
            None => {
                q.levels
                    .entry(job.priority)
                    .or_default()
                    .fresh
                    .push_back((seq, job.id));
                q.fresh += 1;
            }
        }
        q.counts[status_slot(JobStatus::Submitted)] += 1;
        if let Some(key) = &job.unique_key {
            let (ttl, active) = match job.unique_scope {
                None => (settings.unique_ttl, false),
                Some(scope) => (
                    scope.key_ttl(settings.unique_ttl),
                    scope == UniqueScope::Active,
                ),
            };
            q.unique
                .insert(key.clone(), (job.id, after(now, ttl), active));
        }
        self.by_status[status_slot(JobStatus::Submitted)].insert((seq, job.id));
        // The stored copy and its event share the run's kind name, not the caller's.
        let mut stored = job.clone();
        stored.kind = same_as_last(&mut self.last_kind, &job.kind);
        self.log.record(&stored, now, false);
        self.jobs.insert(
            job.id,
            Box::new(Entry {
                job: stored,
                seq,
                lease: None,
                ready_at,
                result: None,
                expires_at: None,
            }),
        );
        Ok(Enqueued::Stored)
    }
}

impl MemoryBackend {
    /// An empty backend on the system clock.
    pub fn new(settings: QueueSettings) -> Self {
        Self::with_clock(settings, Arc::new(SystemClock))
    }

    /// An empty backend reading time from `clock`.
    pub fn with_clock(settings: QueueSettings, clock: Arc<dyn Clock>) -> Self {
        MemoryBackend {
            settings,
            clock,
            state: Mutex::new(State::default()),
            work: Notify::new(),
            workers: Mutex::new(HashMap::new()),
            events_added: Notify::new(),
            event_readers: AtomicUsize::new(0),
        }
    }

    /// The settings this backend applies.
    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// Wakes the readers of the event log waiting for an event, if any wait.
    fn events_changed(&self) {
        // A reader counts itself before it looks at the log, and the log is read and written
        // under the state's lock: a reader that found nothing new is counted here by the time
        // the event it waits for was appended.
        if self.event_readers.load(Ordering::SeqCst) > 0 {
            self.events_added.notify_waiters();
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every mutation is completed before any call that could panic, so a poisoned lock holds
        // consistent state and recovering the guard is safe.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `event` to the job of `lease` (which must still be current): asks the status
    /// machine, carries out its move, and answers the job as it now is.
    fn settle(&self, lease: &Lease, event: Event, reason: Option<&str>) -> Result<Job> {
        let now = self.clock.now();
        let mut state = self.state();
        state.current_lease(lease)?;
        let (_, _, entry) =
            state.transition(lease.id(), event, &self.settings, now, true, |_| {})?;
        if let Some(reason) = reason {
            entry.job.error = Some(reason.to_owned());
        }
        let job = entry.job.clone();
        drop(state);
        self.events_changed();
        Ok(job)
    }
}

#[async_trait]
impl Producer for MemoryBackend {
    async fn enqueue(&self, job: &Job) -> Result<Enqueued> {
        let now = self.clock.now();
        let answer = self.state().insert(job, now, &self.settings)?;
        self.work.notify_waiters();
        self.events_changed();
        Ok(answer)
    }

    async fn enqueue_many(&self, jobs: &[Job]) -> Result<Vec<Result<Enqueued>>> {
        let now = self.clock.now();
        let answers = {
            let mut state = self.state();
            jobs.iter()
                .map(|job| state.insert(job, now, &self.settings))
                .collect()
        };
        self.work.notify_waiters();
        self.events_changed();
        Ok(answers)
    }
}

impl MemoryBackend {
    /// Leases the next ready job of `queue` to `worker` until `deadline`, under the caller's lock.
    fn lease_next(
        &self,
        state: &mut State,
        queue: &QueueName,
        worker: &str,
        now: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> Result<Option<Lease>> {
        let Some(id) = state.next_ready(queue) else {
            return Ok(None);
        };
        let worker = same_as_last(&mut state.last_worker, worker);
        let token = LeaseToken(state.next_token + 1);
        let (_, _, entry) =
            state.transition(id, Event::Lease, &self.settings, now, true, |entry| {
                entry.lease = Some((token, deadline));
                entry.job.worker = Some(worker.clone());
                entry.job.started_at = Some(now);
            })?;
        let job = entry.job.clone();
        state.next_token = token.0;
        state.leased.insert((deadline, id));
        Ok(Some(Lease {
            job,
            token,
            worker,
            deadline,
        }))
    }
}

#[async_trait]
impl Consumer for MemoryBackend {
    async fn lease(
        &self,
        queue: &QueueName,
        worker: &str,
        lease_for: Duration,
    ) -> Result<Option<Lease>> {
        let now = self.clock.now();
        let mut state = self.state();
        state.promote_delayed(queue, now);
        let lease = self.lease_next(&mut state, queue, worker, now, after(now, lease_for))?;
        drop(state);
        if lease.is_some() {
            self.events_changed();
        }
        Ok(lease)
    }

    /// The whole batch under one lock: one deadline, a fresh token each.
    async fn lease_many(
        &self,
        queue: &QueueName,
        worker: &str,
        lease_for: Duration,
        max: usize,
    ) -> Result<Vec<Lease>> {
        let now = self.clock.now();
        let deadline = after(now, lease_for);
        let mut state = self.state();
        state.promote_delayed(queue, now);
        let mut leases = Vec::new();
        while leases.len() < max {
            match self.lease_next(&mut state, queue, worker, now, deadline)? {
                Some(lease) => leases.push(lease),
                None => break,
            }
        }
        drop(state);
        if !leases.is_empty() {
            self.events_changed();
        }
        Ok(leases)
    }

    async fn renew(&self, lease: &Lease, lease_for: Duration) -> Result<DateTime<Utc>> {
        let deadline = after(self.clock.now(), lease_for);
        let mut state = self.state();
        let entry = state.current_lease(lease)?;
        let old = entry.lease.replace((lease.token, deadline));
        if let Some((_, old_deadline)) = old {
            state.leased.remove(&(old_deadline, lease.id()));
        }
        state.leased.insert((deadline, lease.id()));
        Ok(deadline)
    }

    /// Every lease under one lock; a lease whose job is now `cancelled` answers so.
    async fn renew_many(&self, leases: &[Lease], lease_for: Duration) -> Result<Vec<Renewal>> {
        let deadline = after(self.clock.now(), lease_for);
        let mut state = self.state();
        Ok(leases
            .iter()
            .map(|lease| {
                let Ok(entry) = state.current_lease(lease) else {
                    let cancelled = state
                        .jobs
                        .get(&lease.id())
                        .is_some_and(|e| e.job.status == JobStatus::Cancelled);
                    return if cancelled {
                        Renewal::Cancelled
                    } else {
                        Renewal::Lost
                    };
                };
                if let Some((_, old)) = entry.lease.replace((lease.token, deadline)) {
                    state.leased.remove(&(old, lease.id()));
                }
                state.leased.insert((deadline, lease.id()));
                Renewal::Held
            })
            .collect())
    }

    async fn progress(&self, lease: &Lease, progress: &Progress) -> Result<()> {
        self.state().current_lease(lease)?.job.progress = Some(progress.clone());
        Ok(())
    }

    async fn complete(&self, lease: &Lease, output: Output) -> Result<Job> {
        let now = self.clock.now();
        let mut state = self.state();
        state.current_lease(lease)?;
        let bytes = output.bytes().len() as u64;
        let (_, _, entry) = state.transition(
            lease.id(),
            Event::Complete,
            &self.settings,
            now,
            true,
            |_| {},
        )?;
        entry.job.error = None;
        entry.job.result_type = Some(output.content_type_shared());
        entry.result = Some(output);
        let job = entry.job.clone();
        state.queue(&job.queue).result_bytes += bytes;
        drop(state);
        self.events_changed();
        Ok(job)
    }

    async fn fail(&self, lease: &Lease, reason: &str, kind: FailureKind) -> Result<Job> {
        self.settle(lease, Event::Fail(kind), Some(reason))
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        self.settle(lease, Event::Release, None)?;
        self.work.notify_waiters();
        Ok(())
    }

    async fn wait_for_work(&self, queues: &[QueueName], timeout: Duration) {
        let notified = self.work.notified();
        tokio::pin!(notified);
        // Register before looking, so an enqueue between the look and the wait is not missed.
        notified.as_mut().enable();
        let next_delayed = {
            let state = self.state();
            let mut next: Option<DateTime<Utc>> = None;
            for queue in queues {
                let Some(q) = state.queues.get(queue) else {
                    continue;
                };
                if q.has_ready() {
                    return;
                }
                if let Some(&(at, _, _)) = q.delayed.first() {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
            next
        };
        // A delayed retry becomes ready without any notification: wake for it too.
        let timeout = match next_delayed {
            Some(at) => (at - self.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(timeout),
            None => timeout,
        };
        let _ = tokio::time::timeout(timeout, notified).await;
    }
}

#[async_trait]
impl Maintenance for MemoryBackend {
    async fn requeue_expired(&self) -> Result<RequeueReport> {
        let now = self.clock.now();
        let mut report = RequeueReport::default();
        {
            let mut state = self.state();
            while let Some(&(deadline, id)) = state.leased.first() {
                if deadline > now {
                    break;
                }
                let (machine, mv, entry) =
                    state.transition(id, Event::Expire, &self.settings, now, false, |_| {})?;
                entry.job.error = Some(expiry_reason(machine.attempts, machine.max_attempts));
                if mv.to == JobStatus::Failed {
                    report.failed += 1;
                } else {
                    report.requeued += 1;
                }
            }
        }
        if report.requeued > 0 {
            self.work.notify_waiters();
        }
        if report.requeued + report.failed > 0 {
            self.events_changed();
        }
        Ok(report)
    }

    async fn purge_expired(&self) -> Result<u64> {
        let now = self.clock.now();
        let mut state = self.state();
        let mut purged = 0;
        while let Some(&(at, id)) = state.expiries.first() {
            if at > now {
                break;
            }
            state.remove(id);
            purged += 1;
        }
        Ok(purged)
    }
}

impl MemoryBackend {
    /// The registry's entries, the dead ones dropped.
    fn live_workers(
        &self,
        now: DateTime<Utc>,
    ) -> MutexGuard<'_, HashMap<String, (WorkerInfo, DateTime<Utc>)>> {
        let mut workers = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        workers.retain(|_, (_, dies_at)| *dies_at > now);
        workers
    }
}

/// The in-memory log is one stream, numbered 0: positions are `(0, n, 0)`, `n` counting every
/// event since the backend was made.
#[async_trait]
impl EventLog for MemoryBackend {
    async fn read(&self, after: &EventCursor, max: usize) -> Result<Vec<JobEvent>> {
        let seen = after.get(MEMORY_STREAM).map_or(0, |p| p.seq);
        let state = self.state();
        let Some(oldest) = state.log.events.front().map(|e| e.seq) else {
            return Ok(Vec::new());
        };
        let skip = usize::try_from(seen.saturating_sub(oldest - 1)).unwrap_or(usize::MAX);
        Ok(state
            .log
            .events
            .iter()
            .skip(skip)
            .take(max.min(crate::events::MAX_READ))
            .map(Recorded::event)
            .collect())
    }

    async fn head(&self) -> Result<EventCursor> {
        let mut cursor = EventCursor::start();
        let last = self.state().log.last;
        cursor.advance(
            &MEMORY_STREAM_NAME,
            Position {
                ms: 0,
                seq: last,
                index: 0,
            },
        );
        Ok(cursor)
    }

    async fn wait(&self, after: &EventCursor, timeout: Duration) {
        self.event_readers.fetch_add(1, Ordering::SeqCst);
        let _counted = Counted(&self.event_readers);
        let notified = self.events_added.notified();
        tokio::pin!(notified);
        // Register before looking, so an event appended between the look and the wait wakes it.
        notified.as_mut().enable();
        let seen = after.get(MEMORY_STREAM).map_or(0, |p| p.seq);
        if self.state().log.last > seen {
            return;
        }
        let _ = tokio::time::timeout(timeout, notified).await;
    }
}

/// Uncounts a waiting reader when its wait ends, however it ends.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl WorkerRegistry for MemoryBackend {
    async fn beat(&self, worker: &WorkerInfo, ttl: Duration) -> Result<()> {
        worker.validate()?;
        let now = self.clock.now();
        let mut workers = self.live_workers(now);
        if workers.len() >= MAX_WORKERS && !workers.contains_key(&worker.id) {
            return Err(Error::Conflict(format!(
                "the worker registry holds {MAX_WORKERS} live workers already"
            )));
        }
        let mut info = worker.clone();
        info.last_seen = now;
        let dies_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        workers.insert(info.id.clone(), (info, dies_at));
        Ok(())
    }

    async fn leave(&self, id: &str) -> Result<()> {
        self.live_workers(self.clock.now()).remove(id);
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let workers = self.live_workers(self.clock.now());
        let mut live: Vec<WorkerInfo> = workers.values().map(|(info, _)| info.clone()).collect();
        drop(workers);
        live.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(live)
    }
}

#[async_trait]
impl JobStore for MemoryBackend {
    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        Ok(self
            .state()
            .live(id, self.clock.now())
            .map(|e| e.job.clone()))
    }

    async fn list(&self, query: &ListQuery) -> Result<Page> {
        let now = self.clock.now();
        let state = self.state();
        let wanted = |entry: &Entry| {
            !entry.expired(now)
                && query.queue.as_ref().is_none_or(|q| *q == entry.job.queue)
                && query.kind.as_ref().is_none_or(|k| *k == entry.job.kind)
        };
        // Submission numbers are unique here, so "before a cursor" is "a lower number".
        let upper = query
            .before
            .map(|cursor| (cursor.seq(), JobId::from(uuid::Uuid::nil())));
        let mut sources: Vec<_> = query
            .statuses
            .iter()
            .map(|status| {
                let index = &state.by_status[status_slot(status)];
                let newest_first: Box<dyn Iterator<Item = &(u64, JobId)>> = match upper {
                    Some(upper) => Box::new(index.range(..upper).rev()),
                    None => Box::new(index.iter().rev()),
                };
                newest_first.peekable()
            })
            .collect();
        // Merge the per-status indexes, newest first, lazily: a page reads what it shows.
        let merged = std::iter::from_fn(|| {
            let newest = sources
                .iter_mut()
                .enumerate()
                .filter_map(|(i, source)| source.peek().map(|key| (key.0, i)))
                .max()?;
            sources[newest.1].next()
        });
        let size = query.page_size();
        let mut page: Vec<&Entry> = merged
            .filter_map(|(_, id)| state.jobs.get(id).map(Box::as_ref))
            .filter(|entry| wanted(entry))
            .skip(query.bounded_offset())
            .take(size + 1)
            .collect();
        let more = page.len() > size;
        page.truncate(size);
        Ok(Page {
            next: page.last().filter(|_| more).map(|e| e.cursor()),
            jobs: page.into_iter().map(|e| e.job.clone()).collect(),
        })
    }

    async fn result(&self, id: JobId) -> Result<Option<ResultState>> {
        let state = self.state();
        let Some(entry) = state.live(id, self.clock.now()) else {
            return Ok(None);
        };
        Ok(Some(match entry.job.status {
            JobStatus::Complete => match &entry.result {
                Some(output) => ResultState::Ready(output.clone()),
                None => {
                    return Err(Error::Internal(format!(
                        "job {id} is complete without a result"
                    )));
                }
            },
            JobStatus::Failed => ResultState::Failed(
                entry
                    .job
                    .error
                    .clone()
                    .unwrap_or_else(|| "no reason was recorded".to_owned()),
            ),
            JobStatus::Cancelled => ResultState::Cancelled,
            status => ResultState::Pending(status),
        }))
    }

    async fn cancel(&self, id: JobId) -> Result<Option<Job>> {
        let now = self.clock.now();
        let mut state = self.state();
        let Some(entry) = state.live(id, now) else {
            return Ok(None);
        };
        let status = entry.job.status;
        if status == JobStatus::Cancelled {
            return Ok(Some(entry.job.clone()));
        }
        let job = state
            .transition(id, Event::Cancel, &self.settings, now, false, |_| {})
            .map_err(|_| cancel_refused(id, status))?
            .2
            .job
            .clone();
        drop(state);
        self.events_changed();
        Ok(Some(job))
    }

    async fn retry(&self, id: JobId) -> Result<Option<Job>> {
        let now = self.clock.now();
        let mut state = self.state();
        let Some(entry) = state.live(id, now) else {
            return Ok(None);
        };
        let status = entry.job.status;
        let job = state
            .transition(id, Event::Retry, &self.settings, now, false, |_| {})
            .map_err(|_| retry_refused(id, status))?
            .2
            .job
            .clone();
        drop(state);
        self.work.notify_waiters();
        self.events_changed();
        Ok(Some(job))
    }

    async fn delete(&self, id: JobId) -> Result<bool> {
        let now = self.clock.now();
        let mut state = self.state();
        match state.jobs.get(&id) {
            None => Ok(false),
            Some(entry) if entry.expired(now) => {
                state.remove(id);
                Ok(false)
            }
            Some(entry) if entry.job.status == JobStatus::InProgress => Err(Error::Conflict(
                format!("job {id} is in progress; delete it once it has finished"),
            )),
            Some(_) => Ok(state.remove(id).is_some()),
        }
    }

    async fn stats(&self) -> Result<Vec<QueueStats>> {
        let state = self.state();
        Ok(state
            .queues
            .iter()
            .map(|(name, q)| QueueStats {
                queue: name.clone(),
                counts: StatusCounts {
                    submitted: q.counts[0],
                    in_progress: q.counts[1],
                    complete: q.counts[2],
                    failed: q.counts[3],
                    cancelled: q.counts[4],
                },
                ready: q.ready_count(),
                delayed: q.delayed.len() as u64,
                completed_total: q.completed_total,
                failed_total: q.failed_total,
            })
            .collect())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
