//! Raw attacking sockets, written from docs/PROTOCOL.md: the plain
//! preamble, frame headers, Ping/Pong, and the hostile frame bodies.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The plain preamble: `TBLN`, version 2, no flags, no extension.
pub const PLAIN_PREAMBLE: [u8; 8] = [0x54, 0x42, 0x4C, 0x4E, 0x02, 0x00, 0x00, 0x00];
/// A Ping frame (length 1, kind 03).
pub const PING: [u8; 5] = [1, 0, 0, 0, 3];
/// A Pong frame (length 1, kind 04).
pub const PONG: [u8; 5] = [1, 0, 0, 0, 4];
/// Frame kind of a Message.
pub const KIND_MESSAGE: u8 = 1;

/// Connects to 127.0.0.1:`port`, sends the plain preamble and reads the
/// server's (8 bytes, a plain one), within `timeout`.
pub fn handshake(port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .and_then(|()| s.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("timeouts: {e}"))?;
    s.write_all(&PLAIN_PREAMBLE)
        .map_err(|e| format!("write preamble: {e}"))?;
    let mut theirs = [0u8; 8];
    s.read_exact(&mut theirs)
        .map_err(|e| format!("read preamble: {e}"))?;
    if theirs[..5] != PLAIN_PREAMBLE[..5] {
        return Err(format!("not a tablenet v2 preamble: {theirs:02x?}"));
    }
    if theirs[5] & 2 != 0 {
        return Err("the server refused the connection".into());
    }
    if theirs[5] != 0 || theirs[6..] != [0, 0] {
        return Err(format!("unexpected preamble: {theirs:02x?}"));
    }
    Ok(s)
}

/// Writes all of `bytes` before `deadline` (the socket's write timeout
/// should be short); returns how many were written.
pub fn write_until(s: &mut TcpStream, bytes: &[u8], deadline: Instant) -> usize {
    let mut done = 0;
    while done < bytes.len() && Instant::now() < deadline {
        let end = (done + 256 * 1024).min(bytes.len());
        match s.write(&bytes[done..end]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    done
}

/// Whether the peer has closed `s` (EOF or reset), without blocking.
pub fn peer_closed(s: &TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let closed = loop {
        match (&*s).read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue, // server frames (a Close, say): keep looking
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    let _ = s.set_nonblocking(false);
    closed
}

/// The shortest unsigned varint of `n` (PROTOCOL.md section 3).
pub fn varint(n: u64, out: &mut Vec<u8>) {
    if n <= 250 {
        out.push(n as u8);
    } else if n <= 0xFFFF {
        out.push(0xFB);
        out.extend_from_slice(&(n as u16).to_le_bytes());
    } else if n <= 0xFFFF_FFFF {
        out.push(0xFC);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    } else {
        out.push(0xFD);
        out.extend_from_slice(&n.to_le_bytes());
    }
}

fn varint_len(n: u64) -> usize {
    let mut v = Vec::new();
    varint(n, &mut v);
    v.len()
}

/// A whole Message frame (length prefix included) of `length` bytes
/// (kind + body) carrying one string that fills it: what a partial-frame
/// attacker announces. Only its first part is ever sent.
pub fn string_frame(length: usize) -> Vec<u8> {
    // kind (1) + tag (1) + varint + bytes = length
    let mut v = 1;
    for cand in [1, 3, 5, 9] {
        if varint_len((length - 2 - cand) as u64) == cand {
            v = cand;
            break;
        }
    }
    let n = length - 2 - v;
    let mut out = Vec::with_capacity(4 + length);
    out.extend_from_slice(&(length as u32).to_le_bytes());
    out.push(KIND_MESSAGE);
    out.push(0x04);
    varint(n as u64, &mut out);
    out.resize(4 + length, b'x');
    out
}

/// The body (one value) of exactly `body_len` bytes encoding
/// `{nil, true, true, ..., true}`: a sequence whose first element is a
/// hole, so every later element becomes a hash entry when decoded. Each
/// `true` costs 2 bytes on the wire; a trailing nil (1 byte) evens the size.
/// Returns the body and the sequence length it announces.
pub fn nil_true_body(body_len: usize) -> (Vec<u8>, u64) {
    // tag 05 (1) + varint n + nil (1) + k * (01 01) + m * (00) + hash count 0 (1)
    for v in [1usize, 3, 5, 9] {
        let Some(rest) = body_len.checked_sub(3 + v) else {
            continue;
        };
        let (k, m) = (rest / 2, rest % 2);
        let n = 1 + k + m;
        if varint_len(n as u64) != v {
            continue;
        }
        let mut out = Vec::with_capacity(body_len);
        out.push(0x05);
        varint(n as u64, &mut out);
        out.push(0x00);
        for _ in 0..k {
            out.extend_from_slice(&[0x01, 0x01]);
        }
        out.extend(std::iter::repeat_n(0x00, m));
        out.push(0x00);
        debug_assert_eq!(out.len(), body_len);
        return (out, n as u64);
    }
    panic!("no {{nil, true, ...}} encoding of exactly {body_len} bytes");
}

/// A whole Message frame of `length` bytes (kind + body) carrying
/// [`nil_true_body`]; and the sequence length.
pub fn nil_true_frame(length: usize) -> (Vec<u8>, u64) {
    let (body, n) = nil_true_body(length - 1);
    let mut out = Vec::with_capacity(4 + length);
    out.extend_from_slice(&(length as u32).to_le_bytes());
    out.push(KIND_MESSAGE);
    out.extend_from_slice(&body);
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tablenet::proto::{Limits, decode_value};

    #[test]
    fn nil_true_bodies_decode_to_the_intended_table() {
        let limits = Limits::default();
        for len in [16usize, 17, 300, 301, 70_000, 70_001, 200_003] {
            let (body, n) = nil_true_body(len);
            assert_eq!(body.len(), len);
            let v = decode_value(&body, &limits).expect("valid encoding");
            let t = v.as_table().expect("a table");
            assert!(t.get(1i64).is_none(), "hole at 1");
            assert_eq!(t.get(2i64), Some(&tablenet::Value::Boolean(true)));
            // n - 1 trues, or n - 2 with the trailing nil.
            assert!(t.len() as u64 + 2 >= n && (t.len() as u64) < n);
        }
    }

    #[test]
    fn string_frames_have_the_announced_length() {
        let limits = Limits::default();
        for len in [16usize, 300, 70_000] {
            let f = string_frame(len);
            assert_eq!(f.len(), 4 + len);
            assert_eq!(u32::from_le_bytes(f[..4].try_into().unwrap()) as usize, len);
            // Decoding fails on a byte too many or too few.
            let v = decode_value(&f[5..], &limits).expect("valid encoding");
            assert!(v.as_bytes().is_some_and(|b| b.len() + 7 >= len));
        }
    }
}
