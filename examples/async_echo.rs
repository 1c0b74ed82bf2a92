//! An echo server and a client in one process, both driven from async tasks
//! under tokio: the server's task awaits the network's event stream and
//! echoes every message back; the client's task sends numbered messages,
//! waiting for room with `writable().await` when its queue is full, and
//! checks that every echo comes back in order. Exits 0 when all came back.
//!
//! Run: `cargo run --features futures --example async_echo`
//!
//! tablenet's async API is tied to no runtime: the IO thread wakes the
//! tasks, so the same code runs under any executor.

use std::collections::HashMap;
use std::time::Duration;

use tablenet::{Connection, EventKind, Network, SendError, Source, Value, table};

const MESSAGES: i64 = 2_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server_net = Network::new();
    let server = server_net.server("127.0.0.1", 0, None)?;
    println!("echo server on {}", server.local_addr());

    // The server: every Receive is sent back where it came from.
    let echo = tokio::spawn(async move {
        let mut events = server_net.events();
        let mut conns: HashMap<_, Connection> = HashMap::new();
        while let Some(event) = events.next_event().await {
            match event.kind {
                EventKind::Connect { connection, .. } => {
                    println!("server: {:?} connected", connection.id());
                    conns.insert(connection.id(), connection);
                }
                EventKind::Receive {
                    from: Source::Connection(id),
                    packet,
                } => {
                    if let Some(conn) = conns.get(&id) {
                        send_with_backpressure(conn, &packet).await?;
                    }
                }
                EventKind::ClientClose { connection, .. } => {
                    println!("server: {connection:?} left");
                    conns.remove(&connection);
                    return Ok::<_, SendError>(());
                }
                _ => {}
            }
        }
        Ok(())
    });

    // The client: its own network, its own event stream.
    let client_net = Network::new();
    let client = client_net.connect(server.local_addr(), None)?;
    let mut events = client_net.events();
    let sender = tokio::spawn(async move {
        for n in 0..MESSAGES {
            let message: Value = table! { "n" => n, "text" => "echo me" }.into();
            loop {
                match client.send(&message) {
                    Ok(()) => break,
                    // Full: wait (without blocking the executor) for room.
                    Err(SendError::QueueFull { .. }) => client.writable().await?,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(client)
    });

    let mut next = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while next < MESSAGES {
        let event = tokio::time::timeout_at(deadline, events.next_event())
            .await
            .map_err(|_| format!("timed out with {next} of {MESSAGES} echoes"))?
            .ok_or("the client's network shut down")?;
        match event.kind {
            EventKind::Connected { result, .. } => {
                result?;
                println!("client: connected");
            }
            EventKind::Receive { packet, .. } => {
                let n = packet.get("n").and_then(Value::as_i64);
                if n != Some(next) {
                    return Err(format!("echo {n:?} where {next} was due").into());
                }
                next += 1;
            }
            other => return Err(format!("client: unexpected {other:?}").into()),
        }
    }
    println!("client: all {MESSAGES} echoes came back in order");

    let client = sender.await?.map_err(|e| e.to_string())?;
    drop(client); // closes the connection; the server task then ends
    echo.await??;
    drop(server);
    println!("done");
    Ok(())
}

/// Sends `packet` on `conn`, awaiting room whenever its queue is full.
async fn send_with_backpressure(conn: &Connection, packet: &Value) -> Result<(), SendError> {
    loop {
        match conn.send(packet) {
            Err(SendError::QueueFull { .. }) => {
                if conn.writable().await.is_err() {
                    return Err(SendError::Closed);
                }
            }
            other => return other,
        }
    }
}
