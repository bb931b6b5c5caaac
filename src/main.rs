//! The `assetgw` binary: parses flags and hands them to the library ([`assetgw::tools::dispatch`]).

use std::process::ExitCode;

use assetgw::tools::{cli::Cli, dispatch};
use clap::Parser;

/// mimalloc: a search allocates and frees many small objects (protobuf
/// messages, strings, maps), where glibc's allocator spent a fifth of the
/// gateway's CPU (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match dispatch::run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
