//! Sealed frames under a fixed key: the session of docs/PROTOCOL.md
//! section 5.8 (documented keys), established by the library's own
//! handshake, then the peer's frames.
//!
//! Input layout: `[config][rest...]`
//!
//! ```text
//! config bits 0-1: key and cipher suite (tablenet_fuzz::SUITES[0..4])
//!        bit 2: this side is the client (the peer the server)
//!        bit 3: mode: 0 = raw, 1 = seal then tamper
//!        bits 4-5: max frame size (default, 16, 64, 4096)
//! ```
//!
//! Raw mode: `rest` is the byte stream from the peer, sealed frames read by
//! `FrameDecoder::next_raw_frame` and opened in place; a frame that opens is
//! read as a plain frame (kind byte, value). Forging a tag is out of reach,
//! so the seeds carry frames sealed under this session.
//!
//! Seal-then-tamper mode: `rest` is `[k][k times: len u8, payload][ops]`: the
//! peer's `Sealer` seals the k payloads, then each 3-byte op `[pos u16 LE]
//! [xor]` flips bits of the sealed stream. Every frame before the first
//! changed byte must open to its payload; the frame holding the first
//! changed byte must not open.

#![no_main]

use std::hint::black_box;

use libfuzzer_sys::fuzz_target;
use tablenet::Error;
use tablenet::proto::FrameDecoder;
use tablenet::proto::secure::{Role, SecureError, TAG_LEN};
use tablenet_fuzz::{SUITES, decode_payload, fixed_sessions, limits_for, take_byte, take_le};

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let config = take_byte(&mut data);
    let (key_hex, suite) = SUITES[usize::from(config & 3)];
    let role = if config & 4 != 0 {
        Role::Client
    } else {
        Role::Server
    };
    let limits = limits_for(config >> 4);
    let (mut ours, mut theirs) =
        fixed_sessions(role, key_hex, suite).expect("the documented sessions establish");
    let mut decoder = FrameDecoder::new(&limits);
    decoder.set_max_frame_size(limits.max_frame_size + TAG_LEN);

    if config & 8 == 0 {
        decoder.push(data);
        while let Ok(Some((prefix, payload))) = decoder.next_raw_frame() {
            let len = payload.len();
            let counter = ours.opener().counter();
            match ours.opener().open_in_place(prefix, payload) {
                Ok(plaintext) => {
                    assert_eq!(plaintext.len() + TAG_LEN, len);
                    assert_eq!(ours.opener().counter(), counter + 1);
                    black_box(decode_payload(plaintext, &limits).ok());
                }
                Err(e) => {
                    assert_eq!(e, SecureError::Authentication);
                    assert_eq!(ours.opener().counter(), counter);
                    break;
                }
            }
        }
        return;
    }

    // Seal, then tamper.
    let count = usize::from(take_byte(&mut data) & 7);
    let mut payloads = Vec::with_capacity(count);
    for _ in 0..count {
        let len = take_byte(&mut data) as usize;
        let (payload, rest) = data.split_at(len.min(data.len()));
        data = rest;
        payloads.push(payload);
    }
    let mut wire = Vec::new();
    let mut bounds = Vec::with_capacity(count);
    for payload in &payloads {
        let start = wire.len();
        theirs
            .sealer()
            .seal(payload, &mut wire)
            .expect("sealing a small payload");
        assert_eq!(wire.len() - start, 4 + payload.len() + TAG_LEN);
        bounds.push((start, wire.len()));
    }
    let original = wire.clone();
    while data.len() >= 3 && !wire.is_empty() {
        let pos = take_le(&mut data, 2) % wire.len();
        wire[pos] ^= take_byte(&mut data);
    }
    let first_change = wire.iter().zip(&original).position(|(a, b)| a != b);

    decoder.push(&wire);
    for (payload, &(start, end)) in payloads.iter().zip(&bounds) {
        let intact = first_change.is_none_or(|at| end <= at);
        let result = decoder.next_raw_frame();
        if intact {
            let too_large = payload.len() > limits.max_frame_size;
            let (prefix, sealed) = match result {
                Ok(Some(frame)) => {
                    assert!(!too_large);
                    frame
                }
                Err(Error::FrameTooLarge { .. }) if too_large => return,
                other => panic!("an intact frame at {start} did not come out: {other:?}"),
            };
            let plaintext = ours
                .opener()
                .open_in_place(prefix, sealed)
                .expect("an intact frame opens");
            assert_eq!(plaintext, *payload);
            black_box(decode_payload(plaintext, &limits).ok());
        } else {
            // The first changed frame: refused by size, incomplete, or fails
            // to open. Nothing after it is read (the connection closes).
            if let Ok(Some((prefix, sealed))) = result {
                let opened = ours.opener().open_in_place(prefix, sealed);
                assert!(
                    opened.is_err(),
                    "a tampered frame at {start}..{end} opened (first change at {first_change:?})"
                );
            }
            return;
        }
    }
    assert_eq!(decoder.buffered(), 0);
});
