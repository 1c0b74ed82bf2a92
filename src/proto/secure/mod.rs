//! Encryption with a pre-shared key, sans-IO: the handshake, and sealing and
//! opening frames.
//!
//! Safe against an attacker who can read, change, drop, replay and inject
//! bytes, as long as the pre-shared key stays secret:
//!
//! - Each side sends a fresh random 32-byte salt in its preamble's extension
//!   (`[suite byte][salt]`, flags bit 0 set).
//! - Per-direction session keys come from HKDF-SHA256 (salt = the client's
//!   salt then the server's, input key = the pre-shared key, info
//!   `tablenet v1 client to server` / `tablenet v1 server to client` followed
//!   by the suite byte, 29 bytes), so every connection has new keys, and the
//!   same key never gives the same session keys under two cipher suites.
//! - Each side's first frame is a key confirmation over both preambles, so a
//!   wrong key or an altered preamble fails the handshake, not the first
//!   message.
//! - Every frame is sealed with an AEAD ([`CipherSuite`]); the nonce is a
//!   per-direction frame counter (never random, never reused, never wrapped)
//!   and the 4-byte length prefix is the associated data. A replayed,
//!   reordered, dropped, truncated or altered frame fails to open.
//!
//! A sealed frame is the plain frame with its payload encrypted and a
//! [`TAG_LEN`]-byte tag appended; its length prefix counts the tag.
//! See [`Handshake`] for the sequence and an example.

mod handshake;
mod key;
mod seal;
mod suite;

pub use handshake::{CONFIRM_FRAME_LEN, CONFIRM_KIND, EXTENSION_LEN, Handshake, Role, SALT_LEN};
pub use key::SecretKey;
pub use seal::{Opener, Sealer, Session};
pub use suite::CipherSuite;

/// Bytes of the authentication tag each sealed frame carries after its
/// ciphertext.
pub const TAG_LEN: usize = 16;

/// Why the encrypted handshake failed, or a frame could not be sealed or
/// opened. After any of these the connection cannot be trusted: close it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecureError {
    /// The peer's key confirmation did not open: the two sides are
    /// configured with different keys (or the handshake was tampered with).
    #[error("the keys do not match (key confirmation failed)")]
    KeyMismatch,
    /// The peer's key confirmation opened but confirms other preambles than
    /// this side saw.
    #[error("the key confirmation covers other preambles than this side saw (altered in transit)")]
    TranscriptMismatch,
    /// A frame did not open.
    #[error("frame failed authentication (tampered, replayed, reordered or sent with another key)")]
    Authentication,
    /// The two sides are configured with different cipher suites.
    #[error("the peer uses cipher {theirs}, this side {ours}")]
    CipherMismatch {
        /// This side's suite.
        ours: CipherSuite,
        /// The peer's suite.
        theirs: CipherSuite,
    },
    /// The peer's preamble names a cipher suite this build does not know.
    #[error("the peer asks for unknown cipher suite {byte:#04x}")]
    UnknownCipher {
        /// The suite byte received.
        byte: u8,
    },
    /// The peer's encrypted preamble has an extension of the wrong length.
    #[error(
        "encrypted preamble extension must be 33 bytes (cipher suite and 32-byte salt), got {len}"
    )]
    BadExtension {
        /// The extension's length.
        len: usize,
    },
    /// The peer's preamble does not set the encrypted flag.
    #[error("the peer's preamble does not set the encrypted flag")]
    NotEncrypted,
    /// The peer's salt equals this side's: a preamble reflected back.
    #[error("the peer's salt equals this side's (a reflected preamble)")]
    ReflectedSalt,
    /// The configured key is shorter than the cipher suite's key.
    #[error("cipher {suite} needs a {}-bit key, the key has {bits} bits", suite.key_bits())]
    KeyTooShort {
        /// The configured suite.
        suite: CipherSuite,
        /// The key's size in bits.
        bits: usize,
    },
    /// A direction's frame counter is used up: the connection must be closed
    /// rather than reuse a nonce.
    #[error("the frame counter is exhausted; close the connection and open a new one")]
    CounterExhausted,
    /// A sealed frame would not fit its 4-byte length prefix.
    #[error("sealed frame of {size} bytes does not fit a 4-byte length prefix")]
    FrameTooLarge {
        /// The sealed frame's length (payload and tag).
        size: usize,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    /// The API was used out of order (a bug in the caller).
    #[error("encryption API misuse: {0}")]
    Misuse(&'static str),
}

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) use tests::sessions;
#[cfg(test)]
mod vectors;
