//! [`JobStore`] on Redis: reads, listings, deletion and retention.

use async_trait::async_trait;
use bytes::Bytes;
use redis::Value;

use super::RedisBackend;
use super::codec::{array, job_from_reply, millis};
use super::queue::queue_depth;
use super::scripts::SCRIPTS;
use crate::error::{Error, Result};
use crate::job::{Job, JobId, JobStatus};
use crate::store::{JobStore, ListQuery, StatusCounts};

/// Offsets beyond this are treated as this (there are never that many jobs); it keeps the
/// offset exact through Lua's floating-point numbers.
const MAX_OFFSET: usize = 1 << 40;

/// Most expired jobs one purge script call removes; `purge_expired` loops until done.
const PURGE_CHUNK: usize = 1000;

impl RedisBackend {
    /// Whether a finished job filed in the expiry index at `expires_at` (ms) is past retention.
    fn is_expired(&self, expires_at: Option<f64>) -> bool {
        expires_at.is_some_and(|at| at as i64 <= millis(self.clock.now()))
    }
}

#[async_trait]
impl JobStore for RedisBackend {
    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let (fields, expires_at): (Value, Option<f64>) = self
            .run(
                redis::pipe()
                    .atomic()
                    .hgetall(k.job(id))
                    .zscore(&k.expiry, id.to_string())
                    .query_async(&mut conn),
            )
            .await?;
        if self.is_expired(expires_at) {
            return Ok(None);
        }
        job_from_reply(fields)
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Job>> {
        let k = &self.keys;
        // One flag per status, in `JobStatus::ALL` order (the order the script reads them).
        let wanted: String = JobStatus::ALL
            .iter()
            .map(|s| {
                if query.status.is_none_or(|q| q == *s) {
                    '1'
                } else {
                    '0'
                }
            })
            .collect();
        let mut invocation = SCRIPTS.list.prepare_invoke();
        invocation
            .key(&k.expiry)
            .key(&k.leased)
            .key(&k.ready)
            .key(&k.returned)
            .key(&k.delayed)
            .key(&k.complete)
            .key(&k.failed)
            .arg(&k.job_prefix)
            .arg(millis(self.clock.now()))
            .arg(query.offset.min(MAX_OFFSET))
            .arg(query.page_size())
            .arg(wanted);
        let mut conn = self.conn.clone();
        let reply: Value = self.run(invocation.invoke_async(&mut conn)).await?;
        array(reply)?
            .into_iter()
            .filter_map(|fields| job_from_reply(fields).transpose())
            .collect()
    }

    async fn delete(&self, id: JobId) -> Result<bool> {
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let deleted: i64 = self
            .run(
                SCRIPTS
                    .delete
                    .key(k.job(id))
                    .key(k.result(id))
                    .key(&k.ready)
                    .key(&k.delayed)
                    .key(&k.returned)
                    .key(&k.expiry)
                    .key(&k.complete)
                    .key(&k.failed)
                    .arg(id.to_string())
                    .arg(millis(self.clock.now()))
                    .arg(JobStatus::InProgress.as_str())
                    .arg(JobStatus::Submitted.as_str())
                    .invoke_async(&mut conn),
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

    async fn result(&self, id: JobId) -> Result<Option<Bytes>> {
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let (result, expires_at): (Option<Vec<u8>>, Option<f64>) = self
            .run(
                redis::pipe()
                    .atomic()
                    .get(k.result(id))
                    .zscore(&k.expiry, id.to_string())
                    .query_async(&mut conn),
            )
            .await?;
        if self.is_expired(expires_at) {
            return Ok(None);
        }
        Ok(result.map(Bytes::from))
    }

    async fn counts(&self) -> Result<StatusCounts> {
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.read_queue_places(&mut pipe);
        pipe.zcard(&k.complete).zcard(&k.failed);
        let (never_leased, returned, delayed, leased, complete, failed) =
            self.run(pipe.query_async(&mut conn)).await?;
        // Waiting jobs (ready or delayed) are `submitted`, leased ones `in progress`.
        let depth = queue_depth((never_leased, returned, delayed, leased));
        Ok(StatusCounts {
            submitted: depth.ready + depth.delayed,
            in_progress: depth.leased,
            complete,
            failed,
        })
    }

    async fn purge_expired(&self) -> Result<u64> {
        let k = &self.keys;
        let now = millis(self.clock.now());
        let mut purged = 0;
        loop {
            let mut conn = self.conn.clone();
            let n: u64 = self
                .run(
                    SCRIPTS
                        .purge_expired
                        .key(&k.expiry)
                        .key(&k.complete)
                        .key(&k.failed)
                        .arg(&k.job_prefix)
                        .arg(&k.result_prefix)
                        .arg(now)
                        .arg(PURGE_CHUNK)
                        .invoke_async(&mut conn),
                )
                .await?;
            purged += n;
            if n < PURGE_CHUNK as u64 {
                return Ok(purged);
            }
        }
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let pong: String = self.run(redis::cmd("PING").query_async(&mut conn)).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(Error::Internal(format!("Redis answered '{pong}' to PING")))
        }
    }
}
