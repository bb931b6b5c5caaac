//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and generates
//! the tonic services; the descriptor set is kept for server reflection and
//! for printing results as canonical proto JSON. Lists the ledger's
//! migrations for embedding (sqlx's `migrate!` would build every database
//! driver a second time, for the compiler, to do the same).

use std::{env, fmt::Write, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/assetgw/v1/assets.proto",
        "proto/assetgw/v1/debtor.proto",
        "proto/assetgw/v1/distribution.proto",
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
    let mut list = String::new();
    for (name, dir) in [("SHARED", "migrations"), ("POSTGRES", "migrations/postgres"), ("SQLITE", "migrations/sqlite")]
    {
        println!("cargo:rerun-if-changed={dir}");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        writeln!(list, "pub const {name}: &[(&str, &str)] = &[")?;
        for file in files {
            let stem = file.file_stem().and_then(|s| s.to_str()).ok_or("a migration file name is not UTF-8")?;
            let path = std::fs::canonicalize(&file)?;
            writeln!(list, "    ({stem:?}, include_str!({path:?})),")?;
        }
        writeln!(list, "];")?;
    }
    std::fs::write(out.join("migrations.rs"), list)?;
    Ok(())
}
