//! [`SendError`]: why a send was refused.

use crate::error::Error;

/// Why a message was not queued. A refused send never harms the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection's outgoing queue is at its byte limit; an
    /// [`EventKind::Drained`](crate::EventKind::Drained) event follows when
    /// it is down to its low-water mark (`wait_writable` waits for the same).
    #[error("send queue full ({queued} bytes queued, limit {limit})")]
    QueueFull {
        /// Bytes queued now.
        queued: usize,
        /// The configured limit (`Config::send_queue_bytes`).
        limit: usize,
    },
    /// The connection is closed or closing, or the id names no connection.
    #[error("connection closed")]
    Closed,
    /// The encoded message is larger than the maximum frame size.
    #[error("message of at least {size} bytes exceeds the maximum frame size of {limit} bytes")]
    TooLarge {
        /// The frame's size (at least).
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// The message nests tables deeper than the limit.
    #[error("message nests tables deeper than the limit of {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// The value cannot be sent (for example a serde conversion failed).
    #[error("unsendable value: {0}")]
    Unsendable(Error),
}

impl From<Error> for SendError {
    fn from(e: Error) -> SendError {
        match e {
            Error::FrameTooLarge { size, limit } => SendError::TooLarge { size, limit },
            Error::TooDeep { limit } => SendError::TooDeep { limit },
            Error::Closed | Error::Shutdown => SendError::Closed,
            e => SendError::Unsendable(e),
        }
    }
}
