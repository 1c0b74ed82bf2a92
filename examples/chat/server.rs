//! The server: one room, relaying every line to every other member.

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use tablenet::{
    Config, Connection, ConnectionId, EventKind, Network, ObjectId, OverflowPolicy, Server, Source,
};

use crate::protocol::{ToMember, ToServer, check_name};

/// The room's state, changed only by network events.
pub struct Room {
    server: Server,
    /// Every open connection. `Connect` hands out the owning handle:
    /// dropping it would close the connection, so the room keeps it.
    connections: HashMap<ConnectionId, Connection>,
    /// Connections that said hello, with their names. `ConnectionId`s grow
    /// with every connection, so this lists members in the order they came.
    members: BTreeMap<ConnectionId, String>,
    /// Written before every log line (the demo labels the server's lines).
    label: &'static str,
}

impl Room {
    /// Starts listening. `key` is `None` for a plain room, or hex digits.
    pub fn open(
        net: &Network,
        bind: &str,
        port: u16,
        key: Option<&str>,
        label: &'static str,
    ) -> Result<Room, tablenet::Error> {
        Ok(Room {
            server: net.server(bind, port, key)?,
            connections: HashMap::new(),
            members: BTreeMap::new(),
            label,
        })
    }

    /// The address members connect to (the real port when `port` was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    fn log(&self, line: &str) {
        show!("{}{line}", self.label);
    }

    /// Reacts to one event. Events about anything else (the demo's members
    /// share the network) are ignored.
    pub fn handle(&mut self, event: EventKind) {
        match event {
            EventKind::Connect { connection, .. } => {
                self.connections.insert(connection.id(), connection);
            }
            EventKind::Receive {
                from: Source::Connection(id),
                packet,
            } => {
                // A packet that is not one of our messages is ignored.
                if let Ok(message) = tablenet::from_value(packet) {
                    self.receive(id, message);
                }
            }
            EventKind::ClientClose {
                connection, reason, ..
            } => {
                self.connections.remove(&connection);
                if let Some(name) = self.members.remove(&connection) {
                    self.log(&format!("* {name} left ({reason})"));
                    self.tell(&ToMember::Left { name }, self.everyone());
                }
            }
            // A member's connection failed.
            EventKind::Error {
                object: ObjectId::Connection(_),
                error,
                peer,
            } => match peer {
                Some(peer) => self.log(&format!("* a connection from {peer} failed: {error}")),
                None => self.log(&format!("* a connection failed: {error}")),
            },
            // Strangers' failed attempts, summed up (at most once a second).
            EventKind::Error {
                object: ObjectId::Server(_),
                error,
                ..
            } => self.log(&format!("* {error}")),
            _ => {}
        }
    }

    fn receive(&mut self, id: ConnectionId, message: ToServer) {
        match (self.members.get(&id), message) {
            (None, ToServer::Hello { name }) => self.hello(id, name),
            (Some(name), ToServer::Say { text }) => {
                // Control characters could play tricks on the other terminals.
                let text: String = text.chars().filter(|c| !c.is_control()).collect();
                self.log(&format!("<{name}> {text}"));
                let said = ToMember::Said {
                    name: name.clone(),
                    text,
                };
                self.tell(&said, self.everyone_but(id));
            }
            (Some(_), ToServer::Who) => {
                let names = self.members.values().cloned().collect();
                self.tell(&ToMember::Members { names }, vec![id]);
            }
            _ => {} // a second hello, or chat before hello: ignore it
        }
    }

    fn hello(&mut self, id: ConnectionId, name: String) {
        let refusal = match check_name(&name) {
            Err(reason) => Some(reason),
            Ok(()) if self.members.values().any(|n| *n == name) => {
                Some(format!("the name {name:?} is taken"))
            }
            Ok(()) => None,
        };
        if let Some(reason) = refusal {
            self.log(&format!("* refused a member: {reason}"));
            self.tell(&ToMember::Refused { reason }, vec![id]);
            // Sends what was queued (the refusal) first, then closes.
            self.server.disconnect(&[id]);
            return;
        }
        let from = self.connections.get(&id).map(Connection::address);
        self.log(&format!(
            "* {name} joined from {}",
            from.unwrap_or_default()
        ));
        self.tell(&ToMember::Joined { name: name.clone() }, self.everyone());
        self.members.insert(id, name);
        let members = self.members.values().cloned().collect();
        self.tell(&ToMember::Welcome { members }, vec![id]);
    }

    /// Sends one message to several members; the table is encoded once.
    fn tell(&self, message: &ToMember, to: Vec<ConnectionId>) {
        if let Ok(table) = tablenet::to_value(message) {
            // A member whose queue is full or who just left misses it.
            self.server.send(&table, &to);
        }
    }

    fn everyone(&self) -> Vec<ConnectionId> {
        self.members.keys().copied().collect()
    }

    fn everyone_but(&self, id: ConnectionId) -> Vec<ConnectionId> {
        self.members.keys().copied().filter(|m| *m != id).collect()
    }
}

/// `chat serve`: runs a room until the process is stopped.
pub fn serve(bind: &str, port: u16, key: Option<&str>) -> Result<(), Box<dyn Error>> {
    // A room must not miss a join or a leave: when the event ring is full,
    // the lossless policy slows the members down instead of losing events.
    let mut config = Config::default();
    config.overflow = OverflowPolicy::Lossless;
    // Failed attempts (scanners, wrong keys) as one summary line a second
    // at most, with the last one's address, instead of a line each.
    config.failure_reports_per_second = 0;
    let net = Network::with_config(config)?;
    let mut room = Room::open(&net, bind, port, key, "")
        .map_err(|e| format!("cannot listen on {bind} port {port}: {e}"))?;
    show!("listening on {}", room.local_addr());
    match key {
        Some(_) => show!("* encrypted: members need the same --key to join"),
        None => show!("* plain: anyone can join, and the traffic is not encrypted"),
    }
    loop {
        for event in net.wait_events(Duration::from_secs(60)) {
            room.handle(event.kind);
        }
    }
}
