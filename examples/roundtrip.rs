//! Builds the Lua network module's example table, encodes it as one frame, and decodes it back.
//!
//! Run: `cargo run --example roundtrip`

use tablenet::proto::{FrameDecoder, Limits, Preamble, encode_message};
use tablenet::{Value, table};

fn main() -> Result<(), tablenet::Error> {
    let limits = Limits::default();

    // A table, as a Lua script would write {OpCode = 10, Data = "From server", {1, 2, "three"}}.
    let message: Value = table! {
        "OpCode" => 10,
        "Data" => "From server",
        1 => table![1, 2, "three"],
    }
    .into();
    println!("message:  {message}");

    // What goes on the wire: the preamble once per connection, then frames.
    let mut wire = Vec::new();
    Preamble::plain().encode(&mut wire)?;
    encode_message(&message, &limits, &mut wire)?;
    println!("on the wire ({} bytes): {}", wire.len(), hex(&wire));

    // The receiving side, fed in 3-byte chunks to show the stream decoder
    // does not care how the bytes arrive.
    let mut decoder = FrameDecoder::new(&limits);
    let mut received = Vec::new();
    let mut preamble = None;
    for chunk in wire.chunks(3) {
        decoder.push(chunk);
        if preamble.is_none() {
            preamble = decoder.next_preamble()?;
        }
        if preamble.is_some() {
            while let Some(frame) = decoder.next_frame()? {
                received.push(frame.decode_value(&limits)?);
            }
        }
    }
    println!("decoded:  {}", received[0]);
    println!(
        "OpCode = {}, Data = {}",
        received[0]["OpCode"], received[0]["Data"]
    );
    assert_eq!(received, [message]);
    println!("round trip ok");
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
