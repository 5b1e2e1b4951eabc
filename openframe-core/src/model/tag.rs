use serde::{Deserialize, Serialize};

use crate::{Error, Result, TagId, Timestamp, validate};

/// A label attached to machines (by id), unique by name per tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    /// The tag id.
    pub id: TagId,
    /// Name, unique per tenant (case-insensitive).
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Optional display colour, `#rrggbb`.
    pub color: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl Tag {
    /// A new tag.
    pub fn new(name: impl Into<String>, now: Timestamp) -> Self {
        Self {
            id: TagId::generate(),
            name: name.into().trim().to_owned(),
            description: None,
            color: None,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Checks input limits and the colour format.
    pub fn validate(&self) -> Result<()> {
        validate::name("name", &self.name)?;
        if let Some(d) = &self.description {
            validate::max_chars("description", d, validate::MAX_TEXT_LEN)?;
        }
        if let Some(c) = &self.color {
            let ok =
                c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(Error::invalid("color", "must be #rrggbb"));
            }
        }
        Ok(())
    }
}
