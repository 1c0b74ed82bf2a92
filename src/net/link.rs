//! [`Link`]: one TCP connection's state, shared by its handles and the IO
//! thread. Holds the outgoing queue and the send path.
//!
//! The send path, in order of preference:
//! 1. **Direct write** from the caller's thread, only when the link is idle:
//!    open, nothing queued, and either something arrived since our last
//!    direct write (request/reply traffic) or that write was long enough ago.
//!    No thread hop, so a round trip costs what raw TCP costs.
//! 2. Otherwise the frame is **queued**. Only the send that makes the queue
//!    non-empty wakes the IO thread; every frame queued until it runs goes
//!    out in one vectored write, so a stream of small messages costs few
//!    syscalls.
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
use crate::proto::secure::Sealer;

/// A direct write is allowed this long after the previous one even when
/// nothing was received in between (a sender pausing between messages).
const DIRECT_WRITE_GAP: Duration = Duration::from_millis(1);

/// Most frames gathered into one vectored write.
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
    /// Whole frames waiting; the first may be partly written.
    pub(crate) queue: VecDeque<Bytes>,
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
            out: Mutex::new(Outgoing {
                state: State::Starting,
                stream: None,
                control: Vec::new(),
                queue: VecDeque::new(),
                head_written: 0,
                queued: 0,
                refused: false,
                last_direct: None,
                peer_port: None,
                connect: ConnectStatus::Pending,
                sealer: None,
            }),
            connect_changed: Condvar::new(),
            received: AtomicBool::new(false),
            net,
            created: Instant::now(),
        }
    }

    pub(crate) fn connection_id(&self) -> ConnectionId {
        ConnectionId(self.id)
    }

    /// Queues (or writes) one encoded frame.
    pub(crate) fn send_frame(&self, frame: Bytes) -> Result<(), SendError> {
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
        // Sealed here, under the lock, so counter order is wire order. Before
        // the handshake ends there is no sealer yet: the IO thread seals the
        // queue when it opens the link.
        let frame = match out.sealer.as_mut() {
            Some(sealer) => seal(sealer, frame)?,
            None => frame,
        };
        let len = frame.len();
        if out.state == State::Open
            && out.queue.is_empty()
            && out.control.is_empty()
            && self.idle(&out)
        {
            match self.write_direct(&mut out, &frame) {
                Ok(written) if written == len => return Ok(()),
                Ok(written) => {
                    // The socket is full; its writable edge will wake the IO
                    // thread, which writes the rest.
                    out.queue.push_back(frame);
                    out.head_written = written;
                    out.queued = len - written;
                    return Ok(());
                }
                Err(_) => {
                    // Hand the failure to the IO thread, which closes the
                    // link and reports why; this send counts as queued.
                    out.queue.push_back(frame);
                    out.queued += len;
                    drop(out);
                    self.net.command(Command::Flush(self.id));
                    return Ok(());
                }
            }
        }
        let was_empty = out.queue.is_empty();
        out.queue.push_back(frame);
        out.queued += len;
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

    /// Writes as much of `frame` as the socket takes now.
    fn write_direct(&self, out: &mut Outgoing, frame: &[u8]) -> io::Result<usize> {
        let Some(stream) = out.stream.clone() else {
            return Ok(0);
        };
        let mut written = 0;
        while written < frame.len() {
            match (&*stream).write(frame.get(written..).unwrap_or_default()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        out.last_direct = Some(Instant::now());
        self.received.store(false, Ordering::Relaxed);
        Ok(written)
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
            if self
                .connect_changed
                .wait_until(&mut out, deadline)
                .timed_out()
            {
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

/// Seals one plain frame. A frame only this send holds is sealed in place.
fn seal(sealer: &mut Sealer, frame: Bytes) -> Result<Bytes, SendError> {
    let mut buf = match frame.try_into_mut() {
        Ok(unique) => Vec::from(unique),
        Err(shared) => shared.to_vec(),
    };
    sealer
        .seal_in_place(&mut buf, 0)
        .map_err(|e| SendError::Unsendable(e.into()))?;
    Ok(Bytes::from(buf))
}

/// Result of one flush attempt by the IO thread.
pub(crate) enum Flushed {
    /// Everything written.
    Empty,
    /// The socket is full; wait for its writable edge.
    Blocked,
}

impl Outgoing {
    /// The handshake finished: seal what was queued in plain, in order, and
    /// keep the sealer for later sends.
    pub(crate) fn start_sealing(&mut self, mut sealer: Sealer) -> Result<(), SendError> {
        let queue = std::mem::take(&mut self.queue);
        self.queued = 0;
        for frame in queue {
            let sealed = seal(&mut sealer, frame)?;
            self.queued += sealed.len();
            self.queue.push_back(sealed);
        }
        self.sealer = Some(sealer);
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
                self.queue.pop_front();
                self.head_written = 0;
            } else {
                self.head_written += n;
                n = 0;
            }
        }
    }
}
