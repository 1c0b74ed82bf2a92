//! Both roles in memory: handshakes, tampering, counters, keys and the
//! published test vectors.

use super::*;
use crate::Error;
use crate::proto::{FLAG_ENCRYPTED, Limits, Preamble, VERSION, encode_message};

const KEY_128: &str = "0C03EA65238DD2C25EB87CE563868098";
const KEY_256: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
const CLIENT_SALT: [u8; 32] = [0x11; 32];
const SERVER_SALT: [u8; 32] = [0x22; 32];

fn key(hex: &str) -> SecretKey {
    SecretKey::from_hex(hex).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
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

struct Pair {
    client: Handshake,
    server: Handshake,
    client_confirm: Vec<u8>,
    server_confirm: Vec<u8>,
}

/// Both sides exchange preambles; returns the confirmation frames.
fn exchange(client_key: &SecretKey, server_key: &SecretKey, suite: CipherSuite) -> Pair {
    let mut client = Handshake::new(Role::Client, client_key, suite, CLIENT_SALT).unwrap();
    let mut server = Handshake::new(Role::Server, server_key, suite, SERVER_SALT).unwrap();
    // Through the real encoder and decoder, as on the wire.
    let client_preamble = decode_preamble(&encode(&client.preamble()));
    let server_preamble = decode_preamble(&encode(&server.preamble()));
    let client_confirm = client.receive_preamble(&server_preamble).unwrap();
    let server_confirm = server.receive_preamble(&client_preamble).unwrap();
    Pair {
        client,
        server,
        client_confirm,
        server_confirm,
    }
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
    let key = key(hex_key);
    let mut pair = exchange(&key, &key, suite);
    let (prefix, payload) = split(&pair.server_confirm);
    let client = pair.client.receive_confirm(prefix, &payload).unwrap();
    let (prefix, payload) = split(&pair.client_confirm);
    let server = pair.server.receive_confirm(prefix, &payload).unwrap();
    (client, server)
}

const SUITES: [(CipherSuite, &str); 3] = [
    (CipherSuite::Aes128Gcm, KEY_128),
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
        assert_eq!(client.sealer().counter(), 21);
        assert_eq!(server.opener().counter(), 21);
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

#[test]
fn wrong_key_fails_on_both_sides() {
    let pairs = [
        (
            CipherSuite::Aes128Gcm,
            KEY_128,
            "0C03EA65238DD2C25EB87CE563868099",
        ),
        (CipherSuite::Aes256Gcm, KEY_256, &KEY_256.replace('6', "7")),
        (
            CipherSuite::ChaCha20Poly1305,
            KEY_256,
            &KEY_256.replace('0', "1"),
        ),
    ];
    for (suite, a, b) in pairs {
        let mut pair = exchange(&key(a), &key(b), suite);
        let (prefix, payload) = split(&pair.server_confirm);
        let err = pair.client.receive_confirm(prefix, &payload).unwrap_err();
        assert_eq!(err, SecureError::KeyMismatch);
        assert_eq!(
            err.to_string(),
            "the keys do not match (key confirmation failed)"
        );
        let (prefix, payload) = split(&pair.client_confirm);
        assert_eq!(
            pair.server.receive_confirm(prefix, &payload).unwrap_err(),
            SecureError::KeyMismatch
        );
    }
}

#[test]
fn confirm_frames_are_not_interchangeable() {
    let key = key(KEY_128);
    let mut pair = exchange(&key, &key, CipherSuite::Aes128Gcm);
    assert_eq!(pair.client_confirm.len(), CONFIRM_FRAME_LEN);
    // The client's own confirmation reflected back to it.
    let (prefix, payload) = split(&pair.client_confirm);
    assert_eq!(
        pair.client.receive_confirm(prefix, &payload).unwrap_err(),
        SecureError::KeyMismatch
    );
    // A tampered confirmation.
    let (prefix, mut payload) = split(&pair.client_confirm);
    payload[5] ^= 1;
    assert_eq!(
        pair.server.receive_confirm(prefix, &payload).unwrap_err(),
        SecureError::KeyMismatch
    );
}

#[test]
fn altered_preamble_fails_the_transcript() {
    // Same salts and key, so the keys agree, but the server saw another
    // version byte than the client sent.
    let key = key(KEY_128);
    let suite = CipherSuite::Aes128Gcm;
    let mut client = Handshake::new(Role::Client, &key, suite, CLIENT_SALT).unwrap();
    let mut server = Handshake::new(Role::Server, &key, suite, SERVER_SALT).unwrap();
    let mut altered = client.preamble();
    altered.version = 1;
    let server_confirm = server.receive_preamble(&altered).unwrap();
    let _ = client.receive_preamble(&server.preamble()).unwrap();
    let (prefix, payload) = split(&server_confirm);
    let err = client.receive_confirm(prefix, &payload).unwrap_err();
    assert_eq!(err, SecureError::TranscriptMismatch);
}

#[test]
fn cipher_mismatch() {
    let key = key(KEY_256);
    let mut client =
        Handshake::new(Role::Client, &key, CipherSuite::Aes256Gcm, CLIENT_SALT).unwrap();
    let server = Handshake::new(
        Role::Server,
        &key,
        CipherSuite::ChaCha20Poly1305,
        SERVER_SALT,
    )
    .unwrap();
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
    let key = key(KEY_128);
    let suite = CipherSuite::Aes128Gcm;
    let attempt = |flags: u8, extension: Vec<u8>| {
        let mut server = Handshake::new(Role::Server, &key, suite, SERVER_SALT).unwrap();
        let peer = Preamble {
            version: VERSION,
            flags,
            extension,
        };
        server.receive_preamble(&peer).unwrap_err()
    };
    for len in [0, 1, 32, 34, 64, 1024] {
        let err = attempt(FLAG_ENCRYPTED, vec![1; len]);
        assert_eq!(err, SecureError::BadExtension { len });
        assert!(err.to_string().contains("must be 33 bytes"), "{err}");
    }
    for byte in [0, 4, 0x80, 0xff] {
        let mut ext = vec![byte];
        ext.extend_from_slice(&CLIENT_SALT);
        assert_eq!(
            attempt(FLAG_ENCRYPTED, ext),
            SecureError::UnknownCipher { byte }
        );
    }
    let mut ext = vec![1];
    ext.extend_from_slice(&CLIENT_SALT);
    assert_eq!(attempt(0, ext), SecureError::NotEncrypted);
    // Our own preamble reflected back.
    let mut ext = vec![1];
    ext.extend_from_slice(&SERVER_SALT);
    assert_eq!(attempt(FLAG_ENCRYPTED, ext), SecureError::ReflectedSalt);
}

#[test]
fn preamble_shape() {
    let key = key(KEY_256);
    let hs = Handshake::new(
        Role::Server,
        &key,
        CipherSuite::ChaCha20Poly1305,
        SERVER_SALT,
    )
    .unwrap();
    let preamble = hs.preamble();
    assert!(preamble.encrypted());
    assert_eq!(preamble.extension.len(), EXTENSION_LEN);
    assert_eq!(preamble.extension[0], 3);
    assert_eq!(&preamble.extension[1..], &SERVER_SALT);
    assert_eq!(encode(&preamble).len(), 8 + EXTENSION_LEN);
    assert_eq!(hs.role(), Role::Server);
    assert_eq!(hs.suite(), CipherSuite::ChaCha20Poly1305);
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let key = key(KEY_128);
    let mut hs = Handshake::new(Role::Client, &key, CipherSuite::Aes128Gcm, CLIENT_SALT).unwrap();
    assert!(matches!(
        hs.receive_confirm([0; 4], &[]),
        Err(SecureError::Misuse(_))
    ));
    // A 128-bit key cannot drive a 256-bit cipher.
    let err = Handshake::new(
        Role::Client,
        &key,
        CipherSuite::ChaCha20Poly1305,
        CLIENT_SALT,
    )
    .unwrap_err();
    assert_eq!(
        err,
        SecureError::KeyTooShort {
            suite: CipherSuite::ChaCha20Poly1305,
            bits: 128
        }
    );
    assert_eq!(
        err.to_string(),
        "cipher ChaCha20-Poly1305 needs a 256-bit key, the key has 128 bits"
    );
    assert!(CipherSuite::Aes256Gcm.check_key(&key).is_err());
    assert!(
        CipherSuite::Aes128Gcm
            .check_key(&self::key(KEY_256))
            .is_ok()
    );
}

#[test]
fn random_salts_differ() {
    let key = key(KEY_128);
    let a = Handshake::with_random_salt(Role::Client, &key, CipherSuite::Aes128Gcm).unwrap();
    let b = Handshake::with_random_salt(Role::Client, &key, CipherSuite::Aes128Gcm).unwrap();
    assert_ne!(a.preamble().extension, b.preamble().extension);
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
        assert_eq!(server.opener().counter(), 1);
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
        // The confirmation frame (counter 0) replayed as a message.
        let mut pair = exchange(&key(hex_key), &key(hex_key), suite);
        let (prefix, payload) = split(&pair.client_confirm);
        let mut server = pair.server.receive_confirm(prefix, &payload).unwrap();
        assert_eq!(
            server.opener().open(prefix, &payload),
            Err(SecureError::Authentication)
        );
    }
}

#[test]
fn frames_from_another_connection_fail() {
    // Same key, different salts: different session keys.
    let key = key(KEY_128);
    let (mut a, _) = sessions(CipherSuite::Aes128Gcm, KEY_128);
    let suite = CipherSuite::Aes128Gcm;
    let mut client = Handshake::new(Role::Client, &key, suite, [0x33; 32]).unwrap();
    let mut server = Handshake::new(Role::Server, &key, suite, SERVER_SALT).unwrap();
    let c = client.receive_preamble(&server.preamble()).unwrap();
    let _ = server.receive_preamble(&client.preamble()).unwrap();
    let (prefix, payload) = split(&c);
    let mut b = server.receive_confirm(prefix, &payload).unwrap();
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
    let mut pair = exchange(&k, &k, CipherSuite::ChaCha20Poly1305);
    let (prefix, payload) = split(&pair.server_confirm);
    let handshake_debug = format!("{:?}", pair.server);
    let session = pair.client.receive_confirm(prefix, &payload).unwrap();
    let debug = format!("{handshake_debug} {session:?} {:#?}", pair.client);
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

#[test]
fn suite_bytes() {
    for suite in [
        CipherSuite::Aes128Gcm,
        CipherSuite::Aes256Gcm,
        CipherSuite::ChaCha20Poly1305,
    ] {
        assert_eq!(CipherSuite::from_byte(suite.to_byte()), Ok(suite));
    }
    assert_eq!(CipherSuite::Aes128Gcm.to_byte(), 1);
    assert_eq!(CipherSuite::Aes256Gcm.to_byte(), 2);
    assert_eq!(CipherSuite::ChaCha20Poly1305.to_byte(), 3);
    assert_eq!(CipherSuite::for_key(&key(KEY_128)), CipherSuite::Aes128Gcm);
    assert_eq!(CipherSuite::for_key(&key(KEY_256)), CipherSuite::Aes256Gcm);
}

/// The vectors for docs/PROTOCOL.md, client salt 32 x `11`, server salt
/// 32 x `22`: (suite, key, client preamble, server preamble, client confirm
/// frame, server confirm frame, the client's first Message frame `01 00`,
/// counter 1). The session keys' HKDF info ends with the suite byte, so the
/// confirmations and the message differ between suites even under one key.
/// Checked independently against Python's `cryptography` (OpenSSL) HKDF,
/// AES-GCM and ChaCha20-Poly1305.
const VECTORS: [(CipherSuite, &str, &str, &str, &str, &str, &str); 3] = [
    (
        CipherSuite::Aes128Gcm,
        KEY_128,
        "54424c4e02012100011111111111111111111111111111111111111111111111111111111111111111",
        "54424c4e02012100012222222222222222222222222222222222222222222222222222222222222222",
        "31000000998041b870e2e68ff4662c5dfe35ecb71cd4c7ae6d6aa3403e879909bac99aed10658445e981f182c3a744252c1f5c6679",
        "3100000003e99c1298e49b1d85815cc9f2d174c15fd1d4c9dbcfe42c6970e4011663c842f800ea2dceec0c89d59293e3cfa24c617a",
        "12000000c9091dfb49331a1047eb73d35f4d49eb528e",
    ),
    (
        CipherSuite::Aes256Gcm,
        KEY_256,
        "54424c4e02012100021111111111111111111111111111111111111111111111111111111111111111",
        "54424c4e02012100022222222222222222222222222222222222222222222222222222222222222222",
        "3100000080e751059b1922425f3baa6b4affe5ef34f5b70071646c0a817bd243cfcbe22d3453048a935bedfccb9c150c8d412cef32",
        "3100000069e3b9483ae380a0bcd8564803371eab0cf57278b42dd1efdfc77b5cc1acdf6daff9c9747998fd9e18eccbf15dcddc068c",
        "120000007790ebe598f92a496a67c6f8a69e43aa2dc6",
    ),
    (
        CipherSuite::ChaCha20Poly1305,
        KEY_256,
        "54424c4e02012100031111111111111111111111111111111111111111111111111111111111111111",
        "54424c4e02012100032222222222222222222222222222222222222222222222222222222222222222",
        "310000002a27d64e220f232e724668b860a370de8ee75cf16f7fac1b3d5a96108f474c3914522ddbcb6de8363c6857ff1337e0f2a7",
        "31000000353846f2e04414d0da30c80af67e21fb66c8d205bde6ced5ec808ca21df98af105b68c0299ec862780c5935ff21bec1225",
        "12000000b54bd720147365213270d36de3c705f1fdd9",
    ),
];

#[test]
fn test_vectors() {
    let mut report = String::new();
    let mut ok = true;
    for (suite, hex_key, client_pre, server_pre, client_conf, server_conf, message) in VECTORS {
        let k = key(hex_key);
        let mut pair = exchange(&k, &k, suite);
        let computed_client_pre = hex(&encode(&pair.client.preamble()));
        let computed_server_pre = hex(&encode(&pair.server.preamble()));
        let computed_client_conf = hex(&pair.client_confirm);
        let computed_server_conf = hex(&pair.server_confirm);
        let (prefix, payload) = split(&pair.server_confirm);
        let mut client = pair.client.receive_confirm(prefix, &payload).unwrap();
        let (prefix, payload) = split(&pair.client_confirm);
        let mut server = pair.server.receive_confirm(prefix, &payload).unwrap();
        let mut wire = Vec::new();
        client.sealer().seal(&[0x01, 0x00], &mut wire).unwrap();
        let computed_message = hex(&wire);
        let (prefix, payload) = split(&unhex(&computed_message));
        assert_eq!(server.opener().open(prefix, &payload).unwrap(), [1, 0]);

        report += &format!(
            "{suite}, key {hex_key}\n  client preamble: {computed_client_pre}\n  \
             server preamble: {computed_server_pre}\n  client confirm:  {computed_client_conf}\n  \
             server confirm:  {computed_server_conf}\n  client message 01 00 (counter 1): \
             {computed_message}\n"
        );
        ok &= computed_client_pre == client_pre
            && computed_server_pre == server_pre
            && computed_client_conf == client_conf
            && computed_server_conf == server_conf
            && computed_message == message;
    }
    assert!(ok, "test vectors differ; computed:\n{report}");
}
