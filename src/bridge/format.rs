//! The wire's value encoding (docs/PROTOCOL.md, section 3) as the direct
//! path writes and reads it: tags, varints and zigzag integers. The `Value`
//! codec in `proto::wire` writes the same bytes by hand too (bincode 2's
//! standard encoding, checked against bincode 2.0.1 only in tests); these
//! few functions let the direct path skip the `Value` tree.

/// Value tags. Keys use the same tags.
pub(crate) mod tag {
    pub const NIL: u8 = 0;
    pub const BOOLEAN: u8 = 1;
    pub const INTEGER: u8 = 2;
    pub const NUMBER: u8 = 3;
    pub const STRING: u8 = 4;
    pub const TABLE: u8 = 5;
}

/// Largest varint that takes one byte.
const ONE_BYTE_MAX: u64 = 250;
const U16_PREFIX: u8 = 0xfb;
const U32_PREFIX: u8 = 0xfc;
const U64_PREFIX: u8 = 0xfd;

/// How many bytes the shortest varint of `n` takes.
pub(crate) fn varint_len(n: u64) -> usize {
    if n <= ONE_BYTE_MAX {
        1
    } else if n <= u64::from(u16::MAX) {
        3
    } else if n <= u64::from(u32::MAX) {
        5
    } else {
        9
    }
}

/// Appends the shortest varint of `n`.
#[inline(always)]
pub(crate) fn put_varint(out: &mut Vec<u8>, n: u64) {
    if n <= ONE_BYTE_MAX {
        out.push(n as u8);
    } else {
        put_long_varint(out, n);
    }
}

/// [`put_varint`] of a value over one byte.
#[inline(never)]
fn put_long_varint(out: &mut Vec<u8>, n: u64) {
    if let Ok(n) = u16::try_from(n) {
        out.push(U16_PREFIX);
        out.extend_from_slice(&n.to_le_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(U32_PREFIX);
        out.extend_from_slice(&n.to_le_bytes());
    } else {
        out.push(U64_PREFIX);
        out.extend_from_slice(&n.to_le_bytes());
    }
}

/// Appends a varint of `n` in the form `width` bytes long (1, 3, 5 or 9),
/// which must hold `n`: a placeholder patched later.
pub(crate) fn put_varint_width(out: &mut Vec<u8>, n: u64, width: usize) {
    match width {
        1 => out.push(n as u8),
        3 => {
            out.push(U16_PREFIX);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        5 => {
            out.push(U32_PREFIX);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(U64_PREFIX);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// The zigzag mapping of a signed integer.
#[inline]
pub(crate) fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// The inverse of [`zigzag`].
#[inline]
pub(crate) fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// Reads one varint at `*pos` of `input`, moving `pos` past it. `None`
/// when the input ends early or the prefix is `FE`/`FF`.
#[inline]
pub(crate) fn get_varint(input: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *input.get(*pos)?;
    if u64::from(first) <= ONE_BYTE_MAX {
        *pos += 1;
        return Some(u64::from(first));
    }
    let width = match first {
        U16_PREFIX => 2,
        U32_PREFIX => 4,
        U64_PREFIX => 8,
        _ => return None,
    };
    let bytes = input.get(*pos + 1..*pos + 1 + width)?;
    let mut le = [0u8; 8];
    le.get_mut(..width)?.copy_from_slice(bytes);
    *pos += 1 + width;
    Some(u64::from_le_bytes(le))
}
