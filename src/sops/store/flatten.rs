//! sops's metadata flattening for dotenv and INI (`__map_` / `__list_N`).

use crate::sops::tree::{Map, MapItem, Seq, SeqItem, Value};

pub fn flatten(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Value::Map(m) = v {
        for (k, v) in m.pairs() {
            walk(k.to_string(), v, &mut out);
        }
    }
    out
}

fn walk(prefix: String, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Map(m) => {
            for (k, v) in m.pairs() {
                walk(format!("{prefix}__map_{k}"), v, out);
            }
        }
        Value::Seq(s) => {
            for (i, v) in s.elems().enumerate() {
                walk(format!("{prefix}__list_{i}"), v, out);
            }
        }
        Value::Null => {}
        leaf => {
            let b = crate::sops::scalar::to_bytes(leaf).unwrap_or_default();
            let mut s = String::from_utf8_lossy(&b).into_owned();
            if let Value::Bool(x) = leaf {
                s = x.to_string();
            }
            out.push((prefix, s));
        }
    }
}

enum Seg {
    Key(String),
    Index(usize),
}

fn segments(flat: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut rest = flat;
    let first_end = [rest.find("__map_"), rest.find("__list_")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
    segs.push(Seg::Key(rest[..first_end].to_string()));
    rest = &rest[first_end..];
    while !rest.is_empty() {
        let (is_map, body) = if let Some(b) = rest.strip_prefix("__map_") {
            (true, b)
        } else if let Some(b) = rest.strip_prefix("__list_") {
            (false, b)
        } else {
            break;
        };
        let end = [body.find("__map_"), body.find("__list_")]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(body.len());
        let name = &body[..end];
        segs.push(if is_map {
            Seg::Key(name.to_string())
        } else {
            Seg::Index(name.parse().unwrap_or(0))
        });
        rest = &body[end..];
    }
    segs
}

/// Rebuilds the nested metadata value from flattened pairs.
pub fn unflatten(pairs: &[(String, String)]) -> Value {
    let mut root = Value::Map(Map::default());
    for (k, v) in pairs {
        let segs = segments(k);
        insert(&mut root, &segs, Value::Str(v.clone()));
    }
    root
}

fn insert(node: &mut Value, segs: &[Seg], leaf: Value) {
    let Some((first, rest)) = segs.split_first() else {
        *node = leaf;
        return;
    };
    let child_template = || match rest.first() {
        Some(Seg::Index(_)) => Value::Seq(Seq::default()),
        Some(Seg::Key(_)) => Value::Map(Map::default()),
        None => Value::Null,
    };
    match first {
        Seg::Key(k) => {
            if !matches!(node, Value::Map(_)) {
                *node = Value::Map(Map::default());
            }
            let Value::Map(m) = node else { unreachable!() };
            if m.get(k).is_none() {
                m.0.push(MapItem::Pair(k.clone(), child_template()));
            }
            insert(m.get_mut(k).expect("inserted"), rest, leaf);
        }
        Seg::Index(i) => {
            if !matches!(node, Value::Seq(_)) {
                *node = Value::Seq(Seq::default());
            }
            let Value::Seq(s) = node else { unreachable!() };
            // sops writes list indices in order; an index past the end appends
            // instead of growing the list to it (`__list_99999999999` made a
            // hostile dotenv/INI file allocate gigabytes; found by fuzzing).
            let i = (*i).min(s.0.len());
            if i == s.0.len() {
                s.0.push(SeqItem::Elem(child_template()));
            }
            let SeqItem::Elem(slot) = &mut s.0[i] else {
                unreachable!()
            };
            insert(slot, rest, leaf);
        }
    }
}
