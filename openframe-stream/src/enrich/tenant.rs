//! Which tenant a record belongs to, when the adapted event does not say.

use std::fmt::Debug;

use async_trait::async_trait;
use openframe_core::{Error, Result, TenantId};

use crate::adapters::RawRecord;
use crate::model::UnifiedEvent;

/// The header the default resolver reads first.
pub const TENANT_HEADER: &str = "tenant-id";

/// The error field of an unresolvable tenant: the processor sends such records to the
/// dead-letter topic instead of retrying them.
pub const TENANT_FIELD: &str = "tenant";

/// Finds the tenant of a tool event (agent events carry their own).
///
/// `Ok(None)` means "unknown": the enricher then fails with `InvalidInput` on
/// [`TENANT_FIELD`], which the processor dead-letters.
#[async_trait]
pub trait TenantResolver: Send + Sync + Debug + 'static {
    /// The tenant of `event`, adapted from `record`.
    async fn resolve(&self, record: &RawRecord, event: &UnifiedEvent) -> Result<Option<TenantId>>;
}

/// The default [`TenantResolver`]: the record's [`TENANT_HEADER`] header, else the tenant of the
/// longest configured topic prefix that the topic starts with.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use openframe_core::TenantId;
/// use openframe_stream::adapters::RawRecord;
/// use openframe_stream::enrich::{HeaderTenantResolver, TenantResolver};
/// # use openframe_stream::model::{MappingTable, ToolSource, UnifiedEvent};
/// # let event = UnifiedEvent::new(&MappingTable::builtin(), uuid::Uuid::nil(), ToolSource::FleetMdm, "x", chrono::Utc::now(), None);
/// let acme = TenantId::parse("acme").unwrap();
/// let resolver = HeaderTenantResolver::new().with_topic_prefix("acme.", acme.clone());
/// let raw = RawRecord::new("acme.fleet-mdm-events", b"{}".to_vec());
/// assert_eq!(resolver.resolve(&raw, &event).await.unwrap(), Some(acme));
/// let raw = RawRecord::new("fleet-mdm-events", b"{}".to_vec()).with_header("tenant-id", "globex");
/// assert_eq!(resolver.resolve(&raw, &event).await.unwrap().unwrap().as_str(), "globex");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct HeaderTenantResolver {
    header: String,
    prefixes: Vec<(String, TenantId)>,
}

impl Default for HeaderTenantResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderTenantResolver {
    /// Reads [`TENANT_HEADER`]; no topic prefixes.
    pub fn new() -> Self {
        Self {
            header: TENANT_HEADER.to_owned(),
            prefixes: Vec::new(),
        }
    }

    /// Reads `name` instead of [`TENANT_HEADER`].
    pub fn with_header(mut self, name: impl Into<String>) -> Self {
        self.header = name.into();
        self
    }

    /// Maps topics starting with `prefix` to `tenant` (the longest matching prefix wins).
    pub fn with_topic_prefix(mut self, prefix: impl Into<String>, tenant: TenantId) -> Self {
        self.prefixes.push((prefix.into(), tenant));
        self.prefixes
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        self
    }
}

#[async_trait]
impl TenantResolver for HeaderTenantResolver {
    async fn resolve(&self, record: &RawRecord, _event: &UnifiedEvent) -> Result<Option<TenantId>> {
        if let Some(value) = record.header(&self.header) {
            return TenantId::parse(value.trim())
                .map(Some)
                .map_err(|_| Error::invalid(TENANT_FIELD, "the tenant header is not a valid id"));
        }
        Ok(self
            .prefixes
            .iter()
            .find(|(prefix, _)| record.topic.starts_with(prefix.as_str()))
            .map(|(_, tenant)| tenant.clone()))
    }
}

/// The error for an event whose tenant nobody could tell.
pub(crate) fn unresolved() -> Error {
    Error::invalid(
        TENANT_FIELD,
        "could not be resolved (no tenant in the event, no tenant header, no matching topic prefix)",
    )
}
