//! From columns to what a plot draws: per-year counts, category counts, points.

use std::sync::Arc;

use serde_json::Value;

use super::columns::{Columns, NumberColumn, TextColumn, YearColumn};

/// The year fields looked for, in order, when a plot does not name one.
pub(super) const YEAR_FIELDS: [&str; 2] = ["date_approved_reserved", "year"];

/// The category fields looked for, in order, when a `categories` plot does not name one.
pub(super) const CATEGORY_FIELDS: [&str; 2] = ["locus_group", "recclass"];

/// The first of [`YEAR_FIELDS`] in which a record has a year.
pub(super) fn default_year_field(columns: &Columns<'_>) -> Option<&'static str> {
    YEAR_FIELDS
        .into_iter()
        .find(|field| columns.years(field).any())
}

/// The first of [`CATEGORY_FIELDS`] in which a record has a text value.
pub(super) fn default_category_field(columns: &Columns<'_>) -> Option<&'static str> {
    CATEGORY_FIELDS
        .into_iter()
        .find(|field| !columns.texts(field).names.is_empty())
}

/// The year of a field value: the leading (optionally negative) integer of a string such as
/// `"2009-07-20"`, `"1880-01-01T00:00:00.000"` or `"1999"`, or an integral JSON number.
pub(super) fn year_of(value: &Value) -> Option<i32> {
    match value {
        Value::Number(n) => {
            let v = n.as_f64()?;
            (v.fract() == 0.0 && v.abs() <= f64::from(i32::MAX)).then_some(v as i32)
        }
        Value::String(s) => {
            let s = s.trim();
            let digits_from = usize::from(s.starts_with('-'));
            let digits = s[digits_from..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(s.len(), |i| i + digits_from);
            let rest = &s[digits..];
            if digits == digits_from || !(rest.is_empty() || rest.starts_with('-')) {
                return None;
            }
            s[..digits].parse().ok()
        }
        _ => None,
    }
}

/// Which records a `categories` or `scatter` plot keeps: all of them, or those whose year is
/// in `[start, end]`.
pub(super) enum YearFilter {
    /// The data set has no year field: every record counts.
    All,
    /// Only records whose year in this column is in the range.
    Years(Arc<YearColumn>, i32, i32),
}

impl YearFilter {
    fn keeps(&self, index: usize) -> bool {
        match self {
            YearFilter::All => true,
            YearFilter::Years(years, start, end) => years
                .get(index)
                .is_some_and(|y| (*start..=*end).contains(&y)),
        }
    }
}

/// Records per year over the whole of `[start, end]` (`counts[i]` for year `start + i`), or
/// `None` when no record falls in the range.
pub(super) fn counts_per_year(years: &YearColumn, start: i32, end: i32) -> Option<Vec<u64>> {
    // At most 15,000 slots: the range is bounded by the year limits of the options.
    let mut counts = vec![0u64; (i64::from(end) - i64::from(start) + 1) as usize];
    let mut any = false;
    for year in years.iter().flatten() {
        if (start..=end).contains(&year) {
            counts[(year - start) as usize] += 1;
            any = true;
        }
    }
    any.then_some(counts)
}

/// The first and last year in a column, if it holds any.
pub(super) fn year_span(years: &YearColumn) -> Option<(i32, i32)> {
    years.iter().flatten().fold(None, |span, year| match span {
        None => Some((year, year)),
        Some((first, last)) => Some((first.min(year), last.max(year))),
    })
}

/// Records per value among those `filter` keeps, largest first (ties by name), the categories
/// past `top` summed into one entry at the end, named `"(N others)"` so that it cannot be taken
/// for a category of the data (HGNC has a locus group `other`).
pub(super) fn counts_per_category(
    texts: &TextColumn,
    filter: &YearFilter,
    top: usize,
) -> Vec<(String, u64)> {
    let mut counts = vec![0u64; texts.names.len()];
    for (index, id) in texts.ids.iter().enumerate() {
        if let Some(id) = id
            && filter.keeps(index)
        {
            counts[*id as usize] += 1;
        }
    }
    let mut sorted: Vec<(&str, u64)> = texts
        .names
        .iter()
        .map(String::as_str)
        .zip(counts)
        .filter(|(_, count)| *count > 0)
        .collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let rest = sorted.len().saturating_sub(top);
    let other: u64 = sorted.iter().skip(top).map(|(_, count)| count).sum();
    let mut shown: Vec<(String, u64)> = sorted
        .into_iter()
        .take(top)
        .map(|(name, count)| (name.to_owned(), count))
        .collect();
    if rest > 0 {
        shown.push((format!("({rest} others)"), other));
    }
    shown
}

/// The `(x, y)` of every record `filter` keeps that has both numbers.
pub(super) fn points(xs: &NumberColumn, ys: &NumberColumn, filter: &YearFilter) -> Vec<(f64, f64)> {
    xs.values
        .iter()
        .zip(&ys.values)
        .enumerate()
        .filter_map(|(index, (x, y))| Some((index, ((*x)?, (*y)?))))
        .filter(|(index, _)| filter.keeps(*index))
        .map(|(_, point)| point)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::dataset::{DataSet, Record};
    use serde_json::json;

    #[test]
    fn years_come_from_dates_years_and_integral_numbers() {
        for (value, year) in [
            (json!("2009-07-20"), Some(2009)),
            (json!("1880-01-01T00:00:00.000"), Some(1880)),
            (json!(" 1999 "), Some(1999)),
            (json!("-300"), Some(-300)),
            (json!("-300-01-01"), Some(-300)),
            (json!(1986), Some(1986)),
            (json!(1986.0), Some(1986)),
            (json!(1986.5), None),
            (json!(1e300), None),
            (json!("99999999999"), None),
            (json!("2009/07/20"), None),
            (json!("july"), None),
            (json!("-"), None),
            (json!(""), None),
            (json!(null), None),
            (json!(["2009"]), None),
        ] {
            assert_eq!(year_of(&value), year, "{value}");
        }
    }

    fn data(records: Vec<Value>) -> DataSet {
        DataSet::new(
            records
                .into_iter()
                .enumerate()
                .map(|(i, fields)| Record {
                    id: i.to_string(),
                    fields: fields.as_object().unwrap().clone(),
                })
                .collect(),
        )
    }

    #[test]
    fn per_year_counts_span_the_whole_range() {
        let d = data(vec![
            json!({"d": "2001-01-01"}),
            json!({"d": "2003-05-05"}),
            json!({"d": 2003}),
            json!({"d": "1990-01-01"}),
            json!({"other": "2002"}),
        ]);
        let columns = Columns::uncached(&d);
        let years = columns.years("d");
        assert_eq!(
            counts_per_year(&years, 2000, 2005),
            Some(vec![0, 1, 0, 2, 0, 0])
        );
        assert_eq!(counts_per_year(&years, 1990, 1990), Some(vec![1]));
        assert_eq!(counts_per_year(&years, 1991, 2000), None);
        assert_eq!(counts_per_year(&columns.years("nope"), -5000, 9999), None);
        assert_eq!(year_span(&years), Some((1990, 2003)));
        assert_eq!(year_span(&columns.years("nope")), None);
    }

    #[test]
    fn categories_are_largest_first_with_the_rest_summed() {
        let d = data(vec![
            json!({"c": "b", "year": 2000}),
            json!({"c": "a", "year": 2000}),
            json!({"c": "b", "year": 2000}),
            json!({"c": "c", "year": 2000}),
            json!({"c": "d", "year": 1800}),
            json!({"c": 7, "year": 2000}),
            json!({"c": " ", "year": 2000}),
            json!({"c": "a"}),
        ]);
        let columns = Columns::uncached(&d);
        let texts = columns.texts("c");
        let all = counts_per_category(&texts, &YearFilter::All, 10);
        let expected = [("a", 2), ("b", 2), ("7", 1), ("c", 1), ("d", 1)];
        let got: Vec<(&str, u64)> = all.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        assert_eq!(got, expected);

        let filter = YearFilter::Years(columns.years("year"), 1900, 2100);
        let in_range = counts_per_category(&texts, &filter, 2);
        let got: Vec<(&str, u64)> = in_range.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        assert_eq!(got, [("b", 2), ("7", 1), ("(2 others)", 2)]);
    }

    #[test]
    fn default_fields_are_found_in_order() {
        let hgnc = data(vec![
            json!({"x": 1, "recclass": "L6"}),
            json!({"date_approved_reserved": "2000", "locus_group": "other"}),
        ]);
        let meteorites = data(vec![
            json!({"year": "1880-01-01T00:00:00.000", "recclass": "L6"}),
            json!({"date_approved_reserved": "not a date"}),
        ]);
        let neither = data(vec![json!({"x": 1})]);
        let hgnc = Columns::uncached(&hgnc);
        let meteorites = Columns::uncached(&meteorites);
        let neither = Columns::uncached(&neither);
        assert_eq!(default_year_field(&hgnc), Some("date_approved_reserved"));
        assert_eq!(default_year_field(&meteorites), Some("year"));
        assert_eq!(default_year_field(&neither), None);
        assert_eq!(default_category_field(&hgnc), Some("locus_group"));
        assert_eq!(default_category_field(&meteorites), Some("recclass"));
        assert_eq!(default_category_field(&neither), None);
    }

    #[test]
    fn points_need_two_numbers_in_bounds_and_in_range() {
        let d = data(vec![
            json!({"x": "1.5", "y": 2, "year": 2000}),
            json!({"x": "NaN", "y": 2, "year": 2000}),
            json!({"x": 1, "year": 2000}),
            json!({"x": "a", "y": 1, "year": 2000}),
            json!({"x": 1e301, "y": 1, "year": 2000}),
            json!({"x": -1e300, "y": 1e300, "year": 2000}),
            json!({"x": 3, "y": 4, "year": 1900}),
        ]);
        let columns = Columns::uncached(&d);
        let (xs, ys) = (columns.numbers("x"), columns.numbers("y"));
        assert_eq!(
            points(&xs, &ys, &YearFilter::All),
            vec![(1.5, 2.0), (-1e300, 1e300), (3.0, 4.0)]
        );
        let filter = YearFilter::Years(columns.years("year"), 1950, 2050);
        assert_eq!(points(&xs, &ys, &filter), vec![(1.5, 2.0), (-1e300, 1e300)]);
    }
}
