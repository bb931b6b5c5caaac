//! Who may call and what they may see (R15): mutual TLS with court
//! certificates, the officer header, registries' identities, case
//! authorization including designations (R10, R12), per-court rate limits
//! and daily quotas, and the plaintext escape hatch.

use std::time::Duration;

use assetgw::{
    core::proto::{
        ListCaseSeizuresRequest, ListLapsingSeizuresRequest, RegistryKind, RegistryStatus, ReleaseSeizureRequest,
        SearchAssetsRequest, SearchRequest, SearchResponse, TransferCaseRequest,
        asset_search_service_client::AssetSearchServiceClient, registry_service_client::RegistryServiceClient,
    },
    gateway::auth::OFFICER_HEADER,
    ops::pki::{Ca, Role, Validity},
};
use tonic::{
    Code, Status,
    transport::{Certificate, ClientTlsConfig, Endpoint, Identity},
};
use tonic_types::StatusExt;

use crate::{harness::*, ledger::*};

/// A search sent over a fresh connection presenting `identity` (or none), with `officer`.
async fn search_as(
    stack: &Stack,
    ca_pem: &str,
    identity: Option<(String, String)>,
    officer: Option<&str>,
) -> Result<SearchResponse, Status> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)).domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Endpoint::from_shared(stack.url.clone()).unwrap().tls_config(tls).unwrap().connect().await;
    let channel = channel.map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(SearchRequest { query: Some(query(&[RICH])) });
    if let Some(officer) = officer {
        request.metadata_mut().insert(OFFICER_HEADER, officer.parse().unwrap());
    }
    AssetSearchServiceClient::new(channel).search(request).await.map(|r| r.into_inner())
}

fn test_ca() -> (Ca, String) {
    let ca = Ca::load(test_pki()).unwrap();
    let pem = ca.cert_pem().to_string();
    (ca, pem)
}

fn court(ca: &Ca, code: &str, validity: Validity) -> (String, String) {
    ca.issue(&Role::Court(code.into()), &[], validity).unwrap()
}

/// A certificate from the network CA whose subject is not a court's.
fn odd_certificate(unit: Option<&str>, name: &str) -> (String, String) {
    let key_pem = std::fs::read_to_string(test_pki().join("ca.key")).unwrap();
    let ca_key = rcgen::KeyPair::from_pem(&key_pem).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(Ca::load(test_pki()).unwrap().cert_pem(), ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    if let Some(unit) = unit {
        params.distinguished_name.push(rcgen::DnType::OrganizationalUnitName, unit);
    }
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    (params.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
}

#[tokio::test]
async fn only_a_valid_court_certificate_with_an_officer_gets_an_answer() {
    let stack = Stack::start(vec![Reg::new("bank-a", RegistryKind::Bank)]).await;
    let (ca, ca_pem) = test_ca();
    let other_ca = Ca::create(&scratch(), "someone else's CA").unwrap();
    let refused_at_handshake = [
        ("no certificate", None),
        ("another CA's certificate", Some(court(&other_ca, "京0105", Validity::days(30)))),
        ("an expired certificate", Some(court(&ca, "京0105", Validity { from_days: -30, until_days: -2 }))),
        ("a certificate not yet valid", Some(court(&ca, "京0105", Validity { from_days: 2, until_days: 30 }))),
        (
            "a registry's (server-only) certificate",
            Some(ca.issue(&Role::Registry("bank-a".into()), &[], Validity::days(30)).unwrap()),
        ),
    ];
    for (what, identity) in refused_at_handshake {
        let err = search_as(&stack, &ca_pem, identity, Some("officer-7")).await.unwrap_err();
        assert!(matches!(err.code(), Code::Unavailable | Code::Unknown), "{what}: {err:?}");
    }
    let refused_by_the_gateway = [
        (
            "the gateway's certificate",
            Some(ca.issue(&Role::Gateway, &[], Validity::days(30)).unwrap()),
            Code::PermissionDenied,
            "only courts",
        ),
        (
            "a certificate naming no role",
            Some(odd_certificate(None, "京0105")),
            Code::Unauthenticated,
            "names no assetgw role",
        ),
        (
            "a court certificate with no court code",
            Some(odd_certificate(Some("court"), "Acme Ltd")),
            Code::Unauthenticated,
            "not a court code",
        ),
    ];
    for (what, identity, code, says) in refused_by_the_gateway {
        let err = search_as(&stack, &ca_pem, identity, Some("officer-7")).await.unwrap_err();
        assert_eq!(err.code(), code, "{what}: {err:?}");
        assert!(err.message().contains(says), "{what}: {}", err.message());
    }
    for officer in [None, Some("a b"), Some(&"x".repeat(65)[..])] {
        let err =
            search_as(&stack, &ca_pem, Some(court(&ca, "京0105", Validity::days(30))), officer).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "officer {officer:?}");
        assert!(err.message().contains(OFFICER_HEADER), "{}", err.message());
    }
    let refusal = logs().lines().find(|l| l.contains("refused") && l.contains(OFFICER_HEADER)).map(str::to_string);
    let refusal = refusal.expect("the refusal is logged");
    assert!(refusal.contains("court=京0105"), "the certificate named the court; the log says so: {refusal}");
    assert_eq!(stack.calls("bank-a"), 0, "no refused caller reached a registry");
    search_as(&stack, &ca_pem, Some(court(&ca, "京0105", Validity::days(30))), Some("officer-7")).await.unwrap();
    assert_eq!(stack.calls("bank-a"), 1);
}

#[tokio::test]
async fn the_gateway_refuses_a_registry_presenting_another_registrys_identity() {
    let mut impostor = Reg::new("bank-a", RegistryKind::Bank);
    impostor.cert_of = Some("bank-b");
    let stack = Stack::start(vec![impostor, Reg::new("realestate", RegistryKind::RealEstate)]).await;
    let r = stack.search(query(&[RICH])).await.unwrap();
    assert_eq!(status(outcome(&r, 0, "bank-a")), RegistryStatus::Unavailable);
    assert_eq!(status(outcome(&r, 0, "realestate")), RegistryStatus::Ok);
    assert_eq!(stack.calls("bank-a"), 0, "nothing was sent to the impostor");
}

#[tokio::test]
async fn a_registry_answers_the_gateway_only() {
    let stack = Stack::start(vec![Reg::new("bank-a", RegistryKind::Bank)]).await;
    let endpoint = &stack.registries[0].endpoint;
    let ask = SearchAssetsRequest { debtor: Some(debtor(RICH)), case_number: CASE.into(), ..Default::default() };
    let tls = tls_of(Role::Court("京0105".into())).client("bank-a").unwrap();
    let as_court = Endpoint::from_shared(endpoint.clone()).unwrap().tls_config(tls).unwrap().connect_lazy();
    let err = RegistryServiceClient::new(as_court).search_assets(ask.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("only the gateway"), "{}", err.message());
    RegistryServiceClient::new(registry_channel(endpoint, "bank-a")).search_assets(ask).await.unwrap();
}

#[tokio::test]
async fn r15_a_court_sees_and_acts_on_its_own_cases_only_even_when_the_answer_is_cached() {
    let stack = Stack::start(standard()).await;
    let flat = asset(&stack, realestate()).await; // 京0105's search fills the cache
    let calls = stack.calls("realestate");
    let mut client = stack.client().await;
    let foreign = as_court(B, SearchRequest { query: Some(query(&[RICH])) }); // 粤0304 asks under 京0105's case
    let err = client.search(foreign).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("belongs to court 京0105") && err.message().contains("R15"), "{}", err.message());
    assert_eq!(stack.calls("realestate"), calls);

    let mut s = seizures(&stack);
    let err = s.place_seizure(as_court(B, place_req("x1", A, &flat, 0))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = s.list_case_seizures(ListCaseSeizuresRequest { case_number: B.into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "京0105 listing 粤0304's case");
    let lapsing = ListLapsingSeizuresRequest { within_days: 30, court_code: "粤0304".into() };
    assert_eq!(s.list_lapsing_seizures(lapsing).await.unwrap_err().code(), Code::PermissionDenied);
}

fn realestate() -> assetgw::core::proto::AssetKind {
    assetgw::core::proto::AssetKind::RealEstate
}

#[tokio::test]
async fn r10_r12_a_designation_moves_the_case_to_the_receiving_court() {
    let stack = Stack::start(standard()).await;
    let flat = asset(&stack, realestate()).await;
    let mut s = seizures(&stack);
    let placed = place(&mut s, "t1", A, &flat, 0).await;
    let transfer = TransferCaseRequest {
        request_id: "t2".into(),
        case_number: A.into(),
        to_court_code: "粤0305".into(),
        decision_reference: "（2024）京01执监1号".into(),
        decided_at: None,
    };
    s.transfer_case(transfer).await.unwrap();
    let mut q = query(&[RICH]);
    q.case_number = A.into();
    let err = stack.search(q.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("designated to court 粤0305") && err.message().contains("R12"), "{}", err.message());

    let as_receiving_court = as_court("（2025）粤0305执1号", SearchRequest { query: Some(q) });
    let searched = stack.client().await.search(as_receiving_court).await;
    searched.expect("the receiving court may search the designated case");

    let release = ReleaseSeizureRequest {
        request_id: "t3".into(),
        case_number: A.into(),
        seizure_id: placed.seizure.unwrap().seizure_id,
        ..Default::default()
    };
    let err = s.release_seizure(as_court("（2025）粤0305执1号", release)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("AcceptTransfer"), "{}", err.message());
}

#[tokio::test]
async fn each_court_has_its_own_rate_and_one_courts_burst_does_not_slow_another() {
    let stack = Stack::with(standard(), |c| {
        c.limits.courts.insert(
            "京0105".into(),
            assetgw::ops::config::CourtLimits { rate: Some(1), burst: Some(2), daily_searches: None },
        );
    })
    .await;
    stack.search(query(&[RICH])).await.unwrap();
    stack.search(query(&[RICH])).await.unwrap();
    let err = stack.search(query(&[RICH])).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("court 京0105 exceeds its rate of 1 requests/s"), "{}", err.message());
    let retry = err.get_details_retry_info().expect("retry information").retry_delay.unwrap();
    assert!(retry > Duration::ZERO && retry <= Duration::from_secs(1), "{retry:?}");
    let mut other = query(&[RICH]);
    other.case_number = B.into();
    for _ in 0..5 {
        stack.search(other.clone()).await.expect("粤0304 keeps its own budget");
    }
}

#[tokio::test]
async fn the_daily_search_quota_holds_across_a_restart() {
    let stack = Stack::with(standard(), |c| c.limits.daily_searches = 2).await;
    stack.search(query(&[RICH])).await.unwrap();
    stack.search(query(&[RICH])).await.unwrap();
    let err = stack.search(query(&[RICH])).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("used its 2 searches for today"), "{}", err.message());
    let retry = err.get_details_retry_info().unwrap().retry_delay.unwrap();
    assert!(retry > Duration::ZERO && retry <= Duration::from_secs(86_400), "{retry:?}");

    let url = stack.ledger_url.clone();
    stack.stop().await.unwrap();
    let restarted = Stack::with(standard(), |c| {
        c.limits.daily_searches = 2;
        c.ledger.url = url;
    })
    .await;
    let err = restarted.search(query(&[RICH])).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "the quota is counted from the audit trail");
}

#[tokio::test]
async fn a_plaintext_gateway_takes_the_court_from_metadata_and_warns_on_every_request() {
    let stack = Stack::with(vec![Reg::new("bank-a", RegistryKind::Bank).dead()], |c| c.tls.plaintext = true).await;
    assert!(stack.url.starts_with("http://"));
    stack.search(query(&[RICH])).await.unwrap();
    assert!(logs().contains("plaintext gateway: the court identity below is taken on trust"));
    let channel = Endpoint::from_shared(stack.url.clone()).unwrap().connect_lazy();
    let mut request = tonic::Request::new(SearchRequest { query: Some(query(&[RICH])) });
    request.metadata_mut().insert(OFFICER_HEADER, "officer-7".parse().unwrap());
    let err = AssetSearchServiceClient::new(channel).search(request).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("x-court-code-bin"), "{}", err.message());
}
