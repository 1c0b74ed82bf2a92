//! Both roles in memory: handshakes, tampering, counters, keys, rekeying and
//! the published test vectors.

use super::*;
use crate::Error;
use crate::proto::{FLAG_ENCRYPTED, Limits, Preamble, VERSION, encode_message};

const KEY_128: &str = "0C03EA65238DD2C25EB87CE563868098";
const KEY_256: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
/// Fixed private keys for reproducible handshakes: the client's static, its
/// ephemeral and the server's ephemeral.
pub(crate) const CLIENT_STATIC: [u8; 32] = [0x11; 32];
pub(crate) const CLIENT_EPHEMERAL: [u8; 32] = [0x22; 32];
pub(crate) const SERVER_EPHEMERAL: [u8; 32] = [0x33; 32];

fn key(hex: &str) -> SecretKey {
    SecretKey::from_hex(hex).unwrap()
}

fn encode(preamble: &Preamble) -> Vec<u8> {
    let mut out = Vec::new();
    preamble.encode(&mut out).unwrap();
    out
}

/// Splits one complete frame into its prefix and payload.
fn split(frame: &[u8]) -> ([u8; 4], Vec<u8>) {
    let (prefix, payload) = frame.split_first_chunk::<4>().unwrap();
    assert_eq!(u32::from_le_bytes(*prefix) as usize, payload.len());
    (*prefix, payload.to_vec())
}

/// Splits a buffer of back-to-back frames.
fn frames(mut wire: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        let len = u32::from_le_bytes(wire[..4].try_into().unwrap()) as usize;
        out.push(split(&wire[..4 + len]));
        wire = &wire[4 + len..];
    }
    out
}

fn client_static(byte: u8) -> ClientStatic {
    ClientStatic::from_private([byte; 32])
}

/// A client and a server handshake with every key fixed; the client's
/// ephemeral is `client_e` repeated.
fn fixed(
    client_key: &SecretKey,
    server_key: &SecretKey,
    suite: CipherSuite,
    client_e: u8,
) -> (Handshake, Handshake) {
    let client = Handshake::client(
        client_key,
        suite,
        &ClientStatic::from_private(CLIENT_STATIC),
    )
    .with_fixed_ephemeral_for_testing_only([client_e; 32]);
    let server = Handshake::server(server_key, suite)
        .with_fixed_ephemeral_for_testing_only(SERVER_EPHEMERAL);
    (client, server)
}

/// The wire of one handshake, message by message.
struct Transcript {
    client_preamble: Vec<u8>,
    server_preamble: Vec<u8>,
    message1: Vec<u8>,
    message2: Vec<u8>,
    message3: Vec<u8>,
    confirm: Vec<u8>,
}

/// Runs messages 1 and 2 between `client` and `server` (preambles through
/// the real decoder); gives message 3 as the client wrote it.
fn first_three(client: &mut Handshake, server: &mut Handshake) -> Transcript {
    let client_preamble = encode(&client.preamble());
    let server_preamble = encode(&server.preamble());
    let message1 = client.first_message().unwrap();
    client
        .receive_preamble(&decode_preamble(&server_preamble))
        .unwrap();
    server
        .receive_preamble(&decode_preamble(&client_preamble))
        .unwrap();
    let (prefix, payload) = split(&message1);
    let progress = server.receive(prefix, &payload).unwrap();
    assert!(progress.session.is_none());
    let message2 = progress.send;
    let (prefix, payload) = split(&message2);
    let progress = client.receive(prefix, &payload).unwrap();
    assert!(progress.session.is_none());
    Transcript {
        client_preamble,
        server_preamble,
        message1,
        message2,
        message3: progress.send,
        confirm: Vec::new(),
    }
}

/// A full handshake with fixed keys: (client session, server session, the
/// server's confirmation frame).
fn handshake(
    client_key: &SecretKey,
    server_key: &SecretKey,
    suite: CipherSuite,
    client_e: u8,
) -> (Session, Session, Vec<u8>) {
    let (mut client, mut server) = fixed(client_key, server_key, suite, client_e);
    let t = first_three(&mut client, &mut server);
    let (prefix, payload) = split(&t.message3);
    let done = server.receive(prefix, &payload).unwrap();
    let (prefix, payload) = split(&done.send);
    let client_session = client.receive(prefix, &payload).unwrap().session.unwrap();
    (client_session, done.session.unwrap(), done.send)
}

fn full_transcript(suite: CipherSuite, hex_key: &str) -> (Transcript, Session, Session) {
    let k = key(hex_key);
    let (mut client, mut server) = fixed(&k, &k, suite, CLIENT_EPHEMERAL[0]);
    let mut t = first_three(&mut client, &mut server);
    let (prefix, payload) = split(&t.message3);
    let done = server.receive(prefix, &payload).unwrap();
    t.confirm = done.send.clone();
    let (prefix, payload) = split(&done.send);
    let c = client.receive(prefix, &payload).unwrap().session.unwrap();
    (t, c, done.session.unwrap())
}

fn decode_preamble(bytes: &[u8]) -> Preamble {
    let mut decoder = crate::proto::FrameDecoder::new(&Limits::default());
    decoder.push(bytes);
    let preamble = decoder.next_preamble().unwrap().unwrap();
    assert_eq!(decoder.buffered(), 0);
    preamble
}

/// A full handshake: (client session, server session).
pub(crate) fn sessions(suite: CipherSuite, hex_key: &str) -> (Session, Session) {
    let k = key(hex_key);
    let (c, s, _) = handshake(&k, &k, suite, CLIENT_EPHEMERAL[0]);
    (c, s)
}

const SUITES: [(CipherSuite, &str); 3] = [
    (CipherSuite::Aes256Gcm, KEY_128),
    (CipherSuite::Aes256Gcm, KEY_256),
    (CipherSuite::ChaCha20Poly1305, KEY_256),
];

fn sealed(sealer: &mut Sealer, payload: &[u8]) -> ([u8; 4], Vec<u8>) {
    let mut out = Vec::new();
    sealer.seal(payload, &mut out).unwrap();
    split(&out)
}

#[test]
fn handshake_and_both_directions() {
    for (suite, hex_key) in SUITES {
        let (mut client, mut server) = sessions(suite, hex_key);
        assert_eq!(client.suite(), suite);
        assert_eq!(server.suite(), suite);
        // The server's confirmation used its counter 0.
        assert_eq!(server.sealer().counter(), 1);
        assert_eq!(client.opener().counter(), 1);
        for i in 0..20u8 {
            let message: Vec<u8> = std::iter::once(1).chain(0..i * 7).collect();
            let (prefix, payload) = sealed(client.sealer(), &message);
            assert_eq!(payload.len(), message.len() + TAG_LEN);
            assert_ne!(
                &payload[..message.len()],
                &message[..],
                "{suite}: not encrypted"
            );
            assert_eq!(server.opener().open(prefix, &payload).unwrap(), message);
            let (prefix, payload) = sealed(server.sealer(), &message);
            assert_eq!(client.opener().open(prefix, &payload).unwrap(), message);
        }
        assert_eq!(client.sealer().counter(), 20);
        assert_eq!(server.opener().counter(), 20);
        // The directions use different keys: a frame does not open on the
        // side that sealed it.
        let (prefix, payload) = sealed(client.sealer(), &[1, 0]);
        assert_eq!(
            client.opener().open(prefix, &payload),
            Err(SecureError::Authentication)
        );
    }
}

#[test]
fn message_sizes() {
    for (suite, hex_key) in SUITES {
        let (t, _, _) = full_transcript(suite, hex_key);
        assert_eq!(t.client_preamble.len(), 9);
        assert_eq!(t.server_preamble.len(), 9);
        assert_eq!(t.message1.len(), 4 + 48, "e and an empty payload's tag");
        assert_eq!(
            t.message2.len(),
            4 + 32 + 9 + 16,
            "e, the server's preamble"
        );
        assert_eq!(t.message3.len(), 4 + MAX_HANDSHAKE_FRAME);
        assert_eq!(t.confirm.len(), CONFIRM_FRAME_LEN);
        // The server's preamble travels encrypted under the ee key.
        assert_ne!(&t.message2[4 + 32..4 + 32 + 9], &t.server_preamble[..]);
    }
}

#[test]
fn large_frame_and_in_place_paths() {
    for (suite, hex_key) in SUITES {
        let (client, server) = sessions(suite, hex_key);
        let (mut sealer, _) = client.into_parts();
        let (_, mut opener) = server.into_parts();
        let message: Vec<u8> = (0..64 * 1024).map(|i| (i * 31 % 251) as u8).collect();

        // seal_in_place after other bytes in the buffer.
        let mut wire = b"xyz".to_vec();
        wire.extend_from_slice(&[9, 9, 9, 9]);
        wire.extend_from_slice(&message);
        sealer.seal_in_place(&mut wire, 3).unwrap();
        assert_eq!(&wire[..3], b"xyz");
        let (prefix, mut payload) = split(&wire[3..]);
        let text = opener.open_in_place(prefix, &mut payload).unwrap();
        assert_eq!(text, &message[..]);

        // encode_message then seal_in_place.
        let value = crate::table! { "OpCode" => 10, "Data" => "From server" }.into();
        let mut wire = Vec::new();
        encode_message(&value, &Limits::default(), &mut wire).unwrap();
        let plain = wire.clone();
        sealer.seal_in_place(&mut wire, 0).unwrap();
        assert_eq!(wire.len(), plain.len() + TAG_LEN);
        let (prefix, payload) = split(&wire);
        assert_eq!(opener.open(prefix, &payload).unwrap(), &plain[4..]);

        // No prefix room: refused, and the buffer is cut back.
        let mut short = vec![1, 2, 3];
        assert!(matches!(
            sealer.seal_in_place(&mut short, 1),
            Err(SecureError::Misuse(_))
        ));
        assert_eq!(short, [1]);
    }
}

/// A scanner learns nothing: with every key fixed, servers holding
/// different keys send identical bytes until the client's proof, and only
/// the one whose key matches accepts it.
#[test]
fn a_server_sends_nothing_that_depends_on_its_key_before_the_proof() {
    for suite in [CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305] {
        let a = key(KEY_256);
        let b = key(&KEY_256.replace('6', "7"));
        let (mut client_a, mut server_a) = fixed(&a, &a, suite, 0x22);
        let (mut client_b, mut server_b) = fixed(&a, &b, suite, 0x22);
        let ta = first_three(&mut client_a, &mut server_a);
        let tb = first_three(&mut client_b, &mut server_b);
        assert_eq!(ta.server_preamble, tb.server_preamble, "{suite}");
        assert_eq!(ta.message2, tb.message2, "{suite}: message 2");
        assert_eq!(ta.message2.len(), 4 + 57);
        assert_eq!(ta.message3, tb.message3);
        let (prefix, payload) = split(&ta.message3);
        assert!(
            server_a
                .receive(prefix, &payload)
                .unwrap()
                .session
                .is_some()
        );
        let err = server_b.receive(prefix, &payload).unwrap_err();
        assert_eq!(err, SecureError::KeyMismatch);
        assert_eq!(
            err.to_string(),
            "the keys do not match (the peer's proof of the key failed)"
        );
    }
}

/// The client's bytes of a recorded session, replayed to a fresh server with
/// the key, do not open it: the server's new ephemeral gives new keys.
#[test]
fn a_replayed_client_does_not_open_a_fresh_server() {
    for (suite, hex_key) in SUITES {
        let k = key(hex_key);
        let (t, _, _) = full_transcript(suite, hex_key);
        // A fresh server, with a random ephemeral as in real use.
        let mut server = Handshake::server(&k, suite);
        server
            .receive_preamble(&decode_preamble(&t.client_preamble))
            .unwrap();
        let (prefix, payload) = split(&t.message1);
        let message2 = server.receive(prefix, &payload).unwrap().send;
        assert_ne!(message2, t.message2, "{suite}: a fresh ephemeral");
        let (prefix, payload) = split(&t.message3);
        assert_eq!(
            server.receive(prefix, &payload).unwrap_err(),
            SecureError::KeyMismatch,
            "{suite}"
        );
    }
}

#[test]
fn wrong_key_fails_at_the_proof() {
    let pairs = [
        (KEY_128, "0C03EA65238DD2C25EB87CE563868099".to_string()),
        (KEY_256, KEY_256.replace('6', "7")),
        (KEY_128, KEY_256.to_string()),
    ];
    for suite in [CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305] {
        for (a, b) in &pairs {
            let (mut client, mut server) = fixed(&key(a), &key(b), suite, 0x22);
            let t = first_three(&mut client, &mut server);
            let (prefix, payload) = split(&t.message3);
            assert_eq!(
                server.receive(prefix, &payload).unwrap_err(),
                SecureError::KeyMismatch
            );
        }
    }
}

#[test]
fn a_128_bit_key_and_its_zero_padded_256_bit_form_differ() {
    // HKDF of 16 bytes and of those 16 bytes plus 16 zeros differ.
    let short = handshake::noise_psk(&key(KEY_128));
    let long = handshake::noise_psk(&key(&format!("{KEY_128}{}", "0".repeat(32))));
    assert_ne!(*short, *long);
}

#[test]
fn a_forged_confirmation_or_reflected_messages_fail() {
    let k = key(KEY_256);
    let suite = CipherSuite::Aes256Gcm;
    // The client's own message 1 reflected back as message 2.
    let (mut client, _) = fixed(&k, &k, suite, 0x22);
    let own = client.preamble();
    let message1 = client.first_message().unwrap();
    client.receive_preamble(&own).unwrap();
    let (prefix, payload) = split(&message1);
    assert_eq!(
        client.receive(prefix, &payload).unwrap_err(),
        SecureError::HandshakeMessage { number: 2 }
    );
    // The client's message 3 reflected back as the server's confirmation.
    let (mut client, mut server) = fixed(&k, &k, suite, 0x22);
    let t = first_three(&mut client, &mut server);
    let (prefix, payload) = split(&t.message3);
    assert_eq!(
        client.receive(prefix, &payload).unwrap_err(),
        SecureError::KeyMismatch
    );
    // A tampered confirmation.
    let (mut client, mut server) = fixed(&k, &k, suite, 0x22);
    let t = first_three(&mut client, &mut server);
    let (prefix, payload) = split(&t.message3);
    let done = server.receive(prefix, &payload).unwrap();
    let (prefix, mut payload) = split(&done.send);
    payload[5] ^= 1;
    assert_eq!(
        client.receive(prefix, &payload).unwrap_err(),
        SecureError::KeyMismatch
    );
}

#[test]
fn every_bit_flip_in_a_handshake_message_fails() {
    let k = key(KEY_256);
    for suite in [CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305] {
        let (t, _, _) = full_transcript(suite, KEY_256);
        for bit in 0..(t.message1.len() - 4) * 8 {
            let (_, mut server) = fixed(&k, &k, suite, 0x22);
            server
                .receive_preamble(&decode_preamble(&t.client_preamble))
                .unwrap();
            let (prefix, mut payload) = split(&t.message1);
            payload[bit / 8] ^= 1 << (bit % 8);
            let result = server.receive(prefix, &payload);
            // The ephemeral's bits are not authenticated in message 1 itself
            // (any 32 bytes are a public key) but every flip changes the
            // hash, so message 1's tag or message 3 fails.
            if let Ok(progress) = result {
                assert!(progress.session.is_none());
                let (prefix, payload) = split(&t.message3);
                assert!(
                    server.receive(prefix, &payload).is_err(),
                    "{suite}: bit {bit}"
                );
            }
        }
        for bit in 0..(t.message2.len() - 4) * 8 {
            let (mut client, _) = fixed(&k, &k, suite, 0x22);
            client.first_message().unwrap();
            client
                .receive_preamble(&decode_preamble(&t.server_preamble))
                .unwrap();
            let (prefix, mut payload) = split(&t.message2);
            payload[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                client.receive(prefix, &payload).unwrap_err(),
                SecureError::HandshakeMessage { number: 2 },
                "{suite}: bit {bit}"
            );
        }
        for bit in 0..(t.message3.len() - 4) * 8 {
            let (mut client, mut server) = fixed(&k, &k, suite, 0x22);
            let _ = first_three(&mut client, &mut server);
            let (prefix, mut payload) = split(&t.message3);
            payload[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                server.receive(prefix, &payload).unwrap_err(),
                SecureError::KeyMismatch,
                "{suite}: bit {bit}"
            );
        }
    }
}

#[test]
fn altered_preambles_fail_the_handshake() {
    let k = key(KEY_256);
    let suite = CipherSuite::Aes256Gcm;
    // The client's preamble (the prologue) altered on its way to the
    // server (the version byte, changed after decoding): message 1's tag,
    // which covers the prologue, fails.
    let (mut client, mut server) = fixed(&k, &k, suite, 0x22);
    let message1 = client.first_message().unwrap();
    let mut altered = client.preamble();
    altered.version ^= 0x80;
    server.receive_preamble(&altered).unwrap();
    let (prefix, payload) = split(&message1);
    assert_eq!(
        server.receive(prefix, &payload).unwrap_err(),
        SecureError::HandshakeMessage { number: 1 }
    );
    // The server's preamble altered on its way to the client: message 2
    // carries the real one.
    let (mut client, mut server) = fixed(&k, &k, suite, 0x22);
    let message1 = client.first_message().unwrap();
    let mut altered = server.preamble();
    altered.version ^= 0x80;
    client.receive_preamble(&altered).unwrap();
    server.receive_preamble(&client.preamble()).unwrap();
    let (prefix, payload) = split(&message1);
    let message2 = server.receive(prefix, &payload).unwrap().send;
    let (prefix, payload) = split(&message2);
    let err = client.receive(prefix, &payload).unwrap_err();
    assert_eq!(err, SecureError::TranscriptMismatch);
    assert!(err.to_string().contains("altered in transit"), "{err}");
}

#[test]
fn cipher_mismatch() {
    let k = key(KEY_256);
    let mut client = Handshake::client(&k, CipherSuite::Aes256Gcm, &client_static(1));
    let server = Handshake::server(&k, CipherSuite::ChaCha20Poly1305);
    client.first_message().unwrap();
    let err = client.receive_preamble(&server.preamble()).unwrap_err();
    assert_eq!(
        err,
        SecureError::CipherMismatch {
            ours: CipherSuite::Aes256Gcm,
            theirs: CipherSuite::ChaCha20Poly1305
        }
    );
    assert_eq!(
        err.to_string(),
        "the peer uses cipher ChaCha20-Poly1305, this side AES-256-GCM"
    );
    // The handshake is over after an error.
    assert!(matches!(
        client.receive_preamble(&server.preamble()),
        Err(SecureError::Misuse(_))
    ));
}

#[test]
fn bad_extensions_and_flags() {
    let k = key(KEY_128);
    let attempt = |flags: u8, extension: Vec<u8>| {
        let mut server = Handshake::server(&k, CipherSuite::Aes256Gcm);
        let peer = Preamble {
            version: VERSION,
            flags,
            extension,
        };
        server.receive_preamble(&peer).unwrap_err()
    };
    // Version 1's 33-byte extension (suite byte and salt) among them.
    for len in [0, 2, 32, 33, 64, 1024] {
        let err = attempt(FLAG_ENCRYPTED, vec![2; len]);
        assert_eq!(err, SecureError::BadExtension { len });
        assert!(err.to_string().contains("must be 1 byte"), "{err}");
    }
    // Byte 1 was version 1's AES-128-GCM: no longer a suite.
    for byte in [0, 1, 4, 0x80, 0xff] {
        assert_eq!(
            attempt(FLAG_ENCRYPTED, vec![byte]),
            SecureError::UnknownCipher { byte }
        );
    }
    assert_eq!(attempt(0, vec![2]), SecureError::NotEncrypted);
}

#[test]
#[allow(deprecated)]
fn the_deprecated_aes_128_name_selects_aes_gcm() {
    let k = key(KEY_128);
    let mut client = Handshake::client(&k, CipherSuite::Aes128Gcm, &client_static(1));
    assert_eq!(client.suite(), CipherSuite::Aes256Gcm);
    let server = Handshake::server(&k, CipherSuite::Aes256Gcm);
    client.first_message().unwrap();
    client.receive_preamble(&server.preamble()).unwrap();
    assert_eq!(CipherSuite::Aes128Gcm.normalized(), CipherSuite::Aes256Gcm);
    assert_eq!(CipherSuite::Aes128Gcm.to_byte(), 2);
    assert_eq!(CipherSuite::Aes128Gcm.name(), "AES-256-GCM");
}

#[test]
fn preamble_shape() {
    let k = key(KEY_256);
    let hs = Handshake::server(&k, CipherSuite::ChaCha20Poly1305);
    let preamble = hs.preamble();
    assert!(preamble.encrypted());
    assert_eq!(preamble.extension, [3]);
    assert_eq!(encode(&preamble).len(), 8 + EXTENSION_LEN);
    assert_eq!(hs.role(), Role::Server);
    assert_eq!(hs.suite(), CipherSuite::ChaCha20Poly1305);
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let k = key(KEY_128);
    let mut hs = Handshake::client(&k, CipherSuite::Aes256Gcm, &client_static(1));
    assert!(matches!(
        hs.receive([0; 4], &[]),
        Err(SecureError::Misuse(_))
    ));
    let mut hs = Handshake::client(&k, CipherSuite::Aes256Gcm, &client_static(1));
    hs.first_message().unwrap();
    assert!(matches!(hs.first_message(), Err(SecureError::Misuse(_))));
    let mut hs = Handshake::server(&k, CipherSuite::Aes256Gcm);
    assert!(hs.first_message().unwrap().is_empty());
    // A frame before the preamble.
    assert!(matches!(
        hs.receive([0; 4], &[]),
        Err(SecureError::Misuse(_))
    ));
    // An over-long handshake frame.
    let mut hs = Handshake::server(&k, CipherSuite::Aes256Gcm);
    let mut client = Handshake::client(&k, CipherSuite::Aes256Gcm, &client_static(1));
    hs.receive_preamble(&client.preamble()).unwrap();
    client.first_message().unwrap();
    let long = vec![0; 1000];
    assert!(matches!(
        hs.receive((long.len() as u32).to_le_bytes(), &long),
        Err(SecureError::HandshakeMessage { number: 1 })
    ));
}

#[test]
fn random_ephemerals_differ() {
    let k = key(KEY_128);
    let s = client_static(1);
    let a = Handshake::client(&k, CipherSuite::Aes256Gcm, &s).first_message();
    let b = Handshake::client(&k, CipherSuite::Aes256Gcm, &s).first_message();
    assert_ne!(a.unwrap(), b.unwrap());
    let a = ClientStatic::generate().unwrap();
    let b = ClientStatic::generate().unwrap();
    assert_ne!(a.private[..], b.private[..]);
}

/// Rekeying with lowered limits: traffic goes on across several rekeys, and
/// a reordered or altered frame at a boundary still fails.
#[test]
fn traffic_continues_across_rekeys_and_tampering_at_a_boundary_fails() {
    for (suite, hex_key) in SUITES {
        let (client, server) = sessions(suite, hex_key);
        let (mut sealer, _) = client.into_parts();
        let (_, mut opener) = server.into_parts();
        sealer.set_rekey_limits(3, 1 << 40);
        opener.set_rekey_limits(3, 1 << 40);
        let (mut plain_sealer, _) = sessions(suite, hex_key).0.into_parts();
        let mut wire = Vec::new();
        for i in 0..20u8 {
            let frame = [1, i];
            let before = wire.len();
            sealer.seal(&frame, &mut wire).unwrap();
            let mut same_key = Vec::new();
            plain_sealer.seal(&frame, &mut same_key).unwrap();
            // Frames 0-2 use the handshake's key, later ones new keys.
            assert_eq!(wire[before..] == same_key[..], i < 3, "{suite}: frame {i}");
        }
        let f = frames(&wire);
        for (i, (prefix, payload)) in f.iter().enumerate().take(5) {
            assert_eq!(opener.open(*prefix, payload).unwrap(), [1, i as u8]);
        }
        // Frame 6 is the first under the third key; frame 5 is the last
        // under the second. Reordered across the boundary: refused.
        assert_eq!(
            opener.open(f[6].0, &f[6].1),
            Err(SecureError::Authentication),
            "{suite}"
        );
        // The opener rekeyed for frame 5's turn already; the connection
        // would be closed here. A fresh pair shows an altered frame at the
        // boundary fails and the untouched one opens.
        let (client, server) = sessions(suite, hex_key);
        let (mut sealer, _) = client.into_parts();
        let (_, mut opener) = server.into_parts();
        sealer.set_rekey_limits(3, 1 << 40);
        opener.set_rekey_limits(3, 1 << 40);
        let mut wire = Vec::new();
        for i in 0..4u8 {
            sealer.seal(&[1, i], &mut wire).unwrap();
        }
        let f = frames(&wire);
        for (prefix, payload) in &f[..3] {
            opener.open(*prefix, payload).unwrap();
        }
        let mut bad = f[3].1.clone();
        bad[0] ^= 1;
        assert_eq!(opener.open(f[3].0, &bad), Err(SecureError::Authentication));
        assert_eq!(opener.open(f[3].0, &f[3].1).unwrap(), [1, 3]);
        // Many rekeys, both directions, by bytes this time.
        let (mut client, mut server) = sessions(suite, hex_key);
        client.sealer().set_rekey_limits(u64::MAX, 100);
        server.opener().set_rekey_limits(u64::MAX, 100);
        for i in 0..200u32 {
            let message = vec![1; 1 + (i as usize % 70)];
            let (prefix, payload) = sealed(client.sealer(), &message);
            assert_eq!(server.opener().open(prefix, &payload).unwrap(), message);
        }
    }
}

#[test]
fn every_bit_flip_fails() {
    for (suite, hex_key) in SUITES {
        let (mut client, mut server) = sessions(suite, hex_key);
        let mut wire = Vec::new();
        client
            .sealer()
            .seal(&[1, 5, 0, 0, 9, 8, 7], &mut wire)
            .unwrap();
        // Prefix (0..4), ciphertext (4..11) and tag (11..27): every bit.
        for bit in 0..wire.len() * 8 {
            let mut bad = wire.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let prefix: [u8; 4] = bad[..4].try_into().unwrap();
            assert_eq!(
                server.opener().open(prefix, &bad[4..]),
                Err(SecureError::Authentication),
                "{suite}: bit {bit}"
            );
        }
        // A prefix changed together with the payload's length.
        let mut longer = wire[4..].to_vec();
        longer.push(0);
        let prefix = (longer.len() as u32).to_le_bytes();
        assert_eq!(
            server.opener().open(prefix, &longer),
            Err(SecureError::Authentication)
        );
        // Failures did not advance the counter: the real frame still opens.
        assert_eq!(server.opener().counter(), 0);
        let (prefix, payload) = split(&wire);
        assert_eq!(
            server.opener().open(prefix, &payload).unwrap(),
            [1, 5, 0, 0, 9, 8, 7]
        );
    }
}

#[test]
fn truncated_frames_fail() {
    for (suite, hex_key) in SUITES {
        let (mut client, mut server) = sessions(suite, hex_key);
        let (_, payload) = sealed(client.sealer(), &[1, 0, 1, 2, 3]);
        for len in 0..payload.len() {
            let cut = &payload[..len];
            // Both with the original prefix and with one that matches.
            let matching = (len as u32).to_le_bytes();
            assert_eq!(
                server.opener().open(matching, cut),
                Err(SecureError::Authentication),
                "{suite}: {len} bytes"
            );
        }
        // The empty payload sealed still carries a tag.
        let (prefix, payload) = sealed(client.sealer(), &[]);
        assert_eq!(payload.len(), TAG_LEN);
        assert_eq!(
            server.opener().open(prefix, &payload),
            Err(SecureError::Authentication),
            "the opener is still waiting for the first frame"
        );
    }
}

#[test]
fn replay_reorder_and_drop_fail() {
    for (suite, hex_key) in SUITES {
        let (mut client, mut server) = sessions(suite, hex_key);
        let mut wire = Vec::new();
        for i in 0..4u8 {
            client.sealer().seal(&[1, 2, i], &mut wire).unwrap();
        }
        let f = frames(&wire);
        let opener = server.opener();
        // Reordered: frame 2 before frame 1.
        assert_eq!(
            opener.open(f[1].0, &f[1].1),
            Err(SecureError::Authentication),
            "{suite}"
        );
        assert_eq!(opener.open(f[0].0, &f[0].1).unwrap(), [1, 2, 0]);
        // Replayed.
        assert_eq!(
            opener.open(f[0].0, &f[0].1),
            Err(SecureError::Authentication)
        );
        assert_eq!(opener.open(f[1].0, &f[1].1).unwrap(), [1, 2, 1]);
        // Dropped: frame 3 is lost, frame 4 arrives.
        assert_eq!(
            opener.open(f[3].0, &f[3].1),
            Err(SecureError::Authentication)
        );
        assert_eq!(opener.open(f[2].0, &f[2].1).unwrap(), [1, 2, 2]);
        // The server's key confirmation (counter 0) replayed as a message.
        // It was sealed server-to-client: reflected to the server, it fails.
        let (_, mut server, confirm) = handshake(&key(hex_key), &key(hex_key), suite, 0x11);
        let (prefix, payload) = split(&confirm);
        assert_eq!(
            server.opener().open(prefix, &payload),
            Err(SecureError::Authentication)
        );
    }
}

#[test]
fn frames_from_another_connection_fail() {
    // Same key, other ephemerals: different session keys.
    let k = key(KEY_128);
    let (mut a, _, _) = handshake(&k, &k, CipherSuite::Aes256Gcm, 0x11);
    let (_, mut b, _) = handshake(&k, &k, CipherSuite::Aes256Gcm, 0x33);
    let (prefix, payload) = sealed(a.sealer(), &[1, 0]);
    assert_eq!(
        b.opener().open(prefix, &payload),
        Err(SecureError::Authentication)
    );
}

#[test]
fn counters_never_wrap() {
    for (suite, hex_key) in SUITES {
        let (client, server) = sessions(suite, hex_key);
        let (mut sealer, _) = client.into_parts();
        let (_, mut opener) = server.into_parts();
        sealer.set_counter(u64::MAX - 2);
        opener.set_counter(u64::MAX - 2);
        for _ in 0..2 {
            let (prefix, payload) = sealed(&mut sealer, &[1, 0]);
            assert_eq!(opener.open(prefix, &payload).unwrap(), [1, 0]);
        }
        assert_eq!(sealer.counter(), u64::MAX);
        let mut out = vec![7];
        let err = sealer.seal(&[1, 0], &mut out).unwrap_err();
        assert_eq!(err, SecureError::CounterExhausted);
        assert_eq!(out, [7], "{suite}: nothing appended");
        assert_eq!(sealer.counter(), u64::MAX);
        assert_eq!(
            opener.open([18, 0, 0, 0], &[0; 18]),
            Err(SecureError::CounterExhausted)
        );
        assert!(err.to_string().contains("exhausted"));
    }
}

#[test]
fn key_parsing() {
    assert_eq!(key(KEY_128).bits(), 128);
    assert_eq!(key(KEY_256).bits(), 256);
    assert_eq!(
        key(KEY_128).as_bytes(),
        key(&KEY_128.to_lowercase()).as_bytes()
    );
    assert_eq!(
        key("0C03ea65238dd2C25EB87CE563868098").as_bytes()[..3],
        [0x0c, 0x03, 0xea]
    );
    assert_eq!(key(&"aB".repeat(32)).as_bytes(), [0xab; 32]);
    for len in [0, 1, 31, 33, 48, 63, 65, 128] {
        let err = SecretKey::from_hex(&"a".repeat(len)).unwrap_err();
        assert_eq!(
            err,
            Error::InvalidArgument {
                argument: "key",
                expected: "32 or 64 hex digits (128- or 256-bit key)",
                got: format!("{len} hex digits"),
            }
        );
    }
    let err = SecretKey::from_hex("0C03Eg65238DD2C25EB87CE563868098").unwrap_err();
    let Error::InvalidArgument { got, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(got, "non-hex character 'g' at position 6");
    assert_eq!(
        err.to_string(),
        "invalid argument `key`: 32 or 64 hex digits (128- or 256-bit key), \
         got non-hex character 'g' at position 6"
    );
    for (text, got) in [
        (
            " 0C03EA65238DD2C25EB87CE56386809",
            "non-hex character ' ' at position 1",
        ),
        (
            "0x0C03EA65238DD2C25EB87CE5638680",
            "non-hex character 'x' at position 2",
        ),
        (
            "0C03EA65238DD2C25EB87CE563868098\n",
            "non-hex character '\\n' at position 33",
        ),
        ("é", "non-hex character 'é' at position 1"),
        // Counted in characters, and named even when the length is wrong too.
        ("abcé", "non-hex character 'é' at position 4"),
        ("ééx", "non-hex character 'é' at position 1"),
        (
            "0123456789abcdefABCDEF0123456789z",
            "non-hex character 'z' at position 33",
        ),
    ] {
        let err = SecretKey::from_hex(text).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument { got: g, .. } if g == got),
            "{err}"
        );
    }
    let parsed: SecretKey = KEY_256.parse().unwrap();
    assert_eq!(parsed.bits(), 256);
}

#[test]
fn generated_keys_are_random_256_bit_and_round_trip_through_hex() {
    let a = SecretKey::generate().unwrap();
    let b = SecretKey::generate().unwrap();
    assert_eq!(a.bits(), 256);
    assert_ne!(a.as_bytes(), b.as_bytes());
    let digits = a.to_hex();
    assert_eq!(digits.len(), 64);
    assert!(
        digits
            .bytes()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
        "lowercase hex: {digits}"
    );
    assert_eq!(key(&digits).as_bytes(), a.as_bytes());
    assert_eq!(key(KEY_128).to_hex(), KEY_128.to_lowercase());
    assert_eq!(key(KEY_256).to_hex(), KEY_256.to_lowercase());
}

#[test]
fn debug_never_shows_key_material() {
    let k = key(KEY_256);
    assert_eq!(format!("{k:?}"), "SecretKey(256 bits)");
    assert_eq!(format!("{:?}", key(KEY_128)), "SecretKey(128 bits)");
    let mut client = Handshake::client(&k, CipherSuite::ChaCha20Poly1305, &client_static(0x44));
    client.first_message().unwrap();
    let (session, _, _) = handshake(&k, &k, CipherSuite::ChaCha20Poly1305, 0x11);
    let debug = format!("{client:?} {session:?} {:?}", client_static(0x44));
    for secret in [
        KEY_256.to_string(),
        KEY_256.to_uppercase(),
        "603".into(),
        "96, ".into(),
    ] {
        assert!(!debug.contains(&secret), "{debug}");
    }
    assert!(debug.contains("ChaCha20Poly1305"), "{debug}");
}

#[test]
fn session_halves_are_send() {
    fn send<T: Send + Sync>() {}
    send::<Sealer>();
    send::<Opener>();
    send::<Session>();
    send::<Handshake>();
    send::<SecretKey>();
}
