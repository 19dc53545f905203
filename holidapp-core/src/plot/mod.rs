//! The built-in plot renderer: [`PlotRenderer`] draws a PNG from the loaded data set with
//! plotters, using a font embedded in the crate (no system font is needed).
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
//! range; its axis runs from the first to the last year that has one. A categories or scatter
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

mod aggregate;
mod columns;
mod draw;
mod options;

use std::sync::Arc;

use async_trait::async_trait;

use crate::dataset::DataSet;
use crate::error::{Error, Result};
use crate::job::JobParams;
use crate::render::Renderer;

use aggregate::YearFilter;
use columns::{ColumnCache, Columns};

pub use draw::BAR_RGB;
pub use options::{
    PlotKind, PlotSpec, SIZE_MAX, SIZE_MIN, TITLE_MAX, TOP_DEFAULT, TOP_MAX, YEAR_MAX, YEAR_MIN,
};

/// The built-in [`Renderer`]: histograms, category counts and scatter plots as PNG.
///
/// Clones share one cache of the columns read from the last data set rendered (see the
/// [module docs](self)); the embedded font is registered with plotters on first use.
#[derive(Clone, Debug, Default)]
pub struct PlotRenderer {
    columns: Arc<ColumnCache>,
}

impl PlotRenderer {
    /// A plot renderer with an empty column cache.
    pub fn new() -> Self {
        PlotRenderer::default()
    }

    /// Renders a checked plot on the calling thread, reading columns through this renderer's
    /// cache. CPU work: call it from a blocking context; [`Renderer::render`] is this on a
    /// blocking thread.
    pub fn render_blocking(&self, data: &Arc<DataSet>, spec: &PlotSpec) -> Result<Vec<u8>> {
        render_columns(&Columns::cached(data, &self.columns), spec)
    }
}

#[async_trait]
impl Renderer for PlotRenderer {
    fn validate(&self, params: &JobParams) -> Result<()> {
        PlotSpec::from_params(params).map(|_| ())
    }

    async fn render(&self, data: Arc<DataSet>, params: &JobParams) -> Result<Vec<u8>> {
        let spec = PlotSpec::from_params(params)?;
        let renderer = self.clone();
        tokio::task::spawn_blocking(move || renderer.render_blocking(&data, &spec))
            .await
            .map_err(|e| Error::Internal(format!("the rendering task failed: {e}")))?
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
            let (first, counts) = aggregate::counts_per_year(&columns.years(field), start, end)
                .ok_or_else(|| nothing(&format!("field {field}")))?;
            draw::histogram(
                spec.width,
                spec.height,
                &title(format!("Records per year of {field}, {start}\u{2013}{end}")),
                &format!("year of {field}"),
                first,
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
