//! Bad input: every validation error is INVALID_ARGUMENT with field-level
//! BadRequest details that say what is wrong (R20–R22).

use assetgw::core::proto::{Debtor, SearchQuery, SearchRequest, debtor};
use tonic::Code;
use tonic_types::StatusExt;

use crate::harness::*;

/// The violations of a refused search, as (field, description).
async fn refused(stack: &Stack, query: Option<SearchQuery>) -> Vec<(String, String)> {
    let err = stack.client().await.search(SearchRequest { query }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let bad = err.get_details_bad_request().expect("BadRequest details");
    assert!(!err.message().is_empty());
    bad.field_violations.into_iter().map(|v| (v.field, v.description)).collect()
}

async fn one(stack: &Stack, query: SearchQuery, field: &str, says: &str) {
    let v = refused(stack, Some(query)).await;
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].0, field);
    assert!(v[0].1.contains(says), "{field}: `{}` should say `{says}`", v[0].1);
}

fn case(c: &str) -> SearchQuery {
    SearchQuery { case_number: c.into(), ..query(&[RICH]) }
}

#[tokio::test]
async fn r20_bad_case_numbers() {
    let stack = Stack::start(standard()).await;
    for (c, says) in [
        ("", "empty"),
        ("2024京0105执1234号", "brackets"),
        ("[2024]京0105执1234号", "brackets"),
        ("（2024京0105执1234号", "closing bracket"),
        ("（24）京0105执1234号", "four digits"),
        ("（2024）Q0105执1234号", "court code"),
        ("（2024）京010执1234号", "0, 2 or 4 digits"),
        ("（2024）京0105执1234", "号"),
        ("（2024）京0105民初1234号", "not an enforcement case"),
        ("（2024）京0105执异12号", "only 执, 执恢 and 执保"),
        ("（1066）京0105执1号", "from 1949 to 2100"),
        ("（2024）京0105执12345678901234567890号", "a number from 1 to 4294967295"),
    ] {
        one(&stack, case(c), "query.case_number", says).await;
    }
    for good in ["(2024)京0105执1234号", "〔2024〕京0105执恢1号", "(2015)苏执字第00033号", "（2024）最高法执保3号"]
    {
        stack.search(case(good)).await.unwrap_or_else(|e| panic!("{good}: {e:?}"));
    }
}

fn person(id: &str) -> SearchQuery {
    SearchQuery {
        debtors: vec![Debtor { id: Some(debtor::Id::ResidentId(id.into())), ..Default::default() }],
        ..query(&[])
    }
}

fn org(code: &str, accept_unchecked: bool) -> SearchQuery {
    SearchQuery {
        debtors: vec![Debtor {
            id: Some(debtor::Id::CreditCode(code.into())),
            accept_unchecked_credit_code: accept_unchecked,
            ..Default::default()
        }],
        ..query(&[])
    }
}

#[tokio::test]
async fn r21_bad_resident_ids() {
    let stack = Stack::start(standard()).await;
    let field = "query.debtors[0].resident_id";
    one(&stack, person("360426199101010072"), field, "check character `2` but").await;
    one(&stack, person("110105199002301231"), field, "not a real birth date").await;
    one(&stack, person("110105189912311237"), field, "not a real birth date").await;
    one(&stack, person("11010519900101123"), field, "has 17 characters").await;
    // Born on 1 January 2099: a real date, but not yet (by the gateway's clock).
    let body = "11010520990101123";
    let unborn = format!("{body}{}", assetgw::core::identifiers::resident_id_check(body.as_bytes()) as char);
    one(&stack, person(&unborn), field, "birth date (characters 7–14) after today").await;
    one(&stack, person("1101051990O1011232"), field, "digits").await;
    // Lower-case x is the same number.
    let r = stack.search(person("34052419800101001x")).await.unwrap();
    assert_eq!(r.debtors[0].debtor.as_ref().unwrap().id, Some(debtor::Id::ResidentId("34052419800101001X".into())));
}

#[tokio::test]
async fn r22_bad_credit_codes_and_the_override() {
    let stack = Stack::start(standard()).await;
    let field = "query.debtors[0].credit_code";
    one(&stack, org("91110000600037341M", false), field, "accept_unchecked_credit_code").await;
    one(&stack, org("9111000060003734OL", false), field, "`O` at position 17").await;
    one(&stack, org("9111000060003734", false), field, "has 16 characters").await;
    // A genuine early code that fails its checksum may be searched on request; a bad character may not.
    stack.search(org("91110000600037341M", true)).await.unwrap();
    one(&stack, org("9111000060003734OL", true), field, "`O`").await;
}

#[tokio::test]
async fn missing_and_ill_formed_fields() {
    let stack = Stack::start_limited(2).await;
    assert_eq!(refused(&stack, None).await, [("query".to_string(), "is required".to_string())]);
    one(&stack, query(&[]), "query.debtors", "name at least one debtor").await;
    one(&stack, query(&[RICH, NOBODY, COMPANY]), "query.debtors", "at most 2").await;
    one(&stack, query(&[RICH, RICH]), "query.debtors[1]", "repeats debtors[0]").await;
    let no_id = SearchQuery { debtors: vec![Debtor::default()], ..query(&[]) };
    one(&stack, no_id, "query.debtors[0].id", "set resident_id or credit_code").await;
    one(&stack, SearchQuery { asset_kinds: vec![0], ..query(&[RICH]) }, "query.asset_kinds[0]", "not an asset kind")
        .await;
    one(&stack, SearchQuery { asset_kinds: vec![1, 99], ..query(&[RICH]) }, "query.asset_kinds[1]", "99").await;
    let negative = SearchQuery { max_age: Some(prost_types::Duration { seconds: -1, nanos: 0 }), ..query(&[RICH]) };
    one(&stack, negative, "query.max_age", "negative").await;
}

#[tokio::test]
async fn every_problem_is_reported_at_once() {
    let stack = Stack::start(standard()).await;
    let q = SearchQuery {
        case_number: "（2024）京0105民初1号".into(),
        debtors: vec![debtor("360426199101010072"), debtor("91110000600037341M")],
        asset_kinds: vec![42],
        max_age: None,
    };
    let fields: Vec<String> = refused(&stack, Some(q)).await.into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        ["query.case_number", "query.debtors[0].resident_id", "query.debtors[1].credit_code", "query.asset_kinds[0]"]
    );
}

#[tokio::test]
async fn error_messages_never_repeat_a_full_identifier() {
    let stack = Stack::start(standard()).await;
    let err =
        stack.client().await.search(SearchRequest { query: Some(person("360426199101010072")) }).await.unwrap_err();
    assert!(!format!("{err:?}").contains("360426199101010072"));
}

#[tokio::test]
async fn bad_input_is_quoted_only_in_part_in_replies_and_the_audit_trail() {
    let stack = Stack::start(standard()).await;
    // 30 KB of case number, 18 KB of court code and 12 KB of decision reference: just under the request limit.
    let huge = format!("（{}）京0105执1号", "9".repeat(30_000));
    let mut s = assetgw::core::proto::seizure_service_client::SeizureServiceClient::new(stack.channel());
    let request = assetgw::core::proto::TransferCaseRequest {
        request_id: "big".into(),
        case_number: huge.clone(),
        to_court_code: "粤".repeat(6_000),
        decision_reference: "x".repeat(12_000),
        decided_at: None,
    };
    let err = s.transfer_case(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().len() < 2_000, "grpc-message of {} bytes", err.message().len());
    assert!(err.details().len() < 4_000, "details of {} bytes", err.details().len());
    let bad = err.get_details_bad_request().expect("BadRequest details");
    assert!(bad.field_violations.iter().any(|v| v.field == "case_number" && v.description.contains("characters")));
    // The audit record of that call quotes as little.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&stack.ledger_url).await.unwrap();
    let (case, detail, message): (String, String, String) =
        sqlx::query_as("SELECT case_number, detail, message FROM audit WHERE method = 'TransferCase'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(
        case.len() + detail.len() + message.len() < 4_000,
        "{} + {} + {} bytes",
        case.len(),
        detail.len(),
        message.len()
    );
}

#[tokio::test]
async fn one_court_holds_at_most_its_configured_number_of_event_streams() {
    use assetgw::core::proto::{WatchEventsRequest, seizure_service_client::SeizureServiceClient};
    let stack = Stack::with(standard(), |c| c.limits.watch_streams = 2).await;
    let mut s = SeizureServiceClient::new(stack.channel());
    let watch = || as_court(crate::ledger::A, WatchEventsRequest { after_sequence: 0 });
    let first = s.watch_events(watch()).await.unwrap().into_inner();
    let _second = s.watch_events(watch()).await.unwrap().into_inner();
    let err = s.watch_events(watch()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert!(err.message().contains("2 watch streams (WatchEvents, WatchSearch)"), "{}", err.message());
    // Another court is not affected.
    s.watch_events(as_court(crate::ledger::B, WatchEventsRequest { after_sequence: 0 })).await.unwrap();
    // Closing a stream frees its slot.
    drop(first);
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(stream) = s.watch_events(watch()).await {
            reopened = Some(stream);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(reopened.is_some(), "a closed stream's slot is given back");
}
