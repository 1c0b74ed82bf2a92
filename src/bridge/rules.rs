//! The errors both directions of the bridge share, so the `Value` path and
//! the direct path refuse the same things with the same words.

use crate::error::Error;

/// `Some(None)`, `Some(())`: nil is `None`, so the `Some` would be lost.
pub(crate) fn nil_in_some() -> Error {
    Error::Convert(
        "Some(None) or Some(()) cannot be sent: nil means None, so the Some would be lost \
         (use an enum instead of a nested Option)"
            .to_owned(),
    )
}

/// A `None` or `()` element of a variable-length sequence.
pub(crate) fn nil_in_sequence() -> Error {
    Error::Convert(
        "a sequence element is None or (): a table cannot hold nil, so it would leave a hole \
         and the sequence would not read back (skip the element, or use an enum)"
            .to_owned(),
    )
}

/// An integer outside `i64`.
pub(crate) fn integer_out_of_range(v: impl std::fmt::Display) -> Error {
    Error::Convert(format!("integer {v} does not fit a 64-bit signed integer"))
}
