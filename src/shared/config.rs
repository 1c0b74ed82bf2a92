//! [`Config`]: everything a [`Network`](crate::Network) can be tuned by.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::proto::Limits;
use crate::proto::secure::CipherSuite;

/// What happens when the event ring is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// The Lua network module's behaviour (the Lua binding's default): the
    /// oldest events are overwritten, and a
    /// [`Dropped`](crate::EventKind::Dropped) event counts them. It turns
    /// TCP into a lossy channel when the application falls behind.
    Overwrite,
    /// The default in Rust. Nothing is lost: while the ring is full the IO
    /// thread stops reading sockets (TCP flow control slows the senders,
    /// whose sends then meet `QueueFull`) and stops accepting; connect,
    /// close and error events of known connections are held until there is
    /// room.
    #[default]
    Lossless,
}

/// Network configuration. Start from `Config::default()` and change fields;
/// [`Network::with_config`](crate::Network::with_config) validates it and
/// names the first bad field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Event ring slots (default 2000, as in the Lua network module).
    pub event_capacity: usize,
    /// Event ring byte budget for received packets (default 64 MiB). Must be
    /// at least `limits.max_frame_size`, so that one message of the largest
    /// size always fits (raise both together).
    pub event_bytes: usize,
    /// What one connection may hold in the ring while the ring is contended
    /// (at least three quarters full, in events or bytes): this many events (default
    /// 250, an eighth of the default ring), and the same fraction of
    /// `event_bytes`. A connection over its share is paused alone (its
    /// socket is not read, so TCP slows that sender) until the application
    /// takes events; every other connection goes on. A ring with room to
    /// spare lets anyone fill it, so one busy sender is never slowed by the
    /// quota alone. One message always fits. A share larger than the ring
    /// turns the quota off (`usize::MAX`): under `Overwrite`, one flooding
    /// peer then overwrites everyone's events, as in the Lua network module.
    pub connection_events: usize,
    /// One limit on everything peers can make this network hold (default
    /// 256 MiB): the receive buffers of partial frames and the messages
    /// waiting in the ring. When it is full, links that need more memory
    /// are not read (TCP slows their senders) until the application takes
    /// events or connections close. Partial frames over 64 KiB together
    /// hold at most half of it, so peers sending large frames cannot keep
    /// small messages out. A message whose decoded size would take more
    /// than half of what is free (decoding briefly needs up to twice that:
    /// but it may always take 32 times its size plus 1 MiB, and never more
    /// than half the budget) is refused with an `Error` event naming the limit
    /// ([`ProtocolError::DecodedTooLarge`](crate::ProtocolError::DecodedTooLarge)),
    /// and its connection is closed. At least twice
    /// `limits.max_frame_size` plus 128 KiB, so one frame of the largest
    /// size always fits.
    pub memory_budget: usize,
    /// A partial frame to which no byte was added for this long, while this
    /// side was reading the connection, closes it with reason `Timeout`
    /// (default 15 s). Time the connection was paused by this side's own
    /// backpressure (a full ring, the quota, the memory budget) does not
    /// count, so an honest sender is never punished for our slowness; a peer
    /// that starts a large frame and stalls frees its memory. `None` turns
    /// it off.
    pub frame_timeout: Option<Duration>,
    /// What a full ring does (default: lossless, the IO thread stops reading
    /// until the application takes events; the Lua binding overwrites the
    /// oldest, as the Lua network module does).
    pub overflow: OverflowPolicy,
    /// Frame size and nesting limits, both directions. `limits.max_frame_size`
    /// may not exceed `event_bytes` (one message of the largest size must fit
    /// in the ring): raise both together.
    pub limits: Limits,
    /// Outgoing bytes a connection may have queued (default 8 MiB). An empty
    /// queue always accepts one message up to the maximum frame size.
    pub send_queue_bytes: usize,
    /// The low-water mark of each connection's send queue, in bytes: a
    /// connection that refused a send
    /// ([`SendError::QueueFull`](crate::SendError::QueueFull)) reports
    /// [`Drained`](crate::EventKind::Drained) once its queue is down to this,
    /// and `wait_writable` returns there. `None` (the default) means a
    /// quarter of `send_queue_bytes` (2 MiB by default), so a sender resumes
    /// while three quarters of the queue are free and the socket still has
    /// data to write. At most `send_queue_bytes`.
    pub send_queue_low_water: Option<usize>,
    /// Time a new connection has to finish its preamble/handshake (default
    /// 3 s: a keyed handshake takes two round trips, milliseconds even
    /// across continents, so a peer still silent after that is slow or
    /// hostile, and holds a slot of `max_handshaking` meanwhile).
    pub handshake_timeout: Duration,
    /// The IO thread's time spent on handshakes (reading them and running
    /// the Noise key exchange, about 0.1 ms of CPU per keyed attempt) in any
    /// second, at most (default 250 ms: a quarter of the thread). Beyond it,
    /// connections in their handshake wait (their bytes stay in the kernel)
    /// until the share refills, and at most 2 ms of it is spent in one
    /// go: strangers flooding first messages cannot take the thread from
    /// established connections, whose traffic and heartbeats are then held
    /// up a few milliseconds at most. The waiting are still bounded by
    /// `max_handshaking` and `handshake_timeout`. 1 ms ..= 1 s. Counted in
    /// the thread's CPU time where the system gives it (Linux), so a
    /// loaded machine's preemption does not shrink it. With
    /// `io_threads` > 1 the share is per thread; a server's handshakes all
    /// run on its own thread.
    pub handshake_budget: Duration,
    /// Time a closing connection has to write what was queued, its Close
    /// frame, and hear the peer's (default 5 s); also how long dropping the
    /// last [`Network`](crate::Network) handle may wait for that, so that
    /// exiting loses nothing. Long enough to drain a full default send queue
    /// (8 MiB) at a few MB/s, short enough that a dead peer cannot hold an
    /// exit for long.
    pub linger: Duration,
    /// Set TCP_NODELAY on every connection (default true: Nagle's algorithm
    /// costs tens of milliseconds per round trip).
    pub nodelay: bool,
    /// TCP keepalive idle time; `None` turns keepalive off (default 60 s).
    pub keepalive: Option<Duration>,
    /// Listen backlog for servers (default 1024; the kernel caps it at somaxconn).
    pub listen_backlog: u32,
    /// Dead-peer detection (default off). With `Some(limit)`, a connection
    /// that has received nothing for a third of `limit` sends a small ping
    /// (which any tablenet peer answers); one silent for the whole `limit` is
    /// closed with reason `Timeout`, so a peer that vanished without closing
    /// (cable pulled, machine frozen) is noticed. A few seconds suits most uses.
    pub heartbeat: Option<Duration>,
    /// Closes connections from which no message arrived for this long (pings
    /// do not count), with reason `Timeout` (default off).
    pub idle_timeout: Option<Duration>,
    /// Connections one server holds at most still in their handshake
    /// (default 1,024). When another arrives, one of them is closed (an
    /// `Error` event, `ProtocolError::HandshakeEvicted`): the oldest from an
    /// address holding more than an eighth of them if there is one (so one
    /// flooding address closes its own), else the oldest. Peers that
    /// connect and stay silent cannot fill `max_connections`, and an honest
    /// peer always gets in. Authenticated connections are never affected.
    pub max_handshaking: usize,
    /// Connections one server holds at most from one IP address, counting
    /// those still in their handshake (default `None`: no limit). Further
    /// ones are refused like those over `max_connections`
    /// ([`Error::AddressLimit`]). Peers behind one NAT share an address, so
    /// leave room for them.
    pub max_connections_per_address: Option<usize>,
    /// Decides, by the peer's address, whether a server takes a connection
    /// it just accepted (default `None`: every one). A refused connection is
    /// closed before any byte is read or written, and reported
    /// ([`Error::Filtered`]) like other failures before authentication.
    /// Called on the IO thread for every connection: keep it fast (a set
    /// lookup) and never block in it.
    pub accept_filter: Option<AcceptFilter>,
    /// `Error` events about connections that fail before they authenticate
    /// (failed or timed-out handshakes, refusals, evictions), reported one
    /// by one per server per second, at most (default 20). Beyond that they
    /// are counted, and one [`Error::UnauthenticatedFailures`] a second
    /// gives the count, the last error and its peer's address. These events
    /// never take the ring's room from established connections: they wait
    /// in a small queue of their own (a second's worth, at least 64 events,
    /// at most `event_capacity`), and what does not fit is counted into the
    /// next summary. 0 reports summaries only; `u32::MAX` reports each
    /// failure while that queue has room.
    pub failure_reports_per_second: u32,
    /// Connections one server holds at most, counting those still in their
    /// handshake (default 10,000). Further ones are refused at once: the
    /// client is told why, and the server reports an `Error` event. On
    /// Linux, `Network::server` also grows the process's descriptor table
    /// to this many (plus 64) slots up front, bounded by `RLIMIT_NOFILE`:
    /// later growth would stall the IO thread for an RCU grace period per
    /// doubling (8 bytes of kernel memory per slot).
    pub max_connections: usize,
    /// Cipher for encrypted connections: the Noise handshake's and the
    /// transport's. `None` (the default) is AES-256-GCM
    /// (`Noise_XNpsk3_25519_AESGCM_SHA256`) for either key length (32 or 64
    /// hex digits, expanded to a 256-bit pre-shared key).
    /// `Some(CipherSuite::ChaCha20Poly1305)` suits machines without AES
    /// instructions. `CipherSuite::Aes128Gcm`, protocol version 1's name, is
    /// deprecated and selects AES-256-GCM. Both sides must choose the same.
    pub cipher: Option<CipherSuite>,
    /// Drive the sockets on the application's own thread, inside
    /// `poll_events`/`wait_events` (and `wait_for_connect`), instead of on a
    /// background IO thread (default false). A received message then reaches
    /// the application without a thread hop, so a round trip costs about
    /// what raw blocking TCP costs, which matters most on a busy or single
    /// CPU. The price: between those calls nothing moves (queued sends wait,
    /// heartbeats pause), so call one of them every frame or tick. Drive a
    /// network from one thread at a time; others calling `wait_events`
    /// meanwhile just wait for the events it produces. At shutdown (or when
    /// the last handle is dropped) a short-lived thread flushes what is left.
    pub inline_io: bool,
    /// How many background IO threads (reactors) this network runs
    /// (default 1; at most 64; 1 with `inline_io`). Each server and each
    /// client is given to one of them in turn when it is created. A
    /// server's listener and handshakes stay on its thread (its limits, the
    /// half-open cap and the handshake budget are kept there, and a peer
    /// that never authenticates reaches no other thread); each connection
    /// it accepts is handed to the threads in turn once its handshake ends,
    /// after its `Connect` event, so its events keep their order. A client
    /// keeps its thread. The threads share the ring (each fills at most its
    /// share, `1 / io_threads`, of the ring's free room before asking again)
    /// and the memory budget. More threads help on several cores when many
    /// connections are busy at once; on one or two cores, one is usually
    /// best (see docs/BENCHMARKS.md, `tablenet-bench threads`).
    pub io_threads: usize,
    /// Deliver received messages as their bytes (default false). When on,
    /// messages that would be decoded on taking them (those up to 4 KiB, and
    /// larger ones too dense to decode on the IO thread) arrive as
    /// [`EventKind::Message`](crate::EventKind::Message), decoded only when
    /// asked: [`Message::decode`](crate::Message::decode) reads a Rust type
    /// straight from the bytes, with no intermediate
    /// [`Value`](crate::Value). Other large messages still arrive decoded,
    /// as [`EventKind::Receive`](crate::EventKind::Receive);
    /// [`Event::decode`](crate::Event::decode) reads both.
    pub raw_messages: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            event_capacity: 2000,
            event_bytes: 64 * 1024 * 1024,
            connection_events: 250,
            memory_budget: 256 * 1024 * 1024,
            frame_timeout: Some(Duration::from_secs(15)),
            overflow: OverflowPolicy::Lossless,
            limits: Limits::default(),
            send_queue_bytes: 8 * 1024 * 1024,
            send_queue_low_water: None,
            handshake_timeout: Duration::from_secs(3),
            handshake_budget: Duration::from_millis(250),
            linger: Duration::from_secs(5),
            nodelay: true,
            keepalive: Some(Duration::from_secs(60)),
            listen_backlog: 1024,
            max_connections: 10_000,
            max_handshaking: 1024,
            max_connections_per_address: None,
            accept_filter: None,
            failure_reports_per_second: 20,
            heartbeat: None,
            idle_timeout: None,
            cipher: None,
            inline_io: false,
            io_threads: 1,
            raw_messages: false,
        }
    }
}

fn invalid(argument: &'static str, expected: &'static str, got: impl ToString) -> Error {
    Error::InvalidArgument {
        argument,
        expected,
        got: got.to_string(),
    }
}

impl Config {
    /// The send queue's low-water mark in bytes (`send_queue_low_water`, or a
    /// quarter of `send_queue_bytes`).
    pub(crate) fn low_water(&self) -> usize {
        self.send_queue_low_water
            .unwrap_or(self.send_queue_bytes / 4)
    }

    /// Checks every field; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), Error> {
        self.limits.validate()?;
        if !(1..=10_000_000).contains(&self.event_capacity) {
            return Err(invalid(
                "event_capacity",
                "1..=10000000 events",
                self.event_capacity,
            ));
        }
        if self.event_bytes < self.limits.max_frame_size {
            return Err(invalid(
                "event_bytes",
                "at least limits.max_frame_size",
                self.event_bytes,
            ));
        }
        if self.connection_events == 0 {
            return Err(invalid("connection_events", "at least 1 event", 0));
        }
        let one_frame = self.limits.max_frame_size.saturating_add(64 * 1024);
        if self.memory_budget < one_frame.saturating_mul(2) {
            return Err(invalid(
                "memory_budget",
                "at least 2 * limits.max_frame_size + 128 KiB",
                self.memory_budget,
            ));
        }
        if self.send_queue_bytes == 0 {
            return Err(invalid("send_queue_bytes", "at least 1 byte", 0));
        }
        if let Some(low) = self.send_queue_low_water
            && low > self.send_queue_bytes
        {
            return Err(invalid(
                "send_queue_low_water",
                "at most send_queue_bytes, or None",
                low,
            ));
        }
        let sane = Duration::from_millis(1)..=Duration::from_secs(3600);
        if !sane.contains(&self.handshake_timeout) {
            return Err(invalid(
                "handshake_timeout",
                "1 ms ..= 1 hour",
                format!("{:?}", self.handshake_timeout),
            ));
        }
        if self.linger > Duration::from_secs(3600) {
            return Err(invalid(
                "linger",
                "at most 1 hour",
                format!("{:?}", self.linger),
            ));
        }
        if let Some(k) = self.keepalive
            && !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&k)
        {
            return Err(invalid(
                "keepalive",
                "1 s ..= 1 day, or None",
                format!("{k:?}"),
            ));
        }
        let timeout_range = Duration::from_millis(30)..=Duration::from_secs(86_400);
        for (name, value) in [
            ("heartbeat", self.heartbeat),
            ("idle_timeout", self.idle_timeout),
            ("frame_timeout", self.frame_timeout),
        ] {
            if let Some(v) = value
                && !timeout_range.contains(&v)
            {
                return Err(invalid(name, "30 ms ..= 1 day, or None", format!("{v:?}")));
            }
        }
        if !(Duration::from_millis(1)..=Duration::from_secs(1)).contains(&self.handshake_budget) {
            return Err(invalid(
                "handshake_budget",
                "1 ms ..= 1 s",
                format!("{:?}", self.handshake_budget),
            ));
        }
        if self.max_connections_per_address == Some(0) {
            return Err(invalid(
                "max_connections_per_address",
                "at least 1, or None",
                0,
            ));
        }
        if self.max_handshaking == 0 {
            return Err(invalid("max_handshaking", "at least 1", 0));
        }
        if self.max_connections == 0 {
            return Err(invalid("max_connections", "at least 1", 0));
        }
        if !(1..=64).contains(&self.io_threads) {
            return Err(invalid("io_threads", "1..=64", self.io_threads));
        }
        if self.inline_io && self.io_threads > 1 {
            return Err(invalid(
                "io_threads",
                "1 with inline_io (one reactor, driven by the application)",
                self.io_threads,
            ));
        }
        if !(1..=65_535).contains(&self.listen_backlog) {
            return Err(invalid("listen_backlog", "1..=65535", self.listen_backlog));
        }
        Ok(())
    }
}

/// A server's accept-time decision by peer address
/// ([`Config::accept_filter`]): `true` takes the connection. Build one from
/// any `Fn(SocketAddr) -> bool` with [`AcceptFilter::new`].
///
/// ```
/// use std::collections::HashSet;
/// use std::net::IpAddr;
/// let banned: HashSet<IpAddr> = ["127.0.0.9".parse().unwrap()].into();
/// let mut config = tablenet::Config::default();
/// config.accept_filter = Some(tablenet::AcceptFilter::new(move |peer| {
///     !banned.contains(&peer.ip())
/// }));
/// ```
#[derive(Clone)]
pub struct AcceptFilter(Arc<dyn Fn(SocketAddr) -> bool + Send + Sync>);

impl AcceptFilter {
    /// A filter that takes a connection when `accept` returns true.
    pub fn new(accept: impl Fn(SocketAddr) -> bool + Send + Sync + 'static) -> AcceptFilter {
        AcceptFilter(Arc::new(accept))
    }

    /// Whether a connection from `peer` is taken.
    pub fn accepts(&self, peer: SocketAddr) -> bool {
        (self.0)(peer)
    }
}

impl fmt::Debug for AcceptFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AcceptFilter(..)")
    }
}

/// Two filters are equal when they are the same closure (clones of one).
impl PartialEq for AcceptFilter {
    fn eq(&self, other: &AcceptFilter) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for AcceptFilter {}
