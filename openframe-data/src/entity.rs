//! How a domain type maps onto a stored document.

use openframe_core::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{Schema, StoredDoc, Value};

/// Largest accepted document body, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A domain type stored through a [`DocumentStore`](crate::store::DocumentStore).
///
/// Implementations declare the collection [`Schema`], extract index values and search text,
/// and (de)serialize the body. The default body is the type's serde JSON.
pub trait Entity: Clone + Send + Sync + 'static {
    /// The collection layout.
    const SCHEMA: &'static Schema;

    /// The document id.
    fn doc_id(&self) -> &str;
    /// The optimistic-concurrency version.
    fn version(&self) -> u64;
    /// Sets the version (done by the repository on every write).
    fn set_version(&mut self, version: u64);
    /// Checks input limits before any write.
    fn validate(&self) -> Result<()>;
    /// Index values in [`Schema::fields`] order.
    fn index_values(&self) -> Vec<Value>;
    /// Texts matched by free-text search (lowercased by the caller).
    fn search_texts(&self) -> Vec<&str>;
    /// The body as JSON.
    fn to_body(&self) -> Result<String>;
    /// Reads a body back.
    fn from_body(body: &str) -> Result<Self>;
}

/// The default body encoding: the type's own serde JSON.
pub fn serde_body<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::Internal(format!("cannot encode document: {e}").into()))
}

/// The default body decoding.
pub fn serde_from_body<T: DeserializeOwned>(entity: &'static str, body: &str) -> Result<T> {
    serde_json::from_str(body)
        .map_err(|e| Error::Internal(format!("corrupt {entity} document: {e}").into()))
}

/// Joins search texts into the stored, lowercased search string. Fields are separated by a
/// unit separator so a needle never matches across two fields.
pub fn search_text(texts: &[&str]) -> String {
    let mut out = String::new();
    for (i, t) in texts.iter().enumerate() {
        if i > 0 {
            out.push('\u{1f}');
        }
        out.push_str(&t.to_lowercase());
    }
    out
}

/// Encodes an entity as a stored document (validating size).
pub fn to_doc<E: Entity>(entity: &E) -> Result<StoredDoc> {
    let body = entity.to_body()?;
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::invalid(E::SCHEMA.entity, "document is too large"));
    }
    let fields = entity.index_values();
    if fields.len() != E::SCHEMA.fields.len() {
        return Err(Error::Internal(
            format!(
                "{}: index values do not match the schema",
                E::SCHEMA.collection
            )
            .into(),
        ));
    }
    for (def, value) in E::SCHEMA.fields.iter().zip(&fields) {
        if !def.nullable && *value == Value::Null {
            return Err(Error::Internal(
                format!(
                    "{}: required index field {} is null",
                    E::SCHEMA.collection,
                    def.name
                )
                .into(),
            ));
        }
    }
    Ok(StoredDoc {
        id: entity.doc_id().to_owned(),
        version: entity.version(),
        fields,
        search: search_text(&entity.search_texts()),
        body,
    })
}

/// Decodes a stored document, taking the version from the store.
pub fn from_doc<E: Entity>(doc: &StoredDoc) -> Result<E> {
    let mut e = E::from_body(&doc.body)?;
    e.set_version(doc.version);
    Ok(e)
}

/// The parts of an [`Entity`] impl that every aggregate with an `id` (with `as_str()`), a
/// `version: u64` and an inherent `validate()` shares; `serde` adds the default JSON body
/// encoding under the given entity name; `serde, unvalidated` is for internal records with
/// nothing to validate.
///
/// ```text
/// impl Entity for Note {
///     const SCHEMA: &'static Schema = &NOTES;
///     openframe_data::entity_basics!("note", serde);
///     fn index_values(&self) -> Vec<Value> { vec![Value::str(&self.color)] }
///     fn search_texts(&self) -> Vec<&str> { vec![&self.text] }
/// }
/// ```
#[macro_export]
macro_rules! entity_basics {
    ($name:literal) => {
        fn doc_id(&self) -> &str {
            self.id.as_str()
        }
        fn version(&self) -> u64 {
            self.version
        }
        fn set_version(&mut self, version: u64) {
            self.version = version;
        }
        fn validate(&self) -> openframe_core::Result<()> {
            Self::validate(self)
        }
    };
    ($name:literal, serde, unvalidated) => {
        fn doc_id(&self) -> &str {
            self.id.as_str()
        }
        fn version(&self) -> u64 {
            self.version
        }
        fn set_version(&mut self, version: u64) {
            self.version = version;
        }
        fn validate(&self) -> openframe_core::Result<()> {
            Ok(())
        }
        fn to_body(&self) -> openframe_core::Result<String> {
            $crate::entity::serde_body(self)
        }
        fn from_body(body: &str) -> openframe_core::Result<Self> {
            $crate::entity::serde_from_body($name, body)
        }
    };
    ($name:literal, serde) => {
        $crate::entity_basics!($name);
        fn to_body(&self) -> openframe_core::Result<String> {
            $crate::entity::serde_body(self)
        }
        fn from_body(body: &str) -> openframe_core::Result<Self> {
            $crate::entity::serde_from_body($name, body)
        }
    };
}
pub use entity_basics;

/// Implements [`Timestamped`](crate::Timestamped) for types with an `updated_at` field.
#[macro_export]
macro_rules! timestamped {
    ($($ty:ty),+ $(,)?) => {
        $(
            impl $crate::Timestamped for $ty {
                fn set_updated_at(&mut self, now: openframe_core::Timestamp) {
                    self.updated_at = now;
                }
            }
        )+
    };
}
