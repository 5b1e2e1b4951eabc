//! Small input checks shared by the domain model.

use crate::error::{Error, Result};

/// Longest accepted short text (names, hostnames), in characters.
pub const MAX_NAME_LEN: usize = 255;
/// Longest accepted free text (descriptions), in characters.
pub const MAX_TEXT_LEN: usize = 4096;
/// Longest accepted search text, in characters.
pub const MAX_SEARCH_LEN: usize = 256;
/// Most items in a list field (tags, IPs, scopes) or a filter list.
pub const MAX_LIST_LEN: usize = 100;

/// Fails if `value` has more than `max` characters.
pub fn max_chars(field: &'static str, value: &str, max: usize) -> Result<()> {
    if value.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// Fails if `value` is blank or longer than [`MAX_NAME_LEN`].
pub fn name(field: &'static str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::invalid(field, "must not be blank"));
    }
    max_chars(field, value, MAX_NAME_LEN)?;
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Checks an optional short text.
pub fn opt_name(field: &'static str, value: Option<&str>) -> Result<()> {
    value.map_or(Ok(()), |v| name(field, v))
}

/// Fails if a list has more than [`MAX_LIST_LEN`] items.
pub fn list<T>(field: &'static str, items: &[T]) -> Result<()> {
    if items.len() > MAX_LIST_LEN {
        return Err(Error::invalid(
            field,
            format!("must have at most {MAX_LIST_LEN} items"),
        ));
    }
    Ok(())
}
