//! The in-memory backend: the embedded default when no Redis is configured.
//!
//! [`MemoryBackend`] implements every trait with exactly the semantics of the Redis backend (it
//! runs the same contract suite): leases expire by the backend's [`Clock`], tokens fence, attempts
//! count, finished jobs expire. It is not a test fake; it is what `holidapp-api` runs on a laptop.
//! It lives and dies with its process, so it cannot be shared between processes: a separate
//! worker process needs Redis.
//!
//! All state sits behind one `std::sync::Mutex`. Every operation is a few map and set updates
//! that never await while holding the lock, so a blocking mutex is both correct and the fastest
//! choice (see tokio's guidance on `std::sync::Mutex` vs `tokio::sync::Mutex`); one lock also makes
//! every method trivially atomic, which is the contract.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::clock::{Clock, SystemClock};
use crate::dataset::{DataSet, Record};
use crate::error::{Error, Result};
use crate::job::{Job, JobId, JobStatus};
use crate::queue::{
    FailureKind, Lease, LeaseToken, Queue, QueueDepth, QueueSettings, RequeueReport, RetryDecision,
};
use crate::store::{DataStore, ImageStore, JobStore, ListQuery, StatusCounts};

/// Jobs, queue, data set and image held in this process's memory.
#[derive(Debug)]
pub struct MemoryBackend {
    settings: QueueSettings,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    // Wakes idle workers blocked in `wait_for_work` when a job becomes ready.
    work: Notify,
}

/// One stored job and its queue bookkeeping.
#[derive(Debug)]
struct Entry {
    job: Job,
    /// Submission order: newest-first listing sorts by it.
    seq: u64,
    /// The current lease, while `in progress`.
    lease: Option<(LeaseToken, DateTime<Utc>)>,
    /// When a delayed retry becomes ready, while waiting for one.
    ready_at: Option<DateTime<Utc>>,
    result: Option<Bytes>,
    /// When a finished job stops existing.
    expires_at: Option<DateTime<Utc>>,
}

impl Entry {
    fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

#[derive(Debug, Default)]
struct State {
    /// Boxed, so that growing the map moves pointers, not whole jobs: with hundreds of thousands
    /// of jobs kept for their retention period, a rehash of inline entries would hold the lock
    /// for tens of milliseconds.
    jobs: HashMap<JobId, Box<Entry>>,
    next_seq: u64,
    next_token: u64,
    /// Ready jobs never leased yet, oldest first. Every one of them was submitted after every
    /// job in `returned`.
    ready: VecDeque<JobId>,
    /// Ready jobs back from a lease (released, expired or retried), by submission number:
    /// leased before `ready`, so the queue runs oldest submission first.
    returned: BTreeSet<(u64, JobId)>,
    /// Jobs waiting for a retry delay, by the time they become ready.
    delayed: BTreeSet<(DateTime<Utc>, u64, JobId)>,
    /// Leased jobs by deadline.
    leased: BTreeSet<(DateTime<Utc>, JobId)>,
    /// Submission sequence numbers per status (index = `status_slot`), for listing.
    by_status: [BTreeSet<(u64, JobId)>; 4],
    /// Finished jobs by expiry time.
    expiries: BTreeSet<(DateTime<Utc>, JobId)>,
    data: Option<LoadedData>,
    /// Bumped by every replace and clear; 0 until the first load.
    data_version: u64,
    image: Option<Bytes>,
}

#[derive(Debug)]
struct LoadedData {
    set: Arc<DataSet>,
    by_id: HashMap<String, usize>,
}

fn status_slot(status: JobStatus) -> usize {
    match status {
        JobStatus::Submitted => 0,
        JobStatus::InProgress => 1,
        JobStatus::Complete => 2,
        JobStatus::Failed => 3,
    }
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl State {
    /// Moves a job to `to`, asking the status machine first, and keeps the indexes in step.
    fn set_status(&mut self, id: JobId, to: JobStatus) -> Result<()> {
        let entry = self.jobs.get_mut(&id).ok_or(Error::LeaseLost)?;
        let from = entry.job.status;
        from.transition(to)?;
        entry.job.status = to;
        let key = (entry.seq, id);
        self.by_status[status_slot(from)].remove(&key);
        self.by_status[status_slot(to)].insert(key);
        Ok(())
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

    /// Ends a lease: drops it from the deadline index.
    fn end_lease(&mut self, id: JobId) {
        if let Some((_, deadline)) = self.jobs.get_mut(&id).and_then(|e| e.lease.take()) {
            self.leased.remove(&(deadline, id));
        }
    }

    /// Marks a finished job for expiry after the retention period.
    fn finish(&mut self, id: JobId, now: DateTime<Utc>, ttl: Duration) {
        let expires_at = after(now, ttl);
        if let Some(entry) = self.jobs.get_mut(&id) {
            entry.job.finished_at = Some(now);
            entry.expires_at = Some(expires_at);
            self.expiries.insert((expires_at, id));
        }
    }

    /// Makes retries whose delay has passed ready again.
    fn promote_delayed(&mut self, now: DateTime<Utc>) {
        while let Some(&(at, seq, id)) = self.delayed.first() {
            if at > now {
                break;
            }
            self.delayed.remove(&(at, seq, id));
            if let Some(entry) = self.jobs.get_mut(&id) {
                entry.ready_at = None;
            }
            self.returned.insert((seq, id));
        }
    }

    /// Puts a job back in the queue, ahead of every job not leased yet.
    fn return_to_queue(&mut self, id: JobId) {
        if let Some(entry) = self.jobs.get(&id) {
            self.returned.insert((entry.seq, id));
        }
    }

    /// The next ready job: the oldest submission among those back from a lease, else the oldest
    /// of those never leased.
    fn next_ready(&mut self) -> Option<JobId> {
        match self.returned.pop_first() {
            Some((_, id)) => Some(id),
            None => self.ready.pop_front(),
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
        self.by_status[status_slot(entry.job.status)].remove(&(entry.seq, id));
        if let Some((_, deadline)) = entry.lease {
            self.leased.remove(&(deadline, id));
        }
        if let Some(at) = entry.ready_at {
            self.delayed.remove(&(at, entry.seq, id));
        } else if entry.job.status == JobStatus::Submitted
            && !self.returned.remove(&(entry.seq, id))
        {
            self.ready.retain(|queued| *queued != id);
        }
        if let Some(at) = entry.expires_at {
            self.expiries.remove(&(at, id));
        }
        Some(entry)
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
        }
    }

    /// The settings this backend applies.
    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-made change visible to callers that
        // matter more than availability here: every mutation is completed before any call that
        // could panic, so recovering the guard is safe.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(state: &mut State, job: &Job) -> Result<()> {
        if job.status != JobStatus::Submitted {
            return Err(Error::IllegalTransition {
                from: job.status,
                to: JobStatus::Submitted,
            });
        }
        if state.jobs.contains_key(&job.id) {
            return Err(Error::Conflict(format!("job {} already exists", job.id)));
        }
        state.next_seq += 1;
        let seq = state.next_seq;
        state.by_status[status_slot(JobStatus::Submitted)].insert((seq, job.id));
        state.ready.push_back(job.id);
        state.jobs.insert(
            job.id,
            Box::new(Entry {
                job: job.clone(),
                seq,
                lease: None,
                ready_at: None,
                result: None,
                expires_at: None,
            }),
        );
        Ok(())
    }
}

#[async_trait]
impl Queue for MemoryBackend {
    async fn enqueue(&self, job: &Job) -> Result<()> {
        Self::insert(&mut self.state(), job)?;
        self.work.notify_waiters();
        Ok(())
    }

    async fn enqueue_many(&self, jobs: &[Job]) -> Result<()> {
        {
            let mut state = self.state();
            for job in jobs {
                Self::insert(&mut state, job)?;
            }
        }
        self.work.notify_waiters();
        Ok(())
    }

    async fn lease(&self, worker: &str, lease_for: Duration) -> Result<Option<Lease>> {
        let now = self.clock.now();
        let mut state = self.state();
        state.promote_delayed(now);
        let Some(id) = state.next_ready() else {
            return Ok(None);
        };
        state.set_status(id, JobStatus::InProgress)?;
        state.next_token += 1;
        let token = LeaseToken(state.next_token);
        let deadline = after(now, lease_for);
        state.leased.insert((deadline, id));
        let entry = state
            .jobs
            .get_mut(&id)
            .ok_or_else(|| Error::Internal("queued job vanished".into()))?;
        entry.lease = Some((token, deadline));
        entry.job.worker = Some(worker.to_owned());
        entry.job.started_at = Some(now);
        entry.job.attempts += 1;
        Ok(Some(Lease {
            job: entry.job.clone(),
            token,
            worker: worker.to_owned(),
            deadline,
        }))
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

    async fn complete(&self, lease: &Lease, result: Vec<u8>) -> Result<Job> {
        let now = self.clock.now();
        let mut state = self.state();
        state.current_lease(lease)?;
        state.set_status(lease.id(), JobStatus::Complete)?;
        state.end_lease(lease.id());
        state.finish(lease.id(), now, self.settings.result_ttl);
        let entry = state.jobs.get_mut(&lease.id()).ok_or(Error::LeaseLost)?;
        entry.result = Some(Bytes::from(result));
        entry.job.error = None;
        Ok(entry.job.clone())
    }

    async fn fail(&self, lease: &Lease, reason: &str, kind: FailureKind) -> Result<Job> {
        let now = self.clock.now();
        let mut state = self.state();
        let attempt = state.current_lease(lease)?.job.attempts;
        match self.settings.retry.decide(attempt, kind) {
            RetryDecision::GiveUp => {
                state.set_status(lease.id(), JobStatus::Failed)?;
                state.end_lease(lease.id());
                state.finish(lease.id(), now, self.settings.result_ttl);
            }
            RetryDecision::RetryAfter(delay) => {
                state.set_status(lease.id(), JobStatus::Submitted)?;
                state.end_lease(lease.id());
                let at = after(now, delay);
                let entry = state.jobs.get_mut(&lease.id()).ok_or(Error::LeaseLost)?;
                entry.ready_at = Some(at);
                let seq = entry.seq;
                state.delayed.insert((at, seq, lease.id()));
            }
        }
        let entry = state.jobs.get_mut(&lease.id()).ok_or(Error::LeaseLost)?;
        entry.job.error = Some(reason.to_owned());
        Ok(entry.job.clone())
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        {
            let mut state = self.state();
            state.current_lease(lease)?;
            state.set_status(lease.id(), JobStatus::Submitted)?;
            state.end_lease(lease.id());
            if let Some(entry) = state.jobs.get_mut(&lease.id()) {
                entry.job.attempts = entry.job.attempts.saturating_sub(1);
            }
            state.return_to_queue(lease.id());
        }
        self.work.notify_waiters();
        Ok(())
    }

    async fn requeue_expired(&self) -> Result<RequeueReport> {
        let now = self.clock.now();
        let mut report = RequeueReport::default();
        {
            let mut state = self.state();
            while let Some(&(deadline, id)) = state.leased.first() {
                if deadline > now {
                    break;
                }
                state.end_lease(id);
                let attempts = state.jobs.get(&id).map_or(0, |e| e.job.attempts);
                let max = self.settings.retry.max_attempts.max(1);
                let reason = format!("lease expired on attempt {attempts} of {max}");
                if attempts >= max {
                    state.set_status(id, JobStatus::Failed)?;
                    state.finish(id, now, self.settings.result_ttl);
                    report.failed += 1;
                } else {
                    state.set_status(id, JobStatus::Submitted)?;
                    state.return_to_queue(id);
                    report.requeued += 1;
                }
                if let Some(entry) = state.jobs.get_mut(&id) {
                    entry.job.error = Some(reason);
                }
            }
        }
        if report.requeued > 0 {
            self.work.notify_waiters();
        }
        Ok(report)
    }

    async fn depth(&self) -> Result<QueueDepth> {
        let state = self.state();
        Ok(QueueDepth {
            ready: (state.ready.len() + state.returned.len()) as u64,
            delayed: state.delayed.len() as u64,
            leased: state.leased.len() as u64,
        })
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let notified = self.work.notified();
        tokio::pin!(notified);
        // Register before looking, so an enqueue between the look and the wait is not missed.
        notified.as_mut().enable();
        let next_delayed = {
            let state = self.state();
            if !state.ready.is_empty() || !state.returned.is_empty() {
                return;
            }
            state.delayed.first().map(|(at, _, _)| *at)
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
impl JobStore for MemoryBackend {
    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        Ok(self
            .state()
            .live(id, self.clock.now())
            .map(|e| e.job.clone()))
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Job>> {
        let now = self.clock.now();
        let state = self.state();
        let live = |key: &&(u64, JobId)| state.live(key.1, now).is_some();
        let pick = |key: &(u64, JobId)| state.jobs.get(&key.1).map(|e| e.job.clone());
        let jobs = match query.status {
            Some(status) => state.by_status[status_slot(status)]
                .iter()
                .rev()
                .filter(live)
                .skip(query.offset)
                .take(query.page_size())
                .filter_map(pick)
                .collect(),
            None => {
                // Merge the four per-status indexes newest first.
                let mut all: Vec<&(u64, JobId)> =
                    state.by_status.iter().flatten().filter(live).collect();
                all.sort_unstable_by(|a, b| b.cmp(a));
                all.into_iter()
                    .skip(query.offset)
                    .take(query.page_size())
                    .filter_map(pick)
                    .collect()
            }
        };
        Ok(jobs)
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

    async fn result(&self, id: JobId) -> Result<Option<Bytes>> {
        Ok(self
            .state()
            .live(id, self.clock.now())
            .and_then(|e| e.result.clone()))
    }

    async fn counts(&self) -> Result<StatusCounts> {
        let state = self.state();
        let n = |s: JobStatus| state.by_status[status_slot(s)].len() as u64;
        Ok(StatusCounts {
            submitted: n(JobStatus::Submitted),
            in_progress: n(JobStatus::InProgress),
            complete: n(JobStatus::Complete),
            failed: n(JobStatus::Failed),
        })
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

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl DataStore for MemoryBackend {
    async fn replace(&self, data: DataSet) -> Result<u64> {
        let mut by_id = HashMap::with_capacity(data.len());
        for (i, record) in data.records.iter().enumerate() {
            if by_id.insert(record.id.clone(), i).is_some() {
                return Err(Error::InvalidData(format!(
                    "duplicate record id '{}'",
                    record.id
                )));
            }
        }
        let count = data.len() as u64;
        let mut state = self.state();
        state.data = Some(LoadedData {
            set: Arc::new(data),
            by_id,
        });
        state.data_version += 1;
        Ok(count)
    }

    async fn version(&self) -> Result<u64> {
        Ok(self.state().data_version)
    }

    async fn len(&self) -> Result<u64> {
        Ok(self.state().data.as_ref().map_or(0, |d| d.set.len() as u64))
    }

    async fn page(&self, start: u64, limit: u64) -> Result<Vec<Record>> {
        let state = self.state();
        let Some(data) = state.data.as_ref() else {
            return Ok(Vec::new());
        };
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(data
            .set
            .records
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn record(&self, id: &str) -> Result<Option<Record>> {
        let state = self.state();
        Ok(state
            .data
            .as_ref()
            .and_then(|d| d.by_id.get(id).map(|&i| d.set.records[i].clone())))
    }

    async fn ids(&self) -> Result<Vec<String>> {
        let state = self.state();
        Ok(state
            .data
            .as_ref()
            .map(|d| d.set.records.iter().map(|r| r.id.clone()).collect())
            .unwrap_or_default())
    }

    async fn load(&self) -> Result<(u64, Arc<DataSet>)> {
        let state = self.state();
        let set = state
            .data
            .as_ref()
            .map(|d| Arc::clone(&d.set))
            .unwrap_or_default();
        Ok((state.data_version, set))
    }

    async fn clear(&self) -> Result<bool> {
        let mut state = self.state();
        let had = state.data.take().is_some();
        if had {
            state.data_version += 1;
        }
        Ok(had)
    }
}

#[async_trait]
impl ImageStore for MemoryBackend {
    async fn put_image(&self, png: Bytes) -> Result<()> {
        self.state().image = Some(png);
        Ok(())
    }

    async fn get_image(&self) -> Result<Option<Bytes>> {
        Ok(self.state().image.clone())
    }

    async fn delete_image(&self) -> Result<bool> {
        Ok(self.state().image.take().is_some())
    }
}
