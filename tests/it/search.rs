//! Searching: merge across registries, partial results, deadlines, streaming,
//! several debtors and asset-kind selection.

use std::time::Duration;

use assetgw::core::proto::{
    AssetKind, RegistryKind, RegistryStatus, SearchQuery, SearchStreamRequest, search_stream_response::Event,
};
use futures::StreamExt;
use tonic::Code;

use crate::harness::*;

#[tokio::test]
async fn merges_every_registry_into_one_deduplicated_list() {
    let stack = Stack::start(standard()).await;
    let r = stack.search(query(&[RICH])).await.unwrap();
    assert_eq!(r.case_number, CASE);
    let d = &r.debtors[0];
    let names: Vec<_> = d.registries.iter().map(|o| o.registry.as_str()).collect();
    assert_eq!(names, ["aviation", "bank-a", "bank-b", "ip", "realestate", "securities"]);
    assert!(d.registries.iter().all(|o| status(o) == RegistryStatus::Ok && !o.from_cache && o.fetched_at.is_some()));

    // Fund units are reported by the depository and by the bank(s) that sold them: one entry.
    let reported: u32 = d.registries.iter().map(|o| o.asset_count).sum();
    assert!(d.assets.len() < reported as usize, "{} merged of {reported} reported", d.assets.len());
    let shared = d.assets.iter().find(|a| a.sources.len() > 1).expect("an asset reported twice");
    assert!(shared.sources.iter().any(|s| s.registry == "securities"));
    assert!(shared.sources.windows(2).all(|w| w[0].registry < w[1].registry));

    // Ordered by kind then id, one entry per identity.
    let keys: Vec<_> = d.assets.iter().map(|a| (a.kind, a.asset_id.clone())).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted);

    let totals = d.totals.as_ref().unwrap();
    assert_eq!(totals.asset_count as usize, d.assets.len());
    assert_eq!(totals.by_kind.iter().map(|k| k.count).sum::<u32>() as usize, d.assets.len());
    let cny: i64 = d
        .assets
        .iter()
        .filter_map(|a| match a.asset.as_ref()?.detail.as_ref()? {
            assetgw::core::proto::asset::Detail::Deposit(dep) => dep.balance.clone().filter(|m| m.currency == "CNY"),
            _ => None,
        })
        .map(|m| m.minor_units)
        .sum();
    assert_eq!(totals.deposits_by_currency.iter().find(|m| m.currency == "CNY").unwrap().minor_units, cny);
}

#[tokio::test]
async fn the_same_debtor_gets_the_same_assets_from_a_fresh_stack() {
    let a = Stack::start(standard()).await.search(query(&[COMPANY])).await.unwrap();
    let b = Stack::start(standard()).await.search(query(&[COMPANY])).await.unwrap();
    let ids = |r: &assetgw::core::proto::SearchResponse| {
        r.debtors[0].assets.iter().map(|a| a.asset_id.clone()).collect::<Vec<_>>()
    };
    assert!(!ids(&a).is_empty());
    assert_eq!(ids(&a), ids(&b));
}

#[tokio::test]
async fn a_debtor_with_nothing_gets_ok_from_everyone_and_no_assets() {
    let stack = Stack::start(standard()).await;
    let r = stack.search(query(&[NOBODY])).await.unwrap();
    assert!(r.debtors[0].assets.is_empty());
    assert!(r.debtors[0].registries.iter().all(|o| status(o) == RegistryStatus::Ok && o.asset_count == 0));
}

#[tokio::test]
async fn down_dead_slow_failing_and_lying_registries_give_a_partial_result() {
    let mut regs = standard();
    regs.push(Reg::new("down", RegistryKind::Bank).down());
    regs.push(Reg::new("dead", RegistryKind::Bank).dead());
    regs.push(Reg::new("slow", RegistryKind::Bank).latency("fixed:5s").timeout(200));
    let mut failing = Reg::new("failing", RegistryKind::Bank);
    failing.mock.error_rate = 1.0;
    failing.mock.error_code = assetgw::tools::mock::FaultCode::Internal;
    regs.push(failing);
    // A real-estate registry the gateway believes is a bank: its answer breaks the contract.
    let mut liar = Reg::new("liar", RegistryKind::RealEstate);
    liar.declared = Some(RegistryKind::Bank);
    regs.push(liar);
    let stack = Stack::start(regs).await;
    let r = stack.search(query(&[RICH])).await.unwrap();
    assert_eq!(status(outcome(&r, 0, "down")), RegistryStatus::Unavailable);
    assert_eq!(status(outcome(&r, 0, "dead")), RegistryStatus::Unavailable);
    assert_eq!(status(outcome(&r, 0, "slow")), RegistryStatus::Timeout);
    assert_eq!(outcome(&r, 0, "slow").message, "no answer within 200ms");
    assert_eq!(status(outcome(&r, 0, "failing")), RegistryStatus::Error);
    assert_eq!(status(outcome(&r, 0, "liar")), RegistryStatus::InvalidResponse);
    assert!(outcome(&r, 0, "liar").message.contains("real_estate asset"), "{}", outcome(&r, 0, "liar").message);
    assert_eq!(status(outcome(&r, 0, "bank-a")), RegistryStatus::Ok);
    assert!(!r.debtors[0].assets.is_empty());
    assert!(
        r.debtors[0].assets.iter().all(|a| a.sources.iter().all(|s| !["liar", "slow"].contains(&s.registry.as_str())))
    );
}

#[tokio::test]
async fn the_callers_deadline_ends_the_search_with_deadline_exceeded() {
    let mut regs = standard();
    regs.push(Reg::new("slow", RegistryKind::Bank).latency("fixed:5s").timeout(3000));
    let stack = Stack::start(regs).await;
    let mut client = stack.client().await;
    let mut request = tonic::Request::new(assetgw::core::proto::SearchRequest { query: Some(query(&[RICH])) });
    request.set_timeout(Duration::from_secs(1));
    let err = client.search(request).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("within its deadline of 1s"), "{}", err.message());

    let mut request = tonic::Request::new(SearchStreamRequest { query: Some(query(&[RICH])) });
    request.set_timeout(Duration::from_secs(1));
    let mut stream = client.search_stream(request).await.unwrap().into_inner();
    let mut answers = 0;
    let err = loop {
        match stream.next().await {
            Some(Ok(_)) => answers += 1,
            Some(Err(e)) => break e,
            None => panic!("stream ended without an error"),
        }
    };
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert_eq!(answers, 6, "the fast registries were streamed before the deadline");
}

#[tokio::test]
async fn streaming_sends_each_registry_as_it_answers_then_the_summary() {
    let regs = vec![
        Reg::new("fast", RegistryKind::Bank),
        Reg::new("medium", RegistryKind::RealEstate).latency("fixed:150ms"),
        Reg::new("slow", RegistryKind::Securities).latency("fixed:400ms"),
    ];
    let stack = Stack::start(regs).await;
    let mut stream = stack
        .client()
        .await
        .search_stream(SearchStreamRequest { query: Some(query(&[RICH, COMPANY])) })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(e) = stream.next().await {
        events.push(e.unwrap().event.unwrap());
    }
    assert_eq!(events.len(), 7, "3 registries × 2 debtors, then the summary");
    let order: Vec<_> = events[..6]
        .iter()
        .map(|e| match e {
            Event::RegistryAnswer(a) => a.outcome.as_ref().unwrap().registry.clone(),
            Event::Summary(_) => panic!("summary before the answers"),
        })
        .collect();
    assert_eq!(&order[..2], ["fast", "fast"]);
    assert_eq!(&order[4..], ["slow", "slow"]);
    let Event::Summary(summary) = &events[6] else { panic!("no summary last") };
    assert_eq!(summary.debtors.len(), 2);
    // What was streamed is what the summary merged.
    for e in &events[..6] {
        let Event::RegistryAnswer(a) = e else { unreachable!() };
        let o = a.outcome.as_ref().unwrap();
        assert_eq!(a.assets.len() as u32, o.asset_count.min(a.assets.len() as u32));
        let merged = &summary.debtors[a.debtor_index as usize].assets;
        assert!(a.assets.iter().all(|x| merged.iter().any(|m| m.asset_id == x.asset_id)));
    }
}

#[tokio::test]
async fn several_debtors_are_grouped_in_request_order() {
    let stack = Stack::start(standard()).await;
    let r = stack.search(query(&[COMPANY, NOBODY, RICH])).await.unwrap();
    let ids: Vec<_> = r.debtors.iter().map(|d| d.debtor.as_ref().unwrap().id.clone().unwrap()).collect();
    assert_eq!(ids, [debtor(COMPANY).id.unwrap(), debtor(NOBODY).id.unwrap(), debtor(RICH).id.unwrap()]);
    assert!(r.debtors[1].assets.is_empty());
    assert!(!r.debtors[0].assets.is_empty() && !r.debtors[2].assets.is_empty());
    assert_eq!(stack.calls("bank-a"), 3);
}

#[tokio::test]
async fn asset_kinds_choose_the_registries() {
    let stack = Stack::start(standard()).await;
    let q = SearchQuery { asset_kinds: vec![AssetKind::Aircraft as i32], ..query(&[COMPANY]) };
    let r = stack.search(q).await.unwrap();
    let asked: Vec<_> = r.debtors[0].registries.iter().map(|o| o.registry.as_str()).collect();
    assert_eq!(asked, ["aviation"]);
    assert_eq!(stack.calls("bank-a"), 0);

    // Securities are reported by banks (fund units they sold) and the depository.
    let q = SearchQuery { asset_kinds: vec![AssetKind::Securities as i32], ..query(&[COMPANY]) };
    let r = stack.search(q).await.unwrap();
    let asked: Vec<_> = r.debtors[0].registries.iter().map(|o| o.registry.as_str()).collect();
    assert_eq!(asked, ["bank-a", "bank-b", "securities"]);

    // A bank's deposits are cached with its fund units, but only the kinds asked for are returned.
    let q = SearchQuery { asset_kinds: vec![AssetKind::Deposit as i32], ..query(&[COMPANY]) };
    let r = stack.search(q).await.unwrap();
    assert!(r.debtors[0].registries.iter().all(|o| o.from_cache && o.registry.starts_with("bank")));
    assert!(!r.debtors[0].assets.is_empty());
    assert!(r.debtors[0].assets.iter().all(|a| a.kind == AssetKind::Deposit as i32));
    let counted: u32 = r.debtors[0].registries.iter().map(|o| o.asset_count).sum();
    assert_eq!(counted as usize, r.debtors[0].assets.len());
}

#[tokio::test]
async fn asking_for_a_kind_no_registry_reports_is_a_failed_precondition() {
    let stack = Stack::start(vec![Reg::new("bank-a", RegistryKind::Bank)]).await;
    let q = SearchQuery { asset_kinds: vec![AssetKind::Aircraft as i32], ..query(&[RICH]) };
    let err = stack.search(q).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("aircraft"), "{}", err.message());
}

#[tokio::test]
async fn every_record_a_registry_reports_is_in_the_merged_result() {
    use assetgw::core::proto::{SearchAssetsRequest, registry_service_client::RegistryServiceClient};
    let stack = Stack::start(standard()).await;
    let merged = stack.search(query(&[RICH])).await.unwrap().debtors.remove(0).assets;
    for r in &stack.registries {
        // What the registry itself answers to the gateway's own identity.
        let mut direct = RegistryServiceClient::new(registry_channel(&r.endpoint, &r.name));
        let request =
            SearchAssetsRequest { debtor: Some(debtor(RICH)), case_number: CASE.into(), ..Default::default() };
        let mut records = direct.search_assets(request).await.unwrap().into_inner().assets;
        records.sort_by(|a, b| a.registry_reference.cmp(&b.registry_reference));
        records.dedup();
        let shown = merged.iter().filter(|a| a.sources.iter().any(|s| s.registry == r.name)).count();
        assert_eq!(shown, records.len(), "{}: every record it reported is an entry", r.name);
    }
}

/// A resident ID born on day `n` of 1980 in Beijing's Dongcheng district, with its check character.
fn resident(n: u32) -> String {
    let date = chrono::NaiveDate::from_ymd_opt(1980, 1, 1).unwrap() + chrono::Days::new(n.into());
    let body = format!("110101{}{:03}", date.format("%Y%m%d"), 100 + n);
    format!("{body}{}", char::from(assetgw::core::identifiers::resident_id_check(body.as_bytes())))
}

#[tokio::test]
async fn a_reply_stays_within_its_bound_and_names_what_it_left_out() {
    use prost::Message;
    let debtors: Vec<String> = [RICH.to_string()].into_iter().chain((1..10).map(resident)).collect();
    let names: Vec<&str> = debtors.iter().map(String::as_str).collect();
    let whole = Stack::start(standard()).await.search(query(&names)).await.unwrap();
    let bound = whole.encoded_len() / 2;
    assert!(bound >= 8 * 1024, "the demo data is too small for this test: {} bytes", whole.encoded_len());

    let stack = Stack::with(standard(), |c| c.search.max_reply_bytes = bound).await;
    let reply = stack.search(query(&names)).await.unwrap();
    assert!(reply.encoded_len() <= bound, "{} bytes over a bound of {bound}", reply.encoded_len());
    let mut omitted = 0;
    for (part, full) in reply.debtors.iter().zip(&whole.debtors) {
        for (o, f) in part.registries.iter().zip(&full.registries) {
            assert_eq!(o.asset_count, f.asset_count, "{}: the count says what it reported", o.registry);
            let shown = part.assets.iter().filter(|a| a.sources.iter().any(|s| s.registry == o.registry)).count();
            if status(o) == RegistryStatus::Omitted {
                omitted += 1;
                assert_eq!(shown, 0);
                assert!(o.message.contains("did not fit") && o.message.contains("SearchStream"), "{}", o.message);
            } else {
                assert_eq!(status(o), status(f));
                let whole_shown = full.assets.iter().filter(|a| a.sources.iter().any(|s| s.registry == o.registry));
                assert_eq!(shown, whole_shown.count(), "{}: an answer that fits is shown whole", o.registry);
            }
        }
    }
    assert!(omitted > 0, "half the bound must leave some answer out");

    // The stream sends every answer in its own message; its summary keeps the same bound.
    let request = SearchStreamRequest { query: Some(query(&names)) };
    let mut stream = stack.client().await.search_stream(request).await.unwrap().into_inner();
    let (mut streamed, mut summary) = (0u32, None);
    while let Some(event) = stream.next().await {
        match event.unwrap().event.unwrap() {
            Event::RegistryAnswer(a) => streamed += a.assets.len() as u32,
            Event::Summary(s) => summary = Some(s),
        }
    }
    let reported: u32 = whole.debtors.iter().flat_map(|d| &d.registries).map(|o| o.asset_count).sum();
    assert_eq!(streamed, reported, "the stream leaves nothing out");
    assert!(summary.unwrap().encoded_len() <= bound);
}

#[tokio::test]
async fn a_wide_search_lists_the_registries_worth_reading_and_counts_the_rest() {
    let mut regs = standard();
    regs[1] = Reg::new("bank-b", RegistryKind::Bank).down();
    let stack = Stack::with(regs, |c| c.search.list_registries = 3).await;
    // A debtor with nothing anywhere: only the registry that failed is listed.
    let r = stack.search(query(&["360426199101010071"])).await.unwrap();
    let d = &r.debtors[0];
    assert_eq!(d.registries.iter().map(|o| o.registry.as_str()).collect::<Vec<_>>(), ["bank-b"]);
    assert_eq!(status(&d.registries[0]), RegistryStatus::Unavailable);
    assert_eq!(d.quiet_registries, 5);
    // A debtor with assets everywhere that answered: those registries are listed with their counts.
    let r = stack.search(query(&[RICH])).await.unwrap();
    let d = &r.debtors[0];
    assert_eq!(d.registries.len() + d.quiet_registries as usize, 6);
    assert!(d.registries.iter().all(|o| o.asset_count > 0 || status(o) != RegistryStatus::Ok));
}

/// The claims secured on an asset (a mortgage on a flat, a pledge of shares) reach the court with
/// the asset, as the registry reported them: who holds each, for how much, since when (R28 pays
/// them first when the asset is sold).
#[tokio::test]
async fn a_flats_mortgage_reaches_the_court_with_the_flat() {
    let stack = Stack::start(standard()).await;
    let r = stack.search(query(&[RICH])).await.unwrap();
    let encumbered: Vec<_> = r.debtors[0]
        .assets
        .iter()
        .filter(|a| a.kind == AssetKind::RealEstate as i32)
        .filter_map(|a| a.asset.as_ref())
        .flat_map(|a| &a.encumbrances)
        .collect();
    assert!(!encumbered.is_empty(), "the rich debtor's flats carry mortgages");
    for m in encumbered {
        assert_eq!(m.kind, assetgw::core::proto::EncumbranceKind::Mortgage as i32);
        assert!(!m.holder.is_empty() && m.registered_at.is_some(), "{m:?}");
        assert!(m.amount.as_ref().is_some_and(|a| a.currency == "CNY" && a.minor_units > 0), "{m:?}");
    }
}

/// Issue 29: a registry that takes no batches (`SearchAssetsBatch` UNIMPLEMENTED) answers each
/// search all the same, and is asked for a batch once: from then on, one search a call.
#[tokio::test]
async fn a_registry_that_takes_no_batches_is_asked_one_search_a_call_from_then_on() {
    let mut regs: Vec<Reg> = standard().into_iter().map(|r| r.latency("fixed:300ms")).collect();
    regs[0].mock.unbatched = true;
    // The first search of a round goes alone; the next two come while it is out (300 ms) and meet.
    let stack = Stack::with(regs, |c| {
        c.calls.batch =
            Some(assetgw::ops::config::BatchConfig { window: Duration::from_millis(200), ..Default::default() })
    })
    .await;
    let batches = |name: &str| stack.mock(name).batches().load(std::sync::atomic::Ordering::Relaxed);
    let rounds =
        [[RICH, "34052419800101001X", COMPANY], ["110105198503070027", "440304197506120049", "91110105MA01R7KQ83"]];
    for (round, debtors) in (1..=2).zip(rounds) {
        let searches = debtors.map(|debtor| stack.search(query(&[debtor])));
        for r in futures::future::join_all(searches).await {
            assert_eq!(status(outcome(&r.unwrap(), 0, "bank-a")), RegistryStatus::Ok, "round {round}");
        }
        assert_eq!(batches("bank-a"), 1, "round {round}: asked for a batch once, then one search a call");
        assert_eq!(stack.calls("bank-a"), 3 * round, "every search answered");
        assert_eq!(batches("bank-b"), round, "a registry that takes batches gets the later two together");
    }
    // A search with no batch out goes as a plain call.
    stack.search(query(&[NOBODY])).await.unwrap();
    assert_eq!((batches("bank-b"), stack.calls("bank-b")), (2, 7));
}

/// Issue 29: a search bound for a registry with no batch out is sent at once, whatever the window;
/// those that come while one is out wait for it to be answered and travel together.
#[tokio::test]
async fn a_search_waits_for_company_only_while_its_registrys_last_batch_is_out() {
    let regs = vec![Reg::new("bank-b", RegistryKind::Bank).latency("fixed:300ms")];
    // A window far past the searches' deadline: only the batch out being answered ends a wait.
    let stack = Stack::with(regs, |c| {
        c.calls.batch =
            Some(assetgw::ops::config::BatchConfig { window: Duration::from_secs(60), ..Default::default() })
    })
    .await;
    let first = stack.search(query(&[RICH]));
    let later = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        futures::future::join(stack.search(query(&[COMPANY])), stack.search(query(&[NOBODY]))).await
    };
    let (first, (second, third)) = tokio::join!(first, later);
    for r in [first, second, third] {
        assert_eq!(status(outcome(&r.unwrap(), 0, "bank-b")), RegistryStatus::Ok);
    }
    let batches = stack.mock("bank-b").batches().load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        (batches, stack.calls("bank-b")),
        (1, 3),
        "the first alone, the two that came while it was out together"
    );
}
