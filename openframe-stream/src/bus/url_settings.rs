//! The `?name=value&...` settings of a broker URL (`kafka://`, `nats://`), read the same way
//! for every bus.

use std::time::Duration;

use openframe_core::{Error, Result};

/// Splits `url` at its query: `(servers, [(name, value)...])`. A name without `=` has an
/// empty value; empty pairs are skipped.
pub(crate) fn split(url: &str) -> (&str, Vec<(&str, &str)>) {
    let (servers, query) = url.split_once('?').unwrap_or((url, ""));
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect();
    (servers, pairs)
}

/// The value of setting `name` as a whole number.
pub(crate) fn number(name: &str, value: &str) -> Result<u64> {
    value
        .parse::<u64>()
        .map_err(|_| Error::invalid(name.to_owned(), "must be a whole number"))
}

/// The value of setting `name` as milliseconds.
pub(crate) fn millis(name: &str, value: &str) -> Result<Duration> {
    number(name, value).map(Duration::from_millis)
}

/// The error for a setting the bus does not know.
pub(crate) fn unknown(name: &str) -> Error {
    Error::invalid("url", format!("unknown query parameter {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_servers_and_settings() {
        let (servers, pairs) = split("nats://a:1,nats://b:2?x=1&&flag&y=");
        assert_eq!(servers, "nats://a:1,nats://b:2");
        assert_eq!(pairs, [("x", "1"), ("flag", ""), ("y", "")]);
        assert_eq!(split("kafka://k:9092"), ("kafka://k:9092", vec![]));
        assert_eq!(millis("t", "250").unwrap(), Duration::from_millis(250));
        assert!(number("n", "-1").is_err());
        assert!(millis("t", "soon").is_err());
    }
}
