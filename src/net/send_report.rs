//! [`SendReport`]: what each connection said to one multi-connection send.

use crate::shared::{ConnectionId, SendError};

/// The result of [`Server::send_each`](crate::Server::send_each) or
/// [`Server::broadcast_each`](crate::Server::broadcast_each): one entry per
/// recipient, in the order they were listed (for a broadcast, in no
/// particular order), saying whether that connection queued the message.
///
/// ```
/// # use tablenet::{Network, table};
/// # let net = Network::new();
/// # let server = net.server("127.0.0.1", 0, None).unwrap();
/// let report = server.broadcast_each(&table! { "tick" => 1 }.into());
/// for (id, error) in report.refused() {
///     eprintln!("{id:?} did not take the tick: {error}");
/// }
/// assert_eq!(report.accepted(), 0); // nobody is connected yet
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    results: Vec<(ConnectionId, Result<(), SendError>)>,
}

impl SendReport {
    pub(crate) fn with_capacity(n: usize) -> SendReport {
        SendReport {
            results: Vec::with_capacity(n),
        }
    }

    pub(crate) fn push(&mut self, id: ConnectionId, result: Result<(), SendError>) {
        self.results.push((id, result));
    }

    /// How many connections queued the message (what `send` and `broadcast`
    /// return).
    pub fn accepted(&self) -> usize {
        self.results.iter().filter(|(_, r)| r.is_ok()).count()
    }

    /// The connections that refused, and why ([`SendError::QueueFull`],
    /// [`SendError::Closed`] for a closing or unknown id, or the value's own
    /// error, which every recipient then shares).
    pub fn refused(&self) -> impl Iterator<Item = (ConnectionId, &SendError)> {
        self.results
            .iter()
            .filter_map(|(id, r)| r.as_ref().err().map(|e| (*id, e)))
    }

    /// True when every recipient queued it (also when there were none).
    pub fn all_accepted(&self) -> bool {
        self.results.iter().all(|(_, r)| r.is_ok())
    }

    /// Every recipient and its result.
    pub fn results(&self) -> &[(ConnectionId, Result<(), SendError>)] {
        &self.results
    }

    /// Number of recipients.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// True when there were no recipients.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }
}

impl IntoIterator for SendReport {
    type Item = (ConnectionId, Result<(), SendError>);
    type IntoIter = std::vec::IntoIter<(ConnectionId, Result<(), SendError>)>;

    fn into_iter(self) -> Self::IntoIter {
        self.results.into_iter()
    }
}
