//! Which renderer serves the kind `plot` in the shipped binaries (`HOLIDAPP_RENDERER`).
//!
//! The product renders plots. The two other choices exist to test and measure the worker itself,
//! apart from the cost of drawing: `noop` finishes every job at once (queue overhead only) and
//! `sleep:MS` holds every job for a fixed time, so that process tests can stop or kill a worker
//! while it is known to hold jobs. Both stand in for the kind `plot`, store a 1x1 transparent
//! PNG as the result, accept any parameters and do not read the data set.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use holidapp_core::plot::{PlotRenderer, Plots};
use holidapp_core::{Context, Kinds, Params, Png, Renderer, Result};

/// The renderer a worker is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RendererChoice {
    /// Core's plot renderer: the product (`plot`, the default).
    Plot,
    /// [`NoopRenderer`] (`noop`): a testing and benchmark aid.
    Noop,
    /// [`SleepRenderer`] (`sleep:MS`): a testing and benchmark aid.
    Sleep(Duration),
}

/// The longest `sleep:MS` accepted: one hour.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

impl FromStr for RendererChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "plot" => Ok(RendererChoice::Plot),
            "noop" => Ok(RendererChoice::Noop),
            other => {
                let ms = other
                    .strip_prefix("sleep:")
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .map(Duration::from_millis)
                    .filter(|d| *d <= MAX_SLEEP);
                ms.map(RendererChoice::Sleep).ok_or_else(|| {
                    format!(
                        "expected 'plot', 'noop' or 'sleep:MS' with MS a whole number of \
                         milliseconds up to {}",
                        MAX_SLEEP.as_millis()
                    )
                })
            }
        }
    }
}

impl RendererChoice {
    /// The kinds a shipped binary serves: `plot`, rendered by the plot product over `plots`' data
    /// set, or by a stand-in of this choice. An API that validates job parameters must use the
    /// same choice as its workers.
    pub fn kinds(&self, plots: &Plots) -> Kinds {
        let kind = <PlotRenderer as Renderer>::KIND;
        match *self {
            RendererChoice::Plot => Kinds::new().with(plots.renderer()),
            RendererChoice::Noop => Kinds::new().with_named(kind, NoopRenderer),
            RendererChoice::Sleep(duration) => {
                Kinds::new().with_named(kind, SleepRenderer(duration))
            }
        }
    }
}

impl fmt::Display for RendererChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RendererChoice::Plot => f.write_str("plot"),
            RendererChoice::Noop => f.write_str("noop"),
            RendererChoice::Sleep(d) => write!(f, "sleep:{}", d.as_millis()),
        }
    }
}

/// A 1x1 transparent PNG: the result the testing renderers store.
pub const BLANK_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x00, 0x02, 0x00,
    0x00, 0x05, 0x00, 0x01, 0x7a, 0x5e, 0xab, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44,
    0xae, 0x42, 0x60, 0x82,
];

/// Finishes every job at once with [`BLANK_PNG`], whatever its parameters (any JSON, taken as
/// [`Params`], so never parsed when a job runs). Measures the queue, not the drawing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopRenderer;

#[async_trait]
impl Renderer for NoopRenderer {
    const KIND: &'static str = "noop";
    type Params = Params;
    type Output = Png;

    async fn render(&self, _params: Params, _ctx: &Context) -> Result<Png> {
        Ok(Png(Bytes::from_static(BLANK_PNG)))
    }
}

/// Waits a fixed time (on the async timer, so a cancelled job stops at once), then answers
/// [`BLANK_PNG`], whatever its parameters. Holds jobs long enough for tests to act while a
/// worker owns them.
#[derive(Clone, Copy, Debug)]
pub struct SleepRenderer(pub Duration);

#[async_trait]
impl Renderer for SleepRenderer {
    const KIND: &'static str = "sleep";
    type Params = Params;
    type Output = Png;

    /// Reports its progress once, at the start (`0`, `sleeping`), then sleeps.
    async fn render(&self, _params: Params, ctx: &Context) -> Result<Png> {
        ctx.progress(0.0, "sleeping");
        tokio::time::sleep(self.0).await;
        Ok(Png(Bytes::from_static(BLANK_PNG)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_print_back() {
        for text in ["plot", "noop", "sleep:0", "sleep:1500"] {
            let choice: RendererChoice = text.parse().unwrap();
            assert_eq!(choice.to_string(), text);
        }
        assert_eq!(
            "sleep:1500".parse::<RendererChoice>().unwrap(),
            RendererChoice::Sleep(Duration::from_millis(1500))
        );
        for bad in [
            "",
            "Plot",
            "sleep",
            "sleep:",
            "sleep:-1",
            "sleep:1.5",
            "sleep:3600001",
        ] {
            assert!(bad.parse::<RendererChoice>().is_err(), "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_renderer_holds_the_job_for_its_time() {
        let started = tokio::time::Instant::now();
        let queue = holidapp_core::QueueName::default_queue();
        let ctx = Context::new(holidapp_core::JobId::new_in(&queue), "plot", queue, 1);
        let png = SleepRenderer(Duration::from_secs(3))
            .render(Params::from_json(r#"{"start": "1"}"#).unwrap(), &ctx)
            .await
            .unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert_eq!(png.0, BLANK_PNG);
        assert!(BLANK_PNG.starts_with(b"\x89PNG\r\n\x1a\n"));
    }

    #[test]
    fn every_choice_serves_the_plot_kind() {
        let plots = Plots::in_memory();
        for text in ["plot", "noop", "sleep:5"] {
            let choice: RendererChoice = text.parse().unwrap();
            assert_eq!(choice.kinds(&plots).names(), vec!["plot".to_owned()]);
        }
    }
}
