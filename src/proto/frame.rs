//! Frames: a 4-byte little-endian length, then a kind byte and a body.
//!
//! ```text
//! +----------------+------+---------------------------+
//! | length: u32 LE | kind | body (length - 1 bytes)   |
//! +----------------+------+---------------------------+
//! ```
//!
//! `length` counts the kind byte and the body, never the prefix itself, and
//! is at most [`Limits::max_frame_size`]. A `Message` frame's body is one
//! encoded [`Value`].

use bytes::Bytes;

use super::Limits;
use super::preamble::{self, Preamble};
use super::wire;
use crate::error::{Error, ProtocolError};
use crate::value::Value;

/// Bytes in the length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// What a frame carries. More kinds (heartbeats, close reasons) may follow in
/// later protocol versions; an unknown kind is a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameKind {
    /// One application message: the body is an encoded [`Value`].
    Message,
    /// A heartbeat probe (empty body): the receiver answers with `Pong`.
    Ping,
    /// The answer to a `Ping` (empty body).
    Pong,
    /// The sender's last frame: it will send nothing more, and closes
    /// (protocol version 2). The body is empty or a short UTF-8 reason of at
    /// most [`MAX_CLOSE_REASON`] bytes, for diagnostics. An end of stream
    /// that does not follow one means the stream was cut.
    Close,
}

/// Longest reason a `Close` frame may carry.
pub const MAX_CLOSE_REASON: usize = 128;

impl FrameKind {
    /// The kind's byte on the wire.
    pub const fn to_byte(self) -> u8 {
        match self {
            FrameKind::Message => 0x01,
            FrameKind::Ping => 0x03,
            FrameKind::Pong => 0x04,
            FrameKind::Close => 0x05,
        }
    }

    /// The kind for a byte from the wire.
    pub fn from_byte(kind: u8) -> Result<FrameKind, ProtocolError> {
        match kind {
            0x01 => Ok(FrameKind::Message),
            0x03 => Ok(FrameKind::Ping),
            0x04 => Ok(FrameKind::Pong),
            0x05 => Ok(FrameKind::Close),
            // 0x02 is the key confirmation, which only the handshake reads.
            kind => Err(ProtocolError::UnknownFrameKind { kind }),
        }
    }
}

/// Appends one complete `Message` frame carrying `value` to `out`.
///
/// The value is encoded once; to send it to many peers, share the bytes.
/// On error, `out` is left as it was.
pub fn encode_message(value: &Value, limits: &Limits, out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    out.extend_from_slice(&[0; LENGTH_PREFIX]);
    out.push(FrameKind::Message.to_byte());
    let max_len = start + LENGTH_PREFIX + limits.max_frame_size;
    if let Err(e) = wire::encode_value(value, limits, out, max_len) {
        out.truncate(start);
        return Err(match e {
            // The writer stops at the limit, so the true size is unknown.
            Error::Convert(_) => Error::FrameTooLarge {
                size: limits.max_frame_size as u64 + 1,
                limit: limits.max_frame_size,
            },
            e => e,
        });
    }
    let frame_len = out.len() - start - LENGTH_PREFIX;
    // max_frame_size <= u32::MAX (Limits::validate), so this always fits.
    let prefix = u32::try_from(frame_len).map_err(|_| Error::FrameTooLarge {
        size: frame_len as u64,
        limit: limits.max_frame_size,
    })?;
    if let Some(slot) = out.get_mut(start..start + LENGTH_PREFIX) {
        slot.copy_from_slice(&prefix.to_le_bytes());
    }
    Ok(())
}

/// Appends one complete `Message` frame carrying any `Serialize` value,
/// encoded straight from it (no intermediate [`Value`]): the same bytes as
/// [`encode_message`] of [`to_value`](crate::to_value)`(value)`.
///
/// Fails when the value cannot be sent (the error names the field, as in
/// `at players[3].inventory[0]: ...`), nests too deep, or is too large. On
/// error, `out` is left as it was.
pub fn encode_typed_message<T: serde::Serialize + ?Sized>(
    value: &T,
    limits: &Limits,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let start = out.len();
    out.extend_from_slice(&[0; LENGTH_PREFIX]);
    out.push(FrameKind::Message.to_byte());
    let max_len = start + LENGTH_PREFIX + limits.max_frame_size;
    let too_large = Error::FrameTooLarge {
        size: limits.max_frame_size as u64 + 1,
        limit: limits.max_frame_size,
    };
    if let Err(e) = crate::bridge::encode_serialized(value, limits, out, max_len, too_large) {
        out.truncate(start);
        return Err(e);
    }
    let frame_len = out.len() - start - LENGTH_PREFIX;
    let prefix = u32::try_from(frame_len).map_err(|_| Error::FrameTooLarge {
        size: frame_len as u64,
        limit: limits.max_frame_size,
    })?;
    if let Some(slot) = out.get_mut(start..start + LENGTH_PREFIX) {
        slot.copy_from_slice(&prefix.to_le_bytes());
    }
    Ok(())
}

/// Decodes a `Message` body straight into any `Deserialize` type, with no
/// intermediate [`Value`]; `&str` and `&[u8]` fields borrow from `body`.
///
/// Gives what [`from_value`](crate::from_value) of
/// [`decode_value`](super::decode_value)`(body)`
/// gives, errors included, and keeps the decoder's safety rules (depth
/// limit, lengths checked against the bytes present, no key twice).
pub fn decode_typed<'de, T: serde::Deserialize<'de>>(
    body: &'de [u8],
    limits: &Limits,
) -> Result<T, Error> {
    crate::bridge::decode_serialized(body, limits)
}

/// A complete frame with an empty body, such as `Ping`, `Pong` or `Close`.
pub fn control_frame(kind: FrameKind) -> [u8; LENGTH_PREFIX + 1] {
    [1, 0, 0, 0, kind.to_byte()]
}

/// Encodes `value` as one complete `Message` frame in a new buffer.
pub fn encode_message_to_vec(value: &Value, limits: &Limits) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(64);
    encode_message(value, limits, &mut out)?;
    Ok(out)
}

/// A frame's length prefix and where its payload lies in a decoder's buffer.
pub(crate) type FrameAt = ([u8; LENGTH_PREFIX], std::ops::Range<usize>);

/// A frame's length prefix and its uninterpreted payload, borrowed mutably
/// from the decoder's buffer (see [`FrameDecoder::next_raw_frame`]).
pub type RawFrame<'a> = ([u8; LENGTH_PREFIX], &'a mut [u8]);

/// One frame, borrowed from the decoder's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// What the frame carries.
    pub kind: FrameKind,
    /// The body: for a `Message`, an encoded value.
    pub body: &'a [u8],
}

impl Frame<'_> {
    /// Decodes a `Message` frame's value.
    pub fn decode_value(&self, limits: &Limits) -> Result<Value, Error> {
        wire::decode_value(self.body, limits)
    }
}

/// Smallest free space [`FrameDecoder::read_buffer`] offers.
const MIN_READ: usize = 4 * 1024;

/// Streaming decoder for one direction of a connection: first the preamble,
/// then frames.
///
/// Feed it the byte stream in chunks of any size, one byte at a time
/// included, with [`push`](Self::push) (or [`read_buffer`](Self::read_buffer)
/// and [`filled`](Self::filled) to read straight into it), and take out
/// exactly the frames that were encoded. Memory grows only with bytes that
/// actually arrived: a length prefix is checked against the limit before
/// anything is allocated, and a claimed length is never reserved up front.
/// After an error the stream cannot be trusted; close the connection.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Bytes `start..end` are received and not yet taken; `end..` is free.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_frame_size: usize,
    /// Bytes received in all (to tell progress on a partial frame).
    received: u64,
}

impl FrameDecoder {
    /// A decoder that refuses frames over `limits.max_frame_size`.
    pub fn new(limits: &Limits) -> FrameDecoder {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            end: 0,
            max_frame_size: limits.max_frame_size,
            received: 0,
        }
    }

    /// Bytes received and not yet taken out.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.make_room(bytes.len());
        if let Some(free) = self.buf.get_mut(self.end..self.end + bytes.len()) {
            free.copy_from_slice(bytes);
            self.end += bytes.len();
            self.received += bytes.len() as u64;
        }
    }

    /// Free space to read into (at least 4 KiB); report how much was written
    /// with [`filled`](Self::filled).
    pub fn read_buffer(&mut self) -> &mut [u8] {
        self.make_room(MIN_READ);
        self.buf.get_mut(self.end..).unwrap_or_default()
    }

    /// [`read_buffer`](Self::read_buffer) for a caller that keeps a memory
    /// budget: once a frame's length is known, the buffer grows to hold the
    /// whole frame at once (read in large chunks, never copied as it grows),
    /// unless that would grow its memory by more than `max_growth` bytes:
    /// then `None`, and nothing is allocated. A new buffer's pages are zeroed
    /// lazily by the system, so memory is touched only as bytes arrive.
    pub fn read_buffer_within(&mut self, max_growth: usize) -> Option<&mut [u8]> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end >= MIN_READ {
            return self.buf.get_mut(self.end..);
        }
        let pending = self.end - self.start;
        let at_least = pending + MIN_READ;
        let target = match self.next_frame_size() {
            Some(frame) if frame > at_least => frame,
            _ => at_least,
        };
        if target > self.buf.capacity() {
            if target - self.buf.capacity() > max_growth {
                return None;
            }
            let mut grown = vec![0u8; target];
            if let (Some(to), Some(from)) =
                (grown.get_mut(..pending), self.buf.get(self.start..self.end))
            {
                to.copy_from_slice(from);
            }
            self.buf = grown;
        } else {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
            }
            if target > self.buf.len() {
                self.buf.resize(target, 0);
            }
        }
        self.start = 0;
        self.end = pending;
        self.buf.get_mut(self.end..)
    }

    /// Hands over `range` of the buffer (taken out already: it ends at or
    /// before the bytes still pending) as shared bytes without copying it:
    /// the buffer itself becomes them, and the bytes still pending move to a
    /// fresh buffer. For large messages, whose copy would cost more.
    pub(crate) fn take_range(&mut self, range: std::ops::Range<usize>) -> Bytes {
        if range.end > self.start || range.start > range.end {
            return Bytes::copy_from_slice(self.buf.get(range).unwrap_or_default());
        }
        let rest = self
            .buf
            .get(self.start..self.end)
            .unwrap_or_default()
            .to_vec();
        let whole = std::mem::replace(&mut self.buf, rest);
        self.start = 0;
        self.end = self.buf.len();
        Bytes::from(whole).slice(range)
    }

    /// The size (length prefix included) of the frame now arriving, once
    /// its prefix is in; what holding it whole will take.
    pub fn next_frame_size(&self) -> Option<usize> {
        let prefix = self.pending().first_chunk::<LENGTH_PREFIX>()?;
        Some(LENGTH_PREFIX + (u32::from_le_bytes(*prefix) as usize).min(self.max_frame_size))
    }

    /// Bytes of memory the receive buffer holds.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes received since the decoder was made.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Marks `n` bytes of the last [`read_buffer`](Self::read_buffer) as received.
    pub fn filled(&mut self, n: usize) {
        let end = (self.end + n).min(self.buf.len());
        self.received += (end - self.end) as u64;
        self.end = end;
    }

    /// Discards everything received and not yet taken out.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Frees the buffer when nothing is pending, so an idle connection holds
    /// no receive memory.
    pub fn release_idle_memory(&mut self) {
        if self.start == self.end {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Ensures `n` free bytes after `end`, moving pending bytes to the front
    /// before growing.
    fn make_room(&mut self, n: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end >= n {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < n {
            self.buf.resize(self.end + n, 0);
        }
    }

    fn pending(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Takes the peer's preamble, once it has fully arrived.
    ///
    /// Call this first, until it gives `Some`; then [`next_frame`](Self::next_frame).
    /// A stream that cannot be tablenet is refused from its first wrong byte.
    pub fn next_preamble(&mut self) -> Result<Option<Preamble>, Error> {
        match preamble::decode(self.pending())? {
            Some((preamble, used)) => {
                self.start += used;
                Ok(Some(preamble))
            }
            None => Ok(None),
        }
    }

    /// Length (kind byte and body) of the next frame if it has fully arrived,
    /// without taking it out.
    pub fn next_frame_len(&self) -> Option<usize> {
        let pending = self.pending();
        let len = u32::from_le_bytes(*pending.first_chunk::<LENGTH_PREFIX>()?) as usize;
        (pending.len() >= LENGTH_PREFIX + len).then_some(len)
    }

    /// Takes the next complete frame without interpreting it: its length
    /// prefix and its payload, mutable so a sealed payload can be opened in
    /// place. For encrypted connections, whose payload is ciphertext.
    pub fn next_raw_frame(&mut self) -> Result<Option<RawFrame<'_>>, Error> {
        let Some((prefix, range)) = self.next_raw_frame_at()? else {
            return Ok(None);
        };
        Ok(Some((prefix, self.get_mut(range))))
    }

    /// Like [`next_raw_frame`](Self::next_raw_frame), but gives where the
    /// payload lies in the buffer instead of borrowing it, so a caller can
    /// act on the decoder in between; read it with [`get_mut`](Self::get_mut).
    /// The range stays valid until the next `push` or `read_buffer`.
    pub(crate) fn next_raw_frame_at(&mut self) -> Result<Option<FrameAt>, Error> {
        let pending = self.pending();
        let Some(prefix) = pending.first_chunk::<LENGTH_PREFIX>().copied() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(prefix) as usize;
        if len > self.max_frame_size {
            return Err(Error::FrameTooLarge {
                size: len as u64,
                limit: self.max_frame_size,
            });
        }
        if pending.len() < LENGTH_PREFIX + len {
            return Ok(None);
        }
        let at = self.start + LENGTH_PREFIX;
        self.start = at + len;
        Ok(Some((prefix, at..at + len)))
    }

    /// Bytes of the buffer that [`next_raw_frame_at`](Self::next_raw_frame_at)
    /// pointed at (empty for a range that is no longer valid).
    pub(crate) fn get_mut(&mut self, range: std::ops::Range<usize>) -> &mut [u8] {
        self.buf.get_mut(range).unwrap_or_default()
    }

    /// Changes the largest frame accepted from now on (an encrypted
    /// connection's frames carry a 16-byte tag on top of the limit).
    pub fn set_max_frame_size(&mut self, max_frame_size: usize) {
        self.max_frame_size = max_frame_size;
    }

    /// Takes the next complete frame, if one has fully arrived.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, Error> {
        let pending = self.pending();
        let Some(prefix) = pending.first_chunk::<LENGTH_PREFIX>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*prefix) as usize;
        if len > self.max_frame_size {
            return Err(Error::FrameTooLarge {
                size: len as u64,
                limit: self.max_frame_size,
            });
        }
        if len == 0 {
            return Err(ProtocolError::EmptyFrame.into());
        }
        if pending.len() < LENGTH_PREFIX + len {
            return Ok(None);
        }
        let at = self.start + LENGTH_PREFIX;
        self.start = at + len;
        let payload = self.buf.get(at..at + len).unwrap_or_default();
        let (&kind, body) = payload.split_first().ok_or(ProtocolError::EmptyFrame)?;
        let kind = FrameKind::from_byte(kind)?;
        Ok(Some(Frame { kind, body }))
    }
}
