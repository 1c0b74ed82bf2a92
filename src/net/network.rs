//! [`Network`]: the context that owns the IO thread and the event ring.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use socket2::{Domain, Protocol, Socket, Type};

use super::args;
use super::client::Client;
use super::config::Config;
use super::event::Event;
use super::ids::{ServerId, next_socket_id};
use super::link::{Link, Role};
use super::server::{Server, ServerShared};
use super::shared::{Command, Keying, NetShared};
use crate::error::Error;

/// The network context (the seed's `network` module): background IO, the
/// event ring, and the factory for servers and clients.
///
/// Cloning shares the same network. When the last clone is dropped the
/// network shuts down in the background (flushing for up to
/// [`Config::linger`]); [`Network::shutdown`] does so and waits.
#[derive(Clone)]
pub struct Network {
    shared: Arc<NetShared>,
    _owner: Arc<Owner>,
}

/// Shuts the network down when the last `Network` clone goes.
struct Owner(Arc<NetShared>);

impl Drop for Owner {
    fn drop(&mut self) {
        // Never blocks: the IO thread finishes on its own.
        let _ = self.0.begin_shutdown(Instant::now() + self.0.config.linger);
    }
}

impl Default for Network {
    fn default() -> Network {
        Network::new()
    }
}

impl Network {
    /// A network with the default [`Config`]: a 2000-event ring that
    /// overwrites its oldest events when full, as the seed. The IO thread
    /// starts with the first server or client.
    pub fn new() -> Network {
        Network::build(Config::default())
    }

    /// A network with `config`, after validating it.
    pub fn with_config(config: Config) -> Result<Network, Error> {
        config.validate()?;
        Ok(Network::build(config))
    }

    fn build(config: Config) -> Network {
        let shared = NetShared::new(config);
        Network {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Takes every queued event, oldest first, without blocking (the seed's
    /// `network.PollEvents()`).
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

    /// Starts a server listening on `address:port` (the seed's
    /// `network.Server`). `address` is an IPv4 or IPv6 literal; `port` is
    /// 1024..=65535, or 0 to let the OS choose; `key` is `None` for plain
    /// traffic or a hex key (32 or 64 digits) to require encryption.
    pub fn server(&self, address: &str, port: u16, key: Option<&str>) -> Result<Server, Error> {
        let ip = args::address(address)?;
        let port = args::server_port(port)?;
        let keying = Keying::from_argument(key, &self.shared.config)?;
        self.shared.ensure_running()?;
        let listener = listen(SocketAddr::new(ip, port), &self.shared.config)?;
        let local = listener.local_addr().map_err(|e| Error::io("bind", &e))?;
        let shared = Arc::new(ServerShared {
            id: ServerId(next_socket_id()),
            local,
            conns: Mutex::new(HashMap::new()),
            keying,
            last_multi_send: Mutex::new(None),
        });
        let listener = mio::net::TcpListener::from_std(listener);
        self.shared
            .command(Command::Listen(shared.clone(), listener));
        Ok(Server {
            shared,
            net: self.shared.clone(),
        })
    }

    /// Starts connecting a client to `address:port` (the seed's
    /// `network.Client`); returns at once. `port` is 1024..=65535.
    pub fn client(&self, address: &str, port: u16, key: Option<&str>) -> Result<Client, Error> {
        let ip = args::address(address)?;
        let port = args::client_port(port)?;
        let keying = Keying::from_argument(key, &self.shared.config)?;
        self.shared.ensure_running()?;
        let id = next_socket_id();
        let link = Arc::new(Link::new(
            id,
            Role::Client(super::ids::ClientId(id)),
            SocketAddr::new(ip, port),
            keying,
            self.shared.clone(),
        ));
        self.shared.command(Command::Connect(link.clone()));
        Ok(Client { link })
    }

    /// Closes every server, client and connection after flushing what they
    /// had queued (for at most `timeout`), then stops the IO thread and waits
    /// for it. Further servers and clients fail with [`Error::Shutdown`].
    pub fn shutdown(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        if let Some(handle) = self.shared.begin_shutdown(deadline) {
            // The IO thread stops by the deadline; a panic there is not ours to re-raise.
            let _ = handle.join();
        }
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
        socket.bind(&addr.into())?;
        socket.listen(i32::try_from(config.listen_backlog).unwrap_or(i32::MAX))
    };
    setup().map_err(|e| Error::io("listen", &e))?;
    Ok(socket.into())
}
