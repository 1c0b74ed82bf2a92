//! The IO thread's private per-link state.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use super::failures::FailureReports;
use super::half_open::HalfOpen;
use crate::proto::session::Session;
use crate::shared::{Link, ServerShared};

/// Bodies up to this size are decoded by the application's thread, copied
/// back to back into a shared batch buffer (one allocation for many, which
/// that thread frees with the last of them).
pub(super) const BATCH_MAX: usize = 4 * 1024;

/// Size of the buffers that small bodies are copied into, back to back.
const BATCH_BYTES: usize = 16 * 1024;

/// Decoded size up to which the IO thread decodes a larger body itself:
/// about a millisecond of work at most, so one message never holds up other
/// connections' traffic or heartbeats for longer. Typical large messages (a
/// few big strings) fit, and are then never copied once more; a denser one
/// is handed to the application's thread, which decodes it within what the
/// memory budget has free.
pub(super) const IO_DECODE_COST: usize = 1024 * 1024;

/// A small received message body, copied into the batch buffer.
pub(super) fn body_bytes(body: &[u8], batch: &mut BytesMut) -> Bytes {
    if batch.capacity() < body.len() {
        *batch = BytesMut::with_capacity(BATCH_BYTES.max(body.len()));
    }
    batch.extend_from_slice(body);
    batch.split().freeze()
}

/// What a link added to the ring since the ring's `epoch` (every take
/// empties the ring): what its quota is checked against.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Held {
    pub(super) epoch: u64,
    pub(super) events: usize,
    pub(super) bytes: usize,
}

/// One connection as the IO thread drives it: the socket, the shared link,
/// and the protocol session.
pub(super) struct LinkIo {
    pub(super) link: Arc<Link>,
    pub(super) stream: Arc<TcpStream>,
    /// The server that accepted it (none for clients and refusals).
    pub(super) server: Option<Arc<ServerShared>>,
    pub(super) session: Session,
    /// The TCP connect is in progress (clients).
    pub(super) connecting: bool,
    /// Which of a client's addresses (`Link::candidate`) the stream is for.
    pub(super) attempt: usize,
    /// Counts against its server's connection limit.
    pub(super) counted: bool,
    /// The deadline a timer is armed for.
    pub(super) armed: Option<Instant>,
    /// What it holds in the ring (its quota).
    pub(super) held: Held,
    /// Receive-buffer memory charged to the network's budget.
    pub(super) charged: usize,
    /// Budget reserved for the whole large frame now arriving (0: none).
    pub(super) reserved: usize,
}

impl LinkIo {
    pub(super) fn register(&self, registry: &Registry) -> std::io::Result<()> {
        let fd = self.stream.as_raw_fd();
        registry.register(
            &mut SourceFd(&fd),
            Token(token(self.link.id)),
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    pub(super) fn deregister(&self, registry: &Registry) {
        let fd = self.stream.as_raw_fd();
        // Closing the socket deregisters it anyway; this only tidies up.
        let _ = registry.deregister(&mut SourceFd(&fd));
    }
}

/// A server's listening socket, as the IO thread drives it.
pub(super) struct ListenerIo {
    pub(super) server: Arc<ServerShared>,
    pub(super) listener: TcpListener,
    /// Accepting paused (out of descriptors) until then.
    pub(super) backoff_until: Option<Instant>,
    /// Accepted connections that may still be in their handshake, oldest
    /// first (pruned when it reaches `Config::max_handshaking`).
    pub(super) handshaking: HalfOpen,
    /// Failures before authentication: reported one by one, then summed up.
    pub(super) failures: FailureReports,
}

/// A map keyed by tokens (see [`token`]).
pub(super) type TokenMap<V> = HashMap<usize, V, BuildHasherDefault<TokenHasher>>;

/// Hashes tokens with one multiplication (Fibonacci hashing, as rustc's
/// FxHash does). Tokens are this process's own sequential socket ids, never
/// chosen by a peer, so SipHash's resistance to hash flooding buys nothing
/// here, and the driver looks a link up several times per received frame.
#[derive(Default, Clone, Copy)]
pub(super) struct TokenHasher(u64);

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
pub(super) fn token(id: u64) -> usize {
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
