//! [`JobStore`] on Redis: reads, listings, deletion and retention.

use async_trait::async_trait;
use bytes::Bytes;
use redis::Value;

use super::RedisBackend;
use super::codec::{array, job_from_reply, millis};
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
        let mut invocation = SCRIPTS.list.prepare_invoke();
        invocation.key(&k.expiry).key(&k.leased);
        // `in progress` jobs have no index of their own: the leased set is one.
        for status in JobStatus::ALL {
            if status != JobStatus::InProgress && query.status.is_none_or(|s| s == status) {
                invocation.key(k.index(status));
            }
        }
        let in_progress = query.status.is_none_or(|s| s == JobStatus::InProgress);
        invocation
            .arg(&k.job_prefix)
            .arg(millis(self.clock.now()))
            .arg(query.offset.min(MAX_OFFSET))
            .arg(query.page_size())
            .arg(if in_progress { "1" } else { "0" });
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
                    .key(&k.expiry)
                    .key(k.index(JobStatus::Submitted))
                    .key(k.index(JobStatus::Complete))
                    .key(k.index(JobStatus::Failed))
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
        let (submitted, in_progress, complete, failed): (u64, u64, u64, u64) = self
            .run(
                redis::pipe()
                    .atomic()
                    .zcard(k.index(JobStatus::Submitted))
                    .zcard(k.index(JobStatus::InProgress))
                    .zcard(k.index(JobStatus::Complete))
                    .zcard(k.index(JobStatus::Failed))
                    .query_async(&mut conn),
            )
            .await?;
        Ok(StatusCounts {
            submitted,
            in_progress,
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
                        .key(k.index(JobStatus::Complete))
                        .key(k.index(JobStatus::Failed))
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
