//! The IO thread's private per-link state.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
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

/// One frame from the peer, as the IO thread acts on it.
pub(crate) enum Incoming {
    /// An application message, decoded (a large one), and its size on the wire.
    Message(Value, usize),
    /// An application message's body, to be decoded by the thread that
    /// takes it out of the ring, and its size on the wire.
    Raw(Bytes, usize),
    /// A heartbeat probe to answer.
    Ping,
    /// A heartbeat answer.
    Pong,
}

/// Bodies up to this size are decoded by the application's thread; larger
/// ones (few, and mostly bulk bytes, a copy either way) here, which spares
/// copying them once more into the batch buffer.
const DEFER_DECODE_MAX: usize = 4 * 1024;

/// Size of the buffers that small bodies are copied into, back to back.
const BATCH_BYTES: usize = 16 * 1024;

fn incoming(
    kind: FrameKind,
    body: &[u8],
    limits: &Limits,
    batch: &mut BytesMut,
) -> Result<Incoming, Error> {
    match kind {
        FrameKind::Message if body.len() <= DEFER_DECODE_MAX => {
            // One allocation per batch buffer, shared by its bodies: the
            // application's thread frees it with the last of them.
            if batch.capacity() < body.len() {
                *batch = BytesMut::with_capacity(BATCH_BYTES);
            }
            batch.extend_from_slice(body);
            Ok(Incoming::Raw(batch.split().freeze(), body.len()))
        }
        FrameKind::Message => Ok(Incoming::Message(decode_value(body, limits)?, body.len())),
        FrameKind::Ping | FrameKind::Pong if !body.is_empty() => {
            Err(ProtocolError::Malformed(format!(
                "a {kind:?} frame carries {} bytes; it must be empty",
                body.len()
            ))
            .into())
        }
        FrameKind::Ping => Ok(Incoming::Ping),
        FrameKind::Pong => Ok(Incoming::Pong),
    }
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
    /// When the peer last sent any frame (heartbeats count).
    pub(crate) last_rx: Instant,
    /// When the peer last sent a message (for the idle timeout).
    pub(crate) last_message: Instant,
    /// A ping is out and unanswered.
    pub(crate) pinged: bool,
}

impl LinkIo {
    /// Takes the next frame, if one has fully arrived, opening sealed frames
    /// in place and decoding messages.
    pub(crate) fn next_incoming(
        &mut self,
        limits: &Limits,
        batch: &mut BytesMut,
    ) -> Result<Option<Incoming>, Error> {
        let Some(opener) = self.opener.as_mut() else {
            return match self.decoder.next_frame()? {
                None => Ok(None),
                Some(frame) => incoming(frame.kind, frame.body, limits, batch).map(Some),
            };
        };
        let Some((prefix, payload)) = self.decoder.next_raw_frame()? else {
            return Ok(None);
        };
        let plain = opener.open_in_place(prefix, payload)?;
        let (&kind, body) = plain.split_first().ok_or(ProtocolError::EmptyFrame)?;
        incoming(FrameKind::from_byte(kind)?, body, limits, batch).map(Some)
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

/// A map keyed by tokens (see [`token`]).
pub(crate) type TokenMap<V> = HashMap<usize, V, BuildHasherDefault<TokenHasher>>;

/// Hashes tokens with one multiplication (Fibonacci hashing, as rustc's
/// FxHash does). Tokens are this process's own sequential socket ids, never
/// chosen by a peer, so SipHash's resistance to hash flooding buys nothing
/// here, and the driver looks a link up several times per received frame.
#[derive(Default, Clone, Copy)]
pub(crate) struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(GOLDEN);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(GOLDEN);
    }
}

/// 2^64 / the golden ratio, odd: multiplying by it permutes the low bits
/// and spreads every input bit into the high ones (hashbrown's tag bits).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// A socket id as a mio token. Ids fit in usize on every 64-bit target; on
/// 32-bit ones they would wrap after 4 billion sockets.
pub(crate) fn token(id: u64) -> usize {
    id as usize
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn sequential_tokens_spread_over_buckets_and_tags() {
        let build = BuildHasherDefault::<TokenHasher>::default();
        let hashes: Vec<u64> = (1..=4096usize).map(|t| build.hash_one(t)).collect();
        // hashbrown picks the bucket from the low bits and the tag byte from
        // the top 7: sequential tokens must differ in both.
        let buckets: HashSet<u64> = hashes.iter().map(|h| h & 4095).collect();
        assert_eq!(buckets.len(), 4096);
        let tags: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(tags.len(), 128);
    }
}
