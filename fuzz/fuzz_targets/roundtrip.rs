//! An arbitrary `Value` (built from `arbitrary::Unstructured` through the
//! public `Table` API, at most 8 tables deep) encodes as a frame and decodes
//! back to an equal value (floats compared by bit pattern), and the decoded
//! value re-encodes to the same bytes. Limits come from the input too, so
//! the encoder's own depth and size checks are exercised.

#![no_main]

use std::hint::black_box;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use tablenet::Error;
use tablenet::proto::{FrameDecoder, FrameKind, LENGTH_PREFIX, Limits, encode_message_to_vec};
use tablenet_fuzz::{MAX_GEN_DEPTH, arbitrary_value, depth, same};

fn limits(u: &mut Unstructured<'_>) -> arbitrary::Result<Limits> {
    let mut limits = Limits::default();
    if u.ratio(1u8, 4)? {
        limits.max_depth = u.int_in_range(1..=MAX_GEN_DEPTH)?;
    }
    if u.ratio(1u8, 4)? {
        limits.max_frame_size = u.int_in_range(16..=1024)?;
    }
    Ok(limits)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(limits) = limits(&mut u) else {
        return;
    };
    limits.validate().expect("generated limits are valid");
    let mut budget = 512;
    let Ok(value) = arbitrary_value(&mut u, MAX_GEN_DEPTH, &mut budget) else {
        return;
    };
    let d = depth(&value);

    let frame = match encode_message_to_vec(&value, &limits) {
        Ok(frame) => frame,
        Err(Error::TooDeep { limit }) => {
            assert_eq!(limit, limits.max_depth);
            assert!(d > limits.max_depth, "depth {d} refused at limit {limit}");
            return;
        }
        Err(Error::FrameTooLarge { limit, .. }) => {
            assert_eq!(limit, limits.max_frame_size);
            // With room to spare it encodes, and is really too large (unless
            // it is also too deep, which may be found first).
            let roomy = Limits {
                max_frame_size: Limits::DEFAULT_MAX_FRAME_SIZE,
                ..limits
            };
            match encode_message_to_vec(&value, &roomy) {
                Ok(big) => assert!(big.len() - LENGTH_PREFIX > limits.max_frame_size),
                Err(Error::TooDeep { .. }) => assert!(d > limits.max_depth),
                Err(e) => panic!("encoding failed with room to spare: {e}"),
            }
            return;
        }
        Err(e) => panic!("encoding {value:?} failed: {e}"),
    };
    assert!(d <= limits.max_depth);
    assert!(frame.len() - LENGTH_PREFIX <= limits.max_frame_size);

    let mut decoder = FrameDecoder::new(&limits);
    decoder.push(&frame);
    let decoded = decoder
        .next_frame()
        .expect("own frame refused")
        .expect("own frame incomplete");
    assert_eq!(decoded.kind, FrameKind::Message);
    let back = decoded.decode_value(&limits).expect("own encoding refused");
    assert!(same(&value, &back), "{value:?} came back as {back:?}");
    assert_eq!(decoder.buffered(), 0);
    // The same bytes up to the order of hash entries (integer keys after a
    // hole come first from wherever each table keeps them).
    let again = encode_message_to_vec(&back, &limits).expect("re-encodes");
    assert_eq!(frame.len(), again.len(), "re-encoding changed the length");
    let third = tablenet::proto::decode_value(&again[LENGTH_PREFIX + 1..], &limits)
        .expect("own re-encoding refused");
    assert!(same(&value, &third), "{value:?} came back as {third:?}");
    black_box(again);
});
