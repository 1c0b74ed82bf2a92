//! The serde bridge: any `Serialize` type to a [`Value`](crate::Value) with
//! [`to_value`], and a [`Value`](crate::Value) back to any `Deserialize` type
//! with [`from_value`] or [`from_value_ref`].
//!
//! The mapping follows Lua conventions:
//!
//! | Rust                                   | Value                                  |
//! |----------------------------------------|----------------------------------------|
//! | `bool`                                 | boolean                                |
//! | integers (must fit `i64`)              | integer                                |
//! | `f32`, `f64`                           | number (float)                         |
//! | `char`, `str`, bytes                   | string                                 |
//! | `None`, `()`, unit struct              | nil (a struct field or sequence element that is nil is simply absent) |
//! | sequences, tuples, tuple structs       | table with keys `1..n`                 |
//! | maps, structs                          | table                                  |
//! | unit variant                           | string: the variant name               |
//! | other variants                         | `{Variant = payload}`                  |
//!
//! Nil cannot be stored in a table, so a variant whose payload is nil
//! (`Variant(None)`) becomes its bare name, and reads back as such.
//!
//! Reading back is lenient where Lua is: an integral float such as `10.0`
//! fills an integer field, a string fills a `Vec<u8>`, and a tuple may have
//! holes where its elements are `None`. Two things do not survive, as in
//! Lua: a `None` inside a `Vec` (a hole, so the table is no longer a
//! sequence) and a `()`-typed struct field (absent, so it needs
//! `#[serde(default)]`).

mod de;
mod format;
mod path;
mod read;
mod rules;
mod ser;
mod write;

#[cfg(test)]
mod both_paths;
#[cfg(test)]
mod tests;

use std::fmt::Display;

use crate::error::Error;

pub(crate) use read::decode_serialized;
pub(crate) use write::encode_serialized;

pub use de::from_value;
pub use de::from_value_ref;
pub use ser::to_value;

impl serde::ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error::Convert(msg.to_string())
    }
}

impl serde::de::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error::Convert(msg.to_string())
    }
}
