//! The [`Renderer`] trait: what a job's work is.

use std::sync::Arc;

use async_trait::async_trait;

use crate::dataset::DataSet;
use crate::error::Result;
use crate::job::JobParams;

/// Turns a data set and a job's parameters into a result (PNG bytes).
///
/// Implementors write both methods; the same renderer validates parameters when a job is
/// submitted and renders it when a worker runs it, so a job that was accepted never fails for
/// parameters the renderer would have refused.
///
/// # Contract
///
/// - `validate` is cheap and pure: it looks only at the parameters and answers
///   [`Error::InvalidParams`](crate::Error::InvalidParams) with a message a person can act on.
/// - `render` never panics on any data set; it answers [`Error::NoData`](crate::Error::NoData)
///   for an empty one and [`Error::Render`](crate::Error::Render) when the parameters select
///   nothing drawable. Both are permanent: the job fails without retries.
/// - CPU-heavy work belongs on a blocking thread (`tokio::task::spawn_blocking`); `render` is async
///   so that a cheap renderer pays no thread hop.
#[async_trait]
pub trait Renderer: Send + Sync {
    /// Checks parameters at submit time.
    fn validate(&self, params: &JobParams) -> Result<()>;

    /// Renders the result of a job.
    async fn render(&self, data: Arc<DataSet>, params: &JobParams) -> Result<Vec<u8>>;

    /// Whether `render` reads the data set. A renderer that works from its parameters alone
    /// returns `false`, and workers skip loading the data set for it. Defaults to `true`.
    fn needs_data(&self) -> bool {
        true
    }
}
