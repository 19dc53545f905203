//! The parameters of a plot job ([`PlotParams`]), read into a typed [`PlotSpec`] with every
//! refusal explained.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::job::truncate;

/// What a plot job asks for: a year range and plot options, as the course's clients send them
/// (`{"start": "1990", "end": "2020"}`).
///
/// `start` and `end` are kept as the client sent them, strings or integers (integers, also when
/// written with a zero fraction or an exponent, `1990.0`, are stored as their decimal text);
/// [`PlotSpec::from_params`] decides what they mean. `"plot": null` is the same as no options.
/// Unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlotParams {
    /// Start of the range: a year.
    #[serde(deserialize_with = "string_or_integer")]
    pub start: String,
    /// End of the range, inclusive.
    #[serde(deserialize_with = "string_or_integer")]
    pub end: String,
    /// Plot options, e.g. `{"kind": "categories", "field": "locus_group"}`.
    #[serde(
        default,
        deserialize_with = "options_or_null",
        skip_serializing_if = "serde_json::Map::is_empty"
    )]
    pub plot: serde_json::Map<String, Value>,
}

impl PlotParams {
    /// Parameters with a range and no plot options.
    pub fn new(start: impl Into<String>, end: impl Into<String>) -> Self {
        PlotParams {
            start: start.into(),
            end: end.into(),
            plot: serde_json::Map::new(),
        }
    }

    /// The same parameters with one plot option set.
    pub fn with_option(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.plot.insert(key.to_owned(), value.into());
        self
    }
}

fn string_or_integer<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    struct StringOrInteger;

    impl serde::de::Visitor<'_> for StringOrInteger {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an integer")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<String, E> {
            Ok(v.to_owned())
        }

        fn visit_string<E: serde::de::Error>(self, v: String) -> std::result::Result<String, E> {
            Ok(v)
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<String, E> {
            crate::integer::whole(v)
                .map(|whole| whole.to_string())
                .ok_or_else(|| E::invalid_type(serde::de::Unexpected::Float(v), &self))
        }
    }

    d.deserialize_any(StringOrInteger)
}

/// The plot options, `null` being none.
fn options_or_null<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<serde_json::Map<String, Value>, D::Error> {
    Option::<serde_json::Map<String, Value>>::deserialize(d).map(Option::unwrap_or_default)
}

/// The earliest year a plot range may start at.
pub const YEAR_MIN: i32 = -5000;
/// The latest year a plot range may end at.
pub const YEAR_MAX: i32 = 9999;
/// The smallest image side, in pixels.
pub const SIZE_MIN: u32 = 100;
/// The largest image side, in pixels.
pub const SIZE_MAX: u32 = 4000;
/// The longest title, in characters.
pub const TITLE_MAX: usize = 200;
/// The most categories a `categories` plot shows by name (the rest are summed in one bar).
pub const TOP_MAX: usize = 50;
/// How many categories a `categories` plot shows by name unless `top` says otherwise.
pub const TOP_DEFAULT: usize = 20;
/// The longest field name, in characters.
const FIELD_MAX: usize = 100;

/// What a job asks the [`PlotRenderer`](super::PlotRenderer) to draw, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotSpec {
    /// First year of the range.
    pub start: i32,
    /// Last year of the range, inclusive.
    pub end: i32,
    /// The kind of plot and its own options.
    pub kind: PlotKind,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// The title; a default that names the fields and the range when `None`.
    pub title: Option<String>,
}

/// The kinds of plot, each with its options. A field left `None` is chosen from the data set
/// when rendering, as the [module docs](super) describe.
#[derive(Clone, Debug, PartialEq)]
pub enum PlotKind {
    /// Records per year of a date field.
    Histogram {
        /// The date field.
        field: Option<String>,
    },
    /// Records per value of a field, largest first.
    Categories {
        /// The field whose values are counted.
        field: Option<String>,
        /// The field whose year must be in the range.
        year_field: Option<String>,
        /// How many categories are shown by name; the rest are summed in one bar.
        top: usize,
    },
    /// One point per record at two numeric fields.
    Scatter {
        /// The field on the horizontal axis.
        x: String,
        /// The field on the vertical axis.
        y: String,
        /// The field whose year must be in the range.
        year_field: Option<String>,
    },
}

/// The options as sent. Every option any kind takes is listed here, so an unknown name is
/// refused by serde with the list of valid ones; [`PlotSpec::from_params`] then refuses options
/// that belong to another kind.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    kind: Option<KindName>,
    field: Option<String>,
    year_field: Option<String>,
    x: Option<String>,
    y: Option<String>,
    #[serde(default, deserialize_with = "crate::integer::option")]
    top: Option<usize>,
    #[serde(default, deserialize_with = "crate::integer::option")]
    width: Option<u32>,
    #[serde(default, deserialize_with = "crate::integer::option")]
    height: Option<u32>,
    title: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KindName {
    #[default]
    Histogram,
    Categories,
    Scatter,
}

impl KindName {
    fn as_str(self) -> &'static str {
        match self {
            KindName::Histogram => "histogram",
            KindName::Categories => "categories",
            KindName::Scatter => "scatter",
        }
    }

    /// The options this kind takes, besides `kind` itself.
    fn options(self) -> &'static [&'static str] {
        match self {
            KindName::Histogram => &["field", "width", "height", "title"],
            KindName::Categories => &["field", "year_field", "top", "width", "height", "title"],
            KindName::Scatter => &["x", "y", "year_field", "width", "height", "title"],
        }
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidParams(msg.into())
}

impl PlotSpec {
    /// Reads and checks a job's parameters; the same check serves submit time and render time.
    pub fn from_params(params: &PlotParams) -> Result<PlotSpec> {
        let start = year("start", &params.start)?;
        let end = year("end", &params.end)?;
        if start > end {
            return Err(invalid(format!(
                "start ({start}) is after end ({end}); the range is [start, end]"
            )));
        }
        let raw = RawOptions::deserialize(Value::Object(params.plot.clone()))
            .map_err(|e| invalid(format!("plot options: {}", truncate(&e.to_string(), 240))))?;
        let kind_name = raw.kind.unwrap_or_default();
        // An option of another kind is refused even as `null`: it has no meaning here.
        for name in ["field", "year_field", "x", "y", "top"] {
            if params.plot.contains_key(name) && !kind_name.options().contains(&name) {
                return Err(invalid(format!(
                    "plot option '{name}' does not apply to kind '{}'; its options are: kind, {}",
                    kind_name.as_str(),
                    kind_name.options().join(", ")
                )));
            }
        }
        let field = raw.field.map(|f| field_name("field", f)).transpose()?;
        let year_field = raw
            .year_field
            .map(|f| field_name("year_field", f))
            .transpose()?;
        let kind = match kind_name {
            KindName::Histogram => PlotKind::Histogram { field },
            KindName::Categories => PlotKind::Categories {
                field,
                year_field,
                top: match raw.top {
                    None => TOP_DEFAULT,
                    Some(top @ 1..=TOP_MAX) => top,
                    Some(top) => {
                        return Err(invalid(format!(
                            "plot option 'top' must be between 1 and {TOP_MAX}, got {top}"
                        )));
                    }
                },
            },
            KindName::Scatter => PlotKind::Scatter {
                x: field_name("x", raw.x.unwrap_or_else(|| "reclong".into()))?,
                y: field_name("y", raw.y.unwrap_or_else(|| "reclat".into()))?,
                year_field,
            },
        };
        let title = raw.title.map(checked_title).transpose()?;
        Ok(PlotSpec {
            start,
            end,
            kind,
            width: side("width", raw.width.unwrap_or(800))?,
            height: side("height", raw.height.unwrap_or(600))?,
            title,
        })
    }
}

/// A year written as its decimal text, as an integer shows it: digits, `-` before a negative
/// one, no leading zero, no `+`, no space.
fn year(name: &str, text: &str) -> Result<i32> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.len() <= 4
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (!digits.starts_with('0') || (digits == "0" && digits.len() == text.len()));
    canonical
        .then(|| text.parse::<i32>().ok())
        .flatten()
        .filter(|y| (YEAR_MIN..=YEAR_MAX).contains(y))
        .ok_or_else(|| {
            invalid(format!(
                "{name} must be a year, an integer between {YEAR_MIN} and {YEAR_MAX} written \
                 as digits (1990 or \"1990\"; no sign but '-', no leading zero, no space); \
                 got '{}'",
                truncate(text, 40)
            ))
        })
}

fn side(name: &str, pixels: u32) -> Result<u32> {
    if (SIZE_MIN..=SIZE_MAX).contains(&pixels) {
        Ok(pixels)
    } else {
        Err(invalid(format!(
            "plot option '{name}' must be between {SIZE_MIN} and {SIZE_MAX} pixels, got {pixels}"
        )))
    }
}

fn field_name(option: &str, name: String) -> Result<String> {
    if name.trim().is_empty() {
        Err(invalid(format!(
            "plot option '{option}' is empty; name a field of the data"
        )))
    } else if name.chars().count() > FIELD_MAX || name.chars().any(char::is_control) {
        Err(invalid(format!(
            "plot option '{option}' must be a field name of at most {FIELD_MAX} printable characters"
        )))
    } else {
        Ok(name)
    }
}

fn checked_title(title: String) -> Result<String> {
    if title.chars().count() > TITLE_MAX {
        Err(invalid(format!(
            "plot option 'title' is longer than {TITLE_MAX} characters"
        )))
    } else if title.chars().any(char::is_control) {
        Err(invalid(
            "plot option 'title' must not hold control characters",
        ))
    } else {
        Ok(title)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_accept_strings_or_integers_and_refuse_unknown_fields() {
        let p: PlotParams = serde_json::from_str(r#"{"start": 1990, "end": "2000"}"#).unwrap();
        assert_eq!(p, PlotParams::new("1990", "2000"));
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"start":"1990","end":"2000"}"#
        );
        let float = serde_json::from_str::<PlotParams>(r#"{"start": 1.5, "end": "2000"}"#);
        assert!(
            float
                .unwrap_err()
                .to_string()
                .contains("expected a string or an integer")
        );
        assert!(
            serde_json::from_str::<PlotParams>(r#"{"start": "1", "end": "2", "strat": 1}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<PlotParams>(r#"{"start": "1"}"#).is_err());
    }

    #[test]
    fn integers_may_carry_a_zero_fraction_and_null_options_are_none() {
        let p: PlotParams =
            serde_json::from_str(r#"{"start": 1990.0, "end": 2e3, "plot": null}"#).unwrap();
        assert_eq!(p, PlotParams::new("1990", "2000"));
        let p = PlotParams::new("1990", "2000")
            .with_option("kind", "categories")
            .with_option("top", 5.0)
            .with_option("width", 800.0)
            .with_option("height", serde_json::Value::Null);
        let spec = PlotSpec::from_params(&p).unwrap();
        assert_eq!((spec.width, spec.height), (800, 600));
        assert!(matches!(spec.kind, PlotKind::Categories { top: 5, .. }));
        let p = PlotParams::new("1990", "2000").with_option("width", 800.5);
        assert!(PlotSpec::from_params(&p).is_err());
        // An option of the kind itself may be null; one of another kind may not.
        let p = PlotParams::new("1990", "2000")
            .with_option("kind", serde_json::Value::Null)
            .with_option("field", serde_json::Value::Null);
        assert!(PlotSpec::from_params(&p).is_ok());
        let p = PlotParams::new("1990", "2000").with_option("x", serde_json::Value::Null);
        let refused = PlotSpec::from_params(&p).unwrap_err().to_string();
        assert!(
            refused.contains("'x' does not apply to kind 'histogram'"),
            "{refused}"
        );
    }

    #[test]
    fn years_are_integers_written_as_digits() {
        for (text, year) in [
            ("0", 0),
            ("7", 7),
            ("-5000", -5000),
            ("9999", 9999),
            ("-42", -42),
        ] {
            let spec = PlotSpec::from_params(&PlotParams::new(text, "9999")).unwrap();
            assert_eq!(spec.start, year, "{text}");
        }
        for text in [
            "", " 1990", "1990 ", "+1990", "01990", "-0", "-05", "00", "10000", "-5001", "1e3",
            "1990.0", "\u{663}",
        ] {
            let refused = PlotSpec::from_params(&PlotParams::new(text, "9999"));
            assert!(refused.is_err(), "{text:?}");
        }
    }
}
