//! The debtor as a whole, in the ledger: every seizure's case is registered
//! against its debtor, kept as the audit trail's keyed hash and the masked
//! form, never the clear number; ledgers from before get their cases from
//! the seizures they hold.

use assetgw::{core::identifiers::DebtorId, core::proto::AssetKind, gateway::audit::Key};
use sqlx::{Connection, Row};

use crate::{harness::*, ledger::*};

/// `(debtor_key, debtor)` of each debtor registered on `case`, sorted.
pub async fn case_debtors(stack: &Stack, case: &str) -> Vec<(String, String)> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&stack.ledger_url).await.unwrap();
    let rows =
        sqlx::query("SELECT debtor_key, debtor FROM case_debtors WHERE case_number = $1 ORDER BY debtor_key, debtor")
            .bind(case)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

async fn a_seizure_registers_its_case_against_its_debtor(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let flat = asset(&stack, AssetKind::RealEstate).await;
    place(&mut s, "c1", A, &flat, 0).await;
    place(&mut s, "c2", B, &flat, 0).await;
    let key = Key::load_or_create(&test_pki().join("audit.key")).unwrap().debtor(&DebtorId::detect(RICH).unwrap());
    let masked = DebtorId::detect(RICH).unwrap().masked().to_string();
    assert_eq!(case_debtors(&stack, A).await, [(key.clone(), masked.clone())]);
    assert_eq!(case_debtors(&stack, B).await, [(key.clone(), masked)], "a second court's case, the same debtor");
    let mut conn = sqlx::AnyConnection::connect(&stack.ledger_url).await.unwrap();
    let cases = sqlx::query("SELECT case_number, court, state FROM cases ORDER BY case_number")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let cases: Vec<(String, String, String)> = cases.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert!(cases.contains(&(A.into(), "京0105".into(), "active".into())), "{cases:?}");
    assert!(cases.contains(&(B.into(), "粤0304".into(), "active".into())), "{cases:?}");
    let owner: String = sqlx::query_scalar("SELECT debtor_key FROM assets").fetch_one(&mut conn).await.unwrap();
    assert_eq!(owner, key, "the asset knows its owner");
    let everything = sqlx::query("SELECT c.case_number || c.court || d.debtor_key || d.debtor FROM cases c JOIN case_debtors d ON d.case_number = c.case_number")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(everything.iter().all(|r| !r.get::<String, _>(0).contains(RICH)), "never the clear number");
}

crate::on_both_backends!(a_seizure_registers_its_case_against_its_debtor);

#[tokio::test]
async fn a_ledger_from_before_gets_its_cases_from_its_seizures() {
    let stack = Stack::start(standard()).await;
    let mut s = seizures(&stack);
    let flat = asset(&stack, AssetKind::RealEstate).await;
    place(&mut s, "m1", A, &flat, 0).await;
    place(&mut s, "m2", B, &flat, 0).await;
    let url = stack.ledger_url.clone();
    stack.stop().await.unwrap();
    // The ledger as the release before cases left it: no cases, no owner keys, migration 12 not run.
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "DROP TABLE case_debtors; DROP TABLE cases; ALTER TABLE assets DROP COLUMN debtor_key; \
         DELETE FROM _sqlx_migrations WHERE version = 12;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let restarted = Stack::with(standard(), |c| c.ledger.url = url).await;
    let masked = DebtorId::detect(RICH).unwrap().masked().to_string();
    assert_eq!(case_debtors(&restarted, A).await, [(String::new(), masked.clone())], "masked, with no key to make");
    assert_eq!(case_debtors(&restarted, B).await, [(String::new(), masked)]);
    // Seized again, the asset learns its owner's key and the case gains the keyed debtor.
    let mut s = seizures(&restarted);
    place(&mut s, "m3", "（2024）京0105执3号", &flat, 0).await;
    let mut conn = sqlx::SqliteConnection::connect(&restarted.ledger_url).await.unwrap();
    let owner: String = sqlx::query_scalar("SELECT debtor_key FROM assets").fetch_one(&mut conn).await.unwrap();
    assert_eq!(owner.len(), 64, "a keyed hash: {owner}");
}
