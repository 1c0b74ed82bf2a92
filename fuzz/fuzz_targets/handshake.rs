//! The connection start, for both roles: the input is everything the peer
//! sends, read through the library's own `FrameDecoder`.
//!
//! Input layout: `[config][peer's bytes...]`
//!
//! ```text
//! config bit 0: this side is the client (else the server)
//!        bits 1-3: key and cipher suite (tablenet_fuzz::SUITES, modulo 5;
//!                  the last is refused: key too short)
//!        bit 4: plain mode: the preamble decoder alone, then plain frames
//! ```
//!
//! Encrypted mode: the peer's preamble goes to `Handshake::receive_preamble`
//! and the next frame to `receive_confirm`; once the session is
//! established, further frames are opened and decoded. This side uses the
//! salt of docs/PROTOCOL.md section 5.8 for its role, so the documented
//! vectors (the seeds) complete the handshake.

#![no_main]

use std::hint::black_box;

use libfuzzer_sys::fuzz_target;
use tablenet::proto::secure::{CONFIRM_FRAME_LEN, Role, SecureError, TAG_LEN};
use tablenet::proto::{FrameDecoder, LENGTH_PREFIX, Limits, MAX_EXTENSION, VERSION};
use tablenet_fuzz::{SUITES, decode_payload, handshake, peer_of, take_byte};

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
    let Some(mut ours) = handshake(role, key_hex, suite) else {
        assert_eq!(
            suite_index,
            SUITES.len() - 1,
            "a valid key and suite refused"
        );
        return;
    };
    // What a genuine peer with the documented salt would send.
    let reference = handshake(peer_of(role), key_hex, suite).map(|h| h.preamble());

    let mut decoder = FrameDecoder::new(limits);
    decoder.push(peer);
    let Ok(Some(peer_preamble)) = decoder.next_preamble() else {
        return;
    };
    let confirm = match ours.receive_preamble(&peer_preamble) {
        Ok(confirm) => confirm,
        Err(e) => {
            black_box(e.to_string());
            // The state machine is over after an error.
            assert!(matches!(
                ours.receive_preamble(&peer_preamble),
                Err(SecureError::Misuse(_))
            ));
            return;
        }
    };
    assert_eq!(confirm.len(), CONFIRM_FRAME_LEN);
    assert_eq!(
        confirm[..LENGTH_PREFIX],
        ((CONFIRM_FRAME_LEN - LENGTH_PREFIX) as u32).to_le_bytes()
    );
    black_box(&confirm);

    // Before the confirmation, no frame larger than it (as the IO layer).
    decoder.set_max_frame_size(CONFIRM_FRAME_LEN - LENGTH_PREFIX);
    let Ok(Some((prefix, payload))) = decoder.next_raw_frame() else {
        return;
    };
    let mut session = match ours.receive_confirm(prefix, payload) {
        Ok(session) => session,
        Err(e) => {
            black_box(e.to_string());
            return;
        }
    };
    // A confirmation opens only for the genuine peer's preamble: anything
    // else would be a forgery.
    assert_eq!(
        Some(&peer_preamble),
        reference.as_ref(),
        "handshake completed with an altered preamble"
    );
    assert!(matches!(
        ours.receive_confirm(prefix, &[]),
        Err(SecureError::Misuse(_))
    ));

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
