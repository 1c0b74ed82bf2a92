//! [`NetShared`]: what the handles and the IO thread share, and the commands
//! handles send to the IO thread.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use super::budget::Budget;
use super::config::Config;
use super::event::Event;
use super::ids::ServerId;
use super::link::Link;
use super::ring::Ring;
use super::server::ServerShared;
use crate::error::Error;
use crate::proto::{OutFrame, SMALL_FRAME, encode_message, encode_typed_message};
use crate::value::Value;

/// A pre-shared key and the cipher it is used with.
pub(crate) struct Keying {
    pub(crate) key: crate::proto::secure::SecretKey,
    pub(crate) suite: crate::proto::secure::CipherSuite,
}

impl Keying {
    /// Parses a key argument with the configured cipher; `None` for plain.
    pub(crate) fn from_argument(
        key: Option<&str>,
        config: &Config,
    ) -> Result<Option<Arc<Keying>>, Error> {
        let Some(hex) = key else {
            return Ok(None);
        };
        let key = crate::proto::secure::SecretKey::from_hex(hex)?;
        let suite = config
            .cipher
            .unwrap_or_else(|| crate::proto::secure::CipherSuite::for_key(&key))
            .normalized();
        Ok(Some(Arc::new(Keying { key, suite })))
    }
}

/// Work for the IO thread.
pub(crate) enum Command {
    /// Start accepting on this listener.
    Listen(Arc<ServerShared>, mio::net::TcpListener),
    /// Start connecting this client link.
    Connect(Arc<Link>),
    /// This link's queue went from empty to non-empty (or a direct write failed).
    Flush(u64),
    /// A fan-out made these links' queues non-empty: seal and write each.
    FlushMany(Vec<u64>),
    /// Close this link after flushing (bounded by the linger time).
    Close(u64),
    /// Stop this server and close its connections.
    CloseServer(ServerId),
    /// The lossless ring has room again: resume reading and accepting.
    Resume,
    /// A message from this link did not decode (the `Error` event is out):
    /// close it at once with this reason.
    Fail(u64, Error),
    /// Close everything, flushing until `deadline`, then stop the thread.
    Shutdown(Instant),
    /// Another reactor handed this one connections (`io::handoff`).
    Adopt,
}

/// The IO driver as the shared layer sees it: something that moves bytes
/// and events one round at a time (see `io::Driver`).
pub(crate) trait Reactor: Send {
    /// One round: commands, a wait for sockets or timers (at most
    /// `max_wait` when given), then what they reported, with the events
    /// produced in the ring on return. False once the network has shut
    /// down and nothing is left to drive.
    fn turn(&mut self, max_wait: Option<Duration>) -> bool;
}

/// How a network's IO was started.
pub(crate) enum Started {
    /// On threads of their own (one per reactor), which end after shutdown.
    Threads(Vec<JoinHandle<()>>),
    /// Inline IO: a reactor the application's threads drive.
    Inline(Box<dyn Reactor>),
}

/// Starts a network's IO (the driver provides it: `io::start`). It installs
/// each reactor's waker with [`NetShared::install_waker`].
pub(crate) type StartIo = fn(&Arc<NetShared>) -> Result<Started, Error>;

#[derive(Default)]
struct IoThread {
    handles: Vec<JoinHandle<()>>,
    started: bool,
    shut_down: bool,
}

pub(crate) struct NetShared {
    pub(crate) config: Config,
    pub(crate) ring: Ring,
    /// What peers make this network hold, against `Config::memory_budget`.
    pub(crate) budget: Arc<Budget>,
    /// Each reactor's commands and waker (`Config::io_threads` of them).
    reactors: Box<[ReactorSlot]>,
    /// The reactor the next server or client is given to.
    next_reactor: AtomicUsize,
    io: Mutex<IoThread>,
    /// Starts the IO on first use.
    start: StartIo,
    /// What connections abandoned during shutdown (the driver adds to it).
    abandoned: Mutex<Vec<super::report::Abandoned>>,
    /// With [`Config::inline_io`]: the reactor, driven by whichever
    /// application thread waits for events (one at a time).
    inline: Mutex<Option<Box<dyn Reactor>>>,
    /// The static key pair of this network's keyed clients, made on first
    /// use (it carries no identity; see `ClientStatic`).
    client_static: OnceLock<crate::proto::secure::ClientStatic>,
}

/// One reactor's mailbox: the commands for it and the waker that tells it.
#[derive(Default)]
struct ReactorSlot {
    commands: Mutex<Vec<Command>>,
    waker: OnceLock<mio::Waker>,
}

impl NetShared {
    /// This network's client static key pair, generated on first use.
    pub(crate) fn client_static(
        &self,
    ) -> Result<&crate::proto::secure::ClientStatic, crate::proto::secure::SecureError> {
        if let Some(s) = self.client_static.get() {
            return Ok(s);
        }
        let fresh = crate::proto::secure::ClientStatic::generate()?;
        Ok(self.client_static.get_or_init(|| fresh))
    }

    pub(crate) fn new(config: Config, start: StartIo) -> Arc<NetShared> {
        let budget = Arc::new(Budget::new(config.memory_budget));
        let reactors = if config.inline_io {
            1
        } else {
            config.io_threads.max(1)
        };
        let ring = Ring::new(
            config.event_capacity,
            config.event_bytes,
            config.overflow,
            config.limits,
            budget.clone(),
        )
        .with_raw_messages(config.raw_messages)
        .with_minor_rate(config.failure_reports_per_second)
        .with_producers(reactors);
        let shared = Arc::new(NetShared {
            config,
            ring,
            budget,
            reactors: (0..reactors).map(|_| ReactorSlot::default()).collect(),
            next_reactor: AtomicUsize::new(0),
            io: Mutex::new(IoThread::default()),
            start,
            abandoned: Mutex::new(Vec::new()),
            inline: Mutex::new(None),
            client_static: OnceLock::new(),
        });
        // A weak reference: the ring must not keep the network alive.
        let weak = Arc::downgrade(&shared);
        shared.ring.set_resume(Some(Arc::new(move || {
            if let Some(net) = weak.upgrade() {
                net.command_all(|| Command::Resume);
            }
        })));
        let weak = Arc::downgrade(&shared);
        shared.ring.set_fail(Some(Arc::new(move |id, error| {
            if let Some(net) = weak.upgrade() {
                // Which reactor holds it is not known here: it is rare,
                // and the others ignore an id they do not hold.
                net.command_all(|| Command::Fail(id, error.clone()));
            }
        })));
        shared
    }

    /// Starts the IO thread on first use.
    pub(crate) fn ensure_running(self: &Arc<Self>) -> Result<(), Error> {
        let mut io = self.io.lock();
        if io.shut_down {
            return Err(Error::Shutdown);
        }
        if io.started {
            return Ok(());
        }
        match (self.start)(self)? {
            Started::Threads(handles) => io.handles = handles,
            Started::Inline(reactor) => *self.inline.lock() = Some(reactor),
        }
        io.started = true;
        Ok(())
    }

    /// The network has shut down (or is shutting down): its handles can do
    /// nothing more.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.io.lock().shut_down
    }

    /// Records what a connection abandoned during shutdown.
    pub(crate) fn record_abandoned(&self, abandoned: super::report::Abandoned) {
        self.abandoned.lock().push(abandoned);
    }

    /// Shuts down (if not already shutting down) and waits until the IO
    /// has finished, bounded by `deadline` (plus a moment to stop); returns
    /// what the connections abandoned. Never joins from an IO thread itself.
    pub(crate) fn shutdown_and_wait(&self, deadline: Instant) -> super::report::ShutdownReport {
        for handle in self.begin_shutdown(deadline) {
            if handle.thread().id() != std::thread::current().id() {
                // An IO thread stops by the deadline; a panic there is not
                // ours to re-raise.
                let _ = handle.join();
            }
        }
        super::report::ShutdownReport {
            abandoned: std::mem::take(&mut *self.abandoned.lock()),
        }
    }

    /// How many reactors drive this network (`Config::io_threads`; 1
    /// with inline IO).
    pub(crate) fn reactors(&self) -> usize {
        self.reactors.len()
    }

    /// The reactor for a new server or client: each in turn.
    pub(crate) fn pick_reactor(&self) -> usize {
        self.next_reactor.fetch_add(1, Ordering::Relaxed) % self.reactors.len()
    }

    /// Sets the waker that [`command`](Self::command) uses for reactor
    /// `shard` (once, by the IO driver as it starts).
    pub(crate) fn install_waker(&self, shard: usize, waker: mio::Waker) {
        if let Some(slot) = self.reactors.get(shard) {
            let _ = slot.waker.set(waker);
        }
    }

    /// Queues a command for reactor `shard`, waking it if its queue was
    /// empty.
    pub(crate) fn command(&self, shard: usize, command: Command) {
        let Some(slot) = self.reactors.get(shard) else {
            return;
        };
        let was_empty = {
            let mut commands = slot.commands.lock();
            let was_empty = commands.is_empty();
            commands.push(command);
            was_empty
        };
        if was_empty && let Some(waker) = slot.waker.get() {
            // A failed wake leaves the command queued for the next poll.
            let _ = waker.wake();
        }
    }

    /// Queues a command (made by `make`) for every reactor.
    pub(crate) fn command_all(&self, make: impl Fn() -> Command) {
        for shard in 0..self.reactors.len() {
            self.command(shard, make());
        }
    }

    /// Reactor `shard`'s commands, in the order they were queued.
    pub(crate) fn take_commands(&self, shard: usize) -> Vec<Command> {
        self.reactors
            .get(shard)
            .map(|slot| std::mem::take(&mut *slot.commands.lock()))
            .unwrap_or_default()
    }

    /// Encodes a value as one frame, once, and hands it to `send` (which
    /// may send it to any number of links). Small frames are borrowed from a
    /// per-thread buffer, so encoding allocates nothing; large ones are
    /// handed over as owned bytes, never copied.
    pub(crate) fn with_frame<R>(
        &self,
        value: &Value,
        send: impl FnOnce(OutFrame<'_>) -> R,
    ) -> Result<R, Error> {
        self.with_encoded(|limits, buf| encode_message(value, limits, buf), send)
    }

    /// [`with_frame`](Self::with_frame) for any `Serialize` value, encoded
    /// straight into the frame (no intermediate `Value`).
    pub(crate) fn with_typed_frame<T: serde::Serialize + ?Sized, R>(
        &self,
        value: &T,
        send: impl FnOnce(OutFrame<'_>) -> R,
    ) -> Result<R, Error> {
        self.with_encoded(|limits, buf| encode_typed_message(value, limits, buf), send)
    }

    /// Runs `encode` (which appends one frame) into the per-thread buffer,
    /// then hands the frame to `send`.
    fn with_encoded<R>(
        &self,
        encode: impl FnOnce(&crate::proto::Limits, &mut Vec<u8>) -> Result<(), Error>,
        send: impl FnOnce(OutFrame<'_>) -> R,
    ) -> Result<R, Error> {
        thread_local! {
            static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        let limits = &self.config.limits;
        SCRATCH.with(|scratch| {
            // Busy only if `send` re-entered us: use a buffer of our own.
            let mut own = Vec::new();
            let mut guard = scratch.try_borrow_mut().ok();
            let buf = guard.as_deref_mut().unwrap_or(&mut own);
            buf.clear();
            if let Err(e) = encode(limits, buf) {
                buf.shrink_to(SMALL_FRAME); // a failed huge value keeps nothing
                return Err(e);
            }
            if buf.len() <= SMALL_FRAME {
                return Ok(send(OutFrame::Borrowed(buf)));
            }
            let mut frame = std::mem::take(buf);
            // Room for an encryption tag, so sealing in place never
            // reallocates (and copies) a large frame.
            frame.reserve(crate::proto::secure::TAG_LEN);
            Ok(send(OutFrame::Shared(Bytes::from(frame))))
        })
    }

    /// Inline IO: one round of driving the reactor on this thread, waiting
    /// at most `max_wait`. False (having done nothing) when another thread is
    /// driving it, or there is nothing to drive (not started, shut down).
    pub(crate) fn drive(&self, max_wait: Duration) -> bool {
        let Some(mut guard) = self.inline.try_lock() else {
            return false;
        };
        let Some(reactor) = guard.as_mut() else {
            return false;
        };
        if !reactor.turn(Some(max_wait)) {
            *guard = None; // shut down
        }
        true
    }

    /// Inline IO: drives the reactor until events are ready or `timeout`
    /// passes, then takes them.
    pub(crate) fn wait_inline(&self, timeout: Duration) -> Vec<Event> {
        let mut out = Vec::new();
        self.wait_inline_into(&mut out, timeout);
        out
    }

    /// [`wait_inline`](Self::wait_inline), appending to `out`; how many it
    /// appended.
    pub(crate) fn wait_inline_into(&self, out: &mut Vec<Event>, timeout: Duration) -> usize {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let n = self.ring.take_into(out);
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if n > 0 || left.is_zero() {
                return n;
            }
            if !self.drive(left) {
                // Another thread drives: wait for what it produces.
                return self.ring.wait_into(out, left);
            }
        }
    }

    /// Starts shutting down without waiting. Returns the IO threads to join
    /// (for inline IO, a thread that finishes the flushing).
    pub(crate) fn begin_shutdown(&self, deadline: Instant) -> Vec<JoinHandle<()>> {
        let (mut handles, started) = {
            let mut io = self.io.lock();
            if io.shut_down {
                return Vec::new();
            }
            io.shut_down = true;
            (std::mem::take(&mut io.handles), io.started)
        };
        let inline = self.config.inline_io && started;
        if !handles.is_empty() || inline {
            self.command_all(|| Command::Shutdown(deadline));
        }
        if inline && let Some(mut reactor) = self.inline.lock().take() {
            // Nobody may call us again to drive what is left: a thread of
            // its own flushes it, bounded by the deadline.
            handles.extend(
                std::thread::Builder::new()
                    .name("tablenet-io-finish".into())
                    .spawn(move || while reactor.turn(None) {})
                    .ok(),
            );
        }
        self.ring.wake_waiters();
        handles
    }
}
