//! Parsers for the supported data set formats (placeholder, being written).
