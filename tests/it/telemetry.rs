//! Trace export: a gateway process configured with an OTLP endpoint sends its
//! request and registry-leg spans to a collector (here a fake one that records
//! what it receives), flushed on a graceful stop.

use std::sync::{Arc, Mutex};

use assetgw::ops::net::{ConnectionLimits, admit};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use tonic::{Request, Response, Status};

use crate::harness::*;

/// A received span: its name, attribute keys and trace id (hex).
type Span = (String, Vec<String>, String);

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let keys = span.attributes.into_iter().map(|a| a.key).collect();
                    spans.push((span.name, keys, hex::encode(span.trace_id)));
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test]
async fn a_gateway_exports_its_spans_over_otlp() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming(admit(listener, None, ConnectionLimits::default(), None));
    tokio::spawn(server);

    let stack = Stack::start(standard()).await;
    let db = format!("sqlite://{}", scratch().join("ledger.db").display());
    let extra = format!("[log]\notlp_endpoint = \"{endpoint}\"\n");
    let mut gateway = Process::serve_with(&stack.registries, &db, &extra).await;
    let mut client =
        assetgw::core::proto::asset_search_service_client::AssetSearchServiceClient::new(gateway.channel());
    client.search(assetgw::core::proto::SearchRequest { query: Some(query(&[RICH])) }).await.unwrap();
    // The collector runs on this test's runtime: wait for the exit off it.
    tokio::task::spawn_blocking(move || gateway.terminate()).await.unwrap();

    let spans = collector.0.lock().unwrap().clone();
    let search = spans.iter().find(|(name, ..)| name == "search").expect("the request's span");
    for key in ["rpc", "court", "request_id", "registries"] {
        assert!(search.1.iter().any(|k| k == key), "search span lacks {key}: {:?}", search.1);
    }
    let legs = spans.iter().filter(|(name, ..)| name == "registry_leg").count();
    assert_eq!(legs, 6, "one span per registry leg");
    // The registries were called inside the search's trace (W3C traceparent: version-traceid-spanid-flags).
    let parent = stack.mock("bank-a").traceparent().expect("bank-a received a traceparent");
    assert_eq!(parent.split('-').nth(1), Some(search.2.as_str()), "{parent}");
}

/// `GET /metrics` over a plain socket.
pub async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut text = String::new();
    socket.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

#[tokio::test]
async fn metrics_show_calls_cache_results_and_a_breaker_opening() {
    let port = free_port().await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let stack = Stack::with(standard(), |c| {
        c.server.metrics_listen = Some(addr);
        c.calls.breaker =
            Some(assetgw::ops::config::BreakerConfig { failures: 2, cool_down: std::time::Duration::from_secs(60) });
    })
    .await;
    stack.search(query(&[RICH])).await.unwrap();
    stack.search(query(&[RICH])).await.unwrap();
    stack.mock("bank-a").set_down(true);
    let fresh =
        || assetgw::core::proto::SearchQuery { max_age: Some(prost_types::Duration::default()), ..query(&[RICH]) };
    for _ in 0..4 {
        stack.search(fresh()).await.unwrap();
    }
    let text = scrape(addr).await;
    for line in [
        r#"assetgw_requests_total{code="Ok",method="Search"} 6"#,
        r#"assetgw_cache_lookups_total{result="hit"} 6"#,
        r#"assetgw_breaker_changes_total{registry="bank-a",state="open"} 1"#,
        r#"assetgw_breaker_open{registry="bank-a"} 1"#,
        r#"assetgw_registry_calls_total{outcome="unavailable",registry="bank-a"} 2"#,
        r#"assetgw_registry_calls_total{outcome="circuit_open",registry="bank-a"} 2"#,
        r#"assetgw_registry_calls_total{outcome="ok",registry="realestate"} 5"#,
        "assetgw_shed_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
    }
    assert!(text.contains(r#"assetgw_request_seconds_bucket{method="Search",le="#));
}
