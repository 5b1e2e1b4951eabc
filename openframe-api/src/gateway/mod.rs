//! gateway (in progress).
