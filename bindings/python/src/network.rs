//! `tablenet.Network`: a network context with its own options, the default
//! network behind the module-level functions, the events they return, and
//! the flush at interpreter exit.

use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;
use tablenet::proto::secure::CipherSuite;
use tablenet::{Config, EventKind, OverflowPolicy, Source};

use crate::convert::{self, Limits};
use crate::errors;
use crate::objects::{Client, Connection, Server};

/// `EVENT_CONNECT`: a server accepted a connection; `.object` is the new
/// `Connection` (keep a reference, or it closes when Python collects it).
pub(crate) const EVENT_CONNECT: i64 = 1;
/// `EVENT_CONNECTED`: a client's connection attempt ended; `.result` says how.
pub(crate) const EVENT_CONNECTED: i64 = 2;
/// `EVENT_RECEIVE`: a value arrived; `.packet` holds it.
pub(crate) const EVENT_RECEIVE: i64 = 3;
/// `EVENT_SERVER_CLOSE`: a client's connection to its server closed.
pub(crate) const EVENT_SERVER_CLOSE: i64 = 4;
/// `EVENT_CLIENT_CLOSE`: a connection accepted by a server closed.
pub(crate) const EVENT_CLIENT_CLOSE: i64 = 5;
/// `EVENT_ERROR`: something went wrong; `.errors` says what.
pub(crate) const EVENT_ERROR: i64 = 6;
/// `EVENT_DRAINED`: a send queue that was full has emptied.
pub(crate) const EVENT_DRAINED: i64 = 7;

/// Longest single wait with the GIL released: between slices, pending
/// signals (Ctrl-C) get their chance to raise.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Socket id -> the Python object of that server, client or connection,
/// while Python references it (a `weakref.WeakValueDictionary`), so every
/// event about one object hands out the same object.
static OBJECTS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// Every live `Network` (a `weakref.WeakSet`), flushed at interpreter exit.
static NETWORKS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// The network of `tablenet.Server`, `tablenet.Client` and the module-level
/// functions; created on first use, never dropped.
static DEFAULT: PyOnceLock<Py<Network>> = PyOnceLock::new();

fn weak_collection<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    class: &str,
) -> PyResult<Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("weakref")?.getattr(class)?.call0()?.unbind())
    })
    .map(|c| c.bind(py).clone())
}

/// Remembers `object` as the one Python object of socket `id`.
pub(crate) fn register(py: Python<'_>, id: u64, object: &Bound<'_, PyAny>) -> PyResult<()> {
    weak_collection(py, &OBJECTS, "WeakValueDictionary")?.set_item(id, object)
}

/// The Python object of socket `id`, if Python still references it.
pub(crate) fn lookup(py: Python<'_>, id: u64) -> PyResult<Option<Py<PyAny>>> {
    let found = weak_collection(py, &OBJECTS, "WeakValueDictionary")?.call_method1("get", (id,))?;
    Ok((!found.is_none()).then(|| found.unbind()))
}

/// The default network, created with the default options on first use.
pub(crate) fn default_network(py: Python<'_>) -> PyResult<Py<Network>> {
    DEFAULT
        .get_or_try_init(py, || {
            let net = Network::build(Config::default(), false)?;
            let net = Bound::new(py, net)?;
            weak_collection(py, &NETWORKS, "WeakSet")?.call_method1("add", (&net,))?;
            Ok::<_, PyErr>(net.unbind())
        })
        .map(|n| n.clone_ref(py))
}

/// The network a constructor was given, or the default one.
pub(crate) fn network_or_default(
    py: Python<'_>,
    network: Option<Py<Network>>,
) -> PyResult<Py<Network>> {
    match network {
        Some(n) => Ok(n),
        None => default_network(py),
    }
}

/// A number of seconds for argument `name`: finite, 0 or more.
pub(crate) fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    // A year: beyond it a wait is a mistake, and `Instant` arithmetic stays safe.
    if !(0.0..=31_536_000.0).contains(&value) {
        return Err(PyValueError::new_err(format!(
            "invalid argument `{name}`: a number of seconds from 0 to 31536000, got {value}"
        )));
    }
    Ok(Duration::from_secs_f64(value))
}

/// An option that takes seconds or `False` (off); `None` keeps the default.
fn optional_seconds(
    name: &str,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Option<Duration>>> {
    let Some(value) = value else { return Ok(None) };
    if value.is_none() {
        return Ok(None);
    }
    if let Ok(false) = value.extract::<bool>() {
        return Ok(Some(None));
    }
    let secs: f64 = value.extract().map_err(|_| {
        PyValueError::new_err(format!(
            "invalid argument `{name}`: a number of seconds, or False for off, got {}",
            value.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    })?;
    Ok(Some(Some(seconds(name, secs)?)))
}

/// A network context: background IO, the event queue, and the factory of
/// servers and clients, with its own options. `tablenet.Server(...)`,
/// `tablenet.Client(...)` and `tablenet.poll_events()` use a default one.
#[pyclass(frozen, weakref, module = "tablenet")]
pub(crate) struct Network {
    /// `None` only while the object is being dropped.
    net: Option<tablenet::Network>,
    pub(crate) limits: Limits,
    pub(crate) bytes_strings: bool,
}

impl Network {
    fn build(config: Config, bytes_strings: bool) -> PyResult<Network> {
        let limits = Limits::for_config(&config);
        let net = tablenet::Network::with_config(config).map_err(errors::error)?;
        Ok(Network {
            net: Some(net),
            limits,
            bytes_strings,
        })
    }

    pub(crate) fn net(&self) -> PyResult<&tablenet::Network> {
        self.net
            .as_ref()
            .ok_or_else(|| errors::ClosedError::new_err("the network has been shut down"))
    }

    /// Waits up to `timeout` for events with the GIL released, in slices so
    /// that Ctrl-C still interrupts a long wait.
    fn wait(
        py: Python<'_>,
        net: &tablenet::Network,
        timeout: Duration,
    ) -> PyResult<Vec<tablenet::Event>> {
        let deadline = Instant::now() + timeout;
        loop {
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(WAIT_SLICE);
            let events = py.detach(|| net.wait_events(slice));
            if !events.is_empty() || Instant::now() >= deadline {
                return Ok(events);
            }
            py.check_signals()?;
        }
    }

    /// Shuts down within `timeout` with the GIL released; true when
    /// everything queued was delivered.
    fn shutdown_released(py: Python<'_>, net: &tablenet::Network, timeout: Duration) -> bool {
        py.detach(|| net.shutdown(timeout)).is_clean()
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Dropping the last handle waits (bounded by the linger) for what
        // was queued: other Python threads may run meanwhile.
        if let Some(net) = self.net.take() {
            Python::attach(|py| py.detach(move || drop(net)));
        }
    }
}

#[pymethods]
impl Network {
    /// A network with its own options (every option has the Rust default:
    /// a lossless event queue of 2000 events, 16 MiB messages, 128 levels).
    #[new]
    #[pyo3(signature = (
        *,
        lossless = true,
        inline_io = false,
        nodelay = true,
        event_capacity = None,
        event_bytes = None,
        send_queue_bytes = None,
        max_connections = None,
        max_frame_size = None,
        max_depth = None,
        handshake_timeout = None,
        linger = None,
        heartbeat = None,
        idle_timeout = None,
        keepalive = None,
        cipher = None,
        bytes_strings = false,
        connection_events = None,
        memory_budget = None,
        frame_timeout = None,
        max_handshaking = None,
        max_connections_per_address = None,
        failure_reports_per_second = None,
        handshake_budget = None,
        io_threads = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        lossless: bool,
        inline_io: bool,
        nodelay: bool,
        event_capacity: Option<usize>,
        event_bytes: Option<usize>,
        send_queue_bytes: Option<usize>,
        max_connections: Option<usize>,
        max_frame_size: Option<usize>,
        max_depth: Option<usize>,
        handshake_timeout: Option<f64>,
        linger: Option<f64>,
        heartbeat: Option<&Bound<'_, PyAny>>,
        idle_timeout: Option<&Bound<'_, PyAny>>,
        keepalive: Option<&Bound<'_, PyAny>>,
        cipher: Option<&str>,
        bytes_strings: bool,
        connection_events: Option<usize>,
        memory_budget: Option<usize>,
        frame_timeout: Option<&Bound<'_, PyAny>>,
        max_handshaking: Option<usize>,
        max_connections_per_address: Option<usize>,
        failure_reports_per_second: Option<u32>,
        handshake_budget: Option<f64>,
        io_threads: Option<usize>,
    ) -> PyResult<Py<Network>> {
        let mut config = Config::default();
        config.overflow = if lossless {
            OverflowPolicy::Lossless
        } else {
            OverflowPolicy::Overwrite
        };
        config.inline_io = inline_io;
        config.nodelay = nodelay;
        if let Some(v) = io_threads {
            config.io_threads = v;
        }
        if let Some(v) = event_capacity {
            config.event_capacity = v;
        }
        if let Some(v) = event_bytes {
            config.event_bytes = v;
        }
        if let Some(v) = send_queue_bytes {
            config.send_queue_bytes = v;
        }
        if let Some(v) = max_connections {
            config.max_connections = v;
        }
        if let Some(v) = max_frame_size {
            config.limits.max_frame_size = v;
        }
        if let Some(v) = max_depth {
            config.limits.max_depth = v;
        }
        if let Some(v) = handshake_timeout {
            config.handshake_timeout = seconds("handshake_timeout", v)?;
        }
        if let Some(v) = linger {
            config.linger = seconds("linger", v)?;
        }
        if let Some(v) = optional_seconds("heartbeat", heartbeat)? {
            config.heartbeat = v;
        }
        if let Some(v) = optional_seconds("idle_timeout", idle_timeout)? {
            config.idle_timeout = v;
        }
        if let Some(v) = optional_seconds("keepalive", keepalive)? {
            config.keepalive = v;
        }
        if let Some(v) = connection_events {
            config.connection_events = v;
        }
        if let Some(v) = memory_budget {
            config.memory_budget = v;
        }
        if let Some(v) = optional_seconds("frame_timeout", frame_timeout)? {
            config.frame_timeout = v;
        }
        if let Some(v) = max_handshaking {
            config.max_handshaking = v;
        }
        config.max_connections_per_address = max_connections_per_address;
        if let Some(v) = failure_reports_per_second {
            config.failure_reports_per_second = v;
        }
        if let Some(v) = handshake_budget {
            config.handshake_budget = seconds("handshake_budget", v)?;
        }
        config.cipher = match cipher {
            None => None,
            // Protocol v1's name: it now selects AES-GCM (AES-256-GCM).
            #[allow(deprecated)]
            Some("aes-128-gcm") => Some(CipherSuite::Aes128Gcm),
            Some("aes-256-gcm") => Some(CipherSuite::Aes256Gcm),
            Some("chacha20-poly1305") => Some(CipherSuite::ChaCha20Poly1305),
            Some(other) => {
                return Err(PyValueError::new_err(format!(
                    "invalid argument `cipher`: None, \"aes-128-gcm\", \"aes-256-gcm\" or \"chacha20-poly1305\", got {other:?}"
                )));
            }
        };
        let net = Bound::new(py, Network::build(config, bytes_strings)?)?;
        weak_collection(py, &NETWORKS, "WeakSet")?.call_method1("add", (&net,))?;
        Ok(net.unbind())
    }

    /// Starts a server on this network: `Server(address, port, key, network=self)`.
    #[pyo3(signature = (address, port = 0, key = None))]
    fn server(
        slf: &Bound<'_, Self>,
        address: &str,
        port: i64,
        key: Option<&str>,
    ) -> PyResult<Py<Server>> {
        Server::create(slf.py(), address, port, key, slf.clone().unbind())
    }

    /// Starts a client on this network: `Client(address, port, key, network=self)`.
    #[pyo3(signature = (address, port, key = None))]
    fn client(
        slf: &Bound<'_, Self>,
        address: &str,
        port: i64,
        key: Option<&str>,
    ) -> PyResult<Py<Client>> {
        Client::create(slf.py(), address, port, key, slf.clone().unbind())
    }

    /// Every queued event, oldest first, without blocking.
    fn poll_events(slf: &Bound<'_, Self>) -> PyResult<Vec<Py<Event>>> {
        let this = slf.get();
        let events = this.net()?.poll_events();
        events_to_python(slf, events)
    }

    /// Like `poll_events`, but waits up to `timeout` seconds for the first
    /// event (with the GIL released). An empty list means none came.
    #[pyo3(signature = (timeout = 1.0))]
    fn wait_events(slf: &Bound<'_, Self>, timeout: f64) -> PyResult<Vec<Py<Event>>> {
        let timeout = seconds("timeout", timeout)?;
        let events = Network::wait(slf.py(), slf.get().net()?, timeout)?;
        events_to_python(slf, events)
    }

    /// How many events are waiting to be taken.
    fn pending_events(&self) -> PyResult<usize> {
        Ok(self.net()?.pending_events())
    }

    /// Seconds that closing may wait for queued data to go out (the
    /// `linger` option): what exit and `shutdown()` wait at most.
    #[getter]
    fn linger(&self) -> PyResult<f64> {
        Ok(self.net()?.config().linger.as_secs_f64())
    }

    /// Closes every server, client and connection of this network after
    /// writing what they had queued (for at most `timeout` seconds; default
    /// the `linger` option), and stops its IO. Returns True when everything
    /// was delivered. Later servers and clients raise `ClosedError`.
    #[pyo3(signature = (timeout = None))]
    fn shutdown(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let net = self.net()?;
        let timeout = match timeout {
            Some(t) => seconds("timeout", t)?,
            None => net.config().linger,
        };
        Ok(Network::shutdown_released(py, net, timeout))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Leaving a `with` block shuts the network down (see `shutdown`).
    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.shutdown(py, None)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        match &self.net {
            Some(net) => format!("<tablenet.Network {:?}>", net.config()),
            None => "<tablenet.Network (closed)>".into(),
        }
    }
}

/// Called by `atexit`: flushes every live network (bounded by its linger),
/// so that a script that sends and ends delivers what it sent, and says so
/// on standard error when something could not be delivered.
#[pyfunction]
pub(crate) fn _flush_at_exit(py: Python<'_>) -> PyResult<()> {
    let networks = weak_collection(py, &NETWORKS, "WeakSet")?;
    let networks: Vec<Bound<'_, PyAny>> = networks
        .call_method0("copy")?
        .try_iter()?
        .collect::<PyResult<_>>()?;
    for net in networks {
        let Ok(net) = net.cast::<Network>() else {
            continue;
        };
        let Some(inner) = net.get().net.as_ref() else {
            continue;
        };
        let linger = inner.config().linger;
        let report = py.detach(|| inner.shutdown(linger));
        if !report.is_clean() {
            eprintln!(
                "tablenet: at exit, {} frames ({} bytes) could not be delivered within the linger of {:?}",
                report.frames(),
                report.bytes(),
                linger
            );
        }
    }
    Ok(())
}

/// Something that happened on the network (`tablenet.EVENT_*` in `.event`).
#[pyclass(frozen, get_all, module = "tablenet")]
pub(crate) struct Event {
    /// One of the `EVENT_*` constants.
    event: i64,
    /// When the IO thread saw it: seconds since the Unix epoch.
    timestamp: f64,
    /// The `Server`, `Client` or `Connection` it is about, or None (an
    /// object Python no longer references, a connection that failed before
    /// it was accepted, or lost events).
    object: Option<Py<PyAny>>,
    /// What went wrong or why it closed, as text; "" when nothing did.
    errors: String,
    /// The received value (`EVENT_RECEIVE`), else None.
    packet: Option<Py<PyAny>>,
    /// True when connecting worked (`EVENT_CONNECTED`), else None.
    result: Option<bool>,
    /// The object's socket id, or None.
    socket: Option<u64>,
    /// The server of a connection's events (`EVENT_CONNECT`, `EVENT_CLIENT_CLOSE`).
    server: Option<Py<PyAny>>,
}

#[pymethods]
impl Event {
    fn __repr__(&self, py: Python<'_>) -> String {
        let name = match self.event {
            EVENT_CONNECT => "EVENT_CONNECT",
            EVENT_CONNECTED => "EVENT_CONNECTED",
            EVENT_RECEIVE => "EVENT_RECEIVE",
            EVENT_SERVER_CLOSE => "EVENT_SERVER_CLOSE",
            EVENT_CLIENT_CLOSE => "EVENT_CLIENT_CLOSE",
            EVENT_ERROR => "EVENT_ERROR",
            _ => "EVENT_DRAINED",
        };
        let mut out = format!("<tablenet.Event {name}");
        if let Some(socket) = self.socket {
            out.push_str(&format!(" socket={socket}"));
        }
        if let Some(result) = self.result {
            out.push_str(if result {
                " result=True"
            } else {
                " result=False"
            });
        }
        if let Some(packet) = &self.packet
            && let Ok(text) = packet.bind(py).repr()
        {
            let text = text.to_string();
            let short: String = text.chars().take(60).collect();
            out.push_str(&format!(" packet={short}"));
            if short.len() < text.len() {
                out.push_str("...");
            }
        }
        if !self.errors.is_empty() {
            out.push_str(&format!(" errors={:?}", self.errors));
        }
        out.push('>');
        out
    }
}

fn events_to_python(
    net: &Bound<'_, Network>,
    events: Vec<tablenet::Event>,
) -> PyResult<Vec<Py<Event>>> {
    events
        .into_iter()
        .map(|e| Py::new(net.py(), event_to_python(net, e)?))
        .collect()
}

fn event_to_python(net: &Bound<'_, Network>, event: tablenet::Event) -> PyResult<Event> {
    let py = net.py();
    let mut out = Event {
        event: EVENT_ERROR,
        timestamp: event.timestamp(),
        object: None,
        errors: String::new(),
        packet: None,
        result: None,
        socket: None,
        server: None,
    };
    match event.kind {
        EventKind::Connect { connection, server } => {
            let id = connection.socket_id();
            let server_socket = server.socket_id();
            let conn = Bound::new(
                py,
                Connection::new(connection, net.clone().unbind(), server_socket),
            )?;
            register(py, id, conn.as_any())?;
            out.event = EVENT_CONNECT;
            out.object = Some(conn.into_any().unbind());
            out.socket = Some(id);
            out.server = lookup(py, server_socket)?;
        }
        EventKind::Connected { client, result } => {
            out.event = EVENT_CONNECTED;
            out.socket = Some(client.socket_id());
            out.result = Some(result.is_ok());
            if let Err(e) = result {
                out.errors = e.to_string();
            }
        }
        EventKind::Receive { from, packet } => {
            out.event = EVENT_RECEIVE;
            out.socket = Some(match from {
                Source::Connection(id) => id.socket_id(),
                Source::Client(id) => id.socket_id(),
            });
            out.packet = Some(convert::to_python(py, &packet, net.get().bytes_strings)?.unbind());
        }
        EventKind::ServerClose { client, reason } => {
            out.event = EVENT_SERVER_CLOSE;
            out.socket = Some(client.socket_id());
            out.errors = reason.to_string();
        }
        EventKind::ClientClose {
            connection,
            server,
            reason,
        } => {
            out.event = EVENT_CLIENT_CLOSE;
            out.socket = Some(connection.socket_id());
            out.server = lookup(py, server.socket_id())?;
            out.errors = reason.to_string();
        }
        EventKind::Error {
            object,
            error,
            peer,
        } => {
            out.socket = Some(object.socket_id());
            // The peer's address where known, unless the text names it.
            out.errors = error.to_string();
            if let Some(peer) = peer.map(|p| p.to_string())
                && !out.errors.contains(&peer)
            {
                out.errors = format!("{} (peer {peer})", out.errors);
            }
        }
        EventKind::Dropped { count } => {
            out.errors = format!(
                "{count} events were lost: the event queue was full (poll events more often)"
            );
        }
        EventKind::Drained { object } => {
            out.event = EVENT_DRAINED;
            out.socket = Some(object.socket_id());
        }
        // A kind this version does not know: reported, never dropped.
        other => {
            out.errors = format!("{other:?}");
        }
    }
    if out.event != EVENT_CONNECT
        && let Some(id) = out.socket
    {
        out.object = lookup(py, id)?;
    }
    Ok(out)
}
