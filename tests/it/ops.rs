//! Operations: health, reflection, graceful shutdown, masked logs.

use std::time::Duration;

use assetgw::core::proto::{RegistryKind, SearchRequest};
use futures::StreamExt;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::harness::*;

#[tokio::test]
async fn health_is_served_per_service() {
    let stack = Stack::start(standard()).await;
    let mut health = HealthClient::new(stack.channel());
    for service in ["", "assetgw.v1.AssetSearchService"] {
        let r = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service:?}");
    }
    let err = health.check(HealthCheckRequest { service: "no.such.Service".into() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn probes_get_plaintext_health_on_their_own_port_and_nothing_else() {
    let port = free_port().await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let stack = Stack::with(standard(), |c| c.server.health_listen = Some(addr)).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
    let r = HealthClient::new(channel.clone()).check(HealthCheckRequest { service: String::new() }).await.unwrap();
    assert_eq!(r.into_inner().status(), ServingStatus::Serving);
    let search = assetgw::core::proto::asset_search_service_client::AssetSearchServiceClient::new(channel)
        .search(SearchRequest { query: Some(query(&[RICH])) })
        .await
        .unwrap_err();
    assert_eq!(search.code(), tonic::Code::Unimplemented, "the probe port serves health only");
    stack.stop().await.unwrap();
}

#[tokio::test]
async fn reflection_lists_and_describes_the_services() {
    let stack = Stack::start(standard()).await;
    let mut reflection = ServerReflectionClient::new(stack.channel());
    let requests = futures::stream::iter([
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol("assetgw.v1.AssetSearchService".into())),
        },
    ]);
    let mut responses = reflection.server_reflection_info(requests).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("no service list")
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"assetgw.v1.AssetSearchService"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    // Only what the court port serves: the registry contract and the mocks' admin answer elsewhere.
    assert!(
        !names.iter().any(|n| n.contains("RegistryService") || n.contains("MockAdmin")),
        "the court port advertises services it does not serve: {names:?}"
    );
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("no descriptor")
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

#[tokio::test]
async fn shutdown_drains_in_flight_searches_then_refuses_new_ones() {
    let stack = Stack::start(vec![Reg::new("bank-a", RegistryKind::Bank).latency("fixed:400ms")]).await;
    let mut client = stack.client().await;
    let in_flight = tokio::spawn(async move { client.search(SearchRequest { query: Some(query(&[RICH])) }).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let url = stack.url.clone();
    stack.stop().await.unwrap();
    let r = in_flight.await.unwrap().expect("the in-flight search completes");
    assert_eq!(r.into_inner().debtors.len(), 1);
    let after = assetgw::core::proto::asset_search_service_client::AssetSearchServiceClient::new(Courts::new(&url))
        .search(SearchRequest { query: Some(query(&[RICH])) })
        .await
        .unwrap_err();
    assert_eq!(after.code(), tonic::Code::Unavailable, "{after:?}");
}

#[tokio::test]
async fn logs_mask_every_debtor_identifier() {
    let mut regs = standard();
    regs.push(Reg::new("down", RegistryKind::Bank).down());
    let stack = Stack::start(regs).await;
    stack.search(query(&[RICH, COMPANY])).await.unwrap();
    let mut unchecked = query(&["91110000600037341M"]);
    unchecked.debtors[0].accept_unchecked_credit_code = true;
    stack.search(unchecked).await.unwrap();
    let refused = stack.search(query(&["360426199101010072", "91110000600037341M"])).await.unwrap_err();
    for full in ["360426199101010072", "91110000600037341M"] {
        assert!(!refused.message().contains(full), "{full} in the error: {}", refused.message());
    }
    stack.stop().await.unwrap();
    // The capture holds every test's logs so far, this one's included.
    let text = logs();
    assert!(text.contains("110105********1232"), "masked ids are logged");
    assert!(text.contains("911100********341M"), "the checksum override is logged, masked");
    assert!(text.contains("registry_leg"), "per-registry spans are logged");
    for full in [RICH, COMPANY, NOBODY, "91110000600037341M", "360426199101010072"] {
        assert!(!text.contains(full), "{full} appears in the logs");
    }
}

#[tokio::test]
async fn a_saturated_gateway_refuses_the_excess_at_once() {
    let regs = vec![Reg::new("bank-a", RegistryKind::Bank).latency("fixed:400ms")];
    let stack = Stack::with(regs, |c| c.server.max_in_flight = 2).await;
    let client = stack.client().await;
    let calls = (0..6).map(|_| {
        let mut client = client.clone();
        async move {
            let started = tokio::time::Instant::now();
            (client.search(SearchRequest { query: Some(query(&[RICH])) }).await, started.elapsed())
        }
    });
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|(r, _)| r.is_ok()).count();
    let refused: Vec<_> = results.iter().filter_map(|(r, took)| r.as_ref().err().map(|e| (e, took))).collect();
    assert_eq!(ok, 2, "two in flight");
    assert_eq!(refused.len(), 4);
    for (e, took) in refused {
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
        assert!(e.message().contains("limit of 2 calls in flight"), "{}", e.message());
        assert!(*took < Duration::from_millis(400), "refused without waiting for a slot ({took:?})");
    }
    stack.search(query(&[RICH])).await.expect("served again once calls finish");
}
