//! The OpenFrame-rs reference server (in progress).

fn main() {}
