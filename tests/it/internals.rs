//! What a court never sees: database text, and stored data the gateway cannot
//! read. A failure inside answers UNAVAILABLE or INTERNAL with a message for a
//! person; the cause goes to the operator's log.

use assetgw::core::proto::{AssetKind, GetSeizureQueueRequest};
use sqlx::Connection;
use tonic::Code;

use crate::{harness::*, ledger::*};

async fn sql(url: &str, statement: &str) {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::raw_sql(statement).execute(&mut conn).await.unwrap();
}

/// Words of SQLite's, PostgreSQL's and sqlx's error texts.
fn leaks_database_text(message: &str) -> bool {
    ["database", "sqlite", "sqlx", "SELECT", "malformed", "no such", "(code:"].iter().any(|w| message.contains(w))
}

#[tokio::test]
async fn a_quota_that_cannot_be_read_answers_unavailable_without_database_text() {
    let stack = Stack::with(standard(), |c| c.limits.daily_searches = 5).await;
    // Reads of the audit table now fail inside SQLite; its writes still succeed.
    sql(
        &stack.ledger_url,
        "ALTER TABLE audit RENAME TO audit_kept;
         CREATE VIEW audit AS SELECT * FROM audit_kept WHERE json('{broken') IS NOT NULL;
         CREATE TRIGGER audit_append INSTEAD OF INSERT ON audit BEGIN
           INSERT INTO audit_kept VALUES (NEW.chain, NEW.seq, NEW.at, NEW.court, NEW.officer, NEW.method,
             NEW.case_number, NEW.debtors, NEW.debtor_keys, NEW.detail, NEW.code, NEW.message, NEW.prev, NEW.hash);
         END;",
    )
    .await;
    let err = stack.search(query(&[RICH])).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("quota") && err.message().contains("retry"), "{}", err.message());
    assert!(!leaks_database_text(err.message()), "database text reached the court: {}", err.message());
    assert!(logs().contains("daily search quota unreadable"), "the cause is logged for the operator");
}

#[tokio::test]
async fn stored_data_that_cannot_be_decoded_answers_internal_and_is_logged() {
    let stack = Stack::start(standard()).await;
    let mut s = seizures(&stack);
    let flat = asset(&stack, AssetKind::RealEstate).await;
    place(&mut s, "c1", A, &flat, 0).await;
    let mut conn = unguarded_sqlite(&stack.ledger_url).await;
    sqlx::raw_sql("UPDATE seizures SET state = 'vanished'; UPDATE replies SET reply = 'not hex';")
        .execute(&mut conn)
        .await
        .unwrap();

    let request = GetSeizureQueueRequest { asset_kind: flat.kind, asset_id: flat.asset_id.clone() };
    let err = s.get_seizure_queue(as_court(A, request)).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{}", err.message());
    assert!(!err.message().contains("vanished"), "{}", err.message());

    let retry = s.place_seizure(as_court(A, place_req("c1", A, &flat, 0))).await.unwrap_err();
    assert_eq!(retry.code(), Code::Internal, "{}", retry.message());
    assert!(!leaks_database_text(retry.message()), "{}", retry.message());
    let logged = logs();
    assert!(logged.contains("unknown stored seizure state vanished"), "the operator is told what is damaged");
    assert!(logged.contains("stored reply of request c1 is not hex"));
}
