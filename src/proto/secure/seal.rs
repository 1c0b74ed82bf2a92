//! Sealing and opening frames once the handshake is done.
//!
//! A sealed frame is `length: u32 LE` then `length` bytes of ciphertext and
//! a 16-byte tag. The ciphertext is the plain frame's payload (kind byte and
//! body); the length prefix is the associated data, and the nonce is 4 zero
//! bytes then the direction's frame counter, u64 little-endian.
//!
//! Each direction rekeys (Noise's REKEY) before the frame that would pass
//! [`REKEY_AFTER_FRAMES`] frames or [`REKEY_AFTER_BYTES`] payload bytes under
//! one key. Both ends count the same frames, so no message announces it; the
//! counter runs on across a rekey.

use std::fmt;

use super::suite::{Cipher, NONCE_LEN};

/// Frames sealed under one key before the direction rekeys: far below
/// AES-GCM's usage limits (about 2^32 frames for a 2^-57 advantage).
pub const REKEY_AFTER_FRAMES: u64 = 1 << 20;
/// Payload bytes sealed under one key before the direction rekeys (4 GiB,
/// 2^28 AES blocks).
pub const REKEY_AFTER_BYTES: u64 = 1 << 32;

/// When one direction's key is replaced: shared by the sealing and the
/// opening end, which must agree exactly.
#[derive(Debug, Clone, Copy)]
struct KeyUse {
    /// Frames and payload bytes under the current key.
    frames: u64,
    bytes: u64,
    /// The limits (lowered in tests).
    max_frames: u64,
    max_bytes: u64,
}

impl KeyUse {
    fn new() -> KeyUse {
        KeyUse {
            frames: 0,
            bytes: 0,
            max_frames: REKEY_AFTER_FRAMES,
            max_bytes: REKEY_AFTER_BYTES,
        }
    }

    /// Whether the next frame needs a new key first (and if so, the count
    /// starts over).
    fn rekey_due(&mut self) -> bool {
        let due = self.frames >= self.max_frames || self.bytes >= self.max_bytes;
        if due {
            self.frames = 0;
            self.bytes = 0;
        }
        due
    }

    fn used(&mut self, payload: usize) {
        self.frames += 1;
        self.bytes = self
            .bytes
            .saturating_add(u64::try_from(payload).unwrap_or(u64::MAX));
    }
}
use super::{CipherSuite, SecureError, TAG_LEN};
use crate::proto::LENGTH_PREFIX;

/// The nonce for frame number `counter`: 4 zero bytes, then the counter.
fn nonce(counter: u64) -> [u8; NONCE_LEN] {
    let [a, b, c, d, e, f, g, h] = counter.to_le_bytes();
    [0, 0, 0, 0, a, b, c, d, e, f, g, h]
}

/// Seals the frames one side sends. Each frame uses the next counter value;
/// the counter never wraps: past `u64::MAX - 1` sealing fails with
/// [`SecureError::CounterExhausted`].
pub struct Sealer {
    cipher: Cipher,
    suite: CipherSuite,
    /// The counter of the next frame.
    counter: u64,
    key_use: KeyUse,
}

impl Sealer {
    pub(super) fn new(cipher: Cipher, suite: CipherSuite) -> Sealer {
        Sealer {
            cipher,
            suite,
            counter: 0,
            key_use: KeyUse::new(),
        }
    }

    /// The cipher suite in use.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The counter the next frame will use (a server's key confirmation used
    /// 0, so its application frames start at 1; a client's start at 0).
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Appends one complete sealed frame carrying `payload` (a plain frame's
    /// kind byte and body, without its length prefix) to `out`:
    /// `payload.len() + 16` as u32 LE, then the ciphertext and the tag.
    ///
    /// On error, `out` is left as it was.
    pub fn seal(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SecureError> {
        let start = out.len();
        out.reserve(LENGTH_PREFIX + payload.len() + TAG_LEN);
        out.extend_from_slice(&[0; LENGTH_PREFIX]);
        out.extend_from_slice(payload);
        self.seal_in_place(out, start)
    }

    /// Seals a plain frame already written at `buf[start..]` (for example by
    /// [`encode_message`](crate::proto::encode_message)), without copying it:
    /// `buf[start..start + 4]` is its length prefix (overwritten, its value is
    /// not read) and `buf[start + 4..]` its payload, which is encrypted in
    /// place; the tag is appended. The frame grows by [`TAG_LEN`] bytes.
    ///
    /// On error `buf` is truncated to `start`, so no plaintext is left behind
    /// to be sent by mistake.
    pub fn seal_in_place(&mut self, buf: &mut Vec<u8>, start: usize) -> Result<(), SecureError> {
        let result = self.seal_tail(buf, start);
        if result.is_err() {
            buf.truncate(start);
        }
        result
    }

    fn seal_tail(&mut self, buf: &mut Vec<u8>, start: usize) -> Result<(), SecureError> {
        if self.counter == u64::MAX {
            return Err(SecureError::CounterExhausted);
        }
        let (prefix_slot, payload) = buf
            .get_mut(start..)
            .and_then(|frame| frame.split_at_mut_checked(LENGTH_PREFIX))
            .ok_or(SecureError::Misuse(
                "seal_in_place: the buffer has no 4-byte length prefix at `start`",
            ))?;
        let sealed_len = payload.len() + TAG_LEN;
        let prefix = u32::try_from(sealed_len)
            .map_err(|_| SecureError::FrameTooLarge { size: sealed_len })?
            .to_le_bytes();
        prefix_slot.copy_from_slice(&prefix);
        if self.key_use.rekey_due() {
            self.cipher = self
                .cipher
                .rekey(self.suite)
                .map_err(|_| SecureError::Misuse("internal: rekey"))?;
        }
        self.key_use.used(payload.len());
        let counter = self.counter;
        // The nonce is spent once the cipher has seen it, whatever happens.
        self.counter += 1;
        let tag = self
            .cipher
            .seal(nonce(counter), &prefix, payload)
            .map_err(|_| SecureError::FrameTooLarge { size: sealed_len })?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    #[cfg(test)]
    pub(super) fn set_counter(&mut self, counter: u64) {
        self.counter = counter;
    }

    /// Lowers the rekey limits (for tests; both ends must use the same).
    #[doc(hidden)]
    pub fn set_rekey_limits(&mut self, frames: u64, bytes: u64) {
        self.key_use.max_frames = frames;
        self.key_use.max_bytes = bytes;
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("suite", &self.suite)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

/// Opens the frames the peer sends, strictly in order: each frame must carry
/// the next counter value, so a replayed, reordered, dropped, truncated or
/// altered frame fails with [`SecureError::Authentication`]. The counter
/// advances only when a frame opens.
pub struct Opener {
    cipher: Cipher,
    suite: CipherSuite,
    /// The counter the next frame must carry.
    counter: u64,
    key_use: KeyUse,
}

impl Opener {
    pub(super) fn new(cipher: Cipher, suite: CipherSuite) -> Opener {
        Opener {
            cipher,
            suite,
            counter: 0,
            key_use: KeyUse::new(),
        }
    }

    /// The cipher suite in use.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The counter the next frame must carry.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Verifies and decrypts one sealed frame in place, without copying:
    /// `length_prefix` is the frame's 4 prefix bytes as received and `payload`
    /// the `length` bytes after them. Returns the plaintext payload (kind byte
    /// and body): the first `payload.len() - 16` bytes of `payload`.
    ///
    /// On failure the contents of `payload` are unspecified (the caller
    /// closes the connection anyway) and the counter does not advance.
    pub fn open_in_place<'a>(
        &mut self,
        length_prefix: [u8; LENGTH_PREFIX],
        payload: &'a mut [u8],
    ) -> Result<&'a mut [u8], SecureError> {
        if self.counter == u64::MAX {
            return Err(SecureError::CounterExhausted);
        }
        if usize::try_from(u32::from_le_bytes(length_prefix)).ok() != Some(payload.len()) {
            return Err(SecureError::Authentication);
        }
        let text_len = payload
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(SecureError::Authentication)?;
        if self.key_use.rekey_due() {
            // The sender rekeyed before this frame too. If the frame then
            // fails to open, the connection is over anyway.
            self.cipher = self
                .cipher
                .rekey(self.suite)
                .map_err(|_| SecureError::Misuse("internal: rekey"))?;
        }
        let (text, tag) = payload.split_at_mut(text_len);
        let tag = <[u8; TAG_LEN]>::try_from(&*tag).map_err(|_| SecureError::Authentication)?;
        self.cipher
            .open(nonce(self.counter), &length_prefix, text, tag)
            .map_err(|_| SecureError::Authentication)?;
        self.counter += 1;
        self.key_use.used(text_len);
        Ok(text)
    }

    /// Like [`open_in_place`](Self::open_in_place), for a payload the caller
    /// cannot modify: returns the plaintext in a new buffer (one copy).
    pub fn open(
        &mut self,
        length_prefix: [u8; LENGTH_PREFIX],
        payload: &[u8],
    ) -> Result<Vec<u8>, SecureError> {
        let mut buf = payload.to_vec();
        let len = self.open_in_place(length_prefix, &mut buf)?.len();
        buf.truncate(len);
        Ok(buf)
    }

    #[cfg(test)]
    pub(super) fn set_counter(&mut self, counter: u64) {
        self.counter = counter;
    }

    /// Lowers the rekey limits (for tests; both ends must use the same).
    #[doc(hidden)]
    pub fn set_rekey_limits(&mut self, frames: u64, bytes: u64) {
        self.key_use.max_frames = frames;
        self.key_use.max_bytes = bytes;
    }
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("suite", &self.suite)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

/// Both directions of an established encrypted connection.
#[derive(Debug)]
pub struct Session {
    sealer: Sealer,
    opener: Opener,
}

impl Session {
    pub(super) fn new(sealer: Sealer, opener: Opener) -> Session {
        Session { sealer, opener }
    }

    /// The cipher suite in use.
    pub fn suite(&self) -> CipherSuite {
        self.sealer.suite
    }

    /// Seals the frames this side sends.
    pub fn sealer(&mut self) -> &mut Sealer {
        &mut self.sealer
    }

    /// Opens the frames the peer sends.
    pub fn opener(&mut self) -> &mut Opener {
        &mut self.opener
    }

    /// Splits the session, for example to send and receive on different
    /// threads.
    pub fn into_parts(self) -> (Sealer, Opener) {
        (self.sealer, self.opener)
    }
}
