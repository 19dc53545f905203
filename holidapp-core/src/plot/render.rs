//! The plot kind: [`PlotRenderer`] draws a PNG from the loaded data set with plotters, using a
//! font embedded in the crate (no system font is needed).
//!
//! # Parameters
//!
//! `start` and `end` are years, integers from -5000 to 9999, with `start <= end`; every kind
//! of plot keeps only what falls in `[start, end]`. `plot` holds the options below; an unknown
//! option, or one that belongs to another kind, is refused with the list of valid ones.
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
//! `year` when a record has a year in it (NASA's meteorite data), else there is none. A year is read from a date
//! string (`"2009-07-20"`, `"1880-01-01T00:00:00.000"`), a year string (`"1999"`) or an integral
//! number.
//!
//! **Which records count.** A histogram counts the records whose `field` holds a year in the
//! range; its axis spans the whole range asked for. A categories or scatter
//! plot with a `year_field` (named, or found as above) keeps only the records whose year is in
//! the range: a record without that field is left out. When the data set has no year field at
//! all and none is named (the bundled meteorite sample), every record is kept, whatever the
//! range.
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
//! An empty data set is [`Error::NoData`]. Parameters that select nothing drawable give
//! [`Error::Render`] saying so, e.g. "no records with field date_approved_reserved between 1900
//! and 1910". Both are permanent: retrying the job cannot help.

use std::sync::Arc;

use async_trait::async_trait;

use super::aggregate::{self, YearFilter};
use super::columns::{ColumnCache, Columns};
use super::dataset::DataSet;
use super::draw;
use super::options::{PlotKind, PlotParams, PlotSpec};
use super::store::DataStore;
use crate::error::{Error, Result};
use crate::kind::{Context, Png, Renderer};

/// The loaded data set, kept parsed in memory under the store's
/// [`version`](DataStore::version) and reloaded only when it changes, so that jobs (and
/// `POST /image`) do not re-read 45,000 records each.
pub struct DataCache {
    store: Arc<dyn DataStore>,
    /// The most records this process holds (`HOLIDAPP_DATA_MAX_RECORDS`); `None`: no limit.
    max_records: Option<u64>,
    // A tokio mutex: held across the await that loads the data set, so concurrent renders that
    // find the cache stale load it once, not once each.
    cached: tokio::sync::Mutex<Option<(u64, Arc<DataSet>)>>,
}

impl std::fmt::Debug for DataCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataCache").finish_non_exhaustive()
    }
}

impl DataCache {
    /// A cache of the data set in `store`, empty until first used.
    pub fn new(store: Arc<dyn DataStore>) -> Self {
        DataCache {
            store,
            max_records: None,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A cache that refuses to hold a data set of more than `max` records: reading a larger one
    /// is [`Error::DataTooLarge`], before any record is read.
    pub fn with_max_records(mut self, max: u64) -> Self {
        self.max_records = Some(max);
        self
    }

    /// The store it reads.
    pub fn store(&self) -> &Arc<dyn DataStore> {
        &self.store
    }

    /// The current data set, from the cache when the store's version is unchanged;
    /// [`Error::NoData`] when none (or an empty one) is loaded, [`Error::DataTooLarge`] when it
    /// holds more records than this cache may.
    pub async fn current(&self) -> Result<Arc<DataSet>> {
        let version = self.store.version().await?;
        if version == 0 {
            return Err(Error::NoData);
        }
        let mut cached = self.cached.lock().await;
        if let Some((_, data)) = cached.as_ref().filter(|(v, _)| *v == version) {
            return Ok(Arc::clone(data));
        }
        if let Some(max) = self.max_records {
            let len = self.store.len().await?;
            if len > max {
                // The old set is no longer the current one: let it go.
                *cached = None;
                return Err(Error::DataTooLarge(format!(
                    "the loaded data set has {len} records; this process holds at most {max} \
                     (HOLIDAPP_DATA_MAX_RECORDS)"
                )));
            }
        }
        let (version, data) = self.store.load().await?;
        if data.is_empty() {
            return Err(Error::NoData);
        }
        *cached = Some((version, Arc::clone(&data)));
        Ok(data)
    }
}

/// The job kind `plot`: histograms, category counts and scatter plots of the loaded data set,
/// as PNG.
///
/// It reads the data set through a [`DataCache`], and keeps the columns it has read from it
/// (see the [module docs](super)). Clones share both; the embedded font is registered with
/// plotters on first use.
#[derive(Clone, Debug)]
pub struct PlotRenderer {
    data: Arc<DataCache>,
    columns: Arc<ColumnCache>,
    /// One permit per render that may run at once on the blocking threads (one per CPU core):
    /// a render that never ends cannot be stopped, only kept from piling up.
    renders: Arc<tokio::sync::Semaphore>,
}

impl PlotRenderer {
    /// A plot renderer drawing the data set of `store`.
    pub fn new(store: Arc<dyn DataStore>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PlotRenderer {
            data: Arc::new(DataCache::new(store)),
            columns: Arc::new(ColumnCache::default()),
            renders: Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }

    /// The same renderer refusing data sets of more than `max` records (see
    /// [`DataCache::with_max_records`]).
    pub fn with_max_records(self, max: u64) -> Self {
        let store = Arc::clone(self.data.store());
        PlotRenderer {
            data: Arc::new(DataCache::new(store).with_max_records(max)),
            ..self
        }
    }

    /// The cache of the data set it draws.
    pub fn data(&self) -> &Arc<DataCache> {
        &self.data
    }

    /// Renders a checked plot on the calling thread, reading columns through this renderer's
    /// cache. CPU work: call it from a blocking context; [`PlotRenderer::draw`] is this on a
    /// blocking thread.
    pub fn render_blocking(&self, data: &Arc<DataSet>, spec: &PlotSpec) -> Result<Vec<u8>> {
        render_columns(&Columns::cached(data, &self.columns), spec)
    }

    /// Draws `params` over the current data set, on a blocking thread: at most one render per
    /// CPU core at once, the others waiting their turn (a wait a time limit can end).
    pub async fn draw(&self, params: &PlotParams) -> Result<Png> {
        self.draw_reporting(params, None).await
    }

    /// [`draw`](Self::draw), reporting its phases to a job's context: `loading data`, `waiting
    /// for a render slot`, `drawing`. A job cancelled before its drawing starts is not drawn.
    async fn draw_reporting(&self, params: &PlotParams, ctx: Option<&Context>) -> Result<Png> {
        let report = |percent, phase: &str| {
            if let Some(ctx) = ctx {
                ctx.progress(percent, phase);
            }
        };
        let spec = PlotSpec::from_params(params)?;
        report(0.0, "loading data");
        let data = self.data.current().await?;
        report(20.0, "waiting for a render slot");
        let permit = Arc::clone(&self.renders)
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("the render slots are closed".into()))?;
        let renderer = self.clone();
        let ctx = ctx.cloned();
        let png = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if let Some(ctx) = &ctx {
                if ctx.is_cancelled() {
                    return Err(Error::Render("the job was cancelled".into()));
                }
                ctx.progress(40.0, "drawing");
            }
            renderer.render_blocking(&data, &spec)
        })
        .await
        .map_err(|e| Error::Internal(format!("the rendering task failed: {e}")))??;
        Ok(Png(png.into()))
    }

    /// A plot of the whole current data set: a histogram of its year field over the years it
    /// holds, or, when it has no year field, counts of its category field.
    pub async fn default_params(&self) -> Result<PlotParams> {
        let data = self.data.current().await?;
        let columns = Columns::cached(&data, &self.columns);
        let span = aggregate::default_year_field(&columns)
            .and_then(|field| aggregate::year_span(&columns.years(field)));
        Ok(match span {
            Some((first, last)) => PlotParams::new(first.to_string(), last.to_string()),
            None => PlotParams::new(super::YEAR_MIN.to_string(), super::YEAR_MAX.to_string())
                .with_option("kind", "categories"),
        })
    }
}

#[async_trait]
impl Renderer for PlotRenderer {
    const KIND: &'static str = "plot";
    /// The course's clients read `start` and `end` at the top level of a job.
    const PARAMS_AT_TOP_LEVEL: bool = true;
    type Params = PlotParams;
    type Output = Png;

    fn validate(&self, params: &PlotParams) -> Result<()> {
        PlotSpec::from_params(params).map(|_| ())
    }

    async fn render(&self, params: PlotParams, ctx: &Context) -> Result<Png> {
        self.draw_reporting(&params, Some(ctx)).await
    }
}

/// Renders a checked plot of `data` to PNG bytes on the calling thread, reading every field
/// afresh (CPU work: call it from a blocking context).
pub fn render_png(data: &DataSet, spec: &PlotSpec) -> Result<Vec<u8>> {
    render_columns(&Columns::uncached(data), spec)
}

fn render_columns(columns: &Columns<'_>, spec: &PlotSpec) -> Result<Vec<u8>> {
    if columns.data().is_empty() {
        return Err(Error::NoData);
    }
    let (start, end) = (spec.start, spec.end);
    let nothing =
        |what: &str| Error::Render(format!("no records with {what} between {start} and {end}"));
    let year_filter = |named: &Option<String>| match named
        .as_deref()
        .or_else(|| aggregate::default_year_field(columns))
    {
        Some(field) => YearFilter::Years(columns.years(field), start, end),
        None => YearFilter::All,
    };
    let range = |filter: &YearFilter| match filter {
        YearFilter::All => String::new(),
        YearFilter::Years(..) => format!(", {start}\u{2013}{end}"),
    };
    let title = |default: String| spec.title.clone().unwrap_or(default);
    match &spec.kind {
        PlotKind::Histogram { field } => {
            let field = field.as_deref().unwrap_or_else(|| {
                aggregate::default_year_field(columns).unwrap_or(aggregate::YEAR_FIELDS[0])
            });
            let counts = aggregate::counts_per_year(&columns.years(field), start, end)
                .ok_or_else(|| nothing(&format!("field {field}")))?;
            draw::histogram(
                spec.width,
                spec.height,
                &title(format!("Records per year of {field}, {start}\u{2013}{end}")),
                &format!("year of {field}"),
                start,
                &counts,
            )
        }
        PlotKind::Categories {
            field,
            year_field,
            top,
        } => {
            let field = field.as_deref().unwrap_or_else(|| {
                aggregate::default_category_field(columns).unwrap_or(aggregate::CATEGORY_FIELDS[0])
            });
            let filter = year_filter(year_field);
            let counts = aggregate::counts_per_category(&columns.texts(field), &filter, *top);
            if counts.is_empty() {
                return Err(nothing(&format!("field {field}")));
            }
            let title = title(format!("Records per {field}{}", range(&filter)));
            draw::categories(spec.width, spec.height, &title, field, &counts)
        }
        PlotKind::Scatter { x, y, year_field } => {
            let filter = year_filter(year_field);
            let points = aggregate::points(&columns.numbers(x), &columns.numbers(y), &filter);
            if points.is_empty() {
                return Err(nothing(&format!("numeric fields {x} and {y}")));
            }
            let title = title(format!("{y} against {x}{}", range(&filter)));
            draw::scatter(spec.width, spec.height, &title, (x, y), &points)
        }
    }
}
