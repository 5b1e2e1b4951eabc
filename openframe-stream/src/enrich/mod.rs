//! enrich (in progress).
