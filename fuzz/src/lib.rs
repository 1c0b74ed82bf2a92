//! Helpers shared by the fuzz targets in `fuzz_targets/` and the seed
//! generator in `examples/make_seeds.rs`. Nothing here decodes anything
//! itself: every target is a thin shim over the library's own decoders
//! (`tablenet::proto::decode_value`, `FrameDecoder`, `Handshake`, `Opener`).

use arbitrary::Unstructured;
use tablenet::proto::secure::{CipherSuite, ClientStatic, Handshake, Role, SecretKey, Session};
use tablenet::proto::{FrameKind, LENGTH_PREFIX, Limits};
use tablenet::{Error, Key, Table, Value};

/// The 128-bit key of docs/PROTOCOL.md section 5.8.
pub const KEY_128: &str = "0C03EA65238DD2C25EB87CE563868098";
/// The 256-bit key of docs/PROTOCOL.md section 5.8.
pub const KEY_256: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
/// The client's static private key in docs/PROTOCOL.md section 5.8.
pub const CLIENT_STATIC: [u8; 32] = [0x11; 32];
/// The client's ephemeral private key in docs/PROTOCOL.md section 5.8.
pub const CLIENT_EPHEMERAL: [u8; 32] = [0x22; 32];
/// The server's ephemeral private key in docs/PROTOCOL.md section 5.8.
pub const SERVER_EPHEMERAL: [u8; 32] = [0x33; 32];

/// Key and cipher suite combinations the secure targets pick from with one
/// input byte (modulo the length). The first three are the documented ones.
pub const SUITES: [(&str, CipherSuite); 4] = [
    (KEY_128, CipherSuite::Aes256Gcm),
    (KEY_256, CipherSuite::Aes256Gcm),
    (KEY_256, CipherSuite::ChaCha20Poly1305),
    (KEY_128, CipherSuite::ChaCha20Poly1305),
];

/// The other end of the connection.
pub fn peer_of(role: Role) -> Role {
    match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    }
}

/// The pre-shared key of a [`SUITES`] entry.
pub fn key(hex: &str) -> SecretKey {
    SecretKey::from_hex(hex).expect("the documented keys parse")
}

/// A handshake for `role` with the documented fixed keys of that role, so
/// that the documented vectors (the seeds) complete it.
pub fn handshake(role: Role, key_hex: &str, suite: CipherSuite) -> Handshake {
    let key = key(key_hex);
    match role {
        Role::Client => Handshake::client(&key, suite, &ClientStatic::from_private(CLIENT_STATIC))
            .with_fixed_ephemeral_for_testing_only(CLIENT_EPHEMERAL),
        Role::Server => {
            Handshake::server(&key, suite).with_fixed_ephemeral_for_testing_only(SERVER_EPHEMERAL)
        }
    }
}

/// One whole in-memory handshake with the documented keys.
pub struct Run {
    /// Everything the client sent: preamble, Noise messages 1 and 3.
    pub client_bytes: Vec<u8>,
    /// Everything the server sent: preamble, message 2, key confirmation.
    pub server_bytes: Vec<u8>,
    /// The client's session (sealer at counter 0).
    pub client: Session,
    /// The server's session (sealer at counter 1: the confirmation used 0).
    pub server: Session,
}

/// Runs the handshake between two documented ends.
pub fn run_handshake(key_hex: &str, suite: CipherSuite) -> Option<Run> {
    let mut client = handshake(Role::Client, key_hex, suite);
    let mut server = handshake(Role::Server, key_hex, suite);
    let mut client_bytes = Vec::new();
    let mut server_bytes = Vec::new();
    client.preamble().encode(&mut client_bytes).ok()?;
    server.preamble().encode(&mut server_bytes).ok()?;
    let message1 = client.first_message().ok()?;
    client_bytes.extend_from_slice(&message1);
    client.receive_preamble(&server.preamble()).ok()?;
    server.receive_preamble(&client.preamble()).ok()?;
    let (p, body) = split_frame(&message1)?;
    let message2 = server.receive(p, body).ok()?.send;
    server_bytes.extend_from_slice(&message2);
    let (p, body) = split_frame(&message2)?;
    let message3 = client.receive(p, body).ok()?.send;
    client_bytes.extend_from_slice(&message3);
    let (p, body) = split_frame(&message3)?;
    let done = server.receive(p, body).ok()?;
    server_bytes.extend_from_slice(&done.send);
    let (p, body) = split_frame(&done.send)?;
    let client_session = client.receive(p, body).ok()?.session?;
    Some(Run {
        client_bytes,
        server_bytes,
        client: client_session,
        server: done.session?,
    })
}

/// Both ends of an established session under a fixed key and the documented
/// keys: `(ours, theirs)`, `ours` being `role`.
pub fn fixed_sessions(role: Role, key_hex: &str, suite: CipherSuite) -> Option<(Session, Session)> {
    let run = run_handshake(key_hex, suite)?;
    Some(match role {
        Role::Client => (run.client, run.server),
        Role::Server => (run.server, run.client),
    })
}

/// A whole frame as its length prefix and payload.
pub fn split_frame(frame: &[u8]) -> Option<([u8; LENGTH_PREFIX], &[u8])> {
    let (prefix, payload) = frame.split_first_chunk::<LENGTH_PREFIX>()?;
    Some((*prefix, payload))
}

/// Interprets a plain frame's payload (kind byte and body) as the IO layer
/// does after opening a sealed frame (`src/io/link_io.rs`): an empty
/// payload and unknown kinds are errors, a Message body is decoded, and the
/// body of any other kind (Ping, Pong) is not read (`Nil` here).
pub fn decode_payload(payload: &[u8], limits: &Limits) -> Result<Value, Error> {
    let (&kind, body) = payload
        .split_first()
        .ok_or(tablenet::ProtocolError::EmptyFrame)?;
    match FrameKind::from_byte(kind)? {
        FrameKind::Message => tablenet::proto::decode_value(body, limits),
        _ => Ok(Value::Nil),
    }
}

/// Structural equality with floats compared by bit pattern (NaN == NaN,
/// 0.0 != -0.0), for round-trip checks. Recursion is bounded by the
/// decoder's depth limit.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Boolean(x), Value::Boolean(y)) => x == y,
        (Value::Integer(x), Value::Integer(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x.to_bits() == y.to_bits(),
        (Value::String(x), Value::String(y)) => x.as_bytes() == y.as_bytes(),
        (Value::Table(x), Value::Table(y)) => same_table(x, y),
        _ => false,
    }
}

/// [`same`] for tables: same keys, values the same by bit pattern, whatever
/// the hash part's order.
pub fn same_table(x: &Table, y: &Table) -> bool {
    x.sequence_len() == y.sequence_len()
        && x.hash_len() == y.hash_len()
        && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
}

/// Nesting depth: 0 for a non-table, 1 for `{}`, 2 for `{{}}`.
pub fn depth(v: &Value) -> usize {
    match v {
        Value::Table(t) => 1 + t.iter().map(|(_, v)| depth(v)).max().unwrap_or(0),
        _ => 0,
    }
}

/// Checks a table's invariants through its public API: no nil inside, the
/// sequence part is keys 1..=n, the hash part never holds key n + 1, and
/// `len` counts what `iter` yields.
pub fn check_table_invariants(t: &Table) {
    assert_eq!(t.len(), t.sequence_len() + t.hash_len());
    assert_eq!(t.len(), t.iter().count());
    let n = t.sequence_len();
    for (i, (k, v)) in t.iter().enumerate() {
        assert!(!v.is_nil(), "a table holds a nil value");
        if i < n {
            assert_eq!(k, tablenet::KeyRef::Integer(i as i64 + 1));
        }
        if let Value::Table(inner) = v {
            check_table_invariants(inner);
        }
    }
    if let Ok(next) = i64::try_from(n + 1) {
        assert!(
            t.get(next).is_none(),
            "key n + 1 present outside the sequence part"
        );
    }
}

/// Integers that hit the interesting encodings: small (table indices),
/// varint boundaries, extremes, or anything.
fn arbitrary_i64(u: &mut Unstructured<'_>) -> arbitrary::Result<i64> {
    const EDGES: [i64; 12] = [
        0,
        -1,
        125,
        -126,
        126,
        32767,
        -32768,
        i32::MAX as i64,
        i32::MIN as i64,
        i64::MAX,
        i64::MIN,
        1 << 53,
    ];
    Ok(match u.int_in_range(0u8..=3)? {
        0 => u.int_in_range(-3i64..=12)?,
        1 => EDGES[u.choose_index(EDGES.len())?],
        _ => u.arbitrary()?,
    })
}

/// Floats: integral ones (which become integer keys), specials, or any bit
/// pattern (NaN payloads included).
fn arbitrary_f64(u: &mut Unstructured<'_>) -> arbitrary::Result<f64> {
    const SPECIAL: [f64; 8] = [
        0.0,
        -0.0,
        1.5,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        9_223_372_036_854_775_808.0,
        -9_223_372_036_854_775_808.0,
    ];
    Ok(match u.int_in_range(0u8..=3)? {
        0 => u.int_in_range(-3i32..=12)? as f64,
        1 => SPECIAL[u.choose_index(SPECIAL.len())?],
        _ => f64::from_bits(u.arbitrary()?),
    })
}

/// A candidate key as a value (sometimes one that Lua refuses: nil, NaN, a
/// table), so that `Table::try_set` is exercised on both outcomes.
fn arbitrary_key(u: &mut Unstructured<'_>) -> arbitrary::Result<Value> {
    Ok(match u.int_in_range(0u8..=6)? {
        0 => Value::Boolean(u.arbitrary()?),
        1 | 2 => Value::Integer(arbitrary_i64(u)?),
        3 => Value::Number(arbitrary_f64(u)?),
        4 | 5 => Value::from(arbitrary_bytes(u)?),
        _ => Value::Nil,
    })
}

fn arbitrary_bytes(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    let len = u.int_in_range(0usize..=40)?;
    Ok(u.bytes(len.min(u.len()))?.to_vec())
}

/// Largest nesting the round-trip generator builds.
pub const MAX_GEN_DEPTH: usize = 8;

/// Builds an arbitrary [`Value`] with at most `depth` nested tables and at
/// most `*budget` nodes (`Value` has no `Arbitrary` impl, and a derived one
/// would recurse without bound). Tables are built through the public API
/// (`push`, `set`, `try_set`, `remove`) and checked against a simple model
/// of Lua's rules as they are built.
pub fn arbitrary_value(
    u: &mut Unstructured<'_>,
    depth: usize,
    budget: &mut usize,
) -> arbitrary::Result<Value> {
    if *budget == 0 || u.is_empty() {
        return Ok(Value::Nil);
    }
    *budget -= 1;
    let top = if depth == 0 { 4 } else { 6 };
    Ok(match u.int_in_range(0u8..=top)? {
        0 => Value::Nil,
        1 => Value::Boolean(u.arbitrary()?),
        2 => Value::Integer(arbitrary_i64(u)?),
        3 => Value::Number(arbitrary_f64(u)?),
        4 => Value::from(arbitrary_bytes(u)?),
        _ => Value::Table(arbitrary_table(u, depth - 1, budget)?),
    })
}

fn arbitrary_table(
    u: &mut Unstructured<'_>,
    depth: usize,
    budget: &mut usize,
) -> arbitrary::Result<Table> {
    let mut t = Table::new();
    // The model: every present key with its value, Lua's rules by hand.
    let mut model: Vec<(Key, Value)> = Vec::new();
    let set_model = |model: &mut Vec<(Key, Value)>, k: Key, v: Value| {
        model.retain(|(key, _)| *key != k);
        if !v.is_nil() {
            model.push((k, v));
        }
    };
    let ops = u.int_in_range(0usize..=12)?;
    for _ in 0..ops {
        if u.is_empty() || *budget == 0 {
            break;
        }
        match u.int_in_range(0u8..=3)? {
            0 => {
                // push: key sequence_len() + 1, nil does nothing.
                let v = arbitrary_value(u, depth, budget)?;
                let k = Key::from(t.sequence_len() as i64 + 1);
                if !v.is_nil() {
                    set_model(&mut model, k, v.clone());
                }
                t.push(v);
            }
            1 | 2 => {
                let k = arbitrary_key(u)?;
                let v = arbitrary_value(u, depth, budget)?;
                match Key::try_from(k.clone()) {
                    Ok(key) => {
                        set_model(&mut model, key, v.clone());
                        assert!(t.try_set(k, v).is_ok());
                    }
                    Err(_) => assert!(t.try_set(k, v).is_err()),
                }
            }
            _ => {
                let k = arbitrary_key(u)?;
                if let Ok(key) = Key::try_from(k) {
                    set_model(&mut model, key.clone(), Value::Nil);
                    t.remove(key.as_ref());
                }
            }
        }
    }
    check_table_invariants(&t);
    assert_eq!(t.len(), model.len(), "table and model differ in size");
    for (k, v) in &model {
        let got = t.get(k.as_ref());
        assert!(
            got.is_some_and(|g| same(g, v)),
            "key {k} holds {got:?}, the model {v:?}"
        );
    }
    Ok(t)
}

/// Reads `n` bytes as a little-endian number (missing bytes are zero).
pub fn take_le(data: &mut &[u8], n: usize) -> usize {
    let (head, tail) = data.split_at(n.min(data.len()));
    *data = tail;
    head.iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
}

/// Takes the first byte of `data` (0 when empty).
pub fn take_byte(data: &mut &[u8]) -> u8 {
    take_le(data, 1) as u8
}

/// Decoder limits chosen by two bits of a config byte: the default, or a
/// small maximum frame size so the size checks are reached with small
/// inputs.
pub fn limits_for(bits: u8) -> Limits {
    let max_frame_size = match bits & 3 {
        0 => Limits::DEFAULT_MAX_FRAME_SIZE,
        1 => 16,
        2 => 64,
        _ => 4096,
    };
    Limits {
        max_frame_size,
        ..Limits::default()
    }
}
