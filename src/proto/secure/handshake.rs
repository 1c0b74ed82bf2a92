//! The handshake: salts in the preambles, session keys from HKDF, then one
//! key-confirmation frame each way.
//!
//! ```text
//! client                                              server
//!   preamble: flags 01, ext = suite, client salt  ->
//!                       <-  preamble: flags 01, ext = suite, server salt
//!   (both derive: salt = client salt || server salt, ikm = the key,
//!    info = direction label || suite byte)
//!   confirm frame, client-to-server key, counter 0 ->
//!                       <-  confirm frame, server-to-client key, counter 0
//! ```
//!
//! Both preambles are sent at once, without waiting; each side sends its
//! confirmation as soon as it has the peer's preamble, and has a [`Session`]
//! once the peer's confirmation opens. A confirmation frame's plaintext is
//! the kind byte `02` and SHA-256 over the client's preamble bytes then the
//! server's: a wrong key fails here, and so does any change to either
//! preamble.

use std::fmt;

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::seal::{Opener, Sealer, Session};
use super::suite::Cipher;
use super::{CipherSuite, SecretKey, SecureError, TAG_LEN};
use crate::proto::{FLAG_ENCRYPTED, LENGTH_PREFIX, MAGIC, Preamble, VERSION};

/// Bytes of random salt each side sends in its preamble.
pub const SALT_LEN: usize = 32;
/// Length of an encrypted preamble's extension: the suite byte, then the salt.
pub const EXTENSION_LEN: usize = 1 + SALT_LEN;
/// The kind byte of a key-confirmation frame's plaintext.
pub const CONFIRM_KIND: u8 = 0x02;
/// Bytes in a key-confirmation frame, length prefix included: the prefix,
/// the kind byte, the 32-byte transcript hash and the tag.
pub const CONFIRM_FRAME_LEN: usize = LENGTH_PREFIX + 1 + TRANSCRIPT_LEN + TAG_LEN;
/// Bytes in the transcript hash (SHA-256).
const TRANSCRIPT_LEN: usize = 32;
/// Bytes in a direction's label, the ASCII start of its HKDF info.
const INFO_LABEL_LEN: usize = 28;
/// Bytes in a direction's HKDF info: its label, then the suite byte.
const INFO_LEN: usize = INFO_LABEL_LEN + 1;
/// The label of the client-to-server key's HKDF info: the info is these 28
/// bytes then the suite byte (see [`hkdf_info`]).
const INFO_CLIENT_TO_SERVER: &[u8; INFO_LABEL_LEN] = b"tablenet v1 client to server";
/// The label of the server-to-client key's HKDF info: the info is these 28
/// bytes then the suite byte (see [`hkdf_info`]).
const INFO_SERVER_TO_CLIENT: &[u8; INFO_LABEL_LEN] = b"tablenet v1 server to client";

/// Which end of the connection this side is. The client's salt comes first
/// in the key derivation, and each role seals with its own direction's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that connected.
    Client,
    /// The side that accepted.
    Server,
}

enum State {
    AwaitingPreamble,
    AwaitingConfirm {
        sealer: Sealer,
        opener: Opener,
        transcript: [u8; TRANSCRIPT_LEN],
    },
    /// Finished, or failed: every further call is refused.
    Over,
}

/// The encrypted handshake of one connection, as a sans-IO state machine.
///
/// 1. Send [`preamble`](Self::preamble).
/// 2. Pass the peer's preamble to [`receive_preamble`](Self::receive_preamble)
///    and send the frame it returns.
/// 3. Pass the peer's first frame to [`receive_confirm`](Self::receive_confirm):
///    it gives the [`Session`] that seals and opens all further frames.
///
/// Given its salt, everything it produces is deterministic.
///
/// ```
/// use tablenet::proto::secure::{CipherSuite, Handshake, Role, SecretKey};
///
/// let key = SecretKey::from_hex("0C03EA65238DD2C25EB87CE563868098")?;
/// let suite = CipherSuite::for_key(&key);
/// let mut client = Handshake::new(Role::Client, &key, suite, [0x11; 32])?;
/// let mut server = Handshake::new(Role::Server, &key, suite, [0x22; 32])?;
///
/// let client_confirm = client.receive_preamble(&server.preamble())?;
/// let server_confirm = server.receive_preamble(&client.preamble())?;
/// let split = |frame: &[u8]| {
///     let (prefix, payload) = frame.split_first_chunk::<4>().unwrap();
///     (*prefix, payload.to_vec())
/// };
/// let (prefix, payload) = split(&server_confirm);
/// let mut client = client.receive_confirm(prefix, &payload)?;
/// let (prefix, payload) = split(&client_confirm);
/// let mut server = server.receive_confirm(prefix, &payload)?;
///
/// let mut wire = Vec::new();
/// client.sealer().seal(&[0x01, 0x00], &mut wire)?; // a Message frame: nil
/// let (prefix, payload) = split(&wire);
/// assert_eq!(server.opener().open(prefix, &payload)?, [0x01, 0x00]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Handshake {
    role: Role,
    key: SecretKey,
    suite: CipherSuite,
    salt: [u8; SALT_LEN],
    state: State,
}

impl Handshake {
    /// A handshake for `role` with the pre-shared `key`, the cipher `suite`
    /// (both sides must choose the same; see [`CipherSuite::for_key`]) and
    /// this side's `salt`, which must be fresh and random for every
    /// connection (see [`with_random_salt`](Self::with_random_salt)).
    ///
    /// Fails when the key is shorter than the suite's key
    /// ([`SecureError::KeyTooShort`]).
    pub fn new(
        role: Role,
        key: &SecretKey,
        suite: CipherSuite,
        salt: [u8; SALT_LEN],
    ) -> Result<Handshake, SecureError> {
        suite.check_key(key)?;
        Ok(Handshake {
            role,
            key: key.clone(),
            suite,
            salt,
            state: State::AwaitingPreamble,
        })
    }

    /// Like [`new`](Self::new), with a salt from the operating system's
    /// random number generator.
    pub fn with_random_salt(
        role: Role,
        key: &SecretKey,
        suite: CipherSuite,
    ) -> Result<Handshake, SecureError> {
        let mut salt = [0; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|e| SecureError::Random(e.to_string()))?;
        Handshake::new(role, key, suite, salt)
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The cipher suite this side uses.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// This side's preamble: [`FLAG_ENCRYPTED`] set, and the extension
    /// `[suite byte][32-byte salt]`.
    pub fn preamble(&self) -> Preamble {
        Preamble {
            version: VERSION,
            flags: FLAG_ENCRYPTED,
            extension: extension(self.suite, &self.salt),
        }
    }

    /// Takes the peer's preamble, derives the session keys and returns this
    /// side's key-confirmation frame (complete, length prefix included: send
    /// it as it is).
    ///
    /// Fails if the peer's preamble does not set [`FLAG_ENCRYPTED`], if its
    /// extension is not exactly [`EXTENSION_LEN`] bytes, names an unknown
    /// suite or another suite than this side's, or carries this side's own
    /// salt (a preamble reflected back). After an error the handshake is
    /// over: close the connection.
    pub fn receive_preamble(&mut self, peer: &Preamble) -> Result<Vec<u8>, SecureError> {
        if !matches!(self.state, State::AwaitingPreamble) {
            self.state = State::Over;
            return Err(SecureError::Misuse(
                "receive_preamble called twice or after the handshake ended",
            ));
        }
        self.state = State::Over;
        if !peer.encrypted() {
            return Err(SecureError::NotEncrypted);
        }
        let bad_extension = SecureError::BadExtension {
            len: peer.extension.len(),
        };
        let Some((&suite_byte, salt)) = peer.extension.split_first() else {
            return Err(bad_extension);
        };
        let peer_salt = <[u8; SALT_LEN]>::try_from(salt).map_err(|_| bad_extension)?;
        let theirs = CipherSuite::from_byte(suite_byte)?;
        if theirs != self.suite {
            return Err(SecureError::CipherMismatch {
                ours: self.suite,
                theirs,
            });
        }
        if peer_salt == self.salt {
            return Err(SecureError::ReflectedSalt);
        }

        let ours = preamble_bytes(VERSION, FLAG_ENCRYPTED, &extension(self.suite, &self.salt));
        let theirs = preamble_bytes(peer.version, peer.flags, &peer.extension);
        let (client_salt, server_salt, client_preamble, server_preamble) = match self.role {
            Role::Client => (&self.salt, &peer_salt, &ours, &theirs),
            Role::Server => (&peer_salt, &self.salt, &theirs, &ours),
        };
        let mut hkdf_salt = [0; 2 * SALT_LEN];
        for (slot, byte) in hkdf_salt
            .iter_mut()
            .zip(client_salt.iter().chain(server_salt))
        {
            *slot = *byte;
        }
        let hkdf = Hkdf::<Sha256>::new(Some(&hkdf_salt), self.key.as_bytes());
        let derive = |info: &[u8]| -> Result<Cipher, SecureError> {
            let mut okm = Zeroizing::new([0u8; 32]);
            let okm = okm
                .get_mut(..self.suite.key_bits() / 8)
                .ok_or(SecureError::Misuse("internal: suite key length"))?;
            hkdf.expand(info, okm)
                .map_err(|_| SecureError::Misuse("internal: HKDF output length"))?;
            Cipher::new(self.suite, okm)
                .map_err(|_| SecureError::Misuse("internal: cipher key length"))
        };
        let client_to_server = derive(&hkdf_info(INFO_CLIENT_TO_SERVER, self.suite))?;
        let server_to_client = derive(&hkdf_info(INFO_SERVER_TO_CLIENT, self.suite))?;
        let (seal_key, open_key) = match self.role {
            Role::Client => (client_to_server, server_to_client),
            Role::Server => (server_to_client, client_to_server),
        };
        let mut sealer = Sealer::new(seal_key, self.suite);
        let opener = Opener::new(open_key, self.suite);

        let mut hash = Sha256::new();
        hash.update(client_preamble);
        hash.update(server_preamble);
        let transcript: [u8; TRANSCRIPT_LEN] = hash.finalize().into();

        let mut confirm = Vec::with_capacity(CONFIRM_FRAME_LEN);
        sealer.seal(&confirm_plaintext(&transcript), &mut confirm)?;
        self.state = State::AwaitingConfirm {
            sealer,
            opener,
            transcript,
        };
        Ok(confirm)
    }

    /// Takes the peer's key-confirmation frame (the first frame after its
    /// preamble: its 4 length-prefix bytes and the `length` bytes after them)
    /// and gives the established [`Session`].
    ///
    /// A frame that does not open means the two sides have different keys:
    /// [`SecureError::KeyMismatch`]. A frame that opens but confirms another
    /// transcript: [`SecureError::TranscriptMismatch`]. After an error the
    /// handshake is over: close the connection.
    pub fn receive_confirm(
        &mut self,
        length_prefix: [u8; LENGTH_PREFIX],
        payload: &[u8],
    ) -> Result<Session, SecureError> {
        let State::AwaitingConfirm {
            sealer,
            mut opener,
            transcript,
        } = std::mem::replace(&mut self.state, State::Over)
        else {
            return Err(SecureError::Misuse(
                "receive_confirm called before receive_preamble, twice, or after an error",
            ));
        };
        let plaintext = opener.open(length_prefix, payload).map_err(|e| match e {
            SecureError::Authentication => SecureError::KeyMismatch,
            e => e,
        })?;
        if plaintext != confirm_plaintext(&transcript) {
            return Err(SecureError::TranscriptMismatch);
        }
        Ok(Session::new(sealer, opener))
    }
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::AwaitingPreamble => "awaiting the peer's preamble",
            State::AwaitingConfirm { .. } => "awaiting the peer's key confirmation",
            State::Over => "over",
        };
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("suite", &self.suite)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// A direction's HKDF info: its 28-byte label, then the suite byte (29
/// bytes). Binding the suite separates the domains: the same key and salts
/// never give the same session keys under two ciphers.
fn hkdf_info(label: &[u8; INFO_LABEL_LEN], suite: CipherSuite) -> [u8; INFO_LEN] {
    let mut info = [0; INFO_LEN];
    info[..INFO_LABEL_LEN].copy_from_slice(label);
    info[INFO_LABEL_LEN] = suite.to_byte();
    info
}

/// An encrypted preamble's extension.
fn extension(suite: CipherSuite, salt: &[u8; SALT_LEN]) -> Vec<u8> {
    let mut ext = Vec::with_capacity(EXTENSION_LEN);
    ext.push(suite.to_byte());
    ext.extend_from_slice(salt);
    ext
}

/// A preamble's bytes as sent, for the transcript. `ext` is at most
/// [`EXTENSION_LEN`] bytes here.
fn preamble_bytes(version: u8, flags: u8, ext: &[u8]) -> Vec<u8> {
    let len = u16::try_from(ext.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(8 + ext.len());
    out.extend_from_slice(&MAGIC);
    out.push(version);
    out.push(flags);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(ext);
    out
}

/// A key-confirmation frame's plaintext: the kind byte, then the transcript.
fn confirm_plaintext(transcript: &[u8; TRANSCRIPT_LEN]) -> Vec<u8> {
    let mut text = Vec::with_capacity(1 + TRANSCRIPT_LEN);
    text.push(CONFIRM_KIND);
    text.extend_from_slice(transcript);
    text
}
