//! `chat` without arguments: a server and two members, alice and bob, in one
//! process and on one network, so one event loop serves all three.

use std::error::Error;
use std::time::{Duration, Instant};

use tablenet::{Client, EventKind, Network, Source};

use crate::member::{connect, describe};
use crate::protocol::ToServer;
use crate::server::Room;

/// 64 hex digits: AES-256-GCM. A real key comes from `chat keygen`; this one
/// is the text "tablenet chat demo: not a secret", so it is public.
const DEMO_KEY: &str = "7461626c656e657420636861742064656d6f3a206e6f74206120736563726574";

struct Demo {
    net: Network,
    room: Room,
    members: Vec<(&'static str, Client)>,
}

pub fn run() -> Result<(), Box<dyn Error>> {
    show!("A chat server and two members, alice and bob, in this one process. They talk");
    show!("over TCP on 127.0.0.1, encrypted with AES-256-GCM (a demo key, not a secret).");
    show!("Every message is a table: -> and <- show them the way Lua would write them.");
    show!();
    let net = Network::new();
    let room = Room::open(&net, "127.0.0.1", 0, Some(DEMO_KEY), "server | ")?;
    show!("server | listening on {}", room.local_addr());
    let mut demo = Demo {
        net,
        room,
        members: Vec::new(),
    };

    demo.join("alice")?;
    demo.deliver(1)?; // alice is welcomed
    demo.join("bob")?;
    demo.deliver(2)?; // bob is welcomed, alice hears that bob joined
    demo.say("alice", "hi bob")?;
    demo.deliver(1)?;
    demo.say("bob", "hello alice! nobody on the network can read this")?;
    demo.deliver(1)?;
    demo.send("bob", ToServer::Who)?;
    demo.deliver(1)?;
    show!("alice  | /quit");
    demo.client("alice").disconnect();
    demo.deliver(1)?; // bob hears that alice left

    demo.net.shutdown(Duration::from_secs(1));
    show!();
    show!("Now between two terminals (docs/CHAT.md walks through it):");
    show!("  cargo run --example chat -- serve");
    show!("  cargo run --example chat -- join 127.0.0.1:4096 --name alice");
    Ok(())
}

impl Demo {
    fn client(&self, name: &str) -> &Client {
        let member = self.members.iter().find(|(n, _)| *n == name);
        &member.expect("a member of the demo").1
    }

    fn join(&mut self, name: &'static str) -> Result<(), Box<dyn Error>> {
        let server = self.room.local_addr().to_string();
        let client = connect(&self.net, &server, Some(DEMO_KEY))?;
        show!("{name:<6} | connected to {server}, encrypted");
        self.members.push((name, client));
        self.send(name, ToServer::Hello { name: name.into() })
    }

    fn send(&self, name: &str, message: ToServer) -> Result<(), Box<dyn Error>> {
        let table = tablenet::to_value(&message)?;
        show!("{name:<6} -> {table}");
        Ok(self.client(name).send(&table)?)
    }

    fn say(&self, name: &str, text: &str) -> Result<(), Box<dyn Error>> {
        self.send(name, ToServer::Say { text: text.into() })
    }

    /// Runs the event loop until `count` messages have reached members.
    fn deliver(&mut self, mut count: usize) -> Result<(), Box<dyn Error>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while count > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("the demo stalled: a message did not arrive within 5 s".into());
            }
            for event in self.net.wait_events(left) {
                match event.kind {
                    // A packet for a client: one of the members receives it.
                    EventKind::Receive {
                        from: Source::Client(id),
                        packet,
                    } => {
                        let member = self.members.iter().find(|(_, c)| c.id() == id);
                        let name = member.map_or("?", |(name, _)| *name);
                        show!("{name:<6} <- {packet}");
                        if let Ok(message) = tablenet::from_value(packet) {
                            show!("{name:<6} | {}", describe(&message));
                        }
                        count = count.saturating_sub(1);
                    }
                    // Everything else is the server's business.
                    kind => self.room.handle(kind),
                }
            }
        }
        Ok(())
    }
}
