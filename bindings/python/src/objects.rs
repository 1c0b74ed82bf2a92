//! `Server`, `Client` and `Connection`: the Python objects around the
//! library's handles. Each keeps its network alive, and each is the one
//! Python object of its socket (events hand out the same object).

use std::sync::RwLock;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tablenet::ConnectionId;

use crate::convert;
use crate::errors;
use crate::network::{self, Network};

/// Longest single wait for a connection with the GIL released (Ctrl-C
/// raises between slices).
const CONNECT_SLICE: Duration = Duration::from_millis(100);

/// A port argument: 0..=65535, with the range in the error.
fn port_arg(port: i64, expected: &'static str, min: i64) -> PyResult<u16> {
    u16::try_from(port)
        .ok()
        .filter(|p| i64::from(*p) >= min)
        .ok_or_else(|| {
            PyValueError::new_err(format!("invalid argument `port`: {expected}, got {port}"))
        })
}

/// A listening server (the Lua network module's `network.Server`).
/// `close()`, leaving a `with` block, or Python dropping it stops listening
/// and closes its connections after flushing what they had queued.
#[pyclass(frozen, weakref, module = "tablenet")]
pub(crate) struct Server {
    /// `None` once closed.
    inner: RwLock<Option<tablenet::Server>>,
    network: Py<Network>,
    address: String,
    port: u16,
    socket: u64,
}

impl Server {
    pub(crate) fn create(
        py: Python<'_>,
        address: &str,
        port: i64,
        key: Option<&str>,
        network: Py<Network>,
    ) -> PyResult<Py<Server>> {
        let port = port_arg(port, "0..=65535 (0 lets the OS choose)", 0)?;
        let server = network
            .get()
            .net()?
            .server(address, port, key)
            .map_err(errors::error)?;
        let this = Server {
            address: server.address(),
            port: server.port(),
            socket: server.socket_id(),
            inner: RwLock::new(Some(server)),
            network,
        };
        let socket = this.socket;
        let this = Bound::new(py, this)?;
        network::register(py, socket, this.as_any())?;
        Ok(this.unbind())
    }

    /// Runs `f` with the open server, or raises `ClosedError`.
    fn with<R>(&self, f: impl FnOnce(&tablenet::Server) -> R) -> PyResult<R> {
        let guard = self.inner.read().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(server) => Ok(f(server)),
            None => Err(errors::ClosedError::new_err("the server is closed")),
        }
    }
}

/// The connection arguments of `send` and `disconnect`.
fn connection_ids(
    args: &Bound<'_, PyTuple>,
    method: &str,
    first: usize,
) -> PyResult<Vec<ConnectionId>> {
    args.iter()
        .enumerate()
        .map(|(i, arg)| match arg.cast::<Connection>() {
            Ok(conn) => Ok(conn.get().inner.id()),
            Err(_) => Err(PyTypeError::new_err(format!(
                "{method}() argument {} must be a Connection, got {}",
                first + i,
                arg.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))),
        })
        .collect()
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[pymethods]
impl Server {
    /// Listens on `address` (a host name or an IP literal) and `port` (0 lets
    /// the OS choose); `key` is None (plain) or 32 or 64 hex digits (every
    /// client must then have the same key). Uses the default network unless
    /// `network` is given.
    #[new]
    #[pyo3(signature = (address, port = 0, key = None, *, network = None))]
    fn new(
        py: Python<'_>,
        address: &str,
        port: i64,
        key: Option<&str>,
        network: Option<Py<Network>>,
    ) -> PyResult<Py<Server>> {
        let network = network::network_or_default(py, network)?;
        Server::create(py, address, port, key, network)
    }

    /// Sends `table` to each listed connection; returns how many accepted it
    /// (queued, not yet delivered). A closed connection, or one whose queue
    /// is full, is not counted.
    #[pyo3(signature = (table, *connections))]
    fn send(&self, table: &Bound<'_, PyAny>, connections: &Bound<'_, PyTuple>) -> PyResult<i64> {
        let value = convert::message(table, self.network.get().limits)?;
        let ids = connection_ids(connections, "send", 2)?;
        self.with(|s| count(s.send(&value, &ids)))
    }

    /// Sends `table` to every open connection; returns how many accepted it.
    fn broadcast(&self, table: &Bound<'_, PyAny>) -> PyResult<i64> {
        let value = convert::message(table, self.network.get().limits)?;
        self.with(|s| count(s.broadcast(&value)))
    }

    /// Closes each listed connection after flushing what it had queued;
    /// returns how many were open.
    #[pyo3(signature = (*connections))]
    fn disconnect(&self, connections: &Bound<'_, PyTuple>) -> PyResult<i64> {
        let ids = connection_ids(connections, "disconnect", 1)?;
        self.with(|s| count(s.disconnect(&ids)))
    }

    /// Number of open connections.
    fn connection_count(&self) -> PyResult<usize> {
        self.with(|s| s.connection_count())
    }

    /// Stops listening and closes every connection after flushing what it
    /// had queued. Later calls raise `ClosedError`; closing twice is fine.
    fn close(&self) {
        let server = self.inner.write().unwrap_or_else(|e| e.into_inner()).take();
        drop(server);
    }

    /// True until `close()`, or until its network shuts down.
    #[getter]
    fn is_open(&self) -> bool {
        self.with(|s| s.is_open()).unwrap_or(false)
    }

    /// The IP address it listens on.
    #[getter]
    fn address(&self) -> String {
        self.address.clone()
    }

    /// The port it listens on (the real one when it was created with port 0).
    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    /// The process-unique socket id (the Lua network module's `GetSocket()`).
    #[getter]
    fn socket(&self) -> u64 {
        self.socket
    }

    /// The network it belongs to.
    #[getter]
    fn network(&self, py: Python<'_>) -> Py<Network> {
        self.network.clone_ref(py)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<tablenet.Server {} port {} socket {}{}>",
            self.address,
            self.port,
            self.socket,
            if self.is_open() { "" } else { " (closed)" }
        )
    }
}

/// A client connection (the Lua network module's `network.Client`). Created
/// at once; an `EVENT_CONNECTED` event, or `wait_for_connect()`, says how
/// connecting went. `disconnect()`, leaving a `with` block, or Python
/// dropping it closes it after flushing what was queued.
#[pyclass(frozen, weakref, module = "tablenet")]
pub(crate) struct Client {
    inner: tablenet::Client,
    network: Py<Network>,
}

impl Client {
    pub(crate) fn create(
        py: Python<'_>,
        address: &str,
        port: i64,
        key: Option<&str>,
        network: Py<Network>,
    ) -> PyResult<Py<Client>> {
        let port = port_arg(port, "1..=65535", 1)?;
        let client = network
            .get()
            .net()?
            .client(address, port, key)
            .map_err(errors::error)?;
        let socket = client.socket_id();
        let this = Bound::new(
            py,
            Client {
                inner: client,
                network,
            },
        )?;
        network::register(py, socket, this.as_any())?;
        Ok(this.unbind())
    }
}

#[pymethods]
impl Client {
    /// Starts connecting to `address` (a host name or an IP literal) and
    /// `port` (1..=65535); returns at once. `key` as for `Server`. Uses the
    /// default network unless `network` is given.
    #[new]
    #[pyo3(signature = (address, port, key = None, *, network = None))]
    fn new(
        py: Python<'_>,
        address: &str,
        port: i64,
        key: Option<&str>,
        network: Option<Py<Network>>,
    ) -> PyResult<Py<Client>> {
        let network = network::network_or_default(py, network)?;
        Client::create(py, address, port, key, network)
    }

    /// Queues `table` for the server (before the connection is up, it waits
    /// in the queue). Raises `ClosedError` once closed, `QueueFullError`
    /// when the send queue is full.
    fn send(&self, table: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = convert::message(table, self.network.get().limits)?;
        self.inner.send(&value).map_err(errors::send_error)
    }

    /// Waits (with the GIL released) until connected, and returns how many
    /// seconds connecting took. Raises `ConnectTimeout` after `timeout`
    /// seconds, `ConnectError` when connecting failed (with the reason:
    /// nobody listening, the keys do not match...), `ClosedError` when the
    /// connection has closed since.
    #[pyo3(signature = (timeout = 2.0))]
    fn wait_for_connect(&self, py: Python<'_>, timeout: f64) -> PyResult<f64> {
        let timeout = network::seconds("timeout", timeout)?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let slice = left.min(CONNECT_SLICE);
            match py.detach(|| self.inner.wait_for_connect(slice)) {
                // Connected, and still open.
                Ok(took) if self.inner.is_connected() => return Ok(took.as_secs_f64()),
                Ok(_) => return Err(errors::ClosedError::new_err("connection closed")),
                Err(tablenet::Error::Timeout { .. }) if slice < left => py.check_signals()?,
                Err(tablenet::Error::Timeout { operation, .. }) => {
                    return Err(errors::connect_error(tablenet::Error::Timeout {
                        operation,
                        after: timeout,
                    }));
                }
                Err(e) => return Err(errors::connect_error(e)),
            }
        }
    }

    /// Closes the connection after flushing what was queued.
    fn disconnect(&self) {
        self.inner.disconnect();
    }

    /// True while connected.
    #[getter]
    fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// The server's IP address: the one connected to, or before that the
    /// first one its name resolved to.
    #[getter]
    fn address(&self) -> String {
        self.inner.address()
    }

    /// The server's port once connected, None before.
    #[getter]
    fn port(&self) -> Option<u16> {
        self.inner.port()
    }

    /// The process-unique socket id.
    #[getter]
    fn socket(&self) -> u64 {
        self.inner.socket_id()
    }

    /// The network it belongs to.
    #[getter]
    fn network(&self, py: Python<'_>) -> Py<Network> {
        self.network.clone_ref(py)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.disconnect();
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<tablenet.Client to {} socket {}{}>",
            self.inner.peer_addr(),
            self.inner.socket_id(),
            if self.inner.is_connected() {
                ""
            } else {
                " (not connected)"
            }
        )
    }
}

/// A connection a server accepted (the Lua network module's
/// `ClientConnection`), handed out by `EVENT_CONNECT`. It owns the
/// connection: when Python no longer references it, the connection closes
/// (after flushing what was queued), as in the Lua network module. Keep it,
/// for example in a dict or set.
#[pyclass(frozen, weakref, module = "tablenet")]
pub(crate) struct Connection {
    inner: tablenet::Connection,
    network: Py<Network>,
    server_socket: u64,
}

impl Connection {
    pub(crate) fn new(
        inner: tablenet::Connection,
        network: Py<Network>,
        server_socket: u64,
    ) -> Connection {
        Connection {
            inner,
            network,
            server_socket,
        }
    }
}

#[pymethods]
impl Connection {
    /// Queues `table` for the peer. Raises `ClosedError` once closed,
    /// `QueueFullError` when the send queue is full.
    fn send(&self, table: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = convert::message(table, self.network.get().limits)?;
        self.inner.send(&value).map_err(errors::send_error)
    }

    /// Closes the connection after flushing what was queued.
    fn disconnect(&self) {
        self.inner.disconnect();
    }

    /// True until the connection closes or starts closing.
    #[getter]
    fn is_open(&self) -> bool {
        self.inner.is_open()
    }

    /// The peer's IP address.
    #[getter]
    fn address(&self) -> String {
        self.inner.address()
    }

    /// The peer's port.
    #[getter]
    fn port(&self) -> u16 {
        self.inner.port()
    }

    /// The process-unique socket id.
    #[getter]
    fn socket(&self) -> u64 {
        self.inner.socket_id()
    }

    /// The `Server` that accepted it, while Python references that server.
    #[getter]
    fn server(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        network::lookup(py, self.server_socket)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.disconnect();
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<tablenet.Connection from {} port {} socket {}{}>",
            self.inner.address(),
            self.inner.port(),
            self.inner.socket_id(),
            if self.inner.is_open() {
                ""
            } else {
                " (closed)"
            }
        )
    }
}
