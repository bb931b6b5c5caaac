//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and generates
//! the tonic services; the descriptor set is kept for server reflection and
//! for printing results as canonical proto JSON.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/assetgw/v1/assets.proto",
        "proto/assetgw/v1/registry.proto",
        "proto/assetgw/v1/search.proto",
        "proto/assetgw/v1/seizure.proto",
        "proto/assetgw/mock/v1/admin.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(out.join("assetgw_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure().compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds the ledger schema at compile time.
    println!("cargo:rerun-if-changed=migrations");
    Ok(())
}
