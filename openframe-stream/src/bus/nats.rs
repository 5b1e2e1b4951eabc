//! NATS JetStream backend (in progress).
