//! What the tokio baselines share: runtimes of both flavors, one runtime per
//! application, the listener, and bincode 2 `Plain` frames over tokio-util's
//! `LengthDelimitedCodec` (4-byte big-endian length, then the bincode body).
//!
//! Written the way an experienced tokio user would, after the traps measured
//! on this machine: every task is spawned (a future driven by `block_on`
//! itself costs 68-80 us per round trip on the multi-thread runtime), writes
//! are batched with `SinkExt::feed` and one `flush`, listeners use
//! `TcpSocket::listen(1024)` (`TcpListener::bind` listens with a backlog of
//! 128), and each application (client, server) has its own runtime, as two
//! processes would.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::thread;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::{Builder, Runtime};
use tokio_util::codec::LengthDelimitedCodec;

use crate::common::{Plain, encode_body_into};

/// Which tokio runtime an application runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `new_multi_thread()` with the default worker count (one per CPU the
    /// process may run on, so 1 when the process is pinned to one CPU).
    Multi,
    /// `new_current_thread()`: every task on the thread that runs it.
    Current,
}

impl Flavor {
    fn runtime(self) -> Runtime {
        match self {
            Flavor::Multi => Builder::new_multi_thread(),
            Flavor::Current => Builder::new_current_thread(),
        }
        .enable_all()
        .build()
        .expect("tokio runtime")
    }
}

/// Starts one application: a thread that builds its own runtime of `flavor`
/// and runs the future `make` returns as a spawned task (never inside
/// `block_on` itself), returning its output when it finishes. The runtime,
/// and any task still running on it, is dropped with the thread.
pub fn app<F, T>(
    flavor: Flavor,
    name: &str,
    make: impl FnOnce() -> F + Send + 'static,
) -> thread::JoinHandle<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let rt = flavor.runtime();
            rt.block_on(async move { tokio::spawn(make()).await.expect("tokio task") })
        })
        .expect("spawn application thread")
}

/// A listener on 127.0.0.1 (an ephemeral port) with SO_REUSEADDR and a
/// backlog of 1024, as every side uses. Call inside a runtime.
pub fn listen() -> TcpListener {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
    socket.bind(addr).expect("bind");
    socket.listen(1024).expect("listen")
}

/// Accepts one connection and sets TCP_NODELAY on it.
pub async fn accept(listener: &TcpListener) -> TcpStream {
    let (stream, _) = listener.accept().await.expect("accept");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream
}

/// Connects (loopback only: `addr` comes from [`listen`]) with TCP_NODELAY.
pub async fn connect(addr: SocketAddr) -> TcpStream {
    assert!(addr.ip().is_loopback(), "loopback only");
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream
}

/// The framing of every tokio side: tokio-util's defaults (4-byte big-endian
/// length, frames up to 8 MiB).
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::new()
}

/// Encodes `v` (bincode 2, as the raw side) into the front of `buf` and
/// splits it off as a frame body. The frames share `buf`'s allocation, which
/// `BytesMut` reclaims once they are written and dropped, so encoding
/// allocates nothing per message in the steady state.
pub fn encode(v: &Plain, buf: &mut BytesMut) -> Bytes {
    buf.reserve(256);
    let mut w = buf.writer();
    encode_body_into(v, &mut w);
    w.flush().expect("flush into BytesMut");
    buf.split().freeze()
}
