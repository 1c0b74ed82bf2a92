//! [`Message`]: a received message kept as its bytes until asked for, so a
//! Rust type can be read straight from them.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use serde::Deserialize;

use super::event::Source;
use super::ring::FailHook;
use crate::error::Error;
use crate::proto::{Limits, decode_typed, decode_value_within};
use crate::value::Value;

/// A received message, not decoded yet (what [`EventKind::Message`]
/// carries when [`Config::raw_messages`] is on).
///
/// [`decode`](Self::decode) reads any `Deserialize` type straight from the
/// bytes, with no intermediate [`Value`]; [`value`](Self::value) gives the
/// table. A message that breaks the protocol (not one valid value, nested
/// too deep...) closes its connection with that error the first time it is
/// decoded, as it would have when decoded on taking it; a message that is
/// valid but does not fit `T` is only an error for the caller.
///
/// [`EventKind::Message`]: crate::EventKind::Message
/// [`Config::raw_messages`]: crate::Config::raw_messages
pub struct Message {
    from: Source,
    body: Bytes,
    limits: Limits,
    /// The most memory [`value`](Self::value) may take.
    max_cost: usize,
    /// Closes the sender's link on a protocol violation.
    fail: Option<FailHook>,
    /// The link was asked to close already.
    failed: AtomicBool,
}

impl Message {
    pub(crate) fn new(
        from: Source,
        body: Bytes,
        limits: Limits,
        max_cost: usize,
        fail: Option<FailHook>,
    ) -> Message {
        Message {
            from,
            body,
            limits,
            max_cost,
            fail,
            failed: AtomicBool::new(false),
        }
    }

    /// Who sent it.
    pub fn from(&self) -> Source {
        self.from
    }

    /// The encoded value (docs/PROTOCOL.md, section 3).
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// Reads the message as a `T`, straight from its bytes; `&str` and
    /// `&[u8]` fields borrow from the message. The same result as
    /// [`from_value`](crate::from_value) of [`value`](Self::value), errors
    /// included: a field of the wrong type names its path
    /// ([`Error::AtPath`]).
    ///
    /// A protocol violation ([`Error::Protocol`], [`Error::TooDeep`]) also
    /// closes the connection it came from.
    pub fn decode<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Error> {
        decode_typed(&self.body, &self.limits).map_err(|e| self.check(e))
    }

    /// Decodes the message into a [`Value`] (within the network's memory
    /// budget, as messages decoded on taking them are).
    pub fn value(&self) -> Result<Value, Error> {
        decode_value_within(&self.body, &self.limits, self.max_cost).map_err(|e| self.check(e))
    }

    /// Closes the link when `e` says the peer broke the protocol.
    fn check(&self, e: Error) -> Error {
        if matches!(e, Error::Protocol(_) | Error::TooDeep { .. })
            && !self.failed.swap(true, Ordering::Relaxed)
            && let Some(fail) = &self.fail
        {
            let id = match self.from {
                Source::Connection(c) => c.socket_id(),
                Source::Client(c) => c.socket_id(),
            };
            fail(id, e.clone());
        }
        e
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("from", &self.from)
            .field("bytes", &self.body.len())
            .finish()
    }
}
