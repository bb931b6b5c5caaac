//! Searches that outlive the call: a registry that answers later by ticket,
//! search jobs kept in the ledger's database, the poller that asks again
//! when the (injected) clock says so, restarts and replicas.

use std::time::Duration;

use assetgw::core::proto::{
    GetSearchRequest, GetSearchResponse, ListSearchesRequest, RegistryKind, RegistryStatus, SearchQuery,
    SearchResponse, SubmitSearchRequest, TransferCaseRequest, WatchEventsRequest, WatchSearchRequest,
    WatchSearchResponse,
};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::{harness::*, ledger::seizures, spawned::Process};

/// The six standard registries; bank-b answers later, ready 300–600 ms after it is asked.
fn late_bank() -> Vec<Reg> {
    let mut regs = standard();
    regs.retain(|r| r.name != "bank-b");
    regs.push(Reg::new("bank-b", RegistryKind::Bank).deferred("300ms..600ms"));
    regs
}

async fn get(stack: &Stack, id: &str) -> Result<GetSearchResponse, tonic::Status> {
    let request = as_court(CASE, GetSearchRequest { search_id: id.into() });
    stack.client().await.get_search(request).await.map(|r| r.into_inner())
}

/// Moves the gateway's clock on until the search settles (the mock answers by real time).
pub async fn settle(stack: &Stack, id: &str) -> GetSearchResponse {
    for _ in 0..100 {
        let got = get(stack, id).await.unwrap();
        if got.settled_at.is_some() {
            return got;
        }
        stack.clock.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "search {id} did not settle:\n{}",
        logs().lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect::<Vec<_>>().join("\n")
    );
}

fn bank_b(r: &SearchResponse) -> &assetgw::core::proto::RegistryOutcome {
    outcome(r, 0, "bank-b")
}

#[tokio::test]
async fn an_answer_after_the_call_reaches_the_search_and_its_watchers() {
    let stack = Stack::start(late_bank()).await;
    let reply = stack.search(query(&[RICH])).await.unwrap();
    assert!(!reply.search_id.is_empty(), "a registry is pending: the reply names the search that keeps its answer");
    let pending = bank_b(&reply);
    assert_eq!(status(pending), RegistryStatus::Pending, "{}", pending.message);
    assert!(pending.next_ask.is_some() && pending.answer_by.is_some(), "{pending:?}");
    assert_eq!(status(outcome(&reply, 0, "bank-a")), RegistryStatus::Ok);
    let before = get(&stack, &reply.search_id).await.unwrap();
    assert!(before.settled_at.is_none());

    let mut watch = stack
        .client()
        .await
        .watch_search(as_court(CASE, WatchSearchRequest { search_id: reply.search_id.clone(), after_sequence: 0 }))
        .await
        .unwrap()
        .into_inner();
    let first: Vec<WatchSearchResponse> = (&mut watch).take(5).map(Result::unwrap).collect().await;
    assert_eq!(first.iter().map(|u| u.sequence).collect::<Vec<_>>(), [1, 2, 3, 4, 5], "the five that answered at once");
    assert!(first.iter().all(|u| !u.settled));
    // Hours pass for the gateway in milliseconds; the mock is ready by real time.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let settled = settle(&stack, &reply.search_id).await;
    let last = watch.next().await.unwrap().unwrap();
    assert_eq!((last.sequence, last.settled), (6, true));
    let answer = last.answer.unwrap();
    let outcome = answer.outcome.unwrap();
    assert_eq!((outcome.registry.as_str(), status(&outcome)), ("bank-b", RegistryStatus::Ok));
    assert!(!answer.assets.is_empty(), "bank-b holds accounts of this debtor");
    assert!(watch.next().await.is_none(), "the stream ends when the search settles");

    let result = settled.result.unwrap();
    assert_eq!(status(bank_b(&result)), RegistryStatus::Ok);
    assert!(bank_b(&result).asset_count > 0);
    for a in &answer.assets {
        let merged = result.debtors[0].assets.iter().find(|m| m.asset_id == a.asset_id).expect("in the merged result");
        assert!(merged.sources.iter().any(|s| s.registry == "bank-b"));
    }
    // The late answer went to the cache: the next search has it at once.
    let again = stack.search(query(&[RICH])).await.unwrap();
    assert_eq!(status(bank_b(&again)), RegistryStatus::Ok);
    assert!(bank_b(&again).from_cache && again.search_id.is_empty(), "nothing pending, no search kept");
    // Resuming after the last sequence seen sends nothing more and ends.
    let resumed = WatchSearchRequest { search_id: reply.search_id.clone(), after_sequence: 6 };
    let mut resumed = stack.client().await.watch_search(as_court(CASE, resumed)).await.unwrap().into_inner();
    assert!(resumed.next().await.is_none());
    // The court's event stream says the search settled.
    let events = WatchEventsRequest { after_sequence: 0 };
    let mut events = seizures(&stack).watch_events(as_court(CASE, events)).await.unwrap().into_inner();
    let event = tokio::time::timeout(Duration::from_secs(5), events.next()).await.expect("an event").unwrap().unwrap();
    assert_eq!((event.kind.as_str(), event.search_id.as_str()), ("search_settled", reply.search_id.as_str()));
    assert!(event.message.contains("6 answered"), "{}", event.message);
    assert!(event.asset.is_none() && event.seizure_id.is_empty());
    // Past its retention (30 days after settling) the search is purged.
    stack.clock.advance(chrono::Duration::days(31));
    let mut purged = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Err(e) = get(&stack, &reply.search_id).await {
            purged = Some(e.code());
            break;
        }
    }
    assert_eq!(purged, Some(Code::NotFound), "purged after its retention");
}

#[tokio::test]
async fn an_answer_window_that_ends_first_is_expired() {
    let stack = Stack::start(late_bank()).await;
    let reply = stack.search(query(&[RICH])).await.unwrap();
    // Seven hours later (past the mock's window of 6 h after readiness) nobody has asked.
    stack.clock.advance(chrono::Duration::hours(7));
    let settled = settle(&stack, &reply.search_id).await;
    let result = settled.result.unwrap();
    assert_eq!(status(bank_b(&result)), RegistryStatus::Expired, "{}", bank_b(&result).message);
    assert_eq!(status(outcome(&result, 0, "bank-a")), RegistryStatus::Ok, "the rest of the result stands");
}

#[tokio::test]
async fn a_submitted_search_answers_its_id_at_once_and_a_retry_the_same() {
    let stack = Stack::start(late_bank()).await;
    let mut client = stack.client().await;
    let submit = |id: &str, debtor: &str| {
        as_court(CASE, SubmitSearchRequest { query: Some(query(&[debtor])), request_id: id.into() })
    };
    let first = client.submit_search(submit("court-42", RICH)).await.unwrap().into_inner();
    assert!(!first.replayed && first.registries == 6);
    let again = client.submit_search(submit("court-42", RICH)).await.unwrap().into_inner();
    assert_eq!((again.search_id.as_str(), again.replayed), (first.search_id.as_str(), true));
    let other = client.submit_search(submit("court-42", NOBODY)).await.unwrap_err();
    assert_eq!(other.code(), Code::InvalidArgument);
    assert!(other.message().contains("already submitted a different search"), "{}", other.message());
    for bad in ["", "has space", &"x".repeat(65)] {
        let err = client.submit_search(submit(bad, RICH)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
        assert!(err.message().contains("request_id"), "{}", err.message());
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let settled = settle(&stack, &first.search_id).await.result.unwrap();
    assert!(settled.debtors[0].registries.iter().all(|o| status(o) == RegistryStatus::Ok), "{settled:?}");
    let listed = client.list_searches(as_court(CASE, ListSearchesRequest::default())).await.unwrap().into_inner();
    let mine = listed.searches.iter().find(|s| s.search_id == first.search_id).expect("listed");
    assert_eq!((mine.pending, mine.settled), (0, 6));
    assert_eq!(mine.debtors, ["110105********1232"], "debtors are listed masked");
}

#[tokio::test]
async fn another_courts_search_is_not_found_and_a_designated_case_loses_its_searches() {
    let stack = Stack::start(late_bank()).await;
    let reply = stack.search(query(&[RICH])).await.unwrap();
    let unknown = get(&stack, "no-such-search").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{}", unknown.message());
    let other = as_court("（2025）粤0305执1号", GetSearchRequest { search_id: reply.search_id.clone() });
    let err = stack.client().await.get_search(other).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "another court's search is not disclosed: {}", err.message());
    let theirs = as_court("（2025）粤0305执1号", ListSearchesRequest::default());
    assert!(stack.client().await.list_searches(theirs).await.unwrap().into_inner().searches.is_empty());
    let past = WatchSearchRequest { search_id: reply.search_id.clone(), after_sequence: 7 };
    let err = stack.client().await.watch_search(as_court(CASE, past)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(err.message().contains("after_sequence"), "{}", err.message());

    let transfer = TransferCaseRequest {
        request_id: "d1".into(),
        case_number: CASE.into(),
        to_court_code: "粤0305".into(),
        decision_reference: "（2024）京01执监1号".into(),
        decided_at: None,
    };
    seizures(&stack).transfer_case(transfer).await.unwrap();
    let denied = get(&stack, &reply.search_id).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{}", denied.message());
    let watch = WatchSearchRequest { search_id: reply.search_id.clone(), after_sequence: 0 };
    let denied = stack.client().await.watch_search(as_court(CASE, watch)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_gateway_killed_with_tickets_pending_delivers_them_after_its_restart() {
    // The registries outlive the gateway: mocks of an in-process stack, a gateway process over its own SQLite file.
    let mocks = Stack::start(late_bank()).await;
    let ledger = format!("sqlite://{}", scratch().join("jobs.db").display());
    let mut first = Process::serve(&mocks.registries, &ledger).await;
    let search = |p: &Process| {
        let mut client = assetgw::core::proto::asset_search_service_client::AssetSearchServiceClient::new(p.channel());
        async move {
            let request = as_court(CASE, assetgw::core::proto::SearchRequest { query: Some(query(&[RICH])) });
            client.search(request).await.unwrap().into_inner()
        }
    };
    let reply = search(&first).await;
    assert_eq!(status(bank_b(&reply)), RegistryStatus::Pending);
    first.kill();
    let second = Process::serve(&mocks.registries, &ledger).await;
    let mut client = assetgw::core::proto::asset_search_service_client::AssetSearchServiceClient::new(second.channel());
    let watch = WatchSearchRequest { search_id: reply.search_id.clone(), after_sequence: 5 };
    let mut watch = client.watch_search(as_court(CASE, watch)).await.unwrap().into_inner();
    let last = tokio::time::timeout(Duration::from_secs(20), watch.next()).await.expect("delivered").unwrap().unwrap();
    assert!(last.settled);
    assert_eq!(status(&last.answer.unwrap().outcome.unwrap()), RegistryStatus::Ok);
}

#[tokio::test]
async fn a_replica_that_dies_mid_search_hands_its_legs_to_the_other() {
    // realestate is still being asked when the first replica dies; bank-b answers later by ticket.
    let mut regs = late_bank();
    regs.retain(|r| r.name != "realestate");
    regs.push(Reg::new("realestate", RegistryKind::RealEstate).latency("fixed:1500ms"));
    let mocks = Stack::start(regs).await;
    let Some(url) = ledger_url(Db::Postgres).await else { return };
    let (mut one, two) = (Process::serve(&mocks.registries, &url).await, Process::serve(&mocks.registries, &url).await);
    let client =
        |p: &Process| assetgw::core::proto::asset_search_service_client::AssetSearchServiceClient::new(p.channel());
    let submit = SubmitSearchRequest { query: Some(query(&[RICH])), request_id: "handover-1".into() };
    let submitted = client(&one).submit_search(as_court(CASE, submit)).await.unwrap().into_inner();
    // Killed while its call to realestate (1.5 s) is under way.
    for _ in 0..100 {
        if mocks.calls("realestate") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(mocks.calls("realestate"), 1);
    one.kill();
    let watch = WatchSearchRequest { search_id: submitted.search_id.clone(), after_sequence: 0 };
    let mut watch = client(&two).watch_search(as_court(CASE, watch)).await.unwrap().into_inner();
    let mut seen = Vec::new();
    // The dead replica's call is asked again once its lease (the registry's 3 s timeout + 5 s) has ended.
    while let Some(update) = tokio::time::timeout(Duration::from_secs(30), watch.next()).await.expect("handed over") {
        let update = update.unwrap();
        let outcome = update.answer.unwrap().outcome.unwrap();
        seen.push((outcome.registry.clone(), status(&outcome)));
        if update.settled {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(seen.iter().all(|(_, s)| *s == RegistryStatus::Ok), "{seen:?}");
    assert_eq!(mocks.calls("realestate"), 2, "asked by the replica that died, then again by the other");
}

#[tokio::test]
async fn ten_thousand_pending_tickets_cost_rows_not_memory() {
    use rand::SeedableRng;
    // A bank that answers every search in one to two hours: nothing comes due while we look.
    let mocks = Stack::start(vec![Reg::new("bank-x", RegistryKind::Bank).deferred("1h..2h")]).await;
    let ledger = format!("sqlite://{}", scratch().join("pending.db").display());
    let gateway = Process::serve(&mocks.registries, &ledger).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let mut ids = std::collections::BTreeSet::new();
    while ids.len() < 10_100 {
        ids.insert(assetgw::tools::loadgen::random_resident_id(&mut rng));
    }
    let ids: Vec<String> = ids.into_iter().collect();
    let search = |debtors: Vec<String>| {
        let mut client =
            assetgw::core::proto::asset_search_service_client::AssetSearchServiceClient::new(gateway.channel());
        async move {
            let mut q = query(&[]);
            q.debtors = debtors.iter().map(|d| debtor(d)).collect();
            let r = client.search(as_court(CASE, assetgw::core::proto::SearchRequest { query: Some(q) })).await;
            r.unwrap().into_inner()
        }
    };
    // Warm up with 100 (ten searches of ten debtors), then measure 10,000 more.
    let searches = |ids: &[String]| {
        let chunks: Vec<Vec<String>> = ids.chunks(10).map(<[String]>::to_vec).collect();
        futures::StreamExt::buffer_unordered(futures::StreamExt::map(futures::stream::iter(chunks), search), 16)
            .collect::<Vec<_>>()
    };
    searches(&ids[..100]).await;
    let before = rss_kib(gateway.id());
    let replies = searches(&ids[100..]).await;
    let after = rss_kib(gateway.id());
    let pending =
        replies.iter().flat_map(|r| &r.debtors).filter(|d| status(&d.registries[0]) == RegistryStatus::Pending);
    assert_eq!(pending.count(), 10_000);
    let mut client =
        assetgw::core::proto::asset_search_service_client::AssetSearchServiceClient::new(gateway.channel());
    let open = ListSearchesRequest { open_only: true, limit: 100 };
    let listed = client.list_searches(as_court(CASE, open)).await.unwrap().into_inner().searches;
    assert_eq!(listed.len(), 100, "the court's open searches are listed, at most 100 at a time");
    let grown = after.saturating_sub(before);
    eprintln!(
        "gateway RSS {before} KiB -> {after} KiB with 10,000 pending tickets ({} bytes each)",
        grown * 1024 / 10_000
    );
    // No timer, task or answer is held per ticket: what grows is allocator and page-cache slack.
    assert!(grown < 48 * 1024, "{grown} KiB for 10,000 pending tickets");
}

#[tokio::test]
async fn a_registry_answering_after_the_courts_deadline_answers_into_the_search() {
    let mut regs = standard();
    regs.push(Reg::new("slow", RegistryKind::Bank).latency("fixed:2000ms"));
    let stack = Stack::start(regs).await;
    let mut request = as_court(CASE, assetgw::core::proto::SearchRequest { query: Some(query(&[RICH])) });
    // The gateway gives up 100 ms before the court does, to keep the search and answer in time.
    request.set_timeout(Duration::from_millis(1000));
    let err = stack.client().await.search(request).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{}", err.message());
    let id = err.metadata().get(assetgw::core::error::SEARCH_ID_HEADER).expect("the search id").to_str().unwrap();
    assert!(err.message().contains(&format!("answer into search {id}")), "{}", err.message());
    // The registry answers within its own timeout, after the court's: its answer is kept.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let settled = settle(&stack, id).await.result.unwrap();
    let slow = outcome(&settled, 0, "slow");
    assert_eq!(status(slow), RegistryStatus::Ok, "{}", slow.message);
    assert!(slow.asset_count > 0);
    assert_eq!(settled.debtors[0].registries.len(), 7);
    assert!(settled.debtors[0].registries.iter().all(|o| status(o) == RegistryStatus::Ok));
}

/// Issue 31, item 14: the same debtor searched again while a registry still owes its answer joins
/// the ticket it gave (no new ticket each time); `--fresh` (max_age 0) asks it again.
#[tokio::test]
async fn a_second_search_joins_the_open_ticket_instead_of_opening_another() {
    let stack = Stack::start(late_bank()).await;
    let first = stack.search(query(&[RICH])).await.unwrap();
    let second = stack.search(query(&[RICH])).await.unwrap();
    assert_eq!((status(bank_b(&first)), status(bank_b(&second))), (RegistryStatus::Pending, RegistryStatus::Pending));
    assert_eq!(bank_b(&first).answer_by, bank_b(&second).answer_by, "the same ticket's window");
    assert_eq!(stack.calls("bank-b"), 1, "one ticket for both searches");
    // Both searches get the answer the one ticket brings.
    for id in [&first.search_id, &second.search_id] {
        let got = settle(&stack, id).await;
        let o = got.result.unwrap().debtors[0].registries.iter().find(|o| o.registry == "bank-b").cloned().unwrap();
        assert_eq!(status(&o), RegistryStatus::Ok, "{}", o.message);
    }
    let fresh = stack.search(SearchQuery { max_age: Some(prost_types::Duration::default()), ..query(&[RICH]) });
    let fresh = fresh.await.unwrap();
    assert_eq!(status(bank_b(&fresh)), RegistryStatus::Pending);
    assert!(stack.calls("bank-b") >= 3, "a fresh search asks again: {}", stack.calls("bank-b"));
}
