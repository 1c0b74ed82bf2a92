//! Cipher suites, and the AEAD instances that implement them.

use std::fmt;

use aes_gcm::aead::AeadInOut;
use aes_gcm::aead::array::Array;
use aes_gcm::{Aes256Gcm, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

use super::{SecureError, TAG_LEN};

/// Bytes in an AEAD nonce.
pub(super) const NONCE_LEN: usize = 12;
/// Bytes in a transport key (both suites use 256-bit keys).
pub(super) const KEY_LEN: usize = 32;

/// The authenticated cipher that protects a connection: the Noise
/// handshake's cipher and the transport's.
///
/// Both sides must use the same suite; it travels in the preamble, so a
/// mismatch fails the handshake with [`SecureError::CipherMismatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CipherSuite {
    /// Protocol version 1's AES-128-GCM. Kept as a name so configurations
    /// that chose it keep working: it now selects the AES-GCM suite, the same
    /// as [`Aes256Gcm`](Self::Aes256Gcm) (see [`normalized`](Self::normalized)).
    #[deprecated(note = "protocol v2 uses AES-256-GCM for every key; this name selects it")]
    Aes128Gcm,
    /// AES-256 in Galois/Counter Mode: `Noise_XNpsk3_25519_AESGCM_SHA256`
    /// (the default).
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439): `Noise_XNpsk3_25519_ChaChaPoly_SHA256`.
    /// Faster than AES-GCM on machines without AES instructions.
    ChaCha20Poly1305,
}

#[allow(deprecated)] // `Aes128Gcm` is matched to map it onto AES-256-GCM.
impl CipherSuite {
    /// The default suite for a key: AES-256-GCM, whatever the key's length
    /// (every key is expanded to a 256-bit Noise pre-shared key).
    pub fn for_key(_key: &super::SecretKey) -> CipherSuite {
        CipherSuite::Aes256Gcm
    }

    /// The suite this one stands for: [`Aes128Gcm`](Self::Aes128Gcm), the
    /// deprecated name, gives [`Aes256Gcm`](Self::Aes256Gcm); the others are
    /// themselves.
    pub const fn normalized(self) -> CipherSuite {
        match self {
            CipherSuite::Aes128Gcm | CipherSuite::Aes256Gcm => CipherSuite::Aes256Gcm,
            CipherSuite::ChaCha20Poly1305 => CipherSuite::ChaCha20Poly1305,
        }
    }

    /// The suite's byte in the preamble extension: 2 for AES-GCM, 3 for
    /// ChaCha20-Poly1305 (1 was version 1's AES-128-GCM and is not used).
    pub const fn to_byte(self) -> u8 {
        match self.normalized() {
            CipherSuite::ChaCha20Poly1305 => 3,
            _ => 2,
        }
    }

    /// The suite for a byte from a preamble extension.
    pub fn from_byte(byte: u8) -> Result<CipherSuite, SecureError> {
        match byte {
            2 => Ok(CipherSuite::Aes256Gcm),
            3 => Ok(CipherSuite::ChaCha20Poly1305),
            byte => Err(SecureError::UnknownCipher { byte }),
        }
    }

    /// The suite's name, such as `AES-256-GCM`.
    pub const fn name(self) -> &'static str {
        match self.normalized() {
            CipherSuite::ChaCha20Poly1305 => "ChaCha20-Poly1305",
            _ => "AES-256-GCM",
        }
    }

    /// The full Noise protocol name of the handshake with this suite.
    pub const fn noise_name(self) -> &'static str {
        match self.normalized() {
            CipherSuite::ChaCha20Poly1305 => "Noise_XNpsk3_25519_ChaChaPoly_SHA256",
            _ => "Noise_XNpsk3_25519_AESGCM_SHA256",
        }
    }

    /// Bits in the suite's key: 256 for both.
    pub const fn key_bits(self) -> usize {
        256
    }
}

impl fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One direction's AEAD, keyed. The key schedules are zeroized on drop (the
/// crates' `zeroize` feature); boxed so a [`Cipher`] stays pointer-sized.
pub(super) enum Cipher {
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// The AEAD failed: a wrong tag, or (on sealing) a message over the cipher's
/// limit, which frames never reach.
#[derive(Debug)]
pub(super) struct AeadFailed;

impl Cipher {
    /// Keys `suite` with a 32-byte `key`.
    pub(super) fn new(suite: CipherSuite, key: &[u8; KEY_LEN]) -> Cipher {
        match suite.normalized() {
            CipherSuite::ChaCha20Poly1305 => {
                Cipher::ChaCha(Box::new(ChaCha20Poly1305::new(&Array::from(*key))))
            }
            _ => Cipher::Aes256(Box::new(Aes256Gcm::new(&Array::from(*key)))),
        }
    }

    /// Noise's REKEY: the new key is the first 32 bytes of encrypting 32
    /// zero bytes with nonce 2^64 - 1 and no associated data (the nonce,
    /// all ones, is the same in every counter encoding).
    pub(super) fn rekey(&self, suite: CipherSuite) -> Result<Cipher, AeadFailed> {
        let mut key = zeroize::Zeroizing::new([0u8; KEY_LEN]);
        let mut nonce = [0xff; NONCE_LEN];
        nonce[..4].fill(0);
        self.seal(nonce, &[], &mut key[..])?;
        Ok(Cipher::new(suite, &key))
    }

    /// Encrypts `buf` in place; returns the tag.
    pub(super) fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], AeadFailed> {
        let nonce = Array::from(nonce);
        let tag = match self {
            Cipher::Aes256(c) => c.encrypt_inout_detached(&nonce, aad, buf.into()),
            Cipher::ChaCha(c) => c.encrypt_inout_detached(&nonce, aad, buf.into()),
        };
        tag.map(Into::into).map_err(|_| AeadFailed)
    }

    /// Checks `tag` and decrypts `buf` in place.
    pub(super) fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: [u8; TAG_LEN],
    ) -> Result<(), AeadFailed> {
        let nonce = Array::from(nonce);
        let tag = Array::from(tag);
        match self {
            Cipher::Aes256(c) => c.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            Cipher::ChaCha(c) => c.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
        }
        .map_err(|_| AeadFailed)
    }
}
