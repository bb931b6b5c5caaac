//! `assetgw dev` as a real process: it starts every mock and the gateway from a
//! config file, answers searches, logs JSON when asked, and exits cleanly on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use assetgw::core::proto::RegistryStatus;

use crate::harness::*;

#[tokio::test]
async fn dev_runs_the_stack_from_its_config_and_stops_on_sigterm() {
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/assetgw.toml")).unwrap();
    let pki = scratch().join("pki");
    // The shipped config with free ports, so the test never collides with a running stack. A port found free
    // can be taken by a parallel test before `dev` binds it: then the stack says so, and it gets new ports.
    let (child, gateway, banner, path) = 'start: {
        for _ in 0..3 {
            let mut config = shipped.replace("127.0.0.1:50051", &format!("127.0.0.1:{}", free_port().await));
            for port in 50061..=50066 {
                config = config.replace(&format!("127.0.0.1:{port}"), &format!("127.0.0.1:{}", free_port().await));
            }
            let gateway =
                config.lines().find(|l| l.starts_with("listen")).unwrap().split('"').nth(1).unwrap().to_string();
            let path = scratch().join("assetgw.toml");
            std::fs::write(&path, &config).unwrap();
            let fleet = format!("127.0.0.1:{}", free_port().await);
            let mut child = Command::new(env!("CARGO_BIN_EXE_assetgw"))
                .args(["dev", "--config", path.to_str().unwrap(), "--fleet", "20", "--fleet-listen", &fleet])
                .env("ASSETGW__TLS__CA", pki.join("ca.pem"))
                .env("ASSETGW__TLS__CERT", pki.join("gateway.pem"))
                .env("ASSETGW__TLS__KEY", pki.join("gateway.key"))
                .env("ASSETGW__AUDIT__KEY_FILE", pki.join("audit.key"))
                .env("ASSETGW__LOG__FORMAT", "json")
                .env("ASSETGW__LEDGER__URL", format!("sqlite://{}", scratch().join("ledger.db").display()))
                .env_remove("RUST_LOG")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let banner = tokio::task::spawn_blocking(move || {
                BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    .take_while(|l| !l.starts_with("Ctrl-C"))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap()
            .join("\n");
            if banner.contains("assetgw dev stack is up") {
                break 'start (child, gateway, banner, path);
            }
            let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(stderr.contains("cannot listen"), "dev did not start:\n{stderr}");
        }
        panic!("no free ports in three tries");
    };
    assert!(banner.contains("assetgw dev stack is up"), "{banner}");
    assert!(banner.contains("securities-csdc"), "{banner}");
    // Issue 31, item 12: the banner says which registries answer later, and when.
    for late in ["bank-ccb", "securities-csdc"] {
        let line = banner.lines().find(|l| l.trim_start().starts_with(late)).unwrap();
        assert!(line.contains("answers later: ready 10s..30s after a search"), "{line}");
    }
    // Issue 31, item 14: a second stack on the same ports says a stack is already running.
    let second = Command::new(env!("CARGO_BIN_EXE_assetgw"))
        .args(["dev", "--config", path.to_str().unwrap()])
        .env("ASSETGW__TLS__CA", pki.join("ca.pem"))
        .env("ASSETGW__TLS__CERT", pki.join("gateway.pem"))
        .env("ASSETGW__TLS__KEY", pki.join("gateway.key"))
        .env("ASSETGW__AUDIT__KEY_FILE", pki.join("audit.key"))
        .env("ASSETGW__LEDGER__URL", format!("sqlite://{}", scratch().join("ledger.db").display()))
        .output()
        .unwrap();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("a stack already running (another `assetgw dev` or `assetgw serve`)?"), "{said}");
    assert!(banner.contains("a fleet of 20 mock banks at https://127.0.0.1:"), "{banner}");
    // Its example commands name the gateway it started, whatever the port.
    assert!(banner.contains(&format!("search --gateway https://{gateway} ")), "{banner}");
    assert!(banner.contains(&format!("call --gateway https://{gateway} ")), "{banner}");

    // The stack made its own PKI: a demo court's certificate from it is accepted.
    let tls = assetgw::ops::pki::TlsFiles::of(&pki, &assetgw::ops::pki::Role::Court("京0105".into()))
        .client("localhost")
        .unwrap();
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://{gateway}")).unwrap().tls_config(tls).unwrap();
    let channel = tokio::time::timeout(Duration::from_secs(10), channel.connect()).await.unwrap().unwrap();
    let mut client = assetgw::core::proto::asset_search_service_client::AssetSearchServiceClient::new(channel);
    let mut request = tonic::Request::new(assetgw::core::proto::SearchRequest { query: Some(query(&[RICH])) });
    request.metadata_mut().insert(assetgw::gateway::auth::OFFICER_HEADER, "officer-7".parse().unwrap());
    let r = client.search(request).await.unwrap().into_inner();
    // The six configured registries and the fleet's twenty banks, each its own registry.
    assert_eq!(r.debtors[0].registries.len(), 26);
    assert!(r.debtors[0].registries.iter().any(|o| o.registry == "bank-0020"));
    // bank-ccb and the depository answer later (10 to 30 s): pending, under the reply's search id.
    let pending = |o: &&assetgw::core::proto::RegistryOutcome| ["bank-ccb", "securities-csdc"].contains(&&*o.registry);
    assert!(r.debtors[0].registries.iter().filter(pending).all(|o| status(o) == RegistryStatus::Pending));
    assert!(r.debtors[0].registries.iter().filter(|o| !pending(o)).all(|o| status(o) == RegistryStatus::Ok));
    assert!(!r.search_id.is_empty());

    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> =
        stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}"))).collect();
    assert!(lines.iter().any(|l| l["fields"]["message"] == "search complete"), "{stderr}");
    assert!(lines.iter().any(|l| l["fields"]["message"].as_str().unwrap_or("").starts_with("shutting down")));
    assert!(!stderr.contains(RICH));
}

#[tokio::test]
async fn the_readme_session_runs_as_printed() {
    let root = env!("CARGO_MANIFEST_DIR");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_assetgw")).parent().unwrap().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        // A person's pace: the late answers come and the bank cache expires before the second block.
        let mut session = Command::new("bash");
        session.arg(format!("{root}/scripts/readme-session.sh")).arg(bin).env("ASSETGW_SESSION_PAUSE", "35");
        session.output().unwrap()
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("every key line present"), "{said}");
}
