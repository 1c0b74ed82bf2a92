//! The encrypted mode's test vectors in docs/PROTOCOL.md (section 5.8),
//! recomputed with the real handshake and sealing, so the document and the
//! code cannot drift apart.

use super::tests::{CLIENT_EPHEMERAL, CLIENT_STATIC, SERVER_EPHEMERAL};
use super::{CipherSuite, ClientStatic, Handshake, SecretKey, handshake};
use crate::proto::{FrameDecoder, Limits, Preamble};

const DOC: &str = include_str!("../../../docs/PROTOCOL.md");
const KEY_128: &str = "0C03EA65238DD2C25EB87CE563868098";
const KEY_256: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";

/// Space-separated lowercase hex, as the document writes bytes.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn encode(preamble: &Preamble) -> Vec<u8> {
    let mut out = Vec::new();
    preamble.encode(&mut out).unwrap();
    out
}

/// Decodes a preamble with the real decoder, as it arrives on the wire.
fn decode(bytes: &[u8]) -> Preamble {
    let mut decoder = FrameDecoder::new(&Limits::default());
    decoder.push(bytes);
    let preamble = decoder.next_preamble().unwrap().unwrap();
    assert_eq!(decoder.buffered(), 0);
    preamble
}

/// Splits one complete frame into its length prefix and payload.
fn split(frame: &[u8]) -> ([u8; 4], &[u8]) {
    let (prefix, payload) = frame.split_first_chunk::<4>().unwrap();
    assert_eq!(u32::from_le_bytes(*prefix) as usize, payload.len());
    (*prefix, payload)
}

/// Every row of one vector set: (label, bytes).
fn rows(suite: CipherSuite, hex_key: &str) -> Vec<(&'static str, Vec<u8>)> {
    let key = SecretKey::from_hex(hex_key).unwrap();
    let mut client = Handshake::client(&key, suite, &ClientStatic::from_private(CLIENT_STATIC))
        .with_fixed_ephemeral_for_testing_only(CLIENT_EPHEMERAL);
    let mut server =
        Handshake::server(&key, suite).with_fixed_ephemeral_for_testing_only(SERVER_EPHEMERAL);
    let client_preamble = encode(&client.preamble());
    let server_preamble = encode(&server.preamble());
    let message1 = client.first_message().unwrap();
    client.receive_preamble(&decode(&server_preamble)).unwrap();
    server.receive_preamble(&decode(&client_preamble)).unwrap();
    let (prefix, payload) = split(&message1);
    let message2 = server.receive(prefix, payload).unwrap().send;
    let (prefix, payload) = split(&message2);
    let message3 = client.receive(prefix, payload).unwrap().send;
    let (prefix, payload) = split(&message3);
    let done = server.receive(prefix, payload).unwrap();
    let confirm = done.send;
    let mut server = done.session.unwrap();
    let (prefix, payload) = split(&confirm);
    let mut client = client.receive(prefix, payload).unwrap().session.unwrap();
    let mut message = Vec::new();
    client.sealer().seal(&[0x01, 0x00], &mut message).unwrap();
    let (prefix, payload) = split(&message);
    assert_eq!(server.opener().open(prefix, payload).unwrap(), [1, 0]);
    let mut reply = Vec::new();
    server.sealer().seal(&[0x01, 0x00], &mut reply).unwrap();
    vec![
        ("noise psk", handshake::noise_psk(&key).to_vec()),
        ("client preamble", client_preamble),
        ("message 1", message1),
        ("server preamble", server_preamble),
        ("message 2", message2),
        ("message 3", message3),
        ("server confirm", confirm),
        ("client message 01 00", message),
        ("server message 01 00", reply),
    ]
}

#[test]
fn protocol_md_encryption_vectors() {
    let mut missing = String::new();
    for (suite, hex_key) in [
        (CipherSuite::Aes256Gcm, KEY_128),
        (CipherSuite::Aes256Gcm, KEY_256),
        (CipherSuite::ChaCha20Poly1305, KEY_256),
    ] {
        let bits = hex_key.len() * 4;
        for (label, bytes) in rows(suite, hex_key) {
            let row = format!("| {suite} | {bits} | {label} | `{}` |", hex(&bytes));
            if !DOC.lines().any(|line| line == row) {
                missing += &row;
                missing.push('\n');
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/PROTOCOL.md lacks these rows:\n{missing}"
    );
}
