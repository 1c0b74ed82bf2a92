//! The IO driver: one mio reactor moving bytes between sockets and each
//! connection's sans-IO [`Session`](crate::proto::session::Session).
//!
//! It parses nothing itself: preambles, handshakes, frames, timers and
//! closes are decided by the session; the driver reads and writes sockets,
//! fires the session's timers, turns its events into the network's events
//! and hands them to the ring in batches. Small messages go into the ring
//! undecoded (their bodies copied back to back into shared buffers) and are
//! decoded by the application's thread as it takes them out (see
//! `shared::ring`); so are large ones too dense to decode here within about
//! a millisecond. Every link draws on the network's memory budget and its
//! share of the ring (`pressure`). The thread count does not grow with
//! connections.
//!
//! Dependencies run one way: this module uses `shared` and `proto`, never
//! the public handles in `net`; `net` reaches it only through [`start`].

mod accept;
mod connect;
mod driver;
mod failures;
mod half_open;
mod handshake_share;
mod lifecycle;
mod link_io;
mod pressure;
mod transfer;

use std::sync::Arc;

use mio::Token;

use crate::error::Error;
use crate::shared::{NetShared, Started};
use driver::Driver;

/// The token of the IO thread's waker (socket ids start at 1).
const WAKER: Token = Token(0);

/// Starts a network's IO: a reactor and its waker, run on a thread of its
/// own, or handed back to be driven inline (`Config::inline_io`).
pub(crate) fn start(net: &Arc<NetShared>) -> Result<Started, Error> {
    let poll = mio::Poll::new().map_err(|e| Error::io("create poller", &e))?;
    let waker =
        mio::Waker::new(poll.registry(), WAKER).map_err(|e| Error::io("create waker", &e))?;
    net.install_waker(waker);
    let driver = Driver::new(poll, net.clone());
    if net.config.inline_io {
        return Ok(Started::Inline(Box::new(driver)));
    }
    std::thread::Builder::new()
        .name("tablenet-io".into())
        .spawn(move || driver.run())
        .map(Started::Thread)
        .map_err(|e| Error::io("spawn IO thread", &e))
}
