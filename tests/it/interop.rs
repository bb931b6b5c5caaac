//! Another language on both sides: a registry partner written in Python with
//! grpcio from our proto files joins a running gateway, passes the
//! conformance suite, and a Python court client searches through the gateway
//! and gets the partner's assets merged with the Rust mocks'. Needs the
//! virtualenv `scripts/test.sh` makes (`ASSETGW_PYTHON`); in CI its absence
//! is a failure, elsewhere a skip.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use assetgw::{
    core::proto::RegistryKind,
    ops::config::RegistryConfig,
    ops::pki::Role,
    tools::conformance::{self, Target},
};

use crate::harness::*;

fn python() -> Option<PathBuf> {
    match std::env::var_os("ASSETGW_PYTHON") {
        Some(p) => Some(p.into()),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("ASSETGW_PYTHON is not set: run the tests through scripts/test.sh, which makes the virtualenv")
        }
        None => {
            eprintln!("skipped: ASSETGW_PYTHON not set (scripts/test.sh sets it)");
            None
        }
    }
}

fn interop(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop").join(file)
}

/// Kills the Python registry when the test ends, passing or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_python_partner_and_a_python_court_work_with_the_gateway() {
    let Some(python) = python() else { return };
    let stubs = scratch().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let generated = Command::new(&python)
        .args(["-m", "grpc_tools.protoc", "-I", proto.to_str().unwrap()])
        .arg(format!("--python_out={}", stubs.display()))
        .arg(format!("--grpc_python_out={}", stubs.display()))
        .args(["assets", "registry", "search", "seizure"].map(|p| proto.join(format!("assetgw/v1/{p}.proto"))))
        .status()
        .unwrap();
    assert!(generated.success(), "stubs from proto/");

    let port = free_port().await;
    let tls = tls_of(Role::Registry("py-bank".into()));
    let mut child = Command::new(&python)
        .arg(interop("registry.py"))
        .arg(port.to_string())
        .args([&tls.cert, &tls.key, &tls.ca, &stubs])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _registry = Killed(child);
    let ready = tokio::task::spawn_blocking(move || BufReader::new(stdout).lines().next());
    let ready = tokio::time::timeout(Duration::from_secs(20), ready).await.unwrap().unwrap();
    assert_eq!(ready.map(Result::unwrap).as_deref(), Some("ready"));

    let address = format!("127.0.0.1:{port}");
    let target = Target {
        address: address.clone(),
        tls: Some((tls_of(Role::Gateway), "py-bank".into())),
        debtor: RICH.into(),
        deadline: Duration::from_secs(2),
        outsider: Some(tls_of(Role::Court("京0105".into()))),
        deferred_wait: Duration::from_secs(5),
    };
    let report = conformance::run(target).await.unwrap();
    assert!(report.passed(), "{}", report.text());

    let stack = Stack::with(standard(), |c| {
        c.registries.push(RegistryConfig::new("py-bank", RegistryKind::Bank, format!("https://{address}")))
    })
    .await;
    let court = tls_of(Role::Court("京0105".into()));
    let gateway = stack.url.trim_start_matches("https://").to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(interop("court.py"))
            .arg(gateway)
            .args([&court.cert, &court.key, &court.ca, &stubs])
            .args([CASE, RICH])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let registries = lines[0]["registries"].as_object().unwrap();
    assert_eq!(registries.len(), 7);
    assert!(registries.values().all(|s| s == "REGISTRY_STATUS_OK"), "{registries:?}");
    let assets = lines[0]["assets"].as_array().unwrap();
    let from = |registry: &str| {
        assets.iter().filter(|a| a["sources"].as_array().unwrap().iter().any(|s| s == registry)).count()
    };
    assert_eq!(from("py-bank"), 1, "the Python bank's deposit is in the merged list");
    assert!(from("bank-a") > 0 && from("realestate") > 0, "beside the Rust mocks' assets");
    assert!(assets.iter().any(|a| a["kind"] == "ASSET_KIND_DEPOSIT" && a["id"].as_str().unwrap().starts_with("991:")));
    assert_eq!(lines[1]["refused"], "INVALID_ARGUMENT", "{}", lines[1]);
}
