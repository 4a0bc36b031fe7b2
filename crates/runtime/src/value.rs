//! The values a tuple carries, and their conversions from Rust types.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::fmt;

/// One value of a tuple.
///
/// Strings up to 24 bytes are stored inline (no allocation), which keeps word-sized keys cheap.
/// The whole value is 24 bytes (the variant tag lives in a spare byte of the string), so tuples
/// stay small to move: bytes, lists and maps are boxed slices for that reason.
///
/// [`Value::Map`] is what JSON objects become (multilang components, see
/// [`Value::from_json`] and [`Value::to_json`]): string keys, in their order.
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
    /// String keys to values, in insertion order (a JSON object). Keys are unique when built
    /// from JSON; [`Value::get`] finds the first entry of a key.
    Map(Box<[(CompactString, Value)]>),
}

/// Why a [`Value`] cannot become JSON, or JSON cannot become a [`Value`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonValueError {
    /// JSON has no NaN or infinity.
    #[error("the float {0} cannot be represented in JSON (JSON has no NaN or infinity)")]
    NonFiniteFloat(f64),
    /// JSON has no bytes; Tempest does not guess an encoding for them.
    #[error("a bytes value ({0} bytes) cannot be represented in JSON: emit it as a string (e.g. base64) instead")]
    Bytes(usize),
    /// A JSON number that is neither an i64 nor an f64 (an integer above i64::MAX).
    #[error("the JSON number {0} does not fit a 64-bit signed integer")]
    NumberOutOfRange(String),
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
            Value::Map(_) => "map",
        }
    }

    /// The value of `key` in a map (`None` for a missing key or a value that is not a map).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Builds a map from key/value pairs, keeping their order.
    pub fn map<K: Into<CompactString>, V: Into<Value>>(
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// This value as JSON: lists become arrays, maps objects (in their order). Fails on
    /// bytes and on NaN or infinite floats, which JSON cannot carry.
    pub fn to_json(&self) -> Result<serde_json::Value, JsonValueError> {
        use serde_json::Value as J;
        Ok(match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::I64(i) => J::from(*i),
            Value::F64(f) => J::Number(
                serde_json::Number::from_f64(*f).ok_or(JsonValueError::NonFiniteFloat(*f))?,
            ),
            Value::Str(s) => J::String(s.to_string()),
            Value::Bytes(b) => return Err(JsonValueError::Bytes(b.len())),
            Value::List(l) => J::Array(l.iter().map(Value::to_json).collect::<Result<_, _>>()?),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| Ok((k.to_string(), v.to_json()?)))
                    .collect::<Result<_, JsonValueError>>()?,
            ),
        })
    }

    /// A value from JSON: integers that fit become [`Value::I64`], other numbers
    /// [`Value::F64`], arrays lists and objects maps. Fails on integers above `i64::MAX`.
    pub fn from_json(json: &serde_json::Value) -> Result<Value, JsonValueError> {
        use serde_json::Value as J;
        Ok(match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Value::I64(i),
                (None, Some(f)) if !n.is_u64() => Value::F64(f),
                _ => return Err(JsonValueError::NumberOutOfRange(n.to_string())),
            },
            J::String(s) => Value::Str(CompactString::from(s.as_str())),
            J::Array(a) => Value::List(a.iter().map(Value::from_json).collect::<Result<_, _>>()?),
            J::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, v)| Ok((CompactString::from(k.as_str()), Value::from_json(v)?)))
                    .collect::<Result<_, JsonValueError>>()?,
            ),
        })
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
            Value::Map(m) => {
                h.update(&[7]);
                h.update(&(m.len() as u64).to_le_bytes());
                for (k, v) in m.iter() {
                    h.update(&(k.len() as u64).to_le_bytes());
                    h.update(k.as_bytes());
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
            Value::Map(m) => {
                write!(f, "{{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k:?}: {v}")?;
                }
                write!(f, "}}")
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

    fn nested() -> Value {
        Value::map([
            ("word", Value::from("cow")),
            ("n", Value::from(3)),
            (
                "xs",
                Value::from(vec![Value::from(1.5), Value::Null, Value::from(true)]),
            ),
            ("inner", Value::map([("a", 1), ("z", 2)])),
        ])
    }

    #[test]
    fn json_objects_and_nested_lists_round_trip_in_order() {
        let v = nested();
        let json = v.to_json().unwrap();
        // serde_json sorts object keys unless its `preserve_order` feature is on (the multilang
        // crate turns it on in a workspace build, and tests the order end to end); its maps
        // compare equal whatever the order, so this holds either way.
        assert_eq!(
            json,
            serde_json::json!({"inner": {"a": 1, "z": 2}, "n": 3, "word": "cow", "xs": [1.5, null, true]})
        );
        let back = Value::from_json(&json).unwrap();
        for key in ["word", "n", "xs", "inner"] {
            assert_eq!(back.get(key), v.get(key), "{key}");
        }
        assert_eq!(
            v.get("inner").and_then(|m| m.get("z")),
            Some(&Value::I64(2))
        );
        assert_eq!(v.get("nope"), None);
        assert_eq!(
            v.to_string(),
            r#"{"word": "cow", "n": 3, "xs": [1.5, null, true], "inner": {"a": 1, "z": 2}}"#
        );
    }

    #[test]
    fn maps_cross_workers_through_msgpack() {
        let v = nested();
        let bytes = rmp_serde::to_vec(&v).unwrap();
        assert_eq!(rmp_serde::from_slice::<Value>(&bytes).unwrap(), v);
    }

    #[test]
    fn what_json_cannot_carry_is_a_clear_error() {
        let err = Value::F64(f64::NAN).to_json().unwrap_err().to_string();
        assert!(err.contains("NaN"), "{err}");
        let err = Value::list_of_bytes().to_json().unwrap_err().to_string();
        assert!(err.contains("3 bytes") && err.contains("base64"), "{err}");
        let big: serde_json::Value = serde_json::from_str("18446744073709551615").unwrap();
        let err = Value::from_json(&big).unwrap_err().to_string();
        assert!(err.contains("18446744073709551615"), "{err}");
    }

    impl Value {
        fn list_of_bytes() -> Value {
            Value::from(vec![Value::from(vec![1u8, 2, 3])])
        }
    }

    #[test]
    fn equal_maps_hash_equal_and_order_matters() {
        let hash = |v: &Value| {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            v.stable_hash(&mut h);
            h.digest()
        };
        assert_eq!(hash(&nested()), hash(&nested()));
        assert_ne!(
            hash(&Value::map([("a", 1), ("b", 2)])),
            hash(&Value::map([("b", 2), ("a", 1)]))
        );
    }
}
