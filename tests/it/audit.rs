//! The audit trail (R16): every call on record before its reply, masked and
//! keyed debtors, `assetgw audit verify` naming the first tampered record,
//! `assetgw audit export`, refusal when a record cannot be written, and
//! retention purges that leave the chains verifiable.

use std::{
    process::{Command, Output},
    sync::Arc,
};

use assetgw::{
    core::clock::{Clock, SystemClock},
    core::identifiers::DebtorId,
    core::proto::{AssetKind, SearchRequest},
    gateway::audit::{self, Key, Record, Trail},
    ledger::store::Store,
};
use sqlx::Connection;
use tonic::Code;

use crate::{harness::*, ledger::*};

/// `assetgw audit …` against the stack's database and key.
fn audit_cli(stack_url: &str, key: &std::path::Path, args: &[&str]) -> Output {
    let config = scratch().join("audit.toml");
    let toml = format!(
        "[ledger]\nurl = \"{stack_url}\"\n[audit]\nkey_file = {key:?}\n\
         [[registries]]\nname = \"x\"\nkind = \"bank\"\nendpoint = \"https://127.0.0.1:9\"\n"
    );
    std::fs::write(&config, toml).unwrap();
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", config.to_str().unwrap()]);
    Command::new(env!("CARGO_BIN_EXE_assetgw")).args(&all).env_remove("ASSETGW_CONFIG").output().unwrap()
}

/// Swaps the chain positions of records 2 and 3.
const SWAP_2_3: &str = "UPDATE audit SET seq = -2 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = -2";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn sql(url: &str, statement: &str) {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::raw_sql(statement).execute(&mut conn).await.unwrap();
}

#[tokio::test]
async fn r16_every_call_is_recorded_and_verify_names_the_first_tampered_record() {
    let stack = Stack::start(standard()).await;
    let flat = asset(&stack, AssetKind::RealEstate).await; // 1: Search, allowed
    let mut foreign = query(&[RICH]);
    foreign.case_number = B.into();
    let denied = stack.client().await.search(SearchRequest { query: Some(foreign) }).await.unwrap_err(); // 2
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut bad = query(&[RICH]);
    bad.case_number = "（2024）京0105民初1号".into();
    assert_eq!(stack.search(bad).await.unwrap_err().code(), Code::InvalidArgument); // 3
    place(&mut seizures(&stack), "p1", A, &flat, 0).await; // 4 (and the Search inside it is not a call)
    let (url, key) = (stack.ledger_url.clone(), stack.config.audit.key_file.clone());
    stack.stop().await.unwrap();

    let verified = tokio::task::spawn_blocking({
        let (url, key) = (url.clone(), key.clone());
        move || audit_cli(&url, &key, &["verify"])
    })
    .await
    .unwrap();
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    assert!(text(&verified.stdout).contains("4 records, every chain intact"), "{}", text(&verified.stdout));

    let export = |args: Vec<String>| {
        let (url, key) = (url.clone(), key.clone());
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            audit_cli(&url, &key, &args)
        })
    };
    let by_debtor = export(vec!["export".into(), "--debtor".into(), RICH.into()]).await.unwrap();
    let lines: Vec<serde_json::Value> =
        text(&by_debtor.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let methods: Vec<(&str, &str)> =
        lines.iter().map(|l| (l["method"].as_str().unwrap(), l["code"].as_str().unwrap())).collect();
    assert_eq!(
        methods,
        [("Search", "Ok"), ("Search", "PermissionDenied"), ("PlaceSeizure", "Ok")],
        "the invalid request named no valid debtor"
    );
    assert!(lines.iter().all(|l| l["court"] == "京0105" && l["officer"] == "officer-7"));
    assert_eq!(lines[0]["debtors"], "110105********1232");
    assert!(lines[0]["detail"].as_str().unwrap().contains("\"registry\":\"bank-a\""), "per-registry outcomes");
    assert!(!text(&by_debtor.stdout).contains(RICH), "no full identifier in the trail");
    let by_case = export(vec!["export".into(), "--case".into(), A.into()]).await.unwrap();
    assert_eq!(text(&by_case.stdout).lines().count(), 1, "{}", text(&by_case.stdout));
    let nothing = export(vec!["export".into(), "--case".into(), "（2024）京0105执9999号".into()]).await.unwrap();
    assert!(!nothing.status.success(), "nothing found is not a silent success");
    assert!(
        text(&nothing.stderr).contains("no audit record names case （2024）京0105执9999号"),
        "{}",
        text(&nothing.stderr)
    );
    let db = std::fs::read(url.trim_start_matches("sqlite://")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(RICH), "no full identifier in the database");

    let broken = |statement: &'static str, undo: Option<&'static str>| {
        let (url, key) = (url.clone(), key.clone());
        async move {
            sql(&url, statement).await;
            let out = tokio::task::spawn_blocking({
                let url = url.clone();
                move || audit_cli(&url, &key, &["verify"])
            })
            .await
            .unwrap();
            if let Some(undo) = undo {
                sql(&url, undo).await;
            }
            assert!(!out.status.success(), "{statement}");
            text(&out.stderr)
        }
    };
    let altered = broken(
        "UPDATE audit SET court = '粤0304' WHERE seq = 2",
        Some("UPDATE audit SET court = '京0105' WHERE seq = 2"),
    )
    .await;
    assert!(altered.contains("record 2 (Search by court 粤0304") && altered.contains("altered"), "{altered}");
    let reordered = broken(SWAP_2_3, Some(SWAP_2_3)).await;
    assert!(reordered.contains("record 2"), "{reordered}");
    let inserted = broken(
        "INSERT INTO audit SELECT chain, 5, at, court, officer, method, case_number, debtors, debtor_keys, detail, \
         code, message, hash, hash FROM audit WHERE seq = 4",
        Some("DELETE FROM audit WHERE seq = 5"),
    )
    .await;
    assert!(inserted.contains("record 5") && inserted.contains("altered"), "{inserted}");
    let deleted = broken("DELETE FROM audit WHERE seq = 3", None).await;
    assert!(deleted.contains("record 4") && deleted.contains("deleted"), "{deleted}");
}

#[tokio::test]
async fn a_call_that_cannot_be_recorded_is_refused() {
    let stack = Stack::start(standard()).await;
    let url = stack.ledger_url.clone();
    sql(&url, "CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk full'); END").await;
    let err = stack.search(query(&[RICH])).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("audit trail could not record"), "{}", err.message());
    sql(&url, "DROP TRIGGER no_audit").await;
    stack.search(query(&[RICH])).await.expect("recorded again once the database accepts writes");
}

#[tokio::test]
async fn retention_purges_old_records_and_the_purge_itself_is_sealed() {
    let url = format!("sqlite://{}", scratch().join("ledger.db").display());
    let store = Store::open(&url, Arc::new(SystemClock), Default::default()).await.unwrap();
    let key = Key::load_or_create(&scratch().join("audit.key")).unwrap();
    let trail = Trail::start(&store, key.clone());
    let debtor = DebtorId::detect(RICH).unwrap();
    let record = || Record {
        court: "京0105".into(),
        method: "Search".into(),
        debtors: vec![debtor.clone()],
        code: Some(Code::Ok),
        ..Record::default()
    };
    for _ in 0..3 {
        trail.record(record()).await.unwrap();
    }
    let after_all = assetgw::core::clock::Clock::micros(&assetgw::core::clock::SystemClock) + 1;
    assert_eq!(trail.purge(after_all).await.unwrap(), 3);
    trail.record(record()).await.unwrap();
    assert_eq!(audit::verify(store.pool(), &key).await.unwrap(), Ok(2), "the purge record and the one after");
    assert!(audit::export(store.pool(), &audit::Filter::DebtorKey(key.debtor(&debtor))).await.unwrap().len() == 1);

    sqlx::query("DELETE FROM audit WHERE method = 'AuditPurge'").execute(store.pool()).await.unwrap();
    let broken = audit::verify(store.pool(), &key).await.unwrap().unwrap_err();
    assert!(broken.contains("record 5") && broken.contains("no sealed purge record"), "{broken}");
}

/// A ledger and trail made by the previous release open unchanged: the names
/// it stored (the RPC's name in the trail, a step's short name with its
/// reply) are the names read back. Rows are written as it wrote them.
#[tokio::test]
async fn a_ledger_and_trail_of_the_previous_release_open_unchanged() {
    let url = format!("sqlite://{}", scratch().join("ledger.db").display());
    let key_file = scratch().join("audit.key");
    let store = Store::open(&url, Arc::new(SystemClock), Default::default()).await.unwrap();
    let trail = Trail::start(&store, Key::load_or_create(&key_file).unwrap());
    for _ in 0..2 {
        let search = Record {
            court: "京0105".into(),
            officer: "officer-7".into(),
            method: "Search".into(),
            code: Some(Code::Ok),
            ..Default::default()
        };
        trail.record(search).await.unwrap();
    }
    let an_hour_ago = (SystemClock.now() - chrono::Duration::hours(1)).timestamp_micros();
    sql(
        &url,
        &format!(
            "INSERT INTO replies (court, method, request_id, digest, reply, at, officer, case_number, audited) \
             VALUES ('京0105', 'release', 'old-release-1', '', '', {an_hour_ago}, 'officer-7', '{A}', 0)"
        ),
    )
    .await;
    drop((trail, store));

    let stack = Stack::with(standard(), |c| {
        c.limits.daily_searches = 2;
        c.ledger.url = url.clone();
        c.audit.key_file = key_file.clone();
    })
    .await;
    let err = stack.search(query(&[RICH])).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "its two searches count: {}", err.message());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let audited = async |conn: &mut sqlx::SqliteConnection| -> i64 {
        let marked = sqlx::query_scalar("SELECT audited FROM replies WHERE request_id = 'old-release-1'");
        marked.fetch_one(conn).await.unwrap()
    };
    for _ in 0..100 {
        if audited(&mut conn).await == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(audited(&mut conn).await, 1, "its unaudited release is found under its stored name");
    let recovered: Vec<String> = sqlx::query_scalar("SELECT method FROM audit WHERE detail LIKE '%old-release-1%'")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(recovered, ["ReleaseSeizure"], "and recorded under the RPC's name");
}
