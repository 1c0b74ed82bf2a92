//! [`Link`]: one TCP connection's state, shared by its handles and the IO
//! thread. Holds the outgoing queue and the send path.
//!
//! Every frame is first **queued**: small frames are copied back to back
//! into a reused buffer (a stream of small messages allocates nothing), large
//! ones are queued as they are. Then, in order of preference:
//! 1. **Direct write** from the caller's thread, only when the link is idle:
//!    open, nothing was queued before, and either something arrived since
//!    our last direct write (request/reply traffic) or that write was long
//!    enough ago. No thread hop, so a round trip costs what raw TCP costs.
//! 2. Otherwise the IO thread writes it. Only the send that makes the queue
//!    non-empty wakes it; everything queued until it runs goes out in one
//!    vectored write, so a stream of small messages costs few syscalls.
//!
//! `send` never blocks on the network and never spins: past the byte limit
//! it refuses with [`SendError::QueueFull`].

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::TcpStream;
use parking_lot::{Condvar, Mutex, MutexGuard};

use super::ids::{ClientId, ConnectionId, ServerId};
use super::send_error::SendError;
use super::shared::{Command, Keying, NetShared};
use crate::error::Error;
use crate::proto::LENGTH_PREFIX;
use crate::proto::secure::{Sealer, TAG_LEN};

/// A direct write is allowed this long after the previous one even when
/// nothing was received in between (a sender pausing between messages).
const DIRECT_WRITE_GAP: Duration = Duration::from_millis(1);

/// Most chunks gathered into one vectored write.
const MAX_IOVECS: usize = 64;

/// Frames up to this size are copied into a shared chunk; larger ones are
/// queued as they are.
pub(crate) const SMALL_FRAME: usize = 8 * 1024;

/// Small frames gathered into one chunk until it holds this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;

/// Which side of the network a link belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Accepted by a server.
    Accepted(ServerId),
    /// Opened by a client.
    Client(ClientId),
}

/// Where the link is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// TCP connect or preamble exchange in progress; sends are queued.
    Starting,
    /// Usable.
    Open,
    /// Closing: flushing what was queued; sends are refused.
    Closing,
    /// Gone.
    Closed,
}

/// How a client's connection attempt ended, for `wait_for_connect`.
#[derive(Debug, Clone)]
pub(crate) enum ConnectStatus {
    Pending,
    Connected(Duration),
    Failed(Error),
}

pub(crate) struct Outgoing {
    pub(crate) state: State,
    /// The socket, while there is one (set by the IO thread).
    pub(crate) stream: Option<Arc<TcpStream>>,
    /// Handshake bytes, written before anything queued.
    pub(crate) control: Vec<u8>,
    /// Frames waiting, in chunks; the first may be partly written.
    pub(crate) queue: VecDeque<Chunk>,
    /// A written chunk's buffer, kept for the next small frames.
    spare: Option<Vec<u8>>,
    /// Bytes of `queue[0]` already written.
    pub(crate) head_written: usize,
    /// Unwritten bytes in `queue`.
    pub(crate) queued: usize,
    /// A send was refused for a full queue: report `Drained` when empty.
    pub(crate) refused: bool,
    last_direct: Option<Instant>,
    /// Port of the peer once connected (clients) or at accept.
    pub(crate) peer_port: Option<u16>,
    pub(crate) connect: ConnectStatus,
    /// Seals outgoing frames once an encrypted handshake has finished.
    pub(crate) sealer: Option<Sealer>,
}

/// One connection's shared state.
pub(crate) struct Link {
    /// Process-unique socket id; also the IO thread's token.
    pub(crate) id: u64,
    pub(crate) role: Role,
    /// Peer address (a client's target; an accepted connection's peer).
    pub(crate) peer: SocketAddr,
    /// The key, when the connection is encrypted.
    pub(crate) keying: Option<Arc<Keying>>,
    pub(crate) out: Mutex<Outgoing>,
    /// Signalled when `connect` leaves `Pending`.
    pub(crate) connect_changed: Condvar,
    /// Set by the IO thread when frames arrive; cleared by a direct write.
    pub(crate) received: AtomicBool,
    pub(crate) net: Arc<NetShared>,
    pub(crate) created: Instant,
}

impl Link {
    pub(crate) fn new(
        id: u64,
        role: Role,
        peer: SocketAddr,
        keying: Option<Arc<Keying>>,
        net: Arc<NetShared>,
    ) -> Link {
        Link {
            id,
            role,
            peer,
            keying,
            out: Mutex::new(Outgoing::new()),
            connect_changed: Condvar::new(),
            received: AtomicBool::new(false),
            net,
            created: Instant::now(),
        }
    }

    pub(crate) fn connection_id(&self) -> ConnectionId {
        ConnectionId(self.id)
    }

    /// Queues (or writes) one encoded frame. `direct` allows writing from
    /// the caller's thread when the link is idle (a broadcast in a burst
    /// says no, so the IO thread gathers the burst into few writes).
    pub(crate) fn send_frame(&self, frame: OutFrame, direct: bool) -> Result<(), SendError> {
        let len = frame.len();
        let limit = self.net.config.send_queue_bytes;
        let mut out = self.out.lock();
        match out.state {
            State::Closing | State::Closed => return Err(SendError::Closed),
            State::Starting | State::Open => {}
        }
        if out.queued > 0 && out.queued + len > limit {
            out.refused = true;
            return Err(SendError::QueueFull {
                queued: out.queued,
                limit,
            });
        }
        let was_empty = out.queue.is_empty();
        // Queued first, sealed there under the lock (so counter order is wire
        // order; before the handshake ends there is no sealer yet and the IO
        // thread seals the queue when it opens the link), then written from
        // the queue: one path for both, and no allocation per message.
        out.push(frame)?;
        if direct
            && was_empty
            && out.state == State::Open
            && out.control.is_empty()
            && self.idle(&out)
        {
            out.last_direct = Some(Instant::now());
            self.received.store(false, Ordering::Relaxed);
            // Blocked: the socket is full and its writable edge wakes the IO
            // thread, which writes the rest. An error is left for the IO
            // thread, which closes the link and reports why.
            if out.flush(true).is_ok() {
                return Ok(());
            }
        }
        let wake = was_empty && out.state == State::Open;
        drop(out);
        if wake {
            self.net.command(Command::Flush(self.id));
        }
        Ok(())
    }

    /// Idle enough to write from the caller's thread.
    fn idle(&self, out: &Outgoing) -> bool {
        match out.last_direct {
            None => true,
            Some(t) => self.received.load(Ordering::Relaxed) || t.elapsed() >= DIRECT_WRITE_GAP,
        }
    }

    /// Asks the IO thread to close this link after flushing what is queued.
    /// False when it was already closing or closed.
    pub(crate) fn request_close(&self) -> bool {
        let mut out = self.out.lock();
        if matches!(out.state, State::Closing | State::Closed) {
            return false;
        }
        out.state = State::Closing;
        drop(out);
        self.net.command(Command::Close(self.id));
        true
    }

    pub(crate) fn queued_bytes(&self) -> usize {
        self.out.lock().queued
    }

    pub(crate) fn is_open(&self) -> bool {
        self.out.lock().state == State::Open
    }

    /// Blocks until the connection attempt ends or `timeout` passes.
    pub(crate) fn wait_connected(&self, timeout: Duration) -> Result<Duration, Error> {
        let deadline = Instant::now() + timeout;
        let mut out = self.out.lock();
        loop {
            if out.state == State::Closed
                && let ConnectStatus::Connected(_) = out.connect
            {
                // It was connected, and is no more.
                return Err(Error::Closed);
            }
            match &out.connect {
                ConnectStatus::Connected(took) => return Ok(*took),
                ConnectStatus::Failed(e) => return Err(e.clone()),
                ConnectStatus::Pending => {}
            }
            // Inline IO: this thread drives the connection forward itself.
            let drove = self.net.config.inline_io
                && MutexGuard::unlocked(&mut out, || {
                    self.net
                        .drive(deadline.saturating_duration_since(Instant::now()))
                });
            let timed_out = if drove {
                Instant::now() >= deadline
            } else {
                self.connect_changed
                    .wait_until(&mut out, deadline)
                    .timed_out()
            };
            if timed_out {
                return match &out.connect {
                    ConnectStatus::Connected(took) => Ok(*took),
                    ConnectStatus::Failed(e) => Err(e.clone()),
                    ConnectStatus::Pending => Err(Error::Timeout {
                        operation: "connect",
                        after: timeout,
                    }),
                };
            }
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Outgoing> {
        self.out.lock()
    }
}

/// One encoded frame handed to [`Link::send_frame`].
#[derive(Clone)]
pub(crate) enum OutFrame<'a> {
    /// Borrowed from the caller (a per-thread encode buffer): copied into
    /// the queue, so it must be small.
    Borrowed(&'a [u8]),
    /// Owned bytes, possibly shared by the receivers of one broadcast:
    /// queued without copying.
    Shared(Bytes),
}

impl OutFrame<'_> {
    fn len(&self) -> usize {
        match self {
            OutFrame::Borrowed(b) => b.len(),
            OutFrame::Shared(b) => b.len(),
        }
    }
}

/// Queued bytes: a buffer of whole small frames appended one after another,
/// or one large frame shared without copying.
pub(crate) enum Chunk {
    Owned(Vec<u8>),
    Shared(Bytes),
}

impl std::ops::Deref for Chunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(b) => b,
        }
    }
}

/// Seals the plain frame at `buf[start..]` in place.
fn seal_at(sealer: &mut Sealer, buf: &mut Vec<u8>, start: usize) -> Result<(), SendError> {
    sealer
        .seal_in_place(buf, start)
        .map_err(|e| SendError::Unsendable(e.into()))
}

/// Result of one flush attempt by the IO thread.
pub(crate) enum Flushed {
    /// Everything written.
    Empty,
    /// The socket is full; wait for its writable edge.
    Blocked,
}

impl Outgoing {
    fn new() -> Outgoing {
        Outgoing {
            state: State::Starting,
            stream: None,
            control: Vec::new(),
            queue: VecDeque::new(),
            spare: None,
            head_written: 0,
            queued: 0,
            refused: false,
            last_direct: None,
            peer_port: None,
            connect: ConnectStatus::Pending,
            sealer: None,
        }
    }

    /// The handshake finished: seal what was queued in plain, in order, and
    /// keep the sealer for later sends.
    pub(crate) fn start_sealing(&mut self, sealer: Sealer) -> Result<(), SendError> {
        let queue = std::mem::take(&mut self.queue);
        self.queued = 0;
        self.head_written = 0; // nothing is written before the handshake ends
        self.sealer = Some(sealer);
        for chunk in queue {
            // An owned chunk holds whole frames back to back.
            let mut rest: &[u8] = &chunk;
            while let Some(prefix) = rest.first_chunk::<LENGTH_PREFIX>() {
                let end = (LENGTH_PREFIX + u32::from_le_bytes(*prefix) as usize).min(rest.len());
                let (frame, tail) = rest.split_at(end);
                self.push(OutFrame::Borrowed(frame))?;
                rest = tail;
            }
        }
        Ok(())
    }

    /// Appends one frame to the queue, sealed when the link is encrypted.
    /// Small frames are copied into the last owned chunk (reusing a written
    /// one's buffer), so a stream of small messages allocates nothing.
    fn push(&mut self, frame: OutFrame) -> Result<(), SendError> {
        let tag = if self.sealer.is_some() { TAG_LEN } else { 0 };
        let len = frame.len();
        let frame = match frame {
            OutFrame::Borrowed(bytes) if len <= SMALL_FRAME => bytes,
            OutFrame::Borrowed(bytes) => return self.push_large(Bytes::copy_from_slice(bytes)),
            OutFrame::Shared(bytes) if len <= SMALL_FRAME => {
                // A copy costs less than a separate write (or seal) of it.
                return self.push(OutFrame::Borrowed(&bytes));
            }
            OutFrame::Shared(bytes) => return self.push_large(bytes),
        };
        let fits = matches!(self.queue.back(),
            Some(Chunk::Owned(v)) if v.len() + len + tag <= CHUNK_BYTES);
        if !fits {
            let mut buf = self.spare.take().unwrap_or_default();
            buf.clear();
            buf.reserve(len + tag);
            self.queue.push_back(Chunk::Owned(buf));
        }
        let Some(Chunk::Owned(buf)) = self.queue.back_mut() else {
            unreachable!("an owned chunk was just ensured at the back");
        };
        let start = buf.len();
        buf.extend_from_slice(frame);
        if let Some(sealer) = self.sealer.as_mut()
            && let Err(e) = seal_at(sealer, buf, start)
        {
            if buf.is_empty() {
                self.queue.pop_back();
            }
            return Err(e);
        }
        self.queued += buf.len() - start;
        Ok(())
    }

    /// Queues a large frame as its own chunk, sealed in place when this
    /// send holds its only reference.
    fn push_large(&mut self, frame: Bytes) -> Result<(), SendError> {
        let chunk = match self.sealer.as_mut() {
            None => Chunk::Shared(frame),
            Some(sealer) => {
                let mut buf = match frame.try_into_mut() {
                    Ok(unique) => Vec::from(unique),
                    Err(shared) => shared.to_vec(),
                };
                seal_at(sealer, &mut buf, 0)?;
                Chunk::Owned(buf)
            }
        };
        self.queued += chunk.len();
        self.queue.push_back(chunk);
        Ok(())
    }

    /// Writes control bytes, then queued frames (only when `open`), gathering
    /// up to 64 frames per syscall.
    pub(crate) fn flush(&mut self, open: bool) -> io::Result<Flushed> {
        let Some(stream) = self.stream.clone() else {
            return Ok(Flushed::Empty);
        };
        while !self.control.is_empty() {
            match (&*stream).write(&self.control) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.control.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if !open {
            return Ok(Flushed::Empty);
        }
        while !self.queue.is_empty() {
            let n = {
                let mut slices: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                for (i, frame) in self.queue.iter().take(MAX_IOVECS).enumerate() {
                    let skip = if i == 0 { self.head_written } else { 0 };
                    if let Some(slot) = slices.get_mut(i) {
                        *slot = IoSlice::new(frame.get(skip..).unwrap_or_default());
                        count = i + 1;
                    }
                }
                match (&*stream).write_vectored(slices.get(..count).unwrap_or_default()) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            self.advance(n);
        }
        Ok(Flushed::Empty)
    }

    /// Drops `n` written bytes from the front of the queue.
    fn advance(&mut self, mut n: usize) {
        self.queued = self.queued.saturating_sub(n);
        while n > 0 {
            let Some(front) = self.queue.front() else {
                break;
            };
            let left = front.len() - self.head_written;
            if n >= left {
                n -= left;
                if let Some(Chunk::Owned(buf)) = self.queue.pop_front()
                    && self.spare.is_none()
                    && buf.capacity() <= CHUNK_BYTES
                {
                    self.spare = Some(buf); // reused by the next push
                }
                self.head_written = 0;
            } else {
                self.head_written += n;
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::secure::{CipherSuite, sessions};

    /// A plain frame of `len` bytes whose body is `fill`.
    fn frame(len: usize, fill: u8) -> Vec<u8> {
        let mut f = (len as u32 - 4).to_le_bytes().to_vec();
        f.resize(len, fill);
        f
    }

    fn queued_bytes(out: &Outgoing) -> Vec<u8> {
        out.queue.iter().flat_map(|c| c.iter().copied()).collect()
    }

    #[test]
    fn small_frames_share_a_chunk_and_large_ones_are_not_copied() {
        let mut out = Outgoing::new();
        let (a, b, d) = (frame(30, 1), frame(SMALL_FRAME, 2), frame(5, 4));
        let c = Bytes::from(frame(SMALL_FRAME + 1, 3));
        out.push(OutFrame::Borrowed(&a)).unwrap();
        out.push(OutFrame::Shared(Bytes::from(b.clone()))).unwrap();
        out.push(OutFrame::Shared(c.clone())).unwrap();
        out.push(OutFrame::Borrowed(&d)).unwrap();
        assert_eq!(out.queue.len(), 3, "a+b, c, d");
        match out.queue.get(1) {
            Some(Chunk::Shared(shared)) => assert_eq!(shared.as_ptr(), c.as_ptr()),
            _ => panic!("the large frame is queued as it is"),
        }
        let all = [a.as_slice(), &b, &c, &d].concat();
        assert_eq!(queued_bytes(&out), all);
        assert_eq!(out.queued, all.len());
        // Written in two parts: the first chunk's buffer is kept for reuse.
        out.advance(10);
        assert_eq!(out.head_written, 10);
        assert!(out.spare.is_none());
        out.advance(a.len() + b.len() - 10);
        assert_eq!(out.queue.len(), 2);
        assert!(out.spare.as_ref().is_some_and(|v| v.capacity() >= a.len()));
        out.advance(out.queued);
        assert!(out.queue.is_empty());
        assert_eq!(out.queued, 0);
    }

    #[test]
    fn a_chunk_stops_growing_at_its_limit() {
        let mut out = Outgoing::new();
        let f = frame(SMALL_FRAME, 7);
        for _ in 0..(CHUNK_BYTES / SMALL_FRAME + 1) {
            out.push(OutFrame::Borrowed(&f)).unwrap();
        }
        assert_eq!(out.queue.len(), 2);
        assert!(out.queue.iter().all(|c| c.len() <= CHUNK_BYTES));
    }

    #[test]
    fn frames_queued_before_the_handshake_are_sealed_one_by_one_in_order() {
        for suite in [CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305] {
            let (client, server) = sessions(suite, &"ab".repeat(32));
            let (sealer, _) = client.into_parts();
            let (_, mut opener) = server.into_parts();
            let mut out = Outgoing::new();
            let plain = [
                frame(12, 1),
                frame(40, 2),
                frame(SMALL_FRAME + 100, 3),
                frame(9, 4),
            ];
            for f in &plain {
                out.push(OutFrame::Borrowed(f)).unwrap();
            }
            out.start_sealing(sealer).unwrap();
            // And one more after the handshake, sealed as it is queued.
            let last = frame(20, 5);
            out.push(OutFrame::Borrowed(&last)).unwrap();
            let mut wire = queued_bytes(&out);
            assert_eq!(out.queued, wire.len());
            let mut rest = wire.as_mut_slice();
            for f in plain.iter().chain([&last]) {
                let (prefix, tail) = rest.split_first_chunk_mut::<4>().unwrap();
                let len = u32::from_le_bytes(*prefix) as usize;
                let (payload, tail) = tail.split_at_mut(len);
                let text = opener.open_in_place(*prefix, payload).unwrap();
                assert_eq!(&*text, &f[4..]);
                rest = tail;
            }
            assert!(rest.is_empty());
        }
    }
}
