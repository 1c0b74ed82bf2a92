//! Runs the chat example (`examples/chat/`) as real processes on loopback: a
//! server and members, reading their output with deadlines.
//!
//! The binary is the one `cargo build --examples` made for this profile
//! (running `cargo run` here would wait on cargo's build lock forever).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use tablenet::proto::{Limits, Preamble, encode_message};
use tablenet::table;

/// How long any one expected thing may take.
const DEADLINE: Duration = Duration::from_secs(10);
const KEY: &str = "3f1d2b0c9e8a7f6d5c4b3a29181706f5e4d3c2b1a09f8e7d6c5b4a3928170605";
const OTHER_KEY: &str = "0b1c2d3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccddeeff0";

/// `target/<profile>/examples/chat`, next to this test's `deps` directory.
fn chat_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent() // deps
        .and_then(Path::parent) // <profile>
        .expect("the test executable lives in target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("chat{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build --examples` (same profile and target \
         directory) before `cargo test --test chat`",
        binary.display()
    );
    binary
}

enum Output {
    Stdout(String),
    Stderr(String),
    Closed,
}

fn forward(pipe: impl Read + Send + 'static, tx: Sender<Output>, wrap: fn(String) -> Output) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(wrap(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(Output::Closed);
    });
}

/// A running chat process. Dropping it kills the process, so a failing test
/// leaves nothing behind.
struct Chat {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    output: Receiver<Output>,
    open_pipes: usize,
    stdout: Vec<String>,
    stderr: Vec<String>,
    /// Stdout lines before this index were matched or skipped by `expect`.
    read: usize,
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Chat {
    fn start(label: &str, args: &[&str]) -> Chat {
        let mut child = Command::new(chat_binary())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the chat example");
        let (tx, output) = mpsc::channel();
        forward(child.stdout.take().unwrap(), tx.clone(), Output::Stdout);
        forward(child.stderr.take().unwrap(), tx, Output::Stderr);
        Chat {
            label: label.to_string(),
            stdin: child.stdin.take(),
            child,
            output,
            open_pipes: 2,
            stdout: Vec::new(),
            stderr: Vec::new(),
            read: 0,
        }
    }

    fn transcript(&self) -> String {
        format!(
            "{}: stdout {:#?}, stderr {:#?}",
            self.label, self.stdout, self.stderr
        )
    }

    /// Takes the next output, or returns false once both pipes closed;
    /// panics at `deadline`.
    fn receive(&mut self, deadline: Instant, waiting_for: &str) -> bool {
        if self.open_pipes == 0 {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.output.recv_timeout(left) {
            Ok(Output::Stdout(line)) => self.stdout.push(line),
            Ok(Output::Stderr(line)) => self.stderr.push(line),
            Ok(Output::Closed) => self.open_pipes -= 1,
            Err(_) => panic!("timed out waiting for {waiting_for}; {}", self.transcript()),
        }
        true
    }

    /// Waits for a stdout line containing `needle`; returns the unread
    /// lines before it.
    fn expect(&mut self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(i) = self.stdout[self.read..]
                .iter()
                .position(|l| l.contains(needle))
            {
                let skipped = self.stdout[self.read..self.read + i].to_vec();
                self.read += i + 1;
                return skipped;
            }
            if !self.receive(deadline, &format!("{needle:?}")) {
                panic!("exited before printing {needle:?}; {}", self.transcript());
            }
        }
    }

    /// Types a line.
    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to the chat's stdin");
        stdin.flush().unwrap();
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the process to exit (both pipes closed, then `wait`).
    fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        while self.receive(deadline, "the process to exit") {}
        self.child.wait().expect("wait for the chat process")
    }

    /// Asserts a failure: a non-zero exit and one line on stderr that contains
    /// `needle`; returns that line.
    fn expect_failure(&mut self, needle: &str) -> String {
        let status = self.exit_status();
        assert!(!status.success(), "exit {status}; {}", self.transcript());
        assert_eq!(self.stderr.len(), 1, "one line; {}", self.transcript());
        let line = self.stderr[0].clone();
        assert!(line.starts_with("chat: "), "{line}");
        assert!(line.contains(needle), "{line:?} lacks {needle:?}");
        assert!(!line.contains("panicked"), "{line}");
        line
    }
}

/// Starts `chat serve --port 0`; returns it and the port it printed.
fn serve(key: Option<&str>) -> (Chat, u16) {
    let mut args = vec!["serve", "--port", "0"];
    if let Some(key) = key {
        args.extend(["--key", key]);
    }
    let mut server = Chat::start("server", &args);
    server.expect("listening on ");
    let line = &server.stdout[server.read - 1];
    let port = line
        .strip_prefix("listening on 127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not `listening on 127.0.0.1:PORT`: {line:?}"));
    (server, port)
}

fn start_join(host: &str, port: u16, name: &str, key: Option<&str>) -> Chat {
    let address = format!("{host}:{port}");
    let mut args = vec!["join", &address, "--name", name];
    if let Some(key) = key {
        args.extend(["--key", key]);
    }
    Chat::start(name, &args)
}

/// Starts `chat join` and waits for the welcome.
fn join(port: u16, name: &str, key: Option<&str>) -> Chat {
    let mut member = start_join("127.0.0.1", port, name, key);
    member.expect("* welcome! members:");
    member
}

/// A server and alice, bob and carol, all joined and announced.
fn room_of_three(key: Option<&str>) -> (Chat, u16, Chat, Chat, Chat) {
    let (server, port) = serve(key);
    let mut alice = join(port, "alice", key);
    let mut bob = join(port, "bob", key);
    assert_eq!(bob.stdout[bob.read - 1], "* welcome! members: alice, bob");
    alice.expect("* bob joined");
    let carol = join(port, "carol", key);
    assert_eq!(
        carol.stdout[carol.read - 1],
        "* welcome! members: alice, bob, carol"
    );
    alice.expect("* carol joined");
    bob.expect("* carol joined");
    (server, port, alice, bob, carol)
}

fn three_members_chat(key: Option<&str>) {
    let (mut server, _port, mut alice, mut bob, mut carol) = room_of_three(key);

    alice.type_line("hello from alice");
    bob.expect("<alice> hello from alice");
    carol.expect("<alice> hello from alice");
    server.expect("<alice> hello from alice");

    bob.type_line("hi alice");
    let before = alice.expect("<bob> hi alice");
    // The server relayed alice's line before bob's: an echo would show here.
    assert!(
        before.iter().all(|l| !l.contains("<alice>")),
        "alice got her own line back: {before:?}"
    );
    carol.expect("<bob> hi alice");

    carol.type_line("/who");
    carol.expect("* members: alice, bob, carol");

    carol.type_line("/quit");
    assert!(carol.exit_status().success(), "{}", carol.transcript());
    alice.expect("* carol left");
    bob.expect("* carol left");

    bob.close_stdin(); // end of input leaves too
    assert!(bob.exit_status().success(), "{}", bob.transcript());
    alice.expect("* bob left");

    alice.type_line("/who");
    alice.expect("* members: alice");
    for member in [&alice, &bob, &carol] {
        assert!(member.stderr.is_empty(), "{}", member.transcript());
    }
}

#[test]
fn three_members_chat_in_plain() {
    three_members_chat(None);
}

#[test]
fn three_members_chat_encrypted() {
    three_members_chat(Some(KEY));
}

#[test]
fn a_killed_member_leaves_and_the_others_keep_chatting() {
    let (mut server, port, mut alice, mut bob, mut carol) = room_of_three(None);
    bob.type_line("about to vanish");
    alice.expect("<bob> about to vanish");
    bob.child.kill().unwrap(); // SIGKILL: no goodbye
    alice.expect("* bob left");
    carol.expect("* bob left");
    server.expect("* bob left");

    alice.type_line("still here");
    carol.expect("<alice> still here");
    carol.type_line("/who");
    carol.expect("* members: alice, carol");
    // The name is free again.
    let _bob = join(port, "bob", None);
    alice.expect("* bob joined");
    assert!(server.child.try_wait().unwrap().is_none(), "server exited");
}

#[test]
fn a_member_vanishing_mid_message_is_survived() {
    let (mut server, port) = serve(None);
    let mut alice = join(port, "alice", None);

    // A hand-made member: its hello, then half of a line, then it is gone.
    let limits = Limits::default();
    let mut wire = Vec::new();
    Preamble::plain().encode(&mut wire).unwrap();
    let hello = table! { "type" => "hello", "name" => "ghost" };
    encode_message(&hello.into(), &limits, &mut wire).unwrap();
    let mut ghost = TcpStream::connect(("127.0.0.1", port)).unwrap();
    ghost.write_all(&wire).unwrap();
    alice.expect("* ghost joined");

    let mut say = Vec::new();
    let text = "this line never ends ".repeat(20);
    let line = table! { "type" => "say", "text" => text };
    encode_message(&line.into(), &limits, &mut say).unwrap();
    ghost.write_all(&say[..say.len() / 2]).unwrap();
    ghost.shutdown(Shutdown::Write).unwrap();
    alice.expect("* ghost left");
    server.expect("* ghost left");
    let left = &server.stdout[server.read - 1];
    assert!(left.contains("error"), "not a truncated frame? {left}");
    println!("{left}");
    drop(ghost);

    let mut dave = join(port, "dave", None);
    dave.type_line("is anyone there?");
    alice.expect("<dave> is anyone there?");
    alice.type_line("/who");
    alice.expect("* members: alice, dave");
}

#[test]
fn a_taken_name_is_refused() {
    let (_server, port) = serve(None);
    let mut alice = join(port, "alice", None);
    let mut impostor = start_join("127.0.0.1", port, "alice", None);
    let line = impostor.expect_failure("taken");
    assert!(line.contains("alice"), "{line}");
    assert!(
        !impostor.stdout.iter().any(|l| l.contains("welcome")),
        "{}",
        impostor.transcript()
    );
    let _bob = join(port, "bob", None);
    let before = alice.expect("* bob joined");
    assert!(
        before.iter().all(|l| !l.contains("alice joined")),
        "{before:?}"
    );
}

#[test]
fn a_wrong_key_fails_with_a_clear_message() {
    let (_server, port) = serve(Some(KEY));
    start_join("127.0.0.1", port, "alice", Some(OTHER_KEY)).expect_failure("keys do not match");
    start_join("127.0.0.1", port, "alice", None).expect_failure("requires a key");
    let short_key = &KEY[..32]; // AES-128 against AES-256
    start_join("127.0.0.1", port, "alice", Some(short_key)).expect_failure("same --key");

    let (_plain, port) = serve(None);
    start_join("127.0.0.1", port, "alice", Some(KEY)).expect_failure("has none");
}

#[test]
fn nobody_listening_fails_quickly() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }; // closed again: nothing listens there
    let started = Instant::now();
    start_join("127.0.0.1", port, "alice", None).expect_failure("nobody is listening");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_vanished_server_ends_its_members() {
    let (mut server, port) = serve(Some(KEY));
    let mut alice = join(port, "alice", Some(KEY));
    server.child.kill().unwrap();
    alice.expect_failure("lost the connection to the server");
}

#[test]
fn bad_arguments_fail_with_one_line() {
    let cases: &[&[&str]] = &[
        &["frobnicate"],
        &["serve", "--port", "port"],
        &["serve", "--port", "65536"],
        &["serve", "--port"],
        &["serve", "--bind", "not-an-address"],
        &["serve", "--key", "xyz"],
        &["serve", "--nmae", "alice"],
        &["serve", "extra"],
        &["join"],
        &["join", "127.0.0.1:4096"],
        &["join", "127.0.0.1", "--name", "alice"],
        &["join", "127.0.0.1:4096", "--name", "two words"],
        &["join", "127.0.0.1:4096", "--name", "alice", "--key", "0123"],
        &["join", "127.0.0.1:4096", "--name", "a", "--name", "b"],
        &["keygen", "extra"],
        &["keygen", "--key", "0123"],
    ];
    for args in cases {
        let started = Instant::now();
        let mut chat = Chat::start(&format!("chat {args:?}"), args);
        chat.expect_failure("");
        assert!(chat.stdout.is_empty(), "{}", chat.transcript());
        assert!(started.elapsed() < Duration::from_secs(5), "{args:?}");
    }
}

/// Runs `chat keygen`; returns its exact standard output after checking
/// that it exited 0 and wrote nothing on standard error.
fn keygen() -> String {
    let mut child = Command::new(chat_binary())
        .arg("keygen")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chat keygen");
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chat keygen") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chat keygen did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "exit {status}; stderr {stderr:?}");
    assert!(stderr.is_empty(), "stderr {stderr:?}");
    stdout
}

#[test]
fn keygen_prints_one_fresh_64_digit_key() {
    let first = keygen();
    let digits = first
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("not one line ending in a newline: {first:?}"));
    assert_eq!(digits.len(), 64, "{first:?}");
    assert!(digits.bytes().all(|b| b.is_ascii_hexdigit()), "{first:?}");
    // It is a key the chat (and the library) accept: 256 bits.
    let key = tablenet::proto::secure::SecretKey::from_hex(digits).unwrap();
    assert_eq!(key.bits(), 256);
    assert_ne!(keygen(), first, "two runs printed the same key");
}

#[test]
fn help_prints_the_usage() {
    let mut chat = Chat::start("help", &["--help"]);
    chat.expect("usage: chat");
    assert!(chat.exit_status().success());
}

#[test]
fn a_name_such_as_localhost_works() {
    let (_server, port) = serve(None);
    let mut alice = start_join("localhost", port, "alice", None);
    alice.expect("* welcome! members: alice");
}

#[test]
fn the_demo_runs_and_exits_zero() {
    let mut demo = Chat::start("demo", &[]);
    demo.expect("listening on 127.0.0.1:");
    demo.expect("bob    | <alice> hi bob");
    demo.expect("bob    | * members: alice, bob");
    demo.expect("bob    | * alice left");
    assert!(demo.exit_status().success(), "{}", demo.transcript());
    assert!(demo.stderr.is_empty(), "{}", demo.transcript());
}
