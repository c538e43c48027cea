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

/// One step of a sops tree path: `["key"]` or `[index]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

impl fmt::Display for PathSeg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathSeg::Key(k) => write!(f, "[{k:?}]"),
            PathSeg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path that does not parse, or does not fit the tree. Key names and
/// indexes only: never a value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("invalid path {path:?}: {why}")]
    Syntax { path: String, why: &'static str },
    #[error("cannot set key {0:?}: its parent is a list")]
    KeyInList(String),
    #[error("cannot set index {0}: its parent is a map")]
    IndexInMap(usize),
}

/// Parses sops's path syntax: `["data"]["key"][0]` (single quotes accepted).
pub fn parse_path(s: &str) -> Result<Vec<PathSeg>, PathError> {
    let err = |why| PathError::Syntax {
        path: s.to_string(),
        why,
    };
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let inner = rest
            .strip_prefix('[')
            .ok_or_else(|| err("expected [\"key\"] or [index]"))?;
        if let Some(q) = inner.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let end = inner[1..]
                .find(q)
                .ok_or_else(|| err("unterminated quote"))?
                + 1;
            out.push(PathSeg::Key(inner[1..end].to_string()));
            rest = inner[end + 1..]
                .strip_prefix(']')
                .ok_or_else(|| err("expected ]"))?;
        } else {
            let end = inner.find(']').ok_or_else(|| err("expected ]"))?;
            let n = inner[..end]
                .trim()
                .parse()
                .map_err(|_| err("index must be a number"))?;
            out.push(PathSeg::Index(n));
            rest = &inner[end + 1..];
        }
    }
    if out.is_empty() {
        return Err(err("empty path"));
    }
    Ok(out)
}

impl Seq {
    /// The item position of the `i`-th element (comments are items too).
    fn position(&self, i: usize) -> Option<usize> {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, x)| matches!(x, SeqItem::Elem(_)))
            .map(|(p, _)| p)
            .nth(i)
    }

    fn elem_mut(&mut self, i: usize) -> Option<&mut Value> {
        let p = self.position(i)?;
        match &mut self.0[p] {
            SeqItem::Elem(v) => Some(v),
            SeqItem::Comment(_) => None,
        }
    }
}

impl Value {
    /// The value at `path`, if every step exists.
    pub fn get_path(&self, path: &[PathSeg]) -> Option<&Value> {
        path.iter().try_fold(self, |cur, seg| match (seg, cur) {
            (PathSeg::Key(k), Value::Map(m)) => m.get(k),
            (PathSeg::Index(i), Value::Seq(s)) => s.elems().nth(*i),
            _ => None,
        })
    }

    /// sops's `set`: creates missing maps and list items on the way; a
    /// scalar in the way is replaced; an index past the end appends.
    pub fn set_path(&mut self, path: &[PathSeg], new: Value) -> Result<(), PathError> {
        let Some((first, rest)) = path.split_first() else {
            *self = new;
            return Ok(());
        };
        let child = match first {
            PathSeg::Key(k) => {
                if matches!(self, Value::Seq(_)) {
                    return Err(PathError::KeyInList(k.clone()));
                }
                if !matches!(self, Value::Map(_)) {
                    *self = Value::Map(Map::default());
                }
                let Value::Map(m) = self else { unreachable!() };
                if !m.contains_key(k) {
                    m.0.push(MapItem::Pair(k.clone(), Value::Null));
                }
                m.get_mut(k).expect("present")
            }
            PathSeg::Index(i) => {
                if matches!(self, Value::Map(_)) {
                    return Err(PathError::IndexInMap(*i));
                }
                if !matches!(self, Value::Seq(_)) {
                    *self = Value::Seq(Seq::default());
                }
                let Value::Seq(s) = self else { unreachable!() };
                if s.position(*i).is_none() {
                    s.0.push(SeqItem::Elem(Value::Null));
                    let last = s.elems().count() - 1;
                    s.elem_mut(last).expect("pushed")
                } else {
                    s.elem_mut(*i).expect("present")
                }
            }
        };
        child.set_path(rest, new)
    }

    /// sops's `unset`: removes the key or list item at `path`; false when
    /// it does not exist.
    pub fn unset_path(&mut self, path: &[PathSeg]) -> bool {
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        let mut cur = self;
        for seg in parents {
            let next = match (seg, cur) {
                (PathSeg::Key(k), Value::Map(m)) => m.get_mut(k),
                (PathSeg::Index(i), Value::Seq(s)) => s.elem_mut(*i),
                _ => None,
            };
            let Some(n) = next else { return false };
            cur = n;
        }
        match (last, cur) {
            (PathSeg::Key(k), Value::Map(m)) => m.remove(k).is_some(),
            (PathSeg::Index(i), Value::Seq(s)) => match s.position(*i) {
                Some(p) => {
                    s.0.remove(p);
                    true
                }
                None => false,
            },
            _ => false,
        }
    }
}

#[cfg(test)]
mod path_tests {
    use super::*;

    fn v(j: &str) -> Value {
        Value::from_json(&serde_json::from_str(j).unwrap())
    }

    fn p(s: &str) -> Vec<PathSeg> {
        parse_path(s).unwrap()
    }

    #[test]
    fn paths_parse_like_sops() {
        assert_eq!(
            p(r#"["data"]['k'][2]"#),
            [
                PathSeg::Key("data".into()),
                PathSeg::Key("k".into()),
                PathSeg::Index(2)
            ]
        );
        for bad in ["", "data", r#"["a"#, "[x]", r#"["a"]b"#] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_creates_replaces_and_appends() {
        let mut t = v(r#"{"a": 2, "b": [1]}"#);
        t.set_path(&p(r#"["a"]["x"]"#), Value::Int(1)).unwrap();
        t.set_path(&p("[\"b\"][5]"), Value::Int(7)).unwrap();
        t.set_path(&p(r#"["n"][0]["z"]"#), Value::Int(8)).unwrap();
        assert_eq!(t, v(r#"{"a": {"x": 1}, "b": [1, 7], "n": [{"z": 8}]}"#));
        assert_eq!(
            t.set_path(&p(r#"["b"]["k"]"#), Value::Null),
            Err(PathError::KeyInList("k".into()))
        );
        assert_eq!(t.get_path(&p("[\"b\"][1]")), Some(&Value::Int(7)));
        assert_eq!(t.get_path(&p("[\"b\"][2]")), None);
    }

    #[test]
    fn unset_removes_keys_and_items_and_says_when_absent() {
        let mut t = v(r#"{"a": 2, "c": [1, 2]}"#);
        assert!(t.unset_path(&p(r#"["a"]"#)));
        assert!(!t.unset_path(&p(r#"["a"]"#)));
        assert!(t.unset_path(&p("[\"c\"][1]")));
        assert!(!t.unset_path(&p("[\"c\"][1]")));
        assert!(!t.unset_path(&p(r#"["c"]["x"]"#)));
        assert_eq!(t, v(r#"{"c": [1]}"#));
    }
}
