//! [`EventStream`]: the network's events as a `futures_core::Stream`
//! (cargo feature `futures`).

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::network::Network;
use crate::shared::Event;

/// The events of a [`Network`], oldest first, as a
/// [`futures_core::Stream`], for any executor (tokio, async-std, smol, a
/// hand-written one): made by [`Network::events`].
///
/// It takes events as [`Network::poll_events`] does, a batch at a time, and
/// when there are none it registers the task's waker with the event ring;
/// the IO thread wakes it when events arrive (from the same place as the
/// wake hook, [`Network::set_wake_hook`]), so nothing polls or spins. Use
/// one stream per network: streams, `poll_events` and `wait_events` all
/// take from the same ring, and each event goes to whichever takes it
/// first. The stream ends once the network has shut down and every event
/// has been taken.
///
/// **Inline IO** ([`Config::inline_io`](crate::Config::inline_io)) cannot
/// be driven from here: there the sockets move only inside the
/// application's own calls, on its own thread, and no thread is left to
/// watch them and wake a task when data arrives (inline mode never calls
/// the wake hook either). The stream then only drives one non-blocking
/// round each time the executor polls it, and nothing wakes it: keep the
/// IO thread (the default) for async code, or call `poll_events` from your
/// loop's tick.
pub struct EventStream {
    net: Network,
    batch: VecDeque<Event>,
}

impl EventStream {
    pub(crate) fn new(net: Network) -> EventStream {
        EventStream {
            net,
            batch: VecDeque::new(),
        }
    }

    /// The next event, waiting for it without blocking the thread; `None`
    /// once the network has shut down and every event was taken (the same
    /// as the stream's `next`, without needing an extension trait).
    pub async fn next_event(&mut self) -> Option<Event> {
        poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if let Some(event) = self.batch.pop_front() {
            return Poll::Ready(Some(event));
        }
        let shared = self.net.shared();
        if shared.config.inline_io {
            shared.drive(Duration::ZERO);
        }
        // Checked before taking: events produced before the shutdown
        // finished are still taken below.
        let shut_down = shared.is_shut_down();
        self.batch = shared.ring.take_or_register(cx.waker()).into();
        match self.batch.pop_front() {
            Some(event) => Poll::Ready(Some(event)),
            None if shut_down && shared.ring.pending() == 0 => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

impl futures_core::Stream for EventStream {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.get_mut().poll_event(cx)
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("buffered", &self.batch.len())
            .finish()
    }
}
