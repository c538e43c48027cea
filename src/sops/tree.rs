//! The document tree every store parses into and emits from.
//!
//! It mirrors sops's `TreeBranch`: ordered maps whose items are either key/value
//! pairs or comments, because comments are encrypted and their position decides
//! their AAD. Scalar variants follow the types sops can tag (`str`, `int`,
//! `float`, `bool`, `time`), plus `Bytes` for non-UTF-8 binary payloads.

use std::fmt;

use chrono::{DateTime, FixedOffset};

/// A scalar or container value.
#[derive(Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A `type:str` payload that is not valid UTF-8 (binary store).
    Bytes(Vec<u8>),
    Time(DateTime<FixedOffset>),
    Map(Map),
    Seq(Seq),
}

/// Values are secrets: never print them, not even in a panic message.
impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Bool(_) => f.write_str("Bool(<redacted>)"),
            Value::Int(_) => f.write_str("Int(<redacted>)"),
            Value::Float(_) => f.write_str("Float(<redacted>)"),
            Value::Str(_) => f.write_str("Str(<redacted>)"),
            Value::Bytes(_) => f.write_str("Bytes(<redacted>)"),
            Value::Time(_) => f.write_str("Time(<redacted>)"),
            Value::Map(m) => f.debug_list().entries(m.0.iter()).finish(),
            Value::Seq(s) => f.debug_list().entries(s.0.iter()).finish(),
        }
    }
}

/// An ordered mapping. Duplicate keys are rejected by the parsers, as sops does.
#[derive(Clone, PartialEq, Default)]
pub struct Map(pub Vec<MapItem>);

#[derive(Clone, PartialEq)]
pub enum MapItem {
    Pair(String, Value),
    /// Comment text without the leading `#`/`;` (so `# foo` is `" foo"`).
    Comment(String),
}

#[derive(Clone, PartialEq, Default)]
pub struct Seq(pub Vec<SeqItem>);

#[derive(Clone, PartialEq)]
pub enum SeqItem {
    Elem(Value),
    Comment(String),
}

impl fmt::Debug for MapItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapItem::Pair(k, v) => write!(f, "{k:?}: {v:?}"),
            MapItem::Comment(_) => f.write_str("#<comment>"),
        }
    }
}

impl fmt::Debug for SeqItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeqItem::Elem(v) => write!(f, "{v:?}"),
            SeqItem::Comment(_) => f.write_str("#<comment>"),
        }
    }
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl Map {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find_map(|i| match i {
            MapItem::Pair(k, v) if k == key => Some(v),
            _ => None,
        })
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.0.iter_mut().find_map(|i| match i {
            MapItem::Pair(k, v) if k == key => Some(v),
            _ => None,
        })
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Replaces the value of `key` in place, or appends the pair.
    pub fn insert(&mut self, key: &str, value: Value) {
        match self.get_mut(key) {
            Some(v) => *v = value,
            None => self.0.push(MapItem::Pair(key.to_string(), value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let pos = self
            .0
            .iter()
            .position(|i| matches!(i, MapItem::Pair(k, _) if k == key))?;
        match self.0.remove(pos) {
            MapItem::Pair(_, v) => Some(v),
            MapItem::Comment(_) => None,
        }
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().filter_map(|i| match i {
            MapItem::Pair(k, v) => Some((k.as_str(), v)),
            MapItem::Comment(_) => None,
        })
    }

    pub fn str_of(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }
}

impl Seq {
    pub fn elems(&self) -> impl Iterator<Item = &Value> {
        self.0.iter().filter_map(|i| match i {
            SeqItem::Elem(v) => Some(v),
            SeqItem::Comment(_) => None,
        })
    }
}

impl Value {
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Converts to JSON for typed config parsing (`.sops.yaml`, recipients files)
    /// and for `--output json`. Comments are dropped.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::Str(s) => J::String(s.clone()),
            Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
            Value::Time(t) => J::String(crate::sops::scalar::format_time(t)),
            Value::Map(m) => J::Object(
                m.pairs()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
            Value::Seq(s) => J::Array(s.elems().map(Value::to_json).collect()),
        }
    }

    /// The inverse of [`Value::to_json`], used by the JSON store and `ksec set`.
    pub fn from_json(j: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match j {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::Str(s.clone()),
            J::Array(a) => Value::Seq(Seq(a
                .iter()
                .map(|v| SeqItem::Elem(Value::from_json(v)))
                .collect())),
            J::Object(o) => Value::Map(Map(o
                .iter()
                .map(|(k, v)| MapItem::Pair(k.clone(), Value::from_json(v)))
                .collect())),
        }
    }
}

/// A parsed file: one map per document (YAML may hold several; every other
/// format holds exactly one).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Documents(pub Vec<Map>);
