//! Registries that answer later and break the ticket contract (issue 25,
//! items 5–8): a clock behind ours or no time at all, a window of ten years,
//! a pending reply that changes its ticket or its window, a next ask past the
//! window's end. The gateway asks no ticket sooner than its floor, keeps no
//! search open longer than the registry declares (or its own maximum), and
//! holds a registry to the ticket it gave.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use assetgw::tools::mock::data::Profile;
use assetgw::{
    core::{
        clock::{Clock, SystemClock, Time},
        proto::{
            Deferred, DescribeRequest, DescribeResponse, GetAnswerRequest, GetAnswerResponse, GetSearchRequest,
            GetSearchResponse, RegistryKind, RegistryStatus, SearchAssetsRequest, SearchAssetsResponse,
            SubmitSearchRequest,
            get_answer_response::State,
            registry_service_server::{RegistryService, RegistryServiceServer},
            ts,
        },
    },
    ops::{
        config::RegistryConfig,
        net::{ConnectionLimits, admit},
        pki::Role,
    },
};
use tonic::{Code, Request, Response, Status, service::interceptor::InterceptedService};

use crate::harness::*;

/// How the registry lies.
#[derive(Clone, Copy, PartialEq)]
enum Lie {
    /// Not at all: pending, with the same ticket and window (to the nanosecond) every time.
    Honest,
    /// `ask_after` is the epoch (a registry that sends no time).
    AskAfterZero,
    /// Its clock runs an hour behind ours: `ask_after` always in our past.
    ClockBehind,
    /// A window of ten years.
    TenYears,
    /// Its pending reply names another ticket.
    SwitchesTicket,
    /// Its pending reply moves the window's end an hour later.
    PushesWindow,
    /// Asks to be asked an hour after its window ends, two seconds from now.
    AskAfterTheEnd,
    /// Answers every seize order with the same reference (a registry that lost its counters).
    SameReference,
    /// Implements no `Describe` (UNIMPLEMENTED), and states a window of ten years.
    NoDescribe,
}

/// A bank that takes every search as a ticket, stays pending, and lies as told; it records when
/// it was polled.
#[derive(Clone)]
struct Liar {
    lie: Lie,
    /// The window `Describe` declares (zero: none).
    declared: Duration,
    polls: Arc<Mutex<Vec<tokio::time::Instant>>>,
    /// `Describe` calls received.
    describes: Arc<std::sync::atomic::AtomicU32>,
    /// The window's end an honest registry repeats.
    end: Time,
}

fn now() -> Time {
    SystemClock.now()
}

fn later(d: Duration) -> Time {
    now() + chrono::Duration::from_std(d).unwrap()
}

impl Liar {
    fn ticket(&self, name: &str) -> Deferred {
        let (ask_after, answer_by) = match self.lie {
            Lie::AskAfterZero => (Time::UNIX_EPOCH, later(Duration::from_secs(60))),
            Lie::ClockBehind => {
                let behind = now() - chrono::Duration::hours(1);
                (behind, behind + chrono::Duration::hours(2))
            }
            Lie::TenYears | Lie::NoDescribe => {
                (later(Duration::from_secs(1)), later(Duration::from_secs(10 * 365 * 86_400)))
            }
            Lie::AskAfterTheEnd => {
                let end = later(Duration::from_secs(2));
                (end + chrono::Duration::hours(1), end)
            }
            Lie::Honest | Lie::SameReference => (later(Duration::from_millis(300)), self.end),
            Lie::SwitchesTicket | Lie::PushesWindow => {
                (later(Duration::from_millis(300)), later(Duration::from_secs(3600)))
            }
        };
        Deferred { ticket: name.into(), ask_after: Some(ts(ask_after)), answer_by: Some(ts(answer_by)) }
    }
}

#[tonic::async_trait]
impl RegistryService for Liar {
    async fn describe(&self, _: Request<DescribeRequest>) -> Result<Response<DescribeResponse>, Status> {
        self.describes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.lie == Lie::NoDescribe {
            return Err(Status::unimplemented("no Describe here"));
        }
        Ok(Response::new(DescribeResponse {
            name: "liar".into(),
            kind: RegistryKind::Bank as i32,
            asset_kinds: vec![assetgw::core::proto::AssetKind::Deposit as i32],
            display_name: "Lying Bank".into(),
            answer_window: prost_types::Duration::try_from(self.declared).ok(),
            search_rate: 0,
        }))
    }

    /// It takes one search a call: the gateway falls back to `SearchAssets`.
    async fn search_assets_batch(
        &self,
        _: Request<assetgw::core::proto::SearchAssetsBatchRequest>,
    ) -> Result<Response<assetgw::core::proto::SearchAssetsBatchResponse>, Status> {
        Err(Status::unimplemented("one search a call"))
    }

    async fn search_assets(
        &self,
        request: Request<SearchAssetsRequest>,
    ) -> Result<Response<SearchAssetsResponse>, Status> {
        if !request.into_inner().accept_deferred {
            // A seizure's lookup of its asset, which must be answered now.
            let assets = assetgw::tools::mock::data::assets("liar", RegistryKind::Bank, RICH, Profile::Many);
            return Ok(Response::new(SearchAssetsResponse { assets, ..Default::default() }));
        }
        Ok(Response::new(SearchAssetsResponse { deferred: Some(self.ticket("t-1")), ..Default::default() }))
    }

    async fn get_answer(&self, request: Request<GetAnswerRequest>) -> Result<Response<GetAnswerResponse>, Status> {
        self.polls.lock().unwrap().push(tokio::time::Instant::now());
        assert_eq!(request.into_inner().ticket, "t-1");
        let mut pending = self.ticket("t-1");
        match self.lie {
            Lie::SwitchesTicket => pending.ticket = "t-2".into(),
            Lie::PushesWindow => {
                let end = assetgw::core::proto::time_of(pending.answer_by.as_ref().unwrap());
                pending.answer_by = Some(ts(end + chrono::Duration::hours(1)));
            }
            _ => {}
        }
        Ok(Response::new(GetAnswerResponse { state: Some(State::Pending(pending)) }))
    }

    async fn seize(
        &self,
        request: Request<assetgw::core::proto::SeizeRequest>,
    ) -> Result<Response<assetgw::core::proto::SeizeResponse>, Status> {
        let end_time = request.into_inner().end_time;
        let start_time = end_time.map(|_| ts(now()));
        let reference = "liar-000001".into();
        Ok(Response::new(assetgw::core::proto::SeizeResponse { registry_reference: reference, start_time, end_time }))
    }

    async fn renew(
        &self,
        _: Request<assetgw::core::proto::RenewRequest>,
    ) -> Result<Response<assetgw::core::proto::RenewResponse>, Status> {
        Err(Status::unimplemented("a search-only fixture"))
    }

    async fn release(
        &self,
        _: Request<assetgw::core::proto::ReleaseRequest>,
    ) -> Result<Response<assetgw::core::proto::ReleaseResponse>, Status> {
        Err(Status::unimplemented("a search-only fixture"))
    }

    async fn deduct(
        &self,
        _: Request<assetgw::core::proto::DeductRequest>,
    ) -> Result<Response<assetgw::core::proto::DeductResponse>, Status> {
        Err(Status::unimplemented("a search-only fixture"))
    }
}

/// A gateway whose one registry is `liar` (its clock kept moving with real time), with
/// `search.max_answer_window` at `max`.
async fn stack_with(liar: Liar, max: Duration) -> Stack {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = tls_of(Role::Registry("liar".into())).server().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(InterceptedService::new(
                RegistryServiceServer::new(liar),
                assetgw::gateway::auth::gateway_only,
            ))
            .serve_with_incoming(admit(listener, Some(tls), ConnectionLimits::default(), None))
            .await
    });
    let stack = Stack::with(vec![], |c| {
        c.registries = vec![RegistryConfig::new("liar", RegistryKind::Bank, format!("https://{addr}"))];
        c.search.max_answer_window = max;
    })
    .await;
    // The poller and the window read the gateway's (injected) clock: keep it moving with real time.
    let clock = stack.clock.clone();
    tokio::spawn(async move {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let elapsed = last.elapsed();
            last += elapsed;
            clock.advance(chrono::Duration::from_std(elapsed).unwrap());
        }
    });
    stack
}

fn liar(lie: Lie, declared: Duration) -> Liar {
    let end = later(Duration::from_secs(3600)) + chrono::Duration::nanoseconds(123);
    Liar { lie, declared, polls: Arc::default(), describes: Arc::default(), end }
}

async fn get(stack: &Stack, id: &str) -> GetSearchResponse {
    let request = as_court(CASE, GetSearchRequest { search_id: id.into() });
    stack.client().await.get_search(request).await.unwrap().into_inner()
}

/// Searches; the liar's outcome in the reply, and the search's id.
async fn search(stack: &Stack) -> (assetgw::core::proto::RegistryOutcome, String) {
    let reply = stack.search(query(&[RICH])).await.unwrap();
    (outcome(&reply, 0, "liar").clone(), reply.search_id)
}

#[tokio::test]
async fn item5_a_ticket_whose_next_ask_is_in_the_past_is_asked_no_sooner_than_the_floor() {
    for lie in [Lie::AskAfterZero, Lie::ClockBehind] {
        let fixture = liar(lie, Duration::ZERO);
        let polls = fixture.polls.clone();
        let stack = stack_with(fixture, Duration::from_secs(72 * 3600)).await;
        let (first, _) = search(&stack).await;
        assert_eq!(status(&first), RegistryStatus::Pending);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let polls = polls.lock().unwrap().clone();
        // 2 s at one ask per 250 ms at most, and the gaps themselves never shorter.
        assert!((1..=9).contains(&polls.len()), "{} asks of one ticket in 2 s", polls.len());
        let shortest = polls.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(Duration::MAX);
        assert!(shortest >= Duration::from_millis(240), "two asks {shortest:?} apart");
    }
}

#[tokio::test]
async fn item7_a_window_is_cut_to_the_declared_window_and_the_gateways_maximum() {
    for (declared, max, cut) in [
        (Duration::from_secs(60), Duration::from_secs(3600), Duration::from_secs(60)),
        (Duration::ZERO, Duration::from_secs(3600), Duration::from_secs(3600)),
        (Duration::from_secs(7200), Duration::from_secs(3600), Duration::from_secs(3600)),
    ] {
        let stack = stack_with(liar(Lie::TenYears, declared), max).await;
        let asked = now();
        let (first, _) = search(&stack).await;
        assert_eq!(status(&first), RegistryStatus::Pending);
        let answer_by = assetgw::core::proto::time_of(first.answer_by.as_ref().unwrap());
        let limit = asked + chrono::Duration::from_std(cut + Duration::from_secs(5)).unwrap();
        assert!(answer_by <= limit, "declared {declared:?}, max {max:?}: window kept until {answer_by}");
        assert!(answer_by >= asked + chrono::Duration::from_std(cut).unwrap() - chrono::Duration::seconds(5));
    }
}

#[tokio::test]
async fn item7_a_registry_without_describe_is_held_to_the_maximum_and_asked_once() {
    let fixture = liar(Lie::NoDescribe, Duration::ZERO);
    let describes = fixture.describes.clone();
    let stack = stack_with(fixture, Duration::from_secs(3600)).await;
    for debtor in [RICH, NOBODY] {
        let asked = now();
        let reply = stack.search(query(&[debtor])).await.unwrap();
        let o = outcome(&reply, 0, "liar");
        assert_eq!(status(o), RegistryStatus::Pending, "{}", o.message);
        let answer_by = assetgw::core::proto::time_of(o.answer_by.as_ref().unwrap());
        assert!(answer_by <= asked + chrono::Duration::seconds(3605), "cut to the maximum: {answer_by}");
    }
    assert_eq!(describes.load(std::sync::atomic::Ordering::SeqCst), 1, "an UNIMPLEMENTED Describe is not asked again");
}

#[tokio::test]
async fn item7_a_pending_reply_that_changes_its_ticket_or_window_is_an_invalid_response() {
    for (lie, words) in [(Lie::SwitchesTicket, "another ticket"), (Lie::PushesWindow, "moved the end")] {
        let stack = stack_with(liar(lie, Duration::ZERO), Duration::from_secs(72 * 3600)).await;
        let (first, id) = search(&stack).await;
        assert_eq!(status(&first), RegistryStatus::Pending);
        let mut settled = None;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let got = get(&stack, &id).await;
            if got.settled_at.is_some() {
                settled = Some(got);
                break;
            }
        }
        let got = settled.expect("the breach settles the search");
        let o = got.result.as_ref().unwrap().debtors[0].registries.iter().find(|o| o.registry == "liar").unwrap();
        assert_eq!(status(o), RegistryStatus::InvalidResponse, "{}", o.message);
        assert!(o.message.contains(words), "{}", o.message);
    }
}

#[tokio::test]
async fn item7_an_honest_pending_reply_keeps_the_search_pending() {
    let fixture = liar(Lie::Honest, Duration::ZERO);
    let polls = fixture.polls.clone();
    let stack = stack_with(fixture, Duration::from_secs(72 * 3600)).await;
    let (_, id) = search(&stack).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(polls.lock().unwrap().len() >= 2, "asked again as its ask_after came");
    let got = get(&stack, &id).await;
    let o = got.result.as_ref().unwrap().debtors[0].registries.iter().find(|o| o.registry == "liar").unwrap();
    assert_eq!(status(o), RegistryStatus::Pending, "{}", o.message);
}

#[tokio::test]
async fn item7_a_next_ask_past_the_window_expires_the_search_at_the_windows_end() {
    let stack = stack_with(liar(Lie::AskAfterTheEnd, Duration::ZERO), Duration::from_secs(72 * 3600)).await;
    let (first, id) = search(&stack).await;
    assert_eq!(status(&first), RegistryStatus::Pending, "{}", first.message);
    let end = assetgw::core::proto::time_of(first.answer_by.as_ref().unwrap());
    loop {
        let got = get(&stack, &id).await;
        let o =
            got.result.as_ref().unwrap().debtors[0].registries.iter().find(|o| o.registry == "liar").unwrap().clone();
        if got.settled_at.is_some() {
            assert_eq!(status(&o), RegistryStatus::Expired, "{}", o.message);
            assert!(now() >= end, "settled at the window's end, not before");
            break;
        }
        assert_eq!(status(&o), RegistryStatus::Pending, "{}", o.message);
        assert!(now() < end + chrono::Duration::seconds(3), "still open 3 s after its window ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn item8_a_submitted_search_without_a_request_id_is_refused() {
    let stack = Stack::start(standard()).await;
    for request_id in ["", " ", &"x".repeat(65)] {
        let request = SubmitSearchRequest { request_id: request_id.to_string(), query: Some(query(&[RICH])) };
        let err = stack.client().await.submit_search(as_court(CASE, request)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{request_id:?}: {}", err.message());
        assert!(err.message().contains("request_id"), "{}", err.message());
    }
}

/// Issue 31, item 7: a registry answering a seize order with a reference it already gave another
/// live seizure on the same asset is lying; that order is not acknowledged.
#[tokio::test]
async fn item7_a_reference_the_registry_gave_another_seizure_is_not_an_acknowledgement() {
    use crate::ledger::{A, B, events, place_req, seizures};
    let stack = stack_with(liar(Lie::SameReference, Duration::ZERO), Duration::from_secs(72 * 3600)).await;
    let deposit = assetgw::tools::mock::data::assets("liar", RegistryKind::Bank, RICH, Profile::Many)
        .into_iter()
        .find(|a| matches!(a.detail, Some(assetgw::core::proto::asset::Detail::Deposit(_))))
        .unwrap();
    let id = assetgw::core::merge::identify(deposit).unwrap().id;
    let mut s = seizures(&stack);
    for (n, case) in [A, B].into_iter().enumerate() {
        let place = assetgw::core::proto::PlaceSeizureRequest {
            asset_id: id.clone(),
            registry: "liar".into(),
            asset_kind: assetgw::core::proto::AssetKind::Deposit as i32,
            ..place_req(&format!("ref-{n}"), case, &Default::default(), 100)
        };
        s.place_seizure(as_court(case, place)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let delivered = |events: &[assetgw::core::proto::WatchEventsResponse]| {
        events.iter().filter(|e| e.kind == "order_delivered").count()
    };
    assert_eq!(delivered(&events(&mut s, A, 0).await), 1, "the first seizure's order is acknowledged");
    assert_eq!(delivered(&events(&mut s, B, 0).await), 0, "the second is not: its reference is the first's");
    assert!(logs().contains("already gave seizure"), "the lie is logged");
}
