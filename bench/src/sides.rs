//! Small helpers for driving tablenet and message-io the way an application
//! would.

use std::time::{Duration, Instant};

use message_io::network::{Endpoint, SendStatus};
use message_io::node::{NodeHandler, NodeTask};
use tablenet::{Config, Connection, EventKind, Network, OverflowPolicy, SendError, Value};

/// The configuration every tablenet side uses: defaults, lossless ring.
pub fn lossless_config() -> Config {
    let mut config = Config::default();
    config.overflow = OverflowPolicy::Lossless;
    config
}

/// A network with [`lossless_config`].
pub fn lossless_network() -> Network {
    Network::with_config(lossless_config()).expect("valid config")
}

/// Drains `net` until `n` Connect events arrived; returns their handles.
pub fn accept(net: &Network, n: usize, timeout: Duration) -> Vec<Connection> {
    let deadline = Instant::now() + timeout;
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} connections arrived",
            conns.len()
        );
        for event in net.wait_events(Duration::from_millis(100)) {
            match event.kind {
                EventKind::Connect { connection, .. } => conns.push(connection),
                EventKind::Error { error, .. } => panic!("server error: {error}"),
                _ => {}
            }
        }
    }
    conns
}

/// Sends with back-pressure as the API intends: on `QueueFull`, wait for
/// the `Drained` event on `net`, then retry the same message.
pub fn send_lossless(net: &Network, value: &Value, send: impl Fn(&Value) -> Result<(), SendError>) {
    loop {
        match send(value) {
            Ok(()) => return,
            Err(SendError::QueueFull { .. }) => wait_drained(net),
            Err(e) => panic!("send failed: {e}"),
        }
    }
}

/// Waits (never spins) until a `Drained` event arrives on `net`.
pub fn wait_drained(net: &Network) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no Drained event within 30 s");
        let events = net.wait_events(Duration::from_secs(1));
        if events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Drained { .. }))
        {
            return;
        }
    }
}

/// A message-io node whose event loop runs in the background; stopping and
/// joining it happens on drop.
pub struct MioNode {
    pub handler: NodeHandler<()>,
    task: Option<NodeTask>,
}

impl MioNode {
    pub fn new(handler: NodeHandler<()>, task: NodeTask) -> MioNode {
        MioNode {
            handler,
            task: Some(task),
        }
    }

    /// Sends and checks the status (message-io's `send` blocks by spinning
    /// when the socket buffer is full).
    pub fn send(&self, endpoint: Endpoint, data: &[u8]) {
        let status = self.handler.network().send(endpoint, data);
        assert!(
            status == SendStatus::Sent,
            "message-io send failed: {status:?}"
        );
    }
}

impl Drop for MioNode {
    fn drop(&mut self) {
        self.handler.stop();
        drop(self.task.take());
    }
}
