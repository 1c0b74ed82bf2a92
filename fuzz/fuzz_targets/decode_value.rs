//! `tablenet::proto::decode_value` on arbitrary bytes: a Message frame's
//! body, as it comes from a peer. Any input must give a value or an error,
//! never a panic, a stack overflow or an allocation out of proportion.
//!
//! On success it also checks that the codec is consistent: the value
//! re-encodes and decodes to the same value (floats by bit pattern), the
//! canonical encoding is a fixed point, the depth limit is exact, and a
//! decoded-size limit is monotonic: a value that decodes within some cost
//! decodes within any larger one, and fails only with `DecodedTooLarge`
//! below it.

#![no_main]

use std::fmt::Write as _;
use std::hint::black_box;

use libfuzzer_sys::fuzz_target;
use tablenet::proto::{Limits, decode_value, decode_value_within, encode_message_to_vec};
use tablenet::{Error, ProtocolError};
use tablenet_fuzz::{check_table_invariants, depth, same};

/// A `fmt::Write` that only counts, so formatting is exercised without
/// keeping the text.
struct Count(usize);

impl std::fmt::Write for Count {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(value) = black_box(decode_value(data, &limits)) else {
        return;
    };
    if let tablenet::Value::Table(t) = &value {
        check_table_invariants(t);
    }
    let mut sink = Count(0);
    write!(sink, "{value} {value:?}").expect("formatting a value cannot fail");
    black_box(sink.0);

    // Canonical re-encoding decodes to the same value, and re-encodes to
    // the same bytes up to the order of hash entries (integer keys after a
    // hole come first from wherever each table keeps them), so to the same
    // length.
    let frame = encode_message_to_vec(&value, &limits).expect("a decoded value re-encodes");
    let body = &frame[5..];
    let again = decode_value(body, &limits).expect("a canonical encoding decodes");
    assert!(same(&value, &again), "{value:?} re-decoded as {again:?}");
    let frame2 = encode_message_to_vec(&again, &limits).expect("re-encodes");
    assert_eq!(frame.len(), frame2.len(), "re-encoding changed the length");
    let third = decode_value(&frame2[5..], &limits).expect("a canonical encoding decodes");
    assert!(same(&value, &third), "{value:?} re-decoded as {third:?}");

    // The decoded-size limit: a value never costs more than 256 times its
    // wire size; find the least cost that passes (bisection), then one byte
    // less fails with the right error.
    let (mut lo, mut hi) = (0usize, 256 * (data.len() + 1));
    assert!(
        decode_value_within(data, &limits, hi).is_ok(),
        "decodes to more than 256 times its size"
    );
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if decode_value_within(data, &limits, mid).is_ok() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    assert!(decode_value_within(data, &limits, lo).is_ok());
    if lo > 0 {
        match decode_value_within(data, &limits, lo - 1) {
            Err(Error::Protocol(ProtocolError::DecodedTooLarge { limit })) => {
                assert_eq!(limit, lo - 1)
            }
            other => panic!("cost {lo} passes, {} gives {other:?}", lo - 1),
        }
    }

    // The depth limit is exact: the value's own depth passes, one less fails.
    let d = depth(&value);
    if d >= 1 {
        let exact = Limits {
            max_depth: d,
            ..limits
        };
        assert!(
            decode_value(data, &exact).is_ok(),
            "depth {d} refused at limit {d}"
        );
        let less = Limits {
            max_depth: d - 1,
            ..limits
        };
        if d >= 2 {
            match decode_value(data, &less) {
                Err(Error::TooDeep { limit }) => assert_eq!(limit, d - 1),
                other => panic!("depth {d} at limit {}: {other:?}", d - 1),
            }
        }
    }
});
