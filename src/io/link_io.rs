//! The IO thread's private per-link state.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::error::{Error, ProtocolError};
use crate::net::link::Link;
use crate::net::server::ServerShared;
use crate::proto::secure::{Handshake, Opener};
use crate::proto::{FrameDecoder, FrameKind, Limits, decode_value};
use crate::value::Value;

/// Where a link is, as the IO thread sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// TCP connect in progress (clients).
    Connecting,
    /// Our preamble sent; waiting for the peer's.
    Handshake,
    /// Encrypted: waiting for the peer's key-confirmation frame.
    Confirm,
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
    /// The encrypted handshake in progress.
    pub(crate) handshake: Option<Handshake>,
    /// Opens the peer's sealed frames once the handshake has finished.
    pub(crate) opener: Option<Opener>,
    /// Counts against its server's connection limit.
    pub(crate) counted: bool,
}

impl LinkIo {
    /// Takes the next application message, if one has fully arrived: its
    /// value and its size on the wire. Opens sealed frames in place.
    pub(crate) fn next_message(
        &mut self,
        limits: &Limits,
    ) -> Result<Option<(Value, usize)>, Error> {
        let Some(opener) = self.opener.as_mut() else {
            return match self.decoder.next_frame()? {
                None => Ok(None),
                Some(frame) => match frame.kind {
                    FrameKind::Message => Ok(Some((frame.decode_value(limits)?, frame.body.len()))),
                },
            };
        };
        let Some((prefix, payload)) = self.decoder.next_raw_frame()? else {
            return Ok(None);
        };
        let plain = opener.open_in_place(prefix, payload)?;
        let (&kind, body) = plain.split_first().ok_or(ProtocolError::EmptyFrame)?;
        match FrameKind::from_byte(kind)? {
            FrameKind::Message => Ok(Some((decode_value(body, limits)?, body.len()))),
        }
    }

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
