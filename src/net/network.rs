//! [`Network`]: the context that owns the IO thread and the event ring.

use std::collections::HashMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use socket2::{Domain, Protocol, Socket, Type};

use super::addr;
use super::client::Client;
use super::server::Server;
use crate::error::Error;
use crate::shared::{
    Command, Config, Event, Keying, Link, NetShared, Role, ServerId, ServerShared, ShutdownReport,
    next_socket_id,
};

/// The network context (the Lua network module's `network` table): background IO, the
/// event ring, and the factory for servers and clients.
///
/// Cloning shares the same network. When the last clone is dropped (at the
/// end of `main`, say), the network shuts down like [`Network::shutdown`]
/// with [`Config::linger`] as the timeout, and **waits** for it: every
/// connection writes what it had queued, then its Close, and the drop
/// returns once all have closed or the linger has run out. This is the one
/// drop that may block (for at most the linger, 5 s by default), so that
/// exiting loses nothing. Handles of servers, clients and connections do
/// not keep the network running.
#[derive(Clone)]
pub struct Network {
    shared: Arc<NetShared>,
    _owner: Arc<Owner>,
}

/// Shuts the network down when the last `Network` clone goes.
struct Owner(Arc<NetShared>);

impl Drop for Owner {
    fn drop(&mut self) {
        // Bounded by the linger: delivering what was queued is worth that.
        let _ = self
            .0
            .shutdown_and_wait(Instant::now() + self.0.config.linger);
    }
}

impl Default for Network {
    fn default() -> Network {
        Network::new()
    }
}

impl Network {
    /// A network with the default [`Config`]: a lossless 2000-event ring
    /// (while it is full, the IO thread stops reading, so TCP slows the
    /// senders down; nothing is dropped). Choose
    /// [`OverflowPolicy::Overwrite`](crate::OverflowPolicy::Overwrite) for
    /// the Lua network module's overwriting ring. The IO thread starts with
    /// the first server or client.
    pub fn new() -> Network {
        Network::build(Config::default())
    }

    /// A network with `config`, after validating it.
    pub fn with_config(config: Config) -> Result<Network, Error> {
        config.validate()?;
        Ok(Network::build(config))
    }

    fn build(config: Config) -> Network {
        let shared = NetShared::new(config, crate::io::start);
        Network {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Takes every queued event, oldest first, without blocking (the Lua network module's
    /// `network.PollEvents()`). Received messages up to 4 KiB, and larger
    /// ones that would cost more than 1 MiB decoded, are decoded here, on
    /// the calling thread (the IO thread decodes the rest), each within what
    /// the memory budget allows (see [`Config::memory_budget`]); one that
    /// does not decode is an
    /// [`EventKind::Error`](crate::EventKind::Error) in its place, and its
    /// connection is closed with that error (its later messages dropped).
    pub fn poll_events(&self) -> Vec<Event> {
        if self.shared.config.inline_io {
            self.shared.drive(Duration::ZERO);
        }
        self.shared.ring.take()
    }

    /// Like [`poll_events`](Self::poll_events), but waits up to `timeout` for
    /// the first event. Returns an empty vector on timeout.
    pub fn wait_events(&self, timeout: Duration) -> Vec<Event> {
        if self.shared.config.inline_io {
            return self.shared.wait_inline(timeout);
        }
        self.shared.ring.wait(timeout)
    }

    /// [`poll_events`](Self::poll_events) into a vector the caller keeps:
    /// appends every queued event to `events` (oldest first, after what it
    /// already holds) and returns how many. A loop that clears and reuses
    /// one vector allocates nothing per batch for the batch itself, which
    /// spares the allocator growing and trimming its heap on every batch.
    ///
    /// ```
    /// # let net = tablenet::Network::new();
    /// let mut events = Vec::new();
    /// loop {
    ///     events.clear();
    ///     net.poll_events_into(&mut events);
    ///     for event in events.drain(..) {
    ///         // handle it
    ///         # drop(event);
    ///     }
    ///     # break;
    /// }
    /// ```
    pub fn poll_events_into(&self, events: &mut Vec<Event>) -> usize {
        if self.shared.config.inline_io {
            self.shared.drive(Duration::ZERO);
        }
        self.shared.ring.take_into(events)
    }

    /// [`wait_events`](Self::wait_events) into a vector the caller keeps:
    /// waits up to `timeout` for the first event, appends every queued
    /// event to `events` and returns how many (0 on timeout). See
    /// [`poll_events_into`](Self::poll_events_into).
    pub fn wait_events_into(&self, events: &mut Vec<Event>, timeout: Duration) -> usize {
        if self.shared.config.inline_io {
            return self.shared.wait_inline_into(events, timeout);
        }
        self.shared.ring.wait_into(events, timeout)
    }

    /// How many events arrived since events were last taken, without taking
    /// them: those waiting plus those a full ring overwrote (which the next
    /// `Dropped` event counts). For watching a backlog, or waiting until a
    /// burst has been received. Does not drive the sockets under
    /// [`Config::inline_io`].
    pub fn pending_events(&self) -> usize {
        self.shared.ring.pending()
    }

    /// Bytes this network holds for its peers now, against
    /// [`Config::memory_budget`]: receive buffers (partial frames) and
    /// received messages not yet taken. For monitoring, and for checking
    /// that the budget holds.
    pub fn memory_in_use(&self) -> usize {
        self.shared.budget.used()
    }

    /// Calls `hook` (on the IO thread; keep it short) whenever events become
    /// available after the ring was empty, so an existing event loop can be
    /// woken instead of polling. Replaces any previous hook.
    pub fn set_wake_hook(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.shared.ring.set_hook(Some(Arc::new(hook)));
    }

    /// Removes the wake hook.
    pub fn clear_wake_hook(&self) {
        self.shared.ring.set_hook(None);
    }

    /// The events as an async [`futures_core::Stream`] (cargo feature
    /// `futures`), woken by the IO thread and tied to no runtime: see
    /// [`EventStream`](super::EventStream). The stream holds a clone of this
    /// network.
    ///
    /// ```no_run
    /// # async fn run() {
    /// let net = tablenet::Network::new();
    /// let mut events = net.events();
    /// while let Some(event) = events.next_event().await {
    ///     println!("{:?}", event.kind);
    /// }
    /// # }
    /// ```
    #[cfg(feature = "futures")]
    pub fn events(&self) -> super::EventStream {
        super::EventStream::new(self.clone())
    }

    /// What this network shares with its IO thread.
    #[cfg(feature = "futures")]
    pub(crate) fn shared(&self) -> &Arc<NetShared> {
        &self.shared
    }

    /// Starts a server listening on `address:port` (the Lua network module's
    /// `network.Server`). `address` is a host name or an IP literal;
    /// `port` is any port, or 0 to let the OS choose; `key` is `None` for
    /// plain traffic or a hex key (32 or 64 digits) to require encryption.
    /// The same as [`bind`](Self::bind) with `(address, port)`.
    pub fn server(&self, address: &str, port: u16, key: Option<&str>) -> Result<Server, Error> {
        self.bind((address.trim(), port), key)
    }

    /// Starts a server listening on `addr`: anything [`ToSocketAddrs`]
    /// takes, such as `"localhost:4096"`, `("::1", 4096)` or a
    /// [`SocketAddr`] (port 0 lets the OS choose). A host name that
    /// resolves to several addresses listens on the first one that can be
    /// bound. `key` as in [`server`](Self::server).
    pub fn bind(&self, addr: impl ToSocketAddrs, key: Option<&str>) -> Result<Server, Error> {
        let addrs = addr::resolve(addr)?;
        let keying = Keying::from_argument(key, &self.shared.config)?;
        let mut failure = None;
        let listener = addrs.iter().find_map(|addr| {
            listen(*addr, &self.shared.config)
                .map_err(|e| failure = Some(e))
                .ok()
        });
        let Some(listener) = listener else {
            return Err(failure.unwrap_or(Error::Closed));
        };
        // Before the IO thread starts: while the process has one thread,
        // growing its descriptor table costs no RCU grace period.
        reserve_descriptors(&listener, self.shared.config.max_connections);
        self.shared.ensure_running()?;
        let local = listener.local_addr().map_err(|e| Error::io("bind", &e))?;
        let shared = Arc::new(ServerShared {
            id: ServerId(next_socket_id()),
            local,
            conns: Mutex::new(HashMap::new()),
            keying,
            shard: self.shared.pick_reactor(),
            admission: Mutex::new(Default::default()),
        });
        let listener = mio::net::TcpListener::from_std(listener);
        self.shared
            .command(shared.shard, Command::Listen(shared.clone(), listener));
        Ok(Server {
            shared,
            net: self.shared.clone(),
        })
    }

    /// Starts connecting a client to `address:port` (the Lua network module's
    /// `network.Client`); returns at once. `address` is a host name or an
    /// IP literal, `port` 1..=65535. The same as [`connect`](Self::connect)
    /// with `(address, port)`.
    pub fn client(&self, address: &str, port: u16, key: Option<&str>) -> Result<Client, Error> {
        self.connect((address.trim(), addr::client_port(port)?), key)
    }

    /// Starts connecting a client to `addr`: anything [`ToSocketAddrs`]
    /// takes, such as `"localhost:4096"`, `("::1", 4096)` or a
    /// [`SocketAddr`]; returns at once, and a
    /// [`Connected`](crate::EventKind::Connected) event says how it went.
    /// Every address a host name resolves to is tried in order until one
    /// accepts the TCP connection. `key` as in [`server`](Self::server).
    pub fn connect(&self, addr: impl ToSocketAddrs, key: Option<&str>) -> Result<Client, Error> {
        let mut addrs = addr::resolve(addr)?.into_iter();
        let first = addrs.next().ok_or(Error::Closed)?;
        let keying = Keying::from_argument(key, &self.shared.config)?;
        self.shared.ensure_running()?;
        let id = next_socket_id();
        let mut link = Link::new(
            id,
            Role::Client(crate::shared::ClientId(id)),
            first,
            keying,
            self.shared.clone(),
        )
        .on_shard(self.shared.pick_reactor());
        link.fallbacks = addrs.collect();
        let link = Arc::new(link);
        self.shared
            .command(link.shard(), Command::Connect(link.clone()));
        Ok(Client { link })
    }

    /// Closes every server, client and connection after writing what they
    /// had queued and their Close (for at most `timeout`), then stops the IO
    /// thread and waits for it. Further servers and clients fail with
    /// [`Error::Shutdown`].
    ///
    /// The report says whether everything was delivered to the kernel and
    /// closed cleanly and, for each connection that was not, how many frames
    /// and bytes it abandoned and why. A second call reports nothing.
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        self.shared.shutdown_and_wait(Instant::now() + timeout)
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// A non-blocking listener with SO_REUSEADDR (std sets it, socket2 does not)
/// and the configured backlog.
fn listen(addr: SocketAddr, config: &Config) -> Result<std::net::TcpListener, Error> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| Error::io("create socket", &e))?;
    let setup = || -> std::io::Result<()> {
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_nonblocking(true)?;
        configure_listener(&socket, config);
        socket.bind(&addr.into())?;
        socket.listen(i32::try_from(config.listen_backlog).unwrap_or(i32::MAX))
    };
    setup().map_err(|e| Error::io("listen", &e))?;
    Ok(socket.into())
}

/// Grows the process's descriptor table, once, to hold `count` more
/// descriptors (bounded by RLIMIT_NOFILE), using `fd` to make the request.
///
/// Linux doubles the table as descriptors are opened (64, 128, .. 16,384),
/// and in a process with more than one thread each doubling waits for an RCU
/// grace period (`synchronize_rcu` in `expand_fdtable`, milliseconds each):
/// the IO thread would stall in `accept` eight times on the way to 10,000
/// connections. One early growth costs at most one grace period (none while
/// single-threaded) and 8 bytes of kernel memory per slot.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn reserve_descriptors(fd: &impl std::os::fd::AsFd, count: usize) {
    use rustix::process::{Resource, getrlimit};
    let limit = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let want = (count as u64)
        .saturating_add(64)
        .min(limit.saturating_sub(1))
        .min(i32::MAX as u64);
    let Ok(min) = i32::try_from(want) else {
        return;
    };
    // The duplicate lands at `min` or above, so the table grows to cover it;
    // closing it (dropping) keeps the table. A failure only costs the stalls.
    drop(rustix::io::fcntl_dupfd_cloexec(fd, min));
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn reserve_descriptors<T>(_fd: &T, _count: usize) {}

/// Sets the per-connection options on the listener, where Linux accepted
/// sockets inherit them (TCP_NODELAY, SO_KEEPALIVE, TCP_KEEPIDLE): three
/// system calls per accepted connection saved. Failures only cost performance.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn configure_listener(socket: &Socket, config: &Config) {
    if config.nodelay {
        let _ = socket.set_tcp_nodelay(true);
    }
    if let Some(idle) = config.keepalive {
        let _ = socket.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle));
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn configure_listener(_socket: &Socket, _config: &Config) {}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_inherit_the_listener_options() {
        let config = Config::default();
        let listener = listen("127.0.0.1:0".parse().unwrap(), &config).unwrap();
        listener.set_nonblocking(false).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let socket = socket2::SockRef::from(&accepted);
        assert!(socket.tcp_nodelay().unwrap());
        assert!(socket.keepalive().unwrap());
        assert_eq!(Some(socket.tcp_keepalive_time().unwrap()), config.keepalive);
    }

    #[test]
    fn reserving_descriptors_grows_the_table_once() {
        let fd_size = || {
            std::fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("FDSize:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap()
        };
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let listener = listen("127.0.0.1:0".parse().unwrap(), &Config::default()).unwrap();
        reserve_descriptors(&listener, 3000);
        assert!(fd_size() >= 3064.min(limit));
    }
}
