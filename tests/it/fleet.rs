//! The mock fleet: many banks behind one port, each its own registry by the
//! TLS server name the caller asks for.

use std::{path::PathBuf, time::Duration};

use assetgw::{
    core::proto::{DescribeRequest, SearchAssetsRequest, registry_service_client::RegistryServiceClient},
    ops::pki::{Role, TlsFiles},
    tools::{
        conformance::{self, Target},
        mock::{
            MockConfig, data,
            fleet::{Fleet, FleetConfig, bank_name},
        },
    },
};
use tonic::transport::Channel;

use crate::harness::*;

/// Serves a fleet of `banks` with `settings` on a free port; its PKI directory and address.
async fn fleet(banks: usize, settings: MockConfig, deferred_share: f64) -> (PathBuf, String) {
    let dir = scratch().join("pki");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let fleet = Fleet::new(&FleetConfig { banks, settings, deferred_share }).unwrap();
    let pki = dir.clone();
    tokio::spawn(async move { fleet.serve(listener, &pki, std::future::pending()).await });
    // The PKI is made before the server answers; wait for the last bank's certificate.
    for _ in 0..200 {
        if dir.join("registries").join(format!("{}.pem", bank_name(banks))).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (dir, address)
}

/// A client of `bank` as the gateway reaches it.
fn client(pki: &std::path::Path, address: &str, bank: &str) -> RegistryServiceClient<Channel> {
    let tls = TlsFiles::of(pki, &Role::Gateway).client(bank).unwrap();
    let channel = Channel::from_shared(format!("https://{address}")).unwrap().tls_config(tls).unwrap().connect_lazy();
    RegistryServiceClient::new(channel)
}

#[tokio::test]
async fn each_bank_of_the_fleet_is_its_own_conforming_registry() {
    let (pki, address) = fleet(12, MockConfig { holders: Some(1.0), ..MockConfig::default() }, 0.0).await;
    for bank in ["bank-0001", "bank-0007", "bank-0012"] {
        let described = client(&pki, &address, bank).describe(DescribeRequest {}).await.unwrap().into_inner();
        assert_eq!(described.name, bank, "the certificate and the answer are the named bank's");
    }
    let target = Target {
        address: address.clone(),
        tls: Some((TlsFiles::of(&pki, &Role::Gateway), "bank-0007".into())),
        debtor: RICH.into(),
        deadline: Duration::from_secs(2),
        outsider: Some(TlsFiles::of(&pki, &Role::Court("京0105".into()))),
        deferred_wait: Duration::from_secs(5),
    };
    let report = conformance::run(target).await.unwrap();
    assert!(report.passed(), "{}", report.text());
    // A bank the fleet does not have has no certificate: the handshake fails.
    let stranger = client(&pki, &address, "bank-0013").describe(DescribeRequest {}).await;
    assert!(stranger.is_err(), "{stranger:?}");
}

#[tokio::test]
async fn most_banks_hold_nothing_for_a_debtor_and_a_share_answer_later() {
    let deferred = Some("200ms..300ms".parse().unwrap());
    let settings = MockConfig { holders: Some(0.25), deferred, ..MockConfig::default() };
    let (pki, address) = fleet(40, settings, 0.5).await;
    let (mut holding, mut deferring) = (Vec::new(), 0);
    for bank in (1..=40).map(bank_name) {
        let mut c = client(&pki, &address, &bank);
        let request = SearchAssetsRequest { debtor: Some(debtor(RICH)), ..Default::default() };
        let answer = c.search_assets(request).await.unwrap().into_inner();
        if !answer.assets.is_empty() {
            holding.push(bank.clone());
        }
        deferring += usize::from(c.describe(DescribeRequest {}).await.unwrap().into_inner().answer_window.is_some());
    }
    let expected: Vec<String> = (1..=40).map(bank_name).filter(|b| data::holds(b, RICH, 0.25)).collect();
    assert_eq!(holding, expected, "which banks hold the debtor is the banks' own, deterministic data");
    assert!((2..=25).contains(&holding.len()), "a quarter of 40 banks, give or take: {}", holding.len());
    assert!((8..=32).contains(&deferring), "about half of 40 banks answer later: {deferring}");
}
