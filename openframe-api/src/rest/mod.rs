//! rest (in progress).
