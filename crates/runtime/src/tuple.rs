//! Tuples: ordered values with named fields, plus the ids that place them in a tuple tree.

use crate::value::{Value, Values};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The field names a stream declares, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Fields(Vec<String>);

impl Fields {
    /// Fields with these names.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Fields(names.into_iter().map(Into::into).collect())
    }

    /// The position of a field, or `None` if the stream has no such field.
    ///
    /// Streams have few fields, so a linear scan beats hashing here.
    #[inline]
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|f| f == name)
    }

    /// The field names.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if no fields are declared.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<S: Into<String>, const N: usize> From<[S; N]> for Fields {
    fn from(v: [S; N]) -> Self {
        Fields::new(v)
    }
}
impl From<Vec<String>> for Fields {
    fn from(v: Vec<String>) -> Self {
        Fields(v)
    }
}
impl From<Vec<&str>> for Fields {
    fn from(v: Vec<&str>) -> Self {
        Fields::new(v)
    }
}

/// Where a tuple comes from: component, stream and the stream's fields.
///
/// Interned once per distinct declaration and shared by `&'static` reference, so a tuple carries
/// its schema for the cost of a pointer (no reference counting on the hot path). The set of
/// declarations in a process is small and fixed by the topologies it runs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct StreamMeta {
    /// The emitting component's id.
    pub component: String,
    /// The stream id.
    pub stream: String,
    /// The stream's declared fields.
    pub fields: Fields,
}

impl StreamMeta {
    /// The interned metadata for this component, stream and fields.
    pub(crate) fn intern(component: &str, stream: &str, fields: &Fields) -> &'static StreamMeta {
        type Key = (String, String, Fields);
        static TABLE: OnceLock<Mutex<HashMap<Key, &'static StreamMeta>>> = OnceLock::new();
        let table = TABLE.get_or_init(Default::default);
        let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
        let key = (component.to_string(), stream.to_string(), fields.clone());
        table.entry(key).or_insert_with(|| {
            Box::leak(Box::new(StreamMeta {
                component: component.to_string(),
                stream: stream.to_string(),
                fields: fields.clone(),
            }))
        })
    }
}

/// The component id of system tuples (ticks).
pub(crate) const SYSTEM_COMPONENT: &str = "__system";
/// The stream id of tick tuples.
pub const TICK_STREAM: &str = "__tick";
/// The stream id used when none is named.
pub const DEFAULT_STREAM: &str = "default";

/// Errors reading a tuple's fields.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TupleError {
    /// The stream declares no field of that name.
    #[error("no field {field:?} in tuple from {component}:{stream}; its fields are {fields:?}")]
    NoSuchField {
        /// The requested name.
        field: String,
        /// Source component.
        component: &'static str,
        /// Source stream.
        stream: &'static str,
        /// The declared fields.
        fields: &'static [String],
    },
    /// The index is past the tuple's last value.
    #[error(
        "no value at index {index} in tuple from {component}:{stream}, which has {len} values"
    )]
    NoSuchIndex {
        /// The requested index.
        index: usize,
        /// Number of values in the tuple.
        len: usize,
        /// Source component.
        component: &'static str,
        /// Source stream.
        stream: &'static str,
    },
    /// The value has another type than asked for.
    #[error(
        "field {field} of tuple from {component}:{stream} is {actual} ({value}), not {expected}"
    )]
    WrongType {
        /// The field, by name or index.
        field: String,
        /// The type asked for.
        expected: &'static str,
        /// The value's type.
        actual: &'static str,
        /// The value, for the message.
        value: String,
        /// Source component.
        component: &'static str,
        /// Source stream.
        stream: &'static str,
    },
}

/// Something that names a field of a tuple: its index (`usize`) or its name (`&str`).
pub trait FieldKey: fmt::Display + Copy {
    /// The field's index in `tuple`.
    fn index_in(self, tuple: &Tuple) -> Result<usize, TupleError>;
}

impl FieldKey for usize {
    #[inline]
    fn index_in(self, tuple: &Tuple) -> Result<usize, TupleError> {
        if self < tuple.values.len() {
            Ok(self)
        } else {
            Err(TupleError::NoSuchIndex {
                index: self,
                len: tuple.values.len(),
                component: &tuple.meta.component,
                stream: &tuple.meta.stream,
            })
        }
    }
}

impl FieldKey for &str {
    #[inline]
    fn index_in(self, tuple: &Tuple) -> Result<usize, TupleError> {
        match tuple.meta.fields.index_of(self) {
            Some(i) if i < tuple.values.len() => Ok(i),
            _ => Err(TupleError::NoSuchField {
                field: self.to_string(),
                component: &tuple.meta.component,
                stream: &tuple.meta.stream,
                fields: tuple.meta.fields.names(),
            }),
        }
    }
}

/// The tuple-tree ids of a tuple: for each spout tuple (root) it descends from, the id of the
/// edge that delivered it. Empty for untracked tuples.
pub(crate) type Anchors = SmallVec<[(u64, u64); 1]>;

/// A tuple: an ordered list of values on a stream, emitted by one task.
pub struct Tuple {
    pub(crate) meta: &'static StreamMeta,
    pub(crate) values: Values,
    pub(crate) source_task: u32,
    pub(crate) anchors: Anchors,
    /// XOR of the edge ids of the children anchored to this tuple so far (Storm's ack val).
    /// Only the executing task touches it; atomic just so `&Tuple` can cross `.await`s.
    ack_val: AtomicU64,
}

impl Tuple {
    pub(crate) fn new(
        meta: &'static StreamMeta,
        values: Values,
        source_task: u32,
        anchors: Anchors,
    ) -> Self {
        Tuple {
            meta,
            values,
            source_task,
            anchors,
            ack_val: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn ack_val(&self) -> u64 {
        self.ack_val.load(Ordering::Relaxed)
    }

    /// Records a child edge anchored to this tuple (a plain load and store: one writer).
    #[inline]
    pub(crate) fn add_child_edge(&self, edge: u64) {
        self.ack_val.store(self.ack_val() ^ edge, Ordering::Relaxed);
    }

    /// The id of the component that emitted this tuple.
    pub fn source_component(&self) -> &str {
        &self.meta.component
    }
    /// The stream this tuple was emitted on.
    pub fn source_stream(&self) -> &str {
        &self.meta.stream
    }
    /// The task that emitted this tuple.
    pub fn source_task(&self) -> u32 {
        self.source_task
    }
    /// The declared fields of this tuple's stream.
    pub fn fields(&self) -> &Fields {
        &self.meta.fields
    }
    /// All values, in field order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }
    /// Takes the values out of the tuple.
    pub fn into_values(self) -> Values {
        self.values
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }
    /// True if the tuple has no values.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// True for tick tuples (see `topology.tick.tuple.freq.secs`).
    pub fn is_tick(&self) -> bool {
        self.meta.component == SYSTEM_COMPONENT && self.meta.stream == TICK_STREAM
    }
    /// True if this tuple is part of a tracked tuple tree (acking it matters).
    pub fn is_tracked(&self) -> bool {
        !self.anchors.is_empty()
    }

    /// The value of a field, by index or name.
    #[inline]
    pub fn value<K: FieldKey>(&self, key: K) -> Result<&Value, TupleError> {
        Ok(&self.values[key.index_in(self)?])
    }

    /// The value at `index`, if any.
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.values.get(index)
    }

    /// True if the stream declares a field of that name.
    pub fn contains(&self, name: &str) -> bool {
        self.meta.fields.index_of(name).is_some()
    }

    fn wrong_type<K: FieldKey>(&self, key: K, expected: &'static str, v: &Value) -> TupleError {
        TupleError::WrongType {
            field: key.to_string(),
            expected,
            actual: v.type_name(),
            value: v.to_string(),
            component: &self.meta.component,
            stream: &self.meta.stream,
        }
    }

    /// A string field.
    #[inline]
    pub fn str<K: FieldKey>(&self, key: K) -> Result<&str, TupleError> {
        match self.value(key)? {
            Value::Str(s) => Ok(s.as_str()),
            v => Err(self.wrong_type(key, "string", v)),
        }
    }
    /// An integer field.
    #[inline]
    pub fn i64<K: FieldKey>(&self, key: K) -> Result<i64, TupleError> {
        match self.value(key)? {
            Value::I64(i) => Ok(*i),
            v => Err(self.wrong_type(key, "i64", v)),
        }
    }
    /// A float field (integers are widened).
    #[inline]
    pub fn f64<K: FieldKey>(&self, key: K) -> Result<f64, TupleError> {
        match self.value(key)? {
            Value::F64(f) => Ok(*f),
            Value::I64(i) => Ok(*i as f64),
            v => Err(self.wrong_type(key, "f64", v)),
        }
    }
    /// A boolean field.
    #[inline]
    pub fn bool<K: FieldKey>(&self, key: K) -> Result<bool, TupleError> {
        match self.value(key)? {
            Value::Bool(b) => Ok(*b),
            v => Err(self.wrong_type(key, "bool", v)),
        }
    }
    /// A bytes field.
    #[inline]
    pub fn bytes<K: FieldKey>(&self, key: K) -> Result<&[u8], TupleError> {
        match self.value(key)? {
            Value::Bytes(b) => Ok(b),
            v => Err(self.wrong_type(key, "bytes", v)),
        }
    }
    /// A list field.
    #[inline]
    pub fn list<K: FieldKey>(&self, key: K) -> Result<&[Value], TupleError> {
        match self.value(key)? {
            Value::List(l) => Ok(l),
            v => Err(self.wrong_type(key, "list", v)),
        }
    }
    /// A map field (a JSON object): its entries, in order.
    #[inline]
    pub fn map<K: FieldKey>(
        &self,
        key: K,
    ) -> Result<&[(compact_str::CompactString, Value)], TupleError> {
        match self.value(key)? {
            Value::Map(m) => Ok(m),
            v => Err(self.wrong_type(key, "map", v)),
        }
    }
}

impl Clone for Tuple {
    fn clone(&self) -> Self {
        Tuple::new(
            self.meta,
            self.values.clone(),
            self.source_task,
            self.anchors.clone(),
        )
    }
}

impl fmt::Debug for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "source: {}:{}, stream: {}, values: [",
            self.meta.component, self.source_task, self.meta.stream
        )?;
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{v}")?;
        }
        write!(f, "]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;

    fn word_tuple() -> Tuple {
        let meta = StreamMeta::intern("split", "default", &Fields::from(["word", "n"]));
        Tuple::new(meta, values!["cow", 3], 7, Anchors::new())
    }

    #[test]
    fn fields_by_name_and_index() {
        let t = word_tuple();
        assert_eq!(t.str("word").unwrap(), "cow");
        assert_eq!(t.str(0).unwrap(), "cow");
        assert_eq!(t.i64("n").unwrap(), 3);
        assert_eq!(t.f64(1).unwrap(), 3.0);
        assert_eq!(t.source_component(), "split");
        assert_eq!(t.source_stream(), "default");
        assert_eq!(t.source_task(), 7);
    }

    #[test]
    fn wrong_type_names_field_and_types() {
        let err = word_tuple().i64("word").unwrap_err().to_string();
        assert!(err.contains("field word"), "{err}");
        assert!(err.contains("is string"), "{err}");
        assert!(err.contains("not i64"), "{err}");
    }

    #[test]
    fn unknown_field_lists_declared_fields() {
        let err = word_tuple().str("wrod").unwrap_err().to_string();
        assert!(err.contains("\"wrod\""), "{err}");
        assert!(err.contains("[\"word\", \"n\"]"), "{err}");
        let err = word_tuple().str(5).unwrap_err().to_string();
        assert!(err.contains("index 5"), "{err}");
    }

    #[test]
    fn interning_shares_one_meta() {
        let a = StreamMeta::intern("c", "s", &Fields::from(["x"]));
        let b = StreamMeta::intern("c", "s", &Fields::from(["x"]));
        assert!(std::ptr::eq(a, b));
    }
}
