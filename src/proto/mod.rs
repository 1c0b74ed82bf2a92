//! The sans-IO protocol core: pure functions and state machines over bytes.
//!
//! Nothing here touches a socket, a thread or a clock (time is passed in),
//! so all of it is unit tested, fuzzed and simulated in memory. A
//! connection is a [`session::Session`] (preamble, handshake, timers,
//! close) plus a [`SendQueue`] of outgoing frames; the IO layer only moves
//! bytes between them and sockets. Underneath, [`FrameDecoder`] splits
//! received bytes into frames and [`encode_message`] makes them.
//!
//! ```
//! use tablenet::proto::{FrameDecoder, Limits, encode_message_to_vec};
//! use tablenet::table;
//!
//! let limits = Limits::default();
//! let bytes = encode_message_to_vec(&table! { "OpCode" => 10 }.into(), &limits).unwrap();
//! let mut decoder = FrameDecoder::new(&limits);
//! for byte in &bytes {
//!     decoder.push(std::slice::from_ref(byte)); // any chunking works
//! }
//! let frame = decoder.next_frame().unwrap().unwrap();
//! assert_eq!(frame.decode_value(&limits).unwrap()["OpCode"], 10.into());
//! ```

mod frame;
mod limits;
mod preamble;
pub mod secure;
mod send_queue;
pub mod session;
mod wire;
#[cfg(test)]
mod wire_reference;

pub use frame::{
    Frame, FrameDecoder, FrameKind, LENGTH_PREFIX, MAX_CLOSE_REASON, RawFrame, control_frame,
    decode_typed, encode_message, encode_message_to_vec, encode_typed_message,
};
pub use limits::Limits;
pub use preamble::{FLAG_ENCRYPTED, FLAG_REFUSED, MAGIC, MAX_EXTENSION, Preamble, VERSION};
pub use send_queue::{OutFrame, SMALL_FRAME, SendQueue};
pub use wire::{decode_value, decode_value_within};
pub(crate) use wire::{decode_value_costed, encode_value};

#[cfg(test)]
mod tests;
