//! A custom storage backend: [`AuditedStore`] wraps any [`DocumentStore`] and keeps an audit
//! trail of every write (who changed which document of which tenant, to which version).
//!
//! Every repository of `openframe-data` (machines, organizations, tags, users, API keys, ...)
//! is written once over the narrow [`DocumentStore`] trait, so a new backend implements these
//! nine methods and gets all of them. A brand-new engine (FoundationDB, DynamoDB, ...)
//! implements the same methods against its driver; a decorator like this one forwards them.
//! Either way, `tests/conformance.rs` certifies it with the same conformance kit the built-in
//! backends run (`openframe_data::document_store_conformance!`).

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use openframe_core::Result;
use openframe_data::store::{
    DocumentStore, FacetSpec, Filter, FindQuery, Partition, Schema, StoredDoc, Value,
};

/// One write, as recorded in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// `insert`, `replace` or `delete`.
    pub operation: &'static str,
    /// The collection (e.g. `machines`).
    pub collection: &'static str,
    /// The tenant partition (or `_platform`).
    pub partition: String,
    /// The document id.
    pub id: String,
    /// The version written (`None` for deletes).
    pub version: Option<u64>,
}

/// A [`DocumentStore`] that records every successful write of the store it wraps.
#[derive(Debug)]
pub struct AuditedStore<S> {
    inner: S,
    trail: Mutex<Vec<AuditEntry>>,
}

impl<S: DocumentStore> AuditedStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Arc<Self> {
        Arc::new(Self {
            inner,
            trail: Mutex::new(Vec::new()),
        })
    }

    /// The writes so far, oldest first.
    pub fn trail(&self) -> Vec<AuditEntry> {
        self.trail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(
        &self,
        operation: &'static str,
        schema: &Schema,
        partition: &Partition,
        id: &str,
        version: Option<u64>,
    ) {
        self.trail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(AuditEntry {
                operation,
                collection: schema.collection,
                partition: partition.as_str().to_owned(),
                id: id.to_owned(),
                version,
            });
    }
}

#[async_trait]
impl<S: DocumentStore> DocumentStore for AuditedStore<S> {
    fn backend(&self) -> &'static str {
        "audited"
    }

    async fn get(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        id: &str,
    ) -> Result<Option<StoredDoc>> {
        self.inner.get(schema, partition, id).await
    }

    async fn get_many(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        ids: &[String],
    ) -> Result<Vec<StoredDoc>> {
        self.inner.get_many(schema, partition, ids).await
    }

    async fn insert(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        doc: StoredDoc,
    ) -> Result<()> {
        let (id, version) = (doc.id.clone(), doc.version);
        self.inner.insert(schema, partition, doc).await?;
        self.record("insert", schema, partition, &id, Some(version));
        Ok(())
    }

    async fn replace(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        doc: StoredDoc,
        expected_version: u64,
    ) -> Result<()> {
        let (id, version) = (doc.id.clone(), doc.version);
        self.inner
            .replace(schema, partition, doc, expected_version)
            .await?;
        self.record("replace", schema, partition, &id, Some(version));
        Ok(())
    }

    async fn delete(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        id: &str,
    ) -> Result<bool> {
        let deleted = self.inner.delete(schema, partition, id).await?;
        if deleted {
            self.record("delete", schema, partition, id, None);
        }
        Ok(deleted)
    }

    async fn find(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        query: &FindQuery,
    ) -> Result<Vec<StoredDoc>> {
        self.inner.find(schema, partition, query).await
    }

    async fn count(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        filter: &Filter,
    ) -> Result<u64> {
        self.inner.count(schema, partition, filter).await
    }

    async fn facet(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        field: &'static str,
        filter: &Filter,
    ) -> Result<Vec<(Value, u64)>> {
        self.inner.facet(schema, partition, field, filter).await
    }

    async fn facet_many(
        &self,
        schema: &'static Schema,
        partition: &Partition,
        base: &Filter,
        facets: &[FacetSpec],
    ) -> Result<Vec<Vec<(Value, u64)>>> {
        // Forward explicitly: the inner store may answer all facets in one pass.
        self.inner.facet_many(schema, partition, base, facets).await
    }
}
