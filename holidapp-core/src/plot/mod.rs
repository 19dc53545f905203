//! The course's product, one job kind on the engine's public API: load a data set (HGNC genes,
//! meteorite landings), submit jobs that ask for plots of it, and fetch the PNGs.
//!
//! - [`PlotRenderer`] is the kind `plot` ([`Renderer`](crate::Renderer)): its parameters are
//!   [`PlotParams`] (`{"start": "1990", "end": "2020", "plot": {...}}`), its result a PNG. It
//!   reads the loaded data set through a [`DataCache`], reloaded only when the data set changes.
//! - [`DataStore`] keeps the loaded data set and [`ImageStore`] the one image `POST /image`
//!   renders; [`MemoryPlotStore`] keeps both in memory, and [`redis`] on Redis (feature
//!   `redis`).
//! - [`parse`] reads the supported data set formats and fetches a data set from its configured
//!   source; [`dataset`] holds records and data sets.
//! - [`Plots`] holds the product's use cases, each one call: load a data set, render and store
//!   the image, read it back.
//!
//! Nothing in the engine depends on this module: it uses the engine's public API only, as a kind
//! of your own would.
//!
//! # Parameters
//!
//! `start` and `end` are years, integers from -5000 to 9999 (given as JSON integers, also written
//! `1990.0`, or as strings of their digits, `"1990"`: no `+`, no leading zero, no space), with
//! `start <= end`; every kind of plot keeps only what falls in `[start, end]`. `plot` holds the
//! options below (`null` for none); an unknown option, or one that belongs to another kind (even
//! as `null`), is refused with the list of valid ones. An option of the kind itself may be `null`,
//! which is its default.
//!
//! | option | kinds | default | meaning |
//! |---|---|---|---|
//! | `kind` | all | `"histogram"` | `"histogram"`, `"categories"` or `"scatter"` |
//! | `field` | histogram | the year field (below) | the date field whose years are counted |
//! | `field` | categories | `locus_group` if a record has a value in it, else `recclass` | the field whose values are counted |
//! | `year_field` | categories, scatter | the year field (below) | the field whose year must be in the range |
//! | `top` | categories | 20 | categories shown by name (1 to 50); the rest are summed in one bar, "(N others)" |
//! | `x`, `y` | scatter | `reclong`, `reclat` | numeric fields (numbers, or strings that hold one); records with a value beyond ±1e300 are left out |
//! | `width`, `height` | all | 800, 600 | image size in pixels, 100 to 4000 each |
//! | `title` | all | names the fields and the range | at most 200 characters |
//!
//! **The year field** is `date_approved_reserved` when a record has a year in it (HGNC), else
//! `year` when a record has a year in it (NASA's meteorite data), else there is none. A year is
//! read from a date string (`"2009-07-20"`, `"1880-01-01T00:00:00.000"`), a year string
//! (`"1999"`) or an integral number.
//!
//! **Which records count.** A histogram counts the records whose `field` holds a year in the
//! range; its axis spans the whole range asked for. A categories or scatter plot with a
//! `year_field` (named, or found as above) keeps only the records whose year is in the range: a
//! record without that field is left out. When the data set has no year field at all and none is
//! named (the bundled meteorite sample), every record is kept, whatever the range.
//!
//! # Speed
//!
//! Looking fields up record by record costs more than drawing: for 45,000 records, tens of
//! milliseconds against a few for the plot and its PNG. A [`PlotRenderer`] therefore keeps the
//! fields it has read as columns, for as long as the same data set (the same `Arc`) is
//! rendered again, as a worker does job after job; a new data set starts afresh.
//! [`render_png`] keeps nothing.
//!
//! # Failures
//!
//! No data set loaded, or an empty one, is [`Error::NoData`]. Parameters that select nothing
//! drawable give [`Error::Render`] saying so, e.g. "no records with field
//! date_approved_reserved between 1900 and 1910". Both are permanent: retrying the job cannot
//! help.

mod aggregate;
mod bounded;
mod columns;
pub mod dataset;
mod draw;
mod options;
pub mod parse;
#[cfg(feature = "redis")]
pub mod redis;
mod render;
pub mod store;

use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};

pub use dataset::{DataSet, Record};
pub use draw::BAR_RGB;
pub use options::{
    PlotKind, PlotParams, PlotSpec, SIZE_MAX, SIZE_MIN, TITLE_MAX, TOP_DEFAULT, TOP_MAX, YEAR_MAX,
    YEAR_MIN,
};
pub use render::{DataCache, PlotRenderer, render_png};
pub use store::{DataStore, ImageStore, MemoryPlotStore};

/// A data set sent to [`Plots::load`].
#[derive(Clone, Debug, PartialEq)]
pub enum DataBody {
    /// None: load the configured source.
    Source,
    /// A JSON document: the HGNC complete set or the meteorite landings (an object; a plain
    /// array of records is refused: it is loaded as text).
    Json(Bytes),
    /// Text in any supported format (HGNC TSV, or JSON sent as text).
    Text(Bytes),
}

/// The plot product's use cases over its stores: load the data set, render the stored image,
/// and read both back.
///
/// Cheap to clone: clones share the stores and the renderer's caches.
#[derive(Clone)]
pub struct Plots {
    renderer: PlotRenderer,
    images: Arc<dyn ImageStore>,
    source: String,
    limits: parse::DataLimits,
    /// Held while a data set loads: one load at a time, so two large bodies never sit in memory
    /// together.
    loading: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Plots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plots")
            .field("source", &self.source)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Plots {
    /// The product over a data store and an image store, loading the bundled HGNC sample when
    /// asked to load its source.
    pub fn new(data: Arc<dyn DataStore>, images: Arc<dyn ImageStore>) -> Self {
        Plots {
            renderer: PlotRenderer::new(data),
            images,
            source: parse::BUNDLED_HGNC.to_owned(),
            limits: parse::DataLimits::default(),
            loading: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The same product loading and rendering data sets within `limits` (the renderer refuses
    /// to hold a data set of more records than they allow).
    pub fn with_limits(mut self, limits: parse::DataLimits) -> Self {
        self.renderer =
            PlotRenderer::new(Arc::clone(self.data())).with_max_records(limits.max_records);
        self.limits = limits;
        self
    }

    /// The limits data sets are loaded within.
    pub fn limits(&self) -> &parse::DataLimits {
        &self.limits
    }

    /// The product with both stores in this process's memory.
    pub fn in_memory() -> Self {
        let store = Arc::new(MemoryPlotStore::new());
        Plots::new(store.clone(), store)
    }

    /// The same product loading `source` when asked to load its source (`DATA_SOURCE`: a file
    /// path, an http(s) URL, `bundled:hgnc` or `bundled:meteorites`).
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// The renderer of the kind `plot`, sharing this product's data set cache: register it with
    /// [`Kinds::with`](crate::Kinds::with).
    pub fn renderer(&self) -> PlotRenderer {
        self.renderer.clone()
    }

    /// The data set store.
    pub fn data(&self) -> &Arc<dyn DataStore> {
        self.renderer.data().store()
    }

    /// The image store.
    pub fn images(&self) -> &Arc<dyn ImageStore> {
        &self.images
    }

    /// Where [`DataBody::Source`] loads from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Parses a data set and makes it the loaded one; answers how many records it holds.
    ///
    /// JSON that does not parse is [`Error::MalformedJson`]; anything else that is not a data
    /// set of a known format is [`Error::InvalidData`]; a data set over the limits is
    /// [`Error::DataTooLarge`]; a source that cannot be read is [`Error::Source`]. One load runs
    /// at a time: another one meanwhile is [`Error::Conflict`]. Parsing runs on a blocking
    /// thread.
    pub async fn load(&self, body: DataBody) -> Result<u64> {
        let Ok(_loading) = self.loading.try_lock() else {
            return Err(Error::Conflict(
                "a data set is being loaded; try again once that load has finished".into(),
            ));
        };
        let limits = self.limits;
        let data = match body {
            DataBody::Source => parse::load_source(&self.source, &limits).await?,
            DataBody::Json(bytes) => {
                off_runtime(move || parse::parse_json_object(&bytes, &limits)).await?
            }
            DataBody::Text(bytes) => {
                off_runtime(move || parse::parse_with(&bytes, &limits)).await?
            }
        };
        self.data().replace(data).await
    }

    /// Renders `params` (or, with none, a plot of the whole data set: see
    /// [`PlotRenderer::default_params`]) over the loaded data set and stores it as the image,
    /// replacing the stored one. Answers its size in bytes.
    pub async fn render_image(&self, params: Option<PlotParams>) -> Result<usize> {
        let params = match params {
            Some(params) => {
                PlotSpec::from_params(&params)?;
                params
            }
            None => self.renderer.default_params().await?,
        };
        let png = self.renderer.draw(&params).await?.0;
        let bytes = png.len();
        self.images.put_image(png).await?;
        Ok(bytes)
    }
}

/// Runs CPU work (parsing a data set of up to hundreds of MiB) on a blocking thread, so it does
/// not stall the runtime's other tasks.
async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("a parsing task failed: {e}")))?
}
