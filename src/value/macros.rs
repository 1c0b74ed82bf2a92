//! The [`table!`](crate::table!) macro.

/// Builds a [`Table`](crate::Table), like a Lua table constructor.
///
/// ```
/// use tablenet::{table, Value};
/// let msg = table! { "OpCode" => 10, "Data" => "From server" };  // {OpCode = 10, Data = "From server"}
/// let list = table![1, 2, "three"];                              // {1, 2, "three"}
/// let nested = table! { "list" => list, "ok" => true };
/// let holes = table![1, Value::Nil, 3];                          // {1, nil, 3}: key 3 is set
/// assert_eq!(holes.get(3), Some(&Value::Integer(3)));
/// assert_eq!(table!{}.len(), 0);
/// # let _ = (msg, nested);
/// ```
///
/// Keys use `Into<Key>` (booleans, integers, strings); values use
/// `Into<Value>`. A `Nil` value leaves the key unset.
#[macro_export]
macro_rules! table {
    () => {
        $crate::Table::new()
    };
    ($($key:expr => $value:expr),+ $(,)?) => {{
        let mut table = $crate::Table::new();
        $( table.set($key, $value); )+
        table
    }};
    ($($value:expr),+ $(,)?) => {
        $crate::Table::from_sequence(::std::vec![$($crate::Value::from($value)),+])
    };
}
