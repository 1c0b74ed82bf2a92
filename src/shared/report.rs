//! [`ShutdownReport`]: what [`Network::shutdown`](crate::Network::shutdown)
//! could not deliver.

use super::event::CloseReason;
use super::ids::ObjectId;

/// What one connection left undelivered when the network shut down.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Abandoned {
    /// The client or connection.
    pub object: ObjectId,
    /// Frames queued and never (completely) written: messages, plus the
    /// Close frame or a heartbeat frame if those were still queued.
    pub frames: usize,
    /// Bytes queued and never written (on the wire, tags included).
    pub bytes: usize,
    /// Why it ended: [`CloseReason::Timeout`] when the shutdown's time ran
    /// out before it could close cleanly.
    pub reason: CloseReason,
}

/// The outcome of [`Network::shutdown`](crate::Network::shutdown).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Every connection that did not close cleanly, with what it abandoned.
    pub abandoned: Vec<Abandoned>,
}

impl ShutdownReport {
    /// True when every connection wrote all it had queued, and its Close,
    /// and ended cleanly.
    pub fn is_clean(&self) -> bool {
        self.abandoned.is_empty()
    }

    /// Frames abandoned over all connections.
    pub fn frames(&self) -> usize {
        self.abandoned.iter().map(|a| a.frames).sum()
    }

    /// Bytes abandoned over all connections.
    pub fn bytes(&self) -> usize {
        self.abandoned.iter().map(|a| a.bytes).sum()
    }
}
