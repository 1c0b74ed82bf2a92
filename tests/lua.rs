//! The Lua binding inside an embedded Lua 5.4 state (mlua, vendored).
//!
//! Run with `cargo test --features lua --test lua`. The same Lua script,
//! tests/lua/api.lua, runs against the loadable module under the stock
//! lua5.1, lua5.2, lua5.3, lua5.4 and luajit interpreters in
//! bindings/lua/ci.sh (which also covers the rules for Luas without integers).
#![cfg(feature = "lua")]

mod util;

use std::time::{Duration, Instant};

use tablenet::lua::mlua::{self, Lua};
use tablenet::lua::{
    BigIntegers, ConvertError, ConvertLimits, try_value_from_lua, try_value_to_lua, value_from_lua,
    value_to_lua,
};
use tablenet::{Config, Network, OverflowPolicy, Table, Value, table};

fn lua_with_network() -> Lua {
    let lua = Lua::new();
    tablenet::lua::register(&lua).expect("register");
    lua
}

fn run_file(lua: &Lua, path: &str) {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    let code = std::fs::read_to_string(&full).expect("read the script");
    if let Err(e) = lua.load(code).set_name(format!("@{path}")).exec() {
        panic!("{path} failed:\n{e}");
    }
}

/// Every seed call, plain and encrypted, as a Lua script (also run by ci.sh
/// against the loadable module).
#[test]
fn api_script_in_an_embedded_state() {
    let lua = lua_with_network();
    run_file(&lua, "tests/lua/api.lua");
}

fn eval(lua: &Lua, code: &str) -> mlua::Value {
    lua.load(code).eval().expect(code)
}

fn from_lua(lua: &Lua, code: &str) -> Value {
    value_from_lua(&eval(lua, code), &ConvertLimits::default()).expect(code)
}

fn convert_error(lua: &Lua, code: &str) -> ConvertError {
    try_value_from_lua(&eval(lua, code), &ConvertLimits::default())
        .expect("no Lua error")
        .expect_err(code)
}

#[test]
fn lua_values_become_values_with_subtypes_kept() {
    let lua = Lua::new();
    assert_eq!(from_lua(&lua, "return 42"), Value::Integer(42));
    assert_eq!(from_lua(&lua, "return 4.0"), Value::Number(4.0));
    assert_eq!(from_lua(&lua, "return nil"), Value::Nil);
    assert_eq!(from_lua(&lua, "return true"), Value::Boolean(true));
    assert_eq!(
        from_lua(&lua, r#"return "\0\255x""#),
        Value::from(&b"\0\xffx"[..])
    );
    let t = from_lua(
        &lua,
        r#"return {1, nil, 3, x = "y", [1.5] = 2.0, [true] = false, [4.0] = "four"}"#,
    );
    let t = t.as_table().expect("a table");
    assert_eq!(t.get(1), Some(&Value::Integer(1)));
    assert_eq!(t.get(2), None);
    assert_eq!(t.get(3), Some(&Value::Integer(3)));
    assert_eq!(t.get(4), Some(&Value::from("four")), "4.0 is the key 4");
    assert_eq!(t.get("x"), Some(&Value::from("y")));
    assert_eq!(t.get(1.5), Some(&Value::Number(2.0)));
    assert_eq!(t.get(true), Some(&Value::Boolean(false)));
    assert_eq!(t.len(), 6);
}

#[test]
fn values_become_lua_values_and_round_trip() {
    let lua = Lua::new();
    let mut inner = table! { "deep" => table![1, 2.5, "three"] };
    inner.set(-1, "negative");
    let mut value = table! {
        "OpCode" => 10,
        "Data" => "From server",
        "float" => 1.0,
        "bytes" => Value::from(&b"\0\x01\xfe\xff"[..]),
        "inner" => inner,
        "empty" => Table::new(),
    };
    value.push("first");
    value.set(3, "after a hole");
    value.set(true, 1);
    let value = Value::Table(value);

    let lua_value = value_to_lua(&lua, &value).expect("to Lua");
    lua.globals().set("v", lua_value).expect("set");
    let checks: bool = lua
        .load(
            r#"
            return math.type(v.OpCode) == "integer" and math.type(v.float) == "float"
               and v.bytes == "\0\1\254\255" and v[1] == "first" and v[2] == nil
               and v[3] == "after a hole" and v[true] == 1 and v.inner.deep[3] == "three"
               and math.type(v.inner.deep[2]) == "float" and v.inner[-1] == "negative"
               and next(v.empty) == nil
            "#,
        )
        .eval()
        .expect("checks");
    assert!(checks, "the Lua view of the value");
    let back = value_from_lua(
        &lua.globals().get("v").expect("v"),
        &ConvertLimits::default(),
    )
    .expect("back");
    assert_eq!(back, value);

    // IntoLua / FromLua.
    lua.globals().set("w", value.clone()).expect("IntoLua");
    let w: Value = lua.globals().get("w").expect("FromLua");
    assert_eq!(w, value);
}

#[test]
fn unsendable_lua_values_are_typed_errors_with_a_path() {
    let lua = Lua::new();
    let e = convert_error(&lua, "return {a = {1, print}}");
    assert_eq!(
        e,
        ConvertError::Unsendable {
            type_name: "function",
            path: ".a[2]".into()
        }
    );
    assert!(e.to_string().contains("(at packet.a[2])"), "{e}");
    assert!(matches!(
        convert_error(&lua, "return coroutine.create(print)"),
        ConvertError::Unsendable {
            type_name: "coroutine (thread)",
            ..
        }
    ));
    assert!(matches!(
        convert_error(&lua, "return {[{}] = 1}"),
        ConvertError::BadKey {
            type_name: "table",
            ..
        }
    ));
    assert!(matches!(
        convert_error(&lua, r#"return {["a b"] = {[print] = 1}}"#),
        ConvertError::BadKey { type_name: "function", ref path } if path == r#"["a b"]"#
    ));
    assert!(matches!(
        convert_error(&lua, "local t = {} t.x = {t} return t"),
        ConvertError::Cycle { ref path } if path == ".x[1]"
    ));
    assert!(matches!(
        convert_error(&lua, "return io.stdout"),
        ConvertError::Unsendable {
            type_name: "userdata",
            ..
        }
    ));
}

#[test]
fn a_table_shared_twice_is_legal_and_sent_twice() {
    let lua = Lua::new();
    let v = from_lua(&lua, "local s = {1, 2} return {s, s, {s}}");
    let t = v.as_table().expect("table");
    assert_eq!(t.get(1), t.get(2));
    assert_eq!(t[3][1], t[1]);
}

#[test]
fn limits_bound_depth_values_and_bytes() {
    let lua = Lua::new();
    let nested = |n: usize| format!("local t = {{}} for _ = 2, {n} do t = {{t}} end return t");
    assert!(value_from_lua(&eval(&lua, &nested(128)), &ConvertLimits::default()).is_ok());
    let e = convert_error(&lua, &nested(129));
    assert!(matches!(e, ConvertError::TooDeep { limit: 128, .. }), "{e}");

    // {t, t} nested 64 times stands for 2^64 values: stopped at the value limit, quickly.
    let start = Instant::now();
    let e = convert_error(
        &lua,
        "local t = {} for _ = 1, 64 do t = {t, t} end return t",
    );
    assert_eq!(e, ConvertError::TooManyValues { limit: 1_000_000 });
    assert!(start.elapsed() < Duration::from_secs(20));

    let small = ConvertLimits {
        max_depth: 3,
        max_values: 10,
        max_bytes: 8,
    };
    let v = eval(&lua, "return {1, 2, 3, 4, 5, 6}");
    assert!(matches!(
        try_value_from_lua(&v, &small).expect("lua"),
        Err(ConvertError::TooManyValues { limit: 10 })
    ));
    let v = eval(&lua, r#"return {"12345", "6789"}"#);
    assert!(matches!(
        try_value_from_lua(&v, &small).expect("lua"),
        Err(ConvertError::TooManyBytes { limit: 8 })
    ));
    let v = eval(&lua, "return {{{{}}}}");
    assert!(matches!(
        try_value_from_lua(&v, &small).expect("lua"),
        Err(ConvertError::TooDeep { limit: 3, .. })
    ));
    // The network's limits follow its config.
    let mut config = Config::default();
    config.limits.max_depth = 7;
    assert_eq!(ConvertLimits::for_config(&config).max_depth, 7);
}

#[test]
fn a_deep_value_converts_to_lua_without_overflowing_the_stack() {
    let lua = Lua::new();
    let mut v = Value::Table(Table::new());
    for _ in 0..20_000 {
        v = Value::Table(table![v]);
    }
    let converted = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let lua = Lua::new();
            value_to_lua(&lua, &v)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .expect("spawn")
        .join()
        .expect("no stack overflow");
    assert!(converted.is_ok(), "{converted:?}");
    drop(lua);
}

#[test]
fn one_network_table_per_state() {
    let lua = Lua::new();
    let a = tablenet::lua::create(&lua).expect("create");
    let b = tablenet::lua::create(&lua).expect("create again");
    assert!(a.equals(&b).expect("equals"), "the same table");
    let e = tablenet::lua::create_with(&lua, Network::new()).expect_err("second network");
    assert!(
        e.to_string().contains("already has a tablenet network"),
        "{e}"
    );
    tablenet::lua::register(&lua).expect("register");
    let same: bool = lua
        .load("return network.Server ~= nil")
        .eval()
        .expect("global");
    assert!(same);
}

/// Lossless ring of four events: the server stops reading while the ring is
/// full, the client's send queue fills, `client:Send` returns false with the
/// reason, and `EVENT_DRAINED` (extension) says when to resume.
#[test]
fn a_full_send_queue_refuses_and_drained_follows() {
    let mut config = Config::default();
    config.overflow = OverflowPolicy::Lossless;
    config.event_capacity = 4;
    config.send_queue_bytes = 64 * 1024;
    let lua = Lua::new();
    tablenet::lua::register_with(&lua, Network::with_config(config).expect("config"))
        .expect("register");
    lua.load(
        r#"
        local server = assert(network.Server("127.0.0.1"))
        local client = assert(network.Client("127.0.0.1", server:GetPort()))
        assert(client:WaitForConnect(5))
        local conns = {}
        local deadline = os.time() + 10
        while #conns == 0 do
          assert(os.time() < deadline, "no EVENT_CONNECT")
          for _, ev in ipairs(network.WaitEvents(0.05)) do
            if ev.Event == network.EVENT_CONNECT then conns[#conns + 1] = ev.Object end
          end
        end
        -- From now on nobody polls: the ring fills, the server stops reading.
        local blob = string.rep("x", 60 * 1024)
        local refused, why
        deadline = os.time() + 20
        for i = 1, 1000000 do
          local ok, err = client:Send({ i = i, blob = blob })
          if not ok then refused, why = i, err break end
          assert(os.time() < deadline, "the send queue never filled")
        end
        assert(refused, "a send was refused")
        assert(why:find("send queue full", 1, true), why)
        local drained, received = false, 0
        deadline = os.time() + 20
        while not drained do
          assert(os.time() < deadline, "no EVENT_DRAINED; received " .. received)
          for _, ev in ipairs(network.WaitEvents(0.1)) do
            if ev.Event == network.EVENT_CONNECT then conns[#conns + 1] = ev.Object end
            if ev.Event == network.EVENT_RECEIVE then received = received + 1 end
            if ev.Event == network.EVENT_DRAINED then
              assert(rawequal(ev.Object, client), "EVENT_DRAINED names the client")
              drained = true
            end
          end
        end
        assert(client:Send({ again = true }), "sending resumes after EVENT_DRAINED")
        "#,
    )
    .set_name("drained")
    .exec()
    .unwrap_or_else(|e| panic!("{e}"));
}

/// A small overwriting ring: the seed's loss, reported as `EVENT_ERROR` with
/// a nil `.Object` and the count in `.Errors`.
#[test]
fn an_overwritten_ring_reports_lost_events() {
    let mut config = Config::default();
    config.event_capacity = 8;
    config.overflow = tablenet::OverflowPolicy::Overwrite; // what is tested
    let lua = Lua::new();
    tablenet::lua::register_with(&lua, Network::with_config(config).expect("config"))
        .expect("register");
    lua.load(
        r#"
        local server = assert(network.Server("127.0.0.1"))
        local client = assert(network.Client("127.0.0.1", server:GetPort()))
        assert(client:WaitForConnect(5))
        local conn
        local deadline = os.time() + 10
        while not conn do
          assert(os.time() < deadline)
          for _, ev in ipairs(network.WaitEvents(0.05)) do
            if ev.Event == network.EVENT_CONNECT then conn = ev.Object end
          end
        end
        for i = 1, 50 do assert(client:Send({ i = i })) end
        local lost, last = 0, 0
        deadline = os.time() + 10
        while last < 50 do
          assert(os.time() < deadline, "last " .. last)
          for _, ev in ipairs(network.WaitEvents(0.05)) do
            if ev.Event == network.EVENT_ERROR then
              assert(ev.Object == nil and ev.Socket == nil)
              lost = lost + assert(tonumber(ev.Errors:match("^(%d+) events were lost")), ev.Errors)
            elseif ev.Event == network.EVENT_RECEIVE then
              last = ev.Packet.i
            end
          end
          -- Slow the polling so that the ring overflows.
          local t = os.clock() + 0.05 while os.clock() < t do end
        end
        assert(lost > 0, "nothing was lost")
        "#,
    )
    .set_name("overwrite")
    .exec()
    .unwrap_or_else(|e| panic!("{e}"));
}

/// The examples parse and load (their networking runs in bindings/lua/ci.sh).
#[test]
fn examples_compile() {
    let lua = lua_with_network();
    for path in ["examples/lua/chat.lua", "examples/lua/echo_server.lua"] {
        let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
        let code = std::fs::read_to_string(&full).expect(path);
        lua.load(code)
            .set_name(path)
            .into_function()
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

/// Lua 5.4 holds every i64: the BigIntegers policy never applies, and
/// integers a double cannot hold come back exactly under each policy.
#[test]
fn big_integers_are_exact_on_a_lua_with_integers() {
    let lua = Lua::new();
    let mut t = table! { "odd" => (1_i64 << 53) + 1, "max" => i64::MAX };
    t.set((1_i64 << 53) + 1, "key");
    t.set(1_i64 << 53, "other key");
    let value = Value::Table(t);
    for policy in [BigIntegers::Error, BigIntegers::Float, BigIntegers::String] {
        let lua_value = try_value_to_lua(&lua, &value, policy)
            .expect("no Lua error")
            .unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        let back = value_from_lua(&lua_value, &ConvertLimits::default()).expect("back");
        assert_eq!(back, value, "{policy:?}");
    }
    assert_eq!(BigIntegers::default(), BigIntegers::Error);
    assert_eq!(BigIntegers::String.name(), "string");
}

#[derive(serde::Serialize)]
struct WorldState {
    tick: u64,
    map: &'static str,
    players: Vec<Player>,
    phase: Phase,
    winner: Option<u32>,
}

#[derive(serde::Serialize)]
struct Player {
    id: u32,
    name: String,
    position: (f32, f32),
    health: f64,
    #[serde(with = "serde_bytes")]
    avatar: Vec<u8>,
    status: Status,
}

#[derive(serde::Serialize)]
enum Phase {
    Playing,
}

#[derive(serde::Serialize)]
enum Status {
    Alive { shield: u8 },
}

/// A Rust struct sent with `send_serialized` (the direct path, no `Value`
/// in between) arrives in a Lua script as the table it expects: fields by
/// name, sequences from 1, integers as integers and floats as floats, a
/// `serde_bytes` field as one string, enums as their name or
/// `{Variant = payload}`, and a `None` field absent.
#[test]
fn lua_receives_a_rust_struct_sent_with_send_serialized() {
    let rust = Network::new();
    let server = util::listen(&rust);
    let lua = lua_with_network();
    lua.globals().set("PORT", server.port()).expect("PORT");
    lua.load(
        r#"
        client = assert(network.Client("127.0.0.1", PORT))
        assert(client:WaitForConnect(5))
        "#,
    )
    .set_name("connect")
    .exec()
    .unwrap_or_else(|e| panic!("{e}"));
    let connection = util::accept(&rust);
    let state = WorldState {
        tick: 42,
        map: "arena",
        players: vec![
            Player {
                id: 7,
                name: "ada".into(),
                position: (1.5, -2.0),
                health: 100.0,
                avatar: vec![0, 0xff, b'L', b'u', b'a'],
                status: Status::Alive { shield: 3 },
            },
            Player {
                id: 9,
                name: "bob".into(),
                position: (0.0, 4.25),
                health: 12.5,
                avatar: vec![],
                status: Status::Alive { shield: 0 },
            },
        ],
        phase: Phase::Playing,
        winner: None,
    };
    connection.send_serialized(&state).expect("send_serialized");
    lua.load(
        r#"
        local packet
        local deadline = os.time() + 10
        while not packet do
          assert(os.time() < deadline, "no EVENT_RECEIVE")
          for _, ev in ipairs(network.WaitEvents(0.05)) do
            if ev.Event == network.EVENT_RECEIVE then packet = ev.Packet end
          end
        end
        assert(math.type(packet.tick) == "integer" and packet.tick == 42, "tick")
        assert(packet.map == "arena", "map")
        assert(packet.phase == "Playing", "a unit variant is its name")
        assert(packet.winner == nil, "a None field is absent")
        assert(#packet.players == 2, "players is a sequence of 2")
        local ada = packet.players[1]
        assert(math.type(ada.id) == "integer" and ada.id == 7, "id")
        assert(ada.name == "ada", "name")
        assert(math.type(ada.position[1]) == "float" and ada.position[1] == 1.5, "x")
        assert(ada.position[2] == -2.0 and #ada.position == 2, "y")
        assert(math.type(ada.health) == "float" and ada.health == 100.0, "health")
        assert(type(ada.avatar) == "string", "a serde_bytes field is a string")
        assert(ada.avatar == "\0\255Lua", "its bytes, exactly")
        assert(ada.status.Alive.shield == 3, "a struct variant is {Alive = {...}}")
        local bob = packet.players[2]
        assert(bob.name == "bob" and bob.health == 12.5 and bob.avatar == "", "bob")
        local keys = 0
        for _ in pairs(ada) do keys = keys + 1 end
        assert(keys == 6, "exactly the struct's fields, got " .. keys)
        client:Disconnect()
        "#,
    )
    .set_name("receive")
    .exec()
    .unwrap_or_else(|e| panic!("{e}"));
}
