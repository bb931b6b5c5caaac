//! What the ledger acknowledges is right: balances after deductions, amounts
//! in range, request identity per court and request, compact stored replies
//! that are purged, reads from one snapshot, and R4's claim cap across
//! replicas (issue: ledger integrity).

use std::time::Duration;

use assetgw::core::proto::{
    AssetKind, DeductFundsRequest, GetSeizureQueueRequest, MergedAsset, Money, ReleaseSeizureRequest, SeizureState,
    asset::Detail, seizure_service_client::SeizureServiceClient,
};
use sqlx::Connection;
use tonic::Code;

use crate::{harness::*, ledger::*};

/// The demo debtor's CNY accounts, richest first.
pub async fn cny_accounts(stack: &Stack) -> Vec<(MergedAsset, i64)> {
    let r = stack.search(query(&[RICH])).await.unwrap();
    let mut out: Vec<(MergedAsset, i64)> = r.debtors[0]
        .assets
        .iter()
        .filter_map(|a| match a.asset.as_ref().and_then(|x| x.detail.as_ref()) {
            Some(Detail::Deposit(d)) => {
                d.balance.as_ref().filter(|b| b.currency == "CNY").map(|b| (a.clone(), b.minor_units))
            }
            _ => None,
        })
        .collect();
    out.sort_by_key(|(_, b)| -b);
    out
}

fn deduct(id: &str, case: &str, seizure: &str, amount: i64) -> DeductFundsRequest {
    DeductFundsRequest {
        request_id: id.into(),
        case_number: case.into(),
        seizure_id: seizure.into(),
        amount,
        ..Default::default()
    }
}

async fn deduction_is_not_undone_by_the_next_placement(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let (account, total) = cny_accounts(&stack).await.remove(0);
    assert!(total >= 2, "the richest demo account holds funds");
    let a = place(&mut s, "a", A, &account, total).await;
    let half = total / 2;
    let a_id = a.seizure.unwrap().seizure_id;
    s.deduct_funds(as_court(A, deduct("d", A, &a_id, half))).await.unwrap();
    // B's freeze comes with the registry's figure from before the deduction (cached): the ledger's own
    // deduction is the newer fact.
    let b = place(&mut s, "b", B, &account, total - half).await;
    let q = b.queue.unwrap();
    assert_eq!(q.total, total - half, "the balance stays net of the deduction");
    assert_eq!(b.seizure.unwrap().state, SeizureState::Waiting as i32, "A still holds what is left");
    let effective: i64 = q.seizures.iter().map(|x| x.effective).sum();
    assert!(effective <= q.total, "R4: effective {effective} within the balance {}", q.total);
}

async fn amounts_out_of_range_are_refused_as_invalid(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let (account, _) = cny_accounts(&stack).await.remove(0);
    place(&mut s, "small", A, &account, 100).await;
    let mut huge = place_req("huge", A, &account, i64::MAX);
    huge.case_number = A.into();
    let err = s.place_seizure(as_court(A, huge)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(err.message().contains("amount"), "{}", err.message());
    let mut claim = place_req("claim", B, &account, 100);
    claim.claim = Some(Money { currency: "CNY".into(), minor_units: i64::MAX });
    assert_eq!(s.place_seizure(as_court(B, claim)).await.unwrap_err().code(), Code::InvalidArgument);
    let err = s.deduct_funds(as_court(A, deduct("dx", A, "any", i64::MAX))).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    // The case keeps working.
    let (other, _) = cny_accounts(&stack).await.remove(1);
    let next = place(&mut s, "next", A, &other, 100).await;
    assert!(next.message.contains("frozen") || next.message.contains("partly"), "{}", next.message);
}

async fn request_ids_belong_to_one_court_and_one_request(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let mine = place(&mut s, "shared-id", A, &flat, 0).await;
    // Another court using the same id gets its own step, never the first court's answer.
    let theirs = place(&mut s, "shared-id", B, &flat, 0).await;
    let seizure = theirs.seizure.unwrap();
    assert_eq!(seizure.case_number, B);
    assert_eq!(seizure.rank, 2);
    assert_ne!(seizure.seizure_id, mine.seizure.as_ref().unwrap().seizure_id);
    // The same court reusing the id for a different request is told so; nothing is done.
    let other = asset_of_kind(&stack, AssetKind::Deposit).await;
    let err = s.place_seizure(as_court(A, place_req("shared-id", A, &other, 5))).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(err.message().contains("request_id") && err.message().contains("different"), "{}", err.message());
    let listed =
        s.list_case_seizures(as_court(A, assetgw::core::proto::ListCaseSeizuresRequest { case_number: A.into() }));
    assert_eq!(listed.await.unwrap().into_inner().seizures.len(), 1, "the reused id placed nothing");
    // An id is scoped to its method: a release may use it too.
    let release = ReleaseSeizureRequest {
        request_id: "shared-id".into(),
        case_number: A.into(),
        seizure_id: mine.seizure.unwrap().seizure_id,
        ..Default::default()
    };
    s.release_seizure(as_court(A, release)).await.unwrap();
}

async fn asset_of_kind(stack: &Stack, kind: AssetKind) -> MergedAsset {
    asset(stack, kind).await
}

/// A second handle on the stack's ledger, for `verify`.
async fn ledger_store(stack: &Stack) -> assetgw::ledger::store::Store {
    let terms = assetgw::ledger::rules::Terms::default();
    assetgw::ledger::store::Store::open(&stack.ledger_url, stack.clock.clone(), terms).await.unwrap()
}

async fn sql(url: &str, statement: &str) -> i64 {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::query_scalar(statement).fetch_one(&mut conn).await.unwrap()
}

#[tokio::test]
async fn stored_replies_are_compact_and_purged_after_their_window() {
    let stack = Stack::with(standard(), |c| c.ledger.sweep_interval = Duration::from_millis(50)).await;
    let mut s = seizures(&stack);
    let flat = asset(&stack, AssetKind::RealEstate).await;
    for i in 0..40 {
        let case = format!("（2024）京0105执{}号", 100 + i);
        place(&mut s, &format!("p{i}"), &case, &flat, 0).await;
    }
    // The 40th placement's stored reply carries its outcome, not the 40-seizure queue.
    let largest = sql(&stack.ledger_url, "SELECT MAX(LENGTH(reply)) FROM replies").await;
    assert!(largest < 2048, "a stored reply of {largest} bytes");
    stack.clock.advance(chrono::Duration::days(8));
    let mut left = i64::MAX;
    for _ in 0..100 {
        left = sql(&stack.ledger_url, "SELECT COUNT(*) FROM replies").await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "replies past the 7-day window are purged");
}

async fn reads_come_from_one_snapshot(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let (account, total) = cny_accounts(&stack).await.remove(0);
    let first = place(&mut s, "base", A, &account, total).await;
    let base = first.seizure.unwrap().seizure_id;
    let writer = {
        let mut s = seizures(&stack);
        let account = account.clone();
        tokio::spawn(async move {
            for i in 0..60 {
                let case = format!("（2024）京0105执{}号", 500 + i);
                let placed = place(&mut s, &format!("w{i}"), &case, &account, 1 + i).await;
                let id = placed.seizure.unwrap().seizure_id;
                let release = ReleaseSeizureRequest {
                    request_id: format!("r{i}"),
                    case_number: case.clone(),
                    seizure_id: id,
                    ..Default::default()
                };
                s.release_seizure(as_court(&case, release)).await.unwrap();
            }
        })
    };
    let mut polls = 0;
    let mut reader = seizures(&stack);
    while !writer.is_finished() {
        let request = GetSeizureQueueRequest { asset_kind: account.kind, asset_id: account.asset_id.clone() };
        let q = reader.get_seizure_queue(as_court(A, request)).await.unwrap().into_inner().queue.unwrap();
        let effective: i64 = q.seizures.iter().map(|x| x.effective).sum();
        assert!(effective <= q.total, "a torn read after {polls} polls: {effective} effective of {}", q.total);
        assert!(q.seizures.iter().any(|x| x.seizure_id == base));
        polls += 1;
    }
    writer.await.unwrap();
    assert!(polls > 10, "the probe read while the writer wrote ({polls} polls)");
}

crate::on_both_backends!(
    deduction_is_not_undone_by_the_next_placement,
    amounts_out_of_range_are_refused_as_invalid,
    request_ids_belong_to_one_court_and_one_request,
    reads_come_from_one_snapshot,
);

/// R4 across replicas: one case freezing its whole claim on two accounts at once, one request through each
/// of two gateways over one PostgreSQL database — exactly one may succeed.
#[tokio::test]
async fn r4_holds_when_two_replicas_race_on_one_case() {
    let Some(url) = ledger_url(Db::Postgres).await else { return };
    let stack = Stack::with(standard(), |c| c.ledger.url = url.clone()).await;
    let accounts = cny_accounts(&stack).await;
    let (one_account, two_account) = (accounts[0].0.clone(), accounts[1].0.clone());
    let one = Process::serve(&stack.registries, &url).await;
    let two = Process::serve(&stack.registries, &url).await;
    for pair in 0..10 {
        let case = format!("（2024）京0105执{}号", 900 + pair);
        let claim = Some(Money { currency: "CNY".into(), minor_units: 1_000 });
        let mut first = place_req(&format!("r4a{pair}"), &case, &one_account, 1_000);
        first.claim = claim.clone();
        let mut second = place_req(&format!("r4b{pair}"), &case, &two_account, 1_000);
        second.claim = claim;
        let (mut c1, mut c2) = (SeizureServiceClient::new(one.channel()), SeizureServiceClient::new(two.channel()));
        let (r1, r2) =
            tokio::join!(c1.place_seizure(as_court(&case, first)), c2.place_seizure(as_court(&case, second)));
        let ok = [&r1, &r2].iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "pair {pair}: {r1:?} / {r2:?}");
        let refused = [r1, r2].into_iter().find_map(Result::err).unwrap();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{}", refused.message());
        assert!(refused.message().contains("R4"), "{}", refused.message());
    }
}

/// Waits up to `limit` for the registry to acknowledge `asset`'s first seizure; how long it took.
async fn acknowledged_within(stack: &Stack, asset: &MergedAsset, limit: Duration) -> Option<Duration> {
    let mut s = seizures(stack);
    let started = tokio::time::Instant::now();
    while started.elapsed() < limit {
        let q = queue(&mut s, asset).await;
        if q.seizures.first().is_some_and(|x| !x.registry_reference.is_empty()) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn a_hung_registry_delays_only_its_own_orders() {
    let stack = Stack::start(standard()).await;
    let mut s = seizures(&stack);
    let patent = asset(&stack, AssetKind::Patent).await;
    let flat = asset(&stack, AssetKind::RealEstate).await;
    let plane = asset(&stack, AssetKind::Aircraft).await;
    let ip = patent.sources[0].registry.clone();
    stack.mock(&ip).set_hang(true);
    // The IP office's order goes first and hangs; the others must not wait for it.
    place(&mut s, "ip", A, &patent, 0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    place(&mut s, "flat", A, &flat, 0).await;
    place(&mut s, "plane", A, &plane, 0).await;
    for other in [&flat, &plane] {
        let took = acknowledged_within(&stack, other, Duration::from_secs(1)).await;
        assert!(took.is_some(), "{} waited over 1 s behind the hung registry", other.asset_id);
    }
    assert_eq!(stack.mock(&ip).effects(), 0, "the hung registry has acted on nothing");
    stack.mock(&ip).set_hang(false);
    stack.clock.advance(chrono::Duration::minutes(1));
    assert!(acknowledged_within(&stack, &patent, Duration::from_secs(10)).await.is_some(), "delivered once it answers");
}

#[tokio::test]
async fn the_outbox_backlog_and_its_age_are_metrics_per_registry() {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port().await).parse().unwrap();
    let stack = Stack::with(standard(), |c| c.server.metrics_listen = Some(addr)).await;
    let mut s = seizures(&stack);
    let patent = asset(&stack, AssetKind::Patent).await;
    let flat = asset(&stack, AssetKind::RealEstate).await;
    stack.mock(&patent.sources[0].registry).set_hang(true);
    place(&mut s, "ip", A, &patent, 0).await;
    place(&mut s, "flat", A, &flat, 0).await;
    stack.clock.advance(chrono::Duration::seconds(90));
    let mut text = String::new();
    for _ in 0..50 {
        text = crate::telemetry::scrape(addr).await;
        if text.lines().any(|l| l == r#"assetgw_outbox_backlog{registry="ip"} 1"#)
            && text.lines().any(|l| l == r#"assetgw_outbox_backlog{registry="realestate"} 0"#)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.lines().any(|l| l == r#"assetgw_outbox_backlog{registry="ip"} 1"#), "{text}");
    assert!(text.lines().any(|l| l == r#"assetgw_outbox_backlog{registry="realestate"} 0"#), "{text}");
    let age: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"assetgw_outbox_oldest_seconds{registry="ip"} "#))
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!(age >= 90.0, "the hung registry's oldest order is 90 s old by the gateway's clock, not {age}");
    // Deliveries per second are the rate of this counter.
    assert!(text.contains(r#"assetgw_orders_total{registry="realestate",result="acknowledged"} "#), "{text}");
}

#[tokio::test]
async fn ledger_verify_names_every_broken_invariant_of_amounts() {
    let stack = Stack::start(standard()).await;
    let mut s = seizures(&stack);
    let (account, _) = cny_accounts(&stack).await.remove(0);
    let mut freeze = place_req("v", A, &account, 1_000);
    freeze.claim = Some(Money { currency: "CNY".into(), minor_units: 1_000 });
    s.place_seizure(as_court(A, freeze)).await.unwrap();
    let store = ledger_store(&stack).await;
    assert_eq!(store.verify().await.unwrap(), Vec::<String>::new());
    // Behind the ledger's back, with the database's own checks removed first (as an old
    // binary or a hand edit would): the freeze grows past its claim, the balance shrinks below it.
    let mut conn = sqlx::SqliteConnection::connect(&stack.ledger_url).await.unwrap();
    let triggers: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetch_all(&mut conn).await.unwrap();
    assert!(triggers.len() >= 8, "{triggers:?}");
    for t in triggers {
        sqlx::query(&format!("DROP TRIGGER {t}")).execute(&mut conn).await.unwrap();
    }
    sqlx::raw_sql("UPDATE seizures SET requested = 5000, effective = 5000; UPDATE assets SET total = 10;")
        .execute(&mut conn)
        .await
        .unwrap();
    let violations = store.verify().await.unwrap().join("\n");
    assert!(
        violations.contains(&format!("case {A}: 5000 CNY minor units frozen over its claim of 1000 (R4)")),
        "{violations}"
    );
    assert!(violations.contains("effective total 5000 exceeds the asset's 10"), "{violations}");
}

async fn the_database_refuses_rows_that_break_an_invariant(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let mut s = seizures(&stack);
    let (account, balance) = cny_accounts(&stack).await.remove(0);
    let mut freeze = place_req("inv1", A, &account, 1_000);
    freeze.claim = Some(Money { currency: "CNY".into(), minor_units: 1_000 });
    s.place_seizure(as_court(A, freeze)).await.unwrap();
    let flat = asset_of_kind(&stack, AssetKind::RealEstate).await;
    place(&mut s, "inv2", A, &flat, 0).await;
    place(&mut s, "inv3", B, &flat, 0).await;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&stack.ledger_url).await.unwrap();
    let deposits = "asset_key IN (SELECT asset_key FROM assets WHERE kind = 1)";
    let flats = "asset_key IN (SELECT asset_key FROM assets WHERE kind = 2)";
    let over = balance + 1;
    for (what, statement) in [
        (
            "more in effect than the balance",
            format!("UPDATE seizures SET requested = {over}, effective = {over} WHERE {deposits}"),
        ),
        ("a balance below what is in effect", format!("UPDATE assets SET total = 10 WHERE {deposits}")),
        ("a negative balance", format!("UPDATE assets SET total = -1 WHERE {deposits}")),
        ("an amount over 10^15", format!("UPDATE seizures SET requested = 1000000000000001 WHERE {deposits}")),
        ("effective over requested", format!("UPDATE seizures SET effective = requested + 1 WHERE {deposits}")),
        ("a state that does not match the amounts", format!("UPDATE seizures SET effective = 0 WHERE {deposits}")),
        ("an unknown state", format!("UPDATE seizures SET state = 'frozen' WHERE {deposits}")),
        (
            "a case frozen over its claim",
            format!("UPDATE seizures SET requested = 2000, effective = 2000 WHERE {deposits}"),
        ),
        (
            "two effective seizures on a flat",
            format!("UPDATE seizures SET state = 'effective', requested = 1, effective = 1 WHERE {flats}"),
        ),
        ("a flat with a quantity of 2", format!("UPDATE assets SET total = 2 WHERE {flats}")),
        (
            "a balance going back to an older figure",
            format!("UPDATE assets SET total_at = total_at - 1 WHERE {deposits}"),
        ),
    ] {
        let refused = sqlx::query(&statement).execute(&mut conn).await.expect_err(what);
        assert!(refused.to_string().contains("invariant"), "{what}: {refused}");
        let answered = assetgw::core::error::Error::from(assetgw::ledger::LedgerError::Db(refused));
        assert_eq!(answered.code(), tonic::Code::Internal, "{what}: a defect of the gateway, not an outage");
    }
    let store = ledger_store(&stack).await;
    assert_eq!(store.verify().await.unwrap(), Vec::<String>::new(), "nothing of the refused writes stayed");
}

crate::on_both_backends!(the_database_refuses_rows_that_break_an_invariant);

/// Reads `events` the way a watcher does, after the last number it has seen,
/// until told to stop (then once more); every number it saw, in order.
async fn watch_numbers(url: String, stop: tokio::sync::watch::Receiver<bool>) -> Vec<i64> {
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut seen: Vec<i64> = Vec::new();
    loop {
        let last_pass = *stop.borrow();
        let after = seen.last().copied().unwrap_or(0);
        let rows: Vec<i64> = sqlx::query_scalar("SELECT seq FROM events WHERE seq > $1 ORDER BY seq")
            .bind(after)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        seen.extend(rows);
        if last_pass {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn events_are_numbered_without_gaps_in_commit_order_across_replicas() {
    let Some(url) = ledger_url(Db::Postgres).await else { return };
    let stack = Stack::with(standard(), |c| c.ledger.url = url.clone()).await;
    let mut assets = Vec::new();
    for kind in [AssetKind::RealEstate, AssetKind::Patent, AssetKind::Trademark, AssetKind::Aircraft] {
        assets.push(asset_of_kind(&stack, kind).await);
    }
    let replicas = [Process::serve(&stack.registries, &url).await, Process::serve(&stack.registries, &url).await];
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(watch_numbers(url.clone(), stopped));
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..48 {
        let case = format!("（2024）京0105执{}号", 2000 + n);
        let request = place_req(&format!("ev{n}"), &case, &assets[n % assets.len()], 0);
        let mut client = SeizureServiceClient::new(replicas[n % 2].channel());
        calls.spawn(async move { client.place_seizure(as_court(&case, request)).await.map(|_| ()) });
    }
    while let Some(done) = calls.join_next().await {
        done.unwrap().unwrap();
    }
    stop.send(true).unwrap();
    let seen = watcher.await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let all: Vec<i64> = sqlx::query_scalar("SELECT seq FROM events ORDER BY seq").fetch_all(&mut conn).await.unwrap();
    assert!(all.len() >= 48, "every acknowledged placement's event is numbered once it is acknowledged: {}", all.len());
    assert_eq!(all, (1..=all.len() as i64).collect::<Vec<_>>(), "event numbers have gaps");
    // Deliveries keep adding events after the last reply, so the watcher saw a prefix.
    assert!(seen.len() >= 48, "{seen:?}");
    assert_eq!(
        seen,
        all[..seen.len()],
        "a watcher reading after the last number it saw missed an event numbered later"
    );
}
