//! The sockets servers listen on, the connections they admit, and the signal
//! that stops them.
//!
//! A connection reaches the gRPC server only once it has earned it: it got a
//! place under the total and per-address caps, completed TLS (when configured)
//! within the handshake timeout and sent the HTTP/2 preface within the preface
//! timeout. Until then it is one small task, so idle, half-open or slow sockets
//! cannot pile up; a refused or timed-out socket is simply closed. The
//! client certificate's role is read here, once per connection.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use prometheus::IntCounterVec;
use serde::Deserialize;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpSocket, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, transport::server::Connected};

use crate::ops::pki::{self, Role};

/// A socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}{}", in_use(.source))]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// The cause.
    pub source: io::Error,
}

/// What an address in use most likely means here.
fn in_use(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            "; another process listens there: a stack already running (another `assetgw dev` or `assetgw serve`)? \
             stop it, or move this one with server.listen and the registries' endpoints"
        }
        _ => "",
    }
}

/// Binds `addr`, naming it in the error.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    let listen = || {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)
    };
    listen().map_err(|source| BindError { addr, source })
}

/// Connections the kernel queues before they are accepted (it caps this at `net.core.somaxconn`). A
/// gateway opening thousands of registry connections at once overflowed the 128 that `TcpListener::bind`
/// gave at a mock fleet: the dropped handshakes were retried a second later, then three, and searches
/// timed out.
const BACKLOG: u32 = 4096;

/// What a connection must do, and how many may be open, before it is served.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ConnectionLimits {
    /// Time from accept to a completed TLS handshake.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Time from the handshake to the HTTP/2 connection preface.
    #[serde(with = "humantime_serde")]
    pub preface_timeout: Duration,
    /// Connections open at once, in any state; the next is closed at accept.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            preface_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_per_address: 512,
        }
    }
}

/// The connection's peer, as the gRPC server puts it in every request's extensions.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer's socket address.
    pub addr: Option<SocketAddr>,
    /// Whose verified client certificate it is, read once per connection
    /// rather than per call; `None` without TLS or without a certificate.
    holder: Option<Arc<Result<Role, String>>>,
    /// The server name the client asked for (TLS SNI), if it sent one.
    server_name: Option<Arc<str>>,
}

impl Peer {
    /// The server name the caller asked for in its TLS handshake (SNI), if any.
    pub fn server_name<T>(request: &Request<T>) -> Option<Arc<str>> {
        request.extensions().get::<Peer>().and_then(|peer| peer.server_name.clone())
    }

    /// The role named by the verified certificate the caller presented, if it used TLS with one.
    pub fn holder<T>(request: &Request<T>) -> Option<Arc<Result<Role, String>>> {
        request.extensions().get::<Peer>().and_then(Peer::role)
    }

    /// The role named by this peer's verified certificate, if it used TLS with one.
    pub fn role(&self) -> Option<Arc<Result<Role, String>>> {
        self.holder.clone()
    }
}

/// Connections admitted to the gRPC server.
pub type Incoming = ReceiverStream<io::Result<Connection>>;

/// Accepts on `listener` until the server drops the stream. With `tls`,
/// connections complete mutual TLS first. `refused` counts closed sockets by
/// reason (`limit`, `handshake`, `preface`).
pub fn admit(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnectionLimits,
    refused: Option<IntCounterVec>,
) -> Incoming {
    // A small channel: a burst of handshakes waits here, not in the server.
    let (tx, rx) = mpsc::channel(64);
    let counts = Arc::new(Counts::default());
    let acceptor = tls.map(TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let (tcp, addr) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors and similar: back off rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let Some(slot) = counts.take(addr.ip(), &limits) else {
                tracing::debug!(peer = %addr, "connection closed: connection limit reached");
                count(refused.as_ref(), "limit");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (tx, acceptor, limits, refused) = (tx.clone(), acceptor.clone(), limits.clone(), refused.clone());
            tokio::spawn(async move {
                match handshake(tcp, addr, acceptor, &limits).await {
                    Ok((io, peer)) => {
                        let _ = tx.send(Ok(Connection { io, preface: 0, peer, _slot: slot })).await;
                    }
                    Err(reason) => {
                        tracing::debug!(peer = %addr, reason, "connection closed before it was served");
                        count(refused.as_ref(), reason);
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Counts a socket closed unserved, when counting.
fn count(refused: Option<&IntCounterVec>, reason: &str) {
    if let Some(counter) = refused {
        counter.with_label_values(&[reason]).inc();
    }
}

/// The first bytes of every HTTP/2 connection (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// TLS (if any), then the preface, each within its time; the reason when not.
async fn handshake(
    tcp: TcpStream,
    addr: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    limits: &ConnectionLimits,
) -> Result<(Io, Peer), &'static str> {
    let mut io = match acceptor {
        None => Io::Plain(tcp),
        Some(acceptor) => match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Io::Tls(Box::new(tls)),
            _ => return Err("handshake"),
        },
    };
    let mut preface = [0u8; PREFACE.len()];
    match tokio::time::timeout(limits.preface_timeout, io.read_exact(&mut preface)).await {
        Ok(Ok(_)) if &preface == PREFACE => {}
        _ => return Err("preface"),
    }
    let (leaf, server_name) = match &io {
        Io::Tls(tls) => (tls.get_ref().1.peer_certificates().and_then(|c| c.first()), tls.get_ref().1.server_name()),
        Io::Plain(_) => (None, None),
    };
    let peer = Peer {
        addr: Some(addr),
        holder: leaf.map(|cert| Arc::new(pki::holder(cert))),
        server_name: server_name.map(Arc::from),
    };
    Ok((io, peer))
}

/// Open connections in total and per address.
#[derive(Default)]
struct Counts(Mutex<(usize, HashMap<IpAddr, usize>)>);

impl Counts {
    fn take(self: &Arc<Self>, ip: IpAddr, limits: &ConnectionLimits) -> Option<Slot> {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, per) = &mut *guard;
        let mine = per.entry(ip).or_default();
        if *total >= limits.max_connections || *mine >= limits.max_per_address {
            if *mine == 0 {
                per.remove(&ip);
            }
            return None;
        }
        *mine += 1;
        *total += 1;
        Some(Slot { counts: self.clone(), ip })
    }
}

/// A connection's place under the caps, given back when it closes.
struct Slot {
    counts: Arc<Counts>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut guard = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, per) = &mut *guard;
        *total -= 1;
        if let Some(mine) = per.get_mut(&self.ip) {
            *mine -= 1;
            if *mine == 0 {
                per.remove(&self.ip);
            }
        }
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An admitted connection. The preface it sent is read again by the server
/// first, so the HTTP/2 layer sees the stream from its start.
pub struct Connection {
    io: Io,
    /// How much of the preface the server has read back.
    preface: usize,
    peer: Peer,
    _slot: Slot,
}

impl Connected for Connection {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.preface < PREFACE.len() {
            let n = buf.remaining().min(PREFACE.len() - this.preface);
            buf.put_slice(&PREFACE[this.preface..this.preface + n]);
            this.preface += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, data),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, data),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, data),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = futures::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
