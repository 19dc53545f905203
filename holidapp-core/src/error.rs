//! The one error type of the core layer.

use crate::job::JobStatus;

/// Everything that can go wrong in `holidapp-core`.
///
/// The variants say *what kind* of failure happened, not how to present it: the HTTP adapter maps
/// each variant to a status code in one place, and the processing step uses
/// [`Error::is_transient`] to decide between a retry and an immediate failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Job parameters the renderer refuses; the message says which field and why.
    #[error("invalid job parameters: {0}")]
    InvalidParams(String),
    /// A data set that cannot be parsed or is not of a known format.
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// No data set is loaded, so there is nothing to render.
    #[error("no data is loaded; load a data set with POST /data first")]
    NoData,
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state (e.g. deleting a job that is running).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A status change the job status machine does not allow.
    #[error("illegal status change from '{from}' to '{to}'")]
    IllegalTransition {
        /// The status the job had.
        from: JobStatus,
        /// The status that was asked for.
        to: JobStatus,
    },
    /// The caller's lease is gone: it expired and was taken over, or the job was deleted.
    /// A worker that gets this must drop the job without touching it again.
    #[error("the lease on this job is no longer held")]
    LeaseLost,
    /// The backend (Redis) cannot be reached right now. Transient.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// Rendering failed for a reason retrying will not fix.
    #[error("rendering failed: {0}")]
    Render(String),
    /// Loading a data set from its configured source failed.
    #[error("data source: {0}")]
    Source(String),
    /// A bug or an unexpected answer from a backend. Never shown to an API client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether trying the same operation again later may succeed.
    ///
    /// Only backend outages and data-source hiccups are transient; bad parameters, missing data
    /// and render failures fail a job at once.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Source(_))
    }
}

/// Shorthand for results of the core layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;
