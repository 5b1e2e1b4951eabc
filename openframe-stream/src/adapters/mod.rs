//! Source adapters: one type per source that turns a [`RawRecord`] into [`UnifiedEvent`]s.
//!
//! Every adapter implements [`SourceAdapter`]; adding a tool is adding one module here and one
//! line in [`AdapterRegistry::builtin`]. Shared pieces: [`debezium`] (change envelopes) and
//! [`fields`] (defensive JSON field access and timestamp parsing).
//!
//! Errors: a record that cannot be parsed is [`AdapterError::Malformed`] (a poison record for
//! the dead-letter topic). A well-formed record of a type nobody mapped is *not* an error: it
//! becomes an event of category `UNKNOWN`.
//!
//! ```
//! use openframe_stream::adapters::{AdapterRegistry, RawRecord};
//! let registry = AdapterRegistry::builtin();
//! let raw = RawRecord::new(
//!     "openframe.agent-events",
//!     br#"{"tenant":"acme","machineId":"m-1","kind":"CAME_ONLINE","status":"ONLINE",
//!          "at":"2025-03-01T10:00:00Z"}"#.to_vec(),
//! );
//! let events = registry.adapt(&raw).unwrap();
//! assert_eq!(events[0].event_type, "DEVICE_ONLINE");
//! ```

/// Defines an adapter type holding the shared [`MappingTable`], with `new` and `Default`.
macro_rules! table_adapter {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name {
            table: std::sync::Arc<$crate::model::MappingTable>,
        }

        impl $name {
            /// An adapter classifying through `table`.
            pub fn new(table: std::sync::Arc<$crate::model::MappingTable>) -> Self {
                Self { table }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new(std::sync::Arc::new($crate::model::MappingTable::builtin()))
            }
        }
    };
}

pub mod debezium;
pub mod fields;
pub mod fleetdm;
pub mod meshcentral;
pub mod openframe_agent;
pub mod openframe_events;
mod slim;
pub mod tacticalrmm;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use openframe_core::Timestamp;

use crate::model::{MappingTable, ToolSource, UnifiedEvent};

pub use fleetdm::FleetDmAdapter;
pub use meshcentral::MeshCentralAdapter;
pub use openframe_agent::OpenframeAgentAdapter;
pub use openframe_events::OpenframeEventsAdapter;
pub use tacticalrmm::TacticalRmmAdapter;

/// Largest accepted payload, in bytes; larger records are [`AdapterError::Malformed`].
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// The routing header naming the payload type (`MESHCENTRAL_EVENT`, `SCRIPT_EXECUTED`, ...),
/// compatible with the original `message-type` header.
pub const MESSAGE_TYPE_HEADER: &str = "message-type";

/// One record as it came off the bus, before any parsing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawRecord {
    /// The topic (Kafka) or subject (NATS).
    pub topic: String,
    /// The record key, if any.
    pub key: Option<Vec<u8>>,
    /// The payload bytes (JSON for every built-in adapter; empty for a tombstone).
    pub payload: Vec<u8>,
    /// Headers; names are matched case-insensitively by [`RawRecord::header`].
    pub headers: BTreeMap<String, String>,
    /// The broker's record time, used when the payload carries none.
    pub timestamp: Option<Timestamp>,
    /// The broker position (`partition:offset`, stream sequence), kept as the event's
    /// `source_position` when the payload has no better one.
    pub position: Option<String>,
}

impl RawRecord {
    /// A record of `payload` on `topic`, without key, headers or time.
    pub fn new(topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            topic: topic.into(),
            payload: payload.into(),
            ..Self::default()
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets the broker time.
    pub fn with_timestamp(mut self, at: Timestamp) -> Self {
        self.timestamp = Some(at);
        self
    }

    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The [`MESSAGE_TYPE_HEADER`], upper-cased.
    pub fn message_type(&self) -> Option<String> {
        self.message_type_str().map(str::to_ascii_uppercase)
    }

    /// The [`MESSAGE_TYPE_HEADER`], trimmed but in its original case (no allocation); compare
    /// it with [`str::eq_ignore_ascii_case`] or [`RawRecord::message_type_is`].
    pub fn message_type_str(&self) -> Option<&str> {
        self.header(MESSAGE_TYPE_HEADER).map(str::trim)
    }

    /// `Some(true)` when the [`MESSAGE_TYPE_HEADER`] equals `expected` ignoring ASCII case,
    /// `Some(false)` when it differs, `None` without the header.
    pub fn message_type_is(&self, expected: &str) -> Option<bool> {
        self.message_type_str()
            .map(|t| t.eq_ignore_ascii_case(expected))
    }

    /// Whether the topic's last dot- or slash-separated segments end with `suffix`
    /// (so `tenant-a.fleet-mdm-activities` matches `fleet-mdm-activities`).
    pub fn topic_is(&self, suffix: &str) -> bool {
        self.topic == suffix
            || self
                .topic
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with(['.', '/', '_', '-']))
    }
}

/// Why a record could not be adapted.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdapterError {
    /// The record cannot be parsed (bad JSON, wrong types, missing fields, too large). Retrying
    /// will not help: send it to the dead-letter topic.
    #[error("malformed {tool} record: {reason}")]
    Malformed {
        /// The adapter's tool.
        tool: ToolSource,
        /// What is wrong, without payload contents.
        reason: String,
    },
    /// No adapter accepts the record's topic and headers.
    #[error("no adapter accepts topic {topic:?}")]
    Unsupported {
        /// The topic.
        topic: String,
    },
}

impl AdapterError {
    /// A [`AdapterError::Malformed`] of `tool`.
    pub fn malformed(tool: ToolSource, reason: impl Into<String>) -> Self {
        Self::Malformed {
            tool,
            reason: reason.into(),
        }
    }

    /// Whether the record is poison (dead-letter it, do not retry).
    pub fn is_poison(&self) -> bool {
        matches!(self, Self::Malformed { .. })
    }
}

/// Turns raw records of one source into unified events.
pub trait SourceAdapter: Send + Sync + Debug + 'static {
    /// The tool this adapter speaks for.
    fn tool(&self) -> ToolSource;

    /// Whether this adapter handles `record` (decided from the topic and headers only, never the
    /// payload).
    fn accepts(&self, record: &RawRecord) -> bool;

    /// Parses `record`. Returns no events for records that carry none (tombstones, deletes of
    /// log rows), one event usually, several when one record reports several facts.
    fn adapt(&self, record: &RawRecord) -> Result<Vec<UnifiedEvent>, AdapterError>;
}

/// The adapters of a pipeline, tried in order.
#[derive(Debug, Clone, Default)]
pub struct AdapterRegistry {
    adapters: Vec<Arc<dyn SourceAdapter>>,
}

impl AdapterRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every built-in adapter over the built-in mapping table.
    pub fn builtin() -> Self {
        Self::builtin_with(Arc::new(MappingTable::builtin()))
    }

    /// Every built-in adapter over `table`.
    pub fn builtin_with(table: Arc<MappingTable>) -> Self {
        Self::new()
            .with(MeshCentralAdapter::new(table.clone()))
            .with(FleetDmAdapter::new(table.clone()))
            .with(TacticalRmmAdapter::new(table.clone()))
            .with(OpenframeAgentAdapter::new(table.clone()))
            .with(OpenframeEventsAdapter::new(table))
    }

    /// Adds an adapter (tried after the existing ones).
    pub fn with(mut self, adapter: impl SourceAdapter) -> Self {
        self.adapters.push(Arc::new(adapter));
        self
    }

    /// The first adapter accepting `record`.
    pub fn find(&self, record: &RawRecord) -> Option<&Arc<dyn SourceAdapter>> {
        self.adapters.iter().find(|a| a.accepts(record))
    }

    /// Adapts `record` with the first accepting adapter, or [`AdapterError::Unsupported`].
    pub fn adapt(&self, record: &RawRecord) -> Result<Vec<UnifiedEvent>, AdapterError> {
        match self.find(record) {
            Some(adapter) => adapter.adapt(record),
            None => Err(AdapterError::Unsupported {
                topic: record.topic.clone(),
            }),
        }
    }
}
