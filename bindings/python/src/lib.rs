//! The Python extension module: `import tablenet` gives Python what the
//! Lua network module gives Lua scripts (servers, clients, tables in and
//! out, events to poll, optional encryption), built on the Rust library.
//!
//! Build and install it with `pip install ./bindings/python` (maturin does
//! the build); `README.md` beside this crate documents the Python API, the
//! value rules and how it differs from the Lua API.
//!
//! - `convert`: Python values <-> tablenet values;
//! - `network`: `Network`, the default network, events, the exit flush;
//! - `objects`: `Server`, `Client`, `Connection`;
//! - `errors`: the exception hierarchy.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod convert;
mod errors;
mod network;
mod objects;

use pyo3::prelude::*;

use network::Network;

/// The default network: the one `Server(...)`, `Client(...)`,
/// `poll_events()` and `wait_events()` use unless told otherwise.
#[pyfunction]
fn default_network(py: Python<'_>) -> PyResult<Py<Network>> {
    network::default_network(py)
}

/// Every queued event of the default network, oldest first, without blocking.
#[pyfunction]
fn poll_events(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let net = network::default_network(py)?;
    net.bind(py).call_method0("poll_events").map(Bound::unbind)
}

/// Like `poll_events()`, but waits up to `timeout` seconds for the first
/// event, with the GIL released.
#[pyfunction]
#[pyo3(signature = (timeout = 1.0))]
fn wait_events(py: Python<'_>, timeout: f64) -> PyResult<Py<PyAny>> {
    let net = network::default_network(py)?;
    net.bind(py)
        .call_method1("wait_events", (timeout,))
        .map(Bound::unbind)
}

/// `import tablenet`.
#[pymodule(name = "tablenet")]
fn tablenet_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Network>()?;
    m.add_class::<objects::Server>()?;
    m.add_class::<objects::Client>()?;
    m.add_class::<objects::Connection>()?;
    m.add_class::<network::Event>()?;
    m.add_class::<convert::BoolKey>()?;
    errors::register(m)?;
    for (name, code) in [
        ("EVENT_CONNECT", network::EVENT_CONNECT),
        ("EVENT_CONNECTED", network::EVENT_CONNECTED),
        ("EVENT_RECEIVE", network::EVENT_RECEIVE),
        ("EVENT_SERVER_CLOSE", network::EVENT_SERVER_CLOSE),
        ("EVENT_CLIENT_CLOSE", network::EVENT_CLIENT_CLOSE),
        ("EVENT_ERROR", network::EVENT_ERROR),
        ("EVENT_DRAINED", network::EVENT_DRAINED),
    ] {
        m.add(name, code)?;
    }
    m.add_function(wrap_pyfunction!(default_network, m)?)?;
    m.add_function(wrap_pyfunction!(poll_events, m)?)?;
    m.add_function(wrap_pyfunction!(wait_events, m)?)?;
    let flush = wrap_pyfunction!(network::_flush_at_exit, m)?;
    m.add_function(flush.clone())?;
    // Module-level objects are never dropped: flush what they queued at exit.
    py.import("atexit")?.call_method1("register", (flush,))?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
