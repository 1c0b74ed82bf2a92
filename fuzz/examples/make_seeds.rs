//! Writes the committed seed corpus, `fuzz/seeds/<target>/`, from the test
//! vectors of docs/PROTOCOL.md and from valid encodings made by the library
//! itself. Deterministic: running it again gives the same files.
//!
//! ```text
//! cd fuzz && cargo run --example make_seeds
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use tablenet::proto::secure::Role;
use tablenet::proto::{Limits, Preamble, encode_message_to_vec};
use tablenet::{Table, Value, table};
use tablenet_fuzz::{SUITES, fixed_sessions, run_handshake, split_frame};

/// Hex vectors found in docs/PROTOCOL.md.
struct Doc {
    /// Section 4: value encodings (frame bodies), valid and invalid.
    bodies: Vec<Vec<u8>>,
    /// Section 2: whole frames given as hex lines in code blocks.
    frames: Vec<Vec<u8>>,
    /// Section 5.8: (suite name, vector name) -> bytes.
    secure: BTreeMap<(String, String), Vec<u8>>,
}

fn parse_hex(cell: &str) -> Option<Vec<u8>> {
    let cell = cell.trim();
    if cell.is_empty() {
        return None;
    }
    cell.split(' ')
        .map(|pair| {
            (pair.len() == 2)
                .then(|| u8::from_str_radix(pair, 16).ok())
                .flatten()
        })
        .collect()
}

/// The text between backticks in a table row's cells.
fn code_cells(row: &str) -> Vec<&str> {
    row.split('|')
        .map(str::trim)
        .filter_map(|c| c.strip_prefix('`')?.strip_suffix('`'))
        .collect()
}

fn read_doc(path: &Path) -> Doc {
    let text = fs::read_to_string(path).expect("docs/PROTOCOL.md");
    let mut doc = Doc {
        bodies: Vec::new(),
        frames: Vec::new(),
        secure: BTreeMap::new(),
    };
    let mut section = "";
    let mut in_code = false;
    for line in text.lines() {
        if line.starts_with("## ") || line.starts_with("### ") {
            section = line;
        }
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            if (section.starts_with("## 2.") || section.starts_with("### 2."))
                && let Some(bytes) = parse_hex(line)
            {
                doc.frames.push(bytes);
            }
            continue;
        }
        if !line.starts_with('|') {
            continue;
        }
        if section.starts_with("## 4.") {
            // The value column (Lua) is skipped unless it also reads as hex,
            // which only adds a harmless seed.
            doc.bodies
                .extend(code_cells(line).into_iter().filter_map(parse_hex));
        } else if section.starts_with("### 5.8") {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if let [_, suite, bits, name, bytes, ..] = cells[..]
                && let Some(bytes) = bytes
                    .strip_prefix('`')
                    .and_then(|b| b.strip_suffix('`'))
                    .and_then(parse_hex)
            {
                doc.secure
                    .insert((format!("{suite} {bits}"), name.to_string()), bytes);
            }
        }
    }
    assert!(doc.bodies.len() >= 20, "section 4 vectors not found");
    assert!(!doc.frames.is_empty(), "section 2 frame not found");
    assert_eq!(doc.secure.len(), 27, "section 5.8 vectors not found");
    doc
}

struct Out {
    root: PathBuf,
}

impl Out {
    fn write(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), bytes).unwrap();
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn frame_of(body: &[u8]) -> Vec<u8> {
    let mut f = ((body.len() + 1) as u32).to_le_bytes().to_vec();
    f.push(0x01);
    f.extend_from_slice(body);
    f
}

fn plain_preamble() -> Vec<u8> {
    let mut p = Vec::new();
    Preamble::plain().encode(&mut p).unwrap();
    p
}

fn nested(depth: usize) -> Value {
    let mut v = Value::Table(Table::new());
    for _ in 1..depth {
        v = Value::Table(Table::from_sequence(vec![v]));
    }
    v
}

fn sample_values() -> Vec<(&'static str, Value)> {
    vec![
        ("seed_table", table! { "OpCode" => 10, "Data" => "From server" }.into()),
        (
            "mixed",
            table! {
                1 => "one", 2 => 2.5, 3 => true, "neg" => -300, "nan" => f64::NAN,
                "bytes" => Value::from(&b"\x00\xff\x80"[..]), "t" => table! { "x" => Value::Nil, "y" => 0 },
            }
            .into(),
        ),
        (
            "holes",
            Table::from_sequence(vec![1.into(), Value::Nil, 3.into(), Value::Nil, 5.into()]).into(),
        ),
        ("depth_8", nested(8)),
        ("big_int", Value::Integer(i64::MIN)),
        ("inf", Value::Number(f64::NEG_INFINITY)),
        ("long_string", Value::from(vec![b'a'; 300])),
    ]
}

fn main() {
    let fuzz_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let doc = read_doc(&fuzz_dir.join("../docs/PROTOCOL.md"));
    let root = fuzz_dir.join("seeds");
    if root.exists() {
        fs::remove_dir_all(&root).unwrap();
    }
    let out = Out { root };
    let limits = Limits::default();

    // ---- decode_value: frame bodies.
    let mut bodies: Vec<(String, Vec<u8>)> = doc
        .bodies
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("doc_{i:02}"), b.clone()))
        .collect();
    for (name, v) in sample_values() {
        let frame = encode_message_to_vec(&v, &limits).unwrap();
        bodies.push((format!("lib_{name}"), frame[5..].to_vec()));
    }
    // Over the default depth limit (129 tables), and a non-shortest varint.
    let too_deep = encode_message_to_vec(
        &nested(129),
        &Limits {
            max_depth: 200,
            ..limits
        },
    )
    .unwrap();
    bodies.push(("too_deep_129".into(), too_deep[5..].to_vec()));
    bodies.push(("long_varint".into(), vec![0x02, 0xfb, 0x14, 0x00]));
    for (name, body) in &bodies {
        out.write("decode_value", name, body);
    }

    // ---- decode_frame: [config][n][sizes][stream].
    let preamble = plain_preamble();
    let mut refusal = Vec::new();
    Preamble::refusal("server full: 10000 connections")
        .encode(&mut refusal)
        .unwrap();
    let seed_frame = &doc.frames[0];
    let mut all_frames = Vec::new();
    for (_, body) in bodies.iter().take(19) {
        all_frames.extend(frame_of(body));
    }
    let streams: Vec<(&str, Vec<u8>)> = vec![
        ("preamble_seed", cat(&[&preamble, seed_frame])),
        ("preamble_many", cat(&[&preamble, &all_frames])),
        ("frames_only", all_frames.clone()),
        ("empty_frame", cat(&[&preamble, &[0, 0, 0, 0]])),
        ("kind_02", cat(&[&preamble, &[2, 0, 0, 0, 2, 0]])),
        ("too_large", cat(&[&preamble, &[0xff, 0xff, 0xff, 0x7f, 1]])),
        (
            "ping_pong",
            cat(&[&preamble, &[1, 0, 0, 0, 3, 1, 0, 0, 0, 4], seed_frame]),
        ),
        ("refusal", refusal.clone()),
        ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("version_2", b"TBLN\x02\x00\x00\x00".to_vec()),
    ];
    let configs: &[(&str, u8, &[u8])] = &[
        ("whole", 0x41, &[]),
        ("bytewise", 0x41, &[1]),
        ("chunks", 0x45, &[3, 7, 0, 64]),
        ("raw", 0x0b, &[5, 2]),
        ("small_limit", 0x71, &[13]),
    ];
    for (sname, stream) in &streams {
        for (cname, config, sizes) in configs {
            let mut input = vec![*config, sizes.len() as u8];
            input.extend_from_slice(sizes);
            input.extend_from_slice(stream);
            out.write("decode_frame", &format!("{sname}_{cname}"), &input);
        }
    }

    // ---- handshake and open_frame: the documented vectors, cross-checked
    // against what the library computes.
    let doc_suites = ["AES-256-GCM 128", "AES-256-GCM 256", "ChaCha20-Poly1305 256"];
    let message_payloads: Vec<Vec<u8>> = vec![
        cat(&[&[0x01], &bodies[0].1]),
        cat(&[&[0x01], &seed_frame[5..]]),
        vec![0x01, 0x05, 0x00, 0x00],
        vec![],
        vec![0x02, 0x00],
        vec![0x01, 0x06],
        vec![0x03],
        vec![0x04],
    ];
    for (index, &(key_hex, suite)) in SUITES.iter().enumerate() {
        let run = run_handshake(key_hex, suite).unwrap();
        if let Some(name) = doc_suites.get(index) {
            let get = |v: &str| doc.secure[&(name.to_string(), v.to_string())].clone();
            let client = cat(&[
                &get("client preamble"),
                &get("message 1"),
                &get("message 3"),
            ]);
            let server = cat(&[
                &get("server preamble"),
                &get("message 2"),
                &get("server confirm"),
            ]);
            assert_eq!(run.client_bytes, client, "{name}: the client's bytes");
            assert_eq!(run.server_bytes, server, "{name}: the server's bytes");
        }
        for role in [Role::Client, Role::Server] {
            let peer_bytes = match role {
                Role::Client => &run.server_bytes,
                Role::Server => &run.client_bytes,
            };
            let (_, mut their_session) = fixed_sessions(role, key_hex, suite).unwrap();
            let mut sealed = Vec::new();
            for payload in &message_payloads[..3] {
                their_session.sealer().seal(payload, &mut sealed).unwrap();
            }
            let role_bit = u8::from(role == Role::Client);
            let tag = format!(
                "suite{index}_{}",
                if role == Role::Client {
                    "client"
                } else {
                    "server"
                }
            );

            // handshake: [config][peer preamble][peer handshake frames][frames]
            let config = role_bit | ((index as u8) << 1);
            out.write(
                "handshake",
                &format!("{tag}_full"),
                &cat(&[&[config], peer_bytes, &sealed]),
            );
            if index == 0 {
                out.write(
                    "handshake",
                    &format!("{tag}_preamble_only"),
                    &cat(&[&[config], &peer_bytes[..9]]),
                );
                out.write(
                    "handshake",
                    &format!("{tag}_first_message_only"),
                    &cat(&[&[config], &peer_bytes[..9 + 4 + usize::from(peer_bytes[9])]]),
                );
            }

            // open_frame raw: [config][frames sealed by the peer]
            let config = (index as u8) | (role_bit << 2);
            let (_, mut s) = fixed_sessions(role, key_hex, suite).unwrap();
            let mut stream = Vec::new();
            for payload in &message_payloads {
                s.sealer().seal(payload, &mut stream).unwrap();
            }
            out.write(
                "open_frame",
                &format!("{tag}_raw"),
                &cat(&[&[config], &stream]),
            );
            if index == 0 {
                let (prefix, _) = split_frame(&stream).unwrap();
                out.write(
                    "open_frame",
                    &format!("{tag}_raw_small_limit"),
                    &cat(&[
                        &[config | 0x10],
                        &stream[..4 + u32::from_le_bytes(prefix) as usize],
                    ]),
                );
            }
        }
    }
    // handshake, other cases: plain mode.
    out.write(
        "handshake",
        "plain_seed",
        &cat(&[&[0x10], &preamble, seed_frame]),
    );
    out.write(
        "handshake",
        "plain_many",
        &cat(&[&[0x10], &preamble, &all_frames]),
    );
    out.write("handshake", "plain_refusal", &cat(&[&[0x10], &refusal]));
    out.write(
        "handshake",
        "plain_got_encrypted",
        &cat(&[
            &[0x10],
            &doc.secure[&("AES-256-GCM 128".to_string(), "client preamble".to_string())],
        ]),
    );
    out.write(
        "handshake",
        "encrypted_got_plain",
        &cat(&[&[0x00], &preamble, seed_frame]),
    );

    // open_frame seal-then-tamper: [config|8][k][len, payload]*[pos lo, pos hi, xor]*
    for (name, ops) in [
        ("intact", &[][..]),
        ("flip_tag", &[40, 0, 1][..]),
        ("flip_prefix", &[0, 0, 0x80][..]),
        ("flip_second", &[60, 0, 4][..]),
        ("flip_twice", &[10, 0, 1, 10, 0, 1][..]),
    ] {
        let mut input = vec![0x08, 3];
        for p in &message_payloads[..3] {
            input.push(p.len() as u8);
            input.extend_from_slice(p);
        }
        input.extend_from_slice(ops);
        out.write("open_frame", &format!("tamper_{name}"), &input);
    }

    // ---- roundtrip: raw bytes for arbitrary::Unstructured.
    out.write("roundtrip", "zeros", &[0; 64]);
    out.write("roundtrip", "counting", &(0..=255u8).collect::<Vec<_>>());
    out.write("roundtrip", "tables", &[0x06; 128]);
    out.write(
        "roundtrip",
        "mixed",
        &(0..512u32)
            .map(|i| (i * 37 % 251) as u8)
            .collect::<Vec<_>>(),
    );
    out.write(
        "roundtrip",
        "small_limits",
        &[0x00, 0x01, 0x00, 0x02, 0x06, 0x06, 0x06, 0x05, 0x03],
    );

    // ---- session: [config][op, args...]*, see fuzz_targets/session.rs.
    // Ops: 1 = deliver n (3 bytes LE) of the peer's output, flip byte; 2 =
    // ours to the peer; 3 = time (2 bytes of ms); 4/5 = close us/peer;
    // 6 = our end of stream; 7 = peer sends (2 bytes); 8 = we send (2
    // bytes); 10 = connected; 12 = write.
    let all: &[u8] = &[0xFF, 0xFF, 0xFF, 0x00];
    let exchange = |client: bool, mode: u8| {
        let mut ops = vec![u8::from(client) | (mode << 1)];
        if client {
            ops.push(10); // TCP connected: our preamble goes out
        }
        ops.extend_from_slice(&[2, 1]);
        ops.extend_from_slice(all); // preambles (and key confirmations)
        ops.extend_from_slice(&[2, 1]);
        ops.extend_from_slice(all);
        ops.extend_from_slice(&[2, 7, 0x05, 0x00, 7, 0x40, 0x00, 8, 0x10, 0x00, 1]);
        ops.extend_from_slice(all);
        ops.extend_from_slice(&[2, 5, 1]);
        ops.extend_from_slice(all); // the peer's Close
        ops.extend_from_slice(&[2, 6, 3, 0xE8, 0x03]);
        ops
    };
    for (name, mode) in [("plain", 0), ("aes128", 1), ("aes256", 2), ("chacha", 3)] {
        out.write("session", &format!("client_{name}"), &exchange(true, mode));
        out.write("session", &format!("server_{name}"), &exchange(false, mode));
    }
    // Heartbeat and idle timeout on, time passing in steps.
    let mut timers = exchange(true, 1);
    timers[0] |= 0xC0;
    timers.extend_from_slice(&[3, 0x2C, 0x01, 12, 3, 0x84, 0x03, 2, 1]);
    timers.extend_from_slice(all);
    timers.extend_from_slice(&[3, 0xD0, 0x07]);
    out.write("session", "timers", &timers);
    out.write(
        "session",
        "refusal",
        &[0x08, 2, 0, 0x03, 0x00, 1, 2, 3, 6, 3, 0xD0, 0x07],
    );
    out.write(
        "session",
        "attacker",
        &cat(&[&[0x00, 0, 0x08, 0x00], &plain_preamble(), &[3, 0x10, 0x27]]),
    );

    println!("seeds written to {}", out.root.display());
}
