//! A member: connects, sends each line of standard input, shows what arrives.

use std::error::Error;
use std::io::{BufRead, ErrorKind};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use tablenet::{Client, CloseReason, EventKind, Network, SendError};

use crate::protocol::{ToMember, ToServer};

/// How long connecting (and the key handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `server`, written `HOST:PORT`; HOST may be a name such as
/// localhost. `net.client` takes an IP literal, so the name is resolved here.
pub fn connect(net: &Network, server: &str, key: Option<&str>) -> Result<Client, Box<dyn Error>> {
    let mut addrs: Vec<SocketAddr> = server
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {server}: {e}"))?
        .collect();
    // A name can stand for several addresses. IPv4 first: `serve` listens on
    // 127.0.0.1 unless told otherwise.
    addrs.sort_by_key(SocketAddr::is_ipv6);
    let mut failure = format!("{server} has no address");
    for addr in addrs {
        let client = net
            .client(&addr.ip().to_string(), addr.port(), key)
            .map_err(|e| format!("cannot join {server}: {e}"))?;
        match client.wait_for_connect(CONNECT_TIMEOUT) {
            Ok(_) => return Ok(client),
            Err(tablenet::Error::Io {
                kind: ErrorKind::ConnectionRefused,
                ..
            }) => failure = format!("nobody is listening on {addr} (is the server running?)"),
            // Both sides have a key, and the keys differ.
            Err(e @ tablenet::Error::Secure(_)) => {
                let hint = "the server and its members need the same --key";
                return Err(format!("cannot join {addr}: {e}; {hint}").into());
            }
            // Only one side has a key, a timeout...: the message says which.
            Err(e) => return Err(format!("cannot join {addr}: {e}").into()),
        }
    }
    Err(failure.into())
}

/// How a message from the server reads on screen.
pub fn describe(message: &ToMember) -> String {
    match message {
        ToMember::Welcome { members } => format!("* welcome! members: {}", members.join(", ")),
        ToMember::Refused { reason } => format!("* refused: {reason}"),
        ToMember::Said { name, text } => format!("<{name}> {text}"),
        ToMember::Joined { name } => format!("* {name} joined"),
        ToMember::Left { name } => format!("* {name} left"),
        ToMember::Members { names } => format!("* members: {}", names.join(", ")),
    }
}

/// `chat join`: chats until `/quit`, the end of input, or the server goes.
pub fn join(server: &str, name: &str, key: Option<&str>) -> Result<(), Box<dyn Error>> {
    let net = Network::new();
    let client = Arc::new(connect(&net, server, key)?);
    client.send_serialized(&ToServer::Hello { name: name.into() })?;
    let how = if key.is_some() {
        "encrypted"
    } else {
        "not encrypted"
    };
    show!("* connected to {server} ({how}); /who lists the members, /quit leaves");

    // Reading standard input blocks, so it gets its own thread. Handles are
    // Send + Sync: that thread sends on the same client.
    let input = client.clone();
    std::thread::spawn(move || send_input(&input));

    // This thread shows what the server sends until the connection ends.
    loop {
        for event in net.wait_events(Duration::from_secs(60)) {
            match event.kind {
                EventKind::Receive { packet, .. } => match tablenet::from_value(packet) {
                    Ok(ToMember::Refused { reason }) => {
                        return Err(format!("the server refused you: {reason}").into());
                    }
                    Ok(message) => show!("{}", describe(&message)),
                    Err(_) => {} // not one of our messages: ignore it
                },
                // We disconnected (`/quit` or end of input) and the server saw it.
                EventKind::ServerClose {
                    reason: CloseReason::ClosedLocally,
                    ..
                } => return Ok(()),
                EventKind::ServerClose { reason, .. } => {
                    return Err(format!("lost the connection to the server ({reason})").into());
                }
                _ => {}
            }
        }
    }
}

/// Sends each line of standard input; leaves on `/quit` or at its end.
fn send_input(client: &Client) {
    for line in std::io::stdin().lock().split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        let message = match line.trim_end_matches('\r') {
            "" => continue,
            "/quit" => break,
            "/who" => ToServer::Who,
            command if command.starts_with('/') => {
                show!("* unknown command {command}: try /who or /quit");
                continue;
            }
            text => ToServer::Say { text: text.into() },
        };
        match client.send_serialized(&message) {
            Ok(()) => {}
            Err(SendError::Closed) => return, // the main thread reports why
            Err(e) => show!("* not sent: {e}"),
        }
    }
    // What was queued goes out first; then the main thread sees ServerClose.
    client.disconnect();
}
