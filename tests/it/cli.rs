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
        "[search]\ndeadline = \"1s\"\ncolour = 1\n[[registries]]\nname = \"x\"\nkind = \"bank\"\nendpoint = \"http://127.0.0.1:9\"\ncalls = { timeout = \"2s\", batch = { max_items = 0 } }\n",
    )
    .unwrap();
    let out = assetgw(&["check-config", "--config", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("5 configuration problem(s)"), "{err}");
    assert!(err.contains("registries[0](x).calls.batch.max_items: must be 1 to 256"), "{err}");
    assert!(err.contains("registries[0](x).endpoint: `http://127.0.0.1:9` is plaintext"), "{err}");
    assert!(err.contains("calls.timeout: (3s, the default) is longer than search.deadline (1s)"), "{err}");
    assert!(err.contains("search.colour: unknown key"), "{err}");
    assert!(err.contains("registries[0](x).calls.timeout: (2s) is longer than search.deadline (1s)"), "{err}");
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

/// Issue 31: the command line as a newcomer meets it.
#[tokio::test]
async fn item2_search_submit_prints_the_id_alone_and_follow_takes_it() {
    let mut regs = standard();
    regs.retain(|r| r.name != "bank-b");
    regs.push(Reg::new("bank-b", assetgw::core::proto::RegistryKind::Bank).deferred("300ms..600ms"));
    let stack = Stack::start(regs).await;
    let url = stack.url.clone();
    let (submitted, empty) = tokio::task::spawn_blocking(move || {
        let submitted = assetgw(&["search", "--gateway", &url, "--case", CASE, "--debtor", RICH, "--submit"]);
        let empty = assetgw(&["search", "--gateway", &url, "--case", CASE, "--follow", ""]);
        (submitted, empty)
    })
    .await
    .unwrap();
    assert!(submitted.status.success(), "{}", text(&submitted.stderr));
    let id = text(&submitted.stdout).trim().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "standard output is the id alone: {id:?}");
    assert!(text(&submitted.stderr).contains("follow it: assetgw search --follow"), "{}", text(&submitted.stderr));
    assert!(!empty.status.success());
    assert!(text(&empty.stderr).contains("--follow needs a search id, and it was empty"), "{}", text(&empty.stderr));
    let url = stack.url.clone();
    let follow =
        tokio::task::spawn_blocking(move || assetgw(&["search", "--gateway", &url, "--case", CASE, "--follow", &id]));
    // The poller asks by the gateway's (injected) clock: move it on until the late answer is in.
    let clock = stack.clock.clone();
    let ticking = tokio::spawn(async move {
        loop {
            clock.advance(chrono::Duration::seconds(1));
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    let followed = follow.await.unwrap();
    ticking.abort();
    assert!(followed.status.success(), "{}", text(&followed.stderr));
    assert!(text(&followed.stdout).contains("Totals:"), "{}", text(&followed.stdout));
}

#[test]
fn item3_a_malformed_case_number_is_said_before_anything_else() {
    let out = assetgw(&["search", "--gateway", "https://127.0.0.1:1", "--case", "2024京0105执1234", "--debtor", RICH]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--case `2024京0105执1234` must start with the year in brackets"), "{err}");
    assert!(!err.contains("--court"), "{err}");
}

#[tokio::test]
async fn item4_item5_call_names_a_wrong_field_path_a_bad_request_and_the_nearest_method() {
    let stack = Stack::start(standard()).await;
    let url = stack.url.clone();
    let (misspelt, past, bad, near, registry) = tokio::task::spawn_blocking(move || {
        let search = format!(r#"{{"query":{{"caseNumber":"{CASE}","debtors":[{{"residentId":"{RICH}"}}]}}}}"#);
        let call = |method: &str, request: &str, field: &[&str]| {
            let mut args = vec!["call", "--gateway", &url, method, request];
            args.extend(field);
            assetgw(&args)
        };
        (
            call("AssetSearchService/Search", &search, &["--field", "debtors.0.registrys"]),
            call("AssetSearchService/Search", &search, &["--field", "debtors.5.assets"]),
            call("AssetSearchService/Search", r#"{"query":{"caseNumbr":"x"}}"#, &[]),
            call("AssetSearchService/Serch", "{}", &[]),
            call("RegistryService/SearchAssets", "{}", &[]),
        )
    })
    .await
    .unwrap();
    assert!(!misspelt.status.success(), "a wrong path fails");
    let err = text(&misspelt.stderr);
    assert!(err.contains("has no field `registrys`") && err.contains("registries"), "{err}");
    assert!(text(&past.stderr).contains("has 1 item(s), so there is no item 5"), "{}", text(&past.stderr));
    let err = text(&bad.stderr);
    assert!(err.contains("cannot read the request") && err.contains("caseNumbr"), "{err}");
    assert!(!err.contains("render"), "{err}");
    assert!(text(&near.stderr).contains("did you mean AssetSearchService/Search?"), "{}", text(&near.stderr));
    let err = text(&registry.stderr);
    let listed = err.split("the gateway has").nth(1).unwrap_or_default();
    assert!(listed.contains("SeizureService/PlaceSeizure"), "{err}");
    assert!(!listed.contains("RegistryService/") && !listed.contains("MockAdmin"), "only the gateway's: {err}");
}

#[tokio::test]
async fn item6_no_gateway_names_the_address_the_cause_and_the_fix() {
    let port = free_port().await;
    let gateway = format!("https://127.0.0.1:{port}");
    let (refused, no_pki) = tokio::task::spawn_blocking(move || {
        let refused = assetgw(&["search", "--gateway", &gateway, "--case", CASE, "--debtor", RICH]);
        let no_pki = Command::new(env!("CARGO_BIN_EXE_assetgw"))
            .args(["search", "--gateway", &gateway, "--case", CASE, "--debtor", RICH])
            .env_remove("ASSETGW_PKI")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        (refused, no_pki)
    })
    .await
    .unwrap();
    let err = text(&refused.stderr);
    assert!(
        err.contains(&format!("cannot reach the gateway at https://127.0.0.1:{port}: connection refused")),
        "{err}"
    );
    assert!(err.contains("assetgw dev"), "{err}");
    let err = text(&no_pki.stderr);
    assert!(err.contains("run from the repository root") && !err.contains("pki issue"), "{err}");
}

#[tokio::test]
async fn item6_a_gateway_whose_certificate_is_from_another_ca_is_said_so() {
    let stack = Stack::start(standard()).await;
    let (url, other) = (stack.url.clone(), scratch().join("other-pki"));
    let out = tokio::task::spawn_blocking(move || {
        let other = other.to_str().unwrap().to_string();
        assert!(assetgw(&["pki", "init", "--dir", &other]).status.success());
        assert!(assetgw(&["pki", "issue", "--dir", &other, "court", "京0105"]).status.success());
        assetgw(&["search", "--gateway", &url, "--pki", &other, "--case", CASE, "--debtor", RICH])
    })
    .await
    .unwrap();
    let err = text(&out.stderr);
    assert!(err.contains(&format!("cannot reach the gateway at {}", stack.url)), "{err}");
    assert!(err.contains("its certificate was rejected") && err.contains("--pki"), "{err}");
}

#[test]
fn item14_an_unknown_kind_lists_the_kinds() {
    let out = assetgw(&["search", "--case", CASE, "--debtor", RICH, "--kind", "deposits"]);
    let err = text(&out.stderr);
    assert!(err.contains("unknown asset kind `deposits`; one of deposit, real_estate, patent"), "{err}");
}

/// Issue 31, item 10: every subcommand and every flag `--help` shows is in the README's Commands table.
#[test]
fn item10_every_command_and_flag_in_help_is_in_the_readme() {
    use clap::CommandFactory;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme.split("## Commands").nth(1).unwrap().split("\n## ").next().unwrap();
    let mut missing = Vec::new();
    fn walk(cmd: &clap::Command, path: &str, table: &str, missing: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let path = format!("{path} {}", sub.get_name());
            if sub.get_subcommands().next().is_some() {
                walk(sub, &path, table, missing);
                continue;
            }
            if !table.contains(&format!("`{path}")) && !table.contains(&format!("/ `{path}")) {
                missing.push(path.clone());
            }
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long().filter(|l| *l != "help") {
                    if !table.contains(&format!("--{long}")) {
                        missing.push(format!("{path} --{long}"));
                    }
                }
                let named =
                    |v: &&clap::builder::PossibleValue| !v.is_hide_set() && !["true", "false"].contains(&v.get_name());
                for value in arg.get_possible_values().iter().filter(named) {
                    if arg.get_long().is_some() && !table.contains(value.get_name()) {
                        missing.push(format!("{path} --{} {}", arg.get_long().unwrap_or_default(), value.get_name()));
                    }
                }
            }
        }
    }
    walk(&assetgw::tools::cli::Cli::command(), "assetgw", table, &mut missing);
    assert!(missing.is_empty(), "in `--help` but not in the README's Commands table:\n{}", missing.join("\n"));
}
