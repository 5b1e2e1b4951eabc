//! processor (in progress).
