//! The registry conformance suite: every mock passes it, and a deliberately
//! faulty registry (correct but for one thing at a time) fails each check.

use std::{
    collections::HashMap,
    net::SocketAddr,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use assetgw::{
    core::identifiers,
    core::proto::{
        AssetKind, DeductRequest, DeductResponse, Deferred, DescribeRequest, DescribeResponse, GetAnswerRequest,
        GetAnswerResponse, RegistryKind, ReleaseRequest, ReleaseResponse, RenewRequest, RenewResponse,
        SearchAssetsRequest, SearchAssetsResponse, SeizeRequest, SeizeResponse,
        asset::Detail,
        debtor, get_answer_response,
        registry_service_server::{RegistryService, RegistryServiceServer},
    },
    ops::{
        net::{ConnectionLimits, admit},
        pki::Role,
    },
    tools::conformance::{self, Target, UNKNOWN_DEBTOR},
    tools::mock::data::{self, Profile},
};
use tonic::{Request, Response, Status, service::interceptor::InterceptedService};

use crate::harness::*;

/// Every check the suite runs, in order.
const CHECKS: [&str; 17] = [
    "describe",
    "search_well_formed",
    "search_deterministic",
    "unknown_debtor_empty",
    "invalid_input",
    "deadline",
    "health",
    "seize_idempotent",
    "seize_waiting",
    "seize_promotion",
    "renew_answers",
    "release_answers",
    "release_unknown_not_found",
    "deduct_answers",
    "refuses_outsiders",
    "deferred",
    "batch",
];

/// A bank registry that keeps the contract except for the check named `broken`.
#[derive(Clone, Default)]
struct Faulty {
    broken: Option<&'static str>,
    /// Answers at once even when a ticket is accepted.
    at_once: bool,
    searches: Arc<AtomicU64>,
    answers: Arc<Mutex<HashMap<String, SeizeResponse>>>,
    /// Frozen amount per reference, and deductions by idempotency key.
    frozen: Arc<Mutex<HashMap<String, i64>>>,
    deductions: Arc<Mutex<HashMap<String, DeductResponse>>>,
    tickets: Arc<Mutex<HashMap<String, Ticket>>>,
}

/// A deferred search: when it is ready, its debtor, and how many ready answers were given.
type Ticket = (assetgw::core::clock::Time, String, u32);

impl Faulty {
    fn breaks(&self, check: &str) -> bool {
        self.broken == Some(check)
    }

    fn now() -> Option<prost_types::Timestamp> {
        Some(assetgw::core::proto::ts(assetgw::core::clock::Clock::now(&assetgw::core::clock::SystemClock)))
    }

    /// A ticket ready in 300 ms, its window a minute.
    fn defer(&self, debtor: &str) -> Deferred {
        let ready =
            assetgw::core::clock::Clock::now(&assetgw::core::clock::SystemClock) + chrono::Duration::milliseconds(300);
        let mut tickets = self.tickets.lock().unwrap();
        let ticket = format!("fixture-{}", tickets.len());
        tickets.insert(ticket.clone(), (ready, debtor.to_string(), 0));
        let ts = assetgw::core::proto::ts;
        Deferred { ticket, ask_after: Some(ts(ready)), answer_by: Some(ts(ready + chrono::Duration::minutes(1))) }
    }
}

#[tonic::async_trait]
impl RegistryService for Faulty {
    async fn describe(&self, _: Request<DescribeRequest>) -> Result<Response<DescribeResponse>, Status> {
        let kind = if self.breaks("describe") { RegistryKind::Unspecified } else { RegistryKind::Bank };
        Ok(Response::new(DescribeResponse {
            name: "fixture".into(),
            kind: kind as i32,
            asset_kinds: vec![AssetKind::Deposit as i32, AssetKind::Securities as i32],
            display_name: "Faulty Bank".into(),
            answer_window: Some(prost_types::Duration { seconds: 60, nanos: 0 }),
            search_rate: 0,
        }))
    }

    /// It takes one search a call (the gateway falls back to `SearchAssets`), or, broken, answers a
    /// batch with one item whatever it held.
    async fn search_assets_batch(
        &self,
        _: Request<assetgw::core::proto::SearchAssetsBatchRequest>,
    ) -> Result<Response<assetgw::core::proto::SearchAssetsBatchResponse>, Status> {
        match self.breaks("batch") {
            true => Ok(Response::new(assetgw::core::proto::SearchAssetsBatchResponse {
                items: vec![assetgw::core::proto::SearchAssetsBatchItem::default()],
            })),
            false => Err(Status::unimplemented("one search a call")),
        }
    }

    async fn search_assets(
        &self,
        request: Request<SearchAssetsRequest>,
    ) -> Result<Response<SearchAssetsResponse>, Status> {
        let n = self.searches.fetch_add(1, Ordering::SeqCst);
        if self.breaks("deadline") {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        let request = request.into_inner();
        let defer = (request.accept_deferred && !self.at_once) || self.breaks("unsolicited_ticket");
        let id = match request.debtor.and_then(|d| d.id) {
            Some(debtor::Id::ResidentId(id)) => identifiers::parse_resident_id(&id).map(|id| id.as_str().to_string()),
            _ => Err("a resident id is required".to_string()),
        };
        let id = match id {
            Ok(id) => id,
            Err(_) if self.breaks("invalid_input") => return Ok(Response::new(SearchAssetsResponse::default())),
            Err(e) => return Err(Status::invalid_argument(e)),
        };
        if id == UNKNOWN_DEBTOR {
            if self.breaks("unknown_debtor_empty") {
                return Err(Status::not_found("no such person"));
            }
            return Ok(Response::new(SearchAssetsResponse::default()));
        }
        if defer {
            return Ok(Response::new(SearchAssetsResponse { deferred: Some(self.defer(&id)), ..Default::default() }));
        }
        let mut assets = data::assets("fixture", RegistryKind::Bank, &id, Profile::Many);
        if self.breaks("search_well_formed") {
            if let Some(Detail::Deposit(d)) = assets.iter_mut().find_map(|a| a.detail.as_mut()) {
                d.account_number.clear();
            }
        }
        if self.breaks("huge") {
            assets[0].description = "x".repeat(5 * 1024 * 1024);
        }
        if self.breaks("lies") {
            let mut deposits = assets.iter_mut().filter_map(|a| match a.detail.as_mut() {
                Some(Detail::Deposit(d)) => Some(d),
                _ => None,
            });
            if let Some(d) = deposits.next() {
                d.balance.as_mut().unwrap().minor_units = -500;
            }
            if let Some(d) = deposits.next() {
                d.account_number.insert(3, '\u{202E}');
            }
            // A mortgage with no holder: whose claim would be paid first?
            if let Some(last) = assets.last_mut() {
                last.encumbrances.push(assetgw::core::proto::Encumbrance {
                    kind: assetgw::core::proto::EncumbranceKind::Mortgage as i32,
                    holder: " ".into(),
                    amount: Some(assetgw::core::proto::Money { currency: "CNY".into(), minor_units: 100 }),
                    registered_at: Self::now(),
                });
            }
        }
        if self.breaks("search_deterministic") && n % 2 == 1 {
            assets.pop();
        }
        Ok(Response::new(SearchAssetsResponse { assets, as_of: Self::now(), deferred: None }))
    }

    async fn get_answer(&self, request: Request<GetAnswerRequest>) -> Result<Response<GetAnswerResponse>, Status> {
        let ticket = request.into_inner().ticket;
        let mut tickets = self.tickets.lock().unwrap();
        let (ready, id, given) = tickets.get_mut(&ticket).ok_or_else(|| Status::not_found("no such ticket"))?;
        let ts = assetgw::core::proto::ts;
        let now = assetgw::core::clock::Clock::now(&assetgw::core::clock::SystemClock);
        let state = if now < *ready || self.breaks("stuck_pending") {
            let answer_by = Some(ts(*ready + chrono::Duration::minutes(1)));
            get_answer_response::State::Pending(Deferred { ticket, ask_after: Some(ts(*ready)), answer_by })
        } else {
            *given += 1;
            let mut assets = data::assets("fixture", RegistryKind::Bank, id, Profile::Many);
            if self.breaks("deferred") && *given > 1 {
                assets.pop();
            }
            if self.breaks("huge") {
                assets[0].description = "x".repeat(5 * 1024 * 1024);
            }
            get_answer_response::State::Answer(SearchAssetsResponse { assets, as_of: None, deferred: None })
        };
        Ok(Response::new(GetAnswerResponse { state: Some(state) }))
    }

    async fn seize(&self, request: Request<SeizeRequest>) -> Result<Response<SeizeResponse>, Status> {
        let r = request.into_inner();
        let key = r.order.map(|o| o.idempotency_key).unwrap_or_default();
        let mut answers = self.answers.lock().unwrap();
        let issued = answers.len();
        if !r.registry_reference.is_empty() {
            if !answers.values().any(|a| a.registry_reference == r.registry_reference) {
                return Err(Status::not_found("no such seizure"));
            }
            let (start_time, end_time) =
                if self.breaks("seize_promotion") { (None, None) } else { (Self::now(), r.end_time) };
            let promoted = SeizeResponse { registry_reference: r.registry_reference, start_time, end_time };
            return Ok(Response::new(answers.entry(key).or_insert(promoted).clone()));
        }
        let waits = r.end_time.is_none() && !self.breaks("seize_waiting");
        let fresh = SeizeResponse {
            registry_reference: format!("fixture-{issued}"),
            start_time: if waits { None } else { Self::now() },
            end_time: r.end_time,
        };
        self.frozen.lock().unwrap().insert(fresh.registry_reference.clone(), r.amount);
        if self.breaks("seize_idempotent") {
            answers.insert(format!("{key}-{issued}"), fresh.clone());
            return Ok(Response::new(fresh));
        }
        Ok(Response::new(answers.entry(key).or_insert(fresh).clone()))
    }

    async fn renew(&self, request: Request<RenewRequest>) -> Result<Response<RenewResponse>, Status> {
        let r = request.into_inner();
        if self.breaks("renew_answers") {
            return Ok(Response::new(RenewResponse::default()));
        }
        let known = self.answers.lock().unwrap().values().any(|a| a.registry_reference == r.registry_reference);
        if !known {
            return Err(Status::not_found("no such seizure"));
        }
        Ok(Response::new(RenewResponse {
            registry_reference: r.registry_reference,
            start_time: Self::now(),
            end_time: r.end_time,
        }))
    }

    async fn release(&self, request: Request<ReleaseRequest>) -> Result<Response<ReleaseResponse>, Status> {
        let r = request.into_inner();
        let known = self.answers.lock().unwrap().values().any(|a| a.registry_reference == r.registry_reference);
        if !known && !self.breaks("release_unknown_not_found") {
            return Err(Status::not_found("no such seizure"));
        }
        let released_at = if self.breaks("release_answers") { None } else { Self::now() };
        Ok(Response::new(ReleaseResponse { registry_reference: r.registry_reference, released_at }))
    }

    async fn deduct(&self, request: Request<DeductRequest>) -> Result<Response<DeductResponse>, Status> {
        let r = request.into_inner();
        let key = r.order.map(|o| o.idempotency_key).unwrap_or_default();
        let mut deductions = self.deductions.lock().unwrap();
        if let Some(first) = deductions.get(&key) {
            return Ok(Response::new(first.clone()));
        }
        let mut frozen = self.frozen.lock().unwrap();
        let held = frozen.get_mut(&r.registry_reference).ok_or_else(|| Status::not_found("no such freeze"))?;
        if !self.breaks("deduct_answers") {
            *held -= r.amount;
        }
        let answer =
            DeductResponse { registry_reference: r.registry_reference, deducted_at: Self::now(), remaining: *held };
        Ok(Response::new(deductions.entry(key).or_insert(answer).clone()))
    }
}

/// Serves the fixture over mutual TLS with the certificate of registry `fixture`.
async fn serve(fixture: Faulty) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<RegistryServiceServer<Faulty>>().await;
    let with_health = !fixture.breaks("health");
    let refuse: fn(Request<()>) -> Result<Request<()>, Status> =
        if fixture.breaks("refuses_outsiders") { Ok } else { assetgw::gateway::auth::gateway_only };
    let tls = tls_of(Role::Registry("fixture".into())).server().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_optional_service(with_health.then_some(health_service))
            .add_service(InterceptedService::new(RegistryServiceServer::new(fixture), refuse))
            .serve_with_incoming(admit(listener, Some(tls), ConnectionLimits::default(), None))
            .await
    });
    addr
}

fn target(address: String, name: &str) -> Target {
    Target {
        address,
        tls: Some((tls_of(Role::Gateway), name.to_string())),
        debtor: RICH.into(),
        deadline: Duration::from_millis(500),
        outsider: Some(tls_of(Role::Court("京0105".into()))),
        deferred_wait: Duration::from_secs(5),
    }
}

fn failed(report: &conformance::ConformanceReport) -> Vec<&'static str> {
    report.checks.iter().filter(|c| !c.passed).map(|c| c.name).collect()
}

#[tokio::test]
async fn every_mock_registry_conforms() {
    let stack = Stack::start(standard()).await;
    for r in &stack.registries {
        let address = r.endpoint.trim_start_matches("https://").to_string();
        let report = conformance::run(target(address, &r.name)).await.unwrap();
        assert_eq!(report.checks.iter().map(|c| c.name).collect::<Vec<_>>(), CHECKS);
        assert!(report.passed(), "{}", report.text());
    }
}

#[tokio::test]
async fn a_mock_answering_later_keeps_the_ticket_protocol() {
    let stack = Stack::start(vec![Reg::new("bank-a", RegistryKind::Bank).deferred("300ms..600ms")]).await;
    let address = stack.registries[0].endpoint.trim_start_matches("https://").to_string();
    let report = conformance::run(target(address, "bank-a")).await.unwrap();
    assert!(report.passed(), "{}", report.text());
    let deferred = report.checks.iter().find(|c| c.name == "deferred").unwrap();
    assert!(deferred.detail.starts_with("ticket, pending"), "the answer came later: {}", deferred.detail);
    let mut client = assetgw::core::proto::registry_service_client::RegistryServiceClient::new(registry_channel(
        &stack.registries[0].endpoint,
        "bank-a",
    ));
    let empty = client.get_answer(GetAnswerRequest { ticket: String::new() }).await.unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument, "{}", empty.message());
    assert!(empty.message().contains("ticket is empty"), "{}", empty.message());
}

#[tokio::test]
async fn a_ticket_pending_past_its_ask_after_fails_within_the_wait() {
    let addr = serve(Faulty { broken: Some("stuck_pending"), ..Faulty::default() }).await;
    let run = conformance::run(target(addr.to_string(), "fixture"));
    let report = tokio::time::timeout(Duration::from_secs(30), run).await.expect("the suite gives up after its wait");
    let report = report.unwrap();
    assert_eq!(failed(&report), ["deferred"], "{}", report.text());
}

#[tokio::test]
async fn a_ticket_the_gateway_did_not_accept_is_an_invalid_response() {
    let stack = with_fixture(serve(Faulty { broken: Some("unsolicited_ticket"), ..Faulty::default() }).await).await;
    // A search takes tickets (the answer goes to its search job)...
    let reply = stack.search(query(&[RICH])).await.unwrap();
    assert_eq!(fixture_outcome(&reply).status, assetgw::core::proto::RegistryStatus::Pending as i32);
    // ...but a seizure must find its asset now: the lookup does not accept one, and the fixture sends one anyway.
    let deposit = data::assets("fixture", RegistryKind::Bank, RICH, Profile::Many)
        .into_iter()
        .find(|a| matches!(a.detail, Some(Detail::Deposit(_))))
        .unwrap();
    let id = assetgw::core::merge::identify(deposit).unwrap().id;
    let place = assetgw::core::proto::PlaceSeizureRequest {
        asset_id: id,
        registry: "fixture".into(),
        ..crate::ledger::place_req("t1", CASE, &Default::default(), 100)
    };
    let place = assetgw::core::proto::PlaceSeizureRequest {
        asset_kind: assetgw::core::proto::AssetKind::Deposit as i32,
        ..place
    };
    let err = crate::ledger::seizures(&stack).place_seizure(as_court(CASE, place)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{}", err.message());
    assert!(err.message().contains("fixture could not be asked"), "{}", err.message());
    assert!(logs().contains("which this search did not accept"), "the broken answer is logged as such");
}

#[tokio::test]
async fn the_faulty_fixture_fails_each_check_it_breaks() {
    let sound = serve(Faulty::default()).await;
    let report = conformance::run(target(sound.to_string(), "fixture")).await.unwrap();
    assert!(report.passed(), "the fixture is sound until broken:\n{}", report.text());
    for check in CHECKS {
        let addr = serve(Faulty { broken: Some(check), ..Faulty::default() }).await;
        let report = conformance::run(target(addr.to_string(), "fixture")).await.unwrap();
        let failed = failed(&report);
        assert!(failed.contains(&check), "breaking {check} failed only {failed:?}:\n{}", report.text());
        // A search that is broken or hangs leaves nothing to seize, and a seizure that does not wait
        // cannot be promoted; every other fault fails its own check alone.
        match check {
            "search_well_formed" | "deadline" => {}
            "seize_waiting" => assert_eq!(failed, [check, "seize_promotion"], "{}", report.text()),
            // The deferred answer is compared with one given at once, which a non-deterministic search may change.
            "search_deterministic" => assert!(failed == [check] || failed == [check, "deferred"], "{}", report.text()),
            _ => assert_eq!(failed, [check], "{}", report.text()),
        }
    }
}

#[tokio::test]
async fn the_command_reports_and_exits_by_the_result() {
    let stack = Stack::start(vec![Reg::new("bank-a", RegistryKind::Bank)]).await;
    let good = stack.registries[0].endpoint.trim_start_matches("https://").to_string();
    let bad = serve(Faulty { broken: Some("describe"), ..Faulty::default() }).await.to_string();
    let run = |address: String, name: &'static str, json: bool| {
        let mut args = vec!["conformance".to_string(), "--target".into(), address, "--name".into(), name.into()];
        if json {
            args.push("--json".into());
        }
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_assetgw")).args(args).env("ASSETGW_PKI", test_pki()).output().unwrap()
        })
    };
    let ok = run(good, "bank-a", true).await.unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["checks"].as_array().unwrap().len(), CHECKS.len());
    assert!(report["checks"].as_array().unwrap().iter().all(|c| c["passed"] == true));
    let broken = run(bad, "fixture", false).await.unwrap();
    assert!(!broken.status.success());
    let text = String::from_utf8_lossy(&broken.stdout);
    assert!(text.contains("FAIL describe") && text.contains("16 of 17 checks passed"), "{text}");
}

/// The standard stack with the fixture as one more bank, `fixture`.
async fn with_fixture(addr: SocketAddr) -> Stack {
    Stack::with(standard(), |c| {
        c.registries.push(assetgw::ops::config::RegistryConfig::new(
            "fixture",
            RegistryKind::Bank,
            format!("https://{addr}"),
        ))
    })
    .await
}

fn fixture_outcome(reply: &assetgw::core::proto::SearchResponse) -> &assetgw::core::proto::RegistryOutcome {
    reply.debtors[0].registries.iter().find(|o| o.registry == "fixture").expect("the fixture was asked")
}

#[tokio::test]
async fn a_registry_answering_5_mb_cannot_break_a_courts_search() {
    let stack = with_fixture(serve(Faulty { broken: Some("huge"), at_once: true, ..Faulty::default() }).await).await;
    // The court's client keeps tonic's default 4 MiB limit on what it reads.
    let reply = stack.search(query(&[RICH])).await.expect("the search answers within any client's limit");
    let fixture = fixture_outcome(&reply);
    assert_eq!(fixture.status, assetgw::core::proto::RegistryStatus::InvalidResponse as i32);
    assert!(fixture.message.contains("KiB"), "{}", fixture.message);
    let others = reply.debtors[0].registries.iter().filter(|o| o.registry != "fixture");
    assert!(
        others.clone().count() >= 5
            && others.clone().all(|o| o.status == assetgw::core::proto::RegistryStatus::Ok as i32)
    );
}

#[tokio::test]
async fn a_late_answer_of_5_mb_is_an_invalid_response_and_the_search_settles() {
    let stack = with_fixture(serve(Faulty { broken: Some("huge"), ..Faulty::default() }).await).await;
    let reply = stack.search(query(&[RICH])).await.unwrap();
    assert_eq!(fixture_outcome(&reply).status, assetgw::core::proto::RegistryStatus::Pending as i32);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let settled = crate::jobs::settle(&stack, &reply.search_id).await.result.unwrap();
    let fixture = fixture_outcome(&settled);
    assert_eq!(fixture.status, assetgw::core::proto::RegistryStatus::InvalidResponse as i32, "{}", fixture.message);
    assert!(fixture.message.contains("KiB"), "{}", fixture.message);
    assert!(settled.debtors[0].registries.iter().filter(|o| o.registry != "fixture").all(|o| o.status == 1));
}

#[tokio::test]
async fn records_breaking_the_field_rules_are_dropped_and_the_rest_stands() {
    let addr = serve(Faulty { broken: Some("lies"), at_once: true, ..Faulty::default() }).await;
    // The conformance suite applies the same rules.
    let report = conformance::run(target(addr.to_string(), "fixture")).await.unwrap();
    assert!(failed(&report).contains(&"search_well_formed"), "{:?}", failed(&report));
    let stack = with_fixture(addr).await;
    let reply = stack.search(query(&[RICH])).await.unwrap();
    let fixture = fixture_outcome(&reply);
    assert_eq!(fixture.status, assetgw::core::proto::RegistryStatus::InvalidResponse as i32);
    let reported = data::assets("fixture", RegistryKind::Bank, RICH, Profile::Many).len();
    assert!(fixture.message.starts_with(&format!("3 of {reported} record(s) dropped")), "{}", fixture.message);
    let kept = reply.debtors[0].assets.iter().filter(|a| a.sources.iter().any(|s| s.registry == "fixture")).count();
    assert_eq!(kept, reported - 3, "the rest of its answer stands");
    let assets = format!("{:?}", reply.debtors[0].assets);
    assert!(!assets.contains('\u{202E}') && !assets.contains("minor_units: -500"), "nothing dropped reaches the court");
}

#[tokio::test]
async fn the_partners_test_kit_runs_the_whole_suite() {
    // The kit exactly as docs/PARTNERS.md makes it.
    let kit = scratch().join("kit");
    let kit_arg = kit.to_str().unwrap().to_string();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_assetgw")).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    cli(&["pki", "init", "--dir", &kit_arg]);
    cli(&["pki", "issue", "--dir", &kit_arg, "gateway"]);
    cli(&["pki", "issue", "--dir", &kit_arg, "court", "京0105"]);
    cli(&["pki", "issue", "--dir", &kit_arg, "registry", "bank-icbc", "--host", "localhost"]);

    let bank = assetgw::tools::mock::MockRegistry::new("bank-icbc", RegistryKind::Bank, Default::default()).unwrap();
    let tls = assetgw::ops::pki::TlsFiles::of(&kit, &Role::Registry("bank-icbc".into()));
    let (addr, _) =
        assetgw::tools::mock::spawn(bank, "127.0.0.1:0".parse().unwrap(), Some(tls), std::future::pending())
            .await
            .unwrap();
    let args = ["conformance", "--target", &addr.to_string(), "--name", "bank-icbc", "--pki", &kit_arg, "--json"];
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || Command::new(env!("CARGO_BIN_EXE_assetgw")).args(args).output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), CHECKS.len());
    let outsiders = checks.iter().find(|c| c["name"] == "refuses_outsiders").unwrap();
    assert_eq!(outsiders["detail"], "PERMISSION_DENIED", "the kit's court certificate was presented and refused");
    let deduct = checks.iter().find(|c| c["name"] == "deduct_answers").unwrap();
    assert!(deduct["detail"].as_str().unwrap().contains("60 remain"), "{deduct}");
}
