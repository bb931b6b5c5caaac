//! The debtor as a whole, in the ledger: every seizure's case is registered
//! against its debtor, kept as the audit trail's keyed hash and the masked
//! form, never the clear number; ledgers from before get their cases from
//! the seizures they hold.

use assetgw::{
    core::{
        identifiers::DebtorId,
        proto::{
            AssetKind, ControlResult, DebtorStanding, GetSeizureQueueRequest, ListBankruptcyLiftsRequest,
            PlaceSeizureRequest, RecordBankruptcyAcceptanceRequest, RecordBankruptcyRefusalRequest,
            RenewSeizureRequest, TransferToBankruptcyReviewRequest, debtor_service_client::DebtorServiceClient,
            seizure_service_client::SeizureServiceClient,
        },
    },
    gateway::audit::Key,
};
use sqlx::{Connection, Row};
use tonic::Code;

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
    // The ledger as the release before cases left it: no cases, no owner keys, migrations 12 and 13 not run.
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "DROP TABLE debtor_standing; DROP TABLE debtor_decisions; DROP INDEX assets_by_debtor; \
         DROP TABLE case_debtors; DROP TABLE cases; ALTER TABLE assets DROP COLUMN debtor_key; \
         DELETE FROM _sqlx_migrations WHERE version IN (12, 13);",
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

/// The company's assets of `kind`, as search reports them.
pub async fn company_assets(stack: &Stack, kind: AssetKind) -> Vec<assetgw::core::proto::MergedAsset> {
    let found = stack.search(query(&[COMPANY])).await.unwrap();
    found.debtors[0].assets.iter().filter(|a| a.kind == kind as i32).cloned().collect()
}

/// A placement on the company's asset under `case`.
pub async fn seize_company(
    s: &mut SeizureServiceClient<Courts>,
    id: &str,
    case: &str,
    asset: &assetgw::core::proto::MergedAsset,
) -> Result<ControlResult, tonic::Status> {
    let request = PlaceSeizureRequest { debtor: Some(debtor(COMPANY)), ..place_req(id, case, asset, 0) };
    s.place_seizure(as_court(case, request)).await.map(|r| r.into_inner().result.unwrap())
}

pub fn review(id: &str, case: &str, who: &str, grounds: &str) -> TransferToBankruptcyReviewRequest {
    TransferToBankruptcyReviewRequest {
        request_id: id.into(),
        case_number: case.into(),
        debtor: Some(debtor(who)),
        decision_reference: "（2027）京0105执1号之一".into(),
        grounds: grounds.into(),
        decided_at: None,
    }
}

pub const BANKRUPTCY: &str = "（2027）京0105破申3号";

async fn r24_r26_a_review_suspends_every_court_and_a_refusal_resumes(db: Db) {
    let Some(stack) = Stack::on(db, standard()).await else { return };
    let (mut s, mut d) = (seizures(&stack), DebtorServiceClient::new(stack.channel()));
    let flats = company_assets(&stack, AssetKind::RealEstate).await;
    assert!(flats.len() >= 2, "the company holds flats: {}", flats.len());
    let first = seize_company(&mut s, "b1", A, &flats[0]).await.unwrap();
    seize_company(&mut s, "b2", B, &flats[0]).await.unwrap();

    let reviewed = d.transfer_to_bankruptcy_review(as_court(A, review("r1", A, COMPANY, "the debtor's consent")));
    let outcome = reviewed.await.unwrap().into_inner().outcome.unwrap();
    assert_eq!(outcome.standing, DebtorStanding::InReview as i32);
    assert!(outcome.message.contains("R24"), "{}", outcome.message);
    // Every court's new seizure is refused, naming the decision; renewals go on.
    let refused = seize_company(&mut s, "b3", C, &flats[1]).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{}", refused.message());
    assert!(
        refused.message().contains("（2027）京0105执1号之一") && refused.message().contains("R24"),
        "{}",
        refused.message()
    );
    let renew = RenewSeizureRequest {
        request_id: "b4".into(),
        case_number: A.into(),
        seizure_id: first.seizure.unwrap().seizure_id,
        months: 0,
        emergency_approval: String::new(),
    };
    s.renew_seizure(as_court(A, renew)).await.expect("a renewal keeps the seizure alive in review");
    let again = d.transfer_to_bankruptcy_review(as_court(A, review("r2", A, COMPANY, "applicant's consent"))).await;
    assert_eq!(again.unwrap_err().code(), Code::FailedPrecondition, "one review at a time");

    // The bankruptcy court refuses: every case resumes; the same grounds are not used again.
    let refusal = RecordBankruptcyRefusalRequest {
        request_id: "r3".into(),
        case_number: BANKRUPTCY.into(),
        debtor: Some(debtor(COMPANY)),
        decision_reference: BANKRUPTCY.into(),
        decided_at: None,
    };
    let outcome = d.record_bankruptcy_refusal(as_court(BANKRUPTCY, refusal.clone())).await.unwrap().into_inner();
    assert_eq!(outcome.outcome.unwrap().standing, DebtorStanding::Enforced as i32);
    seize_company(&mut s, "b5", C, &flats[1]).await.expect("enforcement resumes (R26)");
    let retry = d.record_bankruptcy_refusal(as_court(BANKRUPTCY, refusal)).await.unwrap().into_inner();
    assert_eq!(retry.outcome.unwrap().standing, DebtorStanding::Enforced as i32, "a retry is answered as before");
    let same = d.transfer_to_bankruptcy_review(as_court(A, review("r4", A, COMPANY, "the debtor's consent"))).await;
    let same = same.unwrap_err();
    assert_eq!(same.code(), Code::FailedPrecondition);
    assert!(same.message().contains("R26"), "{}", same.message());

    // Bankruptcy law reaches enterprises only.
    let person = d.transfer_to_bankruptcy_review(as_court(A, review("r5", A, RICH, "consent"))).await.unwrap_err();
    assert_eq!(person.code(), Code::InvalidArgument, "{}", person.message());
}

/// A stack on `db` whose acceptances lift every seizure at once (R25's optional mode).
pub async fn lifting_at_once(db: Db) -> Option<Stack> {
    let url = ledger_url(db).await?;
    Some(
        Stack::with(standard(), |c| {
            c.ledger.url = url;
            c.ledger.bankruptcy_lifting = assetgw::ops::config::Lifting::AtOnce;
        })
        .await,
    )
}

async fn r25_acceptance_lifts_every_seizure_and_only_releases_remain(db: Db) {
    let Some(stack) = lifting_at_once(db).await else { return };
    let (mut s, mut d) = (seizures(&stack), DebtorServiceClient::new(stack.channel()));
    let flats = company_assets(&stack, AssetKind::RealEstate).await;
    let first = seize_company(&mut s, "a1", A, &flats[0]).await.unwrap();
    seize_company(&mut s, "a2", B, &flats[0]).await.unwrap();
    let accept = |id: &str, case: &str| RecordBankruptcyAcceptanceRequest {
        request_id: id.into(),
        case_number: case.into(),
        debtor: Some(debtor(COMPANY)),
        decision_reference: "（2027）京0105破1号".into(),
        decided_at: None,
    };
    let elsewhere = d.record_bankruptcy_acceptance(as_court(B, accept("x1", "（2027）京0105破1号"))).await;
    assert_eq!(elsewhere.unwrap_err().code(), Code::PermissionDenied, "a court decides under its own case");
    let enforcement = d.record_bankruptcy_acceptance(as_court(A, accept("x2", A))).await.unwrap_err();
    assert_eq!(enforcement.code(), Code::InvalidArgument, "{}", enforcement.message());

    let accepted = d.record_bankruptcy_acceptance(as_court("（2027）京0105破1号", accept("x3", "（2027）京0105破1号")));
    let outcome = accepted.await.unwrap().into_inner().outcome.unwrap();
    assert_eq!((outcome.standing, outcome.lifted), (DebtorStanding::Bankrupt as i32, 2), "{}", outcome.message);
    let queue = queue(&mut s, &flats[0]).await;
    assert!(
        queue.seizures.iter().all(|q| q.state == assetgw::core::proto::SeizureState::Released as i32),
        "first and waiting lifted, nobody promoted: {queue:?}"
    );
    let renew = RenewSeizureRequest {
        request_id: "a4".into(),
        case_number: A.into(),
        seizure_id: first.seizure.unwrap().seizure_id,
        months: 0,
        emergency_approval: String::new(),
    };
    assert_eq!(s.renew_seizure(as_court(A, renew)).await.unwrap_err().code(), Code::FailedPrecondition);
    let refused = seize_company(&mut s, "a5", C, &flats[0]).await.unwrap_err();
    assert!(refused.message().contains("R25"), "{}", refused.message());
    let twice =
        d.record_bankruptcy_acceptance(as_court("（2027）京0105破1号", accept("x4", "（2027）京0105破1号"))).await;
    assert_eq!(twice.unwrap_err().code(), Code::FailedPrecondition);
}

crate::on_both_backends!(
    r24_r26_a_review_suspends_every_court_and_a_refusal_resumes,
    r25_acceptance_lifts_every_seizure_and_only_releases_remain
);

/// R25 in a race: one replica places seizures on the company's flats while the other records the
/// acceptance. A placement is either acknowledged before the acceptance commits (and lifted by it)
/// or refused; none is acknowledged after it and left standing.
#[tokio::test]
async fn a_seizure_racing_an_acceptance_on_two_replicas_is_lifted_or_refused() {
    let Some(url) = ledger_url(Db::Postgres).await else { return };
    let stack = Stack::with(standard(), |c| c.ledger.url = url.clone()).await;
    let flats = company_assets(&stack, AssetKind::RealEstate).await;
    let one = crate::spawned::Process::serve(&stack.registries, &url).await;
    let two = crate::spawned::Process::serve(&stack.registries, &url).await;
    let case = |i: usize| format!("（2024）京0105执{}号", 100 + i);
    let mut s = SeizureServiceClient::new(one.channel());
    for i in 0..2 {
        seize_company(&mut s, &format!("early-{i}"), &case(i), &flats[i % flats.len()]).await.unwrap();
    }
    let mut racing: futures::stream::FuturesUnordered<_> = (2..24)
        .map(|i| {
            let (mut s, flat, case) =
                (SeizureServiceClient::new(one.channel()), flats[i % flats.len()].clone(), case(i));
            async move { seize_company(&mut s, &format!("race-{i}"), &case, &flat).await }
        })
        .collect();
    let bankruptcy = "（2027）京0105破1号";
    let accept = RecordBankruptcyAcceptanceRequest {
        request_id: "race-accept".into(),
        case_number: bankruptcy.into(),
        debtor: Some(debtor(COMPANY)),
        decision_reference: bankruptcy.into(),
        decided_at: None,
    };
    let mut d = DebtorServiceClient::new(two.channel());
    // The acceptance goes out once the placements are under way: the first has been answered.
    let mut placed = vec![futures::StreamExt::next(&mut racing).await.unwrap()];
    // A second wave sets out with the acceptance.
    let second: Vec<_> = (24..40)
        .map(|i| {
            let (mut s, flat, case) =
                (SeizureServiceClient::new(one.channel()), flats[i % flats.len()].clone(), case(i));
            async move { seize_company(&mut s, &format!("race-{i}"), &case, &flat).await }
        })
        .collect();
    let (rest, later, accepted) = tokio::join!(
        futures::StreamExt::collect::<Vec<_>>(racing),
        futures::future::join_all(second),
        d.record_bankruptcy_acceptance(as_court(bankruptcy, accept))
    );
    placed.extend(rest);
    placed.extend(later);
    // By default the holding courts lift (R25): the acceptance counts what they must lift.
    let outcome = accepted.unwrap().into_inner().outcome.unwrap();
    assert_eq!(outcome.lifted, 0, "{}", outcome.message);
    let acknowledged = placed.iter().filter(|p| p.is_ok()).count();
    for refused in placed.iter().filter_map(|p| p.as_ref().err()) {
        assert_eq!(refused.code(), Code::FailedPrecondition, "{}", refused.message());
        assert!(refused.message().contains("R25"), "{}", refused.message());
    }
    eprintln!(
        "racing the acceptance: {acknowledged} acknowledged (then lifted), {} refused",
        placed.len() - acknowledged
    );
    assert_eq!(
        outcome.awaiting_lift as usize,
        2 + acknowledged,
        "every seizure acknowledged was acknowledged before the acceptance, which counts it to be lifted"
    );
    let mut d = DebtorServiceClient::new(one.channel());
    let lifts =
        d.list_bankruptcy_lifts(as_court(A, ListBankruptcyLiftsRequest { overdue_only: false, as_of: None })).await;
    assert_eq!(lifts.unwrap().into_inner().lifts.len(), 2 + acknowledged, "each listed for its court to lift");
    // Nothing acknowledged after the acceptance: every live seizure is one the acceptance counted.
    let mut live = 0;
    for flat in &flats {
        let asked = GetSeizureQueueRequest { asset_kind: flat.kind, asset_id: flat.asset_id.clone() };
        live += match s.get_seizure_queue(asked).await {
            Ok(found) => found.into_inner().queue.unwrap().seizures.len(),
            // A flat no placement reached before the acceptance: nothing was ever seized on it.
            Err(e) if e.code() == Code::NotFound => 0,
            Err(e) => panic!("{e}"),
        };
    }
    assert_eq!(live, 2 + acknowledged, "acknowledged after the acceptance and left standing");
}
