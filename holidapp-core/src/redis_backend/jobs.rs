//! [`JobStore`] on Redis: reads, listings, deletion and counts.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use redis::Value;

use super::codec::{
    TOMBSTONE, array, duration_millis, fields_from_reply, gone, int, job_from_fields, string,
};
use super::queue::{WAKE_CAP, machine_state};
use super::scripts::SCRIPTS;
use super::{Partition, RedisBackend};
use crate::error::{Error, Result};
use crate::job::{Job, JobId, QueueName};
use crate::kind::Output;
use crate::machine::{Attempts, Event, JobState, JobStatus, decide};
use crate::store::{
    Cursor, JobStore, ListQuery, Page, QueueStats, ResultState, StatusCounts, cancel_refused,
    retry_refused,
};

/// How many times a cancel reads a job again that changed between its read and its
/// compare-and-set.
const CANCEL_TRIES: usize = 5;

/// Most jobs one list script call examines; a listing makes a few calls at most
/// ([`LIST_ROUNDS`]), so a page costs bounded work whatever the filter skips.
const LIST_BUDGET: usize = 5_000;

/// Most list script rounds per page.
const LIST_ROUNDS: usize = 8;

/// Candidates for a listing page from one queue.
struct Candidates {
    /// `(position, id)`, newest first.
    found: Vec<(Cursor, String)>,
    /// Where examination stopped, when it did not reach the end of the queue.
    frontier: Option<Cursor>,
}

impl RedisBackend {
    /// Up to `want` jobs of one queue partition matching `query` before `before`, examining at
    /// most [`LIST_BUDGET`] jobs.
    async fn list_candidates(
        &self,
        partition: &Partition,
        query: &ListQuery,
        before: Option<Cursor>,
        want: usize,
    ) -> Result<Candidates> {
        let k = self.partition_keys(partition);
        let tag = partition.tag;
        // One flag per status, in `JobStatus::ALL` order (the order the script reads them).
        let flags: String = JobStatus::ALL
            .iter()
            .map(|s| {
                if query.statuses.contains(*s) {
                    '1'
                } else {
                    '0'
                }
            })
            .collect();
        let (bound, inclusive) = match before {
            // Positions order by number, then tag: a job of this queue numbered like the cursor
            // comes before it when this queue's tag is lower.
            Some(cursor) => (cursor.seq().to_string(), tag < cursor.tag()),
            None => (String::new(), false),
        };
        let reply: Value = self
            .conn
            .invoke(
                SCRIPTS
                    .list
                    .key(&k.expiry)
                    .key(&k.leased)
                    .key(&k.levels)
                    .key(&k.scheduled)
                    .key(&k.complete)
                    .key(&k.failed)
                    .key(&k.cancelled)
                    .arg(&k.job_prefix)
                    .arg(self.time.arg())
                    .arg(bound)
                    .arg(if inclusive { "1" } else { "0" })
                    .arg(want)
                    .arg(LIST_BUDGET)
                    .arg(flags)
                    .arg(query.kind.as_deref().unwrap_or(""))
                    .arg(JobStatus::Submitted.as_str())
                    .arg(&k.queue_prefix),
            )
            .await?;
        let mut items = array(reply)?.into_iter();
        let exhausted = items.next().map(int).transpose()? == Some(1);
        let last = items.next().map(string).transpose()?.unwrap_or_default();
        let seq = |text: &str| {
            text.parse::<u64>()
                .map_err(|_| Error::Internal(format!("list script answered seq '{text}'")))
        };
        let mut found = Vec::with_capacity(items.len() / 2);
        while let (Some(id), Some(n)) = (items.next(), items.next()) {
            found.push((Cursor::at(seq(&string(n)?)?, tag), string(id)?));
        }
        let frontier = if exhausted || last.is_empty() {
            None
        } else {
            Some(Cursor::at(seq(&last)?, tag))
        };
        Ok(Candidates { found, frontier })
    }

    /// The jobs with these ids, in order, read in one round trip; ids whose job is gone (deleted
    /// or past retention) are left out.
    async fn read_jobs(&self, ids: &[String]) -> Result<Vec<Job>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<JobId> = ids
            .iter()
            .map(|id| {
                id.parse()
                    .map_err(|_| Error::Internal(format!("an index holds '{id}', not a job id")))
            })
            .collect::<Result<_>>()?;
        let reads = ids
            .iter()
            .map(|&id| {
                let mut hgetall = redis::cmd("HGETALL");
                hgetall.arg(self.keys.job(id));
                (id.tag(), hgetall)
            })
            .collect();
        let (replies, now) = self.query_by_tag(reads, true).await?;
        let mut jobs = Vec::with_capacity(replies.len());
        for (id, reply) in ids.into_iter().zip(replies) {
            if let Some(fields) = fields_from_reply(reply)?
                && !gone(&fields, now)
            {
                jobs.push(job_from_fields(id, &fields)?);
            }
        }
        Ok(jobs)
    }

    /// A job's status and queue, read in one step; `None` when there is no such job (or only
    /// the remains of a deleted one).
    async fn status_and_queue(&self, id: JobId) -> Result<Option<(JobStatus, QueueName)>> {
        let (status, queue): (Option<String>, Option<String>) = self
            .conn
            .query(
                redis::cmd("HMGET")
                    .arg(self.keys.job(id))
                    .arg("status")
                    .arg("queue"),
            )
            .await?;
        let Some(status) = status.filter(|s| s != TOMBSTONE) else {
            return Ok(None);
        };
        let status = status
            .parse()
            .map_err(|e| Error::Internal(format!("stored job {id} has a bad status: {e}")))?;
        // No `queue` field means the default queue.
        let queue = match queue {
            None => QueueName::default_queue(),
            Some(name) => QueueName::new(name)
                .map_err(|e| Error::Internal(format!("stored job {id} has a bad queue: {e}")))?,
        };
        Ok(Some((status, queue)))
    }

    /// A job's hash fields, or `None` when it is gone (never was, deleted, past retention).
    async fn live_fields(&self, id: JobId) -> Result<Option<HashMap<String, String>>> {
        let mut pipe = redis::pipe();
        pipe.hgetall(self.keys.job(id));
        self.ask_time(&mut pipe);
        let mut replies: Vec<Value> = self.conn.query_pipeline(&pipe).await?;
        let now = self.time_of(&mut replies)?;
        let reply = replies
            .pop()
            .ok_or_else(|| Error::Internal("Redis answered no HGETALL".into()))?;
        Ok(fields_from_reply(reply)?.filter(|fields| !gone(fields, now)))
    }
}

#[async_trait]
impl JobStore for RedisBackend {
    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        self.live_fields(id)
            .await?
            .map(|fields| job_from_fields(id, &fields))
            .transpose()
    }

    /// Asks every queue (or the one filtered) for its newest matching jobs before the cursor,
    /// merges them, and reads the page's jobs in one round trip. A queue answers at most
    /// `offset + limit` candidates per round and examines at most 5,000 jobs; when a round of
    /// some queue stops short, only what every queue has examined is safe to show, and further
    /// rounds continue from there (at most eight, after which the page may be short, with a
    /// cursor).
    async fn list(&self, query: &ListQuery) -> Result<Page> {
        let partitions: Vec<Partition> = match &query.queue {
            Some(queue) => self.partitions_of(queue).await?,
            None => self.known_partitions().await?.to_vec(),
        };
        let size = query.page_size();
        let mut skip = query.bounded_offset();
        let mut before = query.before;
        let mut page: Vec<(Cursor, String)> = Vec::with_capacity(size);
        let mut next = None;
        for _ in 0..LIST_ROUNDS {
            let want = skip + size - page.len() + 1;
            let mut found = Vec::new();
            let mut frontier: Option<Cursor> = None;
            for partition in &partitions {
                let candidates = self.list_candidates(partition, query, before, want).await?;
                found.extend(candidates.found);
                frontier = frontier.max(candidates.frontier);
            }
            found.sort_unstable_by_key(|(cursor, _)| std::cmp::Reverse(*cursor));
            // Only what every queue has examined: below a queue's frontier, it may hold more.
            found.retain(|(cursor, _)| frontier.is_none_or(|f| *cursor >= f));
            let skipped = skip.min(found.len());
            skip -= skipped;
            let mut rest = found.into_iter().skip(skipped);
            page.extend(rest.by_ref().take(size - page.len()));
            if page.len() == size {
                if rest.next().is_some() || frontier.is_some() {
                    next = page.last().map(|(cursor, _)| *cursor);
                }
                break;
            }
            // Short of a page: every queue is examined to its end (the last page), or the page
            // goes on below the frontier, in the next round or, after the last one, on the next
            // page.
            next = frontier;
            match frontier {
                None => break,
                Some(f) => before = Some(f),
            }
        }
        let ids: Vec<String> = page.into_iter().map(|(_, id)| id).collect();
        Ok(Page {
            jobs: self.read_jobs(&ids).await?,
            next,
        })
    }

    async fn result(&self, id: JobId) -> Result<Option<ResultState>> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hmget(
                self.keys.job(id),
                &["status", "error", "result_type", "expires_at"],
            )
            .get(self.keys.result(id));
        self.ask_time(&mut pipe);
        let mut replies: Vec<Value> = self.conn.query_bulk(&pipe).await?;
        let now = self.time_of(&mut replies)?;
        let (fields, result): (Vec<Option<String>>, Option<Vec<u8>>) =
            redis::from_redis_value(Value::Array(replies))
                .map_err(|e| Error::Internal(format!("Redis answered a bad result read: {e}")))?;
        let field = |i: usize| fields.get(i).cloned().flatten();
        let Some(status) = field(0) else {
            return Ok(None);
        };
        let expired = field(3)
            .and_then(|at| at.parse::<i64>().ok())
            .is_some_and(|at| at <= now);
        if expired || status == TOMBSTONE {
            return Ok(None);
        }
        let status: JobStatus = status
            .parse()
            .map_err(|e| Error::Internal(format!("stored job {id} has a bad status: {e}")))?;
        Ok(Some(match status {
            JobStatus::Complete => {
                // A result of zero length is stored as no key at all.
                let bytes = result.unwrap_or_default();
                let content_type = field(2).unwrap_or_else(|| crate::kind::OCTETS.to_owned());
                ResultState::Ready(Output::new(content_type, Bytes::from(bytes)))
            }
            JobStatus::Failed => {
                ResultState::Failed(field(1).unwrap_or_else(|| "no reason was recorded".to_owned()))
            }
            JobStatus::Cancelled => ResultState::Cancelled,
            status => ResultState::Pending(status),
        }))
    }

    async fn delete(&self, id: JobId) -> Result<bool> {
        let Some((_, queue)) = self.status_and_queue(id).await? else {
            return Ok(false);
        };
        let k = self.partition_keys(&Partition::of(&queue, id));
        let deleted: i64 = self
            .conn
            .invoke(
                SCRIPTS
                    .delete
                    .key(self.keys.job(id))
                    .key(self.keys.result(id))
                    .key(&k.delayed)
                    .key(&k.scheduled)
                    .key(&k.expiry)
                    .key(&k.complete)
                    .key(&k.failed)
                    .key(&k.cancelled)
                    .key(&k.counters)
                    .arg(id.to_string())
                    .arg(self.time.arg())
                    .arg(JobStatus::InProgress.as_str())
                    .arg(JobStatus::Submitted.as_str())
                    .arg(TOMBSTONE)
                    .arg(&k.queue_prefix),
            )
            .await?;
        match deleted {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(Error::Conflict(format!(
                "job {id} is in progress; delete it once it has finished"
            ))),
        }
    }

    /// Reads the job's status, asks the status machine about cancelling it, and carries the
    /// move out under a compare-and-set on the status read; a job that moved in between is read
    /// again (a few times: each try follows a real change of the job).
    async fn cancel(&self, id: JobId) -> Result<Option<Job>> {
        for _ in 0..CANCEL_TRIES {
            let Some((status, queue)) = self.status_and_queue(id).await? else {
                return Ok(None);
            };
            if status == JobStatus::Cancelled {
                return self.get(id).await;
            }
            let state = JobState {
                status,
                attempts: 0,
                max_attempts: 1,
            };
            if decide(state, Event::Cancel, &self.settings.retry).is_err() {
                // A finished job past its retention counts as gone.
                return match self.get(id).await? {
                    Some(_) => Err(cancel_refused(id, status)),
                    None => Ok(None),
                };
            }
            let k = self.partition_keys(&Partition::of(&queue, id));
            let reply: Value = self
                .conn
                .invoke(
                    SCRIPTS
                        .cancel
                        .key(self.keys.job(id))
                        .key(&k.leased)
                        .key(&k.delayed)
                        .key(&k.scheduled)
                        .key(&k.cancelled)
                        .key(&k.expiry)
                        .key(&k.counters)
                        .arg(id.to_string())
                        .arg(self.time.arg())
                        .arg(duration_millis(self.settings.result_ttl))
                        .arg(status.as_str())
                        .arg(JobStatus::InProgress.as_str())
                        .arg(JobStatus::Cancelled.as_str())
                        .arg(&k.queue_prefix),
                )
                .await?;
            if let Some(fields) = fields_from_reply(reply)? {
                return job_from_fields(id, &fields).map(Some);
            }
        }
        Err(Error::Conflict(format!(
            "job {id} kept changing while it was being cancelled; try again"
        )))
    }

    /// Reads the job, asks the status machine about retrying it, and carries the move out under
    /// a compare-and-set on the status read.
    async fn retry(&self, id: JobId) -> Result<Option<Job>> {
        let Some(job) = self.get(id).await? else {
            return Ok(None);
        };
        let mv = decide(machine_state(&job), Event::Retry, &self.settings.retry)
            .map_err(|_| retry_refused(id, job.status))?;
        let attempts = match mv.attempts {
            Attempts::Reset => 0,
            _ => job.attempts,
        };
        let k = self.partition_keys(&Partition::of(&job.queue, id));
        let reply: Value = self
            .conn
            .invoke(
                SCRIPTS
                    .retry
                    .key(self.keys.job(id))
                    .key(&k.failed)
                    .key(&k.expiry)
                    .key(&k.levels)
                    .key(&k.wake)
                    .arg(id.to_string())
                    .arg(job.status.as_str())
                    .arg(mv.to.as_str())
                    .arg(attempts)
                    .arg(WAKE_CAP)
                    .arg(&k.queue_prefix),
            )
            .await?;
        match fields_from_reply(reply)? {
            Some(fields) => job_from_fields(id, &fields).map(Some),
            // Retried, or deleted, by someone else in between: answer what it is now.
            None => match self.get(id).await? {
                Some(now) => Err(retry_refused(id, now.status)),
                None => Ok(None),
            },
        }
    }

    /// One script call per queue partition; a split queue's counts are the sums over its
    /// partitions.
    async fn stats(&self) -> Result<Vec<QueueStats>> {
        let partitions = self.known_partitions().await?;
        let mut stats: Vec<QueueStats> = Vec::new();
        for partition in partitions.iter() {
            let queue = partition.queue.clone();
            let k = self.partition_keys(partition);
            let sizes: Vec<u64> = self
                .conn
                .invoke(
                    SCRIPTS
                        .counts
                        .key(&k.levels)
                        .key(&k.delayed)
                        .key(&k.leased)
                        .key(&k.complete)
                        .key(&k.failed)
                        .key(&k.cancelled)
                        .key(&k.counters)
                        .arg(&k.queue_prefix),
                )
                .await?;
            let &[
                ready,
                delayed,
                in_progress,
                complete,
                failed,
                cancelled,
                completed_total,
                failed_total,
            ] = &sizes[..]
            else {
                return Err(Error::Internal(format!(
                    "counts script answered {} sizes",
                    sizes.len()
                )));
            };
            // Partitions come sorted by queue: a split queue's are next to each other.
            let entry = match stats.last_mut() {
                Some(last) if last.queue == queue => last,
                _ => {
                    stats.push(QueueStats {
                        queue,
                        counts: StatusCounts::default(),
                        ready: 0,
                        delayed: 0,
                        completed_total: 0,
                        failed_total: 0,
                    });
                    stats.last_mut().expect("just pushed")
                }
            };
            entry.counts.submitted += ready + delayed;
            entry.counts.in_progress += in_progress;
            entry.counts.complete += complete;
            entry.counts.failed += failed;
            entry.counts.cancelled += cancelled;
            entry.ready += ready;
            entry.delayed += delayed;
            entry.completed_total += completed_total;
            entry.failed_total += failed_total;
        }
        Ok(stats)
    }

    async fn ping(&self) -> Result<()> {
        let pong: String = self.conn.query(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(Error::Internal(format!("Redis answered '{pong}' to PING")))
        }
    }
}
