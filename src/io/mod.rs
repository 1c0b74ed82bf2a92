//! The IO driver: mio reactors moving bytes between sockets and each
//! connection's sans-IO [`Session`](crate::proto::session::Session).
//!
//! A network runs `Config::io_threads` reactors (one by default), each on a
//! thread of its own with its own poller, waker and command queue. Every
//! server and client is given to one when it is created; a server's
//! accepted connections are handed on to the reactors in turn once their
//! handshake ends (`handoff`), so a connection is driven by one reactor at
//! a time and its events keep their order. The reactors share only the
//! ring (each fills at most its share of the free room before asking
//! again), the memory budget (memory one frees wakes the others that wait
//! for it) and each server's connection counts.
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
mod handoff;
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

/// Starts a network's IO: a reactor and its waker for each of
/// `Config::io_threads`, each run on a thread of its own, or one handed back
/// to be driven inline (`Config::inline_io`).
pub(crate) fn start(net: &Arc<NetShared>) -> Result<Started, Error> {
    let mut drivers = Vec::with_capacity(net.reactors());
    let handoff = handoff::Handoff::new(net.reactors());
    for shard in 0..net.reactors() {
        let poll = mio::Poll::new().map_err(|e| Error::io("create poller", &e))?;
        let waker =
            mio::Waker::new(poll.registry(), WAKER).map_err(|e| Error::io("create waker", &e))?;
        net.install_waker(shard, waker);
        drivers.push(Driver::new(poll, net.clone(), shard, handoff.clone()));
    }
    if net.config.inline_io
        && let Some(driver) = drivers.pop()
    {
        return Ok(Started::Inline(Box::new(driver)));
    }
    let single = drivers.len() == 1;
    let mut handles = Vec::with_capacity(drivers.len());
    for (shard, driver) in drivers.into_iter().enumerate() {
        let name = if single {
            "tablenet-io".to_owned()
        } else {
            format!("tablenet-io-{shard}")
        };
        match std::thread::Builder::new()
            .name(name)
            .spawn(move || driver.run())
        {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                // Those started stop at the network's shutdown, which this
                // error leads to (the network is unusable without them all).
                if !handles.is_empty() {
                    net.command_all(|| crate::shared::Command::Shutdown(std::time::Instant::now()));
                }
                for handle in handles {
                    let _ = handle.join();
                }
                return Err(Error::io("spawn IO thread", &e));
            }
        }
    }
    Ok(Started::Threads(handles))
}
