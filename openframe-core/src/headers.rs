//! Message headers shared by the agent bus and the event bus.

use std::collections::{BTreeMap, btree_map};

use crate::error::{Error, Result};

/// Record headers: names mapped to one or more values, compared without regard to the order of
/// names (the order of the values of one name is kept).
///
/// The rules are the intersection of what Kafka and NATS carry unchanged. Names are 1 to 256
/// bytes of visible ASCII other than `:` and must not start with `Nats-` (reserved: NATS acts on
/// them). Values are at most 4096 bytes, without control characters and without leading or
/// trailing whitespace. A bus refuses other headers with `InvalidInput` on `headers`.
///
/// ```
/// use openframe_core::Headers;
/// let headers = Headers::new().with("message-type", "SCRIPT_EXECUTED").with("x-tag", "a");
/// assert_eq!(headers.get("message-type"), Some("SCRIPT_EXECUTED"));
/// assert!(headers.validate().is_ok());
/// assert!(Headers::new().with("bad:name", "1").validate().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(BTreeMap<String, Vec<String>>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value to `name` (builder style); see [`Headers::append`].
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.append(name, value);
        self
    }

    /// Adds a value to `name`, after its existing values.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.entry(name.into()).or_default().push(value.into());
    }

    /// Sets `name` to the single `value`, replacing its values.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), vec![value.into()]);
    }

    /// Removes `name`, returning its values.
    pub fn remove(&mut self, name: &str) -> Option<Vec<String>> {
        self.0.remove(name)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .and_then(|values| values.first())
            .map(String::as_str)
    }

    /// Every value of `name` (empty if absent).
    pub fn get_all(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    /// Every `(name, value)` pair, names in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().flat_map(|(name, values)| {
            values
                .iter()
                .map(move |value| (name.as_str(), value.as_str()))
        })
    }

    /// Every name with its values.
    pub fn entries(&self) -> btree_map::Iter<'_, String, Vec<String>> {
        self.0.iter()
    }

    /// The number of names.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks the rules every bus enforces on publish (see the type docs).
    pub fn validate(&self) -> Result<()> {
        const FIELD: &str = "headers";
        for (name, values) in &self.0 {
            if name.is_empty() || name.len() > 256 {
                return Err(Error::invalid(FIELD, "names must be 1 to 256 bytes"));
            }
            if !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(Error::invalid(
                    FIELD,
                    "names may contain only visible ASCII characters other than ':'",
                ));
            }
            if name
                .get(..5)
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case("nats-"))
            {
                return Err(Error::invalid(
                    FIELD,
                    "names starting with Nats- are reserved",
                ));
            }
            if values.is_empty() {
                return Err(Error::invalid(FIELD, "a name must have at least one value"));
            }
            for value in values {
                if value.len() > 4096 {
                    return Err(Error::invalid(FIELD, "values must be at most 4096 bytes"));
                }
                if value.chars().any(char::is_control) {
                    return Err(Error::invalid(
                        FIELD,
                        "values must not contain control characters",
                    ));
                }
                if value.trim() != value {
                    return Err(Error::invalid(
                        FIELD,
                        "values must not start or end with whitespace",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The headers' size in bytes (names and values), for record size limits.
    pub fn byte_len(&self) -> usize {
        self.iter()
            .map(|(name, value)| name.len() + value.len())
            .sum()
    }

    /// An upper bound of the headers' size in a NATS message (`NATS/1.0` line, `: ` and CRLF per
    /// value), for payload limits.
    pub fn wire_len(&self) -> usize {
        if self.is_empty() {
            return 0;
        }
        12 + self
            .iter()
            .map(|(name, value)| name.len() + value.len() + 4)
            .sum::<usize>()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut headers = Self::new();
        for (name, value) in iter {
            headers.append(name, value);
        }
        headers
    }
}
