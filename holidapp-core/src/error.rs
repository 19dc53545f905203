//! The one error type of the core layer.

use crate::machine::JobStatus;

/// Everything that can go wrong in `holidapp-core`.
///
/// The variants say *what kind* of failure happened, not how to present it: the HTTP adapter maps
/// each variant to a status code in one place, and the processing step uses
/// [`Error::is_transient`] to decide between a retry and an immediate failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Parameters the job's kind refuses (or another value a caller gave, such as a queue name);
    /// the message says which and why.
    #[error("invalid job parameters: {0}")]
    InvalidParams(String),
    /// Parameters that do not have the shape of the kind's parameter type (a missing field, a
    /// wrong type, an unknown field); the message is serde's.
    #[error("the parameters do not have the expected shape: {0}")]
    ParamsShape(String),
    /// A job of a kind no renderer is registered for.
    #[error("unknown job kind '{kind}'; the known kinds are: {}", known.join(", "))]
    UnknownKind {
        /// The kind asked for.
        kind: String,
        /// The kinds that are registered.
        known: Vec<String>,
    },
    /// Input meant to be JSON that is not (a syntax error, a number out of range).
    #[error("not valid JSON: {0}")]
    MalformedJson(String),
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
    /// A quota is full (a queue's waiting jobs, its results' bytes): nothing was stored. Trying
    /// again later, once workers have drained the queue or retention has freed results, may work.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The loaded data set is larger than this process may hold (`HOLIDAPP_DATA_MAX_RECORDS`).
    #[error("the data set is too large: {0}")]
    DataTooLarge(String),
    /// An event the status machine does not allow in the job's status.
    #[error("a job that is '{from}' cannot take the event {event}")]
    IllegalTransition {
        /// The status the job had.
        from: JobStatus,
        /// The event that was refused.
        event: String,
    },
    /// The caller's lease is gone: it expired and was taken over, or the job was deleted.
    /// A worker that gets this must drop the job without touching it again.
    #[error("the lease on this job is no longer held")]
    LeaseLost,
    /// The backend (Redis) cannot be reached right now. Transient.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A failure a kind's render expects to pass (a service it calls is down, a rate limit):
    /// the attempt is retried with backoff, up to the job's attempt limit.
    #[error("transient failure: {0}")]
    Transient(String),
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
    /// Backend outages, a kind's transient failures and data-source hiccups are transient; bad
    /// parameters, missing data and render failures fail a job at once.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_) | Error::Transient(_) | Error::Source(_)
        )
    }

    /// The same error, for one more caller: every call of a batch that failed as a whole gets its
    /// own copy. Outages and lost leases keep their variant; anything else becomes
    /// [`Error::Internal`] with the same text.
    pub fn duplicate(&self) -> Error {
        match self {
            Error::Unavailable(message) => Error::Unavailable(message.clone()),
            Error::LeaseLost => Error::LeaseLost,
            other => Error::Internal(other.to_string()),
        }
    }
}

/// Shorthand for results of the core layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;
