//! `openframe-server`: the OpenFrame-rs reference server. See `openframe-server --help`.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    openframe_server::cli::run(openframe_server::cli::Cli::parse())
}
