//! [`SendQueue`]: one connection's outgoing frames, sealed in order, ready
//! for vectored writes.
//!
//! Small frames are copied back to back into a reused buffer (a stream of
//! small messages allocates nothing), large ones are queued as they are
//! (shared, not copied). On a keyed link every frame is sealed as it is
//! queued, so the sealer's counter order is the wire order; frames queued
//! before the handshake ends are sealed, in order, when it hands over the
//! sealer ([`start_sealing`](SendQueue::start_sealing)).
//!
//! A fan-out (one frame to many connections) queues the shared frame as it
//! is ([`push_deferred`](SendQueue::push_deferred): no copy, no seal), so
//! the sending thread does constant work per connection; the IO thread
//! seals and gathers it with [`prepare`](SendQueue::prepare) before writing.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

use super::LENGTH_PREFIX;
use super::secure::{Sealer, SecureError, TAG_LEN};

/// Frames up to this size are copied into a shared chunk; larger ones are
/// queued as they are.
pub const SMALL_FRAME: usize = 8 * 1024;

/// Small frames gathered into one chunk until it holds this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;

/// One encoded frame (length prefix included) handed to [`SendQueue::push`].
#[derive(Clone, Debug)]
pub enum OutFrame<'a> {
    /// Borrowed from the caller: copied into the queue.
    Borrowed(&'a [u8]),
    /// Owned bytes, possibly shared by the receivers of one broadcast:
    /// queued without copying when large.
    Shared(Bytes),
}

impl OutFrame<'_> {
    /// The frame's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            OutFrame::Borrowed(b) => b.len(),
            OutFrame::Shared(b) => b.len(),
        }
    }

    /// True for a zero-length frame (never a valid one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Queued bytes: a buffer of whole small frames appended one after another,
/// or one large frame shared without copying.
enum Chunk {
    Owned(Vec<u8>),
    Shared(Bytes),
    /// One whole frame, not yet sealed or gathered (see
    /// [`SendQueue::prepare`]); never written as it is.
    Deferred(Bytes),
}

impl std::ops::Deref for Chunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(b) | Chunk::Deferred(b) => b,
        }
    }
}

/// One connection's outgoing frames, sealed in order, ready for vectored
/// writes.
///
/// Small frames are copied back to back into a reused buffer (a stream of
/// small messages allocates nothing), large ones are queued as they are
/// (shared, not copied). On a keyed link every frame is sealed as it is
/// queued, so the sealer's counter order is the wire order; frames queued
/// before the handshake ends are sealed, in order, when it hands over the
/// sealer ([`start_sealing`](SendQueue::start_sealing)).
#[derive(Default)]
pub struct SendQueue {
    /// Frames waiting, in chunks; the first may be partly written.
    queue: VecDeque<Chunk>,
    /// A written chunk's buffer, kept for the next small frames.
    spare: Option<Vec<u8>>,
    /// Bytes of `queue[0]` already written.
    head_written: usize,
    /// Unwritten bytes in `queue`.
    queued: usize,
    /// Seals outgoing frames once a keyed handshake has finished.
    sealer: Option<Sealer>,
    /// `Deferred` chunks in `queue`. While there are any, every push is
    /// deferred too, so frames are sealed in queue order.
    deferred: usize,
}

impl std::fmt::Debug for SendQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendQueue")
            .field("queued", &self.queued)
            .field("chunks", &self.queue.len())
            .field("sealing", &self.sealer.is_some())
            .field("deferred", &self.deferred)
            .finish()
    }
}

impl SendQueue {
    /// An empty queue that does not seal (until [`start_sealing`](Self::start_sealing)).
    pub fn new() -> SendQueue {
        SendQueue::default()
    }

    /// Unwritten bytes queued (sealed size on keyed links).
    pub fn len(&self) -> usize {
        self.queued
    }

    /// Nothing is waiting to be written.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Frames are sealed as they are queued.
    pub fn is_sealing(&self) -> bool {
        self.sealer.is_some()
    }

    /// Drops everything queued (the connection is gone).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.queued = 0;
        self.head_written = 0;
        self.deferred = 0;
    }

    /// The handshake finished: seal what was queued in plain, in order, and
    /// keep the sealer for later frames. Nothing may have been written yet.
    pub fn start_sealing(&mut self, sealer: Sealer) -> Result<(), SecureError> {
        let queue = std::mem::take(&mut self.queue);
        self.queued = 0;
        self.head_written = 0; // nothing is written before the handshake ends
        self.deferred = 0; // deferred frames are sealed here with the rest
        self.sealer = Some(sealer);
        for chunk in queue {
            // Every chunk holds whole frames back to back.
            let mut rest: &[u8] = &chunk;
            while let Some(prefix) = rest.first_chunk::<LENGTH_PREFIX>() {
                let end = (LENGTH_PREFIX + u32::from_le_bytes(*prefix) as usize).min(rest.len());
                let (frame, tail) = rest.split_at(end);
                self.push(OutFrame::Borrowed(frame))?;
                rest = tail;
            }
        }
        Ok(())
    }

    /// Appends one frame, sealed when the queue seals. Small frames are
    /// copied into the last owned chunk (reusing a written one's buffer).
    pub fn push(&mut self, frame: OutFrame) -> Result<(), SecureError> {
        if self.deferred > 0 {
            // Behind a deferred frame: sealing this one now would give it
            // an earlier counter than the frame before it on the wire.
            let bytes = match frame {
                OutFrame::Borrowed(b) => Bytes::copy_from_slice(b),
                OutFrame::Shared(b) => b,
            };
            self.push_deferred(bytes);
            return Ok(());
        }
        let tag = if self.sealer.is_some() { TAG_LEN } else { 0 };
        let len = frame.len();
        let frame = match frame {
            OutFrame::Borrowed(bytes) if len <= SMALL_FRAME => bytes,
            OutFrame::Borrowed(bytes) => return self.push_large(Bytes::copy_from_slice(bytes)),
            OutFrame::Shared(bytes) if len <= SMALL_FRAME => {
                // A copy costs less than a separate write (or seal) of it.
                return self.push(OutFrame::Borrowed(&bytes));
            }
            OutFrame::Shared(bytes) => return self.push_large(bytes),
        };
        let fits = matches!(self.queue.back(),
            Some(Chunk::Owned(v)) if v.len() + len + tag <= CHUNK_BYTES);
        if !fits {
            let mut buf = self.spare.take().unwrap_or_default();
            buf.clear();
            buf.reserve(len + tag);
            self.queue.push_back(Chunk::Owned(buf));
        }
        let Some(Chunk::Owned(buf)) = self.queue.back_mut() else {
            unreachable!("an owned chunk was just ensured at the back");
        };
        let start = buf.len();
        buf.extend_from_slice(frame);
        if let Some(sealer) = self.sealer.as_mut()
            && let Err(e) = sealer.seal_in_place(buf, start)
        {
            buf.truncate(start);
            if buf.is_empty() {
                self.queue.pop_back();
            }
            return Err(e);
        }
        self.queued += buf.len() - start;
        Ok(())
    }

    /// Queues a large frame as its own chunk, sealed in place when this
    /// send holds its only reference.
    fn push_large(&mut self, frame: Bytes) -> Result<(), SecureError> {
        let chunk = match self.sealer.as_mut() {
            None => Chunk::Shared(frame),
            Some(sealer) => {
                let mut buf = match frame.try_into_mut() {
                    Ok(unique) => Vec::from(unique),
                    Err(shared) => shared.to_vec(),
                };
                sealer.seal_in_place(&mut buf, 0)?;
                Chunk::Owned(buf)
            }
        };
        self.queued += chunk.len();
        self.queue.push_back(chunk);
        Ok(())
    }

    /// Queues one whole frame (length prefix included) without sealing or
    /// copying it: constant work, for the thread that fans one frame out to
    /// many connections. It counts at its sealed size at once; it is sealed
    /// and gathered by [`prepare`](Self::prepare), which must run before
    /// the queue is written (until then [`io_slices`](Self::io_slices)
    /// stops short of it).
    pub fn push_deferred(&mut self, frame: Bytes) {
        let tag = if self.sealer.is_some() { TAG_LEN } else { 0 };
        self.queued += frame.len() + tag;
        self.deferred += 1;
        self.queue.push_back(Chunk::Deferred(frame));
    }

    /// Frames queued by [`push_deferred`](Self::push_deferred) wait for
    /// [`prepare`](Self::prepare).
    pub fn has_deferred(&self) -> bool {
        self.deferred > 0
    }

    /// Seals (on a keyed link) and gathers the deferred frames, in order, as
    /// [`push`](Self::push) would have. Done by the writing thread, before a
    /// write. An error (the sealer's counter is exhausted) leaves the queue
    /// unusable: the connection must close.
    pub fn prepare(&mut self) -> Result<(), SecureError> {
        let Some(first) = self
            .queue
            .iter()
            .position(|c| matches!(c, Chunk::Deferred(_)))
        else {
            return Ok(());
        };
        // Nothing is ever pushed behind a deferred frame without being
        // deferred itself, and a deferred chunk is never written: the tail
        // from the first one holds whole frames, none of them written.
        let tail = self.queue.split_off(first);
        let tag = if self.sealer.is_some() { TAG_LEN } else { 0 };
        self.deferred = 0;
        for chunk in tail {
            match chunk {
                Chunk::Deferred(frame) => {
                    self.queued = self.queued.saturating_sub(frame.len() + tag);
                    self.push(OutFrame::Shared(frame))?;
                }
                other => {
                    // Unreachable by the rule above; kept in order anyway.
                    self.queue.push_back(other);
                }
            }
        }
        Ok(())
    }

    /// Fills `slices` with the unwritten bytes, oldest first, for one
    /// vectored write; returns how many slices it filled. Stops at the first
    /// deferred frame (see [`prepare`](Self::prepare)).
    pub fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut count = 0;
        for (i, (chunk, slot)) in self.queue.iter().zip(slices.iter_mut()).enumerate() {
            if matches!(chunk, Chunk::Deferred(_)) {
                break;
            }
            let skip = if i == 0 { self.head_written } else { 0 };
            *slot = IoSlice::new(chunk.get(skip..).unwrap_or_default());
            count = i + 1;
        }
        count
    }

    /// Copies up to `max` unwritten bytes into `out` without consuming them
    /// (for an in-memory pipe), stopping at the first deferred frame; confirm what was sent with
    /// [`advance`](Self::advance).
    pub fn peek_into(&self, out: &mut Vec<u8>, max: usize) -> usize {
        let mut copied = 0;
        for (i, chunk) in self.queue.iter().enumerate() {
            if matches!(chunk, Chunk::Deferred(_)) {
                break; // not ready: see `prepare`
            }
            let skip = if i == 0 { self.head_written } else { 0 };
            let bytes = chunk.get(skip..).unwrap_or_default();
            let take = bytes.len().min(max - copied);
            out.extend_from_slice(bytes.get(..take).unwrap_or_default());
            copied += take;
            if copied == max {
                break;
            }
        }
        copied
    }

    /// Frames not yet completely written (a partly written one included).
    /// Every chunk starts at a frame boundary, so each length prefix can be
    /// read from there.
    pub fn unsent_frames(&self) -> usize {
        let mut frames = 0;
        for (i, chunk) in self.queue.iter().enumerate() {
            let written = if i == 0 { self.head_written } else { 0 };
            let mut at = 0;
            while let Some(prefix) = chunk
                .get(at..)
                .and_then(|r| r.first_chunk::<LENGTH_PREFIX>())
            {
                at += LENGTH_PREFIX + u32::from_le_bytes(*prefix) as usize;
                if at > written {
                    frames += 1;
                }
            }
        }
        frames
    }

    /// Drops `n` written bytes from the front of the queue.
    pub fn advance(&mut self, mut n: usize) {
        self.queued = self.queued.saturating_sub(n);
        while n > 0 {
            let Some(front) = self.queue.front() else {
                break;
            };
            let left = front.len() - self.head_written;
            if n >= left {
                n -= left;
                if let Some(Chunk::Owned(buf)) = self.queue.pop_front()
                    && self.spare.is_none()
                    && buf.capacity() <= CHUNK_BYTES
                {
                    self.spare = Some(buf); // reused by the next push
                }
                self.head_written = 0;
            } else {
                self.head_written += n;
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::secure::{CipherSuite, sessions};

    /// A plain frame of `len` bytes whose body is `fill`.
    fn frame(len: usize, fill: u8) -> Vec<u8> {
        let mut f = (len as u32 - 4).to_le_bytes().to_vec();
        f.resize(len, fill);
        f
    }

    fn queued_bytes(out: &SendQueue) -> Vec<u8> {
        let mut all = Vec::new();
        out.peek_into(&mut all, usize::MAX);
        all
    }

    #[test]
    fn small_frames_share_a_chunk_and_large_ones_are_not_copied() {
        let mut out = SendQueue::new();
        let (a, b, d) = (frame(30, 1), frame(SMALL_FRAME, 2), frame(5, 4));
        let c = Bytes::from(frame(SMALL_FRAME + 1, 3));
        out.push(OutFrame::Borrowed(&a)).unwrap();
        out.push(OutFrame::Shared(Bytes::from(b.clone()))).unwrap();
        out.push(OutFrame::Shared(c.clone())).unwrap();
        out.push(OutFrame::Borrowed(&d)).unwrap();
        assert_eq!(out.queue.len(), 3, "a+b, c, d");
        match out.queue.get(1) {
            Some(Chunk::Shared(shared)) => assert_eq!(shared.as_ptr(), c.as_ptr()),
            _ => panic!("the large frame is queued as it is"),
        }
        let all = [a.as_slice(), &b, &c, &d].concat();
        assert_eq!(queued_bytes(&out), all);
        assert_eq!(out.len(), all.len());
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(out.io_slices(&mut slices), 3);
        assert_eq!(out.unsent_frames(), 4);
        // Written in two parts: the first chunk's buffer is kept for reuse.
        out.advance(10);
        assert_eq!(out.unsent_frames(), 4, "a partly written frame is unsent");
        assert_eq!(out.head_written, 10);
        assert_eq!(queued_bytes(&out), all[10..]);
        assert!(out.spare.is_none());
        out.advance(a.len() + b.len() - 10);
        assert_eq!(out.unsent_frames(), 2);
        assert_eq!(out.queue.len(), 2);
        assert!(out.spare.as_ref().is_some_and(|v| v.capacity() >= a.len()));
        out.advance(out.len());
        assert!(out.is_empty());
        assert_eq!(out.len(), 0);
    }

    #[test]
    fn a_chunk_stops_growing_at_its_limit() {
        let mut out = SendQueue::new();
        let f = frame(SMALL_FRAME, 7);
        for _ in 0..(CHUNK_BYTES / SMALL_FRAME + 1) {
            out.push(OutFrame::Borrowed(&f)).unwrap();
        }
        assert_eq!(out.queue.len(), 2);
        assert!(out.queue.iter().all(|c| c.len() <= CHUNK_BYTES));
    }

    #[test]
    fn peek_into_stops_at_its_maximum() {
        let mut out = SendQueue::new();
        out.push(OutFrame::Borrowed(&frame(30, 1))).unwrap();
        out.push(OutFrame::Shared(Bytes::from(frame(SMALL_FRAME + 1, 2))))
            .unwrap();
        let mut got = Vec::new();
        assert_eq!(out.peek_into(&mut got, 40), 40);
        assert_eq!(got.len(), 40);
        assert_eq!(got[..30], frame(30, 1)[..]);
    }

    #[test]
    fn frames_queued_before_the_handshake_are_sealed_one_by_one_in_order() {
        for suite in [CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305] {
            let (client, server) = sessions(suite, &"ab".repeat(32));
            let (sealer, _) = client.into_parts();
            let (_, mut opener) = server.into_parts();
            let mut out = SendQueue::new();
            let plain = [
                frame(12, 1),
                frame(40, 2),
                frame(SMALL_FRAME + 100, 3),
                frame(9, 4),
            ];
            for f in &plain {
                out.push(OutFrame::Borrowed(f)).unwrap();
            }
            out.start_sealing(sealer).unwrap();
            // And one more after the handshake, sealed as it is queued.
            let last = frame(20, 5);
            out.push(OutFrame::Borrowed(&last)).unwrap();
            let mut wire = queued_bytes(&out);
            assert_eq!(out.len(), wire.len());
            let mut rest = wire.as_mut_slice();
            for f in plain.iter().chain([&last]) {
                let (prefix, tail) = rest.split_first_chunk_mut::<4>().unwrap();
                let len = u32::from_le_bytes(*prefix) as usize;
                let (payload, tail) = tail.split_at_mut(len);
                let text = opener.open_in_place(*prefix, payload).unwrap();
                assert_eq!(&*text, &f[4..]);
                rest = tail;
            }
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn deferred_frames_wait_for_prepare_then_are_gathered_in_order() {
        let mut out = SendQueue::new();
        let (a, b, c) = (frame(30, 1), frame(12, 2), frame(SMALL_FRAME + 1, 3));
        out.push(OutFrame::Borrowed(&a)).unwrap();
        out.push_deferred(Bytes::from(b.clone()));
        // Behind a deferred frame, a push is deferred too.
        out.push(OutFrame::Borrowed(&c)).unwrap();
        out.push_deferred(Bytes::from(b.clone()));
        assert!(out.has_deferred());
        assert_eq!(out.len(), a.len() + 2 * b.len() + c.len());
        // Only what is ready can be written.
        assert_eq!(queued_bytes(&out), a);
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(out.io_slices(&mut slices), 1);
        out.prepare().unwrap();
        assert!(!out.has_deferred());
        let all = [a.as_slice(), &b, &c, &b].concat();
        assert_eq!(queued_bytes(&out), all);
        assert_eq!(out.len(), all.len());
        assert_eq!(out.unsent_frames(), 4);
        // a and b gathered into one chunk, c alone, the last b in a new one.
        assert_eq!(out.queue.len(), 3);
    }

    #[test]
    fn deferred_frames_are_sealed_in_queue_order() {
        // With the default limits, and rekeying every second frame, so that
        // deferred frames sealed later cross a rekey in wire order.
        for rekey_after in [None, Some(2)] {
            deferred_frames_sealed_in_order(rekey_after);
        }
    }

    fn deferred_frames_sealed_in_order(rekey_after: Option<u64>) {
        let (client, server) = sessions(CipherSuite::Aes256Gcm, &"cd".repeat(32));
        let (mut sealer, _) = client.into_parts();
        let (_, mut opener) = server.into_parts();
        if let Some(frames) = rekey_after {
            sealer.set_rekey_limits(frames, u64::MAX);
            opener.set_rekey_limits(frames, u64::MAX);
        }
        let mut out = SendQueue::new();
        // Deferred before the handshake, then sealed with the rest.
        let early = frame(10, 9);
        out.push_deferred(Bytes::from(early.clone()));
        out.start_sealing(sealer).unwrap();
        assert!(!out.has_deferred());
        let plain = [
            frame(12, 1),
            frame(40, 2),
            frame(SMALL_FRAME + 100, 3),
            frame(9, 4),
        ];
        out.push(OutFrame::Borrowed(&plain[0])).unwrap();
        out.push_deferred(Bytes::from(plain[1].clone()));
        out.push_deferred(Bytes::from(plain[2].clone()));
        out.push(OutFrame::Borrowed(&plain[3])).unwrap();
        let counted = out.len();
        out.prepare().unwrap();
        let mut wire = queued_bytes(&out);
        assert_eq!(wire.len(), counted, "counted at sealed size from the start");
        let mut rest = wire.as_mut_slice();
        for f in [&early].into_iter().chain(&plain) {
            let (prefix, tail) = rest.split_first_chunk_mut::<4>().unwrap();
            let len = u32::from_le_bytes(*prefix) as usize;
            let (payload, tail) = tail.split_at_mut(len);
            let text = opener.open_in_place(*prefix, payload).unwrap();
            assert_eq!(&*text, &f[4..]);
            rest = tail;
        }
        assert!(rest.is_empty());
    }
}
