//! The connection start, for both roles: the input is everything the peer
//! sends, read through the library's own `FrameDecoder`.
//!
//! Input layout: `[config][peer's bytes...]`
//!
//! ```text
//! config bit 0: this side is the client (else the server)
//!        bits 1-3: key and cipher suite (tablenet_fuzz::SUITES, modulo 4)
//!        bit 4: plain mode: the preamble decoder alone, then plain frames
//! ```
//!
//! Encrypted mode: the peer's preamble goes to `Handshake::receive_preamble`
//! and the following frames to `Handshake::receive` until the session is
//! established; further frames are then opened and decoded. This side uses
//! the fixed keys of docs/PROTOCOL.md section 5.8 for its role, so the
//! documented vectors (the seeds) complete the handshake.

#![no_main]

use std::hint::black_box;

use libfuzzer_sys::fuzz_target;
use tablenet::proto::secure::{MAX_HANDSHAKE_FRAME, Role, SecureError, TAG_LEN};
use tablenet::proto::{FrameDecoder, Limits, MAX_EXTENSION, VERSION};
use tablenet_fuzz::{SUITES, decode_payload, handshake, run_handshake, take_byte};

/// Plain mode: the preamble, re-encoded, must give back exactly the bytes it
/// was decoded from; then frames.
fn plain(peer: &[u8], limits: &Limits) {
    let mut decoder = FrameDecoder::new(limits);
    decoder.push(peer);
    let Ok(Some(preamble)) = decoder.next_preamble() else {
        return;
    };
    let used = peer.len() - decoder.buffered();
    assert_eq!(preamble.version, VERSION);
    assert!(preamble.extension.len() <= MAX_EXTENSION);
    let mut again = Vec::new();
    preamble
        .encode(&mut again)
        .expect("a decoded preamble encodes");
    assert_eq!(again, peer[..used], "preamble re-encodes differently");
    if let Some(reason) = preamble.refused() {
        black_box(reason);
        return; // the peer refuses the connection and closes
    }
    if preamble.encrypted() {
        return; // a plain side refuses it (the IO layer's PeerRequiresKey)
    }
    while let Ok(Some(frame)) = decoder.next_frame() {
        black_box(frame.decode_value(limits).ok());
    }
}

fn encrypted(role: Role, suite_index: usize, peer: &[u8], limits: &Limits) {
    let (key_hex, suite) = SUITES[suite_index];
    let mut ours = handshake(role, key_hex, suite);
    let first = ours.first_message().expect("message 1 is written");
    assert_eq!(first.is_empty(), role == Role::Server);
    // What the genuine peer with the documented keys sends during the
    // handshake.
    let run = run_handshake(key_hex, suite).expect("the documented handshake completes");
    let genuine = match role {
        Role::Client => run.server_bytes,
        Role::Server => run.client_bytes,
    };

    let mut decoder = FrameDecoder::new(limits);
    decoder.push(peer);
    let Ok(Some(peer_preamble)) = decoder.next_preamble() else {
        return;
    };
    if let Err(e) = ours.receive_preamble(&peer_preamble) {
        black_box(e.to_string());
        // The state machine is over after an error.
        assert!(matches!(
            ours.receive_preamble(&peer_preamble),
            Err(SecureError::Misuse(_))
        ));
        return;
    }

    // During the handshake, no frame larger than a handshake message (as
    // the session does).
    decoder.set_max_frame_size(MAX_HANDSHAKE_FRAME);
    let mut session = loop {
        let Ok(Some((prefix, payload))) = decoder.next_raw_frame() else {
            return;
        };
        match ours.receive(prefix, payload) {
            Ok(progress) => {
                assert!(progress.send.len() <= 4 + MAX_HANDSHAKE_FRAME);
                black_box(&progress.send);
                if let Some(session) = progress.session {
                    break session;
                }
            }
            Err(e) => {
                black_box(e.to_string());
                assert!(matches!(
                    ours.receive(prefix, &[]),
                    Err(SecureError::Misuse(_))
                ));
                return;
            }
        }
    };
    // The handshake completes only with the genuine peer's handshake bytes
    // (fixed keys on our side make them the only ones): anything else would
    // be a forgery.
    let used = peer.len() - decoder.buffered();
    assert_eq!(
        peer[..used],
        genuine[..],
        "handshake completed with altered bytes"
    );

    decoder.set_max_frame_size(limits.max_frame_size + TAG_LEN);
    while let Ok(Some((prefix, payload))) = decoder.next_raw_frame() {
        let counter = session.opener().counter();
        let Ok(plaintext) = session.opener().open_in_place(prefix, payload) else {
            assert_eq!(session.opener().counter(), counter);
            break;
        };
        assert_eq!(session.opener().counter(), counter + 1);
        black_box(decode_payload(plaintext, limits).ok());
    }
    // This side can still seal.
    let mut out = Vec::new();
    session
        .sealer()
        .seal(&[0x01, 0x00], &mut out)
        .expect("sealing a small frame");
    black_box(out);
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let config = take_byte(&mut data);
    let limits = Limits::default();
    if config & 0x10 != 0 {
        plain(data, &limits);
    } else {
        let role = if config & 1 != 0 {
            Role::Client
        } else {
            Role::Server
        };
        let suite_index = usize::from((config >> 1) & 7) % SUITES.len();
        encrypted(role, suite_index, data, &limits);
    }
});
