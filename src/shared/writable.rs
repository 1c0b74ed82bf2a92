//! [`Writable`]: a future that resolves when a connection can take more.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::link::Link;
use crate::error::Error;

/// Resolves when a connection's (or client's) send queue is at or below the
/// low-water mark ([`Config::send_queue_low_water`](crate::Config::send_queue_low_water)),
/// at once if it already is, or with [`Error::Closed`] once it is closing
/// or closed. Made by `Connection::writable` and `Client::writable`
/// (cargo feature `futures`).
///
/// It works with any executor: the IO thread wakes the task when the queue
/// comes down to the mark or the connection closes. It has no timeout of its
/// own: combine it with your runtime's (for example `tokio::time::timeout`).
/// With [`Config::inline_io`](crate::Config::inline_io) nothing writes
/// between the application's calls, so nothing would wake it: use the
/// blocking `wait_writable` there, which drives the network itself.
#[must_use = "futures do nothing unless awaited"]
pub struct Writable {
    link: Arc<Link>,
}

impl Writable {
    pub(crate) fn new(link: Arc<Link>) -> Writable {
        Writable { link }
    }
}

impl Future for Writable {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.link.poll_writable(cx.waker())
    }
}

impl fmt::Debug for Writable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writable")
            .field("socket_id", &self.link.id)
            .finish()
    }
}
