//! Encryption with a pre-shared key, sans-IO: the handshake, and sealing and
//! opening frames (protocol version 2).
//!
//! - The handshake is `Noise_XNpsk3_25519_AESGCM_SHA256` (or `_ChaChaPoly_`),
//!   with the pre-shared key expanded by HKDF-SHA256 ([`PSK_INFO`]): fresh
//!   ephemeral keys give every connection new keys and forward secrecy, and
//!   nothing the server sends before the client's proof depends on the key,
//!   so a client without the key has nothing to test guesses against. See
//!   [`Handshake`] for the sequence and docs/PROTOCOL.md for the bytes.
//! - Every frame after it is sealed with an AEAD ([`CipherSuite`]) under the
//!   Noise split keys; the nonce is a per-direction frame counter (never
//!   random, never reused, never wrapped) and the 4-byte length prefix is the
//!   associated data. A replayed, reordered, dropped, truncated or altered
//!   frame fails to open. Each direction rekeys every [`REKEY_AFTER_FRAMES`]
//!   frames or [`REKEY_AFTER_BYTES`] bytes.
//!
//! A sealed frame is the plain frame with its payload encrypted and a
//! [`TAG_LEN`]-byte tag appended; its length prefix counts the tag.

mod handshake;
mod key;
mod seal;
mod suite;

pub use handshake::{
    CONFIRM_FRAME_LEN, CONFIRM_KIND, ClientStatic, DH_LEN, EXTENSION_LEN, Handshake,
    MAX_HANDSHAKE_FRAME, PSK_INFO, Progress, Role,
};
pub use key::SecretKey;
pub use seal::{Opener, REKEY_AFTER_BYTES, REKEY_AFTER_FRAMES, Sealer, Session};
pub use suite::CipherSuite;

/// Bytes of the authentication tag each sealed frame carries after its
/// ciphertext.
pub const TAG_LEN: usize = 16;

/// Why the encrypted handshake failed, or a frame could not be sealed or
/// opened. After any of these the connection cannot be trusted: close it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecureError {
    /// The client's proof (Noise message 3) or the server's key
    /// confirmation did not verify: the two sides are configured with
    /// different keys (or the handshake was tampered with).
    #[error("the keys do not match (the peer's proof of the key failed)")]
    KeyMismatch,
    /// The server closed the connection after the client's proof of the key
    /// instead of confirming it: most likely the server holds another key
    /// (it has no authenticated way to say so), though a stream cut at that
    /// moment looks the same.
    #[error(
        "the server closed the connection after this side proved its key: most likely the keys do not match"
    )]
    ProofRejected,
    /// The server's preamble differs from the one its handshake message
    /// covers, or the key confirmation covers another handshake: altered
    /// in transit.
    #[error("the handshake covers another preamble than this side saw (altered in transit)")]
    TranscriptMismatch,
    /// A Noise handshake message did not verify before any key was
    /// involved: altered in transit, replayed, reflected, or the two sides
    /// started from different preambles.
    #[error(
        "handshake message {number} is malformed or failed authentication (altered, replayed or reflected)"
    )]
    HandshakeMessage {
        /// Which message (1 to 3).
        number: u8,
    },
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
    #[error("encrypted preamble extension must be 1 byte (the cipher suite), got {len}")]
    BadExtension {
        /// The extension's length.
        len: usize,
    },
    /// The peer's preamble does not set the encrypted flag.
    #[error("the peer's preamble does not set the encrypted flag")]
    NotEncrypted,
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
