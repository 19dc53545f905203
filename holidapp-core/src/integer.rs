//! Integers as JSON counts them: `386`, and also `386.0` or `3.86e2`, the same number written
//! with a fraction or an exponent.
//!
//! JSON has one kind of number, and JSON Schema's `integer` is any number whose fraction is
//! zero, so a client (or a generator of them) may well send `386.0` where an integer is asked
//! for. serde's integer types refuse such numbers; these deserializers take them, within the
//! target type's range, and refuse every number with a non-zero fraction.
//!
//! ```
//! #[derive(serde::Deserialize)]
//! struct Body {
//!     #[serde(default, deserialize_with = "holidapp_core::integer::option")]
//!     attempts: Option<u32>,
//! }
//! let body: Body = serde_json::from_str(r#"{"attempts": 3.0}"#).unwrap();
//! assert_eq!(body.attempts, Some(3));
//! assert!(serde_json::from_str::<Body>(r#"{"attempts": 3.5}"#).is_err());
//! let body: Body = serde_json::from_str(r#"{"attempts": null}"#).unwrap();
//! assert_eq!(body.attempts, None);
//! ```

use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{self, Unexpected, Visitor};

/// 2^63, as a float: the first integer past `i64::MAX`.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
/// 2^64, as a float: the first integer past `u64::MAX`.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

/// An integral JSON number as an `i64` or a `u64`: `None` when it has a fraction or lies
/// outside both ranges.
pub fn whole(value: f64) -> Option<Whole> {
    if !value.is_finite() || value.fract() != 0.0 {
        None
    } else if (0.0..TWO_POW_64).contains(&value) {
        // Exact: the value is a whole number within the range.
        Some(Whole::Unsigned(value as u64))
    } else if (-TWO_POW_63..0.0).contains(&value) {
        Some(Whole::Signed(value as i64))
    } else {
        None
    }
}

/// A whole number read from a JSON number (see [`whole`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whole {
    /// A negative number.
    Signed(i64),
    /// Zero or a positive number.
    Unsigned(u64),
}

impl fmt::Display for Whole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Whole::Signed(n) => n.fmt(f),
            Whole::Unsigned(n) => n.fmt(f),
        }
    }
}

/// Deserializes an integer of type `T`, written as JSON writes any number (see the
/// [module docs](self)).
pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    d.deserialize_any(IntegerVisitor(PhantomData))
}

/// Deserializes an optional integer of type `T`: `null` (or an absent field, with
/// `#[serde(default)]`) is `None`, any other value is read as [`deserialize`] reads it.
pub fn option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    d.deserialize_option(OptionVisitor(PhantomData))
}

struct IntegerVisitor<T>(PhantomData<T>);

impl<T: TryFrom<i64> + TryFrom<u64>> IntegerVisitor<T> {
    fn fits<E: de::Error>(&self, value: Whole) -> Result<T, E> {
        let converted = match value {
            Whole::Signed(n) => T::try_from(n).ok(),
            Whole::Unsigned(n) => T::try_from(n).ok(),
        };
        converted.ok_or_else(|| {
            E::invalid_value(
                Unexpected::Other(&format!("integer `{value}`")),
                &format!("an integer that fits {}", std::any::type_name::<T>()).as_str(),
            )
        })
    }
}

impl<'de, T: TryFrom<i64> + TryFrom<u64>> Visitor<'de> for IntegerVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        if v < 0 {
            self.fits(Whole::Signed(v))
        } else {
            self.fits(Whole::Unsigned(v as u64))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.fits(Whole::Unsigned(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        match whole(v) {
            Some(value) => self.fits(value),
            None => Err(E::invalid_type(Unexpected::Float(v), &self)),
        }
    }
}

struct OptionVisitor<T>(PhantomData<T>);

impl<'de, T: TryFrom<i64> + TryFrom<u64>> Visitor<'de> for OptionVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: TryFrom<i64> + TryFrom<u64>>(json: &str) -> Result<T, serde_json::Error> {
        deserialize(&mut serde_json::Deserializer::from_str(json))
    }

    #[test]
    fn integers_may_be_written_with_a_zero_fraction_or_an_exponent() {
        assert_eq!(read::<u32>("386").unwrap(), 386);
        assert_eq!(read::<u32>("386.0").unwrap(), 386);
        assert_eq!(read::<u32>("3.86e2").unwrap(), 386);
        assert_eq!(read::<i32>("-5e0").unwrap(), -5);
        assert_eq!(read::<i32>("-0.0").unwrap(), 0);
        assert_eq!(read::<u64>("1e19").unwrap(), 10_000_000_000_000_000_000);
        assert!(read::<u32>("386.5").is_err());
        assert!(read::<u32>("-1").is_err());
        assert!(read::<u32>("4294967296.0").is_err());
        assert!(read::<u64>("1e20").is_err());
        assert!(read::<u32>("\"386\"").is_err());
        assert!(read::<u32>("true").is_err());
        assert_eq!(
            whole(-9_223_372_036_854_775_808.0),
            Some(Whole::Signed(i64::MIN))
        );
        assert_eq!(whole(TWO_POW_64), None);
        assert_eq!(whole(f64::NAN), None);
    }

    #[test]
    fn null_is_no_integer() {
        let read = |json: &str| option::<_, u32>(&mut serde_json::Deserializer::from_str(json));
        assert_eq!(read("null").unwrap(), None);
        assert_eq!(read("7.0").unwrap(), Some(7));
        assert!(read("7.25").is_err());
        let value = |v: serde_json::Value| option::<_, u32>(v);
        assert_eq!(value(serde_json::Value::Null).unwrap(), None);
        assert_eq!(value(serde_json::json!(2e0)).unwrap(), Some(2));
    }
}
