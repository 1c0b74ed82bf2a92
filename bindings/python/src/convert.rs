//! Python values <-> tablenet values.
//!
//! Python to [`Value`] walks the object graph, so it defends itself as the
//! Lua binding does: a list or dict that contains itself is found with the
//! containers on the current path (one shared twice is legal and is
//! converted twice), and depth, value count and string bytes are bounded
//! ([`Limits`]), so `a = [a, a]` nested 64 times cannot expand to 2^64
//! values. Every refusal names where it happened, in Python syntax
//! (`packet["list"][3]`).
//!
//! [`Value`] to Python: a pure sequence becomes a `list`, any other table a
//! `dict`; strings are `str` when they are UTF-8, `bytes` otherwise (or
//! always `bytes` when asked). Python's `True == 1` would merge a table's
//! `true` and `1` keys in a dict: such a boolean key comes back wrapped in
//! [`BoolKey`], so no entry is lost.

use std::collections::HashSet;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use tablenet::{Config, Key, KeyRef, Table, Value};

/// Most values (keys count) in one message: the Lua binding's default.
const MAX_VALUES: usize = 1_000_000;

/// Stack that must remain before a recursive step runs in place, and the
/// size of a fresh segment (a network may allow 100,000 levels).
const RED_ZONE: usize = 64 * 1024;
const SEGMENT: usize = 1024 * 1024;

fn guarded<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}

/// Bounds on a Python value converted for sending, from the network's own
/// limits: its nesting depth, its maximum frame size as the byte budget.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    max_depth: usize,
    max_values: usize,
    max_bytes: usize,
}

impl Limits {
    pub(crate) fn for_config(config: &Config) -> Limits {
        Limits {
            max_depth: config.limits.max_depth,
            max_values: MAX_VALUES,
            max_bytes: config.limits.max_frame_size,
        }
    }
}

/// A table's boolean key, when the same table also has the integer key that
/// Python considers equal (`true` and `1`, or `false` and `0`): a `dict`
/// cannot hold both as plain keys, so the boolean one is wrapped.
///
/// `BoolKey(True)` is a key of its own: it is not equal to `True` or `1`.
/// Sending a dict with a `BoolKey` key sends a boolean key, so such a table
/// round-trips unchanged.
#[pyclass(frozen, eq, hash, module = "tablenet")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct BoolKey {
    /// The boolean.
    #[pyo3(get)]
    value: bool,
}

#[pymethods]
impl BoolKey {
    #[new]
    fn new(value: bool) -> BoolKey {
        BoolKey { value }
    }

    fn __repr__(&self) -> &'static str {
        if self.value {
            "BoolKey(True)"
        } else {
            "BoolKey(False)"
        }
    }

    fn __bool__(&self) -> bool {
        self.value
    }
}

/// Why a value cannot be sent, and where (built from the inside out).
struct Refusal {
    type_error: bool,
    message: String,
    path: String,
}

impl Refusal {
    fn value(message: String) -> Refusal {
        Refusal {
            type_error: false,
            message,
            path: String::new(),
        }
    }

    fn of_type(message: String) -> Refusal {
        Refusal {
            type_error: true,
            message,
            path: String::new(),
        }
    }

    fn within(mut self, segment: &str) -> Refusal {
        self.path.insert_str(0, segment);
        self
    }

    fn into_err(self) -> PyErr {
        let text = if self.path.is_empty() {
            self.message
        } else {
            format!("{} (at packet{})", self.message, self.path)
        };
        if self.type_error {
            PyTypeError::new_err(text)
        } else {
            PyValueError::new_err(text)
        }
    }
}

/// Either a problem with the value, or an error raised by Python itself.
enum Failure {
    Refused(Refusal),
    Python(PyErr),
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Failure {
        Failure::Refused(r)
    }
}

impl From<PyErr> for Failure {
    fn from(e: PyErr) -> Failure {
        Failure::Python(e)
    }
}

struct Walker {
    limits: Limits,
    /// Lists, tuples and dicts on the current path (their addresses).
    path: HashSet<usize>,
    values: usize,
    bytes: usize,
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into())
}

/// `repr(obj)`, shortened for an error message.
fn short_repr(obj: &Bound<'_, PyAny>) -> String {
    let text = obj
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| type_name(obj));
    let mut chars = text.chars();
    let mut out: String = chars.by_ref().take(40).collect();
    if chars.next().is_some() {
        out.push_str("...");
    }
    out
}

impl Walker {
    fn count_value(&mut self) -> Result<(), Refusal> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(Refusal::value(format!(
                "cannot send more than {} values in one message (a list or dict that appears several times counts each time)",
                self.limits.max_values
            )));
        }
        Ok(())
    }

    fn count_bytes(&mut self, n: usize) -> Result<(), Refusal> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.limits.max_bytes {
            return Err(Refusal::value(format!(
                "cannot send more than {} bytes of strings in one message",
                self.limits.max_bytes
            )));
        }
        Ok(())
    }

    fn string(&mut self, s: &Bound<'_, PyString>) -> Result<Vec<u8>, Refusal> {
        let text = s.to_cow().map_err(|_| {
            Refusal::value(
                "cannot send a str that is not valid Unicode (it holds a lone surrogate)".into(),
            )
        })?;
        self.count_bytes(text.len())?;
        Ok(text.as_bytes().to_vec())
    }

    fn integer(obj: &Bound<'_, PyAny>) -> Result<i64, Refusal> {
        obj.extract::<i64>().map_err(|_| {
            Refusal::value(format!(
                "cannot send the integer {}: integers travel as 64 bits (-2**63 to 2**63-1)",
                short_repr(obj)
            ))
        })
    }

    fn value(&mut self, obj: &Bound<'_, PyAny>, depth: usize) -> Result<Value, Failure> {
        self.count_value()?;
        if obj.is_none() {
            return Ok(Value::Nil);
        }
        if let Ok(b) = obj.cast::<PyBool>() {
            return Ok(Value::Boolean(b.is_true()));
        }
        if obj.is_instance_of::<PyInt>() {
            return Ok(Value::Integer(Self::integer(obj)?));
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            return Ok(Value::Number(f.value()));
        }
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(Value::String(self.string(s)?.into()));
        }
        if let Ok(b) = obj.cast::<PyBytes>() {
            self.count_bytes(b.as_bytes().len())?;
            return Ok(Value::String(b.as_bytes().into()));
        }
        if let Ok(b) = obj.cast::<PyByteArray>() {
            let bytes = b.to_vec();
            self.count_bytes(bytes.len())?;
            return Ok(Value::String(bytes.into()));
        }
        if obj.is_instance_of::<PyList>()
            || obj.is_instance_of::<PyTuple>()
            || obj.is_instance_of::<PyDict>()
        {
            return Ok(Value::Table(self.table(obj, depth + 1)?));
        }
        if let Ok(k) = obj.cast::<BoolKey>() {
            return Ok(Value::Boolean(k.get().value));
        }
        Err(Refusal::of_type(format!(
            "cannot send a {}: only None, bool, int, float, str, bytes, list, tuple and dict travel",
            type_name(obj)
        ))
        .into())
    }

    fn key(&mut self, obj: &Bound<'_, PyAny>) -> Result<Key, Refusal> {
        self.count_value()?;
        if let Ok(b) = obj.cast::<PyBool>() {
            return Ok(Key::from(b.is_true()));
        }
        if let Ok(k) = obj.cast::<BoolKey>() {
            return Ok(Key::from(k.get().value));
        }
        if obj.is_instance_of::<PyInt>() {
            return Ok(Key::from(Self::integer(obj)?));
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            return Key::from_f64(f.value())
                .map_err(|_| Refusal::value("cannot send a dict with a NaN key".into()));
        }
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(Key::from(self.string(s)?));
        }
        if let Ok(b) = obj.cast::<PyBytes>() {
            self.count_bytes(b.as_bytes().len())?;
            return Ok(Key::from(b.as_bytes()));
        }
        Err(Refusal::of_type(format!(
            "cannot send a dict with a {} key: keys must be bool, int, float, str or bytes",
            type_name(obj)
        )))
    }

    fn table(&mut self, obj: &Bound<'_, PyAny>, depth: usize) -> Result<Table, Failure> {
        if depth > self.limits.max_depth {
            return Err(Refusal::value(format!(
                "cannot send lists or dicts nested deeper than {} levels",
                self.limits.max_depth
            ))
            .into());
        }
        let address = obj.as_ptr() as usize;
        if !self.path.insert(address) {
            return Err(
                Refusal::value("cannot send a list or dict that contains itself".into()).into(),
            );
        }
        let result = guarded(|| self.entries(obj, depth));
        self.path.remove(&address);
        result
    }

    fn entries(&mut self, obj: &Bound<'_, PyAny>, depth: usize) -> Result<Table, Failure> {
        if let Ok(dict) = obj.cast::<PyDict>() {
            let mut out = Table::new();
            for (k, v) in dict.iter() {
                let segment = || format!("[{}]", short_repr(&k));
                let key = self.key(&k).map_err(|r| r.within(&segment()))?;
                let value = match self.value(&v, depth) {
                    Ok(value) => value,
                    Err(Failure::Refused(r)) => return Err(r.within(&segment()).into()),
                    Err(e) => return Err(e),
                };
                // Lua's rule: a nil value means the key is absent.
                if value.is_nil() {
                    continue;
                }
                // Distinct in Python, one key on the wire: "a" and b"a".
                if out.contains_key(key.as_ref()) {
                    return Err(Refusal::value(format!(
                        "cannot send a dict with two keys that are the same table key: {} (str and bytes keys with the same bytes are one key)",
                        key.as_ref()
                    ))
                    .within(&segment())
                    .into());
                }
                out.set(key, value);
            }
            return Ok(out);
        }
        let items: Vec<Bound<'_, PyAny>> = if let Ok(list) = obj.cast::<PyList>() {
            list.iter().collect()
        } else if let Ok(tuple) = obj.cast::<PyTuple>() {
            tuple.iter().collect()
        } else {
            return Ok(Table::new());
        };
        let mut values = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match self.value(item, depth) {
                Ok(v) => values.push(v),
                Err(Failure::Refused(r)) => return Err(r.within(&format!("[{i}]")).into()),
                Err(e) => return Err(e),
            }
        }
        // None leaves a hole, as nil does in the Lua constructor {1, nil, 3}.
        Ok(Table::from_sequence(values))
    }
}

/// Converts a message for sending: any supported value but `None` (a
/// message is a table, or at least a value). Unsupported types raise
/// `TypeError`; cycles, too-deep or too-large values and out-of-range
/// integers `ValueError`; both name the place (`packet["a"][2]`).
pub(crate) fn message(obj: &Bound<'_, PyAny>, limits: Limits) -> PyResult<Value> {
    if obj.is_none() {
        return Err(PyTypeError::new_err(
            "cannot send None: send a dict, a list or another value",
        ));
    }
    let mut walker = Walker {
        limits,
        path: HashSet::new(),
        values: 0,
        bytes: 0,
    };
    match walker.value(obj, 0) {
        Ok(v) => Ok(v),
        Err(Failure::Refused(r)) => Err(r.into_err()),
        Err(Failure::Python(e)) => Err(e),
    }
}

/// Converts a received value: see the module docs for the rules.
pub(crate) fn to_python<'py>(
    py: Python<'py>,
    value: &Value,
    bytes_strings: bool,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Nil => py.None().into_bound(py),
        Value::Boolean(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        Value::Number(f) => PyFloat::new(py, *f).into_any(),
        Value::String(s) => string(py, s.as_bytes(), bytes_strings),
        Value::Table(t) => guarded(|| table(py, t, bytes_strings))?,
    })
}

fn string<'py>(py: Python<'py>, bytes: &[u8], bytes_strings: bool) -> Bound<'py, PyAny> {
    match std::str::from_utf8(bytes) {
        Ok(text) if !bytes_strings => PyString::new(py, text).into_any(),
        _ => PyBytes::new(py, bytes).into_any(),
    }
}

fn table<'py>(py: Python<'py>, t: &Table, bytes_strings: bool) -> PyResult<Bound<'py, PyAny>> {
    if t.hash_len() == 0 && t.sequence_len() > 0 {
        let items = t
            .sequence()
            .iter()
            .map(|v| to_python(py, v, bytes_strings))
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(PyList::new(py, items)?.into_any());
    }
    // `true` and `1` (or `false` and `0`) are one dict key in Python.
    let collides = |b: bool| t.contains_key(b) && t.contains_key(i64::from(b));
    let (true_collides, false_collides) = (collides(true), collides(false));
    let dict = PyDict::new(py);
    for (k, v) in t.iter() {
        let key = match k {
            KeyRef::Boolean(b) if (b && true_collides) || (!b && false_collides) => {
                Bound::new(py, BoolKey { value: b })?.into_any()
            }
            KeyRef::Boolean(b) => PyBool::new(py, b).to_owned().into_any(),
            KeyRef::Integer(i) => i.into_pyobject(py)?.into_any(),
            KeyRef::Number(f) => PyFloat::new(py, f).into_any(),
            KeyRef::String(s) => string(py, s, bytes_strings),
        };
        dict.set_item(key, to_python(py, v, bytes_strings)?)?;
    }
    Ok(dict.into_any())
}
