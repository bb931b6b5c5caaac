//! The `assetgw` binary: `search` against a running stack, `check-config`.

use std::process::{Command, Output};

use crate::harness::*;

/// The binary, with the test PKI's court certificates.
fn assetgw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_assetgw"))
        .args(args)
        .env_remove("ASSETGW_CONFIG")
        .env("ASSETGW_PKI", test_pki())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn search_prints_a_table_and_json() {
    let stack = Stack::start(standard()).await;
    let url = stack.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        let table = assetgw(&["search", "--gateway", &url, "--case", CASE, "--debtor", RICH]);
        let json = assetgw(&["search", "--gateway", &url, "--case", CASE, "--debtor", RICH, "--json", "--stream"]);
        (table, json)
    })
    .await
    .unwrap();
    let (table, json) = out;
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    for expected in ["Case （2024）京0105执1234号", "bank-a", "securities", "Totals:", "deposits CNY"] {
        assert!(table.contains(expected), "{expected} missing from\n{table}");
    }
    assert!(json.status.success(), "{}", text(&json.stderr));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["caseNumber"], CASE);
    assert_eq!(value["debtors"][0]["debtor"]["residentId"], RICH);
    assert_eq!(value["debtors"][0]["registries"].as_array().unwrap().len(), 6);
    assert!(text(&json.stderr).contains("bank-a"), "streamed progress goes to stderr");
}

#[tokio::test]
async fn the_table_counts_in_words_and_shows_each_assets_seizures() {
    let stack = Stack::start(standard()).await;
    let flat = crate::ledger::asset(&stack, assetgw::core::proto::AssetKind::RealEstate).await;
    crate::ledger::place(&mut crate::ledger::seizures(&stack), "t-1", crate::ledger::A, &flat, 0).await;
    let url = stack.url.clone();
    let (rich, nobody, short) = tokio::task::spawn_blocking(move || {
        let search = |debtor: &str, stream: bool| {
            let mut args = vec!["search", "--gateway", &url, "--case", CASE, "--debtor", debtor];
            if stream {
                args.push("--stream");
            }
            assetgw(&args)
        };
        (search(RICH, false), search(NOBODY, true), search("123", false))
    })
    .await
    .unwrap();
    let table = text(&rich.stdout);
    assert!(
        table.contains("seizures"),
        "a seizures column:
{table}"
    );
    let row = table.lines().find(|l| l.contains(&flat.asset_id)).unwrap();
    assert!(
        row.contains(&format!("first {}", crate::ledger::A)),
        "the seized unit shows who holds it:
{row}"
    );
    assert!(
        table.lines().any(|l| l.contains("deposit") && l.contains("none")),
        "unseized assets say none:
{table}"
    );
    let nobody_out = text(&nobody.stdout) + &text(&nobody.stderr);
    assert!(nobody_out.contains("Totals: 0 assets\n") || nobody_out.contains("Totals: 0 assets\r"), "{nobody_out}");
    assert!(!nobody_out.contains("()") && !nobody_out.contains(" 1 assets"), "{nobody_out}");
    assert!(nobody_out.contains("  0 assets"), "streamed lines count in words:\n{nobody_out}");
    let err = text(&short.stderr);
    assert!(
        err.contains("query.debtors[0].resident_id"),
        "a short number is refused as the resident ID it was meant to be: {err}"
    );
}

#[tokio::test]
async fn search_explains_a_refusal_field_by_field() {
    let stack = Stack::start(standard()).await;
    let url = stack.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        assetgw(&["search", "--gateway", &url, "--case", "（2024）京0105民初1号", "--debtor", "360426199101010072"])
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("InvalidArgument"), "{err}");
    assert!(err.contains("query.case_number: is a `民初` case"), "{err}");
    assert!(err.contains("query.debtors[0].resident_id: has check character"), "{err}");
}

#[test]
fn search_without_a_gateway_says_so() {
    let out = assetgw(&["search", "--gateway", "http://127.0.0.1:1", "--case", CASE, "--debtor", RICH]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cannot reach the gateway"), "{}", text(&out.stderr));
}

#[test]
fn check_config_reports_every_problem_and_accepts_the_shipped_file() {
    let ok = assetgw(&["check-config", "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/config/assetgw.toml")]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("OK, 6 registries"));

    let dir = std::env::temp_dir().join(format!("assetgw-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[search]\ndeadline = \"1s\"\ncolour = 1\n[[registries]]\nname = \"x\"\nkind = \"bank\"\nendpoint = \"http://127.0.0.1:9\"\ncalls = { timeout = \"2s\" }\n",
    )
    .unwrap();
    let out = assetgw(&["check-config", "--config", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("4 configuration problem(s)"), "{err}");
    assert!(err.contains("registries[0].endpoint: `http://127.0.0.1:9` is plaintext"), "{err}");
    assert!(err.contains("calls.timeout: (3s, the default) is longer than search.deadline (1s)"), "{err}");
    assert!(err.contains("search.colour: unknown key"), "{err}");
    assert!(err.contains("registries[0].calls.timeout: (2s) is longer than search.deadline (1s)"), "{err}");
    let missing = assetgw(&["check-config", "--config", "/no/such/file.toml"]);
    assert!(text(&missing.stderr).contains("cannot read"), "{}", text(&missing.stderr));
}

#[tokio::test]
async fn call_sends_json_and_reports_errors() {
    let stack = Stack::start(standard()).await;
    let url = stack.url.clone();
    let (found, missing, unknown) = tokio::task::spawn_blocking(move || {
        let search = format!(r#"{{"query":{{"caseNumber":"{CASE}","debtors":[{{"residentId":"{RICH}"}}]}}}}"#);
        (
            assetgw(&["call", "--gateway", &url, "AssetSearchService/Search", &search]),
            assetgw(&[
                "call",
                "--gateway",
                &url,
                "SeizureService/GetSeizureQueue",
                "--court",
                "京0105",
                r#"{"assetKind":"ASSET_KIND_AIRCRAFT","assetId":"B-0000"}"#,
            ]),
            assetgw(&["call", "--gateway", &url, "SeizureService/Nope", "{}"]),
        )
    })
    .await
    .unwrap();
    assert!(found.status.success(), "{}", text(&found.stderr));
    let value: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(value["caseNumber"], CASE);
    assert!(
        text(&missing.stderr).contains("NotFound: no seizure has ever been placed on aircraft:B-0000"),
        "{}",
        text(&missing.stderr)
    );
    assert!(
        text(&unknown.stderr).contains("SeizureService/PlaceSeizure"),
        "lists the methods: {}",
        text(&unknown.stderr)
    );
}

#[test]
fn the_deployment_configurations_are_valid() {
    let root = env!("CARGO_MANIFEST_DIR");
    let compose = assetgw(&["check-config", "--config", &format!("{root}/deploy/compose/assetgw.toml")]);
    assert!(compose.status.success(), "{}", text(&compose.stderr));
    // The Kubernetes ConfigMaps embed the gateway's TOML and its registry directory, indented under `NAME: |`.
    let embedded = |file: &str, key: &str| {
        let yaml = std::fs::read_to_string(format!("{root}/deploy/k8s/{file}")).unwrap();
        let body = yaml.split(&format!("{key}: |\n")).nth(1).unwrap().to_string();
        let toml: String = body.lines().map(|l| l.strip_prefix("    ").unwrap_or(l).to_string() + "\n").collect();
        let path = scratch().join(key);
        std::fs::write(&path, toml).unwrap();
        path
    };
    let (config, directory) =
        (embedded("configmap.yaml", "assetgw.toml"), embedded("registries.yaml", "registries.toml"));
    let k8s = Command::new(env!("CARGO_BIN_EXE_assetgw"))
        .args(["check-config", "--config", config.to_str().unwrap()])
        .env("ASSETGW__NETWORK__DIRECTORY", &directory)
        .output()
        .unwrap();
    assert!(k8s.status.success(), "{}", text(&k8s.stderr));
    assert!(text(&k8s.stdout).contains("OK, 4 registries"), "{}", text(&k8s.stdout));
}

#[test]
fn pki_issue_never_overwrites_an_identity_without_force() {
    let dir = scratch().join("pki");
    let dir = dir.to_str().unwrap();
    assert!(assetgw(&["pki", "init", "--dir", dir]).status.success());
    let issue =
        |extra: &[&str]| assetgw(&[&["pki", "issue", "--dir", dir, "gateway", "--host", "gw.example"], extra].concat());
    let first = issue(&[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let cert = std::fs::read(std::path::Path::new(dir).join("gateway.pem"));
    let again = issue(&[]);
    assert!(!again.status.success(), "a second issue replaced the gateway's identity");
    assert!(text(&again.stderr).contains("--force"), "{}", text(&again.stderr));
    assert_eq!(std::fs::read(std::path::Path::new(dir).join("gateway.pem")).ok(), cert.ok(), "left as it was");
    assert!(issue(&["--force"]).status.success());
}

#[test]
fn mock_settings_out_of_range_are_refused_before_anything_starts() {
    let pki = scratch().join("pki");
    let pki = pki.to_str().unwrap();
    for (args, says) in [
        (vec!["--holders", "2.0"], "--holders 2 is not between 0.0 and 1.0"),
        (vec!["--deferred", "30s..1m", "--deferred-share=1.5"], "--deferred-share 1.5 is not between 0.0 and 1.0"),
        (vec!["--deferred", "2h..30s"], "the lower bound is above the upper"),
        (vec!["--deferred", "next 25:00"], "is not a time of day like 06:00"),
    ] {
        let mut all = vec!["mock-fleet", "--banks", "3", "--listen", "127.0.0.1:0", "--pki", pki];
        all.extend(args);
        let out = assetgw(&all);
        assert!(!out.status.success(), "{all:?}");
        assert!(text(&out.stderr).contains(says), "{all:?}: {}", text(&out.stderr));
    }
}
