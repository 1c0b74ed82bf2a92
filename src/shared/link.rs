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
//! A fan-out (one frame to several links: `Server::broadcast`, `send`)
//! never writes from the caller's thread: it queues the shared frame on each
//! link unsealed ([`Link::queue_shared`]), a few hundred nanoseconds per
//! link, and one command hands the whole burst to the IO thread, which
//! seals each link's share (each keyed link has its own counter) and writes
//! it in few large writes.
//!
//! `send` never blocks on the network and never spins: past the byte limit
//! it refuses with [`SendError::QueueFull`]. Room is reported per link: a
//! link that refused a send reports `Drained` once its queue is down to the
//! low-water mark (`Config::send_queue_low_water`), and
//! [`Link::wait_writable`] waits for that mark.

use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;

use mio::net::TcpStream;
use parking_lot::{Condvar, Mutex, MutexGuard};

use super::ids::{ClientId, ConnectionId, ServerId};
use super::net_shared::{Command, Keying, NetShared};
use super::send_error::SendError;
use crate::error::Error;
use crate::proto::{OutFrame, SendQueue};

/// A direct write is allowed this long after the previous one even when
/// nothing was received in between (a sender pausing between messages).
const DIRECT_WRITE_GAP: Duration = Duration::from_millis(1);

/// Most chunks gathered into one vectored write.
const MAX_IOVECS: usize = 64;

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
    /// Frames waiting (sealed once a keyed handshake has finished).
    pub(crate) queue: SendQueue,
    /// A send was refused for a full queue: report `Drained` at the
    /// low-water mark.
    pub(crate) refused: bool,
    /// Tasks waiting (`Connection::writable`) for the low-water mark or
    /// the close.
    writable_wakers: Vec<Waker>,
    last_direct: Option<Instant>,
    /// Port of the peer once connected (clients) or at accept.
    pub(crate) peer_port: Option<u16>,
    /// The address a client connected to (one of its candidates).
    pub(crate) connected_to: Option<SocketAddr>,
    pub(crate) connect: ConnectStatus,
}

/// One connection's shared state.
pub(crate) struct Link {
    /// Process-unique socket id; also the IO thread's token.
    pub(crate) id: u64,
    pub(crate) role: Role,
    /// Peer address (a client's first target; an accepted connection's peer).
    pub(crate) peer: SocketAddr,
    /// A client's further targets, tried in order when connecting to the
    /// ones before fails (a host name resolving to several addresses).
    pub(crate) fallbacks: Vec<SocketAddr>,
    /// The key, when the connection is encrypted.
    pub(crate) keying: Option<Arc<Keying>>,
    pub(crate) out: Mutex<Outgoing>,
    /// Signalled when `connect` leaves `Pending`.
    pub(crate) connect_changed: Condvar,
    /// Signalled when the queue comes down to the low-water mark, and when
    /// the link starts closing (`wait_writable`).
    writable: Condvar,
    /// Set by the IO thread when frames arrive; cleared by a direct write.
    pub(crate) received: AtomicBool,
    pub(crate) net: Arc<NetShared>,
    pub(crate) created: Instant,
    /// The IO thread (reactor) that drives it (`Config::io_threads`): a
    /// client's for its whole life; an accepted connection's server's until
    /// its handshake ends, then perhaps another (see `io::handoff`).
    shard: AtomicUsize,
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
            fallbacks: Vec::new(),
            keying,
            out: Mutex::new(Outgoing::new()),
            connect_changed: Condvar::new(),
            writable: Condvar::new(),
            received: AtomicBool::new(false),
            net,
            created: Instant::now(),
            shard: AtomicUsize::new(0),
        }
    }

    /// The link, driven by IO thread `shard`.
    pub(crate) fn on_shard(self, shard: usize) -> Link {
        self.shard.store(shard, Ordering::Relaxed);
        self
    }

    /// The reactor that drives it now. A command sent to the one it just
    /// left is passed on by that one.
    pub(crate) fn shard(&self) -> usize {
        self.shard.load(Ordering::Acquire)
    }

    /// Moves it to reactor `shard` (by the reactor handing it over).
    pub(crate) fn set_shard(&self, shard: usize) {
        self.shard.store(shard, Ordering::Release);
    }

    /// The `i`-th address to try: `peer`, then the fallbacks.
    pub(crate) fn candidate(&self, i: usize) -> Option<SocketAddr> {
        match i {
            0 => Some(self.peer),
            i => self.fallbacks.get(i - 1).copied(),
        }
    }

    pub(crate) fn connection_id(&self) -> ConnectionId {
        ConnectionId(self.id)
    }

    /// Queues (or writes) one encoded frame. `direct` allows writing from
    /// the caller's thread when the link is idle (control frames the IO
    /// thread queues say no). Fan-outs use [`queue_shared`](Self::queue_shared).
    pub(crate) fn send_frame(&self, frame: OutFrame, direct: bool) -> Result<(), SendError> {
        let mut out = self.out.lock();
        self.admit(&mut out, frame.len())?;
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
            self.net.command(self.shard(), Command::Flush(self.id));
        }
        Ok(())
    }

    /// Refuses a frame of `len` bytes when the link is closing or its queue
    /// is full (an empty queue takes any frame).
    fn admit(&self, out: &mut Outgoing, len: usize) -> Result<(), SendError> {
        let limit = self.net.config.send_queue_bytes;
        match out.state {
            State::Closing | State::Closed => return Err(SendError::Closed),
            State::Starting | State::Open => {}
        }
        if !out.queue.is_empty() && out.queue.len() + len > limit {
            out.refused = true;
            return Err(SendError::QueueFull {
                queued: out.queue.len(),
                limit,
            });
        }
        Ok(())
    }

    /// Queues one frame of a fan-out, shared and unsealed: constant work,
    /// never a write. True when the IO thread must be told to flush this
    /// link (its queue was empty and it is open); the caller gathers these
    /// into one [`Command::FlushMany`].
    pub(crate) fn queue_shared(&self, frame: &Bytes) -> Result<bool, SendError> {
        self.queue_shared_in(&mut self.out.lock(), frame)
    }

    /// [`queue_shared`](Self::queue_shared), unless the link is locked
    /// (the IO thread is writing it): then `None`, and the caller comes
    /// back to it after the others instead of waiting for that write.
    pub(crate) fn try_queue_shared(&self, frame: &Bytes) -> Option<Result<bool, SendError>> {
        let mut out = self.out.try_lock()?;
        Some(self.queue_shared_in(&mut out, frame))
    }

    fn queue_shared_in(&self, out: &mut Outgoing, frame: &Bytes) -> Result<bool, SendError> {
        self.admit(out, frame.len())?;
        let was_empty = out.queue.is_empty();
        out.queue.push_deferred(frame.clone());
        Ok(was_empty && out.state == State::Open)
    }

    /// The queue length at or below which the link counts as writable.
    pub(crate) fn low_water(&self) -> usize {
        self.net.config.low_water()
    }

    /// Wakes whoever waits for room (`wait_writable`, `writable`): the
    /// queue came down to the low-water mark, or the link is closing.
    pub(crate) fn notify_writable(&self, out: &mut Outgoing) {
        self.writable.notify_all();
        for waker in out.writable_wakers.drain(..) {
            waker.wake();
        }
    }

    /// Whether the link can take more now: `Some(Ok)` at or below the
    /// low-water mark, `Some(Err)` once closing, `None` while above it.
    fn writable_now(&self, out: &Outgoing) -> Option<Result<(), Error>> {
        match out.state {
            State::Closing | State::Closed => Some(Err(Error::Closed)),
            State::Starting | State::Open if out.queue.len() <= self.low_water() => Some(Ok(())),
            State::Starting | State::Open => None,
        }
    }

    /// Blocks until the queue is at or below the low-water mark (at once if
    /// it already is), the link closes ([`Error::Closed`]) or `timeout`
    /// passes ([`Error::Timeout`]). Takes no events.
    pub(crate) fn wait_writable(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now().checked_add(timeout);
        let mut out = self.out.lock();
        loop {
            if let Some(result) = self.writable_now(&out) {
                return result;
            }
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return Err(Error::Timeout {
                    operation: "wait_writable",
                    after: timeout,
                });
            }
            // Inline IO: this thread writes the queue out itself.
            let drove = self.net.config.inline_io
                && MutexGuard::unlocked(&mut out, || self.net.drive(left));
            if !drove {
                match deadline {
                    Some(d) => {
                        self.writable.wait_until(&mut out, d);
                    }
                    None => self.writable.wait(&mut out),
                }
            }
        }
    }

    /// The async form of [`wait_writable`](Self::wait_writable): ready when
    /// it would return; otherwise registers `waker`.
    #[cfg_attr(not(feature = "futures"), allow(dead_code))]
    pub(crate) fn poll_writable(&self, waker: &Waker) -> std::task::Poll<Result<(), Error>> {
        let mut out = self.out.lock();
        if let Some(result) = self.writable_now(&out) {
            return std::task::Poll::Ready(result);
        }
        if !out.writable_wakers.iter().any(|w| w.will_wake(waker)) {
            out.writable_wakers.push(waker.clone());
        }
        std::task::Poll::Pending
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
        self.notify_writable(&mut out);
        drop(out);
        self.net.command(self.shard(), Command::Close(self.id));
        true
    }

    pub(crate) fn queued_bytes(&self) -> usize {
        self.out.lock().queue.len()
    }

    pub(crate) fn is_open(&self) -> bool {
        self.out.lock().state == State::Open
    }

    /// Neither closing nor closed.
    pub(crate) fn is_starting_or_open(&self) -> bool {
        matches!(self.out.lock().state, State::Starting | State::Open)
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
            queue: SendQueue::new(),
            refused: false,
            writable_wakers: Vec::new(),
            last_direct: None,
            peer_port: None,
            connected_to: None,
            connect: ConnectStatus::Pending,
        }
    }

    /// Queues one frame (sealed once the link is keyed and open).
    fn push(&mut self, frame: OutFrame) -> Result<(), SendError> {
        self.queue
            .push(frame)
            .map_err(|e| SendError::Unsendable(e.into()))
    }

    /// Writes control bytes, then queued frames (only when `open`), gathering
    /// up to 64 chunks per syscall.
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
        // A fan-out's frames are sealed and gathered here, on the writing
        // thread.
        self.queue.prepare().map_err(io::Error::other)?;
        while !self.queue.is_empty() {
            let n = {
                let mut slices: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
                let count = self.queue.io_slices(&mut slices);
                match (&*stream).write_vectored(slices.get(..count).unwrap_or_default()) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            self.queue.advance(n);
        }
        Ok(Flushed::Empty)
    }
}
