//! Stores: [`JobStore`] for jobs and results, [`DataStore`] for the loaded data set,
//! [`ImageStore`] for the one stored image.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::dataset::{DataSet, Record};
use crate::error::Result;
use crate::job::{Job, JobId, JobStatus};

/// The most jobs one [`JobStore::list`] call returns.
pub const MAX_PAGE_SIZE: usize = 1000;

/// The page size when a caller does not ask for one.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// Which jobs to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListQuery {
    /// Only jobs in this status; all when `None`.
    pub status: Option<JobStatus>,
    /// How many of the newest matching jobs to skip.
    pub offset: usize,
    /// Page size; clamped to [`MAX_PAGE_SIZE`].
    pub limit: usize,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            status: None,
            offset: 0,
            limit: DEFAULT_PAGE_SIZE,
        }
    }
}

impl ListQuery {
    /// The first page of jobs in `status`.
    pub fn with_status(status: JobStatus) -> Self {
        ListQuery {
            status: Some(status),
            ..Self::default()
        }
    }

    /// The page size actually used: `limit` clamped to `1..=MAX_PAGE_SIZE`.
    pub fn page_size(&self) -> usize {
        self.limit.clamp(1, MAX_PAGE_SIZE)
    }
}

/// How many jobs are in each status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Jobs in `submitted`.
    pub submitted: u64,
    /// Jobs in `in progress`.
    pub in_progress: u64,
    /// Jobs in `complete`.
    pub complete: u64,
    /// Jobs in `failed`.
    pub failed: u64,
}

impl StatusCounts {
    /// The count for one status.
    pub fn get(&self, status: JobStatus) -> u64 {
        match status {
            JobStatus::Submitted => self.submitted,
            JobStatus::InProgress => self.in_progress,
            JobStatus::Complete => self.complete,
            JobStatus::Failed => self.failed,
        }
    }
}

/// Where jobs and their results are kept.
///
/// Jobs are created and moved through their statuses by the [`Queue`](crate::Queue); this trait
/// reads them, deletes them and keeps storage bounded.
///
/// # Contract
///
/// - `list` returns newest first (by submission order), at most [`ListQuery::page_size`] jobs.
/// - `delete` removes the job, its result and its place in the queue as one step; deleting a job
///   that is `in progress` is refused with [`Error::Conflict`](crate::Error::Conflict).
/// - Finished jobs and their results disappear once older than the retention setting
///   ([`QueueSettings::result_ttl`](crate::QueueSettings)), from lookups and from listings.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// The job with this id, if it exists.
    async fn get(&self, id: JobId) -> Result<Option<Job>>;

    /// A page of jobs, newest first.
    async fn list(&self, query: &ListQuery) -> Result<Vec<Job>>;

    /// Deletes a job and its result; `false` when there was no such job.
    async fn delete(&self, id: JobId) -> Result<bool>;

    /// The stored result (PNG bytes) of a complete job.
    async fn result(&self, id: JobId) -> Result<Option<Bytes>>;

    /// How many jobs are in each status.
    async fn counts(&self) -> Result<StatusCounts>;

    /// Deletes finished jobs past retention, with their results, and takes them out of every
    /// index; returns how many went. Reads already hide such jobs: this frees what they hold.
    async fn purge_expired(&self) -> Result<u64>;

    /// Checks that the backend answers (for readiness probes).
    async fn ping(&self) -> Result<()>;
}

/// Where the loaded data set is kept.
///
/// # Contract
///
/// - `replace` swaps the whole data set in one step: readers see the old set or the new one,
///   never a mix, and [`version`](DataStore::version) changes with every replace and clear.
/// - Records keep the order they were loaded in; `page` reads a slice of that order without
///   reading the rest.
#[async_trait]
pub trait DataStore: Send + Sync {
    /// Replaces the data set; returns how many records it now holds.
    async fn replace(&self, data: DataSet) -> Result<u64>;

    /// A number that changes whenever the data set does; `0` when nothing was ever loaded.
    /// Workers cache the parsed data set under it.
    async fn version(&self) -> Result<u64>;

    /// How many records are loaded.
    async fn len(&self) -> Result<u64>;

    /// Whether no record is loaded.
    async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// Up to `limit` records, skipping the first `start`.
    async fn page(&self, start: u64, limit: u64) -> Result<Vec<Record>>;

    /// One record by its id. (Named `record`, not `get`, so it never clashes with
    /// [`JobStore::get`] on a backend that implements both.)
    async fn record(&self, id: &str) -> Result<Option<Record>>;

    /// Every record id, in load order.
    async fn ids(&self) -> Result<Vec<String>>;

    /// The whole data set with its version, for rendering. Callers cache it under the version.
    async fn load(&self) -> Result<(u64, Arc<DataSet>)>;

    /// Removes the data set; `false` when none was loaded.
    async fn clear(&self) -> Result<bool>;
}

/// Where the one image rendered by `POST /image` is kept, apart from the raw data.
#[async_trait]
pub trait ImageStore: Send + Sync {
    /// Stores (or replaces) the image.
    async fn put_image(&self, png: Bytes) -> Result<()>;

    /// The stored image, if any.
    async fn get_image(&self) -> Result<Option<Bytes>>;

    /// Removes the image; `false` when there was none.
    async fn delete_image(&self) -> Result<bool>;
}
