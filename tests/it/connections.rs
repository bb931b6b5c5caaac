//! Connections before any request: sockets that never finish TLS or never send
//! the HTTP/2 preface are closed on time, open connections are capped in total
//! and per address, and the HTTP/2 abuses a server must survive (rapid reset,
//! an oversized frame, a thousand streams on one connection) leave every other
//! court served.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use assetgw::{
    core::proto::{RegistryKind, SearchRequest, asset_search_service_client::AssetSearchServiceClient},
    gateway::auth::OFFICER_HEADER,
    ops::{net::ConnectionLimits, pki::Role},
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};
use tokio_rustls::{TlsConnector, client::TlsStream};
use tonic::transport::Endpoint;

use crate::{harness::*, telemetry::scrape};

fn limits(timeout_ms: u64, total: usize, per_address: usize) -> ConnectionLimits {
    ConnectionLimits {
        handshake_timeout: Duration::from_millis(timeout_ms),
        preface_timeout: Duration::from_millis(timeout_ms),
        max_connections: total,
        max_per_address: per_address,
    }
}

async fn stack_with(limits: ConnectionLimits, metrics: Option<SocketAddr>) -> Stack {
    Stack::with(vec![Reg::new("bank-a", RegistryKind::Bank)], move |c| {
        c.server.connections = limits;
        c.server.metrics_listen = metrics;
    })
    .await
}

fn gateway_addr(stack: &Stack) -> SocketAddr {
    stack.url.trim_start_matches("https://").parse().unwrap()
}

/// A raw TCP connection from `from` (an address on the loopback network).
async fn tcp_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Whether the server closes `stream` within `within` (end of stream or a reset).
async fn closed_within(stream: &mut (impl AsyncReadExt + Unpin), within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Mutual TLS as court 京0105, offering HTTP/2, and nothing more.
async fn tls_as_court(to: SocketAddr) -> TlsStream<TcpStream> {
    let files = tls_of(Role::Court("京0105".into()));
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&files.ca).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let certs = CertificateDer::pem_file_iter(&files.cert).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(to).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap()
}

/// A search as court 京0105 over a new connection from `from`.
async fn search_from(stack: &Stack, from: &str) -> Result<(), tonic::Status> {
    let tls = tls_of(Role::Court("京0105".into())).client("localhost").unwrap();
    let endpoint = Endpoint::from_shared(stack.url.clone()).unwrap().tls_config(tls).unwrap();
    let from: IpAddr = from.parse().unwrap();
    let channel = endpoint.local_address(Some(from)).connect().await;
    let channel = channel.map_err(|e| tonic::Status::unavailable(format!("{e:?}")))?;
    let mut request = tonic::Request::new(SearchRequest { query: Some(query(&[RICH])) });
    request.metadata_mut().insert(OFFICER_HEADER, "officer-1".parse().unwrap());
    AssetSearchServiceClient::new(channel).search(request).await.map(|_| ())
}

#[tokio::test]
async fn sockets_that_do_not_finish_tls_or_send_the_preface_are_closed() {
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port().await).parse().unwrap();
    let stack = stack_with(limits(300, 64, 64), Some(metrics)).await;
    let addr = gateway_addr(&stack);

    let mut silent = tcp_from("127.0.0.1", addr).await;
    let mut half_hello = tcp_from("127.0.0.1", addr).await;
    // A TLS record header announcing a 512-byte ClientHello, then only its first bytes.
    half_hello.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]).await.unwrap();
    let mut no_preface = tls_as_court(addr).await;
    let mut wrong_preface = tls_as_court(addr).await;
    wrong_preface.write_all(b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n").await.unwrap();

    for (what, closed) in [
        ("a silent TCP connection", closed_within(&mut silent, Duration::from_secs(5)).await),
        ("half a ClientHello", closed_within(&mut half_hello, Duration::from_secs(5)).await),
        ("TLS without the HTTP/2 preface", closed_within(&mut no_preface, Duration::from_secs(5)).await),
        ("TLS then HTTP/1.1", closed_within(&mut wrong_preface, Duration::from_secs(5)).await),
    ] {
        assert!(closed, "{what} was still open after 5 s");
    }
    search_from(&stack, "127.0.0.1").await.expect("a court that completes its handshake is served");
    let text = scrape(metrics).await;
    for line in [
        "assetgw_connections_refused_total{reason=\"handshake\"} 2",
        "assetgw_connections_refused_total{reason=\"preface\"} 2",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
}

#[tokio::test]
async fn open_connections_are_capped_in_total_and_per_address() {
    let stack = stack_with(limits(30_000, 6, 3), None).await;
    let addr = gateway_addr(&stack);
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(tcp_from("127.0.0.1", addr).await);
    }
    for idle in &mut first {
        assert!(!closed_within(idle, Duration::from_millis(200)).await, "an idle connection within the caps stays");
    }
    let mut fourth = tcp_from("127.0.0.1", addr).await;
    assert!(closed_within(&mut fourth, Duration::from_secs(2)).await, "a fourth from one address is closed at once");

    // Another address has places of its own, up to the total.
    search_from(&stack, "127.0.0.2").await.expect("a court from another address is served");
    let mut also = [tcp_from("127.0.0.3", addr).await, tcp_from("127.0.0.3", addr).await];
    for idle in &mut also {
        assert!(!closed_within(idle, Duration::from_millis(200)).await);
    }
    let mut sixth = tcp_from("127.0.0.4", addr).await;
    assert!(!closed_within(&mut sixth, Duration::from_millis(200)).await, "a sixth connection is within the total");
    let mut over_total = tcp_from("127.0.0.5", addr).await;
    assert!(closed_within(&mut over_total, Duration::from_secs(2)).await, "a seventh connection is over the total");

    // Places are given back when connections close.
    drop((first, also, sixth));
    tokio::time::sleep(Duration::from_millis(100)).await;
    search_from(&stack, "127.0.0.1").await.expect("places are given back when connections close");
}

/// The frames of an HTTP/2 connection's start: preface, empty SETTINGS.
fn h2_start() -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    out
}

/// Whether the bytes the server sent contain a GOAWAY frame with `code`.
fn has_goaway(mut bytes: &[u8], code: u32) -> bool {
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        let (kind, payload) = (bytes[3], &bytes[9..]);
        if kind == 0x7 && payload.len() >= 8 && u32::from_be_bytes(payload[4..8].try_into().unwrap()) == code {
            return true;
        }
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    false
}

#[tokio::test]
async fn an_oversized_frame_ends_only_its_own_connection() {
    let stack = stack_with(ConnectionLimits::default(), None).await;
    let mut tls = tls_as_court(gateway_addr(&stack)).await;
    let mut out = h2_start();
    // A HEADERS frame announcing 16 MiB - 1, far over the 16 KiB default frame size.
    out.extend_from_slice(&[0xff, 0xff, 0xff, 0x1, 0x4, 0, 0, 0, 1]);
    out.extend_from_slice(&[0u8; 1024]);
    tls.write_all(&out).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection was not closed");
    assert!(has_goaway(&answer, 0x6), "expected GOAWAY FRAME_SIZE_ERROR, got {answer:?}");
    search_from(&stack, "127.0.0.1").await.expect("other connections are served");
}

#[tokio::test]
async fn rapid_reset_ends_only_its_own_connection() {
    let stack = stack_with(ConnectionLimits::default(), None).await;
    let tls = tls_as_court(gateway_addr(&stack)).await;
    let (mut client, connection) = h2::client::handshake(tls).await.unwrap();
    let connection = tokio::spawn(connection);
    for _ in 0..5_000 {
        let request = http::Request::post(format!("{}/grpc.health.v1.Health/Check", stack.url))
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let Ok(ready) = client.clone().ready().await else { break };
        client = ready;
        let Ok((_, mut stream)) = client.send_request(request, false) else { break };
        stream.send_reset(h2::Reason::CANCEL);
    }
    // A server that tolerated the flood would keep the connection open, and this wait would time out.
    let ended = tokio::time::timeout(Duration::from_secs(5), connection).await;
    let ended = ended.expect("the server did not end the connection").unwrap();
    assert!(ended.is_err(), "the connection ended cleanly after thousands of resets");
    search_from(&stack, "127.0.0.1").await.expect("other connections are served");
}

#[tokio::test]
async fn a_thousand_streams_on_one_connection_are_all_answered() {
    let stack = stack_with(ConnectionLimits::default(), None).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(stack.channel());
    let checks = (0..1_000).map(|_| {
        let mut health = health.clone();
        async move { health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await }
    });
    let answers = futures::future::join_all(checks).await;
    let failed: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(failed.is_empty(), "{} of 1000 failed, first: {:?}", failed.len(), failed.first());
    health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();
}

/// The listen backlog the kernel keeps for `port` (`ss`' Send-Q of a listening socket).
fn backlog(port: u16) -> usize {
    let out = std::process::Command::new("ss").args(["-ltnH", &format!("sport = :{port}")]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(2).and_then(|q| q.parse().ok()).unwrap_or_else(|| panic!("ss said: {text}"))
}

#[tokio::test]
async fn a_burst_of_thousands_of_connections_waits_in_the_kernels_queue() {
    // A gateway opening a connection to each of 4,000 fleet banks at once overflowed a queue of 1,024:
    // the dropped handshakes were retried a second later, and the first wide search timed out.
    let listener = assetgw::ops::net::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap();
    assert_eq!(backlog(port), somaxconn.min(4096));
}
