//! The built-in plot renderer: every kind on the real samples, decoded and inspected; parameter
//! validation; data sets that select nothing; and data that could upset a plotting library.

use std::collections::HashSet;
use std::sync::Arc;

use holidapp_core::plot::parse::bundled;
use holidapp_core::plot::{
    BAR_RGB, DataSet, DataStore, MemoryPlotStore, PlotParams, PlotRenderer, Plots, Record,
};
use holidapp_core::{Context, Error, JobId, QueueName, Renderer};
use serde_json::{Value, json};

/// A decoded PNG: its size and its RGB pixels.
struct Image {
    width: u32,
    height: u32,
    rgb: Vec<[u8; 3]>,
}

impl Image {
    fn decode(png_bytes: &[u8]) -> Image {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().expect("a PNG header");
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).expect("PNG data");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        let rgb = buf[..info.buffer_size()]
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        Image {
            width: info.width,
            height: info.height,
            rgb,
        }
    }

    fn distinct_colours(&self) -> usize {
        self.rgb.iter().collect::<HashSet<_>>().len()
    }

    fn count(&self, colour: (u8, u8, u8)) -> usize {
        let colour = [colour.0, colour.1, colour.2];
        self.rgb.iter().filter(|p| **p == colour).count()
    }
}

fn params(start: i64, end: i64, plot: Value) -> PlotParams {
    let Value::Object(plot) = plot else {
        panic!("plot options are an object")
    };
    PlotParams {
        start: start.to_string(),
        end: end.to_string(),
        plot,
    }
}

/// A renderer over a store holding `data`.
async fn renderer_of(data: DataSet) -> PlotRenderer {
    let store = Arc::new(MemoryPlotStore::new());
    store.replace(data).await.expect("stored");
    PlotRenderer::new(store)
}

async fn render(data: DataSet, params: &PlotParams) -> holidapp_core::Result<Vec<u8>> {
    Ok(renderer_of(data).await.draw(params).await?.0.to_vec())
}

/// Renders, decodes, and checks the image is the asked size and really shows something.
async fn render_image(data: DataSet, params: &PlotParams, min_bar_pixels: usize) -> Image {
    let png_bytes = render(data, params).await.expect("rendered");
    assert!(png_bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    let image = Image::decode(&png_bytes);
    let bars = image.count(BAR_RGB);
    assert!(
        bars >= min_bar_pixels,
        "{params:?}: only {bars} pixels of the bar colour"
    );
    assert!(
        image.distinct_colours() >= 4,
        "{params:?}: an image of {} colours is blank",
        image.distinct_colours()
    );
    image
}

fn hgnc() -> DataSet {
    bundled("hgnc").unwrap()
}

fn meteorites() -> DataSet {
    bundled("meteorites").unwrap()
}

fn record(id: &str, fields: Value) -> Record {
    let Value::Object(fields) = fields else {
        panic!("fields are an object")
    };
    Record {
        id: id.into(),
        fields,
    }
}

#[tokio::test]
async fn a_histogram_of_the_hgnc_sample() {
    let image = render_image(hgnc(), &params(1980, 2010, json!({})), 20_000).await;
    assert_eq!((image.width, image.height), (800, 600));
}

#[tokio::test]
async fn histograms_take_their_size_and_field() {
    let p = params(
        1990,
        2020,
        json!({"kind": "histogram", "field": "date_modified", "width": 320, "height": 200,
               "title": "Gènes modifiés ✓ 遺伝子 🧬"}),
    );
    let image = render_image(hgnc(), &p, 1_000).await;
    assert_eq!((image.width, image.height), (320, 200));
}

#[tokio::test]
async fn categories_of_the_hgnc_sample_count_locus_groups() {
    let image = render_image(
        hgnc(),
        &params(1900, 2020, json!({"kind": "categories"})),
        20_000,
    )
    .await;
    assert_eq!((image.width, image.height), (800, 600));
}

#[tokio::test]
async fn categories_of_the_meteorite_sample_count_classes() {
    let p = params(
        2000,
        2000,
        json!({"kind": "categories", "top": 10, "height": 900}),
    );
    let image = render_image(meteorites(), &p, 20_000).await;
    assert_eq!((image.width, image.height), (800, 900));
}

#[tokio::test]
async fn a_scatter_of_the_meteorite_sample() {
    let p = params(1, 2, json!({"kind": "scatter"}));
    let image = render_image(meteorites(), &p, 1_500).await;
    assert_eq!((image.width, image.height), (800, 600));
}

#[tokio::test]
async fn one_renderer_follows_the_data_set_it_is_given() {
    // The renderer keeps columns per data set; a new data set must never see the old ones.
    let store = Arc::new(MemoryPlotStore::new());
    let renderer = PlotRenderer::new(store.clone());
    let p = params(1940, 1960, json!({}));
    let fifties = DataSet::new(
        (0..10)
            .map(|i| {
                record(
                    &i.to_string(),
                    json!({"date_approved_reserved": "1950-01-01"}),
                )
            })
            .collect(),
    );
    store.replace(hgnc()).await.unwrap();
    assert!(matches!(renderer.draw(&p).await, Err(Error::Render(_))));
    store.replace(fifties.clone()).await.unwrap();
    let first = renderer.draw(&p).await.unwrap();
    store.replace(hgnc()).await.unwrap();
    assert!(matches!(renderer.draw(&p).await, Err(Error::Render(_))));
    store.replace(fifties).await.unwrap();
    let again = renderer.draw(&p).await.unwrap();
    assert_eq!(first, again, "the same data set renders the same PNG");
    assert_eq!(Image::decode(&first.0).width, 800);
}

/// A data store that counts full loads.
struct CountingStore {
    inner: MemoryPlotStore,
    loads: std::sync::atomic::AtomicU32,
}

#[holidapp_core::async_trait]
impl DataStore for CountingStore {
    async fn replace(&self, data: DataSet) -> holidapp_core::Result<u64> {
        self.inner.replace(data).await
    }
    async fn version(&self) -> holidapp_core::Result<u64> {
        self.inner.version().await
    }
    async fn len(&self) -> holidapp_core::Result<u64> {
        self.inner.len().await
    }
    async fn page(&self, start: u64, limit: u64) -> holidapp_core::Result<Vec<Record>> {
        self.inner.page(start, limit).await
    }
    async fn record(&self, id: &str) -> holidapp_core::Result<Option<Record>> {
        self.inner.record(id).await
    }
    async fn ids(&self) -> holidapp_core::Result<Vec<String>> {
        self.inner.ids().await
    }
    async fn load(&self) -> holidapp_core::Result<(u64, Arc<DataSet>)> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.load().await
    }
    async fn clear(&self) -> holidapp_core::Result<bool> {
        self.inner.clear().await
    }
}

#[tokio::test]
async fn the_data_set_is_loaded_once_per_version_by_jobs_and_images_alike() {
    let store = Arc::new(CountingStore {
        inner: MemoryPlotStore::new(),
        loads: Default::default(),
    });
    let plots = Plots::new(store.clone(), Arc::new(MemoryPlotStore::new()));
    let renderer = plots.renderer();
    store.replace(hgnc()).await.unwrap();
    let p = params(1990, 2000, json!({}));
    let ctx = Context::new(
        JobId::new_in(&QueueName::default_queue()),
        "plot",
        QueueName::default_queue(),
        1,
    );
    for _ in 0..3 {
        renderer.render(p.clone(), &ctx).await.unwrap();
    }
    plots.render_image(Some(p.clone())).await.unwrap();
    plots.render_image(None).await.unwrap();
    assert_eq!(store.loads.load(std::sync::atomic::Ordering::SeqCst), 1);
    store.replace(meteorites()).await.unwrap();
    renderer
        .render(params(1, 2, json!({"kind": "categories"})), &ctx)
        .await
        .unwrap();
    assert_eq!(store.loads.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn no_loaded_data_set_is_no_data() {
    let renderer = PlotRenderer::new(Arc::new(MemoryPlotStore::new()));
    let result = renderer.draw(&params(1990, 2000, json!({}))).await;
    assert!(matches!(result, Err(Error::NoData)), "{result:?}");
    assert!(Error::NoData.to_string().contains("POST /data"));
}

#[tokio::test]
async fn a_histogram_axis_spans_the_whole_range_asked_for() {
    // The HGNC sample's last approval is in 2022 or before: the axis still runs to 2040.
    let short = render_image(hgnc(), &params(1990, 2022, json!({})), 1).await;
    let long = render_image(hgnc(), &params(1990, 2040, json!({})), 1).await;
    // The same records over a wider axis: the bars get narrower, so fewer pixels are bar.
    assert!(
        long.count(BAR_RGB) < short.count(BAR_RGB) * 9 / 10,
        "{} bar pixels over 1990-2040 against {} over 1990-2022",
        long.count(BAR_RGB),
        short.count(BAR_RGB)
    );
}

#[tokio::test]
async fn the_default_image_covers_the_whole_data_set() {
    let store = Arc::new(MemoryPlotStore::new());
    let plots = Plots::new(store.clone(), store.clone());
    store.replace(hgnc()).await.unwrap();
    let p = plots.renderer().default_params().await.unwrap();
    let years: Vec<i32> = hgnc()
        .records
        .iter()
        .filter_map(|r| r.text("date_approved_reserved")?.get(..4)?.parse().ok())
        .collect();
    let (first, last) = (years.iter().min().unwrap(), years.iter().max().unwrap());
    assert_eq!(p, PlotParams::new(first.to_string(), last.to_string()));
    // No year field: category counts of every record.
    store.replace(meteorites()).await.unwrap();
    let p = plots.renderer().default_params().await.unwrap();
    assert_eq!(p.plot.get("kind"), Some(&json!("categories")));
    assert!(plots.render_image(None).await.unwrap() > 1000);
}

#[tokio::test]
async fn an_empty_data_set_is_no_data() {
    let result = render(DataSet::default(), &params(1990, 2000, json!({}))).await;
    assert!(matches!(result, Err(Error::NoData)), "{result:?}");
}

#[tokio::test]
async fn plots_that_select_nothing_say_what_was_missing() {
    let cases = [
        (
            hgnc(),
            params(1900, 1910, json!({})),
            "no records with field date_approved_reserved between 1900 and 1910",
        ),
        (
            hgnc(),
            params(1900, 2020, json!({"field": "nope"})),
            "no records with field nope between 1900 and 2020",
        ),
        (
            meteorites(),
            params(1900, 2020, json!({})),
            "no records with field date_approved_reserved",
        ),
        (
            hgnc(),
            params(1900, 1910, json!({"kind": "categories"})),
            "no records with field locus_group between 1900 and 1910",
        ),
        (
            hgnc(),
            params(1900, 2020, json!({"kind": "scatter"})),
            "no records with numeric fields reclong and reclat",
        ),
        (
            meteorites(),
            params(1900, 2020, json!({"kind": "scatter", "year_field": "year"})),
            "no records with numeric fields reclong and reclat between 1900 and 2020",
        ),
    ];
    for (data, p, fragment) in cases {
        match render(data, &p).await {
            Err(Error::Render(msg)) => assert!(msg.contains(fragment), "{msg:?} vs {fragment:?}"),
            other => panic!("{p:?}: expected a render error, got {other:?}"),
        }
    }
}

/// A renderer for validation alone (no data set needed).
fn validator() -> PlotRenderer {
    PlotRenderer::new(Arc::new(MemoryPlotStore::new()))
}

#[test]
fn validation_accepts_good_parameters() {
    let renderer = validator();
    for p in [
        params(1990, 2000, json!({})),
        params(2000, 2000, json!({})),
        params(
            -5000,
            9999,
            json!({"kind": "histogram", "field": "date_modified"}),
        ),
        params(
            1,
            2,
            json!({"kind": "categories", "field": "status", "top": 50}),
        ),
        params(
            1,
            2,
            json!({"kind": "categories", "year_field": "year", "top": 1}),
        ),
        params(
            1,
            2,
            json!({"kind": "scatter", "x": "mass (g)", "y": "reclat"}),
        ),
        params(
            1,
            2,
            json!({"width": 100, "height": 4000, "title": "t".repeat(200)}),
        ),
        PlotParams::new("-5000", "0"),
    ] {
        renderer
            .validate(&p)
            .unwrap_or_else(|e| panic!("{p:?} refused: {e}"));
    }
}

#[test]
fn validation_refuses_bad_parameters_and_says_why() {
    let renderer = validator();
    let cases = [
        (PlotParams::new("abc", "2000"), "start must be a year"),
        (PlotParams::new("1990", ""), "end must be a year"),
        (PlotParams::new("1990.5", "2000"), "start must be a year"),
        (PlotParams::new(" 1990 ", "2000"), "start must be a year"),
        (PlotParams::new("+1990", "2000"), "no sign but '-'"),
        (PlotParams::new("1990", "02000"), "end must be a year"),
        (PlotParams::new("-5001", "2000"), "between -5000 and 9999"),
        (PlotParams::new("1990", "10000"), "got '10000'"),
        (
            PlotParams::new("2001", "2000"),
            "start (2001) is after end (2000)",
        ),
        (
            params(1, 2, json!({"colour": "red"})),
            "unknown field `colour`, expected one of `kind`, `field`",
        ),
        (
            params(1, 2, json!({"kind": "pie"})),
            "unknown variant `pie`, expected one of `histogram`, `categories`, `scatter`",
        ),
        (
            params(1, 2, json!({"x": "reclat"})),
            "plot option 'x' does not apply to kind 'histogram'; its options are: kind, field",
        ),
        (
            params(1, 2, json!({"kind": "scatter", "field": "a"})),
            "plot option 'field' does not apply to kind 'scatter'",
        ),
        (
            params(1, 2, json!({"kind": "histogram", "top": 3})),
            "'top' does not apply",
        ),
        (
            params(1, 2, json!({"kind": "categories", "top": 0})),
            "'top' must be between 1 and 50, got 0",
        ),
        (
            params(1, 2, json!({"kind": "categories", "top": 51})),
            "'top' must be between 1 and 50",
        ),
        (
            params(1, 2, json!({"width": 99})),
            "'width' must be between 100 and 4000",
        ),
        (
            params(1, 2, json!({"height": 4001})),
            "'height' must be between 100 and 4000",
        ),
        (params(1, 2, json!({"width": -5})), "invalid value"),
        (params(1, 2, json!({"width": "800"})), "invalid type"),
        (params(1, 2, json!({"field": ""})), "'field' is empty"),
        (
            params(1, 2, json!({"field": "f".repeat(101)})),
            "at most 100",
        ),
        (
            params(1, 2, json!({"kind": "scatter", "x": " "})),
            "'x' is empty",
        ),
        (
            params(1, 2, json!({"title": "t".repeat(201)})),
            "longer than 200",
        ),
        (
            params(1, 2, json!({"title": "a\u{0007}b"})),
            "control characters",
        ),
        (params(1, 2, json!({"kind": 3})), "invalid type"),
    ];
    for (p, fragment) in cases {
        match renderer.validate(&p) {
            Err(Error::InvalidParams(msg)) => {
                assert!(
                    msg.contains(fragment),
                    "{msg:?} should contain {fragment:?}"
                );
                assert!(msg.len() < 400, "{msg:?} is too long");
            }
            other => panic!("{p:?}: expected invalid params, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn drawing_refuses_what_validation_refuses() {
    let result = render(hgnc(), &PlotParams::new("2001", "2000")).await;
    assert!(matches!(result, Err(Error::InvalidParams(_))), "{result:?}");
}

#[tokio::test]
async fn awkward_data_still_renders() {
    let one_record = DataSet::new(vec![record(
        "a",
        json!({"date_approved_reserved": "1999-01-01", "locus_group": "x",
               "reclat": "1.5", "reclong": 2}),
    )]);
    let same_year: Vec<Record> = (0..500)
        .map(|i| record(&i.to_string(), json!({"year": 1999, "v": i})))
        .collect();
    let extremes = DataSet::new(vec![
        record("min", json!({"x": -f64::MAX, "y": f64::MIN_POSITIVE})),
        record("max", json!({"x": f64::MAX, "y": 1e300})),
        record("nan", json!({"x": "NaN", "y": "inf"})),
        record("far", json!({"x": -1e300, "y": 1e300})),
        record("far2", json!({"x": 1e300, "y": -1e300})),
        record("tiny", json!({"x": 5e-324, "y": 1e-323})),
        record("zero", json!({"x": 0, "y": 0})),
    ]);
    let all_at_one_point = DataSet::new(
        (0..50)
            .map(|i| record(&i.to_string(), json!({"x": 1e15, "y": -3})))
            .collect(),
    );
    let many_categories = DataSet::new(
        (0..5000)
            .map(|i| {
                record(
                    &i.to_string(),
                    json!({"c": format!("a rather long category name number {i} {}", "é".repeat(i % 40))}),
                )
            })
            .collect(),
    );
    let far_apart = DataSet::new(vec![
        record("a", json!({"year": -5000})),
        record("b", json!({"year": 9999})),
        record("c", json!({"year": "2000-02-02"})),
    ]);
    let cases = [
        (one_record.clone(), params(1990, 2000, json!({}))),
        (
            one_record.clone(),
            params(1990, 2000, json!({"kind": "categories"})),
        ),
        (
            one_record.clone(),
            params(1990, 2000, json!({"kind": "scatter"})),
        ),
        (
            DataSet::new(same_year.clone()),
            params(1900, 2100, json!({})),
        ),
        (
            DataSet::new(same_year),
            params(
                1999,
                1999,
                json!({"kind": "scatter", "x": "v", "y": "year"}),
            ),
        ),
        (
            extremes,
            params(1, 2, json!({"kind": "scatter", "x": "x", "y": "y"})),
        ),
        (
            all_at_one_point,
            params(1, 2, json!({"kind": "scatter", "x": "x", "y": "y"})),
        ),
        (
            many_categories,
            params(
                1,
                2,
                json!({"kind": "categories", "field": "c", "top": 50,
                               "width": 100, "height": 100}),
            ),
        ),
        (
            far_apart.clone(),
            params(-5000, 9999, json!({"field": "year"})),
        ),
        (
            far_apart,
            params(
                -5000,
                9999,
                json!({"field": "year", "width": 4000, "height": 100}),
            ),
        ),
    ];
    for (data, p) in cases {
        let png_bytes = render(data, &p)
            .await
            .unwrap_or_else(|e| panic!("{p:?}: {e}"));
        let image = Image::decode(&png_bytes);
        assert!(image.count(BAR_RGB) > 0, "{p:?}: nothing drawn");
    }
}

#[tokio::test]
async fn the_largest_image_renders() {
    let p = params(1980, 2010, json!({"width": 4000, "height": 4000}));
    let image = render_image(hgnc(), &p, 500_000).await;
    assert_eq!((image.width, image.height), (4000, 4000));
}

/// A process refuses to hold a data set with more records than it may: the render fails with
/// a clear error before any record is read, and works again once a smaller set is loaded.
#[tokio::test]
async fn a_renderer_refuses_a_data_set_larger_than_it_may_hold() {
    let store = Arc::new(MemoryPlotStore::new());
    let renderer = PlotRenderer::new(store.clone()).with_max_records(100);
    store.replace(hgnc()).await.unwrap();
    match renderer.draw(&params(1980, 2010, json!({}))).await {
        Err(Error::DataTooLarge(message)) => {
            assert!(message.contains("266 records"), "{message}");
            assert!(message.contains("at most 100"), "{message}");
        }
        other => panic!("expected DataTooLarge, got {other:?}"),
    }
    let small = DataSet::new(hgnc().records.into_iter().take(100).collect());
    store.replace(small).await.unwrap();
    renderer
        .draw(&params(1900, 2030, json!({})))
        .await
        .expect("a data set within the limit renders");
}

#[tokio::test]
async fn a_plot_job_reports_its_phases_and_is_not_drawn_once_cancelled() {
    use holidapp_core::{
        Backends, Jobs, Kinds, MemoryBackend, Outcome, Processor, Progress, QueueSettings, Submit,
    };
    let backends = Backends::single(Arc::new(MemoryBackend::new(QueueSettings::default())));
    let kinds = Kinds::new().with(renderer_of(hgnc()).await);
    let jobs = Jobs::new(&backends, kinds.clone());
    let processor = Processor::new(
        backends.consumer.clone(),
        kinds,
        std::time::Duration::from_secs(30),
    )
    .with_progress_interval(std::time::Duration::ZERO);
    let job = jobs
        .submit(Submit::new("plot", json!({"start": 1990, "end": 2000})))
        .await
        .unwrap();
    assert!(matches!(
        processor.process_one("w").await.unwrap(),
        Outcome::Processed(_)
    ));
    // The render waits for its blocking thread at least once, so the writer runs: the job shows
    // the last phase written before the render ended.
    let shown = jobs.get(job.id).await.unwrap().unwrap().progress;
    let phases = [
        Progress::new(0.0, "loading data"),
        Progress::new(20.0, "waiting for a render slot"),
        Progress::new(40.0, "drawing"),
    ];
    assert!(
        shown.as_ref().is_some_and(|p| phases.contains(p)),
        "{shown:?}"
    );

    let renderer = renderer_of(hgnc()).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let ctx = Context::new(
        JobId::new_in(&QueueName::default_queue()),
        "plot",
        QueueName::default_queue(),
        1,
    )
    .with_cancellation(cancel.clone());
    cancel.cancel();
    let refused = renderer.render(params(1990, 2000, json!({})), &ctx).await;
    assert!(matches!(refused, Err(Error::Render(m)) if m.contains("cancelled")));
}
