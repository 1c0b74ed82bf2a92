//! A chat room over tablenet: a server relays each member's lines to the
//! others, and every message is a table.
//!
//! ```text
//! cargo run --example chat                     # a demo: server and two members in one process
//! cargo run --example chat -- serve [--bind ADDR] [--port PORT] [--key HEX]
//! cargo run --example chat -- join HOST:PORT --name NAME [--key HEX]
//! cargo run --example chat -- keygen           # prints a new random key for --key
//! ```
//!
//! Read the files in this order:
//! - `protocol.rs`: the messages, Rust enums that travel as tables;
//! - `server.rs`: the room, driven by network events;
//! - `member.rs`: connecting, sending standard input, showing what arrives;
//! - `demo.rs`: all of it in one process.
//!
//! `docs/CHAT.md` walks through a chat between two terminals.

/// `println!` that ignores a closed standard output (`chat ... | head -1`)
/// instead of panicking.
macro_rules! show {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod demo;
mod member;
mod protocol;
mod server;

use std::collections::HashMap;
use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "\
usage: chat                                                run a demo in one process
       chat serve [--bind ADDR] [--port PORT] [--key HEX]  run a room (default 127.0.0.1:4096)
       chat join HOST:PORT --name NAME [--key HEX]         join a room
       chat keygen                                         print a new random key
Members type lines to chat; /who lists the members, /quit leaves.
HEX is a key of 32 or 64 hex digits (`chat keygen` makes one); the server
and its members need the same key. Use a random key, never one made from a
password or a phrase. --port 0 lets the OS choose.";

enum Command {
    Demo,
    Help,
    Keygen,
    Serve {
        bind: String,
        port: u16,
        key: Option<String>,
    },
    Join {
        server: String,
        name: String,
        key: Option<String>,
    },
}

fn main() -> ExitCode {
    let command = match parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(problem) => {
            eprintln!("chat: {problem} (try: chat --help)");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Demo => demo::run(),
        Command::Help => {
            show!("{USAGE}");
            Ok(())
        }
        Command::Keygen => keygen(),
        Command::Serve { bind, port, key } => server::serve(&bind, port, key.as_deref()),
        Command::Join { server, name, key } => member::join(&server, &name, key.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: impl Iterator<Item = OsString>) -> Result<Command, String> {
    let args: Vec<String> = args
        .map(|a| {
            a.into_string()
                .map_err(|a| format!("argument {a:?} is not UTF-8"))
        })
        .collect::<Result<_, _>>()?;
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(Command::Help);
    }
    let Some((command, rest)) = args.split_first() else {
        return Ok(Command::Demo);
    };
    match command.as_str() {
        "serve" => {
            let (extra, mut options) = options(rest, &["bind", "port", "key"])?;
            if let Some(extra) = extra.first() {
                return Err(format!("serve takes no argument {extra:?}"));
            }
            let port = match options.remove("port") {
                None => 4096,
                Some(port) => port
                    .parse()
                    .map_err(|_| format!("--port wants a number from 0 to 65535, not {port:?}"))?,
            };
            let bind = options.remove("bind").unwrap_or_else(|| "127.0.0.1".into());
            // An address of this machine, so an IP literal: no name lookup.
            if bind.parse::<std::net::IpAddr>().is_err() {
                return Err(format!(
                    "--bind wants an IP address such as 127.0.0.1 or ::1, not {bind:?}"
                ));
            }
            Ok(Command::Serve {
                bind,
                port,
                key: options.remove("key"),
            })
        }
        "join" => {
            let (servers, mut options) = options(rest, &["name", "key"])?;
            let [server] = servers.as_slice() else {
                return Err("join wants one HOST:PORT, for example 127.0.0.1:4096".into());
            };
            if !server
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
            {
                return Err(format!(
                    "join wants HOST:PORT, such as 127.0.0.1:4096, not {server:?}"
                ));
            }
            let name = options.remove("name").ok_or("join needs --name NAME")?;
            protocol::check_name(&name)?;
            Ok(Command::Join {
                server: server.clone(),
                name,
                key: options.remove("key"),
            })
        }
        "keygen" => match rest.first() {
            Some(extra) => Err(format!("keygen takes no argument {extra:?}")),
            None => Ok(Command::Keygen),
        },
        other => Err(format!(
            "unknown command {other:?}: use serve, join or keygen"
        )),
    }
}

/// Prints a new 256-bit key from the operating system's random generator,
/// as 64 lowercase hex digits for `--key`. A key must be random like this:
/// one derived from a password or a phrase can be guessed offline by anyone
/// who connects (docs/PROTOCOL.md, section 5.7).
fn keygen() -> Result<(), Box<dyn std::error::Error>> {
    let key = tablenet::proto::secure::SecretKey::generate()?;
    show!("{}", key.to_hex());
    Ok(())
}

/// Splits `--option value` (or `--option=value`) from the other arguments.
fn options(
    args: &[String],
    allowed: &[&str],
) -> Result<(Vec<String>, HashMap<String, String>), String> {
    let mut others = Vec::new();
    let mut options = HashMap::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let Some(option) = arg.strip_prefix("--") else {
            others.push(arg.clone());
            continue;
        };
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name, value.to_string()),
            None => match args.next() {
                Some(value) => (option, value.clone()),
                None => return Err(format!("--{option} needs a value")),
            },
        };
        if !allowed.contains(&name) {
            return Err(format!("unknown option --{name}"));
        }
        if options.insert(name.to_string(), value).is_some() {
            return Err(format!("--{name} is given twice"));
        }
    }
    Ok((others, options))
}
