//! The chat protocol: every message is a table with a `type` field.
//!
//! Two Rust enums describe it, and the serde bridge turns them into tables
//! and back: `#[serde(tag = "type")]` writes the variant's name into the
//! `type` field, and the variant's fields become the table's other fields.
//! A Lua program could speak this protocol with table literals alone:
//!
//! ```text
//! member -> server   {type = "hello", name = "alice"}
//!                    {type = "say", text = "hi"}
//!                    {type = "who"}
//! server -> member   {type = "welcome", members = {"alice", "bob"}}
//!                    {type = "refused", reason = "the name \"alice\" is taken"}
//!                    {type = "said", name = "alice", text = "hi"}
//!                    {type = "joined", name = "bob"}
//!                    {type = "left", name = "bob"}
//!                    {type = "members", names = {"alice", "bob"}}
//! ```

use serde::{Deserialize, Serialize};

/// What a member sends to the server.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ToServer {
    /// The first message: the name to chat under.
    Hello { name: String },
    /// A line of chat.
    Say { text: String },
    /// Asks for the list of members.
    Who,
}

/// What the server sends to a member.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ToMember {
    /// The hello was accepted; everyone in the room, the newcomer included.
    Welcome { members: Vec<String> },
    /// The hello was refused (the server then disconnects).
    Refused { reason: String },
    /// Another member said something.
    Said { name: String, text: String },
    /// Someone joined.
    Joined { name: String },
    /// Someone left.
    Left { name: String },
    /// The answer to `Who`.
    Members { names: Vec<String> },
}

/// Names are short and printable, so `<name> text` lines stay readable.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=24).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the name {name:?} is not valid: use 1 to 24 letters, digits, '-' or '_'"
        ))
    }
}
