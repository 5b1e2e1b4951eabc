//! # openframe-core
//!
//! The shared vocabulary of OpenFrame-rs. No I/O happens here.
//!
//! - [`id`]: typed, validated ids ([`TenantId`], [`MachineId`], ...). A `&TenantId` is the
//!   tenant scope every repository call takes.
//! - [`Clock`]: injectable time ([`SystemClock`], [`ManualClock`]).
//! - [`Error`]: error kinds with stable [`ErrorCode`]s, HTTP statuses and the JSON
//!   [`ErrorResponse`].
//! - [`page`]: Relay cursor pagination ([`PageRequest`], [`Cursor`], [`Page`]) and sort specs.
//! - [`model`]: tenants, users, organizations, machines, tags, integrated tools, tool
//!   connections and API keys.
//!
//! ```
//! use openframe_core::{Machine, MachineId, OsType, MachineStatus, ManualClock, Clock};
//! let clock = ManualClock::default();
//! let machine = Machine::new(MachineId::generate(), "web-01", OsType::Linux, clock.now());
//! assert_eq!(machine.status, MachineStatus::Pending);
//! assert!(machine.validate().is_ok());
//! ```

pub mod clock;
pub mod error;
mod headers;
pub mod id;
pub mod model;
pub mod page;
mod secret;
pub mod validate;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use error::{BoxError, Error, ErrorCode, ErrorResponse, FieldError, Result};
pub use headers::Headers;
pub use id::{
    ApiKeyId, MachineId, OrganizationId, ScriptId, TagId, TenantId, ToolConnectionId, ToolId,
    UserId,
};
pub use model::*;
pub use page::{
    Cursor, DEFAULT_PAGE_SIZE, Edge, FacetCount, MAX_PAGE_SIZE, Page, PageDirection, PageInfo,
    PageRequest, PageWindow, SortDirection, SortField, SortSpec,
};
pub use secret::{Secret, redact_url};
