//! The exceptions: `ValueError` and `TypeError` for bad arguments, and the
//! `tablenet.Error` hierarchy for what the network reports. Messages are the
//! library's own.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use tablenet::SendError;

create_exception!(
    tablenet,
    Error,
    PyException,
    "Base class of tablenet's errors (bad arguments raise ValueError or TypeError instead)."
);
create_exception!(
    tablenet,
    ClosedError,
    Error,
    "The server, client or connection is closed, or its network was shut down."
);
create_exception!(
    tablenet,
    QueueFullError,
    Error,
    "The connection's send queue is full: wait for EVENT_DRAINED, then send again."
);
create_exception!(
    tablenet,
    ConnectError,
    Error,
    "Connecting failed: nobody listening, wrong key, refused by the server..."
);
create_exception!(
    tablenet,
    ConnectTimeout,
    ConnectError,
    "Connecting did not finish within the timeout."
);

/// A library error as a Python exception.
pub(crate) fn error(e: tablenet::Error) -> PyErr {
    use tablenet::Error as E;
    let text = e.to_string();
    match e {
        E::InvalidArgument { .. }
        | E::InvalidKey(_)
        | E::TooDeep { .. }
        | E::FrameTooLarge { .. }
        | E::Convert(_) => PyValueError::new_err(text),
        E::Closed | E::Shutdown => ClosedError::new_err(text),
        _ => Error::new_err(text),
    }
}

/// A failed `wait_for_connect` as a Python exception.
pub(crate) fn connect_error(e: tablenet::Error) -> PyErr {
    use tablenet::Error as E;
    let text = e.to_string();
    match e {
        E::Timeout { .. } => ConnectTimeout::new_err(text),
        E::Closed | E::Shutdown | E::InvalidArgument { .. } => error(e),
        _ => ConnectError::new_err(text),
    }
}

/// A refused send as a Python exception. A refused send never harms the
/// connection.
pub(crate) fn send_error(e: SendError) -> PyErr {
    let text = e.to_string();
    match e {
        SendError::QueueFull { .. } => QueueFullError::new_err(text),
        SendError::Closed => ClosedError::new_err(text),
        SendError::TooLarge { .. } | SendError::TooDeep { .. } | SendError::Unsendable(_) => {
            PyValueError::new_err(text)
        }
        _ => Error::new_err(text),
    }
}

/// Adds the exception classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("ClosedError", py.get_type::<ClosedError>())?;
    m.add("QueueFullError", py.get_type::<QueueFullError>())?;
    m.add("ConnectError", py.get_type::<ConnectError>())?;
    m.add("ConnectTimeout", py.get_type::<ConnectTimeout>())?;
    Ok(())
}
