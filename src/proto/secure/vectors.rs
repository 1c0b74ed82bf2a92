//! The encrypted mode's test vectors in docs/PROTOCOL.md (section 5.8),
//! recomputed with the real handshake and sealing, so the document and the
//! code cannot drift apart.

use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use super::seal::Opener;
use super::suite::Cipher;
use super::{CONFIRM_FRAME_LEN, CipherSuite, Handshake, Role, SecretKey, TAG_LEN};
use crate::proto::{FrameDecoder, Limits, Preamble};

const DOC: &str = include_str!("../../../docs/PROTOCOL.md");
const KEY_128: &str = "0C03EA65238DD2C25EB87CE563868098";
const KEY_256: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
const CLIENT_SALT: [u8; 32] = [0x11; 32];
const SERVER_SALT: [u8; 32] = [0x22; 32];
/// The labels of the HKDF infos: each info is its label's 28 ASCII bytes,
/// then the suite byte.
const INFO_CLIENT_TO_SERVER: &str = "tablenet v1 client to server";
const INFO_SERVER_TO_CLIENT: &str = "tablenet v1 server to client";

/// Space-separated lowercase hex, as the document writes bytes.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Asserts the vectors table has the row `| suite | label | `bytes` |`.
fn assert_row(suite: CipherSuite, label: &str, bytes: &[u8]) {
    let start = format!("| {suite} | {label} | ");
    let row = DOC
        .lines()
        .find(|line| line.starts_with(&start))
        .unwrap_or_else(|| panic!("docs/PROTOCOL.md lacks the row {start}"));
    let expected = format!("{start}`{}` |", hex(bytes));
    assert_eq!(row, expected, "docs/PROTOCOL.md: {suite} {label}");
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

/// A direction's session key as section 5.3 derives it: info = the label,
/// then the suite byte (29 bytes).
fn session_key(suite: CipherSuite, key: &SecretKey, label: &str) -> Vec<u8> {
    let salt: Vec<u8> = CLIENT_SALT.iter().chain(&SERVER_SALT).copied().collect();
    let info: Vec<u8> = label.bytes().chain([suite.to_byte()]).collect();
    assert_eq!(info.len(), 29);
    let mut okm = vec![0; suite.key_bits() / 8];
    Hkdf::<Sha256>::new(Some(&salt), key.as_bytes())
        .expand(&info, &mut okm)
        .unwrap();
    okm
}

/// An opener keyed with `session_key`, expecting counter 0.
fn opener(suite: CipherSuite, session_key: &[u8]) -> Opener {
    Opener::new(Cipher::new(suite, session_key).unwrap(), suite)
}

#[test]
fn protocol_md_encryption_vectors() {
    for (suite, hex_key) in [
        (CipherSuite::Aes128Gcm, KEY_128),
        (CipherSuite::Aes256Gcm, KEY_256),
        (CipherSuite::ChaCha20Poly1305, KEY_256),
    ] {
        // The suite table and the key.
        let byte = suite.to_byte();
        assert!(
            DOC.contains(&format!("| `{byte:02x}` | {suite}")),
            "docs/PROTOCOL.md lacks suite byte {byte:02x} for {suite}"
        );
        let key = SecretKey::from_hex(hex_key).unwrap();
        assert!(
            DOC.contains(hex_key),
            "docs/PROTOCOL.md lacks the key {hex_key}"
        );
        assert_row(suite, "key", key.as_bytes());

        // The preambles, through the real encoder and decoder.
        let mut client = Handshake::new(Role::Client, &key, suite, CLIENT_SALT).unwrap();
        let mut server = Handshake::new(Role::Server, &key, suite, SERVER_SALT).unwrap();
        let client_preamble = encode(&client.preamble());
        let server_preamble = encode(&server.preamble());
        assert_row(suite, "client preamble", &client_preamble);
        assert_row(suite, "server preamble", &server_preamble);

        // The key confirmations.
        let client_confirm = client.receive_preamble(&decode(&server_preamble)).unwrap();
        let server_confirm = server.receive_preamble(&decode(&client_preamble)).unwrap();
        assert_eq!(client_confirm.len(), CONFIRM_FRAME_LEN);
        assert_eq!(server_confirm.len(), CONFIRM_FRAME_LEN);
        assert_row(suite, "client confirmation", &client_confirm);
        assert_row(suite, "server confirmation", &server_confirm);

        // The intermediate values, as section 5.3 and 5.5 compute them. The
        // session keys open the real frames, so they are the code's keys.
        let transcript: Vec<u8> = Sha256::new()
            .chain_update(&client_preamble)
            .chain_update(&server_preamble)
            .finalize()
            .to_vec();
        assert_row(suite, "transcript hash", &transcript);
        let confirm_plaintext: Vec<u8> = [0x02].iter().chain(&transcript).copied().collect();
        let client_to_server = session_key(suite, &key, INFO_CLIENT_TO_SERVER);
        let server_to_client = session_key(suite, &key, INFO_SERVER_TO_CLIENT);
        assert_row(suite, "client-to-server key", &client_to_server);
        assert_row(suite, "server-to-client key", &server_to_client);
        let mut client_to_server = opener(suite, &client_to_server);
        let mut server_to_client = opener(suite, &server_to_client);
        let (prefix, payload) = split(&client_confirm);
        assert_eq!(
            client_to_server.open(prefix, payload).unwrap(),
            confirm_plaintext
        );
        let (prefix, payload) = split(&server_confirm);
        assert_eq!(
            server_to_client.open(prefix, payload).unwrap(),
            confirm_plaintext
        );

        // The handshake completes, and the client's first frame is counter 1.
        let (prefix, payload) = split(&server_confirm);
        let mut client = client.receive_confirm(prefix, payload).unwrap();
        let (prefix, payload) = split(&client_confirm);
        let mut server = server.receive_confirm(prefix, payload).unwrap();
        assert_eq!(client.sealer().counter(), 1);
        let mut frame = Vec::new();
        client.sealer().seal(&[0x01, 0x00], &mut frame).unwrap();
        assert_eq!(frame.len(), 4 + 2 + TAG_LEN);
        assert_row(suite, "client frame 1 (01 00)", &frame);
        let (prefix, payload) = split(&frame);
        assert_eq!(server.opener().open(prefix, payload).unwrap(), [0x01, 0x00]);
        assert_eq!(
            client_to_server.open(prefix, payload).unwrap(),
            [0x01, 0x00]
        );
    }

    // The constants the text states.
    for text in [
        format!("info = \"{INFO_CLIENT_TO_SERVER}\" || suite"),
        format!("info = \"{INFO_SERVER_TO_CLIENT}\" || suite"),
        "29 bytes in all".to_string(),
        format!("({CONFIRM_FRAME_LEN} bytes)"),
        "| 6 | 2 | ext_len | `21 00` (33) |".to_string(),
        "4 zero bytes, then the frame's counter as a u64".to_string(),
    ] {
        assert!(DOC.contains(&text), "docs/PROTOCOL.md lacks {text:?}");
    }
}

/// Both session keys of a handshake with `suite` and `key` (section 5.3),
/// checked against the code: each opens its direction's real confirmation.
fn checked_session_keys(suite: CipherSuite, key: &SecretKey) -> [Vec<u8>; 2] {
    let mut client = Handshake::new(Role::Client, key, suite, CLIENT_SALT).unwrap();
    let mut server = Handshake::new(Role::Server, key, suite, SERVER_SALT).unwrap();
    let client_confirm = client.receive_preamble(&server.preamble()).unwrap();
    let server_confirm = server.receive_preamble(&client.preamble()).unwrap();
    let client_to_server = session_key(suite, key, INFO_CLIENT_TO_SERVER);
    let server_to_client = session_key(suite, key, INFO_SERVER_TO_CLIENT);
    let (prefix, payload) = split(&client_confirm);
    opener(suite, &client_to_server)
        .open(prefix, payload)
        .unwrap();
    let (prefix, payload) = split(&server_confirm);
    opener(suite, &server_to_client)
        .open(prefix, payload)
        .unwrap();
    [client_to_server, server_to_client]
}

/// The suite byte in the HKDF info separates the suites: one key and the
/// same salts never give two suites (or two directions) the same session
/// key, and AES-128-GCM's 16-byte keys are not the start of the others.
#[test]
fn session_keys_bind_the_suite() {
    let key = SecretKey::from_hex(KEY_256).unwrap();
    let keys: Vec<(CipherSuite, Vec<u8>)> = [
        CipherSuite::Aes128Gcm,
        CipherSuite::Aes256Gcm,
        CipherSuite::ChaCha20Poly1305,
    ]
    .into_iter()
    .flat_map(|suite| checked_session_keys(suite, &key).map(|k| (suite, k)))
    .collect();
    assert_eq!(keys.len(), 6);
    for (i, (suite_a, a)) in keys.iter().enumerate() {
        for (j, (suite_b, b)) in keys.iter().enumerate() {
            assert!(
                i == j || !b.starts_with(a),
                "{suite_a} key {} is the start of {suite_b} key {}",
                hex(a),
                hex(b)
            );
        }
    }
}
