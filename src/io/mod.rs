//! The IO thread: one mio reactor driving every socket of a network.
//!
//! It only moves bytes and events. Framing, preambles and values are decoded
//! by the sans-IO core in [`crate::proto`]; what it produces goes into the
//! event ring in batches. Small messages go in undecoded (their bodies copied
//! back to back into shared buffers) and are decoded by the application's
//! thread as it takes them out, see `net::ring`. The thread count does not
//! grow with connections.

pub(crate) mod driver;
mod link_io;

use std::sync::Arc;

use mio::Token;

use crate::net::shared::NetShared;

/// The token of the IO thread's waker (socket ids start at 1).
pub(crate) const WAKER: Token = Token(0);

/// Runs the IO thread until the network shuts down.
pub(crate) fn run(poll: mio::Poll, net: Arc<NetShared>) {
    driver::Driver::new(poll, net).run();
}
