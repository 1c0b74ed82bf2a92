//! tablenet: exchange Lua-like value tables over TCP.
//!
//! A message is a [`Value`], usually a [`Table`]: the basic Lua types (nil,
//! boolean, integer, float, byte string, table) with Lua's rules for keys.
//! Build one with [`table!`], convert your own types with [`to_value`] and
//! [`from_value`], and put it on the wire with the sans-IO codec in [`proto`].
//!
//! ```
//! use tablenet::proto::{FrameDecoder, Limits, encode_message_to_vec};
//! use tablenet::{Value, table};
//!
//! let limits = Limits::default();
//! let message = table! { "OpCode" => 10, "Data" => "From server" };
//! let bytes = encode_message_to_vec(&message.into(), &limits)?;
//!
//! let mut decoder = FrameDecoder::new(&limits);
//! decoder.push(&bytes);
//! let frame = decoder.next_frame()?.expect("one whole frame was pushed");
//! let received = frame.decode_value(&limits)?;
//! assert_eq!(received["Data"].as_str(), Some("From server"));
//! # Ok::<(), tablenet::Error>(())
//! ```
//!
//! How a message travels (the IO layer arrives with the networking core):
//!
//! ```text
//!  sender                                   receiver
//!  Value --encode_message--> frame bytes    socket bytes --FrameDecoder::push-->
//!        (once per message,   (shared by     next_frame --decode_value--> Value
//!         limits checked)      all peers)    (limits checked before allocating)
//! ```
//!
//! Everything in [`proto`] is pure code over byte buffers: no sockets,
//! threads or clocks, so it is tested and fuzzed in memory. Untrusted bytes
//! give an [`Error`], never a panic, a stack overflow or an allocation larger
//! than the input justifies.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bridge;
mod error;
mod io;
mod net;
pub mod proto;
mod stack;
mod value;

pub use bridge::{from_value, from_value_ref, to_value};
pub use error::{Error, KeyError, ProtocolError};
pub use net::{
    Client, ClientId, CloseReason, Config, Connection, ConnectionId, Event, EventKind, Network,
    ObjectId, OverflowPolicy, SendError, Server, ServerId, Source,
};
pub use value::{ByteString, IntoIter, Iter, Key, KeyRef, SequenceElement, Table, Value};
