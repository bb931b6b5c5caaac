#!/usr/bin/env bash
# The test suite: unit, property and integration tests (mock registries and the
# gateway over real gRPC on loopback). Installs nothing beyond the Rust
# toolchain's own crates.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --all-targets "$@"
