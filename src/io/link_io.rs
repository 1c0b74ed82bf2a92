//! The IO thread's private per-link state.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::net::link::Link;
use crate::net::server::ServerShared;
use crate::proto::FrameDecoder;

/// Where a link is, as the IO thread sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// TCP connect in progress (clients).
    Connecting,
    /// Preambles exchanged but the peer's not yet received.
    Handshake,
    /// Usable.
    Open,
    /// Flushing what was queued before closing (or waiting for the peer's
    /// end of stream after our own).
    Closing,
}

pub(crate) struct LinkIo {
    pub(crate) link: Arc<Link>,
    pub(crate) stream: Arc<TcpStream>,
    pub(crate) server: Option<Arc<ServerShared>>,
    pub(crate) decoder: FrameDecoder,
    pub(crate) phase: Phase,
    /// Handshake or linger deadline.
    pub(crate) deadline: Option<Instant>,
    /// Was usable (so its close is reported as a close event).
    pub(crate) was_open: bool,
    /// Our end of stream was sent (closing gracefully).
    pub(crate) write_shut: bool,
}

impl LinkIo {
    pub(crate) fn register(&self, registry: &Registry) -> std::io::Result<()> {
        let fd = self.stream.as_raw_fd();
        registry.register(
            &mut SourceFd(&fd),
            Token(token(self.link.id)),
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    pub(crate) fn deregister(&self, registry: &Registry) {
        let fd = self.stream.as_raw_fd();
        // Closing the socket deregisters it anyway; this only tidies up.
        let _ = registry.deregister(&mut SourceFd(&fd));
    }
}

/// A socket id as a mio token. Ids fit in usize on every 64-bit target; on
/// 32-bit ones they would wrap after 4 billion sockets.
pub(crate) fn token(id: u64) -> usize {
    id as usize
}
