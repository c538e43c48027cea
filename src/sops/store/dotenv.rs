//! dotenv store: `KEY=VALUE` lines, `#` comments, `\n` escapes, all strings.

use super::StoreError;
use crate::sops::tree::{Map, MapItem, Value};

pub fn parse(src: &str) -> Result<Map, StoreError> {
    let mut m = Map::default();
    for (n, line) in src.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            m.0.push(MapItem::Comment(c.to_string()));
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(StoreError::Syntax {
                format: "dotenv",
                line: n + 1,
                col: 1,
                msg: "expected KEY=VALUE".into(),
            });
        };
        if m.contains_key(k) {
            return Err(StoreError::Syntax {
                format: "dotenv",
                line: n + 1,
                col: 1,
                msg: format!("duplicate key {k:?}"),
            });
        }
        m.0.push(MapItem::Pair(
            k.to_string(),
            Value::Str(v.replace("\\n", "\n")),
        ));
    }
    Ok(m)
}

pub fn emit(m: &Map) -> Result<String, StoreError> {
    let mut out = String::new();
    for item in &m.0 {
        match item {
            MapItem::Comment(c) => {
                for line in c.split('\n') {
                    out.push('#');
                    out.push_str(line);
                    out.push('\n');
                }
            }
            MapItem::Pair(k, v) => {
                // What `parse` would split differently, or refuse as a BOM.
                if k.contains(['=', '\n']) || k.starts_with(['#', '\u{feff}']) {
                    return Err(StoreError::Shape(format!(
                        "dotenv cannot hold the key {k:?}"
                    )));
                }
                let s = match v {
                    Value::Str(s) => s.clone(),
                    Value::Map(_) | Value::Seq(_) => {
                        return Err(StoreError::Shape(format!(
                            "dotenv cannot hold nested values (key {k:?})"
                        )));
                    }
                    Value::Null => String::new(),
                    other => String::from_utf8_lossy(
                        &crate::sops::scalar::to_text(other).unwrap_or_default(),
                    )
                    .into_owned(),
                };
                out.push_str(k);
                out.push('=');
                out.push_str(&s.replace('\n', "\\n"));
                out.push('\n');
            }
        }
    }
    Ok(out)
}
