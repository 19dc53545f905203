//! Drawing with plotters into an RGB buffer, and PNG encoding.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::register_font;

use crate::error::{Error, Result};

/// The colour of bars and points, as RGB.
pub const BAR_RGB: (u8, u8, u8) = (46, 109, 164);

/// The name the embedded font is registered under with plotters.
const FONT_FAMILY: &str = "holidapp-dejavu-sans";
/// DejaVu Sans (its license is in `assets/DejaVuSans-LICENSE.txt`).
const FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

const BAR: RGBColor = RGBColor(BAR_RGB.0, BAR_RGB.1, BAR_RGB.2);
const GRID: RGBColor = RGBColor(228, 228, 228);
const INK: RGBColor = RGBColor(40, 40, 40);

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type BitMapError = <BitMapBackend<'static> as DrawingBackend>::ErrorType;
type DrawResult = std::result::Result<(), DrawingAreaErrorKind<BitMapError>>;

/// Registers the embedded font with plotters, once per process.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Render(
            "the embedded font could not be loaded".into(),
        ))
    }
}

/// Text sizes and spacing, scaled to the image so small images stay legible and large ones
/// do not look empty.
#[derive(Clone, Copy)]
struct Scale(f64);

impl Scale {
    fn of(width: u32, height: u32) -> Scale {
        Scale((f64::from(width.min(height)) / 600.0).clamp(0.5, 3.0))
    }

    fn px(self, base: f64) -> u32 {
        (base * self.0).round() as u32
    }

    fn text(self, base: f64) -> TextStyle<'static> {
        TextStyle::from((FontFamily::Name(FONT_FAMILY), base * self.0)).color(&INK)
    }
}

/// Allocates the canvas, lets `draw` paint it, and encodes the result as PNG.
fn paint(
    width: u32,
    height: u32,
    draw: impl FnOnce(&Area<'_>, Scale) -> DrawResult,
) -> Result<Vec<u8>> {
    ensure_font()?;
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw(&root, Scale::of(width, height)).map_err(drawing_failed)?;
        root.present().map_err(drawing_failed)?;
    }
    encode_png(&rgb, width, height)
}

fn drawing_failed(e: impl std::fmt::Display) -> Error {
    Error::Render(format!("drawing failed: {e}"))
}

/// Encodes an RGB buffer as PNG. `Compression::Fast` (fdeflate) with its filter keeps encoding
/// a small fraction of the render time while the file stays small: plots are mostly flat colour.
fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let mut png = Vec::with_capacity(rgb.len() / 16);
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let encode_failed = |e: png::EncodingError| Error::Render(format!("PNG encoding failed: {e}"));
    let mut writer = encoder.write_header().map_err(encode_failed)?;
    writer.write_image_data(rgb).map_err(encode_failed)?;
    writer.finish().map_err(encode_failed)?;
    Ok(png)
}

/// A vertical bar per year from `first`, with `counts[i]` records in year `first + i`.
pub(super) fn histogram(
    width: u32,
    height: u32,
    title: &str,
    x_desc: &str,
    first: i32,
    counts: &[u64],
) -> Result<Vec<u8>> {
    let last = first + counts.len() as i32 - 1;
    let y_max = headroom(counts.iter().copied().max().unwrap_or(0));
    paint(width, height, |root, scale| {
        root.fill(&WHITE)?;
        let plot_width = f64::from(width) * 0.85;
        let mut chart = ChartBuilder::on(root)
            .caption(title, fitted_title(root, title, scale)?)
            .margin(scale.px(12.0))
            .x_label_area_size(scale.px(44.0))
            .y_label_area_size(scale.px(64.0))
            .build_cartesian_2d((first..last).into_segmented(), 0u64..y_max)?;
        let year_label = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(y) | SegmentValue::Exact(y) => y.to_string(),
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .axis_style(INK)
            .x_labels(label_count(counts.len(), plot_width, scale.px(48.0)))
            .y_labels(8)
            .x_label_formatter(&year_label)
            .label_style(scale.text(13.0))
            .axis_desc_style(scale.text(14.0))
            .x_desc(x_desc)
            .y_desc("records")
            .draw()?;
        // Bars are filled here rather than by plotters' `Histogram`, which drops bars narrower
        // than a pixel (a range of thousands of years) and inverts bars thinner than its margin.
        for (i, &count) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            let year = first + i as i32;
            let right = if year == last {
                SegmentValue::Last
            } else {
                SegmentValue::Exact(year + 1)
            };
            let (left, top) = chart.backend_coord(&(SegmentValue::Exact(year), count));
            let (right, base) = chart.backend_coord(&(right, 0));
            fill_bar(root, Bars::Vertical, (left, right), (base, top), scale)?;
        }
        Ok(())
    })
}

/// A horizontal bar per category, the first at the top.
pub(super) fn categories(
    width: u32,
    height: u32,
    title: &str,
    y_desc: &str,
    counts: &[(String, u64)],
) -> Result<Vec<u8>> {
    const LABEL_CHARS: usize = 28;
    let labels: Vec<String> = counts
        .iter()
        .map(|(name, _)| crate::job::truncate(name, LABEL_CHARS))
        .collect();
    let x_max = headroom(counts.iter().map(|(_, c)| *c).max().unwrap_or(0));
    let rows = counts.len() as i32;
    paint(width, height, |root, scale| {
        root.fill(&WHITE)?;
        let label_style = scale.text(13.0);
        let mut label_width = 0;
        for label in &labels {
            label_width = label_width.max(root.estimate_text_size(label, &label_style)?.0);
        }
        let label_area = (label_width + scale.px(16.0)).min(width * 2 / 5);
        let mut chart = ChartBuilder::on(root)
            .caption(title, fitted_title(root, title, scale)?)
            .margin(scale.px(12.0))
            .x_label_area_size(scale.px(44.0))
            .y_label_area_size(label_area + scale.px(24.0))
            .build_cartesian_2d(0u64..x_max, (0..rows - 1).into_segmented())?;
        // Row 0 is at the bottom; the first (largest) category goes on the top row.
        let row_label = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(row) => labels
                .get((rows - 1 - row) as usize)
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .axis_style(INK)
            .y_labels(counts.len())
            .x_labels(8)
            .y_label_formatter(&row_label)
            .label_style(label_style.clone())
            .axis_desc_style(scale.text(14.0))
            .x_desc("records")
            .y_desc(y_desc)
            .draw()?;
        for (i, (_, count)) in counts.iter().enumerate() {
            let row = rows - 1 - i as i32;
            let upper = if row == rows - 1 {
                SegmentValue::Last
            } else {
                SegmentValue::Exact(row + 1)
            };
            let (base, bottom) = chart.backend_coord(&(0, SegmentValue::Exact(row)));
            let (end, top) = chart.backend_coord(&(*count, upper));
            fill_bar(root, Bars::Horizontal, (bottom, top), (base, end), scale)?;
        }
        Ok(())
    })
}

/// A point per `(x, y)`.
pub(super) fn scatter(
    width: u32,
    height: u32,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    points: &[(f64, f64)],
) -> Result<Vec<u8>> {
    let x_range = padded_range(points.iter().map(|p| p.0));
    let y_range = padded_range(points.iter().map(|p| p.1));
    paint(width, height, |root, scale| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, fitted_title(root, title, scale)?)
            .margin(scale.px(12.0))
            .x_label_area_size(scale.px(44.0))
            .y_label_area_size(scale.px(72.0))
            .build_cartesian_2d(TickedAxis::new(x_range, 10), TickedAxis::new(y_range, 8))?;
        let number = |v: &f64| short_number(*v);
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .bold_line_style(GRID)
            .axis_style(INK)
            .x_label_formatter(&number)
            .y_label_formatter(&number)
            .label_style(scale.text(13.0))
            .axis_desc_style(scale.text(14.0))
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()?;
        let radius = scale.px(2.5).max(1);
        chart.draw_series(points.iter().map(|&p| Circle::new(p, radius, BAR.filled())))?;
        Ok(())
    })
}

/// A linear `f64` axis whose ticks come from [`ticks`]: plotters' own float tick search does
/// not terminate on some extreme ranges (spans near `f64::MAX`, or tiny next to the values).
struct TickedAxis {
    range: std::ops::Range<f64>,
    ticks: Vec<f64>,
}

impl TickedAxis {
    fn new(range: std::ops::Range<f64>, max_ticks: usize) -> Self {
        TickedAxis {
            ticks: ticks(&range, max_ticks),
            range,
        }
    }
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let fraction = (value - self.range.start) / (self.range.end - self.range.start);
        // `as` saturates: a value off the axis lands on its edge, never panics.
        limit
            .0
            .saturating_add((fraction * f64::from(limit.1 - limit.0)).round() as i32)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.range.clone()
    }
}

/// The title's text style: 20 px (scaled), smaller down to 8 px when the title is too wide for
/// the image. A title still too wide is clipped at the edges.
fn fitted_title(
    root: &Area<'_>,
    title: &str,
    scale: Scale,
) -> std::result::Result<TextStyle<'static>, DrawingAreaErrorKind<BitMapError>> {
    let style = scale.text(20.0);
    let room = f64::from(root.dim_in_pixel().0) * 0.96;
    let wide = f64::from(root.estimate_text_size(title, &style)?.0.max(1));
    if wide <= room {
        return Ok(style);
    }
    let size = (20.0 * scale.0 * room / wide).max(8.0);
    Ok(TextStyle::from((FontFamily::Name(FONT_FAMILY), size)).color(&INK))
}

/// Which way bars grow from their baseline.
#[derive(Clone, Copy)]
enum Bars {
    /// Upwards: the slot is on the x axis.
    Vertical,
    /// Rightwards: the slot is on the y axis.
    Horizontal,
}

/// Fills one bar, given in backend pixels: `slot` is the edges of its place on the category
/// axis, `extent` runs from the baseline to the bar's value. The bar keeps a gap to its
/// neighbours when its slot is wide enough, and is at least one pixel wide and long, so that no
/// non-zero count disappears.
fn fill_bar(
    root: &Area<'_>,
    bars: Bars,
    slot: (i32, i32),
    (base, value): (i32, i32),
    scale: Scale,
) -> DrawResult {
    let (mut from, mut to) = (slot.0.min(slot.1), slot.0.max(slot.1));
    let gap = (scale.px(2.0) as i32).max((to - from) / 8).max(1);
    if to - from >= 4 * gap {
        from += gap;
        to -= gap;
    }
    let to = to.max(from + 1);
    let value = match bars {
        Bars::Vertical => value.min(base - 1),
        Bars::Horizontal => value.max(base + 1),
    };
    let (low, high) = (base.min(value), base.max(value));
    // Corners are exclusive at the bottom right in the bitmap backend's fill.
    let corners = match bars {
        Bars::Vertical => [(from, low), (to, high)],
        Bars::Horizontal => [(low, from), (high, to)],
    };
    root.draw(&Rectangle::new(corners, BAR.filled()))
}

/// An axis maximum a little above the largest value, and at least 1.
fn headroom(max: u64) -> u64 {
    max.saturating_add((max / 10).max(1))
}

/// How many labels fit along an axis of `pixels` with `spacing` pixels per label, for
/// `values` discrete values.
fn label_count(values: usize, pixels: f64, spacing: u32) -> usize {
    let fit = (pixels / f64::from(spacing.max(1))).floor() as usize;
    values.clamp(1, fit.max(2))
}

/// The range of the values with a 5% margin on each side. A single value gets a range of ±1
/// around it, and ranges are kept finite whatever the magnitudes.
fn padded_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() || !hi.is_finite() {
        return -1.0..1.0;
    }
    // Halve before subtracting so that spans near f64::MAX do not overflow.
    let half_span = hi / 2.0 - lo / 2.0;
    let pad = if half_span > 0.0 {
        half_span / 10.0
    } else {
        (lo.abs() / 10.0).max(1.0)
    };
    (lo - pad).max(f64::MIN)..(hi + pad).min(f64::MAX)
}

/// Round tick values inside `range`, at most `max + 1` of them, at a step of 1, 2 or 5 times a
/// power of ten. `range` must be finite and non-empty, as [`padded_range`] makes it.
fn ticks(range: &std::ops::Range<f64>, max: usize) -> Vec<f64> {
    let span = range.end - range.start;
    let rough = span / max.max(1) as f64;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|step| span / step <= max as f64)
        .unwrap_or(10.0 * magnitude);
    if !(step.is_finite() && step > 0.0) {
        return Vec::new();
    }
    let first = (range.start / step).ceil();
    let count = ((range.end / step).floor() - first + 1.0).clamp(0.0, max as f64 + 1.0) as usize;
    let mut ticks: Vec<f64> = (0..count)
        .map(|i| (first + i as f64) * step)
        .filter(|t| range.contains(t))
        .collect();
    ticks.dedup();
    ticks
}

/// Axis numbers: plain decimals for everyday magnitudes, scientific notation otherwise.
fn short_number(v: f64) -> String {
    let magnitude = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e7).contains(&magnitude) {
        format!("{v:.2e}")
    } else {
        let text = format!("{v:.3}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        if text == "-0" {
            "0".into()
        } else {
            text.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_stay_finite_and_non_empty() {
        for values in [
            vec![],
            vec![3.0],
            vec![0.0, 0.0],
            vec![-f64::MAX, f64::MAX],
            vec![f64::MAX],
            vec![1e-300, 2e-300],
            vec![-10.0, 10.0],
        ] {
            let r = padded_range(values.iter().copied());
            assert!(
                r.start.is_finite() && r.end.is_finite(),
                "{values:?} -> {r:?}"
            );
            assert!(r.start < r.end, "{values:?} -> {r:?}");
            for v in &values {
                assert!(r.contains(v) || *v == r.end, "{values:?} -> {r:?}");
            }
        }
    }

    #[test]
    fn ticks_are_round_bounded_and_inside() {
        assert_eq!(ticks(&(-0.5..10.5), 10), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(
            ticks(&(-80.0..80.0), 8),
            [-80.0, -60.0, -40.0, -20.0, 0.0, 20.0, 40.0, 60.0]
        );
        for range in [
            f64::MIN..f64::MAX,
            1e20..1.000_000_000_000_001e20,
            5e-324..1e-323,
            -1e-300..1e-300,
            0.1..0.100_000_000_000_000_1,
        ] {
            let t = ticks(&range, 10);
            assert!(t.len() <= 11, "{range:?} -> {t:?}");
            assert!(t.iter().all(|v| range.contains(v)), "{range:?} -> {t:?}");
        }
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(-75.669_1), "-75.669");
        assert_eq!(short_number(40.0), "40");
        assert_eq!(short_number(2.5e12), "2.50e12");
        assert_eq!(short_number(-0.0001), "-1.00e-4");
    }

    #[test]
    fn label_counts_fit_the_axis() {
        assert_eq!(label_count(1, 700.0, 48), 1);
        assert_eq!(label_count(24, 700.0, 48), 14);
        assert_eq!(label_count(5, 700.0, 48), 5);
        assert_eq!(label_count(15_000, 85.0, 48), 2);
    }
}
