//! Cipher suites, and the AEAD instances that implement them.

use std::fmt;

use aes_gcm::aead::AeadInOut;
use aes_gcm::aead::array::Array;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

use super::{SecretKey, SecureError, TAG_LEN};

/// Bytes in an AEAD nonce.
pub(super) const NONCE_LEN: usize = 12;

/// The authenticated cipher that protects a connection.
///
/// Both sides must use the same suite; it travels in the preamble, so a
/// mismatch fails the handshake with [`SecureError::CipherMismatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CipherSuite {
    /// AES-128 in Galois/Counter Mode (the default for 128-bit keys).
    Aes128Gcm,
    /// AES-256 in Galois/Counter Mode (the default for 256-bit keys).
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439); 256-bit keys only.
    ChaCha20Poly1305,
}

impl CipherSuite {
    /// The default suite for a key: AES-128-GCM for a 128-bit key, AES-256-GCM
    /// for a 256-bit key.
    pub fn for_key(key: &SecretKey) -> CipherSuite {
        if key.bits() == 128 {
            CipherSuite::Aes128Gcm
        } else {
            CipherSuite::Aes256Gcm
        }
    }

    /// The suite's byte in the preamble extension.
    pub const fn to_byte(self) -> u8 {
        match self {
            CipherSuite::Aes128Gcm => 1,
            CipherSuite::Aes256Gcm => 2,
            CipherSuite::ChaCha20Poly1305 => 3,
        }
    }

    /// The suite for a byte from a preamble extension.
    pub fn from_byte(byte: u8) -> Result<CipherSuite, SecureError> {
        match byte {
            1 => Ok(CipherSuite::Aes128Gcm),
            2 => Ok(CipherSuite::Aes256Gcm),
            3 => Ok(CipherSuite::ChaCha20Poly1305),
            byte => Err(SecureError::UnknownCipher { byte }),
        }
    }

    /// The suite's name, such as `AES-128-GCM`.
    pub const fn name(self) -> &'static str {
        match self {
            CipherSuite::Aes128Gcm => "AES-128-GCM",
            CipherSuite::Aes256Gcm => "AES-256-GCM",
            CipherSuite::ChaCha20Poly1305 => "ChaCha20-Poly1305",
        }
    }

    /// Bits in the suite's key (and so the least a pre-shared key must have).
    pub const fn key_bits(self) -> usize {
        match self {
            CipherSuite::Aes128Gcm => 128,
            CipherSuite::Aes256Gcm | CipherSuite::ChaCha20Poly1305 => 256,
        }
    }

    /// Checks that `key` is long enough for this suite: a 128-bit key works
    /// only with AES-128-GCM.
    pub fn check_key(self, key: &SecretKey) -> Result<(), SecureError> {
        if key.bits() < self.key_bits() {
            return Err(SecureError::KeyTooShort {
                suite: self,
                bits: key.bits(),
            });
        }
        Ok(())
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
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// The AEAD failed: a wrong tag, or (on sealing) a message over the cipher's
/// limit, which frames never reach.
#[derive(Debug)]
pub(super) struct AeadFailed;

impl Cipher {
    /// Keys `suite` with `key`, which must be `suite.key_bits() / 8` bytes.
    pub(super) fn new(suite: CipherSuite, key: &[u8]) -> Result<Cipher, AeadFailed> {
        Ok(match suite {
            CipherSuite::Aes128Gcm => Cipher::Aes128(Box::new(
                Aes128Gcm::new_from_slice(key).map_err(|_| AeadFailed)?,
            )),
            CipherSuite::Aes256Gcm => Cipher::Aes256(Box::new(
                Aes256Gcm::new_from_slice(key).map_err(|_| AeadFailed)?,
            )),
            CipherSuite::ChaCha20Poly1305 => Cipher::ChaCha(Box::new(
                ChaCha20Poly1305::new_from_slice(key).map_err(|_| AeadFailed)?,
            )),
        })
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
            Cipher::Aes128(c) => c.encrypt_inout_detached(&nonce, aad, buf.into()),
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
            Cipher::Aes128(c) => c.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            Cipher::Aes256(c) => c.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            Cipher::ChaCha(c) => c.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
        }
        .map_err(|_| AeadFailed)
    }
}
