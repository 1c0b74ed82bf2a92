//! Error paths: where in a value a conversion failed.
//!
//! Nothing is recorded while converting; an error that bubbles up through a
//! struct field, a sequence element or a map entry gets that step
//! prepended, so success costs nothing.

use std::fmt::Write;

use crate::error::Error;
use crate::value::KeyRef;

/// One step into a value.
#[derive(Clone, Copy)]
pub(crate) enum Step<'a> {
    /// A struct field or an enum variant's payload: `.name`.
    Field(&'a str),
    /// The element at a 0-based position of a sequence or tuple: `[i]`.
    Index(usize),
    /// A map entry: `["k"]`, `[5]`, `[true]`.
    Key(KeyRef<'a>),
}

/// `error`, located one `step` further out. Errors that are not about the
/// value's content (a depth or size limit, a protocol violation) keep
/// their own variant, which callers match on.
pub(crate) fn within(error: Error, step: Step<'_>) -> Error {
    let (tail, error) = match error {
        Error::AtPath { path, error } => (path, error),
        e @ (Error::Convert(_) | Error::InvalidKey(_)) => (String::new(), Box::new(e)),
        other => return other,
    };
    let mut path = String::with_capacity(tail.len() + 16);
    match step {
        Step::Field(name) => path.push_str(name),
        Step::Index(i) => {
            let _ = write!(path, "[{i}]");
        }
        Step::Key(KeyRef::String(s)) => {
            let _ = write!(path, "[{:?}]", crate::error::inert(s));
        }
        Step::Key(KeyRef::Integer(i)) => {
            let _ = write!(path, "[{i}]");
        }
        Step::Key(KeyRef::Number(f)) => {
            let _ = write!(path, "[{}]", crate::value::Value::Number(f));
        }
        Step::Key(KeyRef::Boolean(b)) => {
            let _ = write!(path, "[{b}]");
        }
    }
    if !tail.is_empty() && !tail.starts_with('[') {
        path.push('.');
    }
    path.push_str(&tail);
    Error::AtPath { path, error }
}

/// Wraps a result's error with `step`.
pub(crate) fn at<T>(result: Result<T, Error>, step: Step<'_>) -> Result<T, Error> {
    result.map_err(|e| within(e, step))
}

/// The direct path's error: boxed, so a `Result` fits in registers on every
/// one of the many returns a value's walk makes.
pub(crate) type Fail = Box<Error>;

impl serde::ser::Error for Fail {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Box::new(Error::Convert(msg.to_string()))
    }
}

impl serde::de::Error for Fail {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Box::new(Error::Convert(msg.to_string()))
    }
}

/// [`at`] for the direct path's boxed errors.
#[inline(always)]
pub(crate) fn at_boxed<T>(result: Result<T, Fail>, step: Step<'_>) -> Result<T, Fail> {
    match result {
        Ok(value) => Ok(value),
        Err(e) => Err(within_boxed(e, step)),
    }
}

/// [`within`] for a boxed error, kept out of the hot paths it is called
/// from (every element and field).
#[cold]
#[inline(never)]
pub(crate) fn within_boxed(mut error: Fail, step: Step<'_>) -> Fail {
    let inner = std::mem::replace(&mut *error, Error::Convert(String::new()));
    *error = within(inner, step);
    error
}
