//! The crate's one error type.
//!
//! Variants are split by who has to act: the caller (a bad argument, an
//! unsendable value), the peer (bytes that break the protocol), or a limit
//! that either side ran into. Every variant names what was wrong and, where
//! there is one, the limit that applied.

use std::fmt;
use std::time::Duration;

/// Everything that can go wrong in tablenet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument passed by the caller is outside its valid range.
    #[error("invalid argument `{argument}`: {expected}, got {got}")]
    InvalidArgument {
        /// Which argument (for example `port` or `max_depth`).
        argument: &'static str,
        /// What would have been valid (for example `1024..=65535 or 0`).
        expected: &'static str,
        /// What was given, as text.
        got: String,
    },
    /// A value cannot be used as a table key (nil, NaN, or a table).
    #[error("invalid table key: {0}")]
    InvalidKey(KeyError),
    /// A value nests tables deeper than the configured limit.
    #[error("value nests tables deeper than the limit of {limit}")]
    TooDeep {
        /// The configured maximum nesting depth.
        limit: usize,
    },
    /// A frame is larger than the configured maximum frame size.
    #[error("frame of {size} bytes exceeds the maximum frame size of {limit} bytes")]
    FrameTooLarge {
        /// The frame's size in bytes (for an encoder that stopped early, at least this much).
        size: u64,
        /// The configured maximum frame size.
        limit: usize,
    },
    /// The peer sent bytes that break the protocol.
    #[error("protocol violation: {0}")]
    Protocol(ProtocolError),
    /// A Rust value could not be converted to or from a [`Value`](crate::Value)
    /// by the serde bridge.
    #[error("conversion failed: {0}")]
    Convert(String),
    /// A conversion failed inside a value: `path` names the field, element
    /// or map key where (for example `players[3].inventory[0]`), `error` says
    /// what went wrong there.
    #[error("at {path}: {error}")]
    AtPath {
        /// Where: `.field` for a struct field or enum variant, `[i]` for the
        /// element at 0-based position `i` of a sequence or tuple, `["k"]` or
        /// `[k]` for a map key.
        path: String,
        /// What went wrong there.
        error: Box<Error>,
    },
    /// The operating system refused a socket operation.
    #[error("{operation} failed: {message}")]
    Io {
        /// What was being done (`bind`, `connect`, `accept`, `read`, `write`...).
        operation: &'static str,
        /// The OS error's kind.
        kind: std::io::ErrorKind,
        /// The OS error's text.
        message: String,
    },
    /// Something did not happen in time.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// What timed out (`connect`, `handshake`, ...).
        operation: &'static str,
        /// The limit that passed.
        after: Duration,
    },
    /// A server at its connection limit refused a new connection.
    #[error("refused a connection from {peer}: the server is at its limit of {limit} connections")]
    ConnectionLimit {
        /// The refused peer's address.
        peer: std::net::SocketAddr,
        /// `Config::max_connections`.
        limit: usize,
    },
    /// A server refused a new connection because its address already has
    /// `Config::max_connections_per_address` connections to it.
    #[error(
        "refused a connection from {peer}: its address already has {limit} connections to this server"
    )]
    AddressLimit {
        /// The refused peer's address.
        peer: std::net::SocketAddr,
        /// `Config::max_connections_per_address`.
        limit: usize,
    },
    /// `Config::accept_filter` refused a new connection (closed before any
    /// byte was read or written).
    #[error("refused a connection from {peer}: the accept filter declined it")]
    Filtered {
        /// The refused peer's address.
        peer: std::net::SocketAddr,
    },
    /// More connections failed before authenticating (their handshake,
    /// refusals, evictions) than `Config::failure_reports_per_second`
    /// reports one by one: a summary, at most one a second per server,
    /// of those not reported.
    #[error("{count} more connections failed before authenticating; the last{}: {last}",
        last_peer.map(|p| format!(" (from {p})")).unwrap_or_default())]
    UnauthenticatedFailures {
        /// How many failures this summary stands for.
        count: u64,
        /// The last of them.
        last: Box<Error>,
        /// The last one's peer address.
        last_peer: Option<std::net::SocketAddr>,
    },
    /// The connection, client or server is closed.
    #[error("closed")]
    Closed,
    /// The network was shut down.
    #[error("the network has been shut down")]
    Shutdown,
    /// The encrypted channel failed: wrong key, a tampered or replayed frame,
    /// a cipher mismatch...
    #[error("{0}")]
    Secure(crate::proto::secure::SecureError),
}

impl From<crate::proto::secure::SecureError> for Error {
    fn from(e: crate::proto::secure::SecureError) -> Self {
        Error::Secure(e)
    }
}

/// Longest peer-supplied text an error repeats, in bytes (before escaping).
pub(crate) const PEER_TEXT_MAX: usize = 128;

/// Peer-supplied bytes made inert for an error message or a log line:
/// control characters (ESC, BEL, newlines...) and invalid UTF-8 are escaped,
/// and the text is cut after [`PEER_TEXT_MAX`] bytes with a note of how
/// much was left out, so a peer can neither forge log lines nor make huge
/// ones.
pub(crate) fn inert(bytes: &[u8]) -> String {
    let shown = bytes.get(..PEER_TEXT_MAX).unwrap_or(bytes);
    let mut out = String::with_capacity(shown.len() + 16);
    for chunk in shown.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\u{7f}' {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > shown.len() {
        out.push_str(&format!("... ({} more bytes)", bytes.len() - shown.len()));
    }
    out
}

impl Error {
    /// Wraps an OS error, naming the operation that failed.
    pub(crate) fn io(operation: &'static str, e: &std::io::Error) -> Error {
        Error::Io {
            operation,
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// Why a value cannot be a table key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// `nil` is never a key (Lua: "table index is nil").
    Nil,
    /// NaN is never a key (Lua: "table index is NaN").
    NaN,
    /// A table as a key has no meaning once sent across the wire.
    Table,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyError::Nil => "nil cannot be a table key",
            KeyError::NaN => "NaN cannot be a table key",
            KeyError::Table => "a table cannot be a table key across the network",
        })
    }
}

/// How bytes from a peer broke the protocol. Never caused by the local caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The stream does not start with tablenet's magic bytes.
    #[error("peer is not speaking tablenet (stream starts with {found:02X?}{hint})")]
    BadMagic {
        /// The first bytes received (up to four).
        found: Vec<u8>,
        /// A guess at what the peer speaks instead, such as ": looks like HTTP".
        hint: &'static str,
    },
    /// The peer speaks a protocol version this build does not.
    #[error("peer speaks protocol version {theirs}, this side speaks version {ours}")]
    UnsupportedVersion {
        /// The peer's version.
        theirs: u8,
        /// This build's version.
        ours: u8,
    },
    /// The preamble sets flags this version does not define.
    #[error("preamble sets unknown flags {flags:#04x}")]
    UnknownFlags {
        /// The raw flags byte.
        flags: u8,
    },
    /// The preamble's extension is longer than allowed.
    #[error("preamble extension of {len} bytes exceeds the limit of {limit}")]
    ExtensionTooLong {
        /// The claimed length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A frame has length zero (every frame carries at least its kind byte).
    #[error("empty frame")]
    EmptyFrame,
    /// A frame's kind byte is not one this version defines.
    #[error("unknown frame kind {kind:#04x}")]
    UnknownFrameKind {
        /// The raw kind byte.
        kind: u8,
    },
    /// A table on the wire uses a key that cannot be a key.
    #[error("{0}")]
    InvalidKey(KeyError),
    /// A table on the wire sets the same key twice.
    #[error("table sets the key {key} twice")]
    DuplicateKey {
        /// The key, as Lua-like text, made inert (control characters
        /// escaped, at most 128 bytes shown).
        key: String,
    },
    /// The value encoding ended before the frame did.
    #[error("{count} bytes left over after the value")]
    TrailingBytes {
        /// How many bytes were not part of the value.
        count: usize,
    },
    /// The connection was still in its handshake when the server had
    /// `Config::max_handshaking` such connections and another arrived: the
    /// oldest is closed to make room.
    #[error(
        "closed in its handshake to make room: the server had {limit} connections still in their handshake, and this was the oldest (of its address, if that held more than an eighth)"
    )]
    HandshakeEvicted {
        /// The server's `max_handshaking`.
        limit: usize,
    },
    /// A message would take more memory once decoded than this side can
    /// give it (its memory budget's free part): a dense frame of tiny
    /// elements decodes to dozens of times its size.
    #[error("message would take more than {limit} bytes of memory once decoded")]
    DecodedTooLarge {
        /// The bytes it could have taken.
        limit: usize,
    },
    /// The value encoding is malformed (truncated, a bad tag, a bad varint...).
    #[error("malformed value: {0}")]
    Malformed(String),
    /// This side has no key, and the peer talks only encrypted.
    #[error("the {peer} requires a key (encryption), and none is configured here")]
    PeerRequiresKey {
        /// `"server"` or `"client"`: who the peer is.
        peer: &'static str,
    },
    /// This side has a key, and the peer talks only plain.
    #[error("a key is configured here, and the {peer} has none (it talks unencrypted)")]
    PeerHasNoKey {
        /// `"server"` or `"client"`: who the peer is.
        peer: &'static str,
    },
    /// The peer refused the connection and said why (for example a server at
    /// its connection limit). The reason is the peer's text made inert:
    /// control characters escaped, at most 128 bytes shown.
    #[error("the {peer} refused the connection: {reason}")]
    Refused {
        /// `"server"` or `"client"`: who refused.
        peer: &'static str,
        /// The reason it gave.
        reason: String,
    },
    /// A client sent a refusal preamble: only a server refuses (its text is
    /// not repeated).
    #[error("the client sent a refusal preamble, which only a server may send")]
    RefusalFromClient,
    /// The peer closed the connection before the preamble exchange finished.
    #[error("the peer closed the connection during the handshake")]
    ClosedDuringHandshake,
    /// The stream ended at a frame boundary without the peer's `Close`
    /// frame: it was cut (by a proxy, a crash, a killed process), so what
    /// the peer sent last may be lost.
    #[error(
        "the stream ended without the peer's Close frame: the connection was cut, and data may be lost"
    )]
    StreamCut,
    /// The peer closed the stream in the middle of a frame or the preamble.
    #[error("stream ended in the middle of a frame ({buffered} bytes pending)")]
    TruncatedStream {
        /// Bytes received of the unfinished frame.
        buffered: usize,
    },
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::InvalidKey(e)
    }
}
