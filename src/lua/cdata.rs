//! LuaJIT's 64-bit integers (`1LL`, `ffi.new("int64_t", 5)`, `2ULL`) are
//! cdata, which mlua hands over as `Value::Other`. Their exact value is in
//! the text LuaJIT prints for them (`-5LL`, `18446744073709551615ULL`), read
//! through `tostring`, so no FFI call and no rounding through a double.

/// What a cdata value is, for sending.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Cdata {
    /// An `int64_t`, or a `uint64_t` up to `i64::MAX`.
    Integer(i64),
    /// A `uint64_t` above `i64::MAX`, as Lua prints it.
    TooLarge(String),
    /// Anything else: pointers, structs, arrays, complex numbers...
    Other,
}

/// Reads a cdata value (any other value is [`Cdata::Other`]).
pub(super) fn read(value: &mlua::Value) -> Cdata {
    match value {
        mlua::Value::Other(_) => value.to_string().map_or(Cdata::Other, |t| parse(&t)),
        _ => Cdata::Other,
    }
}

/// `"-5LL"` -> -5, `"5ULL"` -> 5; anything else is not a 64-bit integer.
fn parse(text: &str) -> Cdata {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(n) = text.strip_suffix("ULL") {
        if !digits(n) {
            return Cdata::Other;
        }
        return match n.parse::<u64>().ok().map(i64::try_from) {
            Some(Ok(i)) => Cdata::Integer(i),
            _ => Cdata::TooLarge(text.to_owned()),
        };
    }
    match text.strip_suffix("LL") {
        Some(n) if digits(n.strip_prefix('-').unwrap_or(n)) => {
            n.parse::<i64>().map_or(Cdata::Other, Cdata::Integer)
        }
        _ => Cdata::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::{Cdata, parse};

    #[test]
    fn luajit_integer_texts() {
        assert_eq!(parse("5LL"), Cdata::Integer(5));
        assert_eq!(parse("-9223372036854775808LL"), Cdata::Integer(i64::MIN));
        assert_eq!(parse("9223372036854775807ULL"), Cdata::Integer(i64::MAX));
        assert_eq!(
            parse("9223372036854775808ULL"),
            Cdata::TooLarge("9223372036854775808ULL".into())
        );
        for other in [
            "cdata<int>: 0x1234",
            "0+1i",
            "LL",
            "-LL",
            "+5LL",
            "5 LL",
            "1.5LL",
            "-5ULL",
        ] {
            assert_eq!(parse(other), Cdata::Other, "{other}");
        }
    }
}
