//! graphql (in progress).
