//! The keyed handshake of protocol version 2:
//! `Noise_XNpsk3_25519_AESGCM_SHA256` (or `_ChaChaPoly_`), run by `snow`,
//! whose keys then seal frames with our own framing ([`Sealer`], [`Opener`]).
//!
//! ```text
//! client                                                  server
//!   preamble (flags 01, ext = suite byte)      <- ->  preamble (same shape)
//!   frame: message 1  (-> e)                   ->
//!                         <-  frame: message 2 (<- e, ee; payload = the
//!                                              server's preamble bytes)
//!   frame: message 3  (-> s, se, psk)          ->
//!                         <-  sealed frame 0: key confirmation (kind 02,
//!                                             the handshake hash)
//! ```
//!
//! The Noise prologue is the client's preamble bytes; the server's preamble
//! rides in message 2's payload, and the client checks it against the one it
//! received. A change to either preamble therefore fails the handshake, and
//! the client sends its first message without waiting for the server's
//! preamble. Message 2 depends on no key: only message 3 proves the client
//! holds it, and the server's answer to a wrong proof is to close. The
//! server's first sealed frame is its proof; the client is open only once
//! that frame opens.
//!
//! The Noise pre-shared key is HKDF-SHA256 of the configured key (16 or 32
//! bytes) with no salt and the info [`PSK_INFO`]: 32 bytes.

use std::fmt;

use hkdf::Hkdf;
use sha2::Sha256;
use snow::{Builder, HandshakeState};
use zeroize::Zeroizing;

use super::seal::{Opener, Sealer, Session};
use super::suite::{Cipher, KEY_LEN};
use super::{CipherSuite, SecretKey, SecureError, TAG_LEN};
use crate::proto::{FLAG_ENCRYPTED, LENGTH_PREFIX, Preamble, VERSION};

/// Length of an encrypted preamble's extension: the suite byte.
pub const EXTENSION_LEN: usize = 1;
/// The kind byte of the key-confirmation frame's plaintext.
pub const CONFIRM_KIND: u8 = 0x02;
/// Bytes in the server's key-confirmation frame, length prefix included: the
/// prefix, the kind byte, the 32-byte handshake hash and the tag.
pub const CONFIRM_FRAME_LEN: usize = LENGTH_PREFIX + 1 + HASH_LEN + TAG_LEN;
/// The longest handshake frame, without its length prefix: message 3 (the
/// client's encrypted static key, 48 bytes, and an empty payload's tag).
pub const MAX_HANDSHAKE_FRAME: usize = 64;
/// The HKDF-SHA256 info that turns the configured key into the Noise
/// pre-shared key (no salt, 32 bytes out).
pub const PSK_INFO: &[u8] = b"tablenet v2 noise psk";
/// Bytes in a Curve25519 key.
pub const DH_LEN: usize = 32;
/// Bytes in the handshake hash (SHA-256).
const HASH_LEN: usize = 32;
/// Bytes in the server's preamble (8 fixed, 1 of extension).
const PREAMBLE_LEN: usize = 8 + EXTENSION_LEN;

/// Which end of the connection this side is: the client is the Noise
/// initiator, the server the responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that connected.
    Client,
    /// The side that accepted.
    Server,
}

/// The client's static Curve25519 key pair. It carries no identity and is
/// not checked by the server: it exists so that the pre-shared key can sit
/// in the third message (XNpsk3). One per `Network` is enough.
#[derive(Clone)]
pub struct ClientStatic {
    pub(super) private: Zeroizing<[u8; DH_LEN]>,
}

impl ClientStatic {
    /// A new key pair from the operating system's random number generator.
    pub fn generate() -> Result<ClientStatic, SecureError> {
        let mut private = Zeroizing::new([0; DH_LEN]);
        getrandom::fill(&mut private[..]).map_err(|e| SecureError::Random(e.to_string()))?;
        Ok(ClientStatic { private })
    }

    /// The key pair with this private key (for test vectors).
    pub fn from_private(private: [u8; DH_LEN]) -> ClientStatic {
        ClientStatic {
            private: Zeroizing::new(private),
        }
    }
}

impl fmt::Debug for ClientStatic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientStatic(..)")
    }
}

/// What a handshake step produced.
#[derive(Debug)]
pub struct Progress {
    /// Bytes to send now (complete frames), possibly none.
    pub send: Vec<u8>,
    /// The established session, once the handshake is done.
    pub session: Option<Session>,
}

enum State {
    /// Client: message 1 not written yet. Server: waiting for the client's
    /// preamble.
    Start,
    /// Client: message 1 is out; waiting for the server's preamble.
    AwaitingPreamble(Box<HandshakeState>),
    /// Client: waiting for message 2, whose payload must be `server_preamble`.
    AwaitingMessage2 {
        noise: Box<HandshakeState>,
        server_preamble: Vec<u8>,
    },
    /// Server: waiting for message 1.
    AwaitingMessage1(Box<HandshakeState>),
    /// Server: message 2 is out; waiting for the client's proof.
    AwaitingMessage3(Box<HandshakeState>),
    /// Client: message 3 is out; waiting for the server's key confirmation.
    AwaitingConfirm {
        sealer: Sealer,
        opener: Opener,
        hash: [u8; HASH_LEN],
    },
    /// Finished, or failed: every further call is refused.
    Over,
}

/// The keyed handshake of one connection, as a sans-IO state machine.
///
/// 1. Send [`preamble`](Self::preamble), then [`first_message`](Self::first_message)
///    (empty on the server).
/// 2. Pass the peer's preamble to [`receive_preamble`](Self::receive_preamble).
/// 3. Pass each following frame (its 4 length-prefix bytes and the bytes
///    after them) to [`receive`](Self::receive) and send what it returns,
///    until it gives the [`Session`] that seals and opens all further frames.
///
/// ```
/// use tablenet::proto::secure::{ClientStatic, CipherSuite, Handshake, Role, SecretKey};
///
/// let key = SecretKey::from_hex("0C03EA65238DD2C25EB87CE563868098")?;
/// let suite = CipherSuite::Aes256Gcm;
/// let mut client = Handshake::client(&key, suite, &ClientStatic::generate()?);
/// let mut server = Handshake::server(&key, suite);
/// let split = |frame: &[u8]| {
///     let (prefix, payload) = frame.split_first_chunk::<4>().unwrap();
///     (*prefix, payload.to_vec())
/// };
///
/// let message1 = client.first_message()?;
/// client.receive_preamble(&server.preamble())?;
/// server.receive_preamble(&client.preamble())?;
/// let (prefix, payload) = split(&message1);
/// let message2 = server.receive(prefix, &payload)?.send;
/// let (prefix, payload) = split(&message2);
/// let message3 = client.receive(prefix, &payload)?.send;
/// let (prefix, payload) = split(&message3);
/// let done = server.receive(prefix, &payload)?;
/// let mut server = done.session.unwrap();
/// let (prefix, payload) = split(&done.send); // the server's key confirmation
/// let mut client = client.receive(prefix, &payload)?.session.unwrap();
///
/// let mut wire = Vec::new();
/// client.sealer().seal(&[0x01, 0x00], &mut wire)?; // a Message frame: nil
/// let (prefix, payload) = split(&wire);
/// assert_eq!(server.opener().open(prefix, &payload)?, [0x01, 0x00]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Handshake {
    role: Role,
    suite: CipherSuite,
    psk: Zeroizing<[u8; KEY_LEN]>,
    client_static: Option<ClientStatic>,
    fixed_ephemeral: Option<Zeroizing<[u8; DH_LEN]>>,
    state: State,
}

impl Handshake {
    /// The client's handshake with the pre-shared `key`, the cipher `suite`
    /// (both sides must choose the same) and the client's static key pair.
    pub fn client(key: &SecretKey, suite: CipherSuite, client_static: &ClientStatic) -> Handshake {
        Handshake::new(Role::Client, key, suite, Some(client_static.clone()))
    }

    /// The server's handshake with the pre-shared `key` and the cipher
    /// `suite` (both sides must choose the same).
    pub fn server(key: &SecretKey, suite: CipherSuite) -> Handshake {
        Handshake::new(Role::Server, key, suite, None)
    }

    fn new(
        role: Role,
        key: &SecretKey,
        suite: CipherSuite,
        client_static: Option<ClientStatic>,
    ) -> Handshake {
        Handshake {
            role,
            suite: suite.normalized(),
            psk: noise_psk(key),
            client_static,
            fixed_ephemeral: None,
            state: State::Start,
        }
    }

    /// Fixes this side's ephemeral private key instead of a random one: for
    /// test vectors and tests only. A fixed ephemeral key gives up forward
    /// secrecy and, on the client, lets a recorded session be replayed.
    #[doc(hidden)]
    pub fn with_fixed_ephemeral_for_testing_only(mut self, private: [u8; DH_LEN]) -> Handshake {
        self.fixed_ephemeral = Some(Zeroizing::new(private));
        self
    }

    /// A client that has sent its proof and waits for the server's
    /// confirmation: an end of stream now means the server refused the key.
    pub fn awaits_confirmation(&self) -> bool {
        matches!(self.state, State::AwaitingConfirm { .. })
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The cipher suite this side uses.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// This side's preamble: [`FLAG_ENCRYPTED`] set, and the one-byte
    /// extension naming the suite.
    pub fn preamble(&self) -> Preamble {
        Preamble {
            version: VERSION,
            flags: FLAG_ENCRYPTED,
            extension: vec![self.suite.to_byte()],
        }
    }

    /// What to send right after the preamble: on the client, the frame
    /// carrying Noise message 1 (its preamble is the prologue, so it need not
    /// wait for the server's); on the server, nothing.
    pub fn first_message(&mut self) -> Result<Vec<u8>, SecureError> {
        if self.role == Role::Server {
            return Ok(Vec::new());
        }
        if !matches!(self.state, State::Start) {
            self.state = State::Over;
            return Err(SecureError::Misuse("first_message called twice"));
        }
        self.state = State::Over;
        let prologue = preamble_bytes(&self.preamble());
        let mut noise = self.build(&prologue)?;
        let frame = write_frame(&mut noise, &[])?;
        self.state = State::AwaitingPreamble(noise);
        Ok(frame)
    }

    /// Takes the peer's preamble. Fails if it does not set
    /// [`FLAG_ENCRYPTED`], if its extension is not exactly one byte, or if
    /// it names an unknown suite or another suite than this side's. After an
    /// error the handshake is over: close the connection.
    pub fn receive_preamble(&mut self, peer: &Preamble) -> Result<(), SecureError> {
        let state = std::mem::replace(&mut self.state, State::Over);
        let expected = match self.role {
            Role::Client => matches!(state, State::AwaitingPreamble(_)),
            Role::Server => matches!(state, State::Start),
        };
        if !expected {
            return Err(SecureError::Misuse(
                "receive_preamble called out of order, twice, or after an error",
            ));
        }
        if !peer.encrypted() {
            return Err(SecureError::NotEncrypted);
        }
        let [suite_byte] = peer.extension[..] else {
            return Err(SecureError::BadExtension {
                len: peer.extension.len(),
            });
        };
        let theirs = CipherSuite::from_byte(suite_byte)?;
        if theirs != self.suite {
            return Err(SecureError::CipherMismatch {
                ours: self.suite,
                theirs,
            });
        }
        let peer_bytes = preamble_bytes(peer);
        self.state = match (self.role, state) {
            (Role::Client, State::AwaitingPreamble(noise)) => State::AwaitingMessage2 {
                noise,
                server_preamble: peer_bytes,
            },
            (Role::Server, State::Start) => State::AwaitingMessage1(self.build(&peer_bytes)?),
            _ => {
                return Err(SecureError::Misuse(
                    "receive_preamble called out of order, twice, or after an error",
                ));
            }
        };
        Ok(())
    }

    /// Takes the peer's next handshake frame: its 4 length-prefix bytes and
    /// the `length` bytes after them. Returns what to send, and the
    /// [`Session`] once the handshake is done. After an error the handshake
    /// is over: close the connection.
    pub fn receive(
        &mut self,
        length_prefix: [u8; LENGTH_PREFIX],
        payload: &[u8],
    ) -> Result<Progress, SecureError> {
        let state = std::mem::replace(&mut self.state, State::Over);
        if usize::try_from(u32::from_le_bytes(length_prefix)).ok() != Some(payload.len()) {
            return Err(SecureError::Misuse(
                "the length prefix does not match the payload",
            ));
        }
        match state {
            State::AwaitingMessage1(mut noise) => {
                read(&mut noise, payload, 1)?;
                let ours = preamble_bytes(&self.preamble());
                let send = write_frame(&mut noise, &ours)?;
                self.state = State::AwaitingMessage3(noise);
                Ok(Progress {
                    send,
                    session: None,
                })
            }
            State::AwaitingMessage2 {
                mut noise,
                server_preamble,
            } => {
                let theirs = read(&mut noise, payload, 2)?;
                if theirs != server_preamble {
                    return Err(SecureError::TranscriptMismatch);
                }
                let send = write_frame(&mut noise, &[])?;
                let (sealer, opener, hash) = self.split(&mut noise);
                self.state = State::AwaitingConfirm {
                    sealer,
                    opener,
                    hash,
                };
                Ok(Progress {
                    send,
                    session: None,
                })
            }
            State::AwaitingMessage3(mut noise) => {
                read(&mut noise, payload, 3).map_err(|e| match e {
                    SecureError::HandshakeMessage { .. } => SecureError::KeyMismatch,
                    e => e,
                })?;
                let (mut sealer, opener, hash) = self.split(&mut noise);
                let mut send = Vec::with_capacity(CONFIRM_FRAME_LEN);
                sealer.seal(&confirm_plaintext(&hash), &mut send)?;
                Ok(Progress {
                    send,
                    session: Some(Session::new(sealer, opener)),
                })
            }
            State::AwaitingConfirm {
                sealer,
                mut opener,
                hash,
            } => {
                let plaintext = opener.open(length_prefix, payload).map_err(|e| match e {
                    SecureError::Authentication => SecureError::KeyMismatch,
                    e => e,
                })?;
                if plaintext != confirm_plaintext(&hash) {
                    return Err(SecureError::TranscriptMismatch);
                }
                Ok(Progress {
                    send: Vec::new(),
                    session: Some(Session::new(sealer, opener)),
                })
            }
            _ => Err(SecureError::Misuse(
                "receive called before the preamble, after the end, or after an error",
            )),
        }
    }

    /// The Noise state for this side, with `prologue`.
    fn build(&self, prologue: &[u8]) -> Result<Box<HandshakeState>, SecureError> {
        let internal = |_| SecureError::Misuse("internal: Noise setup");
        let params = self.suite.noise_name().parse().map_err(internal)?;
        let mut builder = Builder::new(params)
            .prologue(prologue)
            .map_err(internal)?
            .psk(3, &self.psk)
            .map_err(internal)?;
        if let Some(e) = &self.fixed_ephemeral {
            builder = builder.fixed_ephemeral_key_for_testing_only(&e[..]);
        }
        let state = match (self.role, &self.client_static) {
            (Role::Client, Some(s)) => builder
                .local_private_key(&s.private[..])
                .map_err(internal)?
                .build_initiator(),
            (Role::Client, None) => return Err(SecureError::Misuse("a client needs a static key")),
            (Role::Server, _) => builder.build_responder(),
        };
        Ok(Box::new(state.map_err(internal)?))
    }

    /// The transport keys and the handshake hash, once Noise is done.
    fn split(&self, noise: &mut HandshakeState) -> (Sealer, Opener, [u8; HASH_LEN]) {
        let (to_server, to_client) = noise.dangerously_get_raw_split();
        let (to_server, to_client) = (Zeroizing::new(to_server), Zeroizing::new(to_client));
        let mut hash = [0; HASH_LEN];
        hash.copy_from_slice(
            noise
                .get_handshake_hash()
                .get(..HASH_LEN)
                .unwrap_or(&[0; 32]),
        );
        let (seal_key, open_key) = match self.role {
            Role::Client => (&to_server, &to_client),
            Role::Server => (&to_client, &to_server),
        };
        (
            Sealer::new(Cipher::new(self.suite, seal_key), self.suite),
            Opener::new(Cipher::new(self.suite, open_key), self.suite),
            hash,
        )
    }
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Start => "not started",
            State::AwaitingPreamble(_) => "awaiting the server's preamble",
            State::AwaitingMessage1(_) => "awaiting message 1",
            State::AwaitingMessage2 { .. } => "awaiting message 2",
            State::AwaitingMessage3(_) => "awaiting message 3 (the client's proof)",
            State::AwaitingConfirm { .. } => "awaiting the server's key confirmation",
            State::Over => "over",
        };
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("suite", &self.suite)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// The Noise pre-shared key: HKDF-SHA256, no salt, the configured key's 16
/// or 32 bytes as input, [`PSK_INFO`] as info, 32 bytes out. A 128-bit key
/// keeps 128 bits of strength: expansion adds none and loses none.
pub(super) fn noise_psk(key: &SecretKey) -> Zeroizing<[u8; KEY_LEN]> {
    let mut psk = Zeroizing::new([0; KEY_LEN]);
    // 32 bytes is far below HKDF-SHA256's limit: expansion cannot fail.
    let _ = Hkdf::<Sha256>::new(None, key.as_bytes()).expand(PSK_INFO, &mut psk[..]);
    psk
}

/// Writes the next Noise message with `payload` as one frame (length prefix
/// included).
fn write_frame(noise: &mut HandshakeState, payload: &[u8]) -> Result<Vec<u8>, SecureError> {
    let mut message = [0u8; MAX_HANDSHAKE_FRAME];
    let len = noise
        .write_message(payload, &mut message)
        .map_err(|_| SecureError::Misuse("internal: Noise message"))?;
    let body = message.get(..len).unwrap_or_default();
    let mut frame = Vec::with_capacity(LENGTH_PREFIX + len);
    frame.extend_from_slice(&u32::try_from(len).unwrap_or(0).to_le_bytes());
    frame.extend_from_slice(body);
    Ok(frame)
}

/// Reads Noise message `number`; gives its payload.
fn read(noise: &mut HandshakeState, message: &[u8], number: u8) -> Result<Vec<u8>, SecureError> {
    let mut payload = [0u8; MAX_HANDSHAKE_FRAME];
    if message.len() > MAX_HANDSHAKE_FRAME {
        return Err(SecureError::HandshakeMessage { number });
    }
    let len = noise
        .read_message(message, &mut payload)
        .map_err(|_| SecureError::HandshakeMessage { number })?;
    Ok(payload.get(..len).unwrap_or_default().to_vec())
}

/// A preamble's bytes as sent (our preambles' extensions are short).
fn preamble_bytes(preamble: &Preamble) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREAMBLE_LEN);
    // An extension over the limit was refused when the preamble was decoded.
    let _ = preamble.encode(&mut out);
    out
}

/// The key-confirmation frame's plaintext: the kind byte, then the
/// handshake hash.
fn confirm_plaintext(hash: &[u8; HASH_LEN]) -> [u8; 1 + HASH_LEN] {
    let mut text = [0; 1 + HASH_LEN];
    text[0] = CONFIRM_KIND;
    text[1..].copy_from_slice(hash);
    text
}
