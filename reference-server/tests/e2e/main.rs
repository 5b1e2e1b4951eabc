//! End-to-end tests of the reference server, in one test binary (each spawns the real
//! `openframe-server` binary or wires the library in process).

#![allow(dead_code, unreachable_pub)]

mod jobs;
mod metrics;
mod readiness;
mod serve;
mod shutdown;
mod support;
