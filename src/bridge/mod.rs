//! Rust types and tables: how any `Serialize` / `Deserialize` type travels
//! as a Lua-like table, exactly or not at all.
//!
//! Two paths give the same result:
//!
//! - **Direct** (what you normally use): [`Client::send_serialized`],
//!   [`Connection::send_serialized`], [`Server::send_serialized`],
//!   [`Server::send_many_serialized`] and [`Server::broadcast_serialized`]
//!   encode a value straight into the frame, and [`Event::decode`] /
//!   [`Message::decode`] read one straight from the received bytes, with no
//!   [`Value`] in between. (Set [`Config::raw_messages`] so that messages
//!   arrive as their bytes; otherwise `Event::decode` reads the `Value`
//!   already decoded.) [`proto::encode_typed_message`] and
//!   [`proto::decode_typed`] are the same codec without a network.
//! - **Through a [`Value`]**: [`to_value`], [`from_value`] and
//!   [`from_value_ref`], when you want to look at or build the table.
//!
//! The bytes on the wire are the same either way, so a Lua peer (or any
//! peer of docs/PROTOCOL.md) sees the same table.
//!
//! # The mapping
//!
//! | Rust | table value | reads back from |
//! |---|---|---|
//! | `bool` | boolean | boolean |
//! | `i8`..`i64`, `u8`..`u64`, `i128`, `u128` (value must fit `i64`) | integer | integer, or a float with an integral value (`10.0`) |
//! | `f32`, `f64` | float | float or integer |
//! | `char`, `String`, `&str` | string | string (`&str` borrows from the message) |
//! | `serde_bytes` (`ByteBuf`, `Bytes`, `#[serde(with = "serde_bytes")]`) | string (one byte run) | string, or a sequence of integers 0..=255 |
//! | `Vec<u8>`, `[u8; N]`, `&[u8]`, `bytes::Bytes` without `serde_bytes` | sequence of integers | sequence of integers, or a string |
//! | `Option<T>`: `None` / `Some(x)` | nil (a struct field is left out) / `x` | nil or a missing key / `x` |
//! | `()`, unit struct | nil | nil |
//! | struct | table keyed by field name | table (unknown keys are ignored) |
//! | `Vec<T>`, `VecDeque<T>`, sets, other sequences | table with keys `1..n` | table with keys `1..n` only |
//! | tuple, tuple struct, `[T; N]` | table with keys `1..n`; a `None` element is a hole | table with keys in `1..=n` |
//! | `HashMap`, `BTreeMap` (keys: booleans, integers, floats, strings) | table | table |
//! | unit variant `E::A` | string `"A"` | string |
//! | newtype, tuple, struct variant | `{A = payload}` (`{A = nil}` cannot exist: `E::A(None)` is `"A"`) | the same |
//!
//! A float key with an integral value is the integer key (`2.0` is `2`), as
//! in Lua. A map whose keys are the integers `1..n` is a sequence on the
//! wire, so Lua's `#` and `ipairs` work on it.
//!
//! # Exact or loud
//!
//! Everything that is sent reads back as the same Rust value, or the send
//! fails (nothing is queued) with an error that names where: an
//! [`Error::AtPath`] whose `path` is written like the Rust expression that
//! reaches the field: `.name` for a struct field or enum variant, `[i]` for
//! the element at 0-based position `i` of a sequence or tuple, `["k"]` or
//! `[k]` for a map key. These are refused, because a table cannot hold nil
//! and nil means "absent":
//!
//! - `None` or `()` as an element of a sequence (`vec![Some(1), None]`:
//!   the hole would end the sequence);
//! - `Some(None)`, `Some(())` (the `Some` would be lost);
//! - an integer outside `i64` (`u64` above `i64::MAX`): there is no exact
//!   encoding in a Lua integer. Send it as a string or split it if you need
//!   the range;
//! - a map key that is a table (a tuple, struct, sequence...), nil or NaN
//!   ([`Error::InvalidKey`] inside the `AtPath`).
//!
//! ```
//! use tablenet::{Error, to_value};
//! #[derive(serde::Serialize)]
//! struct World { players: Vec<Player> }
//! #[derive(serde::Serialize)]
//! struct Player { inventory: Vec<u64> }
//!
//! let mut world = World { players: (0..5).map(|_| Player { inventory: vec![1] }).collect() };
//! world.players[3].inventory[0] = u64::MAX;
//! let err = to_value(&world).unwrap_err();
//! assert!(matches!(&err, Error::AtPath { path, .. } if path == "players[3].inventory[0]"));
//! assert_eq!(
//!     err.to_string(),
//!     "at players[3].inventory[0]: conversion failed: \
//!      integer 18446744073709551615 does not fit a 64-bit signed integer"
//! );
//! assert!(to_value(&vec![Some(1), None]).is_err());
//! assert!(to_value(&Some(None::<i32>)).is_err());
//! ```
//!
//! Reading is as lenient as Lua: an integral float fills an integer field,
//! a missing key fills an `Option` with `None`, a string fills a `Vec<u8>`.
//! What does not fit the type is an error with the path of the field:
//!
//! ```
//! use tablenet::{from_value, table, Error};
//! #[derive(serde::Deserialize, Debug)]
//! struct Player { name: String, inventory: Vec<u16> }
//! let sent = table! { "name" => "ada", "inventory" => table![1, "sword"] };
//! let err = from_value::<Player>(sent.into()).unwrap_err();
//! assert!(matches!(&err, Error::AtPath { path, .. } if path == "inventory[1]"));
//! ```
//!
//! One thing reads back only with help: a `()` or unit-struct **field** is
//! left out like a `None`, so it needs `#[serde(default)]` (without it,
//! reading fails with "missing field").
//!
//! # Bytes: use `serde_bytes`
//!
//! serde describes a `Vec<u8>`, `[u8; N]`, `&[u8]` or `bytes::Bytes` as a
//! sequence of numbers, and a serializer cannot tell it from a list of
//! small integers (a `Vec<u8>` of levels must stay a table for a Lua peer).
//! So they travel as tables of integers unless the field says otherwise
//! with [`serde_bytes`](https://docs.rs/serde_bytes):
//! `#[serde(with = "serde_bytes")]`, or the types `serde_bytes::ByteBuf` /
//! `serde_bytes::Bytes`. Then the field is one string (a Lua peer gets a
//! string), and it costs what the bytes cost. Measured for 64 KiB on the
//! direct path (`cargo bench --bench codec -- blob`):
//!
//! | field | wire bytes | encode | decode |
//! |---|---|---|---|
//! | `Vec<u8>` | 196,352 | 375 µs | 661 µs |
//! | `#[serde(with = "serde_bytes")] Vec<u8>` | 65,551 | 0.7 µs | 0.7 µs |
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! struct Avatar {
//!     #[serde(with = "serde_bytes")]
//!     png: Vec<u8>,
//! }
//! let v = tablenet::to_value(&Avatar { png: vec![0x89, b'P', b'N', b'G'] }).unwrap();
//! assert_eq!(v["png"].as_bytes(), Some(&b"\x89PNG"[..]));
//! let back: Avatar = tablenet::from_value(v).unwrap();
//! assert_eq!(back.png, b"\x89PNG");
//! ```
//!
//! # Round trip through the wire
//!
//! ```
//! use tablenet::proto::{Limits, decode_typed, encode_typed_message};
//! #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! enum Phase { Lobby, Playing { round: u32 } }
//! #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! struct State<'a> { map: &'a str, phase: Phase, scores: Vec<(String, i64)>, winner: Option<u8> }
//!
//! let state = State {
//!     map: "arena",
//!     phase: Phase::Playing { round: 3 },
//!     scores: vec![("ada".into(), 12), ("bob".into(), -1)],
//!     winner: None,
//! };
//! let limits = Limits::default();
//! let mut frame = Vec::new();
//! encode_typed_message(&state, &limits, &mut frame).unwrap();
//! // The same bytes as the Value path: a Lua peer sees
//! // {map = "arena", phase = {Playing = {round = 3}}, scores = {{"ada", 12}, {"bob", -1}}}
//! let mut via_value = Vec::new();
//! tablenet::proto::encode_message(&tablenet::to_value(&state).unwrap(), &limits, &mut via_value)
//!     .unwrap();
//! assert_eq!(frame, via_value);
//! let body = &frame[5..]; // after the length prefix and the kind byte
//! let back: State<'_> = decode_typed(body, &limits).unwrap();
//! assert_eq!(back, state);
//! ```
//!
//! [`Client::send_serialized`]: crate::Client::send_serialized
//! [`Connection::send_serialized`]: crate::Connection::send_serialized
//! [`Server::send_serialized`]: crate::Server::send_serialized
//! [`Server::send_many_serialized`]: crate::Server::send_many_serialized
//! [`Server::broadcast_serialized`]: crate::Server::broadcast_serialized
//! [`Event::decode`]: crate::Event::decode
//! [`Message::decode`]: crate::Message::decode
//! [`Config::raw_messages`]: crate::Config::raw_messages
//! [`proto::encode_typed_message`]: crate::proto::encode_typed_message
//! [`proto::decode_typed`]: crate::proto::decode_typed
//! [`Value`]: crate::Value
//! [`Error::AtPath`]: crate::Error::AtPath
//! [`Error::InvalidKey`]: crate::Error::InvalidKey

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
