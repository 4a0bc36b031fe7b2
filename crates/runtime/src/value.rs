//! The values a tuple carries, and their conversions from Rust types.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::fmt;

/// One value of a tuple.
///
/// Strings up to 24 bytes are stored inline (no allocation), which keeps word-sized keys cheap.
/// The whole value is 24 bytes (the variant tag lives in a spare byte of the string), so tuples
/// stay small to move: bytes and lists are boxed slices for that reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    I64(i64),
    /// A 64-bit float.
    F64(f64),
    /// A UTF-8 string.
    Str(CompactString),
    /// Raw bytes.
    Bytes(Box<[u8]>),
    /// A list of values.
    List(Box<[Value]>),
}

/// The values of one tuple, stored inline for up to three values (more spill to the heap).
/// Three keeps a tuple small enough to move cheaply: at four, copying tuples took ~40% of the
/// word count benchmark (see docs/design/tuple-layout.md).
pub type Values = SmallVec<[Value; 3]>;

/// Builds [`Values`] from expressions convertible into [`Value`]: `values!["word", 1]`.
#[macro_export]
macro_rules! values {
    ($($v:expr),* $(,)?) => {{
        let mut v = $crate::Values::new();
        $( v.push($crate::Value::from($v)); )*
        v
    }};
}

impl Value {
    /// The name of this value's type, as used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::I64(_) => "i64",
            Value::F64(_) => "f64",
            Value::Str(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
        }
    }

    /// Feeds this value into a hasher in a form that is the same on every machine, process and
    /// run (used by the fields and partial key groupings).
    pub(crate) fn stable_hash(&self, h: &mut xxhash_rust::xxh3::Xxh3) {
        match self {
            Value::Null => h.update(&[0]),
            Value::Bool(b) => h.update(&[1, *b as u8]),
            Value::I64(i) => {
                h.update(&[2]);
                h.update(&i.to_le_bytes());
            }
            Value::F64(f) => {
                h.update(&[3]);
                h.update(&f.to_bits().to_le_bytes());
            }
            Value::Str(s) => {
                h.update(&[4]);
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            Value::Bytes(b) => {
                h.update(&[5]);
                h.update(&(b.len() as u64).to_le_bytes());
                h.update(b);
            }
            Value::List(l) => {
                h.update(&[6]);
                h.update(&(l.len() as u64).to_le_bytes());
                for v in l.iter() {
                    v.stable_hash(h);
                }
            }
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::I64(i) => write!(f, "{i}"),
            Value::F64(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::List(l) => {
                write!(f, "[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "]")
            }
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::I64(v as i64) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32, isize);

impl From<u64> for Value {
    /// Stored as i64; values above `i64::MAX` wrap (use [`Value::Bytes`] if you need all 64 bits).
    fn from(v: u64) -> Self {
        Value::I64(v as i64)
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::I64(v as i64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::F64(v as f64)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(CompactString::from(v))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(CompactString::from(v))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Str(CompactString::from(v.as_str()))
    }
}
impl From<CompactString> for Value {
    fn from(v: CompactString) -> Self {
        Value::Str(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v.into_boxed_slice())
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.into())
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v.into_boxed_slice())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_three_words() {
        // Tuples are moved by value through the hot path; keep Value at 24 bytes.
        assert_eq!(std::mem::size_of::<Value>(), 24);
    }
}
